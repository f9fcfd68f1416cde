import Dispatch
import Foundation
import SluiceTestSupport
import Testing

/// The `sluice` binary as users run it: real processes, a real redis-server, HTTP over TCP.
@Suite("sluice processes", .serialized)
struct SluiceProcessTests {
    /// A config on `redis`; its command deadline is 5 s unless a test about failures asks for less,
    /// so that a loaded machine answers late rather than failing decisions.
    static func yaml(redis: RedisServer, plans: String, keys: String, timeoutMs: Int = 5000) -> String {
        """
        redis: { url: \(redis.url), timeout_ms: \(timeoutMs) }
        plans:
        \(plans)
        api_keys:
        \(keys)
        """
    }

    @Test("two instances on one Redis share counters exactly")
    func sharedCounters() async throws {
        let redis = try await RedisServer.start()
        let yaml = Self.yaml(redis: redis, plans: "  p: { throttle: { rate: 0.01, burst: 10 } }", keys: "  - { key: shared, plan: p }")
        let a = try SluiceProcess(yaml: yaml)
        let b = try SluiceProcess(yaml: yaml)
        try await a.waitUntilReady()
        try await b.waitUntilReady()
        var admitted = 0
        for i in 0..<30 {
            let port = i % 2 == 0 ? a.port : b.port
            let r = try await HTTPTestClient.check(port: port, #"{"api_key":"shared"}"#)
            #expect(r.status == 200)
            if r.json["allowed"] as? Bool == true { admitted += 1 }
        }
        #expect(admitted == 10)
        #expect(await a.terminate() == 0)
        #expect(await b.terminate() == 0)
    }

    @Test("8 concurrent clients across two instances never over-admit, and admit at least half of what the limit allows")
    func concurrentClients() async throws {
        let redis = try await RedisServer.start()
        // A slow rate, so that even a loaded machine's few requests a second meet denials, and
        // the lower bound below does not depend on how fast requests are made.
        let rate = 2.0
        let burst = 5
        let yaml = Self.yaml(redis: redis, plans: "  p: { throttle: { rate: \(rate), burst: \(burst) } }", keys: "  - { key: busy, plan: p }")
        let a = try SluiceProcess(yaml: yaml)
        let b = try SluiceProcess(yaml: yaml)
        try await a.waitUntilReady()
        try await b.waitUntilReady()

        let ports = [a.port, b.port]
        let started = Date()
        let runFor: TimeInterval = 3
        let results = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for client in 0..<8 {
                group.addTask {
                    var admitted = 0
                    var total = 0
                    while Date().timeIntervalSince(started) < runFor {
                        let r = try await HTTPTestClient.check(port: ports[client % 2], #"{"api_key":"busy"}"#)
                        if r.json["allowed"] as? Bool == true { admitted += 1 }
                        total += 1
                    }
                    return (admitted, total)
                }
            }
            var sum = (0, 0)
            for try await (admitted, total) in group { sum = (sum.0 + admitted, sum.1 + total) }
            return sum
        }
        let elapsed = Date().timeIntervalSince(started)
        let ceiling = Double(burst) + rate * elapsed
        #expect(results.1 > results.0, "some requests must have been denied (\(results))")
        #expect(Double(results.0) <= ceiling, "admitted \(results.0) > burst + rate × \(elapsed) s = \(ceiling)")
        #expect(Double(results.0) >= ceiling / 2, "admitted \(results.0) < half of \(ceiling)")
        await a.terminate()
        await b.terminate()
    }

    @Test("exactly one top-level Redis command per decision (redis-cli MONITOR)")
    func oneCommandPerDecision() async throws {
        let redis = try await RedisServer.start()
        let yaml = Self.yaml(
            redis: redis,
            plans: """
                  p:
                    throttle: { rate: 100, burst: 100 }
                    quota: { limit: 100000, period: month }
                    routes:
                      "POST /v1/predict": { rate: 100, burst: 50, additional: true }
                """,
            keys: "  - { key: mon, plan: p }"
        )
        let sluice = try SluiceProcess(yaml: yaml)
        try await sluice.waitUntilReady()

        let monitor = Process()
        // redis-cli buffers its output when it is not a terminal; stdbuf makes it line-buffered.
        monitor.executableURL = try RedisServer.executable("stdbuf")
        monitor.arguments = ["-oL", try RedisServer.executable("redis-cli").path, "-p", String(redis.port), "MONITOR"]
        let output = Pipe()
        monitor.standardOutput = output
        try monitor.run()
        // redis-cli in MONITOR mode does not stop on SIGTERM; stopped however the test ends.
        defer {
            kill(monitor.processIdentifier, SIGKILL)
            monitor.waitUntilExit()
        }
        // A lost end marker must fail the test, not hang it: after 60 s the capture is cut,
        // and reading it ends with an error.
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) {
            if monitor.isRunning { kill(monitor.processIdentifier, SIGKILL) }
        }
        // MONITOR answers OK once it is subscribed.
        let firstLine = try await Self.readLine(output.fileHandleForReading)
        #expect(firstLine == "OK")

        let decisions = 40
        for i in 0..<decisions {
            let body = i % 2 == 0 ? #"{"api_key":"mon","route":"POST /v1/predict"}"# : #"{"api_key":"mon","cost":0}"#
            #expect(try await HTTPTestClient.check(port: sluice.port, body).status == 200)
        }
        // A marker through redis-cli ends the capture.
        try await redis.cliAsync("ECHO", "end-of-test")
        var lines: [String] = []
        while true {
            let line = try await Self.readLine(output.fileHandleForReading)
            if line.contains("end-of-test") { break }
            lines.append(line)
        }

        // The runtime-key registry's once-a-second version check is not a decision, and neither is
        // the handshake of a connection that came up after MONITOR started (SELECT, SCRIPT LOAD,
        // CONFIG GET on a client that sent CONFIG GET maxmemory-policy in the capture).
        let handshakeClients = Set(
            lines.filter { $0.lowercased().contains(#""config" "get" "maxmemory-policy""#) }.compactMap(Self.client(of:))
        )
        let handshake = [#""select""#, #""script" "load""#, #""config" "get""#, #""auth""#]
        let topLevel = lines.filter { line in
            if line.contains("[0 lua]") || line.contains("sluice:registry:") { return false }
            guard let client = Self.client(of: line), handshakeClients.contains(client) else { return true }
            return !handshake.contains { line.lowercased().contains("] " + $0) }
        }
        let evalsha = topLevel.filter { $0.lowercased().contains("\"evalsha\"") }
        #expect(evalsha.count == decisions, "\(topLevel.prefix(5))")
        #expect(topLevel.count == decisions, "other top-level commands: \(topLevel.filter { !$0.lowercased().contains("evalsha") })")
        #expect(lines.count > topLevel.count, "the script's own commands show as [0 lua]")
        await sluice.terminate()
    }

    @Test("Redis stopped mid-run: fast answers by on_backend_error, readyz says down; decisions resume after a restart")
    func redisStoppedMidRun() async throws {
        let redis = try await RedisServer.start()
        let yaml = Self.yaml(
            redis: redis,
            plans: """
                  closed: { throttle: { rate: 0.01, burst: 100 }, on_backend_error: deny }
                  open: { throttle: { rate: 0.01, burst: 100 }, on_backend_error: allow }
                """,
            keys: "  - { key: c, plan: closed }\n  - { key: o, plan: open }",
            timeoutMs: 100
        )
        let sluice = try SluiceProcess(yaml: yaml)
        try await sluice.waitUntilReady()
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"c"}"#).json["allowed"] as? Bool == true)

        redis.stop()
        for _ in 0..<10 {
            let started = ContinuousClock.now
            let closed = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"c"}"#)
            let open = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"o"}"#)
            // Two answers that each wait at most the 100 ms deadline; a hang would reach the
            // client's 10 s timeout.
            #expect(ContinuousClock.now - started < .seconds(3))
            #expect(closed.status == 503 && (closed.json["error"] as? [String: Any])?["code"] as? String == "backend_unavailable")
            #expect(open.status == 200 && open.json["allowed"] as? Bool == true && open.json["degraded"] as? Bool == true)
        }
        let readyz = try await HTTPTestClient.request(port: sluice.port, path: "/readyz")
        #expect(readyz.status == 200 && readyz.json["redis"] as? String == "down")

        try await redis.restart()
        let deadline = ContinuousClock.now + .seconds(10)
        var resumed = false
        while ContinuousClock.now < deadline {
            let r = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"c"}"#)
            if r.status == 200, r.json["allowed"] as? Bool == true {
                resumed = true
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(resumed, "decisions did not resume: \(sluice.log.suffix(2000))")
        #expect(sluice.isRunning)
        #expect(await sluice.terminate() == 0)
    }

    @Test("SLUICE_REDIS_URL wins over the file; SIGINT stops the server cleanly")
    func environmentAndSigint() async throws {
        let redis = try await RedisServer.start()
        let yaml = """
            redis: { url: "redis://127.0.0.1:1/0" }
            plans: { p: { throttle: { rate: 1, burst: 1 } } }
            api_keys: [ { key: k, plan: p } ]
            """
        let sluice = try SluiceProcess(yaml: yaml, environment: ["SLUICE_REDIS_URL": redis.url])
        try await sluice.waitUntilReady()
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"k"}"#).json["allowed"] as? Bool == true)
        #expect(await sluice.terminate(signal: SIGINT) == 0)
        #expect(sluice.log.contains("stopped"))
    }

