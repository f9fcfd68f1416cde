import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import ServiceLifecycle
import SluiceCore
import SluiceRedis
import Synchronization

/// The registry of API keys created at runtime, kept in Redis under `sluice:registry:`
/// (the one namespace without TTLs, docs/ARCHITECTURE.md, invariant 5) and mirrored in every instance's
/// memory, so `/v1/check` resolves runtime keys with no Redis round trip.
///
/// Changes go through `registry.lua` (hash + version + change token + notice, atomically;
/// its call, reply and notices are ``RegistryScript``'s, in SluiceCore).
/// Every instance hears of them on a pub/sub channel within milliseconds and applies each one
/// alone (one HGET), in order. Once a second it compares the registry's position (version and
/// the token of its last change) with its own, as a safety net for lost notices and for a
/// registry that went back: Redis restarted empty, restored from an older snapshot, failed
/// over to a replica that lagged (docs/ARCHITECTURE.md, invariant 9, "Runtime key registry").
/// Then it reads the whole registry again, in pages, and says so. The channel also carries
/// state notices (admin reset, quota change), on which instances drop the key's remembered
/// denials.
public final class KeyRegistry: Service, Sendable {
    /// How often the position is compared, as a safety net for lost notices and rollbacks.
    public static let refreshInterval: Duration = .seconds(1)
    /// Fields per `HSCAN` page of a full read.
    static let pageSize = 1000
    /// How long a registry that went back stays listed in `/readyz`.
    static let rollbackNoticeSeconds: TimeInterval = 3600

    let redis: RedisClient
    let store: ConfigStore
    let cache: OverLimitCache?
    let logger: Logger
    let channel: String
    let subscriber: RedisSubscriber

    /// Where the registry stands: its version and the token of the change that made it ("" when
    /// no change is on record, or the change came from an instance that sets no tokens).
    struct Position: Equatable, Sendable {
        var version: Int64
        var token: String
    }

    /// A change heard before the ones it follows: kept until they come.
    struct PendingChange: Sendable {
        var id: String
        var record: RuntimeKey?
        var change: RegistryScript.Change?
    }

    /// Changes ahead of the mirror, by version, waiting for the ones between (at most
    /// ``maxPending``; more make the mirror read everything again).
    static let maxPending = 10_000

    /// The position the local mirror reflects; nil before the first read.
    private let position = Mutex<Position?>(nil)
    /// Changes heard out of order, by version (guarded by their own lock, taken inside `position`'s).
    private let pending = Mutex<[Int64: PendingChange]>([:])
    /// How long a position check that finds the registry ahead of the mirror waits for the
    /// notices on their way before it takes them for lost.
    static let noticeGrace: Duration = .milliseconds(250)
    /// The last time the registry was found to have gone back, and how.
    private let rollback = Mutex<(at: Date, what: String)?>(nil)
    /// Notices handled since freed memory was last given back (a burst of changes leaves its
    /// replies and decoded records' memory behind).
    private let noticesSinceTrim = Atomic<Int>(0)
    /// Notices after which the next position check gives freed memory back.
    static let noticesPerTrim = 10_000
    /// Redis keeps nothing across a restart (`save` and `appendonly` both off); nil: unknown.
    private let volatileRedis = Mutex<Bool?>(nil)

    /// Creates the registry mirror.
    public init(redis: RedisClient, store: ConfigStore, cache: OverLimitCache?, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.redis = redis
        self.store = store
        self.cache = cache
        self.logger = logger
        let channel = RegistryScript.channel(database: redis.configuration.database)
        self.channel = channel
        // The subscriber's events are handled after init, through a weak hop.
        let box = WeakBox()
        self.subscriber = RedisSubscriber(
            configuration: redis.configuration, channel: channel, eventLoopGroup: eventLoopGroup, logger: logger,
            topology: redis.topology
        ) { event in
            await box.registry?.handle(event)
        }
        box.registry = self
    }

    private final class WeakBox: @unchecked Sendable {
        // Set once, in init, before the subscriber runs.
        weak var registry: KeyRegistry?
    }

