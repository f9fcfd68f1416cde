import Foundation
import SluiceTestSupport
import Testing

/// deploy/nginx/sluice.conf with Debian's nginx in front of the sluice binary, a real
/// redis-server and a small app, checked end to end as a client would (GatewayHarness.swift).
@Suite("nginx in front (deploy/nginx/sluice.conf)", .serialized)
struct NginxGatewayTests {
    static let site = GatewaySite(name: "nginx", routeFrom: "original") { options in
        let binary = try DeployFiles.binary("nginx", at: ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"], package: "nginx-light")
        let port = try FreePort.find()
        let directory = try GatewayProcess.makeDirectory("nginx")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)

        var replacements = [
            ("127.0.0.1:8000", "127.0.0.1:\(port)"),
            ("127.0.0.1:8080", "127.0.0.1:\(options.sluicePort)"),
            ("127.0.0.1:9000", "127.0.0.1:\(options.appPort)"),
            ("set $sluice_fail_mode closed;", "set $sluice_fail_mode \(options.failMode.rawValue);"),
        ]
        if options.slowSluice {
            replacements += [
                ("proxy_connect_timeout 100ms;", "proxy_connect_timeout 5s;"),
                ("proxy_send_timeout 250ms;", "proxy_send_timeout 5s;"),
                ("proxy_read_timeout 250ms;", "proxy_read_timeout 5s;"),
            ]
        }
        let site = try DeployFiles.text("nginx/sluice.conf", replacing: replacements)
        try site.write(to: directory.appendingPathComponent("sluice.conf"), atomically: true, encoding: .utf8)

        let d = directory.path
        let main = DeployFiles.nginxMain(directory: directory, includes: [directory.appendingPathComponent("sluice.conf").path])
        try main.write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        return try GatewayProcess(
            name: "nginx", port: port, directory: directory, executable: binary,
            arguments: ["-p", d, "-c", "\(d)/nginx.conf", "-e", "\(d)/error.log"]
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
