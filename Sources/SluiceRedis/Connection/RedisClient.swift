import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// A pipelining Redis client: a few connections on every event loop of a group.
///
/// A command sent "on" an event loop uses that loop's connections, so a caller
/// already on the loop (an HTTP channel's) never hops threads to reach Redis.
/// Commands sent in one tick of a loop share one write and one flush. A command
/// fails, never queues without bound: at its deadline, when too many wait, or at
/// once while Redis is unreachable.
///
/// Run it as a `Service` (``run()``), or call ``start()`` and ``shutdown()``.
public final class RedisClient: Service, Sendable {
    /// What `CONFIG GET maxmemory-policy` said on the last connect.
    public enum EvictionPolicy: Sendable, Hashable {
        /// Not connected yet.
        case notChecked
        /// The policy's name (`noeviction`, `allkeys-lru`, ...).
        case policy(String)
        /// It could not be read (for example CONFIG is disabled); why.
        case unknown(String)

        /// The warning operators must see (docs/ARCHITECTURE.md, invariant 5), or nil for `noeviction`
        /// and before the first connect.
        public var warning: String? {
            switch self {
            case .notChecked:
                return nil
            case .policy(let name) where name == "noeviction":
                return nil
            case .policy(let name):
                return "Redis maxmemory-policy is \(name), not noeviction: an evicted bucket is an over-admission; "
                    + "set maxmemory-policy noeviction"
            case .unknown(let why):
                return "cannot verify that Redis maxmemory-policy is noeviction (\(why))"
            }
        }
    }

    /// State shared by every connection slot: configuration and status.
    final class Shared: Sendable {
        let configuration: RedisClientConfiguration
        let scripts: [RedisScript]
        let logger: Logger
        let observer: (any RedisClientObserver)?
        let status = Status()
        /// Built once for every connection of the client.
        let tls: RedisTLSContext?
        /// Which node each connect dials (docs/ARCHITECTURE.md, "Layers").
        let topology: RedisTopology
        /// Every slot's way to cut its backoff short, on its own loop.
        private let wakers = NIOLockedValueBox<[@Sendable () -> Void]>([])

        /// Registers a slot's waker (at creation).
        func addWaker(_ waker: @escaping @Sendable () -> Void) {
            self.wakers.withLockedValue { $0.append(waker) }
        }

        /// One slot got through to Redis again after failures: every slot backing off tries
        /// now, so all event loops are back together instead of each waiting out its own
        /// backoff (docs/ARCHITECTURE.md, "Failure policy").
        func redisIsBack() {
            for waker in self.wakers.withLockedValue({ $0 }) { waker() }
        }

        init(configuration: RedisClientConfiguration, scripts: [RedisScript], logger: Logger, observer: (any RedisClientObserver)?) {
            self.configuration = configuration
            self.scripts = scripts
            self.logger = logger
            self.observer = observer
            let tls = configuration.tls.map { RedisTLSContext($0, logger: logger) }
            self.tls = tls
            self.topology = RedisTopology(configuration: configuration, tls: tls, logger: logger)
        }
    }

    /// Thread-safe counters read by health checks; never on the hot path.
    final class Status: Sendable {
        private struct Value {
            var readyConnections = 0
            var evictionPolicy: EvictionPolicy = .notChecked
            var lastError: String?
        }
        private let value = NIOLockedValueBox(Value())

        func connectionUp() { self.value.withLockedValue { $0.readyConnections += 1 } }
        func connectionDown() { self.value.withLockedValue { $0.readyConnections -= 1 } }
        /// Records the policy; returns whether it differs from the one recorded before.
        func recordEvictionPolicy(_ policy: EvictionPolicy) -> Bool {
            self.value.withLockedValue {
                let changed = $0.evictionPolicy != policy
                $0.evictionPolicy = policy
                return changed
            }
        }
        func recordError(_ error: String) { self.value.withLockedValue { $0.lastError = error } }

        var readyConnections: Int { self.value.withLockedValue { $0.readyConnections } }
        var evictionPolicy: EvictionPolicy { self.value.withLockedValue { $0.evictionPolicy } }
        var lastError: String? { self.value.withLockedValue { $0.lastError } }
    }

