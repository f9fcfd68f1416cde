import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceServer
import SluiceTestSupport
import Testing

@testable import SluiceRedis

/// A stand-in sentinel: each connection is one question (`[AUTH] + SENTINEL
/// get-master-addr-by-name m`), answered with the next port of `answers` (the last one
/// repeated); with `password`, only after `AUTH` with it, as a sentinel with `requirepass` does.
private final class FakeSentinelHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: `received` is used only on the child channel's loop.
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let answers: [Int]
    let password: String?
    let questions: NIOLockedValueBox<Int>
    private var received = ""

    init(answers: [Int], password: String? = nil, questions: NIOLockedValueBox<Int>) {
        self.answers = answers
        self.password = password
        self.questions = questions
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.received += String(buffer: self.unwrapInboundIn(data))
        guard self.received.hasSuffix("get-master-addr-by-name\r\n$1\r\nm\r\n") else { return }
        let asked = self.questions.withLockedValue { count in
            count += 1
            return count
        }
        var reply = ""
        if let password = self.password {
            guard self.received.contains("AUTH\r\n$\(password.utf8.count)\r\n\(password)\r\n") else {
                reply = self.received.contains("AUTH") ? "-WRONGPASS invalid password\r\n" : ""
                reply += "-NOAUTH Authentication required.\r\n"
                context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: reply)), promise: nil)
                return
            }
            reply = "+OK\r\n"
        }
        let port = String(self.answers[min(asked, self.answers.count) - 1])
        reply += "*2\r\n$9\r\n127.0.0.1\r\n$\(port.utf8.count)\r\n\(port)\r\n"
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: reply)), promise: nil)
    }
}

/// The client's Sentinel path against real data nodes and a stand-in sentinel, whose answers the
/// test chooses (a real one never names a replica on purpose).
@Suite("Sentinel resolution in the client (real redis-server, stand-in sentinel)")
struct SentinelResolutionTests {
    @Test("a node whose ROLE is not master fails the connect; the next attempt asks again and reaches the master")
    func replicaRefused() async throws {
        let master = try await RedisServer.start()
        let replica = try await RedisServer.start(arguments: ["--replicaof", "127.0.0.1", String(master.port)])
        try await RedisClientTests.withGroup(threads: 1) { group in
            let questions = NIOLockedValueBox(0)
            let sentinel = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            FakeSentinelHandler(answers: [replica.port, master.port], questions: questions)
                        )
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            let sentinelPort = try #require(sentinel.localAddress?.port)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let client = RedisClient(
                configuration: .init(
                    connectTimeout: .seconds(2), minReconnectDelay: .milliseconds(20), maxReconnectDelay: .milliseconds(100),
                    sentinel: RedisSentinelConfiguration(
                        masterName: "m",
                        nodes: [RedisAddress(host: "127.0.0.1", port: try FreePort.find()), RedisAddress(host: "127.0.0.1", port: sentinelPort)]
                    )
                ),
                eventLoopGroup: group,
                scripts: [.decide],
                logger: logger
            )
            client.start()
            let connected = try await poll(.seconds(10)) { client.isConnected }
            #expect(connected != nil, "not connected: \(client.lastConnectError ?? "")")
            #expect(client.lastConnectError?.contains("127.0.0.1:\(replica.port) is not the master") == true, "\(client.lastConnectError ?? "")")
            #expect(questions.withLockedValue { $0 } == 2)
            _ = try await client.command(["SET", "sentinel-resolution", "on-master"])
            #expect(try await master.cliAsync("GET", "sentinel-resolution") == "on-master")

            // A switch to another address closes the connection; the reconnect asks the sentinel again.
            client.topology.masterSwitched(to: RedisAddress(host: "127.0.0.1", port: replica.port))
            let askedAgain = try await poll(.seconds(10)) { questions.withLockedValue { $0 } >= 3 && client.isConnected }
            #expect(askedAgain != nil)
            #expect(try await client.command(["GET", "sentinel-resolution"]) == .bulk(Array("on-master".utf8)))
            await client.shutdown()
            try await sentinel.close()
        }
    }

    @Test("credentials: AUTH with the sentinels' own password on the sentinels, the data password on the master")
    func credentials() async throws {
        let master = try await RedisServer.start(arguments: ["--requirepass", "data-pw"])
        try await RedisClientTests.withGroup(threads: 1) { group in
            let questions = NIOLockedValueBox(0)
            let sentinel = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            FakeSentinelHandler(answers: [master.port], password: "sentinel-pw", questions: questions)
                        )
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            let sentinelPort = try #require(sentinel.localAddress?.port)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            func client(sentinelPassword: String) -> RedisClient {
                RedisClient(
                    configuration: .init(
                        password: "data-pw", connectTimeout: .seconds(2),
                        minReconnectDelay: .milliseconds(20), maxReconnectDelay: .milliseconds(100),
                        sentinel: RedisSentinelConfiguration(
                            masterName: "m", nodes: [RedisAddress(host: "127.0.0.1", port: sentinelPort)], password: sentinelPassword
                        )
                    ),
                    eventLoopGroup: group,
                    logger: logger
                )
            }
            let good = client(sentinelPassword: "sentinel-pw")
            good.start()
            let connected = try await poll(.seconds(10)) { good.isConnected }
            #expect(connected != nil, "not connected: \(good.lastConnectError ?? "")")
            #expect(try await good.command(["PING"]) == .status("PONG"))
            await good.shutdown()

            let wrong = client(sentinelPassword: "not-it")
            wrong.start()
            let refused = try await poll(.seconds(10)) { wrong.lastConnectError?.contains("AUTH on the sentinel failed") == true }
            #expect(refused != nil, "\(wrong.lastConnectError ?? "no error")")
            #expect(!wrong.isConnected)
            await wrong.shutdown()
            try await sentinel.close()
        }
    }
}
