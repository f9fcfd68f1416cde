import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A Redis node's address as Sluice dials it.
public struct RedisAddress: Sendable, Hashable, CustomStringConvertible {
    /// Host name or address.
    public var host: String
    /// TCP port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port` (`[v6]:port` for an IPv6 address).
    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

/// Where a Sentinel-managed master is found.
public struct RedisSentinelConfiguration: Sendable, Hashable {
    /// The name the sentinels monitor the master under.
    public var masterName: String
    /// The sentinels, asked in turn.
    public var nodes: [RedisAddress]
    /// ACL user for AUTH on the sentinels (not the data nodes).
    public var username: String?
    /// Password for AUTH on the sentinels; nil skips AUTH.
    public var password: String?

    /// Creates a Sentinel configuration.
    public init(masterName: String, nodes: [RedisAddress], username: String? = nil, password: String? = nil) {
        self.masterName = masterName
        self.nodes = nodes
        self.username = username
        self.password = password
    }

    var authCommand: [RedisArgument]? {
        guard let password = self.password else { return nil }
        if let username = self.username {
            return ["AUTH", RedisArgument(username), RedisArgument(password)]
        }
        return ["AUTH", RedisArgument(password)]
    }
}

/// Which node a connection dials, asked before every connect: the one layer between the
/// client's connections and the deployment's shape (docs/ARCHITECTURE.md, "Layers").
///
/// Standalone answers the URL's address. Sentinel asks the sentinels in turn for the master
/// (a sentinel that is down or slow is skipped within the connect timeout), has every new
/// connection confirm with `ROLE` that it reached a master, and, through ``watch()``, hears
/// `+switch-master` and tells every connection to the old master to reconnect.
public final class RedisTopology: Sendable {
    /// The deployment's shape.
    public enum Kind: Sendable, Hashable {
        /// One node at a fixed address.
        case standalone(RedisAddress)
        /// A master found through sentinels.
        case sentinel(RedisSentinelConfiguration)
        /// A Redis Cluster: a master per slot range, found from seed nodes.
        case cluster(RedisClusterConfiguration)
    }

    /// The deployment's shape.
    public let kind: Kind
    /// The slot map, for a cluster; nil otherwise.
    let clusterMap: ClusterMapSource?
    private let tls: RedisTLSContext?
    private let connectTimeout: TimeAmount
    private let reconnect: RedisClientConfiguration
    private let logger: Logger
    /// The sentinel that answered last, asked first next time.
    private let preferred = NIOLockedValueBox(0)
    private let switchListeners = NIOLockedValueBox<[@Sendable (RedisAddress) -> Void]>([])

    init(configuration: RedisClientConfiguration, tls: RedisTLSContext?, logger: Logger) {
        self.clusterMap = configuration.cluster.flatMap { cluster in
            cluster.nodes.isEmpty ? nil : ClusterMapSource(seeds: cluster.nodes, configuration: configuration, tls: tls, logger: logger)
        }
        if let cluster = configuration.cluster {
            self.kind = .cluster(cluster)
        } else if let sentinel = configuration.sentinel {
            self.kind = .sentinel(sentinel)
        } else {
            self.kind = .standalone(RedisAddress(host: configuration.host, port: configuration.port))
        }
        self.tls = tls
        self.connectTimeout = configuration.connectTimeout
        self.reconnect = configuration
        self.logger = logger
    }

    /// Whether a new data connection must confirm with `ROLE` that it reached a master.
    var confirmsRole: Bool {
        if case .sentinel = self.kind { return true }
        return false
    }

    /// Registers a connection owner's reaction to a master switch (called on any thread).
    func addSwitchListener(_ listener: @escaping @Sendable (RedisAddress) -> Void) {
        self.switchListeners.withLockedValue { $0.append(listener) }
    }

    /// Tells every connection owner that the master is now at `address`: those connected
    /// elsewhere close and reconnect through ``resolve(on:)``.
    func masterSwitched(to address: RedisAddress) {
        for listener in self.switchListeners.withLockedValue({ $0 }) { listener(address) }
    }

