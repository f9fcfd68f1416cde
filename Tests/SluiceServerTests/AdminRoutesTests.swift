import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

@Suite("Admin API (one listener)")
struct AdminRoutesTests {
    static let yaml = """
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans:
          p: { throttle: { rate: 2.5, burst: 4 }, quota: { limit: 10, period: week, offset_hours: 3 }, routes: { "POST /x/{y}": { rate: 1, burst: 1, additional: true } } }
        api_keys: [ { key: k, plan: p } ]
        """

    @Test("auth: 401 without a token, 403 with a wrong one, 200 with the right one and the plan as configured")
    func auth() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let missing = try await h.admin("/admin/v1/plans", token: nil)
            #expect(missing.status == .unauthorized && missing.errorCode == "missing_token", "\(missing.text)")
            #expect(missing.header("WWW-Authenticate") == #"Bearer realm="sluice""#)
            #expect(missing.json["plans"] == nil, "no plan shown without a token")
            let wrong = try await h.admin("/admin/v1/plans", token: "guess")
            #expect(wrong.status == .forbidden && wrong.errorCode == "invalid_token")
            #expect(wrong.json["plans"] == nil && wrong.header("WWW-Authenticate") == nil)
            let plans = try await h.admin("/admin/v1/plans", token: "admin-secret")
            #expect(plans.status == .ok && plans.header("Cache-Control") == "no-store")
            let all = try #require(plans.json["plans"] as? [[String: Any]])
            #expect(all.count == 1)
            let plan = try #require(all.first)
            #expect(plan["name"] as? String == "p")
            let throttle = plan["throttle"] as? [String: Any]
            #expect(throttle?["rate"] as? Double == 2.5 && throttle?["burst"] as? Int == 4)
            let quota = plan["quota"] as? [String: Any]
            #expect(quota?["limit"] as? Int == 10 && quota?["period"] as? String == "week")
            #expect(quota?["offset_hours"] as? Int == 3 && quota?["initial_offset"] as? Int == 0)
            #expect(plan["on_backend_error"] as? String == "deny" && plan["shadow"] as? Bool == false)
            #expect(plan["headers"] as? [String] == ["ietf"] && plan["stages"] == nil)
            let routes = try #require(plan["routes"] as? [[String: Any]])
            #expect(routes.count == 1)
            #expect(routes.first?["key"] as? String == "POST /x/{y}" && routes.first?["limit"] as? String == "route:POST /x/{y}")
            #expect(routes.first?["rate"] as? Double == 1 && routes.first?["burst"] as? Int == 1 && routes.first?["additional"] as? Bool == true)
        }
    }

    @Test("keys/lookup gives the key id, never the key; reload needs a config file")
    func lookup() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let known = try await h.admin("/admin/v1/keys/lookup", method: .post, token: "admin-secret", body: #"{"api_key":"k"}"#)
            #expect(known.status == .ok && known.json["id"] as? String == ServerHarness.keyID("k"))
            #expect(known.json["known"] as? Bool == true && known.json["plan"] as? String == "p" && known.json["source"] as? String == "config")
            #expect(!known.text.contains("\"k\""))
            let unknown = try await h.admin("/admin/v1/keys/lookup", method: .post, token: "admin-secret", body: #"{"api_key":"zz"}"#)
            // An unknown key still gets its id (what its Redis state would be named), and no plan.
            #expect(unknown.status == .ok && unknown.json["id"] as? String == ServerHarness.keyID("zz"))
            #expect(unknown.json["known"] as? Bool == false && unknown.json["plan"] is NSNull && unknown.json["source"] is NSNull)
            for bad in ["{", #"{"api_key":""}"#, #"{"api_key":7}"#] {
                let answer = try await h.admin("/admin/v1/keys/lookup", method: .post, token: "admin-secret", body: bad)
                #expect(answer.status == .badRequest && answer.errorCode == "invalid_body", "\(bad): \(answer.text)")
            }
            // This harness builds the app from a config value, not a file: nothing to re-read.
            let reload = try await h.admin("/admin/v1/reload", method: .post, token: "admin-secret")
            #expect(reload.status == .notFound && reload.errorCode == "not_found", "\(reload.text)")
            #expect(((reload.json["error"] as? [String: Any])?["message"] as? String)?.contains("config file") == true)
            // The lookups consumed nothing: k's quota is whole.
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "quota") == 10)
        }
    }

    @Test("405 with Allow on .../state (GET, and the deprecated DELETE) and on .../state/reset (POST); the POST resets")
    func allowOfStatePaths() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let id = ServerHarness.keyID("k")
            // One unit of the week's quota used (the quota does not refill, unlike the 2.5/s throttle).
            #expect(try await h.check(key: "k").remaining(of: "quota") == 9)
            let state = try await h.admin("/admin/v1/keys/\(id)/state", method: .put, body: "{}")
            #expect(state.status == .methodNotAllowed && state.header("Allow") == "GET, DELETE", "\(state.text)")
            #expect(state.errorCode == "method_not_allowed")
            let reset = try await h.admin("/admin/v1/keys/\(id)/state/reset", method: .get)
            #expect(reset.status == .methodNotAllowed && reset.header("Allow") == "POST", "\(reset.text)")
            #expect(reset.errorCode == "method_not_allowed")
            // Neither refused request reset anything.
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "quota") == 9)
            let done = try await h.admin("/admin/v1/keys/\(id)/state/reset", method: .post)
            #expect(done.status == .ok && done.json["id"] as? String == id, "\(done.text)")
            #expect(done.json["reset"] as? [String] == ["throttle", "quota", "route:POST /x/{y}"])
            // The reset is seen by the next decision: the quota window is unused again.
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "quota") == 10)
        }
    }

    @Test("no admin token configured: the admin API is disabled (404)")
    func disabled() async throws {
        let redis = try await RedisServer.start()
        let yaml = "admin: { port: 0 }\nplans: { p: { throttle: { rate: 1, burst: 1 } } }\n"
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            let r = try await h.admin("/admin/v1/plans", token: "anything")
            #expect(r.status == .notFound && r.errorCode == "not_found")
        }
    }
}
