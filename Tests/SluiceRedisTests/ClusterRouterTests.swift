import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SluiceRedis

/// The cluster router over embedded channels: no servers; the test plays every node.
@Suite("Cluster router (embedded channels)")
struct ClusterRouterTests {
    /// One node: a real channel handler on an embedded channel, or down (no connection up).
    final class Node: NodeConnections {
        let address: RedisAddress
        let channel: EmbeddedChannel
        let handler: RedisChannelHandler
        var down = false
        var writes = 0

        init(_ address: RedisAddress, loop: EmbeddedEventLoop) throws {
            self.address = address
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            self.handler = try RedisChannelHandler(maxPending: 100, maxConsecutiveTimeouts: 3, logger: logger)
            self.channel = EmbeddedChannel(handler: self.handler, loop: loop)
            try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: address.port)).wait()
        }

        var load: Int { self.handler.pendingCount }
        func start() {}
        func shutdown() -> EventLoopFuture<Void> { self.channel.eventLoop.makeSucceededVoidFuture() }

        func send(_ commands: [ByteBuffer], deadline: NIODeadline, promises: [EventLoopPromise<RedisReply>]) {
            guard !self.down else {
                for promise in promises { promise.fail(SluiceRedisError.unavailable("no connection to Redis")) }
                return
            }
            self.writes += 1
            for (command, promise) in zip(commands, promises) {
                self.handler.send(command, promise: promise, deadline: deadline)
            }
        }

        /// The commands written so far, each as its arguments joined by spaces.
        func written() throws -> [String] {
            var out: [String] = []
            while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) {
                let text = String(decoding: buffer.readableBytesView, as: UTF8.self)
                // Every command is an array of bulk strings: keep the bulk strings' text.
                let lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
                var command: [Substring] = []
                for line in lines where !line.hasPrefix("*") && !line.hasPrefix("$") && !line.isEmpty {
                    command.append(line)
                }
                out.append(command.joined(separator: " "))
            }
            return out
        }

        func reply(_ text: String) throws {
            try self.channel.writeInbound(ByteBuffer(string: text))
        }
    }

    final class Harness {
        let loop = EmbeddedEventLoop()
        var nodes: [RedisAddress: Node] = [:]
        var refreshes = 0
        var router: ClusterRouter!

        init() {
            self.router = ClusterRouter(
                eventLoop: self.loop,
                connectionsTo: { [unowned self] address in self.node(address) },
                requestRefresh: { [unowned self] in self.refreshes += 1 },
                retireAfter: .milliseconds(200)
            )
            self.router.start()
        }

        func node(_ address: RedisAddress) -> Node {
            if let node = self.nodes[address] { return node }
            let node = try! Node(address, loop: self.loop)
            self.nodes[address] = node
            return node
        }

        func send(_ key: String, _ command: [RedisArgument], timeout: TimeAmount = .milliseconds(100)) throws -> Box {
            let promise = self.loop.makePromise(of: RedisReply.self)
            self.router.send(
                try RESPEncoder.encode(command), slot: ClusterSlotMap.slot(of: Array(key.utf8)),
                deadline: self.loop.now + timeout, promise: promise
            )
            let box = Box()
            promise.futureResult.whenComplete { box.result = $0 }
            self.loop.run()
            return box
        }
    }

    final class Box: @unchecked Sendable {
        var result: Result<RedisReply, any Error>?
        var reply: RedisReply? { try? self.result?.get() }
        var error: SluiceRedisError? {
            if case .failure(let error as SluiceRedisError) = self.result { return error }
            return nil
        }
    }

    static let a = RedisAddress(host: "127.0.0.1", port: 7001)
    static let b = RedisAddress(host: "127.0.0.1", port: 7002)
    static let c = RedisAddress(host: "127.0.0.1", port: 7003)
    /// Slot 15495 ("a") belongs to b, slot 3300 ("b") to a.
    static let halves = ClusterSlotMap(ranges: [(0...8191, a), (8192...16383, b)])

    @Test("each command goes to the master of its key's slot; the map connects to every master")
    func routesBySlot() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        #expect(Set(h.nodes.keys) == [Self.a, Self.b])
        let first = try h.send("a", ["GET", "a"])
        let second = try h.send("b", ["GET", "b"])
        #expect(try h.nodes[Self.b]!.written() == ["GET a"])
        #expect(try h.nodes[Self.a]!.written() == ["GET b"])
        try h.nodes[Self.b]!.reply("$1\r\n1\r\n")
        try h.nodes[Self.a]!.reply("$1\r\n2\r\n")
        #expect(first.reply == .bulk(Array("1".utf8)))
        #expect(second.reply == .bulk(Array("2".utf8)))
        #expect(h.refreshes == 0)
    }

    @Test("MOVED: the slot's new master gets the command, the loop's map takes it, a refresh is asked for")
    func moved() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        let box = try h.send("b", ["GET", "b"])
        #expect(try h.nodes[Self.a]!.written() == ["GET b"])
        try h.nodes[Self.a]!.reply("-MOVED 3300 127.0.0.1:7003\r\n")
        h.loop.run()
        #expect(try h.node(Self.c).written() == ["GET b"])
        #expect(box.result == nil)
        try h.nodes[Self.c]!.reply("$2\r\nok\r\n")
        #expect(box.reply == .bulk(Array("ok".utf8)))
        #expect(h.refreshes == 1)
        #expect(h.router.currentMap?.master(forSlot: 3300) == Self.c)
        // The next command on that slot goes straight to the new master.
        _ = try h.send("b", ["GET", "b"])
        #expect(try h.nodes[Self.c]!.written() == ["GET b"])
        #expect(try h.nodes[Self.a]!.written() == [])
    }

    @Test("ASK: ASKING and the command go to the importing node in one write; the map is unchanged")
    func ask() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        let box = try h.send("b", ["GET", "b"])
        _ = try h.nodes[Self.a]!.written()
        try h.nodes[Self.a]!.reply("-ASK 3300 127.0.0.1:7003\r\n")
        h.loop.run()
        let node = h.node(Self.c)
        #expect(node.writes == 1)
        #expect(try node.written() == ["ASKING", "GET b"])
        try node.reply("+OK\r\n$1\r\nx\r\n")
        #expect(box.reply == .bulk(Array("x".utf8)))
        #expect(h.router.currentMap?.master(forSlot: 3300) == Self.a)
        #expect(h.refreshes == 0)
    }

    @Test("TRYAGAIN and CLUSTERDOWN: sent again after a short wait, to the master the map names then")
    func tryAgain() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        let box = try h.send("b", ["GET", "b"])
        _ = try h.nodes[Self.a]!.written()
        try h.nodes[Self.a]!.reply("-TRYAGAIN Multiple keys request during rehashing of slot\r\n")
        h.loop.run()
        #expect(try h.nodes[Self.a]!.written() == [])
        h.loop.advanceTime(by: .milliseconds(10))
        #expect(try h.nodes[Self.a]!.written() == ["GET b"])
        try h.nodes[Self.a]!.reply("-CLUSTERDOWN The cluster is down\r\n")
        h.loop.run()
        h.router.apply(ClusterSlotMap(ranges: [(0...16383, Self.c)]))
        h.loop.advanceTime(by: .milliseconds(20))
        #expect(try h.node(Self.c).written() == ["GET b"])
        try h.nodes[Self.c]!.reply(":1\r\n")
        #expect(box.reply == .integer(1))
    }

    @Test("retries end at the deadline with the last answer")
    func retriesBounded() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        let box = try h.send("b", ["GET", "b"], timeout: .milliseconds(60))
        for _ in 0..<10 where box.result == nil {
            _ = try h.nodes[Self.a]!.written()
            try h.nodes[Self.a]!.reply("-TRYAGAIN again\r\n")
            h.loop.advanceTime(by: .milliseconds(50))
        }
        #expect(box.reply == .error("TRYAGAIN again"))
    }

    @Test("a node with no connection: not sent, a refresh is asked for, and the new master gets it")
    func nodeDown() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        h.nodes[Self.a]!.down = true
        let box = try h.send("b", ["GET", "b"])
        #expect(box.result == nil)
        #expect(h.refreshes == 1)
        // The replica was promoted: the refreshed map names it.
        h.router.apply(ClusterSlotMap(ranges: [(0...8191, Self.c), (8192...16383, Self.b)]))
        h.loop.advanceTime(by: .milliseconds(10))
        #expect(try h.node(Self.c).written() == ["GET b"])
        try h.nodes[Self.c]!.reply(":7\r\n")
        #expect(box.reply == .integer(7))
        // The old master's connections close once nothing can be on them.
        h.loop.advanceTime(by: .milliseconds(250))
        #expect(!h.router.connectedNodes.contains(Self.a))
    }

    @Test("a node down past the deadline: the command fails as unavailable, never as a hang")
    func nodeDownPastDeadline() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        h.nodes[Self.a]!.down = true
        let box = try h.send("b", ["GET", "b"], timeout: .milliseconds(100))
        h.loop.advanceTime(by: .milliseconds(200))
        #expect(box.error?.code == .unavailable)
    }

    @Test("a connection lost with the command on it: not sent again, since it may have run")
    func lostInFlight() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        let box = try h.send("b", ["INCR", "b"])
        _ = try h.nodes[Self.a]!.written()
        h.nodes[Self.a]!.channel.pipeline.fireChannelInactive()
        h.loop.run()
        #expect(box.error?.code == .connectionClosed)
        #expect(try h.nodes[Self.a]!.written() == [])
    }

    @Test("redirects are bounded: a MOVED loop ends with the MOVED reply")
    func redirectLoop() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        let box = try h.send("b", ["GET", "b"])
        var hops = 0
        while box.result == nil && hops < 20 {
            for node in h.nodes.values where try !node.written().isEmpty {
                let other = node.address == Self.a ? "7003" : "7001"
                try node.reply("-MOVED 3300 127.0.0.1:\(other)\r\n")
                h.loop.run()
                hops += 1
                break
            }
        }
        #expect(hops == ClusterRouter.maxRedirects + 1)
        #expect(box.reply?.errorMessage?.hasPrefix("MOVED") == true)
    }

    @Test("a batch is one write per master, each reply to its own command")
    func batch() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        let keys = ["a", "b", "c", "a"]  // slots 15495 (b), 3300 (a), 7365 (a), 15495 (b)
        let promises = keys.map { _ in h.loop.makePromise(of: RedisReply.self) }
        let boxes = promises.map { promise in
            let box = Box()
            promise.futureResult.whenComplete { box.result = $0 }
            return box
        }
        h.router.sendBatch(
            try keys.map { try RESPEncoder.encode(["GET", RedisArgument($0)]) },
            slots: keys.map { ClusterSlotMap.slot(of: Array($0.utf8)) },
            deadline: h.loop.now + .milliseconds(100), promises: promises
        )
        h.loop.run()
        #expect(h.nodes[Self.a]!.writes == 1)
        #expect(h.nodes[Self.b]!.writes == 1)
        #expect(try h.nodes[Self.a]!.written() == ["GET b", "GET c"])
        #expect(try h.nodes[Self.b]!.written() == ["GET a", "GET a"])
        try h.nodes[Self.a]!.reply(":2\r\n:3\r\n")
        try h.nodes[Self.b]!.reply(":1\r\n:4\r\n")
        #expect(boxes.map(\.reply) == [.integer(1), .integer(2), .integer(3), .integer(4)])
    }

    @Test("before the first map: commands wait for it within their deadline")
    func noMapYet() throws {
        let h = Harness()
        let box = try h.send("b", ["GET", "b"])
        #expect(h.refreshes == 1)
        h.router.apply(Self.halves)
        h.loop.advanceTime(by: .milliseconds(10))
        #expect(try h.nodes[Self.a]!.written() == ["GET b"])
        try h.nodes[Self.a]!.reply(":5\r\n")
        #expect(box.reply == .integer(5))
    }

    @Test("NOSCRIPT's SCRIPT LOAD goes first, then ASKING right before the command")
    func preludeWithAsk() throws {
        let h = Harness()
        h.router.apply(Self.halves)
        let promise = h.loop.makePromise(of: RedisReply.self)
        let box = Box()
        promise.futureResult.whenComplete { box.result = $0 }
        h.router.send(
            try RESPEncoder.encode(["EVALSHA", "abc", "1", "b"]), slot: 3300, prelude: [try RESPEncoder.encode(["SCRIPT", "LOAD", "return 1"])],
            deadline: h.loop.now + .milliseconds(100), promise: promise
        )
        h.loop.run()
        #expect(try h.nodes[Self.a]!.written() == ["SCRIPT LOAD return 1", "EVALSHA abc 1 b"])
        try h.nodes[Self.a]!.reply("$3\r\nabc\r\n-ASK 3300 127.0.0.1:7003\r\n")
        h.loop.run()
        #expect(try h.node(Self.c).written() == ["SCRIPT LOAD return 1", "ASKING", "EVALSHA abc 1 b"])
        try h.nodes[Self.c]!.reply("$3\r\nabc\r\n+OK\r\n:1\r\n")
        #expect(box.reply == .integer(1))
    }
}