    /// The address to dial now, without blocking `eventLoop` (docs/ARCHITECTURE.md, invariant 7).
    /// A cluster answers one of its masters (or seeds), in turn: for work without a key.
    /// - Returns: a future on `eventLoop`; it fails when no sentinel names the master.
    public func resolve(on eventLoop: any EventLoop) -> EventLoopFuture<RedisAddress> {
        switch self.kind {
        case .standalone(let address):
            return eventLoop.makeSucceededFuture(address)
        case .cluster:
            guard let map = self.clusterMap else {
                return eventLoop.makeFailedFuture(SluiceRedisError.unavailable("the cluster configuration names no node"))
            }
            return eventLoop.makeSucceededFuture(map.anyNode())
        case .sentinel(let sentinel):
            let first = self.preferred.withLockedValue { $0 }
            return self.ask(sentinel, first: first, tried: 0, errors: [], on: eventLoop)
        }
    }

    private func ask(
        _ sentinel: RedisSentinelConfiguration,
        first: Int,
        tried: Int,
        errors: [String],
        on eventLoop: any EventLoop
    ) -> EventLoopFuture<RedisAddress> {
        guard tried < sentinel.nodes.count else {
            return eventLoop.makeFailedFuture(
                SluiceRedisError.unavailable(
                    "no sentinel gave the address of master \(sentinel.masterName): \(errors.joined(separator: "; "))"
                )
            )
        }
        let index = (first + tried) % sentinel.nodes.count
        let node = sentinel.nodes[index]
        return self.askOne(node, sentinel, on: eventLoop).map { address in
            self.preferred.withLockedValue { $0 = index }
            return address
        }.flatMapError { error in
            self.logger.debug("sentinel skipped", metadata: ["sentinel": "\(node)", "error": "\(error)"])
            return self.ask(sentinel, first: first, tried: tried + 1, errors: errors + ["\(node): \(error)"], on: eventLoop)
        }
    }

    /// `[AUTH] + SENTINEL get-master-addr-by-name` on one sentinel, all within the connect timeout.
    private func askOne(_ node: RedisAddress, _ sentinel: RedisSentinelConfiguration, on eventLoop: any EventLoop) -> EventLoopFuture<RedisAddress> {
        let deadline = NIODeadline.now() + self.connectTimeout
        return RedisConnection.connect(
            host: node.host,
            port: node.port,
            tls: self.tls,
            on: eventLoop,
            connectTimeout: self.connectTimeout,
            maxPending: 4,
            maxConsecutiveTimeouts: 1,
            logger: self.logger
        ).flatMap { connection in
            var commands: [[RedisArgument]] = []
            if let auth = sentinel.authCommand { commands.append(auth) }
            commands.append(["SENTINEL", "get-master-addr-by-name", RedisArgument(sentinel.masterName)])
            return connection.send(commands, deadline: deadline).flatMapThrowing { replies in
                if replies.count == 2, let error = replies[0].errorMessage {
                    throw SluiceRedisError.handshakeFailed("AUTH on the sentinel failed: \(error)")
                }
                return try Self.masterAddress(from: replies[replies.count - 1], masterName: sentinel.masterName)
            }.always { _ in connection.close() }
        }
    }

    /// Follows `+switch-master` on one sentinel at a time (the next when it goes away) until
    /// cancelled; for a cluster, reads the slot map periodically instead; returns at once for a
    /// standalone node. The client runs it as part of its
    /// service (docs/ARCHITECTURE.md, "Failure policy"). After every (re)subscription the master
    /// is asked for again, since a switch may have gone unheard meanwhile.
    func watch(on group: any EventLoopGroup) async {
        if let clusterMap = self.clusterMap {
            await clusterMap.watch(on: group)
            return
        }
        guard case .sentinel(let sentinel) = self.kind, !sentinel.nodes.isEmpty else { return }
        var index = self.preferred.withLockedValue { $0 }
        var failures = 0
        while !Task.isCancelled {
            let position = index % sentinel.nodes.count
            let subscribed = await self.watchSession(position, sentinel, group: group)
            if Task.isCancelled { return }
            index += 1
            failures = subscribed ? 0 : failures + 1
            let delay = self.reconnect.reconnectDelay(afterFailures: failures)
            try? await Task.sleep(for: .nanoseconds(delay.nanoseconds))
        }
    }

