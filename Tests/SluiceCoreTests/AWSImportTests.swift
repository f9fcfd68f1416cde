import Foundation
import Testing
import Yams

@testable import SluiceCore

@Suite("AWS import")
struct AWSImportTests {
    /// A fixture of `Fixtures/aws`, shaped as `aws apigateway ... --output json` prints it.
    static func document(_ name: String) throws -> AWSExport.Document {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures/aws"))
        return AWSExport.Document(source: "\(name).json", data: try Data(contentsOf: url))
    }

    static func document(_ name: String, json: String) -> AWSExport.Document {
        AWSExport.Document(source: name, data: Data(json.utf8))
    }

    /// The whole fixture export: four plans, three of them with their keys, both REST APIs,
    /// the stages of one.
    static func fullExport() throws -> AWSExport {
        AWSExport(
            usagePlans: try self.document("usage-plans"),
            usagePlanKeys: [
                .init(plan: "up1basic", document: try self.document("usage-plan-keys-up1basic")),
                .init(plan: "up2pro", document: try self.document("usage-plan-keys-up2pro")),
                .init(plan: "draft", document: try self.document("usage-plan-keys-up4draft")),
            ],
            apiKeys: try self.document("api-keys"),
            restAPIs: try self.document("rest-apis"),
            stages: [.init(apiID: "k8s9api001", document: try self.document("stages-k8s9api001"))])
    }

    static let alice = KeyDigester.sha256Hex(of: "alice-key-0123456789abcdef")
    static let carol = KeyDigester.sha256Hex(of: "carol-key-0123456789abcdef")

    @Test("the fixture export becomes this config, which validates")
    func fullConversion() throws {
        let result = try AWSImport.convert(try Self.fullExport())
        let expected = """
            # Written by `sluice import-aws` from AWS API Gateway usage plans and API keys.
            # Every AWS setting it did not map as it was is listed on its standard error.
            plans:
              "draft":  # AWS usage plan up4draft
                throttle: { rate: 5, burst: 10 }
              "ml-basic":  # AWS usage plan up1basic
                throttle: { rate: 2, burst: 1 }
                quota: { limit: 1000, period: week, initial_offset: 2 }
                stages:
                  "mlApi/dev": {}
                  "mlApi/prod":
                    routes:
                      "* /*": { rate: 1, burst: 3 }
                      "* /files/*": { rate: 10, burst: 20 }
                      "GET /": { rate: 1, burst: 2 }
                      "GET /models/{model}": { rate: 2.5, burst: 4 }
                      "POST /predict": { rate: 10, burst: 5 }
              "ml-basic-2":  # AWS usage plan up3dup
                quota: { limit: 10, period: day }
                stages:
                  "mlApi/dev": {}
              "ml-pro":  # AWS usage plan up2pro
                throttle: { rate: 2.5, burst: 3 }
                quota: { limit: 50000, period: month }
                stages:
                  "mlApi/prod": {}
                  "searchApi/v1":
                    routes:
                      "GET /*": { rate: 5, burst: 10 }
                      "GET /search": { rate: 2.5, burst: 3 }
            api_keys:
              # AWS API key key1alice
              - key_sha256: "\(Self.alice)"
                plan: "ml-basic"
                name: "alice"
              # AWS API key key3carol
              - key_sha256: "\(Self.carol)"
                plan: "ml-pro"
                name: "carol"

            """
        #expect(result.yaml == expected)
        #expect(result.planCount == 4)
        #expect(result.keyCount == 2)
        let config = try ConfigLoader.parse(yaml: result.yaml, source: "imported.yaml")
        #expect(config.rules.plans.keys.sorted() == ["draft", "ml-basic", "ml-basic-2", "ml-pro"])
        #expect(config.rules.keyCount == 2)
    }

