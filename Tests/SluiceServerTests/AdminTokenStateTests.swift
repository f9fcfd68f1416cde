import Foundation
import HTTPTypes
import SluiceCore
import SluiceRedis
import SluiceServer
import SluiceTestSupport
import Testing

/// The admin API on plans with token limits: a key's named limits (a bucket in debt after an
/// overrun), its open reservations and leases, their reset, and the tokens of its usage days,
/// driven by real reserves and settles against a real redis-server. Every answer is also checked
/// against its schema in `openapi/sluice.yaml`, undocumented fields refused.
@Suite("Admin API: token limits, reservations, leases, token usage")
struct AdminTokenStateTests {
    /// `llm`: named limits only (sorted by name in the state: itpd, spend, tpm) and two leases.
    /// tpm refills one token a day and then some (1e-5 a second): within a test its tokens read
    /// exactly (thousandths), and a debt stays put (its emission interval is 1e11 µs less a
    /// rounding error, so a reset may read a millisecond off). Days start at itpd's 02:00 UTC.
    /// `plain`: a slow throttle only; `metered`: a classic quota.
    static let yaml = """
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans:
          llm:
            limits:
              tpm:   { counts: total_tokens, rate: 0.00001, burst: 1000 }
              itpd:  { counts: input_tokens, quota: { limit: 5000, period: day, offset_hours: 2 } }
              spend: { counts: cost, quota: { limit: 100000, period: month } }
            concurrency: { limit: 2, lease_ttl_s: 30 }
            prices: { "*": { input: 1, output: 2, cached_input: 0.5 } }
          plain: { throttle: { rate: 0.01, burst: 100 } }
          metered: { throttle: { rate: 100, burst: 100 }, quota: { limit: 10, period: day, offset_hours: 2 } }
        api_keys:
          - { key: llm-key, plan: llm }
          - { key: plain-key, plan: plain }
          - { key: metered-key, plan: metered }
        """

    static let llmID = ServerHarness.keyID("llm-key")

    // MARK: Helpers

    /// `POST /v1/reserve` for `key` with an estimate; the answer and its reservation id.
    static func reserve(_ h: ServerHarness, key: String = "llm-key", input: Int, output: Int) async throws -> (ServerHarness.Answer, String?) {
        let answer = try await h.send(
            "/v1/reserve", method: .post, headers: [.contentType: "application/json"],
            body: #"{"api_key":"\#(key)","estimate":{"input_tokens":\#(input),"output_tokens":\#(output)}}"#
        )
        return (answer, answer.json["reservation_id"] as? String)
    }

    /// `POST /v1/settle` of a reservation with its actual usage.
    static func settle(_ h: ServerHarness, _ id: String, input: Int, output: Int, cached: Int = 0) async throws -> ServerHarness.Answer {
        try await h.send(
            "/v1/settle", method: .post, headers: [.contentType: "application/json"],
            body: #"{"reservation_id":"\#(id)","actual":{"input_tokens":\#(input),"output_tokens":\#(output),"cached_input_tokens":\#(cached)}}"#
        )
    }

    /// `GET .../state`, checked against the `KeyState` schema.
    static func state(_ h: ServerHarness, _ id: String = Self.llmID, sourceLocation: SourceLocation = #_sourceLocation) async throws -> ServerHarness.Answer {
        let answer = try await h.admin("/admin/v1/keys/\(id)/state")
        #expect(answer.status == .ok, "\(answer.text)", sourceLocation: sourceLocation)
        try await Self.conforms(answer.text, to: "KeyState", sourceLocation: sourceLocation)
        return answer
    }

