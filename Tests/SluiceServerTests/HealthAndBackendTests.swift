import Foundation
import HTTPTypes
import SluiceTestSupport
import Testing

@Suite("Health and Redis failures")
struct HealthAndBackendTests {
    static let yaml = """
        redis: { timeout_ms: 100 }
        plans:
          closed: { throttle: { rate: 0.01, burst: 5 }, on_backend_error: deny }
          open: { throttle: { rate: 0.01, burst: 5 }, on_backend_error: allow }
        api_keys: [ { key: c, plan: closed }, { key: o, plan: open } ]
        """

    @Test("healthz, and readyz with Redis's state and the warnings")
    func health() async throws {
        let redis = try await RedisServer.start(arguments: ["--maxmemory-policy", "allkeys-lru"])
        let config = try ServerHarness.config(Self.yaml, redis: redis, environment: [:])
        try await ServerHarness.run(config) { h in
            let healthz = try await h.get("/healthz")
            #expect(healthz.status == .ok && healthz.json["status"] as? String == "ok")
            let readyz = try await h.get("/readyz")
            #expect(readyz.status == .ok && readyz.json["redis"] as? String == "up")
            let warnings = readyz.json["warnings"] as? [String] ?? []
            #expect(warnings.contains { $0.contains("maxmemory-policy is allkeys-lru") })
            #expect(warnings.contains { $0.contains("SLUICE_KEY_SECRET") })
        }
    }

    @Test("noeviction and a key secret: no warnings")
    func noWarnings() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let readyz = try await h.get("/readyz")
            #expect((readyz.json["warnings"] as? [String]) == [])
        }
    }

    @Test("Redis stopped: deny plans answer 503 fast, allow plans answer degraded; readyz stays 200 with redis down; decisions resume after a restart")
    func redisDown() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            #expect(try await h.check(key: "c").allowed == true)
            redis.stop()
            for _ in 0..<5 {
                let started = ContinuousClock.now
                let closed = try await h.check(key: "c")
                // At most the 100 ms deadline; a hang would take the client's timeout.
                #expect(ContinuousClock.now - started < .seconds(3))
                #expect(closed.status == .serviceUnavailable && closed.errorCode == "backend_unavailable")
                let open = try await h.check(key: "o")
                #expect(open.status == .ok && open.allowed == true && open.json["degraded"] as? Bool == true)
                #expect(open.limits.isEmpty && open.header("RateLimit") == nil && open.header("RateLimit-Policy") == nil)
            }
            // Unknown keys need no Redis.
            #expect(try await h.check(key: "nobody").deniedBy == "unknown_api_key")
            let readyz = try await h.get("/readyz")
            #expect(readyz.status == .ok && readyz.json["redis"] as? String == "down")

            try await redis.restart()
            let deadline = ContinuousClock.now + .seconds(10)
            var resumed = false
            while ContinuousClock.now < deadline {
                let r = try await h.check(key: "c")
                if r.status == .ok && r.allowed == true && !r.limits.isEmpty {
                    resumed = true
                    break
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(resumed)
            #expect(try await h.get("/readyz").json["redis"] as? String == "up")
        }
    }
}
