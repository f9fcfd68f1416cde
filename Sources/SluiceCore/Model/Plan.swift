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
    public init(key: String, pattern: RoutePattern, bucket: TokenBucket, additional: Bool, unit: LimitUnit = .requests) {
        self.key = key
        self.pattern = pattern
        self.additional = additional
        self.limit = Limit(
            name: Limit.routeName(key),
            kind: .bucket(bucket),
            keySuffix: StateKeys.routeSuffix(normalizedRoute: pattern.description),
            unit: unit
        )
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

    private let defaultLimits: [Limit]
    private let limitsByRule: [[Limit]]

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
        usageRetentionDays: Int = 0
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
        self.defaultLimits = [throttleLimit, quotaLimit].compactMap { $0 }
        self.limitsByRule = routes.map { rule in
            var limits: [Limit] = []
            if rule.additional, let throttleLimit { limits.append(throttleLimit) }
            limits.append(rule.limit)
            if let quotaLimit { limits.append(quotaLimit) }
            return limits
        }
    }

    /// The rule that governs a route: the most specific matching pattern (by path: exact >
    /// parameter > wildcard, segment by segment; then a named method over `*`).
    public func rule(for route: RequestRoute) -> RouteRule? {
        self.ruleIndex(for: route).map { self.routes[$0] }
    }

    private func ruleIndex(for route: RequestRoute) -> Int? {
        var best: Int?
        for index in self.routes.indices where self.routes[index].pattern.matches(method: route.method, segments: route.segments) {
            if let current = best, self.routes[index].pattern.isMoreSpecific(than: self.routes[current].pattern) != true {
                continue
            }
            best = index
        }
        return best
    }

    /// The limits that apply to a request on `route` (nil: no route given), in a fixed order:
    /// throttle (or the route's own), route (when additional), quota.
    public func limits(for route: RequestRoute?) -> [Limit] {
        self.limits(forRuleAt: route.flatMap { self.ruleIndex(for: $0) })
    }

    /// Every limit of the plan, each once: throttle, quota, then route buckets in config order.
    public var allLimits: [Limit] {
        [self.throttle, self.quota].compactMap { $0 } + self.routes.map(\.limit)
    }

    private func limits(forRuleAt index: Int?) -> [Limit] {
        if let index {
            return self.limitsByRule[index]
        }
        return self.defaultLimits
    }
}
