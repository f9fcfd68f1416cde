import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

/// `/v1/auth`, the forward-auth endpoint, and the optional header sets.
@Suite("/v1/auth and header styles")
struct AuthRouteTests {
    static let yaml = """
        server: { api_key_header: X-Api-Token }
        limits: { max_cost: 50 }
        plans:
          p:
            throttle: { rate: 0.01, burst: 2 }
            quota: { limit: 100, period: day, unit: tokens }
            headers: [legacy, openai]
            routes:
              "POST /v1/models/{model}/predict": { rate: 0.01, burst: 1 }
          open:
            throttle: { rate: 0.01, burst: 1 }
            on_backend_error: allow
        api_keys: [ { key: k, plan: p }, { key: o, plan: open } ]
        """

    func auth(_ h: ServerHarness, method: HTTPRequest.Method = .get, _ headers: [String: String]) async throws -> ServerHarness.Answer {
        var fields = HTTPFields()
        for (name, value) in headers { fields[HTTPField.Name(name)!] = value }
        return try await h.send("/v1/auth", method: method, headers: fields, body: nil)
    }

    @Test("204 when allowed, with rate-limit headers; 429 with the decision and Retry-After when denied")
    func allowThenDeny() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let before = try await redis.timeMs()
            let first = try await self.auth(h, ["X-Api-Token": "k", "X-Original-Method": "GET", "X-Original-URI": "/v1/models?x=1"])
            #expect(first.status == .noContent && first.text.isEmpty)
            #expect(first.header("RateLimit-Policy") == #""throttle";q=2;w=200, "quota";q=100;w=86400;qu="tokens""#)
            #expect(first.header("RateLimit")?.hasPrefix(#""throttle";r=1;t=100, "quota";r=99;t="#) == true)
            let second = try await self.auth(h, method: .post, ["Authorization": "Bearer k"])
            #expect(second.status == .noContent)
            let third = try await self.auth(h, ["X-Api-Token": "k"])
            let after = try await redis.timeMs()
            #expect(third.status == .tooManyRequests && third.deniedBy == "throttle" && third.allowed == false)
            // The first token comes back 100 s after the first request, by Redis's clock.
            let retry = Int64(third.retryAfterMs ?? -1)
            #expect((100_000 - (after - before))...100_000 ~= retry, "retry_after_ms \(retry), \(after - before) ms passed")
            #expect(third.header("Retry-After") == String((retry + 999) / 1000))
            #expect(third.header("RateLimit") != nil)
        }
    }

    @Test("the route comes from nginx's headers by default, route patterns apply; the Envoy path form wins")
    func routes() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let nginx = try await self.auth(h, ["X-Api-Token": "k", "X-Original-Method": "POST", "X-Original-URI": "/v1/models/gpt/predict?s=1"])
            #expect(nginx.status == .noContent)
            #expect(nginx.header("RateLimit-Policy")?.hasPrefix(#""route:POST /v1/models/{model}/predict";q=1;w=100"#) == true)
            // Another model: the same bucket (one per key for the pattern).
            let other = try await self.auth(h, ["X-Api-Token": "k", "X-Original-Method": "POST", "X-Original-URI": "/v1/models/other/predict"])
            #expect(other.status == .tooManyRequests && other.deniedBy == "route:POST /v1/models/{model}/predict")
            // Envoy's ext_authz: the original path after /v1/auth, with the original method;
            // allowed is 200 there (Envoy takes nothing else as allowed).
            let envoyAllowed = try await h.send(
                "/v1/auth/v1/other", method: .get, headers: [HTTPField.Name("X-Api-Token")!: "k"], body: nil
            )
            #expect(envoyAllowed.status == .ok && envoyAllowed.header("RateLimit") != nil)
            // The path wins over route headers a client could have set.
            let spoofed = try await h.send(
                "/v1/auth/v1/models/x/predict", method: .post,
                headers: [HTTPField.Name("X-Api-Token")!: "k", HTTPField.Name("X-Original-Method")!: "GET", HTTPField.Name("X-Original-URI")!: "/cheap"],
                body: nil
            )
            #expect(spoofed.status == .tooManyRequests && spoofed.deniedBy == "route:POST /v1/models/{model}/predict")
            let envoy = try await h.send(
                "/v1/auth/v1/models/third/predict?q=1", method: .post, headers: [HTTPField.Name("X-Api-Token")!: "k"], body: nil
            )
            #expect(envoy.status == .tooManyRequests && envoy.deniedBy == "route:POST /v1/models/{model}/predict")
            // The plan throttle was touched only by the one non-route request.
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "throttle") == 1)
        }
    }

    @Test("only the configured pair of route headers counts: a client's copy of the other pair, or one header of each, steers nothing", arguments: ["original", "forwarded", "path"])
    func clientCannotSteer(source: String) async throws {
        let redis = try await RedisServer.start()
        let yaml = Self.yaml.replacingOccurrences(of: "server: { api_key_header: X-Api-Token }", with: "server: { api_key_header: X-Api-Token, forward_auth: { route_from: \(source) } }")
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            let route = ["POST", "/v1/models/gpt/predict"]
            let original = ["X-Original-Method": route[0], "X-Original-URI": route[1]]
            let forwarded = ["X-Forwarded-Method": route[0], "X-Forwarded-Uri": route[1]]
            let trusted: [String: String]? = source == "original" ? original : source == "forwarded" ? forwarded : nil
            let untrusted = [source == "original" ? nil : original, source == "forwarded" ? nil : forwarded].compactMap { $0 }
            // Untrusted pairs, and each mix of one header from each pair: charged to the plan
            // throttle as a request without a route, never to the route bucket.
            var attempts = untrusted
            attempts.append(["X-Original-Method": route[0], "X-Forwarded-Uri": route[1]])
            attempts.append(["X-Forwarded-Method": route[0], "X-Original-URI": route[1]])
            for headers in attempts {
                let r = try await self.auth(h, headers.merging(["X-Api-Token": "k"]) { a, _ in a })
                let names = Set(headers.keys)
                // A lone header of the trusted pair is a 400 (the gateway sent half a route).
                let half = (trusted.map { Set($0.keys).intersection(names).count == 1 }) ?? false
                if half {
                    #expect(r.status == .badRequest && r.errorCode == "invalid_route", "\(source) \(headers)")
                } else {
                    let policy = r.header("RateLimit-Policy") ?? "-"
                    #expect(policy.hasPrefix(#""throttle";"#), "\(source) \(headers): \(policy)")
                }
            }
            // The trusted pair does choose the route.
            if let trusted {
                let r = try await self.auth(h, trusted.merging(["X-Api-Token": "k"]) { a, _ in a })
                #expect(r.status == .noContent && r.header("RateLimit-Policy")?.hasPrefix(#""route:POST /v1/models/{model}/predict""#) == true)
            }
            // Nothing was charged to the route bucket but the trusted request.
            let state = try await h.check(key: "k", route: "POST /v1/models/any/predict", cost: 0)
            #expect(state.remaining(of: "route:POST /v1/models/{model}/predict") == (trusted == nil ? 1 : 0), "\(source)")
        }
    }

    @Test("X-Sluice-Deny-Status: 403 turns a 429 into a 403 and names the meant status in X-Sluice-Status on every answer")
    func denyStatus() async throws {
        let redis = try await RedisServer.start()
        // "fresh" is asked only once Redis is down, so no remembered denial answers for it.
        let yaml = Self.yaml.replacingOccurrences(of: "{ key: o, plan: open } ]", with: "{ key: o, plan: open }, { key: fresh, plan: p } ]")
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            let remap = ["X-Sluice-Deny-Status": "403"]
            let ok = try await self.auth(h, remap.merging(["X-Api-Token": "k"]) { a, _ in a })
            #expect(ok.status == .noContent && ok.header("X-Sluice-Status") == "204")
            _ = try await self.auth(h, ["X-Api-Token": "k"])
            let denied = try await self.auth(h, remap.merging(["X-Api-Token": "k"]) { a, _ in a })
            #expect(denied.status == .forbidden && denied.header("X-Sluice-Status") == "429" && denied.deniedBy == "throttle")
            #expect(denied.header("Retry-After") != nil && denied.header("RateLimit-Policy") != nil)
            let unknown = try await self.auth(h, remap.merging(["X-Api-Token": "stranger"]) { a, _ in a })
            #expect(unknown.status == .forbidden && unknown.header("X-Sluice-Status") == "403")
            let missing = try await self.auth(h, remap)
            #expect(missing.status == .unauthorized && missing.header("X-Sluice-Status") == "401" && missing.errorCode == "missing_api_key")
            let bad = try await self.auth(h, remap.merging(["X-Api-Token": "k", "X-RateLimit-Cost": "x"]) { a, _ in a })
            #expect(bad.status == .badRequest && bad.header("X-Sluice-Status") == "400")
            // Without the header a denial stays a 429 and no X-Sluice-Status is sent.
            let plain = try await self.auth(h, ["X-Api-Token": "k"])
            #expect(plain.status == .tooManyRequests && plain.header("X-Sluice-Status") == nil)
            let other = try await self.auth(h, ["X-Api-Token": "k", "X-Sluice-Deny-Status": "200"])
            #expect(other.status == .badRequest && other.errorCode == "invalid_deny_status")
            redis.stop()
            let down = try await self.auth(h, remap.merging(["X-Api-Token": "fresh"]) { a, _ in a })
            #expect(down.status == .serviceUnavailable && down.header("X-Sluice-Status") == "503")
        }
    }

    @Test("401 without a key, 403 for an unknown key, 400 for bad cost or route headers; nothing consumed")
    func errors() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let none = try await self.auth(h, [:])
            #expect(none.status == .unauthorized && none.errorCode == "missing_api_key")
            #expect(none.header("WWW-Authenticate") == #"Bearer realm="sluice""#)
            let basic = try await self.auth(h, ["Authorization": "Basic abc"])
            // Basic credentials are not taken for an API key: the same 401 as none at all.
            #expect(basic.status == .unauthorized && basic.errorCode == "missing_api_key")
            #expect(basic.header("WWW-Authenticate") == #"Bearer realm="sluice""#)
            let unknown = try await self.auth(h, ["X-Api-Token": "stranger"])
            #expect(unknown.status == .forbidden && unknown.deniedBy == "unknown_api_key")
            // A peek through forward auth would let every request through: refused.
            let peek = try await self.auth(h, ["X-Api-Token": "k", "X-RateLimit-Cost": "0"])
            #expect(peek.status == .badRequest && peek.errorCode == "invalid_cost")
            // Not digits: invalid; digits too large for an Int: too large (AuthRoute.checkRequest).
            for (bad, code) in [("-1", "invalid_cost"), ("1.5", "invalid_cost"), ("abc", "invalid_cost"), ("", "invalid_cost"),
                                ("99999999999999999999999", "cost_too_large")] {
                let r = try await self.auth(h, ["X-Api-Token": "k", "X-RateLimit-Cost": bad])
                #expect(r.status == .badRequest, "cost \(bad)")
                #expect(r.errorCode == code, "cost \(bad): \(r.text)")
            }
            let tooBig = try await self.auth(h, ["X-Api-Token": "k", "X-RateLimit-Cost": "51"])
            #expect(tooBig.errorCode == "cost_too_large")
            // A long query string is not a long route: it plays no part in matching.
            let longQuery = try await self.auth(
                h, ["X-Api-Token": "k", "X-Original-Method": "GET",
                    "X-Original-URI": "/v1/files?sig=" + String(repeating: "a", count: 2000)]
            )
            #expect(longQuery.status == .noContent)
            let halfRoute = try await self.auth(h, ["X-Api-Token": "k", "X-Original-URI": "/x"])
            #expect(halfRoute.status == .badRequest && halfRoute.errorCode == "invalid_route")
            let badRoute = try await self.auth(h, ["X-Api-Token": "k", "X-Original-Method": "GET", "X-Original-URI": "nopath"])
            #expect(badRoute.status == .badRequest && badRoute.errorCode == "invalid_route")
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "throttle") == 1)
            // A cost header is honoured (the quota counts tokens).
            let cost = try await self.auth(h, ["X-Api-Token": "k", "X-RateLimit-Cost": "1"])
            #expect(cost.status == .noContent)
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "quota") == 98)
        }
    }

    @Test("legacy and OpenAI headers when the plan asks for them")
    func headerStyles() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let r = try await h.check(key: "k", cost: 1)
            #expect(r.header("X-RateLimit-Limit") == "2" && r.header("X-RateLimit-Remaining") == "1")
            #expect(r.header("X-RateLimit-Reset") == "100")
            #expect(r.header("x-ratelimit-limit-requests") == "2" && r.header("x-ratelimit-remaining-requests") == "1")
            #expect(r.header("x-ratelimit-reset-requests") == "1m40s")
            #expect(r.header("x-ratelimit-limit-tokens") == "100" && r.header("x-ratelimit-remaining-tokens") == "99")
            #expect(r.header("x-ratelimit-reset-tokens")?.hasSuffix("s") == true)
            // A plan without them sends the IETF fields only.
            let plain = try await h.check(key: "o")
            #expect(plain.header("RateLimit") != nil && plain.header("X-RateLimit-Limit") == nil && plain.header("x-ratelimit-limit-requests") == nil)
        }
    }

    @Test("Redis down: 503 for a closed plan, 204 for an open one")
    func backendDown() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            redis.stop()
            let closed = try await self.auth(h, ["X-Api-Token": "k"])
            #expect(closed.status == .serviceUnavailable && closed.errorCode == "backend_unavailable")
            let open = try await self.auth(h, ["X-Api-Token": "o"])
            #expect(open.status == .noContent && open.header("RateLimit") == nil)
        }
    }
}

