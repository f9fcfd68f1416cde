import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SluiceCore
import SluiceRedis
import Synchronization

/// The registry of API keys created at runtime, kept in Redis under `sluice:registry:`
/// (the one namespace without TTLs, docs/ARCHITECTURE.md, invariant 5) and mirrored in every instance's
/// memory, so `/v1/check` resolves runtime keys with no Redis round trip.
///
/// Changes go through `registry.lua` (hash + version + notice, atomically). Every instance
/// hears of them on a pub/sub channel within milliseconds, and compares the version once a
/// second as a safety net, re-reading the whole registry when it moved. The channel also
/// carries state notices (admin reset, quota change), on which instances drop the key's
/// remembered denials.
public final class KeyRegistry: Service, Sendable {
    /// The hash of runtime keys: key id → JSON record.
    public static let hashKey = "sluice:registry:{keys}"
    /// The registry's version, bumped by every change.
    public static let versionKey = "sluice:registry:{keys}:version"
    /// How often the version is compared, as a safety net for lost notices.
    public static let refreshInterval: Duration = .seconds(1)

    let redis: RedisClient
    let store: ConfigStore
    let cache: OverLimitCache?
    let logger: Logger
    let channel: String
    let subscriber: RedisSubscriber
    /// The registry version the local mirror reflects; -1 before the first read.
    private let version = Mutex<Int64>(-1)

    /// Creates the registry mirror.
    public init(redis: RedisClient, store: ConfigStore, cache: OverLimitCache?, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.redis = redis
        self.store = store
        self.cache = cache
        self.logger = logger
        let channel = "sluice:registry:events:\(redis.configuration.database)"
        self.channel = channel
        // The subscriber's events are handled after init, through a weak hop.
        let box = WeakBox()
        self.subscriber = RedisSubscriber(
            configuration: redis.configuration, channel: channel, eventLoopGroup: eventLoopGroup, logger: logger
        ) { event in
            await box.registry?.handle(event)
        }
        box.registry = self
    }

    private final class WeakBox: @unchecked Sendable {
        // Set once, in init, before the subscriber runs.
        weak var registry: KeyRegistry?
    }

