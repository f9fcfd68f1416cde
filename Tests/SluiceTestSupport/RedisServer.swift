import Dispatch
import Foundation

/// A throwaway `redis-server` on a free port in a temp dir, for one test.
///
/// Started with no persistence; stopped by PID. Never touches a server it did not start.
public final class RedisServer: @unchecked Sendable {
    // @unchecked: `process` is replaced only by restart(), which tests call from one task.
    public let port: Int
    public let directory: URL
    private var process: Process
    private let extraArguments: [String]

    /// Starts a server and waits until it answers PING, on a Dispatch thread: starting one spawns
    /// processes and waits, which must not hold one of the few threads of Swift's cooperative
    /// pool while dozens of tests start their servers at once.
    /// - Parameter arguments: extra `redis-server` arguments (`--requirepass`, ...).
    /// - Throws: ``TestSupportError`` saying why it could not start.
    public static func start(arguments: [String] = []) async throws -> RedisServer {
        try await offCooperativePool { try RedisServer(arguments: arguments) }
    }

    private init(arguments: [String]) throws {
        self.port = try FreePort.find()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.extraArguments = arguments
        self.process = try Self.launch(port: self.port, directory: self.directory, arguments: arguments)
        try self.waitUntilReady()
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// `redis://127.0.0.1:<port>/0`.
    public var url: String { "redis://127.0.0.1:\(self.port)/0" }

    /// The server's PID.
    public var pid: Int32 { self.process.processIdentifier }

    /// Stops the server (SIGKILL, as a crash would) and waits for it to exit.
    public func stop() {
        guard self.process.isRunning else { return }
        kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }

    /// Starts the server again on the same port, empty (on a Dispatch thread, as ``start(arguments:)``).
    public func restart() async throws {
        try await offCooperativePool {
            self.stop()
            self.process = try Self.launch(port: self.port, directory: self.directory, arguments: self.extraArguments)
            try self.waitUntilReady()
        }
    }

    /// Runs `redis-cli` against this server and returns its output, trimmed.
    @discardableResult
    public func cli(_ arguments: String...) throws -> String {
        try self.cli(arguments)
    }

    /// Runs `redis-cli` against this server and returns its output, trimmed.
    @discardableResult
    public func cli(_ arguments: [String]) throws -> String {
        var args = ["-p", String(self.port)]
        if let password = self.password { args += ["--no-auth-warning", "-a", password] }
        let result = try Subprocess.run(try Self.executable("redis-cli"), args + arguments)
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `redis-cli` on a Dispatch thread, so a slow call never blocks Swift's cooperative pool.
    @discardableResult
    public func cliAsync(_ arguments: String...) async throws -> String {
        try await offCooperativePool { try self.cli(arguments) }
    }

    /// How many times `command` ran (`INFO commandstats`), 0 before its first run.
    public func commandCalls(_ command: String) async throws -> Int {
        try await self.commandCalls()[command.lowercased()] ?? 0
    }

    /// How many times each command ran, by lowercase name, from one `INFO commandstats` (so the
    /// counts are of one moment). Commands that scripts run count too.
    public func commandCalls() async throws -> [String: Int] {
        let stats = try await self.cliAsync("INFO", "commandstats")
        var calls: [String: Int] = [:]
        // INFO separates lines with \r\n, a single Character in Swift: split on any newline.
        for line in stats.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let parts = line.dropFirst("cmdstat_".count).split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let value = parts[1].split(separator: ",").first?.split(separator: "=").last, let count = Int(value)
            else { continue }
            calls[String(parts[0])] = count
        }
        return calls
    }

    /// Redis's clock (`TIME`) in milliseconds since the epoch.
    public func timeMs() async throws -> Int64 {
        let parts = try await self.cliAsync("TIME").split(separator: "\n").compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2 else { throw TestSupportError("unexpected TIME reply") }
        return parts[0] * 1000 + parts[1] / 1000
    }

    private var password: String? {
        guard let index = self.extraArguments.firstIndex(of: "--requirepass"), index + 1 < self.extraArguments.count else {
            return nil
        }
        return self.extraArguments[index + 1]
    }

    private func waitUntilReady() throws {
        // Wide: when a whole suite starts its clusters, sentinels and gateways at once on two
        // cores, a fresh redis-server has been seen to take over 10 s to answer.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !self.process.isRunning {
                let log = (try? String(contentsOf: self.directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
                throw TestSupportError("redis-server exited at start on port \(self.port): \(log.suffix(500))")
            }
            if (try? self.cli("PING")) == "PONG" {
                return
            }
            usleep(20_000)
        }
        throw TestSupportError("redis-server on port \(self.port) did not answer PING within 30 s")
    }

    private static func launch(port: Int, directory: URL, arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = try self.executable("redis-server")
        process.arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", directory.path, "--logfile", directory.appendingPathComponent("redis.log").path,
            "--daemonize", "no",
        ] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw TestSupportError("cannot start redis-server: \(error)")
        }
        return process
    }

    /// Finds a program on PATH or in /usr/bin.
    public static func executable(_ name: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories: [String] = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
        for directory in directories {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        throw TestSupportError("\(name) is not installed (scripts/test installs it: apt-get install redis-server redis-tools)")
    }
}