    /// Subscribes to notices and compares positions every ``refreshInterval``, until shutdown.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                try? await self.subscriber.run()
            }
            group.addTask {
                await cancelWhenGracefulShutdown {
                    var tick = 0
                    while !Task.isCancelled {
                        // Without a connection the commands would fail at once (and count as
                        // Redis errors): the subscription's return reads the registry anyway.
                        if self.noticesSinceTrim.load(ordering: .relaxed) >= Self.noticesPerTrim {
                            self.noticesSinceTrim.store(0, ordering: .relaxed)
                            releaseFreedMemory()
                        }
                        if self.redis.isConnected {
                            await self.refreshIfChanged()
                            if tick % 10 == 0 {
                                await self.checkPersistence()
                            }
                            tick += 1
                        }
                        try? await Task.sleep(for: Self.refreshInterval)
                    }
                }
            }
        }
    }

    /// What an operator should know about the registry, for `/readyz`.
    public var warnings: [String] {
        var warnings: [String] = []
        if let rollback = self.rollback.withLock({ $0 }), Date().timeIntervalSince(rollback.at) < Self.rollbackNoticeSeconds {
            warnings.append(
                "the runtime key registry went back (\(rollback.what)) at \(ISO8601DateFormatter().string(from: rollback.at)): "
                    + "Redis lost data, was restored from an older snapshot or failed over to a replica that lagged; resynced"
            )
        }
        if self.volatileRedis.withLock({ $0 }) == true, self.store.current.keyring.runtimeKeyCount > 0 {
            warnings.append(
                "Redis keeps no persistence (save and appendonly are off) and holds runtime API keys: a Redis restart loses them"
            )
        }
        return warnings
    }

    func handle(_ event: RedisSubscriber.Event) async {
        switch event {
        case .subscribed:
            // Notices may have been missed while unsubscribed.
            await self.refreshIfChanged()
        case .lost:
            break
        case .message(let payload):
            switch RegistryScript.Notice(payload: payload) {
            case .key(let version, let id, let change):
                self.cache?.forget(keyID: id)
                self.noticesSinceTrim.add(1, ordering: .relaxed)
                await self.apply(id: id, version: version, change: change)
            case .state(let id):
                self.cache?.forget(keyID: id)
            case nil:
                break
            }
        }
    }

    /// The registry's position in Redis now (one MGET).
    /// - Throws: the Redis client's error.
    func remotePosition() async throws -> Position {
        let reply = try await self.redis.command(["MGET", RedisArgument(RegistryScript.versionKey), RedisArgument(RegistryScript.tokenKey)])
        let values = reply.array ?? []
        let version = values.first.flatMap { $0.string.flatMap { Int64($0) } ?? $0.int } ?? 0
        let token = values.dropFirst().first?.string ?? ""
        return Position(version: version, token: token)
    }

    /// Reads the registry again when its position is not the one mirrored; a position behind
    /// the mirror's, or the same version with another change, is a registry that went back.
    func refreshIfChanged() async {
        // The mirror is read before and after Redis's position: a notice or a local change applied
        // in between would make Redis look behind. Only a mirror that stood still is compared.
        let mirrored = self.position.withLock { $0 }
        guard let remote = try? await self.remotePosition() else { return }
        guard self.position.withLock({ $0 }) == mirrored else { return }
        if remote == mirrored { return }
        if let mirrored, remote.version > mirrored.version {
            // Changes made since may still be on their way (a notice, this instance's own reply):
            // they come within milliseconds. A mirror still short of that version a moment later
            // has lost notices.
            try? await Task.sleep(for: Self.noticeGrace)
            if let caughtUp = self.position.withLock({ $0 }), caughtUp.version >= remote.version { return }
            self.logger.info(
                "runtime key registry notices were missed; reading it again",
                metadata: ["mirrored_version": "\(mirrored.version)", "redis_version": "\(remote.version)"]
            )
        } else if let mirrored {
            let what = "version \(mirrored.version) → \(remote.version)" + (remote.version == mirrored.version ? ", another change" : "")
            self.rollback.withLock { $0 = (Date(), what) }
            self.logger.warning(
                "the runtime key registry went back: Redis lost data, was restored from an older snapshot or failed over to a replica that lagged; reading it again",
                metadata: ["mirrored_version": "\(mirrored.version)", "redis_version": "\(remote.version)"]
            )
        }
        await self.reloadAll()
    }

    /// Reads the whole registry, in pages (`HSCAN`, never one reply of every key), and puts it
    /// in force with the position it was read at. Decisions keep reading the mirror meanwhile.
    func reloadAll() async {
        do {
            var attempts = 0
            while true {
                attempts += 1
                let started = self.position.withLock { $0 }
                let before = try await self.remotePosition()
                let records = try await self.scanAll()
                let after = try await self.remotePosition()
                // A change during the read: read again. After three tries the read is put in
                // force as of `before`: an HSCAN may have missed a change made during it, and a
                // position behind Redis's makes the next check read everything again.
                if before != after && attempts < 3 { continue }
                let position = before == after ? after : before
                let installed = self.position.withLock { mirrored -> Bool in
                    // Changes applied meanwhile (a notice, this instance's own change) are newer
                    // than this read, unless the registry went back: keep them then.
                    if mirrored != started, let current = mirrored, current.version > position.version { return false }
                    self.store.replaceRuntimeKeys(records)
                    mirrored = position
                    self.drainPending(&mirrored)
                    return true
                }
                // The read's pages, replies and decoded records are freed now: give the memory
                // back to the system rather than keep the peak of a large registry's read.
                releaseFreedMemory()
                self.logger.debug(
                    "runtime key registry read",
                    metadata: ["keys": "\(records.count)", "version": "\(position.version)", "installed": "\(installed)"]
                )
                return
            }
        } catch {
            self.logger.warning("cannot read the runtime key registry", metadata: ["error": "\(error)"])
        }
    }

    /// Every record of the registry, `pageSize` fields per round trip, straight into a table.
    private func scanAll() async throws -> RuntimeKeyTable.Builder {
        var records = RuntimeKeyTable.Builder()
        var cursor = "0"
        repeat {
            let reply = try await self.redis.command([
                "HSCAN", RedisArgument(RegistryScript.hashKey), RedisArgument(cursor), "COUNT", RedisArgument(String(Self.pageSize)),
            ])
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string, let page = parts[1].array else {
                throw DecisionScript.MalformedReply(description: "HSCAN returned \(reply)")
            }
            var index = 1
            while index < page.count {
                if let record = Self.decode(page[index]) {
                    records.add(record.id, record)
                }
                index += 2
            }
            cursor = next
        } while cursor != "0"
        return records
    }

    /// Applies change `version` of key `id` alone (one HGET) when it comes right after the
    /// mirrored position, or keeps it until the changes before it come; a change that does not
    /// fit the mirrored history (another previous token) makes everything be read again.
    private func apply(id: String, version: Int64, change: RegistryScript.Change?) async {
        guard let mirrored = self.position.withLock({ $0 }) else {
            await self.reloadAll()
            return
        }
        // Already in force, or a registry that went back: the position check settles the latter.
        if version <= mirrored.version { return }
        do {
            if self.applyInOrder(id: id, record: try await self.record(id: id), version: version, change: change) == .conflict {
                await self.reloadAll()
            }
        } catch {
            await self.reloadAll()
        }
    }

    /// What ``applyInOrder(id:record:version:change:)`` did.
    enum Applied: Equatable {
        /// In force now, with any kept change it made contiguous.
        case applied
        /// Already in force (the mirror is at or past it).
        case inForce
        /// Kept until the changes before it come.
        case kept
        /// It does not follow the mirrored history: read everything again.
        case conflict
    }

    /// Puts change `version` (key `id` becomes `record`, or goes) in force if it is the next one
    /// after the mirrored position, then every kept change that follows it: O(1) a change,
    /// whatever the registry's size. A change further ahead is kept for later.
    private func applyInOrder(id: String, record: RuntimeKey?, version: Int64, change: RegistryScript.Change?) -> Applied {
        self.position.withLock { mirrored -> Applied in
            guard let current = mirrored else { return .conflict }
            if version <= current.version { return .inForce }
            if version > current.version + 1 {
                let kept = self.pending.withLock { pending -> Bool in
                    guard pending.count < Self.maxPending else { return false }
                    pending[version] = PendingChange(id: id, record: record, change: change)
                    return true
                }
                return kept ? .kept : .conflict
            }
            guard change == nil || change?.previous == current.token else { return .conflict }
            self.store.updateRuntimeKey(id: id, record: record)
            mirrored = Position(version: version, token: change?.token ?? current.token)
            return self.drainPending(&mirrored) ? .applied : .conflict
        }
    }

    /// Applies the kept changes that follow `mirrored`, in order; drops those already in force.
    /// - Returns: false when a kept change does not follow the history (another previous token).
    @discardableResult
    private func drainPending(_ mirrored: inout Position?) -> Bool {
        self.pending.withLock { pending -> Bool in
            guard var current = mirrored else { return true }
            for version in pending.keys where version <= current.version {
                pending.removeValue(forKey: version)
            }
            while let next = pending.removeValue(forKey: current.version + 1) {
                guard next.change == nil || next.change?.previous == current.token else {
                    pending.removeAll()
                    mirrored = current
                    return false
                }
                self.store.updateRuntimeKey(id: next.id, record: next.record)
                current = Position(version: current.version + 1, token: next.change?.token ?? current.token)
            }
            mirrored = current
            return true
        }
    }

    /// Reads whether Redis persists anything (`CONFIG GET save appendonly`); managed Redis
    /// services that refuse CONFIG leave it unknown.
    func checkPersistence() async {
        guard let reply = try? await self.redis.command(["CONFIG", "GET", "save", "appendonly"]), reply.errorMessage == nil else { return }
        var values: [String: String] = [:]
        for (name, value) in reply.pairs {
            if let name = name.string { values[name] = value.string ?? "" }
        }
        guard let save = values["save"], let appendonly = values["appendonly"] else { return }
        let volatile = save.trimmingCharacters(in: .whitespaces).isEmpty && appendonly == "no"
        let before = self.volatileRedis.withLock { state -> Bool? in
            let before = state
            state = volatile
            return before
        }
        if volatile, before != true, self.store.current.keyring.runtimeKeyCount > 0 {
            self.logger.warning("Redis keeps no persistence (save and appendonly are off) and holds runtime API keys: a Redis restart loses them")
        }
    }

    /// The runtime key `id` as Redis holds it now (nil: none), read with one HGET.
    /// - Throws: the Redis client's error.
    public func record(id: String) async throws -> RuntimeKey? {
        Self.decode(try await self.redis.command(["HGET", RedisArgument(RegistryScript.hashKey), RedisArgument(id)]))
    }

    private static func decode(_ reply: RedisReply) -> RuntimeKey? {
        guard case .bulk(let bytes) = reply else { return nil }
        return RegistryScript.record(from: bytes)
    }

    /// Creates, replaces or deletes (nil record) a runtime key in Redis, then in this
    /// instance's mirror at once; other instances follow the notice.
    /// - Throws: ``RegistryScript/Refused``, or the Redis client's error.
    public func change(_ operation: RegistryScript.Operation, id: String, record: RuntimeKey?) async throws {
        let call = try RegistryScript.call(operation, id: id, record: record, channel: self.channel)
        let reply = try await self.redis.run(
            .registry, keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) }
        )
        let result = try RegistryScript.result((reply.array ?? []).map { (integer: $0.int, text: $0.string) })
        self.cache?.forget(keyID: id)
        // This instance sees its own change at once, unless newer changes are already
        // mirrored (then the change is in them) or earlier ones are still on their way (their
        // notices, or the replies of this instance's other changes, come within milliseconds).
        switch self.applyInOrder(id: id, record: record, version: result.version, change: result.change) {
        case .applied, .inForce:
            return
        case .conflict:
            await self.reloadAll()
        case .kept:
            // Read-your-writes: wait for the changes before it (a second at most), else read
            // everything (notices were lost).
            let deadline = ContinuousClock.now + .seconds(1)
            while ContinuousClock.now < deadline {
                if let mirrored = self.position.withLock({ $0 }), mirrored.version >= result.version { return }
                try? await Task.sleep(for: .milliseconds(2))
            }
            await self.reloadAll()
        }
    }

    /// Tells every instance that a key's limit state changed (reset, quota change), so
    /// they drop its remembered denials; this instance drops them at once.
    public func stateChanged(id: String) async {
        self.cache?.forget(keyID: id)
        _ = try? await self.redis.command(["PUBLISH", RedisArgument(self.channel), RedisArgument(RegistryScript.Notice.state(id: id).text)])
    }
}

/// Returns freed heap memory to the system: glibc's `malloc_trim`, looked up at run time since
/// Swift's Glibc module does not export `<malloc.h>`; nothing where it is absent.
private func releaseFreedMemory() {
    #if canImport(Glibc)
    typealias Trim = @convention(c) (Int) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }
    #endif
}
