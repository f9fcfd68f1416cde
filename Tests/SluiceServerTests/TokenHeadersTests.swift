import Foundation
import HTTPTypes
import SluiceCore
import SluiceServer
import SluiceTestSupport
import Testing

/// Rate-limit headers of decisions that mix request, token, cost and concurrency limits: the IETF
/// fields as an independent structured-field parser (http-sfv, from the test venv) reads them,
/// and the OpenAI and Anthropic sets exactly.
@Suite("Token, cost and concurrency headers")
struct TokenHeadersTests {
    static let seeds = Result { try SeededRandom.Suite("TokenHeadersTests") }
    static let allStyles: Set<HeaderStyle> = [.ietf, .openai, .anthropic]

    /// 2026-12-02T04:05:05.250Z: Redis's clock in the fixtures.
    static let nowMs: Int64 = 1_796_184_305_250

    // MARK: Fixtures

    static func requests(
        _ name: String, limit: Int, remaining: Int, resetAfterMs: Int, retryAfterMs: Int = 0, window: Int, quota: Int? = nil
    ) -> LimitState {
        LimitState(
            name: name, limit: limit, remaining: remaining, resetAfterMs: resetAfterMs, retryAfterMs: retryAfterMs,
            windowSeconds: window, policyQuota: quota
        )
    }

    static func tokens(
        _ name: String, _ counts: SluiceCore.Dimension, limit: Int, remaining: Int, resetAfterMs: Int, retryAfterMs: Int = 0, window: Int,
        quota: Int? = nil
    ) -> LimitState {
        LimitState(
            name: name, limit: limit, remaining: remaining, resetAfterMs: resetAfterMs, retryAfterMs: retryAfterMs,
            windowSeconds: window, unit: counts.unit, policyQuota: quota, counts: counts
        )
    }

    static func cost(_ name: String, limit: Int, remaining: Int, resetAfterMs: Int, retryAfterMs: Int = 0, window: Int) -> LimitState {
        LimitState(
            name: name, limit: limit, remaining: remaining, resetAfterMs: resetAfterMs, retryAfterMs: retryAfterMs,
            windowSeconds: window, unit: .cost, counts: .cost
        )
    }

    /// As the ledger script reports it: window 0, unit concurrent requests.
    static func concurrency(limit: Int, remaining: Int, resetAfterMs: Int = 0, retryAfterMs: Int = 0) -> LimitState {
        LimitState(
            name: ConcurrencyLimit.name, limit: limit, remaining: remaining, resetAfterMs: resetAfterMs, retryAfterMs: retryAfterMs,
            windowSeconds: 0, unit: .concurrentRequests
        )
    }

    static func decision(allowed: Bool = true, _ limits: [LimitState], nowMs: Int64? = TokenHeadersTests.nowMs) -> Decision {
        var decision = Decision.combine(plan: "p", allowed: allowed, limits: limits)
        decision.nowMs = nowMs
        return decision
    }

    /// Every kind at once. The least remaining of all is the concurrency limit's 0, then the
    /// cost limit's 3: neither may feed a requests or tokens triple.
    static let mix = Self.decision(Self.mixLimits)
    static let mixLimits: [LimitState] = [
        Self.requests("throttle", limit: 10, remaining: 7, resetAfterMs: 2_000, window: 5),
        Self.requests("quota", limit: 1_000, remaining: 400, resetAfterMs: 259_200_001, window: 604_800),
        Self.requests("route:GET /caf%C3%A9", limit: 3, remaining: 2, resetAfterMs: 59_000, window: 300),
        Self.tokens("tpm", .totalTokens, limit: 90_000, remaining: 5_000, resetAfterMs: 6_667, window: 60),
        Self.tokens("itpd", .inputTokens, limit: 1_000_000, remaining: 500_000, resetAfterMs: 43_200_000, window: 86_400),
        Self.tokens("itpm", .inputTokens, limit: 40_000, remaining: 30_000, resetAfterMs: 15_000, window: 60),
        Self.tokens("otpm", .outputTokens, limit: 8_000, remaining: 7_999, resetAfterMs: 751, window: 60),
        Self.cost("budget", limit: 500, remaining: 3, resetAfterMs: 3_599_999, window: 2_592_000),
        Self.concurrency(limit: 4, remaining: 0),
    ]

