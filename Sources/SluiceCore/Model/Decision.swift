/// The state of one limit after a decision, as the API reports it.
public struct LimitState: Sendable, Hashable {
    /// `throttle`, `quota` or `route:<pattern>`.
    public let name: String
    /// Capacity: burst or quota units per window.
    public let limit: Int
    /// Whole units left after this decision.
    public let remaining: Int
    /// Milliseconds until the limit is full again (a quota: until its window ends).
    public let resetAfterMs: Int
    /// 0 if this limit admits the request; else the wait until it would; -1 if it never will.
    public let retryAfterMs: Int
    /// The policy window `w` of the rate-limit headers, in seconds.
    public let windowSeconds: Int
    /// The policy quota `q` of the rate-limit headers over `windowSeconds`: a quota's limit, or
    /// what a bucket lets through in its window (``TokenBucket/policyQuota``).
    public let policyQuota: Int
    /// What the limit counts.
    public let unit: LimitUnit
    /// Which dimension the limit counts (``Limit/counts``): for a token limit, input, output or
    /// total tokens, which Anthropic's headers tell apart; `.requests` for every other limit.
    public let counts: Dimension

    /// Creates a limit state.
    public init(
        name: String, limit: Int, remaining: Int, resetAfterMs: Int, retryAfterMs: Int, windowSeconds: Int,
        unit: LimitUnit = .requests, policyQuota: Int? = nil, counts: Dimension = .requests
    ) {
        self.policyQuota = policyQuota ?? limit
        self.name = name
        self.unit = unit
        self.counts = counts
        self.limit = limit
        self.remaining = remaining
        self.resetAfterMs = resetAfterMs
        self.retryAfterMs = retryAfterMs
        self.windowSeconds = windowSeconds
    }
}

/// Why a request can never pass as it is.
public enum DenialReason: String, Sendable, Hashable {
    /// The cost is larger than a limit's capacity.
    case costExceedsCapacity = "cost_exceeds_capacity"
    /// The API key is not known.
    case unknownAPIKey = "unknown_api_key"
    /// The key's plan lists API stages, and the request's is not one of them.
    case stageNotInPlan = "stage_not_in_plan"
}

/// The answer to "may this key make this request now?".
public struct Decision: Sendable, Hashable {
    /// Whether the request may go ahead.
    public let allowed: Bool
    /// The key's plan; nil for an unknown key.
    public let plan: String?
    /// Capacity of the most constraining limit.
    public let limit: Int
    /// Units left in the most constraining limit after this decision.
    public let remaining: Int
    /// Milliseconds until the most constraining limit is full again.
    public let resetAfterMs: Int
    /// 0 when allowed; the wait until the same request could pass; -1 when it never can.
    public let retryAfterMs: Int
    /// The denying limit's name, `unknown_api_key`, or nil when allowed.
    public let deniedBy: String?
    /// Set when `retryAfterMs` is -1.
    public let reason: DenialReason?
    /// Every limit that applied, in order.
    public let limits: [LimitState]
    /// true when Redis could not answer and the plan fails open.
    public let degraded: Bool
    /// In a shadow plan, the limit that would have denied this (allowed) request.
    public let shadowDeniedBy: String?
    /// Redis's clock when the script decided (milliseconds since the epoch); nil for answers
    /// made without Redis. Headers that carry a reset as a time (Anthropic's) count from it.
    public var nowMs: Int64?

    /// Creates a decision.
    public init(
        allowed: Bool,
        plan: String?,
        limit: Int,
        remaining: Int,
        resetAfterMs: Int,
        retryAfterMs: Int,
        deniedBy: String?,
        reason: DenialReason?,
        limits: [LimitState],
        degraded: Bool = false,
        shadowDeniedBy: String? = nil
    ) {
        self.allowed = allowed
        self.plan = plan
        self.limit = limit
        self.remaining = remaining
        self.resetAfterMs = resetAfterMs
        self.retryAfterMs = retryAfterMs
        self.deniedBy = deniedBy
        self.reason = reason
        self.limits = limits
        self.degraded = degraded
        self.shadowDeniedBy = shadowDeniedBy
    }