    @Test("an evicting Redis is warned about loudly: a log line and readyz")
    func evictionWarning() async throws {
        let redis = try await RedisServer.start(arguments: ["--maxmemory-policy", "volatile-lru"])
        let sluice = try SluiceProcess(yaml: "redis: { url: \(redis.url) }\nplans: { p: { throttle: { rate: 1, burst: 1 } } }\napi_keys: [ { key: k, plan: p } ]\n")
        try await sluice.waitUntilReady()
        let readyz = try await HTTPTestClient.request(port: sluice.port, path: "/readyz")
        #expect((readyz.json["warnings"] as? [String] ?? []).contains { $0.contains("volatile-lru") })
        #expect(sluice.log.contains("warning") && sluice.log.contains("maxmemory-policy is volatile-lru"))
        await sluice.terminate()
    }

    @Test("sluice check-config: 0 for a valid file; non-zero with file, key path and reason otherwise")
    func checkConfig() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-cc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = directory.appendingPathComponent("good.yaml")
        try "plans: { p: { throttle: { rate: 1, burst: 1 } } }\napi_keys: [ { key: k, plan: p } ]\n".write(to: good, atomically: true, encoding: .utf8)
        let bad = directory.appendingPathComponent("bad.yaml")
        try "plans: { p: { throttle: { rate: -1, burst: 1 } } }\napi_keys: [ { key: k, plan: q } ]\n".write(to: bad, atomically: true, encoding: .utf8)

