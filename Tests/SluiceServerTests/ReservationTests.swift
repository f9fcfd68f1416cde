import Foundation
import HummingbirdTesting
import SluiceCore
import SluiceTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One redis-server for the whole suite, started before its first test and stopped (by PID) after
/// its last. Every test uses API keys of its own, so their state never meets.
struct ReservationRedisScope: SuiteTrait, TestScoping {
    @TaskLocal static var redis: RedisServer?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let redis = try await RedisServer.start()
        defer { redis.stop() }
        try await Self.$redis.withValue(redis) { try await function() }
    }
}

extension HTTPTestResponse {
    fileprivate var allowed: Bool? { self.json["allowed"] as? Bool }
    fileprivate var deniedBy: String? { self.json["denied_by"] as? String }
    fileprivate var reservationID: String? { self.json["reservation_id"] as? String }
    fileprivate var expiresAtMs: Int64? { (self.json["expires_at_ms"] as? Int).map(Int64.init) }
    fileprivate var errorCode: String? { (self.json["error"] as? [String: Any])?["code"] as? String }
    fileprivate var limits: [[String: Any]] { self.json["limits"] as? [[String: Any]] ?? [] }

    /// The entry of the limit `name` in `limits`.
    fileprivate func limit(_ name: String) -> [String: Any]? {
        self.limits.first { $0["name"] as? String == name }
    }

    /// `remaining` of the limit `name`.
    fileprivate func remaining(of name: String) -> Int? { self.limit(name)?["remaining"] as? Int }

    /// An amounts object of a settle answer (`charged`, `refunded`, `overrun`).
    fileprivate func amounts(_ key: String) -> [String: Int] {
        (self.json[key] as? [String: Any])?.compactMapValues { $0 as? Int } ?? [:]
    }
}

/// End-to-end tests of reservations (docs/ARCHITECTURE.md, "Token limits, reservations and
/// leases"): real HTTP to in-process Sluice instances built as `sluice serve` builds them, one
/// real redis-server for the suite, assertions against what Redis holds.
@Suite("Reservations end to end", .serialized, ReservationRedisScope())
struct ReservationTests {
    static let seeds = Result { try SeededRandom.Suite("ReservationTests") }

    static let yaml = """
        admin: { port: 0, tokens_sha256: [\(KeyDigester.sha256Hex(of: "admin-secret"))] }
        plans:
          exact:
            limits:
              tpm: { counts: total_tokens, rate: 8000, burst: 8000 }
              daily: { counts: total_tokens, quota: { limit: 24000, period: day } }
              spend: { counts: cost, quota: { limit: 1000000000, period: month } }
            prices:
              gpt-4o: { input: 2.5, output: 10, cached_input: 1.25 }
              mini: { input: 0.15, output: 0.6, cached_input: 0.075 }
              "*": { input: 1, output: 1 }
          idem:
            limits:
              slow: { counts: total_tokens, rate: 1, burst: 1000000 }
              daily: { counts: total_tokens, quota: { limit: 10000000, period: day } }
              spend: { counts: cost, quota: { limit: 1000000000, period: month } }
            prices: { "*": { input: 1, output: 2 } }
          expiry:
            limits:
              daily: { counts: total_tokens, quota: { limit: 1000000, period: day } }
          lease:
            concurrency: { limit: 4, lease_ttl_s: 2 }
          killed:
            concurrency: { limit: 1, lease_ttl_s: 2 }
          hdr:
            limits:
              itpd: { counts: input_tokens, quota: { limit: 1000000, period: day } }
              otpm: { counts: output_tokens, rate: 100, burst: 6000 }
              rpm: { counts: requests, rate: 1, burst: 60 }
              spend: { counts: cost, quota: { limit: 5000, period: day } }
              tpm: { counts: total_tokens, rate: 1000, burst: 60000 }
            concurrency: { limit: 4, lease_ttl_s: 30 }
            prices: { "*": { input: 1, output: 1 } }
            headers: [openai, anthropic]
          bad:
            limits:
              slow: { counts: total_tokens, rate: 1, burst: 1000000 }
              spend: { counts: cost, quota: { limit: 1000000, period: day } }
            prices: { gpt-4o: { input: 2.5, output: 10 } }
          batchllm:
            limits:
              tpm: { counts: total_tokens, rate: 1, burst: 1000 }
          classic: { throttle: { rate: 0.01, burst: 3 } }
          edge:
            limits:
              tpm: { counts: total_tokens, rate: 0.01, burst: 5000 }
          lease2:
            concurrency: { limit: 2, lease_ttl_s: 1 }
          charge:
            limits:
              tpm: { counts: total_tokens, rate: 1, burst: 1000 }
              spend: { counts: cost, quota: { limit: 1000, period: day } }
              rpd: { counts: requests, quota: { limit: 10, period: day } }
            prices:
              gpt-4o: { input: 2.5, output: 10, cached_input: 1.25 }
              mini: { input: 0.15, output: 0.6, cached_input: 0.075 }
        api_keys:
          - { key: exact-key, plan: exact }
          - { key: idem-key, plan: idem }
          - { key: expiry-key, plan: expiry }
          - { key: lease-key, plan: lease }
          - { key: killed-key, plan: killed }
          - { key: hdr-key, plan: hdr }
          - { key: bad-key, plan: bad }
          - { key: batch-llm-key, plan: batchllm }
          - { key: batch-classic-key, plan: classic }
          - { key: charge-key, plan: charge }
          - { key: edge-key, plan: edge }
          - { key: lease2-key, plan: lease2 }
        """

    static func redis() throws -> RedisServer {
        try #require(ReservationRedisScope.redis, "the suite's redis-server is missing")
    }

    static func config() throws -> SluiceConfig {
        try ServerHarness.config(Self.yaml, redis: try Self.redis())
    }

    // MARK: Redis-side truth

    /// Redis's clock (`TIME`) in microseconds.
    static func redisMicros(_ raw: RawRedisConnection) async throws -> Int64 {
        let parts = try await raw.command("TIME").elements.compactMap(\.integer)
        guard parts.count == 2 else { throw TestSupportError("unexpected TIME reply") }
        return parts[0] * 1_000_000 + parts[1]
    }

    /// A named limit's quota state: `window_start:used[:extension]` (nil when absent).
    static func quota(_ raw: RawRedisConnection, _ keyID: String, _ limit: String) async throws -> (windowStart: Int, used: Int)? {
        guard let text = try await raw.command("GET", StateKeys.prefix(keyID: keyID) + StateKeys.namedSuffix(limit)).string else {
            return nil
        }
        let parts = text.split(separator: ":")
        guard parts.count >= 2, let start = Int(parts[0]), let used = Int(parts[1]) else {
            throw TestSupportError("unreadable quota state \(text)")
        }
        return (start, used)
    }

    /// A quota's used count (0 when it has no state).
    static func used(_ raw: RawRedisConnection, _ keyID: String, _ limit: String) async throws -> Int {
        try await self.quota(raw, keyID, limit)?.used ?? 0
    }

    /// A named bucket's theoretical arrival time in µs (nil when absent: full).
    static func tat(_ raw: RawRedisConnection, _ keyID: String, _ limit: String) async throws -> Double? {
        guard let text = try await raw.command("GET", StateKeys.prefix(keyID: keyID) + StateKeys.namedSuffix(limit)).string else {
            return nil
        }
        guard let tat = Double(text) else { throw TestSupportError("unreadable bucket state \(text)") }
        return tat
    }

    /// Every state key of an API key with its value (strings, sorted sets and hashes as text).
    static func snapshot(_ raw: RawRedisConnection, _ keyID: String) async throws -> [String: String] {
        var out: [String: String] = [:]
        for name in try await raw.command("KEYS", StateKeys.prefix(keyID: keyID) + "*").elements.compactMap(\.string) {
            switch try await raw.command("TYPE", name).string {
            case "string":
                out[name] = try await raw.command("GET", name).string.map { "string \($0)" } ?? "gone"
            case "zset":
                out[name] = "zset " + (try await raw.command("ZRANGE", name, "0", "-1", "WITHSCORES").elements.compactMap(\.string)).joined(separator: " ")
            case "hash":
                out[name] = "hash " + (try await raw.command("HGETALL", name).elements.compactMap(\.string)).sorted().joined(separator: " ")
            case let other:
                out[name] = other ?? "?"
            }
        }
        return out
    }

    /// Daily and monthly quotas move to a new window at midnight UTC: a test that adds up one
    /// window's counts does not start within 15 s of it (it waits until just past it).
    static func avoidMidnight(_ raw: RawRedisConnection) async throws {
        let nowMs = try await self.redisMicros(raw) / 1000
        let untilMidnight = 86_400_000 - nowMs % 86_400_000
        if untilMidnight < 15_000 {
            try await Task.sleep(for: .milliseconds(untilMidnight + 500))
        }
    }

