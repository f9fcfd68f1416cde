import Foundation
import NIOCore
import NIOPosix
import SluiceCore
import SluiceServer
import SluiceTestSupport
import Testing

@testable import SluiceRedis

/// The ledger script (token limits, reservations, leases), with times injected through the
/// script's test-only clock argument, against a real redis-server.
///
/// Every key's real TTL is relative to the injected clock (`PX` of a span), so the fixed dates
/// here are safe as long as those spans are long: buckets refill slowly (a token a second or
/// slower, a debt of minutes), quota windows end hours after the injected times, reservations
/// live an hour and leases ten minutes. Redis's own expiry never runs during a test.
@Suite("Ledger script (injected clock)")
final class LedgerScriptTests: ScriptSuite {
    init() async throws {
        try await super.init(scripts: [.ledger])
    }

    /// 2025-06-01 12:00 UTC, seconds: twelve hours from either end of the day's quota window.
    static let t0 = ScriptSuite.utc(2025, 6, 1, 12)
    /// The start of t0's day window (offset 0), seconds.
    static let day0 = ScriptSuite.utc(2025, 6, 1)
    /// Prices 2.5, 10 and 1.25 (cached input) cost units a token: fractional products.
    static let price = ModelPrice(input: 2.5, output: 10, cachedInput: 1.25)
    /// An hour: the reservations' TTL unless a test says otherwise.
    static let hourMs = 3_600_000

    // MARK: Plans and calls

    /// A bucket of `burst` counting `dimension`, refilling one unit a second (an emission
    /// interval of exactly 1 000 000 µs).
    static func bucket(_ name: String, _ dimension: SluiceCore.Dimension, burst: Int, rate: Double = 1) -> Limit {
        Limit.named(name, kind: .bucket(TokenBucket(rate: rate, burst: burst)), counts: dimension)
    }

    /// A day quota (from 00:00 UTC) of `limit` counting `dimension`.
    static func quota(_ name: String, _ dimension: SluiceCore.Dimension, limit: Int) -> Limit {
        Limit.named(name, kind: .quota(Quota(limit: limit, period: .day, offsetHours: 0)), counts: dimension)
    }

    /// A plan; `throttle` is a requests bucket of one token per 1000 s (an interval of 1e9 µs).
    func plan(
        throttleBurst: Int? = nil, quota: Quota? = nil, named: [Limit] = [], concurrency: ConcurrencyLimit? = nil,
        retention: Int = 0
    ) -> Plan {
        Plan(
            name: "p", throttle: throttleBurst.map { TokenBucket(rate: 0.001, burst: $0) }, quota: quota, routes: [],
            onBackendError: .deny, usageRetentionDays: retention, namedLimits: named, concurrency: concurrency,
            prices: ["*": Self.price]
        )
    }

    func entry(_ plan: Plan, key: String = "k") -> KeyEntry {
        KeyEntry(keyID: "\(self.tag)-\(key)", plan: plan)
    }

    /// Microseconds of t0 + `seconds` + `ms`.
    static func at(_ seconds: Int64, ms: Int64 = 0) -> Int64 {
        (self.t0 + seconds) * 1_000_000 + ms * 1000
    }

    /// Milliseconds of t0 + `seconds`.
    static func ms(_ seconds: Int64) -> Int64 {
        (self.t0 + seconds) * 1000
    }

    static func tokens(_ input: Int = 0, out: Int = 0, cached: Int = 0) -> TokenCounts {
        TokenCounts(inputTokens: input, outputTokens: out, cachedInputTokens: cached)
    }

