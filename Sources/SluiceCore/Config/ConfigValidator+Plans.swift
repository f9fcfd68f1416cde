extension ConfigValidator {
    /// Section `plans`, by name; a plan with a problem is left out (and reported).
    mutating func plans(_ sections: [String: ConfigFile.PlanSection]?, usageRetentionDays: Int) -> [String: Plan] {
        var plans: [String: Plan] = [:]
        for (name, section) in (sections ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let plan = self.plan(name: name, section: section, usageRetentionDays: usageRetentionDays) {
                plans[name] = plan
            }
        }
        return plans
    }

    /// `plans.<name>`; nil when anything in it is wrong.
    private mutating func plan(name: String, section: ConfigFile.PlanSection, usageRetentionDays: Int) -> Plan? {
        let path = "plans." + name
        let problemsBefore = self.problems.count
        if name.isEmpty || name.utf8.count > 128 || name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            self.fail(path, "plan names must be 1-128 printable characters")
        }
        var throttle: TokenBucket?
        if let t = section.throttle {
            throttle = self.bucket(rate: t.rate, burst: t.burst, path: path + ".throttle")
        }
        var quota: Quota?
        if let q = section.quota {
            quota = self.quota(q, path: path + ".quota")
        }
        let policy = self.backendErrorPolicy(section.onBackendError, path: path + ".on_backend_error")
        let headers = self.headerStyles(section.headers ?? [], path: path + ".headers")
        let throttleUnit = self.unit(section.throttle?.unit, path: path + ".throttle.unit")
        let quotaUnit = self.unit(section.quota?.unit, path: path + ".quota.unit")
        let rules = self.routeRules(section.routes ?? [:], path: path + ".routes", stage: nil)
        var stages: [String: [RouteRule]]?
        if let stageSections = section.stages {
            stages = self.stages(stageSections, planRules: rules, path: path + ".stages")
        }
        let tokenLimits = self.tokenLimits(section, path: path)
        guard self.problems.count == problemsBefore else { return nil }
        return Plan(
            name: name, throttle: throttle, quota: quota, routes: rules, onBackendError: policy,
            throttleUnit: throttleUnit, quotaUnit: quotaUnit, headers: headers, shadow: section.shadow ?? false,
            usageRetentionDays: usageRetentionDays, stages: stages,
            namedLimits: tokenLimits.namedLimits, concurrency: tokenLimits.concurrency, prices: tokenLimits.prices
        )
    }

    /// A plan's `quota`, or a named limit's; nil when anything in it is wrong.
    mutating func quota(_ section: ConfigFile.QuotaSection, path: String) -> Quota? {
        let period = QuotaPeriod(rawValue: section.period.lowercased())
        if period == nil {
            self.fail(path + ".period", "must be day, week or month, not \"\(section.period)\"")
        }
        let limitOK = section.limit > 0 && section.limit <= 1_000_000_000_000_000
        if !limitOK {
            self.fail(path + ".limit", "must be a positive integer up to 10^15, not \(section.limit)")
        }
        let offset = section.offsetHours ?? 0
        let offsetOK = (0...23).contains(offset)
        if !offsetOK {
            self.fail(path + ".offset_hours", "must be between 0 and 23, not \(offset)")
        }
        let initialOffset = section.initialOffset ?? 0
        let initialOK = initialOffset >= 0 && initialOffset <= max(section.limit, 0)
        if !initialOK {
            self.fail(path + ".initial_offset", "must be between 0 and the quota's limit (\(section.limit)), not \(initialOffset)")
        }
        guard let period, limitOK, offsetOK, initialOK else { return nil }
        return Quota(limit: section.limit, period: period, offsetHours: offset, initialOffset: initialOffset)
    }

    /// A plan's `on_backend_error` (default `deny`).
    private mutating func backendErrorPolicy(_ text: String?, path: String) -> BackendErrorPolicy {
        guard let text else { return .deny }
        guard let policy = BackendErrorPolicy(rawValue: text.lowercased()) else {
            self.fail(path, "must be deny or allow, not \"\(text)\"")
            return .deny
        }
        return policy
    }

    /// A plan's `headers`: the IETF fields always, and the sets listed.
    private mutating func headerStyles(_ names: [String], path: String) -> Set<HeaderStyle> {
        var styles: Set<HeaderStyle> = [.ietf]
        for (index, name) in names.enumerated() {
            if let style = HeaderStyle(rawValue: name.lowercased()) {
                styles.insert(style)
            } else {
                self.fail(path + "[\(index)]", "must be ietf, legacy, openai or anthropic, not \"\(name)\"")
            }
        }
        return styles
    }

    /// A plan's `stages`: each stage's route rules, its own and the plan's (`planRules`), built
    /// for that stage.
    private mutating func stages(
        _ sections: [String: ConfigFile.StageSection],
        planRules: [RouteRule],
        path: String
    ) -> [String: [RouteRule]] {
        if sections.isEmpty {
            self.fail(path, "list at least one stage, or leave stages out to cover every stage")
        }
        var stages: [String: [RouteRule]] = [:]
        for (stage, section) in sections.sorted(by: { $0.key < $1.key }) {
            let spath = path + "." + stage
            if let problem = CheckRequest.stageProblem(stage) {
                self.fail(spath, problem)
                continue
            }
            var rules = self.routeRules(section.routes ?? [:], path: spath + ".routes", stage: stage)
            // The plan's routes apply on every stage it lists, as that stage's own buckets,
            // unless the stage has its own entry of the same shape.
            let own = Set(rules.map(\.pattern.description))
            rules += planRules.filter { !own.contains($0.pattern.description) }.map { $0.on(stage: stage) }
            stages[stage] = rules
        }
        return stages
    }

    /// The route rules of a `routes` mapping at `path` (a plan's, or a stage's when `stage` is set).
    private mutating func routeRules(_ sections: [String: ConfigFile.RouteSection], path: String, stage: String?) -> [RouteRule] {
        var rules: [RouteRule] = []
        var shapes: [String: String] = [:]
        var seenSuffixes: [String: String] = [:]
        for (key, route) in sections.sorted(by: { $0.key < $1.key }) {
            let rpath = path + "." + key
            let pattern: RoutePattern
            do {
                pattern = try RoutePattern(key)
            } catch {
                self.fail(rpath, error.reason)
                continue
            }
            if let other = shapes[pattern.description] {
                self.fail(rpath, "ties with \"\(other)\": both match the same requests equally specifically")
                continue
            }
            shapes[pattern.description] = key
            let unit = self.unit(route.unit, path: rpath + ".unit")
            guard let bucket = self.bucket(rate: route.rate, burst: route.burst, path: rpath) else { continue }
            let rule = RouteRule(key: key, pattern: pattern, bucket: bucket, additional: route.additional ?? false, unit: unit, stage: stage)
            if let other = seenSuffixes[rule.limit.keySuffix] {
                self.fail(rpath, "its state key collides with \"\(other)\"; rename one route")
                continue
            }
            seenSuffixes[rule.limit.keySuffix] = key
            rules.append(rule)
        }
        return rules
    }

    /// A token bucket (a throttle, a route's or a named limit's); nil when its rate or burst is wrong.
    mutating func bucket(rate: Double, burst: Int, path: String) -> TokenBucket? {
        var ok = true
        if !(rate > 0) || !rate.isFinite {
            self.fail(path + ".rate", "must be a positive number, not \(rate)")
            ok = false
        } else if rate > 1_000_000 {
            self.fail(path + ".rate", "must be at most 1000000 per second")
            ok = false
        }
        if burst <= 0 {
            self.fail(path + ".burst", "must be a positive integer, not \(burst)")
            ok = false
        } else if burst > 1_000_000_000 {
            self.fail(path + ".burst", "must be at most 1000000000")
            ok = false
        }
        // A bucket takes burst / rate seconds to refill; beyond ~3 years the script's
        // microsecond arithmetic would lose precision.
        if ok, Double(burst) / rate > 1e8 {
            self.fail(path, "burst / rate must be at most 100000000 seconds (about 3 years) to refill")
            ok = false
        }
        return ok ? TokenBucket(rate: rate, burst: burst) : nil
    }

    /// A limit's `unit` (default `requests`): requests or tokens (a named limit says what it
    /// counts with `counts`; `cost` and `concurrent-requests` are not units of these).
    private mutating func unit(_ text: String?, path: String) -> LimitUnit {
        guard let text else { return .requests }
        guard let unit = LimitUnit(rawValue: text.lowercased()), unit == .requests || unit == .tokens else {
            self.fail(path, "must be requests or tokens, not \"\(text)\"")
            return .requests
        }
        return unit
    }
}
