/// What a plan does when Redis cannot answer.
public enum BackendErrorPolicy: String, Sendable, Hashable {
    /// Answer 503 `backend_unavailable` (fail closed).
    case deny
    /// Allow, marked `"degraded": true` (fail open).
    case allow
}

/// A route's own throttle within a plan.
public struct RouteRule: Sendable, Hashable {
    /// The route key as written in the config (`"POST /v1/models/{model}/predict"`); names the limit.
    public let key: String
    /// The compiled pattern.
    public let pattern: RoutePattern
    /// Its bucket, named `route:<key>` with the key escaped (``Limit/routeName(_:)``).
    public let limit: Limit
    /// true: applies on top of the plan throttle; false: replaces it on this route.
    public let additional: Bool

    /// Creates a rule.
    /// - Parameter stage: the API stage whose rule this is, in a plan that lists stages: the
    ///   bucket is then that stage's own (named and keyed with the stage), so the same path on
    ///   two stages is two buckets.
    public init(key: String, pattern: RoutePattern, bucket: TokenBucket, additional: Bool, unit: LimitUnit = .requests, stage: String? = nil) {
        self.key = key
        self.pattern = pattern
        self.additional = additional
        self.limit = Limit(
            name: Limit.routeName(key, stage: stage),
            kind: .bucket(bucket),
            keySuffix: StateKeys.routeSuffix(normalizedRoute: stage.map { "\($0) \(pattern.description)" } ?? pattern.description),
            unit: unit
        )
    }

    /// The same rule on one stage of a plan that lists stages.
    public func on(stage: String) -> RouteRule {
        guard case .bucket(let bucket) = self.limit.kind else { return self }
        return RouteRule(key: self.key, pattern: self.pattern, bucket: bucket, additional: self.additional, unit: self.limit.unit, stage: stage)
    }
}

/// The limits a plan applies to one request, or why it applies none.
public enum ApplicableLimits: Sendable, Hashable {
    /// These limits, in script order.
    case limits([Limit])
    /// The plan lists API stages and the request's is not one of them.
    case stageNotInPlan
    /// The plan lists API stages and the request named none.
    case missingStage
}

/// The route rules of one set (a plan's, or one of its stages'), with each rule's limits
/// worked out once.
struct RouteRules: Sendable, Hashable {
    let routes: [RouteRule]
    let limitsByRule: [[Limit]]

    init(routes: [RouteRule], throttle: Limit?, quota: Limit?, named: [Limit]) {
        self.routes = routes
        self.limitsByRule = routes.map { rule in
            var limits: [Limit] = []
            if rule.additional, let throttle { limits.append(throttle) }
            limits.append(rule.limit)
            if let quota { limits.append(quota) }
            return limits + named
        }
    }

    /// The most specific matching rule (by path: exact > parameter > wildcard, segment by
    /// segment; then a named method over `*`).
    func ruleIndex(for route: RequestRoute) -> Int? {
        var best: Int?
        for index in self.routes.indices where self.routes[index].pattern.matches(method: route.method, segments: route.segments) {
            if let current = best, self.routes[index].pattern.isMoreSpecific(than: self.routes[current].pattern) != true {
                continue
            }
            best = index
        }
        return best
    }
}

/// A usage plan: throttle, quota and per-route throttles, as in AWS API Gateway.
public struct Plan: Sendable, Hashable {
    /// The plan's name.
    public let name: String
    /// The plan-wide throttle, named `throttle`.
    public let throttle: Limit?
    /// The calendar quota, named `quota`.
    public let quota: Limit?
    /// Route rules, in config order.
    public let routes: [RouteRule]
    /// What to do when Redis cannot answer.
    public let onBackendError: BackendErrorPolicy
    /// Extra header sets to send besides the IETF fields.
    public let headers: Set<HeaderStyle>
    /// A shadow plan never denies: a request it would deny is allowed, consumes nothing
    /// and is marked `shadow_denied`.
    public let shadow: Bool
    /// Days of per-day usage the decision script keeps for keys of this plan; 0 when the
    /// plan has no quota or usage recording is off.
    public let usageRetentionDays: Int
    /// `usageRetentionDays` as the script argument, built once.
    let usageArgumentBytes: [UInt8]
    /// The API stages the plan covers, each with its route rules (the plan's `routes` and the
    /// stage's own, all as the stage's buckets); nil: every stage, with the plan's routes.
    public let stages: [String: [RouteRule]]?
    /// The plan's named limits (config `limits`), each counting one dimension; they apply to
    /// every request of the key, after the throttle, route and quota.
    public let namedLimits: [Limit]
    /// Requests in flight across the fleet, held as leases by reservations; nil: no limit.
    public let concurrency: ConcurrencyLimit?
    /// Prices by model (`"*"`: any other model); empty when the plan lists none.
    public let prices: [String: ModelPrice]
    /// Whether the plan's decisions go through the ledger script (token limits, concurrency),
    /// not the plain decision script.
    public let usesLedger: Bool
    /// Whether a limit of the plan counts cost units (a request then needs a priced model).
    public let countsCost: Bool
    /// The day boundary of the plan's usage record, in seconds after 00:00 UTC: its quota's
    /// offset, else its first named quota's, else 0.
    public let usageOffsetSeconds: Int
    /// Days of per-day usage the ledger script keeps (requests and tokens); 0: none.
    public let ledgerUsageRetentionDays: Int

