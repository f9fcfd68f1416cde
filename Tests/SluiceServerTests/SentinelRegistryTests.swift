import Foundation
import SluiceCore
import SluiceServer
import SluiceTestSupport
import Testing

/// Starts one Sentinel group for the whole suite and stops it (by PID) after its last test. Both
/// data nodes restart as empty masters (the replica follows by `REPLICAOF`, not `--replicaof`),
/// and a master starts a full sync at once rather than waiting 5 s for more replicas.
struct SentinelRegistryScope: SuiteTrait, TestScoping {
    @TaskLocal static var group: RedisSentinelGroup?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let group = try await RedisSentinelGroup.start(serverArguments: ["--repl-diskless-sync-delay", "0"], replicaByCommand: true)
        defer { group.stop() }
        try await Self.$group.withValue(group) { try await function() }
    }
}

/// ``RegistryRecoveryTests`` on a Sentinel deployment (one master, one replica, three sentinels):
/// the master flushed, restarted empty, restarted from an older snapshot, and a failover to a
/// replica that lagged. Every instance notices within 2 seconds, says so in `/readyz`, and
/// mirrors what the master the sentinels name holds. The tests never assume which node is
/// master: they ask the sentinels.
@Suite("Runtime key registry on Sentinel after the master loses data or fails over", .serialized, SentinelRegistryScope())
struct SentinelRegistryTests {
    static func currentGroup() throws -> RedisSentinelGroup {
        try #require(SentinelRegistryScope.group, "the suite's Sentinel group is missing")
    }

    /// A config on the suite's sentinels (no Redis URL), with the tests' 5 s command deadline.
    static func config(_ group: RedisSentinelGroup) throws -> SluiceConfig {
        let yaml = """
            redis:
              sentinel: { master_name: \(group.masterName), nodes: \(group.nodesYAML) }
              timeout_ms: \(ServerHarness.commandDeadlineMs)
              connect_timeout_ms: 500
            \(RegistryRecoveryTests.yaml)
            """
        return try ConfigLoader.parse(
            yaml: yaml, source: "sentinel.yaml", environment: ["SLUICE_KEY_SECRET": "server-test"],
            overrides: ConfigOverrides(host: "127.0.0.1", port: 0)
        )
    }

    /// The data node every sentinel names master, when they agree and its `ROLE` says so.
    static func namedMaster(_ group: RedisSentinelGroup) async throws -> RedisServer? {
        var ports: Set<Int?> = []
        for sentinel in group.sentinels { ports.insert(try await group.masterPort(via: sentinel)) }
        guard ports.count == 1, let port = ports.first ?? nil, try await group.role(port: port) == "master" else { return nil }
        return group.server(port: port)
    }

    /// ``namedMaster(_:)``, waited for.
    /// - Throws: when the sentinels do not agree on a master within 10 s.
    static func master(_ group: RedisSentinelGroup) async throws -> RedisServer {
        var master: RedisServer?
        _ = try await poll(.seconds(10), every: .milliseconds(50)) {
            master = try await Self.namedMaster(group)
            return master != nil
        }
        guard let master else {
            throw TestSupportError("the sentinels do not agree on a master: \(group.sentinels[0].log.suffix(1000))")
        }
        return master
    }

    static func replica(of master: RedisServer, _ group: RedisSentinelGroup) throws -> RedisServer {
        try #require(group.servers.first { $0 !== master }, "the group has no other data node")
    }

    /// Two instances on the group, both subscribed on the master.
    static func twoInstances(
        _ group: RedisSentinelGroup, _ body: @Sendable (ServerHarness, ServerHarness, RedisServer) async throws -> Void
    ) async throws {
        let config = try Self.config(group)
        let master = try await Self.master(group)
        try await ServerHarness.run(config) { a in
            try await ServerHarness.run(config) { b in
                try await RegistrySyncTests.waitForSubscribers(master, 2)
                try await body(a, b, master)
            }
        }
    }

    /// Waits up to 5 s until `replica` is linked to `master` and holds (true) or not (false) each
    /// key of `keys` in the registry.
    static func replicaHolds(_ replica: RedisServer, of master: RedisServer, _ keys: [String: Bool]) async throws -> Bool {
        try await poll(.seconds(5), every: .milliseconds(50)) {
            let info = try await replica.cliAsync("INFO", "replication")
            guard info.contains("master_port:\(master.port)"), info.contains("master_link_status:up") else { return false }
            for (key, held) in keys {
                let exists = try await replica.cliAsync("HEXISTS", RegistryScript.hashKey, ServerHarness.keyID(key))
                if exists != (held ? "1" : "0") { return false }
            }
            return true
        } != nil
    }

