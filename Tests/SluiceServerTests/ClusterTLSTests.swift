import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceCore
import SluiceServer
import SluiceTestSupport
import Synchronization
import Testing

/// Starts one Redis Cluster for the whole suite that serves TLS only, as ElastiCache Serverless
/// and MemoryDB do: no plain port, cluster bus and replication over TLS, and client
/// certificates required, so every config that works proves client certificates work too.
/// Stops it (by PID) after the suite's last test.
struct ClusterTLSScope: SuiteTrait, TestScoping {
    @TaskLocal static var group: RedisClusterGroup?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let certificates = try await TestCertificates.make()
        let group = try await RedisClusterGroup.start(tls: certificates, requireClientCertificate: true)
        defer { group.stop() }
        try await Self.$group.withValue(group) { try await function() }
    }
}

/// Every line an application logged, with its metadata, so a test can look for a reason.
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) { self.lines.withLock { $0.append(line) } }

    var text: String { self.lines.withLock { $0.joined(separator: "\n") } }

    func contains(_ needle: String) -> Bool { self.lines.withLock { $0.contains { $0.contains(needle) } } }

    /// The handler that feeds it, at info and above.
    struct Handler: LogHandler {
        let log: CapturedLog
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let metadata = self.metadata.merging(event.metadata ?? [:]) { _, new in new }
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            self.log.append("\(event.level) \(event.message) \(fields)")
        }
    }
}

/// `redis.cluster` with `redis.tls` against a TLS-only cluster of three masters with a replica
/// each that requires client certificates (``ClusterTLSScope``). The app runs in-process, as
/// ``ServerHarness`` runs it, with its log captured so that refusals can be read.
@Suite("Redis Cluster over TLS (3 masters, 3 replicas, client certificates required)", .serialized, ClusterTLSScope())
struct ClusterTLSTests {
    static func group() throws -> RedisClusterGroup {
        try #require(ClusterTLSScope.group, "the suite's cluster is missing")
    }

    static func certificates() throws -> TestCertificates {
        try #require(try Self.group().certificates, "the suite's cluster has no certificates")
    }

    /// A config on the suite's cluster with `tls` as the `redis.tls` section.
    static func config(_ group: RedisClusterGroup, tls: String, timeoutMs: Int = ServerHarness.commandDeadlineMs, _ body: String) throws -> SluiceConfig {
        let nodes = group.seedAddresses.map { "\"\($0)\"" }.joined(separator: ", ")
        let yaml = """
            redis:
              cluster: { nodes: [\(nodes)] }
              tls: \(tls)
              timeout_ms: \(timeoutMs)
              connect_timeout_ms: 1000
            \(body)
            """
        return try ConfigLoader.parse(
            yaml: yaml, source: "cluster-tls.yaml", environment: ["SLUICE_KEY_SECRET": "server-test"],
            overrides: ConfigOverrides(host: "127.0.0.1", port: 0)
        )
    }

    /// `redis.tls` with the cluster's CA and the client certificate.
    static func fullTLS(_ certificates: TestCertificates) -> String {
        "{ ca_file: '\(certificates.caFile)', cert_file: '\(certificates.clientCertFile)', key_file: '\(certificates.clientKeyFile)' }"
    }

    /// Plans for the refusal tests: the same throttle, a different answer when Redis cannot decide.
    static let refusalRules = """
        plans:
          strict: { throttle: { rate: 0.01, burst: 3 }, on_backend_error: deny }
          lenient: { throttle: { rate: 0.01, burst: 3 }, on_backend_error: allow }
        api_keys:
          - { key: strict-key, plan: strict }
          - { key: lenient-key, plan: lenient }
        """

    /// Runs the app as ``ServerHarness/run(_:waitForRedis:_:)`` does, logging into `log`.
    static func run(
        _ config: SluiceConfig, log: CapturedLog, waitForRedis: Bool = true, _ body: @Sendable (ServerHarness) async throws -> Void
    ) async throws {
        let logger = Logger(label: "sluice-cluster-tls-test") { _ in CapturedLog.Handler(log: log) }
        let app = buildApplication(config: config, logger: logger)
        try await app.test(.live) { client in
            let harness = ServerHarness(client: client)
            if waitForRedis {
                do {
                    try await harness.waitForRedis("up")
                } catch {
                    throw TestSupportError("\(error); log:\n\(log.text.suffix(3000))")
                }
            }
            try await body(harness)
        }
    }

    /// What a config that cannot reach the cluster must do: `/readyz` says Redis is down,
    /// the strict plan answers 503 backend_unavailable, the lenient one admits degraded, and
    /// no master ran a decision.
    static func expectRefused(_ h: ServerHarness, _ group: RedisClusterGroup, log: CapturedLog) async throws {
        let before = try await ClusterTests.evalshaCalls(group)
        let ready = try await h.get("/readyz")
        #expect(ready.json["redis"] as? String == "down", "\(ready.text)")
        for _ in 0..<2 {
            let denied = try await h.check(key: "strict-key")
            #expect(denied.status == .serviceUnavailable, "\(denied.text)")
            #expect(denied.errorCode == "backend_unavailable", "\(denied.text)")
        }
        let allowed = try await h.check(key: "lenient-key")
        #expect(allowed.status == .ok && allowed.allowed == true && allowed.json["degraded"] as? Bool == true, "\(allowed.text)")
        #expect(try await ClusterTests.evalshaCalls(group) == before, "a master ran a decision; log:\n\(log.text.suffix(3000))")
    }

