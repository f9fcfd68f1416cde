/// An API key Sluice knows, resolved to its plan.
public struct KeyEntry: Sendable, Hashable {
    /// The key id (keyed digest); never the raw key.
    public let keyID: String
    /// The key's plan.
    public let plan: Plan
    /// `sl:{<id>}:`, prefix of the key's Redis state keys, as bytes built once.
    let statePrefixBytes: [UInt8]
    /// The key of its usage record (`sl:{<id>}:u`), as bytes built once.
    public let usageKey: [UInt8]

    /// Creates an entry.
    public init(keyID: String, plan: Plan) {
        self.keyID = keyID
        self.plan = plan
        self.statePrefixBytes = Array(StateKeys.prefix(keyID: keyID).utf8)
        self.usageKey = self.statePrefixBytes + Array(StateKeys.usageSuffix.utf8)
    }

    /// The Redis key of this API key's state for `limit`.
    public func stateKey(for limit: Limit) -> [UInt8] {
        self.statePrefixBytes + limit.keySuffixBytes
    }
}

/// The validated, immutable set of plans and API keys that decisions read.
///
/// Built once per config load; a reload builds a new one and swaps it whole.
public struct RuleSet: Sendable {
    /// Plans by name.
    public let plans: [String: Plan]
    private let byRawKey: [String: KeyEntry]
    private let bySHA256: [[UInt8]: KeyEntry]
    /// Every entry by key id, with the name the config gives it.
    public let byID: [String: (entry: KeyEntry, name: String?)]

    /// Creates a rule set.
    /// - Parameters:
    ///   - plans: plans by name.
    ///   - rawKeys: entries of keys given in clear, by key.
    ///   - sha256Keys: entries of keys given as SHA-256, by digest (32 bytes).
    ///   - names: names of keys, by key id.
    public init(plans: [String: Plan], rawKeys: [String: KeyEntry], sha256Keys: [[UInt8]: KeyEntry], names: [String: String] = [:]) {
        self.plans = plans
        self.byRawKey = rawKeys
        self.bySHA256 = sha256Keys
        var byID: [String: (entry: KeyEntry, name: String?)] = [:]
        for entry in rawKeys.values { byID[entry.keyID] = (entry, names[entry.keyID]) }
        for entry in sha256Keys.values { byID[entry.keyID] = (entry, names[entry.keyID]) }
        self.byID = byID
    }

    /// Number of API keys.
    public var keyCount: Int { self.byRawKey.count + self.bySHA256.count }

    /// The entry of an API key as a gateway sent it; nil for an unknown key.
    public func resolve(apiKey: String) -> KeyEntry? {
        if let entry = self.byRawKey[apiKey] {
            return entry
        }
        if self.bySHA256.isEmpty {
            return nil
        }
        return self.bySHA256[KeyDigester.sha256(of: apiKey)]
    }

    /// The entry of a key given in the config as it is; nil otherwise.
    func resolve(rawKey: String) -> KeyEntry? {
        self.byRawKey[rawKey]
    }

    /// The entry of a key given in the config by its SHA-256; nil otherwise.
    func resolve(sha256 digest: [UInt8]) -> KeyEntry? {
        self.bySHA256.isEmpty ? nil : self.bySHA256[digest]
    }

    /// Whether some key is given by its SHA-256.
    var hasSHA256Keys: Bool { !self.bySHA256.isEmpty }
}
