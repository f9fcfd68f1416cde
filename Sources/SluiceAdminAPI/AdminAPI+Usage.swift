extension AdminAPI {
    /// `GET /admin/v1/keys/{id}/usage`'s answer: units admitted per day, most recent first, and
    /// on plans with named limits the tokens and cost of each day.
    public struct UsageReport: Codable, Sendable, Hashable {
        /// The key id.
        public var id: String
        /// The key's plan.
        public var plan: String
        /// The plan's quota; absent for a plan without one (a plan with named limits only).
        public var quota: Quota?
        /// Days of daily counts kept (`usage.retention_days`).
        public var retentionDays: Int
        /// The days asked for, most recent first.
        public var days: [Day]

        /// Creates the report.
        public init(id: String, plan: String, quota: Quota?, retentionDays: Int, days: [Day]) {
            self.id = id
            self.plan = plan
            self.quota = quota
            self.retentionDays = retentionDays
            self.days = days
        }

        enum CodingKeys: String, CodingKey {
            case id, plan, quota
            case retentionDays = "retention_days"
            case days
        }

        /// The quota the report counts against.
        public struct Quota: Codable, Sendable, Hashable {
            /// Units per window.
            public var limit: Int
            /// The window.
            public var period: QuotaPeriod
            /// Hours after midnight UTC a day (and a window) starts.
            public var offsetHours: Int

            /// Creates the quota view.
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

        /// One day of the report.
        public struct Day: Codable, Sendable, Hashable {
            /// The day's date (`YYYY-MM-DD`), in UTC less the plan's usage offset (its quota's
            /// `offset_hours`, else its first named quota's).
            public var date: String
            /// Its start, `YYYY-MM-DDTHH:MM:SSZ`.
            public var start: String
            /// Its end, `YYYY-MM-DDTHH:MM:SSZ`.
            public var end: String
            /// Units (requests, by their cost) admitted that day.
            public var used: Int
            /// Units left in the quota window at the day's end (now, for today); absent when
            /// the plan has no quota.
            public var remaining: Int?
            /// Tokens and cost used that day; present on plans with named limits (and on others
            /// whose keys recorded tokens through reservations), absent otherwise.
            public var tokens: Tokens?

            /// Creates a day.
            public init(date: String, start: String, end: String, used: Int, remaining: Int?, tokens: Tokens? = nil) {
                self.date = date
                self.start = start
                self.end = end
                self.used = used
                self.remaining = remaining
                self.tokens = tokens
            }
        }

        /// Tokens and cost used in one day: reservations count at their estimate until settled,
        /// then at their actual usage.
        public struct Tokens: Codable, Sendable, Hashable {
            /// Input tokens (cached input included).
            public var inputTokens: Int
            /// Output tokens.
            public var outputTokens: Int
            /// The part of `input_tokens` read from a prompt cache.
            public var cachedInputTokens: Int
            /// Input + output tokens.
            public var totalTokens: Int
            /// Cost units.
            public var cost: Int

            /// Creates a day's tokens.
            public init(inputTokens: Int, outputTokens: Int, cachedInputTokens: Int, totalTokens: Int, cost: Int) {
                self.inputTokens = inputTokens
                self.outputTokens = outputTokens
                self.cachedInputTokens = cachedInputTokens
                self.totalTokens = totalTokens
                self.cost = cost
            }

            enum CodingKeys: String, CodingKey {
                case inputTokens = "input_tokens"
                case outputTokens = "output_tokens"
                case cachedInputTokens = "cached_input_tokens"
                case totalTokens = "total_tokens"
                case cost
            }
        }
    }
}
