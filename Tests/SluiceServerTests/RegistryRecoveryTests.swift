import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

/// The runtime key registry when Redis forgets: flushed, restarted empty, restored from an
/// older snapshot. Every instance notices within 2 seconds, says so, and mirrors what Redis
/// holds again: keys created afterwards are known everywhere, keys that are gone stop working.
@Suite("Runtime key registry after Redis loses data", .serialized)
struct RegistryRecoveryTests {
    static let yaml = """
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans:
          p: { throttle: { rate: 0.01, burst: 50 } }
        """

    /// Two instances on one Redis, both subscribed.
    static func twoInstances(_ redis: RedisServer, _ body: @Sendable (ServerHarness, ServerHarness) async throws -> Void) async throws {
        let config = try ServerHarness.config(Self.yaml, redis: redis)
        try await ServerHarness.run(config) { a in
            try await ServerHarness.run(config) { b in
                try await RegistrySyncTests.waitForSubscribers(redis, 2)
                try await body(a, b)
            }
        }
    }

    static func create(_ h: ServerHarness, _ key: String) async throws {
        let created = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"p","api_key":"\#(key)"}"#)
        #expect(created.status == .created, "create \(key): \(created.status) \(created.text)")
    }

    /// Creates `key` once Redis takes writes again after a restart (a connection still coming
    /// back answers 503 at once rather than queueing).
    static func createAfterRestart(_ h: ServerHarness, _ key: String) async throws {
        let created = try await poll(.seconds(10)) {
            try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"p","api_key":"\#(key)"}"#).status == .created
        }
        #expect(created != nil, "create \(key) after the restart")
    }

    /// Waits up to 2 s until `key` is known (or unknown) on `h`.
    static func settles(_ h: ServerHarness, _ key: String, known: Bool) async throws -> Bool {
        try await poll(.seconds(2)) {
            let answer = try await h.check(key: key, cost: 0)
            return (answer.deniedBy != "unknown_api_key") == known
        } != nil
    }

    static func readyzWarnings(_ h: ServerHarness) async throws -> [String] {
        let ready = try await h.send("/readyz", method: .get, headers: [:], body: nil)
        return ready.json["warnings"] as? [String] ?? []
    }

    /// After the loss: gone keys stop on both, a key created on A works on A and B, the
    /// rollback is in both instances' /readyz.
    static func expectRecovered(_ a: ServerHarness, _ b: ServerHarness, gone: [String], kept: [String], what: String) async throws {
        for h in [a, b] {
            for key in gone {
                #expect(try await Self.settles(h, key, known: false), "\(what): \(key) still honoured after 2 s")
            }
            for key in kept {
                #expect(try await Self.settles(h, key, known: true), "\(what): \(key) not honoured")
            }
        }
        try await Self.createAfterRestart(a, "after-\(what)")
        for h in [a, b] {
            #expect(try await Self.settles(h, "after-\(what)", known: true), "\(what): a key created afterwards is not known everywhere")
            let warnings = try await Self.readyzWarnings(h)
            #expect(warnings.contains { $0.contains("runtime key registry went back") }, "\(what): \(warnings)")
        }
        // A revoke works on the new key, on both instances.
        let revoked = try await b.admin("/admin/v1/keys/\(ServerHarness.keyID("after-\(what)"))", method: .delete)
        #expect(revoked.status == .noContent)
        for h in [a, b] {
            #expect(try await Self.settles(h, "after-\(what)", known: false), "\(what): the revoked key is still honoured")
        }
    }

    @Test("FLUSHALL: keys that are gone stop working, keys created afterwards are known everywhere")
    func flushed() async throws {
        let redis = try await RedisServer.start()
        try await Self.twoInstances(redis) { a, b in
            try await Self.create(a, "before-1")
            try await Self.create(a, "before-2")
            #expect(try await Self.settles(b, "before-2", known: true))
            try await redis.cliAsync("FLUSHALL")
            try await Self.expectRecovered(a, b, gone: ["before-1", "before-2"], kept: [], what: "flush")
        }
    }

    @Test("Redis restarted empty: the same")
    func restartedEmpty() async throws {
        let redis = try await RedisServer.start()
        try await Self.twoInstances(redis) { a, b in
            try await Self.create(a, "before-1")
            #expect(try await Self.settles(b, "before-1", known: true))
            try await redis.restart()
            try await RegistrySyncTests.waitForSubscribers(redis, 2)
            try await a.waitForRedis("up")
            try await b.waitForRedis("up")
            try await Self.expectRecovered(a, b, gone: ["before-1"], kept: [], what: "restart")
        }
    }

    @Test("an older snapshot, changed again up to the same version: the other change is noticed, the registry read again")
    func olderSnapshot() async throws {
        let redis = try await RedisServer.start()
        try await Self.twoInstances(redis) { a, b in
            try await Self.create(a, "kept")
            try await redis.cliAsync("SAVE")
            try await Self.create(a, "lost-1")
            try await Self.create(a, "lost-2")
            #expect(try await Self.settles(b, "lost-2", known: true))
            // Back to the snapshot (version 1), then two new changes: version 3 again, the
            // version the instances mirror, with other keys.
            try await redis.restart()
            try await Self.createAfterRestart(a, "new-1")
            try await Self.create(a, "new-2")
            try await RegistrySyncTests.waitForSubscribers(redis, 2)
            try await Self.expectRecovered(a, b, gone: ["lost-1", "lost-2"], kept: ["kept", "new-1", "new-2"], what: "snapshot")
        }
    }

    @Test("a change is applied alone on every instance: no full read of the registry")
    func incremental() async throws {
        let redis = try await RedisServer.start()
        try await Self.twoInstances(redis) { a, b in
            try await Self.create(a, "first")
            #expect(try await Self.settles(b, "first", known: true))
            let before = try await redis.commandCalls()
            for index in 0..<20 {
                try await Self.create(a, "key-\(index)")
            }
            #expect(try await Self.settles(b, "key-19", known: true))
            let after = try await redis.commandCalls()
            #expect(after["hscan", default: 0] == before["hscan", default: 0], "a full read ran: \(after)")
            #expect(after["hgetall", default: 0] == 0)
            // One HGET per change on B (A applies its own change from what it wrote).
            #expect(after["hget", default: 0] - before["hget", default: 0] >= 20)
            #expect(try await Self.readyzWarnings(b).allSatisfy { !$0.contains("went back") })
        }
    }

    @Test("a Redis without persistence holding runtime keys is a /readyz warning; with AOF it is not")
    func persistenceWarning() async throws {
        for (arguments, warned) in [([String](), true), (["--appendonly", "yes"], false)] {
            let redis = try await RedisServer.start(arguments: arguments)
            let config = try ServerHarness.config(Self.yaml, redis: redis)
            try await ServerHarness.run(config) { a in
                #expect(try await Self.readyzWarnings(a).allSatisfy { !$0.contains("no persistence") }, "no runtime key yet")
                try await Self.create(a, "k")
                let seen = try await poll(.seconds(2)) {
                    try await Self.readyzWarnings(a).contains { $0.contains("no persistence") }
                }
                let warnings = try await Self.readyzWarnings(a)
                #expect((seen != nil) == warned, "\(arguments): \(warnings)")
            }
        }
    }
}