    /// Restarts `server` on its port and directory with no data: the `dump.rdb` a full sync as a
    /// replica (or a SAVE) left in its directory would be loaded otherwise.
    static func restartEmpty(_ server: RedisServer) async throws {
        try? FileManager.default.removeItem(at: server.directory.appendingPathComponent("dump.rdb"))
        try await server.restart()
    }

    /// Runs `body` with the sentinels' `down-after-milliseconds` at `ms`, then puts the group's
    /// 1000 back, even when `body` throws.
    static func withDownAfter(_ ms: Int, _ group: RedisSentinelGroup, _ body: () async throws -> Void) async throws {
        try await Self.setDownAfter(ms, group)
        do {
            try await body()
        } catch {
            try? await Self.setDownAfter(1000, group)
            throw error
        }
        try await Self.setDownAfter(1000, group)
    }

    static func setDownAfter(_ ms: Int, _ group: RedisSentinelGroup) async throws {
        for sentinel in group.sentinels {
            let reply = try await offCooperativePool {
                try sentinel.cli("SENTINEL", "SET", group.masterName, "down-after-milliseconds", String(ms))
            }
            #expect(reply == "OK", "SENTINEL SET down-after-milliseconds on \(sentinel.port): \(reply)")
        }
    }

    /// Leaves the group as every test expects it: a master and a replica in sync with it. A node
    /// that does not answer (a crashed master) comes back empty, as the master's replica.
    static func restoreReplica(_ group: RedisSentinelGroup) async throws {
        for server in group.servers { _ = try? await server.cliAsync("CONFIG", "SET", "masterauth", "") }
        let master = try await Self.master(group)
        for server in group.servers where server !== master {
            if (try? await server.cliAsync("PING")) != "PONG" {
                try await Self.restartEmpty(server)
                try await server.cliAsync("REPLICAOF", "127.0.0.1", String(master.port))
            }
            guard try await Self.replicaHolds(server, of: master, [:]) else {
                throw TestSupportError("the node on port \(server.port) did not become a replica of \(master.port) again")
            }
        }
    }

    @Test("FLUSHALL on the master, replicated: keys that are gone stop working, keys created afterwards are known everywhere")
    func flushed() async throws {
        let group = try Self.currentGroup()
        try await Self.twoInstances(group) { a, b, master in
            let replica = try Self.replica(of: master, group)
            try await RegistryRecoveryTests.create(a, "flush-1")
            try await RegistryRecoveryTests.create(a, "flush-2")
            #expect(try await RegistryRecoveryTests.settles(b, "flush-2", known: true))
            try await master.cliAsync("FLUSHALL")
            #expect(try await Self.replicaHolds(replica, of: master, ["flush-1": false, "flush-2": false]), "the flush did not reach the replica")
            try await RegistryRecoveryTests.expectRecovered(a, b, gone: ["flush-1", "flush-2"], kept: [], what: "flush")
        }
    }

    // With the group's down-after of 1 s, a restart of 30-60 ms is still taken for down now and
    // then: a sentinel counts from its last PING reply, up to a second old (5 of 36 observations
    // in a trial, no failover then, but two sentinels at once make one). So the restart tests run
    // with 5 s, and check that the sentinels still name the same master afterwards.

    @Test("the master restarted empty before the sentinels take it for down: no failover, the replica resyncs empty from it, the same")
    func masterRestartedEmpty() async throws {
        let group = try Self.currentGroup()
        try await Self.withDownAfter(5000, group) {
            try await Self.twoInstances(group) { a, b, master in
                let replica = try Self.replica(of: master, group)
                try await RegistryRecoveryTests.create(a, "restart-1")
                #expect(try await RegistryRecoveryTests.settles(b, "restart-1", known: true))
                #expect(try await Self.replicaHolds(replica, of: master, ["restart-1": true]))
                try await Self.restartEmpty(master)
                #expect(try await Self.replicaHolds(replica, of: master, ["restart-1": false]), "the replica did not resync from the empty master")
                try await RegistrySyncTests.waitForSubscribers(master, 2)
                try await a.waitForRedis("up")
                try await b.waitForRedis("up")
                try await RegistryRecoveryTests.expectRecovered(a, b, gone: ["restart-1"], kept: [], what: "restart")
                #expect(try await Self.master(group) === master, "the sentinels failed over")
            }
        }
    }

