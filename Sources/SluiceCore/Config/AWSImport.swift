import Foundation

/// The JSON documents `sluice import-aws` reads, each as `aws apigateway ... --output json`
/// printed it.
public struct AWSExport: Sendable {
    /// One document and where it came from (a file name, or `-` for standard input).
    public struct Document: Sendable {
        /// Named in messages: the file's path, or `<stdin>`.
        public let source: String
        /// The JSON text.
        public let data: Data

        /// Creates a document.
        public init(source: String, data: Data) {
            self.source = source
            self.data = data
        }
    }

    /// `get-usage-plan-keys --usage-plan-id ID` for one plan, which the output does not name.
    public struct PlanKeys: Sendable {
        /// The usage plan's id (or, if no plan has that id, its name when only one plan has it).
        public let plan: String
        /// The command's output.
        public let document: Document

        /// Creates one plan's keys.
        public init(plan: String, document: Document) {
            self.plan = plan
            self.document = document
        }
    }

    /// `get-stages --rest-api-id ID` for one REST API.
    public struct Stages: Sendable {
        /// The REST API's id (`--rest-api-id`).
        public let apiID: String
        /// The command's output.
        public let document: Document

        /// Creates one API's stages.
        public init(apiID: String, document: Document) {
            self.apiID = apiID
            self.document = document
        }
    }

    /// `get-usage-plans`.
    public var usagePlans: Document
    /// `get-usage-plan-keys`, one per plan.
    public var usagePlanKeys: [PlanKeys]
    /// `get-api-keys --include-values`.
    public var apiKeys: Document
    /// `get-rest-apis`, to name stages `<API name>/<stage>` instead of `<API id>/<stage>`.
    public var restAPIs: Document?
    /// `get-stages`, one per REST API.
    public var stages: [Stages]

    /// Creates an export.
    public init(usagePlans: Document, usagePlanKeys: [PlanKeys], apiKeys: Document, restAPIs: Document? = nil, stages: [Stages] = []) {
        self.usagePlans = usagePlans
        self.usagePlanKeys = usagePlanKeys
        self.apiKeys = apiKeys
        self.restAPIs = restAPIs
        self.stages = stages
    }
}

/// An input `sluice import-aws` cannot read at all (not JSON, a plan id that no plan has...).
public struct AWSImportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, naming the input.
    public let description: String

    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

/// One AWS setting that was not imported as it was, and why.
public struct AWSImportNote: Sendable, Hashable, CustomStringConvertible {
    /// What it is about: `usage plan "ml-basic" (a1b2c3)`, `API key "alice" (k1)`, `stage mlApi/prod`...
    public let subject: String
    /// What was not imported, or imported differently, and why.
    public let message: String

    /// Creates a note.
    public init(subject: String, message: String) {
        self.subject = subject
        self.message = message
    }

    /// `subject: message`, as `sluice import-aws` prints it.
    public var description: String { "\(self.subject): \(self.message)" }
}

/// What an import produced.
public struct AWSImportResult: Sendable {
    /// The config file (plans and api_keys).
    public let yaml: String
    /// Every AWS setting not imported as it was, in input order.
    public let notes: [AWSImportNote]
    /// Plans written.
    public let planCount: Int
    /// API keys written.
    public let keyCount: Int
}

/// Turns AWS API Gateway usage plans, their keys and (optionally) the REST APIs' names and
/// stages into Sluice plans and keys, listing every setting that has no Sluice counterpart.
///
/// What maps (README, "Coming from AWS API Gateway usage plans"): a usage plan is a plan
/// (its name, made unique), `throttle` the plan throttle, `quota` the quota (period lower-cased,
/// AWS's `offset` as `initial_offset`), `apiStages` the plan's `stages` named
/// `<API name>/<stage>`, each stage's method throttles its routes (`/predict/POST` →
/// `POST /predict`); an enabled key bound to a plan is an `api_keys` entry (its SHA-256,
/// or its value when asked), named as in AWS. Everything else is a note.
public enum AWSImport {
    /// Converts an export.
    /// - Parameter includeValues: write keys as `key:` (their value) instead of `key_sha256:`.
    /// - Throws: ``AWSImportError`` when a document cannot be read, or a plan named by
    ///   `usagePlanKeys` does not exist.
    public static func convert(_ export: AWSExport, includeValues: Bool = false) throws(AWSImportError) -> AWSImportResult {
        var converter = Converter(includeValues: includeValues)
        return try converter.run(export)
    }

