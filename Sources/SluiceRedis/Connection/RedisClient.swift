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
        /// Every slot's way to cut its backoff short, on its own loop, with the node it always
        /// dials (nil: the topology's node).
        private let wakers = NIOLockedValueBox<[ObjectIdentifier: (node: RedisAddress?, wake: @Sendable () -> Void)]>([:])

        /// Registers a slot's waker (at creation).
        func addWaker(for slot: AnyObject, node: RedisAddress?, _ waker: @escaping @Sendable () -> Void) {
            self.wakers.withLockedValue { $0[ObjectIdentifier(slot)] = (node, waker) }
        }

        /// Forgets a slot's waker (at its shutdown).
        func removeWaker(for slot: AnyObject) {
            _ = self.wakers.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(slot)) }
        }

        /// A slot got through to Redis again after failures: every slot backing off that dials
        /// the same node tries now, so all event loops are back together instead of each waiting
        /// out its own backoff (docs/ARCHITECTURE.md, "Failure policy").
        /// - Parameter node: the node reached; nil: the topology's (standalone, Sentinel).
        func redisIsBack(at node: RedisAddress?) {
            for waker in self.wakers.withLockedValue({ Array($0.values) }) where waker.node == node { waker.wake() }
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
            /// Ready connections per fixed node (cluster masters).
            var readyByNode: [RedisAddress: Int] = [:]
            var evictionPolicy: EvictionPolicy = .notChecked
            var lastError: String?
        }
        private let value = NIOLockedValueBox(Value())

        func connectionUp(to node: RedisAddress?) {
            self.value.withLockedValue {
                $0.readyConnections += 1
                if let node { $0.readyByNode[node, default: 0] += 1 }
            }
        }
        func connectionDown(to node: RedisAddress?) {
            self.value.withLockedValue {
                $0.readyConnections -= 1
                if let node { $0.readyByNode[node, default: 0] -= 1 }
            }
        }
        func readyConnections(to node: RedisAddress) -> Int { self.value.withLockedValue { $0.readyByNode[node] ?? 0 } }
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
    private let routes: [LoopRoute]
    private let routeByLoop: [ObjectIdentifier: LoopRoute]
    /// Whether commands are routed by hash slot (a cluster).
    private let isCluster: Bool

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
        var routes: [LoopRoute] = []
        var byLoop: [ObjectIdentifier: LoopRoute] = [:]
        let perLoop = max(1, configuration.connectionsPerEventLoop)
        let clusterMap = shared.topology.clusterMap
        for eventLoop in eventLoopGroup.makeIterator() {
            let route: LoopRoute
            let firstIndex = routes.count * perLoop
            if let clusterMap {
                let router = ClusterRouter(
                    eventLoop: eventLoop,
                    connectionsTo: { node in
                        EventLoopConnections(eventLoop: eventLoop, shared: shared, count: perLoop, firstIndex: firstIndex, node: node)
                    },
                    requestRefresh: { clusterMap.requestRefresh(on: eventLoop) },
                    redirected: { kind in observer?.clusterRedirected(kind: kind) },
                    retireAfter: configuration.commandTimeout * 2
                )
                clusterMap.addListener { map in eventLoop.execute { router.apply(map) } }
                route = .cluster(router)
            } else {
                route = .node(EventLoopConnections(eventLoop: eventLoop, shared: shared, count: perLoop, firstIndex: firstIndex))
            }
            routes.append(route)
            byLoop[ObjectIdentifier(eventLoop)] = route
        }
        self.routes = routes
        self.routeByLoop = byLoop
        self.isCluster = clusterMap != nil
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

    /// What an operator should know about the topology right now: in a cluster, masters of the
    /// slot map that no connection reaches and slots without a master (their keys' decisions get
    /// the plan's `on_backend_error`). Empty elsewhere, and before the first map.
    public var topologyWarnings: [String] {
        guard let map = self.shared.topology.clusterMap?.current else { return [] }
        var warnings: [String] = []
        let unreachable = map.masters.filter { self.shared.status.readyConnections(to: $0) == 0 }
        if !unreachable.isEmpty {
            warnings.append(
                "no connection to Redis Cluster master(s) \(unreachable.map(\.description).joined(separator: ", ")): "
                    + "decisions for their slots get the plan's on_backend_error answer"
            )
        }
        let unassigned = map.unassignedSlots
        if unassigned > 0 {
            warnings.append("\(unassigned) Redis Cluster hash slots have no master: decisions for them get the plan's on_backend_error answer")
        }
        return warnings
    }

    /// The last connect error, if any.
    public var lastConnectError: String? { self.shared.status.lastError }

    /// Opens every connection (in the background; commands sent meanwhile wait up to their deadline).
    public func start() {
        for route in self.routes {
            route.eventLoop.execute { route.start() }
        }
        if let clusterMap = self.shared.topology.clusterMap {
            clusterMap.requestRefresh(on: self.group.next())
        }
    }

    /// Closes every connection; commands still waiting fail.
    public func shutdown() async {
        var futures: [EventLoopFuture<Void>] = []
        for route in self.routes {
            futures.append(route.eventLoop.flatSubmit { route.shutdown() })
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
        let route = self.route(for: eventLoop)
        do {
            return self.send(encoded: try RESPEncoder.encode(arguments), slot: self.isCluster ? self.slot(ofKey: Self.key(of: arguments)) : nil, route: route)
        } catch {
            return route.eventLoop.makeFailedFuture(error)
        }
    }

    /// Sends one encoded command on `route`'s loop, with the command deadline, observed.
    private func send(encoded command: ByteBuffer, slot: Int?, route: LoopRoute) -> EventLoopFuture<RedisReply> {
        let promise = route.eventLoop.makePromise(of: RedisReply.self)
        let start = NIODeadline.now()
        let deadline = start + self.shared.configuration.commandTimeout
        self.observe(promise.futureResult, since: start)
        if route.eventLoop.inEventLoop {
            route.send(command, slot: slot, deadline: deadline, promise: promise)
        } else {
            route.eventLoop.execute {
                route.send(command, slot: slot, deadline: deadline, promise: promise)
            }
        }
        return promise.futureResult
    }

    /// The hash slot of `key` in a cluster; nil elsewhere, or without a key.
    private func slot(ofKey key: RedisArgument?) -> Int? {
        guard self.isCluster, let key else { return nil }
        return ClusterSlotMap.slot(of: key.bytes)
    }

    /// Commands whose second argument is not a key; they go to any cluster master.
    private static let keylessCommands: Set<[UInt8]> = Set(
        ["PING", "ECHO", "CONFIG", "PUBLISH", "INFO", "ROLE", "CLUSTER", "SCRIPT", "AUTH", "SELECT", "TIME", "CLIENT", "DBSIZE", "FLUSHALL", "FLUSHDB"]
            .map { Array($0.utf8) }
    )

    /// The key a command is routed by in a cluster: its first argument, or for EVAL and
    /// EVALSHA its first key; nil for commands without one.
    static func key(of arguments: [RedisArgument]) -> RedisArgument? {
        guard let name = arguments.first?.bytes, arguments.count > 1 else { return nil }
        let upper = name.map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 }
        if upper == Array("EVALSHA".utf8) || upper == Array("EVAL".utf8) {
            guard arguments.count > 3, let count = Int(String(decoding: arguments[2].bytes, as: UTF8.self)), count > 0 else { return nil }
            return arguments[3]
        }
        return Self.keylessCommands.contains(upper) ? nil : arguments[1]
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
        for route in self.routes {
            total += (try? await route.eventLoop.submit { route.load }.get()) ?? 0
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
        let route = self.route(for: eventLoop)
        let command: ByteBuffer
        do {
            command = try RESPEncoder.encode(Self.evalsha(script, keys: keys, arguments: arguments))
        } catch {
            return route.eventLoop.makeFailedFuture(error)
        }
        let slot = self.slot(ofKey: keys.first)
        return self.send(encoded: command, slot: slot, route: route).flatMap { reply in
            self.reloadingIfLost(reply, script: script, evalsha: command, slot: slot, route: route)
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
        slot: Int?,
        route: LoopRoute
    ) -> EventLoopFuture<RedisReply> {
        guard let message = reply.errorMessage, message.hasPrefix("NOSCRIPT") else {
            return route.eventLoop.makeSucceededFuture(reply)
        }
        self.shared.logger.info("Redis lost the script; loading it again", metadata: ["script": "\(script.name)"])
        let retry = route.eventLoop.makePromise(of: RedisReply.self)
        do {
            let load = try RESPEncoder.encode(["SCRIPT", "LOAD", RedisArgument(script.source)])
            route.send(evalsha, slot: slot, prelude: [load], deadline: route.eventLoop.now + self.shared.configuration.commandTimeout, promise: retry)
        } catch {
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
        let route = self.route(for: eventLoop)
        let start = NIODeadline.now()
        let deadline = start + self.shared.configuration.commandTimeout
        var commands: [ByteBuffer] = []
        var sent: [EventLoopPromise<RedisReply>] = []
        var slots: [Int?] = []
        // Per call: its promise and its encoded EVALSHA (kept for a NOSCRIPT retry), or the
        // encoding failure.
        var futures: [EventLoopFuture<RedisReply>] = []
        commands.reserveCapacity(calls.count)
        futures.reserveCapacity(calls.count)
        for call in calls {
            let promise = route.eventLoop.makePromise(of: RedisReply.self)
            self.observe(promise.futureResult, since: start)
            do {
                // One buffer per command, sized for it.
                let command = try RESPEncoder.encode(Self.evalsha(script, keys: call.keys, arguments: call.arguments))
                let slot = self.slot(ofKey: call.keys.first)
                commands.append(command)
                sent.append(promise)
                slots.append(slot)
                futures.append(
                    promise.futureResult.flatMap { reply in
                        self.reloadingIfLost(reply, script: script, evalsha: command, slot: slot, route: route)
                    }
                )
            } catch {
                promise.fail(error)
                futures.append(promise.futureResult)
            }
        }
        let batch = commands
        let batchPromises = sent
        let batchSlots = slots
        if route.eventLoop.inEventLoop {
            route.sendBatch(batch, slots: batchSlots, deadline: deadline, promises: batchPromises)
        } else {
            route.eventLoop.execute { route.sendBatch(batch, slots: batchSlots, deadline: deadline, promises: batchPromises) }
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

    private func route(for eventLoop: (any EventLoop)?) -> LoopRoute {
        if let eventLoop, let route = self.routeByLoop[ObjectIdentifier(eventLoop)] {
            return route
        }
        let any = self.group.any()
        return self.routeByLoop[ObjectIdentifier(any)] ?? self.routes[0]
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
    /// A cluster node redirected a command or asked for it later: `moved`, `ask` or `retry`
    /// (`TRYAGAIN`, `CLUSTERDOWN`, a master without a connection).
    func clusterRedirected(kind: String)
}

extension RedisClientObserver {
    public func clusterRedirected(kind: String) {}
}
