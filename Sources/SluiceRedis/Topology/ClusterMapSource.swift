import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Keeps a Redis Cluster's slot map: asks the nodes for it (`CLUSTER SHARDS`, or `CLUSTER
/// SLOTS` where SHARDS is unknown), at start, on request (a redirect, a lost node) and
/// periodically, and hands every new map to each event loop's router (docs/ARCHITECTURE.md,
/// "Redis Cluster").
///
/// Requests are coalesced: one refresh runs at a time, at most one every ``minimumInterval``;
/// a request made during a refresh runs one more after it.
final class ClusterMapSource: Sendable {
    /// How often the map is read again when nothing asks.
    static let periodicInterval: TimeAmount = .seconds(5)
    /// The shortest time between two refreshes: a burst of redirects costs one.
    static let minimumInterval: TimeAmount = .milliseconds(50)

    private struct State {
        var map: ClusterSlotMap?
        var refreshing = false
        var again = false
        var lastStart: NIODeadline = .distantPast
        var nextNode = 0
        /// Reads that failed in a row: the first is a warning, the rest debug.
        var failures = 0
    }

    let seeds: [RedisAddress]
    private let configuration: RedisClientConfiguration
    private let tls: RedisTLSContext?
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    private let listeners = NIOLockedValueBox<[@Sendable (ClusterSlotMap) -> Void]>([])

    init(seeds: [RedisAddress], configuration: RedisClientConfiguration, tls: RedisTLSContext?, logger: Logger) {
        self.seeds = seeds
        self.configuration = configuration
        self.tls = tls
        self.logger = logger
    }

    /// The newest map, or nil before the first answer.
    var current: ClusterSlotMap? { self.state.withLockedValue { $0.map } }

    /// Registers a router's reaction to a new map (called on any thread).
    func addListener(_ listener: @escaping @Sendable (ClusterSlotMap) -> Void) {
        self.listeners.withLockedValue { $0.append(listener) }
    }

    /// A node to dial for work that has no key (pub/sub, CONFIG): the known masters and the
    /// seeds in turn, so a dead one is not dialed twice in a row.
    func anyNode() -> RedisAddress {
        self.state.withLockedValue { state in
            let candidates = Self.merge(state.map?.masters ?? [], self.seeds)
            state.nextNode &+= 1
            return candidates[state.nextNode % candidates.count]
        }
    }

    /// Asks for a refresh; returns at once. Runs it on `eventLoop` unless one runs already.
    func requestRefresh(on eventLoop: any EventLoop) {
        let start: TimeAmount? = self.state.withLockedValue { state in
            if state.refreshing {
                state.again = true
                return nil
            }
            state.refreshing = true
            let wait = state.lastStart + Self.minimumInterval - .now()
            return wait.nanoseconds > 0 ? wait : .zero
        }
        guard let start else { return }
        eventLoop.scheduleTask(in: start) {
            self.state.withLockedValue { $0.lastStart = .now() }
            self.fetch(on: eventLoop).whenComplete { result in
                switch result {
                case .success(let map):
                    let failed = self.state.withLockedValue { state in
                        defer { state.failures = 0 }
                        return state.failures
                    }
                    if failed > 0 { self.logger.info("read the Redis Cluster slot map again", metadata: ["failed_reads": "\(failed)"]) }
                    self.publish(map)
                case .failure(let error):
                    let failures = self.state.withLockedValue { state in
                        state.failures += 1
                        return state.failures
                    }
                    self.logger.log(level: failures == 1 ? .warning : .debug, "cannot read the Redis Cluster slot map", metadata: ["error": "\(error)"])
                }
                let again = self.state.withLockedValue { state in
                    state.refreshing = false
                    defer { state.again = false }
                    return state.again
                }
                if again { self.requestRefresh(on: eventLoop) }
            }
        }
    }