    @Test("every setting not imported as it was is noted, once, and nothing else is")
    func everyUnmappedSettingIsNoted() throws {
        let notes = try AWSImport.convert(try Self.fullExport()).notes
        let basic = "usage plan \"ml-basic\" (up1basic)"
        let pro = "usage plan \"ml-pro\" (up2pro)"
        let expected: [(subject: String, says: String)] = [
            ("REST API \"mlApi\" (k8s9api001)", "not imported: endpointConfiguration"),
            ("REST API \"searchApi\" (zz9api0002)", "apiKeySource AUTHORIZER"),
            ("REST API \"searchApi\" (zz9api0002)", "not imported: description, endpointConfiguration"),
            ("stage mlApi/prod", "method settings \"*/*\" throttle every caller of the stage together (rate 100, burst 50)"),
            ("stage mlApi/prod", "not rate limits, not imported: methodSettings \"*/*\""),
            ("stage mlApi/dev", "not rate limits, not imported: variables"),
            (basic, "description \"Basic tier\""),
            (basic, "tags {team: \"ml\"}"),
            (basic, "quota offset 2 is imported as initial_offset, which Sluice subtracts in each key's first window"),
            (basic, "quota period WEEK: Sluice's weeks start on Monday 00:00 UTC"),
            (basic + ", stage mlApi/prod", "method throttle \"/*/*\" is imported as \"* /*\"; Sluice's * matches one or more path segments"),
            (basic + ", stage mlApi/prod", "method throttle \"/a/*/b/GET\": a * inside a resource path has no Sluice counterpart"),
            (pro, "productCode \"prod-abc123\""),
            (pro, "throttle burstLimit 0: a bucket of no tokens admits nothing in Sluice"),
            (pro + ", stage searchApi/v1", "method throttle \"/*/GET\" is imported as \"GET /*\""),
            (pro + ", stage searchApi/v1", "method throttle \"/search/GET\" burstLimit 0"),
            (pro + ", stage searchApi/v1", "method throttle \"/{proxy+}/GET\" becomes \"GET /*\", the same pattern as method throttle \"/*/GET\""),
            ("usage plan \"ml-basic-2\" (up3dup)", "AWS name \"ml-basic\" is written as \"ml-basic-2\""),
            ("usage plan \"ml-basic-2\" (up3dup)", "unknown field newFeature = {enabled: true}"),
            ("usage plan \"ml-basic-2\" (up3dup)", "no get-usage-plan-keys output was given for it"),
            ("API key \"alice\" (key1alice)", "description \"Alice's key\""),
            ("API key \"alice\" (key1alice)", "customerId \"cust-1\""),
            ("API key \"alice\" (key1alice)", "tags {env: \"prod\"}"),
            ("API key \"alice\" (key1alice)", "bound to 2 usage plans; a Sluice key has one plan: imported with \(basic), the first of them in get-usage-plans order, not with \(pro); Sluice refuses its calls to searchApi/v1"),
            ("API key \"bob\" (key2bob)", "disabled in AWS"),
            ("API key \"carol\" (key3carol)", "stageKeys [\"k8s9api001/prod\"]"),
            ("API key \"dave\" (key4dave)", "its value is not in the export (run get-api-keys with --include-values)"),
            ("API key \"frank\" (key5frank)", "in no usage plan given"),
            ("API key key6gone", "listed by \(basic) but not in the get-api-keys output"),
            ("usage plan \"draft\" (up4draft)", "it lists no API stages, so AWS refuses its keys on every stage"),
        ]
        for (subject, says) in expected {
            let matching = notes.filter { $0.subject == subject && $0.message.contains(says) }
            #expect(matching.count == 1, "\(subject): \(says) — in \(notes.map(\.description))")
        }
        #expect(notes.count == expected.count, "\(notes.map(\.description))")
    }

    @Test(
        "AWS method-throttle keys become route patterns",
        arguments: [
            ("/predict/POST", "POST /predict"),
            ("/*/*", "* /*"),
            ("/*/GET", "GET /*"),
            ("//GET", "GET /"),
            ("/{proxy+}/GET", "GET /*"),
            ("/files/{proxy+}/ANY", "* /files/*"),
            ("/models/{model}/predict/post", "POST /models/{model}/predict"),
            ("/v1/users/{id}/DELETE", "DELETE /v1/users/{id}"),
        ])
    func routeMapping(aws: String, sluice: String) throws {
        let mapped = try AWSImport.route(fromAWS: aws).get()
        #expect(mapped.route == sluice)
        #expect((mapped.caveat != nil) == aws.hasPrefix("/*/"))
    }

