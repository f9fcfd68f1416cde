import NIOCore

/// The connection slots of one event loop to one node, used only on that loop.
final class EventLoopConnections: @unchecked Sendable {
    // @unchecked: confined to `eventLoop`.
    let eventLoop: any EventLoop
    private let slots: [ConnectionSlot]
    private var next = 0

    /// - Parameter node: the node every slot dials (a cluster master); nil: the topology says (standalone, Sentinel).
    init(eventLoop: any EventLoop, shared: RedisClient.Shared, count: Int, firstIndex: Int, node: RedisAddress? = nil) {
        self.eventLoop = eventLoop
        self.slots = (0..<count).map { ConnectionSlot(eventLoop: eventLoop, shared: shared, index: firstIndex + $0, node: node) }
    }

    /// Commands in flight or waiting, on every slot.
    var load: Int { self.slots.reduce(0) { $0 + $1.load } }

    func start() {
        for slot in self.slots { slot.start() }
    }

    func shutdown() -> EventLoopFuture<Void> {
        EventLoopFuture.andAllComplete(self.slots.map { $0.shutdown() }, on: self.eventLoop)
    }

    /// Sends commands, in order, on one connection (so they pipeline in that order).
    func send(_ commands: [ByteBuffer], deadline: NIODeadline, promises: [EventLoopPromise<RedisReply>]) {
        self.eventLoop.preconditionInEventLoop()
        let slot = self.pick()
        for (command, promise) in zip(commands, promises) {
            slot.send(command, deadline: deadline, promise: promise)
        }
    }

    /// A ready slot, round robin; else one that is connecting; else the first (which fails fast).
    private func pick() -> ConnectionSlot {
        let count = self.slots.count
        if count == 1 { return self.slots[0] }
        for offset in 0..<count {
            let index = (self.next + offset) % count
            if self.slots[index].isReady {
                self.next = (index + 1) % count
                return self.slots[index]
            }
        }
        return self.slots.first(where: \.isConnecting) ?? self.slots[0]
    }
}
