import Foundation
import Synchronization

/// One `redis-server` of a ``RedisClusterGroup``: cluster mode, a free port and a free bus port,
/// its own config file, `nodes.conf` and log in a temp dir. Stopped by PID.
///
/// In TLS mode it serves TLS only (`port 0`): clients, the cluster bus, replication and
/// `MIGRATE` all go over TLS, as on ElastiCache and MemoryDB.
public final class RedisClusterNode: @unchecked Sendable, Hashable, CustomStringConvertible {
    // @unchecked: `process` and `paused` are read and written under `lock`.
    /// The client port: the TLS port in TLS mode, where no plain port is open.
    public let port: Int
    /// The cluster bus port (`cluster-port`), chosen free as well: the default, port + 10000,
    /// would fall inside the kernel's ephemeral range that FreePort stays below.
    public let busPort: Int
    /// Holds `redis.conf`, `nodes.conf` and `redis.log`; removed when the node goes away.
    public let directory: URL
    /// The node ID (`CLUSTER MYID`). It is kept in `nodes.conf`, so a restart keeps it.
    public let id: String
    /// The certificates it serves TLS with, or nil for plain TCP. Held so that their files
    /// outlive the node.
    public let certificates: TestCertificates?
    /// What every `redis-cli` call puts before its arguments: `-p <port>`, and in TLS mode the
    /// CA and the client certificate (accepted whether or not the node requires one).
    private let cliOptions: [String]
    private let lock = NSLock()
    private var process: Process
    private var paused = false

