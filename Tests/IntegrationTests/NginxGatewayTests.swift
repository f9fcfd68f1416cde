import Dispatch
import Foundation
import SluiceTestSupport
import Testing

/// deploy/nginx/sluice.conf in front of a small upstream, with Debian's nginx, a real
/// redis-server and the sluice binary, checked end to end as a client would.
@Suite("nginx in front (deploy/nginx/sluice.conf)", .serialized)
struct NginxGatewayTests {
    /// One nginx process: the site under test plus a small upstream that logs what it serves.
    final class Nginx {
        let port: Int
        let upstreamPort: Int
        let directory: URL
        let process: Process

        /// - Parameter slowSluice: the site's sub-request timeouts (100 ms to connect, 250 ms to
        ///   answer) raised to 5 s, for tests about answers rather than failures, so that a loaded
        ///   machine's slow answer is not turned into the fail mode's 503.
        init(sluicePort: Int, failMode: String = "closed", slowSluice: Bool = false) throws {
            self.port = try FreePort.find()
            self.upstreamPort = try FreePort.find()
            self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-nginx-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: self.directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)

            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            var site = try String(contentsOf: root.appendingPathComponent("deploy/nginx/sluice.conf"), encoding: .utf8)
            site = site.replacingOccurrences(of: "127.0.0.1:8000", with: "127.0.0.1:\(self.port)")
            site = site.replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(sluicePort)")
            site = site.replacingOccurrences(of: "127.0.0.1:9000", with: "127.0.0.1:\(self.upstreamPort)")
            site = site.replacingOccurrences(of: "set $sluice_fail_mode closed;", with: "set $sluice_fail_mode \(failMode);")
            if slowSluice {
                for directive in ["proxy_connect_timeout 100ms;", "proxy_send_timeout 250ms;", "proxy_read_timeout 250ms;"] {
                    let name = directive.split(separator: " ")[0]
                    guard site.contains(directive) else { throw TestSupportError("deploy/nginx/sluice.conf has no \(directive)") }
                    site = site.replacingOccurrences(of: directive, with: "\(name) 5s;")
                }
            }
            try site.write(to: self.directory.appendingPathComponent("sluice.conf"), atomically: true, encoding: .utf8)

            let d = self.directory.path
            let main = """
                daemon off;
                master_process off;
                worker_processes 1;
                pid \(d)/nginx.pid;
                error_log \(d)/error.log warn;
                events { worker_connections 256; }
                http {
                    access_log off;
                    client_body_temp_path \(d)/tmp/body;
                    proxy_temp_path \(d)/tmp/proxy;
                    fastcgi_temp_path \(d)/tmp/fastcgi;
                    uwsgi_temp_path \(d)/tmp/uwsgi;
                    scgi_temp_path \(d)/tmp/scgi;
                    include \(d)/sluice.conf;
                    server {
                        listen 127.0.0.1:\(self.upstreamPort);
                        access_log \(d)/upstream.log;
                        location / { return 200 "upstream ok\\n"; }
                    }
                }
                """
            try main.write(to: self.directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)

            let process = Process()
            process.executableURL = try Self.nginxBinary()
            process.arguments = ["-p", d, "-c", "\(d)/nginx.conf", "-e", "\(d)/error.log"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            self.process = process
        }

        deinit {
            if self.process.isRunning {
                kill(self.process.processIdentifier, SIGKILL)
                self.process.waitUntilExit()
            }
            try? FileManager.default.removeItem(at: self.directory)
        }

        static func nginxBinary() throws -> URL {
            for path in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] where FileManager.default.isExecutableFile(atPath: path) {
                return URL(fileURLWithPath: path)
            }
            throw TestSupportError("nginx is not installed (scripts/test installs nginx-light)")
        }

        var errorLog: String { (try? String(contentsOf: self.directory.appendingPathComponent("error.log"), encoding: .utf8)) ?? "" }

        /// Requests the upstream served, from its access log.
        var upstreamLines: [String] {
            let log = (try? String(contentsOf: self.directory.appendingPathComponent("upstream.log"), encoding: .utf8)) ?? ""
            return log.split(separator: "\n").map(String.init)
        }

        func waitUntilUp() async throws {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                guard self.process.isRunning else { throw TestSupportError("nginx exited: \(self.errorLog)") }
                if (try? await HTTPTestClient.request(port: self.upstreamPort, path: "/ping", timeout: 1)) != nil {
                    return
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw TestSupportError("nginx did not start: \(self.errorLog)")
        }

        func get(_ path: String, headers: [String: String] = [:]) async throws -> HTTPTestResponse {
            try await HTTPTestClient.request(port: self.port, method: "GET", path: path, headers: headers)
        }
    }

