import Foundation
import SluiceTestSupport
import Testing

/// The operator's side of a running `sluice serve`: the CLI against the admin API,
/// JSON log lines, and `/metrics` read by a real Prometheus text parser.
@Suite("operations", .serialized)
struct OperationsTests {
    static func yaml(_ redis: RedisServer) -> String {
        """
        redis: { url: \(redis.url), timeout_ms: 5000 }
        plans:
          p: { throttle: { rate: 0.01, burst: 5 }, quota: { limit: 50, period: day, offset_hours: 1 } }
          q: { throttle: { rate: 0.01, burst: 9 } }
        api_keys: [ { key: file-key, plan: p, name: from file } ]
        """
    }

    /// Starts sluice with an admin listener and the admin token `ops-token`.
    static func start(_ redis: RedisServer) async throws -> (SluiceProcess, Int) {
        let adminPort = try FreePort.find()
        let sluice = try SluiceProcess(
            yaml: Self.yaml(redis), environment: ["SLUICE_ADMIN_PORT": String(adminPort), "SLUICE_ADMIN_TOKENS": "ops-token"]
        )
        try await sluice.waitUntilReady()
        let up = try await poll(.seconds(5), every: .milliseconds(50)) {
            (try? await HTTPTestClient.request(port: adminPort, path: "/metrics", timeout: 1))?.status == 200
        }
        guard up != nil else { throw TestSupportError("the admin listener did not come up: \(sluice.log)") }
        return (sluice, adminPort)
    }

