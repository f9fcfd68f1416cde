extension AdminAPI {
    /// `GET /admin/v1/keys/{id}/state`'s answer: the live state of every limit of the key's
    /// plan.
    public struct KeyState: Codable, Sendable, Hashable {
        /// The key id.
        public var id: String
        /// The key's plan.
        public var plan: String
        /// Where the key is declared.
        public var source: KeySource
        /// One entry per limit of the plan, in the plan's order.
        public var limits: [LimitState]

        /// Creates the answer.
        public init(id: String, plan: String, source: KeySource, limits: [LimitState]) {
            self.id = id
            self.plan = plan
            self.source = source
            self.limits = limits
        }
    }

    /// The live state of one limit (the items of ``KeyState``, and the answer of a quota
    /// change). `kind` says which fields follow the common ones: a bucket's `rate`, `burst`,
    /// `tokens`; a quota's `base_limit`, `extension`, `used`, `period`, `offset_hours`,
    /// `window_start`, `window_end`.
    public struct LimitState: Codable, Sendable, Hashable {
        /// `throttle`, `quota` or `route:<route key>`.
        public var name: String
        /// Capacity now: a bucket's burst, a quota's units this window (extension included).
        public var limit: Int
        /// Whole units a request could use now.
        public var remaining: Int
        /// Milliseconds until the limit is full again (a quota: until its window ends).
        public var resetAfterMs: Int
        /// Milliseconds the state has left in Redis; -2 when there is none.
        public var ttlMs: Int
        /// The fields of the limit's kind.
        public var detail: Detail

        /// `bucket` or `quota`.
        public var kind: Kind {
            switch self.detail {
            case .bucket: .bucket
            case .quota: .quota
            }
        }

        /// Creates a limit's state.
        public init(name: String, limit: Int, remaining: Int, resetAfterMs: Int, ttlMs: Int, detail: Detail) {
            self.name = name
            self.limit = limit
            self.remaining = remaining
            self.resetAfterMs = resetAfterMs
            self.ttlMs = ttlMs
            self.detail = detail
        }

        /// A limit's kind, the `kind` field.
        public enum Kind: String, Codable, Sendable, Hashable, CaseIterable {
            /// A token bucket (the plan's throttle, a route's bucket).
            case bucket
            /// A calendar quota.
            case quota
        }

        /// The fields of one kind.
        public enum Detail: Sendable, Hashable {
            /// A bucket's rate, burst and tokens.
            case bucket(Bucket)
            /// A quota's window and counts.
            case quota(Quota)
        }

        /// A bucket's fields.
        public struct Bucket: Sendable, Hashable {
            /// Tokens per second.
            public var rate: Double
            /// The bucket's capacity.
            public var burst: Int
            /// Tokens now, with fractions.
            public var tokens: Double

            /// Creates a bucket's fields.
            public init(rate: Double, burst: Int, tokens: Double) {
                self.rate = rate
                self.burst = burst
                self.tokens = tokens
            }
        }

        /// A quota's fields.
        public struct Quota: Sendable, Hashable {
            /// The plan's quota limit.
            public var baseLimit: Int
            /// Units granted (or, negative, taken) by operators for this window.
            public var `extension`: Int
            /// Units used this window.
            public var used: Int
            /// The window.
            public var period: QuotaPeriod
            /// Hours after midnight UTC a window starts.
            public var offsetHours: Int
            /// The window's start, `YYYY-MM-DDTHH:MM:SSZ`.
            public var windowStart: String
            /// The window's end, `YYYY-MM-DDTHH:MM:SSZ`.
            public var windowEnd: String

            /// Creates a quota's fields.
            public init(
                baseLimit: Int, extension: Int, used: Int, period: QuotaPeriod, offsetHours: Int, windowStart: String, windowEnd: String
            ) {
                self.baseLimit = baseLimit
                self.extension = `extension`
                self.used = used
                self.period = period
                self.offsetHours = offsetHours
                self.windowStart = windowStart
                self.windowEnd = windowEnd
            }
        }

        enum CodingKeys: String, CodingKey {
            case name, kind, limit, remaining
            case resetAfterMs = "reset_after_ms"
            case ttlMs = "ttl_ms"
            case rate, burst, tokens
            case baseLimit = "base_limit"
            case `extension`, used, period
            case offsetHours = "offset_hours"
            case windowStart = "window_start"
            case windowEnd = "window_end"
        }

        /// Decodes the common fields, then those `kind` names.
        /// - Throws: `DecodingError` for a missing field, a wrong type or an unknown kind.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.name = try container.decode(String.self, forKey: .name)
            self.limit = try container.decode(Int.self, forKey: .limit)
            self.remaining = try container.decode(Int.self, forKey: .remaining)
            self.resetAfterMs = try container.decode(Int.self, forKey: .resetAfterMs)
            self.ttlMs = try container.decode(Int.self, forKey: .ttlMs)
            switch try container.decode(Kind.self, forKey: .kind) {
            case .bucket:
                self.detail = .bucket(
                    Bucket(
                        rate: try container.decode(Double.self, forKey: .rate),
                        burst: try container.decode(Int.self, forKey: .burst),
                        tokens: try container.decode(Double.self, forKey: .tokens)
                    )
                )
            case .quota:
                self.detail = .quota(
                    Quota(
                        baseLimit: try container.decode(Int.self, forKey: .baseLimit),
                        extension: try container.decode(Int.self, forKey: .extension),
                        used: try container.decode(Int.self, forKey: .used),
                        period: try container.decode(QuotaPeriod.self, forKey: .period),
                        offsetHours: try container.decode(Int.self, forKey: .offsetHours),
                        windowStart: try container.decode(String.self, forKey: .windowStart),
                        windowEnd: try container.decode(String.self, forKey: .windowEnd)
                    )
                )
            }
        }

        /// Encodes one flat object: the common fields and those of the kind.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.name, forKey: .name)
            try container.encode(self.kind, forKey: .kind)
            try container.encode(self.limit, forKey: .limit)
            try container.encode(self.remaining, forKey: .remaining)
            try container.encode(self.resetAfterMs, forKey: .resetAfterMs)
            try container.encode(self.ttlMs, forKey: .ttlMs)
            switch self.detail {
            case .bucket(let bucket):
                try container.encode(bucket.rate, forKey: .rate)
                try container.encode(bucket.burst, forKey: .burst)
                try container.encode(bucket.tokens, forKey: .tokens)
            case .quota(let quota):
                try container.encode(quota.baseLimit, forKey: .baseLimit)
                try container.encode(quota.extension, forKey: .extension)
                try container.encode(quota.used, forKey: .used)
                try container.encode(quota.period, forKey: .period)
                try container.encode(quota.offsetHours, forKey: .offsetHours)
                try container.encode(quota.windowStart, forKey: .windowStart)
                try container.encode(quota.windowEnd, forKey: .windowEnd)
            }
        }
    }

    /// The answer of `POST /admin/v1/keys/{id}/state/reset` (and its deprecated spelling
    /// `DELETE .../state`): the limits reset, by name.
    public struct ResetResult: Codable, Sendable, Hashable {
        /// The key id.
        public var id: String
        /// The names of the limits reset.
        public var reset: [String]

        /// Creates the answer.
        public init(id: String, reset: [String]) {
            self.id = id
            self.reset = reset
        }
    }

    /// `POST /admin/v1/keys/{id}/quota`'s body: exactly one of `add` (1 to 10^12) or
    /// `remaining` (0 to 10^12); the server refuses anything else. The answer is the quota's
    /// ``LimitState``.
    public struct QuotaChangeRequest: Codable, Sendable, Hashable {
        /// Units to grant for the current window.
        public var add: Int?
        /// Units that shall remain in the current window.
        public var remaining: Int?

        /// Creates the body.
        public init(add: Int? = nil, remaining: Int? = nil) {
            self.add = add
            self.remaining = remaining
        }
    }
}
