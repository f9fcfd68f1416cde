/// The inputs and outputs of the decision script (`decide.lua`, beside this file): what to
/// send for one request, and how to read its reply.
public enum DecisionScript {
    /// The decision script: `prelude.lua` + `decide.lua`.
    public static let script = LuaScript(name: "decide", body: PackageResources.decide_lua)

    /// KEYS and ARGV of one script call, as the bytes sent to Redis, assembled from
    /// bytes built once per config load.
    public struct Call: Sendable, Hashable {
        /// The script's KEYS (for decide.lua: one state key per limit, then the usage record's
        /// key when usage is recorded).
        public let keys: [[UInt8]]
        /// The script's ARGV (for decide.lua: clock override, cost, usage retention, then four
        /// arguments per limit).
        public let arguments: [[UInt8]]
    }

    private static let liveClock: [UInt8] = Array("0".utf8)

    /// The clock argument every script takes: a test's override in microseconds, or "0" (Redis TIME).
    static func clockArgument(_ nowMicros: Int64?) -> [UInt8] {
        nowMicros.map { Array(String($0).utf8) } ?? self.liveClock
    }

    /// The call for one request.
    /// - Parameters:
    ///   - entry: the API key's entry (its state prefix).
    ///   - limits: the limits that apply, in order; not empty.
    ///   - cost: units to consume (0 = peek).
    ///   - nowMicros: a clock override for tests; nil reads Redis `TIME`.
    public static func call(entry: KeyEntry, limits: [Limit], cost: Int, nowMicros: Int64? = nil) -> Call {
        var keys: [[UInt8]] = []
        keys.reserveCapacity(limits.count + 1)
        let plan = entry.plan
        var arguments: [[UInt8]] = [self.clockArgument(nowMicros), Array(String(cost).utf8), plan.usageArgumentBytes]
        arguments.reserveCapacity(3 + 4 * limits.count)
        for limit in limits {
            keys.append(entry.stateKey(for: limit))
            arguments.append(contentsOf: limit.scriptArgumentBytes)
        }
        // A plan with a quota counts it on every route; without one, its retention is 0.
        if plan.usageRetentionDays > 0 {
            keys.append(entry.usageKey)
        }
        return Call(keys: keys, arguments: arguments)
    }

    /// A reply that is not what the script returns.
    public struct MalformedReply: Error, Sendable, CustomStringConvertible {
        public let description: String

        /// Creates the error.
        public init(description: String) { self.description = description }
    }

    /// Integers per limit in the script's reply.
    static let valuesPerLimit = 5

    /// The script's reply, decoded.
    public struct Result: Sendable, Hashable {
        /// Whether every limit admitted (and so all were consumed).
        public let allowed: Bool
        /// Each limit's state, in call order.
        public let limits: [LimitState]
    }

    /// Decodes the script's integer array.
    /// - Throws: ``MalformedReply`` if the array does not match the limits.
    public static func result(limits: [Limit], values: [Int64]) throws -> Result {
        guard values.count == 2 + Self.valuesPerLimit * limits.count else {
            throw MalformedReply(description: "expected \(2 + Self.valuesPerLimit * limits.count) integers, got \(values.count)")
        }
        // Whatever Redis returns, keep values where later arithmetic cannot overflow.
        let ceiling: Int64 = 1 << 52
        func clamp(_ value: Int64) -> Int { Int(min(max(value, -1), ceiling)) }
        var states: [LimitState] = []
        states.reserveCapacity(limits.count)
        for (index, limit) in limits.enumerated() {
            let base = 2 + index * Self.valuesPerLimit
            let window: Int
            let capacity = max(0, clamp(values[base + 4]))
            let policyQuota: Int
            switch limit.kind {
            case .bucket(let bucket): (window, policyQuota) = (bucket.policyWindowSeconds, bucket.policyQuota)
            case .quota: (window, policyQuota) = (max(0, clamp(values[base + 3])), capacity)
            }
            states.append(
                LimitState(
                    name: limit.name,
                    // A quota's units this window include an extension an operator granted.
                    limit: capacity,
                    remaining: max(0, clamp(values[base])),
                    resetAfterMs: max(0, clamp(values[base + 1])),
                    retryAfterMs: clamp(values[base + 2]),
                    windowSeconds: window,
                    unit: limit.unit,
                    policyQuota: policyQuota,
                    counts: limit.counts
                )
            )
        }
        return Result(allowed: values[0] == 1, limits: states)
    }

    /// The decision for a script reply.
    /// - Throws: ``MalformedReply`` if the array does not match the limits.
    public static func decision(plan: Plan, limits: [Limit], values: [Int64]) throws -> Decision {
        let result = try self.result(limits: limits, values: values)
        var decision = Decision.combine(plan: plan.name, allowed: result.allowed, limits: result.limits)
        decision.nowMs = values[1]
        return decision
    }
}
