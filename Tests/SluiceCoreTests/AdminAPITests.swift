import Foundation
import SluiceAdminAPI
import Testing

/// The admin API's wire types: the JSON the server writes (field names, explicit nulls, left-out
/// optionals, numbers, slashes) and the values clients read back from it.
@Suite("Admin API types")
struct AdminAPITests {
    func text(_ value: some Encodable) throws -> String {
        String(decoding: try AdminAPI.encoder().encode(value), as: UTF8.self)
    }

    /// Encodes `value`, checks the text, decodes it again and checks the round trip.
    func roundTrip<T: Codable & Equatable>(_ value: T, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let json = try self.text(value)
        #expect(json == expected, sourceLocation: sourceLocation)
        #expect(try AdminAPI.decoder().decode(T.self, from: Data(json.utf8)) == value, sourceLocation: sourceLocation)
    }

    @Test("plans: optional parts left out, whole rates without a fraction, route keys with their slashes as written")
    func plans() throws {
        let route = AdminAPI.Plan.Route(key: "POST /x/{y}", limit: "route:POST /x/{y}", rate: 1, burst: 1, additional: true)
        let full = AdminAPI.Plan(
            name: "p", throttle: .init(rate: 2.5, burst: 4), quota: .init(limit: 10, period: .week, offsetHours: 3, initialOffset: 0),
            onBackendError: .deny, shadow: false, headers: [.ietf, .legacy], routes: [route],
            stages: [.init(name: "api/prod", routes: [route])]
        )
        let bare = AdminAPI.Plan(name: "q", onBackendError: .allow, shadow: true, headers: [], routes: [])
        try self.roundTrip(
            AdminAPI.PlanList(plans: [full, bare]),
            #"{"plans":[{"headers":["ietf","legacy"],"name":"p","on_backend_error":"deny","quota":{"initial_offset":0,"limit":10,"offset_hours":3,"period":"week"},"#
                + #""routes":[{"additional":true,"burst":1,"key":"POST /x/{y}","limit":"route:POST /x/{y}","rate":1}],"shadow":false,"#
                + #""stages":[{"name":"api/prod","routes":[{"additional":true,"burst":1,"key":"POST /x/{y}","limit":"route:POST /x/{y}","rate":1}]}],"#
                + #""throttle":{"burst":4,"rate":2.5}},"#
                + #"{"headers":[],"name":"q","on_backend_error":"allow","routes":[],"shadow":true}]}"#
        )
        #expect(try self.text(AdminAPI.Plan.Throttle(rate: 0.01, burst: 3)) == #"{"burst":3,"rate":0.01}"#)
    }

