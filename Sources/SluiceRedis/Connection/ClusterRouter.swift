import NIOCore

/// One node's connections on one event loop, as a ``ClusterRouter`` uses them.
protocol NodeConnections: AnyObject {
    /// Commands in flight or waiting.
    var load: Int { get }
    /// Starts connecting. On the loop.
    func start()
    /// Closes every connection. On the loop.
    func shutdown() -> EventLoopFuture<Void>
    /// Writes commands, in order, on one connection (one write for all). On the loop.
    func send(_ commands: [ByteBuffer], deadline: NIODeadline, promises: [EventLoopPromise<RedisReply>])
}

extension EventLoopConnections: NodeConnections {}

/// Sends one event loop's commands to the masters of a Redis Cluster (docs/ARCHITECTURE.md,
/// "Redis Cluster"): each command to the master that owns its key's hash slot, after the
/// loop's own copy of the slot map.
///
/// - `MOVED`: the map copy takes the slot's new master, a refresh is asked for, and the
///   command goes there.
/// - `ASK`: `ASKING` and the command go to the node named, pipelined, without changing the map.
/// - `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, a slot without a master, or a node with no
///   connection up (the command was not sent): the command goes again after a short wait
///   (10, 20, 40, 50, 50 ... ms) while its deadline allows; then the last answer stands.
/// - A connection lost with the command on it, or a deadline passed: never sent again, since
///   the command may have run.
///
/// Confined to its event loop, like the connections it holds.
final class ClusterRouter: @unchecked Sendable {
    // @unchecked: every field is touched only on `eventLoop`.

    /// Redirects (`MOVED`, `ASK`) one command may follow.
    static let maxRedirects = 5

    /// One command on its way, with what it has been through.
    struct Routed {
        var command: ByteBuffer
        /// The hash slot of its key; nil: any master (a command without a key).
        var slot: Int?
        /// Commands written just before it on the same connection, replies ignored (SCRIPT LOAD).
        var prelude: [ByteBuffer] = []
        /// The node named by an `ASK` redirect.
        var asking: RedisAddress? = nil
        var redirects = 0
        var retries = 0
    }

    let eventLoop: any EventLoop
    private let connectionsTo: (RedisAddress) -> any NodeConnections
    private let requestRefresh: () -> Void
    private let redirected: (String) -> Void
    private let retireAfter: TimeAmount
    private var map: ClusterSlotMap?
    private var nodes: [RedisAddress: any NodeConnections] = [:]
    private var started = false
    private var stopped = false
    private var nextAny = 0

    private static let askingCommand: ByteBuffer = {
        var buffer = ByteBuffer()
        buffer.writeString("*1\r\n$6\r\nASKING\r\n")
        return buffer
    }()

    /// - Parameters:
    ///   - connectionsTo: makes a node's connections on this loop (not started).
    ///   - requestRefresh: asks for the slot map to be read again (coalesced elsewhere).
    ///   - redirected: told of each `MOVED` (`moved`), `ASK` (`ask`) and wait-and-retry (`retry`), for metrics.
    ///   - retireAfter: how long the connections of a node that left the map stay, for the
    ///     commands still on them.
    init(
        eventLoop: any EventLoop,
        connectionsTo: @escaping (RedisAddress) -> any NodeConnections,
        requestRefresh: @escaping () -> Void,
        redirected: @escaping (String) -> Void = { _ in },
        retireAfter: TimeAmount
    ) {
        self.eventLoop = eventLoop
        self.connectionsTo = connectionsTo
        self.requestRefresh = requestRefresh
        self.redirected = redirected
        self.retireAfter = retireAfter
    }

    /// Commands in flight or waiting on every node.
    var load: Int { self.nodes.values.reduce(0) { $0 + $1.load } }

    /// The masters this loop has connections to, for tests and health.
    var connectedNodes: [RedisAddress] { Array(self.nodes.keys) }

    /// The loop's copy of the map, for tests.
    var currentMap: ClusterSlotMap? { self.map }

