import Foundation
import SluiceAdminAPI
import SluiceCore
import Testing

/// Config for language-model limits: a plan's named `limits`, `concurrency` and `prices`.
@Suite("Config: token limits")
struct TokenLimitsConfigTests {
    /// The example of the docs, and a cost plan that prices one model only.
    static let example = """
        plans:
          llm-pro:
            throttle: { rate: 5, burst: 10 }
            quota: { limit: 100000, period: month }
            limits:
              tpm:   { counts: total_tokens, rate: 1000, burst: 60000 }
              itpm:  { counts: input_tokens, rate: 500, burst: 30000 }
              daily: { counts: total_tokens, quota: { limit: 2000000, period: day } }
              spend: { counts: cost, quota: { limit: 50000000, period: month, offset_hours: 0 } }
            concurrency: { limit: 4, lease_ttl_s: 30 }
            prices:
              gpt-4o: { input: 2.5, output: 10, cached_input: 1.25 }
              "*":    { input: 1, output: 1 }
            headers: [openai, anthropic]
          narrow:
            limits:
              spend: { counts: cost, quota: { limit: 100, period: week, offset_hours: 6 } }
              rpm: { rate: 1, burst: 60 }
            concurrency: { limit: 1000000 }
            prices: { gpt-4o-mini: { input: 0.15, output: 0.6 } }
          plain:
            throttle: { rate: 1, burst: 1 }
            prices: { gpt-4o: { input: 1, output: 2 } }
            shadow: true
            quota: { limit: 10, period: day, initial_offset: 3 }
        api_keys:
          - { key: k, plan: llm-pro }
        """

    /// The problems of a file holding `plan` as plan `p` (flow style) and a key on it; [] when it loads.
    static func problems(plan: String) -> [ConfigError.Problem] {
        do {
            _ = try ConfigLoader.parse(yaml: "plans:\n  p: \(plan)\napi_keys: [ { key: k, plan: p } ]\n", source: "t.yaml")
            return []
        } catch {
            return error.problems
        }
    }

    /// Loads `plan` as plan `p`.
    static func plan(_ plan: String) throws -> Plan {
        let config = try ConfigLoader.parse(yaml: "plans:\n  p: \(plan)\napi_keys: [ { key: k, plan: p } ]\n", source: "t.yaml")
        return try #require(config.rules.plans["p"])
    }