    /// One subscription to `+switch-master` on `node`. Returns whether it was ever in place.
    private func watchSession(_ position: Int, _ sentinel: RedisSentinelConfiguration, group: any EventLoopGroup) async -> Bool {
        let node = sentinel.nodes[position]
        let (stream, continuation) = AsyncStream.makeStream(of: RedisReply?.self)
        let channel: any Channel
        do {
            channel = try await RedisPushHandler.connect(
                host: node.host, port: node.port, group: group, connectTimeout: self.connectTimeout, tls: self.tls,
                continuation: continuation
            ).get()
        } catch {
            self.logger.debug("cannot reach sentinel to follow master switches", metadata: ["sentinel": "\(node)", "error": "\(error)"])
            return false
        }
        do {
            for command in [sentinel.authCommand, ["SUBSCRIBE", "+switch-master"]].compactMap({ $0 }) {
                channel.write(try RESPEncoder.encode(command), promise: nil)
            }
            channel.flush()
        } catch {
            channel.close(promise: nil)
            return false
        }
        let deadline = channel.eventLoop.scheduleTask(in: self.connectTimeout) { continuation.yield(nil) }
        // A sentinel that stops answering (frozen, cut off) would otherwise hold the watch
        // forever while switches go unheard: PING once a second, move on after 3 s of silence.
        let lastHeard = NIOLockedValueBox(NIODeadline.now())
        let ping = try? RESPEncoder.encode(["PING"])
        let keepalive = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            if NIODeadline.now() - lastHeard.withLockedValue({ $0 }) > .seconds(3) {
                self.logger.warning("sentinel stopped answering; following master switches on the next one", metadata: ["sentinel": "\(node)"])
                channel.close(promise: nil)
            } else if let ping {
                channel.writeAndFlush(ping, promise: nil)
            }
        }
        var subscribed = false
        await withTaskCancellationHandler {
            for await reply in stream {
                if reply != nil { lastHeard.withLockedValue { $0 = .now() } }
                guard let reply else {
                    if !subscribed { break }
                    continue
                }
                if let error = reply.errorMessage {
                    self.logger.warning("sentinel refused the +switch-master subscription", metadata: ["sentinel": "\(node)", "error": "\(error)"])
                    break
                }
                guard let parts = reply.array, let kind = parts.first?.string else { continue }
                if kind == "subscribe" {
                    subscribed = true
                    deadline.cancel()
                    self.logger.info("following master switches", metadata: ["sentinel": "\(node)"])
                    // A switch may have happened while no sentinel was heard.
                    if let address = try? await self.resolve(on: channel.eventLoop).get() {
                        self.masterSwitched(to: address)
                    }
                } else if kind == "message", parts.count == 3, let payload = parts[2].string,
                    let address = Self.switchedMaster(message: payload, masterName: sentinel.masterName)
                {
                    self.logger.notice("Redis master switched", metadata: ["master": "\(sentinel.masterName)", "address": "\(address)"])
                    // The reconnects ask this sentinel first: it has the new configuration, while
                    // another may still name the old master, which answers ROLE master until the
                    // sentinels demote it.
                    self.preferred.withLockedValue { $0 = position }
                    self.masterSwitched(to: address)
                }
            }
        } onCancel: {
            channel.close(promise: nil)
        }
        keepalive.cancel()
        deadline.cancel()
        channel.close(promise: nil)
        return subscribed
    }

    // MARK: Replies

    /// The address in a `SENTINEL get-master-addr-by-name` reply.
    /// - Throws: ``SluiceRedisError`` when the sentinel refused, does not know the master, or
    ///   answered something else.
    static func masterAddress(from reply: RedisReply, masterName: String) throws -> RedisAddress {
        if let error = reply.errorMessage {
            throw SluiceRedisError.handshakeFailed("SENTINEL get-master-addr-by-name failed: \(error)")
        }
        if reply == .null {
            throw SluiceRedisError.unavailable("the sentinel does not monitor a master named \(masterName)")
        }
        guard let parts = reply.array, parts.count == 2, let host = parts[0].string, !host.isEmpty,
            let port = parts[1].int, (1...65535).contains(port)
        else {
            throw SluiceRedisError.protocolError("unexpected SENTINEL get-master-addr-by-name reply: \(reply)")
        }
        return RedisAddress(host: host, port: Int(port))
    }

    /// The new master's address in a `+switch-master` message
    /// (`<name> <old ip> <old port> <new ip> <new port>`), or nil for another master or another shape.
    static func switchedMaster(message: String, masterName: String) -> RedisAddress? {
        let fields = message.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 5, fields[0] == masterName, let port = Int(fields[4]), (1...65535).contains(port) else {
            return nil
        }
        return RedisAddress(host: String(fields[3]), port: port)
    }

    /// The role in a `ROLE` reply (`master`, `slave` or `sentinel`), or nil when the reply is no ROLE reply.
    static func role(of reply: RedisReply) -> String? {
        guard let parts = reply.array, let role = parts.first?.string, ["master", "slave", "sentinel"].contains(role) else {
            return nil
        }
        return role
    }
}