    /// A number in its shortest form: integers without a fraction, no exponent.
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 {
            return String(Int64(value))
        }
        let text = "\(value)"
        guard text.contains("e") else { return text }
        var fixed = String(format: "%.12f", value)
        while fixed.hasSuffix("0") { fixed.removeLast() }
        if fixed.hasSuffix(".") { fixed.removeLast() }
        return fixed
    }

    /// The Sluice route key of an AWS method-throttle key (`"{resourcePath}/{httpMethod}"`).
    /// - Returns: the route key and, when it matches differently from AWS, why; or the reason
    ///   it cannot be expressed.
    static func route(fromAWS key: String) -> Result<(route: String, caveat: String?), AWSImportError> {
        guard let slash = key.lastIndex(of: "/"), key.first == "/" else {
            return .failure(AWSImportError("not of the form \"/resource/path/METHOD\""))
        }
        let method = String(key[key.index(after: slash)...])
        var path = String(key[..<slash])
        if path.isEmpty { path = "/" }
        guard !method.isEmpty else {
            return .failure(AWSImportError("names no HTTP method after the last /"))
        }
        let sluiceMethod: String
        if method == "*" || method.uppercased() == "ANY" {
            sluiceMethod = "*"
        } else {
            guard method.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || $0 == "-" || $0 == "_") }) else {
                return .failure(AWSImportError("\"\(method)\" is not an HTTP method"))
            }
            sluiceMethod = method.uppercased()
        }
        let pieces = path.split(separator: "/", omittingEmptySubsequences: true)
        var segments: [String] = []
        var caveat: String?
        for (index, piece) in pieces.enumerated() {
            let last = index == pieces.count - 1
            if piece == "*" {
                guard pieces.count == 1 else {
                    return .failure(AWSImportError("a * inside a resource path has no Sluice counterpart (only /* for every resource)"))
                }
                segments.append("*")
                caveat = "Sluice's * matches one or more path segments, so the root path / falls outside it (there the plan throttle applies)"
            } else if piece.hasPrefix("{") && piece.hasSuffix("+}") && piece.count > 3 {
                guard last else {
                    return .failure(AWSImportError("a greedy {\(piece.dropFirst().dropLast(2))+} parameter is not the last segment"))
                }
                segments.append("*")
            } else if piece.hasPrefix("{") && piece.hasSuffix("}") && piece.count > 2 {
                segments.append(String(piece))
            } else if piece.contains(where: { "{}* ?#".contains($0) }) {
                return .failure(AWSImportError("the path segment \"\(piece)\" has no Sluice counterpart"))
            } else {
                segments.append(String(piece))
            }
        }
        let route = "\(sluiceMethod) /\(segments.joined(separator: "/"))"
        do {
            _ = try RoutePattern(route)
        } catch {
            return .failure(AWSImportError("as \"\(route)\": \(error.reason)"))
        }
        return .success((route, caveat))
    }
}

/// One conversion: reads the documents, collects notes, builds the YAML.
private struct Converter {
    let includeValues: Bool
    var notes: [AWSImportNote] = []

    /// REST API id → name, for APIs whose name is unique among them.
    var apiNames: [String: String] = [:]
    /// REST API id → its stages, for APIs whose `get-stages` output was given.
    var knownStages: [String: Set<String>] = [:]

    init(includeValues: Bool) {
        self.includeValues = includeValues
    }

    /// A usage plan as read, before its keys are bound.
    struct PlanInfo {
        let id: String
        let awsName: String?
        let subject: String
        var entry: ConfigYAMLWriter.PlanEntry
        /// Why its keys are not imported (AWS refuses them everywhere), if so.
        var keysRefused: String?
    }

    /// A key binding from `get-usage-plan-keys`.
    struct Binding {
        let planID: String
        let value: String?
        let name: String?
    }

    mutating func note(_ subject: String, _ message: String) {
        self.notes.append(AWSImportNote(subject: subject, message: message))
    }