    @Test(
        "AWS method-throttle keys Sluice cannot express are refused with a reason",
        arguments: [
            ("/a/*/b/GET", "a * inside a resource path"),
            ("/a/*/GET", "a * inside a resource path"),
            ("/{proxy+}/x/GET", "is not the last segment"),
            ("predict/POST", "not of the form"),
            ("/predict/", "names no HTTP method"),
            ("/predict/PO ST", "is not an HTTP method"),
            ("/pre{x}dict/GET", "has no Sluice counterpart"),
            ("/a?b/GET", "has no Sluice counterpart"),
        ])
    func unmappableRoutes(aws: String, reason: String) {
        switch AWSImport.route(fromAWS: aws) {
        case .success(let mapped):
            Issue.record("\(aws) mapped to \(mapped.route)")
        case .failure(let error):
            #expect(error.description.contains(reason), "\(error)")
        }
    }

    @Test("--include-values writes each key's value")
    func includeValues() throws {
        let result = try AWSImport.convert(try Self.fullExport(), includeValues: true)
        #expect(result.yaml.contains("  - key: \"alice-key-0123456789abcdef\"\n    plan: \"ml-basic\"\n"))
        #expect(!result.yaml.contains("key_sha256"))
        let config = try ConfigLoader.parse(yaml: result.yaml, source: "imported.yaml")
        #expect(config.rules.keyCount == 2)
    }

    @Test("without get-rest-apis, stages are named <API id>/<stage>, and get-stages is optional")
    func stagesByID() throws {
        var export = try Self.fullExport()
        export.restAPIs = nil
        export.stages = []
        let result = try AWSImport.convert(export)
        #expect(result.yaml.contains("      \"k8s9api001/prod\":\n"))
        #expect(result.yaml.contains("      \"zz9api0002/v1\":\n"))
        #expect(!result.yaml.contains("mlApi"))
        #expect(!result.notes.contains { $0.subject.hasPrefix("stage ") || $0.subject.hasPrefix("REST API") })
        _ = try ConfigLoader.parse(yaml: result.yaml, source: "imported.yaml")
    }

