import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

/// The admin API's runtime keys, key state, quota changes and usage, on one instance
/// against a real redis-server.
@Suite("Admin API: keys, state, quota, usage")
struct AdminKeysTests {
    static let yaml = """
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans:
          basic: { throttle: { rate: 0.01, burst: 3 }, quota: { limit: 10, period: day, offset_hours: 2 }, routes: { "POST /v1/predict": { rate: 0.01, burst: 2, additional: true } } }
          pro: { throttle: { rate: 0.01, burst: 20 } }
          metered: { throttle: { rate: 100, burst: 100 }, quota: { limit: 10, period: day, offset_hours: 2 } }
        api_keys: [ { key: config-key, plan: basic, name: from the file }, { key: metered-key, plan: metered } ]
        """

    static func config(_ redis: RedisServer) throws -> SluiceConfig {
        try ServerHarness.config(Self.yaml, redis: redis)
    }

    @Test("create: 201 with a generated key shown once; the key decides at once; bad input is 400, an unknown plan or a known key 409")
    func create() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try Self.config(redis)) { h in
            let created = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"pro","name":"team a"}"#)
            #expect(created.status == .created)
            let key = try #require(created.json["api_key"] as? String)
            #expect(key.hasPrefix("sk-") && key.count >= 32)
            #expect(created.json["id"] as? String == ServerHarness.keyID(key))
            #expect(created.json["plan"] as? String == "pro" && created.json["name"] as? String == "team a")
            #expect(created.json["source"] as? String == "runtime" && (created.json["created"] as? String)?.hasSuffix("Z") == true)
            let check = try await h.check(key: key)
            #expect(check.allowed == true && check.json["plan"] as? String == "pro" && check.remaining == 19)
            // The registry lives in Redis under sluice:registry:, holding no raw key.
            let registry = try await redis.cliAsync("HGETALL", "sluice:registry:{keys}")
            #expect(registry.contains(ServerHarness.keyID(key)) && !registry.contains(key))
            #expect(try await redis.cliAsync("TTL", "sluice:registry:{keys}") == "-1")
            // The new key reads back as created (the raw key is not part of a key's view).
            let shown = try await h.admin("/admin/v1/keys/\(ServerHarness.keyID(key))")
            #expect(shown.status == .ok && shown.json["id"] as? String == ServerHarness.keyID(key) && shown.json["plan"] as? String == "pro")
            #expect(shown.json["name"] as? String == "team a" && shown.json["source"] as? String == "runtime")
            #expect(shown.json["created"] as? String == created.json["created"] as? String && shown.json["api_key"] == nil)

            let given = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"basic","api_key":"chosen-key"}"#)
            #expect(given.status == .created && given.json["api_key"] as? String == "chosen-key" && given.json["name"] is NSNull)
            #expect(given.json["id"] as? String == ServerHarness.keyID("chosen-key") && given.json["plan"] as? String == "basic")
            #expect(try await h.check(key: "chosen-key", cost: 0).json["plan"] as? String == "basic")
            let again = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"pro","api_key":"chosen-key"}"#)
            #expect(again.status == .conflict && again.errorCode == "key_exists")
            let clash = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"pro","api_key":"config-key"}"#)
            #expect(clash.status == .conflict && clash.errorCode == "key_exists")
            let unknownPlan = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"nope"}"#)
            // A well-formed request naming a plan the config in force lacks: a conflict with the config.
            #expect(unknownPlan.status == .conflict && unknownPlan.errorCode == "unknown_plan")
            for bad in ["{", #"{"name":"x"}"#, #"{"plan":3}"#, #"{"plan":"pro","api_key":""}"#, "[]"] {
                let answer = try await h.admin("/admin/v1/keys", method: .post, body: bad)
                #expect(answer.status == .badRequest && answer.errorCode == "invalid_body", "\(bad)")
            }
            let longName = String(repeating: "n", count: 201)
            let long = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"pro","name":"\#(longName)"}"#)
            #expect(long.status == .badRequest && long.errorCode == "invalid_body", "\(long.text)")
            let anonymous = try await h.admin("/admin/v1/keys", method: .post, token: nil, body: #"{"plan":"pro","api_key":"sneaky"}"#)
            #expect(anonymous.status == .unauthorized && anonymous.errorCode == "missing_token")
            // None of the refused requests created or changed a key: the two created above are
            // all the registry holds, chosen-key kept its plan, and the config key still decides.
            #expect(try await redis.cliAsync("HLEN", "sluice:registry:{keys}") == "2")
            #expect(try await h.check(key: "sneaky", cost: 0).deniedBy == "unknown_api_key")
            #expect(try await h.admin("/admin/v1/keys/\(ServerHarness.keyID("chosen-key"))").json["plan"] as? String == "basic")
            #expect(try await h.check(key: "config-key", cost: 0).json["plan"] as? String == "basic")
        }
    }

    @Test("list: config and runtime keys by id, filtered by plan, paginated with a cursor")
    func list() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try Self.config(redis)) { h in
            var created: Set<String> = []
            for index in 0..<5 {
                let answer = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"pro","api_key":"list-\#(index)"}"#)
                created.insert(try #require(answer.json["id"] as? String))
            }
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let path = "/admin/v1/keys?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await h.admin(path)
                #expect(page.status == .ok)
                let keys = try #require(page.json["keys"] as? [[String: Any]])
                #expect(keys.count <= 2)
                seen += keys.compactMap { $0["id"] as? String }
                cursor = page.json["next_cursor"] as? String
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 4 && seen.count == 7 && seen == seen.sorted())
            #expect(Set(seen) == created.union([ServerHarness.keyID("config-key"), ServerHarness.keyID("metered-key")]))
            let pro = try await h.admin("/admin/v1/keys?plan=pro")
            let proKeys = try #require(pro.json["keys"] as? [[String: Any]])
            #expect(proKeys.count == 5 && proKeys.allSatisfy { $0["source"] as? String == "runtime" && $0["plan"] as? String == "pro" })
            let basic = try await h.admin("/admin/v1/keys?plan=basic")
            let config = try #require((basic.json["keys"] as? [[String: Any]])?.first)
            #expect(config["source"] as? String == "config" && config["name"] as? String == "from the file" && config["created"] is NSNull)
            // The URI names the plan: nothing answers to it.
            let nope = try await h.admin("/admin/v1/keys?plan=nope")
            #expect(nope.status == .notFound && nope.errorCode == "unknown_plan")
            for bad in ["limit=0", "limit=1001", "limit=x"] {
                #expect(try await h.admin("/admin/v1/keys?\(bad)").errorCode == "invalid_query")
            }
            let one = try await h.admin("/admin/v1/keys/\(ServerHarness.keyID("list-0"))")
            #expect(one.status == .ok && one.json["id"] as? String == ServerHarness.keyID("list-0") && one.json["plan"] as? String == "pro")
            #expect(one.json["source"] as? String == "runtime" && one.json["name"] is NSNull && (one.json["created"] as? String)?.hasSuffix("Z") == true)
            let configOne = try await h.admin("/admin/v1/keys/\(ServerHarness.keyID("config-key"))")
            #expect(configOne.json["plan"] as? String == "basic" && configOne.json["source"] as? String == "config" && configOne.json["name"] as? String == "from the file")
            let unknown = try await h.admin("/admin/v1/keys/unknown-id")
            #expect(unknown.status == .notFound && unknown.errorCode == "unknown_key")
        }
    }

    @Test("move and revoke: the next check follows at once; config keys and unknown plans are 409, unknown ids 404")
    func moveAndRevoke() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try Self.config(redis)) { h in
            let created = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"pro","api_key":"mover","name":"m"}"#)
            #expect(created.status == .created && created.json["plan"] as? String == "pro")
            #expect(try await h.check(key: "mover", cost: 0).json["plan"] as? String == "pro")
            let id = ServerHarness.keyID("mover")
            let moved = try await h.admin("/admin/v1/keys/\(id)", method: .put, body: #"{"plan":"basic"}"#)
            #expect(moved.status == .ok && moved.json["plan"] as? String == "basic" && moved.json["id"] as? String == id)
            // The rest of the record is kept: name, creation time, source.
            #expect(moved.json["name"] as? String == "m" && moved.json["source"] as? String == "runtime")
            #expect(moved.json["created"] as? String == created.json["created"] as? String)
            // Visible afterwards to the admin API and to decisions (basic's burst of 3, not pro's 20).
            #expect(try await h.admin("/admin/v1/keys/\(id)").json["plan"] as? String == "basic")
            let afterMove = try await h.check(key: "mover")
            #expect(afterMove.json["plan"] as? String == "basic" && afterMove.remaining(of: "throttle") == 2)
            let toNowhere = try await h.admin("/admin/v1/keys/\(id)", method: .put, body: #"{"plan":"nope"}"#)
            // 409, not 404: the key exists; the plan named is what the config lacks.
            #expect(toNowhere.status == .conflict && toNowhere.errorCode == "unknown_plan")
            #expect(try await h.admin("/admin/v1/keys/\(id)", method: .put, body: #"{}"#).errorCode == "invalid_body")
            // Refused moves changed nothing.
            #expect(try await h.admin("/admin/v1/keys/\(id)").json["plan"] as? String == "basic")
            let configID = ServerHarness.keyID("config-key")
            let configMove = try await h.admin("/admin/v1/keys/\(configID)", method: .put, body: #"{"plan":"pro"}"#)
            #expect(configMove.status == .conflict && configMove.errorCode == "config_key")
            let configRevoke = try await h.admin("/admin/v1/keys/\(configID)", method: .delete)
            #expect(configRevoke.status == .conflict && configRevoke.errorCode == "config_key")
            #expect(try await h.check(key: "config-key", cost: 0).json["plan"] as? String == "basic")
            let nowhere = try await h.admin("/admin/v1/keys/no-such-id", method: .put, body: #"{"plan":"pro"}"#)
            #expect(nowhere.status == .notFound && nowhere.errorCode == "unknown_key")
            #expect(try await redis.cliAsync("HEXISTS", "sluice:registry:{keys}", "no-such-id") == "0")

            let revoked = try await h.admin("/admin/v1/keys/\(id)", method: .delete)
            #expect(revoked.status == .noContent && revoked.text.isEmpty)
            let refused = try await h.check(key: "mover")
            #expect(refused.allowed == false && refused.deniedBy == "unknown_api_key")
            // Gone from the admin API too: no view, not listed, unknown to a lookup.
            let gone = try await h.admin("/admin/v1/keys/\(id)")
            #expect(gone.status == .notFound && gone.errorCode == "unknown_key")
            let listed = try #require(try await h.admin("/admin/v1/keys").json["keys"] as? [[String: Any]])
            #expect(!listed.contains { $0["id"] as? String == id } && listed.count == 2)
            let lookup = try await h.admin("/admin/v1/keys/lookup", method: .post, body: #"{"api_key":"mover"}"#)
            #expect(lookup.json["id"] as? String == id && lookup.json["known"] as? Bool == false)
            #expect(try await h.admin("/admin/v1/keys/\(id)", method: .delete).errorCode == "unknown_key")
            #expect(try await redis.cliAsync("HLEN", "sluice:registry:{keys}") == "0")
        }
    }

    @Test("state: read without consuming; reset restores the full burst, all limits or one")
    func stateAndReset() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try Self.config(redis)) { h in
            let id = ServerHarness.keyID("config-key")
            _ = try await h.check(key: "config-key", route: "POST /v1/predict")
            _ = try await h.check(key: "config-key", route: "POST /v1/predict")
            let state = try await h.admin("/admin/v1/keys/\(id)/state")
            #expect(state.status == .ok && state.json["plan"] as? String == "basic" && state.json["source"] as? String == "config")
            let limits = try #require(state.json["limits"] as? [[String: Any]])
            #expect(limits.compactMap { $0["name"] as? String } == ["throttle", "quota", "route:POST /v1/predict"])
            let throttle = limits[0]
            #expect(throttle["kind"] as? String == "bucket" && throttle["remaining"] as? Int == 1 && throttle["limit"] as? Int == 3)
            #expect((throttle["tokens"] as? Double).map { $0 >= 1 && $0 < 1.1 } == true && (throttle["ttl_ms"] as? Int ?? 0) > 0)
            let quota = limits[1]
            #expect(quota["kind"] as? String == "quota" && quota["used"] as? Int == 2 && quota["remaining"] as? Int == 8)
            #expect(quota["base_limit"] as? Int == 10 && quota["extension"] as? Int == 0)
            #expect((quota["window_start"] as? String)?.hasSuffix("T02:00:00Z") == true && (quota["window_end"] as? String)?.hasSuffix("T02:00:00Z") == true)
            let route = limits[2]
            #expect(route["remaining"] as? Int == 0)
            // Reading consumed nothing.
            let again = try await h.admin("/admin/v1/keys/\(id)/state")
            #expect(((again.json["limits"] as? [[String: Any]])?[1])?["used"] as? Int == 2)
            #expect(try await h.check(key: "config-key", route: "POST /v1/predict").deniedBy == "route:POST /v1/predict")

            // Reset one limit: the route bucket is full again, the throttle is not.
            let one = try await h.admin("/admin/v1/keys/\(id)/state/reset?limit=route:POST%20/v1/predict", method: .post)
            #expect(one.status == .ok && one.json["reset"] as? [String] == ["route:POST /v1/predict"])
            let afterOne = try await h.check(key: "config-key", route: "POST /v1/predict")
            #expect(afterOne.allowed == true && afterOne.remaining(of: "throttle") == 0)
            // A limit the key's plan does not have is 409 (the key exists), an empty name 400.
            let nope = try await h.admin("/admin/v1/keys/\(id)/state/reset?limit=nope", method: .post)
            #expect(nope.status == .conflict && nope.errorCode == "unknown_limit")
            let empty = try await h.admin("/admin/v1/keys/\(id)/state/reset?limit=", method: .post)
            #expect(empty.status == .badRequest && empty.errorCode == "invalid_query")

            // Reset all: full burst, quota untouched window. The key's state still reads.
            let all = try await h.admin("/admin/v1/keys/\(id)/state/reset", method: .post)
            #expect(all.status == .ok && all.json["reset"] as? [String] == ["throttle", "quota", "route:POST /v1/predict"])
            // Read back: every limit full, and no state key left (ttl_ms -2): a full bucket or an
            // unused window has no key (docs/ARCHITECTURE.md, Redis key layout; invariant 5).
            let afterAll = try await h.admin("/admin/v1/keys/\(id)/state")
            #expect(afterAll.status == .ok && afterAll.json["id"] as? String == id)
            let reread = try #require(afterAll.json["limits"] as? [[String: Any]])
            #expect(reread.compactMap { $0["remaining"] as? Int } == [3, 10, 2], "\(afterAll.text)")
            #expect(reread.compactMap { $0["ttl_ms"] as? Int } == [-2, -2, -2])
            #expect(reread[1]["used"] as? Int == 0 && reread[0]["tokens"] as? Double == 3)
            let full = try await h.check(key: "config-key")
            #expect(full.allowed == true && full.remaining(of: "throttle") == 2 && full.remaining(of: "quota") == 9)
            let unknownState = try await h.admin("/admin/v1/keys/unknown/state")
            #expect(unknownState.status == .notFound && unknownState.errorCode == "unknown_key")
            let unknownReset = try await h.admin("/admin/v1/keys/unknown/state/reset", method: .post)
            #expect(unknownReset.status == .notFound && unknownReset.errorCode == "unknown_key")
        }
    }

    @Test("DELETE .../state, the former spelling of the reset, still resets the same way")
    func formerResetSpelling() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try Self.config(redis)) { h in
            let id = ServerHarness.keyID("config-key")
            _ = try await h.check(key: "config-key", route: "POST /v1/predict")
            _ = try await h.check(key: "config-key", route: "POST /v1/predict")
            let one = try await h.admin("/admin/v1/keys/\(id)/state?limit=route:POST%20/v1/predict", method: .delete)
            #expect(one.status == .ok && one.json["reset"] as? [String] == ["route:POST /v1/predict"])
            #expect(try await h.check(key: "config-key", route: "POST /v1/predict").allowed == true)
            #expect(try await h.admin("/admin/v1/keys/\(id)/state?limit=nope", method: .delete).errorCode == "unknown_limit")
            let all = try await h.admin("/admin/v1/keys/\(id)/state", method: .delete)
            #expect(all.status == .ok && all.json["reset"] as? [String] == ["throttle", "quota", "route:POST /v1/predict"])
            let full = try await h.check(key: "config-key")
            #expect(full.allowed == true && full.remaining(of: "throttle") == 2 && full.remaining(of: "quota") == 9)
        }
    }

    @Test("quota: add and set are seen by the next check; bad changes are 400, a plan without quota 409")
    func quota() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try Self.config(redis)) { h in
            let id = ServerHarness.keyID("metered-key")
            _ = try await h.check(key: "metered-key", cost: 3)
            let added = try await h.admin("/admin/v1/keys/\(id)/quota", method: .post, body: #"{"add":5}"#)
            #expect(added.status == .ok && added.json["limit"] as? Int == 15 && added.json["remaining"] as? Int == 12)
            #expect(added.json["extension"] as? Int == 5 && added.json["used"] as? Int == 3)
            let next = try await h.check(key: "metered-key")
            #expect(next.limits.first { $0["name"] as? String == "quota" }?["limit"] as? Int == 15)
            #expect(next.remaining(of: "quota") == 11)
            let set = try await h.admin("/admin/v1/keys/\(id)/quota", method: .post, body: #"{"remaining":1}"#)
            // 4 used (3 + 1): one more remaining makes the window's limit 5, an extension of -5.
            #expect(set.status == .ok && set.json["remaining"] as? Int == 1 && set.json["limit"] as? Int == 5)
            #expect(set.json["used"] as? Int == 4 && set.json["extension"] as? Int == -5 && set.json["base_limit"] as? Int == 10)
            #expect(try await h.check(key: "metered-key").remaining(of: "quota") == 0)
            let denied = try await h.check(key: "metered-key")
            #expect(denied.allowed == false && denied.deniedBy == "quota")
            for bad in [#"{"add":-1}"#, #"{"add":0}"#, #"{"remaining":-3}"#, #"{"add":1,"remaining":2}"#, "{}", #"{"add":1.5}"#, "nope"] {
                let answer = try await h.admin("/admin/v1/keys/\(id)/quota", method: .post, body: bad)
                #expect(answer.status == .badRequest && answer.errorCode == "invalid_body", "\(bad)")
            }
            _ = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"pro","api_key":"no-quota"}"#)
            let noQuota = try await h.admin("/admin/v1/keys/\(ServerHarness.keyID("no-quota"))/quota", method: .post, body: #"{"add":1}"#)
            #expect(noQuota.status == .conflict && noQuota.errorCode == "no_quota")
            let unknown = try await h.admin("/admin/v1/keys/unknown/quota", method: .post, body: #"{"add":1}"#)
            #expect(unknown.status == .notFound && unknown.errorCode == "unknown_key")
            // The refused changes left the window as the last accepted one made it.
            let state = try #require(try await h.admin("/admin/v1/keys/\(id)/state").json["limits"] as? [[String: Any]])
            let quotaState = try #require(state.first { $0["name"] as? String == "quota" })
            #expect(quotaState["limit"] as? Int == 5 && quotaState["used"] as? Int == 5 && quotaState["remaining"] as? Int == 0)
        }
    }

    @Test("usage: today's units add up to what was admitted; earlier days are zero; bad days are 400")
    func usage() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try Self.config(redis)) { h in
            let id = ServerHarness.keyID("metered-key")
            var admitted = 0
            for cost in [1, 2, 5, 4] {  // the last one is over the day's quota of 10 (1 + 2 + 5 = 8)
                let answer = try await h.check(key: "metered-key", cost: cost)
                if answer.allowed == true { admitted += cost }
            }
            #expect(admitted == 8)
            let usage = try await h.admin("/admin/v1/keys/\(id)/usage?days=3")
            #expect(usage.status == .ok && usage.json["id"] as? String == id && usage.json["plan"] as? String == "metered")
            let quota = usage.json["quota"] as? [String: Any]
            #expect(quota?["limit"] as? Int == 10 && quota?["offset_hours"] as? Int == 2)
            let days = try #require(usage.json["days"] as? [[String: Any]])
            #expect(days.count == 3)
            #expect(days.compactMap { $0["used"] as? Int }.reduce(0, +) == admitted)
            #expect(days[0]["used"] as? Int == admitted && days[0]["remaining"] as? Int == 2)
            #expect(days[1]["used"] as? Int == 0 && days[1]["remaining"] as? Int == 10)
            let dates = days.compactMap { $0["date"] as? String }
            #expect(dates == dates.sorted(by: >), "most recent first")
            #expect((days[0]["start"] as? String)?.hasSuffix("T02:00:00Z") == true)
            #expect((usage.json["quota"] as? [String: Any])?["period"] as? String == "day")
            // A reset clears the quota but not the record: today's remaining is the live one.
            _ = try await h.admin("/admin/v1/keys/\(id)/state/reset?limit=quota", method: .post)
            let afterReset = try #require(try await h.admin("/admin/v1/keys/\(id)/usage?days=1").json["days"] as? [[String: Any]])
            #expect(afterReset.first?["used"] as? Int == admitted && afterReset.first?["remaining"] as? Int == 10)
            for bad in ["days=0", "days=367", "days=x"] {
                #expect(try await h.admin("/admin/v1/keys/\(id)/usage?\(bad)").errorCode == "invalid_query")
            }
            _ = try await h.admin("/admin/v1/keys", method: .post, body: #"{"plan":"pro","api_key":"no-quota"}"#)
            #expect(try await h.admin("/admin/v1/keys/\(ServerHarness.keyID("no-quota"))/usage").errorCode == "no_quota")
        }
    }
}
