import SluiceCore
import Testing

@Suite("Decisions")
struct DecisionTests {
    func state(_ name: String, remaining: Int, retry: Int, limit: Int = 10) -> LimitState {
        LimitState(name: name, limit: limit, remaining: remaining, resetAfterMs: 100, retryAfterMs: retry, windowSeconds: 1)
    }

    @Test("allowed: the most constraining limit is the one with the least remaining")
    func allowedLeastRemaining() {
        let d = Decision.combine(plan: "p", allowed: true, limits: [
            self.state("throttle", remaining: 4, retry: 0), self.state("quota", remaining: 2, retry: 0, limit: 100),
        ])
        #expect(d.allowed && d.deniedBy == nil && d.retryAfterMs == 0 && d.reason == nil)
        #expect(d.limit == 100 && d.remaining == 2)
        #expect(d.limits.count == 2)
    }

    @Test("denied: the denying limit with the longest wait; -1 counts as infinite")
    func deniedLongestWait() {
        let d = Decision.combine(plan: "p", allowed: false, limits: [
            self.state("throttle", remaining: 0, retry: 500), self.state("quota", remaining: 0, retry: 90_000),
        ])
        #expect(!d.allowed && d.deniedBy == "quota" && d.retryAfterMs == 90_000 && d.reason == nil)

        let never = Decision.combine(plan: "p", allowed: false, limits: [
            self.state("throttle", remaining: 0, retry: 90_000_000), self.state("route:POST /x", remaining: 5, retry: -1),
        ])
        #expect(never.deniedBy == "route:POST /x" && never.retryAfterMs == -1 && never.reason == .costExceedsCapacity)
    }

    @Test("denied: a limit that would admit is never named")
    func admittingLimitNotNamed() {
        let d = Decision.combine(plan: "p", allowed: false, limits: [
            self.state("throttle", remaining: 3, retry: 0), self.state("quota", remaining: 0, retry: 1000),
        ])
        #expect(d.deniedBy == "quota" && d.remaining == 0)
    }

    @Test("unknown key")
    func unknownKey() {
        let d = Decision.unknownKey
        #expect(!d.allowed && d.plan == nil && d.limit == 0 && d.remaining == 0 && d.retryAfterMs == -1)
        #expect(d.deniedBy == "unknown_api_key" && d.reason == .unknownAPIKey && d.limits.isEmpty)
    }

    @Test("the bucket policy window is max(1, ceil(burst / rate))", arguments: [
        (2.0, 1, 1), (1.0, 5, 5), (0.5, 2, 4), (3.0, 10, 4), (100.0, 1, 1),
    ])
    func policyWindow(rate: Double, burst: Int, window: Int) {
        #expect(TokenBucket(rate: rate, burst: burst).policyWindowSeconds == window)
    }

    @Test("a script reply of the wrong size is rejected")
    func malformedReply() {
        let plan = Plan(name: "p", throttle: TokenBucket(rate: 1, burst: 1), quota: nil, routes: [], onBackendError: .deny)
        #expect(throws: DecisionScript.MalformedReply.self) {
            try DecisionScript.decision(plan: plan, limits: plan.limits(for: nil), values: [1, 2, 3])
        }
    }

    @Test("script calls: one key per limit under the key's hash tag; arguments built once per limit")
    func scriptCall() {
        let plan = Plan(
            name: "p", throttle: TokenBucket(rate: 4, burst: 2), quota: Quota(limit: 7, period: .month, offsetHours: 3),
            routes: [], onBackendError: .deny
        )
        let entry = KeyEntry(keyID: "ID", plan: plan)
        let call = DecisionScript.call(entry: entry, limits: plan.limits(for: nil), cost: 3)
        let text = { (values: [[UInt8]]) in values.map { String(decoding: $0, as: UTF8.self) } }
        #expect(text(call.keys) == ["sl:{ID}:t", "sl:{ID}:q"])
        #expect(text(call.arguments) == ["0", "3", "0", "b", "250000", "2", "0", "q", "7", "m", "10800"])
        // With usage recorded, the retention is the third argument and the usage hash the last key.
        let recorded = Plan(
            name: "p", throttle: TokenBucket(rate: 4, burst: 2), quota: Quota(limit: 7, period: .month, offsetHours: 3),
            routes: [], onBackendError: .deny, usageRetentionDays: 90
        )
        let recordedCall = DecisionScript.call(entry: KeyEntry(keyID: "ID", plan: recorded), limits: recorded.limits(for: nil), cost: 3)
        #expect(text(recordedCall.keys) == ["sl:{ID}:t", "sl:{ID}:q", "sl:{ID}:u"])
        #expect(text(recordedCall.arguments).prefix(3) == ["0", "3", "90"])
        // A plan without a quota records no usage.
        let unquoted = Plan(name: "p", throttle: TokenBucket(rate: 4, burst: 2), quota: nil, routes: [], onBackendError: .deny, usageRetentionDays: 90)
        let unquotedCall = DecisionScript.call(entry: KeyEntry(keyID: "ID", plan: unquoted), limits: unquoted.limits(for: nil), cost: 1)
        #expect(text(unquotedCall.keys) == ["sl:{ID}:t"])
        #expect(text(unquotedCall.arguments).prefix(3) == ["0", "1", "0"])
        let injected = DecisionScript.call(entry: entry, limits: plan.limits(for: nil), cost: 0, nowMicros: 42)
        #expect(text(injected.arguments).prefix(2) == ["42", "0"])
    }
}
