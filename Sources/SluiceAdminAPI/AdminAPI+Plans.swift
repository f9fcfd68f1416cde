extension AdminAPI {
    /// What a plan does when Redis cannot answer.
    public enum BackendErrorPolicy: String, Codable, Sendable, Hashable, CaseIterable {
        /// 503 `backend_unavailable`.
        case deny
        /// Allowed, marked degraded.
        case allow
    }

    /// A set of rate-limit header fields a plan's answers carry.
    public enum HeaderSet: String, Codable, Sendable, Hashable, CaseIterable {
        /// `RateLimit-Policy` and `RateLimit` (every plan).
        case ietf
        /// `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
        case legacy
        /// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
        case openai
        /// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`.
        case anthropic
    }

    /// `GET /admin/v1/plans`: the effective plans, by name.
    public struct PlanList: Codable, Sendable, Hashable {
        /// Every plan in force, sorted by name.
        public var plans: [Plan]

        /// Creates the list.
        public init(plans: [Plan]) {
            self.plans = plans
        }
    }

    /// One plan as the config in force has it. `throttle`, `quota`, `stages`, `limits`,
    /// `concurrency` and `prices` are left out when the plan has none.
    public struct Plan: Codable, Sendable, Hashable {
        /// The plan's name.
        public var name: String
        /// The plan's throttle (a token bucket), if any.
        public var throttle: Throttle?
        /// The plan's quota, if any.
        public var quota: Quota?
        /// Fail open or closed when Redis cannot answer.
        public var onBackendError: BackendErrorPolicy
        /// Whether the plan only reports what it would deny.
        public var shadow: Bool
        /// The header sets the plan's answers carry, sorted by name (`ietf` always).
        public var headers: [HeaderSet]
        /// The plan's route rules.
        public var routes: [Route]
        /// The API stages the plan covers with each stage's routes; nil: every stage.
        public var stages: [Stage]?
        /// The plan's named limits (config `limits`), by name; nil: none.
        public var limits: [String: NamedLimit]?
        /// The plan's concurrency limit, if any.
        public var concurrency: Concurrency?
        /// Prices by model (`*`: any other model); nil: none.
        public var prices: [String: Price]?

        /// Creates a plan view.
        public init(
            name: String, throttle: Throttle? = nil, quota: Quota? = nil, onBackendError: BackendErrorPolicy, shadow: Bool,
            headers: [HeaderSet], routes: [Route], stages: [Stage]? = nil, limits: [String: NamedLimit]? = nil,
            concurrency: Concurrency? = nil, prices: [String: Price]? = nil
        ) {
            self.name = name
            self.throttle = throttle
            self.quota = quota
            self.onBackendError = onBackendError
            self.shadow = shadow
            self.headers = headers
            self.routes = routes
            self.stages = stages
            self.limits = limits
            self.concurrency = concurrency
            self.prices = prices
        }

        enum CodingKeys: String, CodingKey {
            case name, throttle, quota
            case onBackendError = "on_backend_error"
            case shadow, headers, routes, stages, limits, concurrency, prices
        }

        /// What a named limit counts.
        public enum Dimension: String, Codable, Sendable, Hashable, CaseIterable {
            /// Requests (each weighing its cost).
            case requests
            /// Input tokens, cached input included.
            case inputTokens = "input_tokens"
            /// Output tokens.
            case outputTokens = "output_tokens"
            /// Input + output tokens.
            case totalTokens = "total_tokens"
            /// Cost units, from the plan's prices.
            case cost
        }

        /// A named limit: a token bucket (`rate` and `burst`) or a quota, counting one dimension.
        public struct NamedLimit: Codable, Sendable, Hashable {
            /// What the limit counts.
            public var counts: Dimension
            /// A bucket's units per second; nil for a quota.
            public var rate: Double?
            /// A bucket's capacity; nil for a quota.
            public var burst: Int?
            /// The quota; nil for a bucket.
            public var quota: LimitQuota?

            /// Creates a named token bucket.
            public init(counts: Dimension, rate: Double, burst: Int) {
                self.counts = counts
                self.rate = rate
                self.burst = burst
                self.quota = nil
            }

            /// Creates a named quota.
            public init(counts: Dimension, quota: LimitQuota) {
                self.counts = counts
                self.rate = nil
                self.burst = nil
                self.quota = quota
            }
        }

        /// A named limit's calendar quota (no initial offset: only the plan's quota has one).
        public struct LimitQuota: Codable, Sendable, Hashable {
            /// Units per window.
            public var limit: Int
            /// The window.
            public var period: QuotaPeriod
            /// Hours after midnight UTC a window starts.
            public var offsetHours: Int

            /// Creates a quota.
            public init(limit: Int, period: QuotaPeriod, offsetHours: Int) {
                self.limit = limit
                self.period = period
                self.offsetHours = offsetHours
            }

            enum CodingKeys: String, CodingKey {
                case limit, period
                case offsetHours = "offset_hours"
            }
        }

        /// Requests in flight across the fleet.
        public struct Concurrency: Codable, Sendable, Hashable {
            /// Most requests in flight at once.
            public var limit: Int
            /// Seconds after which a lease not renewed is free again.
            public var leaseTTLSeconds: Int

            /// Creates a concurrency view.
            public init(limit: Int, leaseTTLSeconds: Int) {
                self.limit = limit
                self.leaseTTLSeconds = leaseTTLSeconds
            }

            enum CodingKeys: String, CodingKey {
                case limit
                case leaseTTLSeconds = "lease_ttl_s"
            }
        }

        /// A model's prices, in cost units per token.
        public struct Price: Codable, Sendable, Hashable {
            /// Per input token not read from a prompt cache.
            public var input: Double
            /// Per output token.
            public var output: Double
            /// Per cached input token.
            public var cachedInput: Double

            /// Creates a price view.
            public init(input: Double, output: Double, cachedInput: Double) {
                self.input = input
                self.output = output
                self.cachedInput = cachedInput
            }

            enum CodingKeys: String, CodingKey {
                case input, output
                case cachedInput = "cached_input"
            }
        }

        /// A token bucket: `rate` tokens a second, at most `burst`.
        public struct Throttle: Codable, Sendable, Hashable {
            /// Tokens per second (may be fractional).
            public var rate: Double
            /// The bucket's capacity.
            public var burst: Int

            /// Creates a throttle.
            public init(rate: Double, burst: Int) {
                self.rate = rate
                self.burst = burst
            }
        }

        /// A calendar quota.
        public struct Quota: Codable, Sendable, Hashable {
            /// Units per window.
            public var limit: Int
            /// The window.
            public var period: QuotaPeriod
            /// Hours after midnight UTC a window starts.
            public var offsetHours: Int
            /// Units subtracted in a key's initial window.
            public var initialOffset: Int

            /// Creates a quota.
            public init(limit: Int, period: QuotaPeriod, offsetHours: Int, initialOffset: Int) {
                self.limit = limit
                self.period = period
                self.offsetHours = offsetHours
                self.initialOffset = initialOffset
            }

            enum CodingKeys: String, CodingKey {
                case limit, period
                case offsetHours = "offset_hours"
                case initialOffset = "initial_offset"
            }
        }

        /// A route's own bucket.
        public struct Route: Codable, Sendable, Hashable {
            /// The route key as configured, e.g. `POST /v1/predict`.
            public var key: String
            /// The limit's name in decisions, e.g. `route:POST /v1/predict`.
            public var limit: String
            /// Tokens per second.
            public var rate: Double
            /// The bucket's capacity.
            public var burst: Int
            /// Whether the route's bucket applies on top of the plan's throttle.
            public var additional: Bool

            /// Creates a route view.
            public init(key: String, limit: String, rate: Double, burst: Int, additional: Bool) {
                self.key = key
                self.limit = limit
                self.rate = rate
                self.burst = burst
                self.additional = additional
            }
        }

        /// One API stage a plan lists, with its routes (the plan's and the stage's own).
        public struct Stage: Codable, Sendable, Hashable {
            /// The stage's name, e.g. `mlApi/prod`.
            public var name: String
            /// The stage's route rules.
            public var routes: [Route]

            /// Creates a stage view.
            public init(name: String, routes: [Route]) {
                self.name = name
                self.routes = routes
            }
        }
    }
}