    /// `GET .../usage?days=N`, checked against the `UsageReport` schema.
    static func usage(_ h: ServerHarness, _ id: String = Self.llmID, days: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws
        -> ServerHarness.Answer
    {
        let answer = try await h.admin("/admin/v1/keys/\(id)/usage?days=\(days)")
        #expect(answer.status == .ok, "\(answer.text)", sourceLocation: sourceLocation)
        try await Self.conforms(answer.text, to: "UsageReport", sourceLocation: sourceLocation)
        return answer
    }

    /// The limit called `name` of a state answer.
    static func limit(_ state: ServerHarness.Answer, _ name: String) throws -> [String: Any] {
        try #require(state.limits.first { $0["name"] as? String == name }, "no limit \(name) in \(state.text)")
    }

    /// Checks `json` against `components.schemas.<schema>` of `openapi/sluice.yaml` (OpenAPI 3.0
    /// semantics, openapi-schema-validator from the test venv), every `$ref` resolved and every
    /// object schema that lists its properties closed (`additionalProperties: false`), so that a
    /// field the document does not describe fails as a missing one does.
    static func conforms(_ json: String, to schema: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let python = try PythonTools.python()
        let document = PythonTools.repositoryRoot.appendingPathComponent("openapi/sluice.yaml").path
        let result = try await offCooperativePool {
            try Subprocess.run(python, ["-W", "ignore", "-c", Self.validator, document, schema], input: json)
        }
        #expect(result.status == 0, "\(schema): \(result.output)\n\(json)", sourceLocation: sourceLocation)
    }

    static let validator = """
        import json, sys, yaml
        from openapi_schema_validator import OAS30Validator
        schemas = yaml.safe_load(open(sys.argv[1]))["components"]["schemas"]
        def resolve(node):
            if isinstance(node, list):
                return [resolve(v) for v in node]
            if not isinstance(node, dict):
                return node
            if "$ref" in node:
                return resolve(schemas[node["$ref"].split("/")[-1]])
            out = {k: resolve(v) for k, v in node.items()}
            if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
                out["additionalProperties"] = False
            return out
        errors = list(OAS30Validator(resolve(schemas[sys.argv[2]])).iter_errors(json.loads(sys.stdin.read())))
        for e in errors:
            print(list(e.absolute_path), e.message, [c.message for c in e.context][:6])
        sys.exit(1 if errors else 0)
        """

    // MARK: Tests

    @Test("reserve, settle below the estimate: state shows the open reservation, the estimates held and a lease, then none; usage shows the actual tokens")
    func reserveAndSettle() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            // Before any traffic: every named limit full with its dimension, no reservation, both leases free.
            let fresh = try await Self.state(h)
            #expect(fresh.limits.compactMap { $0["name"] as? String } == ["itpd", "spend", "tpm"], "\(fresh.text)")
            #expect(fresh.limits.compactMap { $0["counts"] as? String } == ["input_tokens", "cost", "total_tokens"])
            #expect(fresh.limits.compactMap { $0["kind"] as? String } == ["quota", "quota", "bucket"])
            #expect(fresh.limits.compactMap { $0["remaining"] as? Int } == [5000, 100_000, 1000])
            #expect(fresh.limits.compactMap { $0["ttl_ms"] as? Int } == [-2, -2, -2])
            let none = try #require(fresh.json["reservations"] as? [String: Any], "a plan with a concurrency limit shows its leases: \(fresh.text)")
            #expect(none["open"] as? Int == 0)
            #expect(none["held"] as? [String: Int] == ["requests": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost": 0])
            #expect(none["leases"] as? [String: Int] == ["limit": 2, "in_use": 0, "lease_ttl_ms": 30_000])

            // Reserve 300 input + 100 output: 400 total tokens, cost 300 × 1 + 100 × 2 = 500.
            let (reserved, id) = try await Self.reserve(h, input: 300, output: 100)
            #expect(reserved.status == .ok && reserved.allowed == true, "\(reserved.text)")
            let reservation = try #require(id, "\(reserved.text)")
            let open = try await Self.state(h)
            let itpd = try Self.limit(open, "itpd")
            #expect(itpd["used"] as? Int == 300 && itpd["remaining"] as? Int == 4700 && itpd["limit"] as? Int == 5000)
            #expect(itpd["base_limit"] as? Int == 5000 && itpd["extension"] as? Int == 0 && itpd["period"] as? String == "day")
            #expect((itpd["window_start"] as? String)?.hasSuffix("T02:00:00Z") == true && itpd["offset_hours"] as? Int == 2)
            let spend = try Self.limit(open, "spend")
            #expect(spend["used"] as? Int == 500 && spend["remaining"] as? Int == 99_500 && spend["counts"] as? String == "cost")
            let tpm = try Self.limit(open, "tpm")
            #expect(tpm["remaining"] as? Int == 600 && tpm["tokens"] as? Double == 600 && tpm["limit"] as? Int == 1000)
            #expect(tpm["burst"] as? Int == 1000 && tpm["rate"] as? Double == 0.00001 && (tpm["ttl_ms"] as? Int ?? 0) > 0)
            // 400 tokens at 1e-5 a second: 4e7 s, less the moments since.
            #expect(((40_000_000_000 - 60_000)...40_000_000_001).contains(tpm["reset_after_ms"] as? Int ?? 0), "\(tpm)")
            let held = try #require(open.json["reservations"] as? [String: Any])
            #expect(held["open"] as? Int == 1)
            #expect(held["held"] as? [String: Int] == ["requests": 1, "input_tokens": 300, "output_tokens": 100, "total_tokens": 400, "cost": 500])
            #expect(held["leases"] as? [String: Int] == ["limit": 2, "in_use": 1, "lease_ttl_ms": 30_000])
            // Reading the state changed nothing: the same again.
            let again = try #require(try await Self.state(h).json["reservations"] as? [String: Any])
            #expect(again["open"] as? Int == 1 && again["held"] as? [String: Int] == held["held"] as? [String: Int])
            #expect(again["leases"] as? [String: Int] == held["leases"] as? [String: Int])

            // The estimate counts in today's usage until the settle.
            let during = try await Self.usage(h, days: 1)
            let duringDay = try #require((during.json["days"] as? [[String: Any]])?.first)
            #expect(duringDay["used"] as? Int == 1 && duringDay["remaining"] == nil)
            #expect(
                duringDay["tokens"] as? [String: Int]
                    == ["input_tokens": 300, "output_tokens": 100, "cached_input_tokens": 0, "total_tokens": 400, "cost": 500]
            )

