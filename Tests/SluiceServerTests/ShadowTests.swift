import Foundation
import HTTPTypes
import SluiceTestSupport
import Testing

@Suite("Shadow plans")
struct ShadowTests {
    static let yaml = """
        plans:
          watch: { throttle: { rate: 0.01, burst: 1 }, shadow: true }
        api_keys: [ { key: s, plan: watch } ]
        """

    @Test("a shadow plan never denies: would-be denials are allowed, marked, and consume nothing")
    func shadow() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let first = try await h.check(key: "s")
            #expect(first.allowed == true && first.json["shadow_denied"] == nil)
            let bucketKey = "sl:{\(ServerHarness.keyID("s"))}:t"
            let afterFirst = try await redis.cliAsync("GET", bucketKey)
            for _ in 0..<3 {
                let r = try await h.check(key: "s")
                #expect(r.status == .ok && r.allowed == true && r.json["denied_by"] is NSNull)
                #expect(r.json["shadow_denied"] as? Bool == true && r.json["shadow_denied_by"] as? String == "throttle")
                #expect(r.retryAfterMs == 0 && r.header("Retry-After") == nil && r.header("RateLimit") != nil)
                #expect(r.remaining == 0)
            }
            var headers = HTTPFields()
            headers[HTTPField.Name("X-API-Key")!] = "s"
            let auth = try await h.send("/v1/auth", method: .get, headers: headers, body: nil)
            #expect(auth.status == .noContent)
            headers[.contentType] = "application/json"
            let batch = try await h.send("/v1/check/batch", method: .post, headers: headers, body: #"{"checks":[{"api_key":"s"}]}"#)
            let item = (batch.json["results"] as? [[String: Any]])?.first
            #expect(item?["allowed"] as? Bool == true && item?["shadow_denied_by"] as? String == "throttle")
            // Only the first request consumed anything: the bucket's stored time is still the one
            // the first request wrote, and it is the only state key.
            let afterAll = try await redis.cliAsync("GET", bucketKey)
            #expect(!afterFirst.isEmpty && afterAll == afterFirst)
            let stored = try await redis.cliAsync("--scan", "--pattern", "sl:*")
            #expect(stored.split(whereSeparator: \.isNewline).count == 1)
            // Redis down: a shadow plan still never denies (its default on_backend_error is deny).
            redis.stop()
            let down = try await h.check(key: "s")
            #expect(down.status == .ok && down.allowed == true && down.json["degraded"] as? Bool == true)
        }
    }
}
