import DequeModule
import Logging
import NIOCore

/// One kept-open connection of an event loop: connects, handshakes, serves
/// commands while up, and reconnects with capped exponential backoff when it drops.
///
/// While a connect is under way, commands wait (bounded, each until its own
/// deadline); while the slot backs off, they fail at once: a dead Redis makes
/// Sluice answer fast, never queue.
final class ConnectionSlot: @unchecked Sendable {
    // @unchecked: all state is confined to `eventLoop`; every entry point hops or asserts.

    private struct Waiter {
        let id: Int
        let command: ByteBuffer
        let promise: EventLoopPromise<RedisReply>
        let deadline: NIODeadline
        let timer: Scheduled<Void>
    }

    private enum State {
        case idle
        case connecting(waiters: Deque<Waiter>)
        case ready(RedisConnection)
        case backoff(until: NIODeadline, task: Scheduled<Void>?)
        case shutdown
    }

    let eventLoop: any EventLoop
    private let shared: RedisClient.Shared
    private var state: State = .idle
    private var failedAttempts = 0
    private var connectedBefore = false
    private var nextWaiterID = 0
    private var logger: Logger
    /// The node the current (or last) connection dialed.
    private var address: RedisAddress?
    /// The node this slot always dials (a cluster master); nil: the topology says each time.
    private let node: RedisAddress?

    init(eventLoop: any EventLoop, shared: RedisClient.Shared, index: Int, node: RedisAddress? = nil) {
        self.eventLoop = eventLoop
        self.shared = shared
        self.node = node
        var logger = shared.logger
        logger[metadataKey: "redis.slot"] = "\(index)"
        if let node { logger[metadataKey: "redis.node"] = "\(node)" }
        self.logger = logger
        shared.addWaker(for: self, node: node) { [weak self] in
            guard let self else { return }
            self.eventLoop.execute { self.wake() }
        }
        if node == nil {
            shared.topology.addSwitchListener { [weak self] address in
                guard let self else { return }
                self.eventLoop.execute { self.masterMoved(to: address) }
            }
        }
    }

    /// Sentinel named a new master: a connection to another node closes (the usual reconnect then
    /// asks the topology again), a slot backing off tries now. On the slot's loop.
    private func masterMoved(to address: RedisAddress) {
        switch self.state {
        case .ready(let connection) where self.address != address:
            self.logger.info("the Redis master moved; reconnecting", metadata: ["from": "\(self.address.map { "\($0)" } ?? "?")", "to": "\(address)"])
            connection.close()
        case .backoff:
            self.wake()
        default:
            break
        }
    }

    /// Redis answered another slot again: a slot backing off connects now. On the slot's loop.
    private func wake() {
        guard case .backoff(_, let task) = self.state else { return }
        task?.cancel()
        self.connect()
    }

    /// Whether a handshaken connection is up.
    var isReady: Bool {
        if case .ready = self.state { return true }
        return false
    }

    /// Whether a connect attempt is under way.
    var isConnecting: Bool {
        if case .connecting = self.state { return true }
        return false
    }

    /// Commands waiting on this slot: in flight on the connection, or waiting for it.
    var load: Int {
        switch self.state {
        case .ready(let connection): return connection.pendingCount
        case .connecting(let waiters): return waiters.count
        default: return 0
        }
    }

    /// Starts connecting if idle. On the slot's event loop.
    func start() {
        self.eventLoop.preconditionInEventLoop()
        guard case .idle = self.state else { return }
        self.connect()
    }