    @Test("a stage a plan lists that get-stages does not know is noted, and still imported")
    func unknownStage() throws {
        var export = try Self.fullExport()
        export.stages = [.init(apiID: "k8s9api001", document: Self.document("stages.json", json: #"{"item": [{"stageName": "prod"}]}"#))]
        let result = try AWSImport.convert(export)
        #expect(result.notes.contains {
            $0.subject == "usage plan \"ml-basic\" (up1basic), stage mlApi/dev" && $0.message.contains("get-stages does not list stage \"dev\"")
        })
        #expect(result.yaml.contains("\"mlApi/dev\": {}"))
    }

    @Test("the same input gives the same bytes; the order of keys in get-api-keys does not matter")
    func deterministic() throws {
        let first = try AWSImport.convert(try Self.fullExport())
        let second = try AWSImport.convert(try Self.fullExport())
        #expect(first.yaml == second.yaml)
        #expect(first.notes == second.notes)

        var reversed = try Self.fullExport()
        let keys = try JSONSerialization.jsonObject(with: reversed.apiKeys.data) as! [String: Any]
        let items = (keys["items"] as! [Any]).reversed()
        reversed.apiKeys = .init(source: "api-keys.json", data: try JSONSerialization.data(withJSONObject: ["items": Array(items)]))
        #expect(try AWSImport.convert(reversed).yaml == first.yaml)
    }

    /// An export of one usage plan (JSON text) with one enabled key bound to it.
    static func onePlan(_ plan: String, apiKeys: String? = nil) -> AWSExport {
        AWSExport(
            usagePlans: self.document("plans.json", json: #"{"items": [\#(plan)]}"#),
            usagePlanKeys: [.init(plan: "p1", document: self.document("keys.json", json: #"{"items": [{"id": "k1", "type": "API_KEY", "value": "k1-value-0123456789", "name": "k1"}]}"#))],
            apiKeys: self.document("api-keys.json", json: apiKeys ?? #"{"items": [{"id": "k1", "value": "k1-value-0123456789", "name": "k1", "enabled": true, "stageKeys": []}]}"#))
    }

    @Test("names that need quoting survive the YAML: quotes, backslashes, colons, braces, slashes, non-ASCII")
    func quoting() throws {
        let plan = #"{"id": "p1", "name": "tier \"gold\": #1 \\ {x} ✓", "apiStages": [{"apiId": "a1", "stage": "pr\"od", "throttle": {"/v1/{model}/it's/POST": {"rateLimit": 1, "burstLimit": 1}}}], "throttle": {"rateLimit": 1, "burstLimit": 2}}"#
        let keys = #"{"items": [{"id": "k1", "value": "k1-value-0123456789", "name": "o'brien \"x\" \\ ü", "enabled": true}]}"#
        let result = try AWSImport.convert(Self.onePlan(plan, apiKeys: keys), includeValues: true)
        let config = try ConfigLoader.parse(yaml: result.yaml, source: "imported.yaml")
        #expect(config.rules.plans.keys.sorted() == [#"tier "gold": #1 \ {x} ✓"#])
        let parsed = try #require(try Yams.load(yaml: result.yaml) as? [String: Any])
        let plans = try #require(parsed["plans"] as? [String: Any])
        let imported = try #require(plans[#"tier "gold": #1 \ {x} ✓"#] as? [String: Any])
        let stages = try #require(imported["stages"] as? [String: Any])
        let stage = try #require(stages[#"a1/pr"od"#] as? [String: Any])
        let routes = try #require(stage["routes"] as? [String: Any])
        #expect(routes.keys.sorted() == ["POST /v1/{model}/it's"])
        let apiKeys = try #require(parsed["api_keys"] as? [[String: Any]])
        #expect(apiKeys.first?["name"] as? String == #"o'brien "x" \ ü"#)
        #expect(apiKeys.first?["key"] as? String == "k1-value-0123456789")
    }

    @Test("a control character in a plan name is replaced, and the rename noted")
    func controlCharacters() throws {
        let result = try AWSImport.convert(Self.onePlan(#"{"id": "p1", "name": "two\nlines", "apiStages": [{"apiId": "a1", "stage": "prod"}]}"#))
        #expect(result.yaml.contains("  \"two-lines\":"))
        #expect(result.notes.contains { $0.message.contains(#"AWS name "two\nlines" is written as "two-lines""#) })
        _ = try ConfigLoader.parse(yaml: result.yaml, source: "imported.yaml")
    }

    @Test("throttle and quota edge cases: rate 0, fractional burst, offset above the limit, limit 0, an unknown period")
    func edgeCases() throws {
        let stages = #""apiStages": [{"apiId": "a1", "stage": "prod"}]"#
        var result = try AWSImport.convert(Self.onePlan(#"{"id": "p1", "name": "p", \#(stages), "throttle": {"rateLimit": 0, "burstLimit": 5}, "quota": {"limit": 100, "offset": 250, "period": "DAY"}}"#))
        #expect(!result.yaml.contains("throttle:"))
        #expect(result.yaml.contains("quota: { limit: 100, period: day, initial_offset: 100 }"))
        #expect(result.notes.contains { $0.message.contains("throttle rateLimit 0 (burstLimit 5): Sluice needs a positive rate") })
        #expect(result.notes.contains { $0.message.contains("quota offset 250 is above the limit 100") })
        #expect(result.notes.contains { $0.message.contains("quota offset 100 is imported as initial_offset") })
        _ = try ConfigLoader.parse(yaml: result.yaml, source: "imported.yaml")

        result = try AWSImport.convert(Self.onePlan(#"{"id": "p1", "name": "p", \#(stages), "throttle": {"rateLimit": 0.25, "burstLimit": 2.5}, "quota": {"limit": 10, "period": "YEAR"}}"#))
        #expect(result.yaml.contains("throttle: { rate: 0.25, burst: 2 }"))
        #expect(!result.yaml.contains("quota:"))
        #expect(result.notes.contains { $0.message.contains("burstLimit 2.5 is imported as 2") })
        #expect(result.notes.contains { $0.message.contains(#"quota period "YEAR" is not DAY, WEEK or MONTH"#) })

        // AWS admits nothing on a quota of 0: the key stays out (an unknown key is refused).
        result = try AWSImport.convert(Self.onePlan(#"{"id": "p1", "name": "p", \#(stages), "quota": {"limit": 0, "period": "DAY"}}"#))
        #expect(result.keyCount == 0)
        #expect(result.notes.contains { $0.message.contains("its quota limit is 0, so AWS admits no request of its keys") && $0.message.contains("its 1 key(s) are not imported") })
    }

    @Test("a single plan (get-usage-plan), a bare list (--query items) and a paginated export are read")
    func documentShapes() throws {
        let plan = #"{"id": "p1", "name": "p", "apiStages": [{"apiId": "a1", "stage": "prod"}], "throttle": {"rateLimit": 1, "burstLimit": 1}}"#
        var export = Self.onePlan(plan)
        export.usagePlans = Self.document("plan.json", json: plan)
        #expect(try AWSImport.convert(export).planCount == 1)
        export.usagePlans = Self.document("plans.json", json: "[\(plan)]")
        #expect(try AWSImport.convert(export).planCount == 1)
        export.usagePlans = Self.document("plans.json", json: #"{"items": [\#(plan)], "NextToken": "abc"}"#)
        let result = try AWSImport.convert(export)
        #expect(result.notes.contains { $0.subject == "plans.json" && $0.message.contains("only this page is imported") })
    }

    @Test("inputs that cannot be read fail with the file's name")
    func unreadableInputs() throws {
        var export = try Self.fullExport()
        export.apiKeys = Self.document("api-keys.json", json: "Error: not json")
        #expect(throws: AWSImportError.self) { try AWSImport.convert(export) }
        do {
            _ = try AWSImport.convert(export)
        } catch {
            #expect(error.description.hasPrefix("api-keys.json: not the JSON the aws CLI prints"))
        }

        export = try Self.fullExport()
        export.usagePlanKeys.append(.init(plan: "nope", document: Self.document("k.json", json: #"{"items": []}"#)))
        do {
            _ = try AWSImport.convert(export)
            Issue.record("an unknown plan id was accepted")
        } catch {
            #expect(error.description.contains("no usage plan has the id or name \"nope\""))
        }

        export = try Self.fullExport()
        export.usagePlanKeys.append(.init(plan: "ml-basic", document: Self.document("k.json", json: #"{"items": []}"#)))
        do {
            _ = try AWSImport.convert(export)
            Issue.record("an ambiguous plan name was accepted")
        } catch {
            #expect(error.description.contains("several usage plans are named \"ml-basic\""))
        }

        export = try Self.fullExport()
        export.usagePlanKeys.append(.init(plan: "up1basic", document: Self.document("k.json", json: #"{"items": []}"#)))
        do {
            _ = try AWSImport.convert(export)
            Issue.record("a plan's keys given twice were accepted")
        } catch {
            #expect(error.description.contains("given twice"))
        }
    }

    @Test("numbers are written in their shortest exact form")
    func numbers() {
        #expect(AWSImport.format(2) == "2")
        #expect(AWSImport.format(2.5) == "2.5")
        #expect(AWSImport.format(0.1) == "0.1")
        #expect(AWSImport.format(0.00001) == "0.00001")
        #expect(AWSImport.format(1_000_000) == "1000000")
    }
}
