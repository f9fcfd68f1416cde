import Prometheus
import SluiceCore
import SluiceRedis
import Synchronization

/// Every metric Sluice exports, by name and help text, in one place. The metrics live in a
/// Prometheus registry of the application's own (not a process-global one), served as
/// `/metrics` on the admin listener. Labels carry plan and limit names, never keys.
///
/// Every family carries `# HELP` and `# TYPE`, and every label set Sluice can tell in
/// advance is exported at 0 before it is first counted (``declare(plans:)``), so that
/// `rate()` and `increase()` see a series start at 0 instead of appearing mid-way.
public final class SluiceMetrics: RedisClientObserver, Sendable {
    /// Metric names.
    public enum Name {
        /// Decisions, by `plan`, `result` and deciding `limit`.
        public static let decisions = "sluice_decisions_total"
        /// Allowed decisions that left their most constraining limit under 20%, by `plan` and `limit`.
        public static let nearLimit = "sluice_near_limit_decisions_total"
        /// Requests that a shadow plan would have denied, by `plan` and `limit`.
        public static let shadowDenials = "sluice_shadow_denials_total"
        /// Decisions made without Redis, by `plan` and `outcome` (`allowed` fail-open, `unavailable` fail-closed).
        public static let degraded = "sluice_backend_degraded_decisions_total"
        /// Time from a decision request's body to its answer, by `endpoint`.
        public static let checkDuration = "sluice_check_duration_seconds"
        /// Time from handing a command to the Redis client to its reply.
        public static let redisDuration = "sluice_redis_command_duration_seconds"
        /// Redis command failures, by `kind` (timeout, unavailable, server_error, ...).
        public static let redisErrors = "sluice_redis_errors_total"
        /// Redis commands written and not yet answered (sampled at scrape).
        public static let redisPending = "sluice_redis_pending_commands"
        /// Redis connections re-established after a loss.
        public static let redisReconnects = "sluice_redis_reconnects_total"
        /// Redis Cluster redirects and retries, by `kind` (moved, ask, retry).
        public static let clusterRedirects = "sluice_redis_cluster_redirects_total"
        /// Config reloads, by `result` (success, failure).
        public static let configReloads = "sluice_config_reloads_total"
        /// Decisions answered from the local over-limit cache.
        public static let cacheHits = "sluice_over_limit_cache_hits_total"
        /// Entries in the over-limit cache (sampled at scrape).
        public static let cacheEntries = "sluice_over_limit_cache_entries"
        /// Runtime API keys known to this instance (sampled at scrape).
        public static let runtimeKeys = "sluice_runtime_keys"
        /// Reservations, by `plan` and `event` (opened, settled, expired, cancelled).
        public static let reservations = "sluice_reservations_total"
        /// Tokens of settled reservations against their estimates, by `plan` and `kind`
        /// (refunded: estimated and not used; overrun: used beyond the estimate).
        public static let reservationTokens = "sluice_reservation_tokens_total"
    }

    /// Reservation events, for ``Name/reservations``.
    public enum ReservationEvent: String, Sendable, CaseIterable {
        case opened
        case settled
        case expired
        case cancelled
    }

    /// The `# HELP` text of each metric, by name. One text per name: the registry refuses
    /// two different texts for one name.
    public static let help: [String: String] = [
        Name.decisions: "Decisions made, by plan, result and the limit that decided (the most constraining one when allowed).",
        Name.nearLimit: "Allowed decisions that left their most constraining limit under 20% of its capacity.",
        Name.shadowDenials: "Requests that a shadow plan would have denied, by the limit that would have denied.",
        Name.degraded: "Decisions made without Redis: allowed (the plan fails open) or unavailable (it fails closed, 503).",
        Name.checkDuration: "Seconds from a decision request's body to its answer, by endpoint.",
        Name.redisDuration: "Seconds from handing a command to the Redis client to its reply.",
        Name.redisErrors: "Redis commands that failed, by kind of failure.",
        Name.redisPending: "Redis commands in flight or waiting for a connection, sampled at scrape.",
        Name.redisReconnects: "Redis connections re-established after a loss.",
        Name.clusterRedirects: "Redis Cluster commands redirected (MOVED, ASK) or sent again after a wait (TRYAGAIN, CLUSTERDOWN, a master without a connection), by kind.",
        Name.configReloads: "Config reloads (SIGHUP or the admin API), by result.",
        Name.reservations: "Reservations opened, settled, expired (counted at their estimate when a later call on the key reclaims them) and cancelled, by plan.",
        Name.reservationTokens: "Total tokens of settled reservations against their estimates: refunded (estimated, not used) and overrun (used beyond the estimate), by plan.",
        Name.cacheHits: "Decisions answered from the local over-limit cache, without Redis.",
        Name.cacheEntries: "Entries in the local over-limit cache, sampled at scrape.",
        Name.runtimeKeys: "Runtime API keys this instance knows, sampled at scrape.",
    ]

