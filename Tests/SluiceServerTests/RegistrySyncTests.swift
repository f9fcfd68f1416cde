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
                #expect(created.status == .created)
                let accepted = try await poll(.seconds(1)) { try await b.check(key: "shared-key", cost: 0).allowed == true }
                #expect(accepted != nil, "B did not accept the new key within 1 s")

                _ = try await a.admin("/admin/v1/keys/\(ServerHarness.keyID("shared-key"))", method: .put, body: #"{"plan":"big"}"#)
                let moved = try await poll(.seconds(1)) {
                    try await b.check(key: "shared-key", cost: 0).json["plan"] as? String == "big"
                }
                #expect(moved != nil, "B did not follow the move within 1 s")

                let revoked = try await a.admin("/admin/v1/keys/\(ServerHarness.keyID("shared-key"))", method: .delete)
                #expect(revoked.status == .noContent)
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
                #expect(added.status == .ok)
                let allowed = try await poll(.seconds(1)) { try await b.check(key: "quota-key").allowed == true }
                #expect(allowed != nil, "B kept denying from memory after the extension")
            }
        }
    }

    @Test("without notices, the once-a-second version check still brings a change within about a second")
    func safetyNet() async throws {
        let redis = try await RedisServer.start()
        let config = try ServerHarness.config(Self.yaml, redis: redis)
        try await ServerHarness.run(config) { b in
            // Once subscribed, B has read the registry (it does on every subscription).
            try await Self.waitForSubscribers(redis, 1)
            _ = try await poll(.seconds(10)) { try await redis.commandCalls("HGETALL") >= 1 }
            // A change written straight into Redis, with no pub/sub notice.
            let id = ServerHarness.keyID("quiet-key")
            let record = #"{"id":"\#(id)","plan":"big","created":1700000000000}"#
            _ = try await redis.cliAsync("HSET", "sluice:registry:{keys}", id, record)
            let getsBefore = try await redis.commandCalls("GET")
            _ = try await redis.cliAsync("INCR", "sluice:registry:{keys}:version")
            let seen = try await poll(.seconds(10)) { try await b.check(key: "quiet-key", cost: 0).allowed == true }
            _ = try #require(seen, "the version check did not pick up the change")
            // The version is read once a second (GET; decisions are EVALSHA), so the change came
            // with the first or second check after it (one may have been under way already),
            // followed by the full read's own GET. Counting reads, not milliseconds, keeps this
            // true on a loaded machine.
            let gets = try await redis.commandCalls("GET") - getsBefore
            #expect((2...3).contains(gets), "the change took \(gets) version reads")
        }
    }

    @Test("the subscription comes back after Redis restarts, and a key created meanwhile is honoured")
    func resubscribes() async throws {
        let redis = try await RedisServer.start()
        let config = try ServerHarness.config(Self.yaml, redis: redis)
        try await ServerHarness.run(config) { a in
            try await ServerHarness.run(config) { b in
                let subscribers = { () async throws -> String in
                    try await redis.cliAsync("PUBSUB", "NUMSUB", "sluice:registry:events:0").split(separator: "\n").last.map(String.init) ?? ""
                }
                try await Self.waitForSubscribers(redis, 2)
                try await redis.restart()
                // Both instances subscribe again (Redis-side state, not a guess about timing).
                let resubscribed = try await poll(.seconds(10)) { try await subscribers() == "2" }
                #expect(resubscribed != nil, "the instances did not subscribe again")
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
