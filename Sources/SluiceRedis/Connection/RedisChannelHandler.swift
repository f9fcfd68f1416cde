import Logging
import NIOCore

/// The channel handler of one Redis connection: writes encoded commands, feeds
/// hiredis's reader with what the socket reads, and completes callers in FIFO order.
///
/// Commands written during one event-loop tick share one flush (automatic pipelining).
/// All methods run on the channel's event loop.
final class RedisChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var stateMachine: RedisConnectionStateMachine<EventLoopPromise<RedisReply>>
    private let reader: RESPReader
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var flushScheduled = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    /// Creates a handler.
    /// - Parameters:
    ///   - maxPending: at most this many commands wait for replies at once.
    ///   - maxConsecutiveTimeouts: timeouts in a row that make the connection close.
    ///   - logger: where connection-level events go.
    /// - Throws: when hiredis cannot create a reader.
    init(maxPending: Int, maxConsecutiveTimeouts: Int, logger: Logger) throws {
        self.stateMachine = .init(maxPending: maxPending, maxConsecutiveTimeouts: maxConsecutiveTimeouts)
        self.reader = try RESPReader()
        self.logger = logger
    }

    /// Commands written and not yet answered.
    var pendingCount: Int { self.stateMachine.pendingCount }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.failAll(.connectionClosed("Redis connection handler removed"))
        self.context = nil
    }

    /// Writes one encoded command; `promise` gets its reply, or an error at `deadline`.
    func send(_ command: ByteBuffer, promise: EventLoopPromise<RedisReply>, deadline: NIODeadline) {
        guard let context = self.context else {
            promise.fail(SluiceRedisError.connectionClosed("Redis connection is not open"))
            return
        }
        switch self.stateMachine.send(promise, deadline: deadline) {
        case .fail(let error):
            promise.fail(error)
        case .write(let armTimer):
            context.write(self.wrapOutboundOut(command), promise: nil)
            if let armTimer {
                self.schedule(at: armTimer, context: context)
            }
            self.scheduleFlush(context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        do {
            try self.reader.feed(buffer)
            while let reply = try self.reader.next() {
                switch self.stateMachine.receive() {
                case .succeed(let promise):
                    promise.succeed(reply)
                case .discard:
                    continue
                case .close(let error):
                    self.logger.error("unexpected reply from Redis", metadata: ["error": "\(error)"])
                    self.closeWith(error, context: context)
                    return
                }
            }
        } catch let error as SluiceRedisError {
            self.logger.error("cannot parse Redis's reply", metadata: ["error": "\(error)"])
            self.closeWith(error, context: context)
        } catch {
            self.closeWith(.protocolError("\(error)"), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.failAll(.connectionClosed("Redis closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.logger.debug("Redis connection error", metadata: ["error": "\(error)"])
        if let error = error as? SluiceRedisError {
            // Already says what failed (a TLS handshake: RedisTLSFailureHandler).
            self.closeWith(error, context: context)
        } else {
            self.closeWith(.connectionClosed("Redis connection failed: \(error)"), context: context)
        }
    }

    private func scheduleFlush(context: ChannelHandlerContext) {
        guard !self.flushScheduled else { return }
        self.flushScheduled = true
        // Runs after every task already queued on this loop: all commands written
        // meanwhile go out in one write.
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.context?.flush()
        }
    }

    /// Schedules the deadline timer unless one already fires no later than `deadline`.
    private func schedule(at deadline: NIODeadline, context: ChannelHandlerContext) {
        if self.timer != nil, let current = self.timerDeadline, current <= deadline {
            return
        }
        self.timer?.cancel()
        self.timerDeadline = deadline
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timerFired()
        }
    }

    private func timerFired() {
        self.timer = nil
        self.timerDeadline = nil
        let action = self.stateMachine.timerFired(now: self.context?.eventLoop.now ?? .now())
        for promise in action.expired {
            promise.fail(SluiceRedisError.timeout("Redis did not answer within the command deadline"))
        }
        if action.closeConnection, let context = self.context {
            self.logger.warning(
                "recycling Redis connection after consecutive timeouts",
                metadata: ["timeouts": "\(self.stateMachine.maxConsecutiveTimeouts)"]
            )
            self.closeWith(.connectionClosed("Redis connection recycled after consecutive timeouts"), context: context)
            return
        }
        if let rearm = action.rearm, let context = self.context {
            self.schedule(at: rearm, context: context)
        }
    }

    private func closeWith(_ error: SluiceRedisError, context: ChannelHandlerContext) {
        self.failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: SluiceRedisError) {
        self.timer?.cancel()
        self.timer = nil
        self.timerDeadline = nil
        for promise in self.stateMachine.close(error) {
            promise.fail(error)
        }
    }
}