    /// Subscribes to notices and compares versions every ``refreshInterval``, until shutdown.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await self.subscriber.run()
            }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        await self.refreshIfChanged()
                        try? await Task.sleep(for: Self.refreshInterval)
                    }
                }
            }
        }
    }

    func handle(_ event: RedisSubscriber.Event) async {
        switch event {
        case .subscribed:
            // Notices may have been missed while unsubscribed.
            await self.reloadAll()
        case .lost:
            break
        case .message(let payload):
            let parts = String(decoding: payload, as: UTF8.self).split(separator: " ")
            if parts.count == 3, parts[0] == "key", let version = Int64(parts[1]) {
                let id = String(parts[2])
                self.cache?.forget(keyID: id)
                await self.apply(id: id, version: version)
            } else if parts.count == 2, parts[0] == "state" {
                self.cache?.forget(keyID: String(parts[1]))
            }
        }
    }

    /// Re-reads the registry when its version is not the one mirrored.
    func refreshIfChanged() async {
        guard let reply = try? await self.redis.command(["GET", RedisArgument(Self.versionKey)]) else { return }
        let remote = reply.int ?? 0
        if remote != self.version.withLock({ $0 }) {
            await self.reloadAll()
        }
    }

    /// Reads the whole registry and puts it in force.
    func reloadAll() async {
        do {
            let version = try await self.redis.command(["GET", RedisArgument(Self.versionKey)]).int ?? 0
            let reply = try await self.redis.command(["HGETALL", RedisArgument(Self.hashKey)])
            var records: [String: RuntimeKey] = [:]
            for (_, value) in reply.pairs {
                if let record = Self.decode(value) {
                    records[record.id] = record
                }
            }
            // Only if nothing newer was applied meanwhile (a notice, a local change).
            self.version.withLock { mirrored in
                guard version >= mirrored else { return }
                self.store.replaceRuntimeKeys(records)
                mirrored = version
            }
            self.logger.debug("runtime key registry read", metadata: ["keys": "\(records.count)", "version": "\(version)"])
        } catch {
            self.logger.warning("cannot read the runtime key registry", metadata: ["error": "\(error)"])
        }
    }

    /// Applies the change numbered `version` to key `id`: the next one in order is read alone;
    /// a gap means notices were lost, so everything is read again.
    private func apply(id: String, version: Int64) async {
        let mirrored = self.version.withLock { $0 }
        if version <= mirrored { return }
        guard version == mirrored + 1 else {
            await self.reloadAll()
            return
        }
        do {
            if !self.applyInOrder(id: id, record: try await self.record(id: id), version: version) {
                await self.reloadAll()
            }
        } catch {
            await self.reloadAll()
        }
    }

    /// Puts change `version` (key `id` becomes `record`, or goes) in force if it is the next one
    /// after the mirrored version.
    /// - Returns: false when changes before it are missing (the caller reads everything again);
    ///   true when applied, or when it is already in force.
    private func applyInOrder(id: String, record: RuntimeKey?, version: Int64) -> Bool {
        self.version.withLock { mirrored -> Bool in
            guard version == mirrored + 1 else { return version <= mirrored }
            self.store.updateRuntimeKey(id: id, record: record)
            mirrored = version
            return true
        }
    }

    /// The runtime key `id` as Redis holds it now (nil: none), read with one HGET.
    /// - Throws: the Redis client's error.
    public func record(id: String) async throws -> RuntimeKey? {
        Self.decode(try await self.redis.command(["HGET", RedisArgument(Self.hashKey), RedisArgument(id)]))
    }

    private static func decode(_ reply: RedisReply) -> RuntimeKey? {
        guard case .bulk(let bytes) = reply else { return nil }
        return try? JSONDecoder().decode(RuntimeKey.self, from: Data(bytes))
    }

    /// A change `registry.lua` refused: the id exists (create) or does not (update, delete).
    public struct Refused: Error {}

    /// Creates, replaces or deletes (nil record) a runtime key in Redis, then in this
    /// instance's mirror at once; other instances follow the notice.
    /// - Throws: ``Refused``, or the Redis client's error.
    public func change(_ operation: Operation, id: String, record: RuntimeKey?) async throws {
        var arguments: [RedisArgument] = [RedisArgument(operation.rawValue), RedisArgument(id)]
        if let record {
            arguments.append(RedisArgument(bytes: Array(try JSONEncoder().encode(record))))
        } else {
            arguments.append("")
        }
        arguments.append(RedisArgument(self.channel))
        let reply = try await self.redis.run(.registry, keys: [RedisArgument(Self.hashKey), RedisArgument(Self.versionKey)], arguments: arguments)
        let values = reply.array?.compactMap(\.int) ?? []
        guard values.count == 2, values[0] == 1 else { throw Refused() }
        let version = values[1]
        self.cache?.forget(keyID: id)
        // This instance sees its own change at once, unless newer changes are already
        // mirrored (then the change is in them) or earlier ones are missing (the notices or
        // the version check bring everything in order).
        if !self.applyInOrder(id: id, record: record, version: version) {
            // Read-your-writes on this instance even when it lags behind.
            await self.reloadAll()
        }
    }

    /// What ``change(_:id:record:)`` does.
    public enum Operation: String, Sendable {
        case create
        case update
        case delete
    }

    /// Tells every instance that a key's limit state changed (reset, quota change), so
    /// they drop its remembered denials; this instance drops them at once.
    public func stateChanged(id: String) async {
        self.cache?.forget(keyID: id)
        _ = try? await self.redis.command(["PUBLISH", RedisArgument(self.channel), RedisArgument("state " + id)])
    }
}