    func start() {
        self.eventLoop.preconditionInEventLoop()
        self.started = true
        for node in self.nodes.values { node.start() }
    }

    func shutdown() -> EventLoopFuture<Void> {
        self.eventLoop.preconditionInEventLoop()
        self.stopped = true
        let nodes = Array(self.nodes.values)
        self.nodes = [:]
        return EventLoopFuture.andAllComplete(nodes.map { $0.shutdown() }, on: self.eventLoop)
    }

    /// Takes a new slot map: connects to masters not seen before; the connections of nodes
    /// that left it close after ``retireAfter`` unless they come back meanwhile.
    func apply(_ map: ClusterSlotMap) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.stopped else { return }
        self.map = map
        for master in map.masters where self.nodes[master] == nil {
            _ = self.connections(to: master)
        }
        for address in self.nodes.keys where !map.masters.contains(address) {
            self.eventLoop.scheduleTask(in: self.retireAfter) { [self] in
                guard let map = self.map, !map.masters.contains(address), let node = self.nodes.removeValue(forKey: address) else { return }
                _ = node.shutdown()
            }
        }
    }

    /// Sends one command to the master of `slot`; `promise` gets its final reply.
    func send(_ command: ByteBuffer, slot: Int?, prelude: [ByteBuffer] = [], deadline: NIODeadline, promise: EventLoopPromise<RedisReply>) {
        self.dispatch([Routed(command: command, slot: slot, prelude: prelude)], deadline: deadline, promises: [promise])
    }

    /// Sends commands, one pipelined write per master; each promise gets its command's final reply.
    func sendBatch(_ commands: [ByteBuffer], slots: [Int?], deadline: NIODeadline, promises: [EventLoopPromise<RedisReply>]) {
        let routed = zip(commands, slots).map { Routed(command: $0, slot: $1) }
        self.dispatch(routed, deadline: deadline, promises: promises)
    }

    /// The node a command goes to now, or nil when its slot has no master (or no map is known yet).
    private func target(of routed: Routed) -> RedisAddress? {
        if let asking = routed.asking { return asking }
        guard let map = self.map else { return nil }
        if let slot = routed.slot { return map.master(forSlot: slot) }
        guard !map.masters.isEmpty else { return nil }
        self.nextAny &+= 1
        return map.masters[self.nextAny % map.masters.count]
    }

    private func connections(to address: RedisAddress) -> any NodeConnections {
        if let node = self.nodes[address] { return node }
        let node = self.connectionsTo(address)
        self.nodes[address] = node
        if self.started { node.start() }
        return node
    }

    private func dispatch(_ commands: [Routed], deadline: NIODeadline, promises: [EventLoopPromise<RedisReply>]) {
        self.eventLoop.preconditionInEventLoop()
        guard !self.stopped else {
            for promise in promises { promise.fail(SluiceRedisError.shutdown("the Redis client is shut down")) }
            return
        }
        // One command (a decision): no grouping to do.
        if commands.count == 1 {
            guard let target = self.target(of: commands[0]) else {
                self.noMaster(commands[0], deadline: deadline, promise: promises[0])
                return
            }
            self.write([(commands[0], promises[0])], to: target, deadline: deadline)
            return
        }
        // Per node, in the order first met: what goes to it in one write.
        var order: [RedisAddress] = []
        var groups: [RedisAddress: [(Routed, EventLoopPromise<RedisReply>)]] = [:]
        for (routed, promise) in zip(commands, promises) {
            guard let target = self.target(of: routed) else {
                self.noMaster(routed, deadline: deadline, promise: promise)
                continue
            }
            if groups[target] == nil { order.append(target) }
            groups[target, default: []].append((routed, promise))
        }
        for target in order {
            if let group = groups[target] { self.write(group, to: target, deadline: deadline) }
        }
    }

    /// No master is known for `routed`'s slot: asks for the map and tries again later.
    private func noMaster(_ routed: Routed, deadline: NIODeadline, promise: EventLoopPromise<RedisReply>) {
        self.requestRefresh()
        let slot = routed.slot.map { "slot \($0)" } ?? "a command without a key"
        self.retryLater(routed, deadline: deadline, promise: promise, outcome: .failure(SluiceRedisError.unavailable("no Redis Cluster master serves \(slot)")))
    }

    /// Writes `group` to `target` in one go, each command after its prelude (and `ASKING`).
    private func write(_ group: [(Routed, EventLoopPromise<RedisReply>)], to target: RedisAddress, deadline: NIODeadline) {
        var writes: [ByteBuffer] = []
        var replies: [EventLoopPromise<RedisReply>] = []
        var answers: [(Routed, EventLoopPromise<RedisReply>, EventLoopFuture<RedisReply>)] = []
        for (routed, promise) in group {
            for command in routed.prelude {
                writes.append(command)
                replies.append(self.eventLoop.makePromise(of: RedisReply.self))
            }
            if routed.asking != nil {
                writes.append(Self.askingCommand)
                replies.append(self.eventLoop.makePromise(of: RedisReply.self))
            }
            let reply = self.eventLoop.makePromise(of: RedisReply.self)
            writes.append(routed.command)
            replies.append(reply)
            answers.append((routed, promise, reply.futureResult))
        }
        self.connections(to: target).send(writes, deadline: deadline, promises: replies)
        for (routed, promise, reply) in answers {
            reply.whenComplete { result in
                self.handle(result, of: routed, from: target, deadline: deadline, promise: promise)
            }
        }
    }

    private func handle(
        _ result: Result<RedisReply, any Error>,
        of routed: Routed,
        from node: RedisAddress,
        deadline: NIODeadline,
        promise: EventLoopPromise<RedisReply>
    ) {
        switch result {
        case .success(let reply):
            guard let message = reply.errorMessage, let redirect = ClusterRedirect(errorMessage: message, askedNode: node) else {
                promise.succeed(reply)
                return
            }
            var next = routed
            next.redirects += 1
            switch redirect {
            case .moved(let slot, let address):
                self.redirected("moved")
                self.map?.assign(slot: slot, to: address)
                self.requestRefresh()
                next.asking = nil
                guard next.redirects <= Self.maxRedirects, !self.stopped else {
                    promise.succeed(reply)
                    return
                }
                if self.nodes[address] == nil { _ = self.connections(to: address) }
                self.dispatch([next], deadline: deadline, promises: [promise])
            case .ask(_, let address):
                self.redirected("ask")
                guard next.redirects <= Self.maxRedirects else {
                    promise.succeed(reply)
                    return
                }
                next.asking = address
                self.dispatch([next], deadline: deadline, promises: [promise])
            case .retryLater:
                next.redirects = routed.redirects
                next.asking = nil
                self.retryLater(next, deadline: deadline, promise: promise, outcome: .success(reply))
            }
        case .failure(let error as SluiceRedisError) where error.code == .unavailable:
            // Not sent: the node has no connection up. It may be gone; its replica may take over.
            self.requestRefresh()
            var next = routed
            next.asking = nil
            self.retryLater(next, deadline: deadline, promise: promise, outcome: result)
        case .failure(let error):
            promise.fail(error)
        }
    }

    /// Sends `routed` again after a short wait if its deadline allows; otherwise `outcome` stands.
    private func retryLater(_ routed: Routed, deadline: NIODeadline, promise: EventLoopPromise<RedisReply>, outcome: Result<RedisReply, any Error>) {
        self.redirected("retry")
        let wait = TimeAmount.milliseconds(min(50, 10 << min(routed.retries, 3)))
        guard !self.stopped, self.eventLoop.now + wait < deadline else {
            promise.completeWith(outcome)
            return
        }
        var next = routed
        next.retries += 1
        let retry = next
        self.eventLoop.scheduleTask(in: wait) { [self] in
            self.dispatch([retry], deadline: deadline, promises: [promise])
        }
    }
}