    @Test("every master is TLS only, with the cluster bus and replication over TLS")
    func nodesServeTLSOnly() async throws {
        let group = try Self.group()
        for master in try await group.masters() {
            let config = try await master.node.cliAsync("CONFIG", "GET", "tls-*")
            let fields = Dictionary(config.components(separatedBy: "\n").chunked2(), uniquingKeysWith: { a, _ in a })
            #expect(fields["tls-port"] == String(master.node.port), "\(config)")
            #expect(fields["tls-cluster"] == "yes" && fields["tls-replication"] == "yes" && fields["tls-auth-clients"] == "yes", "\(config)")
            #expect(try await master.node.cliAsync("CONFIG", "GET", "port").hasSuffix("\n0"))
        }
    }

    @Test("with the CA and a client certificate: decisions on every master, one EVALSHA each, a quota exact across two instances")
    func decisions() async throws {
        let group = try Self.group()
        let certificates = try Self.certificates()
        let keys = (0..<24).map { "tls-spread-\($0)" }
        let config = try Self.config(group, tls: Self.fullTLS(certificates), """
            plans:
              q: { quota: { limit: 3, period: day }, on_backend_error: deny }
            api_keys:
            \(keys.map { "  - { key: \($0), plan: q }" }.joined(separator: "\n"))
            """)
        let masters = try await group.masters()
        var owners: Set<Int> = []
        for key in keys { owners.insert(try await ClusterTests.owner(of: key, group).port) }
        #expect(owners.count == 3, "the test's keys must cover every master: \(owners)")
        let before = try await ClusterTests.evalshaCalls(group)
        let log = CapturedLog()
        try await Self.run(config, log: log) { a in
            try await Self.run(config, log: log) { b in
                for key in keys {
                    var admitted = 0
                    for attempt in 0..<5 {
                        let answer = try await (attempt % 2 == 0 ? a : b).check(key: key)
                        #expect(answer.status == .ok && answer.json["degraded"] == nil, "\(key): \(answer.text)")
                        if answer.allowed == true { admitted += 1 }
                    }
                    #expect(admitted == 3, "\(key): \(admitted) admitted of a quota of 3")
                }
            }
        }
        let after = try await ClusterTests.evalshaCalls(group)
        for master in masters {
            let port = master.node.port
            #expect((after[port] ?? 0) > (before[port] ?? 0), "master \(port) ran no decision: \(before) -> \(after)")
        }
        let total = after.reduce(0) { $0 + $1.value } - before.reduce(0) { $0 + $1.value }
        // At most one EVALSHA per decision: denials after the first may come from the over-limit cache.
        #expect(total <= keys.count * 5 && total >= keys.count * 4, "EVALSHA calls \(before) -> \(after) for \(keys.count * 5) decisions")
        // The slot map names the masters by their TLS ports (the only ones open).
        let mapLine = log.text.split(separator: "\n").first { $0.contains("Redis Cluster slot map") }.map(String.init) ?? ""
        for master in masters {
            #expect(mapLine.contains(master.node.address), "slot map line: \(mapLine)")
        }
        #expect(!log.contains("cannot connect") && !log.contains("TLS handshake"), "log:\n\(log.text.suffix(3000))")
    }

    @Test("a CA that did not sign the nodes' certificates: no connection, the reason in the log, decisions per on_backend_error")
    func wrongCA() async throws {
        let group = try Self.group()
        let certificates = try Self.certificates()
        let tls = "{ ca_file: '\(certificates.otherCAFile)', cert_file: '\(certificates.clientCertFile)', key_file: '\(certificates.clientKeyFile)' }"
        let config = try Self.config(group, tls: tls, timeoutMs: 300, Self.refusalRules)
        let log = CapturedLog()
        try await Self.run(config, log: log, waitForRedis: false) { h in
            let expected = "failed: certificate verify failed: the server's certificate is not signed by a trusted CA"
            let logged = try await poll(.seconds(10)) { log.contains("TLS handshake with Redis at 127.0.0.1:") && log.contains(expected) }
            #expect(logged != nil, "log:\n\(log.text.suffix(3000))")
            #expect(log.contains("cannot read the Redis Cluster slot map"), "log:\n\(log.text.suffix(3000))")
            try await Self.expectRefused(h, group, log: log)
        }
    }

    @Test("without a client certificate, nodes that require one refuse: the reason in the log, decisions per on_backend_error")
    func clientCertificateRequired() async throws {
        let group = try Self.group()
        let certificates = try Self.certificates()
        let config = try Self.config(group, tls: "{ ca_file: '\(certificates.caFile)' }", timeoutMs: 300, Self.refusalRules)
        let log = CapturedLog()
        try await Self.run(config, log: log, waitForRedis: false) { h in
            let expected = "the server requires a client certificate"
            let logged = try await poll(.seconds(10)) { log.contains("TLS handshake with Redis at 127.0.0.1:") && log.contains(expected) }
            #expect(logged != nil, "log:\n\(log.text.suffix(3000))")
            try await Self.expectRefused(h, group, log: log)
        }
    }
}

extension Array where Element == String {
    /// `[k1, v1, k2, v2, ...]` as `[(k1, v1), (k2, v2), ...]` (a `CONFIG GET` reply, one a line;
    /// an empty value is an empty line).
    fileprivate func chunked2() -> [(String, String)] {
        stride(from: 0, to: self.count - 1, by: 2).map { (self[$0], self[$0 + 1]) }
    }
}