    /// The result label of a decision.
    public enum Result: String, Sendable {
        case allowed
        case denied
        case shadowDenied = "shadow_denied"
        case degraded
        case unavailable
        case unknownKey = "unknown_key"
    }

    /// Decision endpoints, for the latency histogram's `endpoint` label.
    public enum Endpoint: String, Sendable, CaseIterable {
        case check
        case batch
        case auth
        case reserve
        case settle
    }

    /// Every `kind` a Redis failure can be counted under: the client's error codes, an
    /// error reply from Redis, anything else.
    public static let redisErrorKinds: [String] =
        [
            SluiceRedisError.Code.timeout, .connectionClosed, .unavailable, .tooManyPending, .protocolError, .handshakeFailed,
            .outOfMemory, .shutdown,
        ].map(\.description) + ["server_error", "other"]

    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let counters = Mutex<[CounterKey: Counter]>([:])
    /// The per-decision counters, by keys that hash existing strings: no allocation per
    /// decision once a series exists.
    private let decisionCounters = Mutex<[DecisionKey: Counter]>([:])
    /// The plans whose label sets were last declared, so a scrape without a reload in
    /// between declares nothing.
    private let declared = Mutex<Set<Plan>>([])
    private let timers: [String: DurationHistogram]
    private let redisDuration: DurationHistogram
    private let reconnects: Counter
    private let cacheHitCounter: Counter
    private let redisPendingGauge: Gauge
    private let cacheEntriesGauge: Gauge
    private let runtimeKeysGauge: Gauge

    private struct CounterKey: Hashable {
        let name: String
        let labels: [String]
    }

    private struct DecisionKey: Hashable {
        enum Series: Hashable {
            case decisions(Result)
            case nearLimit
            case shadowDenials
            case degraded(String)
        }
        let series: Series
        let plan: String
        let limit: String
    }