    static let yaml = """
        plans:
          gw:
            throttle: { rate: 0.01, burst: 2 }
            routes:
              "GET /v1/models/{model}": { rate: 0.01, burst: 5 }
        api_keys: [ { key: gw-key, plan: gw } ]
        """

    @Test("allowed 200s with headers, 429 + Retry-After when over the limit, 401/403 for bad keys; the upstream never sees a denied request")
    func endToEnd() async throws {
        let redis = try await RedisServer.start()
        let sluice = try SluiceProcess(yaml: "redis: { url: \(redis.url), timeout_ms: 5000 }\n" + Self.yaml)
        try await sluice.waitUntilReady()
        let nginx = try Nginx(sluicePort: sluice.port, slowSluice: true)
        try await nginx.waitUntilUp()
        let upstreamBefore = nginx.upstreamLines.count
        let before = try await redis.timeMs()

        for expected in [1, 0] {
            let ok = try await nginx.get("/hello?x=1", headers: ["X-API-Key": "gw-key"])
            #expect(ok.status == 200 && ok.text == "upstream ok\n", "\(ok.status) \(ok.text) \(nginx.errorLog)")
            #expect(ok.header("RateLimit-Policy") == #""throttle";q=2;w=200"#)
            #expect(ok.header("RateLimit")?.hasPrefix(#""throttle";r=\#(expected);"#) == true)
        }
        // A client cannot pick its own cost (the site clears X-RateLimit-Cost): no free peek.
        let sneaky = try await nginx.get("/hello", headers: ["X-API-Key": "gw-key", "X-RateLimit-Cost": "0"])
        #expect(sneaky.status == 429)
        let limited = try await nginx.get("/hello", headers: ["Authorization": "Bearer gw-key"])
        let after = try await redis.timeMs()
        #expect(limited.status == 429, "\(limited.status) \(limited.text)")
        // The first token comes back 100 s after the first request, by Redis's clock.
        let retryAfter = Int64(limited.header("Retry-After") ?? "") ?? -1
        #expect(((100_000 - (after - before) + 999) / 1000)...100 ~= retryAfter, "Retry-After \(retryAfter), \(after - before) ms passed")
        #expect(limited.header("RateLimit")?.hasPrefix(#""throttle";r=0;"#) == true)
        #expect(limited.header("RateLimit-Policy") == #""throttle";q=2;w=200"#)

        // A route pattern with its own bucket still passes (the plan throttle does not apply there).
        let model = try await nginx.get("/v1/models/gpt-4", headers: ["X-API-Key": "gw-key"])
        #expect(model.status == 200)
        #expect(model.header("RateLimit-Policy") == #""route:GET /v1/models/{model}";q=5;w=500"#)

        let wrong = try await nginx.get("/hello", headers: ["X-API-Key": "not-a-key"])
        #expect(wrong.status == 403)
        let missing = try await nginx.get("/hello")
        #expect(missing.status == 401)

        // The upstream served the three allowed requests and nothing else.
        let served = Array(nginx.upstreamLines.dropFirst(upstreamBefore))
        #expect(served.count == 3, "\(served)")
        #expect(served.allSatisfy { $0.contains("GET /hello?x=1") || $0.contains("GET /v1/models/gpt-4") })
        await sluice.terminate()
    }

    @Test("Sluice unreachable: fail-closed answers 503 fast; fail-open passes to the upstream")
    func failModes() async throws {
        let deadPort = try FreePort.find()
        let closed = try Nginx(sluicePort: deadPort, failMode: "closed")
        try await closed.waitUntilUp()
        let started = ContinuousClock.now
        let r = try await closed.get("/hello", headers: ["X-API-Key": "gw-key"])
        // A refused connection fails at once; the site's timeouts bound it at 350 ms in any case.
        #expect(r.status == 503 && ContinuousClock.now - started < .seconds(5))
        #expect(closed.upstreamLines.filter { $0.contains("/hello") }.isEmpty)

        let open = try Nginx(sluicePort: deadPort, failMode: "open")
        try await open.waitUntilUp()
        let passed = try await open.get("/hello", headers: ["X-API-Key": "gw-key"])
        #expect(passed.status == 200 && passed.text == "upstream ok\n", "\(passed.status) \(passed.text) \(open.errorLog)")
    }
}