    private let shared: Shared
    private let group: any EventLoopGroup
    private let pools: [EventLoopConnections]
    private let poolByLoop: [ObjectIdentifier: EventLoopConnections]

    /// Creates a client; nothing connects until ``start()`` or ``run()``.
    /// - Parameters:
    ///   - configuration: where Redis is and the client's bounds.
    ///   - eventLoopGroup: the loops to keep connections on (use the HTTP server's).
    ///   - scripts: scripts loaded on every connection, runnable with ``evaluate(_:keys:arguments:on:)``.
    ///   - logger: for connection events.
    ///   - observer: told of every command's outcome and of reconnects (metrics).
    public init(
        configuration: RedisClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        scripts: [RedisScript] = [],
        logger: Logger,
        observer: (any RedisClientObserver)? = nil
    ) {
        let shared = Shared(configuration: configuration, scripts: scripts, logger: logger, observer: observer)
        self.shared = shared
        self.group = eventLoopGroup
        var pools: [EventLoopConnections] = []
        var byLoop: [ObjectIdentifier: EventLoopConnections] = [:]
        for eventLoop in eventLoopGroup.makeIterator() {
            let pool = EventLoopConnections(
                eventLoop: eventLoop,
                shared: shared,
                count: max(1, configuration.connectionsPerEventLoop),
                firstIndex: pools.count * max(1, configuration.connectionsPerEventLoop)
            )
            pools.append(pool)
            byLoop[ObjectIdentifier(eventLoop)] = pool
        }
        self.pools = pools
        self.poolByLoop = byLoop
    }

    /// The client's configuration.
    public var configuration: RedisClientConfiguration { self.shared.configuration }

    /// Which node the client's connections dial; pub/sub subscribers share it to follow the same master.
    public var topology: RedisTopology { self.shared.topology }

    /// Whether at least one connection to Redis is up.
    public var isConnected: Bool { self.shared.status.readyConnections > 0 }

    /// Connections up right now.
    public var connectedCount: Int { self.shared.status.readyConnections }

    /// The eviction policy Redis reported on the last connect.
    public var evictionPolicy: EvictionPolicy { self.shared.status.evictionPolicy }

    /// The last connect error, if any.
    public var lastConnectError: String? { self.shared.status.lastError }

    /// Opens every connection (in the background; commands sent meanwhile wait up to their deadline).
    public func start() {
        for pool in self.pools {
            pool.eventLoop.execute { pool.start() }
        }
    }

    /// Closes every connection; commands still waiting fail.
    public func shutdown() async {
        var futures: [EventLoopFuture<Void>] = []
        for pool in self.pools {
            futures.append(pool.eventLoop.flatSubmit { pool.shutdown() })
        }
        for future in futures {
            try? await future.get()
        }
    }

    /// Runs the client as a service: connects, follows master switches (Sentinel) until graceful
    /// shutdown, then closes.
    public func run() async throws {
        self.start()
        await withDiscardingTaskGroup { group in
            group.addTask {
                await cancelWhenGracefulShutdown { await self.shared.topology.watch(on: self.group) }
            }
            try? await gracefulShutdown()
        }
        await self.shutdown()
    }

    /// Sends one command.
    /// - Parameters:
    ///   - arguments: the command and its arguments.
    ///   - eventLoop: the loop whose connections to use (the caller's, ideally); any loop if nil.
    /// - Returns: a future of the reply (error replies included), on that loop's connection's loop;
    ///   it fails with ``SluiceRedisError`` when no reply comes in time.
    public func send(_ arguments: [RedisArgument], on eventLoop: (any EventLoop)? = nil) -> EventLoopFuture<RedisReply> {
        let pool = self.pool(for: eventLoop)
        do {
            return self.send(encoded: try RESPEncoder.encode(arguments), pool: pool)
        } catch {
            return pool.eventLoop.makeFailedFuture(error)
        }
    }

