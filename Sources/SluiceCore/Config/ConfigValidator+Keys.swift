extension ConfigValidator {
    /// `SLUICE_KEY_SECRET` (environment only; empty counts as unset), else the built-in default
    /// and a warning.
    func keySecret() -> (secret: String, warning: String?) {
        if let secret = self.settings.resolve(env: "SLUICE_KEY_SECRET"), !secret.value.isEmpty {
            return (secret.value, nil)
        }
        return (
            KeyDigester.defaultSecret,
            "SLUICE_KEY_SECRET is not set: key ids use the built-in default secret; set the same secret on every instance"
        )
    }

    /// Section `api_keys`, resolved against `plans` (the valid ones); `definedPlans` are all the
    /// file's plans, so that a key of a plan that has problems of its own is not reported as well.
    mutating func apiKeys(
        _ entries: [ConfigFile.APIKeySection]?,
        plans: [String: Plan],
        definedPlans: [String: ConfigFile.PlanSection]?,
        digester: KeyDigester,
        maxKeyBytes: Int
    ) -> RuleSet {
        var rawKeys: [String: KeyEntry] = [:]
        var shaKeys: [[UInt8]: KeyEntry] = [:]
        var seen: [[UInt8]: Int] = [:]
        var names: [String: String] = [:]
        for (index, entry) in (entries ?? []).enumerated() {
            let path = "api_keys[\(index)]"
            let plan = plans[entry.plan]
            if plan == nil, definedPlans?[entry.plan] == nil {
                self.fail(path + ".plan", "plan \"\(entry.plan)\" is not defined under plans")
            }
            guard let digest = self.keyDigest(entry, path: path, maxKeyBytes: maxKeyBytes) else { continue }
            if let first = seen[digest] {
                self.fail(path, "the same key as api_keys[\(first)]")
                continue
            }
            seen[digest] = index
            guard let plan else { continue }
            let keyEntry = KeyEntry(keyID: digester.keyID(sha256: digest), plan: plan)
            if let name = entry.name {
                if name.utf8.count > 200 {
                    self.fail(path + ".name", "must be at most 200 bytes")
                }
                names[keyEntry.keyID] = name
            }
            if let key = entry.key {
                rawKeys[key] = keyEntry
            } else {
                shaKeys[digest] = keyEntry
            }
        }
        return RuleSet(plans: plans, rawKeys: rawKeys, sha256Keys: shaKeys, names: names)
    }

    /// The SHA-256 of an entry's key: of its `key`, or its `key_sha256` decoded; nil when the
    /// entry has neither, both, or a malformed one (reported).
    private mutating func keyDigest(_ entry: ConfigFile.APIKeySection, path: String, maxKeyBytes: Int) -> [UInt8]? {
        switch (entry.key, entry.keySHA256) {
        case (nil, nil):
            self.fail(path, "needs key or key_sha256")
            return nil
        case (.some, .some):
            self.fail(path, "has both key and key_sha256; give one")
            return nil
        case (let key?, nil):
            if key.isEmpty {
                self.fail(path + ".key", "must not be empty")
                return nil
            }
            if key.utf8.count > maxKeyBytes {
                self.fail(path + ".key", "is longer than limits.max_api_key_bytes (\(maxKeyBytes))")
                return nil
            }
            return KeyDigester.sha256(of: key)
        case (nil, let hex?):
            guard hex.utf8.count == 64, let bytes = Hex.decode(hex) else {
                self.fail(path + ".key_sha256", "must be 64 hexadecimal characters (the SHA-256 of the key)")
                return nil
            }
            return bytes
        }
    }

    /// A file with nothing to enforce is almost always a mistake (an empty or half-written file):
    /// every key would turn unknown and every request be refused. So it needs a plan, and a key
    /// unless the admin API is on (keys can then be created at runtime).
    mutating func requireSomethingToEnforce(_ file: ConfigFile, adminOn: Bool) {
        if (file.plans ?? [:]).isEmpty {
            self.fail("plans", "at least one plan is required (a config without plans refuses every request)")
        } else if (file.apiKeys ?? []).isEmpty && !adminOn {
            self.fail(
                "api_keys",
                "at least one key is required when the admin API is off (admin:): no runtime key can exist, so every request would be refused"
            )
        }
    }
}
