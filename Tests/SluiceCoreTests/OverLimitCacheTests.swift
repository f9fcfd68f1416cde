import SluiceCore
import Testing

@Suite("Over-limit cache")
struct OverLimitCacheTests {
    let plan = Plan(
        name: "p", throttle: TokenBucket(rate: 1, burst: 5), quota: Quota(limit: 10, period: .day, offsetHours: 0),
        routes: [], onBackendError: .deny
    )
    let t0 = ContinuousClock.now

    func denial(retry: Int, by name: String = "throttle") -> Decision {
        Decision.combine(plan: "p", allowed: false, limits: [
            LimitState(name: "throttle", limit: 5, remaining: 0, resetAfterMs: 5000, retryAfterMs: name == "throttle" ? retry : 0, windowSeconds: 5),
            LimitState(name: "quota", limit: 10, remaining: 4, resetAfterMs: 90_000, retryAfterMs: name == "quota" ? retry : 0, windowSeconds: 86400),
        ])
    }

    @Test("a denial of cost c answers cost ≥ c until its wait has passed, counting the wait down")
    func answers() {
        let cache = OverLimitCache(capacity: 100)
        let limits = self.plan.limits(for: nil)
        cache.remember(self.denial(retry: 1000), keyID: "a", limits: limits, cost: 2, now: self.t0)
        #expect(cache.lookup(keyID: "a", limits: limits, cost: 1, now: self.t0) == nil, "a smaller cost may pass")
        let hit = cache.lookup(keyID: "a", limits: limits, cost: 3, now: self.t0 + .milliseconds(400))
        #expect(hit?.allowed == false && hit?.deniedBy == "throttle" && hit?.retryAfterMs == 600)
        #expect(hit?.limits.first?.resetAfterMs == 4600 && hit?.limits.last?.remaining == 4)
        #expect(cache.lookup(keyID: "a", limits: limits, cost: 2, now: self.t0 + .milliseconds(1000)) == nil, "the wait is over")
        #expect(cache.lookup(keyID: "b", limits: limits, cost: 2, now: self.t0) == nil, "another key")
        #expect(cache.hits == 1)
    }

    @Test("a remembered denial keeps each limit's dimension and Redis's clock, moved on by the time since")
    func keepsDimensionAndClock() {
        let cache = OverLimitCache(capacity: 100)
        let limits = self.plan.limits(for: nil)
        var denial = Decision.combine(plan: "p", allowed: false, limits: [
            LimitState(name: "throttle", limit: 5, remaining: 0, resetAfterMs: 5000, retryAfterMs: 1000, windowSeconds: 5),
            LimitState(
                name: "quota", limit: 10, remaining: 4, resetAfterMs: 90_000, retryAfterMs: 0, windowSeconds: 86400,
                unit: .tokens, counts: .inputTokens
            ),
        ])
        denial.nowMs = 1_796_000_000_000
        cache.remember(denial, keyID: "a", limits: limits, cost: 1, now: self.t0)
        let hit = cache.lookup(keyID: "a", limits: limits, cost: 1, now: self.t0 + .milliseconds(250))
        #expect(hit?.limits.map(\.counts) == [.requests, .inputTokens])
        #expect(hit?.nowMs == 1_796_000_000_250)
    }

    @Test("a cost no limit could ever admit, or limits changed by a reload, go to Redis")
    func costAndConfig() {
        let cache = OverLimitCache(capacity: 100)
        let limits = self.plan.limits(for: nil)
        cache.remember(self.denial(retry: 1000), keyID: "a", limits: limits, cost: 1, now: self.t0)
        #expect(cache.lookup(keyID: "a", limits: limits, cost: 6, now: self.t0) == nil, "over the burst: Redis says -1")
        #expect(cache.lookup(keyID: "a", limits: limits, cost: 5, now: self.t0) != nil)
        let reloaded = Plan(
            name: "p", throttle: TokenBucket(rate: 10, burst: 50), quota: Quota(limit: 10, period: .day, offsetHours: 0),
            routes: [], onBackendError: .deny
        )
        #expect(cache.lookup(keyID: "a", limits: reloaded.limits(for: nil), cost: 1, now: self.t0) == nil)
    }

    @Test("peeks, never-passable denials, allowed and degraded answers are not remembered")
    func notRemembered() {
        let cache = OverLimitCache(capacity: 100)
        let limits = self.plan.limits(for: nil)
        cache.remember(self.denial(retry: 1000), keyID: "a", limits: limits, cost: 0, now: self.t0)
        cache.remember(self.denial(retry: -1), keyID: "b", limits: limits, cost: 9, now: self.t0)
        cache.remember(.degradedAllow(plan: "p"), keyID: "c", limits: limits, cost: 1, now: self.t0)
        #expect(cache.count == 0)
        cache.remember(self.denial(retry: 1000), keyID: "d", limits: limits, cost: 1, now: self.t0)
        #expect(cache.lookup(keyID: "d", limits: limits, cost: 0, now: self.t0) == nil, "a peek always asks Redis")
    }

    @Test("a request that needs other limits is not answered from a denial of a different set")
    func otherLimitSet() {
        let rule = RouteRule(key: "POST /x", pattern: try! RoutePattern("POST /x"), bucket: TokenBucket(rate: 1, burst: 1), additional: true)
        let withRoute = Plan(name: "p", throttle: TokenBucket(rate: 1, burst: 5), quota: nil, routes: [rule], onBackendError: .deny)
        let cache = OverLimitCache(capacity: 100)
        let plain = withRoute.limits(for: nil)
        let decision = Decision.combine(plan: "p", allowed: false, limits: [
            LimitState(name: "throttle", limit: 5, remaining: 0, resetAfterMs: 5000, retryAfterMs: 1000, windowSeconds: 5)
        ])
        cache.remember(decision, keyID: "a", limits: plain, cost: 1, now: self.t0)
        #expect(cache.lookup(keyID: "a", limits: plain, cost: 1, now: self.t0) != nil)
        #expect(cache.lookup(keyID: "a", limits: withRoute.limits(for: RequestRoute("POST /x")), cost: 1, now: self.t0) == nil)
    }

    @Test("bounded: never more than its capacity; forget clears one key")
    func bounded() {
        let cache = OverLimitCache(capacity: 100)
        let limits = self.plan.limits(for: nil)
        for i in 0..<1000 {
            cache.remember(self.denial(retry: 60_000), keyID: "k\(i)", limits: limits, cost: 1, now: self.t0)
            #expect(cache.count <= 100)
        }
        #expect(cache.lookup(keyID: "k999", limits: limits, cost: 1, now: self.t0) != nil, "recent entries stay")
        #expect(cache.lookup(keyID: "k0", limits: limits, cost: 1, now: self.t0) == nil, "old ones go")
        cache.forget(keyID: "k999")
        #expect(cache.lookup(keyID: "k999", limits: limits, cost: 1, now: self.t0) == nil)
        cache.removeAll()
        #expect(cache.count == 0)
    }
}
