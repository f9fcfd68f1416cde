import NIOCore

/// How a ``RedisClient`` reaches Redis and how it bounds its work.
public struct RedisClientConfiguration: Sendable {
    /// Redis host name or address.
    public var host: String
    /// Redis TCP port.
    public var port: Int
    /// ACL user name for AUTH (Redis 6+); nil sends `AUTH password` alone.
    public var username: String?
    /// Password for AUTH; nil skips AUTH.
    public var password: String?
    /// Database index for SELECT; 0 skips SELECT.
    public var database: Int
    /// Deadline of each command, from the moment it is handed to the client.
    public var commandTimeout: TimeAmount
    /// Deadline of a TCP connect plus its handshake (AUTH, SELECT, SCRIPT LOAD).
    public var connectTimeout: TimeAmount
    /// Connections kept open on each event loop.
    public var connectionsPerEventLoop: Int
    /// Commands that may wait for replies on one connection; more fail at once.
    public var maxPendingCommands: Int
    /// Timeouts in a row, with no reply between them, that make a connection reconnect.
    public var maxConsecutiveTimeouts: Int
    /// First delay before reconnecting after a failure.
    public var minReconnectDelay: TimeAmount
    /// Cap of the reconnect delay, which doubles after each failed attempt.
    public var maxReconnectDelay: TimeAmount
    /// TLS to Redis; nil: plain TCP.
    public var tls: RedisTLSConfiguration?
    /// The sentinels that name the master; nil: `host` and `port` are the node (standalone).
    /// TLS, when set, applies to the sentinels too.
    public var sentinel: RedisSentinelConfiguration?
    /// The seed nodes of a Redis Cluster; nil: not a cluster. `host`, `port` and `database`
    /// are then unused (a cluster has database 0 only). TLS, when set, applies to every node.
    public var cluster: RedisClusterConfiguration?

    /// Creates a configuration with Sluice's defaults.
    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        commandTimeout: TimeAmount = .milliseconds(100),
        connectTimeout: TimeAmount = .seconds(1),
        connectionsPerEventLoop: Int = 1,
        maxPendingCommands: Int = 1024,
        maxConsecutiveTimeouts: Int = 3,
        minReconnectDelay: TimeAmount = .milliseconds(50),
        maxReconnectDelay: TimeAmount = .milliseconds(200),
        tls: RedisTLSConfiguration? = nil,
        sentinel: RedisSentinelConfiguration? = nil,
        cluster: RedisClusterConfiguration? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.commandTimeout = commandTimeout
        self.connectTimeout = connectTimeout
        self.connectionsPerEventLoop = connectionsPerEventLoop
        self.maxPendingCommands = maxPendingCommands
        self.maxConsecutiveTimeouts = maxConsecutiveTimeouts
        self.minReconnectDelay = minReconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
        self.tls = tls
        self.sentinel = sentinel
        self.cluster = cluster
    }

    /// `AUTH [username] password`, or nil without a password.
    var authCommand: [RedisArgument]? {
        guard let password = self.password else { return nil }
        if let username = self.username {
            return ["AUTH", RedisArgument(username), RedisArgument(password)]
        }
        return ["AUTH", RedisArgument(password)]
    }

    /// The wait before the next connect: the minimum delay doubled per earlier failure, capped,
    /// less up to 20% jitter so that a fleet does not reconnect in lockstep.
    func reconnectDelay(afterFailures failures: Int) -> TimeAmount {
        let base = min(self.maxReconnectDelay.nanoseconds, self.minReconnectDelay.nanoseconds << Int64(min(failures, 20)))
        return .nanoseconds(base - Int64.random(in: 0...max(1, base / 5)))
    }
}

/// Where a Redis Cluster is first found.
public struct RedisClusterConfiguration: Sendable, Hashable {
    /// Seed nodes, asked in turn for the slot map; the map then names every master.
    public var nodes: [RedisAddress]

    /// Creates a Cluster configuration.
    public init(nodes: [RedisAddress]) {
        self.nodes = nodes
    }
}
