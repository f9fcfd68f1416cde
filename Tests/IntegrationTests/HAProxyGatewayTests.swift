import Foundation
import SluiceTestSupport
import Testing

/// deploy/haproxy/haproxy.cfg and sluice.lua with Debian's HAProxy in front of the sluice
/// binary, a real redis-server and a small app, checked end to end as a client would
/// (GatewayHarness.swift).
@Suite("HAProxy in front (deploy/haproxy)", .serialized)
struct HAProxyGatewayTests {
    static let site = GatewaySite(name: "haproxy", routeFrom: "original") { options in
        let binary = try DeployFiles.binary("haproxy", at: ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"], package: "haproxy")
        let port = try FreePort.find()
        let directory = try GatewayProcess.makeDirectory("haproxy")

        let lua = try DeployFiles.text("haproxy/sluice.lua", replacing: [])
        try lua.write(to: directory.appendingPathComponent("sluice.lua"), atomically: true, encoding: .utf8)
        let gate = "/run/haproxy/sluice-gate.sock"
        var replacements = [
            ("lua-load /etc/haproxy/sluice.lua", "lua-load \(directory.path)/sluice.lua"),
            ("lua.sluice_auth unix@\(gate) closed", "lua.sluice_auth unix@\(gate) \(options.failMode.rawValue)"),
            (gate, "\(directory.path)/gate.sock"),
            ("127.0.0.1:8000", "127.0.0.1:\(port)"),
            ("127.0.0.1:8080", "127.0.0.1:\(options.sluicePort)"),
            ("127.0.0.1:9000", "127.0.0.1:\(options.appPort)"),
        ]
        if options.slowSluice {
            replacements += [("timeout connect 100ms", "timeout connect 5s"), ("timeout server 250ms", "timeout server 5s")]
        }
        let config = try DeployFiles.text("haproxy/haproxy.cfg", replacing: replacements)
        try config.write(to: directory.appendingPathComponent("haproxy.cfg"), atomically: true, encoding: .utf8)
        return try GatewayProcess(
            name: "haproxy", port: port, directory: directory, executable: binary,
            arguments: ["-db", "-f", directory.appendingPathComponent("haproxy.cfg").path]
        )
    }

    @Test("allowed 200s carry every rate-limit field; 429 with Retry-After on a connection that stays open; 401 and 403; the app sees only allowed requests")
    func decisions() async throws {
        try await Self.site.checkDecisions()
    }

    @Test("a client's X-Original-*, X-Forwarded-* and X-RateLimit-Cost choose neither the route charged nor the cost")
    func spoofing() async throws {
        try await Self.site.checkSpoofing()
    }

    @Test("a client's X-Sluice-Stage never reaches Sluice")
    func stageSpoofing() async throws {
        try await Self.site.checkStageSpoofing()
    }

    @Test("Sluice unreachable: fail-closed answers 503 fast; fail-open passes to the app")
    func sluiceUnreachable() async throws {
        try await Self.site.checkSluiceUnreachable()
    }

    @Test("Redis down: on_backend_error deny is a 503 in both fail modes, allow passes")
    func redisDown() async throws {
        try await Self.site.checkRedisDown()
    }
}
