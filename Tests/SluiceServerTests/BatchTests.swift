import Foundation
import HTTPTypes
import SluiceTestSupport
import Testing

@Suite("POST /v1/check/batch")
struct BatchTests {
    static let yaml = """
        limits: { max_batch_checks: 5, max_batch_body_bytes: 2048 }
        plans:
          p: { throttle: { rate: 0.01, burst: 2 } }
          open: { throttle: { rate: 0.01, burst: 1 }, on_backend_error: allow }
        api_keys: [ { key: k, plan: p }, { key: o, plan: open } ]
        """

    func batch(_ h: ServerHarness, _ checks: String) async throws -> ServerHarness.Answer {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return try await h.send("/v1/check/batch", method: .post, headers: headers, body: #"{"checks":[\#(checks)]}"#)
    }

    @Test("results in order: decisions as /v1/check answers them, errors for invalid items")
    func mixed() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let r = try await self.batch(h, #"{"api_key":"k"},{"api_key":"k"},{"api_key":"k"},{"api_key":"nobody"},{"cost":-1,"api_key":"k"}"#)
            #expect(r.status == .ok)
            let results = r.json["results"] as? [[String: Any]] ?? []
            try #require(results.count == 5)
            #expect(results[0]["allowed"] as? Bool == true && results[0]["remaining"] as? Int == 1)
            #expect(results[1]["allowed"] as? Bool == true && results[1]["remaining"] as? Int == 0)
            #expect(results[2]["allowed"] as? Bool == false && results[2]["denied_by"] as? String == "throttle")
            #expect(results[3]["denied_by"] as? String == "unknown_api_key")
            #expect((results[4]["error"] as? [String: Any])?["code"] as? String == "invalid_cost")
            // The same state as single checks see.
            #expect(try await h.check(key: "k", cost: 0).remaining == 0)

            let shapes = try await self.batch(h, #"42,{"api_key":5},{"api_key":"o","route":"nope"}"#)
            let items = shapes.json["results"] as? [[String: Any]] ?? []
            #expect(items.compactMap { ($0["error"] as? [String: Any])?["code"] as? String } == ["invalid_check", "invalid_api_key", "invalid_route"])
        }
    }

    @Test("bounds: too many checks, body too large, not a batch")
    func bounds() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let six = Array(repeating: #"{"api_key":"k"}"#, count: 6).joined(separator: ",")
            let tooMany = try await self.batch(h, six)
            #expect(tooMany.status == .badRequest && tooMany.errorCode == "too_many_checks")
            let big = try await self.batch(h, #"{"api_key":"k","pad":"\#(String(repeating: "x", count: 3000))"}"#)
            #expect(big.status == .contentTooLarge && big.errorCode == "body_too_large")
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            let notBatch = try await h.send("/v1/check/batch", method: .post, headers: headers, body: #"{"api_key":"k"}"#)
            #expect(notBatch.status == .badRequest && notBatch.errorCode == "invalid_body")
            #expect(try await h.check(key: "k", cost: 0).remaining == 2)
        }
    }

    @Test("Redis down: closed plans' items are backend_unavailable errors, open plans' items degraded")
    func backendDown() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            redis.stop()
            let r = try await self.batch(h, #"{"api_key":"k"},{"api_key":"o"}"#)
            let results = r.json["results"] as? [[String: Any]] ?? []
            #expect((results.first?["error"] as? [String: Any])?["code"] as? String == "backend_unavailable")
            #expect(results.last?["degraded"] as? Bool == true)
        }
    }
}
