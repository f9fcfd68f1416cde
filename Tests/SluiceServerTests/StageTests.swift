import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

/// API stages in plans (AWS's `apiStages`): a plan covers the stages it lists, each with its own
/// method throttles; the plan's throttle and quota span them all.
@Suite("API stages")
struct StageTests {
    static let yaml = """
        plans:
          staged:
            throttle: { rate: 0.01, burst: 3 }
            quota: { limit: 100, period: day }
            routes:
              "GET /models": { rate: 0.01, burst: 1 }
            stages:
              "mlApi/prod":
                routes: { "POST /predict": { rate: 0.01, burst: 2 } }
              "mlApi/dev": {}
          open:
            throttle: { rate: 0.01, burst: 2 }
          watched:
            throttle: { rate: 0.01, burst: 2 }
            shadow: true
            stages: { "mlApi/prod": {} }
        api_keys: [ { key: k, plan: staged }, { key: o, plan: open }, { key: w, plan: watched } ]
        """

    func check(_ h: ServerHarness, key: String = "k", route: String? = nil, stage: String?, cost: Int = 1) async throws -> ServerHarness.Answer {
        var fields = ["\"api_key\":\"\(key)\"", "\"cost\":\(cost)"]
        if let route { fields.append("\"route\":\"\(route)\"") }
        if let stage { fields.append("\"stage\":\"\(stage)\"") }
        return try await h.check("{" + fields.joined(separator: ",") + "}")
    }