    /// The answer of a shadow plan for this decision: a denial becomes an allowed request
    /// marked with the limit that would have denied it (nothing was consumed: a denied
    /// request never consumes). Unknown keys stay denied.
    public func shadowed() -> Decision {
        guard !self.allowed, self.reason != .unknownAPIKey, let deniedBy = self.deniedBy, let plan = self.plan else { return self }
        // Reported as an allowed answer is: the limit with the least remaining.
        let allowed = Decision.combine(plan: plan, allowed: true, limits: self.limits)
        return Decision(
            allowed: true, plan: plan, limit: allowed.limit, remaining: allowed.remaining, resetAfterMs: allowed.resetAfterMs,
            retryAfterMs: 0, deniedBy: nil, reason: nil, limits: self.limits, degraded: self.degraded, shadowDeniedBy: deniedBy
        )
    }

    /// The answer for a key Sluice does not know.
    public static let unknownKey = Decision(
        allowed: false, plan: nil, limit: 0, remaining: 0, resetAfterMs: 0, retryAfterMs: -1,
        deniedBy: DenialReason.unknownAPIKey.rawValue, reason: .unknownAPIKey, limits: []
    )

    /// The answer for a stage the key's plan does not cover (AWS answers 403): never passes.
    public static func stageNotInPlan(plan: String) -> Decision {
        Decision(
            allowed: false, plan: plan, limit: 0, remaining: 0, resetAfterMs: 0, retryAfterMs: -1,
            deniedBy: "stage", reason: .stageNotInPlan, limits: []
        )
    }

    /// The answer when no limit applies to the request (nothing is asked of Redis).
    public static func unlimited(plan: String) -> Decision {
        Decision(
            allowed: true, plan: plan, limit: 0, remaining: 0, resetAfterMs: 0, retryAfterMs: 0,
            deniedBy: nil, reason: nil, limits: []
        )
    }

    /// The answer when Redis cannot answer and the plan fails open.
    public static func degradedAllow(plan: String) -> Decision {
        Decision(
            allowed: true, plan: plan, limit: 0, remaining: 0, resetAfterMs: 0, retryAfterMs: 0,
            deniedBy: nil, reason: nil, limits: [], degraded: true
        )
    }

    /// The most constraining of some limit states: when any of them denies, the one with the
    /// longest wait (-1 as infinite); else the one with the least remaining. Nil if empty.
    public static func mostConstraining(_ states: [LimitState]) -> LimitState? {
        func wait(_ state: LimitState) -> Int { state.retryAfterMs < 0 ? Int.max : state.retryAfterMs }
        var denying: LimitState?
        var leastRemaining: LimitState?
        for state in states {
            if state.retryAfterMs != 0 {
                if denying == nil || wait(state) > wait(denying!) { denying = state }
            } else if leastRemaining == nil || state.remaining < leastRemaining!.remaining {
                leastRemaining = state
            }
        }
        return denying ?? leastRemaining
    }

    /// Combines the states of every limit into one decision.
    ///
    /// Most constraining: when denied, the denying limit with the longest wait (-1 counts
    /// as infinite; the first wins a tie); when allowed, the limit with the least remaining.
    public static func combine(plan: String, allowed: Bool, limits: [LimitState]) -> Decision {
        guard let chosen = self.mostConstraining(limits) else { return .unlimited(plan: plan) }
        if allowed {
            return Decision(
                allowed: true, plan: plan, limit: chosen.limit, remaining: chosen.remaining,
                resetAfterMs: chosen.resetAfterMs, retryAfterMs: 0, deniedBy: nil, reason: nil, limits: limits
            )
        }
        return Decision(
            allowed: false, plan: plan, limit: chosen.limit, remaining: chosen.remaining,
            resetAfterMs: chosen.resetAfterMs, retryAfterMs: chosen.retryAfterMs, deniedBy: chosen.name,
            reason: chosen.retryAfterMs < 0 ? .costExceedsCapacity : nil, limits: limits
        )
    }
}
