import Foundation
import SluiceTestSupport
import Testing

/// The Redis Cluster fixture itself: the topology it starts, resharding and failover on real nodes.
/// Every test reads the topology live, so the order they run in does not matter.
@Suite("Redis Cluster fixture (three masters, three replicas)", .serialized, ClusterGroupScope())
struct RedisClusterFixtureTests {
    /// The suite's seed (printed once): the hash tags come from it, and a tag's slot decides which
    /// master a test migrates from or kills, so `SLUICE_TEST_SEED=<seed>` replays a run's choices.
    static let random = Result { try SeededRandom.Suite("RedisClusterFixtureTests") }

    /// A hash tag no other test uses (each test draws from its own stream of the suite's seed),
    /// so the keys of one test share a slot.
    static func tag(_ test: String = #function) throws -> String {
        let suite = try Self.random.get()
        var generator = suite.generator(for: test)
        let tag = "{fixture-\(String(generator.next(), radix: 16))}"
        print("\(test): hash tag \(tag) (seed \(suite.seed))")
        return tag
    }

    /// `seconds.ss` for the timing lines.
    static func seconds(_ duration: Duration) -> String {
        String(format: "%.2f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    @Test("three masters, each with a replica; all 16384 slots covered; seeds name every node")
    func topology() async throws {
        let group = try ClusterGroupScope.current()
        let masters = try await group.masters()
        #expect(masters.count == 3)
        #expect(masters.reduce(0) { $0 + $1.slotCount } == RedisClusterGroup.slotCount)
        for slot in [0, 5460, 5461, 10922, 10923, 16383] {
            #expect(masters.filter { $0.owns(slot) }.count == 1, "slot \(slot)")
        }
        var replicas: Set<RedisClusterNode> = []
        for master in masters {
            #expect(try await group.role(master.node) == "master")
            let replica = try #require(try await group.replica(of: master.node), "\(master.node) has no replica")
            #expect(try await group.role(replica) == "slave")
            replicas.insert(replica)
        }
        #expect(replicas.count == 3)
        #expect(Set(masters.map(\.node)).union(replicas) == Set(group.nodes))
        #expect(group.seedAddresses == group.nodes.map { "127.0.0.1:\($0.port)" })
        #expect(!group.nodes.contains { $0.port == 6379 })
        for node in group.nodes {
            #expect(try await group.cli(node.port, "CLUSTER", "INFO").contains("cluster_state:ok"), "\(node)")
        }
    }

    @Test("a key written through redis-cli -c lands on the master serving its slot")
    func keyLandsOnOwner() async throws {
        let group = try ClusterGroupScope.current()
        let key = "\(try Self.tag()):k"
        let slot = try await group.keySlot(key)
        let owner = try await group.node(owningSlot: slot)
        // Written through a node that does not serve the slot: redis-cli follows the MOVED.
        let entry = try #require(try await group.masters().first { $0.node != owner })
        #expect(try await group.cli(entry.node.port, "-c", "SET", key, "v1") == "OK")
        #expect(try await group.cli(owner.port, "GET", key) == "v1")
        #expect(try await group.cli(owner.port, "CLUSTER", "COUNTKEYSINSLOT", String(slot)) == "1")
        #expect(try await group.cli(entry.node.port, "GET", key) == "MOVED \(slot) \(owner.address)")
    }

    @Test("migrateSlot moves a slot with its three keys to another master; they read there")
    func migrateSlot() async throws {
        let group = try ClusterGroupScope.current()
        let tag = try Self.tag()
        let keys = (1...3).map { "\(tag):k\($0)" }
        let slot = try await group.keySlot(keys[0])
        let source = try await group.node(owningSlot: slot)
        let target = try #require(try await group.masters().first { $0.node != source }?.node)
        for key in keys {
            #expect(try await group.cli(source.port, "SET", key, "value-\(key)") == "OK")
        }
        let start = ContinuousClock.now
        try await group.migrateSlot(slot, from: source, to: target)
        let took = ContinuousClock.now - start
        #expect(try await group.node(owningSlot: slot) == target)
        #expect(try await group.cli(target.port, "CLUSTER", "COUNTKEYSINSLOT", String(slot)) == "3")
        #expect(try await group.cli(source.port, "CLUSTER", "COUNTKEYSINSLOT", String(slot)) == "0")
        for key in keys {
            #expect(try await group.cli(target.port, "GET", key) == "value-\(key)")
            #expect(try await group.cli(source.port, "-c", "GET", key) == "value-\(key)")
        }
        #expect(try await group.cli(source.port, "GET", keys[0]) == "MOVED \(slot) \(target.address)")
        try await group.waitUntilHealthy(timeout: .seconds(10))
        print("Redis Cluster fixture: migrateSlot of 3 keys took \(Self.seconds(took)) s")
    }

    @Test("a migration in steps: the source answers while keys are still there, ASK once they moved, MOVED after")
    func migrationInSteps() async throws {
        let group = try ClusterGroupScope.current()
        let tag = try Self.tag()
        let slot = try await group.keySlot("\(tag):a")
        let source = try await group.node(owningSlot: slot)
        let target = try #require(try await group.masters().first { $0.node != source }?.node)
        #expect(try await group.cli(source.port, "SET", "\(tag):a", "1") == "OK")
        #expect(try await group.cli(source.port, "SET", "\(tag):b", "2") == "OK")

        try await group.beginMigration(slot, from: source, to: target)
        #expect(try await group.cli(source.port, "GET", "\(tag):a") == "1")
        // A key the source does not hold already goes to the target (ASK, which -c follows).
        #expect(try await group.cli(source.port, "GET", "\(tag):new") == "ASK \(slot) \(target.address)")
        #expect(try await group.cli(source.port, "-c", "SET", "\(tag):new", "3") == "OK")

        #expect(try await group.migrateKeys(slot, from: source, to: target) == 2)
        #expect(try await group.cli(source.port, "GET", "\(tag):a") == "ASK \(slot) \(target.address)")
        #expect(try await group.cli(source.port, "-c", "GET", "\(tag):a") == "1")

        try await group.finishMigration(slot, from: source, to: target)
        #expect(try await group.cli(source.port, "GET", "\(tag):b") == "MOVED \(slot) \(target.address)")
        #expect(try await group.cli(target.port, "CLUSTER", "COUNTKEYSINSLOT", String(slot)) == "3")
        #expect(try await group.node(owningSlot: slot) == target)
        try await group.waitUntilHealthy(timeout: .seconds(10))
    }

    @Test("a killed master: its replica takes over and the cluster is ok; restarted, it rejoins as that replica's replica")
    func killedMasterFailsOver() async throws {
        let group = try ClusterGroupScope.current()
        let key = "\(try Self.tag()):k"
        let slot = try await group.keySlot(key)
        let master = try await group.node(owningSlot: slot)
        let replica = try #require(try await group.replica(of: master))
        #expect(try await group.cli(master.port, "SET", key, "kept") == "OK")
        // The write reached the replica before the crash.
        #expect(try await group.cli(master.port, "WAIT", "1", "2000") == "1")

        try await group.kill(master)
        let killedAt = ContinuousClock.now
        let promoted = try await group.waitForFailover(of: master, timeout: .seconds(10))
        let failoverTook = ContinuousClock.now - killedAt
        #expect(promoted == replica)
        #expect(try await group.role(promoted) == "master")
        #expect(try await group.node(owningSlot: slot) == promoted)
        #expect(try await group.masters().count == 3)
        let survivor = try #require(group.nodes.first { $0 != master && $0 != promoted })
        #expect(try await group.cli(survivor.port, "-c", "GET", key) == "kept")
        for node in group.nodes where node != master {
            #expect(try await group.cli(node.port, "CLUSTER", "INFO").contains("cluster_state:ok"), "\(node)")
        }

        let restartedAt = ContinuousClock.now
        try await group.restart(master)
        let rejoinTook = try await group.waitUntilHealthy(timeout: .seconds(15))
        let restartTook = ContinuousClock.now - restartedAt
        #expect(try await group.role(master) == "slave")
        #expect(try await group.replica(of: promoted) == master)
        #expect(try await group.cli(master.port, "GET", key) == "MOVED \(slot) \(promoted.address)")
        print(
            "Redis Cluster fixture: replica promoted \(Self.seconds(failoverTook)) s after SIGKILL of its master; "
                + "the old master rejoined as a replica \(Self.seconds(restartTook)) s after its restart "
                + "(health polled \(Self.seconds(rejoinTook)) s)"
        )
    }

    @Test("a paused master: its replica takes over; resumed, it rejoins as a replica")
    func pausedMasterFailsOver() async throws {
        let group = try ClusterGroupScope.current()
        let master = try #require(try await group.masters().first?.node)
        let replica = try #require(try await group.replica(of: master))
        try await group.pause(master)
        let pausedAt = ContinuousClock.now
        let promoted: RedisClusterNode
        do {
            promoted = try await group.waitForFailover(of: master, timeout: .seconds(10))
        } catch {
            group.resume(master)
            throw error
        }
        let failoverTook = ContinuousClock.now - pausedAt
        #expect(promoted == replica)
        group.resume(master)
        try await group.waitUntilHealthy(timeout: .seconds(15))
        #expect(try await group.role(master) == "slave")
        #expect(try await group.replica(of: promoted) == master)
        print("Redis Cluster fixture: replica promoted \(Self.seconds(failoverTook)) s after SIGSTOP of its master")
    }
}
