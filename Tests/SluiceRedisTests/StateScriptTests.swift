import Foundation
import NIOCore
import NIOPosix
import SluiceCore
import SluiceServer
import SluiceTestSupport
import Testing

@testable import SluiceRedis

/// The operators' scripts (inspect, quota) and the usage record the decision script
/// keeps, with times injected through the scripts' clock argument, against a real redis-server.
@Suite("State scripts and usage records (injected clock)")
final class StateScriptTests: ScriptSuite {
    init() async throws {
        try await super.init(scripts: RedisScript.all)
    }

    let quota = Quota(limit: 10, period: .day, offsetHours: 2)

    /// A plan of a bucket (4 tokens, one per 200 s) and a day quota of 10 from 02:00 UTC. The
    /// slow rate keeps the keys' real TTLs long: the clock here is injected, Redis's expiry is not.
    func entry(retention: Int = 90) -> KeyEntry {
        let plan = Plan(
            name: "p", throttle: TokenBucket(rate: 0.005, burst: 4), quota: self.quota, routes: [], onBackendError: .deny,
            usageRetentionDays: retention
        )
        return KeyEntry(keyID: "\(self.tag)-\(retention)", plan: plan)
    }

    func values(_ script: RedisScript, keys: [[UInt8]], arguments: [[UInt8]]) async throws -> [Int64] {
        let reply = try await self.client.evaluate(
            script, keys: keys.map { RedisArgument(bytes: $0) }, arguments: arguments.map { RedisArgument(bytes: $0) }
        ).get()
        return try #require(reply.array?.compactMap { $0.int }, "reply: \(reply)")
    }

    func decide(_ entry: KeyEntry, cost: Int = 1, at seconds: Int64) async throws -> Decision {
        let limits = entry.plan.limits(for: nil)
        let call = DecisionScript.call(entry: entry, limits: limits, cost: cost, nowMicros: seconds * 1_000_000)
        let values = try await self.values(.decide, keys: call.keys, arguments: call.arguments)
        return try DecisionScript.decision(plan: entry.plan, limits: limits, values: values)
    }

    func inspect(_ entry: KeyEntry, at seconds: Int64, micros: Int64 = 0) async throws -> [StateScripts.LimitSnapshot] {
        let limits = entry.plan.allLimits
        let call = StateScripts.inspect(entry: entry, limits: limits, nowMicros: seconds * 1_000_000 + micros)
        return try StateScripts.snapshots(limits: limits, values: try await self.values(.inspect, keys: call.keys, arguments: call.arguments)).limits
    }

    func adjust(_ entry: KeyEntry, _ change: StateScripts.QuotaChange, at seconds: Int64) async throws -> StateScripts.LimitSnapshot {
        let quota = try #require(entry.plan.quota)
        let call = StateScripts.adjustQuota(entry: entry, quota: quota, change: change, nowMicros: seconds * 1_000_000)
        return try StateScripts.adjusted(quota: quota, values: try await self.values(.quota, keys: call.keys, arguments: call.arguments))
    }

    func usage(_ entry: KeyEntry) async throws -> [Int64: Int] {
        let text = try await self.server.cliAsync("HGETALL", "sl:{\(entry.keyID)}:u")
        let lines = text.split(separator: "\n").map(String.init)
        var result: [Int64: Int] = [:]
        var index = 0
        while index + 1 < lines.count {
            guard let day = Int64(lines[index]), let units = Int(lines[index + 1]) else {
                throw TestSupportError("not a usage record: \(text)")
            }
            result[day] = units
            index += 2
        }
        return result
    }

    /// Calls of the commands the scripts write with, by name.
    static func writeCommands(_ server: RedisServer) async throws -> [String: Int] {
        try await server.commandCalls().filter { ["set", "hset", "hincrby", "hdel", "del", "expire", "pexpire"].contains($0.key) }
    }

    @Test("inspect reads buckets and quotas without consuming or writing anything")
    func inspectConsumesNothing() async throws {
        let e = self.entry()
        let t0 = Self.utc(2026, 3, 10, 12)
        _ = try await self.decide(e, cost: 3, at: t0)
        let before = try await self.server.cliAsync("--scan")
        let writesBefore = try await Self.writeCommands(self.server)
        let first = try await self.inspect(e, at: t0 + 100)
        let second = try await self.inspect(e, at: t0 + 100)
        // No write at all, also none that rewrites an existing key (commandstats counts the
        // commands scripts run).
        #expect(try await Self.writeCommands(self.server) == writesBefore)
        // Equal but for the TTLs, which Redis counts down in real time.
        #expect(first.map(\.tokens) == second.map(\.tokens) && first.map(\.used) == second.map(\.used))
        #expect(first.map(\.remaining) == second.map(\.remaining) && first.map(\.resetAfterMs) == second.map(\.resetAfterMs))
        #expect(try await self.server.cliAsync("--scan") == before)
        // Bucket: 4 - 3 = 1 token at t0, +0.005 a second: 1.5 at t0 + 100.
        let bucket = first[0]
        #expect(bucket.name == "throttle" && bucket.tokens == 1.5 && bucket.remaining == 1 && bucket.limit == 4)
        #expect(bucket.resetAfterMs == 500_000 && bucket.ttlMs > 0)
        // Quota: day windows from 02:00 UTC.
        let quota = first[1]
        #expect(quota.used == 3 && quota.remaining == 7 && quota.limit == 10 && quota.extension_ == 0)
        #expect(quota.windowStart == Self.utc(2026, 3, 10, 2) && quota.windowEnd == Self.utc(2026, 3, 11, 2))
        // A key never used: a full bucket, an untouched window, no state keys (TTL -2).
        let fresh = try await self.inspect(self.entry(retention: 7), at: t0)
        #expect(fresh[0].tokens == 4 && fresh[0].ttlMs == -2 && fresh[1].used == 0 && fresh[1].ttlMs == -2)
    }

