import HTTPTypes
import Logging
import ServiceLifecycle
import SluiceCore
import Synchronization
import UnixSignals

/// The configuration in force, swapped whole on reload; requests read a snapshot.
public final class ConfigStore: Sendable {
    /// One configuration with what requests derive from it, built once per load.
    public struct Snapshot: Sendable {
        /// The validated configuration.
        public let config: SluiceConfig
        /// `server.api_key_header` as a header name.
        public let apiKeyHeader: HTTPField.Name

        init(_ config: SluiceConfig) {
            self.config = config
            self.apiKeyHeader = HTTPField.Name(config.apiKeyHeader) ?? HTTPField.Name("X-API-Key")!
        }
    }

    private let value: Mutex<Snapshot>

    /// Creates a store holding `config`.
    public init(_ config: SluiceConfig) {
        self.value = Mutex(Snapshot(config))
    }

    /// The snapshot in force.
    public var current: Snapshot { self.value.withLock { $0 } }

    /// Puts a new configuration in force.
    public func replace(with config: SluiceConfig) {
        let snapshot = Snapshot(config)
        self.value.withLock { $0 = snapshot }
    }
}

/// Where a configuration came from, so it can be read again the same way.
public struct ConfigSource: Sendable {
    /// The YAML file.
    public var path: String
    /// Environment variables applied on top.
    public var environment: [String: String]
    /// Command-line flags applied on top.
    public var overrides: ConfigOverrides

    /// Creates a source.
    public init(path: String, environment: [String: String], overrides: ConfigOverrides) {
        self.path = path
        self.environment = environment
        self.overrides = overrides
    }
}

/// Re-reads the config file on SIGHUP. A file that does not validate is rejected with the
/// same messages as `sluice check-config`, and the running configuration stays.
public final class ConfigReloader: Service, Sendable {
    let store: ConfigStore
    let source: ConfigSource
    let cache: OverLimitCache?
    let logger: Logger

    /// Creates a reloader.
    public init(store: ConfigStore, source: ConfigSource, cache: OverLimitCache?, logger: Logger) {
        self.store = store
        self.source = source
        self.cache = cache
        self.logger = logger
    }

    /// Reloads now.
    /// - Returns: the new configuration, or the problems that kept the old one.
    @discardableResult
    public func reload() -> Result<SluiceConfig, ConfigError> {
        do {
            let config = try ConfigLoader.load(path: self.source.path, environment: self.source.environment, overrides: self.source.overrides)
            let old = self.store.current.config
            if config.redis != old.redis || config.host != old.host || config.port != old.port
                || config.overLimitCacheEntries != old.overLimitCacheEntries || config.logLevel != old.logLevel
            {
                self.logger.warning(
                    "redis, server, over_limit_cache and logging settings change only with a restart; the rest of the new config is in force"
                )
            }
            self.store.replace(with: config)
            // Remembered denials were made under the old limits.
            self.cache?.removeAll()
            self.logger.info("config reloaded", metadata: [
                "plans": "\(config.rules.plans.count)", "api_keys": "\(config.rules.keyCount)",
            ])
            return .success(config)
        } catch {
            self.logger.error("config reload rejected; the running config stays", metadata: ["problems": "\(error.description)"])
            return .failure(error)
        }
    }

    /// Waits for SIGHUP and reloads, until graceful shutdown.
    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                self.reload()
            }
        }
    }
}