@Suite("Header rendering")
struct HeaderRenderingTests {
    @Test("Go-style durations", arguments: [(0, "0s"), (20, "20ms"), (1000, "1s"), (1500, "1.5s"), (360_000, "6m0s"), (3_723_004, "1h2m3.004s"), (7_200_000, "2h0m0s")])
    func goDuration(ms: Int, text: String) {
        #expect(RateLimitHeadersProbe.goDuration(ms) == text)
    }

    @Test("JSON strings: plain ones copied, quotes, backslashes and controls escaped")
    func jsonStrings() throws {
        #expect(RateLimitHeadersProbe.jsonField("route:POST /v1/predict") == #"{"v":"route:POST /v1/predict"}"#)
        let tricky = "a\"b\\c\n\u{01}é"
        let json = RateLimitHeadersProbe.jsonField(tricky)
        #expect(json == #"{"v":"a\"b\\c\n\u0001é"}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String]
        #expect(parsed?["v"] == tricky)
    }

    @Test("structured-field strings escape quotes and backslashes")
    func sfString() {
        #expect(RateLimitHeadersProbe.sfString(#"route:GET /a"b\c"#) == #""route:GET /a\"b\\c""#)
    }
}

/// The IETF fields as a client reads them: names that match the JSON and never collide, units,
/// and policies that do not understate a bucket.
@Suite("RateLimit-Policy fidelity")
struct PolicyFidelityTests {
    static let yaml = """
        plans:
          p:
            throttle: { rate: 2, burst: 1 }
            quota: { limit: 100, period: day, unit: tokens }
            routes:
              "GET /café": { rate: 0.01, burst: 1 }
              "GET /naïve": { rate: 0.01, burst: 3, additional: true }
              "GET /naève": { rate: 0.01, burst: 4, additional: true }
        api_keys: [ { key: k, plan: p } ]
        """

