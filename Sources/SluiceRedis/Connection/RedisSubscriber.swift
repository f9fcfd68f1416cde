import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// A pub/sub subscription to one Redis channel on its own connection (a subscribed
/// connection can run no other command), kept up across Redis restarts.
///
/// The owner hears three things: the subscription is (again) in place — messages may
/// have been missed while it was down, so anything cached should be re-read —, a message,
/// and the subscription is lost.
public final class RedisSubscriber: Service, Sendable {
    /// What the subscription reports.
    public enum Event: Sendable, Hashable {
        /// Subscribed (at start or after a reconnect).
        case subscribed
        /// A message published on the channel.
        case message([UInt8])
        /// The connection is gone; a reconnect follows.
        case lost
    }

    let configuration: RedisClientConfiguration
    let channelName: String
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    let onEvent: @Sendable (Event) async -> Void
    let tls: RedisTLSContext?
    let topology: RedisTopology
    /// The live connection and the node it dialed, closed when Sentinel names another master.
    private let current = NIOLockedValueBox<(channel: any Channel, address: RedisAddress)?>(nil)

    /// Creates a subscriber; it connects when run.
    /// - Parameters:
    ///   - configuration: where Redis is (host, port, credentials, timeouts, backoff).
    ///   - channel: the pub/sub channel.
    ///   - eventLoopGroup: where its connection lives.
    ///   - logger: for connection events.
    ///   - topology: the client's topology, to follow the master it follows; nil: one of its own
    ///     built from `configuration` (it then hears no master switch, only lost connections).
    ///   - onEvent: called for each event, one at a time, in order.
    public init(
        configuration: RedisClientConfiguration,
        channel: String,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        topology: RedisTopology? = nil,
        onEvent: @escaping @Sendable (Event) async -> Void
    ) {
        self.configuration = configuration
        self.channelName = channel
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onEvent = onEvent
        let tls = configuration.tls.map { RedisTLSContext($0, logger: logger) }
        self.tls = tls
        let topology = topology ?? RedisTopology(configuration: configuration, tls: tls, logger: logger)
        self.topology = topology
        let current = self.current
        topology.addSwitchListener { address in
            guard let live = current.withLockedValue({ $0 }), live.address != address else { return }
            live.channel.close(promise: nil)
        }
    }

    /// Subscribes, and subscribes again after every loss (with capped backoff), until
    /// graceful shutdown or cancellation.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var failures = 0
            while !Task.isCancelled {
                let subscribed = await self.session()
                if Task.isCancelled { break }
                await self.onEvent(.lost)
                failures = subscribed ? 1 : failures + 1
                let delay = self.configuration.reconnectDelay(afterFailures: failures)
                try? await Task.sleep(for: .nanoseconds(delay.nanoseconds))
            }
        }
    }

    /// One connection's life: ask the topology where, connect, AUTH, (ROLE,) SUBSCRIBE, then
    /// messages until it closes.
    /// - Returns: whether the subscription was ever in place.
    private func session() async -> Bool {
        let (stream, continuation) = AsyncStream.makeStream(of: RedisReply?.self)
        let channel: any Channel
        let address: RedisAddress
        do {
            address = try await self.topology.resolve(on: self.eventLoopGroup.next()).get()
            channel = try await RedisPushHandler.connect(
                host: address.host, port: address.port, group: self.eventLoopGroup,
                connectTimeout: self.configuration.connectTimeout, tls: self.tls, continuation: continuation
            ).get()
        } catch {
            self.logger.debug("pub/sub connect failed", metadata: ["error": "\(error)"])
            return false
        }
        self.current.withLockedValue { $0 = (channel, address) }
        let role: [RedisArgument]? = self.topology.confirmsRole ? ["ROLE"] : nil
        let commands = [self.configuration.authCommand, role, ["SUBSCRIBE", RedisArgument(self.channelName)]].compactMap { $0 }
        do {
            for command in commands {
                channel.write(try RESPEncoder.encode(command), promise: nil)
            }
            channel.flush()
        } catch {
            channel.close(promise: nil)
            return false
        }
        // A subscription that does not answer within the connect deadline is given up.
        let deadline = channel.eventLoop.scheduleTask(in: self.configuration.connectTimeout) {
            continuation.yield(nil)
        }
        var subscribed = false
        await withTaskCancellationHandler {
            for await reply in stream {
                guard let reply else {
                    if !subscribed {
                        self.logger.warning("pub/sub subscription did not answer in time")
                        break
                    }
                    continue
                }
                if let error = reply.errorMessage {
                    self.logger.warning("pub/sub subscription refused", metadata: ["error": "\(error)"])
                    break
                }
                if let role = RedisTopology.role(of: reply), role != "master" {
                    self.logger.warning("pub/sub connection reached a \(role), not the master; asking again", metadata: ["address": "\(address)"])
                    break
                }
                guard let parts = reply.array, let kind = parts.first?.string else { continue }
                switch kind {
                case "subscribe":
                    subscribed = true
                    deadline.cancel()
                    await self.onEvent(.subscribed)
                case "message":
                    if parts.count == 3, case .bulk(let payload) = parts[2] {
                        await self.onEvent(.message(payload))
                    }
                default:
                    continue
                }
            }
        } onCancel: {
            channel.close(promise: nil)
        }
        deadline.cancel()
        channel.close(promise: nil)
        return subscribed
    }
}

/// Hands every reply a subscribed connection reads to an async stream; the stream ends
/// when the connection closes.
final class RedisPushHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    // Used only on the channel's event loop.
    nonisolated(unsafe) private let reader: RESPReader
    private let continuation: AsyncStream<RedisReply?>.Continuation

    init(continuation: AsyncStream<RedisReply?>.Continuation) throws {
        self.reader = try RESPReader()
        self.continuation = continuation
    }

    /// A connection (TLS when `tls` is set) whose replies and pushes go to `continuation`:
    /// the registry's subscription and the Sentinel switch watch.
    static func connect(
        host: String, port: Int, group: any EventLoopGroup, connectTimeout: TimeAmount, tls: RedisTLSContext?,
        continuation: AsyncStream<RedisReply?>.Continuation
    ) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                do {
                    try tls?.addHandlers(to: channel, host: host, port: port)
                    try channel.pipeline.syncOperations.addHandler(try RedisPushHandler(continuation: continuation))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: host, port: port)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try self.reader.feed(self.unwrapInboundIn(data))
            while let reply = try self.reader.next() {
                self.continuation.yield(reply)
            }
        } catch {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.continuation.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
