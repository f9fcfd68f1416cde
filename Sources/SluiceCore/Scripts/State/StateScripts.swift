/// Inputs and outputs of the scripts operators use on one key's state: `inspect.lua`
/// (read every limit without consuming) and `quota.lua` (extend or set a quota's
/// remaining units for the current window), both beside this file.
public enum StateScripts {
    /// Reads limit state without consuming: `prelude.lua` + `inspect.lua`.
    public static let inspectScript = LuaScript(name: "inspect", body: PackageResources.inspect_lua)
    /// Extends or sets a quota's current window: `prelude.lua` + `quota.lua`.
    public static let quotaScript = LuaScript(name: "quota", body: PackageResources.quota_lua)

    /// KEYS and ARGV of a script call, as ``DecisionScript`` makes them.
    public typealias Call = DecisionScript.Call
    /// A reply that does not match the call.
    public typealias MalformedReply = DecisionScript.MalformedReply

    /// The live state of one limit of a key.
    public struct LimitSnapshot: Sendable, Hashable {
        /// The limit's name (`throttle`, `quota`, `route:<pattern>`).
        public let name: String
        /// Bucket or quota, as configured.
        public let kind: Limit.Kind
        /// What the limit counts (requests for the throttle, the quota and route buckets).
        public let counts: Dimension
        /// Capacity now: a bucket's burst; a quota's units this window, extension included.
        public let limit: Int
        /// Whole units a request could use now.
        public let remaining: Int
        /// Milliseconds until the limit is full again (a quota: until its window ends).
        public let resetAfterMs: Int
        /// Milliseconds the state key has left in Redis; -2 when there is no state (a full
        /// bucket, an untouched window).
        public let ttlMs: Int
        /// A bucket's tokens now, with fractions (thousandths); negative when a bucket counting
        /// tokens or cost is in debt after an overrun.
        public let tokens: Double
        /// A quota's units used this window.
        public let used: Int
        /// A quota's extension this window (negative when an operator set fewer remaining units).
        public let extension_: Int
        /// A quota window's start and end, in seconds since the epoch.
        public let windowStart: Int64
        public let windowEnd: Int64
    }

    /// The `inspect.lua` call for limits of one key.
    public static func inspect(entry: KeyEntry, limits: [Limit], nowMicros: Int64? = nil) -> Call {
        var arguments: [[UInt8]] = [DecisionScript.clockArgument(nowMicros)]
        for limit in limits {
            switch limit.kind {
            case .bucket:
                // The decision script's arguments, the dimension in the fourth place: a bucket that
                // counts tokens or cost is read uncapped (it may be in debt).
                arguments.append(contentsOf: limit.scriptArgumentBytes.prefix(3))
                arguments.append(Array(limit.counts.scriptCode.utf8))
            case .quota:
                arguments.append(contentsOf: limit.scriptArgumentBytes)
            }
        }
        return Call(keys: limits.map { entry.stateKey(for: $0) }, arguments: arguments)
    }

    /// Decodes `inspect.lua`'s reply: the snapshots of `limits`, in order, and Redis's clock in ms.
    /// - Throws: ``MalformedReply`` when the reply does not match the limits.
    public static func snapshots(limits: [Limit], values: [Int64]) throws -> (nowMs: Int64, limits: [LimitSnapshot]) {
        guard values.count == 1 + 6 * limits.count else {
            throw MalformedReply(description: "expected \(1 + 6 * limits.count) integers, got \(values.count)")
        }
        let nowMs = values[0]
        var result: [LimitSnapshot] = []
        for (index, limit) in limits.enumerated() {
            let v = Array(values[(1 + index * 6)..<(7 + index * 6)])
            switch limit.kind {
            case .bucket(let bucket):
                // Tokens are not clamped: a bucket in debt reads negative (remaining is 0).
                result.append(
                    LimitSnapshot(
                        name: limit.name, kind: limit.kind, counts: limit.counts, limit: bucket.burst, remaining: Int(max(0, v[1])),
                        resetAfterMs: Int(max(0, v[2])), ttlMs: Int(v[3]), tokens: Double(v[0]) / 1000,
                        used: 0, extension_: 0, windowStart: 0, windowEnd: 0
                    )
                )
            case .quota:
                result.append(self.quotaSnapshot(limit: limit, nowMs: nowMs, values: v))
            }
        }
        return (nowMs, result)
    }

    /// How an operator changes a quota's current window.
    public enum QuotaChange: Sendable, Hashable {
        /// Grant this many more units (AWS UpdateUsage "add").
        case add(Int)
        /// Make this many units remain.
        case setRemaining(Int)
    }

    /// The `quota.lua` call for a key's quota.
    public static func adjustQuota(entry: KeyEntry, quota limit: Limit, change: QuotaChange, nowMicros: Int64? = nil) -> Call {
        guard case .quota = limit.kind else { preconditionFailure("adjustQuota needs a quota limit") }
        let (mode, amount): (String, Int) =
            switch change {
            case .add(let units): ("add", units)
            case .setRemaining(let units): ("set", units)
            }
        // The quota's own script arguments without their kind: limit, period, offset.
        return Call(
            keys: [entry.stateKey(for: limit)],
            arguments: [DecisionScript.clockArgument(nowMicros)] + limit.scriptArgumentBytes.dropFirst()
                + [Array(mode.utf8), Array(String(amount).utf8)]
        )
    }

    /// Decodes `quota.lua`'s reply.
    /// - Throws: ``MalformedReply`` when the reply is not seven integers.
    public static func adjusted(quota limit: Limit, values: [Int64]) throws -> LimitSnapshot {
        guard values.count == 7 else {
            throw MalformedReply(description: "expected 7 integers, got \(values.count)")
        }
        // Same layout as one quota of inspect.lua, behind the clock.
        return self.quotaSnapshot(limit: limit, nowMs: values[0], values: Array(values[1...]))
    }

    private static func quotaSnapshot(limit: Limit, nowMs: Int64, values v: [Int64]) -> LimitSnapshot {
        let used = Int(max(0, v[0]))
        let capacity = Int(max(0, v[1]))
        return LimitSnapshot(
            name: limit.name, kind: limit.kind, counts: limit.counts, limit: capacity, remaining: max(0, capacity - used),
            resetAfterMs: Int(max(0, v[3] * 1000 - nowMs)), ttlMs: Int(v[4]), tokens: 0, used: used,
            extension_: Int(v[5]), windowStart: v[2], windowEnd: v[3]
        )
    }
}