    @Test("a stage's own route bucket; the same path on two stages is two buckets; the plan's throttle spans stages")
    func perStageBuckets() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let predict = try await self.check(h, route: "POST /predict", stage: "mlApi/prod")
            #expect(predict.allowed == true)
            #expect(predict.limits.map { $0["name"] as? String } == ["route:mlApi/prod:POST /predict", "quota"])
            #expect(predict.header("RateLimit-Policy")?.hasPrefix(#""route:mlApi/prod:POST /predict";q=2;w=200"#) == true)
            // The stage without its own routes: the plan throttle (dev has no POST /predict entry).
            let dev = try await self.check(h, route: "POST /predict", stage: "mlApi/dev")
            #expect(dev.limits.map { $0["name"] as? String } == ["throttle", "quota"])
            // The plan's route applies on every stage, as each stage's own bucket (burst 1 each).
            for stage in ["mlApi/prod", "mlApi/dev"] {
                let first = try await self.check(h, route: "GET /models", stage: stage)
                #expect(first.allowed == true && first.limits.first?["name"] as? String == "route:\(stage):GET /models", "\(stage)")
                let second = try await self.check(h, route: "GET /models", stage: stage)
                #expect(second.allowed == false && second.deniedBy == "route:\(stage):GET /models", "\(stage)")
            }
            // Throttle burst 3: one request on dev took a token; two more on prod and dev, then none.
            #expect(try await self.check(h, stage: "mlApi/prod").allowed == true)
            #expect(try await self.check(h, stage: "mlApi/dev").allowed == true)
            let out = try await self.check(h, stage: "mlApi/prod")
            #expect(out.allowed == false && out.deniedBy == "throttle")
            // The quota counted every admitted request, on both stages: 6 of 100.
            #expect(try await self.check(h, stage: "mlApi/dev", cost: 0).remaining(of: "quota") == 94)
        }
    }

    @Test("a stage the plan does not list: denied by \"stage\", never passable, nothing consumed; 403 through /v1/auth")
    func stageNotInPlan() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let r = try await self.check(h, stage: "mlApi/test")
            #expect(r.status == .ok && r.allowed == false && r.deniedBy == "stage" && r.retryAfterMs == -1)
            #expect(r.json["reason"] as? String == "stage_not_in_plan" && r.json["plan"] as? String == "staged" && r.limits.isEmpty)
            #expect(r.header("Retry-After") == nil)
            var fields = HTTPFields()
            fields[HTTPField.Name("X-API-Key")!] = "k"
            fields[HTTPField.Name("X-Sluice-Stage")!] = "otherApi/prod"
            let auth = try await h.send("/v1/auth", method: .get, headers: fields, body: nil)
            #expect(auth.status == .forbidden && auth.deniedBy == "stage")
            fields[HTTPField.Name("X-Sluice-Stage")!] = "mlApi/prod"
            #expect(try await h.send("/v1/auth", method: .get, headers: fields, body: nil).status == .noContent)
            #expect(try await self.check(h, stage: "mlApi/prod", cost: 0).remaining(of: "throttle") == 2)
            // A shadow plan never denies, a stage included: allowed and marked.
            let watched = try await self.check(h, key: "w", stage: "mlApi/dev")
            #expect(watched.allowed == true && watched.json["shadow_denied_by"] as? String == "stage")
            // ... nor one that names no stage (a 400 there would block traffic behind a gateway).
            let unnamed = try await self.check(h, key: "w", stage: nil)
            #expect(unnamed.status == .ok && unnamed.allowed == true && unnamed.json["shadow_denied_by"] as? String == "stage")
        }
    }

    @Test("no stage for a plan that lists stages: 400 missing_stage on every endpoint; a plan without stages ignores one")
    func missingStage() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let r = try await self.check(h, stage: nil)
            #expect(r.status == .badRequest && r.errorCode == "missing_stage")
            var fields = HTTPFields()
            fields[HTTPField.Name("X-API-Key")!] = "k"
            let auth = try await h.send("/v1/auth", method: .get, headers: fields, body: nil)
            #expect(auth.status == .badRequest && auth.errorCode == "missing_stage")
            let batch = try await h.send(
                "/v1/check/batch", method: .post, headers: [.contentType: "application/json"],
                body: #"{"checks":[{"api_key":"k"},{"api_key":"k","stage":"mlApi/prod"},{"api_key":"o","stage":"any/thing"},{"api_key":"k","stage":""}]}"#
            )
            let results = batch.json["results"] as? [[String: Any]] ?? []
            #expect(results.count == 4)
            #expect(((results.first?["error"] as? [String: Any])?["code"] as? String) == "missing_stage")
            #expect(results.dropFirst().first?["allowed"] as? Bool == true)
            #expect(results.dropFirst(2).first?["allowed"] as? Bool == true && results.dropFirst(2).first?["plan"] as? String == "open")
            #expect(((results.last?["error"] as? [String: Any])?["code"] as? String) == "invalid_stage")
            // Nothing was consumed by the refused requests: 3 - 1 (the batch's) tokens left.
            #expect(try await self.check(h, stage: "mlApi/prod", cost: 0).remaining(of: "throttle") == 2)
            let bad = try await h.check(#"{"api_key":"k","stage":7}"#)
            #expect(bad.status == .badRequest && bad.errorCode == "invalid_stage")
        }
    }

    @Test("the admin API's plan view shows stages with their routes, and the quota's initial_offset")
    func planView() async throws {
        let redis = try await RedisServer.start()
        let yaml = "admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }\n"
            + Self.yaml.replacingOccurrences(of: "quota: { limit: 100, period: day }", with: "quota: { limit: 100, period: day, initial_offset: 7 }")
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            let r = try await h.admin("/admin/v1/plans")
            let plans = r.json["plans"] as? [[String: Any]] ?? []
            let staged = try #require(plans.first { $0["name"] as? String == "staged" })
            #expect((staged["quota"] as? [String: Any])?["initial_offset"] as? Int == 7)
            let stages = staged["stages"] as? [[String: Any]] ?? []
            #expect(stages.map { $0["name"] as? String } == ["mlApi/dev", "mlApi/prod"])
            let prodRoutes = (stages.last?["routes"] as? [[String: Any]] ?? []).compactMap { $0["limit"] as? String }
            #expect(Set(prodRoutes) == ["route:mlApi/prod:POST /predict", "route:mlApi/prod:GET /models"])
            let open = try #require(plans.first { $0["name"] as? String == "open" })
            #expect(open["stages"] == nil)
        }
    }
}