    /// Denied by the output-token limit: a denying limit is the most constraining even with more
    /// remaining than another (itpm's 10). The concurrency limit waits for a lease: it has a reset.
    static let denied = Self.decision(allowed: false, Self.deniedLimits)
    static let deniedLimits: [LimitState] = [
        Self.requests("throttle", limit: 5, remaining: 5, resetAfterMs: 0, window: 1),
        Self.requests(#"route:GET /a"b\c"#, limit: 2, remaining: 1, resetAfterMs: 500, window: 1, quota: 2),
        Self.tokens("tpm", .totalTokens, limit: 100_000, remaining: 50_000, resetAfterMs: 30_000, window: 60),
        Self.tokens("otpm", .outputTokens, limit: 1_000, remaining: 100, resetAfterMs: 9_000, retryAfterMs: 4_500, window: 60),
        Self.tokens("itpm", .inputTokens, limit: 20_000, remaining: 10, resetAfterMs: 1_000, window: 60),
        Self.concurrency(limit: 2, remaining: 0, resetAfterMs: 2_001),
    ]

    static func render(_ decision: Decision, _ styles: Set<HeaderStyle> = Self.allStyles, wallClockMs: () -> Int64 = { 0 }) -> HTTPFields {
        var headers = HTTPFields()
        RateLimitHeaders.add(for: decision, styles: styles, wallClockMs: wallClockMs, to: &headers)
        return headers
    }

    static func field(_ headers: HTTPFields, _ name: String) -> String? {
        headers[HTTPField.Name(name)!]
    }

    /// The vendor fields present, name → value, lowercased names.
    static func vendorFields(_ headers: HTTPFields, prefix: String) -> [String: String] {
        var out: [String: String] = [:]
        for field in headers where field.name.canonicalName.hasPrefix(prefix) {
            out[field.name.canonicalName] = field.value
        }
        return out
    }

    // MARK: The IETF fields through http-sfv

    /// One member of a parsed List: its bare item's kind and text, and its parameters'.
    struct SFMember: Decodable {
        struct Bare: Decodable, Equatable, CustomStringConvertible {
            let kind: String
            let text: String
            var description: String { "\(self.kind) \(self.text)" }
        }

        let kind: String
        let text: String?
        let params: [String: Bare]?
    }

    struct SFList: Decodable {
        let error: String?
        let members: [SFMember]?
    }

    /// Reads each text as an RFC 8941 List with http-sfv: a member's kind (`string`, `token`,
    /// `integer`, `decimal`, `inner-list` …), its value as text, and its parameters likewise.
    static let sfvScript = #"""
        import decimal, json, sys
        import http_sfv

        def bare(value):
            if isinstance(value, bool):
                return {"kind": "boolean", "text": str(value).lower()}
            if isinstance(value, int):
                return {"kind": "integer", "text": str(value)}
            if isinstance(value, (float, decimal.Decimal)):
                return {"kind": "decimal", "text": str(value)}
            if isinstance(value, http_sfv.Token):
                return {"kind": "token", "text": str(value)}
            if isinstance(value, http_sfv.DisplayString):
                return {"kind": "display-string", "text": str(value)}
            if isinstance(value, str):
                return {"kind": "string", "text": value}
            if isinstance(value, bytes):
                return {"kind": "bytes", "text": value.hex()}
            return {"kind": type(value).__name__, "text": repr(value)}

        out = []
        for text in json.load(sys.stdin):
            parsed = http_sfv.List()
            try:
                parsed.parse(text.encode("ascii"))
            except Exception as error:
                out.append({"error": "%s: %s" % (type(error).__name__, error)})
                continue
            members = []
            for member in parsed:
                if isinstance(member, http_sfv.InnerList):
                    entry = {"kind": "inner-list", "text": None}
                else:
                    entry = bare(member.value)
                entry["params"] = {key: bare(value) for key, value in member.params.items()}
                members.append(entry)
            out.append({"members": members})
        json.dump(out, sys.stdout)
        """#

    /// Parses every text in one http-sfv process.
    static func parseLists(_ texts: [String]) async throws -> [SFList] {
        let python = try PythonTools.python()
        let input = String(decoding: try JSONEncoder().encode(texts), as: UTF8.self)
        let script = Self.sfvScript
        let result = try await offCooperativePool { try Subprocess.run(python, ["-c", script], input: input) }
        guard result.status == 0, let lists = try? JSONDecoder().decode([SFList].self, from: Data(result.output.utf8)) else {
            throw TestSupportError("http-sfv failed (status \(result.status)): \(result.output.prefix(2000))")
        }
        guard lists.count == texts.count else {
            throw TestSupportError("http-sfv answered \(lists.count) lists for \(texts.count) fields")
        }
        return lists
    }

    /// What the draft (and docs/ARCHITECTURE.md) say a limit's policy member carries.
    static func expectedPolicy(_ limit: LimitState) -> [String: SFMember.Bare] {
        func integer(_ value: Int) -> SFMember.Bare { .init(kind: "integer", text: String(value)) }
        func string(_ value: String) -> SFMember.Bare { .init(kind: "string", text: value) }
        switch limit.unit {
        case .requests: return ["q": integer(limit.policyQuota), "w": integer(limit.windowSeconds)]
        case .tokens: return ["q": integer(limit.policyQuota), "w": integer(limit.windowSeconds), "qu": string("tokens")]
        case .cost: return ["q": integer(limit.policyQuota), "w": integer(limit.windowSeconds), "qu": string("cost")]
        case .concurrentRequests: return ["q": integer(limit.limit), "qu": string("concurrent-requests")]
        }
    }

    /// What a limit's service-limit member carries: `t` in whole seconds rounded up; none for a
    /// concurrency limit with nothing to wait for.
    static func expectedState(_ limit: LimitState) -> [String: SFMember.Bare] {
        var params: [String: SFMember.Bare] = ["r": .init(kind: "integer", text: String(limit.remaining))]
        let seconds = (max(0, limit.resetAfterMs) + 999) / 1000
        if limit.unit != .concurrentRequests || limit.resetAfterMs > 0 {
            params["t"] = .init(kind: "integer", text: String(seconds))
        }
        return params
    }

    static let names = [
        "throttle", "quota", "route:POST /x", "route:GET /caf%C3%A9", "route:mlApi/prod:POST /predict", "tpm", "itpd",
        #"route:GET /a"b\c"#, "route:GET /100%25 done", "route:PUT /  two  spaces ",
    ]

    /// A random limit of a random kind, with values across the ranges the scripts report.
    static func randomLimit(using generator: inout SeededRandom) -> LimitState {
        let name = Self.names.randomElement(using: &generator)!
        let limit = Int.random(in: 1...2_000_000, using: &generator)
        let remaining = Int.random(in: 0...limit, using: &generator)
        let reset = [0, 1, 999, 1_000, 1_001, Int.random(in: 0...3_000_000_000, using: &generator)].randomElement(using: &generator)!
        let retry = Bool.random(using: &generator) ? 0 : Int.random(in: -1...100_000, using: &generator)
        let window = Int.random(in: 1...2_678_400, using: &generator)
        let quota = Bool.random(using: &generator) ? nil : Int.random(in: limit...(limit * 3), using: &generator)
        switch Int.random(in: 0..<6, using: &generator) {
        case 0:
            return Self.concurrency(limit: limit % 64 + 1, remaining: remaining % 64, resetAfterMs: reset, retryAfterMs: retry)
        case 1:
            return Self.cost(name, limit: limit, remaining: remaining, resetAfterMs: reset, retryAfterMs: retry, window: window)
        case 2, 3:
            let counts = [SluiceCore.Dimension.inputTokens, .outputTokens, .totalTokens].randomElement(using: &generator)!
            return Self.tokens(
                name, counts, limit: limit, remaining: remaining, resetAfterMs: reset, retryAfterMs: retry, window: window, quota: quota
            )
        default:
            return Self.requests(name, limit: limit, remaining: remaining, resetAfterMs: reset, retryAfterMs: retry, window: window, quota: quota)
        }
    }

    @Test("RateLimit-Policy and RateLimit parse as structured-field Lists with the draft's members and parameters")
    func ietfFieldsParse() async throws {
        var generator = try Self.seeds.get().generator(for: "ietfFieldsParse")
        let seed = generator.seed
        var decisions = [Self.mix, Self.denied]
        for _ in 0..<300 {
            let count = Int.random(in: 1...9, using: &generator)
            let limits = (0..<count).map { _ in Self.randomLimit(using: &generator) }
            decisions.append(Self.decision(allowed: Bool.random(using: &generator), limits))
        }
        var texts: [String] = []
        for decision in decisions {
            let headers = Self.render(decision)
            texts.append(headers[RateLimitHeaders.policy] ?? "")
            texts.append(headers[RateLimitHeaders.state] ?? "")
        }
        let lists = try await Self.parseLists(texts)
        for (index, decision) in decisions.enumerated() {
            for (field, list) in [("RateLimit-Policy", lists[2 * index]), ("RateLimit", lists[2 * index + 1])] {
                let text = texts[2 * index + (field == "RateLimit" ? 1 : 0)]
                let context = "seed \(seed), decision \(index), \(field): \(text)"
                #expect(list.error == nil, "\(context): \(list.error ?? "")")
                guard let members = list.members else { continue }
                #expect(members.count == decision.limits.count, "\(context)")
                for (member, limit) in zip(members, decision.limits) {
                    #expect(member.kind == "string" && member.text == limit.name, "\(context): member \(member.kind) \(member.text ?? "nil")")
                    let expected = field == "RateLimit" ? Self.expectedState(limit) : Self.expectedPolicy(limit)
                    #expect(member.params ?? [:] == expected, "\(context): \(limit.name) (\(limit.unit))")
                }
            }
        }
        // The fixed decisions, spelled out.
        let mixPolicy = try #require(lists[0].members)
        #expect(mixPolicy.map { $0.text ?? "" } == Self.mix.limits.map { $0.name })
        #expect(mixPolicy[2].text == "route:GET /caf%C3%A9" && mixPolicy[2].params?["w"]?.text == "300")
        #expect(mixPolicy[3].params?["qu"] == .init(kind: "string", text: "tokens"))
        #expect(mixPolicy[7].params == ["q": .init(kind: "integer", text: "500"), "w": .init(kind: "integer", text: "2592000"), "qu": .init(kind: "string", text: "cost")])
        #expect(mixPolicy[8].params == ["q": .init(kind: "integer", text: "4"), "qu": .init(kind: "string", text: "concurrent-requests")])
        let mixState = try #require(lists[1].members)
        #expect(mixState[0].params?["t"]?.text == "2" && mixState[1].params?["t"]?.text == "259201")
        #expect(mixState[8].params == ["r": .init(kind: "integer", text: "0")])
        let deniedPolicy = try #require(lists[2].members)
        #expect(deniedPolicy[1].text == #"route:GET /a"b\c"#)
        let deniedState = try #require(lists[3].members)
        #expect(deniedState[5].text == "concurrency" && deniedState[5].params == ["r": .init(kind: "integer", text: "0"), "t": .init(kind: "integer", text: "3")])
    }

    @Test("concurrency, cost and token members, exactly")
    func exactMembers() {
        let mix = Self.render(Self.mix)
        let policy: String =
            #""throttle";q=10;w=5, "quota";q=1000;w=604800, "route:GET /caf%C3%A9";q=3;w=300, "tpm";q=90000;w=60;qu="tokens", "#
            + #""itpd";q=1000000;w=86400;qu="tokens", "itpm";q=40000;w=60;qu="tokens", "otpm";q=8000;w=60;qu="tokens", "#
            + #""budget";q=500;w=2592000;qu="cost", "concurrency";q=4;qu="concurrent-requests""#
        let state: String =
            #""throttle";r=7;t=2, "quota";r=400;t=259201, "route:GET /caf%C3%A9";r=2;t=59, "tpm";r=5000;t=7, "itpd";r=500000;t=43200, "#
            + #""itpm";r=30000;t=15, "otpm";r=7999;t=1, "budget";r=3;t=3600, "concurrency";r=0"#
        #expect(mix[RateLimitHeaders.policy] == policy)
        #expect(mix[RateLimitHeaders.state] == state)
        let denied = Self.render(Self.denied)
        #expect(denied[RateLimitHeaders.state]?.hasSuffix(#", "concurrency";r=0;t=3"#) == true)
        #expect(denied[RateLimitHeaders.policy]?.contains(#""route:GET /a\"b\\c";q=2;w=1, "#) == true)
    }

    // MARK: OpenAI and Anthropic

    @Test("OpenAI: requests from request limits, tokens from every token limit; cost and concurrency never")
    func openAIFields() {
        let mix = Self.vendorFields(Self.render(Self.mix, [.openai]), prefix: "x-ratelimit-")
        #expect(
            mix == [
                // The route limit (2 left) over the throttle (7) and quota (400); not the
                // concurrency limit (0 left).
                "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "59s",
                // tpm (5 000 left) over itpm, itpd, otpm; not the cost limit (3 left).
                "x-ratelimit-limit-tokens": "90000", "x-ratelimit-remaining-tokens": "5000", "x-ratelimit-reset-tokens": "6.667s",
            ]
        )
        let denied = Self.vendorFields(Self.render(Self.denied, [.openai]), prefix: "x-ratelimit-")
        #expect(denied["x-ratelimit-limit-tokens"] == "1000" && denied["x-ratelimit-remaining-tokens"] == "100")
        #expect(denied["x-ratelimit-reset-tokens"] == "9s")
        #expect(denied["x-ratelimit-remaining-requests"] == "1" && denied["x-ratelimit-reset-requests"] == "500ms")
        // Without the style, none.
        #expect(Self.vendorFields(Self.render(Self.mix, [.ietf, .anthropic]), prefix: "x-ratelimit-").isEmpty)
    }

    @Test("Anthropic: requests, tokens, input and output tokens, each from its own limits, reset as RFC 3339 from Redis's clock")
    func anthropicFields() {
        var clockReads = 0
        let mix = Self.vendorFields(Self.render(Self.mix, [.anthropic], wallClockMs: { clockReads += 1; return 0 }), prefix: "anthropic-")
        #expect(
            mix == [
                // now 04:05:05.250 + 59 s, rounded up.
                "anthropic-ratelimit-requests-limit": "3", "anthropic-ratelimit-requests-remaining": "2",
                "anthropic-ratelimit-requests-reset": "2026-12-02T04:06:05Z",
                // tpm, counting total tokens, is the most constraining token limit: + 6.667 s.
                "anthropic-ratelimit-tokens-limit": "90000", "anthropic-ratelimit-tokens-remaining": "5000",
                "anthropic-ratelimit-tokens-reset": "2026-12-02T04:05:12Z",
                // itpm over itpd (listed first) among input-token limits: + 15 s.
                "anthropic-ratelimit-input-tokens-limit": "40000", "anthropic-ratelimit-input-tokens-remaining": "30000",
                "anthropic-ratelimit-input-tokens-reset": "2026-12-02T04:05:21Z",
                // otpm: + 0.751 s = 04:05:06.001, rounded up.
                "anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "7999",
                "anthropic-ratelimit-output-tokens-reset": "2026-12-02T04:05:07Z",
            ]
        )
        #expect(clockReads == 0, "a decision with Redis's time must not read the local clock")

        let denied = Self.render(Self.denied, [.ietf, .anthropic])
        let fields = Self.vendorFields(denied, prefix: "anthropic-")
        // otpm denies: it is the tokens and the output-tokens triple, though itpm has less left.
        #expect(fields["anthropic-ratelimit-tokens-remaining"] == "100" && fields["anthropic-ratelimit-tokens-reset"] == "2026-12-02T04:05:15Z")
        #expect(fields["anthropic-ratelimit-output-tokens-limit"] == "1000" && fields["anthropic-ratelimit-output-tokens-remaining"] == "100")
        #expect(fields["anthropic-ratelimit-input-tokens-remaining"] == "10" && fields["anthropic-ratelimit-input-tokens-reset"] == "2026-12-02T04:05:07Z")
        #expect(fields["anthropic-ratelimit-requests-remaining"] == "1" && fields["anthropic-ratelimit-requests-reset"] == "2026-12-02T04:05:06Z")
        #expect(fields.count == 12)
        // The IETF part still says when to retry: 4.5 s, rounded up.
        #expect(denied[HTTPField.Name.retryAfter] == "5")

        // Only the triples whose limits applied: requests and total tokens here.
        let partial = Self.decision([
            Self.requests("throttle", limit: 5, remaining: 4, resetAfterMs: 200, window: 1),
            Self.tokens("tpm", .totalTokens, limit: 100, remaining: 60, resetAfterMs: 24_000, window: 60),
        ])
        #expect(
            Set(Self.vendorFields(Self.render(partial, [.anthropic]), prefix: "anthropic-").keys) == [
                "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset",
                "anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset",
            ]
        )
        // Without the style, none.
        #expect(Self.vendorFields(Self.render(Self.mix, [.ietf, .openai]), prefix: "anthropic-").isEmpty)
    }

    @Test("Anthropic: a decision without Redis's time counts its resets from this instance's clock")
    func anthropicLocalClock() throws {
        let local = Self.decision(
            [Self.tokens("itpm", .inputTokens, limit: 100, remaining: 1, resetAfterMs: 1_500, window: 60)], nowMs: nil
        )
        var clockReads = 0
        // 2030-01-01T00:00:00.000Z.
        let headers = Self.render(local, [.anthropic]) { clockReads += 1; return 1_893_456_000_000 }
        #expect(Self.field(headers, "anthropic-ratelimit-input-tokens-reset") == "2030-01-01T00:00:02Z")
        #expect(Self.field(headers, "anthropic-ratelimit-tokens-reset") == "2030-01-01T00:00:02Z")
        #expect(clockReads == 1)
        // The default clock: the wall clock, so a reset 10 s ahead lands within a few seconds of it.
        var real = HTTPFields()
        let ahead = Self.decision([Self.requests("throttle", limit: 1, remaining: 0, resetAfterMs: 10_000, window: 10)], nowMs: nil)
        RateLimitHeaders.add(for: ahead, styles: [.anthropic], to: &real)
        let formatter = ISO8601DateFormatter()
        let text = try #require(Self.field(real, "anthropic-ratelimit-requests-reset"))
        let reset = try #require(formatter.date(from: text), "\(text) is not an RFC 3339 time")
        let expected = Date().addingTimeInterval(10)
        #expect(abs(reset.timeIntervalSince(expected)) < 5, "\(text) vs \(expected)")
    }

    @Test("cost limits never feed the OpenAI or Anthropic token fields")
    func costNeverFeedsTokens() {
        let decision = Self.decision([
            Self.requests("throttle", limit: 10, remaining: 9, resetAfterMs: 100, window: 1),
            Self.cost("budget", limit: 500, remaining: 0, resetAfterMs: 1_000, retryAfterMs: 0, window: 86_400),
            Self.concurrency(limit: 3, remaining: 0),
        ])
        let headers = Self.render(decision)
        for field in headers {
            let name = field.name.canonicalName
            #expect(!name.contains("token"), "\(name): \(field.value)")
        }
        // The request triples come from the throttle alone: neither the cost nor the concurrency limit (0 left).
        #expect(Self.field(headers, "x-ratelimit-remaining-requests") == "9" && Self.field(headers, "anthropic-ratelimit-requests-remaining") == "9")
        #expect(headers[RateLimitHeaders.policy]?.contains(#""budget";q=500;w=86400;qu="cost""#) == true)
        // A denying cost limit does not either.
        let deniedByCost = Self.decision(
            allowed: false,
            [
                Self.tokens("tpm", .totalTokens, limit: 1_000, remaining: 900, resetAfterMs: 6_000, window: 60),
                Self.cost("budget", limit: 500, remaining: 0, resetAfterMs: 9_000, retryAfterMs: 8_000, window: 86_400),
            ]
        )
        let denied = Self.render(deniedByCost)
        #expect(Self.field(denied, "x-ratelimit-remaining-tokens") == "900" && Self.field(denied, "anthropic-ratelimit-tokens-remaining") == "900")
        #expect(Self.field(denied, "x-ratelimit-limit-requests") == nil && Self.field(denied, "anthropic-ratelimit-requests-limit") == nil)
        #expect(denied[HTTPField.Name.retryAfter] == "8")
    }

    @Test("a decision with no limits gets no rate-limit fields, whatever the styles")
    func noLimits() {
        let everything = Set(HeaderStyle.allCases)
        var clockReads = 0
        for decision in [Decision.unknownKey, .unlimited(plan: "p"), .degradedAllow(plan: "p"), .stageNotInPlan(plan: "p")] {
            let headers = Self.render(decision, everything) { clockReads += 1; return 0 }
            #expect(headers.isEmpty, "\(decision.deniedBy ?? "allowed"): \(headers)")
        }
        #expect(clockReads == 0)
    }

    // MARK: The RFC 3339 formatter

    @Test("RFC 3339 times match Foundation's ISO8601DateFormatter on many seeded instants")
    func rfc3339MatchesFoundation() throws {
        var generator = try Self.seeds.get().generator(for: "rfc3339MatchesFoundation")
        let seed = generator.seed
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.formatOptions = [.withInternetDateTime]
        let max = RateLimitHeadersProbe.maxRFC3339Seconds
        var instants: [Int64] = [0, 59, 86_399, 86_400, 68_169_599, 951_782_400, 951_868_799, 4_107_542_400, 4_107_456_000, max]
        // Every month boundary from 1970 to 2500, a second either side (leap years, centuries).
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        for year in 1970...2500 {
            for month in 1...12 {
                let start = Int64(calendar.date(from: DateComponents(year: year, month: month, day: 1))!.timeIntervalSince1970)
                instants += [start - 1, start].filter { $0 >= 0 }
            }
        }
        for _ in 0..<20_000 { instants.append(Int64.random(in: 0...max, using: &generator)) }
        // Near now, where nearly every reset falls.
        for _ in 0..<20_000 { instants.append(Int64.random(in: 1_700_000_000...2_100_000_000, using: &generator)) }
        var failures: [String] = []
        for seconds in instants {
            let ours = RateLimitHeadersProbe.rfc3339(epochSeconds: seconds)
            let foundation = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
            if ours != foundation { failures.append("\(seconds): \(ours) vs \(foundation)") }
        }
        let examples = failures.prefix(5).joined(separator: "; ")
        #expect(failures.count == 0, "seed \(seed): \(instants.count) instants, these differ (ours vs Foundation's): \(examples)")
    }

    @Test("RFC 3339 resets round up to whole seconds and stay within four-digit years")
    func rfc3339Rounding() {
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: 0, plus: 0) == "1970-01-01T00:00:00Z")
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: 999, plus: 1) == "1970-01-01T00:00:01Z")
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: 1_000, plus: 1) == "1970-01-01T00:00:02Z")
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: Self.nowMs, plus: 750) == "2026-12-02T04:05:06Z")
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: Self.nowMs, plus: 751) == "2026-12-02T04:05:07Z")
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: Self.nowMs, plus: -5) == "2026-12-02T04:05:06Z")
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: 1_709_164_800_000 - 1, plus: 1) == "2024-02-29T00:00:00Z")
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: -10_000, plus: 0) == "1970-01-01T00:00:00Z")
        #expect(RateLimitHeadersProbe.rfc3339(nowMs: Int64.max, plus: Int.max) == "9999-12-31T23:59:59Z")
        #expect(RateLimitHeadersProbe.rfc3339(epochSeconds: Int64.min) == "1970-01-01T00:00:00Z")
    }

    // MARK: The dimension, from the script's reply to the state

    @Test("the decision script's states carry each limit's dimension")
    func decisionScriptCarriesCounts() throws {
        let limits = [
            Limit(name: "throttle", kind: .bucket(TokenBucket(rate: 1, burst: 5)), keySuffix: "t"),
            Limit(name: "itpm", kind: .bucket(TokenBucket(rate: 100, burst: 6_000)), keySuffix: "n:itpm", counts: .inputTokens),
            Limit(name: "otpm", kind: .bucket(TokenBucket(rate: 10, burst: 600)), keySuffix: "n:otpm", counts: .outputTokens),
            Limit(name: "tpd", kind: .quota(Quota(limit: 1_000_000, period: .day, offsetHours: 0)), keySuffix: "n:tpd", counts: .totalTokens),
            Limit(name: "budget", kind: .quota(Quota(limit: 500, period: .month, offsetHours: 0)), keySuffix: "n:budget", counts: .cost),
        ]
        var values: [Int64] = [1, Self.nowMs]
        for limit in limits { values += [Int64(limit.capacity - 1), 1_000, 0, 86_400, Int64(limit.capacity)] }
        let states = try DecisionScript.result(limits: limits, values: values).limits
        #expect(states.map(\.counts) == [.requests, .inputTokens, .outputTokens, .totalTokens, .cost])
        #expect(states.map(\.unit) == [.requests, .tokens, .tokens, .tokens, .cost])
    }
}
