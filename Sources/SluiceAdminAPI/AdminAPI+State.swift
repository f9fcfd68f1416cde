extension AdminAPI {
    /// `GET /admin/v1/keys/{id}/state`'s answer: the live state of every limit of the key's
    /// plan, and its reservations and leases.
    public struct KeyState: Codable, Sendable, Hashable {
        /// The key id.
        public var id: String
        /// The key's plan.
        public var plan: String
        /// Where the key is declared.
        public var source: KeySource
        /// One entry per limit of the plan, in the plan's order (throttle, quota, routes, named
        /// limits).
        public var limits: [LimitState]
        /// Open reservations and leases; present when the plan has a concurrency limit or the
        /// key holds an open reservation or a lease, absent otherwise.
        public var reservations: Reservations?

        /// Creates the answer.
        public init(id: String, plan: String, source: KeySource, limits: [LimitState], reservations: Reservations? = nil) {
            self.id = id
            self.plan = plan
            self.source = source
            self.limits = limits
            self.reservations = reservations
        }

        /// A key's open reservations and the leases they hold.
        public struct Reservations: Codable, Sendable, Hashable {
            /// Reservations open now (neither settled, cancelled nor expired).
            public var open: Int
            /// What the open reservations' estimates hold, dimension by dimension (the first 1000
            /// reservations' estimates; more are seldom open at once).
            public var held: Amounts
            /// The concurrency limit's leases.
            public var leases: Leases

            /// Creates the view.
            public init(open: Int, held: Amounts, leases: Leases) {
                self.open = open
                self.held = held
                self.leases = leases
            }
        }

        /// Units of each dimension a limit may count.
        public struct Amounts: Codable, Sendable, Hashable {
            /// Requests.
            public var requests: Int
            /// Input tokens (cached input included).
            public var inputTokens: Int
            /// Output tokens.
            public var outputTokens: Int
            /// Input + output tokens.
            public var totalTokens: Int
            /// Cost units.
            public var cost: Int

            /// Creates amounts.
            public init(requests: Int, inputTokens: Int, outputTokens: Int, totalTokens: Int, cost: Int) {
                self.requests = requests
                self.inputTokens = inputTokens
                self.outputTokens = outputTokens
                self.totalTokens = totalTokens
                self.cost = cost
            }

            enum CodingKeys: String, CodingKey {
                case requests
                case inputTokens = "input_tokens"
                case outputTokens = "output_tokens"
                case totalTokens = "total_tokens"
                case cost
            }
        }

        /// The leases of the concurrency limit: held by open reservations until settled,
        /// cancelled, or not renewed within the lease TTL.
        public struct Leases: Codable, Sendable, Hashable {
            /// Most leases held at once; absent when the plan has no concurrency limit.
            public var limit: Int?
            /// Leases held now.
            public var inUse: Int
            /// A lease's TTL in milliseconds; absent when the plan has no concurrency limit.
            public var leaseTTLMs: Int?

            /// Creates the view.
            public init(limit: Int?, inUse: Int, leaseTTLMs: Int?) {
                self.limit = limit
                self.inUse = inUse
                self.leaseTTLMs = leaseTTLMs
            }

            enum CodingKeys: String, CodingKey {
                case limit
                case inUse = "in_use"
                case leaseTTLMs = "lease_ttl_ms"
            }
        }
    }

    /// The live state of one limit (the items of ``KeyState``, and the answer of a quota
    /// change). `kind` says which fields follow the common ones: a bucket's `rate`, `burst`,
    /// `tokens`; a quota's `base_limit`, `extension`, `used`, `period`, `offset_hours`,
    /// `window_start`, `window_end`.
    public struct LimitState: Codable, Sendable, Hashable {
        /// `throttle`, `quota`, `route:<route key>` or a named limit's name.
        public var name: String
        /// What the limit counts: `requests` (the throttle, the quota, route buckets), or a
        /// named limit's dimension.
        public var counts: Plan.Dimension
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
        public init(name: String, limit: Int, remaining: Int, resetAfterMs: Int, ttlMs: Int, detail: Detail, counts: Plan.Dimension = .requests) {
            self.name = name
            self.counts = counts
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
            /// Tokens now, with fractions; negative when the bucket is in debt (a bucket counting
            /// tokens or cost, after a reservation used more than its estimate).
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
            case name, counts, kind, limit, remaining
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
            // Servers before token limits sent no `counts`: every limit counted requests.
            self.counts = try container.decodeIfPresent(Plan.Dimension.self, forKey: .counts) ?? .requests
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
            try container.encode(self.counts, forKey: .counts)
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
        /// The names of the limits reset (`concurrency` when the leases were freed).
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
