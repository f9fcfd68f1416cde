import SluiceAdminAPI
import SluiceCore

// The admin API's wire types from the config and state they describe: the one place where
// SluiceCore's model meets the shapes of `openapi/sluice.yaml`.

extension AdminAPI.KeySource {
    init(_ source: SluiceCore.KeySource) {
        switch source {
        case .config: self = .config
        case .runtime: self = .runtime
        }
    }
}

extension AdminAPI.QuotaPeriod {
    init(_ period: SluiceCore.QuotaPeriod) {
        switch period {
        case .day: self = .day
        case .week: self = .week
        case .month: self = .month
        }
    }
}

extension AdminAPI.BackendErrorPolicy {
    init(_ policy: SluiceCore.BackendErrorPolicy) {
        switch policy {
        case .deny: self = .deny
        case .allow: self = .allow
        }
    }
}

extension AdminAPI.HeaderSet {
    init(_ style: HeaderStyle) {
        switch style {
        case .ietf: self = .ietf
        case .legacy: self = .legacy
        case .openai: self = .openai
        case .anthropic: self = .anthropic
        }
    }
}

extension AdminAPI.Plan {
    /// The plan view of `GET /admin/v1/plans`.
    init(_ plan: SluiceCore.Plan) {
        var throttle: Throttle?
        if let limit = plan.throttle, case .bucket(let bucket) = limit.kind {
            throttle = Throttle(rate: bucket.rate, burst: bucket.burst)
        }
        var quota: Quota?
        if let limit = plan.quota, case .quota(let q) = limit.kind {
            quota = Quota(limit: q.limit, period: AdminAPI.QuotaPeriod(q.period), offsetHours: q.offsetHours, initialOffset: q.initialOffset)
        }
        self.init(
            name: plan.name,
            throttle: throttle,
            quota: quota,
            onBackendError: AdminAPI.BackendErrorPolicy(plan.onBackendError),
            shadow: plan.shadow,
            headers: plan.headers.map(AdminAPI.HeaderSet.init).sorted(by: { $0.rawValue < $1.rawValue }),
            routes: Self.routes(plan.routes),
            // Absent: the plan covers every stage.
            stages: plan.stages.map { stages in
                stages.sorted(by: { $0.key < $1.key }).map { Stage(name: $0.key, routes: Self.routes($0.value)) }
            },
            limits: plan.namedLimits.isEmpty ? nil : Dictionary(plan.namedLimits.map { ($0.name, NamedLimit($0)) }, uniquingKeysWith: { first, _ in first }),
            concurrency: plan.concurrency.map { Concurrency(limit: $0.limit, leaseTTLSeconds: ($0.leaseTTLMs + 999) / 1000) },
            prices: plan.prices.isEmpty ? nil : plan.prices.mapValues(Price.init)
        )
    }

    /// Each rule's key, its limit's name, rate and burst.
    private static func routes(_ rules: [RouteRule]) -> [Route] {
        rules.compactMap { rule in
            guard case .bucket(let bucket) = rule.limit.kind else { return nil }
            return Route(key: rule.key, limit: rule.limit.name, rate: bucket.rate, burst: bucket.burst, additional: rule.additional)
        }
    }
}

extension AdminAPI.Plan.Dimension {
    init(_ dimension: SluiceCore.Dimension) {
        switch dimension {
        case .requests: self = .requests
        case .inputTokens: self = .inputTokens
        case .outputTokens: self = .outputTokens
        case .totalTokens: self = .totalTokens
        case .cost: self = .cost
        }
    }
}

extension AdminAPI.Plan.NamedLimit {
    /// A plan's named limit: its dimension and its bucket or quota.
    init(_ limit: Limit) {
        let counts = AdminAPI.Plan.Dimension(limit.counts)
        switch limit.kind {
        case .bucket(let bucket):
            self.init(counts: counts, rate: bucket.rate, burst: bucket.burst)
        case .quota(let quota):
            self.init(counts: counts, quota: .init(limit: quota.limit, period: AdminAPI.QuotaPeriod(quota.period), offsetHours: quota.offsetHours))
        }
    }
}

extension AdminAPI.Plan.Price {
    /// Cost units per token, from the model's millionths.
    init(_ price: ModelPrice) {
        self.init(
            input: Double(price.inputMicros) / 1_000_000, output: Double(price.outputMicros) / 1_000_000,
            cachedInput: Double(price.cachedInputMicros) / 1_000_000
        )
    }
}

extension AdminAPI.KeyRecord {
    init(_ record: SluiceCore.KeyRecord) {
        self.init(
            id: record.id, name: record.name, plan: record.plan, created: record.created.map { AdminRoutes.timestamp(ms: $0) },
            source: AdminAPI.KeySource(record.source)
        )
    }
}

extension AdminAPI.LimitState {
    /// A limit's live state as `inspect.lua` or `quota.lua` read it.
    init(_ snapshot: StateScripts.LimitSnapshot) {
        let detail: Detail
        switch snapshot.kind {
        case .bucket(let bucket):
            detail = .bucket(Bucket(rate: bucket.rate, burst: bucket.burst, tokens: snapshot.tokens))
        case .quota(let quota):
            detail = .quota(
                Quota(
                    baseLimit: quota.limit, extension: snapshot.extension_, used: snapshot.used, period: AdminAPI.QuotaPeriod(quota.period),
                    offsetHours: quota.offsetHours,
                    windowStart: QuotaCalendar.timestamp(seconds: snapshot.windowStart),
                    windowEnd: QuotaCalendar.timestamp(seconds: snapshot.windowEnd)
                )
            )
        }
        self.init(
            name: snapshot.name, limit: snapshot.limit, remaining: snapshot.remaining, resetAfterMs: snapshot.resetAfterMs,
            ttlMs: snapshot.ttlMs, detail: detail
        )
    }
}

extension AdminAPI.UsageReport.Day {
    init(_ day: SluiceCore.UsageReport.Day) {
        self.init(
            date: day.date, start: QuotaCalendar.timestamp(seconds: day.start), end: QuotaCalendar.timestamp(seconds: day.end),
            used: day.used, remaining: day.remaining
        )
    }
}
