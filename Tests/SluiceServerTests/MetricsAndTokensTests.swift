import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

@Suite("Metrics and client tokens")
struct MetricsAndTokensTests {
    static let yaml = """
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans:
          p: { throttle: { rate: 0.01, burst: 5 }, quota: { limit: 100, period: day } }
          s: { throttle: { rate: 0.01, burst: 1 }, shadow: true }
        api_keys: [ { key: k, plan: p }, { key: sk, plan: s } ]
        """

    /// The value of the sample `name{labels}` in Prometheus text, or nil.
    static func sample(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test("/metrics: decisions by plan, result and limit; near-limit, shadow denials, latency, cache hits; no token needed")
    func metrics() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            for _ in 0..<7 { _ = try await h.check(key: "k") }  // 5 allowed, 2 denied (the second from the cache)
            for _ in 0..<3 { _ = try await h.check(key: "sk") }  // 1 allowed, 2 shadow-denied
            _ = try await h.check(key: "who")
            let metrics = try await h.get("/metrics")
            #expect(metrics.status == .ok && metrics.header("Content-Type")?.hasPrefix("text/plain") == true)
            let text = metrics.text
            #expect(!text.contains("\"k\"") && !text.contains("\"sk\""), "no API key in labels")
            #expect(Self.sample(text, #"sluice_decisions_total{plan="p",result="allowed",limit="throttle"}"#) == 5)
            #expect(Self.sample(text, #"sluice_decisions_total{plan="p",result="denied",limit="throttle"}"#) == 2)
            #expect(Self.sample(text, #"sluice_decisions_total{plan="s",result="allowed",limit="throttle"}"#) == 1)
            #expect(Self.sample(text, #"sluice_decisions_total{plan="s",result="shadow_denied",limit="throttle"}"#) == 2)
            #expect(Self.sample(text, #"sluice_shadow_denials_total{plan="s",limit="throttle"}"#) == 2)
            #expect(Self.sample(text, #"sluice_decisions_total{plan="",result="unknown_key",limit=""}"#) == 1)
            // remaining 0 of 5 and 1 of 5 are under 20%; the shadow plan's one allowed leaves 0 of 1.
            #expect(Self.sample(text, #"sluice_near_limit_decisions_total{plan="p",limit="throttle"}"#) == 1)
            #expect(Self.sample(text, #"sluice_over_limit_cache_hits_total"#) == 1)
            #expect(Self.sample(text, #"sluice_check_duration_seconds_count{endpoint="check"}"#) == 11)
            #expect((Self.sample(text, #"sluice_redis_command_duration_seconds_count"#) ?? 0) >= 9)
            // Sampled at the scrape, when the registry's once-a-second version read may be in
            // flight: it must drain to 0 (a leaked command never would).
            let drained = try await poll(.seconds(10)) { Self.sample(try await h.get("/metrics").text, "sluice_redis_pending_commands") == 0 }
            #expect(drained != nil, "pending commands never drained to 0")
            #expect(Self.sample(text, #"sluice_config_reloads_total{result="failure"}"#) == 0)
            #expect(text.contains("# TYPE sluice_check_duration_seconds histogram"))
        }
    }

    @Test("/metrics before any traffic: every family has # HELP and # TYPE; the series the config can produce are there at 0")
    func helpAndZeroSeries() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let text = try await h.get("/metrics").text
            let lines = text.split(separator: "\n")
            func families(_ prefix: String) -> [Substring] {
                lines.filter { $0.hasPrefix(prefix) }.compactMap { $0.split(separator: " ").dropFirst(2).first }
            }
            let typed = families("# TYPE ")
            #expect(typed.count >= 13)
            #expect(Set(typed) == Set(families("# HELP ")), "\(text)")
            for series in [
                #"sluice_decisions_total{plan="p",result="allowed",limit="throttle"}"#,
                #"sluice_decisions_total{plan="p",result="allowed",limit="quota"}"#,
                #"sluice_decisions_total{plan="p",result="denied",limit="throttle"}"#,
                #"sluice_decisions_total{plan="p",result="denied",limit="quota"}"#,
                #"sluice_decisions_total{plan="p",result="unavailable",limit=""}"#,
                #"sluice_decisions_total{plan="s",result="allowed",limit="throttle"}"#,
                #"sluice_decisions_total{plan="s",result="shadow_denied",limit="throttle"}"#,
                #"sluice_decisions_total{plan="s",result="unavailable",limit=""}"#,
                #"sluice_decisions_total{plan="",result="unknown_key",limit=""}"#,
                #"sluice_near_limit_decisions_total{plan="p",limit="throttle"}"#,
                #"sluice_near_limit_decisions_total{plan="p",limit="quota"}"#,
                #"sluice_shadow_denials_total{plan="s",limit="throttle"}"#,
                #"sluice_backend_degraded_decisions_total{plan="p",outcome="unavailable"}"#,
                #"sluice_redis_errors_total{kind="timeout"}"#,
                #"sluice_redis_errors_total{kind="connection_closed"}"#,
                #"sluice_redis_errors_total{kind="server_error"}"#,
                #"sluice_config_reloads_total{result="success"}"#,
                #"sluice_over_limit_cache_hits_total"#,
                #"sluice_redis_reconnects_total"#,
            ] {
                #expect(Self.sample(text, series) == 0, "\(series)")
            }
            // Only series a plan can produce: a shadow plan never denies, a fail-closed plan never degrades.
            #expect(Self.sample(text, #"sluice_decisions_total{plan="s",result="denied",limit="throttle"}"#) == nil)
            #expect(Self.sample(text, #"sluice_decisions_total{plan="p",result="degraded",limit=""}"#) == nil)
            // The series counted later are the same ones, not second copies.
            _ = try await h.check(key: "k")
            let after = try await h.get("/metrics").text
            #expect(Self.sample(after, #"sluice_decisions_total{plan="p",result="allowed",limit="throttle"}"#) == 1)
            #expect(after.components(separatedBy: "# TYPE sluice_decisions_total ").count == 2)
        }
    }

    @Test("/metrics counts backend-degraded decisions and Redis errors by kind")
    func degradedMetrics() async throws {
        let redis = try await RedisServer.start()
        let yaml = Self.yaml + "\n" // same plans; p fails closed
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            redis.stop()
            // Wait until the client knows Redis is gone.
            try await h.waitForRedis("down")
            #expect(try await h.check(key: "k").status == .serviceUnavailable)
            #expect(try await h.check(key: "sk").json["degraded"] as? Bool == true)
            let text = try await h.get("/metrics").text
            #expect(Self.sample(text, #"sluice_backend_degraded_decisions_total{plan="p",outcome="unavailable"}"#) == 1)
            #expect(Self.sample(text, #"sluice_backend_degraded_decisions_total{plan="s",outcome="allowed"}"#) == 1)
            #expect(Self.sample(text, #"sluice_decisions_total{plan="p",result="unavailable",limit=""}"#) == 1)
            #expect((Self.sample(text, #"sluice_redis_errors_total{kind="unavailable"}"#) ?? 0) >= 1, "\(text)")
            #expect(Self.sample(text, #"sluice_redis_reconnects_total"#) == 0)
            // Redis back: the connections come back and are counted.
            try await redis.restart()
            try await h.waitForRedis("up")
            let after = try await h.get("/metrics").text
            #expect((Self.sample(after, #"sluice_redis_reconnects_total"#) ?? 0) >= 1, "\(after)")
        }
    }

    @Test("client tokens: decision endpoints need X-Sluice-Token when configured; 401 without or with a wrong one")
    func clientTokens() async throws {
        let redis = try await RedisServer.start()
        let yaml = "server: { client_tokens_sha256: [\(KeyDigester.sha256Hex(of: "gw-token"))] }\n" + Self.yaml
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            let body = #"{"api_key":"k"}"#
            var headers: HTTPFields = [.contentType: "application/json"]
            let missing = try await h.send("/v1/check", method: .post, headers: headers, body: body)
            #expect(missing.status == .unauthorized && missing.errorCode == "missing_client_token")
            headers[HTTPField.Name("X-Sluice-Token")!] = "wrong"
            let wrong = try await h.send("/v1/check", method: .post, headers: headers, body: body)
            #expect(wrong.status == .unauthorized && wrong.errorCode == "invalid_client_token")
            headers[HTTPField.Name("X-Sluice-Token")!] = "gw-token"
            #expect(try await h.send("/v1/check", method: .post, headers: headers, body: body).allowed == true)
            let batchWith = try await h.send("/v1/check/batch", method: .post, headers: headers, body: #"{"checks":[\#(body)]}"#)
            #expect(batchWith.status == .ok && (batchWith.json["results"] as? [[String: Any]])?.first?["allowed"] as? Bool == true)
            let batchWithout = try await h.send("/v1/check/batch", method: .post, headers: [.contentType: "application/json"], body: #"{"checks":[]}"#)
            #expect(batchWithout.status == .unauthorized && batchWithout.errorCode == "missing_client_token")
            let authWithout = try await h.send("/v1/auth", method: .get, headers: [HTTPField.Name("X-API-Key")!: "k"], body: nil)
            #expect(authWithout.status == .unauthorized && authWithout.errorCode == "missing_client_token")
            let authWith = try await h.send(
                "/v1/auth", method: .get, headers: [HTTPField.Name("X-API-Key")!: "k", HTTPField.Name("X-Sluice-Token")!: "gw-token"], body: nil
            )
            #expect(authWith.status == .noContent)
            // Health and metrics need no client token.
            let health = try await h.get("/healthz")
            #expect(health.status == .ok && health.json["status"] as? String == "ok", "\(health.text)")
            let metrics = try await h.get("/metrics")
            #expect(metrics.status == .ok && metrics.text.contains("# TYPE sluice_decisions_total counter"))
            // Nothing was counted for refused requests: 2 allowed checks (check + batch) out of a burst of 5, then /v1/auth.
            #expect(try await h.send("/v1/check", method: .post, headers: headers, body: body).remaining == 1)
        }
    }
}
