import Foundation

/// A `sluice serve` process started from the built binary, on a free port.
public final class SluiceProcess: @unchecked Sendable {
    public let port: Int
    public let configPath: URL
    public let logPath: URL
    private let process: Process

    /// The built `sluice` binary: `$SLUICE_BIN`, else `.build/debug/sluice` in this package.
    public static func binary() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["SLUICE_BIN"] {
            return URL(fileURLWithPath: path)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let candidate = root.appendingPathComponent(".build/debug/sluice")
        guard FileManager.default.isExecutableFile(atPath: candidate.path) else {
            throw TestSupportError("no sluice binary at \(candidate.path); run swift build (scripts/test does)")
        }
        return candidate
    }

    /// Runs the `sluice` binary to completion (`check-config`, the admin CLI...), off the
    /// cooperative pool.
    /// - Returns: its exit status and output (stdout and stderr together).
    public static func runCLI(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let binary = try self.binary()
        return try await offCooperativePool { try Subprocess.run(binary, arguments, environment: environment) }
    }

    /// Starts `sluice serve` with a config file holding `yaml`.
    /// - Parameters:
    ///   - environment: extra environment (SLUICE_KEY_SECRET defaults to a test secret).
    ///   - port: the decision port (default: a free one).
    public init(yaml: String, port: Int? = nil, environment: [String: String] = [:]) throws {
        self.port = try port ?? FreePort.find()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.configPath = directory.appendingPathComponent("sluice.yaml")
        self.logPath = directory.appendingPathComponent("sluice.log")
        try yaml.write(to: self.configPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: self.logPath.path, contents: nil)

        let process = Process()
        process.executableURL = try Self.binary()
        process.arguments = ["serve", "--config", self.configPath.path, "--port", String(self.port)]
        var env = ProcessInfo.processInfo.environment
        env["SLUICE_KEY_SECRET"] = "integration-test-secret"
        for (name, value) in environment { env[name] = value }
        process.environment = env
        let log = try FileHandle(forWritingTo: self.logPath)
        // The child has its own copy of the descriptor once started.
        defer { try? log.close() }
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
    }

    deinit {
        self.kill()
        try? FileManager.default.removeItem(at: self.configPath.deletingLastPathComponent())
    }

    /// The process's output so far.
    public var log: String {
        (try? String(contentsOf: self.logPath, encoding: .utf8)) ?? ""
    }

    /// The process id.
    public var pid: Int32 { self.process.processIdentifier }

    /// Whether it still runs.
    public var isRunning: Bool { self.process.isRunning }

    /// Waits until `/readyz` answers 200 (and, if asked, says Redis is up).
    public func waitUntilReady(redisUp: Bool = true, timeout: TimeInterval = 20) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard self.process.isRunning else {
                throw TestSupportError("sluice exited with \(self.process.terminationStatus): \(self.log)")
            }
            if let ready = try? await HTTPTestClient.request(port: self.port, path: "/readyz", timeout: 2), ready.status == 200,
                !redisUp || (ready.json["redis"] as? String) == "up"
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSupportError("sluice on port \(self.port) not ready within \(timeout) s: \(self.log)")
    }

    /// Sends SIGTERM (or `signal`) and waits for the exit status (SIGKILL after `timeout`).
    @discardableResult
    public func terminate(signal: Int32 = SIGTERM, timeout: TimeInterval = 10) async -> Int32 {
        guard self.process.isRunning else { return self.process.terminationStatus }
        Foundation.kill(self.process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while self.process.isRunning && Date() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if self.process.isRunning {
            self.kill()
            return -1
        }
        return self.process.terminationStatus
    }

    /// Kills the process at once.
    public func kill() {
        guard self.process.isRunning else { return }
        Foundation.kill(self.process.processIdentifier, SIGKILL)
        self.process.waitUntilExit()
    }
}