    mutating func run(_ export: AWSExport) throws(AWSImportError) -> AWSImportResult {
        if let restAPIs = export.restAPIs {
            try self.readRestAPIs(restAPIs)
        }
        var stagesSeen = Set<String>()
        for stages in export.stages {
            guard stagesSeen.insert(stages.apiID).inserted else {
                throw AWSImportError("get-stages output for REST API \(stages.apiID) given twice")
            }
            try self.readStages(stages)
        }

        let planObjects = try self.items(export.usagePlans, listKey: "items", single: "id", what: "usage plans")
        var plans: [PlanInfo] = []
        var usedNames = Set<String>()
        for (index, object) in planObjects.enumerated() {
            guard let plan = self.plan(object, index: index, source: export.usagePlans.source, usedNames: &usedNames) else { continue }
            if plans.contains(where: { $0.id == plan.id }) {
                throw AWSImportError("\(export.usagePlans.source): usage plan id \(plan.id) appears twice")
            }
            plans.append(plan)
        }

        // Bindings: key id → the plans that list it, in get-usage-plans order.
        var bindings: [String: [Binding]] = [:]
        var keysGiven = Set<String>()
        for planKeys in export.usagePlanKeys {
            let planID = try self.resolvePlan(planKeys.plan, plans: plans, source: planKeys.document.source)
            guard keysGiven.insert(planID).inserted else {
                throw AWSImportError("get-usage-plan-keys output for usage plan \(planID) given twice")
            }
            let subject = plans.first { $0.id == planID }!.subject
            for object in try self.items(planKeys.document, listKey: "items", single: nil, what: "usage plan keys") {
                guard let id = object["id"]?.string, !id.isEmpty else {
                    self.note("\(planKeys.document.source)", "an entry without an id: not imported")
                    continue
                }
                let type = object["type"]?.string ?? "API_KEY"
                if type != "API_KEY" {
                    self.note(subject, "key \(id) has type \(type); only API_KEY exists in Sluice: not imported")
                    continue
                }
                self.unknownFields(object, known: ["id", "type", "value", "name"], subject: "\(subject), key \(id)")
                bindings[id, default: []].append(Binding(planID: planID, value: object["value"]?.string, name: object["name"]?.string))
            }
        }
        for plan in plans where !keysGiven.contains(plan.id) {
            self.note(plan.subject, "no get-usage-plan-keys output was given for it (--usage-plan-keys \(plan.id)=FILE): none of its keys are imported")
        }
        let order = Dictionary(uniqueKeysWithValues: plans.enumerated().map { ($0.element.id, $0.offset) })
        for id in bindings.keys {
            bindings[id]!.sort { order[$0.planID]! < order[$1.planID]! }
        }

        let keys = try self.keys(export.apiKeys, bindings: bindings, plans: plans)
        for plan in plans where plan.keysRefused != nil {
            let refused = bindings.values.filter { $0.contains { $0.planID == plan.id } }.count
            if refused > 0 {
                self.note(plan.subject, "\(plan.keysRefused!): its \(refused) key(s) are not imported")
            }
        }

        let yaml = ConfigYAMLWriter.document(
            header: [
                "Written by `sluice import-aws` from AWS API Gateway usage plans and API keys.",
                "Every AWS setting it did not map as it was is listed on its standard error.",
            ],
            plans: plans.map(\.entry), keys: keys)
        return AWSImportResult(yaml: yaml, notes: self.notes, planCount: plans.count, keyCount: keys.count)
    }

    // MARK: documents

    /// The objects of a list output (`{"items": [...]}`), a single object output (with field
    /// `single`), or a bare array (`--query items`). Notes pagination left undone and unknown
    /// top-level fields.
    mutating func items(_ document: AWSExport.Document, listKey: String, single: String?, what: String) throws(AWSImportError) -> [[String: AWSJSON]] {
        let json = try AWSJSON.parse(document.data, source: document.source)
        let list: [AWSJSON]
        switch json {
        case .array(let values):
            list = values
        case .object(let top):
            if let single, top[single] != nil, top[listKey] == nil {
                list = [json]
            } else {
                let key = top[listKey] != nil ? listKey : (listKey == "item" ? "items" : "item")
                guard let values = top[key]?.array ?? (top[key] == nil ? [] : nil) else {
                    throw AWSImportError("\(document.source): \"\(key)\" is not a list of \(what)")
                }
                list = values
                for (field, value) in top.sorted(by: { $0.key < $1.key }) where field != key && !value.isEmpty {
                    switch field {
                    case "position", "NextToken":
                        self.note(document.source, "more \(what) exist than this output holds (\(field) is set): only this page is imported; export again without --max-items or --no-paginate")
                    case "warnings":
                        self.note(document.source, "AWS warnings: \(value.summary)")
                    default:
                        self.note(document.source, "unknown top-level field \(field) = \(value.summary): not imported")
                    }
                }
            }
        default:
            throw AWSImportError("\(document.source): expected the aws CLI's JSON output of \(what), found \(json.summary.prefix(40))")
        }
        var objects: [[String: AWSJSON]] = []
        for value in list {
            guard let object = value.object else {
                throw AWSImportError("\(document.source): an entry of the \(what) is not an object: \(value.summary.prefix(40))")
            }
            objects.append(object)
        }
        return objects
    }