    /// Creates the metrics over a fresh registry, every label set that does not depend on
    /// the config already at 0.
    public init() {
        let registry = PrometheusCollectorRegistry()
        let latencyBuckets: [Duration] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        ]
        self.registry = registry
        var timers: [String: DurationHistogram] = [:]
        for endpoint in Endpoint.allCases {
            timers[endpoint.rawValue] = registry.makeDurationHistogram(
                descriptor: Self.descriptor(Name.checkDuration), labels: [("endpoint", endpoint.rawValue)], buckets: latencyBuckets
            )
        }
        self.timers = timers
        self.redisDuration = registry.makeDurationHistogram(descriptor: Self.descriptor(Name.redisDuration), buckets: latencyBuckets)
        self.reconnects = registry.makeCounter(descriptor: Self.descriptor(Name.redisReconnects))
        self.cacheHitCounter = registry.makeCounter(descriptor: Self.descriptor(Name.cacheHits))
        self.redisPendingGauge = registry.makeGauge(descriptor: Self.descriptor(Name.redisPending))
        self.cacheEntriesGauge = registry.makeGauge(descriptor: Self.descriptor(Name.cacheEntries))
        self.runtimeKeysGauge = registry.makeGauge(descriptor: Self.descriptor(Name.runtimeKeys))
        for result in ["success", "failure"] {
            _ = self.counter(Name.configReloads, [("result", result)])
        }
        for kind in Self.redisErrorKinds {
            _ = self.counter(Name.redisErrors, [("kind", kind)])
        }
        _ = self.decisionCounter(DecisionKey(series: .decisions(.unknownKey), plan: "", limit: ""))
    }

    private static func help(_ name: String) -> String {
        self.help[name] ?? ""
    }

    /// A metric's name with its help text (no unit suffix: the names carry theirs).
    private static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: Self.help(name))
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> Counter {
        let key = CounterKey(name: name, labels: labels.map { $0.0 + "=" + $0.1 })
        return self.counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = self.registry.makeCounter(descriptor: Self.descriptor(name), labels: labels)
            counters[key] = counter
            return counter
        }
    }

    /// The counter of a decision series, made (at 0) the first time it is asked for.
    private func decisionCounter(_ key: DecisionKey) -> Counter {
        self.decisionCounters.withLock { counters in
            if let counter = counters[key] {
                return counter
            }
            let name: String
            let labels: [(String, String)]
            switch key.series {
            case .decisions(let result):
                (name, labels) = (Name.decisions, [("plan", key.plan), ("result", result.rawValue), ("limit", key.limit)])
            case .nearLimit:
                (name, labels) = (Name.nearLimit, [("plan", key.plan), ("limit", key.limit)])
            case .shadowDenials:
                (name, labels) = (Name.shadowDenials, [("plan", key.plan), ("limit", key.limit)])
            case .degraded(let outcome):
                (name, labels) = (Name.degraded, [("plan", key.plan), ("outcome", outcome)])
            }
            let counter = self.registry.makeCounter(descriptor: Self.descriptor(name), labels: labels)
            counters[key] = counter
            return counter
        }
    }

    private func increment(_ key: DecisionKey) {
        self.decisionCounter(key).increment()
    }

    /// Exports, at 0, every decision series the plans can produce that does not exist yet:
    /// per plan, each of its limits as the deciding limit of an allowed decision, of a denial
    /// (a shadow denial in a shadow plan) and of a near-limit decision, and the backend
    /// outcome its `on_backend_error` policy gives. Series of plans no longer configured
    /// stay, with their counts. Cheap when the plans are those of the last call.
    /// - Parameter plans: the plans of the config in force.
    public func declare<Plans: Sequence>(plans: Plans) where Plans.Element == Plan {
        let plans = Set(plans)
        let isNew = self.declared.withLock { declared in
            guard declared != plans else { return false }
            declared = plans
            return true
        }
        guard isNew else { return }
        for plan in plans {
            var limits = plan.allLimits.map(\.name)
            if plan.concurrency != nil {
                limits.append(ConcurrencyLimit.name)
            }
            for event in ReservationEvent.allCases {
                _ = self.counter(Name.reservations, [("plan", plan.name), ("event", event.rawValue)])
            }
            for kind in ["refunded", "overrun"] {
                _ = self.counter(Name.reservationTokens, [("plan", plan.name), ("kind", kind)])
            }
            if plan.throttle == nil && plan.quota == nil && plan.namedLimits.isEmpty {
                // A request no route of the plan matches is allowed with no limit at all.
                limits.append("")
            }
            for limit in limits {
                _ = self.decisionCounter(DecisionKey(series: .decisions(.allowed), plan: plan.name, limit: limit))
                guard !limit.isEmpty else { continue }
                _ = self.decisionCounter(DecisionKey(series: .nearLimit, plan: plan.name, limit: limit))
                if plan.shadow {
                    _ = self.decisionCounter(DecisionKey(series: .decisions(.shadowDenied), plan: plan.name, limit: limit))
                    _ = self.decisionCounter(DecisionKey(series: .shadowDenials, plan: plan.name, limit: limit))
                } else {
                    _ = self.decisionCounter(DecisionKey(series: .decisions(.denied), plan: plan.name, limit: limit))
                }
            }
            switch plan.onBackendError {
            case .allow:
                _ = self.decisionCounter(DecisionKey(series: .decisions(.degraded), plan: plan.name, limit: ""))
                _ = self.decisionCounter(DecisionKey(series: .degraded("allowed"), plan: plan.name, limit: ""))
            case .deny:
                _ = self.decisionCounter(DecisionKey(series: .decisions(.unavailable), plan: plan.name, limit: ""))
                _ = self.decisionCounter(DecisionKey(series: .degraded("unavailable"), plan: plan.name, limit: ""))
            }
        }
    }

    /// Counts one decision (and, for an allowed one near its limit, a near-limit decision).
    public func record(_ decision: Decision) {
        let plan = decision.plan ?? ""
        let result: Result
        let limit: String
        if decision.plan == nil {
            (result, limit) = (.unknownKey, "")
        } else if decision.degraded {
            (result, limit) = (.degraded, "")
        } else if let shadow = decision.shadowDeniedBy {
            (result, limit) = (.shadowDenied, shadow)
            self.increment(DecisionKey(series: .shadowDenials, plan: plan, limit: shadow))
        } else if let deniedBy = decision.deniedBy {
            (result, limit) = (.denied, deniedBy)
        } else {
            let chosen = Decision.mostConstraining(decision.limits)
            (result, limit) = (.allowed, chosen?.name ?? "")
            if let chosen, chosen.limit > 0, chosen.remaining * 5 < chosen.limit {
                self.increment(DecisionKey(series: .nearLimit, plan: plan, limit: chosen.name))
            }
        }
        if decision.degraded {
            self.increment(DecisionKey(series: .degraded("allowed"), plan: plan, limit: ""))
        }
        self.increment(DecisionKey(series: .decisions(result), plan: plan, limit: limit))
    }

    /// Counts a decision Redis could not make for a plan that fails closed.
    public func recordUnavailable(plan: String) {
        self.increment(DecisionKey(series: .degraded("unavailable"), plan: plan, limit: ""))
        self.increment(DecisionKey(series: .decisions(.unavailable), plan: plan, limit: ""))
    }

    /// Counts reservation events of a plan.
    public func recordReservations(_ event: ReservationEvent, plan: String, count: Int = 1) {
        guard count > 0 else { return }
        self.counter(Name.reservations, [("plan", plan), ("event", event.rawValue)]).increment(by: Int64(count))
    }

    /// Counts expired reservations that a call reclaimed.
    public func recordReservationsExpired(plan: String, count: Int) {
        self.recordReservations(.expired, plan: plan, count: count)
    }

    /// Counts tokens refunded and overrun by a settle.
    public func recordSettledTokens(plan: String, refunded: Int, overrun: Int) {
        if refunded > 0 { self.counter(Name.reservationTokens, [("plan", plan), ("kind", "refunded")]).increment(by: Int64(refunded)) }
        if overrun > 0 { self.counter(Name.reservationTokens, [("plan", plan), ("kind", "overrun")]).increment(by: Int64(overrun)) }
    }

    /// Counts a decision answered from the over-limit cache.
    public func recordCacheHit() {
        self.cacheHitCounter.increment()
    }

    /// Records how long a decision endpoint took.
    public func recordCheck(_ endpoint: Endpoint, since start: ContinuousClock.Instant) {
        self.timers[endpoint.rawValue]?.record(ContinuousClock.now - start)
    }

    /// Counts a config reload.
    public func configReloaded(success: Bool) {
        self.counter(Name.configReloads, [("result", success ? "success" : "failure")]).increment()
    }

    /// Sets the values sampled at scrape time.
    public func sample(pendingRedisCommands: Int, cacheEntries: Int, runtimeKeys: Int) {
        self.redisPendingGauge.set(Int64(pendingRedisCommands))
        self.cacheEntriesGauge.set(Int64(cacheEntries))
        self.runtimeKeysGauge.set(Int64(runtimeKeys))
    }

    /// The registry in Prometheus's text format.
    public func render() -> [UInt8] {
        self.registry.emitToBuffer()
    }

    // MARK: RedisClientObserver

    public func commandCompleted(duration: Duration, errorKind: String?) {
        self.redisDuration.record(duration)
        if let errorKind {
            self.counter(Name.redisErrors, [("kind", errorKind)]).increment()
        }
    }

    public func reconnected() {
        self.reconnects.increment()
    }

    /// Makes the cluster redirect series (at 0), for a client on a cluster.
    public func expectClusterRedirects() {
        for kind in ["moved", "ask", "retry"] {
            _ = self.counter(Name.clusterRedirects, [("kind", kind)])
        }
    }

    public func clusterRedirected(kind: String) {
        self.counter(Name.clusterRedirects, [("kind", kind)]).increment()
    }
}
