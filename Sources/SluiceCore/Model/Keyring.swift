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
/// The config's keys are a value built on each config load; the runtime keys live in a
/// ``RuntimeKeyTable`` that every keyring of the process shares and that changes in place, so
/// a registry change copies nothing. A runtime key's plan is resolved against this keyring's
/// config when the key is looked up. The config wins when a key is in both (creating such a
/// runtime key is refused).
public struct Keyring: Sendable {
    /// The config's plans and keys.
    public let rules: RuleSet
    /// The runtime keys (those whose plan is gone included).
    public let runtime: RuntimeKeyTable
    private let digester: KeyDigester

    /// Creates a keyring.
    /// - Parameters:
    ///   - rules: the config's plans and keys.
    ///   - digester: the key-id digester of the config's secret.
    ///   - runtime: the runtime key table (shared by every keyring of a process).
    public init(rules: RuleSet, digester: KeyDigester, runtime: RuntimeKeyTable = RuntimeKeyTable()) {
        self.rules = rules
        self.digester = digester
        self.runtime = runtime
    }

    /// How many runtime keys are mirrored (those whose plan is gone included).
    public var runtimeKeyCount: Int { self.runtime.count }

    /// Runtime keys whose plan is not (or no longer) in the config.
    public var orphans: [RuntimeKey] {
        self.runtime.allRecords().filter { self.rules.plans[$0.plan] == nil }.sorted { $0.id < $1.id }
    }

    /// The entry of runtime key `id` under this config; nil when unknown or its plan is gone.
    private func runtimeEntry(id: String) -> KeyEntry? {
        guard let planName = self.runtime.plan(id: id), let plan = self.rules.plans[planName] else { return nil }
        return KeyEntry(keyID: id, plan: plan)
    }

    /// The entry of an API key as a gateway sent it; nil for an unknown key.
    public func resolve(apiKey: String) -> KeyEntry? {
        if let entry = self.rules.resolve(rawKey: apiKey) {
            return entry
        }
        let noRuntime = self.runtime.count == 0
        if noRuntime && !self.rules.hasSHA256Keys {
            return nil
        }
        // One SHA-256 serves both the config's key_sha256 entries and the runtime key id.
        let digest = KeyDigester.sha256(of: apiKey)
        if let entry = self.rules.resolve(sha256: digest) {
            return entry
        }
        return noRuntime ? nil : self.runtimeEntry(id: self.digester.keyID(sha256: digest))
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
        if let record = self.runtime.record(id: id) {
            return (
                self.rules.plans[record.plan].map { KeyEntry(keyID: id, plan: $0) },
                KeyRecord(id: id, name: record.name, plan: record.plan, created: record.created, source: .runtime)
            )
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
        let runtime = self.runtime.allRecords()
        var ids: [String] = []
        ids.reserveCapacity(self.rules.byID.count + runtime.count)
        for (id, config) in self.rules.byID where plan == nil || config.entry.plan.name == plan {
            ids.append(id)
        }
        for record in runtime where self.rules.byID[record.id] == nil && (plan == nil || record.plan == plan) {
            ids.append(record.id)
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