    /// Notes every non-empty field outside `known`.
    mutating func unknownFields(_ object: [String: AWSJSON], known: Set<String>, subject: String) {
        for (field, value) in object.sorted(by: { $0.key < $1.key }) where !known.contains(field) && !value.isEmpty {
            self.note(subject, "unknown field \(field) = \(value.summary): not imported")
        }
    }

    mutating func readRestAPIs(_ document: AWSExport.Document) throws(AWSImportError) {
        var names: [String: [String]] = [:]
        for object in try self.items(document, listKey: "items", single: "id", what: "REST APIs") {
            guard let id = object["id"]?.string else {
                throw AWSImportError("\(document.source): a REST API without an id")
            }
            let name = object["name"]?.string
            let subject = "REST API \(name.map { ConfigYAMLWriter.quoted($0) + " " } ?? "")(\(id))"
            if let name { names[name, default: []].append(id) }
            if object["apiKeySource"]?.string == "AUTHORIZER" {
                self.note(subject, "apiKeySource AUTHORIZER (a Lambda authorizer supplies the key): Sluice reads the key from a header (server.api_key_header) or the check's api_key; have the gateway pass the key the authorizer chose")
            }
            // Only the name is used; the API's own settings are not rate limits.
            let bookkeeping: Set<String> = ["id", "name", "createdDate", "rootResourceId", "apiKeySource"]
            let others = object.keys.sorted().filter { !bookkeeping.contains($0) && !object[$0]!.isEmpty }
            if !others.isEmpty {
                self.note(subject, "only its name is used (to name stages); its other settings are not rate limits and are not imported: \(others.joined(separator: ", "))")
            }
        }
        for (name, ids) in names {
            if ids.count == 1 {
                self.apiNames[ids[0]] = name
            } else {
                self.note(document.source, "REST APIs \(ids.sorted().joined(separator: ", ")) share the name \(ConfigYAMLWriter.quoted(name)): their stages are named by API id instead")
            }
        }
    }

    mutating func readStages(_ stages: AWSExport.Stages) throws(AWSImportError) {
        let apiLabel = self.apiNames[stages.apiID] ?? stages.apiID
        var names = Set<String>()
        for object in try self.items(stages.document, listKey: "item", single: "stageName", what: "stages") {
            guard let stageName = object["stageName"]?.string else {
                throw AWSImportError("\(stages.document.source): a stage without a stageName")
            }
            names.insert(stageName)
            let subject = "stage \(apiLabel)/\(stageName)"
            var otherMethodSettings: [String] = []
            for (key, value) in (object["methodSettings"]?.object ?? [:]).sorted(by: { $0.key < $1.key }) {
                let settings = value.object ?? [:]
                let rate = settings["throttlingRateLimit"]
                let burst = settings["throttlingBurstLimit"]
                if rate != nil || burst != nil {
                    self.note(subject, "method settings \(ConfigYAMLWriter.quoted(key)) throttle every caller of the stage together (rate \(rate?.summary ?? "unset"), burst \(burst?.summary ?? "unset")); Sluice limits each key, so this stage-wide limit is not imported")
                }
                if settings.contains(where: { !["throttlingRateLimit", "throttlingBurstLimit"].contains($0.key) && !$0.value.isEmpty }) {
                    otherMethodSettings.append(key)
                }
            }
            let bookkeeping: Set<String> = ["stageName", "deploymentId", "createdDate", "lastUpdatedDate", "cacheClusterStatus", "methodSettings"]
            var others = object.keys.sorted().filter { !bookkeeping.contains($0) && !object[$0]!.isEmpty }
            others += otherMethodSettings.map { "methodSettings \(ConfigYAMLWriter.quoted($0)) (caching, logging, metrics)" }
            if !others.isEmpty {
                self.note(subject, "settings that are not rate limits, not imported: \(others.joined(separator: ", "))")
            }
        }
        self.knownStages[stages.apiID] = names
    }

