import Foundation
import HTTPTypes
import HummingbirdTesting
import SluiceCore
import SluiceTestSupport
import Testing

/// Requests that break HTTP/1.1 itself: malformed framing, bodies cut short or sent too
/// slowly, requests the decoder refuses. Each gets a JSON error at once, never silence, a
/// 500 or an empty body; nothing is consumed.
@Suite("HTTP edge cases")
struct HTTPEdgeTests {
    static let yaml = """
        server: { body_timeout_ms: 1500 }
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans: { p: { throttle: { rate: 0.01, burst: 3 } } }
        api_keys: [ { key: k, plan: p } ]
        """

    /// The endpoints that read a body: the fast path, a router route, an admin route.
    static let bodyPaths = ["/v1/check", "/v1/check/batch", "/admin/v1/keys"]

    static func head(_ path: String, _ framing: String) -> String {
        "POST \(path) HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nAuthorization: Bearer admin-secret\r\n\(framing)\r\n"
    }

    static func errorCode(_ response: HTTPTestResponse?) -> String? {
        (response?.json["error"] as? [String: Any])?["code"] as? String
    }

    /// The wait for an answer: below the 30 s idle timeout that used to end these connections,
    /// far above what an answer takes. (8 s was once too short while the whole suite ran: the
    /// router's handlers wait for Swift's cooperative pool, which the suite's load can hold.)
    static let answerWithin = 20.0

    @Test("malformed chunked framing: a 400 JSON error at once, then the connection closes", arguments: bodyPaths)
    func malformedChunks(path: String) async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let raw = Self.head(path, "Transfer-Encoding: chunked\r\n") + "5\r\n{\"api\r\nzz\r\nnot a chunk\r\n"
            let answers = try await HTTPTestClient.pipelined(port: port, raw: raw, timeout: Self.answerWithin)
            #expect(answers.count == 1 && answers.first?.status == 400, "\(path): \(answers.map(\.text))")
            #expect(Self.errorCode(answers.first) == "malformed_request", "\(path): \(answers.map(\.text))")
            #expect(answers.first?.header("Content-Type") == "application/json")
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "throttle") == 3)
        }
    }

    @Test("a body cut short by the client's half-close: a 400 JSON error at once", arguments: bodyPaths)
    func truncatedThenHalfClosed(path: String) async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let raw = Self.head(path, "Content-Length: 100\r\n") + #"{"api_key":"k""#
            let answers = try await HTTPTestClient.pipelined(port: port, raw: raw, halfClose: true, timeout: Self.answerWithin)
            #expect(answers.count == 1 && answers.first?.status == 400, "\(path): \(answers.map(\.text))")
            let code = Self.errorCode(answers.first)
            #expect(code == "malformed_request" || code == "incomplete_body", "\(path): \(answers.map(\.text))")
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "throttle") == 3)
        }
    }

    @Test("a body that trickles in a byte at a time ends with a 408 at server.body_timeout_ms", arguments: bodyPaths)
    func slowBody(path: String) async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let body = #"{"api_key":"k"}"#
            // A byte every 250 ms keeps the connection from ever being idle; the whole body
            // would take about 4 s, the deadline is 1.5 s.
            let parts = [Self.head(path, "Content-Length: \(body.utf8.count)\r\n")] + body.map(String.init)
            let answers = try await HTTPTestClient.trickle(port: port, parts: parts, pause: .milliseconds(250), timeout: Self.answerWithin)
            #expect(answers.count == 1 && answers.first?.status == 408, "\(path): \(answers.map(\.text))")
            #expect(Self.errorCode(answers.first) == "body_timeout" && answers.first?.header("Connection") == "close")
            #expect(try await h.check(key: "k", cost: 0).remaining(of: "throttle") == 3)
        }
    }

    @Test("a body that arrives in time is served, however it is split")
    func splitBodyInTime() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let body = #"{"api_key":"k"}"#
            let head = "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
            let answers = try await HTTPTestClient.trickle(
                port: port, parts: [head, String(body.prefix(5)), String(body.dropFirst(5))], pause: .milliseconds(20), timeout: Self.answerWithin
            )
            #expect(answers.count == 1 && answers.first?.status == 200 && answers.first?.json["remaining"] as? Int == 2, "\(answers.map(\.text))")
        }
    }

    @Test(
        "requests the decoder refuses get a 400 with a JSON body",
        arguments: [
            ("garbage", "GARBAGE\r\n\r\n"),
            ("conflicting lengths", "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"),
            ("length and chunked", "POST /v1/check/batch HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            ("oversized header", "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: \(String(repeating: "a", count: 200_000))\r\n\r\n"),
        ]
    )
    func decoderErrors(name: String, raw: String) async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let answers = try await HTTPTestClient.pipelined(port: port, raw: raw, timeout: Self.answerWithin)
            #expect(answers.count == 1 && answers.first?.status == 400, "\(name): \(answers.map(\.text))")
            #expect(Self.errorCode(answers.first) == "malformed_request", "\(name): \(answers.map(\.text))")
            #expect(answers.first?.header("Connection") == "close", "\(name)")
        }
    }

    @Test("a decoder error after pipelined answers comes after them, as JSON")
    func decoderErrorAfterAnswers() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let port = try #require(h.client.port)
            let check = "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"api_key\":\"k\"}"
            let health = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
            let answers = try await HTTPTestClient.pipelined(port: port, raw: check + health + "NOT HTTP AT ALL\r\n\r\n", timeout: Self.answerWithin)
            #expect(answers.map(\.status) == [200, 200, 400], "\(answers.map(\.text))")
            #expect(Self.errorCode(answers.last) == "malformed_request")
        }
    }

    @Test("401s carry WWW-Authenticate: admin API, gateway tokens on the fast path")
    func challenges() async throws {
        let redis = try await RedisServer.start()
        let yaml = Self.yaml.replacingOccurrences(
            of: "server: { body_timeout_ms: 1500 }",
            with: "server: { body_timeout_ms: 600, client_tokens_sha256: [\(KeyDigester.sha256Hex(of: "gw"))] }"
        )
        try await ServerHarness.run(try ServerHarness.config(yaml, redis: redis)) { h in
            let admin = try await h.admin("/admin/v1/plans", token: nil)
            #expect(admin.status == .unauthorized && admin.header("WWW-Authenticate") == #"Bearer realm="sluice""#)
            let check = try await h.check(key: "k")
            #expect(check.status == .unauthorized && check.header("WWW-Authenticate") == #"Bearer realm="sluice""#)
        }
    }
}