    @Test("the master restarted from an older snapshot, changed again up to the same version: the other change is noticed everywhere")
    func olderSnapshot() async throws {
        let group = try Self.currentGroup()
        try await Self.withDownAfter(5000, group) {
            try await Self.twoInstances(group) { a, b, master in
                let replica = try Self.replica(of: master, group)
                try await RegistryRecoveryTests.create(a, "snapshot-kept")
                try await master.cliAsync("SAVE")
                try await RegistryRecoveryTests.create(a, "snapshot-lost-1")
                try await RegistryRecoveryTests.create(a, "snapshot-lost-2")
                #expect(try await RegistryRecoveryTests.settles(b, "snapshot-lost-2", known: true))
                #expect(try await Self.replicaHolds(replica, of: master, ["snapshot-lost-2": true]))
                // Back to the snapshot (its dump.rdb), then two new changes: the version the
                // instances mirror again, with other keys.
                try await master.restart()
                #expect(
                    try await Self.replicaHolds(replica, of: master, ["snapshot-kept": true, "snapshot-lost-1": false, "snapshot-lost-2": false]),
                    "the replica did not resync from the restored master"
                )
                try await RegistryRecoveryTests.createAfterRestart(a, "snapshot-new-1")
                try await RegistryRecoveryTests.create(a, "snapshot-new-2")
                try await RegistrySyncTests.waitForSubscribers(master, 2)
                try await RegistryRecoveryTests.expectRecovered(
                    a, b, gone: ["snapshot-lost-1", "snapshot-lost-2"], kept: ["snapshot-kept", "snapshot-new-1", "snapshot-new-2"], what: "snapshot"
                )
                #expect(try await Self.master(group) === master, "the sentinels failed over")
            }
        }
    }

    @Test("a failover to a replica that lagged: every instance notices the registry went back and mirrors the new master")
    func laggedReplicaFailover() async throws {
        let group = try Self.currentGroup()
        do {
            try await Self.twoInstances(group) { a, b, oldMaster in
                let replica = try Self.replica(of: oldMaster, group)
                try await RegistryRecoveryTests.create(a, "failover-kept")
                #expect(try await RegistryRecoveryTests.settles(b, "failover-kept", known: true))
                #expect(try await Self.replicaHolds(replica, of: oldMaster, ["failover-kept": true]))
                // The replica stops getting changes: its link is cut, and its handshake fails from
                // then on (it sends AUTH, the master has no password). Freezing it (SIGSTOP) would
                // not do: the changes wait in its socket, and it applies them once thawed, even
                // after the master died.
                try await replica.cliAsync("CONFIG", "SET", "masterauth", "not-the-masters")
                try await replica.cliAsync("CLIENT", "KILL", "TYPE", "master")
                let cut = try await poll(.seconds(5)) {
                    try await replica.cliAsync("INFO", "replication").contains("master_link_status:down")
                }
                try #require(cut != nil, "the replica's link to the master did not go down")
                try await RegistryRecoveryTests.create(a, "failover-lost-1")
                try await RegistryRecoveryTests.create(a, "failover-lost-2")
                #expect(try await RegistryRecoveryTests.settles(b, "failover-lost-2", known: true))
                let lagged = try await replica.cliAsync("HEXISTS", RegistryScript.hashKey, ServerHarness.keyID("failover-lost-2"))
                try #require(lagged == "0", "the replica did not lag")

                // The master crashes; the sentinels promote the replica, which never got the two keys.
                let crash = ContinuousClock.now
                oldMaster.stop()
                try await replica.cliAsync("CONFIG", "SET", "masterauth", "")
                let promoted = try await poll(.seconds(15), every: .milliseconds(50)) {
                    try await Self.namedMaster(group) === replica
                }
                try #require(promoted != nil, "no failover to the replica within 15 s: \(group.sentinels[0].log.suffix(1500))")
                try await RegistrySyncTests.waitForSubscribers(replica, 2)
                try await RegistryRecoveryTests.expectRecovered(
                    a, b, gone: ["failover-lost-1", "failover-lost-2"], kept: ["failover-kept"], what: "failover"
                )
                print("Sentinel registry: the lagging replica promoted \(promoted!) after the master's crash, instances recovered \(ContinuousClock.now - crash) after it")
            }
        } catch {
            try? await Self.restoreReplica(group)
            throw error
        }
        try await Self.restoreReplica(group)
    }
}