    // MARK: plans

    /// A valid, unique plan name for an AWS name (1-128 bytes, no control characters).
    func planName(_ awsName: String?, id: String, usedNames: Set<String>) -> String {
        var base = String(String.UnicodeScalarView((awsName ?? "").unicodeScalars.map {
            $0.properties.generalCategory == .control ? "-" : $0
        })).trimmingCharacters(in: .whitespaces)
        if base.isEmpty { base = "plan-\(id)" }
        while base.utf8.count > 120 { base.removeLast() }
        var name = base
        var counter = 2
        while usedNames.contains(name) {
            name = "\(base)-\(counter)"
            counter += 1
        }
        return name
    }

    mutating func plan(_ object: [String: AWSJSON], index: Int, source: String, usedNames: inout Set<String>) -> PlanInfo? {
        guard let id = object["id"]?.string, !id.isEmpty else {
            self.note(source, "usage plan #\(index + 1) has no id: not imported")
            return nil
        }
        let awsName = object["name"]?.string
        let name = self.planName(awsName, id: id, usedNames: usedNames)
        usedNames.insert(name)
        let subject = "usage plan \(ConfigYAMLWriter.quoted(name)) (\(id))"
        if name != awsName {
            self.note(subject, "AWS name \(awsName.map { ConfigYAMLWriter.quoted($0) } ?? "(none)") is written as \(ConfigYAMLWriter.quoted(name)) (plan names are unique, 1-128 bytes, no control characters)")
        }
        self.unknownFields(object, known: ["id", "name", "description", "apiStages", "throttle", "quota", "productCode", "tags"], subject: subject)
        if let description = object["description"], !description.isEmpty {
            self.note(subject, "description \(description.summary): Sluice plans have none; not imported")
        }
        if let productCode = object["productCode"], !productCode.isEmpty {
            self.note(subject, "productCode \(productCode.summary) (AWS Marketplace): no Sluice counterpart; not imported")
        }
        if let tags = object["tags"], !tags.isEmpty {
            self.note(subject, "tags \(tags.summary): not imported")
        }

        var entry = ConfigYAMLWriter.PlanEntry(name: name, comment: "AWS usage plan \(id)")
        entry.throttle = self.bucket(object["throttle"], subject: subject, what: "throttle")
        var info = PlanInfo(id: id, awsName: awsName, subject: subject, entry: entry)
        self.quota(object["quota"], into: &info)

        let apiStages = object["apiStages"]?.array ?? []
        if object["apiStages"] != nil && object["apiStages"]?.array == nil {
            self.note(subject, "apiStages is not a list: not imported")
        }
        if apiStages.isEmpty {
            info.keysRefused = info.keysRefused ?? "it lists no API stages, so AWS refuses its keys on every stage, while a Sluice plan without stages covers every stage"
        } else {
            var stages: [String: [String: ConfigYAMLWriter.Bucket]] = [:]
            for value in apiStages {
                guard let stage = value.object, let apiID = stage["apiId"]?.string, let stageName = stage["stage"]?.string else {
                    self.note(subject, "an API stage without apiId and stage: \(value.summary): not imported")
                    continue
                }
                guard let sluiceName = self.stageName(apiID: apiID, stage: stageName, subject: subject) else { continue }
                let stageSubject = "\(subject), stage \(sluiceName)"
                self.unknownFields(stage, known: ["apiId", "stage", "throttle"], subject: stageSubject)
                if stages[sluiceName] != nil {
                    self.note(stageSubject, "listed twice: the second entry is not imported")
                    continue
                }
                if let known = self.knownStages[apiID], !known.contains(stageName) {
                    self.note(stageSubject, "get-stages does not list stage \(ConfigYAMLWriter.quoted(stageName)) of API \(apiID); imported as AWS lists it in the plan")
                }
                stages[sluiceName] = self.methodThrottles(stage["throttle"], subject: stageSubject)
            }
            if stages.isEmpty {
                info.keysRefused = info.keysRefused ?? "none of its API stages could be imported"
            } else {
                info.entry.stages = stages
            }
        }
        return info
    }

