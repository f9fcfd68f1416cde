extension AdminAPI {
    /// `GET /admin/v1/keys/{id}/usage`'s answer: units admitted per day, most recent first.
    public struct UsageReport: Codable, Sendable, Hashable {
        /// The key id.
        public var id: String
        /// The key's plan.
        public var plan: String
        /// The plan's quota.
        public var quota: Quota
        /// Days of daily counts kept (`usage.retention_days`).
        public var retentionDays: Int
        /// The days asked for, most recent first.
        public var days: [Day]

        /// Creates the report.
        public init(id: String, plan: String, quota: Quota, retentionDays: Int, days: [Day]) {
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
            /// The day's date (`YYYY-MM-DD`), in UTC less the quota's offset.
            public var date: String
            /// Its start, `YYYY-MM-DDTHH:MM:SSZ`.
            public var start: String
            /// Its end, `YYYY-MM-DDTHH:MM:SSZ`.
            public var end: String
            /// Units admitted that day.
            public var used: Int
            /// Units left in the quota window at the day's end (now, for today).
            public var remaining: Int

            /// Creates a day.
            public init(date: String, start: String, end: String, used: Int, remaining: Int) {
                self.date = date
                self.start = start
                self.end = end
                self.used = used
                self.remaining = remaining
            }
        }
    }
}
