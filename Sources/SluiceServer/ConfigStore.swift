import HTTPTypes
import Logging
import ServiceLifecycle
import SluiceCore
import Synchronization
import UnixSignals

/// The configuration in force, swapped whole on reload; requests read a snapshot.
public final class ConfigStore: Sendable {
    /// One configuration with what requests derive from it, built once per load. Immutable
    /// and shared: a request takes it with one retain, not a copy of every field.
    public final class Snapshot: Sendable {
        /// The validated configuration.
        public let config: SluiceConfig
        /// The config's keys and the runtime registry's, resolved to plans.
        public let keyring: Keyring
        /// `server.api_key_header` as a header name.
        public let apiKeyHeader: HTTPField.Name

        convenience init(_ config: SluiceConfig, runtime: RuntimeKeyTable) {
            self.init(
                config: config,
                keyring: Keyring(rules: config.rules, digester: KeyDigester(secret: config.keySecret), runtime: runtime),
                apiKeyHeader: HTTPField.Name(config.apiKeyHeader) ?? HTTPField.Name("X-API-Key")!
            )
        }

        private init(config: SluiceConfig, keyring: Keyring, apiKeyHeader: HTTPField.Name) {
            self.config = config
            self.keyring = keyring
            self.apiKeyHeader = apiKeyHeader
        }

    }

    private let value: Mutex<Snapshot>

    /// The runtime keys, shared by every snapshot and changed in place.
    private let runtime = RuntimeKeyTable()

    /// Creates a store holding `config` and no runtime keys yet.
    public init(_ config: SluiceConfig) {
        self.value = Mutex(Snapshot(config, runtime: self.runtime))
    }

    /// The snapshot in force.
    public var current: Snapshot { self.value.withLock { $0 } }

    /// Puts a new configuration in force, with the runtime keys already known.
    public func replace(with config: SluiceConfig) {
        self.value.withLock { $0 = Snapshot(config, runtime: self.runtime) }
    }

    /// Puts a whole new runtime registry in force.
    public func replaceRuntimeKeys(_ records: [String: RuntimeKey]) {
        self.runtime.replaceAll(records)
    }

    /// Puts a whole new runtime registry, built page by page, in force.
    public func replaceRuntimeKeys(_ table: RuntimeKeyTable.Builder) {
        self.runtime.replaceAll(table)
    }

    /// Adds, replaces or (nil) removes one runtime key: O(1), no snapshot is copied.
    public func updateRuntimeKey(id: String, record: RuntimeKey?) {
        self.runtime.update(id: id, record: record)
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
    let metrics: SluiceMetrics?
    let logger: Logger

    /// Creates a reloader.
    public init(store: ConfigStore, source: ConfigSource, cache: OverLimitCache?, metrics: SluiceMetrics? = nil, logger: Logger) {
        self.store = store
        self.source = source
        self.cache = cache
        self.metrics = metrics
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
                || config.bodyTimeoutMs != old.bodyTimeoutMs
            {
                self.logger.warning(
                    "redis, server (but forward_auth), over_limit_cache and logging settings change only with a restart; the rest of the new config is in force"
                )
            }
            self.store.replace(with: config)
            // Remembered denials were made under the old limits.
            self.cache?.removeAll()
            self.logger.notice("config reloaded", metadata: [
                "plans": "\(config.rules.plans.count)", "api_keys": "\(config.rules.keyCount)",
            ])
            for orphan in self.store.current.keyring.orphans {
                self.logger.warning("runtime key's plan is not in the config; the key is refused until it is", metadata: [
                    "key_id": "\(orphan.id)", "plan": "\(orphan.plan)",
                ])
            }
            self.metrics?.configReloaded(success: true)
            return .success(config)
        } catch {
            self.logger.error("config reload rejected; the running config stays", metadata: ["problems": "\(error.description)"])
            self.metrics?.configReloaded(success: false)
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