    /// `<API name>/<stage>` when the API's name is known and unique, else `<API id>/<stage>`.
    mutating func stageName(apiID: String, stage: String, subject: String) -> String? {
        func valid(_ name: String) -> Bool {
            !name.isEmpty && name.utf8.count <= 128 && !name.unicodeScalars.contains { $0.properties.generalCategory == .control }
        }
        if let apiName = self.apiNames[apiID] {
            let name = "\(apiName)/\(stage)"
            if valid(name) { return name }
            self.note(subject, "stage name \(ConfigYAMLWriter.quoted(name)) is not a valid Sluice stage name (1-128 bytes, no control characters): named \(apiID)/\(stage) instead")
        }
        let name = "\(apiID)/\(stage)"
        if valid(name) { return name }
        self.note(subject, "stage \(ConfigYAMLWriter.quoted(name)) is not a valid Sluice stage name (1-128 bytes, no control characters): not imported")
        return nil
    }

    /// A stage's method throttles as route keys; the ones Sluice cannot express are noted.
    mutating func methodThrottles(_ value: AWSJSON?, subject: String) -> [String: ConfigYAMLWriter.Bucket] {
        guard let value, !value.isEmpty else { return [:] }
        guard let throttles = value.object else {
            self.note(subject, "throttle is not a map of method throttles: \(value.summary): not imported")
            return [:]
        }
        var routes: [String: ConfigYAMLWriter.Bucket] = [:]
        var shapes: [String: String] = [:]
        for (awsKey, settings) in throttles.sorted(by: { $0.key < $1.key }) {
            let what = "method throttle \(ConfigYAMLWriter.quoted(awsKey))"
            let route: String
            switch AWSImport.route(fromAWS: awsKey) {
            case .failure(let error):
                self.note(subject, "\(what): \(error.description); not imported (the plan throttle applies there instead)")
                continue
            case .success(let mapped):
                route = mapped.route
                if let caveat = mapped.caveat {
                    self.note(subject, "\(what) is imported as \(ConfigYAMLWriter.quoted(route)); \(caveat)")
                }
            }
            // Two AWS keys may become one Sluice pattern (/{proxy+}/GET and /*/GET).
            let shape = (try? RoutePattern(route))?.description ?? route
            if let other = shapes[shape] {
                self.note(subject, "\(what) becomes \(ConfigYAMLWriter.quoted(route)), the same pattern as method throttle \(ConfigYAMLWriter.quoted(other)): not imported")
                continue
            }
            guard let bucket = self.bucket(settings, subject: subject, what: what) else { continue }
            shapes[shape] = awsKey
            routes[route] = bucket
        }
        return routes
    }

    /// A token bucket from AWS throttle settings (`rateLimit`, `burstLimit`), or nil (noted).
    mutating func bucket(_ value: AWSJSON?, subject: String, what: String) -> ConfigYAMLWriter.Bucket? {
        guard let value, value != .null else { return nil }
        guard let settings = value.object else {
            self.note(subject, "\(what) is not an object: \(value.summary): not imported")
            return nil
        }
        if settings.isEmpty { return nil }
        self.unknownFields(settings, known: ["rateLimit", "burstLimit"], subject: "\(subject), \(what)")
        let rateValue = settings["rateLimit"]?.number
        let burstValue = settings["burstLimit"]?.number
        if settings["rateLimit"] != nil && rateValue == nil || settings["burstLimit"] != nil && burstValue == nil {
            self.note(subject, "\(what) \(value.summary) has a rate or burst that is not a number: not imported")
            return nil
        }
        var rate = rateValue ?? 0
        let awsBurst = burstValue ?? 0
        guard rate > 0, rate.isFinite else {
            self.note(subject, "\(what) rateLimit \(AWSImport.format(rate)) (burstLimit \(AWSImport.format(awsBurst))): Sluice needs a positive rate, so no throttle is imported here")
            return nil
        }
        if rate > 1_000_000 {
            self.note(subject, "\(what) rateLimit \(AWSImport.format(rate)) is above Sluice's maximum: imported as 1000000 per second")
            rate = 1_000_000
        }
        var burst: Int
        if awsBurst >= 1 {
            burst = Int(min(awsBurst.rounded(.down), 1_000_000_000))
            if Double(burst) != awsBurst {
                self.note(subject, "\(what) burstLimit \(AWSImport.format(awsBurst)) is imported as \(burst) (a whole number of tokens, at most 1000000000)")
            }
        } else {
            burst = max(1, Int(rate.rounded(.up)))
            self.note(subject, "\(what) burstLimit \(settings["burstLimit"] == nil ? "unset" : AWSImport.format(awsBurst)): a bucket of no tokens admits nothing in Sluice and AWS does not document what it admits; imported as burst \(burst) (one second at rateLimit \(AWSImport.format(rate))), set it as you need")
        }
        if Double(burst) / rate > 1e8 {
            self.note(subject, "\(what) rate \(AWSImport.format(rate)) with burst \(burst) would take more than 100000000 seconds to refill, beyond Sluice's bound: not imported")
            return nil
        }
        return ConfigYAMLWriter.Bucket(rate: rate, burst: burst)
    }

