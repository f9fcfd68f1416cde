import Foundation
import SluiceTestSupport
import Testing

/// deploy/caddy/Caddyfile with Debian's caddy in front of the sluice binary, a real
/// redis-server and a small app, checked end to end as a client would (GatewayHarness.swift).
@Suite("Caddy in front (deploy/caddy/Caddyfile)", .serialized)
struct CaddyGatewayTests {
    static let site = GatewaySite(name: "caddy", routeFrom: "forwarded") { options in
        let binary = try DeployFiles.binary("caddy", at: ["/usr/bin/caddy", "/usr/local/bin/caddy"], package: "caddy")
        let port = try FreePort.find()
        let directory = try GatewayProcess.makeDirectory("caddy")

        var replacements = [
            (":8000 {", ":\(port) {"),
            ("127.0.0.1:8080", "127.0.0.1:\(options.sluicePort)"),
            ("127.0.0.1:9000", "127.0.0.1:\(options.appPort)"),
            ("vars sluice_fail_mode closed", "vars sluice_fail_mode \(options.failMode.rawValue)"),
        ]
        if options.slowSluice {
            replacements += [("dial_timeout 100ms", "dial_timeout 5s"), ("response_header_timeout 250ms", "response_header_timeout 5s")]
        }
        let site = try DeployFiles.text("caddy/Caddyfile", replacing: replacements)
        // No admin endpoint (it would take port 2019), nothing saved outside the temp dir.
        let global = """
            {
            \tadmin off
            \tstorage file_system \(directory.path)/data
            }

            """
        try (global + site).write(to: directory.appendingPathComponent("Caddyfile"), atomically: true, encoding: .utf8)
        return try GatewayProcess(
            name: "caddy", port: port, directory: directory, executable: binary,
            arguments: ["run", "--config", directory.appendingPathComponent("Caddyfile").path, "--adapter", "caddyfile"],
            environment: ["HOME": directory.path, "XDG_DATA_HOME": directory.path, "XDG_CONFIG_HOME": directory.path]
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
