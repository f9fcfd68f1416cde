extension ConfigValidator {
    /// What a plan's `limits`, `concurrency` and `prices` sections yield.
    struct TokenLimitSections {
        /// Named limits, sorted by name.
        var namedLimits: [Limit] = []
        var concurrency: ConcurrencyLimit?
        var prices: [String: ModelPrice] = [:]
    }

    /// Names a named limit may not take: they name other things in decisions (the plan's
    /// throttle, quota and concurrency limit, and the denials of a stage or an unknown key).
    static let reservedLimitNames: Set<String> = ["throttle", "quota", ConcurrencyLimit.name, "stage", "unknown_api_key"]

    /// A plan's `limits`, `concurrency` and `prices` (at `path`, the plan's), and how they sit
    /// with the rest of the plan. Problems are reported; what is wrong is left out.
    mutating func tokenLimits(_ section: ConfigFile.PlanSection, path: String) -> TokenLimitSections {
        var result = TokenLimitSections()
        for (name, limit) in (section.limits ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let named = self.namedLimit(name: name, section: limit, path: path + ".limits." + name) {
                result.namedLimits.append(named)
            }
        }
        if let concurrency = section.concurrency {
            result.concurrency = self.concurrency(concurrency, path: path + ".concurrency")
        }
        for (model, price) in (section.prices ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let modelPrice = self.price(model: model, section: price, path: path + ".prices." + model) {
                result.prices[model] = modelPrice
            }
        }

        // Judged on what the file says, so that a limit with another problem still counts.
        let costLimits = (section.limits ?? [:]).filter { $0.value.counts.flatMap(Self.dimension) == .cost }.keys.sorted()
        if !costLimits.isEmpty, (section.prices ?? [:]).isEmpty {
            let names = costLimits.map { "\"\($0)\"" }.joined(separator: ", ")
            self.fail(path + ".prices", "is required: a limit that counts cost needs prices (\(names) \(costLimits.count == 1 ? "counts" : "count") cost); list each model's, or \"*\" for any model")
        }

        // Such plans go through the ledger script, which has neither shadow mode nor AWS's
        // initial quota offset.
        var ledgerSections: [String] = []
        if !(section.limits ?? [:]).isEmpty { ledgerSections.append("limits") }
        if section.concurrency != nil { ledgerSections.append("concurrency") }
        if !ledgerSections.isEmpty {
            let with = ledgerSections.joined(separator: " and ")
            if section.shadow == true {
                self.fail(path + ".shadow", "is not supported together with \(with): leave shadow out of this plan")
            }
            if let initialOffset = section.quota?.initialOffset, initialOffset > 0 {
                self.fail(path + ".quota.initial_offset", "is not supported together with \(with): leave initial_offset out of this plan")
            }
        }
        return result
    }

    /// `limits.<name>`; nil when anything in it is wrong.
    private mutating func namedLimit(name: String, section: ConfigFile.NamedLimitSection, path: String) -> Limit? {
        let problemsBefore = self.problems.count
        if Self.reservedLimitNames.contains(name) {
            self.fail(path, "\"\(name)\" is reserved (throttle, quota, concurrency, stage and unknown_api_key name other things in decisions); choose another name")
        } else if !Self.isLimitName(name) {
            self.fail(path, "limit names must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter or digit")
        }
        var counts = Dimension.requests
        if let text = section.counts {
            if let dimension = Self.dimension(text) {
                counts = dimension
            } else {
                self.fail(path + ".counts", "must be requests, input_tokens, output_tokens, total_tokens or cost, not \"\(text)\"")
            }
        }
        var kind: Limit.Kind?
        let isBucket = section.rate != nil || section.burst != nil
        switch (isBucket, section.quota) {
        case (true, .some):
            self.fail(path, "has both rate/burst and quota: a limit is either a token bucket (rate and burst) or a quota")
        case (false, .none):
            self.fail(path, "needs rate and burst (a token bucket) or quota")
        case (true, .none):
            if section.rate == nil {
                self.fail(path + ".rate", "is required with burst")
            } else if section.burst == nil {
                self.fail(path + ".burst", "is required with rate")
            } else if let rate = section.rate, let burst = section.burst, let bucket = self.bucket(rate: rate, burst: burst, path: path) {
                kind = .bucket(bucket)
            }
        case (false, .some(var quotaSection)):
            let qpath = path + ".quota"
            if quotaSection.initialOffset != nil {
                self.fail(qpath + ".initial_offset", "is not supported in a named limit's quota (only in the plan's quota)")
                quotaSection.initialOffset = nil
            }
            if quotaSection.unit != nil {
                self.fail(qpath + ".unit", "is not supported in a named limit's quota: the limit's counts says what it counts")
                quotaSection.unit = nil
            }
            if let quota = self.quota(quotaSection, path: qpath) {
                kind = .quota(quota)
            }
        }
        guard self.problems.count == problemsBefore, let kind else { return nil }
        return Limit.named(name, kind: kind, counts: counts)
    }

    /// `concurrency`; nil when anything in it is wrong.
    private mutating func concurrency(_ section: ConfigFile.ConcurrencySection, path: String) -> ConcurrencyLimit? {
        let problemsBefore = self.problems.count
        let limit = self.bounded(section.limit, path + ".limit", default: 1, 1...1_000_000)
        let leaseTTLSeconds = self.bounded(section.leaseTTLSeconds, path + ".lease_ttl_s", default: 30, 1...3600)
        guard self.problems.count == problemsBefore else { return nil }
        return ConcurrencyLimit(limit: limit, leaseTTLMs: leaseTTLSeconds * 1000)
    }

    /// `prices.<model>`; nil when anything in it is wrong.
    private mutating func price(model: String, section: ConfigFile.PriceSection, path: String) -> ModelPrice? {
        let problemsBefore = self.problems.count
        if model.isEmpty || model.utf8.count > 128 || model.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            self.fail(path, "model names must be 1-128 bytes with no control characters")
        }
        self.checkPrice(section.input, path: path + ".input")
        self.checkPrice(section.output, path: path + ".output")
        if let cachedInput = section.cachedInput {
            self.checkPrice(cachedInput, path: path + ".cached_input")
        }
        guard self.problems.count == problemsBefore else { return nil }
        return ModelPrice(input: section.input, output: section.output, cachedInput: section.cachedInput)
    }

    /// A price in cost units per token: finite, 0 to ``ModelPrice/maxPrice``.
    private mutating func checkPrice(_ value: Double, path: String) {
        if !value.isFinite || value < 0 || value > ModelPrice.maxPrice {
            self.fail(path, "must be a number between 0 and \(Int(ModelPrice.maxPrice)) (cost units per token), not \(value)")
        }
    }

    /// A `counts` value: a ``Dimension``'s name, any case.
    private static func dimension(_ text: String) -> Dimension? {
        Dimension(rawValue: text.lowercased())
    }

    /// `^[a-z0-9][a-z0-9_-]{0,63}$`: names that are safe in a state key and in header fields.
    private static func isLimitName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
        }
        return isAlphanumeric(bytes[0])
            && bytes.dropFirst().allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }
}