    /// Reads the map every ``periodicInterval`` until cancelled (part of the client's service).
    func watch(on group: any EventLoopGroup) async {
        while !Task.isCancelled {
            self.requestRefresh(on: group.next())
            try? await Task.sleep(for: .nanoseconds(Self.periodicInterval.nanoseconds))
        }
    }

    private func publish(_ map: ClusterSlotMap) {
        let changed = self.state.withLockedValue { state in
            defer { state.map = map }
            return state.map != map
        }
        guard changed else { return }
        self.logger.info(
            "Redis Cluster slot map",
            metadata: ["masters": "\(map.masters.map(\.description).joined(separator: ","))", "unassigned_slots": "\(map.unassignedSlots)"]
        )
        for listener in self.listeners.withLockedValue({ $0 }) { listener(map) }
    }

    /// Asks the known masters, then the seeds, one at a time, until one answers with a map
    /// that has a master for at least one slot.
    func fetch(on eventLoop: any EventLoop) -> EventLoopFuture<ClusterSlotMap> {
        let candidates = Self.merge(self.current?.masters ?? [], self.seeds)
        return self.fetch(candidates, index: 0, errors: [], on: eventLoop)
    }

    private func fetch(_ candidates: [RedisAddress], index: Int, errors: [String], on eventLoop: any EventLoop) -> EventLoopFuture<ClusterSlotMap> {
        guard index < candidates.count else {
            return eventLoop.makeFailedFuture(SluiceRedisError.unavailable("no cluster node gave the slot map: \(errors.joined(separator: "; "))"))
        }
        let node = candidates[index]
        return self.ask(node, on: eventLoop).flatMapError { error in
            self.fetch(candidates, index: index + 1, errors: errors + ["\(node): \(error)"], on: eventLoop)
        }
    }

    /// `[AUTH]`, `CLUSTER SHARDS` and, if that is refused, `CLUSTER SLOTS` on one node, within the connect timeout.
    private func ask(_ node: RedisAddress, on eventLoop: any EventLoop) -> EventLoopFuture<ClusterSlotMap> {
        let deadline = NIODeadline.now() + self.configuration.connectTimeout
        let tls = self.tls != nil
        return RedisConnection.connect(
            host: node.host, port: node.port, tls: self.tls, on: eventLoop, connectTimeout: self.configuration.connectTimeout,
            maxPending: 4, maxConsecutiveTimeouts: 1, logger: self.logger
        ).flatMap { connection in
            var commands: [[RedisArgument]] = []
            if let auth = self.configuration.authCommand { commands.append(auth) }
            commands.append(["CLUSTER", "SHARDS"])
            let replies = connection.send(commands, deadline: deadline)
            return replies.flatMap { replies -> EventLoopFuture<ClusterSlotMap> in
                if replies.count == 2, let error = replies[0].errorMessage {
                    return eventLoop.makeFailedFuture(SluiceRedisError.handshakeFailed("AUTH failed: \(error)"))
                }
                let shards = replies[replies.count - 1]
                guard shards.errorMessage != nil else {
                    return eventLoop.makeCompletedFuture { try Self.usable(ClusterSlotMap.fromShards(shards, askedNode: node, tls: tls)) }
                }
                return connection.send([["CLUSTER", "SLOTS"]], deadline: deadline).flatMapThrowing { replies in
                    if let error = replies[0].errorMessage {
                        throw SluiceRedisError.handshakeFailed("CLUSTER SLOTS failed (is this node in a cluster?): \(error)")
                    }
                    return try Self.usable(ClusterSlotMap.fromSlots(replies[0], askedNode: node))
                }
            }.always { _ in connection.close() }
        }
    }

    private static func usable(_ map: ClusterSlotMap) throws -> ClusterSlotMap {
        guard !map.masters.isEmpty else {
            throw SluiceRedisError.unavailable("the node knows no master for any slot")
        }
        return map
    }

    private static func merge(_ first: [RedisAddress], _ second: [RedisAddress]) -> [RedisAddress] {
        var seen = Set<RedisAddress>()
        return (first + second).filter { seen.insert($0).inserted }
    }
}
