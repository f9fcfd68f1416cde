import Foundation
import SluiceTestSupport
import Testing

/// `/metrics` of a running `sluice serve` as Prometheus's own tool judges it: `promtool check
/// metrics` (Debian's `prometheus` package) finds no problem right after start, after traffic
/// and after a reload; every series Sluice can tell from its config is there at 0 before
/// anything was counted, so `rate()` and `increase()` see it start.
@Suite("/metrics format (promtool)", .serialized)
struct MetricsFormatTests {
    static func yaml(_ redis: RedisServer, extraPlan: String = "") -> String {
        """
        redis: { url: \(redis.url), timeout_ms: 5000 }
        logging: { level: error }
        plans:
          p:
            throttle: { rate: 0.01, burst: 2 }
            quota: { limit: 100, period: day }
            routes:
              "POST /v1/predict": { rate: 0.01, burst: 1 }
          s: { throttle: { rate: 0.01, burst: 1 }, shadow: true, on_backend_error: allow }
        \(extraPlan)
        api_keys: [ { key: p-key, plan: p }, { key: s-key, plan: s } ]
        """
    }

    /// promtool from PATH (Debian installs it as /usr/bin/promtool).
    static func promtool() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent("promtool")
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        throw TestSupportError("promtool is not installed: apt-get install prometheus (./scripts/test installs it)")
    }

    /// `promtool check metrics` over `text`: its exit status and what it reported.
    static func check(_ text: String) async throws -> (status: Int32, output: String) {
        let promtool = try Self.promtool()
        return try await offCooperativePool { try Subprocess.run(promtool, ["check", "metrics"], input: text) }
    }

    /// The samples of `text`, read by prometheus_client's parser: `name{label=value,...}` → value.
    static func samples(_ text: String) async throws -> [String: Double] {
        let python = try PythonTools.python()
        let parsed = try await offCooperativePool {
            try Subprocess.run(python, [PythonTools.script("parse_metrics.py")], input: text)
        }
        guard parsed.status == 0,
            let object = (try? JSONSerialization.jsonObject(with: Data(parsed.output.utf8))) as? [String: Any]
        else {
            throw TestSupportError("parse_metrics.py refused /metrics: \(parsed.output)")
        }
        return object.compactMapValues { $0 as? Double }
    }

    static func scrape(_ port: Int) async throws -> String {
        let answer = try await HTTPTestClient.request(port: port, path: "/metrics")
        guard answer.status == 200 else { throw TestSupportError("/metrics answered \(answer.status)") }
        return answer.text
    }

    /// Every metric family named in a `# TYPE` line, and whether a `# HELP` line names it too.
    static func familiesWithoutHelp(_ text: String) -> [String] {
        let lines = text.split(separator: "\n")
        let typed = lines.filter { $0.hasPrefix("# TYPE ") }.compactMap { $0.split(separator: " ").dropFirst(2).first.map(String.init) }
        let helped = Set(lines.filter { $0.hasPrefix("# HELP ") }.compactMap { $0.split(separator: " ").dropFirst(2).first.map(String.init) })
        return typed.filter { !helped.contains($0) }
    }

    @Test("promtool check metrics passes at start, after traffic and after a reload; known series are at 0 before any traffic")
    func promtoolAndZeroSeries() async throws {
        let redis = try await RedisServer.start()
        let adminPort = try FreePort.find()
        let sluice = try SluiceProcess(
            yaml: Self.yaml(redis), environment: ["SLUICE_ADMIN_PORT": String(adminPort), "SLUICE_ADMIN_TOKENS": "metrics-token"]
        )
        defer { sluice.kill() }
        try await sluice.waitUntilReady()
        let up = try await poll(.seconds(5), every: .milliseconds(50)) {
            (try? await HTTPTestClient.request(port: adminPort, path: "/metrics", timeout: 1))?.status == 200
        }
        guard up != nil else { throw TestSupportError("the admin listener did not come up: \(sluice.log)") }

        // Right after start, before any decision.
        let atStart = try await Self.scrape(adminPort)
        let startCheck = try await Self.check(atStart)
        #expect(startCheck.status == 0 && startCheck.output.isEmpty, "promtool at start:\n\(startCheck.output)")
        #expect(Self.familiesWithoutHelp(atStart).isEmpty, "\(Self.familiesWithoutHelp(atStart))")
        let zero = try await Self.samples(atStart)
        let expectedZero = [
            "sluice_decisions_total{limit=throttle,plan=p,result=allowed}",
            "sluice_decisions_total{limit=throttle,plan=p,result=denied}",
            "sluice_decisions_total{limit=quota,plan=p,result=allowed}",
            "sluice_decisions_total{limit=quota,plan=p,result=denied}",
            "sluice_decisions_total{limit=route:POST /v1/predict,plan=p,result=denied}",
            "sluice_decisions_total{limit=,plan=p,result=unavailable}",
            "sluice_decisions_total{limit=throttle,plan=s,result=allowed}",
            "sluice_decisions_total{limit=throttle,plan=s,result=shadow_denied}",
            "sluice_decisions_total{limit=,plan=s,result=degraded}",
            "sluice_decisions_total{limit=,plan=,result=unknown_key}",
            "sluice_near_limit_decisions_total{limit=throttle,plan=p}",
            "sluice_near_limit_decisions_total{limit=route:POST /v1/predict,plan=p}",
            "sluice_shadow_denials_total{limit=throttle,plan=s}",
            "sluice_backend_degraded_decisions_total{outcome=unavailable,plan=p}",
            "sluice_backend_degraded_decisions_total{outcome=allowed,plan=s}",
            "sluice_redis_errors_total{kind=timeout}",
            "sluice_redis_errors_total{kind=unavailable}",
            "sluice_redis_errors_total{kind=server_error}",
            "sluice_config_reloads_total{result=success}",
            "sluice_config_reloads_total{result=failure}",
            "sluice_over_limit_cache_hits_total",
            "sluice_redis_reconnects_total",
            "sluice_check_duration_seconds_count{endpoint=check}",
        ]
        for series in expectedZero {
            #expect(zero[series] == 0, "\(series) at start: \(zero[series].map { "\($0)" } ?? "missing")")
        }
        // A shadow plan never denies, a fail-closed plan never degrades: no series that cannot count.
        #expect(zero["sluice_decisions_total{limit=throttle,plan=s,result=denied}"] == nil)
        #expect(zero["sluice_decisions_total{limit=,plan=p,result=degraded}"] == nil)

        // Traffic: allowed, denied (one from the over-limit cache), shadow-denied, unknown, a route.
        for _ in 0..<4 { _ = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"p-key"}"#) }
        for _ in 0..<2 { _ = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"s-key"}"#) }
        _ = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"p-key","route":"POST /v1/predict"}"#)
        _ = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"stranger"}"#)
        let afterTraffic = try await Self.scrape(adminPort)
        let trafficCheck = try await Self.check(afterTraffic)
        #expect(trafficCheck.status == 0 && trafficCheck.output.isEmpty, "promtool after traffic:\n\(trafficCheck.output)")
        let counted = try await Self.samples(afterTraffic)
        #expect(counted["sluice_decisions_total{limit=throttle,plan=p,result=allowed}"] == 2)
        #expect(counted["sluice_decisions_total{limit=throttle,plan=p,result=denied}"] == 2)
        #expect(counted["sluice_decisions_total{limit=route:POST /v1/predict,plan=p,result=allowed}"] == 1)
        #expect(counted["sluice_decisions_total{limit=throttle,plan=s,result=shadow_denied}"] == 1)
        #expect(counted["sluice_decisions_total{limit=,plan=,result=unknown_key}"] == 1)
        #expect(counted["sluice_decisions_total{limit=quota,plan=p,result=denied}"] == 0)

        // A reload that adds a plan: its series appear at 0, the counted ones keep their counts.
        let extra = "  fresh: { quota: { limit: 10, period: week }, on_backend_error: allow }"
        try Self.yaml(redis, extraPlan: extra).write(to: sluice.configPath, atomically: true, encoding: .utf8)
        let reload = try await HTTPTestClient.request(
            port: adminPort, method: "POST", path: "/admin/v1/reload", headers: ["Authorization": "Bearer metrics-token"], body: ""
        )
        #expect(reload.status == 200 && reload.json["status"] as? String == "reloaded", "\(reload.text)")
        #expect(reload.json["plans"] as? Int == 3 && reload.json["api_keys"] as? Int == 2, "\(reload.text)")
        let afterReload = try await Self.scrape(adminPort)
        let reloadCheck = try await Self.check(afterReload)
        #expect(reloadCheck.status == 0 && reloadCheck.output.isEmpty, "promtool after reload:\n\(reloadCheck.output)")
        let reloaded = try await Self.samples(afterReload)
        #expect(reloaded["sluice_decisions_total{limit=quota,plan=fresh,result=allowed}"] == 0)
        #expect(reloaded["sluice_decisions_total{limit=quota,plan=fresh,result=denied}"] == 0)
        #expect(reloaded["sluice_backend_degraded_decisions_total{outcome=allowed,plan=fresh}"] == 0)
        #expect(reloaded["sluice_config_reloads_total{result=success}"] == 1)
        #expect(reloaded["sluice_decisions_total{limit=throttle,plan=p,result=allowed}"] == 2)
        #expect(await sluice.terminate() == 0)
    }
}
