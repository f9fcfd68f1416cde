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

/// What a load of checks got: normal decisions (admitted or denied), and anything else by kind.
final class LoadTally: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    private let lock = NSLock()
    private var admitted = 0
    private var denied = 0
    private var other: [String: Int] = [:]
    private var lastNormal = Date.distantPast
    private var longestGap: TimeInterval = 0
    private var stop = false

    func record(_ kind: String?, allowed: Bool) {
        self.lock.withLock {
            if let kind {
                self.other[kind, default: 0] += 1
            } else {
                if allowed { self.admitted += 1 } else { self.denied += 1 }
                let now = Date()
                if self.lastNormal != .distantPast { self.longestGap = max(self.longestGap, now.timeIntervalSince(self.lastNormal)) }
                self.lastNormal = now
            }
        }
    }
    var stopped: Bool { self.lock.withLock { self.stop } }
    var lastNormalAt: Date { self.lock.withLock { self.lastNormal } }
    func stopNow() { self.lock.withLock { self.stop = true } }
    func counts() -> (admitted: Int, denied: Int, other: [String: Int], longestGap: TimeInterval) {
        self.lock.withLock { (self.admitted, self.denied, self.other, self.longestGap) }
    }

    /// 4 clients checking `key` on `port` until ``stopNow()``.
    func load(port: Int, key: String) -> Task<Void, Never> {
        Task {
            await withTaskGroup(of: Void.self) { clients in
                for _ in 0..<4 {
                    clients.addTask {
                        while !self.stopped {
                            do {
                                let r = try await HTTPTestClient.check(port: port, #"{"api_key":"\#(key)"}"#)
                                if r.status == 200, let allowed = r.json["allowed"] as? Bool, r.json["degraded"] as? Bool != true {
                                    self.record(nil, allowed: allowed)
                                } else {
                                    self.record("status \(r.status)", allowed: false)
                                }
                            } catch {
                                self.record("no answer", allowed: false)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `redis.sentinel` against a real group: one master, one replica, three sentinels (quorum 2).
/// The tests never assume which node is master: they ask the sentinels.
@Suite("Redis Sentinel (real master, replica and three sentinels)", .serialized, SentinelGroupScope())
struct SentinelTests {
    /// Plan `p` (rate 2/s, burst 5) is the one the load meets.
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
          - { key: crash-key, plan: p }
        """
    }

    static func currentGroup() throws -> RedisSentinelGroup {
        try #require(SentinelGroupScope.group, "the suite's Sentinel group is missing")
    }

    /// Polls until the sentinels name a master other than `oldPort` and its ROLE says master.
    static func newMaster(_ group: RedisSentinelGroup, other oldPort: Int, within limit: Duration) async throws -> RedisServer? {
        var newPort: Int?
        let promoted = try await poll(limit, every: .milliseconds(50)) {
            guard let port = try await group.masterPort(via: group.sentinels[1]), port != oldPort else { return false }
            newPort = port
            return try await group.role(port: port) == "master"
        }
        return promoted == nil ? nil : newPort.flatMap { group.server(port: $0) }
    }

    /// Polls until `master` runs EVALSHA beyond `before` and normal answers come again.
    static func decisionsResume(on master: RedisServer, after before: Int, tally: LoadTally, within limit: Duration) async throws -> Bool {
        try await poll(limit, every: .milliseconds(20)) {
            try await master.commandCalls("evalsha") > before && tally.lastNormalAt > Date().addingTimeInterval(-0.2)
        } != nil
    }

    @Test("decisions go to the master the sentinels name; a sentinel that is down or frozen is skipped")
    func decisionsThroughMaster() async throws {
        let group = try Self.currentGroup()
        let masterPort = try #require(try await group.masterPort(via: group.sentinels[1]))
        #expect(try await group.role(port: masterPort) == "master")
        // Listed first: a port nobody listens on (refused), then a frozen node (it accepts, never
        // answers). Not a sentinel of the group: a sentinel frozen over 2 s enters TILT mode for
        // 30 s, and the other tests need its vote.
        let deadPort = try FreePort.find()
        let frozen = try await RedisServer.start()
        kill(frozen.pid, SIGSTOP)
        defer { kill(frozen.pid, SIGCONT) }
        let nodes = "[\"127.0.0.1:\(deadPort)\", \"127.0.0.1:\(frozen.port)\", "
            + group.sentinels.map { "\"127.0.0.1:\($0.port)\"" }.joined(separator: ", ") + "]"
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

    @Test("a failover under load: decisions resume on the new master within limits, runtime keys work there, the switch is heard though the sentinel first followed froze")
    func failoverUnderLoad() async throws {
        let group = try Self.currentGroup()
        let oldPort = try #require(try await group.masterPort(via: group.sentinels[1]))
        let adminPort = try FreePort.find()
        // Sentinel 2 first: Sluice follows switches there, until it freezes. (It is in TILT mode for
        // 30 s after; sentinels 0 and 1 still make a quorum and a majority for the other tests.)
        let frozen = group.sentinels[2]
        let nodes = "[" + [2, 0, 1].map { "\"127.0.0.1:\(group.sentinels[$0].port)\"" }.joined(separator: ", ") + "]"
        let sluice = try SluiceProcess(
            yaml: Self.yaml(group, nodes: nodes),
            environment: ["SLUICE_ADMIN_PORT": String(adminPort), "SLUICE_ADMIN_TOKENS": "ops-token"]
        )
        try await sluice.waitUntilReady()
        func following() -> [Substring] {
            sluice.log.split(separator: "\n").filter { $0.contains("following master switches") }
        }
        let first = try await poll(.seconds(10)) { following().count == 1 }
        #expect(first != nil && following().first?.contains(":\(frozen.port)") == true, "\(following())")
        frozen.pause()
        let movedOn = try await poll(.seconds(15), every: .milliseconds(100)) {
            following().count >= 2 && following().last?.contains(":\(frozen.port)") == false
        }
        frozen.resume()
        #expect(movedOn != nil, "the watch stayed on the frozen sentinel: \(sluice.log.suffix(1500))")
        let replica = try #require(group.servers.first { $0.port != oldPort })
        let before = try await replica.commandCalls("evalsha")

        let tally = LoadTally()
        let started = Date()
        let load = tally.load(port: sluice.port, key: "failover-key")
        try await Task.sleep(for: .seconds(1))

        let switchStart = Date()
        let ordered = try await offCooperativePool { try group.sentinels[1].cli("SENTINEL", "FAILOVER", group.masterName) }
        #expect(ordered == "OK")
        let promoted = try await Self.newMaster(group, other: oldPort, within: .seconds(30))
        let newMaster = try #require(promoted, "no failover within 30 s: \(group.sentinels[1].log.suffix(1500))")
        #expect(newMaster === replica)
        let promotedAfter = Date().timeIntervalSince(switchStart)
        // Sluice hears +switch-master from a sentinel (not only the old master's CLIENT KILL) ...
        let heard = try await poll(.seconds(20)) { sluice.log.contains("Redis master switched") }
        #expect(heard != nil, "no +switch-master in the log: \(sluice.log.suffix(2000))")
        let heardAfter = Date().timeIntervalSince(switchStart)
        // ... and decisions move to the new master at once: it runs EVALSHA (as a replica it ran
        // none, scripts replicate as their effects), and normal answers come again. (Not on a
        // sentinel that still names the old master, which answers ROLE master until demoted.)
        let resumed = try await Self.decisionsResume(on: newMaster, after: before, tally: tally, within: .seconds(5))
        #expect(resumed, "decisions did not move to the new master within 5 s of the switch: \(sluice.log.suffix(2000))")
        let resumedAfter = Date().timeIntervalSince(switchStart)
        try await Task.sleep(for: .seconds(2))
        tally.stopNow()
        await load.value
        let elapsed = Date().timeIntervalSince(started)

        let counts = tally.counts()
        print("Sentinel failover: after SENTINEL FAILOVER, replica promoted \(String(format: "%.2f", promotedAfter)) s, "
            + "switch heard \(String(format: "%.2f", heardAfter)) s, EVALSHA on the new master \(String(format: "%.2f", resumedAfter)) s; "
            + "longest time without a normal answer \(Int(counts.longestGap * 1000)) ms; admitted \(counts.admitted), "
            + "denied \(counts.denied), other answers during the switch \(counts.other) over \(String(format: "%.1f", elapsed)) s")
        #expect(counts.denied > 0, "the load must meet the limit")
        // A failover may lose the writes the replica had not received (README, "Sentinel"): at most
        // what was admitted in that moment, bounded here by one more burst.
        let ceiling = 5 + 2 * elapsed + 5
        #expect(Double(counts.admitted) <= ceiling, "admitted \(counts.admitted) > \(ceiling)")
        // The sentinels turn the old master into a replica of the new one.
        let demoted = try await poll(.seconds(20), every: .milliseconds(100)) { try await group.role(port: oldPort) == "slave" }
        #expect(demoted != nil, "the old master was not turned into a replica")

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

    @Test("the master crashes under load: decisions resume once the sentinels promote the replica")
    func masterCrash() async throws {
        let group = try Self.currentGroup()
        let oldPort = try #require(try await group.masterPort(via: group.sentinels[1]))
        let oldMaster = try #require(group.server(port: oldPort))
        let replica = try #require(group.servers.first { $0.port != oldPort })
        let sluice = try SluiceProcess(yaml: Self.yaml(group))
        try await sluice.waitUntilReady()
        let before = try await replica.commandCalls("evalsha")

        let tally = LoadTally()
        let started = Date()
        let load = tally.load(port: sluice.port, key: "crash-key")
        try await Task.sleep(for: .seconds(1))

        let crash = Date()
        oldMaster.stop()
        let promoted = try await Self.newMaster(group, other: oldPort, within: .seconds(40))
        let newMaster = try #require(promoted, "no promotion within 40 s: \(group.sentinels[1].log.suffix(1500))")
        #expect(newMaster === replica)
        let resumed = try await Self.decisionsResume(on: newMaster, after: before, tally: tally, within: .seconds(20))
        #expect(resumed, "decisions did not resume on the new master: \(sluice.log.suffix(2000))")
        let resumedAfter = Date().timeIntervalSince(crash)
        try await Task.sleep(for: .seconds(1))
        tally.stopNow()
        await load.value
        let elapsed = Date().timeIntervalSince(started)
        let counts = tally.counts()
        print("Sentinel master crash: decisions on the new master \(String(format: "%.2f", resumedAfter)) s after SIGKILL; "
            + "longest time without a normal answer \(Int(counts.longestGap * 1000)) ms; admitted \(counts.admitted), "
            + "denied \(counts.denied), other answers \(counts.other) over \(String(format: "%.1f", elapsed)) s")
        // Meanwhile the plan decided (deny: 503), nothing else.
        #expect(Set(counts.other.keys).isSubset(of: ["status 503"]), "\(counts.other)")
        let ceiling = 5 + 2 * elapsed + 5
        #expect(Double(counts.admitted) <= ceiling, "admitted \(counts.admitted) > \(ceiling)")
        #expect(await sluice.terminate() == 0)

        // The group again has a replica for the other tests: the crashed node comes back empty and
        // the sentinels make it a replica of the new master.
        try await oldMaster.restart()
        let rejoined = try await poll(.seconds(30), every: .milliseconds(100)) {
            guard try await group.role(port: oldPort) == "slave",
                try await oldMaster.cliAsync("INFO", "replication").contains("master_link_status:up")
            else { return false }
            return try await group.replicaFlags(via: group.sentinels[1]) == ["slave"]
        }
        #expect(rejoined != nil, "the crashed node did not rejoin as a replica: \(group.sentinels[1].log.suffix(1500))")
    }
}
