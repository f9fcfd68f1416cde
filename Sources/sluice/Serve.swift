import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOCore
import SluiceCore
import SluiceServer

/// `sluice serve --config PATH [--host H] [--port N]`.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve /v1/check until SIGTERM or SIGINT.")

    @Option(name: .long, help: "The YAML config file.")
    var config: String

    @Option(name: .long, help: "Address to listen on (overrides SLUICE_HOST and server.host).")
    var host: String?

    @Option(name: .long, help: "Port to listen on, 0 for any free port (overrides SLUICE_PORT and server.port).")
    var port: Int?

    @Option(name: .long, help: "Redis URL (overrides SLUICE_REDIS_URL and redis.url).")
    var redisURL: String?

    @Option(name: .long, help: "Log level (overrides SLUICE_LOG_LEVEL and logging.level).")
    var logLevel: String?

    func run() async throws {
        let overrides = ConfigOverrides(host: self.host, port: self.port, redisURL: self.redisURL, logLevel: self.logLevel)
        let config: SluiceConfig
        do {
            config = try ConfigLoader.load(path: self.config, overrides: overrides)
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(2)
        }
        let level = Logger.Level(config.logLevel)
        let json = config.logFormat == .json
        LoggingSystem.bootstrap { label in
            if json {
                return JSONLogHandler(label: label, level: level)
            }
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sluice")
        logger.info("starting", metadata: [
            "config": "\(config.source)",
            "plans": "\(config.rules.plans.count)",
            "api_keys": "\(config.rules.keyCount)",
            "redis": "\(Self.topologyDescription(config.redis))",
        ])
        let source = ConfigSource(path: self.config, environment: ProcessInfo.processInfo.environment, overrides: overrides)
        let app = buildApplication(config: config, logger: logger, source: source) { channel in
            logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        }
        try await app.runService()
        logger.info("stopped")
    }

    /// The Redis topology for the start-up log line: the URL (without its password), the
    /// Sentinel master's name, or the cluster's seed nodes.
    static func topologyDescription(_ redis: SluiceConfig.Redis) -> String {
        if let cluster = redis.cluster {
            return "cluster " + cluster.nodes.map { $0.host.contains(":") ? "[\($0.host)]:\($0.port)" : "\($0.host):\($0.port)" }.joined(separator: ",")
        }
        if let sentinel = redis.sentinel {
            return "sentinel \(sentinel.masterName)"
        }
        return "\(redis.url)"
    }
}

extension Logger.Level {
    /// The swift-log level of a configured one (SluiceCore does not depend on swift-log).
    fileprivate init(_ level: SluiceConfig.LogLevel) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}
