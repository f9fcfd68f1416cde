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

    @Test("auth: 401 without a token, 403 with a wrong one, 200 with the right one")
    func auth() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            #expect(try await h.admin("/admin/v1/plans", token: nil).status == .unauthorized)
            let wrong = try await h.admin("/admin/v1/plans", token: "guess")
            #expect(wrong.status == .forbidden && wrong.errorCode == "invalid_token")
            let plans = try await h.admin("/admin/v1/plans", token: "admin-secret")
            #expect(plans.status == .ok)
            let plan = (plans.json["plans"] as? [[String: Any]])?.first
            #expect(plan?["name"] as? String == "p")
            #expect((plan?["throttle"] as? [String: Any])?["rate"] as? Double == 2.5)
            #expect((plan?["quota"] as? [String: Any])?["offset_hours"] as? Int == 3)
            #expect(((plan?["routes"] as? [[String: Any]])?.first)?["key"] as? String == "POST /x/{y}")
        }
    }

    @Test("keys/lookup gives the key id, never the key; reload needs a config file")
    func lookup() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let known = try await h.admin("/admin/v1/keys/lookup", method: .post, token: "admin-secret", body: #"{"api_key":"k"}"#)
            #expect(known.json["id"] as? String == ServerHarness.keyID("k"))
            #expect(known.json["known"] as? Bool == true && known.json["plan"] as? String == "p")
            #expect(!known.text.contains("\"k\""))
            let unknown = try await h.admin("/admin/v1/keys/lookup", method: .post, token: "admin-secret", body: #"{"api_key":"zz"}"#)
            #expect(unknown.json["known"] as? Bool == false && unknown.json["plan"] is NSNull)
            let bad = try await h.admin("/admin/v1/keys/lookup", method: .post, token: "admin-secret", body: "{")
            #expect(bad.status == .badRequest)
            #expect(try await h.admin("/admin/v1/reload", method: .post, token: "admin-secret").status == .notFound)
        }
    }

    @Test("405 with Allow on .../state (GET, and the deprecated DELETE) and on .../state/reset (POST)")
    func allowOfStatePaths() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let id = ServerHarness.keyID("k")
            let state = try await h.admin("/admin/v1/keys/\(id)/state", method: .put, body: "{}")
            #expect(state.status == .methodNotAllowed && state.header("Allow") == "GET, DELETE", "\(state.text)")
            let reset = try await h.admin("/admin/v1/keys/\(id)/state/reset", method: .get)
            #expect(reset.status == .methodNotAllowed && reset.header("Allow") == "POST", "\(reset.text)")
            #expect(try await h.admin("/admin/v1/keys/\(id)/state/reset", method: .post).status == .ok)
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
