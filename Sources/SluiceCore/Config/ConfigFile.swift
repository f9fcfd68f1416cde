/// The YAML file as written: a `Decodable` mirror that rejects unknown keys.
/// ``ConfigLoader`` validates it into a ``SluiceConfig``.
struct ConfigFile: Decodable {
    var redis: RedisSection?
    var server: ServerSection?
    var limits: LimitsSection?
    var logging: LoggingSection?
    var plans: [String: PlanSection]?
    var apiKeys: [APIKeySection]?
    var overLimitCache: OverLimitCacheSection?
    var admin: AdminSection?
    var usage: UsageSection?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case redis, server, limits, logging, plans, admin, usage
        case apiKeys = "api_keys"
        case overLimitCache = "over_limit_cache"
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.redis = try c.decodeIfPresent(RedisSection.self, forKey: .redis)
        self.server = try c.decodeIfPresent(ServerSection.self, forKey: .server)
        self.limits = try c.decodeIfPresent(LimitsSection.self, forKey: .limits)
        self.logging = try c.decodeIfPresent(LoggingSection.self, forKey: .logging)
        self.plans = try c.decodeIfPresent([String: PlanSection].self, forKey: .plans)
        self.apiKeys = try c.decodeIfPresent([APIKeySection].self, forKey: .apiKeys)
        self.overLimitCache = try c.decodeIfPresent(OverLimitCacheSection.self, forKey: .overLimitCache)
        self.admin = try c.decodeIfPresent(AdminSection.self, forKey: .admin)
        self.usage = try c.decodeIfPresent(UsageSection.self, forKey: .usage)
    }

    struct UsageSection: Decodable {
        var retentionDays: Int?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case retentionDays = "retention_days"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.retentionDays = try c.decodeIfPresent(Int.self, forKey: .retentionDays)
        }
    }

    struct AdminSection: Decodable {
        var host: String?
        var port: Int?
        var tokensSHA256: [String]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case host, port
            case tokensSHA256 = "tokens_sha256"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.host = try c.decodeIfPresent(String.self, forKey: .host)
            self.port = try c.decodeIfPresent(Int.self, forKey: .port)
            self.tokensSHA256 = try c.decodeIfPresent([String].self, forKey: .tokensSHA256)
        }
    }

    struct OverLimitCacheSection: Decodable {
        var enabled: Bool?
        var maxEntries: Int?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case enabled
            case maxEntries = "max_entries"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled)
            self.maxEntries = try c.decodeIfPresent(Int.self, forKey: .maxEntries)
        }
    }

    struct RedisSection: Decodable {
        var url: String?
        var timeoutMs: Int?
        var connectTimeoutMs: Int?
        var connectionsPerLoop: Int?
        var maxPending: Int?
        var tls: TLSSection?
        var sentinel: SentinelSection?
        var cluster: ClusterSection?
        var username: String?
        var password: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case url, tls, sentinel, cluster, username, password
            case timeoutMs = "timeout_ms"
            case connectTimeoutMs = "connect_timeout_ms"
            case connectionsPerLoop = "connections_per_loop"
            case maxPending = "max_pending"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.url = try c.decodeIfPresent(String.self, forKey: .url)
            self.timeoutMs = try c.decodeIfPresent(Int.self, forKey: .timeoutMs)
            self.connectTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .connectTimeoutMs)
            self.connectionsPerLoop = try c.decodeIfPresent(Int.self, forKey: .connectionsPerLoop)
            self.maxPending = try c.decodeIfPresent(Int.self, forKey: .maxPending)
            self.tls = try c.decodeIfPresent(TLSSection.self, forKey: .tls)
            self.sentinel = try c.decodeIfPresent(SentinelSection.self, forKey: .sentinel)
            self.cluster = try c.decodeIfPresent(ClusterSection.self, forKey: .cluster)
            self.username = try c.decodeIfPresent(String.self, forKey: .username)
            self.password = try c.decodeIfPresent(String.self, forKey: .password)
        }
    }

    struct SentinelSection: Decodable {
        var masterName: String?
        var nodes: [String]?
        var username: String?
        var password: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case nodes, username, password
            case masterName = "master_name"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.masterName = try c.decodeIfPresent(String.self, forKey: .masterName)
            self.nodes = try c.decodeIfPresent([String].self, forKey: .nodes)
            self.username = try c.decodeIfPresent(String.self, forKey: .username)
            self.password = try c.decodeIfPresent(String.self, forKey: .password)
        }
    }

    /// `redis.cluster`: seed nodes of a Redis Cluster. The data nodes' credentials are
    /// `redis.username` and `redis.password`, as for Sentinel.
    struct ClusterSection: Decodable {
        var nodes: [String]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case nodes
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.nodes = try c.decodeIfPresent([String].self, forKey: .nodes)
        }
    }

    struct TLSSection: Decodable {
        var caFile: String?
        var certFile: String?
        var keyFile: String?
        var serverName: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case caFile = "ca_file"
            case certFile = "cert_file"
            case keyFile = "key_file"
            case serverName = "server_name"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
            self.certFile = try c.decodeIfPresent(String.self, forKey: .certFile)
            self.keyFile = try c.decodeIfPresent(String.self, forKey: .keyFile)
            self.serverName = try c.decodeIfPresent(String.self, forKey: .serverName)
        }
    }

    struct ServerSection: Decodable {
        var host: String?
        var port: Int?
        var apiKeyHeader: String?
        var clientTokensSHA256: [String]?
        var bodyTimeoutMs: Int?
        var forwardAuth: ForwardAuthSection?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case host, port
            case apiKeyHeader = "api_key_header"
            case clientTokensSHA256 = "client_tokens_sha256"
            case bodyTimeoutMs = "body_timeout_ms"
            case forwardAuth = "forward_auth"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.host = try c.decodeIfPresent(String.self, forKey: .host)
            self.port = try c.decodeIfPresent(Int.self, forKey: .port)
            self.apiKeyHeader = try c.decodeIfPresent(String.self, forKey: .apiKeyHeader)
            self.clientTokensSHA256 = try c.decodeIfPresent([String].self, forKey: .clientTokensSHA256)
            self.bodyTimeoutMs = try c.decodeIfPresent(Int.self, forKey: .bodyTimeoutMs)
            self.forwardAuth = try c.decodeIfPresent(ForwardAuthSection.self, forKey: .forwardAuth)
        }
    }

    struct ForwardAuthSection: Decodable {
        var routeFrom: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case routeFrom = "route_from"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.routeFrom = try c.decodeIfPresent(String.self, forKey: .routeFrom)
        }
    }

    struct LimitsSection: Decodable {
        var maxBodyBytes: Int?
        var maxAPIKeyBytes: Int?
        var maxRouteBytes: Int?
        var maxCost: Int?
        var maxBatchBodyBytes: Int?
        var maxBatchChecks: Int?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case maxBatchBodyBytes = "max_batch_body_bytes"
            case maxBatchChecks = "max_batch_checks"
            case maxBodyBytes = "max_body_bytes"
            case maxAPIKeyBytes = "max_api_key_bytes"
            case maxRouteBytes = "max_route_bytes"
            case maxCost = "max_cost"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes)
            self.maxAPIKeyBytes = try c.decodeIfPresent(Int.self, forKey: .maxAPIKeyBytes)
            self.maxRouteBytes = try c.decodeIfPresent(Int.self, forKey: .maxRouteBytes)
            self.maxCost = try c.decodeIfPresent(Int.self, forKey: .maxCost)
            self.maxBatchBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBatchBodyBytes)
            self.maxBatchChecks = try c.decodeIfPresent(Int.self, forKey: .maxBatchChecks)
        }
    }

    struct LoggingSection: Decodable {
        var level: String?
        var format: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case level, format
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.level = try c.decodeIfPresent(String.self, forKey: .level)
            self.format = try c.decodeIfPresent(String.self, forKey: .format)
        }
    }

    struct ThrottleSection: Decodable {
        var rate: Double
        var burst: Int
        var unit: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case rate, burst, unit
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.rate = try c.decode(Double.self, forKey: .rate)
            self.burst = try c.decode(Int.self, forKey: .burst)
            self.unit = try c.decodeIfPresent(String.self, forKey: .unit)
        }
    }

    struct QuotaSection: Decodable {
        var limit: Int
        var period: String
        var offsetHours: Int?
        var initialOffset: Int?
        var unit: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case limit, period, unit
            case offsetHours = "offset_hours"
            case initialOffset = "initial_offset"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.limit = try c.decode(Int.self, forKey: .limit)
            self.period = try c.decode(String.self, forKey: .period)
            self.offsetHours = try c.decodeIfPresent(Int.self, forKey: .offsetHours)
            self.initialOffset = try c.decodeIfPresent(Int.self, forKey: .initialOffset)
            self.unit = try c.decodeIfPresent(String.self, forKey: .unit)
        }
    }

    struct RouteSection: Decodable {
        var rate: Double
        var burst: Int
        var additional: Bool?
        var unit: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case rate, burst, additional, unit
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.rate = try c.decode(Double.self, forKey: .rate)
            self.burst = try c.decode(Int.self, forKey: .burst)
            self.additional = try c.decodeIfPresent(Bool.self, forKey: .additional)
            self.unit = try c.decodeIfPresent(String.self, forKey: .unit)
        }
    }

    struct PlanSection: Decodable {
        var throttle: ThrottleSection?
        var quota: QuotaSection?
        var onBackendError: String?
        var routes: [String: RouteSection]?
        var headers: [String]?
        var shadow: Bool?
        var stages: [String: StageSection]?
        var limits: [String: NamedLimitSection]?
        var concurrency: ConcurrencySection?
        var prices: [String: PriceSection]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case throttle, quota, routes, headers, shadow, stages, limits, concurrency, prices
            case onBackendError = "on_backend_error"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.throttle = try c.decodeIfPresent(ThrottleSection.self, forKey: .throttle)
            self.quota = try c.decodeIfPresent(QuotaSection.self, forKey: .quota)
            self.onBackendError = try c.decodeIfPresent(String.self, forKey: .onBackendError)
            self.routes = try c.decodeIfPresent([String: RouteSection].self, forKey: .routes)
            self.headers = try c.decodeIfPresent([String].self, forKey: .headers)
            self.shadow = try c.decodeIfPresent(Bool.self, forKey: .shadow)
            self.stages = try c.decodeIfPresent([String: StageSection].self, forKey: .stages)
            self.limits = try c.decodeIfPresent([String: NamedLimitSection].self, forKey: .limits)
            self.concurrency = try c.decodeIfPresent(ConcurrencySection.self, forKey: .concurrency)
            self.prices = try c.decodeIfPresent([String: PriceSection].self, forKey: .prices)
        }
    }

    /// `plans.<plan>.limits.<name>`: a limit counting one dimension, a token bucket (`rate` and
    /// `burst`) or a quota; which one, and the rest, the validator checks.
    struct NamedLimitSection: Decodable {
        var counts: String?
        var rate: Double?
        var burst: Int?
        var quota: QuotaSection?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case counts, rate, burst, quota
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.counts = try c.decodeIfPresent(String.self, forKey: .counts)
            self.rate = try c.decodeIfPresent(Double.self, forKey: .rate)
            self.burst = try c.decodeIfPresent(Int.self, forKey: .burst)
            // The quota mirror takes `initial_offset` and `unit` too; the validator reports them
            // here, where they are not supported, with a reason rather than as unknown keys.
            self.quota = try c.decodeIfPresent(QuotaSection.self, forKey: .quota)
        }
    }

    /// `plans.<plan>.concurrency`: requests in flight across the fleet.
    struct ConcurrencySection: Decodable {
        var limit: Int
        var leaseTTLSeconds: Int?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case limit
            case leaseTTLSeconds = "lease_ttl_s"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.limit = try c.decode(Int.self, forKey: .limit)
            self.leaseTTLSeconds = try c.decodeIfPresent(Int.self, forKey: .leaseTTLSeconds)
        }
    }

    /// `plans.<plan>.prices.<model>`: cost units per token.
    struct PriceSection: Decodable {
        var input: Double
        var output: Double
        var cachedInput: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case input, output
            case cachedInput = "cached_input"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.input = try c.decode(Double.self, forKey: .input)
            self.output = try c.decode(Double.self, forKey: .output)
            self.cachedInput = try c.decodeIfPresent(Double.self, forKey: .cachedInput)
        }
    }

    /// One API stage a plan covers, with its own method throttles.
    struct StageSection: Decodable {
        var routes: [String: RouteSection]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case routes
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.routes = try c.decodeIfPresent([String: RouteSection].self, forKey: .routes)
        }
    }

    struct APIKeySection: Decodable {
        var key: String?
        var keySHA256: String?
        var plan: String
        var name: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case key, plan, name
            case keySHA256 = "key_sha256"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.key = try c.decodeIfPresent(String.self, forKey: .key)
            self.keySHA256 = try c.decodeIfPresent(String.self, forKey: .keySHA256)
            self.plan = try c.decode(String.self, forKey: .plan)
            self.name = try c.decodeIfPresent(String.self, forKey: .name)
        }
    }
}

/// A coding key for any string, to list the keys a mapping really has.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

/// A key in the file that the schema does not have.
struct UnknownConfigKey: Error {
    let codingPath: [any CodingKey]
    let allowed: [String]
}

extension Decoder {
    /// Throws ``UnknownConfigKey`` if the mapping being decoded has a key outside `Keys`.
    func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_: Keys.Type) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        let allowed = Keys.allCases.map(\.stringValue)
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue })
        where !allowed.contains(key.stringValue) {
            throw UnknownConfigKey(codingPath: self.codingPath + [key], allowed: allowed)
        }
    }
}
