import Foundation
import Logging
import NIOCore
import NIOPosix
import SluiceCore
import SluiceServer
import SluiceTestSupport
import Testing

@testable import SluiceRedis

/// The decision script's bucket and window math, with times injected through the
/// script's test-only clock argument, against a real redis-server.
@Suite("Decision script (injected clock)")
final class DecisionScriptTests: ScriptSuite {
    init() async throws {
        try await super.init(scripts: [.decide])
    }

    func plan(throttle: TokenBucket? = nil, quota: Quota? = nil, routes: [RouteRule] = []) -> Plan {
        Plan(name: "p", throttle: throttle, quota: quota, routes: routes, onBackendError: .deny)
    }

    func entry(_ plan: Plan, key: String = "k") -> KeyEntry {
        KeyEntry(keyID: "\(self.tag)-\(key)", plan: plan)
    }

    /// Runs the script at `seconds` (plus `micros`) for `cost`.
    func run(_ entry: KeyEntry, route: RequestRoute? = nil, cost: Int = 1, at seconds: Int64, micros: Int64 = 0) async throws -> DecisionScript.Result {
        let limits = entry.plan.limits(for: route)
        let call = DecisionScript.call(entry: entry, limits: limits, cost: cost, nowMicros: seconds * 1_000_000 + micros)
        let reply = try await self.client.evaluate(
            .decide, keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) }
        ).get()
        let values = try #require(reply.array?.compactMap { $0.int }, "reply: \(reply)")
        return try DecisionScript.result(limits: limits, values: values)
    }

    // MARK: Token bucket

    @Test("burst 5 at one token per 1000 s: five pass, the sixth waits 1000 s; 1000 s later one token is back")
    func burst() async throws {
        // A slow rate keeps the keys' real TTLs long: the clock here is injected, Redis's expiry is not.
        let e = self.entry(self.plan(throttle: TokenBucket(rate: 0.001, burst: 5)))
        let t0 = Self.utc(2025, 6, 1, 12)
        for expected in (0...4).reversed() {
            let r = try await self.run(e, at: t0)
            #expect(r.allowed && r.limits[0].remaining == expected)
        }
        let sixth = try await self.run(e, at: t0)
        #expect(!sixth.allowed && sixth.limits[0].retryAfterMs == 1_000_000 && sixth.limits[0].remaining == 0)
        #expect(sixth.limits[0].resetAfterMs == 5_000_000)
        let later = try await self.run(e, at: t0 + 1000)
        #expect(later.allowed && later.limits[0].remaining == 0)
        let again = try await self.run(e, at: t0 + 1000)
        #expect(!again.allowed && again.limits[0].retryAfterMs == 1_000_000)
    }

    @Test("partial refill: a token arrives at exactly its emission time, not before")
    func partialRefill() async throws {
        // Slow rates keep the keys' real TTLs long: the clock here is injected, Redis's expiry is not.
        let e = self.entry(self.plan(throttle: TokenBucket(rate: 0.002, burst: 1)))
        let t0 = Self.utc(2025, 6, 1, 12)
        #expect(try await self.run(e, at: t0).allowed)
        let early = try await self.run(e, at: t0 + 499, micros: 999_000)
        #expect(!early.allowed && early.limits[0].retryAfterMs == 1)
        #expect(try await self.run(e, at: t0 + 500).allowed)
    }

    @Test("fractional rate: 0.05 tokens a second means a twenty-second wait")
    func fractionalRate() async throws {
        let e = self.entry(self.plan(throttle: TokenBucket(rate: 0.05, burst: 1)))
        let t0 = Self.utc(2025, 6, 1, 12)
        #expect(try await self.run(e, at: t0).allowed)
        let denied = try await self.run(e, at: t0)
        #expect(!denied.allowed && denied.limits[0].retryAfterMs == 20_000)
        #expect(try await self.run(e, at: t0 + 19).allowed == false)
        #expect(try await self.run(e, at: t0 + 20).allowed)
    }

    // Slow rates keep the real TTLs long (the clock is injected, Redis's expiry is not); the
    // intervals are still fractional microseconds.
    @Test("fractional emission intervals do not drift: a whole burst passes at one instant", arguments: [0.0015, 0.003, 0.007, 0.0003])
    func noDrift(rate: Double) async throws {
        let e = self.entry(self.plan(throttle: TokenBucket(rate: rate, burst: 10)), key: "drift-\(rate)")
        let t0 = Self.utc(2025, 6, 1, 12)
        for expected in (0...9).reversed() {
            let r = try await self.run(e, at: t0)
            #expect(r.allowed && r.limits[0].remaining == expected, "rate \(rate)")
        }
        #expect(try await self.run(e, at: t0).allowed == false)
    }

    @Test("a bucket's stored time: a whole number of microseconds as its digits, a fractional one exactly")
    func storedBucketTime() async throws {
        let t0 = Self.utc(2025, 6, 1, 12)
        let nowMicros = Double(t0 * 1_000_000)
        // One token per 1000 s: the time after one request is now + 1e9 µs, a whole number.
        let whole = self.entry(self.plan(throttle: TokenBucket(rate: 0.001, burst: 5)), key: "whole")
        _ = try await self.run(whole, at: t0)
        let wholeText = try await self.server.cliAsync("GET", "sl:{\(self.tag)-whole}:t")
        #expect(wholeText == String(t0 * 1_000_000 + 1_000_000_000))
        // Three tokens per 1000 s: an interval of 333333333.33… µs, stored so that it reads back
        // as the very same number (no drift from rounding). (A slow rate: the key's real TTL is
        // the time to refill, 333 s, not a third of a second a loaded machine could outlast.)
        let thirds = self.entry(self.plan(throttle: TokenBucket(rate: 0.003, burst: 5)), key: "thirds")
        _ = try await self.run(thirds, at: t0)
        let thirdsText = try await self.server.cliAsync("GET", "sl:{\(self.tag)-thirds}:t")
        #expect(Double(thirdsText) == nowMicros + 1_000_000 / 0.003, "stored \(thirdsText)")
        #expect(thirdsText.contains("."), "stored \(thirdsText)")
    }

    @Test("a state key holding garbage or another type counts as absent and is replaced")
    func garbageState() async throws {
        let e = self.entry(self.plan(throttle: TokenBucket(rate: 0.01, burst: 2), quota: Quota(limit: 5, period: .day, offsetHours: 0)))
        let prefix = "sl:{\(self.tag)-k}:"
        try await self.server.cliAsync("SET", prefix + "t", "not-a-number")
        try await self.server.cliAsync("HSET", prefix + "q", "field", "value")
        let r = try await self.run(e, at: Self.utc(2025, 6, 1, 12))
        #expect(r.allowed && r.limits[0].remaining == 1 && r.limits[1].remaining == 4)
        #expect(try await self.server.cliAsync("TYPE", prefix + "q") == "string")
        try await self.server.cliAsync("SET", prefix + "t", "inf")
        let again = try await self.run(e, at: Self.utc(2025, 6, 1, 12))
        #expect(again.allowed && again.limits[0].remaining == 1)
    }

    @Test("refill after long idleness is capped at the burst")
    func longIdle() async throws {
        let e = self.entry(self.plan(throttle: TokenBucket(rate: 0.01, burst: 3)))
        let t0 = Self.utc(2025, 6, 1, 12)
        for _ in 0..<3 { #expect(try await self.run(e, at: t0).allowed) }
        #expect(try await self.run(e, at: t0).allowed == false)
        let tenDaysLater = t0 + 10 * 86400
        let r = try await self.run(e, at: tenDaysLater)
        #expect(r.allowed && r.limits[0].remaining == 2)
        #expect(try await self.run(e, at: tenDaysLater).limits[0].remaining == 1)
    }

    @Test("cost: 0 peeks without consuming, 3 takes 3, above burst is never passable")
    func cost() async throws {
        let e = self.entry(self.plan(throttle: TokenBucket(rate: 0.1, burst: 5)))
        let t0 = Self.utc(2025, 6, 1, 12)
        let peek = try await self.run(e, cost: 0, at: t0)
        #expect(peek.allowed && peek.limits[0].remaining == 5)
        #expect(try await self.server.cliAsync("EXISTS", "sl:{\(self.tag)-k}:t") == "0")
        let three = try await self.run(e, cost: 3, at: t0)
        #expect(three.allowed && three.limits[0].remaining == 2)
        let tooBig = try await self.run(e, cost: 6, at: t0)
        #expect(!tooBig.allowed && tooBig.limits[0].retryAfterMs == -1 && tooBig.limits[0].remaining == 2)
        let overRemaining = try await self.run(e, cost: 3, at: t0)
        #expect(!overRemaining.allowed && overRemaining.limits[0].retryAfterMs == 10_000)
        let peekEmpty = try await self.run(e, cost: 0, at: t0)
        #expect(peekEmpty.allowed && peekEmpty.limits[0].remaining == 2)
    }

    @Test("a bucket key lives until the bucket is full again")
    func bucketTTL() async throws {
        let e = self.entry(self.plan(throttle: TokenBucket(rate: 0.001, burst: 5)))
        _ = try await self.run(e, cost: 3, at: Self.utc(2025, 6, 1, 12))
        // Three tokens short at 1 per 1000 s: full again in 3000 s (wide margin for a busy machine).
        let ttl = Int(try await self.server.cliAsync("PTTL", "sl:{\(self.tag)-k}:t")) ?? -9
        #expect((2_940_000...3_000_000).contains(ttl), "PTTL \(ttl)")
    }

    // MARK: Calendar quota

    @Test("a day window with offset 2 h: 01:30 UTC still belongs to the previous day's window")
    func dayOffsetAcrossMidnight() async throws {
        let e = self.entry(self.plan(quota: Quota(limit: 2, period: .day, offsetHours: 2)))
        let now = Self.utc(2024, 3, 10, 1, 30)
        let end = Self.utc(2024, 3, 10, 2)
        let first = try await self.run(e, at: now)
        #expect(first.allowed && first.limits[0].remaining == 1)
        #expect(first.limits[0].resetAfterMs == (end - now) * 1000)
        #expect(first.limits[0].windowSeconds == 86400)
        #expect(try await self.run(e, at: now).allowed)
        let denied = try await self.run(e, at: now)
        #expect(!denied.allowed && denied.limits[0].retryAfterMs == (end - now) * 1000)
        // One second before the window ends: still denied; at its end: a fresh window.
        #expect(try await self.run(e, at: end - 1).allowed == false)
        let fresh = try await self.run(e, at: end)
        #expect(fresh.allowed && fresh.limits[0].remaining == 1)
        #expect(fresh.limits[0].resetAfterMs == 86_400_000)
    }

    @Test("a week window starts on Monday at the offset hour")
    func week() async throws {
        let e = self.entry(self.plan(quota: Quota(limit: 1, period: .week, offsetHours: 2)))
        // Sunday 2024-03-10 12:00; the week began Monday 2024-03-04 02:00 and ends 2024-03-11 02:00.
        let sunday = Self.utc(2024, 3, 10, 12)
        let end = Self.utc(2024, 3, 11, 2)
        let r = try await self.run(e, at: sunday)
        #expect(r.allowed && r.limits[0].resetAfterMs == (end - sunday) * 1000 && r.limits[0].windowSeconds == 604_800)
        // Monday 01:00 is still the old week.
        let mondayEarly = try await self.run(e, at: Self.utc(2024, 3, 11, 1))
        #expect(!mondayEarly.allowed && mondayEarly.limits[0].retryAfterMs == 3_600_000)
        #expect(try await self.run(e, at: end).allowed)
    }

    @Test(
        "month windows follow the calendar: 28, 29, 30 and 31 days, year ends, offsets",
        arguments: [
            // (now, window start, window end, offset hours)
            ((2024, 2, 29, 12), (2024, 2, 1), (2024, 3, 1), 2),  // leap February
            ((2023, 2, 15, 0), (2023, 2, 1), (2023, 3, 1), 0),  // common February
            ((2024, 4, 30, 23), (2024, 4, 1), (2024, 5, 1), 0),  // 30 days
            ((2024, 1, 31, 23), (2024, 1, 1), (2024, 2, 1), 0),  // 31 days
            ((2024, 2, 1, 1), (2024, 1, 1), (2024, 2, 1), 2),  // before the offset hour: still January
            ((2024, 12, 31, 23), (2024, 12, 1), (2025, 1, 1), 0),  // year end
            ((2025, 1, 1, 0), (2024, 12, 1), (2025, 1, 1), 3),  // New Year before 03:00: still December
            ((2100, 2, 28, 5), (2100, 2, 1), (2100, 3, 1), 0),  // 2100 is not a leap year
        ] as [((Int, Int, Int, Int), (Int, Int, Int), (Int, Int, Int), Int)]
    )
    func month(now: (Int, Int, Int, Int), start: (Int, Int, Int), end: (Int, Int, Int), offset: Int) async throws {
        let e = self.entry(self.plan(quota: Quota(limit: 1, period: .month, offsetHours: offset)), key: "m\(now)")
        let t = Self.utc(now.0, now.1, now.2, now.3)
        let windowStart = Self.utc(start.0, start.1, start.2, offset)
        let windowEnd = Self.utc(end.0, end.1, end.2, offset)
        let r = try await self.run(e, at: t)
        #expect(r.allowed)
        #expect(r.limits[0].resetAfterMs == (windowEnd - t) * 1000)
        #expect(r.limits[0].windowSeconds == Int(windowEnd - windowStart))
        let denied = try await self.run(e, at: t)
        #expect(!denied.allowed && denied.limits[0].retryAfterMs == (windowEnd - t) * 1000)
        #expect(try await self.run(e, at: windowEnd - 1).allowed == false)
        #expect(try await self.run(e, at: windowEnd).allowed)
    }

    @Test("a quota key expires when its window ends")
    func quotaTTL() async throws {
        let e = self.entry(self.plan(quota: Quota(limit: 5, period: .day, offsetHours: 0)))
        _ = try await self.run(e, at: Self.utc(2024, 3, 10, 23, 0))
        let ttl = Int(try await self.server.cliAsync("PTTL", "sl:{\(self.tag)-k}:q")) ?? -9
        #expect((3_540_000...3_600_000).contains(ttl), "PTTL \(ttl)")
    }

    // MARK: All-or-nothing

    @Test("a quota denial consumes nothing from the throttle, and a throttle denial nothing from the quota")
    func allOrNothing() async throws {
        let e = self.entry(self.plan(throttle: TokenBucket(rate: 0.01, burst: 3), quota: Quota(limit: 2, period: .day, offsetHours: 0)))
        let t0 = Self.utc(2025, 6, 1, 12)
        #expect(try await self.run(e, at: t0).allowed)
        #expect(try await self.run(e, at: t0).allowed)
        // Quota exhausted (0 left), throttle has 1 token: denied by the quota...
        let byQuota = try await self.run(e, at: t0)
        #expect(!byQuota.allowed && byQuota.limits[0].retryAfterMs == 0 && byQuota.limits[1].retryAfterMs > 0)
        // The admitting throttle reports its state as it is: nothing was taken from it.
        #expect(byQuota.limits[0].remaining == 1)
        // ...and the throttle still holds its token.
        let peek = try await self.run(e, cost: 0, at: t0)
        #expect(peek.limits[0].remaining == 1 && peek.limits[1].remaining == 0)

        let f = self.entry(self.plan(throttle: TokenBucket(rate: 0.01, burst: 1), quota: Quota(limit: 10, period: .day, offsetHours: 0)), key: "f")
        #expect(try await self.run(f, at: t0).allowed)
        let byThrottle = try await self.run(f, at: t0)
        #expect(!byThrottle.allowed && byThrottle.limits[0].retryAfterMs == 100_000 && byThrottle.limits[1].retryAfterMs == 0)
        #expect(byThrottle.limits[1].remaining == 9)
        #expect(try await self.run(f, cost: 0, at: t0).limits[1].remaining == 9)
    }

    @Test("cost above a quota's limit is never passable")
    func quotaCostExceeds() async throws {
        let e = self.entry(self.plan(quota: Quota(limit: 5, period: .day, offsetHours: 0)))
        let r = try await self.run(e, cost: 6, at: Self.utc(2025, 6, 1, 12))
        #expect(!r.allowed && r.limits[0].retryAfterMs == -1 && r.limits[0].remaining == 5)
    }

    // MARK: AWS's initial offset

    @Test("initial_offset: a key's initial window (its first admitted request counted by the quota) holds limit − offset; later windows the full limit")
    func initialOffset() async throws {
        let e = self.entry(self.plan(quota: Quota(limit: 5, period: .day, offsetHours: 0, initialOffset: 2)))
        let t0 = Self.utc(2025, 6, 1, 12)
        for expected in [2, 1, 0] {
            let r = try await self.run(e, at: t0)
            #expect(r.allowed && r.limits[0].remaining == expected && r.limits[0].limit == 3)
        }
        let fourth = try await self.run(e, at: t0)
        #expect(!fourth.allowed && fourth.limits[0].limit == 3 && fourth.limits[0].retryAfterMs == 12 * 3_600_000)
        // The state outlives its window by 400 days, so the next window knows the key.
        let ttl = Int(try await self.server.cliAsync("PTTL", "sl:{\(self.tag)-k}:q")) ?? -9
        #expect(ttl > 400 * 86_400_000 && ttl <= 400 * 86_400_000 + 12 * 3_600_000, "PTTL \(ttl)")
        // The next day, and one after a skipped day: the full limit.
        for day in [1, 3] {
            let t = t0 + Int64(day) * 86_400
            for expected in (0...4).reversed() {
                let r = try await self.run(e, at: t)
                #expect(r.allowed && r.limits[0].remaining == expected && r.limits[0].limit == 5, "day \(day)")
            }
            #expect(try await self.run(e, at: t).allowed == false)
        }
    }

    @Test("initial_offset: a denied first request begins the initial window too (consuming nothing); a peek does not; a key with recorded usage is not new; an offset equal to the limit admits nothing that window, then the full limit")
    func initialOffsetStart() async throws {
        let quota = Quota(limit: 5, period: .day, offsetHours: 0, initialOffset: 2)
        let t0 = Self.utc(2025, 6, 1, 12)
        // A peek changes nothing: still a new key.
        let e = self.entry(self.plan(quota: quota))
        #expect(try await self.run(e, cost: 0, at: t0).limits[0].limit == 3)
        #expect(try await self.server.cliAsync("EXISTS", "sl:{\(self.tag)-k}:q") == "0")
        // Cost 4 fits the limit but not limit − offset: denied, nothing consumed, but this day is
        // the key's initial window, and the next day has the full limit.
        let denied = try await self.run(e, cost: 4, at: t0)
        #expect(!denied.allowed && denied.limits[0].limit == 3 && denied.limits[0].remaining == 3 && denied.limits[0].retryAfterMs > 0)
        #expect(try await self.run(e, cost: 0, at: t0).limits[0].remaining == 3)
        let nextDay = try await self.run(e, cost: 4, at: t0 + 86_400)
        #expect(nextDay.allowed && nextDay.limits[0].limit == 5 && nextDay.limits[0].remaining == 1)

        // The whole limit as the offset (AWS allows it): nothing in the initial window, then all.
        let all = self.entry(self.plan(quota: Quota(limit: 5, period: .day, offsetHours: 0, initialOffset: 5)), key: "all")
        let none = try await self.run(all, at: t0)
        #expect(!none.allowed && none.limits[0].limit == 0)
        #expect(try await self.run(all, at: t0 + 86_400).allowed)

        // A key with usage on record (active before the offset was configured) is not new.
        let plan = Plan(name: "p", throttle: nil, quota: quota, routes: [], onBackendError: .deny, usageRetentionDays: 30)
        let known = self.entry(plan, key: "known")
        _ = try await self.server.cliAsync("HSET", String(decoding: known.usageKey, as: UTF8.self), "20000", "7")
        let r = try await self.run(known, at: t0)
        #expect(r.allowed && r.limits[0].limit == 5 && r.limits[0].remaining == 4)
        // Without usage on record, the same plan's new key gets the offset.
        let fresh = try await self.run(self.entry(plan, key: "fresh"), at: t0)
        #expect(fresh.allowed && fresh.limits[0].limit == 3)
    }

    @Test("a quota without initial_offset still expires when its window ends")
    func quotaWithoutInitialOffsetTTL() async throws {
        let e = self.entry(self.plan(quota: Quota(limit: 5, period: .day, offsetHours: 0, initialOffset: 0)))
        let r = try await self.run(e, at: Self.utc(2024, 3, 10, 23, 0))
        #expect(r.limits[0].limit == 5)
        let ttl = Int(try await self.server.cliAsync("PTTL", "sl:{\(self.tag)-k}:q")) ?? -9
        #expect((3_540_000...3_600_000).contains(ttl), "PTTL \(ttl)")
    }
}
