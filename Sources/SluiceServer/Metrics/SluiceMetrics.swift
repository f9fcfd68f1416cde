import CoreMetrics
import Prometheus
import SluiceCore
import SluiceRedis
import Synchronization

/// Every metric Sluice exports, by name, in one place. swift-metrics handles over a
/// Prometheus registry of the application's own (not the process-global one), served
/// as `/metrics` on the admin listener. Labels carry plan and limit names, never keys.
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
        /// Config reloads, by `result` (success, failure).
        public static let configReloads = "sluice_config_reloads_total"
        /// Decisions answered from the local over-limit cache.
        public static let cacheHits = "sluice_over_limit_cache_hits_total"
        /// Entries in the over-limit cache (sampled at scrape).
        public static let cacheEntries = "sluice_over_limit_cache_entries"
        /// Runtime API keys known to this instance (sampled at scrape).
        public static let runtimeKeys = "sluice_runtime_keys"
    }

    /// The result label of a decision.
    public enum Result: String, Sendable {
        case allowed
        case denied
        case shadowDenied = "shadow_denied"
        case degraded
        case unavailable
        case unknownKey = "unknown_key"
    }

    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let counters = Mutex<[CounterKey: CoreMetrics.Counter]>([:])
    /// The per-decision counters, by keys that hash existing strings: no allocation per
    /// decision once a series exists.
    private let decisionCounters = Mutex<[DecisionKey: CoreMetrics.Counter]>([:])
    private let timers: [String: CoreMetrics.Timer]
    private let redisDuration: CoreMetrics.Timer
    private let redisErrors = Mutex<[String: CoreMetrics.Counter]>([:])
    private let reconnects: CoreMetrics.Counter
    private let cacheHitCounter: CoreMetrics.Counter
    private let redisPendingGauge: CoreMetrics.Gauge
    private let cacheEntriesGauge: CoreMetrics.Gauge
    private let runtimeKeysGauge: CoreMetrics.Gauge

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

    /// Decision endpoints, for the latency histogram's `endpoint` label.
    public enum Endpoint: String, Sendable, CaseIterable {
        case check
        case batch
        case auth
    }

    /// Creates the metrics over a fresh registry.
    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Duration] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        ]
        factory.defaultDurationHistogramBuckets = latencyBuckets
        self.registry = registry
        self.factory = factory
        var timers: [String: CoreMetrics.Timer] = [:]
        for endpoint in Endpoint.allCases {
            timers[endpoint.rawValue] = CoreMetrics.Timer(
                label: Name.checkDuration, dimensions: [("endpoint", endpoint.rawValue)], factory: factory
            )
        }
        self.timers = timers
        self.redisDuration = CoreMetrics.Timer(label: Name.redisDuration, factory: factory)
        self.reconnects = CoreMetrics.Counter(label: Name.redisReconnects, factory: factory)
        self.cacheHitCounter = CoreMetrics.Counter(label: Name.cacheHits, factory: factory)
        self.redisPendingGauge = CoreMetrics.Gauge(label: Name.redisPending, factory: factory)
        self.cacheEntriesGauge = CoreMetrics.Gauge(label: Name.cacheEntries, factory: factory)
        self.runtimeKeysGauge = CoreMetrics.Gauge(label: Name.runtimeKeys, factory: factory)
        // Present from the start, so dashboards see zeros rather than gaps.
        for result in ["success", "failure"] {
            _ = self.counter(Name.configReloads, [("result", result)])
        }
        _ = self.redisErrorCounter("timeout")
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        let key = CounterKey(name: name, labels: labels.map { $0.0 + "=" + $0.1 })
        return self.counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(label: name, dimensions: labels, factory: self.factory)
            counters[key] = counter
            return counter
        }
    }

    private func redisErrorCounter(_ kind: String) -> CoreMetrics.Counter {
        self.redisErrors.withLock { counters in
            if let counter = counters[kind] { return counter }
            let counter = CoreMetrics.Counter(label: Name.redisErrors, dimensions: [("kind", kind)], factory: self.factory)
            counters[kind] = counter
            return counter
        }
    }

    private func increment(_ key: DecisionKey) {
        self.decisionCounters.withLock { counters in
            if let counter = counters[key] {
                counter.increment()
                return
            }
            let counter: CoreMetrics.Counter
            switch key.series {
            case .decisions(let result):
                counter = CoreMetrics.Counter(
                    label: Name.decisions, dimensions: [("plan", key.plan), ("result", result.rawValue), ("limit", key.limit)], factory: self.factory
                )
            case .nearLimit:
                counter = CoreMetrics.Counter(label: Name.nearLimit, dimensions: [("plan", key.plan), ("limit", key.limit)], factory: self.factory)
            case .shadowDenials:
                counter = CoreMetrics.Counter(label: Name.shadowDenials, dimensions: [("plan", key.plan), ("limit", key.limit)], factory: self.factory)
            case .degraded(let outcome):
                counter = CoreMetrics.Counter(label: Name.degraded, dimensions: [("plan", key.plan), ("outcome", outcome)], factory: self.factory)
            }
            counters[key] = counter
            counter.increment()
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

    /// Counts a decision answered from the over-limit cache.
    public func recordCacheHit() {
        self.cacheHitCounter.increment()
    }

    /// Records how long a decision endpoint took.
    public func recordCheck(_ endpoint: Endpoint, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        self.timers[endpoint.rawValue]?.recordNanoseconds(Int64(elapsed.components.seconds) * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    /// Counts a config reload.
    public func configReloaded(success: Bool) {
        self.counter(Name.configReloads, [("result", success ? "success" : "failure")]).increment()
    }

    /// Sets the values sampled at scrape time.
    public func sample(pendingRedisCommands: Int, cacheEntries: Int, runtimeKeys: Int) {
        self.redisPendingGauge.record(pendingRedisCommands)
        self.cacheEntriesGauge.record(cacheEntries)
        self.runtimeKeysGauge.record(runtimeKeys)
    }

    /// The registry in Prometheus's text format.
    public func render() -> [UInt8] {
        self.registry.emitToBuffer()
    }

    // MARK: RedisClientObserver

    public func commandCompleted(duration: Duration, errorKind: String?) {
        self.redisDuration.recordNanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        if let errorKind {
            self.redisErrorCounter(errorKind).increment()
        }
    }

    public func reconnected() {
        self.reconnects.increment()
    }
}