    /// The quota: `limit`, `period` lower-cased, `offset` as `initial_offset`.
    mutating func quota(_ value: AWSJSON?, into info: inout PlanInfo) {
        let subject = info.subject
        guard let value, !value.isEmpty else { return }
        guard let settings = value.object else {
            self.note(subject, "quota is not an object: \(value.summary): not imported")
            return
        }
        self.unknownFields(settings, known: ["limit", "period", "offset"], subject: "\(subject), quota")
        guard let limitValue = settings["limit"]?.number, limitValue == limitValue.rounded(),
            let period = settings["period"]?.string
        else {
            self.note(subject, "quota \(value.summary) lacks a whole-number limit or a period: not imported")
            return
        }
        guard ["day", "week", "month"].contains(period.lowercased()) else {
            self.note(subject, "quota period \(ConfigYAMLWriter.quoted(period)) is not DAY, WEEK or MONTH: quota not imported")
            return
        }
        guard limitValue >= 1 else {
            info.keysRefused = "its quota limit is \(AWSImport.format(limitValue)), so AWS admits no request of its keys, and Sluice needs a positive limit"
            return
        }
        let limit = Int(min(limitValue, 1e15))
        if Double(limit) != limitValue {
            self.note(subject, "quota limit \(AWSImport.format(limitValue)) is above Sluice's maximum: imported as \(limit)")
        }
        var initialOffset = 0
        if let offsetJSON = settings["offset"], offsetJSON != .null {
            let offset = offsetJSON.number ?? -1
            if offset < 0 || offset != offset.rounded() {
                self.note(subject, "quota offset \(offsetJSON.summary) is not a whole number of requests: not imported")
            } else if offset > Double(limit) {
                initialOffset = limit
                self.note(subject, "quota offset \(AWSImport.format(offset)) is above the limit \(limit): imported as initial_offset \(limit) (nothing admitted in the first period)")
            } else {
                initialOffset = Int(offset)
            }
        }
        if initialOffset > 0 {
            self.note(subject, "quota offset \(initialOffset) is imported as initial_offset, which Sluice subtracts in each key's first window (that of its first request counted after the import), while AWS subtracted it in the plan's initial period: if that period is over, remove initial_offset")
        }
        if period.lowercased() == "week" {
            self.note(subject, "quota period WEEK: Sluice's weeks start on Monday 00:00 UTC; AWS's API reference once documented weeks starting on Sunday, and offset_hours (0-23) cannot shift a window by a day: see README, \"Coming from AWS API Gateway usage plans\"")
        }
        info.entry.quota = ConfigYAMLWriter.QuotaEntry(limit: limit, period: period.lowercased(), initialOffset: initialOffset)
    }

    /// The id of the plan `reference` names: a plan id, else the name of exactly one plan.
    func resolvePlan(_ reference: String, plans: [PlanInfo], source: String) throws(AWSImportError) -> String {
        if plans.contains(where: { $0.id == reference }) { return reference }
        let named = plans.filter { $0.awsName == reference }
        if named.count == 1 { return named[0].id }
        if named.count > 1 {
            throw AWSImportError("\(source): several usage plans are named \(ConfigYAMLWriter.quoted(reference)); give the plan's id")
        }
        throw AWSImportError("\(source): no usage plan has the id or name \(ConfigYAMLWriter.quoted(reference)) (ids: \(plans.map(\.id).joined(separator: ", ")))")
    }