    /// Runs `body(0..<count)` at once, each on a thread of its own (so blocking requests hold
    /// neither Dispatch's few worker threads nor the cooperative pool the servers under test
    /// need), and returns the results in index order.
    static func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) async -> [T] {
        await withCheckedContinuation { continuation in
            let results = LockedBox<[Int: T]>([:])
            for index in 0..<count {
                let thread = Thread {
                    let value = body(index)
                    let all: [T]? = results.withLock { done in
                        done[index] = value
                        return done.count == count ? (0..<count).map { done[$0]! } : nil
                    }
                    if let all { continuation.resume(returning: all) }
                }
                thread.start()
            }
        }
    }

    /// Runs `body(0..<count)` at once on threads of their own; the results in index order, or
    /// the first error.
    static func concurrently<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) async throws -> [T] {
        try await self.onThreads(count) { index in Result { try body(index) } }.map { try $0.get() }
    }

    // MARK: 1. Exactness

    /// Prices of the exactness plan in millionths of a cost unit per token: input, output, cached input.
    static let exactPrices: [String: (input: Int, output: Int, cached: Int)] = [
        "gpt-4o": (2_500_000, 10_000_000, 1_250_000),
        "mini": (150_000, 600_000, 75_000),
        "other": (1_000_000, 1_000_000, 1_000_000),
    ]

    /// ⌈Σ tokens × price⌉ in cost units, computed here independently of Sluice.
    static func cost(_ model: String, input: Int, output: Int, cached: Int) -> Int {
        let price = Self.exactPrices[model]!
        let micros = (input - cached) * price.input + cached * price.cached + output * price.output
        return (micros + 999_999) / 1_000_000
    }

    enum Fate: Sendable { case settle, settleAtEstimate, cancel, expire }

    /// One client round: reserve a random estimate, then settle (below or above it), cancel, or
    /// leave it to expire. Every draw is made before any request, so a replay draws the same.
    static func exactRound(
        _ rng: inout SeededRandom, key: String, reserveOn: Endpoint, settleOn: Endpoint, tally: ExactTally
    ) {
        let model = ["gpt-4o", "mini", "other"].randomElement(using: &rng)!
        let input = Int.random(in: 100...2000, using: &rng)
        let cached = Bool.random(using: &rng) ? Int.random(in: 0...(input / 2), using: &rng) : 0
        let output = Int.random(in: 50...1000, using: &rng)
        let roll = Int.random(in: 0..<100, using: &rng)
        let fate: Fate = roll < 55 ? .settle : roll < 65 ? .settleAtEstimate : roll < 85 ? .cancel : .expire
        var actualInput = Int.random(in: (input * 3 / 10)...(input * 16 / 10), using: &rng)
        var actualOutput = Int.random(in: 0...(output * 16 / 10), using: &rng)
        var actualCached = min(cached, actualInput)
        if fate == .settleAtEstimate {
            (actualInput, actualOutput, actualCached) = (input, output, cached)
        }
        // After a denial, a short pause: the bucket stays far oversubscribed, and the run leaves
        // the other suites of the process some CPU.
        let pauseMs = Int.random(in: 2...8, using: &rng)

        let answer: HTTPTestResponse
        do {
            answer = try reserveOn.reserveBlocking(key, model: model, input: input, output: output, cached: cached, ttlMs: fate == .expire ? 1000 : 30000)
        } catch {
            tally.problem("reserve: no answer (\(error)): its effect is unknown")
            return
        }
        tally.update { $0.reserves += 1 }
        guard answer.status == 200, let allowed = answer.allowed else {
            tally.problem("reserve: \(answer.status) \(answer.text)")
            return
        }
        guard allowed else {
            if answer.reservationID != nil { tally.problem("a denied reserve carries a reservation_id: \(answer.text)") }
            tally.update { $0.denials[answer.deniedBy ?? "?", default: 0] += 1 }
            usleep(UInt32(pauseMs * 1000))
            return
        }
        guard let id = answer.reservationID else {
            tally.problem("an allowed reserve without reservation_id: \(answer.text)")
            return
        }
        tally.update { $0.allowed += 1 }
        let estimateTokens = input + output
        let estimateCost = Self.cost(model, input: input, output: output, cached: cached)
        switch fate {
        case .expire:
            let expiresAtMs = answer.expiresAtMs ?? 0
            tally.update {
                $0.leftToExpire += 1
                $0.lastExpiryMs = max($0.lastExpiryMs, expiresAtMs)
                $0.chargedTokens += estimateTokens
                $0.chargedCost += estimateCost
                $0.admittedNet += estimateTokens
            }
        case .cancel:
            do {
                let cancelled = try settleOn.cancelBlocking(id)
                guard cancelled.status == 204 else {
                    tally.problem("cancel: \(cancelled.status) \(cancelled.text)")
                    return
                }
                tally.update { $0.cancelled += 1 }
            } catch {
                tally.problem("cancel: no answer (\(error)): its effect is unknown")
            }
        case .settle, .settleAtEstimate:
            let settled: HTTPTestResponse
            do {
                settled = try settleOn.settleBlocking(id, input: actualInput, output: actualOutput, cached: actualCached)
            } catch {
                tally.problem("settle: no answer (\(error)): its effect is unknown")
                return
            }
            guard settled.status == 200, settled.json["settled"] as? Bool == true, settled.json["replayed"] == nil else {
                tally.problem("settle: \(settled.status) \(settled.text)")
                return
            }
            let actualTokens = actualInput + actualOutput
            let actualCost = Self.cost(model, input: actualInput, output: actualOutput, cached: actualCached)
            let charged = settled.amounts("charged")
            let expected = ["requests": 1, "input_tokens": actualInput, "output_tokens": actualOutput, "total_tokens": actualTokens, "cost": actualCost]
            if charged != expected {
                tally.problem("settle of \(model) \(actualInput)/\(actualOutput)/\(actualCached) charged \(charged), expected \(expected)")
            }
            let refunded = settled.amounts("refunded")
            let overrun = settled.amounts("overrun")
            if refunded["total_tokens"] != max(0, estimateTokens - actualTokens) || overrun["total_tokens"] != max(0, actualTokens - estimateTokens)
                || refunded["cost"] != max(0, estimateCost - actualCost) || overrun["cost"] != max(0, actualCost - estimateCost)
            {
                tally.problem("settle of estimate \(estimateTokens) (cost \(estimateCost)) at \(actualTokens) (cost \(actualCost)): refunded \(refunded), overrun \(overrun)")
            }
            tally.update {
                $0.settled += 1
                $0.chargedTokens += charged["total_tokens"] ?? 0
                $0.chargedCost += charged["cost"] ?? 0
                $0.overrunTokens += overrun["total_tokens"] ?? 0
                $0.admittedNet += min(actualTokens, estimateTokens)
            }
        }
    }

    @Test("exactness: 8 clients on 2 instances reserve, settle under and over, cancel and abandon; Redis holds exactly what the answers charged, within the limits")
    func exactness() async throws {
        let redis = try Self.redis()
        // The suite's seed is what SLUICE_TEST_SEED replays; each test's generator derives from it.
        let seed = try Self.seeds.get().seed
        var generator = try Self.seeds.get().generator(for: "exactness")
        let clientSeeds = (0..<8).map { _ in generator.next() }
        let key = "exact-key"
        let keyID = ServerHarness.keyID(key)
        let raw = try RawRedisConnection(port: redis.port)
        try await Self.avoidMidnight(raw)
        let config = try Self.config()
        // The plan: tpm 8 000 tokens/s (one token per 125 µs), burst 8 000; daily 24 000 tokens.
        // Estimates average ~1 600 tokens: even a run slowed to ten reserves a second by other
        // suites asks more than the bucket gives, and the quota runs out after about 2 s.
        let interval = 125.0
        let burst = 8_000.0
        let dailyLimit = 24_000
        let poolTokens = 4_000
        try await ServerHarness.run(config) { ha in
            try await ServerHarness.run(config) { hb in
                let a = try Endpoint(ha)
                let b = try Endpoint(hb)
                let t0 = try await Self.redisMicros(raw)
                #expect(try await Self.snapshot(raw, keyID).isEmpty, "the key must start with no state")
                // Held by the test through the run and cancelled after it, to reopen the quota
                // for the edge check below: 4 000 tokens (model "*": 4 000 cost units).
                let pool = try await a.reserve(key, model: "other", input: poolTokens, output: 0, ttlMs: 60_000)
                let poolID = try #require(pool.reservationID, "\(pool.status) \(pool.text)")

                let tally = ExactTally()
                // And one left to expire for certain (the clients leave some too, at random).
                let abandoned = try await b.reserve(key, model: "mini", input: 500, output: 0, ttlMs: 1000)
                try #require(abandoned.allowed == true, "\(abandoned.text)")
                tally.update {
                    $0.leftToExpire += 1
                    $0.lastExpiryMs = abandoned.expiresAtMs ?? 0
                    $0.chargedTokens += 500
                    $0.chargedCost += Self.cost("mini", input: 500, output: 0, cached: 0)
                    $0.admittedNet += 500
                }
                let start = ContinuousClock.now
                // Each client on a thread of its own, every request on a new connection.
                _ = await Self.onThreads(8) { client in
                    // Reserve on one instance and settle on the other: they share only Redis.
                    let (mine, other) = client % 2 == 0 ? (a, b) : (b, a)
                    var rng = SeededRandom(seed: clientSeeds[client])
                    while true {
                        let elapsed = ContinuousClock.now - start
                        // Until the quota has denied (at least 1.5 s), at most 5 s when the machine is slow.
                        if elapsed >= .seconds(5) || (elapsed >= .milliseconds(1500) && tally.sawDenial("daily")) { break }
                        Self.exactRound(&rng, key: key, reserveOn: mine, settleOn: other, tally: tally)
                    }
                }
                // The bucket's state first, then the clock: any later instant bounds it.
                let tat = try await Self.tat(raw, keyID, "tpm")
                let t1 = try await Self.redisMicros(raw)
                let totals = tally.totals
                let context = "seed \(seed)"
                print(
                    "ReservationTests.exactness (\(context)): \(totals.reserves) reserves in \(Double(t1 - t0) / 1e6) s, "
                        + "\(totals.allowed) allowed, denied \(totals.denials), \(totals.settled) settled, \(totals.cancelled) cancelled, "
                        + "\(totals.leftToExpire) left to expire; \(totals.chargedTokens) tokens charged (\(totals.overrunTokens) overrun), "
                        + "\(totals.chargedCost) cost units"
                )
                #expect(totals.problems.isEmpty, "\(context): \(totals.problems.count) problems: \(totals.problems.prefix(5))")

                // (a) Conservation: Redis holds exactly what the answers charged.
                let daily = try #require(try await Self.quota(raw, keyID, "daily"))
                let spend = try #require(try await Self.quota(raw, keyID, "spend"))
                #expect(daily.windowStart == Int(t1 / 86_400_000_000) * 86_400, "\(context): the daily window changed during the run")
                #expect(
                    daily.used == totals.chargedTokens + poolTokens,
                    "\(context): daily quota holds \(daily.used), the answers charged \(totals.chargedTokens) + the pool's \(poolTokens)"
                )
                #expect(
                    spend.used == totals.chargedCost + poolTokens,
                    "\(context): spend quota holds \(spend.used), the answers charged \(totals.chargedCost) + the pool's \(poolTokens)"
                )

                // (b) Bounds. The bucket: everything charged is in its arrival time, so it is at
                // most burst + rate × elapsed + the debt left at the end. What the admissions took,
                // net of refunds, had to fit the bucket when admitted: no debt allowed for it
                // (+1 for the script's sub-token rounding slack).
                let elapsedTokens = Double(t1 - t0) / interval
                let debt = max(0, ((tat ?? Double(t1)) - Double(t1)) / interval - burst)
                let charged = Double(totals.chargedTokens + poolTokens)
                let admitted = Double(totals.admittedNet + poolTokens)
                #expect(
                    charged <= burst + elapsedTokens + debt + 1,
                    "\(context): \(charged) tokens charged on the bucket > burst \(burst) + \(elapsedTokens) refilled + debt \(debt)"
                )
                #expect(
                    admitted <= burst + elapsedTokens + 1,
                    "\(context): admissions took \(admitted) tokens net of refunds > burst \(burst) + \(elapsedTokens) refilled"
                )
                // The quota: at its last admission it held the admissions' net amount (and the
                // overruns charged before), and none may take it past the limit.
                #expect(
                    totals.admittedNet + poolTokens <= dailyLimit,
                    "\(context): admissions took \(totals.admittedNet + poolTokens) tokens of the daily quota net of refunds, over its \(dailyLimit)"
                )

                // (c) The run exercised both limits.
                #expect(totals.denials["tpm", default: 0] > 0, "\(context): the bucket never denied: \(totals.denials)")
                #expect(totals.denials["daily", default: 0] > 0, "\(context): the daily quota never denied: \(totals.denials)")
                #expect(totals.settled > 0, "\(context): \(totals)")

                // (b, the quota's edge) No refund can come any more (every reservation is settled,
                // cancelled or left to expire, which refunds nothing): cancel the pool, then
                // reserves larger than what the quota reports left must all be denied, and
                // concurrent ones take exactly what fits.
                let cancelled = try await a.cancel(poolID)
                #expect(cancelled.status == 204, "\(cancelled.text)")
                let usedNow = try await Self.used(raw, keyID, "daily")
                #expect(usedNow == daily.used - poolTokens, "\(context): cancelling the pool refunded \(daily.used - usedNow), not \(poolTokens)")
                var left = dailyLimit - usedNow
                // Fill it down to at most 6 000 left, in reserves the bucket can hold (it refills
                // 8 000 a second), so that the concurrent reserves below meet the quota's edge
                // and not the bucket's.
                while left > 6_000 {
                    let chunk = min(left - 6_000, 5_000)
                    try await Self.waitForBucket(raw, keyID, "tpm", tokens: Double(chunk), interval: interval, burst: burst)
                    let fill = try await a.reserve(key, model: "other", input: chunk, output: 0, ttlMs: 30_000)
                    try #require(fill.allowed == true && fill.remaining(of: "daily") == left - chunk, "\(context): \(left) left, a reserve of \(chunk): \(fill.text)")
                    left -= chunk
                }
                var allowedOverRemaining = 0
                if left >= 4 {
                    let estimate = left / 3 + 1  // two fit, a third does not
                    try await Self.waitForBucket(raw, keyID, "tpm", tokens: Double(left), interval: interval, burst: burst)
                    let edge = try await Self.concurrently(8) { index in
                        try (index % 2 == 0 ? a : b).reserveBlocking(key, model: "other", input: estimate, output: 0, ttlMs: 30_000)
                    }
                    let admittedAtEdge = edge.filter { $0.allowed == true }
                    #expect(admittedAtEdge.count == 2, "\(context): \(left) left, 8 concurrent reserves of \(estimate): \(edge.map(\.text))")
                    allowedOverRemaining += max(0, admittedAtEdge.count - 2)
                    for denied in edge where denied.allowed != true {
                        #expect(denied.deniedBy == "daily" && denied.remaining(of: "daily") == left - 2 * estimate, "\(context): \(denied.text)")
                    }
                    var reported = left - 2 * estimate
                    for _ in 0..<3 {
                        let over = try await a.reserve(key, model: "other", input: reported + 1, output: 0, ttlMs: 30_000)
                        if over.allowed == true { allowedOverRemaining += 1 }
                        #expect(over.deniedBy == "daily", "\(context): \(reported) left, a reserve of \(reported + 1): \(over.text)")
                        reported = over.remaining(of: "daily") ?? reported
                    }
                    if reported > 0 {
                        // Exactly what is left fits.
                        let exact = try await b.reserve(key, model: "other", input: reported, output: 0, ttlMs: 30_000)
                        #expect(exact.allowed == true && exact.remaining(of: "daily") == 0, "\(context): \(reported) left, a reserve of as much: \(exact.text)")
                    }
                    #expect(try await Self.used(raw, keyID, "daily") == dailyLimit, "\(context): the edge reserves did not fill the quota exactly")
                }
                // Once every reservation left behind has expired by Redis's clock, one more call
                // on the key reclaims the rest.
                while try await Self.redisMicros(raw) / 1000 <= totals.lastExpiryMs {
                    try await Task.sleep(for: .milliseconds(50))
                }
                let last = try await b.reserve(key, model: "other", input: 1, output: 0, ttlMs: 30_000)
                if last.allowed == true { allowedOverRemaining += 1 }
                #expect(last.deniedBy == "daily", "\(context): \(last.text)")
                #expect(allowedOverRemaining == 0, "\(context): \(allowedOverRemaining) reserves admitted for more than the quota reported left")

                // (b, the bucket's edge) The same on a bucket that refills one token per 100 s: of 8
                // concurrent reserves of 1 700 from a full 5 000, exactly 2 fit; then nothing more
                // than what it reports left.
                let edgeKey = "edge-key"
                let bucketEdge = try await Self.concurrently(8) { index in
                    try (index % 2 == 0 ? a : b).reserveBlocking(edgeKey, input: 1700, output: 0, ttlMs: 30_000)
                }
                #expect(bucketEdge.filter { $0.allowed == true }.count == 2, "\(context): \(bucketEdge.map(\.text))")
                for denied in bucketEdge where denied.allowed != true {
                    #expect(denied.deniedBy == "tpm" && denied.remaining(of: "tpm") == 1600, "\(context): \(denied.text)")
                }
                let overBucket = try await b.reserve(edgeKey, input: 1601, output: 0, ttlMs: 30_000)
                #expect(overBucket.allowed == false && overBucket.deniedBy == "tpm" && overBucket.remaining(of: "tpm") == 1600, "\(context): \(overBucket.text)")
                let fillBucket = try await a.reserve(edgeKey, input: 1000, output: 600, ttlMs: 30_000)
                #expect(fillBucket.allowed == true && fillBucket.remaining(of: "tpm") == 0, "\(context): \(fillBucket.text)")
                let emptyBucket = try await b.reserve(edgeKey, input: 0, output: 0, ttlMs: 30_000)
                #expect(emptyBucket.allowed == false && emptyBucket.deniedBy == "tpm", "an empty bucket admits nothing, not even 0 tokens: \(emptyBucket.text)")

                // Each reservation's end was counted once, on whichever instance saw it.
                let nodes = [a, b]
                #expect(try await Self.metricSum(nodes, plan: "exact", event: "expired") == totals.leftToExpire, "\(context)")
                #expect(try await Self.metricSum(nodes, plan: "exact", event: "settled") == totals.settled, "\(context)")
                #expect(try await Self.metricSum(nodes, plan: "exact", event: "cancelled") == totals.cancelled + 1, "\(context)")
            }
        }
    }

    /// Waits until the bucket `limit` holds at least `tokens` (its arrival time ≤ now + (burst − tokens) × interval).
    static func waitForBucket(_ raw: RawRedisConnection, _ keyID: String, _ limit: String, tokens: Double, interval: Double, burst: Double) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let tat = try await Self.tat(raw, keyID, limit)
            let now = Double(try await Self.redisMicros(raw))
            let available = burst - max(0, (tat ?? now) - now) / interval
            if available >= tokens { return }
            try await Task.sleep(for: .microseconds(Int((tokens - available) * interval) + 20_000))
        }
        throw TestSupportError("the bucket \(limit) did not refill to \(tokens) tokens within 10 s")
    }

    // MARK: 2. Idempotency

    struct IdemState: Equatable, CustomStringConvertible {
        var tat: Double?
        var daily: Int
        var spend: Int
        var open: Int
        var description: String { "tat \(self.tat.map { String(format: "%.0f", $0) } ?? "nil"), daily \(self.daily), spend \(self.spend), open \(self.open)" }
    }

    static func idemState(_ raw: RawRedisConnection, _ keyID: String) async throws -> IdemState {
        IdemState(
            tat: try await Self.tat(raw, keyID, "slow"), daily: try await Self.used(raw, keyID, "daily"),
            spend: try await Self.used(raw, keyID, "spend"),
            open: Int(try await raw.command("ZCARD", StateKeys.prefix(keyID: keyID) + StateKeys.reservationsSuffix).integer ?? -1)
        )
    }

    static func metricSum(_ nodes: [Endpoint], plan: String, event: String) async throws -> Int {
        var sum = 0
        for node in nodes { sum += try await node.reservationsMetric(plan: plan, event: event) ?? 0 }
        return sum
    }

    @Test("idempotency under retries: a settle sent 5 times at once, a reserve with one idempotency key 5 times at once, a cancel 3 times: each takes effect once")
    func idempotency() async throws {
        let redis = try Self.redis()
        let key = "idem-key"
        let keyID = ServerHarness.keyID(key)
        let raw = try RawRedisConnection(port: redis.port)
        try await Self.avoidMidnight(raw)
        let config = try Self.config()
        // The plan's bucket refills one token a second (one token = 1 000 000 µs of arrival
        // time), so its state moves only by what is taken and given back during the test.
        let second = 1_000_000.0
        try await ServerHarness.run(config) { ha in
            try await ServerHarness.run(config) { hb in
                let nodes = [try Endpoint(ha), try Endpoint(hb)]

                // A settle retried: 5 at once, on both instances.
                let reserved = try await nodes[0].reserve(key, model: "m", input: 300, output: 200, ttlMs: 60_000)
                let id = try #require(reserved.reservationID, "\(reserved.text)")
                let before = try await Self.idemState(raw, keyID)
                let settledBefore = try await Self.metricSum(nodes, plan: "idem", event: "settled")
                let settles = try await Self.concurrently(5) { index in try nodes[index % 2].settleBlocking(id, input: 250, output: 400) }
                #expect(settles.allSatisfy { $0.status == 200 && $0.json["settled"] as? Bool == true }, "\(settles.map(\.text))")
                #expect(settles.filter { $0.json["replayed"] == nil }.count == 1, "\(settles.map(\.text))")
                #expect(settles.filter { $0.json["replayed"] as? Bool == true }.count == 4, "\(settles.map(\.text))")
                // 250 + 400 = 650 tokens; cost 250 × 1 + 400 × 2 = 1 050 (estimate 700).
                let expectedCharge = ["requests": 1, "input_tokens": 250, "output_tokens": 400, "total_tokens": 650, "cost": 1050]
                #expect(Set(settles.map { $0.amounts("charged") }) == [expectedCharge], "\(settles.map(\.text))")
                #expect(Set(settles.map { $0.text.replacingOccurrences(of: #""replayed":true,"#, with: "") }).count == 1, "the replays differ from the first answer: \(settles.map(\.text))")
                let after = try await Self.idemState(raw, keyID)
                let expectedAfter = IdemState(tat: before.tat.map { $0 + 150 * second }, daily: before.daily + 150, spend: before.spend + 350, open: before.open - 1)
                #expect(after == expectedAfter, "one settle's overrun (150 tokens, 350 cost units) exactly once: before \(before), after \(after)")
                #expect(try await Self.metricSum(nodes, plan: "idem", event: "settled") == settledBefore + 1)
                // Settled: neither a cancel nor a renew can touch it.
                let cancelSettled = try await nodes[1].cancel(id)
                #expect(cancelSettled.status == 409 && cancelSettled.errorCode == "reservation_settled", "\(cancelSettled.status) \(cancelSettled.text)")
                let renewSettled = try await nodes[0].renew(id)
                #expect(renewSettled.status == 409 && renewSettled.errorCode == "reservation_settled", "\(renewSettled.status) \(renewSettled.text)")
                #expect(try await Self.idemState(raw, keyID) == after)

                // A reserve retried with one idempotency key: 5 at once, on both instances.
                let beforeReserve = try await Self.idemState(raw, keyID)
                let openedBefore = try await Self.metricSum(nodes, plan: "idem", event: "opened")
                let reserves = try await Self.concurrently(5) { index in
                    try nodes[index % 2].reserveBlocking(key, model: "m", input: 100, output: 100, ttlMs: 60_000, idempotencyKey: "retry-7f3a.X_1")
                }
                #expect(reserves.allSatisfy { $0.status == 200 && $0.allowed == true }, "\(reserves.map(\.text))")
                let ids = Set(reserves.compactMap(\.reservationID))
                #expect(ids.count == 1 && reserves.allSatisfy { $0.reservationID != nil }, "\(reserves.map(\.text))")
                #expect(Set(reserves.compactMap(\.expiresAtMs)).count == 1, "\(reserves.map(\.text))")
                let afterReserve = try await Self.idemState(raw, keyID)
                let expectedReserve = IdemState(
                    tat: beforeReserve.tat.map { $0 + 200 * second }, daily: beforeReserve.daily + 200, spend: beforeReserve.spend + 300,
                    open: beforeReserve.open + 1
                )
                #expect(afterReserve == expectedReserve, "one reserve (200 tokens, 300 cost units) exactly once: before \(beforeReserve), after \(afterReserve)")
                #expect(try await Self.metricSum(nodes, plan: "idem", event: "opened") == openedBefore + 1)

                // A cancel retried: 3 at once; the estimate goes back once.
                let reservation = try #require(ids.first)
                let cancelledBefore = try await Self.metricSum(nodes, plan: "idem", event: "cancelled")
                let cancels = try await Self.concurrently(3) { index in try nodes[index % 2].cancelBlocking(reservation) }
                #expect(cancels.map(\.status) == [204, 204, 204], "\(cancels.map(\.text))")
                let afterCancel = try await Self.idemState(raw, keyID)
                #expect(afterCancel == beforeReserve, "the estimate refunded exactly once: before the reserve \(beforeReserve), after the cancels \(afterCancel)")
                #expect(try await Self.metricSum(nodes, plan: "idem", event: "cancelled") == cancelledBefore + 1)
                // A settle of it now is refused and changes nothing.
                let late = try await nodes[1].settle(reservation, input: 1, output: 1)
                #expect(late.status == 409 && late.errorCode == "reservation_cancelled", "\(late.status) \(late.text)")
                #expect(try await Self.idemState(raw, keyID) == beforeReserve)
            }
        }
    }

    // MARK: 3. Expiry

    @Test("expiry: a reservation past its TTL stays charged at its estimate, a late settle is unknown, the reclaim counts it expired once")
    func expiry() async throws {
        let redis = try Self.redis()
        let key = "expiry-key"
        let keyID = ServerHarness.keyID(key)
        let raw = try RawRedisConnection(port: redis.port)
        try await Self.avoidMidnight(raw)
        try await ServerHarness.run(try Self.config()) { h in
            let node = try Endpoint(h)
            #expect(try await node.reservationsMetric(plan: "expiry", event: "expired") == 0)
            let reserved = try await node.reserve(key, input: 400, output: 100, ttlMs: 1000)
            let id = try #require(reserved.reservationID, "\(reserved.text)")
            let expiresAtMs = try #require(reserved.expiresAtMs)
            let token = String(id.split(separator: ".").last ?? "")
            #expect(try await Self.used(raw, keyID, "daily") == 500)

            // A real wait: 1 000 ms is the shortest TTL a reserve may ask for, and what is tested is
            // Redis's own clock passing it with no call on the key. 1.5 s leaves a 0.5 s margin;
            // nothing depends on how much longer it takes. Confirmed by Redis's clock below.
            try await Task.sleep(for: .milliseconds(1500))
            let nowMs = try await Self.redisMicros(raw) / 1000
            try #require(nowMs > expiresAtMs, "Redis's clock \(nowMs) has not passed the expiry \(expiresAtMs)")
            // No background job: nothing touched the key, so the reservation is still listed.
            let listed = try await raw.command("ZSCORE", StateKeys.prefix(keyID: keyID) + StateKeys.reservationsSuffix, token)
            #expect(listed.integer == expiresAtMs, "\(listed)")
            #expect(try await node.reservationsMetric(plan: "expiry", event: "expired") == 0)

            let late = try await node.settle(id, input: 10, output: 10)
            #expect(late.status == 404 && late.errorCode == "unknown_reservation", "\(late.status) \(late.text)")
            #expect(try await Self.used(raw, keyID, "daily") == 500, "an expired reservation stays charged at its estimate, no refund")
            // That call reclaimed it, once.
            #expect(try await node.reservationsMetric(plan: "expiry", event: "expired") == 1)
            let gone = try await raw.command("ZSCORE", StateKeys.prefix(keyID: keyID) + StateKeys.reservationsSuffix, token)
            #expect(gone == .bulk(nil), "\(gone)")

            // Further calls on the key (and on the expired reservation) count nothing more.
            let renewed = try await node.renew(id)
            #expect(renewed.status == 404 && renewed.errorCode == "unknown_reservation", "\(renewed.status) \(renewed.text)")
            let cancelled = try await node.cancel(id)
            #expect(cancelled.status == 404 && cancelled.errorCode == "unknown_reservation", "\(cancelled.status) \(cancelled.text)")
            let again = try await node.settle(id, input: 10, output: 10)
            #expect(again.status == 404, "\(again.text)")
            let next = try await node.reserve(key, input: 10, output: 10, ttlMs: 30_000)
            let nextID = try #require(next.reservationID, "\(next.text)")
            let settled = try await node.settle(nextID, input: 5, output: 5)
            #expect(settled.status == 200, "\(settled.text)")
            let checked = try await node.post("/v1/check", #"{"api_key":"\#(key)","tokens":{"input_tokens":1,"output_tokens":1}}"#)
            #expect(checked.status == 200 && checked.allowed == true, "\(checked.text)")
            #expect(try await node.reservationsMetric(plan: "expiry", event: "expired") == 1)
            #expect(try await node.reservationsMetric(plan: "expiry", event: "opened") == 2)
            #expect(try await node.reservationsMetric(plan: "expiry", event: "settled") == 1)
            #expect(try await Self.used(raw, keyID, "daily") == 500 + 10 + 2)
        }
    }

    // MARK: 4. Leases

    @Test("leases: 16 clients against a concurrency limit of 4 never hold more than 4 at once, and reach 4")
    func leases() async throws {
        let redis = try Self.redis()
        let seed = try Self.seeds.get().seed
        var generator = try Self.seeds.get().generator(for: "leases")
        let clientSeeds = (0..<16).map { _ in generator.next() }
        let key = "lease-key"
        let leasesKey = StateKeys.prefix(keyID: ServerHarness.keyID(key)) + StateKeys.leasesSuffix
        let raw = try RawRedisConnection(port: redis.port)
        let config = try Self.config()
        try await ServerHarness.run(config) { ha in
            try await ServerHarness.run(config) { hb in
                let nodes = [try Endpoint(ha), try Endpoint(hb)]
                let first = try await nodes[0].reserve(key, input: 1, output: 1, ttlMs: 30_000)
                #expect(first.limits.last?["name"] as? String == "concurrency" && first.remaining(of: "concurrency") == 3, "\(first.text)")
                let firstID = try #require(first.reservationID, "\(first.text)")
                #expect(try await nodes[1].settle(firstID, input: 1, output: 1).status == 200)

                struct Run: Sendable {
                    var holds: [(ContinuousClock.Instant, ContinuousClock.Instant)] = []
                    var denials = 0
                    var problems: [String] = []
                    var polls = 0
                    var polledMax = 0
                }
                let run = LockedBox(Run())
                let clientsLeft = LockedBox(16)
                let start = ContinuousClock.now
                // 16 clients and a poller, each on a thread of its own: the poller reads the lease
                // set over a raw connection while the clients run.
                _ = await Self.onThreads(17) { index in
                    guard index < 16 else {
                        while clientsLeft.withLock({ $0 }) > 0 {
                            do {
                                let held = Int(try raw.blockingCommand(["ZCARD", leasesKey]).integer ?? -1)
                                run.withLock {
                                    $0.polls += 1
                                    $0.polledMax = max($0.polledMax, held)
                                }
                            } catch {
                                run.withLock { $0.problems.append("ZCARD: \(error)") }
                            }
                            usleep(2_000)
                        }
                        return
                    }
                    defer { clientsLeft.withLock { $0 -= 1 } }
                    let node = nodes[index % 2]
                    var rng = SeededRandom(seed: clientSeeds[index])
                    while ContinuousClock.now - start < .seconds(2) {
                        let wait = Int.random(in: 3...15, using: &rng)
                        do {
                            let answer = try node.reserveBlocking(key, input: 10, output: 10, ttlMs: 30_000)
                            let received = ContinuousClock.now
                            guard answer.allowed == true, let id = answer.reservationID else {
                                if answer.status == 200, answer.deniedBy == "concurrency" {
                                    run.withLock { $0.denials += 1 }
                                } else {
                                    run.withLock { $0.problems.append("reserve: \(answer.status) \(answer.text)") }
                                }
                                usleep(UInt32(wait * 1000))
                                continue
                            }
                            usleep(30_000)
                            let released = ContinuousClock.now
                            run.withLock { $0.holds.append((received, released)) }
                            let settled = try node.settleBlocking(id, input: 10, output: 10)
                            if settled.status != 200 {
                                run.withLock { $0.problems.append("settle: \(settled.status) \(settled.text)") }
                            }
                        } catch {
                            run.withLock { $0.problems.append("no answer: \(error)") }
                        }
                    }
                }
                let result = run.withLock { $0 }
                // The most client-side holds open at one instant: each lies within its lease
                // (from the reserve's answer to the settle's request), so never more than 4.
                var events: [(ContinuousClock.Instant, Int)] = []
                for (from, to) in result.holds {
                    events.append((from, 1))
                    events.append((to, -1))
                }
                events.sort { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }
                var open = 0
                var most = 0
                for (_, change) in events {
                    open += change
                    most = max(most, open)
                }
                print(
                    "ReservationTests.leases (seed \(seed)): \(result.holds.count) holds, \(result.denials) concurrency denials, "
                        + "at most \(most) held at once; \(result.polls) polls of the lease set, at most \(result.polledMax)"
                )
                #expect(result.problems.isEmpty, "seed \(seed): \(result.problems.prefix(5))")
                #expect(most <= 4, "seed \(seed): \(most) holds at once")
                #expect(most == 4, "seed \(seed): the clients never held 4 at once (\(most))")
                #expect(result.denials > 0, "seed \(seed)")
                #expect(result.polls > 20 && result.polledMax <= 4, "seed \(seed): \(result.polls) polls, at most \(result.polledMax) leases")
                #expect(try await raw.command("ZCARD", leasesKey).integer == 0, "every lease was given back")
            }
        }
    }

    // MARK: 5. A killed client

    /// A child process in a session (and process group) of its own: killed as a group, so
    /// nothing it started is left behind.
    final class ChildGroup: @unchecked Sendable {
        // @unchecked: set up once, then only read; `stop` is idempotent.
        let process = Process()
        var group: pid_t = 0

        func stop() {
            if self.group > 0 { kill(-self.group, SIGKILL) }
            if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        }

        deinit { self.stop() }
    }

    /// Processes of process group `group` that are alive (not zombies), from /proc.
    static func liveProcesses(inGroup group: pid_t) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var live: [String] = []
        for entry in entries where Int32(entry) != nil {
            guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // After "pid (comm) ": state, ppid, pgrp, ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, fields[2] == "\(group)", fields[0] != "Z" {
                live.append("\(entry) \(stat.prefix(upTo: close))) \(fields[0])")
            }
        }
        return live
    }

    /// The renew answers a child wrote, one JSON object a line (a line cut by the kill is skipped).
    static func renewAnswers(_ log: URL) -> [[String: Any]] {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    @Test("a client killed mid-stream: its renewals keep the lease past lease_ttl_s, and after SIGKILL the slot frees within lease_ttl_s")
    func killedClient() async throws {
        let redis = try Self.redis()
        let key = "killed-key"
        let raw = try RawRedisConnection(port: redis.port)
        let reservationTTL: Int64 = 60_000
        let leaseTTL: Int64 = 2_000
        try await ServerHarness.run(try Self.config()) { h in
            let node = try Endpoint(h)
            let held = try await node.reserve(key, input: 10, output: 10, ttlMs: Int(reservationTTL))
            let id = try #require(held.reservationID, "\(held.text)")
            #expect(held.remaining(of: "concurrency") == 0, "\(held.text)")

            // The stream's holder: a real process renewing the reservation every 0.5 s.
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-renewer-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let groupFile = directory.appendingPathComponent("group")
            let log = directory.appendingPathComponent("renew.log")
            let url = "http://127.0.0.1:\(node.port)/v1/reservations/\(id)/renew"
            let script = """
                echo $$ > '\(groupFile.path)'
                while true; do
                  curl -s -m 1 -X POST -H 'Content-Type: application/json' -d '{}' '\(url)' >> '\(log.path)'
                  echo >> '\(log.path)'
                  sleep 0.5
                done
                """
            let child = ChildGroup()
            defer { child.stop() }
            child.process.executableURL = try RedisServer.executable("setsid")
            child.process.arguments = ["-w", try RedisServer.executable("bash").path, "-c", script]
            child.process.standardInput = FileHandle.nullDevice
            child.process.standardOutput = FileHandle.nullDevice
            child.process.standardError = FileHandle.nullDevice
            try child.process.run()
            // bash's pid, which setsid made a session and process-group leader.
            let started = try await poll(.seconds(5)) {
                guard let text = try? String(contentsOf: groupFile, encoding: .utf8), let group = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
                else { return false }
                child.group = group
                return true
            }
            try #require(started != nil, "the renewing child did not start")
            let renewing = try await poll(.seconds(5)) { !Self.renewAnswers(log).isEmpty }
            try #require(renewing != nil, "the child never renewed")

            let denied = try await node.reserve(key, input: 1, output: 1, ttlMs: Int(reservationTTL))
            #expect(denied.allowed == false && denied.deniedBy == "concurrency", "\(denied.text)")
            // Past lease_ttl_s: only the renewals keep the lease.
            try await Task.sleep(for: .milliseconds(2500))
            let stillDenied = try await node.reserve(key, input: 1, output: 1, ttlMs: Int(reservationTTL))
            #expect(stillDenied.allowed == false && stillDenied.deniedBy == "concurrency", "a renewed lease was lost: \(stillDenied.text)")

            // SIGKILL the whole group: bash and the curl it may be running.
            let group = child.group
            kill(-group, SIGKILL)
            let killedAt = ContinuousClock.now
            let killedAtMs = try await Self.redisMicros(raw) / 1000
            try await offCooperativePool { child.process.waitUntilExit() }
            let reaped = try await poll(.seconds(3)) { Self.liveProcesses(inGroup: group).isEmpty }
            #expect(reaped != nil, "processes of the killed group are still alive: \(Self.liveProcesses(inGroup: group))")
            if reaped != nil {
                // Gone: the group's id must not be signalled again (it could be reused).
                child.group = 0
            }

            // Every renewal answered held; the last one the log shows sets the earliest the lease
            // can have expired (a renewal in flight at the kill may have extended it a little more).
            let answers = Self.renewAnswers(log)
            #expect(answers.count >= 3 && answers.allSatisfy { $0["lease"] as? String == "held" }, "\(answers)")
            let lastRenewExpiry = try #require(answers.compactMap { ($0["expires_at_ms"] as? Int).map(Int64.init) }.max())
            let lastRenewAtMs = lastRenewExpiry - reservationTTL
            let leaseEndsAtMs = lastRenewAtMs + leaseTTL
            // Renewals came every 0.5 s (+ curl's time, which the suite's load can stretch).
            #expect(killedAtMs - lastRenewAtMs <= 5000, "the last renewal the log shows was \(killedAtMs - lastRenewAtMs) ms before the kill")

            // Poll every 100 ms: denied while the lease lasts, allowed once it has expired.
            var attempts: [String] = []
            var allowedAtMs: Int64?
            var allowedAfter: Duration?
            var newID: String?
            while ContinuousClock.now - killedAt < .seconds(15) {
                let answer = try await node.reserve(key, input: 1, output: 1, ttlMs: Int(reservationTTL))
                if answer.allowed == true, let expires = answer.expiresAtMs {
                    allowedAtMs = expires - reservationTTL
                    allowedAfter = ContinuousClock.now - killedAt
                    newID = answer.reservationID
                    break
                }
                attempts.append(answer.deniedBy ?? "\(answer.status) \(answer.text)")
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(attempts.first == "concurrency", "the first reserve after the kill must be denied: \(attempts)")
            #expect(attempts.allSatisfy { $0 == "concurrency" }, "\(attempts)")
            let freedAtMs = try #require(allowedAtMs, "the slot was not freed within 15 s of the kill: \(attempts.count) denials")
            let after = try #require(allowedAfter)
            // Guaranteed, by Redis's clock: never before the lease's end (the last renewal +
            // lease_ttl_s). By the wall clock only a wide bound (lease_ttl_s after the kill, the
            // 100 ms polling and room for the whole suite's load): a dead client's slot comes back.
            #expect(freedAtMs >= leaseEndsAtMs, "freed at \(freedAtMs), before the lease's end \(leaseEndsAtMs)")
            #expect(after <= .seconds(12), "freed \(after) after the kill")
            print("ReservationTests.killedClient: last renewal \(killedAtMs - lastRenewAtMs) ms before the kill; slot free \(freedAtMs - killedAtMs) ms after it (Redis clock), \(attempts.count) denials first")

            // The killed stream's reservation is still open, its lease gone for good.
            let renewed = try await node.renew(id)
            #expect(renewed.status == 200 && renewed.json["lease"] as? String == "lost", "\(renewed.status) \(renewed.text)")
            #expect(try await node.cancel(id).status == 204)
            if let newID {
                #expect(try await node.settle(newID, input: 1, output: 1).status == 200)
            }
        }
    }

    @Test("an expired lease frees its slot while other leases are held, and is not taken back by a renew")
    func expiredLeaseAmongOthers() async throws {
        let redis = try Self.redis()
        let key = "lease2-key"
        let leasesKey = StateKeys.prefix(keyID: ServerHarness.keyID(key)) + StateKeys.leasesSuffix
        let raw = try RawRedisConnection(port: redis.port)
        try await ServerHarness.run(try Self.config()) { h in
            let node = try Endpoint(h)
            // Limit 2, leases of 1 s: A, then B half a second later.
            let a = try await node.reserve(key, input: 1, output: 1, ttlMs: 60_000)
            let aID = try #require(a.reservationID, "\(a.text)")
            let aLeaseEnds = try #require(a.expiresAtMs) - 60_000 + 1000
            // A short real wait: B's lease must outlast A's by a margin the polling below can use.
            try await Task.sleep(for: .milliseconds(500))
            let b = try await node.reserve(key, input: 1, output: 1, ttlMs: 60_000)
            let bID = try #require(b.reservationID, "\(b.text)")
            let bLeaseEnds = try #require(b.expiresAtMs) - 60_000 + 1000
            #expect(b.remaining(of: "concurrency") == 0, "\(b.text)")
            // A stops renewing; once Redis's clock passes its lease (B's still held), a third
            // request gets A's slot.
            while try await Self.redisMicros(raw) / 1000 <= aLeaseEnds {
                try await Task.sleep(for: .milliseconds(10))
            }
            let c = try await node.reserve(key, input: 1, output: 1, ttlMs: 60_000)
            let cNowMs = (c.expiresAtMs ?? 0) - 60_000
            try #require(cNowMs < bLeaseEnds, "too slow to test: B's lease ended before C's reserve")
            #expect(c.allowed == true && c.remaining(of: "concurrency") == 0, "\(c.text)")
            #expect(try await raw.command("ZCARD", leasesKey).integer == 2, "B's and C's leases")
            let renewed = try await node.renew(aID)
            #expect(renewed.status == 200 && renewed.json["lease"] as? String == "lost", "\(renewed.text)")
            #expect(try await raw.command("ZCARD", leasesKey).integer == 2, "a renew never takes a lease back")
            for id in [aID, bID] + [c.reservationID].compactMap({ $0 }) {
                #expect(try await node.cancel(id).status == 204)
            }
        }
    }

    // MARK: 7. Headers

    @Test("headers end to end: OpenAI and Anthropic fields and RateLimit-Policy of a reserve, exactly")
    func headers() async throws {
        let redis = try Self.redis()
        let raw = try RawRedisConnection(port: redis.port)
        try await Self.avoidMidnight(raw)
        try await ServerHarness.run(try Self.config()) { h in
            let node = try Endpoint(h)
            let answer = try await node.reserve("hdr-key", model: "m", input: 1000, output: 500, ttlMs: 60_000)
            #expect(answer.status == 200 && answer.allowed == true, "\(answer.text)")
            let nowMs = try #require(answer.expiresAtMs) - 60_000
            let dayResetMs = try #require(answer.limit("itpd")?["reset_after_ms"] as? Int)
            let daySeconds = (dayResetMs + 999) / 1000
            // rpm 59 of 60 (1 s to refill); tpm 58 500 of 60 000 (1.5 s); otpm 5 500 of 6 000 (5 s);
            // itpd 999 000 of 1 000 000; spend 3 500 of 5 000; concurrency 3 of 4 (30 s lease).
            #expect(answer.remaining(of: "concurrency") == 3 && answer.limit("concurrency")?["reset_after_ms"] as? Int == 30_000, "\(answer.text)")
            let expected: [String: String] = [
                // The least remaining of the request limits, and of the token limits: never the
                // cost (3 500 left) nor the concurrency limit (3 left).
                "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-limit-tokens": "6000", "x-ratelimit-remaining-tokens": "5500", "x-ratelimit-reset-tokens": "5s",
                "anthropic-ratelimit-requests-limit": "60", "anthropic-ratelimit-requests-remaining": "59",
                "anthropic-ratelimit-requests-reset": RateLimitHeadersProbe.rfc3339(nowMs: nowMs, plus: 1000),
                "anthropic-ratelimit-tokens-limit": "6000", "anthropic-ratelimit-tokens-remaining": "5500",
                "anthropic-ratelimit-tokens-reset": RateLimitHeadersProbe.rfc3339(nowMs: nowMs, plus: 5000),
                "anthropic-ratelimit-input-tokens-limit": "1000000", "anthropic-ratelimit-input-tokens-remaining": "999000",
                "anthropic-ratelimit-input-tokens-reset": RateLimitHeadersProbe.rfc3339(nowMs: nowMs, plus: dayResetMs),
                "anthropic-ratelimit-output-tokens-limit": "6000", "anthropic-ratelimit-output-tokens-remaining": "5500",
                "anthropic-ratelimit-output-tokens-reset": RateLimitHeadersProbe.rfc3339(nowMs: nowMs, plus: 5000),
                "ratelimit-policy": #""itpd";q=1000000;w=86400;qu="tokens", "otpm";q=6000;w=60;qu="tokens", "rpm";q=60;w=60, "#
                    + #""spend";q=5000;w=86400;qu="cost", "tpm";q=60000;w=60;qu="tokens", "concurrency";q=4;qu="concurrent-requests""#,
                "ratelimit": #""itpd";r=999000;t=\#(daySeconds), "otpm";r=5500;t=5, "rpm";r=59;t=1, "spend";r=3500;t=\#(daySeconds), "#
                    + #""tpm";r=58500;t=2, "concurrency";r=3;t=30"#,
            ]
            let actual = answer.headers.filter { expected[$0.key] != nil || $0.key.hasPrefix("x-ratelimit") || $0.key.hasPrefix("anthropic-") }
            #expect(actual == expected, "\(answer.headers)")
            #expect(answer.header("RateLimit-Policy")?.contains(#""concurrency";q=4;qu="concurrent-requests""#) == true)
            #expect(answer.header("retry-after") == nil)
        }
    }

    // MARK: 8. Bad input

    @Test("bad input: 400 with the right error code, never a 500, and nothing consumed")
    func badInput() async throws {
        let redis = try Self.redis()
        let key = "bad-key"
        let keyID = ServerHarness.keyID(key)
        let raw = try RawRedisConnection(port: redis.port)
        try await Self.avoidMidnight(raw)
        try await ServerHarness.run(try Self.config()) { h in
            let node = try Endpoint(h)
            // Some state first, and an open reservation whose id is well formed.
            let open = try await node.reserve(key, model: "gpt-4o", input: 100, output: 20, ttlMs: 600_000)
            let id = try #require(open.reservationID, "\(open.text)")
            let before = try await Self.snapshot(raw, keyID)
            #expect(before.count >= 4, "\(before)")

            func estimate(_ estimate: String, extra: String = #","model":"gpt-4o""#) -> String {
                #"{"api_key":"\#(key)","estimate":\#(estimate)\#(extra)}"#
            }
            let valid = #"{"input_tokens":10,"output_tokens":10}"#
            let cases: [(path: String, method: String, body: String?, code: String)] = [
                ("/v1/reserve", "POST", estimate(#"{"input_tokens":-1,"output_tokens":10}"#), "invalid_tokens"),
                ("/v1/reserve", "POST", estimate(#"{"input_tokens":10,"output_tokens":-5}"#), "invalid_tokens"),
                ("/v1/reserve", "POST", estimate(#"{"input_tokens":1.5,"output_tokens":10}"#), "invalid_tokens"),
                ("/v1/reserve", "POST", estimate(#"{"input_tokens":"10","output_tokens":10}"#), "invalid_tokens"),
                ("/v1/reserve", "POST", estimate(#"{"input_tokens":1000001,"output_tokens":10}"#), "tokens_too_large"),
                ("/v1/reserve", "POST", estimate(#"{"input_tokens":10,"output_tokens":1e30}"#), "tokens_too_large"),
                ("/v1/reserve", "POST", estimate(#"{"input_tokens":10,"output_tokens":10,"reasoning_tokens":5}"#), "invalid_tokens"),
                ("/v1/reserve", "POST", estimate(#""lots""#), "invalid_tokens"),
                ("/v1/reserve", "POST", #"{"api_key":"\#(key)","model":"gpt-4o"}"#, "missing_estimate"),
                ("/v1/reserve", "POST", estimate("null"), "missing_estimate"),
                ("/v1/reserve", "POST", estimate(valid, extra: #","model":"claude-3""#), "unknown_model"),
                ("/v1/reserve", "POST", estimate(valid, extra: ""), "unknown_model"),
                ("/v1/reserve", "POST", estimate(valid, extra: #","model":"gpt-4o","ttl_ms":999"#), "invalid_ttl"),
                ("/v1/reserve", "POST", estimate(valid, extra: #","model":"gpt-4o","ttl_ms":86400001"#), "invalid_ttl"),
                ("/v1/reserve", "POST", estimate(valid, extra: #","model":"gpt-4o","ttl_ms":"5000""#), "invalid_ttl"),
                ("/v1/reserve", "POST", estimate(valid, extra: #","model":"gpt-4o","ttl_ms":1500.5"#), "invalid_ttl"),
                ("/v1/reserve", "POST", estimate(valid, extra: #","model":"gpt-4o","idempotency_key":"retry 1""#), "invalid_idempotency_key"),
                ("/v1/reserve", "POST", estimate(valid, extra: #","model":"gpt-4o","idempotency_key":"""#), "invalid_idempotency_key"),
                ("/v1/reserve", "POST", estimate(valid, extra: #","model":"gpt-4o","idempotency_key":7"#), "invalid_idempotency_key"),
                ("/v1/reserve", "POST", "[]", "invalid_body"),
                ("/v1/reserve", "POST", "{", "invalid_json"),
                ("/v1/settle", "POST", #"{"reservation_id":"nope","actual":\#(valid)}"#, "invalid_reservation_id"),
                ("/v1/settle", "POST", #"{"reservation_id":42,"actual":\#(valid)}"#, "invalid_reservation_id"),
                ("/v1/settle", "POST", #"{"reservation_id":"\#(id)x","actual":\#(valid)}"#, "invalid_reservation_id"),
                ("/v1/settle", "POST", #"{"reservation_id":"\#(id)","api_key":"\#(key)","actual":\#(valid)}"#, "conflicting_fields"),
                ("/v1/settle", "POST", #"{"reservation_id":"\#(id)","model":"gpt-4o","actual":\#(valid)}"#, "conflicting_fields"),
                ("/v1/settle", "POST", #"{"reservation_id":"\#(id)","actual":{"input_tokens":-3}}"#, "invalid_tokens"),
                ("/v1/settle", "POST", #"{"reservation_id":"\#(id)"}"#, "missing_actual"),
                ("/v1/settle", "POST", #"{"actual":\#(valid)}"#, "missing_reservation_id"),
                ("/v1/settle", "POST", #"{"api_key":"\#(key)","model":"claude-3","actual":\#(valid)}"#, "unknown_model"),
                ("/v1/settle", "POST", #"{"api_key":"\#(key)","model":"gpt-4o","actual":{"output_tokens":2000000}}"#, "tokens_too_large"),
                ("/v1/reservations/not-an-id/renew", "POST", "{}", "invalid_reservation_id"),
                ("/v1/reservations/\(id)x/renew", "POST", "{}", "invalid_reservation_id"),
                ("/v1/reservations/\(id)/renew", "POST", #"{"ttl_ms":0}"#, "invalid_ttl"),
                ("/v1/reservations/\(id)/renew", "POST", #"{"ttl_ms":86400001}"#, "invalid_ttl"),
                ("/v1/reservations/a.b", "DELETE", nil, "invalid_reservation_id"),
                ("/v1/reservations/\(String(id.dropLast()))", "DELETE", nil, "invalid_reservation_id"),
                ("/v1/check", "POST", #"{"api_key":"\#(key)","model":"gpt-4o","tokens":{"input_tokens":2.5}}"#, "invalid_tokens"),
                ("/v1/check", "POST", #"{"api_key":"\#(key)","model":"mistral","tokens":\#(valid)}"#, "unknown_model"),
            ]
            for (path, method, body, code) in cases {
                let answer = try await HTTPTestClient.request(
                    port: node.port, method: method, path: path, headers: body == nil ? [:] : ["Content-Type": "application/json"], body: body,
                    timeout: 5
                )
                #expect(answer.status == 400 && answer.errorCode == code, "\(method) \(path) \(body ?? ""): \(answer.status) \(answer.text)")
            }
            let after = try await Self.snapshot(raw, keyID)
            #expect(after == before, "bad requests changed the key's state")
            // The reservation is still open and settles normally.
            #expect(try await node.settle(id, input: 100, output: 20).status == 200)
        }
    }

    // MARK: 9. Batch

    @Test("a batch mixing a ledger plan's key (with tokens) and a classic plan's key answers each as single checks would")
    func batchMixesScripts() async throws {
        let redis = try Self.redis()
        let raw = try RawRedisConnection(port: redis.port)
        try await ServerHarness.run(try Self.config()) { h in
            let node = try Endpoint(h)
            func llm(_ input: Int, _ output: Int) -> String {
                #"{"api_key":"batch-llm-key","tokens":{"input_tokens":\#(input),"output_tokens":\#(output)}}"#
            }
            let classic = #"{"api_key":"batch-classic-key"}"#
            let items = [
                llm(200, 100), classic, llm(500, 300), classic, llm(400, 300), #"{"api_key":"batch-classic-key","cost":2}"#,
                #"{"api_key":"batch-llm-key","tokens":{"input_tokens":-1}}"#, classic,
            ]
            let answer = try await node.post("/v1/check/batch", #"{"checks":[\#(items.joined(separator: ","))]}"#)
            #expect(answer.status == 200, "\(answer.text)")
            let results = answer.json["results"] as? [[String: Any]] ?? []
            try #require(results.count == items.count, "\(answer.text)")
            func remaining(_ index: Int) -> Int? { results[index]["remaining"] as? Int }
            func allowed(_ index: Int) -> Bool? { results[index]["allowed"] as? Bool }
            func plan(_ index: Int) -> String? { results[index]["plan"] as? String }
            // tpm: 1 000 tokens, one a second back; the classic throttle: 3, one per 100 s.
            #expect(allowed(0) == true && plan(0) == "batchllm" && remaining(0) == 700, "\(results[0])")
            #expect(allowed(1) == true && plan(1) == "classic" && remaining(1) == 2, "\(results[1])")
            #expect(allowed(2) == false && results[2]["denied_by"] as? String == "tpm" && remaining(2) == 700, "\(results[2])")
            #expect(allowed(3) == true && plan(3) == "classic" && remaining(3) == 1, "\(results[3])")
            #expect(allowed(4) == true && plan(4) == "batchllm" && remaining(4) == 0, "\(results[4])")
            #expect(allowed(5) == false && results[5]["denied_by"] as? String == "throttle" && remaining(5) == 1, "\(results[5])")
            #expect((results[6]["error"] as? [String: Any])?["code"] as? String == "invalid_tokens", "\(results[6])")
            #expect(allowed(7) == true && plan(7) == "classic" && remaining(7) == 0, "\(results[7])")
            let limits = results[0]["limits"] as? [[String: Any]] ?? []
            #expect(limits.map { $0["name"] as? String } == ["tpm"], "\(results[0])")
            // Redis holds what the batch admitted: 300 + 700 tokens, 3 requests.
            let llmID = ServerHarness.keyID("batch-llm-key")
            let tat = try #require(try await Self.tat(raw, llmID, "tpm"))
            let nowUs = Double(try await Self.redisMicros(raw))
            #expect(tat - nowUs > 998_000_000 && tat - nowUs <= 1_000_000_000, "the bucket holds \((tat - nowUs) / 1e6) s of tokens, not 1 000")
            let single = try await node.post("/v1/check", #"{"api_key":"batch-classic-key","cost":0}"#)
            #expect(single.json["remaining"] as? Int == 0, "\(single.text)")
        }
    }

    // MARK: 10. Usage charged after the fact

    @Test("usage charged after the fact (settle with an API key): never denied, into debt, the answer's cost is what the quota took")
    func chargeAfterTheFact() async throws {
        let redis = try Self.redis()
        let key = "charge-key"
        let keyID = ServerHarness.keyID(key)
        let raw = try RawRedisConnection(port: redis.port)
        try await Self.avoidMidnight(raw)
        let seed = try Self.seeds.get().seed
        let generator = try Self.seeds.get().generator(for: "chargeAfterTheFact")
        try await ServerHarness.run(try Self.config()) { h in
            let node = try Endpoint(h)
            var rng = generator
            let t0 = try await Self.redisMicros(raw)
            // README: cached_input_tokens above input_tokens counts as input_tokens (all of it
            // cached), in an estimate, an actual and a charge alike: 10 tokens at gpt-4o's cached
            // price 1.25 cost ⌈12.5⌉ = 13 (not ⌈11.25⌉ = 12 for 11 cached of 10, nor 25 uncached).
            let reserved = try await node.reserve(key, model: "gpt-4o", input: 10, output: 0, cached: 11, ttlMs: 30_000)
            #expect(reserved.allowed == true && reserved.remaining(of: "spend") == 1000 - 13, "\(reserved.status) \(reserved.text)")
            let reservation = try #require(reserved.reservationID)
            let settled = try await node.settle(reservation, input: 10, output: 0, cached: 12)
            #expect(settled.status == 200 && settled.amounts("charged")["cost"] == 13 && settled.amounts("refunded")["cost"] == 0, "\(settled.text)")
            let clamped = try await node.post("/v1/settle", #"{"api_key":"\#(key)","model":"gpt-4o","actual":{"input_tokens":10,"cached_input_tokens":50}}"#)
            #expect(clamped.status == 200 && clamped.amounts("charged")["cost"] == 13, "\(clamped.text)")
            #expect(try await Self.used(raw, keyID, "spend") == 26)
            var tokens = 20
            var cost = 26
            for _ in 0..<12 {
                let model = ["gpt-4o", "mini"].randomElement(using: &rng)!
                let input = Int.random(in: 1...5000, using: &rng)
                let cached = Bool.random(using: &rng) ? Int.random(in: 0...input, using: &rng) : 0
                let output = Int.random(in: 0...3000, using: &rng)
                let body = #"{"api_key":"\#(key)","model":"\#(model)","actual":"# + Endpoint.tokens(input, output, cached: cached) + "}"
                let answer = try await node.post("/v1/settle", body)
                let expectedCost = Self.cost(model, input: input, output: output, cached: cached)
                #expect(answer.status == 200 && answer.json["settled"] as? Bool == true, "seed \(seed): \(answer.status) \(answer.text)")
                #expect(
                    answer.amounts("charged") == ["requests": 0, "input_tokens": input, "output_tokens": output, "total_tokens": input + output, "cost": expectedCost],
                    "seed \(seed): \(model) \(input)/\(output)/\(cached): \(answer.text)"
                )
                tokens += input + output
                cost += expectedCost
                // What the quota took is what the answer said.
                #expect(try await Self.used(raw, keyID, "spend") == cost, "seed \(seed): after \(model) \(input)/\(output)/\(cached): \(answer.text)")
            }
            let t1 = try await Self.redisMicros(raw)
            // Far past the bucket's 1 000 and the quota's 1 000: all of it taken, into debt.
            let tat = try #require(try await Self.tat(raw, keyID, "tpm"))
            let taken = Double(tokens) * 1_000_000
            #expect(tat >= Double(t0) + taken && tat <= Double(t1) + taken, "seed \(seed): the bucket holds \((tat - Double(t1)) / 1e6) s, \(tokens) tokens were charged")
            #expect(try await Self.used(raw, keyID, "rpd") == 1, "a charge takes no request (the one reserve took 1)")
            // In debt (and over the spend quota), the key is refused any request, even one that
            // asks for no tokens; whichever limit waits longer names the denial.
            let reserve = try await node.reserve(key, model: "mini", input: 1, output: 0, ttlMs: 30_000)
            #expect(reserve.allowed == false && ["tpm", "spend"].contains(reserve.deniedBy) && reserve.remaining(of: "tpm") == 0, "\(reserve.text)")
            let check = try await node.post("/v1/check", #"{"api_key":"\#(key)","model":"mini"}"#)
            #expect(check.allowed == false && ["tpm", "spend"].contains(check.deniedBy) && check.remaining(of: "tpm") == 0, "\(check.text)")
            #expect(try await Self.used(raw, keyID, "rpd") == 1, "denials take nothing")
            // And still charged: a charge is never denied.
            let more = try await node.post("/v1/settle", #"{"api_key":"\#(key)","model":"mini","actual":{"input_tokens":10,"output_tokens":0}}"#)
            #expect(more.status == 200 && more.json["settled"] as? Bool == true, "\(more.text)")
            #expect(try await Self.tat(raw, keyID, "tpm") == tat + 10_000_000)
        }
    }
}

extension ReservationTests {
    /// One Sluice instance as a client sees it: every request on a connection of its own with a
    /// 5 s socket timeout, so that no answer can hang a test. The plain methods block the calling
    /// thread (for clients on threads of their own, see ``ReservationTests/onThreads(_:_:)``); the
    /// `async` ones run them on a Dispatch thread.
    struct Endpoint: Sendable {
        let port: Int

        init(_ harness: ServerHarness) throws {
            self.port = try #require(harness.client.port)
        }

        /// One request, on this thread.
        func send(_ method: String, _ path: String, _ body: String? = nil) throws -> HTTPTestResponse {
            try HTTPTestClient.blockingRequest(
                port: self.port, method: method, path: path, headers: body == nil ? [:] : ["Content-Type": "application/json"], body: body,
                timeout: 5
            )
        }

        /// One request, off the cooperative pool.
        func request(_ method: String, _ path: String, _ body: String? = nil) async throws -> HTTPTestResponse {
            try await offCooperativePool { try self.send(method, path, body) }
        }

        func post(_ path: String, _ body: String) async throws -> HTTPTestResponse {
            try await self.request("POST", path, body)
        }

        func get(_ path: String) async throws -> HTTPTestResponse {
            try await self.request("GET", path)
        }

        /// A token-count object.
        static func tokens(_ input: Int, _ output: Int, cached: Int = 0) -> String {
            if cached > 0 {
                return #"{"input_tokens":\#(input),"output_tokens":\#(output),"cached_input_tokens":\#(cached)}"#
            }
            return #"{"input_tokens":\#(input),"output_tokens":\#(output)}"#
        }

        static func reserveBody(
            _ key: String, model: String?, input: Int, output: Int, cached: Int, ttlMs: Int?, idempotencyKey: String?
        ) -> String {
            var fields = [#""api_key":"\#(key)""#]
            if let model { fields.append(#""model":"\#(model)""#) }
            fields.append(#""estimate":"# + Self.tokens(input, output, cached: cached))
            if let ttlMs { fields.append(#""ttl_ms":\#(ttlMs)"#) }
            if let idempotencyKey { fields.append(#""idempotency_key":"\#(idempotencyKey)""#) }
            return "{" + fields.joined(separator: ",") + "}"
        }

        static func settleBody(_ id: String, input: Int, output: Int, cached: Int) -> String {
            #"{"reservation_id":"\#(id)","actual":"# + Self.tokens(input, output, cached: cached) + "}"
        }

        func reserveBlocking(
            _ key: String, model: String? = nil, input: Int, output: Int, cached: Int = 0, ttlMs: Int? = nil, idempotencyKey: String? = nil
        ) throws -> HTTPTestResponse {
            try self.send(
                "POST", "/v1/reserve",
                Self.reserveBody(key, model: model, input: input, output: output, cached: cached, ttlMs: ttlMs, idempotencyKey: idempotencyKey)
            )
        }

        func reserve(
            _ key: String, model: String? = nil, input: Int, output: Int, cached: Int = 0, ttlMs: Int? = nil, idempotencyKey: String? = nil
        ) async throws -> HTTPTestResponse {
            try await self.request(
                "POST", "/v1/reserve",
                Self.reserveBody(key, model: model, input: input, output: output, cached: cached, ttlMs: ttlMs, idempotencyKey: idempotencyKey)
            )
        }

        func settleBlocking(_ id: String, input: Int, output: Int, cached: Int = 0) throws -> HTTPTestResponse {
            try self.send("POST", "/v1/settle", Self.settleBody(id, input: input, output: output, cached: cached))
        }

        func settle(_ id: String, input: Int, output: Int, cached: Int = 0) async throws -> HTTPTestResponse {
            try await self.request("POST", "/v1/settle", Self.settleBody(id, input: input, output: output, cached: cached))
        }

        func renew(_ id: String, ttlMs: Int? = nil) async throws -> HTTPTestResponse {
            try await self.request("POST", "/v1/reservations/\(id)/renew", ttlMs.map { #"{"ttl_ms":\#($0)}"# } ?? "{}")
        }

        func cancelBlocking(_ id: String) throws -> HTTPTestResponse {
            try self.send("DELETE", "/v1/reservations/\(id)")
        }

        func cancel(_ id: String) async throws -> HTTPTestResponse {
            try await self.request("DELETE", "/v1/reservations/\(id)")
        }

        /// The counter `sluice_reservations_total` of `plan` and `event` on this instance's `/metrics`.
        func reservationsMetric(plan: String, event: String) async throws -> Int? {
            let text = try await self.get("/metrics").text
            for line in text.split(separator: "\n") where line.hasPrefix("sluice_reservations_total{") {
                guard let close = line.firstIndex(of: "}") else { continue }
                let labels = line[..<close]
                if labels.contains(#"plan="\#(plan)""#), labels.contains(#"event="\#(event)""#) {
                    return Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)).map { Int($0) }
                }
            }
            return nil
        }
    }

    /// What the clients of the exactness run saw and charged.
    struct ExactTotals: Sendable {
        var reserves = 0
        var allowed = 0
        var denials: [String: Int] = [:]
        var settled = 0
        var cancelled = 0
        var leftToExpire = 0
        /// The latest expiry of those left to expire (Redis's clock, ms).
        var lastExpiryMs: Int64 = 0
        /// Σ charged total tokens: settled actuals (as the answers reported them) + estimates left to expire.
        var chargedTokens = 0
        /// The same in cost units.
        var chargedCost = 0
        /// Σ tokens taken beyond the estimates (overruns), as the answers reported them.
        var overrunTokens = 0
        /// Σ min(actual, estimate) over settled reservations + estimates left to expire: what the
        /// admissions took, net of refunds (= charged − overruns).
        var admittedNet = 0
        var problems: [String] = []
    }

    /// A value shared by concurrent tasks, under a lock.
    final class LockedBox<Value: Sendable>: Sendable {
        private let mutex: Mutex<Value>

        init(_ value: Value) {
            self.mutex = Mutex(value)
        }

        func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T {
            self.mutex.withLock { body(&$0) }
        }
    }

    final class ExactTally: Sendable {
        let state = Mutex(ExactTotals())

        func update(_ body: (inout ExactTotals) -> Void) {
            self.state.withLock { body(&$0) }
        }

        func problem(_ text: String) {
            self.state.withLock { $0.problems.append(text) }
        }

        func sawDenial(_ limit: String) -> Bool {
            self.state.withLock { $0.denials[limit, default: 0] > 0 }
        }

        var totals: ExactTotals { self.state.withLock { $0 } }
    }
}