    /// Member names of a structured-field list of strings, unescaped (RFC 8941 §3.3.3).
    static func names(_ field: String?) -> [String] {
        var names: [String] = []
        var rest = Substring(field ?? "")
        while let open = rest.firstIndex(of: "\"") {
            var name = ""
            var index = rest.index(after: open)
            while index < rest.endIndex, rest[index] != "\"" {
                if rest[index] == "\\" { index = rest.index(after: index) }
                name.append(rest[index])
                index = rest.index(after: index)
            }
            names.append(name)
            rest = rest[rest.index(after: index)...]
            rest = rest.drop { $0 != "," }
        }
        return names
    }

    @Test("non-ASCII route names stay exact and distinct: the same text in JSON and headers; tokens say qu=tokens; a bucket's q is what it admits per w")
    func fidelity() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            var seen: Set<String> = []
            for (route, name) in [
                ("GET /café", "route:GET /caf%C3%A9"),
                ("GET /naïve", "route:GET /na%C3%AFve"), ("GET /naève", "route:GET /na%C3%A8ve"),
            ] {
                let r = try await h.check(key: "k", route: route, cost: 0)
                let jsonNames = r.limits.compactMap { $0["name"] as? String }
                #expect(jsonNames.contains(name), "\(route): \(jsonNames)")
                #expect(Self.names(r.header("RateLimit-Policy")) == jsonNames, "\(route): \(r.header("RateLimit-Policy") ?? "-")")
                #expect(Self.names(r.header("RateLimit")) == jsonNames)
                #expect(r.header("RateLimit-Policy")?.unicodeScalars.allSatisfy { $0.isASCII && $0.value >= 0x20 } == true)
                seen.insert(name)
            }
            // Before escaping, "GET /naïve" and "GET /naève" were both advertised as "route:GET /na?ve".
            #expect(seen.count == 3)
            #expect(Limit.routeName("GET /100%") == "route:GET /100%25")
            let plain = try await h.check(key: "k", cost: 0)
            #expect(plain.header("RateLimit-Policy") == #""throttle";q=2;w=1, "quota";q=100;w=86400;qu="tokens""#)
        }
    }

    @Test("a bucket's policy never understates it", arguments: [(2.0, 1, 2, 1), (0.01, 2, 2, 200), (10, 5, 10, 1), (1.5, 3, 3, 2), (0.3, 1, 2, 4), (1000, 1, 1000, 1)])
    func bucketPolicy(rate: Double, burst: Int, q: Int, w: Int) {
        let bucket = TokenBucket(rate: rate, burst: burst)
        #expect(bucket.policyQuota == q && bucket.policyWindowSeconds == w, "rate \(rate) burst \(burst)")
        // Over its window the bucket admits at least burst and at least rate × w.
        #expect(Double(bucket.policyQuota) >= max(Double(burst), rate * Double(w)) - 1e-9)
    }
}
