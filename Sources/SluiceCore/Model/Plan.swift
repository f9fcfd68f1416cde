/// What a plan does when Redis cannot answer.
public enum BackendErrorPolicy: String, Sendable, Hashable {
    /// Answer 503 `backend_unavailable` (fail closed).
    case deny
    /// Allow, marked `"degraded": true` (fail open).
    case allow
}

/// A route's own throttle within a plan.
public struct RouteRule: Sendable, Hashable {
    /// The route key as written in the config (`"POST /v1/predict"`); names the limit.
    public let pattern: String
    /// The route it matches.
    public let route: RequestRoute
    /// Its bucket, named `route:<pattern>`.
    public let limit: Limit
    /// true: applies on top of the plan throttle; false: replaces it on this route.
    public let additional: Bool

    /// Creates a rule.
    public init(pattern: String, route: RequestRoute, bucket: TokenBucket, additional: Bool) {
        self.pattern = pattern
        self.route = route
        self.additional = additional
        self.limit = Limit(
            name: "route:" + pattern,
            kind: .bucket(bucket),
            keySuffix: StateKeys.routeSuffix(normalizedRoute: route.description)
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
    /// Route rules by the route they match.
    public let routes: [RequestRoute: RouteRule]
    /// What to do when Redis cannot answer.
    public let onBackendError: BackendErrorPolicy

    private let defaultLimits: [Limit]
    private let limitsByRoute: [RequestRoute: [Limit]]

    /// Creates a plan and works out, once, the limits of every route.
    public init(
        name: String,
        throttle: TokenBucket?,
        quota: Quota?,
        routes: [RouteRule],
        onBackendError: BackendErrorPolicy
    ) {
        self.name = name
        self.throttle = throttle.map { Limit(name: "throttle", kind: .bucket($0), keySuffix: StateKeys.throttleSuffix) }
        self.quota = quota.map { Limit(name: "quota", kind: .quota($0), keySuffix: StateKeys.quotaSuffix) }
        self.onBackendError = onBackendError
        var byRoute: [RequestRoute: RouteRule] = [:]
        for rule in routes { byRoute[rule.route] = rule }
        self.routes = byRoute

        self.defaultLimits = [self.throttle, self.quota].compactMap { $0 }
        var limitsByRoute: [RequestRoute: [Limit]] = [:]
        for rule in routes {
            var limits: [Limit] = []
            if rule.additional, let throttle = self.throttle { limits.append(throttle) }
            limits.append(rule.limit)
            if let quota = self.quota { limits.append(quota) }
            limitsByRoute[rule.route] = limits
        }
        self.limitsByRoute = limitsByRoute
    }

    /// The limits that apply to a request on `route` (nil: no route given), in a fixed order:
    /// throttle (or the route's own), route (when additional), quota.
    public func limits(for route: RequestRoute?) -> [Limit] {
        if let route, let limits = self.limitsByRoute[route] {
            return limits
        }
        return self.defaultLimits
    }
}
