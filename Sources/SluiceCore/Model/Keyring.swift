/// Where an API key is declared.
public enum KeySource: String, Sendable, Hashable {
    /// In the config file's `api_keys`.
    case config
    /// Created at runtime through the admin API, kept in Redis's registry.
    case runtime
}

/// An API key created at runtime, as the registry in Redis stores it (never the raw key).
public struct RuntimeKey: Sendable, Hashable, Codable {
    /// The key id.
    public var id: String
    /// Its plan's name.
    public var plan: String
    /// A name an operator gave it.
    public var name: String?
    /// When it was created, in milliseconds since the epoch.
    public var created: Int64

    /// Creates a record.
    public init(id: String, plan: String, name: String?, created: Int64) {
        self.id = id
        self.plan = plan
        self.name = name
        self.created = created
    }
}

/// What the admin API lists about a key.
public struct KeyRecord: Sendable, Hashable {
    /// The key id.
    public let id: String
    /// Its name, if it has one.
    public let name: String?
    /// Its plan's name.
    public let plan: String
    /// When it was created (runtime keys), in milliseconds since the epoch.
    public let created: Int64?
    /// Where it is declared.
    public let source: KeySource

    /// Creates a record.
    public init(id: String, name: String?, plan: String, created: Int64?, source: KeySource) {
        self.id = id
        self.name = name
        self.plan = plan
        self.created = created
        self.source = source
    }
}

/// Every API key Sluice knows: the config's and the runtime registry's, resolved to plans.
///
/// A value: built on a config load or a registry change, then read by requests.
/// The config wins when a key is in both (creating such a runtime key is refused).
public struct Keyring: Sendable {
    /// The config's plans and keys.
    public let rules: RuleSet
    /// Runtime keys as stored, by id (those whose plan is gone included).
    public private(set) var records: [String: RuntimeKey]
    /// Runtime keys whose plan exists, by id.
    private var runtime: [String: KeyEntry]
    private let digester: KeyDigester

    /// Creates a keyring.
    /// - Parameters:
    ///   - rules: the config's plans and keys.
    ///   - digester: the key-id digester of the config's secret.
    ///   - records: the runtime registry, by id.
    public init(rules: RuleSet, digester: KeyDigester, records: [String: RuntimeKey] = [:]) {
        self.rules = rules
        self.digester = digester
        self.records = [:]
        self.runtime = [:]
        self.replaceRecords(records)
    }

    /// How many runtime keys are mirrored (those whose plan is gone included).
    public var runtimeKeyCount: Int { self.records.count }

    /// Runtime keys whose plan is not (or no longer) in the config.
    public var orphans: [RuntimeKey] {
        self.records.values.filter { self.rules.plans[$0.plan] == nil }.sorted { $0.id < $1.id }
    }

    /// Puts a new registry in force.
    public mutating func replaceRecords(_ records: [String: RuntimeKey]) {
        self.records = records
        var runtime: [String: KeyEntry] = [:]
        runtime.reserveCapacity(records.count)
        for record in records.values {
            if let plan = self.rules.plans[record.plan] {
                runtime[record.id] = KeyEntry(keyID: record.id, plan: plan)
            }
        }
        self.runtime = runtime
    }

    /// Adds, replaces (a record) or removes (nil) one runtime key.
    public mutating func update(id: String, record: RuntimeKey?) {
        self.records[id] = record
        if let record, let plan = self.rules.plans[record.plan] {
            self.runtime[id] = KeyEntry(keyID: id, plan: plan)
        } else {
            self.runtime[id] = nil
        }
    }

    /// The entry of an API key as a gateway sent it; nil for an unknown key.
    public func resolve(apiKey: String) -> KeyEntry? {
        if let entry = self.rules.resolve(rawKey: apiKey) {
            return entry
        }
        if self.runtime.isEmpty && !self.rules.hasSHA256Keys {
            return nil
        }
        // One SHA-256 serves both the config's key_sha256 entries and the runtime key id.
        let digest = KeyDigester.sha256(of: apiKey)
        if let entry = self.rules.resolve(sha256: digest) {
            return entry
        }
        return self.runtime.isEmpty ? nil : self.runtime[self.digester.keyID(sha256: digest)]
    }

    /// The key id of a raw API key.
    public func keyID(apiKey: String) -> String {
        self.digester.keyID(apiKey: apiKey)
    }

    /// A key by id: its entry (nil when its plan is gone) and what the admin API shows of it.
    public func key(id: String) -> (entry: KeyEntry?, record: KeyRecord)? {
        if let config = self.rules.byID[id] {
            return (config.entry, KeyRecord(id: id, name: config.name, plan: config.entry.plan.name, created: nil, source: .config))
        }
        if let record = self.records[id] {
            return (self.runtime[id], KeyRecord(id: id, name: record.name, plan: record.plan, created: record.created, source: .runtime))
        }
        return nil
    }

    /// One page of every key, config and runtime, ordered by id.
    /// - Parameters:
    ///   - plan: only keys of this plan, when given.
    ///   - cursor: the last id of the previous page; the page starts after it.
    ///   - limit: at most this many keys.
    /// - Returns: the page and the cursor of the next page (nil after the last).
    public func page(plan: String?, after cursor: String?, limit: Int) -> (keys: [KeyRecord], next: String?) {
        let limit = max(1, limit)
        var ids: [String] = []
        ids.reserveCapacity(self.rules.byID.count + self.records.count)
        for (id, config) in self.rules.byID where plan == nil || config.entry.plan.name == plan {
            ids.append(id)
        }
        for (id, record) in self.records where self.rules.byID[id] == nil && (plan == nil || record.plan == plan) {
            ids.append(id)
        }
        ids.sort()
        var start = 0
        if let cursor {
            // First id after the cursor (binary search).
            var low = 0
            var high = ids.count
            while low < high {
                let mid = (low + high) / 2
                if ids[mid] <= cursor { low = mid + 1 } else { high = mid }
            }
            start = low
        }
        let end = min(ids.count, start + limit)
        let keys = ids[start..<end].compactMap { self.key(id: $0)?.record }
        return (keys, end < ids.count ? ids[end - 1] : nil)
    }
}