    /// Sends one encoded command on `pool`'s loop, with the command deadline, observed.
    private func send(encoded command: ByteBuffer, pool: EventLoopConnections) -> EventLoopFuture<RedisReply> {
        let promise = pool.eventLoop.makePromise(of: RedisReply.self)
        let start = NIODeadline.now()
        let deadline = start + self.shared.configuration.commandTimeout
        self.observe(promise.futureResult, since: start)
        if pool.eventLoop.inEventLoop {
            pool.send([command], deadline: deadline, promises: [promise])
        } else {
            pool.eventLoop.execute {
                pool.send([command], deadline: deadline, promises: [promise])
            }
        }
        return promise.futureResult
    }

    /// Tells the observer, if any, how a command ended.
    private func observe(_ future: EventLoopFuture<RedisReply>, since start: NIODeadline) {
        guard let observer = self.shared.observer else { return }
        future.whenComplete { result in
            let elapsed = NIODeadline.now() - start
            switch result {
            case .success(let reply):
                observer.commandCompleted(duration: .nanoseconds(elapsed.nanoseconds), errorKind: reply.errorMessage == nil ? nil : "server_error")
            case .failure(let error as SluiceRedisError):
                observer.commandCompleted(duration: .nanoseconds(elapsed.nanoseconds), errorKind: error.code.description)
            case .failure:
                observer.commandCompleted(duration: .nanoseconds(elapsed.nanoseconds), errorKind: "other")
            }
        }
    }

    /// Commands written to Redis and not yet answered, or waiting for a connection, on every loop.
    public func pendingCommands() async -> Int {
        var total = 0
        for pool in self.pools {
            total += (try? await pool.eventLoop.submit { pool.load }.get()) ?? 0
        }
        return total
    }

    /// Runs a script with EVALSHA. If Redis lost it (NOSCRIPT, after a restart or
    /// SCRIPT FLUSH), SCRIPT LOAD and EVALSHA go again, pipelined, once.
    /// - Parameters:
    ///   - script: one of the scripts given at init.
    ///   - keys: the script's KEYS.
    ///   - arguments: the script's ARGV.
    ///   - eventLoop: the loop whose connections to use; any loop if nil.
    /// - Returns: the script's reply (error replies included).
    public func evaluate(
        _ script: RedisScript,
        keys: [RedisArgument],
        arguments: [RedisArgument],
        on eventLoop: (any EventLoop)? = nil
    ) -> EventLoopFuture<RedisReply> {
        let pool = self.pool(for: eventLoop)
        let command: ByteBuffer
        do {
            command = try RESPEncoder.encode(Self.evalsha(script, keys: keys, arguments: arguments))
        } catch {
            return pool.eventLoop.makeFailedFuture(error)
        }
        return self.send(encoded: command, pool: pool).flatMap { reply in
            self.reloadingIfLost(reply, script: script, evalsha: command, pool: pool)
        }
    }

    /// The command's name, made once rather than per decision.
    private static let evalshaName: RedisArgument = "EVALSHA"

