import Foundation
import SluiceCore
import Testing

@Suite("Config: TLS to Redis")
struct RedisTLSConfigTests {
    static let rules = "plans: { p: { throttle: { rate: 1, burst: 1 } } }\napi_keys: [ { key: k, plan: p } ]\n"

    static func redis(_ yaml: String, environment: [String: String] = [:]) throws -> SluiceConfig.Redis {
        try ConfigLoader.parse(yaml: yaml + Self.rules, source: "tls.yaml", environment: environment).redis
    }

    /// A readable PEM-looking file in a fresh temp dir; check-config reads only its markers.
    static func pemFile(_ body: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-\(UUID().uuidString).pem")
        try body.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test("plain redis:// without a tls section is plain TCP")
    func plain() throws {
        let redis = try Self.redis("redis: { url: redis://127.0.0.1:6379/0 }\n")
        #expect(redis.tls == nil)
        #expect(!redis.url.tls)
    }

    @Test("rediss:// turns TLS on with the system trust store and the URL's host")
    func redissURL() throws {
        let redis = try Self.redis("redis: { url: 'rediss://u:secret@cache.example:6380/2' }\n")
        #expect(redis.url.tls)
        #expect(redis.url.host == "cache.example" && redis.url.port == 6380 && redis.url.database == 2)
        #expect(redis.url.description == "rediss://u:***@cache.example:6380/2")
        #expect(redis.tls == SluiceConfig.TLS(caFile: nil, certFile: nil, keyFile: nil, serverName: nil))
    }

    @Test("a tls section turns TLS on under a redis:// URL, with every key")
    func section() throws {
        let ca = try Self.pemFile("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
        let key = try Self.pemFile("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
        defer {
            try? FileManager.default.removeItem(atPath: ca)
            try? FileManager.default.removeItem(atPath: key)
        }
        let redis = try Self.redis(
            "redis:\n  url: redis://10.0.0.1:6379/0\n  tls:\n    ca_file: \(ca)\n    cert_file: \(ca)\n    key_file: \(key)\n    server_name: redis.internal\n"
        )
        #expect(!redis.url.tls)
        #expect(redis.tls == SluiceConfig.TLS(caFile: ca, certFile: ca, keyFile: key, serverName: "redis.internal"))
        // An empty section is TLS with the system trust store.
        #expect(try Self.redis("redis:\n  tls: {}\n").tls == SluiceConfig.TLS(caFile: nil, certFile: nil, keyFile: nil, serverName: nil))
    }

    @Test("SLUICE_REDIS_TLS_* set the keys, turn TLS on, and a problem names the variable")
    func environment() throws {
        let redis = try Self.redis("", environment: ["SLUICE_REDIS_TLS_SERVER_NAME": "redis.internal"])
        #expect(redis.tls?.serverName == "redis.internal")
        do {
            _ = try Self.redis("", environment: ["SLUICE_REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"])
            Issue.record("an unreadable CA file must be refused")
        } catch let error as ConfigError {
            #expect(error.problems.map(\.source) == ["SLUICE_REDIS_TLS_CA_FILE"], "\(error.problems)")
            #expect(error.problems.first?.reason.contains("cannot read the file /nonexistent/ca.pem") == true)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