    @Test("keys: required nullable fields are written as null, and read back as nil")
    func keys() throws {
        try self.roundTrip(
            AdminAPI.KeyLookup(id: "AAAAAAAAAAAAAAAAAAAA", known: false, plan: nil, source: nil),
            #"{"id":"AAAAAAAAAAAAAAAAAAAA","known":false,"plan":null,"source":null}"#
        )
        try self.roundTrip(
            AdminAPI.KeyLookup(id: "AAAAAAAAAAAAAAAAAAAA", known: true, plan: "p", source: .config),
            #"{"id":"AAAAAAAAAAAAAAAAAAAA","known":true,"plan":"p","source":"config"}"#
        )
        try self.roundTrip(
            AdminAPI.CreatedKey(id: "i", apiKey: "sk-x", plan: "p", name: nil, created: "2025-01-02T03:04:05Z"),
            #"{"api_key":"sk-x","created":"2025-01-02T03:04:05Z","id":"i","name":null,"plan":"p","source":"runtime"}"#
        )
        let config = AdminAPI.KeyRecord(id: "c", name: "from the file", plan: "basic", created: nil, source: .config)
        let runtime = AdminAPI.KeyRecord(id: "r", name: nil, plan: "pro", created: "2025-01-02T03:04:05Z", source: .runtime)
        try self.roundTrip(
            AdminAPI.KeyPage(keys: [config, runtime], nextCursor: nil),
            #"{"keys":[{"created":null,"id":"c","name":"from the file","plan":"basic","source":"config"},"#
                + #"{"created":"2025-01-02T03:04:05Z","id":"r","name":null,"plan":"pro","source":"runtime"}],"next_cursor":null}"#
        )
        try self.roundTrip(AdminAPI.KeyPage(keys: [], nextCursor: "r"), #"{"keys":[],"next_cursor":"r"}"#)
        // Text that needs escaping stays JSON (a name may hold quotes; the server refuses controls).
        try self.roundTrip(
            AdminAPI.KeyRecord(id: "r", name: #"a "b" \ c/d"#, plan: "p", created: nil, source: .runtime),
            #"{"created":null,"id":"r","name":"a \"b\" \\ c/d","plan":"p","source":"runtime"}"#
        )
    }

    @Test("requests: absent optionals are left out; null reads as absent; unknown fields are ignored; wrong types fail")
    func requests() throws {
        try self.roundTrip(AdminAPI.CreateKeyRequest(plan: "p"), #"{"plan":"p"}"#)
        try self.roundTrip(AdminAPI.CreateKeyRequest(plan: "p", apiKey: "k", name: "n"), #"{"api_key":"k","name":"n","plan":"p"}"#)
        try self.roundTrip(AdminAPI.LookupRequest(apiKey: "k"), #"{"api_key":"k"}"#)
        try self.roundTrip(AdminAPI.MoveKeyRequest(plan: "q"), #"{"plan":"q"}"#)
        try self.roundTrip(AdminAPI.QuotaChangeRequest(add: 5), #"{"add":5}"#)
        try self.roundTrip(AdminAPI.QuotaChangeRequest(remaining: 0), #"{"remaining":0}"#)
        let decoder = AdminAPI.decoder()
        let nulls = try decoder.decode(AdminAPI.CreateKeyRequest.self, from: Data(#"{"plan":"p","api_key":null,"name":null,"x":1}"#.utf8))
        #expect(nulls == AdminAPI.CreateKeyRequest(plan: "p"))
        for bad in [#"{"name":"x"}"#, #"{"plan":3}"#, "[]", "{"] {
            #expect(throws: DecodingError.self, "\(bad)") { try decoder.decode(AdminAPI.CreateKeyRequest.self, from: Data(bad.utf8)) }
        }
        #expect(throws: DecodingError.self) { try decoder.decode(AdminAPI.QuotaChangeRequest.self, from: Data(#"{"add":1.5}"#.utf8)) }
        #expect(try decoder.decode(AdminAPI.QuotaChangeRequest.self, from: Data("{}".utf8)) == AdminAPI.QuotaChangeRequest())
    }

    @Test("limit state: one flat object per kind; the kind picks the fields read back")
    func limitState() throws {
        let bucket = AdminAPI.LimitState(
            name: "throttle", limit: 5, remaining: 3, resetAfterMs: 200, ttlMs: 180, detail: .bucket(.init(rate: 0.01, burst: 5, tokens: 3.25))
        )
        let quota = AdminAPI.LimitState(
            name: "quota", limit: 55, remaining: 51, resetAfterMs: 1000, ttlMs: -2,
            detail: .quota(
                .init(
                    baseLimit: 50, extension: 5, used: 4, period: .day, offsetHours: 1, windowStart: "2025-01-02T01:00:00Z",
                    windowEnd: "2025-01-03T01:00:00Z"
                )
            )
        )
        #expect(bucket.kind == .bucket && quota.kind == .quota)
        try self.roundTrip(
            AdminAPI.KeyState(id: "i", plan: "p", source: .config, limits: [bucket, quota]),
            #"{"id":"i","limits":[{"burst":5,"counts":"requests","kind":"bucket","limit":5,"name":"throttle","rate":0.01,"remaining":3,"#
                + #""reset_after_ms":200,"tokens":3.25,"ttl_ms":180},"#
                + #"{"base_limit":50,"counts":"requests","extension":5,"kind":"quota","limit":55,"name":"quota","offset_hours":1,"period":"day","remaining":51,"#
                + #""reset_after_ms":1000,"ttl_ms":-2,"used":4,"window_end":"2025-01-03T01:00:00Z","window_start":"2025-01-02T01:00:00Z"}],"#
                + #""plan":"p","source":"config"}"#
        )
        // Whole token counts read as integers, as the server always wrote them.
        let full = AdminAPI.LimitState(name: "throttle", limit: 5, remaining: 5, resetAfterMs: 0, ttlMs: -2, detail: .bucket(.init(rate: 2, burst: 5, tokens: 5)))
        #expect(try self.text(full).contains(#""rate":2,"#) && self.text(full).contains(#""tokens":5,"#))
        let decoder = AdminAPI.decoder()
        let unknownKind = #"{"name":"x","kind":"window","limit":1,"remaining":1,"reset_after_ms":0,"ttl_ms":-2}"#
        #expect(throws: DecodingError.self) { try decoder.decode(AdminAPI.LimitState.self, from: Data(unknownKind.utf8)) }
        let quotaWithoutWindow = #"{"name":"quota","kind":"quota","limit":1,"remaining":1,"reset_after_ms":0,"ttl_ms":-2,"rate":1,"burst":1,"tokens":1}"#
        #expect(throws: DecodingError.self) { try decoder.decode(AdminAPI.LimitState.self, from: Data(quotaWithoutWindow.utf8)) }
        // A server before token limits sent no counts: its limits counted requests.
        let older = #"{"name":"throttle","kind":"bucket","limit":5,"remaining":3,"reset_after_ms":200,"ttl_ms":180,"rate":0.01,"burst":5,"tokens":3.25}"#
        #expect(try decoder.decode(AdminAPI.LimitState.self, from: Data(older.utf8)) == bucket)
        try self.roundTrip(AdminAPI.ResetResult(id: "i", reset: ["throttle", "route:POST /x"]), #"{"id":"i","reset":["throttle","route:POST /x"]}"#)
    }

    @Test("key state of a token plan: a named bucket in debt (negative tokens), reservations with leases; limit and TTL left out without a concurrency limit")
    func tokenKeyState() throws {
        let debt = AdminAPI.LimitState(
            name: "tpm", limit: 1000, remaining: 0, resetAfterMs: 90_500, ttlMs: 90_500, detail: .bucket(.init(rate: 10, burst: 1000, tokens: -5.25)),
            counts: .totalTokens
        )
        let reservations = AdminAPI.KeyState.Reservations(
            open: 2, held: .init(requests: 2, inputTokens: 300, outputTokens: 100, totalTokens: 400, cost: 7),
            leases: .init(limit: 4, inUse: 2, leaseTTLMs: 30_000)
        )
        try self.roundTrip(
            AdminAPI.KeyState(id: "i", plan: "p", source: .runtime, limits: [debt], reservations: reservations),
            #"{"id":"i","limits":[{"burst":1000,"counts":"total_tokens","kind":"bucket","limit":1000,"name":"tpm","rate":10,"remaining":0,"#
                + #""reset_after_ms":90500,"tokens":-5.25,"ttl_ms":90500}],"plan":"p","#
                + #""reservations":{"held":{"cost":7,"input_tokens":300,"output_tokens":100,"requests":2,"total_tokens":400},"#
                + #""leases":{"in_use":2,"lease_ttl_ms":30000,"limit":4},"open":2},"source":"runtime"}"#
        )
        let noConcurrency = AdminAPI.KeyState.Reservations(
            open: 1, held: .init(requests: 1, inputTokens: 5, outputTokens: 0, totalTokens: 5, cost: 0), leases: .init(limit: nil, inUse: 0, leaseTTLMs: nil)
        )
        try self.roundTrip(
            AdminAPI.KeyState(id: "i", plan: "p", source: .config, limits: [], reservations: noConcurrency),
            #"{"id":"i","limits":[],"plan":"p","reservations":{"held":{"cost":0,"input_tokens":5,"output_tokens":0,"requests":1,"total_tokens":5},"#
                + #""leases":{"in_use":0},"open":1},"source":"config"}"#
        )
    }

    @Test("usage report of a plan with named limits only: no quota, no remaining, tokens per day")
    func tokenUsage() throws {
        let tokens = AdminAPI.UsageReport.Tokens(inputTokens: 120, outputTokens: 30, cachedInputTokens: 20, totalTokens: 150, cost: 3)
        try self.roundTrip(
            AdminAPI.UsageReport(
                id: "i", plan: "p", quota: nil, retentionDays: 30,
                days: [.init(date: "2025-01-02", start: "2025-01-02T00:00:00Z", end: "2025-01-03T00:00:00Z", used: 2, remaining: nil, tokens: tokens)]
            ),
            #"{"days":[{"date":"2025-01-02","end":"2025-01-03T00:00:00Z","start":"2025-01-02T00:00:00Z","#
                + #""tokens":{"cached_input_tokens":20,"cost":3,"input_tokens":120,"output_tokens":30,"total_tokens":150},"used":2}],"#
                + #""id":"i","plan":"p","retention_days":30}"#
        )
    }

    @Test("usage report and reload answer")
    func usageAndReload() throws {
        try self.roundTrip(
            AdminAPI.UsageReport(
                id: "i", plan: "p", quota: .init(limit: 50, period: .month, offsetHours: 0), retentionDays: 90,
                days: [.init(date: "2025-01-02", start: "2025-01-02T00:00:00Z", end: "2025-01-03T00:00:00Z", used: 4, remaining: 46)]
            ),
            #"{"days":[{"date":"2025-01-02","end":"2025-01-03T00:00:00Z","remaining":46,"start":"2025-01-02T00:00:00Z","used":4}],"#
                + #""id":"i","plan":"p","quota":{"limit":50,"offset_hours":0,"period":"month"},"retention_days":90}"#
        )
        try self.roundTrip(AdminAPI.ReloadResult(plans: 2, apiKeys: 3), #"{"api_keys":3,"plans":2,"status":"reloaded"}"#)
    }

    @Test("the error shape every failure answers with")
    func errorBody() throws {
        let body = try AdminAPI.decoder().decode(
            AdminAPI.ErrorBody.self, from: Data(#"{"error":{"code":"unknown_key","message":"no API key has the id \"x\""}}"#.utf8)
        )
        #expect(body == AdminAPI.ErrorBody(error: .init(code: "unknown_key", message: #"no API key has the id "x""#)))
        try self.roundTrip(body, #"{"error":{"code":"unknown_key","message":"no API key has the id \"x\""}}"#)
    }
}
