import Foundation

/// One `redis-server --sentinel` on a free port, with its own config file in a temp dir (a
/// sentinel rewrites its file). Stopped by PID.
public final class RedisSentinel: @unchecked Sendable {
    // @unchecked: `process` is set once in init.
    public let port: Int
    public let directory: URL
    private let process: Process

    fileprivate init(masterName: String, masterPort: Int) throws {
        self.port = try FreePort.find()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-sentinel-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let config = self.directory.appendingPathComponent("sentinel.conf")
        try """
            port \(self.port)
            bind 127.0.0.1
            daemonize no
            dir \(self.directory.path)
            logfile \(self.directory.appendingPathComponent("sentinel.log").path)
            sentinel monitor \(masterName) 127.0.0.1 \(masterPort) 2
            sentinel down-after-milliseconds \(masterName) 1000
            sentinel failover-timeout \(masterName) 3000
            sentinel parallel-syncs \(masterName) 1

            """.write(to: config, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = try RedisServer.executable("redis-server")
        process.arguments = [config.path, "--sentinel"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw TestSupportError("cannot start a sentinel: \(error)")
        }
        self.process = process
        let deadline = Date().addingTimeInterval(10)
        while (try? self.cli("PING")) != "PONG" {
            guard process.isRunning, Date() < deadline else {
                throw TestSupportError("sentinel on port \(self.port) did not answer PING: \(self.log.suffix(500))")
            }
            usleep(20_000)
        }
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// The sentinel's log so far.
    public var log: String {
        (try? String(contentsOf: self.directory.appendingPathComponent("sentinel.log"), encoding: .utf8)) ?? ""
    }

    /// Stops it (SIGKILL) and waits for it to exit.
    public func stop() {
        guard self.process.isRunning else { return }
        kill(self.process.processIdentifier, SIGCONT)
        kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }

    /// Freezes it (SIGSTOP): it accepts TCP connections but never answers.
    public func pause() { kill(self.process.processIdentifier, SIGSTOP) }

    /// Thaws it (SIGCONT).
    public func resume() { kill(self.process.processIdentifier, SIGCONT) }

    /// Runs `redis-cli` against this sentinel and returns its output, trimmed.
    @discardableResult
    public func cli(_ arguments: String...) throws -> String {
        let result = try Subprocess.run(try RedisServer.executable("redis-cli"), ["-p", String(self.port)] + arguments)
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A Sentinel deployment on loopback: one master, one replica (`--replicaof`), three sentinels
/// (quorum 2, down after 1 s). Every process is stopped by PID when the group goes away.
public final class RedisSentinelGroup: Sendable {
    /// The name the sentinels monitor the master under.
    public let masterName = "mymaster"
    /// The data nodes: the first starts as master.
    public let servers: [RedisServer]
    /// The three sentinels.
    public let sentinels: [RedisSentinel]

    private init(servers: [RedisServer], sentinels: [RedisSentinel]) {
        self.servers = servers
        self.sentinels = sentinels
    }

    /// Starts the group and waits until the replica is in sync and every sentinel knows the
    /// replica and the two other sentinels (Redis-side state, polled).
    /// - Parameters:
    ///   - serverArguments: extra `redis-server` arguments for both data nodes, kept across
    ///     ``RedisServer/restart()``.
    ///   - replicaByCommand: the replica is made one by `REPLICAOF` once it runs rather than by
    ///     `--replicaof`, so ``RedisServer/restart()`` brings either node back as an empty master (as
    ///     a node without persistence comes back after a crash), never as a replica of the first.
    /// - Throws: ``TestSupportError`` saying what did not come up.
    public static func start(serverArguments: [String] = [], replicaByCommand: Bool = false) async throws -> RedisSentinelGroup {
        let master = try await RedisServer.start(arguments: serverArguments)
        let replica: RedisServer
        if replicaByCommand {
            replica = try await RedisServer.start(arguments: serverArguments)
            try await replica.cliAsync("REPLICAOF", "127.0.0.1", String(master.port))
        } else {
            replica = try await RedisServer.start(arguments: serverArguments + ["--replicaof", "127.0.0.1", String(master.port)])
        }
        let synced = try await poll(.seconds(20)) {
            try await replica.cliAsync("INFO", "replication").contains("master_link_status:up")
        }
        guard synced != nil else { throw TestSupportError("the replica on port \(replica.port) did not sync") }
        let sentinels = try await offCooperativePool {
            try (0..<3).map { _ in try RedisSentinel(masterName: "mymaster", masterPort: master.port) }
        }
        let group = RedisSentinelGroup(servers: [master, replica], sentinels: sentinels)
        let known = try await poll(.seconds(30), every: .milliseconds(100)) {
            for sentinel in sentinels {
                let info = try await group.masterInfo(sentinel)
                guard info["num-other-sentinels"] == "2", info["num-slaves"] == "1" else { return false }
            }
            return true
        }
        guard known != nil else {
            throw TestSupportError("the sentinels did not discover each other and the replica: \(sentinels[0].log.suffix(1000))")
        }
        return group
    }

    /// Stops every process of the group (SIGKILL, by PID) and waits for them to exit.
    public func stop() {
        for sentinel in self.sentinels { sentinel.stop() }
        for server in self.servers { server.stop() }
    }

    /// `SENTINEL master <name>` of one sentinel, as a dictionary.
    public func masterInfo(_ sentinel: RedisSentinel) async throws -> [String: String] {
        let lines = try await offCooperativePool { try sentinel.cli("SENTINEL", "master", self.masterName) }
            .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        var info: [String: String] = [:]
        for index in stride(from: 0, to: lines.count - 1, by: 2) { info[lines[index]] = lines[index + 1] }
        return info
    }

    /// The master's port as `sentinel` names it (`SENTINEL get-master-addr-by-name`).
    public func masterPort(via sentinel: RedisSentinel) async throws -> Int? {
        let reply = try await offCooperativePool { try sentinel.cli("SENTINEL", "get-master-addr-by-name", self.masterName) }
        let lines = reply.split(whereSeparator: \.isNewline)
        return lines.count == 2 ? Int(lines[1].trimmingCharacters(in: .whitespaces)) : nil
    }

    /// The `flags` of every replica `sentinel` knows (`slave` alone when it is up and well).
    public func replicaFlags(via sentinel: RedisSentinel) async throws -> [String] {
        let lines = try await offCooperativePool { try sentinel.cli("SENTINEL", "replicas", self.masterName) }
            .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        return zip(lines, lines.dropFirst()).filter { $0.0 == "flags" }.map(\.1)
    }

    /// The data node on `port`.
    public func server(port: Int) -> RedisServer? { self.servers.first { $0.port == port } }

    /// What `ROLE` says on the node on `port` (`master` or `slave`).
    public func role(port: Int) async throws -> String? {
        guard let server = self.server(port: port) else { return nil }
        return try await server.cliAsync("ROLE").split(whereSeparator: \.isNewline).first.map(String.init)
    }

    /// The sentinels as a YAML flow list, for `redis.sentinel.nodes`.
    public var nodesYAML: String {
        "[" + self.sentinels.map { "\"127.0.0.1:\($0.port)\"" }.joined(separator: ", ") + "]"
    }
}