    /// Runs the sluice CLI.
    static func cli(_ arguments: [String], adminPort: Int, token: String = "ops-token") async throws -> (status: Int32, output: String) {
        try await SluiceProcess.runCLI(
            arguments + ["--admin-url", "http://127.0.0.1:\(adminPort)"], environment: ["SLUICE_ADMIN_TOKEN": token]
        )
    }

    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    @Test("sluice keys/inspect/usage drive the admin API: tables by default, --json on demand, errors exit 1")
    func cli() async throws {
        let redis = try await RedisServer.start()
        let (sluice, adminPort) = try await Self.start(redis)
        defer { sluice.kill() }

        let created = try await Self.cli(["keys", "create", "--plan", "p", "--name", "cli key", "--json"], adminPort: adminPort)
        #expect(created.status == 0, "\(created.output)")
        let key = try #require(Self.json(created.output)["api_key"] as? String)
        let id = try #require(Self.json(created.output)["id"] as? String)
        let table = try await Self.cli(["keys", "create", "--plan", "q", "--api-key", "typed-key"], adminPort: adminPort)
        #expect(table.status == 0 && table.output.contains("API KEY") && table.output.contains("typed-key") && table.output.contains("shown only now"))

        // Cost 2 against a burst of 5: two admitted, the third denied.
        var allowed: [Bool?] = []
        for _ in 0..<3 {
            allowed.append(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"\#(key)","cost":2}"#).json["allowed"] as? Bool)
        }
        #expect(allowed == [true, true, false])
        let list = try await Self.cli(["keys", "list"], adminPort: adminPort)
        #expect(list.status == 0 && list.output.contains(id) && list.output.contains("from file") && list.output.contains("runtime"))
        let page = try await Self.cli(["keys", "list", "--limit", "1", "--plan", "p", "--json"], adminPort: adminPort)
        // Plan p holds the file's key and the one created above: one per page, a cursor to the next.
        let pageKeys = Self.json(page.output)["keys"] as? [[String: Any]] ?? []
        #expect(page.status == 0 && pageKeys.count == 1 && pageKeys.first?["plan"] as? String == "p", "\(page.output)")
        #expect(Self.json(page.output)["next_cursor"] is String)

        let inspect = try await Self.cli(["inspect", key], adminPort: adminPort)
        #expect(inspect.status == 0 && inspect.output.contains("throttle") && inspect.output.contains("quota") && inspect.output.contains("used 4"))
        let inspectJSON = try await Self.cli(["inspect", id, "--id", "--json"], adminPort: adminPort)
        let inspected = Self.json(inspectJSON.output)
        let limits = inspected["limits"] as? [[String: Any]] ?? []
        #expect(inspected["id"] as? String == id && inspected["plan"] as? String == "p", "\(inspectJSON.output)")
        #expect(limits.compactMap { $0["name"] as? String } == ["throttle", "quota"])
        // Two admitted checks of cost 2: the burst of 5 has 1 left, the day's quota of 50 has 46.
        #expect(limits.first?["remaining"] as? Int == 1 && limits.last?["used"] as? Int == 4 && limits.last?["remaining"] as? Int == 46)

        let usage = try await Self.cli(["usage", key, "--days", "2", "--json"], adminPort: adminPort)
        let days = Self.json(usage.output)["days"] as? [[String: Any]] ?? []
        #expect(days.count == 2 && days.first?["used"] as? Int == 4, "\(usage.output)")
        let usageTable = try await Self.cli(["usage", key], adminPort: adminPort)
        #expect(usageTable.output.contains("USED") && usageTable.output.contains("46"))

        let moved = try await Self.cli(["keys", "move", id, "--plan", "q"], adminPort: adminPort)
        #expect(moved.status == 0 && moved.output.contains(id) && moved.output.contains("plan q"), "\(moved.output)")
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"\#(key)","cost":0}"#).json["plan"] as? String == "q")
        let afterMove = try await Self.cli(["keys", "list", "--plan", "q", "--json"], adminPort: adminPort)
        #expect((Self.json(afterMove.output)["keys"] as? [[String: Any]])?.contains { $0["id"] as? String == id } == true, "\(afterMove.output)")
        let revoked = try await Self.cli(["keys", "revoke", id], adminPort: adminPort)
        #expect(revoked.status == 0 && revoked.output.contains("revoked") && revoked.output.contains(id), "\(revoked.output)")
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"\#(key)"}"#).json["denied_by"] as? String == "unknown_api_key")
        let inspectRevoked = try await Self.cli(["inspect", id, "--id"], adminPort: adminPort)
        #expect(inspectRevoked.status == 1 && inspectRevoked.output.contains("unknown_key"), "\(inspectRevoked.output)")

        let wrongToken = try await Self.cli(["keys", "list"], adminPort: adminPort, token: "nope")
        #expect(wrongToken.status == 1 && wrongToken.output.contains("invalid_token"))
        let unknown = try await Self.cli(["inspect", "no-such-key"], adminPort: adminPort)
        #expect(unknown.status == 1 && unknown.output.contains("unknown_key"))
        let configMove = try await Self.cli(["keys", "revoke", try #require(Self.json(try await Self.cli(["keys", "list", "--plan", "p", "--json"], adminPort: adminPort).output)["keys"] as? [[String: Any]])
            .first?["id"] as? String ?? ""], adminPort: adminPort)
        #expect(configMove.status == 1 && configMove.output.contains("config_key"))
        let down = try await Self.cli(["keys", "list"], adminPort: try FreePort.find())
        #expect(down.status == 1 && down.output.contains("cannot reach"), "\(down)")

        // Logs are JSON lines; admin actions carry a request id and the key id, never the key.
        #expect(await sluice.terminate() == 0)
        let lines = sluice.log.split(separator: "\n").map(String.init)
        #expect(!lines.isEmpty && lines.allSatisfy { Self.json($0)["msg"] is String }, "\(lines.filter { Self.json($0).isEmpty })")
        let createdLine = try #require(lines.map(Self.json).first { $0["msg"] as? String == "runtime key created" })
        #expect(createdLine["key_id"] as? String == id && createdLine["request_id"] is String && createdLine["level"] as? String == "info")
        #expect(!sluice.log.contains(key) && !sluice.log.contains("typed-key"))
    }

    @Test("/metrics parses with prometheus_client's parser, and its counters match the decisions made")
    func prometheusParser() async throws {
        let python = try PythonTools.python()
        let redis = try await RedisServer.start()
        let (sluice, adminPort) = try await Self.start(redis)
        defer { sluice.kill() }
        var allowed = 0
        var denied = 0
        for _ in 0..<8 {
            let answer = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"file-key"}"#)
            if answer.json["allowed"] as? Bool == true { allowed += 1 } else { denied += 1 }
        }
        _ = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"stranger"}"#)
        #expect(allowed == 5 && denied == 3)
        let auth = ["Authorization": "Bearer ops-token"]
        let reloaded = try await HTTPTestClient.request(port: adminPort, method: "POST", path: "/admin/v1/reload", headers: auth, body: "")
        #expect(reloaded.status == 200 && reloaded.json["status"] as? String == "reloaded", "\(reloaded.text)")
        #expect(reloaded.json["plans"] as? Int == 2 && reloaded.json["api_keys"] as? Int == 1)
        // Refused with the check-config message naming the key path (a throttle needs a burst).
        try "plans: { p: { throttle: { rate: 0 } } }\n".write(to: sluice.configPath, atomically: true, encoding: .utf8)
        let refused = try await HTTPTestClient.request(port: adminPort, method: "POST", path: "/admin/v1/reload", headers: auth, body: "")
        let refusal = refused.json["error"] as? [String: Any]
        #expect(refused.status == 400 && refusal?["code"] as? String == "invalid_config", "\(refused.text)")
        #expect((refusal?["message"] as? String)?.contains("plans.p.throttle.burst: is required") == true, "\(refused.text)")
        let metrics = try await HTTPTestClient.request(port: adminPort, path: "/metrics")
        let parsed = try await offCooperativePool {
            try Subprocess.run(python, [PythonTools.script("parse_metrics.py")], input: metrics.text)
        }
        #expect(parsed.status == 0, "\(parsed.output)")
        let samples = Self.json(parsed.output)
        #expect(samples["sluice_decisions_total{limit=throttle,plan=p,result=allowed}"] as? Double == Double(allowed), "\(parsed.output)")
        #expect(samples["sluice_decisions_total{limit=throttle,plan=p,result=denied}"] as? Double == Double(denied))
        #expect(samples["sluice_decisions_total{limit=,plan=,result=unknown_key}"] as? Double == 1)
        #expect(samples["sluice_check_duration_seconds_count{endpoint=check}"] as? Double == 9)
        #expect(samples["sluice_over_limit_cache_hits_total"] as? Double == 2)
        #expect(samples.keys.contains { $0.hasPrefix("sluice_redis_command_duration_seconds_bucket{") })
        #expect(samples["sluice_config_reloads_total{result=success}"] as? Double == 1)
        #expect(samples["sluice_config_reloads_total{result=failure}"] as? Double == 1)
        #expect(samples["sluice_runtime_keys"] as? Double == 0)
        // The refused file did not replace the running config: plan q and its burst of 9 are still there.
        let stillQ = try await HTTPTestClient.request(port: adminPort, path: "/admin/v1/plans", headers: auth)
        #expect((stillQ.json["plans"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["p", "q"], "\(stillQ.text)")
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"file-key","cost":0}"#).json["plan"] as? String == "p")
        #expect(await sluice.terminate() == 0)
    }
}