    @Test("the full example loads: named limits by name with their kinds, dimensions and keys; concurrency; prices in millionths; headers")
    func fullExample() throws {
        let config = try ConfigLoader.parse(yaml: Self.example, source: "example.yaml")
        let plan = try #require(config.rules.plans["llm-pro"])

        #expect(plan.namedLimits.map(\.name) == ["daily", "itpm", "spend", "tpm"])
        #expect(plan.namedLimits.map(\.keySuffix) == ["n:daily", "n:itpm", "n:spend", "n:tpm"])
        #expect(plan.namedLimits.map(\.counts) == [.totalTokens, .inputTokens, .cost, .totalTokens])
        #expect(plan.namedLimits.map(\.unit) == [.tokens, .tokens, .cost, .tokens])
        #expect(
            plan.namedLimits.map(\.kind) == [
                .quota(Quota(limit: 2_000_000, period: .day, offsetHours: 0)),
                .bucket(TokenBucket(rate: 500, burst: 30000)),
                .quota(Quota(limit: 50_000_000, period: .month, offsetHours: 0)),
                .bucket(TokenBucket(rate: 1000, burst: 60000)),
            ]
        )
        #expect(plan.namedLimits == [
            Limit.named("daily", kind: .quota(Quota(limit: 2_000_000, period: .day, offsetHours: 0)), counts: .totalTokens),
            Limit.named("itpm", kind: .bucket(TokenBucket(rate: 500, burst: 30000)), counts: .inputTokens),
            Limit.named("spend", kind: .quota(Quota(limit: 50_000_000, period: .month, offsetHours: 0)), counts: .cost),
            Limit.named("tpm", kind: .bucket(TokenBucket(rate: 1000, burst: 60000)), counts: .totalTokens),
        ])
        // The plan's throttle and quota still count requests, and come first.
        #expect(plan.throttle?.kind == .bucket(TokenBucket(rate: 5, burst: 10)) && plan.throttle?.counts == .requests)
        #expect(plan.quota?.kind == .quota(Quota(limit: 100_000, period: .month, offsetHours: 0)) && plan.quota?.counts == .requests)
        #expect(plan.limits(for: nil).map(\.name) == ["throttle", "quota", "daily", "itpm", "spend", "tpm"])

        #expect(plan.concurrency == ConcurrencyLimit(limit: 4, leaseTTLMs: 30000))
        #expect(plan.prices.count == 2)
        #expect(plan.prices["gpt-4o"] == ModelPrice(inputMicros: 2_500_000, outputMicros: 10_000_000, cachedInputMicros: 1_250_000))
        // cached_input defaults to input.
        #expect(plan.prices["*"] == ModelPrice(inputMicros: 1_000_000, outputMicros: 1_000_000, cachedInputMicros: 1_000_000))
        #expect(plan.headers == [.ietf, .openai, .anthropic])
        #expect(plan.usesLedger && plan.countsCost)

        #expect(plan.price(for: "gpt-4o") == ModelPrice(input: 2.5, output: 10, cachedInput: 1.25))
        #expect(plan.price(for: "claude-sonnet") == ModelPrice(input: 1, output: 1))
        #expect(plan.price(for: nil) == ModelPrice(input: 1, output: 1))

        // A cost plan without "*": an unlisted model has no price. Counts default to requests;
        // lease_ttl_s to 30 s.
        let narrow = try #require(config.rules.plans["narrow"])
        #expect(narrow.countsCost && narrow.usesLedger)
        #expect(narrow.price(for: "gpt-4o-mini") == ModelPrice(inputMicros: 150_000, outputMicros: 600_000, cachedInputMicros: 150_000))
        #expect(narrow.price(for: "gpt-4o") == nil)
        #expect(narrow.price(for: nil) == nil)
        #expect(narrow.namedLimits.map(\.name) == ["rpm", "spend"])
        #expect(narrow.namedLimits.first?.counts == .requests && narrow.namedLimits.first?.unit == .requests)
        #expect(narrow.namedLimits.last?.kind == .quota(Quota(limit: 100, period: .week, offsetHours: 6)))
        #expect(narrow.usageOffsetSeconds == 6 * 3600)
        #expect(narrow.concurrency == ConcurrencyLimit(limit: 1_000_000, leaseTTLMs: 30000))

        // Prices without a cost limit are harmless: nothing is charged, the plain script runs,
        // and shadow and an initial offset stay allowed.
        let plain = try #require(config.rules.plans["plain"])
        #expect(!plain.usesLedger && !plain.countsCost && plain.namedLimits.isEmpty && plain.concurrency == nil)
        #expect(plain.price(for: "anything") == .free)
        #expect(plain.shadow)
    }

    @Test("concurrency alone makes a ledger plan; named limits apply on every stage, after the stage's own")
    func concurrencyAndStages() throws {
        let concurrent = try Self.plan("{ concurrency: { limit: 2, lease_ttl_s: 1 } }")
        #expect(concurrent.usesLedger && !concurrent.countsCost && concurrent.namedLimits.isEmpty)
        #expect(concurrent.concurrency == ConcurrencyLimit(limit: 2, leaseTTLMs: 1000))

        let staged = try Self.plan(#"{ throttle: { rate: 1, burst: 1 }, limits: { tpm: { counts: total_tokens, rate: 10, burst: 100 } }, stages: { "api/prod": { routes: { "POST /x": { rate: 2, burst: 2 } } } } }"#)
        let rule = try #require(staged.stages?["api/prod"]?.first)
        let throttle = try #require(staged.throttle)
        #expect(staged.limits(for: RequestRoute("POST /x"), stage: "api/prod") == .limits([rule.limit] + staged.namedLimits))
        #expect(staged.limits(for: nil, stage: "api/prod") == .limits([throttle] + staged.namedLimits))
        #expect(staged.limits(for: nil, stage: "api/dev") == .stageNotInPlan)
    }

    @Test("an initial_offset of 0 is no initial offset: allowed with limits")
    func zeroInitialOffset() throws {
        let plan = try Self.plan("{ quota: { limit: 5, period: day, initial_offset: 0 }, limits: { tpm: { counts: output_tokens, rate: 1, burst: 1 } } }")
        #expect(plan.usesLedger && plan.namedLimits.map(\.counts) == [.outputTokens])
    }

    @Test(
        "each problem names the key path and the reason",
        arguments: [
            // limits.<name>
            ("{ limits: { tpm: { counts: tokens, rate: 1, burst: 1 } } }", "plans.p.limits.tpm.counts", "must be requests, input_tokens, output_tokens, total_tokens or cost"),
            ("{ limits: { tpm: { rate: 1, burst: 1, quota: { limit: 5, period: day } } } }", "plans.p.limits.tpm", "either a token bucket"),
            ("{ limits: { tpm: { counts: total_tokens } } }", "plans.p.limits.tpm", "needs rate and burst (a token bucket) or quota"),
            ("{ limits: { tpm: { counts: total_tokens, rate: 1 } } }", "plans.p.limits.tpm.burst", "is required with rate"),
            ("{ limits: { tpm: { counts: total_tokens, burst: 1 } } }", "plans.p.limits.tpm.rate", "is required with burst"),
            ("{ limits: { tpm: { counts: total_tokens, rate: 0, burst: 1 } } }", "plans.p.limits.tpm.rate", "must be a positive number"),
            ("{ limits: { tpm: { counts: total_tokens, rate: 1, burst: 0 } } }", "plans.p.limits.tpm.burst", "must be a positive integer"),
            ("{ limits: { tpm: { counts: total_tokens, rate: 0.000001, burst: 1000 } } }", "plans.p.limits.tpm", "at most 100000000 seconds"),
            ("{ limits: { TPM: { rate: 1, burst: 1 } } }", "plans.p.limits.TPM", "limit names must be 1-64 characters of a-z, 0-9, _ and -"),
            ("{ limits: { -tpm: { rate: 1, burst: 1 } } }", "plans.p.limits.-tpm", "limit names must be"),
            ("{ limits: { \"t.pm\": { rate: 1, burst: 1 } } }", "plans.p.limits.t.pm", "limit names must be"),
            ("{ limits: { \(String(repeating: "a", count: 65)): { rate: 1, burst: 1 } } }", "plans.p.limits." + String(repeating: "a", count: 65), "limit names must be"),
            ("{ limits: { throttle: { rate: 1, burst: 1 } } }", "plans.p.limits.throttle", "is reserved"),
            ("{ limits: { quota: { rate: 1, burst: 1 } } }", "plans.p.limits.quota", "is reserved"),
            ("{ limits: { concurrency: { rate: 1, burst: 1 } } }", "plans.p.limits.concurrency", "is reserved"),
            ("{ limits: { stage: { rate: 1, burst: 1 } } }", "plans.p.limits.stage", "is reserved"),
            ("{ limits: { unknown_api_key: { rate: 1, burst: 1 } } }", "plans.p.limits.unknown_api_key", "is reserved"),
            ("{ limits: { daily: { counts: total_tokens, quota: { limit: 10, period: day, initial_offset: 1 } } } }", "plans.p.limits.daily.quota.initial_offset", "not supported in a named limit's quota"),
            ("{ limits: { daily: { counts: total_tokens, quota: { limit: 10, period: day, unit: tokens } } } }", "plans.p.limits.daily.quota.unit", "not supported in a named limit's quota"),
            ("{ limits: { daily: { counts: total_tokens, quota: { limit: 10, period: year } } } }", "plans.p.limits.daily.quota.period", "day, week or month"),
            ("{ limits: { daily: { counts: total_tokens, quota: { limit: 0, period: day } } } }", "plans.p.limits.daily.quota.limit", "positive integer"),
            ("{ limits: { daily: { counts: total_tokens, quota: { limit: 5, period: day, offset_hours: 24 } } } }", "plans.p.limits.daily.quota.offset_hours", "between 0 and 23"),
            ("{ limits: { tpm: { counts: total_tokens, rate: 1, burst: 1, window: 60 } } }", "plans.p.limits.tpm.window", "unknown key (expected one of: counts, rate, burst, quota)"),
            ("{ limits: { daily: { quota: { limit: 5, period: day, window: 1 } } } }", "plans.p.limits.daily.quota.window", "unknown key"),
            // concurrency
            ("{ concurrency: { limit: 0 } }", "plans.p.concurrency.limit", "must be between 1 and 1000000, not 0"),
            ("{ concurrency: { limit: 1000001 } }", "plans.p.concurrency.limit", "must be between 1 and 1000000, not 1000001"),
            ("{ concurrency: { lease_ttl_s: 30 } }", "plans.p.concurrency.limit", "is required"),
            ("{ concurrency: { limit: 4, lease_ttl_s: 0 } }", "plans.p.concurrency.lease_ttl_s", "must be between 1 and 3600, not 0"),
            ("{ concurrency: { limit: 4, lease_ttl_s: 3601 } }", "plans.p.concurrency.lease_ttl_s", "must be between 1 and 3600, not 3601"),
            ("{ concurrency: { limit: 4, ttl: 30 } }", "plans.p.concurrency.ttl", "unknown key (expected one of: limit, lease_ttl_s)"),
            // prices
            ("{ throttle: { rate: 1, burst: 1 }, prices: { m: { input: -1, output: 1 } } }", "plans.p.prices.m.input", "must be a number between 0 and 1000000"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { m: { input: 1, output: 1000001 } } }", "plans.p.prices.m.output", "must be a number between 0 and 1000000"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { m: { input: 1, output: 1, cached_input: .inf } } }", "plans.p.prices.m.cached_input", "must be a number between 0 and 1000000"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { m: { input: .nan, output: 1 } } }", "plans.p.prices.m.input", "must be a number between 0 and 1000000"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { m: { output: 1 } } }", "plans.p.prices.m.input", "is required"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { m: { input: 1 } } }", "plans.p.prices.m.output", "is required"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { m: { input: 1, output: 1, cache: 1 } } }", "plans.p.prices.m.cache", "unknown key (expected one of: input, output, cached_input)"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { \"\": { input: 1, output: 1 } } }", "plans.p.prices.", "model names must be 1-128 bytes"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { \"a\\tb\": { input: 1, output: 1 } } }", "plans.p.prices.a\tb", "model names must be 1-128 bytes"),
            ("{ throttle: { rate: 1, burst: 1 }, prices: { \(String(repeating: "m", count: 129)): { input: 1, output: 1 } } }", "plans.p.prices." + String(repeating: "m", count: 129), "model names must be 1-128 bytes"),
            // how the sections sit with the rest of the plan
            ("{ limits: { spend: { counts: cost, quota: { limit: 5, period: day } } } }", "plans.p.prices", "a limit that counts cost needs prices"),
            ("{ limits: { spend: { counts: COST, rate: 1, burst: 5 } }, prices: {} }", "plans.p.prices", "a limit that counts cost needs prices"),
            ("{ shadow: true, limits: { tpm: { counts: total_tokens, rate: 1, burst: 1 } } }", "plans.p.shadow", "is not supported together with limits"),
            ("{ shadow: true, concurrency: { limit: 1 } }", "plans.p.shadow", "is not supported together with concurrency"),
            ("{ quota: { limit: 10, period: day, initial_offset: 2 }, concurrency: { limit: 1 } }", "plans.p.quota.initial_offset", "is not supported together with concurrency"),
            ("{ quota: { limit: 10, period: day, initial_offset: 2 }, limits: { tpm: { rate: 1, burst: 1 } } }", "plans.p.quota.initial_offset", "is not supported together with limits"),
            // headers and units
            ("{ throttle: { rate: 1, burst: 1 }, headers: [bogus] }", "plans.p.headers[0]", "must be ietf, legacy, openai or anthropic, not \"bogus\""),
            ("{ throttle: { rate: 1, burst: 1, unit: cost } }", "plans.p.throttle.unit", "requests or tokens"),
        ]
    )
    func problem(plan: String, path: String, reason: String) {
        let problems = Self.problems(plan: plan)
        let problem = problems.first { $0.path == path }
        #expect(problem != nil, "\(plan): expected a problem at \(path), got \(problems)")
        #expect(problem?.reason.contains(reason) == true, "\(plan): \(problems)")
        #expect(problem?.source == "t.yaml")
    }

    @Test("every problem of a plan is reported together, and the plan is left out")
    func allProblems() {
        let problems = Self.problems(
            plan: """
                { shadow: true, quota: { limit: 10, period: day, initial_offset: 2 }, \
                limits: { Bad: { counts: cost, rate: 1, burst: 1 }, daily: { counts: words, quota: { limit: 5, period: day, unit: tokens } } }, \
                concurrency: { limit: 0, lease_ttl_s: 0 }, headers: [anthropic, xml] }
                """
        )
        #expect(
            problems.map(\.path) == [
                "plans.p.headers[1]",
                "plans.p.limits.Bad",
                "plans.p.limits.daily.counts",
                "plans.p.limits.daily.quota.unit",
                "plans.p.concurrency.limit",
                "plans.p.concurrency.lease_ttl_s",
                "plans.p.prices",
                "plans.p.shadow",
                "plans.p.quota.initial_offset",
            ],
            "\(problems)"
        )
    }

    @Test("the admin plan view's new fields: limits by name, concurrency and prices; left out when the plan has none")
    func adminPlanView() throws {
        let view = AdminAPI.Plan(
            name: "p", onBackendError: .deny, shadow: false, headers: [.anthropic, .ietf], routes: [],
            limits: [
                "tpm": .init(counts: .totalTokens, rate: 1000, burst: 60000),
                "daily": .init(counts: .cost, quota: .init(limit: 5, period: .day, offsetHours: 0)),
            ],
            concurrency: .init(limit: 4, leaseTTLSeconds: 30),
            prices: ["gpt-4o": .init(input: 2.5, output: 10, cachedInput: 1.25), "*": .init(input: 1, output: 1, cachedInput: 1)]
        )
        let json = String(decoding: try AdminAPI.encoder().encode(view), as: UTF8.self)
        #expect(
            json
                == #"{"concurrency":{"lease_ttl_s":30,"limit":4},"headers":["anthropic","ietf"],"#
                + #""limits":{"daily":{"counts":"cost","quota":{"limit":5,"offset_hours":0,"period":"day"}},"tpm":{"burst":60000,"counts":"total_tokens","rate":1000}},"#
                + #""name":"p","on_backend_error":"deny","#
                + #""prices":{"*":{"cached_input":1,"input":1,"output":1},"gpt-4o":{"cached_input":1.25,"input":2.5,"output":10}},"#
                + #""routes":[],"shadow":false}"#
        )
        #expect(try AdminAPI.decoder().decode(AdminAPI.Plan.self, from: Data(json.utf8)) == view)
        let bare = AdminAPI.Plan(name: "q", onBackendError: .allow, shadow: true, headers: [], routes: [])
        #expect(String(decoding: try AdminAPI.encoder().encode(bare), as: UTF8.self) == #"{"headers":[],"name":"q","on_backend_error":"allow","routes":[],"shadow":true}"#)
    }
}
