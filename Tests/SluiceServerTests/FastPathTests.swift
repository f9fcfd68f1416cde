import Foundation
import HTTPTypes
import HummingbirdTesting
import SluiceCore
import SluiceTestSupport
import Testing

/// `POST /v1/check` is answered inside the channel pipeline; everything else goes through
/// the router. Pipelined requests must still be answered in order.
@Suite("Check fast path")
struct FastPathTests {
    static let yaml = """
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans: { p: { throttle: { rate: 0.01, burst: 3 } } }
        api_keys: [ { key: k, plan: p } ]
        """

    static func request(_ method: String, _ path: String, body: String? = nil, close: Bool = false) -> String {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: t\r\n"
        if let body {
            text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
        }
        if close { text += "Connection: close\r\n" }
        return text + "\r\n" + (body ?? "")
    }

    @Test("pipelined checks and router requests on one connection are answered in order")
    func pipelinedOrder() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let check = Self.request("POST", "/v1/check", body: #"{"api_key":"k"}"#)
            let raw = check + Self.request("GET", "/healthz") + check
                + Self.request("POST", "/v1/check/batch", body: #"{"checks":[{"api_key":"k","cost":0}]}"#)
                + Self.request("GET", "/v1/check") + Self.request("POST", "/v1/check", body: "{") + check
                + Self.request("GET", "/readyz") + Self.request("POST", "/v1/check?x=1", body: #"{"api_key":"k"}"#, close: true)
            let responses = try await HTTPTestClient.pipelined(port: port, raw: raw)
            #expect(responses.map(\.status) == [200, 200, 200, 200, 405, 400, 200, 200, 200], "\(responses.map(\.text))")
            guard responses.count == 9 else { return }
            // The checks took tokens 3, 2, 1, then none: each answer is the one of its place.
            #expect(responses[0].json["remaining"] as? Int == 2)
            #expect(responses[1].json["status"] as? String == "ok")
            #expect(responses[2].json["remaining"] as? Int == 1)
            #expect(((responses[3].json["results"] as? [[String: Any]])?.first)?["remaining"] as? Int == 1)
            #expect(responses[4].header("Allow") == "POST")
            #expect((responses[5].json["error"] as? [String: Any])?["code"] as? String == "invalid_json")
            #expect(responses[6].json["remaining"] as? Int == 0)
            #expect(responses[7].json["status"] as? String == "ready")
            #expect(responses[8].json["allowed"] as? Bool == false && responses[8].json["denied_by"] as? String == "throttle")
            #expect(responses[8].header("Connection") == "close")
            #expect(responses[0].header("Date")?.hasSuffix("GMT") == true && responses[0].header("Content-Type") == "application/json")
            #expect(responses[0].header("Server") == "sluice" && responses[0].header("RateLimit-Policy") != nil)
        }
    }

    @Test("a client that half-closes after its request still gets the answer; a trailing slash is the same route")
    func halfClose() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let check = Self.request("POST", "/v1/check", body: #"{"api_key":"k"}"#)
            let answers = try await HTTPTestClient.pipelined(port: port, raw: check + check, halfClose: true)
            #expect(answers.map(\.status) == [200, 200] && answers.map { $0.json["remaining"] as? Int } == [2, 1], "\(answers.map(\.text))")
            let slash = try await HTTPTestClient.pipelined(
                port: port, raw: Self.request("POST", "/v1/check/?a=b", body: #"{"api_key":"k"}"#, close: true)
            )
            #expect(slash.first?.json["remaining"] as? Int == 0)
        }
    }

    @Test("after a Connection: close answer, requests pipelined behind it are neither answered nor counted")
    func closeStops() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let check = Self.request("POST", "/v1/check", body: #"{"api_key":"k"}"#)
            let closing = Self.request("POST", "/v1/check", body: #"{"api_key":"k"}"#, close: true)
            let answers = try await HTTPTestClient.pipelined(port: port, raw: closing + check + check)
            #expect(answers.count == 1 && answers.first?.json["remaining"] as? Int == 2)
            // Only the one answered request took a token.
            #expect(try await h.check(key: "k").remaining == 1)
        }
    }

    @Test("a body over the bound is refused with 413 and the connection stays usable")
    func tooLarge() async throws {
        let redis = try await RedisServer.start()
        let yaml = "limits: { max_body_bytes: 64 }\n" + Self.yaml
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let big = #"{"api_key":"k","route":"POST /\#(String(repeating: "x", count: 200))"}"#
            // Chunked, so no Content-Length tells the size up front.
            let chunked = "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + String(big.utf8.count, radix: 16) + "\r\n" + big + "\r\n0\r\n\r\n"
            let raw = chunked + Self.request("POST", "/v1/check", body: big) + Self.request("POST", "/v1/check", body: #"{"api_key":"k"}"#, close: true)
            let responses = try await HTTPTestClient.pipelined(port: port, raw: raw)
            #expect(responses.map(\.status) == [413, 413, 200], "\(responses.map(\.text))")
            #expect(responses.first.map { ($0.json["error"] as? [String: Any])?["code"] as? String } == "body_too_large")
        }
    }
}