    // MARK: keys

    mutating func keys(_ document: AWSExport.Document, bindings: [String: [Binding]], plans: [PlanInfo]) throws(AWSImportError) -> [ConfigYAMLWriter.KeyEntry] {
        let plansByID = Dictionary(uniqueKeysWithValues: plans.map { ($0.id, $0) })
        var entries: [ConfigYAMLWriter.KeyEntry] = []
        var seenIDs = Set<String>()
        var seenValues: [String: String] = [:]
        for object in try self.items(document, listKey: "items", single: "id", what: "API keys") {
            guard let id = object["id"]?.string, !id.isEmpty else {
                self.note(document.source, "an API key without an id: not imported")
                continue
            }
            guard seenIDs.insert(id).inserted else {
                self.note(document.source, "API key \(id) appears twice: the second is not imported")
                continue
            }
            let name = object["name"]?.string ?? bindings[id]?.first?.name
            let subject = "API key \(name.map { ConfigYAMLWriter.quoted($0) + " " } ?? "")(\(id))"
            self.unknownFields(object, known: ["id", "value", "name", "customerId", "description", "enabled", "createdDate", "lastUpdatedDate", "stageKeys", "tags"], subject: subject)
            for field in ["description", "customerId", "tags"] {
                if let value = object[field], !value.isEmpty {
                    self.note(subject, "\(field) \(value.summary): not imported")
                }
            }
            if let stageKeys = object["stageKeys"], !stageKeys.isEmpty {
                self.note(subject, "stageKeys \(stageKeys.summary) (stages bound to the key itself, outside usage plans): not imported; the key's plan decides its stages")
            }
            let bound = (bindings[id] ?? []).filter { plansByID[$0.planID]?.keysRefused == nil }
            if object["enabled"]?.bool == false {
                self.note(subject, "disabled in AWS, which refuses it: not imported (Sluice refuses it too, as an unknown key)")
                continue
            }
            guard let chosen = bound.first else {
                if bindings[id] == nil {
                    self.note(subject, "in no usage plan given, so AWS refuses it on methods that need a key: not imported")
                }
                continue
            }
            guard let value = object["value"]?.string ?? chosen.value, !value.isEmpty else {
                self.note(subject, "its value is not in the export (run get-api-keys with --include-values): not imported")
                continue
            }
            if let other = seenValues[value] {
                self.note(subject, "has the same value as API key \(other): not imported twice")
                continue
            }
            seenValues[value] = id
            let plan = plansByID[chosen.planID]!
            if bound.count > 1 {
                let others = bound.dropFirst().map { plansByID[$0.planID]!.subject }
                let kept = Set(plan.entry.stages?.keys.map { $0 } ?? [])
                let lost = Set(bound.dropFirst().flatMap { plansByID[$0.planID]!.entry.stages?.keys.map { $0 } ?? [] })
                    .subtracting(kept).sorted()
                self.note(subject, "bound to \(bound.count) usage plans; a Sluice key has one plan: imported with \(plan.subject), the first of them in get-usage-plans order, not with \(others.joined(separator: ", "))" + (lost.isEmpty ? "" : "; Sluice refuses its calls to \(lost.joined(separator: ", ")), which only the other plans list"))
            }
            entries.append(ConfigYAMLWriter.KeyEntry(
                key: self.includeValues ? value : KeyDigester.sha256Hex(of: value),
                isDigest: !self.includeValues,
                plan: plan.entry.name,
                name: name,
                comment: "AWS API key \(id)"))
        }
        // Keys a plan lists that get-api-keys does not.
        for (id, bound) in bindings.sorted(by: { $0.key < $1.key }) where !seenIDs.contains(id) {
            let subjects = bound.map { plansByID[$0.planID]!.subject }.joined(separator: ", ")
            self.note("API key \(id)", "listed by \(subjects) but not in the get-api-keys output, so whether it is enabled is unknown: not imported")
        }
        return entries
    }
}