        let ok = try await Self.run(["check-config", good.path])
        #expect(ok.status == 0 && ok.output.contains("ok"))
        let failed = try await Self.run(["check-config", bad.path])
        #expect(failed.status != 0)
        #expect(failed.output.contains("\(bad.path): plans.p.throttle.rate: must be a positive number"))
        #expect(failed.output.contains("\(bad.path): api_keys[0].plan: plan \"q\" is not defined"))
        let missing = try await Self.run(["check-config", directory.appendingPathComponent("none.yaml").path])
        #expect(missing.status != 0 && missing.output.contains("cannot read"))
    }

    static func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await SluiceProcess.runCLI(arguments)
    }

    /// The client address of a MONITOR line (`... [0 127.0.0.1:5555] "cmd" ...`), nil for scripts' own commands.
    static func client(of line: String) -> String? {
        guard let open = line.firstIndex(of: "["), let close = line[open...].firstIndex(of: "]") else { return nil }
        let inside = line[line.index(after: open)..<close].split(separator: " ")
        guard inside.count == 2, inside[1] != "lua" else { return nil }
        return String(inside[1])
    }

    /// Reads one line on a Dispatch thread (MONITOR's output never ends by itself).
    static func readLine(_ handle: FileHandle) async throws -> String {
        try await offCooperativePool {
            var bytes: [UInt8] = []
            while true {
                guard let byte = handle.readData(ofLength: 1).first else {
                    throw TestSupportError("MONITOR output ended")
                }
                if byte == 10 { break }
                bytes.append(byte)
            }
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}

@Suite("config reload (SIGHUP)", .serialized)
struct ConfigReloadTests {
    @Test("SIGHUP puts a new file in force; a broken file is rejected and the running config stays")
    func sighup() async throws {
        let redis = try await RedisServer.start()
        let base = "redis: { url: \(redis.url) }\nplans: { p: { throttle: { rate: 0.01, burst: 5 } } }\n"
        let sluice = try SluiceProcess(yaml: base + "api_keys: [ { key: k1, plan: p } ]\n")
        try await sluice.waitUntilReady()
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"k2"}"#).json["denied_by"] as? String == "unknown_api_key")

        try (base + "api_keys: [ { key: k1, plan: p }, { key: k2, plan: p } ]\n").write(to: sluice.configPath, atomically: true, encoding: .utf8)
        kill(sluice.pid, SIGHUP)
        let known = try await poll(.seconds(5), every: .milliseconds(50)) {
            try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"k2","cost":0}"#).json["plan"] as? String == "p"
        }
        #expect(known != nil, "k2 not in force after SIGHUP: \(sluice.log)")
        let noticed = sluice.log.split(separator: "\n").contains { $0.contains("config reloaded") && $0.contains(#""level":"notice""#) }
        #expect(noticed, "the reload's success is logged at notice: \(sluice.log)")

        // An empty file, or one caught half-written (plans, no keys yet, no admin API), would
        // refuse every request: rejected, logged at error, and the running config stays.
        for (index, thin) in ["", base].enumerated() {
            try thin.write(to: sluice.configPath, atomically: true, encoding: .utf8)
            kill(sluice.pid, SIGHUP)
            let refused = try await poll(.seconds(5), every: .milliseconds(50)) {
                sluice.log.split(separator: "\n").filter { $0.contains("config reload rejected") && $0.contains(#""level":"error""#) }.count == index + 1
            }
            #expect(refused != nil, "\(thin.debugDescription) not refused: \(sluice.log)")
            #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"k2","cost":0}"#).json["plan"] as? String == "p")
        }
        #expect(sluice.log.contains("plans: at least one plan is required") && sluice.log.contains("api_keys: at least one key is required"))

        try "plans: { p: { throttle: { rate: -1, burst: 5 } } }\n".write(to: sluice.configPath, atomically: true, encoding: .utf8)
        kill(sluice.pid, SIGHUP)
        let rejected = try await poll(.seconds(5), every: .milliseconds(50)) { sluice.log.contains("plans.p.throttle.rate: must be a positive number") }
        #expect(rejected != nil, "\(sluice.log)")
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"k2","cost":0}"#).json["plan"] as? String == "p")
        #expect(await sluice.terminate() == 0)
    }
}

@Suite("admin listener", .serialized)
struct AdminListenerTests {
    @Test("its own port: reload through the API, broken files rejected with the check-config messages; not served on the decision port")
    func separateListener() async throws {
        let redis = try await RedisServer.start()
        let adminPort = try FreePort.find()
        let base = "redis: { url: \(redis.url) }\nplans: { p: { throttle: { rate: 1, burst: 1 } } }\n"
        let sluice = try SluiceProcess(
            yaml: base + "api_keys: [ { key: a, plan: p } ]\n",
            environment: ["SLUICE_ADMIN_PORT": String(adminPort), "SLUICE_ADMIN_TOKENS": "t1, t2"]
        )
        try await sluice.waitUntilReady()
        let auth = ["Authorization": "Bearer t2"]
        let up = try await poll(.seconds(5), every: .milliseconds(50)) {
            (try? await HTTPTestClient.request(port: adminPort, path: "/admin/v1/plans", headers: auth, timeout: 1))?.status == 200
        }
        #expect(up != nil, "\(sluice.log)")
        let notHere = try await HTTPTestClient.request(port: sluice.port, path: "/admin/v1/plans", headers: auth)
        #expect(notHere.status == 404 && (notHere.json["error"] as? [String: Any])?["code"] as? String == "not_found", "\(notHere.text)")
        #expect(notHere.json["plans"] == nil)

        try (base + "api_keys: [ { key: a, plan: p }, { key: b, plan: p } ]\n").write(to: sluice.configPath, atomically: true, encoding: .utf8)
        let reloaded = try await HTTPTestClient.request(port: adminPort, method: "POST", path: "/admin/v1/reload", headers: auth, body: "")
        #expect(reloaded.status == 200 && reloaded.json["status"] as? String == "reloaded" && reloaded.json["api_keys"] as? Int == 2)
        #expect(reloaded.json["plans"] as? Int == 1)
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"b"}"#).json["plan"] as? String == "p")

        try "plans: { p: { quota: { limit: 5, period: year } } }\n".write(to: sluice.configPath, atomically: true, encoding: .utf8)
        let rejected = try await HTTPTestClient.request(port: adminPort, method: "POST", path: "/admin/v1/reload", headers: auth, body: "")
        #expect(rejected.status == 400 && (rejected.json["error"] as? [String: Any])?["code"] as? String == "invalid_config")
        let message = (rejected.json["error"] as? [String: Any])?["message"] as? String ?? ""
        #expect(message.contains("plans.p.quota.period: must be day, week or month"))
        #expect(try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"b"}"#).json["plan"] as? String == "p")
        #expect(await sluice.terminate() == 0)
    }
}
