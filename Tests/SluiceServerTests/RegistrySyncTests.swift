import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

/// Two instances on one Redis: what one instance's admin API changes, the other honours
/// within a second (pub/sub notices, and a version check once a second as a safety net).
@Suite("Runtime keys across instances")
struct RegistrySyncTests {
    static let yaml = """
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans:
          small: { throttle: { rate: 0.01, burst: 1 }, quota: { limit: 2, period: month } }
          big: { throttle: { rate: 0.01, burst: 50 } }
        """

    @Test("create, move and revoke on instance A are honoured by instance B within 1 s")
    func createMoveRevoke() async throws {
        let redis = try await RedisServer.start()
        let config = try ServerHarness.config(Self.yaml, redis: redis)
        try await ServerHarness.run(config) { a in
            try await ServerHarness.run(config) { b in
                try await Self.waitForSubscribers(redis, 2)
                #expect(try await b.check(key: "shared-key").deniedBy == "unknown_api_key")
                let created = try await a.admin("/admin/v1/keys", method: .post, body: #"{"plan":"small","api_key":"shared-key"}"#)
                #expect(created.status == .created && created.json["id"] as? String == ServerHarness.keyID("shared-key"))
                #expect(created.json["plan"] as? String == "small")
                let accepted = try await poll(.seconds(1)) { try await b.check(key: "shared-key", cost: 0).allowed == true }
                #expect(accepted != nil, "B did not accept the new key within 1 s")

                let put = try await a.admin("/admin/v1/keys/\(ServerHarness.keyID("shared-key"))", method: .put, body: #"{"plan":"big"}"#)
                #expect(put.status == .ok && put.json["plan"] as? String == "big", "\(put.text)")
                let moved = try await poll(.seconds(1)) {
                    try await b.check(key: "shared-key", cost: 0).json["plan"] as? String == "big"
                }
                #expect(moved != nil, "B did not follow the move within 1 s")

                let revoked = try await a.admin("/admin/v1/keys/\(ServerHarness.keyID("shared-key"))", method: .delete)
                #expect(revoked.status == .noContent)
                // B's admin API also stops knowing the key (its mirror, then the registry).
                let goneOnB = try await poll(.seconds(1)) {
                    try await b.admin("/admin/v1/keys/\(ServerHarness.keyID("shared-key"))").errorCode == "unknown_key"
                }
                #expect(goneOnB != nil, "B's admin API still shows the revoked key after 1 s")
                let refused = try await poll(.seconds(1)) {
                    try await b.check(key: "shared-key", cost: 0).deniedBy == "unknown_api_key"
                }
                #expect(refused != nil, "B still accepted the revoked key after 1 s")
            }
        }
    }

    @Test("a quota extension on A clears B's remembered denial within 1 s")
    func extensionClearsOtherInstancesCache() async throws {
        let redis = try await RedisServer.start()
        let yaml = Self.yaml + "\napi_keys: [ { key: quota-key, plan: small } ]\n"
        let yamlBig = yaml.replacingOccurrences(of: "small: { throttle: { rate: 0.01, burst: 1 }", with: "small: { throttle: { rate: 100, burst: 100 }")
        let config = try ServerHarness.config(yamlBig, redis: redis)
        try await ServerHarness.run(config) { a in
            try await ServerHarness.run(config) { b in
                // A notice sent before B subscribed would be lost, and B would deny until the month ends.
                try await Self.waitForSubscribers(redis, 2)
                #expect(try await b.check(key: "quota-key", cost: 2).allowed == true)
                let denied = try await b.check(key: "quota-key")
                #expect(denied.allowed == false && denied.deniedBy == "quota")
                // B remembers the denial until the month ends ...
                #expect(try await b.check(key: "quota-key").deniedBy == "quota")
                let evalBefore = try await redis.commandCalls("EVALSHA")
                #expect(try await b.check(key: "quota-key").deniedBy == "quota")
                #expect(try await redis.commandCalls("EVALSHA") == evalBefore, "the denial was answered from B's memory")
                // ... until A extends the quota.
                let added = try await a.admin("/admin/v1/keys/\(ServerHarness.keyID("quota-key"))/quota", method: .post, body: #"{"add":3}"#)
                // 2 of 2 used, 3 more: a limit of 5 for this window, 3 left.
                #expect(added.status == .ok && added.json["limit"] as? Int == 5 && added.json["remaining"] as? Int == 3, "\(added.text)")
                let allowed = try await poll(.seconds(1)) { try await b.check(key: "quota-key").allowed == true }
                #expect(allowed != nil, "B kept denying from memory after the extension")
            }
        }
    }

    @Test("without notices, the once-a-second position check still brings a change within about a second")
    func safetyNet() async throws {
        let redis = try await RedisServer.start()
        let config = try ServerHarness.config(Self.yaml, redis: redis)
        try await ServerHarness.run(config) { b in
            // Once subscribed, B has read the registry (it does on every subscription).
            try await Self.waitForSubscribers(redis, 1)
            let read = try await poll(.seconds(10)) { try await redis.commandCalls("HSCAN") >= 1 }
            try #require(read != nil, "B never read the registry")
            // A change written straight into Redis, with no pub/sub notice.
            let id = ServerHarness.keyID("quiet-key")
            let record = #"{"id":"\#(id)","plan":"big","created":1700000000000}"#
            _ = try await redis.cliAsync("HSET", "sluice:registry:{keys}", id, record)
            let before = try await Self.reads(redis)
            _ = try await redis.cliAsync("INCR", "sluice:registry:{keys}:version")
            let seen = try await poll(.seconds(10)) { try await b.check(key: "quiet-key", cost: 0).allowed == true }
            _ = try #require(seen, "the version check did not pick up the change")
            // It came with the first or second version check after the change (one may have been
            // under way already), not through some other read.
            let afterChange = try await Self.reads(redis)
            #expect((1...2).contains(afterChange.versionChecks - before.versionChecks), "\(before) → \(afterChange)")
            #expect(afterChange.fullReads - before.fullReads == 1, "one full read of the registry: \(before) → \(afterChange)")

            // And the check runs about once a second: counted over at least 5 s of Redis's clock
            // with nothing else reading, 3 to 7 checks (a check every 2.5 s or more gives at most
            // 2; a busy loop, far more).
            let start = try await redis.timeMs()
            let first = try await Self.reads(redis)
            _ = try await poll(.seconds(30), every: .milliseconds(250)) { try await redis.timeMs() - start >= 5000 }
            let last = try await Self.reads(redis)
            let span = try await redis.timeMs() - start
            let checks = last.versionChecks - first.versionChecks
            // 5 s gives 3...7; a longer span (a stalled machine) allows as many more.
            let seconds = Int(span / 1000)
            #expect((max(3, seconds - 2)...(seconds + 2)).contains(checks), "\(checks) version checks in \(span) ms")
        }
    }

    /// The registry's reads so far, from INFO commandstats. Every MGET is a position check's
    /// (version and last change token) or a full read's (one before and one after its HSCAN
    /// pages; this suite's registry fits one page).
    static func reads(_ redis: RedisServer) async throws -> (versionChecks: Int, fullReads: Int) {
        let calls = try await redis.commandCalls()
        let fullReads = calls["hscan"] ?? 0
        return ((calls["mget"] ?? 0) - 2 * fullReads, fullReads)
    }

    @Test("the subscription comes back after Redis restarts, and a key created meanwhile is honoured")
    func resubscribes() async throws {
        let redis = try await RedisServer.start()
        let config = try ServerHarness.config(Self.yaml, redis: redis)
        try await ServerHarness.run(config) { a in
            try await ServerHarness.run(config) { b in
                try await Self.waitForSubscribers(redis, 2)
                try await redis.restart()
                // Both instances subscribe again (Redis-side state, not a guess about timing).
                try await Self.waitForSubscribers(redis, 2)
                // Both instances reconnect; then a change on A reaches B.
                try await a.waitForRedis("up")
                try await b.waitForRedis("up")
                let created = try await poll(.seconds(10)) {
                    try await a.admin("/admin/v1/keys", method: .post, body: #"{"plan":"big","api_key":"after-restart"}"#).status == .created
                }
                #expect(created != nil)
                let accepted = try await poll(.seconds(10)) { try await b.check(key: "after-restart", cost: 0).allowed == true }
                #expect(accepted != nil)
            }
        }
    }

    /// Waits until `count` instances subscribe to the registry's notices (Redis-side state):
    /// the harness waits for data connections only, and a notice before that would be missed.
    static func waitForSubscribers(_ redis: RedisServer, _ count: Int) async throws {
        let subscribed = try await poll(.seconds(10)) {
            try await redis.cliAsync("PUBSUB", "NUMSUB", "sluice:registry:events:0").split(separator: "\n").last.map(String.init) == String(count)
        }
        if subscribed == nil { throw TestSupportError("\(count) instances did not subscribe to registry notices within 10 s") }
    }
}