            // Settle at 200 input + 50 output (cost 300): 100 input, 150 total, 200 cost given back.
            let settled = try await Self.settle(h, reservation, input: 200, output: 50)
            #expect(settled.status == .ok && settled.json["settled"] as? Bool == true, "\(settled.text)")
            let after = try await Self.state(h)
            #expect(after.limits.compactMap { $0["remaining"] as? Int } == [4800, 99_700, 750], "\(after.text)")
            #expect(try Self.limit(after, "itpd")["used"] as? Int == 200 && Self.limit(after, "spend")["used"] as? Int == 300)
            #expect(try Self.limit(after, "tpm")["tokens"] as? Double == 750)
            let closed = try #require(after.json["reservations"] as? [String: Any])
            #expect(closed["open"] as? Int == 0)
            #expect(closed["held"] as? [String: Int] == ["requests": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost": 0])
            #expect(closed["leases"] as? [String: Int] == ["limit": 2, "in_use": 0, "lease_ttl_ms": 30_000])

            // Usage: one request, the actual tokens; yesterday all zeros. No quota, no remaining.
            let report = try await Self.usage(h, days: 2)
            #expect(report.json["quota"] == nil && report.json["retention_days"] as? Int == 90 && report.json["plan"] as? String == "llm")
            let days = try #require(report.json["days"] as? [[String: Any]])
            #expect(days.count == 2 && days.allSatisfy { $0["remaining"] == nil })
            #expect((days[0]["start"] as? String)?.hasSuffix("T02:00:00Z") == true, "days start at itpd's offset: \(days)")
            #expect(days[0]["used"] as? Int == 1 && days[1]["used"] as? Int == 0)
            #expect(
                days[0]["tokens"] as? [String: Int]
                    == ["input_tokens": 200, "output_tokens": 50, "cached_input_tokens": 0, "total_tokens": 250, "cost": 300]
            )
            #expect(
                days[1]["tokens"] as? [String: Int]
                    == ["input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "total_tokens": 0, "cost": 0]
            )
        }
    }

    @Test("an overrun leaves the token bucket in debt: remaining 0, negative tokens, reset until full; quotas past their limit; usage at the actual")
    func overrunDebt() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let before = try await redis.timeMs()
            let (_, first) = try await Self.reserve(h, input: 300, output: 100)
            #expect(try await Self.settle(h, try #require(first), input: 200, output: 50).status == .ok)
            // tpm 750 left; reserve 100 + 100 (cost 300), then settle at 900 + 300 with 400 of the
            // input cached: 1200 tokens, 1000 more than the estimate; cost 500 + 200 + 600 = 1300.
            let (second, id) = try await Self.reserve(h, input: 100, output: 100)
            #expect(second.allowed == true && second.remaining(of: "tpm") == 550, "\(second.text)")
            let settled = try await Self.settle(h, try #require(id), input: 900, output: 300, cached: 400)
            #expect(settled.status == .ok, "\(settled.text)")
            #expect((settled.json["overrun"] as? [String: Int])?["total_tokens"] == 1000, "\(settled.text)")

            let state = try await Self.state(h)
            let after = try await redis.timeMs()
            let tpm = try Self.limit(state, "tpm")
            // 550 - 1000: 450 tokens of debt, not capped at empty.
            #expect(tpm["remaining"] as? Int == 0 && tpm["tokens"] as? Double == -450, "\(tpm)")
            // Full again after 1450 tokens at 1e-5 a second, counted from the first reserve.
            let fullIn: Int64 = 145_000_000_000
            let reset = Int64(tpm["reset_after_ms"] as? Int ?? 0)
            #expect(reset <= fullIn + 1 && reset >= fullIn - (after - before) - 2, "\(tpm)")
            #expect(Int64(tpm["ttl_ms"] as? Int ?? 0) > fullIn - 60_000, "the debt is kept as long: \(tpm)")
            // The quotas take the overrun too: input 200 + 900, cost 300 + 1300.
            let itpd = try Self.limit(state, "itpd")
            #expect(itpd["used"] as? Int == 1100 && itpd["remaining"] as? Int == 3900)
            let spend = try Self.limit(state, "spend")
            #expect(spend["used"] as? Int == 1600 && spend["remaining"] as? Int == 98_400)
            // A check now is denied by the debt.
            let denied = try await h.check(#"{"api_key":"llm-key","tokens":{"input_tokens":1,"output_tokens":0}}"#)
            #expect(denied.allowed == false && denied.deniedBy == "tpm", "\(denied.text)")

            let days = try #require(try await Self.usage(h, days: 1).json["days"] as? [[String: Any]])
            #expect(days.first?["used"] as? Int == 2)
            #expect(
                days.first?["tokens"] as? [String: Int]
                    == ["input_tokens": 1100, "output_tokens": 350, "cached_input_tokens": 400, "total_tokens": 1450, "cost": 1600]
            )

            // Resetting the bucket alone clears its debt.
            let one = try await h.admin("/admin/v1/keys/\(Self.llmID)/state/reset?limit=tpm", method: .post)
            #expect(one.json["reset"] as? [String] == ["tpm"])
            let paid = try Self.limit(try await Self.state(h), "tpm")
            #expect(paid["tokens"] as? Double == 1000 && paid["remaining"] as? Int == 1000 && paid["ttl_ms"] as? Int == -2)
        }
    }

    @Test("a full reset frees the leases and drops open reservations (a later settle is unknown); limit=concurrency frees leases only")
    func resetFreesLeases() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let (_, a) = try await Self.reserve(h, input: 10, output: 10)
            let (_, b) = try await Self.reserve(h, input: 10, output: 10)
            let (third, none) = try await Self.reserve(h, input: 10, output: 10)
            #expect(third.allowed == false && third.deniedBy == "concurrency" && none == nil, "\(third.text)")
            let full = try await Self.state(h)
            let both = try #require(full.json["reservations"] as? [String: Any])
            #expect(both["open"] as? Int == 2 && (both["leases"] as? [String: Int])?["in_use"] == 2)
            #expect(both["held"] as? [String: Int] == ["requests": 2, "input_tokens": 20, "output_tokens": 20, "total_tokens": 40, "cost": 60])

            // Leases only: both reservations stay open and settle as usual; a third gets a lease.
            let leases = try await h.admin("/admin/v1/keys/\(Self.llmID)/state/reset?limit=concurrency", method: .post)
            #expect(leases.status == .ok && leases.json["reset"] as? [String] == ["concurrency"], "\(leases.text)")
            let freed = try #require(try await Self.state(h).json["reservations"] as? [String: Any])
            #expect(freed["open"] as? Int == 2 && freed["leases"] as? [String: Int] == ["limit": 2, "in_use": 0, "lease_ttl_ms": 30_000])
            #expect(try await Self.reserve(h, input: 10, output: 10).1 != nil)
            #expect(try await Self.settle(h, try #require(a), input: 10, output: 10).status == .ok)
            // The limits were not touched: 3 reserves of 20 tokens, one settled at its estimate.
            #expect(try Self.limit(try await Self.state(h), "tpm")["tokens"] as? Double == 940)

            // Everything: the limits as new, no reservation open, no lease held.
            let all = try await h.admin("/admin/v1/keys/\(Self.llmID)/state/reset", method: .post)
            #expect(all.status == .ok && all.json["reset"] as? [String] == ["itpd", "spend", "tpm", "concurrency"], "\(all.text)")
            let after = try await Self.state(h)
            #expect(after.limits.compactMap { $0["remaining"] as? Int } == [5000, 100_000, 1000], "\(after.text)")
            #expect(after.limits.compactMap { $0["ttl_ms"] as? Int } == [-2, -2, -2])
            let dropped = try #require(after.json["reservations"] as? [String: Any])
            #expect(dropped["open"] as? Int == 0 && dropped["leases"] as? [String: Int] == ["limit": 2, "in_use": 0, "lease_ttl_ms": 30_000])
            #expect(dropped["held"] as? [String: Int] == ["requests": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost": 0])
            #expect(try await redis.cliAsync("EXISTS", "sl:{\(Self.llmID)}:vz", "sl:{\(Self.llmID)}:lz") == "0")
            // The dropped reservation's record is still there, to expire on its own; its settle is unknown.
            let late = try await Self.settle(h, try #require(b), input: 1, output: 1)
            #expect(late.status == .notFound && late.errorCode == "unknown_reservation", "\(late.text)")
            // The usage record is history, kept: three reservations admitted, 10 input tokens each
            // (the settled one at its estimate, the dropped ones at theirs).
            let day = try #require((try await Self.usage(h, days: 1).json["days"] as? [[String: Any]])?.first)
            #expect(day["used"] as? Int == 3 && (day["tokens"] as? [String: Int])?["input_tokens"] == 30, "\(day)")
            // Both leases free again.
            #expect(try await Self.reserve(h, input: 1, output: 1).1 != nil)
            #expect(try await Self.reserve(h, input: 1, output: 1).1 != nil)
            let unknown = try await h.admin("/admin/v1/keys/\(ServerHarness.keyID("plain-key"))/state/reset?limit=concurrency", method: .post)
            #expect(unknown.status == .conflict && unknown.errorCode == "unknown_limit", "a plan without a concurrency limit: \(unknown.text)")
        }
    }

    @Test("plans without token limits: counts requests, no reservations unless one is open (then leases without a limit); usage keeps its shape")
    func classicPlans() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let plainID = ServerHarness.keyID("plain-key")
            _ = try await h.check(key: "plain-key", cost: 3)
            let plain = try await Self.state(h, plainID)
            #expect(plain.json["reservations"] == nil, "\(plain.text)")
            #expect(plain.limits.count == 1 && plain.limits.first?["counts"] as? String == "requests")
            #expect(plain.limits.first?["remaining"] as? Int == 97)

            // A reservation on a plan without a concurrency limit: shown, with no lease limit.
            let (_, id) = try await Self.reserve(h, key: "plain-key", input: 7, output: 3)
            let reservation = try #require(id)
            let open = try await Self.state(h, plainID)
            let reservations = try #require(open.json["reservations"] as? [String: Any], "\(open.text)")
            #expect(reservations["open"] as? Int == 1 && reservations["leases"] as? [String: Int] == ["in_use": 0])
            #expect(reservations["held"] as? [String: Int] == ["requests": 1, "input_tokens": 7, "output_tokens": 3, "total_tokens": 10, "cost": 0])
            #expect(try await Self.settle(h, reservation, input: 7, output: 3).status == .ok)
            #expect(try await Self.state(h, plainID).json["reservations"] == nil)
            // No quota and no named limits: no usage recorded.
            let noUsage = try await h.admin("/admin/v1/keys/\(plainID)/usage")
            #expect(noUsage.status == .conflict && noUsage.errorCode == "no_quota", "\(noUsage.text)")

            // A classic quota: the report as before, no tokens.
            let meteredID = ServerHarness.keyID("metered-key")
            _ = try await h.check(key: "metered-key", cost: 4)
            let report = try await Self.usage(h, meteredID, days: 2)
            let reportQuota = try #require(report.json["quota"] as? [String: Any], "\(report.text)")
            #expect(reportQuota["limit"] as? Int == 10 && reportQuota["period"] as? String == "day" && reportQuota["offset_hours"] as? Int == 2)
            let days = try #require(report.json["days"] as? [[String: Any]])
            #expect(days.compactMap { $0["used"] as? Int } == [4, 0] && days.compactMap { $0["remaining"] as? Int } == [6, 10])
            #expect(days.allSatisfy { $0["tokens"] == nil })
            let quota = try Self.limit(try await Self.state(h, meteredID), "quota")
            #expect(quota["counts"] as? String == "requests" && quota["used"] as? Int == 4)
            // The quota change answers with the same shape.
            let changed = try await h.admin("/admin/v1/keys/\(meteredID)/quota", method: .post, body: #"{"add":5}"#)
            #expect(changed.status == .ok && changed.json["counts"] as? String == "requests" && changed.json["remaining"] as? Int == 11)
            try await Self.conforms(changed.text, to: "QuotaState")
        }
    }

    @Test("inspect.lua reads a token bucket in debt uncapped, a requests bucket capped at empty (injected clock)")
    func inspectDebt() async throws {
        let redis = try await RedisServer.start()
        let now: Int64 = 1_800_000_000_000_000
        let bucket = TokenBucket(rate: 2, burst: 10)
        let tokens = Limit.named("tpm", kind: .bucket(bucket), counts: .totalTokens)
        let requests = Limit.named("rpm", kind: .bucket(bucket), counts: .requests)
        let plan = Plan(name: "p", throttle: nil, quota: nil, routes: [], onBackendError: .deny, namedLimits: [requests, tokens])
        let entry = KeyEntry(keyID: "debt", plan: plan)
        // Both 2.5 s past empty: 15 tokens owed by a 10-token bucket at 2 a second.
        for limit in plan.allLimits {
            try await redis.cliAsync("SET", String(decoding: entry.stateKey(for: limit), as: UTF8.self), String(now + 7_500_000), "PX", "600000")
        }
        let call = StateScripts.inspect(entry: entry, limits: plan.allLimits, nowMicros: now)
        let text = try await redis.cliAsync(
            ["EVAL", RedisScript.inspect.source, String(call.keys.count)] + (call.keys + call.arguments).map { String(decoding: $0, as: UTF8.self) }
        )
        let values = text.split(separator: "\n").compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
        let snapshots = try StateScripts.snapshots(limits: plan.allLimits, values: values).limits
        #expect(snapshots.map(\.name) == ["rpm", "tpm"])
        #expect(snapshots.map(\.counts) == [.requests, .totalTokens])
        // rpm: capped at empty, as the decision and ledger scripts read it: full in 5 s.
        #expect(snapshots[0].tokens == 0 && snapshots[0].remaining == 0 && snapshots[0].resetAfterMs == 5000)
        // tpm: 15 tokens owed of 10: -5, full in 7.5 s.
        #expect(snapshots[1].tokens == -5 && snapshots[1].remaining == 0 && snapshots[1].resetAfterMs == 7500)
        // A fraction of a token: 0.25 s later, 0.5 tokens paid back.
        let later = StateScripts.inspect(entry: entry, limits: [tokens], nowMicros: now + 250_000)
        let laterText = try await redis.cliAsync(
            ["EVAL", RedisScript.inspect.source, "1"] + (later.keys + later.arguments).map { String(decoding: $0, as: UTF8.self) }
        )
        let laterValues = laterText.split(separator: "\n").compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
        let laterSnapshot = try #require(try StateScripts.snapshots(limits: [tokens], values: laterValues).limits.first)
        #expect(laterSnapshot.tokens == -4.5 && laterSnapshot.remaining == 0 && laterSnapshot.resetAfterMs == 7250)
    }
}

extension RedisServer {
    /// `redis-cli` with a list of arguments, on a Dispatch thread.
    fileprivate func cliAsync(_ arguments: [String]) async throws -> String {
        try await offCooperativePool { try self.cli(arguments) }
    }
}