    /// `EVALSHA sha numkeys keys... arguments...`.
    private static func evalsha(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument]) -> [RedisArgument] {
        var evalsha: [RedisArgument] = [Self.evalshaName, script.sha1Argument, RedisArgument(keys.count)]
        evalsha.reserveCapacity(3 + keys.count + arguments.count)
        evalsha.append(contentsOf: keys)
        evalsha.append(contentsOf: arguments)
        return evalsha
    }

    /// The reply itself, or, when Redis lost the script (NOSCRIPT, after a restart or SCRIPT
    /// FLUSH), the reply of SCRIPT LOAD + EVALSHA sent again, pipelined, once.
    private func reloadingIfLost(
        _ reply: RedisReply,
        script: RedisScript,
        evalsha: ByteBuffer,
        pool: EventLoopConnections
    ) -> EventLoopFuture<RedisReply> {
        guard let message = reply.errorMessage, message.hasPrefix("NOSCRIPT") else {
            return pool.eventLoop.makeSucceededFuture(reply)
        }
        self.shared.logger.info("Redis lost the script; loading it again", metadata: ["script": "\(script.name)"])
        let load = pool.eventLoop.makePromise(of: RedisReply.self)
        let retry = pool.eventLoop.makePromise(of: RedisReply.self)
        do {
            let commands = [try RESPEncoder.encode(["SCRIPT", "LOAD", RedisArgument(script.source)]), evalsha]
            pool.send(commands, deadline: pool.eventLoop.now + self.shared.configuration.commandTimeout, promises: [load, retry])
        } catch {
            load.fail(error)
            retry.fail(error)
        }
        return retry.futureResult
    }

    /// Runs a script once per call, all calls written to one connection in one go (one
    /// write, one flush): a batch costs one round trip however many calls it holds.
    /// NOSCRIPT is handled per call as in ``evaluate(_:keys:arguments:on:)``.
    /// - Returns: one future per call, in order.
    public func evaluateBatch(
        _ script: RedisScript,
        calls: [(keys: [RedisArgument], arguments: [RedisArgument])],
        on eventLoop: (any EventLoop)? = nil
    ) -> [EventLoopFuture<RedisReply>] {
        let pool = self.pool(for: eventLoop)
        let start = NIODeadline.now()
        let deadline = start + self.shared.configuration.commandTimeout
        var commands: [ByteBuffer] = []
        var sent: [EventLoopPromise<RedisReply>] = []
        // Per call: its promise and its encoded EVALSHA (kept for a NOSCRIPT retry), or the
        // encoding failure.
        var futures: [EventLoopFuture<RedisReply>] = []
        commands.reserveCapacity(calls.count)
        futures.reserveCapacity(calls.count)
        for call in calls {
            let promise = pool.eventLoop.makePromise(of: RedisReply.self)
            self.observe(promise.futureResult, since: start)
            do {
                // One buffer per command, sized for it.
                let command = try RESPEncoder.encode(Self.evalsha(script, keys: call.keys, arguments: call.arguments))
                commands.append(command)
                sent.append(promise)
                futures.append(
                    promise.futureResult.flatMap { reply in
                        self.reloadingIfLost(reply, script: script, evalsha: command, pool: pool)
                    }
                )
            } catch {
                promise.fail(error)
                futures.append(promise.futureResult)
            }
        }
        let batch = commands
        let batchPromises = sent
        if pool.eventLoop.inEventLoop {
            pool.send(batch, deadline: deadline, promises: batchPromises)
        } else {
            pool.eventLoop.execute { pool.send(batch, deadline: deadline, promises: batchPromises) }
        }

        return futures
    }

    /// Runs a script and turns an error reply into a thrown ``RedisServerError``, as
    /// ``command(_:on:)`` does for commands.
    /// - Throws: ``RedisServerError`` or ``SluiceRedisError``.
    public func run(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument]) async throws -> RedisReply {
        try Self.throwingErrorReply(try await self.evaluate(script, keys: keys, arguments: arguments).get())
    }

    /// Sends a command and turns an error reply into a thrown ``RedisServerError``.
    /// - Throws: ``RedisServerError`` or ``SluiceRedisError``.
    public func command(_ arguments: [RedisArgument], on eventLoop: (any EventLoop)? = nil) async throws -> RedisReply {
        try Self.throwingErrorReply(try await self.send(arguments, on: eventLoop).get())
    }

    private static func throwingErrorReply(_ reply: RedisReply) throws -> RedisReply {
        if let message = reply.errorMessage {
            throw RedisServerError(message: message)
        }
        return reply
    }

    private func pool(for eventLoop: (any EventLoop)?) -> EventLoopConnections {
        if let eventLoop, let pool = self.poolByLoop[ObjectIdentifier(eventLoop)] {
            return pool
        }
        let any = self.group.any()
        return self.poolByLoop[ObjectIdentifier(any)] ?? self.pools[0]
    }
}

/// Hears how the client's commands end and when connections come back: the hook for metrics.
/// Called on event loops: implementations must be cheap and must not block.
public protocol RedisClientObserver: Sendable {
    /// A command got its reply (`errorKind` nil, or `server_error` for an error reply) or failed
    /// (`errorKind` is the ``SluiceRedisError/Code`` description).
    func commandCompleted(duration: Duration, errorKind: String?)
    /// A connection that had been up before is up again.
    func reconnected()
}