    private let defaultLimits: [Limit]
    private let planRules: RouteRules
    private let stageRules: [String: RouteRules]

    /// Creates a plan and works out, once, the limits of every route.
    public init(
        name: String,
        throttle: TokenBucket?,
        quota: Quota?,
        routes: [RouteRule],
        onBackendError: BackendErrorPolicy,
        throttleUnit: LimitUnit = .requests,
        quotaUnit: LimitUnit = .requests,
        headers: Set<HeaderStyle> = [.ietf],
        shadow: Bool = false,
        usageRetentionDays: Int = 0,
        stages: [String: [RouteRule]]? = nil,
        namedLimits: [Limit] = [],
        concurrency: ConcurrencyLimit? = nil,
        prices: [String: ModelPrice] = [:]
    ) {
        let throttleLimit = throttle.map {
            Limit(name: "throttle", kind: .bucket($0), keySuffix: StateKeys.throttleSuffix, unit: throttleUnit)
        }
        let quotaLimit = quota.map { Limit(name: "quota", kind: .quota($0), keySuffix: StateKeys.quotaSuffix, unit: quotaUnit) }
        self.name = name
        self.throttle = throttleLimit
        self.quota = quotaLimit
        self.onBackendError = onBackendError
        self.routes = routes
        self.headers = headers
        self.shadow = shadow
        self.usageRetentionDays = quota == nil ? 0 : max(0, usageRetentionDays)
        self.usageArgumentBytes = Array(String(self.usageRetentionDays).utf8)
        self.namedLimits = namedLimits
        self.concurrency = concurrency
        self.prices = prices
        self.usesLedger = !namedLimits.isEmpty || concurrency != nil
        self.countsCost = namedLimits.contains { $0.counts == .cost }
        var usageOffset = quota.map { $0.offsetHours * 3600 }
        for limit in namedLimits where usageOffset == nil {
            if case .quota(let named) = limit.kind { usageOffset = named.offsetHours * 3600 }
        }
        self.usageOffsetSeconds = usageOffset ?? 0
        let hasQuota = quota != nil || namedLimits.contains { if case .quota = $0.kind { return true } else { return false } }
        self.ledgerUsageRetentionDays = hasQuota || !namedLimits.isEmpty ? max(0, usageRetentionDays) : 0
        self.defaultLimits = [throttleLimit, quotaLimit].compactMap { $0 } + namedLimits
        self.planRules = RouteRules(routes: routes, throttle: throttleLimit, quota: quotaLimit, named: namedLimits)
        self.stages = stages
        self.stageRules = (stages ?? [:]).mapValues { RouteRules(routes: $0, throttle: throttleLimit, quota: quotaLimit, named: namedLimits) }
    }

    /// The price of `model` on this plan: its own, else `"*"`'s; nil when neither is listed.
    /// A plan without cost limits charges nothing for any model.
    public func price(for model: String?) -> ModelPrice? {
        guard self.countsCost else { return .free }
        if let model, let price = self.prices[model] { return price }
        return self.prices["*"]
    }

    /// The rule that governs a route among the plan's own routes: the most specific matching
    /// pattern (by path: exact > parameter > wildcard, segment by segment; then a named method
    /// over `*`).
    public func rule(for route: RequestRoute) -> RouteRule? {
        self.planRules.ruleIndex(for: route).map { self.routes[$0] }
    }

    /// The limits that apply to a request on `route` (nil: no route given) of a plan without
    /// stages, in a fixed order: throttle (or the route's own), route (when additional), quota.
    public func limits(for route: RequestRoute?) -> [Limit] {
        Self.limits(in: self.planRules, for: route, default: self.defaultLimits)
    }

    /// The limits that apply to a request on `route` and API `stage`: a plan without stages
    /// ignores the stage; one with stages needs a stage it lists, whose rules then apply. The
    /// plan's throttle and quota span all its stages.
    public func limits(for route: RequestRoute?, stage: String?) -> ApplicableLimits {
        guard self.stages != nil else { return .limits(self.limits(for: route)) }
        guard let stage else { return .missingStage }
        guard let rules = self.stageRules[stage] else { return .stageNotInPlan }
        return .limits(Self.limits(in: rules, for: route, default: self.defaultLimits))
    }

    /// Every limit of the plan, each once: throttle, quota, then route buckets in config order
    /// (a plan with stages: each stage's, stages by name).
    public var allLimits: [Limit] {
        let routeLimits: [Limit]
        if let stages = self.stages {
            routeLimits = stages.sorted { $0.key < $1.key }.flatMap { $0.value.map(\.limit) }
        } else {
            routeLimits = self.routes.map(\.limit)
        }
        return [self.throttle, self.quota].compactMap { $0 } + routeLimits + self.namedLimits
    }

    private static func limits(in rules: RouteRules, for route: RequestRoute?, default defaultLimits: [Limit]) -> [Limit] {
        if let route, let index = rules.ruleIndex(for: route) {
            return rules.limitsByRule[index]
        }
        return defaultLimits
    }
}
