import Logging
import NIOCore
import NIOPosix

/// One TCP connection to Redis: a channel with a ``RedisChannelHandler``.
///
/// Sends must happen on the connection's event loop.
final class RedisConnection: @unchecked Sendable {
    // @unchecked: `handler` is only touched on `channel.eventLoop`, which every method asserts.
    let channel: any Channel
    private let handler: RedisChannelHandler

    private init(channel: any Channel, handler: RedisChannelHandler) {
        self.channel = channel
        self.handler = handler
    }

    /// The event loop the connection lives on.
    var eventLoop: any EventLoop { self.channel.eventLoop }

    /// Completes when the connection is closed, for whatever reason.
    var closeFuture: EventLoopFuture<Void> { self.channel.closeFuture }

    /// Commands written and not yet answered.
    var pendingCount: Int {
        self.eventLoop.preconditionInEventLoop()
        return self.handler.pendingCount
    }

    /// Opens a TCP connection and installs the handler, behind TLS when `tls` is set (the TLS
    /// handshake runs as the first command is written). No Redis handshake: see ``RedisClient``.
    static func connect(
        host: String,
        port: Int,
        tls: RedisTLSContext?,
        on eventLoop: any EventLoop,
        connectTimeout: TimeAmount,
        maxPending: Int,
        maxConsecutiveTimeouts: Int,
        logger: Logger
    ) -> EventLoopFuture<RedisConnection> {
        ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                do {
                    try tls?.addHandlers(to: channel, host: host, port: port)
                    let handler = try RedisChannelHandler(
                        maxPending: maxPending,
                        maxConsecutiveTimeouts: maxConsecutiveTimeouts,
                        logger: logger
                    )
                    try channel.pipeline.syncOperations.addHandler(handler)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel in
                let handler = try channel.pipeline.syncOperations.handler(type: RedisChannelHandler.self)
                return RedisConnection(channel: channel, handler: handler)
            }
    }

    /// Writes an encoded command; the future holds its reply or fails at `deadline`.
    func send(_ command: ByteBuffer, deadline: NIODeadline, promise: EventLoopPromise<RedisReply>) {
        self.eventLoop.preconditionInEventLoop()
        self.handler.send(command, promise: promise, deadline: deadline)
    }

    /// Writes commands in order (a handshake, a one-off question); the future holds every reply,
    /// error replies included, or fails with the first command that got none by `deadline`.
    func send(_ commands: [[RedisArgument]], deadline: NIODeadline) -> EventLoopFuture<[RedisReply]> {
        var futures: [EventLoopFuture<RedisReply>] = []
        futures.reserveCapacity(commands.count)
        for command in commands {
            let promise = self.eventLoop.makePromise(of: RedisReply.self)
            do {
                self.send(try RESPEncoder.encode(command), deadline: deadline, promise: promise)
            } catch {
                promise.fail(error)
            }
            futures.append(promise.futureResult)
        }
        return EventLoopFuture.whenAllSucceed(futures, on: self.eventLoop)
    }

    /// Closes the connection; waiting callers fail.
    func close() {
        self.channel.close(promise: nil)
    }
}