    /// Sends an encoded command. On the slot's event loop.
    func send(_ command: ByteBuffer, deadline: NIODeadline, promise: EventLoopPromise<RedisReply>) {
        self.eventLoop.preconditionInEventLoop()
        switch self.state {
        case .ready(let connection):
            connection.send(command, deadline: deadline, promise: promise)
        case .connecting(var waiters):
            guard waiters.count < self.shared.configuration.maxPendingCommands else {
                promise.fail(SluiceRedisError.tooManyPending("\(waiters.count) commands already wait for a Redis connection"))
                return
            }
            let id = self.nextWaiterID
            self.nextWaiterID &+= 1
            let timer = self.eventLoop.scheduleTask(deadline: deadline) { [self] in
                self.waiterTimedOut(id)
            }
            waiters.append(Waiter(id: id, command: command, promise: promise, deadline: deadline, timer: timer))
            self.state = .connecting(waiters: waiters)
        case .backoff(let until, _):
            let wait = max(0, (until - .now()).nanoseconds / 1_000_000)
            promise.fail(SluiceRedisError.unavailable("no connection to Redis; next attempt in \(wait) ms"))
        case .idle:
            promise.fail(SluiceRedisError.unavailable("the Redis client is not started"))
        case .shutdown:
            promise.fail(SluiceRedisError.shutdown("the Redis client is shut down"))
        }
    }

    /// Closes the connection and stops reconnecting. On the slot's event loop.
    func shutdown() -> EventLoopFuture<Void> {
        self.eventLoop.preconditionInEventLoop()
        self.shared.removeWaker(for: self)
        let previous = self.state
        self.state = .shutdown
        switch previous {
        case .ready(let connection):
            self.shared.status.connectionDown(to: self.node)
            connection.close()
            return connection.closeFuture
        case .connecting(let waiters):
            self.fail(waiters, with: .shutdown("the Redis client is shut down"))
        case .backoff(_, let task):
            task?.cancel()
        case .idle, .shutdown:
            break
        }
        return self.eventLoop.makeSucceededVoidFuture()
    }

    private func connect() {
        self.state = .connecting(waiters: [])
        let configuration = self.shared.configuration
        let resolved = self.node.map { self.eventLoop.makeSucceededFuture($0) } ?? self.shared.topology.resolve(on: self.eventLoop)
        resolved.flatMap { address in
            self.address = address
            let deadline = NIODeadline.now() + configuration.connectTimeout
            return RedisConnection.connect(
                host: address.host,
                port: address.port,
                tls: self.shared.tls,
                on: self.eventLoop,
                connectTimeout: configuration.connectTimeout,
                maxPending: configuration.maxPendingCommands,
                maxConsecutiveTimeouts: configuration.maxConsecutiveTimeouts,
                logger: self.logger
            ).flatMap { connection in
                self.handshake(connection, deadline: deadline).map { connection }.flatMapErrorThrowing { error in
                    connection.close()
                    throw error
                }
            }
        }.whenComplete { result in
            switch result {
            case .success(let connection): self.connected(connection)
            case .failure(let error): self.connectFailed(error)
            }
        }
    }

    /// AUTH, ROLE (Sentinel: the node must still be the master), SELECT, SCRIPT LOAD of every
    /// script and a read of `maxmemory-policy`, pipelined.
    private func handshake(_ connection: RedisConnection, deadline: NIODeadline) -> EventLoopFuture<Void> {
        let configuration = self.shared.configuration
        var commands: [(name: String, arguments: [RedisArgument])] = []
        if let auth = configuration.authCommand {
            commands.append(("AUTH", auth))
        }
        if self.shared.topology.confirmsRole {
            commands.append(("ROLE", ["ROLE"]))
        }
        if configuration.database != 0 && configuration.cluster == nil {
            commands.append(("SELECT", ["SELECT", RedisArgument(configuration.database)]))
        }
        for script in self.shared.scripts {
            commands.append(("SCRIPT LOAD \(script.name)", ["SCRIPT", "LOAD", RedisArgument(script.source)]))
        }
        commands.append(("CONFIG GET", ["CONFIG", "GET", "maxmemory-policy"]))

        let scripts = self.shared.scripts
        let status = self.shared.status
        let logger = self.logger
        let names = commands.map(\.name)
        let address = self.address.map { "\($0)" } ?? "?"
        return connection.send(commands.map(\.arguments), deadline: deadline).flatMapThrowing { replies in
            var scriptIndex = 0
            for (name, reply) in zip(names, replies) {
                switch name {
                case "ROLE":
                    let role = RedisTopology.role(of: reply)
                    guard role == "master" else {
                        throw SluiceRedisError.handshakeFailed(
                            "\(address) is not the master (ROLE: \(role ?? reply.errorMessage ?? "no answer")); asking the sentinels again"
                        )
                    }
                case "CONFIG GET":
                    let policy = Self.evictionPolicy(from: reply)
                    if status.recordEvictionPolicy(policy), let warning = policy.warning {
                        logger.warning("\(warning)")
                    }
                case let name where name.hasPrefix("SCRIPT LOAD"):
                    let script = scripts[scriptIndex]
                    scriptIndex += 1
                    if let error = reply.errorMessage {
                        throw SluiceRedisError.handshakeFailed("SCRIPT LOAD of \(script.name) failed: \(error)")
                    }
                    guard reply.string == script.sha1 else {
                        throw SluiceRedisError.handshakeFailed(
                            "SCRIPT LOAD of \(script.name) returned \(reply.string ?? "nothing"), expected \(script.sha1)"
                        )
                    }
                default:
                    if let error = reply.errorMessage {
                        throw SluiceRedisError.handshakeFailed("\(name) failed: \(error)")
                    }
                }
            }
        }
    }