    func reply(_ call: LedgerScript.Call) async throws -> RedisReply {
        try await self.client.evaluate(
            .ledger, keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) }
        ).get()
    }

    func values(_ call: LedgerScript.Call) async throws -> [LedgerScript.Value] {
        let reply = try await self.reply(call)
        return try #require(reply.ledgerValues, "reply: \(reply)")
    }

    /// A check, reserve or charge of `tokens` at `micros` (``at(_:ms:)``). Requests limits take 1,
    /// except for a charge (0).
    @discardableResult
    func take(
        _ op: LedgerScript.Take, _ entry: KeyEntry, _ tokens: TokenCounts = .zero, id: LedgerScript.ReservationID? = nil,
        idempotencyKey: String? = nil, ttlMs: Int = hourMs, price: ModelPrice? = nil, at micros: Int64
    ) async throws -> LedgerScript.TakeResult {
        let limits = entry.plan.limits(for: nil)
        // As the server does: the plan's price for the model, free on a plan without cost limits.
        let price = price ?? entry.plan.price(for: nil) ?? .free
        let reservation = op == .reserve ? (id ?? .random(keyID: entry.keyID)) : nil
        let call = LedgerScript.take(
            op, entry: entry, limits: limits, requestUnits: op == .charge ? 0 : 1, tokens: tokens, price: price,
            reservation: reservation, idempotencyKey: idempotencyKey, ttlMs: ttlMs, nowMicros: micros
        )
        return try LedgerScript.takeResult(
            plan: entry.plan, keyID: entry.keyID, limits: limits, reserve: op == .reserve, values: try await self.values(call)
        )
    }

    /// A reserve that must be allowed; its reservation.
    func reserve(
        _ entry: KeyEntry, _ tokens: TokenCounts = .zero, idempotencyKey: String? = nil, ttlMs: Int = hourMs, at micros: Int64,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> LedgerScript.ReservationID {
        let result = try await self.take(.reserve, entry, tokens, idempotencyKey: idempotencyKey, ttlMs: ttlMs, at: micros)
        #expect(result.decision.allowed, "denied by \(result.decision.deniedBy ?? "-")", sourceLocation: sourceLocation)
        return try #require(result.reservation, sourceLocation: sourceLocation)
    }

    /// A settle (`tokens`) or a cancel (nil).
    func settle(
        _ id: LedgerScript.ReservationID, _ tokens: TokenCounts?, retention: Int = 0, at micros: Int64
    ) async throws -> LedgerScript.SettleOutcome {
        try LedgerScript.settleOutcome(
            values: try await self.values(LedgerScript.settle(id, tokens: tokens, retentionDays: retention, nowMicros: micros))
        )
    }

    func renew(_ id: LedgerScript.ReservationID, ttlMs: Int? = nil, at micros: Int64) async throws -> LedgerScript.RenewOutcome {
        try LedgerScript.renewOutcome(values: try await self.values(LedgerScript.renew(id, ttlMs: ttlMs, nowMicros: micros)))
    }

    func view(_ entry: KeyEntry, at micros: Int64) async throws -> ViewRow {
        let view = try LedgerScript.view(values: try await self.values(LedgerScript.view(keyID: entry.keyID, nowMicros: micros)))
        return ViewRow(nowMs: view.nowMs, open: view.open, leases: view.leases, held: view.held, reclaimed: view.reclaimed)
    }

    // MARK: Expected values

    static func amounts(_ r: Int, _ i: Int, _ o: Int, _ c: Int) -> LedgerScript.Amounts {
        LedgerScript.Amounts(requests: r, inputTokens: i, outputTokens: o, totalTokens: i + o, cost: c)
    }

    /// One limit of a settle reply (``LedgerScript/SettledLimit`` has no public initializer).
    struct Row: Equatable, CustomStringConvertible {
        let name: String
        let limit: Int
        let remaining: Int
        let resetMs: Int

        init(_ name: String, _ limit: Int, _ remaining: Int, _ resetMs: Int) {
            (self.name, self.limit, self.remaining, self.resetMs) = (name, limit, remaining, resetMs)
        }

        var description: String { "\(self.name) \(self.remaining)/\(self.limit) reset \(self.resetMs)" }
    }

    /// A view's answer (``LedgerScript/View`` has no public initializer).
    struct ViewRow: Equatable {
        let nowMs: Int64
        let open: Int
        let leases: Int
        let held: LedgerScript.Amounts
        let reclaimed: Int
    }

    /// A `.settled` outcome, flattened so that one `==` compares all of it.
    struct Settled: Equatable {
        let estimate: LedgerScript.Amounts
        let actual: LedgerScript.Amounts
        let limits: [Row]
        let replay: Bool
        let reclaimed: Int
    }

    func settled(_ outcome: LedgerScript.SettleOutcome, sourceLocation: SourceLocation = #_sourceLocation) throws -> Settled {
        guard case .settled(let estimate, let actual, let limits, let replay, let reclaimed) = outcome else {
            Issue.record("expected a settled outcome, got \(outcome)", sourceLocation: sourceLocation)
            throw TestSupportError("not settled: \(outcome)")
        }
        return Settled(
            estimate: estimate, actual: actual, limits: limits.map { Row($0.name, $0.limit, $0.remaining, $0.resetAfterMs) },
            replay: replay, reclaimed: reclaimed
        )
    }

    // MARK: Reading Redis

    func prefix(_ entry: KeyEntry) -> String { StateKeys.prefix(keyID: entry.keyID) }

    @discardableResult
    func command(_ arguments: String...) async throws -> RedisReply {
        try await self.client.command(arguments.map { RedisArgument($0) })
    }

    func get(_ key: String) async throws -> String? {
        try await self.command("GET", key).string
    }

    func int(_ arguments: String...) async throws -> Int64 {
        let reply = try await self.client.command(arguments.map { RedisArgument($0) })
        return try #require(reply.int, "\(arguments): \(reply)")
    }

    func hash(_ key: String) async throws -> [String: String] {
        var result: [String: String] = [:]
        for (field, value) in try await self.command("HGETALL", key).pairs {
            result[field.string ?? ""] = value.string ?? ""
        }
        return result
    }

    /// Every key of the API key and its value (strings as they are, sorted sets and hashes as
    /// sorted text): two snapshots are equal when a call changed nothing.
    func snapshot(_ entry: KeyEntry) async throws -> [String: String] {
        var result: [String: String] = [:]
        let keys = try await self.command("KEYS", self.prefix(entry) + "*").array ?? []
        for key in keys.compactMap(\.string) {
            switch try await self.command("TYPE", key).string {
            case "string":
                result[key] = try await self.get(key)
            case "zset":
                let members = try await self.command("ZRANGE", key, "0", "-1", "WITHSCORES").array ?? []
                result[key] = "zset " + members.compactMap(\.string).joined(separator: " ")
            case "hash":
                result[key] = "hash " + (try await self.hash(key)).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            case let other:
                result[key] = "type \(other ?? "?")"
            }
        }
        return result
    }

    /// Keys of open reservations' records (`v:<token>`).
    func records(_ entry: KeyEntry) async throws -> Int {
        (try await self.command("KEYS", self.prefix(entry) + "v:*").array ?? []).count
    }

    // MARK: 1. Reserve

    @Test("reserve takes 1 from requests limits and the estimate from each token dimension, cost with ceil of the exact sum")
    func reserveTakesEachDimension() async throws {
        let plan = self.plan(
            throttleBurst: 5, quota: Quota(limit: 100, period: .day, offsetHours: 0),
            named: [
                Self.bucket("in", .inputTokens, burst: 10_000), Self.quota("out", .outputTokens, limit: 5000),
                Self.bucket("tot", .totalTokens, burst: 20_000), Self.quota("cost", .cost, limit: 100_000),
            ]
        )
        let e = self.entry(plan)
        let p = self.prefix(e)
        // Cost: 668 uncached × 2.5 + 333 cached × 1.25 + 7 × 10 = 1670 + 416.25 + 70 = 2156.25 → 2157.
        let estimate = Self.tokens(1001, out: 7, cached: 333)
        #expect(Self.price.cost(of: estimate) == 2157)
        let r = try await self.take(.reserve, e, estimate, at: Self.at(0))
        #expect(r.decision.allowed && !r.replay && r.reclaimed == 0)
        #expect(r.decision.limits.map(\.name) == ["throttle", "quota", "in", "out", "tot", "cost"])
        #expect(r.decision.limits.map(\.remaining) == [4, 99, 8999, 4993, 18_992, 97_843])
        #expect(r.decision.limits.map(\.retryAfterMs) == [0, 0, 0, 0, 0, 0])
        #expect(r.decision.limits.map(\.resetAfterMs) == [1_000_000, 43_200_000, 1_001_000, 43_200_000, 1_008_000, 43_200_000])
        #expect(r.decision.nowMs == Self.ms(0))
        let id = try #require(r.reservation)
        #expect(id.keyID == e.keyID && r.expiresAtMs == Self.ms(0) + Int64(Self.hourMs))
        let t0us = Self.at(0)
        #expect(try await self.get(p + "t") == String(t0us + 1_000_000_000))
        #expect(try await self.get(p + "q") == "\(Self.day0):1")
        #expect(try await self.get(p + "n:in") == String(t0us + 1001 * 1_000_000))
        #expect(try await self.get(p + "n:out") == "\(Self.day0):7")
        #expect(try await self.get(p + "n:tot") == String(t0us + 1008 * 1_000_000))
        #expect(try await self.get(p + "n:cost") == "\(Self.day0):2157")
        #expect(try await self.command("ZSCORE", p + "vz", id.token).string == String(Self.ms(0) + Int64(Self.hourMs)))
        #expect(try await self.records(e) == 1)
        // No concurrency limit: no lease, no lease set.
        #expect(try await self.int("EXISTS", p + "lz") == 0)

        // Denied by the output quota alone (4994 > 4993 left): nothing taken anywhere, the
        // others report their state as it was, no record.
        let before = try await self.snapshot(e)
        let byOut = try await self.take(.reserve, e, Self.tokens(out: 4994), at: Self.at(0))
        #expect(!byOut.decision.allowed && byOut.decision.deniedBy == "out" && byOut.reservation == nil)
        #expect(byOut.decision.retryAfterMs == 43_200_000)
        #expect(byOut.decision.limits.map(\.remaining) == [4, 99, 8999, 4993, 18_992, 97_843])
        #expect(byOut.decision.limits.map(\.retryAfterMs) == [0, 0, 0, 43_200_000, 0, 0])
        #expect(try await self.snapshot(e) == before)

        // Denied by the input bucket alone (9000 > 8999): a wait of exactly one token, 1 s.
        let byIn = try await self.take(.reserve, e, Self.tokens(9000), at: Self.at(0))
        #expect(!byIn.decision.allowed && byIn.decision.deniedBy == "in" && byIn.reservation == nil)
        #expect(byIn.decision.limits.map(\.retryAfterMs) == [0, 0, 1000, 0, 0, 0])
        #expect(byIn.decision.limits.map(\.remaining) == [4, 99, 8999, 4993, 18_992, 97_843])
        #expect(try await self.snapshot(e) == before)

        // Denied by the cost quota alone, on a key of its own: 4001 × 24.99 = 99 984.99 → 99 985
        // of 100 000, then 2 × 10 = 20 > 15 left.
        let costly = self.entry(plan, key: "costly")
        let big = try await self.take(.reserve, costly, Self.tokens(0, out: 4001), price: ModelPrice(input: 2.5, output: 24.99), at: Self.at(0))
        #expect(big.decision.allowed && big.decision.limits.map(\.remaining) == [4, 99, 10_000, 999, 15_999, 15])
        let costlyBefore = try await self.snapshot(costly)
        let byCost = try await self.take(.reserve, costly, Self.tokens(0, out: 2), at: Self.at(0))
        #expect(!byCost.decision.allowed && byCost.decision.deniedBy == "cost" && byCost.reservation == nil)
        #expect(byCost.decision.limits.map(\.retryAfterMs) == [0, 0, 0, 0, 0, 43_200_000])
        #expect(byCost.decision.limits.map(\.remaining) == [4, 99, 10_000, 999, 15_999, 15])
        #expect(try await self.snapshot(costly) == costlyBefore)

        // Denied by the requests throttle alone (five reserves of 5): no tokens taken, no lease, no record.
        let busy = self.entry(plan, key: "busy")
        for _ in 0..<5 { _ = try await self.reserve(busy, Self.tokens(10, out: 1), at: Self.at(0)) }
        let busyBefore = try await self.snapshot(busy)
        let byThrottle = try await self.take(.reserve, busy, Self.tokens(10, out: 1), at: Self.at(0))
        #expect(!byThrottle.decision.allowed && byThrottle.decision.deniedBy == "throttle" && byThrottle.reservation == nil)
        #expect(byThrottle.decision.limits.map(\.retryAfterMs) == [1_000_000, 0, 0, 0, 0, 0])
        // 5 × (25 + 10) = 175 cost units taken before.
        #expect(byThrottle.decision.limits.map(\.remaining) == [0, 95, 9950, 4995, 19_945, 99_825])
        #expect(try await self.snapshot(busy) == busyBefore)
        #expect(try await self.records(busy) == 5)
    }

    @Test(
        "cost is the ceiling of the exact sum of tokens × price (cached input at its own price), in script and in Swift",
        arguments: [
            (1, 0, 0, 3),  // 2.5
            (1, 1, 0, 2),  // 1.25
            (2, 1, 0, 4),  // 2.5 + 1.25 = 3.75 (rounding each part up would give 5)
            (3, 1, 1, 17),  // 5 + 1.25 + 10 = 16.25
            (999_999_999_999, 0, 0, 2_499_999_999_998),  // 2 499 999 999 997.5
            (0, 0, 999_999_999_999, 9_999_999_999_990),
            // 666 666 666 666 × 2.5 + 333 333 333 333 × 1.25 + 999 999 999 999 × 10 = 12 083 333 333 321.25
            (999_999_999_999, 333_333_333_333, 999_999_999_999, 12_083_333_333_322),
        ] as [(Int, Int, Int, Int)]
    )
    func costArithmetic(input: Int, cached: Int, output: Int, expected: Int) async throws {
        // A charge never denies, so the cost quota's count shows the amount exactly.
        let e = self.entry(self.plan(named: [Self.quota("cost", .cost, limit: 1_000_000_000_000_000)]), key: "c\(input)-\(cached)-\(output)")
        let tokens = Self.tokens(input, out: output, cached: cached)
        let r = try await self.take(.charge, e, tokens, at: Self.at(0))
        #expect(r.decision.allowed && r.decision.limits[0].remaining == 1_000_000_000_000_000 - expected)
        #expect(try await self.get(self.prefix(e) + "n:cost") == "\(Self.day0):\(expected)")
        // Swift's own arithmetic (the amount a charge's answer shows) agrees with the script's.
        #expect(Self.price.cost(of: tokens) == expected, "ModelPrice.cost(of:)")
    }

    @Test("an estimate above a bucket's burst or a quota's limit never passes (retry -1)")
    func estimateAboveCapacity() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000), Self.quota("oq", .outputTokens, limit: 500)]))
        let byBucket = try await self.take(.reserve, e, Self.tokens(1001), at: Self.at(0))
        #expect(!byBucket.decision.allowed && byBucket.decision.deniedBy == "in" && byBucket.decision.retryAfterMs == -1)
        #expect(byBucket.decision.reason == .costExceedsCapacity)
        let byQuota = try await self.take(.reserve, e, Self.tokens(1, out: 501), at: Self.at(0))
        #expect(!byQuota.decision.allowed && byQuota.decision.deniedBy == "oq" && byQuota.decision.retryAfterMs == -1)
        #expect(try await self.snapshot(e).isEmpty)
    }

    // MARK: 2. Settle

    @Test("settle below the estimate refunds the difference to bucket and quota; a second settle replays the first answer and changes nothing")
    func settleRefund() async throws {
        let plan = self.plan(throttleBurst: 5, named: [Self.bucket("in", .inputTokens, burst: 1000), Self.quota("iq", .inputTokens, limit: 10_000)])
        let e = self.entry(plan)
        let p = self.prefix(e)
        let id = try await self.reserve(e, Self.tokens(400), at: Self.at(0))
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 400_000_000))
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):400")

        let first = try self.settled(try await self.settle(id, Self.tokens(150), at: Self.at(0)))
        let expected = Settled(
            estimate: Self.amounts(1, 400, 0, 0), actual: Self.amounts(1, 150, 0, 0),
            // The requests throttle is neither read nor reported by a settle: it cannot change.
            limits: [Row("in", 1000, 850, 150_000), Row("iq", 10_000, 9850, 43_200_000)],
            replay: false, reclaimed: 0
        )
        #expect(first == expected)
        // The request stays counted; 250 tokens back in each.
        #expect(try await self.get(p + "t") == String(Self.at(0) + 1_000_000_000))
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 150_000_000))
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):150")
        #expect(try await self.int("ZCARD", p + "vz") == 0)

        // A retried settle, later and with other numbers: the first answer, replayed, nothing changed.
        let before = try await self.snapshot(e)
        let second = try self.settled(try await self.settle(id, Self.tokens(999), at: Self.at(10)))
        #expect(second == Settled(estimate: expected.estimate, actual: expected.actual, limits: expected.limits, replay: true, reclaimed: 0))
        #expect(try await self.snapshot(e) == before)
    }

    @Test("a refund never fills a bucket past full nor a quota below 0")
    func refundCapped() async throws {
        let plan = self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000), Self.quota("iq", .inputTokens, limit: 10_000)])
        let e = self.entry(plan)
        let p = self.prefix(e)
        let id = try await self.reserve(e, Self.tokens(400), at: Self.at(0))
        // 300 s later the bucket holds 900; a refund of 400 fills it (1000), not 1300.
        try await self.command("SET", p + "n:iq", "\(Self.day0):100")
        let r = try self.settled(try await self.settle(id, Self.tokens(0), at: Self.at(300)))
        #expect(r.limits == [Row("in", 1000, 1000, 0), Row("iq", 10_000, 10_000, 42_900_000)])
        #expect(try await self.int("EXISTS", p + "n:in") == 0)
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):0")
        let peek = try await self.take(.check, e, at: Self.at(300))
        #expect(peek.decision.limits.map(\.remaining) == [1000, 10_000])
    }

    @Test("settle above the estimate takes the overrun past empty: a debt that only refill repays, (debt + 1) × interval")
    func settleDebt() async throws {
        let plan = self.plan(throttleBurst: 5, named: [Self.bucket("in", .inputTokens, burst: 1000)])
        let e = self.entry(plan)
        let p = self.prefix(e)
        let id = try await self.reserve(e, Self.tokens(100), at: Self.at(0))
        let r = try self.settled(try await self.settle(id, Self.tokens(1500), at: Self.at(0)))
        // 1500 taken from a bucket of 1000: 500 in debt, reported as 0 left; full in 1500 s.
        #expect(r.limits == [Row("in", 1000, 0, 1_500_000)])
        #expect(r.actual == Self.amounts(1, 1500, 0, 0))
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 1_500_000_000))

        // The next request needs 1 token beyond the 500 owed: 501 s at one token a second, for a
        // reserve of 1 token, a reserve of none and a check of none alike; nothing is taken.
        let before = try await self.snapshot(e)
        let attempts: [(LedgerScript.Take, TokenCounts)] = [(.reserve, Self.tokens(1)), (.reserve, .zero), (.check, .zero), (.check, Self.tokens(1))]
        for (op, tokens) in attempts {
            let denied = try await self.take(op, e, tokens, at: Self.at(0))
            #expect(!denied.decision.allowed && denied.decision.deniedBy == "in", "\(op) \(tokens)")
            #expect(denied.decision.retryAfterMs == 501_000, "\(op) \(tokens)")
            #expect(denied.decision.limits.map(\.remaining) == [4, 0], "\(op) \(tokens)")
        }
        #expect(try await self.snapshot(e) == before)
        let almost = try await self.take(.reserve, e, Self.tokens(1), at: Self.at(500))
        #expect(!almost.decision.allowed && almost.decision.retryAfterMs == 1000)
        let repaid = try await self.take(.reserve, e, Self.tokens(1), at: Self.at(501))
        #expect(repaid.decision.allowed && repaid.decision.limits.map(\.remaining) == [3, 0])
    }

    @Test("an overrun takes a quota past its limit until the window ends")
    func settleQuotaOverrun() async throws {
        let e = self.entry(self.plan(named: [Self.quota("iq", .inputTokens, limit: 1000)]))
        let id = try await self.reserve(e, Self.tokens(100), at: Self.at(0))
        let r = try self.settled(try await self.settle(id, Self.tokens(1500), at: Self.at(0)))
        #expect(r.limits == [Row("iq", 1000, 0, 43_200_000)])
        #expect(try await self.get(self.prefix(e) + "n:iq") == "\(Self.day0):1500")
        let denied = try await self.take(.check, e, at: Self.at(3600))
        #expect(!denied.decision.allowed && denied.decision.deniedBy == "iq" && denied.decision.retryAfterMs == 39_600_000)
        let nextDay = try await self.take(.check, e, Self.tokens(1000), at: Self.at(43_200))
        #expect(nextDay.decision.allowed && nextDay.decision.limits[0].remaining == 0)
    }

    @Test("settle of an unknown id is unknown; settle at or after expiry is unknown and the estimate stays charged")
    func settleUnknownAndExpired() async throws {
        let plan = self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000), Self.quota("iq", .inputTokens, limit: 10_000)])
        let e = self.entry(plan)
        let p = self.prefix(e)
        #expect(try await self.settle(.random(keyID: e.keyID), Self.tokens(1), at: Self.at(0)) == .unknown(reclaimed: 0))
        #expect(try await self.settle(.random(keyID: e.keyID), nil, at: Self.at(0)) == .unknown(reclaimed: 0))

        let expiring = try await self.reserve(e, Self.tokens(100), ttlMs: 60_000, at: Self.at(0))
        let early = try await self.reserve(e, Self.tokens(100), ttlMs: 60_000, at: Self.at(0))
        // One millisecond before expiry it is still open.
        let inTime = try self.settled(try await self.settle(early, Self.tokens(100), at: Self.at(59, ms: 999)))
        #expect(inTime.estimate == Self.amounts(1, 100, 0, 0) && inTime.reclaimed == 0)
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 200_000_000))
        // At its expiry: unknown, counted as expired by this very call, nothing refunded.
        #expect(try await self.settle(expiring, Self.tokens(0), at: Self.at(60)) == .unknown(reclaimed: 1))
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 200_000_000))
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):200")
        #expect(try await self.settle(expiring, nil, at: Self.at(61)) == .unknown(reclaimed: 0))
        #expect(try await self.renew(expiring, at: Self.at(61)) == .unknown(reclaimed: 0))
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 200_000_000))
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):200")
    }

    // MARK: 3. Cancel

    @Test("cancel gives the whole estimate back (the request's 1 too) and the lease; then cancel and settle say already cancelled, cancel after settle already settled")
    func cancel() async throws {
        let plan = self.plan(
            throttleBurst: 5, named: [Self.bucket("in", .inputTokens, burst: 1000)], concurrency: ConcurrencyLimit(limit: 1, leaseTTLMs: 600_000)
        )
        let e = self.entry(plan)
        let p = self.prefix(e)
        let a = try await self.reserve(e, Self.tokens(100), at: Self.at(0))
        #expect(try await self.int("ZCARD", p + "lz") == 1)
        let r = try self.settled(try await self.settle(a, nil, at: Self.at(0)))
        #expect(
            r == Settled(
                estimate: Self.amounts(1, 100, 0, 0), actual: Self.amounts(0, 0, 0, 0),
                limits: [Row("throttle", 5, 5, 0), Row("in", 1000, 1000, 0)], replay: false, reclaimed: 0
            )
        )
        #expect(try await self.int("EXISTS", p + "t") == 0)
        #expect(try await self.int("EXISTS", p + "n:in") == 0)
        #expect(try await self.int("ZCARD", p + "lz") == 0)
        #expect(try await self.int("ZCARD", p + "vz") == 0)
        // The single slot is free again.
        let b = try await self.reserve(e, Self.tokens(100), at: Self.at(1))

        let before = try await self.snapshot(e)
        #expect(try await self.settle(a, nil, at: Self.at(2)) == .alreadyCancelled(reclaimed: 0))
        #expect(try await self.settle(a, Self.tokens(10), at: Self.at(2)) == .alreadyCancelled(reclaimed: 0))
        #expect(try await self.renew(a, at: Self.at(2)) == .alreadyCancelled(reclaimed: 0))
        #expect(try await self.snapshot(e) == before)

        _ = try self.settled(try await self.settle(b, Self.tokens(100), at: Self.at(3)))
        let settledState = try await self.snapshot(e)
        #expect(try await self.settle(b, nil, at: Self.at(4)) == .alreadySettled(reclaimed: 0))
        #expect(try await self.renew(b, at: Self.at(4)) == .alreadySettled(reclaimed: 0))
        #expect(try await self.snapshot(e) == settledState)
    }

    // MARK: 4. Quota window roll

    /// A day quota of 10 000 input tokens; a reservation of 400 at 23:00 on day D; a check of
    /// 1000 at 00:10 on D+1; the settle at 00:30 on D+1.
    func windowRoll(actual: Int, key: String) async throws -> (Settled, String?) {
        let e = self.entry(self.plan(named: [Self.quota("iq", .inputTokens, limit: 10_000)]), key: key)
        let p = self.prefix(e)
        let d = ScriptSuite.utc(2025, 6, 1, 23) * 1_000_000
        let next = ScriptSuite.utc(2025, 6, 2) * 1_000_000
        let id = try await self.reserve(e, Self.tokens(400), ttlMs: 7_200_000, at: d)
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):400")
        let check = try await self.take(.check, e, Self.tokens(1000), at: next + 600_000_000)
        #expect(check.decision.allowed && check.decision.limits[0].remaining == 9000)
        let r = try self.settled(try await self.settle(id, Self.tokens(actual), at: next + 1_800_000_000))
        return (r, try await self.get(p + "n:iq"))
    }

    @Test("a refund of a reservation made in yesterday's window does not go to today's")
    func windowRollRefund() async throws {
        let (r, stored) = try await self.windowRoll(actual: 100, key: "refund")
        // 23.5 h until the D+1 window ends; its count stays 1000.
        #expect(r.limits == [Row("iq", 10_000, 9000, 84_600_000)])
        #expect(stored == "\(Self.day0 + 86_400):1000")
    }

    @Test("an overrun of a reservation made in yesterday's window is charged to today's")
    func windowRollOverrun() async throws {
        let (r, stored) = try await self.windowRoll(actual: 700, key: "overrun")
        #expect(r.limits == [Row("iq", 10_000, 8700, 84_600_000)])
        #expect(stored == "\(Self.day0 + 86_400):1300")
    }

    // MARK: 5. Concurrency

    static func concurrencyState(_ result: LedgerScript.TakeResult) -> LimitState? {
        result.decision.limits.first { $0.name == ConcurrencyLimit.name }
    }

    @Test("concurrency 2: two reserves pass, the third is denied by concurrency until the earliest lease expires and takes nothing; a settle frees a slot")
    func concurrency() async throws {
        let plan = self.plan(
            throttleBurst: 10, named: [Self.bucket("in", .inputTokens, burst: 100_000)], concurrency: ConcurrencyLimit(limit: 2, leaseTTLMs: 600_000)
        )
        let e = self.entry(plan)
        let p = self.prefix(e)
        let r1 = try await self.take(.reserve, e, Self.tokens(10), at: Self.at(0))
        #expect(r1.decision.allowed && r1.decision.limits.map(\.name) == ["throttle", "in", "concurrency"])
        let c1 = try #require(Self.concurrencyState(r1))
        #expect(c1.limit == 2 && c1.remaining == 1 && c1.retryAfterMs == 0 && c1.unit == .concurrentRequests)
        let r2 = try await self.take(.reserve, e, Self.tokens(10), at: Self.at(1))
        let c2 = try #require(Self.concurrencyState(r2))
        // The earliest lease (r1's) is free at t0 + 600 s: 599 s from now.
        #expect(r2.decision.allowed && c2.remaining == 0 && c2.resetAfterMs == 599_000 && c2.retryAfterMs == 0)
        #expect(try await self.int("ZSCORE", p + "lz", try #require(r1.reservation).token) == Self.ms(600))

        let before = try await self.snapshot(e)
        let r3 = try await self.take(.reserve, e, Self.tokens(10), at: Self.at(2))
        #expect(!r3.decision.allowed && r3.decision.deniedBy == "concurrency" && r3.reservation == nil)
        #expect(r3.decision.retryAfterMs == 598_000)
        let c3 = try #require(Self.concurrencyState(r3))
        #expect(c3.remaining == 0 && c3.retryAfterMs == 598_000 && c3.limit == 2)
        // The other limits report what they hold (2 tokens refilled since): nothing was taken.
        #expect(r3.decision.limits.map(\.remaining) == [8, 99_982, 0])
        #expect(try await self.snapshot(e) == before)

        _ = try self.settled(try await self.settle(try #require(r1.reservation), Self.tokens(10), at: Self.at(3)))
        #expect(try await self.int("ZCARD", p + "lz") == 1)
        let r4 = try await self.take(.reserve, e, Self.tokens(10), at: Self.at(3))
        #expect(r4.decision.allowed && Self.concurrencyState(r4)?.remaining == 0)
    }

    @Test("a lease not renewed frees its slot when its TTL passes, with no settle; the reservation stays open")
    func leaseExpiry() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)], concurrency: ConcurrencyLimit(limit: 1, leaseTTLMs: 600_000)))
        let p = self.prefix(e)
        let first = try await self.reserve(e, Self.tokens(10), at: Self.at(0))
        let early = try await self.take(.reserve, e, Self.tokens(10), at: Self.at(599, ms: 999))
        #expect(!early.decision.allowed && early.decision.deniedBy == "concurrency" && early.decision.retryAfterMs == 1)
        let second = try await self.take(.reserve, e, Self.tokens(10), at: Self.at(600))
        #expect(second.decision.allowed && second.reclaimed == 0)
        #expect(try await self.int("ZCARD", p + "vz") == 2)
        #expect(try await self.int("ZCARD", p + "lz") == 1)
        // The first reservation is still open and settles; the slot stays the second's.
        _ = try self.settled(try await self.settle(first, Self.tokens(10), at: Self.at(601)))
        #expect(try await self.int("ZCARD", p + "lz") == 1)
        #expect(try await self.command("ZSCORE", p + "lz", try #require(second.reservation).token).string == String(Self.ms(1200)))
    }

    @Test("renew before the lease TTL keeps the slot; renew after the lease was lost says lost and takes no slot back")
    func renewLease() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)], concurrency: ConcurrencyLimit(limit: 1, leaseTTLMs: 600_000)))
        let p = self.prefix(e)
        let a = try await self.reserve(e, Self.tokens(10), at: Self.at(0))
        #expect(try await self.renew(a, at: Self.at(500)) == .renewed(expiresAtMs: Self.ms(500) + 3_600_000, lease: true, reclaimed: 0))
        #expect(try await self.command("ZSCORE", p + "vz", a.token).string == String(Self.ms(4100)))
        // The lease now ends at t0 + 1100 s.
        let denied = try await self.take(.reserve, e, Self.tokens(10), at: Self.at(700))
        #expect(!denied.decision.allowed && denied.decision.deniedBy == "concurrency" && denied.decision.retryAfterMs == 400_000)
        let b = try #require(try await self.take(.reserve, e, Self.tokens(10), at: Self.at(1100)).reservation)
        // a's lease expired and went to b: a renew extends the reservation but not the lease.
        #expect(try await self.renew(a, ttlMs: 120_000, at: Self.at(1200)) == .renewed(expiresAtMs: Self.ms(1320), lease: false, reclaimed: 0))
        #expect(try await self.command("ZSCORE", p + "lz", a.token).string == nil)
        #expect(try await self.int("ZCARD", p + "lz") == 1)
        #expect(try await self.take(.reserve, e, Self.tokens(10), at: Self.at(1201)).decision.deniedBy == "concurrency")
        // Even with the slot free again, a lost lease is not taken back.
        _ = try self.settled(try await self.settle(b, Self.tokens(10), at: Self.at(1202)))
        // No TTL given: the reservation's own, as reserved (an hour), not the last renew's.
        #expect(try await self.renew(a, at: Self.at(1203)) == .renewed(expiresAtMs: Self.ms(1203) + 3_600_000, lease: false, reclaimed: 0))
        #expect(try await self.int("ZCARD", p + "lz") == 0)
        #expect(try await self.take(.reserve, e, Self.tokens(10), at: Self.at(1204)).decision.allowed)
    }

    @Test("renew of a reservation without a lease (no concurrency limit) reports none")
    func renewWithoutLease() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)]))
        let a = try await self.reserve(e, Self.tokens(10), ttlMs: 60_000, at: Self.at(0))
        #expect(try await self.renew(a, at: Self.at(30)) == .renewed(expiresAtMs: Self.ms(90), lease: nil, reclaimed: 0))
        // Renewed: open past its first expiry.
        _ = try self.settled(try await self.settle(a, Self.tokens(10), at: Self.at(80)))
    }

    @Test("an expired reservation's lease is free: a reservation shorter than its lease does not hold the slot past its expiry")
    func expiredReservationFreesLease() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)], concurrency: ConcurrencyLimit(limit: 1, leaseTTLMs: 600_000)))
        let a = try await self.reserve(e, Self.tokens(10), ttlMs: 60_000, at: Self.at(0))
        // Expired: nothing can settle, renew or cancel it any more...
        #expect(try await self.settle(a, nil, at: Self.at(61)) == .unknown(reclaimed: 1))
        // ...so its slot is free (docs/ARCHITECTURE.md: "an expired reservation ... its lease is free").
        let b = try await self.take(.reserve, e, Self.tokens(10), at: Self.at(62))
        #expect(b.decision.allowed, "denied by \(b.decision.deniedBy ?? "-"), retry \(b.decision.retryAfterMs) ms")
    }

    // MARK: 6. Expiry

    @Test("an expired reservation is counted as reclaimed exactly once, by the first call after its expiry")
    func reclaimOnce() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)]))
        let p = self.prefix(e)
        _ = try await self.reserve(e, Self.tokens(10), ttlMs: 1000, at: Self.at(0))
        #expect(try await self.take(.check, e, at: Self.at(0, ms: 999)).reclaimed == 0)
        let first = try await self.take(.check, e, at: Self.at(2))
        #expect(first.decision.allowed && first.reclaimed == 1)
        #expect(try await self.take(.check, e, at: Self.at(2)).reclaimed == 0)
        #expect(try await self.view(e, at: Self.at(3)).reclaimed == 0)
        // Still charged at its estimate.
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 10_000_000))
    }

    // MARK: 7. Idempotency

    @Test("the same idempotency key returns the first reservation, replayed, taking nothing; another key opens another; a denial is not remembered")
    func idempotency() async throws {
        let e = self.entry(self.plan(throttleBurst: 2, named: [Self.bucket("in", .inputTokens, burst: 1000)]))
        let p = self.prefix(e)
        let a1 = try await self.take(.reserve, e, Self.tokens(100), idempotencyKey: "abc", at: Self.at(0))
        let id1 = try #require(a1.reservation)
        #expect(a1.decision.allowed && !a1.replay && a1.decision.limits.map(\.remaining) == [1, 900])
        let before = try await self.snapshot(e)

        let retryID = LedgerScript.ReservationID.random(keyID: e.keyID)
        let a2 = try await self.take(.reserve, e, Self.tokens(500), id: retryID, idempotencyKey: "abc", at: Self.at(1))
        #expect(a2.replay && a2.decision.allowed && a2.reservation == id1 && a2.expiresAtMs == a1.expiresAtMs)
        #expect(a2.decision.limits == a1.decision.limits)
        #expect(try await self.snapshot(e) == before)
        #expect(try await self.int("EXISTS", p + "v:" + retryID.token) == 0)

        let b = try await self.take(.reserve, e, Self.tokens(100), idempotencyKey: "def", at: Self.at(1))
        #expect(b.decision.allowed && !b.replay && b.reservation != nil && b.reservation != id1)

        // The throttle is empty: denied (a token in 1000 s, less the second gone by), not remembered.
        let ghi = LedgerScript.take(
            .reserve, entry: e, limits: e.plan.limits(for: nil), requestUnits: 1, tokens: Self.tokens(100), price: Self.price,
            reservation: .random(keyID: e.keyID), idempotencyKey: "ghi", nowMicros: Self.at(1)
        )
        let entryKey = String(decoding: ghi.keys[1], as: UTF8.self)
        let denied = try await self.take(.reserve, e, Self.tokens(100), idempotencyKey: "ghi", at: Self.at(1))
        #expect(!denied.decision.allowed && denied.decision.deniedBy == "throttle" && denied.decision.retryAfterMs == 999_000)
        #expect(try await self.int("EXISTS", entryKey) == 0)

        // A cancel gives a request back; the retry with the same key is a new attempt.
        _ = try self.settled(try await self.settle(id1, nil, at: Self.at(1)))
        let retried = try await self.take(.reserve, e, Self.tokens(100), idempotencyKey: "ghi", at: Self.at(1))
        #expect(retried.decision.allowed && !retried.replay && retried.reservation != nil)
        #expect(try await self.int("EXISTS", entryKey) == 1)
        let again = try await self.take(.reserve, e, Self.tokens(100), idempotencyKey: "ghi", at: Self.at(2))
        #expect(again.replay && again.reservation == retried.reservation)
    }

    @Test("a replayed answer (same idempotency key, settle twice) reports this call's reclaims, so each expiry is counted once")
    func replayCountsReclaimsOnce() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)]))
        _ = try await self.reserve(e, Self.tokens(1), ttlMs: 1000, at: Self.at(0))
        let first = try await self.take(.reserve, e, Self.tokens(1), idempotencyKey: "k", at: Self.at(2))
        #expect(first.reclaimed == 1 && !first.replay)
        // The retry removed nothing: it must not count the first call's expiry again.
        let retry = try await self.take(.reserve, e, Self.tokens(1), idempotencyKey: "k", at: Self.at(3))
        #expect(retry.replay && retry.reservation == first.reservation)
        #expect(retry.reclaimed == 0, "replayed reserve reported \(retry.reclaimed)")
        // A retry that does remove expired reservations (two) reports them: no later call will.
        _ = try await self.reserve(e, Self.tokens(1), ttlMs: 1000, at: Self.at(3))
        _ = try await self.reserve(e, Self.tokens(1), ttlMs: 1000, at: Self.at(3))
        let later = try await self.take(.reserve, e, Self.tokens(1), idempotencyKey: "k", at: Self.at(5))
        #expect(later.replay && later.reclaimed == 2, "replayed reserve reported \(later.reclaimed)")
        #expect(try await self.take(.check, e, at: Self.at(5)).reclaimed == 0)

        let z = try await self.reserve(e, Self.tokens(1), at: Self.at(10))
        _ = try await self.reserve(e, Self.tokens(1), ttlMs: 1000, at: Self.at(10))
        #expect(try self.settled(try await self.settle(z, Self.tokens(1), at: Self.at(12))).reclaimed == 1)
        let replayed = try self.settled(try await self.settle(z, Self.tokens(1), at: Self.at(13)))
        #expect(replayed.replay && replayed.reclaimed == 0, "replayed settle reported \(replayed.reclaimed)")
    }

    // MARK: 8. Check

    @Test("check charges its tokens at once; with no tokens it needs one token left and takes none")
    func check() async throws {
        let plan = self.plan(throttleBurst: 5, named: [Self.bucket("in", .inputTokens, burst: 1000)])
        let e = self.entry(plan)
        let p = self.prefix(e)
        let r = try await self.take(.check, e, Self.tokens(300), at: Self.at(0))
        #expect(r.decision.allowed && r.reservation == nil && r.expiresAtMs == nil)
        #expect(r.decision.limits.map(\.remaining) == [4, 700])
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 300_000_000))
        #expect(try await self.int("EXISTS", p + "vz") == 0)
        #expect(try await self.records(e) == 0)

        // 1500 charged: 800 in debt. A check of nothing waits 801 s and takes nothing.
        _ = try await self.take(.charge, e, Self.tokens(1500), at: Self.at(0))
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 1_800_000_000))
        let before = try await self.snapshot(e)
        let denied = try await self.take(.check, e, at: Self.at(0))
        #expect(!denied.decision.allowed && denied.decision.deniedBy == "in" && denied.decision.retryAfterMs == 801_000)
        #expect(denied.decision.limits.map(\.remaining) == [4, 0])
        #expect(try await self.snapshot(e) == before)

        // Tokens available: allowed, the request counted, no token taken.
        let fresh = self.entry(plan, key: "fresh")
        let ok = try await self.take(.check, fresh, at: Self.at(0))
        #expect(ok.decision.allowed && ok.decision.limits.map(\.remaining) == [4, 1000])
        #expect(try await self.int("EXISTS", self.prefix(fresh) + "n:in") == 0)
        #expect(try await self.get(self.prefix(fresh) + "t") == String(Self.at(0) + 1_000_000_000))
    }

    // MARK: 9. Charge

    @Test("charge never denies, takes tokens past empty and leaves requests limits alone")
    func charge() async throws {
        let plan = self.plan(
            throttleBurst: 1, named: [Self.bucket("in", .inputTokens, burst: 1000), Self.quota("iq", .inputTokens, limit: 500)]
        )
        let e = self.entry(plan)
        let p = self.prefix(e)
        #expect(try await self.take(.check, e, at: Self.at(0)).decision.allowed)
        let throttle = try await self.get(p + "t")
        #expect(throttle == String(Self.at(0) + 1_000_000_000))

        let r = try await self.take(.charge, e, Self.tokens(1200), at: Self.at(0))
        #expect(r.decision.allowed && r.reservation == nil)
        #expect(r.decision.limits.map(\.remaining) == [0, 0, 0])
        #expect(r.decision.limits.map(\.retryAfterMs) == [0, 0, 0])
        #expect(try await self.get(p + "t") == throttle)
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 1_200_000_000))
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):1200")
        let more = try await self.take(.charge, e, Self.tokens(100), at: Self.at(0))
        #expect(more.decision.allowed)
        #expect(try await self.get(p + "t") == throttle)
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 1_300_000_000))
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):1300")
    }

    // MARK: 10. Usage records

    @Test("usage records hold the actual usage after settle, nothing after cancel, and drop days past the retention")
    func usageRecords() async throws {
        let plan = self.plan(named: [Self.bucket("in", .inputTokens, burst: 100_000), Self.quota("cost", .cost, limit: 1_000_000_000)], retention: 30)
        #expect(plan.ledgerUsageRetentionDays == 30)
        let e = self.entry(plan)
        let p = self.prefix(e)
        let day = Self.t0 / 86_400
        // Old records: day − 30 is past the retention, day − 29 within; a stray field goes too.
        try await self.command("HSET", p + "u", "\(day - 30)", "5", "\(day - 29)", "6", "junk", "7")
        try await self.command("HSET", p + "tu", "\(day - 30):i", "1", "\(day - 29):o", "2", "junk", "3", "day", "\(day - 1)")

        // 800 × 2.5 + 200 × 1.25 + 50 × 10 = 2750.
        let a = try await self.reserve(e, Self.tokens(1000, out: 50, cached: 200), at: Self.at(0))
        #expect(try await self.hash(p + "u") == ["\(day - 29)": "6", "\(day)": "1"])
        #expect(
            try await self.hash(p + "tu") == [
                "day": "\(day)", "\(day - 29):o": "2", "\(day):i": "1000", "\(day):o": "50", "\(day):k": "200", "\(day):c": "2750",
            ]
        )
        let ttl = try await self.int("TTL", p + "tu")
        #expect((31 * 86_400 - 60...31 * 86_400).contains(ttl), "TTL \(ttl)")
        #expect((31 * 86_400 - 60...31 * 86_400).contains(try await self.int("TTL", p + "u")))

        // Actual: 500 × 2.5 + 100 × 1.25 + 80 × 10 = 2175.
        let r = try self.settled(try await self.settle(a, Self.tokens(600, out: 80, cached: 100), retention: 30, at: Self.at(10)))
        #expect(r.estimate == Self.amounts(1, 1000, 50, 2750) && r.actual == Self.amounts(1, 600, 80, 2175))
        let settledUsage: [String: String] = [
            "day": "\(day)", "\(day - 29):o": "2", "\(day):i": "600", "\(day):o": "80", "\(day):k": "100", "\(day):c": "2175",
        ]
        #expect(try await self.hash(p + "tu") == settledUsage)
        #expect(try await self.hash(p + "u") == ["\(day - 29)": "6", "\(day)": "1"])

        // 10 × 2.5 + 5 × 10 = 75, held while open, gone when cancelled.
        let b = try await self.reserve(e, Self.tokens(10, out: 5), at: Self.at(20))
        #expect(try await self.hash(p + "u") == ["\(day - 29)": "6", "\(day)": "2"])
        #expect(try await self.hash(p + "tu")["\(day):c"] == "2250")
        _ = try self.settled(try await self.settle(b, nil, retention: 30, at: Self.at(30)))
        #expect(try await self.hash(p + "u") == ["\(day - 29)": "6", "\(day)": "1"])
        #expect(try await self.hash(p + "tu") == settledUsage)
    }

    @Test("a charge records tokens but no request; a plan without usage retention records nothing")
    func usageOfCharge() async throws {
        let plan = self.plan(named: [Self.bucket("in", .inputTokens, burst: 100_000)], retention: 7)
        let e = self.entry(plan)
        let p = self.prefix(e)
        let day = Self.t0 / 86_400
        _ = try await self.take(.charge, e, Self.tokens(40, out: 2), at: Self.at(0))
        #expect(try await self.int("EXISTS", p + "u") == 0)
        #expect(try await self.hash(p + "tu") == ["day": "\(day)", "\(day):i": "40", "\(day):o": "2"])

        let none = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 100_000)]), key: "none")
        let id = try await self.reserve(none, Self.tokens(40), at: Self.at(0))
        _ = try self.settled(try await self.settle(id, Self.tokens(50), at: Self.at(1)))
        #expect(try await self.int("EXISTS", self.prefix(none) + "u") == 0)
        #expect(try await self.int("EXISTS", self.prefix(none) + "tu") == 0)
    }

    @Test("a settle or cancel after midnight of a reservation whose day is past the retention leaves no negative usage")
    func usageAfterRetention() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 100_000)], retention: 1))
        let p = self.prefix(e)
        let d = ScriptSuite.utc(2025, 6, 1, 23)
        let day = d / 86_400
        let id = try await self.reserve(e, Self.tokens(400), ttlMs: 7_200_000, at: d * 1_000_000)
        // The first request of day D+1 (00:10) drops day D (retention 1 keeps today only); the
        // cancel comes at 00:30.
        _ = try await self.take(.check, e, Self.tokens(10), at: (d + 4200) * 1_000_000)
        #expect(try await self.hash(p + "u") == ["\(day + 1)": "1"])
        #expect(try await self.hash(p + "tu") == ["day": "\(day + 1)", "\(day + 1):i": "10"])
        _ = try self.settled(try await self.settle(id, nil, retention: 1, at: (d + 5400) * 1_000_000))
        let usage = try await self.hash(p + "u")
        let tokens = try await self.hash(p + "tu")
        #expect(usage == ["\(day + 1)": "1"], "u: \(usage)")
        #expect(tokens.filter { $0.key != "day" } == ["\(day + 1):i": "10"], "tu: \(tokens)")
    }

    // MARK: 11. View

    @Test("view: open reservations, leases and the estimates they hold")
    func viewOp() async throws {
        let plan = self.plan(
            named: [Self.bucket("in", .inputTokens, burst: 100_000), Self.quota("cost", .cost, limit: 1_000_000)],
            concurrency: ConcurrencyLimit(limit: 5, leaseTTLMs: 600_000)
        )
        let e = self.entry(plan)
        #expect(try await self.view(e, at: Self.at(0)) == ViewRow(nowMs: Self.ms(0), open: 0, leases: 0, held: Self.amounts(0, 0, 0, 0), reclaimed: 0))
        // Costs: 100 × 2.5 + 10 × 10 = 350; 50 × 2.5 = 125.
        let a = try await self.reserve(e, Self.tokens(100, out: 10), at: Self.at(0))
        _ = try await self.reserve(e, Self.tokens(50), at: Self.at(0))
        let both = try await self.view(e, at: Self.at(0))
        #expect(both == ViewRow(nowMs: Self.ms(0), open: 2, leases: 2, held: Self.amounts(2, 150, 10, 475), reclaimed: 0))
        _ = try self.settled(try await self.settle(a, Self.tokens(100, out: 10), at: Self.at(1)))
        #expect(try await self.view(e, at: Self.at(1)) == ViewRow(nowMs: Self.ms(1), open: 1, leases: 1, held: Self.amounts(1, 50, 0, 125), reclaimed: 0))
        // The lease lapses at 600 s, the reservation at 3600 s.
        #expect(try await self.view(e, at: Self.at(600)) == ViewRow(nowMs: Self.ms(600), open: 1, leases: 0, held: Self.amounts(1, 50, 0, 125), reclaimed: 0))
        #expect(try await self.view(e, at: Self.at(3600)) == ViewRow(nowMs: Self.ms(3600), open: 0, leases: 0, held: Self.amounts(0, 0, 0, 0), reclaimed: 1))
    }

    // MARK: 12. Bad state

    @Test("a bucket or quota key holding garbage or another type counts as absent (full)", arguments: ["garbage", "inf", "nan", "-inf", "", "hash"])
    func garbageLimitState(value: String) async throws {
        let plan = self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000), Self.quota("iq", .inputTokens, limit: 10_000)])
        let e = self.entry(plan, key: "g\(value)")
        let p = self.prefix(e)
        for key in [p + "n:in", p + "n:iq"] {
            if value == "hash" {
                try await self.command("HSET", key, "f", "v")
            } else {
                try await self.command("SET", key, value)
            }
        }
        let r = try await self.take(.reserve, e, Self.tokens(100), at: Self.at(0))
        #expect(r.decision.allowed && r.decision.limits.map(\.remaining) == [900, 9900])
        #expect(try await self.get(p + "n:in") == String(Self.at(0) + 100_000_000))
        #expect(try await self.get(p + "n:iq") == "\(Self.day0):100")
        // The same garbage met by a settle: a refund onto a full bucket, a quota read as empty.
        for key in [p + "n:in", p + "n:iq"] {
            if value == "hash" {
                try await self.command("DEL", key)
                try await self.command("HSET", key, "f", "v")
            } else {
                try await self.command("SET", key, value)
            }
        }
        let s = try self.settled(try await self.settle(try #require(r.reservation), Self.tokens(40), at: Self.at(0)))
        // The bucket: a refund onto full is still full. The quota reads as unused: refunded to 0.
        #expect(s.limits.map(\.remaining) == [1000, 10_000])
    }

    @Test("a reservation record holding garbage or another type is an unknown reservation")
    func garbageRecord() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)]))
        let p = self.prefix(e)
        let cases: [(String, [RedisArgument])] = [
            ("SET", ["garbage"]), ("SET", [""]), ("HSET", ["f", "v"]),
            // msgpack of [1]: a table, but no expiry.
            ("SET", [RedisArgument(bytes: [0x91, 0x01])]),
        ]
        for (index, (command, arguments)) in cases.enumerated() {
            let id = LedgerScript.ReservationID.random(keyID: e.keyID)
            _ = try await self.client.command([RedisArgument(command), RedisArgument(p + "v:" + id.token)] + arguments)
            try await self.command("ZADD", p + "vz", String(Self.ms(3600)), id.token)
            #expect(try await self.settle(id, Self.tokens(1), at: Self.at(0)) == .unknown(reclaimed: 0), "case \(index)")
            #expect(try await self.settle(id, nil, at: Self.at(0)) == .unknown(reclaimed: 0), "case \(index)")
            #expect(try await self.renew(id, at: Self.at(0)) == .unknown(reclaimed: 0), "case \(index)")
        }
        // The view skips them too.
        let view = try await self.view(e, at: Self.at(0))
        #expect(view.open == 4 && view.held == Self.amounts(0, 0, 0, 0))
    }

    @Test("a record that is a msgpack map without the script's fields is an unknown reservation, not a Redis error")
    func foreignRecord() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)]))
        let p = self.prefix(e)
        let id = LedgerScript.ReservationID.random(keyID: e.keyID)
        // A map with an expiry in the future and nothing else (written by something else).
        try await self.command(
            "EVAL", "redis.call('SET', KEYS[1], cmsgpack.pack({x = tonumber(ARGV[1])})) return 1", "1", p + "v:" + id.token,
            String(Self.ms(3600))
        )
        try await self.command("ZADD", p + "vz", String(Self.ms(3600)), id.token)
        for call in [
            LedgerScript.settle(id, tokens: Self.tokens(1), retentionDays: 0, nowMicros: Self.at(0)),
            LedgerScript.settle(id, tokens: nil, retentionDays: 0, nowMicros: Self.at(0)),
            LedgerScript.renew(id, ttlMs: nil, nowMicros: Self.at(0)),
        ] {
            let reply = try await self.reply(call)
            #expect(reply.errorMessage == nil, "\(reply)")
        }
    }

    @Test("usage records of another type are replaced, not a Redis error")
    func garbageUsage() async throws {
        let e = self.entry(self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)], retention: 7))
        let p = self.prefix(e)
        let day = Self.t0 / 86_400
        try await self.command("SET", p + "u", "garbage")
        try await self.command("SADD", p + "tu", "garbage")
        let id = try await self.reserve(e, Self.tokens(10), at: Self.at(0))
        #expect(try await self.hash(p + "u") == ["\(day)": "1"])
        #expect(try await self.hash(p + "tu") == ["day": "\(day)", "\(day):i": "10"])
        _ = try self.settled(try await self.settle(id, Self.tokens(20), retention: 7, at: Self.at(1)))
        #expect(try await self.hash(p + "tu") == ["day": "\(day)", "\(day):i": "20"])
    }

    @Test(
        "the reservations or leases set, or an idempotency entry, of another type is not a Redis error",
        arguments: ["vz", "lz", "idempotency"]
    )
    func wrongTypeSets(which: String) async throws {
        let plan = self.plan(named: [Self.bucket("in", .inputTokens, burst: 1000)], concurrency: ConcurrencyLimit(limit: 2, leaseTTLMs: 600_000))
        let e = self.entry(plan, key: which)
        let p = self.prefix(e)
        let call = LedgerScript.take(
            .reserve, entry: e, limits: plan.limits(for: nil), requestUnits: 1, tokens: Self.tokens(10), price: Self.price,
            reservation: .random(keyID: e.keyID), idempotencyKey: "key", nowMicros: Self.at(0)
        )
        let key = which == "idempotency" ? String(decoding: call.keys[1], as: UTF8.self) : p + which
        try await self.command("HSET", key, "f", "v")
        let reply = try await self.reply(call)
        #expect(reply.errorMessage == nil, "reserve: \(reply)")
        let view = try await self.reply(LedgerScript.view(keyID: e.keyID, nowMicros: Self.at(0)))
        #expect(view.errorMessage == nil, "view: \(view)")
    }

    // MARK: Plans the ledger serves besides token plans

    @Test("a reserve on a plan whose quota has an initial offset (reservations run on every plan) is not a Redis error")
    func reserveWithInitialOffset() async throws {
        let plan = Plan(
            name: "p", throttle: nil, quota: Quota(limit: 5, period: .day, offsetHours: 0, initialOffset: 2), routes: [],
            onBackendError: .deny
        )
        let e = self.entry(plan)
        let call = LedgerScript.take(
            .reserve, entry: e, limits: plan.limits(for: nil), requestUnits: 1, tokens: .zero, price: .free,
            reservation: .random(keyID: e.keyID), nowMicros: Self.at(0)
        )
        let reply = try await self.reply(call)
        #expect(reply.errorMessage == nil, "\(reply)")
        let values = try #require(reply.ledgerValues)
        let r = try LedgerScript.takeResult(plan: plan, keyID: e.keyID, limits: plan.limits(for: nil), reserve: true, values: values)
        #expect(r.decision.allowed)
    }

    @Test("a reserve on a plain plan (throttle and quota only) takes 1 from each and a cancel gives it back")
    func reserveOnPlainPlan() async throws {
        let plan = self.plan(throttleBurst: 3, quota: Quota(limit: 10, period: .day, offsetHours: 0))
        #expect(!plan.usesLedger)
        let e = self.entry(plan)
        let p = self.prefix(e)
        let r = try await self.take(.reserve, e, Self.tokens(1000, out: 1000), at: Self.at(0))
        #expect(r.decision.allowed && r.decision.limits.map(\.remaining) == [2, 9])
        #expect(try await self.get(p + "q") == "\(Self.day0):1")
        let s = try self.settled(try await self.settle(try #require(r.reservation), nil, at: Self.at(0)))
        #expect(s.limits == [Row("throttle", 3, 3, 0), Row("quota", 10, 10, 43_200_000)])
        #expect(try await self.get(p + "q") == "\(Self.day0):0")
    }
}
