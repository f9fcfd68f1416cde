import NIOCore

/// How one event loop's commands reach Redis: that loop's connections to the one node
/// (standalone, or the master Sentinel names), or a router over a cluster's masters
/// (docs/ARCHITECTURE.md, "Layers").
enum LoopRoute {
    case node(EventLoopConnections)
    case cluster(ClusterRouter)

    var eventLoop: any EventLoop {
        switch self {
        case .node(let connections): return connections.eventLoop
        case .cluster(let router): return router.eventLoop
        }
    }

    /// Commands in flight or waiting. On the loop.
    var load: Int {
        switch self {
        case .node(let connections): return connections.load
        case .cluster(let router): return router.load
        }
    }

    /// On the loop.
    func start() {
        switch self {
        case .node(let connections): connections.start()
        case .cluster(let router): router.start()
        }
    }

    /// On the loop.
    func shutdown() -> EventLoopFuture<Void> {
        switch self {
        case .node(let connections): return connections.shutdown()
        case .cluster(let router): return router.shutdown()
        }
    }

    /// Sends `command` after `prelude` (replies ignored) on one connection. On the loop.
    /// - Parameter slot: the hash slot of the command's key (cluster only; nil: no key).
    func send(_ command: ByteBuffer, slot: Int?, prelude: [ByteBuffer] = [], deadline: NIODeadline, promise: EventLoopPromise<RedisReply>) {
        switch self {
        case .node(let connections):
            guard !prelude.isEmpty else {
                connections.send([command], deadline: deadline, promises: [promise])
                return
            }
            let ignored = prelude.map { _ in connections.eventLoop.makePromise(of: RedisReply.self) }
            connections.send(prelude + [command], deadline: deadline, promises: ignored + [promise])
        case .cluster(let router):
            router.send(command, slot: slot, prelude: prelude, deadline: deadline, promise: promise)
        }
    }

    /// Sends commands in one write per node. On the loop.
    func sendBatch(_ commands: [ByteBuffer], slots: [Int?], deadline: NIODeadline, promises: [EventLoopPromise<RedisReply>]) {
        switch self {
        case .node(let connections): connections.send(commands, deadline: deadline, promises: promises)
        case .cluster(let router): router.sendBatch(commands, slots: slots, deadline: deadline, promises: promises)
        }
    }
}