    private static func evictionPolicy(from reply: RedisReply) -> RedisClient.EvictionPolicy {
        if let error = reply.errorMessage {
            return .unknown("CONFIG GET maxmemory-policy was refused: \(error)")
        }
        guard let elements = reply.array, elements.count >= 2, let value = elements[1].string else {
            return .unknown("CONFIG GET maxmemory-policy returned no value")
        }
        return .policy(value)
    }

    private func connected(_ connection: RedisConnection) {
        guard case .connecting(let waiters) = self.state else {
            // Shut down while connecting.
            connection.close()
            return
        }
        if self.failedAttempts > 0 {
            self.logger.info("reconnected to Redis", metadata: ["attempts": "\(self.failedAttempts)"])
            self.shared.redisIsBack(at: self.node)
        } else {
            self.logger.debug("connected to Redis")
        }
        self.failedAttempts = 0
        if self.connectedBefore {
            self.shared.observer?.reconnected()
        }
        self.connectedBefore = true
        self.state = .ready(connection)
        self.shared.status.connectionUp(to: self.node)
        connection.closeFuture.whenComplete { [self] _ in
            self.connectionClosed(connection)
        }
        for waiter in waiters {
            waiter.timer.cancel()
            connection.send(waiter.command, deadline: waiter.deadline, promise: waiter.promise)
        }
    }

    private func connectFailed(_ error: any Error) {
        guard case .connecting(let waiters) = self.state else { return }
        self.shared.status.recordError("\(error)")
        let level: Logger.Level = self.failedAttempts == 0 ? .warning : .debug
        self.logger.log(level: level, "cannot connect to Redis", metadata: [
            "error": "\(error)", "attempt": "\(self.failedAttempts + 1)",
        ])
        self.fail(waiters, with: .unavailable("cannot connect to Redis: \(error)"))
        self.backOff()
    }

    private func connectionClosed(_ connection: RedisConnection) {
        guard case .ready(let current) = self.state, current === connection else { return }
        self.shared.status.connectionDown(to: self.node)
        self.logger.warning("Redis connection closed; reconnecting")
        self.backOff()
    }

    private func backOff() {
        let until = NIODeadline.now() + self.shared.configuration.reconnectDelay(afterFailures: self.failedAttempts)
        self.failedAttempts += 1
        self.state = .backoff(until: until, task: nil)
        let task = self.eventLoop.scheduleTask(deadline: until) { [self] in
            guard case .backoff = self.state else { return }
            self.connect()
        }
        self.state = .backoff(until: until, task: task)
    }

    private func waiterTimedOut(_ id: Int) {
        guard case .connecting(var waiters) = self.state,
            let index = waiters.firstIndex(where: { $0.id == id })
        else { return }
        let waiter = waiters.remove(at: index)
        self.state = .connecting(waiters: waiters)
        waiter.promise.fail(SluiceRedisError.timeout("no Redis connection within the command deadline"))
    }

    private func fail(_ waiters: Deque<Waiter>, with error: SluiceRedisError) {
        for waiter in waiters {
            waiter.timer.cancel()
            waiter.promise.fail(error)
        }
    }
}
