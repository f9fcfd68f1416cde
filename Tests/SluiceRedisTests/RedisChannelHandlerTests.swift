import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import SluiceRedis

@Suite("Channel handler (embedded channel)")
struct RedisChannelHandlerTests {
    final class Harness {
        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let handler: RedisChannelHandler

        init(maxPending: Int = 100, maxConsecutiveTimeouts: Int = 3) throws {
            // The protocol-error test feeds garbage on purpose: keep its error log out of the run's output.
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            self.handler = try RedisChannelHandler(
                maxPending: maxPending, maxConsecutiveTimeouts: maxConsecutiveTimeouts, logger: logger
            )
            self.channel = EmbeddedChannel(handler: self.handler, loop: self.loop)
            try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379)).wait()
            precondition(self.channel.isActive)
        }

        func send(_ arguments: [RedisArgument], timeout: TimeAmount = .milliseconds(100)) throws -> EventLoopFuture<RedisReply> {
            let promise = self.loop.makePromise(of: RedisReply.self)
            self.handler.send(try RESPEncoder.encode(arguments), promise: promise, deadline: self.loop.now + timeout)
            return promise.futureResult
        }

        func written() throws -> [String] {
            var out: [String] = []
            while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) {
                out.append(String(decoding: buffer.readableBytesView, as: UTF8.self))
            }
            return out
        }

        func reply(_ text: String) throws {
            try self.channel.writeInbound(ByteBuffer(string: text))
        }
    }

    final class Box<T>: @unchecked Sendable {
        var value: T?
    }

    func capture(_ future: EventLoopFuture<RedisReply>) -> Box<Result<RedisReply, any Error>> {
        let box = Box<Result<RedisReply, any Error>>()
        future.whenComplete { box.value = $0 }
        return box
    }

    @Test("commands sent in one tick go out in one flush, after the tick")
    func pipelining() throws {
        let h = try Harness()
        let a = self.capture(try h.send(["GET", "a"]))
        let b = self.capture(try h.send(["GET", "b"]))
        let c = self.capture(try h.send(["GET", "c"]))
        // Written but not flushed until the loop runs its queued tasks.
        #expect(try h.written().isEmpty)
        h.loop.run()
        #expect(try h.written().joined() == "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$3\r\nGET\r\n$1\r\nc\r\n")
        // Replies in one read, split oddly: each caller gets its own, in order.
        try h.reply("$1\r\n1\r\n$1\r")
        try h.reply("\n2\r\n:3\r\n")
        #expect(try a.value?.get() == .bulk([49]))
        #expect(try b.value?.get() == .bulk([50]))
        #expect(try c.value?.get() == .integer(3))
    }

    @Test("a late reply fails only the late caller; the next caller gets the right reply")
    func deadline() throws {
        let h = try Harness()
        let slow = self.capture(try h.send(["GET", "slow"], timeout: .milliseconds(100)))
        h.loop.run()
        h.loop.advanceTime(by: .milliseconds(60))
        let next = self.capture(try h.send(["GET", "next"], timeout: .milliseconds(100)))
        h.loop.run()
        h.loop.advanceTime(by: .milliseconds(50))
        guard case .failure(let error as SluiceRedisError)? = slow.value else { Issue.record("slow must time out"); return }
        #expect(error.code == .timeout)
        #expect(next.value == nil)
        try h.reply("$4\r\nslow\r\n$4\r\nnext\r\n")
        #expect(try next.value?.get() == .bulk(Array("next".utf8)))
        #expect(h.channel.isActive)
    }

    @Test("consecutive timeouts close the connection; everything pending fails")
    func recycling() throws {
        let h = try Harness(maxConsecutiveTimeouts: 2)
        let a = self.capture(try h.send(["GET", "a"], timeout: .milliseconds(10)))
        let b = self.capture(try h.send(["GET", "b"], timeout: .milliseconds(30)))
        let c = self.capture(try h.send(["GET", "c"], timeout: .seconds(10)))
        h.loop.run()
        h.loop.advanceTime(by: .milliseconds(20))
        #expect(h.channel.isActive, "one timeout does not recycle")
        h.loop.advanceTime(by: .milliseconds(20))
        for box in [a, b] {
            guard case .failure(let error as SluiceRedisError)? = box.value else { Issue.record("timeout"); return }
            #expect(error.code == .timeout)
        }
        guard case .failure(let error as SluiceRedisError)? = c.value else { Issue.record("c fails with the close"); return }
        #expect(error.code == .connectionClosed)
        #expect(!h.channel.isActive)
    }

    @Test("a malformed reply closes the connection and fails every caller")
    func protocolError() throws {
        let h = try Harness()
        let a = self.capture(try h.send(["GET", "a"]))
        let b = self.capture(try h.send(["GET", "b"]))
        h.loop.run()
        try? h.reply("!nonsense\r\n")
        for box in [a, b] {
            guard case .failure(let error as SluiceRedisError)? = box.value else { Issue.record("must fail"); return }
            #expect(error.code == .protocolError)
        }
        #expect(!h.channel.isActive)
    }

    @Test("the connection closing fails every caller")
    func closed() throws {
        let h = try Harness()
        let a = self.capture(try h.send(["GET", "a"]))
        h.loop.run()
        _ = try h.channel.finish()
        guard case .failure(let error as SluiceRedisError)? = a.value else { Issue.record("must fail"); return }
        #expect(error.code == .connectionClosed)
    }

    @Test("pending commands are bounded")
    func bounded() throws {
        let h = try Harness(maxPending: 1)
        _ = try h.send(["GET", "a"])
        let b = self.capture(try h.send(["GET", "b"]))
        guard case .failure(let error as SluiceRedisError)? = b.value else { Issue.record("must fail"); return }
        #expect(error.code == .tooManyPending)
        h.loop.run()
        #expect(try h.written().count == 1)
    }
}
