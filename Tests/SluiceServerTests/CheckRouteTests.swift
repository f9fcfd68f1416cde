import Foundation
import HTTPTypes
import HummingbirdTesting
import SluiceCore
import SluiceTestSupport
import Testing

/// `POST /v1/check` through HTTP, against a real redis-server.
@Suite("POST /v1/check")
struct CheckRouteTests {
    static let examplePlan = Self.mlBasic(throttle: "{ rate: 2, burst: 1 }", route: "{ rate: 10, burst: 5 }")

    /// The example config's plan and demo key, with the throttles given.
    static func mlBasic(throttle: String, route: String) -> String {
        """
        plans:
          ml-basic:
            throttle: \(throttle)
            quota: { limit: 1000, period: week, offset_hours: 2 }
            routes:
              "POST /v1/predict": \(route)
        api_keys:
          - key: demo-key-123
            plan: ml-basic
        """
    }

    @Test("the worked example of the README: body, RateLimit-Policy and RateLimit of the first request")
    func workedExample() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.examplePlan, redis: redis)) { h in
            let before = try await redis.timeMs()
            let first = try await h.check(key: "demo-key-123")
            let after = try await redis.timeMs()
            #expect(first.status == .ok)
            #expect(first.header("Content-Type") == "application/json")
            #expect(first.allowed == true)
            #expect(first.json["plan"] as? String == "ml-basic")
            #expect(first.json["limit"] as? Int == 1 && first.remaining == 0)
            #expect((1...500).contains(first.json["reset_after_ms"] as? Int ?? -1))
            #expect(first.retryAfterMs == 0)
            #expect(first.json["denied_by"] is NSNull)
            #expect(first.json["reason"] == nil)
            #expect(first.limits.map { $0["name"] as? String } == ["throttle", "quota"])
            #expect(first.remaining(of: "quota") == 999)
            // Rate 2/s with burst 1 lets 2 through a second: q=2 over w=1, not the burst alone.
            #expect(first.header("RateLimit-Policy") == #""throttle";q=2;w=1, "quota";q=1000;w=604800"#)
            #expect(first.header("Retry-After") == nil)

            // t of the quota: whole seconds to the end of the week (Monday 02:00 UTC), from Redis's clock.
            let state = try #require(first.header("RateLimit"))
            #expect(state.hasPrefix(#""throttle";r=0;t=1, "quota";r=999;t="#))
            let t = Int64(state.split(separator: "=").last ?? "") ?? -1
            let end = CalendarWindow.end(period: "week", offsetHours: 2, nowMs: before)
            #expect(end == CalendarWindow.end(period: "week", offsetHours: 2, nowMs: after))
            #expect(((end * 1000 - after + 999) / 1000)...((end * 1000 - before + 999) / 1000) ~= t)

            // The second one, at once: denied by the throttle, with Retry-After. The token comes
            // back 500 ms after the first decision by Redis's clock, so on a machine loaded enough
            // to take that long between the two, the second is admitted instead; which one is
            // due is decided from Redis's clock, and each is checked in full.
            let secondStart = try await redis.timeMs()
            let second = try await h.check(key: "demo-key-123")
            let secondEnd = try await redis.timeMs()
            #expect(second.status == .ok && second.json["reason"] == nil)
            if secondEnd - before < 500 || second.allowed == false {
                #expect(secondStart - after < 500, "denied although the token was back")
                #expect(second.allowed == false && second.deniedBy == "throttle")
                #expect((1...500).contains(second.retryAfterMs ?? -1))
                #expect(second.header("Retry-After") == "1")
                #expect(second.remaining(of: "quota") == 999)
            } else {
                #expect(second.allowed == true && second.deniedBy == nil && second.remaining(of: "quota") == 998)
            }
        }
    }

    @Test("burst: rate 1/s burst 5 admits five, denies the sixth for about a second; a real second later one token is back")
    func burst() async throws {
        let redis = try await RedisServer.start()
        let yaml = "plans: { p: { throttle: { rate: 1, burst: 5 } } }\napi_keys: [ { key: k, plan: p } ]"
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            // Six checks written at once on one connection: they reach Redis within milliseconds,
            // far inside the second a token takes to come back.
            let port = try #require(h.client.port)
            let check = "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"api_key\":\"k\"}"
            let closing = check.replacingOccurrences(of: "Host: t\r\n", with: "Host: t\r\nConnection: close\r\n")
            let before = try await redis.timeMs()
            let answers = try await HTTPTestClient.pipelined(port: port, raw: String(repeating: check, count: 5) + closing)
            let after = try await redis.timeMs()
            try #require(answers.count == 6, "\(answers.map(\.text))")
            #expect(answers.prefix(5).map { $0.json["allowed"] as? Bool } == Array(repeating: true, count: 5))
            #expect(answers.prefix(5).map { $0.json["remaining"] as? Int } == [4, 3, 2, 1, 0])
            let sixth = answers[5]
            #expect(sixth.json["allowed"] as? Bool == false && sixth.json["denied_by"] as? String == "throttle")
            // About 1000 ms: a second for the next token, less what Redis's clock says already passed.
            let retry = Int64(sixth.json["retry_after_ms"] as? Int ?? -1)
            #expect((1000 - (after - before) - 1)...1000 ~= retry, "retry_after_ms \(retry), \(after - before) ms passed")
            #expect(sixth.header("Retry-After") == "1")
            try await Task.sleep(for: .milliseconds(1200))
            let checkStart = try await redis.timeMs()
            let back = try await h.check(key: "k")
            let checkEnd = try await redis.timeMs()
            // Tokens come back one a second, by Redis's clock: at least one is back; after this
            // request takes one, what is left matches the whole seconds that passed (on a loaded
            // machine more than 1.2 s may pass).
            #expect(back.allowed == true)
            let fewest = max(0, min(4, Int((checkStart - after) / 1000) - 1))
            let most = max(fewest, min(4, Int((checkEnd - before) / 1000) - 1))
            #expect((fewest...most).contains(back.remaining ?? -1), "remaining \(back.remaining ?? -1)")
        }
    }

    @Test("cost: 0 peeks and consumes nothing, 3 consumes 3, above the burst is refused for good")
    func cost() async throws {
        let redis = try await RedisServer.start()
        let yaml = "plans: { p: { throttle: { rate: 0.01, burst: 5 } } }\napi_keys: [ { key: k, plan: p } ]"
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            for _ in 0..<2 {
                let peek = try await h.check(key: "k", cost: 0)
                #expect(peek.allowed == true && peek.remaining == 5)
            }
            let three = try await h.check(key: "k", cost: 3)
            #expect(three.allowed == true && three.remaining == 2)
            #expect(try await h.check(key: "k", cost: 0).remaining == 2)
            let tooBig = try await h.check(key: "k", cost: 6)
            #expect(tooBig.allowed == false && tooBig.retryAfterMs == -1)
            #expect(tooBig.json["reason"] as? String == "cost_exceeds_capacity" && tooBig.deniedBy == "throttle")
            #expect(tooBig.header("Retry-After") == nil)
            #expect(try await h.check(key: "k", cost: 0).remaining == 2)
            // A peek on an empty bucket says "a request of cost 1 would not pass".
            _ = try await h.check(key: "k", cost: 2)
            let emptyPeek = try await h.check(key: "k", cost: 0)
            #expect(emptyPeek.allowed == false && emptyPeek.remaining == 0 && (emptyPeek.retryAfterMs ?? 0) > 0)
        }
    }

    @Test("unknown key: denied for good, no limits, no rate-limit headers")
    func unknownKey() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.examplePlan, redis: redis)) { h in
            let r = try await h.check(key: "who-is-this")
            #expect(r.status == .ok && r.allowed == false)
            #expect(r.json["plan"] is NSNull)
            #expect(r.json["limit"] as? Int == 0 && r.remaining == 0 && r.retryAfterMs == -1)
            #expect(r.deniedBy == "unknown_api_key" && r.json["reason"] as? String == "unknown_api_key")
            #expect(r.limits.isEmpty)
            #expect(r.header("RateLimit") == nil && r.header("RateLimit-Policy") == nil && r.header("Retry-After") == nil)
        }
    }

    @Test("all-or-nothing: an additional route limit's denial leaves the plan throttle untouched")
    func routeAdditionalVsThrottle() async throws {
        let redis = try await RedisServer.start()
        let yaml = """
            plans:
              p:
                throttle: { rate: 0.01, burst: 5 }
                routes:
                  "POST /v1/predict": { rate: 0.01, burst: 1, additional: true }
            api_keys: [ { key: k, plan: p } ]
            """
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            let first = try await h.check(key: "k", route: "POST /v1/predict")
            #expect(first.allowed == true)
            #expect(first.limits.map { $0["name"] as? String } == ["throttle", "route:POST /v1/predict"])
            #expect(first.remaining(of: "throttle") == 4 && first.remaining(of: "route:POST /v1/predict") == 0)
            for _ in 0..<3 {
                let denied = try await h.check(key: "k", route: "post /v1/predict?stream=true")
                #expect(denied.allowed == false && denied.deniedBy == "route:POST /v1/predict")
                #expect(denied.remaining(of: "throttle") == 4)
            }
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "throttle") == 4)
        }
    }

    @Test("a route with its own throttle replaces the plan throttle and leaves it untouched")
    func routeReplacesThrottle() async throws {
        let redis = try await RedisServer.start()
        let yaml = """
            plans:
              p:
                throttle: { rate: 0.01, burst: 2 }
                routes:
                  "POST /v1/predict": { rate: 0.01, burst: 3 }
            api_keys: [ { key: k, plan: p } ]
            """
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            for expected in [2, 1, 0] {
                let r = try await h.check(key: "k", route: "POST /v1/predict")
                #expect(r.allowed == true && r.remaining == expected)
                #expect(r.limits.map { $0["name"] as? String } == ["route:POST /v1/predict"])
            }
            #expect(try await h.check(key: "k", route: "POST /v1/predict").deniedBy == "route:POST /v1/predict")
            let other = try await h.check(key: "k", route: "GET /v1/models")
            #expect(other.allowed == true && other.remaining(of: "throttle") == 1)
        }
    }

    @Test("all-or-nothing: a quota denial leaves the throttle, a throttle denial leaves the quota")
    func throttleAndQuota() async throws {
        let redis = try await RedisServer.start()
        let yaml = """
            plans:
              q: { throttle: { rate: 0.01, burst: 5 }, quota: { limit: 2, period: day } }
              t: { throttle: { rate: 0.01, burst: 1 }, quota: { limit: 10, period: day } }
            api_keys: [ { key: kq, plan: q }, { key: kt, plan: t } ]
            """
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            _ = try await h.check(key: "kq")
            _ = try await h.check(key: "kq")
            for _ in 0..<3 {
                let byQuota = try await h.check(key: "kq")
                #expect(byQuota.allowed == false && byQuota.deniedBy == "quota" && byQuota.remaining(of: "throttle") == 3)
            }
            _ = try await h.check(key: "kt")
            for _ in 0..<3 {
                let byThrottle = try await h.check(key: "kt")
                #expect(byThrottle.allowed == false && byThrottle.deniedBy == "throttle" && byThrottle.remaining(of: "quota") == 9)
            }
        }
    }

    @Test(
        "quota: limit units per window, then denied until the next window start by Redis's clock",
        arguments: [("day", 5), ("week", 2), ("month", 7)]
    )
    func quotaWindows(period: String, offset: Int) async throws {
        let redis = try await RedisServer.start()
        let yaml = "plans: { p: { quota: { limit: 3, period: \(period), offset_hours: \(offset) } } }\napi_keys: [ { key: k, plan: p } ]"
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            for expected in [2, 1, 0] {
                let r = try await h.check(key: "k")
                #expect(r.allowed == true && r.remaining == expected)
            }
            let before = try await redis.timeMs()
            let denied = try await h.check(key: "k")
            let after = try await redis.timeMs()
            #expect(denied.allowed == false && denied.deniedBy == "quota")
            let end = CalendarWindow.end(period: period, offsetHours: offset, nowMs: before) * 1000
            let retry = Int64(denied.retryAfterMs ?? -1)
            #expect((end - after)...(end - before + 1) ~= retry, "retry \(retry), window end \(end), clock \(before)...\(after)")
            #expect(denied.header("Retry-After") == String((retry + 999) / 1000))
            let policy = try #require(denied.header("RateLimit-Policy"))
            let window = period == "day" ? 86400 : period == "week" ? 604_800 : nil
            if let window { #expect(policy == "\"quota\";q=3;w=\(window)") }
        }
    }

    @Test("state keys hold no raw API key, share one hash tag, and all have a TTL")
    func redisKeys() async throws {
        let redis = try await RedisServer.start()
        // Slow refills, so that every key still exists when it is looked at.
        let yaml = Self.mlBasic(throttle: "{ rate: 0.01, burst: 1 }", route: "{ rate: 0.01, burst: 5 }")
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            _ = try await h.check(key: "demo-key-123")
            _ = try await h.check(key: "demo-key-123", route: "POST /v1/predict")
            let keys = try await redis.cliAsync("--scan").split(separator: "\n").map(String.init)
            // Throttle, route bucket, quota and the per-day usage record.
            #expect(keys.count == 4, "\(keys)")
            #expect(keys.contains { $0.hasSuffix("}:u") })
            let tags = Set(keys.compactMap { $0.split(separator: "{").last?.split(separator: "}").first })
            #expect(tags.count == 1)
            for key in keys {
                #expect(!key.contains("demo-key-123") && !key.contains("predict"))
                #expect(key.hasPrefix("sl:{"))
                let ttl = Int(try await redis.cliAsync("PTTL", key)) ?? -9
                #expect(ttl > 0, "\(key) has PTTL \(ttl)")
            }
        }
    }
}