    @Test("a quota extension raises this window's limit, is seen by the next decision and ends with the window")
    func extensionLastsTheWindow() async throws {
        let e = self.entry()
        let t0 = Self.utc(2026, 3, 10, 12)
        // 4 + 4 + 2 = the day's 10 units, far enough apart for the bucket (4 tokens, one per 200 s).
        for (offset, cost) in [(0, 4), (1000, 4), (2000, 2)] {
            #expect(try await self.decide(e, cost: cost, at: t0 + Int64(offset)).allowed)
        }
        let denied = try await self.decide(e, at: t0 + 3000)
        #expect(!denied.allowed && denied.deniedBy == "quota")
        let extended = try await self.adjust(e, .add(5), at: t0 + 3100)
        #expect(extended.used == 10 && extended.limit == 15 && extended.remaining == 5 && extended.extension_ == 5)
        let next = try await self.decide(e, at: t0 + 3200)
        #expect(next.allowed)
        let quotaState = try #require(next.limits.first { $0.name == "quota" })
        #expect(quotaState.limit == 15 && quotaState.remaining == 4)
        // The next window starts at 02:00 UTC the next day, with the configured limit.
        let tomorrow = Self.utc(2026, 3, 11, 2)
        let fresh = try await self.decide(e, at: tomorrow)
        let freshQuota = try #require(fresh.limits.first { $0.name == "quota" })
        #expect(fresh.allowed && freshQuota.limit == 10 && freshQuota.remaining == 9)
    }

    @Test("setting the remaining units: fewer or more than left; the limit reported is used + remaining")
    func setRemaining() async throws {
        let e = self.entry()
        let t0 = Self.utc(2026, 3, 10, 12)
        _ = try await self.decide(e, cost: 4, at: t0)
        let fewer = try await self.adjust(e, .setRemaining(1), at: t0 + 100)
        #expect(fewer.used == 4 && fewer.remaining == 1 && fewer.limit == 5 && fewer.extension_ == -5)
        #expect(try await self.decide(e, at: t0 + 1000).allowed)
        let denied = try await self.decide(e, at: t0 + 2000)
        #expect(!denied.allowed && denied.deniedBy == "quota")
        // Nothing left by an operator's hand: denied until the window ends, not forever.
        let none = try await self.adjust(e, .setRemaining(0), at: t0 + 2500)
        #expect(none.limit == 5 && none.remaining == 0)
        let waiting = try await self.decide(e, at: t0 + 2600)
        #expect(!waiting.allowed && waiting.reason == nil && waiting.retryAfterMs > 0, "\(waiting)")
        let more = try await self.adjust(e, .setRemaining(20), at: t0 + 3000)
        #expect(more.used == 5 && more.remaining == 20 && more.limit == 25)
        // Adjusting a window nobody used yet creates its state, with a TTL to the window end.
        let other = self.entry(retention: 3)
        let created = try await self.adjust(other, .add(2), at: t0)
        #expect(created.used == 0 && created.limit == 12 && created.ttlMs > 0 && created.ttlMs <= 14 * 3600 * 1000)
    }

    @Test("usage: admitted units per day (days start at the quota offset); denials, peeks and other days apart")
    func usageRecords() async throws {
        let e = self.entry()
        // 01:30 UTC belongs to the day that started at 02:00 UTC the day before.
        let early = Self.utc(2026, 3, 10, 1, 30)
        let late = Self.utc(2026, 3, 10, 2, 30)
        _ = try await self.decide(e, cost: 2, at: early)
        _ = try await self.decide(e, cost: 0, at: early + 1)
        _ = try await self.decide(e, cost: 3, at: late)
        _ = try await self.decide(e, cost: 1, at: late + 10)
        // Over the bucket: denied, so not counted.
        let denied = try await self.decide(e, cost: 4, at: late + 11)
        #expect(!denied.allowed)
        let dayOfEarly = QuotaCalendar.floorDiv(early - 7200, 86400)
        #expect(try await self.usage(e) == [dayOfEarly: 2, dayOfEarly + 1: 4])
        let ttl = Int(try await self.server.cliAsync("TTL", "sl:{\(e.keyID)}:u")) ?? 0
        #expect(ttl > 90 * 86400 && ttl <= 91 * 86400)
    }

    @Test("usage: days past the retention are dropped when a new day starts; retention 0 records nothing")
    func usageRetention() async throws {
        let e = self.entry(retention: 3)
        let day0 = Self.utc(2026, 3, 1, 12)
        for day in 0..<6 {
            _ = try await self.decide(e, at: day0 + Int64(day) * 86400)
        }
        let first = QuotaCalendar.floorDiv(day0 - 7200, 86400)
        #expect(try await self.usage(e) == [first + 3: 1, first + 4: 1, first + 5: 1])
        let off = self.entry(retention: 0)
        _ = try await self.decide(off, at: day0)
        #expect(try await self.server.cliAsync("EXISTS", "sl:{\(off.keyID)}:u") == "0")
    }

    @Test("a usage record holding garbage is started again, and the decision still counts")
    func usageGarbage() async throws {
        let e = self.entry()
        _ = try await self.server.cliAsync("SET", "sl:{\(e.keyID)}:u", "not-a-hash")
        let t0 = Self.utc(2026, 3, 10, 12)
        let decision = try await self.decide(e, cost: 2, at: t0)
        #expect(decision.allowed)
        #expect(try await self.usage(e) == [QuotaCalendar.floorDiv(t0 - 7200, 86400): 2])
    }
}
