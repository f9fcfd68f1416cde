import Foundation
import HTTPTypes
import HummingbirdTesting
import SluiceCore
import SluiceTestSupport
import Testing

/// Starts one Redis Cluster for the whole suite and stops it (by PID) after its last test.
struct ClusterScope: SuiteTrait, TestScoping {
    @TaskLocal static var group: RedisClusterGroup?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let group = try await RedisClusterGroup.start()
        defer { group.stop() }
        try await Self.$group.withValue(group) { try await function() }
    }
}

/// What concurrent checks got: normal answers (200, not degraded) and the rest by kind.
final class ClusterTally: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    private let lock = NSLock()
    private var normal = 0
    private var admitted = 0
    private var other: [String: Int] = [:]
    private var lastNormal = Date.distantPast
    private var longestGap: TimeInterval = 0
    private var stop = false

    func record(_ answer: HTTPTestResponse) {
        let json = answer.json
        self.lock.withLock {
            if answer.status == 200, json["degraded"] as? Bool != true {
                self.normal += 1
                if json["allowed"] as? Bool == true { self.admitted += 1 }
                let now = Date()
                if self.lastNormal != .distantPast { self.longestGap = max(self.longestGap, now.timeIntervalSince(self.lastNormal)) }
                self.lastNormal = now
            } else {
                let code = (json["error"] as? [String: Any])?["code"] as? String ?? (json["degraded"] as? Bool == true ? "degraded" : "?")
                self.other["\(answer.status) \(code)", default: 0] += 1
            }
        }
    }

    var stopped: Bool { self.lock.withLock { self.stop } }
    func stopNow() { self.lock.withLock { self.stop = true } }
    var lastNormalAt: Date { self.lock.withLock { self.lastNormal } }
    func counts() -> (normal: Int, admitted: Int, other: [String: Int], longestGap: TimeInterval) {
        self.lock.withLock { (self.normal, self.admitted, self.other, self.longestGap) }
    }

    /// `clients` concurrent loops checking `key` on `h` until ``stopNow()``: each check on a
    /// connection of its own with a 5 s socket timeout, so that no answer can hang the test.
    func load(_ h: ServerHarness, key: String, clients: Int = 4) -> Task<Void, Never> {
        let port = h.client.port ?? 0
        return Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<clients {
                    group.addTask {
                        while !self.stopped {
                            do {
                                self.record(try await HTTPTestClient.request(
                                    port: port, method: "POST", path: "/v1/check", headers: ["Content-Type": "application/json"],
                                    body: #"{"api_key":"\#(key)"}"#, timeout: 5
                                ))
                            } catch {
                                self.lock.withLock { self.other["no answer", default: 0] += 1 }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `redis.cluster` against a real cluster of three masters with a replica each. The tests never
/// assume which node owns what: they ask the cluster.
@Suite("Redis Cluster (3 masters, 3 replicas)", .serialized, ClusterScope())
struct ClusterTests {
    static func group() throws -> RedisClusterGroup {
        try #require(ClusterScope.group, "the suite's cluster is missing")
    }

    /// A config on the suite's cluster, with the tests' 5 s deadline unless `timeoutMs` says otherwise.
    static func config(_ group: RedisClusterGroup, _ body: String, timeoutMs: Int = ServerHarness.commandDeadlineMs) throws -> SluiceConfig {
        let nodes = group.seedAddresses.map { "\"\($0)\"" }.joined(separator: ", ")
        let yaml = """
            redis:
              cluster: { nodes: [\(nodes)] }
              timeout_ms: \(timeoutMs)
              connect_timeout_ms: 500
            admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
            \(body)
            """
        return try ConfigLoader.parse(
            yaml: yaml, source: "cluster.yaml", environment: ["SLUICE_KEY_SECRET": "server-test"],
            overrides: ConfigOverrides(host: "127.0.0.1", port: 0)
        )
    }

    /// EVALSHA calls per master port, from `INFO commandstats`.
    static func evalshaCalls(_ group: RedisClusterGroup) async throws -> [Int: Int] {
        var calls: [Int: Int] = [:]
        for master in try await group.masters() {
            calls[master.node.port] = try await Self.commandCalls(master.node, "evalsha")
        }
        return calls
    }

    static func commandCalls(_ node: RedisClusterNode, _ command: String) async throws -> Int {
        let stats = try await node.cliAsync("INFO", "commandstats")
        for line in stats.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_\(command):") {
            if let calls = line.split(separator: ",").first?.split(separator: "=").last, let count = Int(calls) { return count }
        }
        return 0
    }

    /// The master that owns the state of API key `key` (hash tag `{<key id>}`).
    static func owner(of key: String, _ group: RedisClusterGroup) async throws -> RedisClusterNode {
        try await group.node(owningSlot: try await group.keySlot(StateKeys.prefix(keyID: ServerHarness.keyID(key))))
    }

    @Test("decisions go to every master, one EVALSHA each, and admission is exact across two instances")
    func spreadAndExact() async throws {
        let group = try Self.group()
        let keys = (0..<24).map { "spread-\($0)" }
        let config = try Self.config(group, """
            plans:
              q: { quota: { limit: 5, period: day } }
            api_keys:
            \(keys.map { "  - { key: \($0), plan: q }" }.joined(separator: "\n"))
            """)
        let before = try await Self.evalshaCalls(group)
        var owners: Set<Int> = []
        for key in keys { owners.insert(try await Self.owner(of: key, group).port) }
        #expect(owners.count == 3, "the test's keys must cover every master: \(owners)")
        try await ServerHarness.run(config) { a in
            try await ServerHarness.run(config) { b in
                for key in keys {
                    var admitted = 0
                    for attempt in 0..<8 {
                        let answer = try await (attempt % 2 == 0 ? a : b).check(key: key)
                        #expect(answer.status == .ok, "\(answer.text)")
                        if answer.allowed == true { admitted += 1 }
                    }
                    #expect(admitted == 5, "\(key): \(admitted) admitted of a quota of 5")
                }
            }
        }
        let after = try await Self.evalshaCalls(group)
        let delta = after.map { port, calls in (port, calls - (before[port] ?? 0)) }
        for (port, count) in delta {
            #expect(count > 0, "master \(port) ran no decision")
        }
        // At most one EVALSHA per decision: denials after the first may come from the over-limit cache.
        let total = delta.reduce(0) { $0 + $1.1 }
        #expect(total <= keys.count * 8 && total >= keys.count * 6, "EVALSHA calls \(delta) for \(keys.count * 8) decisions")
    }

    @Test("reservations on every master: reserve, renew, settle (overrun into debt) and cancel are one EVALSHA each and keep exact state")
    func reservations() async throws {
        let group = try Self.group()
        let keys = (0..<12).map { "llm-\($0)" }
        var owners: Set<Int> = []
        for key in keys { owners.insert(try await Self.owner(of: key, group).port) }
        #expect(owners.count == 3, "the test's keys must cover every master: \(owners)")
        let config = try Self.config(group, """
            plans:
              llm:
                throttle: { rate: 100, burst: 100 }
                limits:
                  tpm: { counts: total_tokens, rate: 0.001, burst: 2000 }
                  spend: { counts: cost, quota: { limit: 100000, period: day } }
                concurrency: { limit: 2, lease_ttl_s: 30 }
                prices: { "*": { input: 1, output: 2 } }
            api_keys:
            \(keys.map { "  - { key: \($0), plan: llm }" }.joined(separator: "\n"))
            """)
        let json = HTTPFields([HTTPField(name: .contentType, value: "application/json")])
        try await ServerHarness.run(config) { h in
            let before = try await Self.evalshaCalls(group)
            for key in keys {
                let reserve = #"{"api_key":"\#(key)","estimate":{"input_tokens":300,"output_tokens":100}}"#
                let first = try await h.send("/v1/reserve", method: .post, headers: json, body: reserve)
                let id = try #require(first.json["reservation_id"] as? String, "\(key): \(first.text)")
                #expect(first.remaining(of: "tpm") == 1600 && first.remaining(of: "spend") == 99_500, "\(first.text)")
                let second = try await h.send("/v1/reserve", method: .post, headers: json, body: reserve)
                let other = try #require(second.json["reservation_id"] as? String, "\(key): \(second.text)")
                let third = try await h.send("/v1/reserve", method: .post, headers: json, body: reserve)
                #expect(third.allowed == false && third.deniedBy == "concurrency", "\(key): \(third.text)")
                let renewed = try await h.send("/v1/reservations/\(id)/renew", method: .post, headers: json, body: "{}")
                #expect(renewed.json["lease"] as? String == "held", "\(renewed.text)")
                // 2400 tokens used where 400 were reserved, another 400 held: tpm 800 in debt;
                // spend 3300 (1500 × 1 + 900 × 2) where 500 were reserved, another 500 held.
                let settled = try await h.send(
                    "/v1/settle", method: .post, headers: json,
                    body: #"{"reservation_id":"\#(id)","actual":{"input_tokens":1500,"output_tokens":900}}"#
                )
                #expect(settled.status == .ok && settled.remaining(of: "tpm") == 0 && settled.remaining(of: "spend") == 96_200, "\(settled.text)")
                let cancelled = try await h.send("/v1/reservations/\(other)", method: .delete, headers: [:], body: nil)
                #expect(cancelled.status == .noContent)
                // Still 400 tokens of debt after the cancel: even a reserve of nothing waits (refill: one token in 1000 s).
                let after = try await h.send("/v1/reserve", method: .post, headers: json, body: #"{"api_key":"\#(key)","estimate":{}}"#)
                #expect(after.allowed == false && after.deniedBy == "tpm" && (after.retryAfterMs ?? 0) > 400_000_000, "\(after.text)")
                #expect(after.remaining(of: "spend") == 96_700, "\(after.text)")
                let owner = try await Self.owner(of: key, group)
                let debt = try await owner.cliAsync("GET", StateKeys.prefix(keyID: ServerHarness.keyID(key)) + "n:tpm")
                #expect(!debt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "tpm state on its master")
            }
            let after = try await Self.evalshaCalls(group)
            let total = after.reduce(0) { $0 + $1.value - (before[$1.key] ?? 0) }
            // reserve ×3, renew, settle, cancel, reserve: seven calls a key, one EVALSHA each.
            #expect(total == keys.count * 7, "EVALSHA calls \(total) for \(keys.count * 7) operations")
        }
    }

    @Test("a slot with live keys resharded under load: no failed decision, the state moves with it, ASK is followed")
    func reshardUnderLoad() async throws {
        let group = try Self.group()
        let key = "reshard-key"
        let config = try Self.config(group, """
            plans:
              big: { quota: { limit: 1000000, period: day } }
            api_keys:
              - { key: \(key), plan: big }
            """)
        try await ServerHarness.run(config) { h in
            #expect(try await h.check(key: key).allowed == true)
            let stateKey = StateKeys.prefix(keyID: ServerHarness.keyID(key)) + StateKeys.quotaSuffix
            let slot = try await group.keySlot(stateKey)
            let source = try await group.node(owningSlot: slot)
            let target = try #require(try await group.masters().map(\.node).first { $0 !== source })
            let askingBefore = try await Self.commandCalls(target, "asking")

            let tally = ClusterTally()
            let load = tally.load(h, key: key)
            try await Task.sleep(for: .milliseconds(300))
            try await group.beginMigration(slot, from: source, to: target)
            try await Task.sleep(for: .milliseconds(200))
            let moved = try await group.migrateKeys(slot, from: source, to: target)
            // The keys are on the target, the slot still the source's: decisions go ASK.
            try await Task.sleep(for: .milliseconds(300))
            try await group.finishMigration(slot, from: source, to: target)
            try await Task.sleep(for: .milliseconds(500))
            tally.stopNow()
            await load.value

            let counts = tally.counts()
            print("Cluster resharding under load: \(counts.normal) normal answers, other \(counts.other), \(moved) keys moved, "
                + "longest time without a normal answer \(Int(counts.longestGap * 1000)) ms")
            #expect(counts.other.isEmpty, "answers other than normal decisions: \(counts.other)")
            #expect(counts.normal > 50)
            #expect(moved >= 2, "the key's quota and usage state must have moved")
            #expect(try await Self.commandCalls(target, "asking") > askingBefore, "no decision went through ASK")
            let metrics = try await h.get("/metrics").text
            #expect(metrics.contains(#"sluice_redis_cluster_redirects_total{kind="moved"}"#), "\(metrics)")
            let asks = metrics.split(separator: "\n").first { $0.hasPrefix(#"sluice_redis_cluster_redirects_total{kind="ask"}"#) }
            #expect(asks.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }.map { $0 > 0 } == true, "\(asks ?? "no ask series")")
            // The state moved and kept counting: the quota's used units are every admission.
            let quota = try await target.cliAsync("GET", stateKey)
            let used = quota.split(separator: ":").dropFirst().first.flatMap { Int($0) }
            #expect(used == counts.admitted + 1, "quota state \(quota), admitted \(counts.admitted + 1)")
            #expect(try await source.cliAsync("CLUSTER", "COUNTKEYSINSLOT", String(slot)) == "0")
            // And the next decision goes straight to the new owner.
            let calls = try await Self.commandCalls(target, "evalsha")
            #expect(try await h.check(key: key).allowed == true)
            #expect(try await Self.commandCalls(target, "evalsha") == calls + 1)
        }
    }

    @Test("a master killed under load: its slots come back once its replica is promoted, with 503s between; the other masters never stop")
    func masterKilled() async throws {
        let group = try Self.group()
        let masters = try await group.masters().map(\.node)
        // One key on the master to kill, one on another master.
        var victimKey: String?
        var otherKey: String?
        for index in 0..<200 where victimKey == nil || otherKey == nil {
            let key = "kill-\(index)"
            let owner = try await Self.owner(of: key, group)
            if owner === masters[0] { victimKey = victimKey ?? key } else { otherKey = otherKey ?? key }
        }
        let victim = try #require(victimKey)
        let other = try #require(otherKey)
        let config = try Self.config(group, """
            plans:
              big: { throttle: { rate: 100000, burst: 100000 }, on_backend_error: deny }
            api_keys:
              - { key: \(victim), plan: big }
              - { key: \(other), plan: big }
            """, timeoutMs: 200)
        try await ServerHarness.run(config) { h in
            let victimTally = ClusterTally()
            let otherTally = ClusterTally()
            let loads = [victimTally.load(h, key: victim, clients: 2), otherTally.load(h, key: other, clients: 2)]
            try await Task.sleep(for: .milliseconds(500))
            let killedAt = Date()
            try await group.kill(masters[0])
            let lostWarning = "no connection to Redis Cluster master(s) 127.0.0.1:\(masters[0].port)"
            let warned = try await poll(.seconds(2), every: .milliseconds(20)) {
                try await RegistryRecoveryTests.readyzWarnings(h).contains { $0.hasPrefix(lostWarning) }
            }
            let warnedNow = try await RegistryRecoveryTests.readyzWarnings(h)
            #expect(warned != nil, "/readyz does not name the lost master: \(warnedNow)")
            let promoted = try await group.waitForFailover(of: masters[0], timeout: .seconds(15))
            let promotedAfter = Date().timeIntervalSince(killedAt)
            let resumed = try await poll(.seconds(10), every: .milliseconds(20)) {
                victimTally.lastNormalAt > Date().addingTimeInterval(-0.1) && victimTally.lastNormalAt > killedAt.addingTimeInterval(promotedAfter)
            }
            let resumedAfter = Date().timeIntervalSince(killedAt)
            try await Task.sleep(for: .milliseconds(500))
            for tally in [victimTally, otherTally] { tally.stopNow() }
            for load in loads { await load.value }

            let victimCounts = victimTally.counts()
            let otherCounts = otherTally.counts()
            print("Cluster master killed under load: replica \(promoted) promoted after \(String(format: "%.2f", promotedAfter)) s, "
                + "decisions on its slots normal again after \(String(format: "%.2f", resumedAfter)) s; its key: \(victimCounts.normal) normal, "
                + "other \(victimCounts.other), longest gap \(Int(victimCounts.longestGap * 1000)) ms; the other master's key: "
                + "\(otherCounts.normal) normal, other \(otherCounts.other), longest gap \(Int(otherCounts.longestGap * 1000)) ms")
            #expect(resumed != nil, "decisions on the dead master's slots did not resume")
            let cleared = try await poll(.seconds(2), every: .milliseconds(20)) {
                try await RegistryRecoveryTests.readyzWarnings(h).allSatisfy { !$0.contains("Redis Cluster") }
            }
            let clearedNow = try await RegistryRecoveryTests.readyzWarnings(h)
            #expect(cleared != nil, "/readyz still warns after the failover: \(clearedNow)")
            #expect(otherCounts.other.isEmpty, "the other masters' decisions must never stop: \(otherCounts.other)")
            #expect(otherCounts.longestGap < 1.0, "the other master's key waited \(otherCounts.longestGap) s")
            // Between the kill and the promotion: only the plan's answer for a backend error.
            #expect(Set(victimCounts.other.keys).isSubset(of: ["503 backend_unavailable"]), "\(victimCounts.other)")
        }
        // The old master rejoins (as a replica) for the next tests.
        try await group.restart(masters[0])
        _ = try await group.waitUntilHealthy()
    }

    @Test("a master that lost its scripts (SCRIPT FLUSH) gets them again on the decision's own connection; the others are untouched")
    func scriptsPerNode() async throws {
        let group = try Self.group()
        let key = "noscript-key"
        let config = try Self.config(group, """
            plans:
              q: { quota: { limit: 100, period: day } }
            api_keys:
              - { key: \(key), plan: q }
            """)
        try await ServerHarness.run(config) { h in
            #expect(try await h.check(key: key).allowed == true)
            let owner = try await Self.owner(of: key, group)
            try await owner.cliAsync("SCRIPT", "FLUSH")
            let loads = try await Self.commandCalls(owner, "script|load") + Self.commandCalls(owner, "script")
            let answer = try await h.check(key: key)
            #expect(answer.status == .ok && answer.allowed == true && answer.remaining == 98, "\(answer.text)")
            #expect(try await Self.commandCalls(owner, "script|load") + Self.commandCalls(owner, "script") == loads + 1)
            #expect(try await h.check(key: key).remaining == 97)
        }
    }

    // MARK: The runtime key registry when the cluster forgets

    /// Two instances on the cluster, both subscribed to registry notices.
    static func twoInstances(_ group: RedisClusterGroup, _ body: @Sendable (ServerHarness, ServerHarness) async throws -> Void) async throws {
        let config = try Self.config(group, """
            plans:
              p: { throttle: { rate: 0.01, burst: 50 } }
            """)
        try await ServerHarness.run(config) { a in
            try await ServerHarness.run(config) { b in
                try await Self.waitForSubscribers(group, 2)
                try await body(a, b)
            }
        }
    }

    /// Waits until `count` subscriptions to registry notices exist over the live nodes (each
    /// node counts its own subscribers; a PUBLISH on any node reaches all of them).
    static func waitForSubscribers(_ group: RedisClusterGroup, _ count: Int) async throws {
        let subscribed = try await poll(.seconds(10)) {
            var total = 0
            for node in group.nodes where node.isLive {
                let reply = (try? await node.cliAsync("PUBSUB", "NUMSUB", "sluice:registry:events:0")) ?? ""
                total += reply.split(separator: "\n").last.flatMap { Int($0) } ?? 0
            }
            return total == count
        }
        if subscribed == nil { throw TestSupportError("\(count) instances did not subscribe to registry notices within 10 s") }
    }

    /// The master holding the registry (hash tag `{keys}`) and its replica.
    static func registryShard(_ group: RedisClusterGroup) async throws -> (master: RedisClusterNode, replica: RedisClusterNode) {
        let master = try await group.node(owningSlot: try await group.keySlot("sluice:registry:{keys}"))
        let replica = try #require(try await group.replica(of: master), "the registry's master has no replica")
        return (master, replica)
    }

    /// Restarts the registry's shard from what its master's dir holds (nothing, or a snapshot):
    /// master and replica are both killed, so nothing newer survives, then started again.
    static func restartRegistryShard(_ group: RedisClusterGroup) async throws {
        let shard = try await Self.registryShard(group)
        try await group.kill(shard.replica)
        try await group.kill(shard.master)
        try await group.restart(shard.master)
        try await group.restart(shard.replica)
        _ = try await group.waitUntilHealthy()
    }

    @Test("registry: FLUSHALL on every master, keys that are gone stop working, keys created afterwards are known everywhere")
    func registryFlushed() async throws {
        let group = try Self.group()
        try await Self.twoInstances(group) { a, b in
            try await RegistryRecoveryTests.create(a, "cluster-before-1")
            try await RegistryRecoveryTests.create(a, "cluster-before-2")
            #expect(try await RegistryRecoveryTests.settles(b, "cluster-before-2", known: true))
            for master in try await group.masters() {
                try await master.node.cliAsync("FLUSHALL")
            }
            try await RegistryRecoveryTests.expectRecovered(a, b, gone: ["cluster-before-1", "cluster-before-2"], kept: [], what: "cluster-flush")
        }
    }

    @Test("registry: its shard restarted empty (master and replica), the same")
    func registryRestartedEmpty() async throws {
        let group = try Self.group()
        try await Self.twoInstances(group) { a, b in
            try await RegistryRecoveryTests.create(a, "cluster-empty-1")
            #expect(try await RegistryRecoveryTests.settles(b, "cluster-empty-1", known: true))
            try await Self.restartRegistryShard(group)
            try await Self.waitForSubscribers(group, 2)
            try await RegistryRecoveryTests.expectRecovered(a, b, gone: ["cluster-empty-1"], kept: [], what: "cluster-restart")
        }
    }

    @Test("registry: its shard back from an older snapshot and changed again to the same version: noticed, read again")
    func registryOlderSnapshot() async throws {
        let group = try Self.group()
        try await Self.twoInstances(group) { a, b in
            try await RegistryRecoveryTests.create(a, "cluster-kept")
            try await Self.registryShard(group).master.cliAsync("SAVE")
            try await RegistryRecoveryTests.create(a, "cluster-lost-1")
            try await RegistryRecoveryTests.create(a, "cluster-lost-2")
            #expect(try await RegistryRecoveryTests.settles(b, "cluster-lost-2", known: true))
            try await Self.restartRegistryShard(group)
            try await RegistryRecoveryTests.createAfterRestart(a, "cluster-new-1")
            try await RegistryRecoveryTests.create(a, "cluster-new-2")
            try await Self.waitForSubscribers(group, 2)
            try await RegistryRecoveryTests.expectRecovered(
                a, b, gone: ["cluster-lost-1", "cluster-lost-2"], kept: ["cluster-kept", "cluster-new-1", "cluster-new-2"], what: "cluster-snapshot"
            )
        }
    }
}

