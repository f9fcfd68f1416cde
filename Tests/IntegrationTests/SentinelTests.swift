import Foundation
import SluiceTestSupport
import Testing

/// Starts one Sentinel group for the whole suite and stops it (by PID) after its last test.
struct SentinelGroupScope: SuiteTrait, TestScoping {
    @TaskLocal static var group: RedisSentinelGroup?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let group = try await RedisSentinelGroup.start()
        try await Self.$group.withValue(group) { try await function() }
    }
}

/// `redis.sentinel` against a real group: one master, one replica, three sentinels (quorum 2).
/// The tests never assume which node is master: they ask the sentinels.
@Suite("Redis Sentinel (real master, replica and three sentinels)", .serialized, SentinelGroupScope())
struct SentinelTests {
    static func yaml(_ group: RedisSentinelGroup, nodes: String? = nil) -> String {
        """
        redis:
          sentinel: { master_name: \(group.masterName), nodes: \(nodes ?? group.nodesYAML) }
          timeout_ms: 1000
          connect_timeout_ms: 500
        plans:
          p: { throttle: { rate: 2, burst: 5 } }
          big: { throttle: { rate: 1000, burst: 1000 } }
        api_keys:
          - { key: sentinel-key, plan: big }
          - { key: failover-key, plan: p }
        """
    }

    static func currentGroup() throws -> RedisSentinelGroup {
        try #require(SentinelGroupScope.group, "the suite's Sentinel group is missing")
    }

