import Foundation
import SluiceTestSupport
import Testing

/// `sluice serve` against a redis-server that serves TLS, with certificates the test makes.
@Suite("sluice over TLS to Redis", .serialized)
struct RedisTLSTests {
    static let rules = """
        plans:
          strict: { throttle: { rate: 0.01, burst: 3 }, on_backend_error: deny }
          lenient: { throttle: { rate: 0.01, burst: 3 }, on_backend_error: allow }
        api_keys:
          - { key: strict-key, plan: strict }
          - { key: lenient-key, plan: lenient }

        """

    static func server(_ certificates: TestCertificates, requireClientCertificate: Bool = false) async throws -> (RedisServer, Int) {
        let tlsPort = try FreePort.find()
        let server = try await RedisServer.start(
            arguments: certificates.redisArguments(tlsPort: tlsPort, requireClientCertificate: requireClientCertificate)
        )
        return (server, tlsPort)
    }

    /// Three checks of cost 1 pass, the fourth is denied: the bucket lives in Redis.
    static func expectDecisions(_ sluice: SluiceProcess) async throws {
        for i in 1...4 {
            let r = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"strict-key"}"#)
            #expect(r.status == 200, "\(String(decoding: r.body, as: UTF8.self))")
            #expect(r.json["allowed"] as? Bool == (i <= 3), "check \(i): \(r.body)")
            #expect(r.json["degraded"] == nil, "\(String(decoding: r.body, as: UTF8.self))")
        }
    }

    @Test("decisions over TLS with a CA file: a rediss:// URL, and a tls section under redis://")
    func decisions() async throws {
        let certificates = try await TestCertificates.make()
        let (server, tlsPort) = try await Self.server(certificates)
        for redis in [
            "redis: { url: 'rediss://127.0.0.1:\(tlsPort)/0', timeout_ms: 5000, tls: { ca_file: '\(certificates.caFile)' } }",
            "redis: { url: 'redis://localhost:\(tlsPort)/0', timeout_ms: 5000, tls: { ca_file: '\(certificates.caFile)' } }",
        ] {
            try await server.cliAsync("FLUSHALL")
            let sluice = try SluiceProcess(yaml: redis + "\n" + Self.rules)
            try await sluice.waitUntilReady()
            try await Self.expectDecisions(sluice)
            #expect(await sluice.terminate() == 0)
        }
        // The buckets are in the Redis behind the TLS port.
        #expect(try await server.cliAsync("DBSIZE") != "0")
        server.stop()
    }

    @Test("a wrong CA is refused with a clear log line, and decisions answer per on_backend_error")
    func wrongCA() async throws {
        let certificates = try await TestCertificates.make()
        let (server, tlsPort) = try await Self.server(certificates)
        let sluice = try SluiceProcess(
            yaml: "redis: { url: 'rediss://127.0.0.1:\(tlsPort)/0', tls: { ca_file: '\(certificates.otherCAFile)' } }\n" + Self.rules
        )
        try await sluice.waitUntilReady(redisUp: false)
        let expected = "TLS handshake with Redis at 127.0.0.1:\(tlsPort) failed: certificate verify failed"
        let logged = try await poll(.seconds(10)) { sluice.log.contains(expected) }
        #expect(logged != nil, "log: \(sluice.log.suffix(2000))")

        let denied = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"strict-key"}"#)
        #expect(denied.status == 503, "\(String(decoding: denied.body, as: UTF8.self))")
        #expect(String(decoding: denied.body, as: UTF8.self).contains("backend_unavailable"))
        let allowed = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"lenient-key"}"#)
        #expect(allowed.status == 200, "\(String(decoding: allowed.body, as: UTF8.self))")
        #expect(allowed.json["allowed"] as? Bool == true && allowed.json["degraded"] as? Bool == true, "\(String(decoding: allowed.body, as: UTF8.self))")
        let ready = try await HTTPTestClient.request(port: sluice.port, path: "/readyz")
        #expect(ready.json["redis"] as? String == "down", "\(String(decoding: ready.body, as: UTF8.self))")
        #expect(await sluice.terminate() == 0)
        server.stop()
    }

    @Test("a server that requires a client certificate: refused without cert_file, decisions with it")
    func clientCertificate() async throws {
        let certificates = try await TestCertificates.make()
        let (server, tlsPort) = try await Self.server(certificates, requireClientCertificate: true)

        let without = try SluiceProcess(
            yaml: "redis: { url: 'rediss://127.0.0.1:\(tlsPort)/0', tls: { ca_file: '\(certificates.caFile)' } }\n" + Self.rules
        )
        try await without.waitUntilReady(redisUp: false)
        let expected = "TLS handshake with Redis at 127.0.0.1:\(tlsPort) failed"
        #expect(try await poll(.seconds(10)) { without.log.contains(expected) } != nil, "log: \(without.log.suffix(2000))")
        let refused = try await HTTPTestClient.check(port: without.port, #"{"api_key":"strict-key"}"#)
        #expect(refused.status == 503, "\(String(decoding: refused.body, as: UTF8.self))")
        #expect(await without.terminate() == 0)

        let with = try SluiceProcess(
            yaml: """
                redis:
                  url: 'rediss://127.0.0.1:\(tlsPort)/0'
                  timeout_ms: 5000
                  tls: { ca_file: '\(certificates.caFile)', cert_file: '\(certificates.clientCertFile)', key_file: '\(certificates.clientKeyFile)' }

                """ + Self.rules
        )
        try await with.waitUntilReady()
        try await Self.expectDecisions(with)
        #expect(await with.terminate() == 0)
        server.stop()
    }

    @Test("check-config names an unreadable TLS file with the file and key path")
    func checkConfig() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-check-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("sluice.yaml").path
        try ("redis: { url: 'rediss://127.0.0.1:6380/0', tls: { ca_file: /nonexistent/ca.pem, cert_file: /nonexistent/c.pem } }\n" + Self.rules)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await SluiceProcess.runCLI(["check-config", path])
        #expect(result.status != 0)
        #expect(result.output.contains(path), "\(result.output)")
        #expect(result.output.contains("redis.tls.ca_file") && result.output.contains("cannot read the file /nonexistent/ca.pem"), "\(result.output)")
        #expect(result.output.contains("redis.tls.cert_file") && result.output.contains("needs its private key"), "\(result.output)")
    }
}
