import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SluiceCore
import SluiceServer
import SluiceTestSupport
import Testing
import Yams

/// Runs the real application (the same `buildApplication` as `sluice serve`) on a
/// free port against a real redis-server, and talks to it over HTTP.
struct ServerHarness {
    let client: any TestClientProtocol

    static func config(_ yaml: String, redis: RedisServer, environment: [String: String] = ["SLUICE_KEY_SECRET": "server-test"]) throws
        -> SluiceConfig
    {
        var config = try ConfigLoader.parse(
            yaml: yaml, source: "test.yaml", environment: environment,
            overrides: ConfigOverrides(host: "127.0.0.1", port: 0, redisURL: redis.url)
        )
        // Dozens of tests share two cores: a command deadline of 5 s, not the default 100 ms, so a
        // stall answers late instead of failing a decision. Tests about deadlines set their own.
        let redisSection = (try? Yams.load(yaml: yaml) as? [String: Any])?["redis"] as? [String: Any]
        if redisSection?["timeout_ms"] == nil {
            config.redis.timeoutMs = Self.commandDeadlineMs
        }
        return config
    }

    /// The Redis command deadline of the tests' configs unless they set one.
    static let commandDeadlineMs = 5000

    /// Starts the app, waits until its Redis connections are up (unless told not to), runs `body`.
    static func run(
        _ config: SluiceConfig,
        waitForRedis: Bool = true,
        _ body: @Sendable (ServerHarness) async throws -> Void
    ) async throws {
        var logger = Logger(label: "sluice-test")
        logger.logLevel = .warning
        let app = buildApplication(config: config, logger: logger)
        try await app.test(.live) { client in
            let harness = ServerHarness(client: client)
            if waitForRedis {
                try await harness.waitForRedis("up")
            }
            try await body(harness)
        }
    }

    /// The key id of `key` under the harness's secret.
    static func keyID(_ key: String) -> String {
        KeyDigester(secret: "server-test").keyID(apiKey: key)
    }

    /// Waits until `/readyz` reports Redis `state` ("up" or "down").
    /// - Throws: when it does not within 10 s.
    func waitForRedis(_ state: String) async throws {
        let reached = try await poll(.seconds(10)) { try await self.get("/readyz").json["redis"] as? String == state }
        if reached == nil {
            throw TestSupportError("readyz did not report redis \(state) within 10 s")
        }
    }

    struct Answer {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let text: String

        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(self.text.utf8))) as? [String: Any] ?? [:]
        }
        func header(_ name: String) -> String? { self.headers[HTTPField.Name(name)!] }
        var errorCode: String? { (self.json["error"] as? [String: Any])?["code"] as? String }
        var allowed: Bool? { self.json["allowed"] as? Bool }
        var remaining: Int? { self.json["remaining"] as? Int }
        var deniedBy: String? { self.json["denied_by"] as? String }
        var retryAfterMs: Int? { self.json["retry_after_ms"] as? Int }
        var limits: [[String: Any]] { self.json["limits"] as? [[String: Any]] ?? [] }
        /// `remaining` of the limit called `name` in the `limits` array.
        func remaining(of name: String) -> Int? {
            self.limits.first { $0["name"] as? String == name }?["remaining"] as? Int
        }
    }

    func get(_ path: String) async throws -> Answer {
        try await self.send(path, method: .get, headers: [:], body: nil)
    }

    func check(_ json: String, contentType: String? = "application/json") async throws -> Answer {
        var headers = HTTPFields()
        if let contentType { headers[.contentType] = contentType }
        return try await self.send("/v1/check", method: .post, headers: headers, body: json)
    }

    /// A check body for `key`, with an optional route and cost.
    func check(key: String, route: String? = nil, cost: Int? = nil) async throws -> Answer {
        var fields = ["\"api_key\":\"\(key)\""]
        if let route { fields.append("\"route\":\"\(route)\"") }
        if let cost { fields.append("\"cost\":\(cost)") }
        return try await self.check("{" + fields.joined(separator: ",") + "}")
    }

    /// An admin API request with `Authorization: Bearer <token>` (none when nil).
    func admin(_ path: String, method: HTTPRequest.Method = .get, token: String? = "admin-secret", body: String? = nil) async throws -> Answer {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        if body != nil { headers[.contentType] = "application/json" }
        return try await self.send(path, method: method, headers: headers, body: body)
    }

    func send(_ path: String, method: HTTPRequest.Method, headers: HTTPFields, body: String?) async throws -> Answer {
        let response = try await self.client.execute(
            uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }
        )
        return Answer(status: response.status, headers: response.headers, text: String(buffer: response.body))
    }
}
