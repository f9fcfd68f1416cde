import Foundation
import SluiceTestSupport
import Testing

@Suite("Over-limit cache through HTTP")
struct OverLimitCacheServerTests {
    static let plans = """
        plans: { p: { throttle: { rate: 0.01, burst: 1 } } }
        api_keys: [ { key: k, plan: p } ]
        """

    @Test("repeated denials are answered without Redis; peeks still ask Redis")
    func cached() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.plans, redis: redis)) { h in
            #expect(try await h.check(key: "k").allowed == true)
            let first = try await h.check(key: "k")
            #expect(first.allowed == false && first.deniedBy == "throttle")
            let before = try await redis.commandCalls("EVALSHA")
            #expect(before == 2, "two decisions so far")
            for _ in 0..<20 {
                let again = try await h.check(key: "k", cost: 1)
                #expect(again.allowed == false && again.deniedBy == "throttle" && (again.retryAfterMs ?? 0) > 0)
                #expect(again.header("Retry-After") != nil)
            }
            #expect(try await redis.commandCalls("EVALSHA") == before, "denials came from memory")
            _ = try await h.check(key: "k", cost: 0)
            #expect(try await redis.commandCalls("EVALSHA") == before + 1, "a peek asks Redis")
        }
    }

    @Test("turned off, every decision asks Redis")
    func off() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config("over_limit_cache: { enabled: false }\n" + Self.plans, redis: redis)) { h in
            _ = try await h.check(key: "k")
            _ = try await h.check(key: "k")
            let before = try await redis.commandCalls("EVALSHA")
            for _ in 0..<5 { #expect(try await h.check(key: "k").allowed == false) }
            let after = try await redis.commandCalls("EVALSHA")
            #expect(after == before + 5, "\(before) -> \(after)")
        }
    }
}