    @Test("decisions go to the master the sentinels name; a sentinel that is down or frozen is skipped")
    func decisionsThroughMaster() async throws {
        let group = try Self.currentGroup()
        let masterPort = try #require(try await group.masterPort(via: group.sentinels[1]))
        #expect(try await group.role(port: masterPort) == "master")
        // Listed first: a port nobody listens on (refused), then a frozen sentinel (accepts, never answers).
        let deadPort = try FreePort.find()
        let nodes = "[\"127.0.0.1:\(deadPort)\", " + group.sentinels.map { "\"127.0.0.1:\($0.port)\"" }.joined(separator: ", ") + "]"
        group.sentinels[0].pause()
        defer { group.sentinels[0].resume() }
        let sluice = try SluiceProcess(yaml: Self.yaml(group, nodes: nodes))
        try await sluice.waitUntilReady()
        let master = try #require(group.server(port: masterPort))
        let before = try await master.commandCalls("evalsha")
        for _ in 0..<10 {
            let r = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"sentinel-key"}"#)
            #expect(r.status == 200 && r.json["allowed"] as? Bool == true, "\(r.text)")
        }
        #expect(try await master.commandCalls("evalsha") >= before + 10, "decisions must run on the master")
        #expect(await sluice.terminate() == 0)
    }

    @Test("a failover under load: decisions resume on the new master within limits; runtime keys work there")
    func failoverUnderLoad() async throws {
        let group = try Self.currentGroup()
        let oldPort = try #require(try await group.masterPort(via: group.sentinels[0]))
        let adminPort = try FreePort.find()
        let sluice = try SluiceProcess(
            yaml: Self.yaml(group),
            environment: ["SLUICE_ADMIN_PORT": String(adminPort), "SLUICE_ADMIN_TOKENS": "ops-token"]
        )
        try await sluice.waitUntilReady()

        // Load: 4 clients check one key until told to stop; every answer is recorded.
        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var admitted = 0
            var denied = 0
            var other: [String: Int] = [:]
            var lastNormal = Date.distantPast
            var longestGap: TimeInterval = 0
            var stop = false
            func record(_ kind: String?, allowed: Bool) {
                self.lock.lock()
                defer { self.lock.unlock() }
                if let kind {
                    self.other[kind, default: 0] += 1
                } else {
                    if allowed { self.admitted += 1 } else { self.denied += 1 }
                    let now = Date()
                    if self.lastNormal != .distantPast { self.longestGap = max(self.longestGap, now.timeIntervalSince(self.lastNormal)) }
                    self.lastNormal = now
                }
            }
            var stopped: Bool { self.lock.withLock { self.stop } }
            var lastNormalAt: Date { self.lock.withLock { self.lastNormal } }
            func stopNow() { self.lock.withLock { self.stop = true } }
            func counts() -> (Int, Int, [String: Int], TimeInterval) {
                self.lock.withLock { (self.admitted, self.denied, self.other, self.longestGap) }
            }
        }
        let tally = Tally()
        let started = Date()
        let port = sluice.port
        let load = Task {
            await withTaskGroup(of: Void.self) { clients in
                for _ in 0..<4 {
                    clients.addTask {
                        while !tally.stopped {
                            do {
                                let r = try await HTTPTestClient.check(port: port, #"{"api_key":"failover-key"}"#)
                                if r.status == 200, let allowed = r.json["allowed"] as? Bool, r.json["degraded"] as? Bool != true {
                                    tally.record(nil, allowed: allowed)
                                } else {
                                    tally.record("status \(r.status)", allowed: false)
                                }
                            } catch {
                                tally.record("no answer", allowed: false)
                            }
                        }
                    }
                }
            }
        }
        try await Task.sleep(for: .seconds(1))

        let switchStart = Date()
        try await offCooperativePool { try group.sentinels[0].cli("SENTINEL", "FAILOVER", group.masterName) }
        // The sentinels name the replica, and it says it is master.
        var newPort: Int?
        let promoted = try await poll(.seconds(30), every: .milliseconds(50)) {
            guard let port = try await group.masterPort(via: group.sentinels[0]), port != oldPort else { return false }
            newPort = port
            return try await group.role(port: port) == "master"
        }
        #expect(promoted != nil, "no failover within 30 s: \(group.sentinels[0].log.suffix(1500))")
        let newMaster = try #require(newPort.flatMap { group.server(port: $0) })
        // Decisions resume on the new master: it runs EVALSHA (as a replica it ran none, scripts
        // replicate as their effects), and normal answers come again.
        let resumed = try await poll(.seconds(20), every: .milliseconds(20)) {
            try await newMaster.commandCalls("evalsha") > 0 && tally.lastNormalAt > Date().addingTimeInterval(-0.2)
        }
        #expect(resumed != nil, "decisions did not resume on the new master: \(sluice.log.suffix(2000))")
        let resumedAfter = Date().timeIntervalSince(switchStart)
        try await Task.sleep(for: .seconds(2))
        tally.stopNow()
        await load.value
        let elapsed = Date().timeIntervalSince(started)

        let (admitted, denied, other, gap) = tally.counts()
        print("Sentinel failover: EVALSHA on the new master \(String(format: "%.2f", resumedAfter)) s after SENTINEL FAILOVER; "
            + "longest time without a normal answer \(Int(gap * 1000)) ms; admitted \(admitted), denied \(denied), other answers during the switch \(other) over \(String(format: "%.1f", elapsed)) s")
        #expect(denied > 0, "the load must meet the limit")
        // A failover may lose the writes the replica had not received (README, "Sentinel"): at most
        // what was admitted in that moment, bounded here by one more burst.
        let ceiling = 5 + 2 * elapsed + 5
        #expect(Double(admitted) <= ceiling, "admitted \(admitted) > \(ceiling)")
        // The sentinels turn the old master into a replica of the new one.
        let demoted = try await poll(.seconds(20), every: .milliseconds(100)) { try await group.role(port: oldPort) == "slave" }
        #expect(demoted != nil, "the old master was not turned into a replica")
        // Sluice heard +switch-master from a sentinel (not only the old master's CLIENT KILL).
        let heard = try await poll(.seconds(10)) { sluice.log.contains("Redis master switched") }
        #expect(heard != nil, "no +switch-master in the log: \(sluice.log.suffix(2000))")

        // The runtime-key registry on the new master: create a key, use it.
        let created = try await HTTPTestClient.request(
            port: adminPort, method: "POST", path: "/admin/v1/keys",
            headers: ["Authorization": "Bearer ops-token", "Content-Type": "application/json"],
            body: #"{"plan":"big","api_key":"after-failover"}"#
        )
        #expect(created.status == 201, "\(created.text)")
        #expect(try await newMaster.cliAsync("HLEN", "sluice:registry:{keys}") != "0")
        let known = try await poll(.seconds(5)) {
            let r = try await HTTPTestClient.check(port: sluice.port, #"{"api_key":"after-failover"}"#)
            return r.status == 200 && r.json["allowed"] as? Bool == true
        }
        #expect(known != nil, "a key created after the failover must work")
        #expect(await sluice.terminate() == 0)
    }
}