    fileprivate init(tls certificates: TestCertificates?, requireClientCertificate: Bool) throws {
        self.port = try FreePort.find()
        self.busPort = try FreePort.find()
        self.certificates = certificates
        self.cliOptions = ["-p", String(self.port)] + (certificates.map(Self.tlsOptions) ?? [])
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let config = self.directory.appendingPathComponent("redis.conf")
        let listen = certificates == nil ? "port \(self.port)" : "port 0\ntls-port \(self.port)"
        try ("""
            \(listen)
            bind 127.0.0.1
            daemonize no
            dir \(self.directory.path)
            logfile \(self.directory.appendingPathComponent("redis.log").path)
            save ""
            appendonly no
            maxmemory-policy noeviction
            cluster-enabled yes
            cluster-config-file nodes.conf
            cluster-port \(self.busPort)
            cluster-node-timeout 1000
            cluster-require-full-coverage no
            # 0: a replica always tries to fail over, however long its link to the master was down.
            cluster-replica-validity-factor 0
            # The topology changes only when a test changes it: no replica moves to an orphaned master.
            cluster-allow-replica-migration no
            # Redis 7 syncs replicas diskless and waits 5 s for more replicas before a transfer.
            repl-diskless-sync-delay 0

            """ + (certificates.map { Self.tlsConfig($0, requireClientCertificate: requireClientCertificate) } ?? ""))
            .write(to: config, atomically: true, encoding: .utf8)
        self.process = try Self.launch(directory: self.directory, port: self.port)
        try Self.waitUntilReady(self.process, port: self.port, options: self.cliOptions, directory: self.directory)
        let id = try Self.cli(self.cliOptions, ["CLUSTER", "MYID"])
        guard id.count == 40 else { throw TestSupportError("CLUSTER MYID on port \(self.port) answered \(id)") }
        self.id = id
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// `127.0.0.1:<port>`.
    public var address: String { "127.0.0.1:\(self.port)" }

    /// The server's PID (of its last start).
    public var pid: Int32 { self.lock.withLock { self.process.processIdentifier } }

    /// Whether the process runs (paused or not).
    public var isRunning: Bool { self.lock.withLock { self.process.isRunning } }

    /// Whether the process is frozen by ``RedisClusterGroup/pause(_:)``.
    public var isPaused: Bool { self.lock.withLock { self.paused } }

    /// Running and not paused: it answers commands.
    public var isLive: Bool { self.lock.withLock { self.process.isRunning && !self.paused } }

    /// The node's log so far.
    public var log: String {
        (try? String(contentsOf: self.directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
    }

    public var description: String { "\(self.address) (\(self.id.prefix(8)))" }

    public static func == (lhs: RedisClusterNode, rhs: RedisClusterNode) -> Bool { lhs === rhs }

    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// Runs `redis-cli -p <port>` (over TLS in TLS mode) with `arguments` and returns its output,
    /// trimmed. Options go before the command (`cli("-c", "GET", key)` follows redirections). A
    /// paused node never answers: this would block.
    @discardableResult
    public func cli(_ arguments: String...) throws -> String {
        try Self.cli(self.cliOptions, arguments)
    }

    /// Runs `redis-cli -p <port>` (over TLS in TLS mode) with `arguments` and returns its output, trimmed.
    @discardableResult
    public func cli(_ arguments: [String]) throws -> String {
        try Self.cli(self.cliOptions, arguments)
    }

    /// ``cli(_:)-([String])`` on a Dispatch thread, so a slow call never blocks Swift's cooperative pool.
    @discardableResult
    public func cliAsync(_ arguments: String...) async throws -> String {
        try await offCooperativePool { try self.cli(arguments) }
    }

    /// SIGKILL (after SIGCONT, should it be paused), then waits for the exit. Blocks.
    fileprivate func stop() {
        self.lock.withLock {
            self.paused = false
            guard self.process.isRunning else { return }
            kill(self.process.processIdentifier, SIGCONT)
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
    }

    /// Starts it again from its config and `nodes.conf` and waits until it answers PING. Blocks.
    fileprivate func relaunch() throws {
        self.stop()
        let process = try Self.launch(directory: self.directory, port: self.port)
        self.lock.withLock { self.process = process }
        try Self.waitUntilReady(process, port: self.port, options: self.cliOptions, directory: self.directory)
    }

    fileprivate func pause() {
        self.lock.withLock {
            guard self.process.isRunning else { return }
            kill(self.process.processIdentifier, SIGSTOP)
            self.paused = true
        }
    }

    fileprivate func resume() {
        self.lock.withLock {
            guard self.process.isRunning else { return }
            kill(self.process.processIdentifier, SIGCONT)
            self.paused = false
        }
    }

    /// `redis-cli` options for TLS with `certificates`: trust their CA, present their client
    /// certificate. redis-cli verifies the chain, not the name.
    fileprivate static func tlsOptions(_ certificates: TestCertificates) -> [String] {
        ["--tls", "--cacert", certificates.caFile, "--cert", certificates.clientCertFile, "--key", certificates.clientKeyFile]
    }

    /// The config lines of TLS mode. The node presents the client certificate when it dials
    /// another node (bus, replication, MIGRATE): the server certificate is for serverAuth only,
    /// which a node requiring client certificates would refuse.
    private static func tlsConfig(_ certificates: TestCertificates, requireClientCertificate: Bool) -> String {
        """
        tls-cert-file \(certificates.serverCertFile)
        tls-key-file \(certificates.serverKeyFile)
        tls-client-cert-file \(certificates.clientCertFile)
        tls-client-key-file \(certificates.clientKeyFile)
        tls-ca-cert-file \(certificates.caFile)
        tls-auth-clients \(requireClientCertificate ? "yes" : "no")
        tls-cluster yes
        tls-replication yes

        """
    }

    private static func cli(_ options: [String], _ arguments: [String]) throws -> String {
        let result = try Subprocess.run(try RedisServer.executable("redis-cli"), options + arguments)
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func launch(directory: URL, port: Int) throws -> Process {
        let process = Process()
        process.executableURL = try RedisServer.executable("redis-server")
        process.arguments = [directory.appendingPathComponent("redis.conf").path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw TestSupportError("cannot start a cluster node on port \(port): \(error)")
        }
        return process
    }

    private static func waitUntilReady(_ process: Process, port: Int, options: [String], directory: URL) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if !process.isRunning {
                let log = (try? String(contentsOf: directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
                throw TestSupportError("cluster node on port \(port) exited at start: \(log.suffix(500))")
            }
            if (try? Self.cli(options, ["PING"])) == "PONG" {
                return
            }
            usleep(20_000)
        }
        throw TestSupportError("cluster node on port \(port) did not answer PING within 10 s")
    }
}

/// A master as `CLUSTER NODES` names it, with the slots it serves.
public struct RedisClusterMaster: Sendable {
    /// The node.
    public let node: RedisClusterNode
    /// Its slot ranges, ascending (a migrated slot is a range of one).
    public let slots: [ClosedRange<Int>]

    /// Whether it serves `slot`.
    public func owns(_ slot: Int) -> Bool { self.slots.contains { $0.contains(slot) } }

    /// How many slots it serves.
    public var slotCount: Int { self.slots.reduce(0) { $0 + $1.count } }
}

/// A Redis Cluster on loopback: three masters with one replica each (`redis-cli --cluster
/// create --cluster-replicas 1`), node timeout 1 s so a replica takes over in a few seconds. Every
/// process is stopped by PID and every temp dir removed by ``stop()`` or when the group goes away.
/// Plain TCP, or TLS only (see ``start(tls:requireClientCertificate:)``).
///
/// Topology questions (`masters()`, `replica(of:)`, ...) are asked live, of the first node that
/// runs and is not paused.
public final class RedisClusterGroup: Sendable {
    /// The number of hash slots.
    public static let slotCount = 16384
    /// All six nodes, in the order given to `redis-cli --cluster create`.
    public let nodes: [RedisClusterNode]
    /// The replicas a master had when it was killed or paused, by master ID: who may take over.
    private let replicasAtFault = Mutex<[String: [String]]>([:])

    private init(nodes: [RedisClusterNode]) {
        self.nodes = nodes
    }

    deinit {
        self.stop()
    }

    /// Starts six nodes, joins them with `redis-cli --cluster create`, and waits (at most 20 s)
    /// until the cluster is healthy (see ``waitUntilHealthy(timeout:)``). Nodes start on Dispatch
    /// threads, as ``RedisServer/start(arguments:)``.
    /// - Parameters:
    ///   - tls: nil for plain TCP; else every node serves TLS only with these certificates (the
    ///     server one for 127.0.0.1), on its ``RedisClusterNode/port``, and the cluster bus and
    ///     replication run over TLS too (`tls-cluster`, `tls-replication`). Every `redis-cli`
    ///     call of the group then uses TLS.
    ///   - requireClientCertificate: in TLS mode, whether nodes refuse clients without a
    ///     certificate their CA signed (`tls-auth-clients yes`, else `no`).
    /// - Throws: ``TestSupportError`` saying what did not come up.
    public static func start(tls: TestCertificates? = nil, requireClientCertificate: Bool = false) async throws -> RedisClusterGroup {
        let nodes = try await withThrowingTaskGroup(of: RedisClusterNode.self) { starting in
            for _ in 0..<6 {
                starting.addTask {
                    try await offCooperativePool { try RedisClusterNode(tls: tls, requireClientCertificate: requireClientCertificate) }
                }
            }
            var nodes: [RedisClusterNode] = []
            for try await node in starting { nodes.append(node) }
            return nodes
        }
        let group = RedisClusterGroup(nodes: nodes)
        let created = try await offCooperativePool {
            try Subprocess.run(
                try RedisServer.executable("redis-cli"),
                (tls.map(RedisClusterNode.tlsOptions) ?? [])
                    + ["--cluster", "create"] + group.seedAddresses + ["--cluster-replicas", "1", "--cluster-yes"]
            )
        }
        guard created.status == 0, created.output.contains("All 16384 slots covered") else {
            throw TestSupportError("redis-cli --cluster create failed (status \(created.status)): \(created.output.suffix(1500))")
        }
        try await group.waitUntilHealthy(timeout: .seconds(20))
        return group
    }

    /// Stops every node (SIGKILL, by PID), waits for the exits and removes the temp dirs. The
    /// group cannot be used after. Blocks.
    public func stop() {
        for node in self.nodes {
            node.stop()
            try? FileManager.default.removeItem(at: node.directory)
        }
    }

    // MARK: Topology

    /// The certificates the nodes serve TLS with, or nil for a plain cluster.
    public var certificates: TestCertificates? { self.nodes.first?.certificates }

    /// `["127.0.0.1:<port>", ...]` for every node, for a Sluice config's seed list.
    public var seedAddresses: [String] { self.nodes.map(\.address) }

    /// The node on `port`, if it is one of the group's.
    public func node(port: Int) -> RedisClusterNode? { self.nodes.first { $0.port == port } }

    /// The node with node ID `id`.
    public func node(id: String) -> RedisClusterNode? { self.nodes.first { $0.id == id } }

    /// The masters serving slots now, with their slots, by port. A master the view node only
    /// suspects (`fail?`) is included; one the cluster agreed has failed is not.
    public func masters() async throws -> [RedisClusterMaster] {
        try await self.view().compactMap { entry in
            guard entry.isMaster, !entry.flags.contains("fail"), !entry.slots.isEmpty, let node = self.node(id: entry.id) else {
                return nil
            }
            return RedisClusterMaster(node: node, slots: entry.slots)
        }
        .sorted { $0.node.port < $1.node.port }
    }

    /// The replica of `master` (the first, should it have several), or nil when it has none that
    /// the cluster has not agreed failed.
    public func replica(of master: RedisClusterNode) async throws -> RedisClusterNode? {
        try await self.replicas(of: master).first
    }

    /// The master serving `slot` now.
    /// - Throws: ``TestSupportError`` when no master serves it.
    public func node(owningSlot slot: Int) async throws -> RedisClusterNode {
        guard let master = try await self.masters().first(where: { $0.owns(slot) }) else {
            throw TestSupportError("no master serves slot \(slot)")
        }
        return master.node
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    public func keySlot(_ key: String) async throws -> Int {
        let reply = try await self.liveNode().cliAsync("CLUSTER", "KEYSLOT", key)
        guard let slot = Int(reply) else { throw TestSupportError("CLUSTER KEYSLOT \(key) answered \(reply)") }
        return slot
    }

    /// Runs `redis-cli -p <port>` (over TLS in TLS mode) with `arguments` on a Dispatch thread and
    /// returns its output, trimmed. `port` must be one of the group's nodes: nothing else is ever touched.
    @discardableResult
    public func cli(_ port: Int, _ arguments: String...) async throws -> String {
        guard let node = self.node(port: port) else { throw TestSupportError("port \(port) is not a node of this cluster") }
        return try await offCooperativePool { try node.cli(arguments) }
    }

    /// What `ROLE` says on `node`: `master` or `slave`.
    public func role(_ node: RedisClusterNode) async throws -> String {
        let reply = try await node.cliAsync("ROLE")
        return reply.split(whereSeparator: \.isNewline).first.map(String.init) ?? reply
    }

    // MARK: Health

    /// Polls until every node runs, answers `cluster_state:ok` with all 16384 slots ok and six
    /// known nodes, no node's `CLUSTER NODES` flags a node as failing or in handshake, all agree
    /// on who serves which slots and replicates whom, three masters serve slots, each with one
    /// replica that is online (`connected_slaves:1`, `master_link_status:up`).
    /// - Returns: how long it took.
    /// - Throws: ``TestSupportError`` with the last thing not yet right, after `timeout`.
    @discardableResult
    public func waitUntilHealthy(timeout: Duration = .seconds(20)) async throws -> Duration {
        if let down = self.nodes.first(where: { !$0.isLive }) {
            throw TestSupportError("the cluster cannot be healthy: \(down) is stopped or paused")
        }
        var problem = ""
        let took = try await poll(timeout, every: .milliseconds(100)) {
            problem = self.healthProblem(try await self.reports(of: self.nodes)) ?? ""
            return problem.isEmpty
        }
        guard let took else { throw TestSupportError("the cluster was not healthy within \(timeout): \(problem)") }
        return took
    }

    /// Why the cluster is not healthy yet, or nil when it is.
    private func healthProblem(_ reports: [NodeReport]) -> String? {
        var topology: [String]?
        for report in reports {
            let info = report.info
            guard info["cluster_state"] == "ok", info["cluster_slots_ok"] == String(Self.slotCount),
                info["cluster_known_nodes"] == String(self.nodes.count)
            else {
                return "\(report.node): CLUSTER INFO state \(info["cluster_state"] ?? "?"), slots ok \(info["cluster_slots_ok"] ?? "?"), "
                    + "known nodes \(info["cluster_known_nodes"] ?? "?")"
            }
            if let bad = report.entries.first(where: { !$0.flags.isDisjoint(with: ["fail", "fail?", "handshake", "noaddr"]) }) {
                return "\(report.node) flags \(bad.address) \(bad.flags.sorted().joined(separator: ","))"
            }
            let seen = report.entries.map(\.summary).sorted()
            if let topology, topology != seen { return "\(report.node) sees another topology: \(seen) vs \(topology)" }
            topology = seen
        }
        guard let entries = reports.first?.entries else { return "no node answered" }
        let masters = entries.filter { $0.isMaster && !$0.slots.isEmpty }
        guard masters.count == self.nodes.count / 2 else { return "\(masters.count) masters serve slots" }
        for master in masters {
            guard let report = reports.first(where: { $0.node.id == master.id }) else { return "unknown node \(master.id)" }
            let replicas = entries.filter { $0.masterID == master.id }
            guard replicas.count == 1, let replica = reports.first(where: { $0.node.id == replicas[0].id }) else {
                return "\(report.node) has \(replicas.count) replicas"
            }
            let info = report.replication
            guard info["connected_slaves"] == "1", info["slave0"]?.contains("state=online") == true else {
                return "\(report.node): connected_slaves \(info["connected_slaves"] ?? "?"), slave0 \(info["slave0"] ?? "none")"
            }
            let link = replica.replication["master_link_status"]
            guard link == "up" else { return "\(replica.node): master_link_status \(link ?? "?")" }
        }
        return nil
    }

    /// What each of `nodes` says (`CLUSTER INFO`, `CLUSTER NODES`, `INFO replication`), asked of
    /// all at once: each `redis-cli` run costs tens of milliseconds.
    private func reports(of nodes: [RedisClusterNode]) async throws -> [NodeReport] {
        try await withThrowingTaskGroup(of: NodeReport.self) { reading in
            for node in nodes {
                reading.addTask {
                    try await offCooperativePool {
                        NodeReport(
                            node: node,
                            info: Self.fields(try node.cli("CLUSTER", "INFO")),
                            entries: NodeEntry.parse(try node.cli("CLUSTER", "NODES")),
                            replication: Self.fields(try node.cli("INFO", "replication"))
                        )
                    }
                }
            }
            var reports: [NodeReport] = []
            for try await report in reading { reports.append(report) }
            return nodes.compactMap { node in reports.first { $0.node == node } }
        }
    }

    // MARK: Faults

    /// Kills `node` (SIGKILL, as a crash would) and waits for it to exit. Its temp dir stays, for
    /// ``restart(_:)``.
    public func kill(_ node: RedisClusterNode) async throws {
        try await self.rememberReplicas(of: node)
        try await offCooperativePool { node.stop() }
    }

    /// Starts `node` again (killing it first if it still runs) on the same port, from the same
    /// dir: it rejoins with its `nodes.conf` (a master whose replica took over comes back as that
    /// replica's replica). Returns once it answers PING; ``waitUntilHealthy(timeout:)`` waits for
    /// it to rejoin.
    public func restart(_ node: RedisClusterNode) async throws {
        try await offCooperativePool { try node.relaunch() }
    }

    /// Freezes `node` (SIGSTOP): it accepts TCP connections but never answers, so the cluster
    /// sees it fail after the node timeout.
    public func pause(_ node: RedisClusterNode) async throws {
        try await self.rememberReplicas(of: node)
        node.pause()
    }

    /// Thaws `node` (SIGCONT).
    public func resume(_ node: RedisClusterNode) {
        node.resume()
    }

    /// Waits until a replica of `deadMaster` (killed or paused) says `ROLE` master, and every
    /// other live node says `cluster_state:ok` with all slots ok and lists it as a master
    /// serving slots.
    /// - Returns: the promoted replica.
    /// - Throws: ``TestSupportError`` when `deadMaster` had no replica, or none took over within `timeout`.
    public func waitForFailover(of deadMaster: RedisClusterNode, timeout: Duration = .seconds(15)) async throws -> RedisClusterNode {
        var candidates = Set(self.replicasAtFault.withLock { $0[deadMaster.id] } ?? [])
        if self.nodes.contains(where: { $0.isLive && $0 != deadMaster }) {
            candidates.formUnion(try await self.replicas(of: deadMaster).map(\.id))
        }
        let replicas = self.nodes.filter { candidates.contains($0.id) }
        guard !replicas.isEmpty else { throw TestSupportError("\(deadMaster) has no replica to take over") }
        var promoted: RedisClusterNode?
        var problem = "no replica of \(deadMaster) says master"
        let took = try await poll(timeout, every: .milliseconds(50)) {
            promoted = nil
            for replica in replicas where replica.isLive {
                if try await self.role(replica) == "master" { promoted = replica }
            }
            guard let promoted else { return false }
            let survivors = self.nodes.filter { $0.isLive && $0 != deadMaster }
            problem = ""
            for report in try await self.reports(of: survivors) {
                let info = report.info
                guard info["cluster_state"] == "ok", info["cluster_slots_ok"] == String(Self.slotCount) else {
                    problem = "\(report.node): state \(info["cluster_state"] ?? "?"), slots ok \(info["cluster_slots_ok"] ?? "?")"
                    break
                }
                let entry = report.entries.first { $0.id == promoted.id }
                guard let entry, entry.isMaster, !entry.slots.isEmpty else {
                    problem = "\(report.node) does not see \(promoted) serve slots"
                    break
                }
            }
            return problem.isEmpty
        }
        guard took != nil, let promoted else {
            throw TestSupportError("no failover of \(deadMaster) within \(timeout): \(problem)")
        }
        return promoted
    }

    // MARK: Resharding

    /// Moves `slot` with its keys from `source` to `target` as `redis-cli --cluster reshard`
    /// does: ``beginMigration(_:from:to:)``, ``migrateKeys(_:from:to:)``, ``finishMigration(_:from:to:)``.
    public func migrateSlot(_ slot: Int, from source: RedisClusterNode, to target: RedisClusterNode) async throws {
        try await self.beginMigration(slot, from: source, to: target)
        try await self.migrateKeys(slot, from: source, to: target)
        try await self.finishMigration(slot, from: source, to: target)
    }

    /// `CLUSTER SETSLOT <slot> IMPORTING <source-id>` on `target`, then `MIGRATING <target-id>` on
    /// `source`: from here `source` answers ASK for keys of the slot it no longer holds.
    public func beginMigration(_ slot: Int, from source: RedisClusterNode, to target: RedisClusterNode) async throws {
        try await self.expectOK(target, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", source.id)
        try await self.expectOK(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", target.id)
    }

    /// Moves every key of `slot` from `source` to `target`, 100 at a time (`CLUSTER GETKEYSINSLOT`,
    /// then `MIGRATE ... "" 0 5000 KEYS ...`), until `source` holds none. Keys must not contain
    /// newlines (`redis-cli` lists one a line).
    /// - Returns: how many keys were listed for moving.
    @discardableResult
    public func migrateKeys(_ slot: Int, from source: RedisClusterNode, to target: RedisClusterNode) async throws -> Int {
        try await offCooperativePool {
            var moved = 0
            while true {
                let keys = try source.cli("CLUSTER", "GETKEYSINSLOT", String(slot), "100")
                    .split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
                if keys.isEmpty { return moved }
                let reply = try source.cli(["MIGRATE", "127.0.0.1", String(target.port), "", "0", "5000", "KEYS"] + keys)
                // NOKEY: the listed keys expired or were deleted meanwhile.
                guard reply == "OK" || reply == "NOKEY" else {
                    throw TestSupportError("MIGRATE of slot \(slot) from \(source) to \(target) answered \(reply)")
                }
                moved += keys.count
            }
        }
    }

    /// `CLUSTER SETSLOT <slot> NODE <target-id>` on `target`, `source` and the other live masters,
    /// then waits (at most 10 s) until every live node sees `target` serve the slot.
    public func finishMigration(_ slot: Int, from source: RedisClusterNode, to target: RedisClusterNode) async throws {
        let others = try await self.masters().map(\.node).filter { $0 != source && $0 != target && $0.isLive }
        for node in [target, source] + others {
            try await self.expectOK(node, "CLUSTER", "SETSLOT", String(slot), "NODE", target.id)
        }
        let agreed = try await poll(.seconds(10), every: .milliseconds(50)) {
            try await self.reports(of: self.nodes.filter(\.isLive)).allSatisfy { report in
                report.entries.contains { $0.id == target.id && $0.owns(slot) }
            }
        }
        guard agreed != nil else { throw TestSupportError("not every node sees \(target) serve slot \(slot) within 10 s") }
    }

    // MARK: Helpers

    private func expectOK(_ node: RedisClusterNode, _ arguments: String...) async throws {
        let reply = try await offCooperativePool { try node.cli(arguments) }
        guard reply == "OK" else { throw TestSupportError("\(arguments.joined(separator: " ")) on \(node) answered \(reply)") }
    }

    private func rememberReplicas(of node: RedisClusterNode) async throws {
        let replicas = try await self.replicas(of: node).map(\.id)
        guard !replicas.isEmpty else { return }
        self.replicasAtFault.withLock { $0[node.id] = replicas }
    }

    private func replicas(of master: RedisClusterNode) async throws -> [RedisClusterNode] {
        try await self.view().filter { $0.masterID == master.id && !$0.flags.contains("fail") }.compactMap { self.node(id: $0.id) }
    }

    /// The first node that answers.
    private func liveNode() throws -> RedisClusterNode {
        guard let node = self.nodes.first(where: \.isLive) else { throw TestSupportError("no node of the cluster runs") }
        return node
    }

    /// `CLUSTER NODES` of the first node that answers.
    private func view() async throws -> [NodeEntry] {
        let node = try self.liveNode()
        return NodeEntry.parse(try await node.cliAsync("CLUSTER", "NODES"))
    }

    /// `key:value` lines (`INFO`, `CLUSTER INFO`) as a dictionary.
    private static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        // INFO separates lines with \r\n, a single Character in Swift: split on any newline.
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return fields
    }
}

/// What one node said about the cluster.
private struct NodeReport: Sendable {
    let node: RedisClusterNode
    let info: [String: String]
    let entries: [NodeEntry]
    let replication: [String: String]
}

/// One line of `CLUSTER NODES`: `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`.
private struct NodeEntry: Sendable {
    let id: String
    let address: String
    let flags: Set<String>
    /// The master it replicates, nil for a master.
    let masterID: String?
    let slots: [ClosedRange<Int>]

    var isMaster: Bool { self.flags.contains("master") }

    func owns(_ slot: Int) -> Bool { self.slots.contains { $0.contains(slot) } }

    /// What every node should agree on: who it is, whom it replicates, which slots it serves.
    var summary: String { "\(self.id) \(self.masterID ?? "-") \(self.slots.map { "\($0.lowerBound)-\($0.upperBound)" })" }

    static func parse(_ text: String) -> [NodeEntry] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 8 else { return nil }
            let slots: [ClosedRange<Int>] = fields.dropFirst(8).compactMap { field in
                // `[slot->-id]` / `[slot-<-id]`: a migration in progress, on the node's own line only.
                guard !field.hasPrefix("[") else { return nil }
                let bounds = field.split(separator: "-").compactMap { Int($0) }
                switch bounds.count {
                case 1: return bounds[0]...bounds[0]
                case 2: return bounds[0]...bounds[1]
                default: return nil
                }
            }
            return NodeEntry(
                id: fields[0],
                address: String(fields[1].prefix { $0 != "@" }),
                flags: Set(fields[2].split(separator: ",").map(String.init)).subtracting(["myself"]),
                masterID: fields[3] == "-" ? nil : fields[3],
                slots: slots.sorted { $0.lowerBound < $1.lowerBound }
            )
        }
    }
}
