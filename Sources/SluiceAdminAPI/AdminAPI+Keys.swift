extension AdminAPI {
    /// `POST /admin/v1/keys/lookup`'s body.
    public struct LookupRequest: Codable, Sendable, Hashable {
        /// The raw API key (never stored, never logged).
        public var apiKey: String

        /// Creates the body.
        public init(apiKey: String) {
            self.apiKey = apiKey
        }

        enum CodingKeys: String, CodingKey {
            case apiKey = "api_key"
        }
    }

    /// `POST /admin/v1/keys/lookup`'s answer: the key id, and the key's plan when it is known.
    /// `plan` and `source` are `null` for an unknown key.
    public struct KeyLookup: Codable, Sendable, Hashable {
        /// The key id.
        public var id: String
        /// Whether a config or runtime key has this value.
        public var known: Bool
        /// The key's plan.
        public var plan: String?
        /// Where the key is declared.
        public var source: KeySource?

        /// Creates the answer.
        public init(id: String, known: Bool, plan: String?, source: KeySource?) {
            self.id = id
            self.known = known
            self.plan = plan
            self.source = source
        }

        enum CodingKeys: String, CodingKey {
            case id, known, plan, source
        }

        /// Writes `null` for an absent plan or source (the document requires both fields).
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.id, forKey: .id)
            try container.encode(self.known, forKey: .known)
            try container.encode(self.plan, forKey: .plan)
            try container.encode(self.source, forKey: .source)
        }
    }

    /// `POST /admin/v1/keys`'s body. Absent `apiKey`: the server makes one.
    public struct CreateKeyRequest: Codable, Sendable, Hashable {
        /// The plan of the new key.
        public var plan: String
        /// The key to register; nil for a generated one.
        public var apiKey: String?
        /// A label for people.
        public var name: String?

        /// Creates the body.
        public init(plan: String, apiKey: String? = nil, name: String? = nil) {
            self.plan = plan
            self.apiKey = apiKey
            self.name = name
        }

        enum CodingKeys: String, CodingKey {
            case plan
            case apiKey = "api_key"
            case name
        }
    }

    /// `POST /admin/v1/keys`'s answer (201): the only time the raw key is shown.
    public struct CreatedKey: Codable, Sendable, Hashable {
        /// The key id.
        public var id: String
        /// The raw key.
        public var apiKey: String
        /// Its plan.
        public var plan: String
        /// Its name; `null` when it has none.
        public var name: String?
        /// When it was created (`YYYY-MM-DDTHH:MM:SSZ`).
        public var created: String
        /// Always ``KeySource/runtime``.
        public var source: KeySource

        /// Creates the answer.
        public init(id: String, apiKey: String, plan: String, name: String?, created: String, source: KeySource = .runtime) {
            self.id = id
            self.apiKey = apiKey
            self.plan = plan
            self.name = name
            self.created = created
            self.source = source
        }

        enum CodingKeys: String, CodingKey {
            case id
            case apiKey = "api_key"
            case plan, name, created, source
        }

        /// Writes `null` for an absent name.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.id, forKey: .id)
            try container.encode(self.apiKey, forKey: .apiKey)
            try container.encode(self.plan, forKey: .plan)
            try container.encode(self.name, forKey: .name)
            try container.encode(self.created, forKey: .created)
            try container.encode(self.source, forKey: .source)
        }
    }

    /// One key by id (`GET /admin/v1/keys/{id}`, the items of a ``KeyPage``, the answer of a
    /// move). `name` and `created` are `null` when absent (`created`: always, for config keys).
    public struct KeyRecord: Codable, Sendable, Hashable {
        /// The key id.
        public var id: String
        /// Its name.
        public var name: String?
        /// Its plan.
        public var plan: String
        /// When it was created (runtime keys), `YYYY-MM-DDTHH:MM:SSZ`.
        public var created: String?
        /// Where it is declared.
        public var source: KeySource

        /// Creates a record.
        public init(id: String, name: String?, plan: String, created: String?, source: KeySource) {
            self.id = id
            self.name = name
            self.plan = plan
            self.created = created
            self.source = source
        }

        enum CodingKeys: String, CodingKey {
            case id, name, plan, created, source
        }

        /// Writes `null` for an absent name or creation time.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.id, forKey: .id)
            try container.encode(self.name, forKey: .name)
            try container.encode(self.plan, forKey: .plan)
            try container.encode(self.created, forKey: .created)
            try container.encode(self.source, forKey: .source)
        }
    }

    /// `GET /admin/v1/keys`'s answer: a page of keys by id; `nextCursor` (`null` on the last
    /// page) is the next request's `cursor`.
    public struct KeyPage: Codable, Sendable, Hashable {
        /// The keys, by id.
        public var keys: [KeyRecord]
        /// The cursor of the next page.
        public var nextCursor: String?

        /// Creates a page.
        public init(keys: [KeyRecord], nextCursor: String?) {
            self.keys = keys
            self.nextCursor = nextCursor
        }

        enum CodingKeys: String, CodingKey {
            case keys
            case nextCursor = "next_cursor"
        }

        /// Writes `null` for the last page's cursor.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.keys, forKey: .keys)
            try container.encode(self.nextCursor, forKey: .nextCursor)
        }
    }

    /// `PUT /admin/v1/keys/{id}`'s body: the runtime key's new plan.
    public struct MoveKeyRequest: Codable, Sendable, Hashable {
        /// The new plan.
        public var plan: String

        /// Creates the body.
        public init(plan: String) {
            self.plan = plan
        }
    }
}
