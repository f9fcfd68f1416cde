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

    /// One plan as the config in force has it. `throttle`, `quota` and `stages` are left out
    /// when the plan has none.
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

        /// Creates a plan view.
        public init(
            name: String, throttle: Throttle? = nil, quota: Quota? = nil, onBackendError: BackendErrorPolicy, shadow: Bool,
            headers: [HeaderSet], routes: [Route], stages: [Stage]? = nil
        ) {
            self.name = name
            self.throttle = throttle
            self.quota = quota
            self.onBackendError = onBackendError
            self.shadow = shadow
            self.headers = headers
            self.routes = routes
            self.stages = stages
        }

        enum CodingKeys: String, CodingKey {
            case name, throttle, quota
            case onBackendError = "on_backend_error"
            case shadow, headers, routes, stages
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
