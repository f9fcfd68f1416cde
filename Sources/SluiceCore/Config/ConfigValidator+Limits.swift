extension ConfigValidator {
    /// Section `limits`: the input bounds. A batch is written to one Redis connection at once, so
    /// it may not hold more checks than `maxPending` (`redis.max_pending`).
    mutating func bounds(_ section: ConfigFile.LimitsSection?, maxPending: Int) -> InputBounds {
        let defaults = InputBounds()
        let bounds = InputBounds(
            maxBodyBytes: self.bounded(section?.maxBodyBytes, "limits.max_body_bytes", default: defaults.maxBodyBytes, 64...(64 << 20)),
            maxAPIKeyBytes: self.bounded(section?.maxAPIKeyBytes, "limits.max_api_key_bytes", default: defaults.maxAPIKeyBytes, 1...65536),
            maxRouteBytes: self.bounded(section?.maxRouteBytes, "limits.max_route_bytes", default: defaults.maxRouteBytes, 1...65536),
            maxCost: self.bounded(section?.maxCost, "limits.max_cost", default: defaults.maxCost, 1...1_000_000_000_000),
            maxBatchBodyBytes: self.bounded(
                section?.maxBatchBodyBytes, "limits.max_batch_body_bytes", default: defaults.maxBatchBodyBytes, 64...(256 << 20)
            ),
            maxBatchChecks: self.bounded(section?.maxBatchChecks, "limits.max_batch_checks", default: defaults.maxBatchChecks, 1...100_000)
        )
        if bounds.maxBatchChecks > maxPending {
            self.fail(
                "limits.max_batch_checks",
                "must not exceed redis.max_pending (\(maxPending)): a batch is written to one connection at once"
            )
        }
        return bounds
    }

    /// Section `over_limit_cache` (on by default): its entries, 0 when it is off.
    mutating func overLimitCacheEntries(_ section: ConfigFile.OverLimitCacheSection?) -> Int {
        let entries = self.bounded(section?.maxEntries, "over_limit_cache.max_entries", default: 100_000, 2...10_000_000)
        return section?.enabled == false ? 0 : entries
    }

    /// Section `usage`: the days per-day usage records are kept (0: none recorded).
    mutating func usageRetentionDays(_ section: ConfigFile.UsageSection?) -> Int {
        self.bounded(section?.retentionDays, "usage.retention_days", default: 90, 0...3660)
    }
}
