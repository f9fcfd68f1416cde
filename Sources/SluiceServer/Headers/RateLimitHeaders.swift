import Foundation
import HTTPTypes
import SluiceCore

/// The rate-limit header fields of draft-ietf-httpapi-ratelimit-headers-10:
/// `RateLimit-Policy` and `RateLimit` (one list member per limit that applied), and
/// `Retry-After` when denied with a finite wait; and the legacy, OpenAI and Anthropic sets a
/// plan may ask for.
public enum RateLimitHeaders {
    /// `RateLimit-Policy`.
    public static let policy = HTTPField.Name("RateLimit-Policy")!
    /// `RateLimit`.
    public static let state = HTTPField.Name("RateLimit")!

    /// The three fields of one limit in a vendor's set: capacity, what is left, when it resets.
    struct Triple {
        let limit: HTTPField.Name
        let remaining: HTTPField.Name
        let reset: HTTPField.Name

        init(limit: String, remaining: String, reset: String) {
            self.limit = HTTPField.Name(limit)!
            self.remaining = HTTPField.Name(remaining)!
            self.reset = HTTPField.Name(reset)!
        }

        /// Anthropic's `<prefix>-limit`, `<prefix>-remaining`, `<prefix>-reset`.
        init(prefix: String) {
            self.init(limit: prefix + "-limit", remaining: prefix + "-remaining", reset: prefix + "-reset")
        }
    }

    static let legacyLimit = HTTPField.Name("X-RateLimit-Limit")!
    static let legacyRemaining = HTTPField.Name("X-RateLimit-Remaining")!
    static let legacyReset = HTTPField.Name("X-RateLimit-Reset")!
    static let openAIRequests = Triple(
        limit: "x-ratelimit-limit-requests", remaining: "x-ratelimit-remaining-requests", reset: "x-ratelimit-reset-requests"
    )
    static let openAITokens = Triple(
        limit: "x-ratelimit-limit-tokens", remaining: "x-ratelimit-remaining-tokens", reset: "x-ratelimit-reset-tokens"
    )
    static let anthropicRequests = Triple(prefix: "anthropic-ratelimit-requests")
    static let anthropicTokens = Triple(prefix: "anthropic-ratelimit-tokens")
    static let anthropicInputTokens = Triple(prefix: "anthropic-ratelimit-input-tokens")
    static let anthropicOutputTokens = Triple(prefix: "anthropic-ratelimit-output-tokens")

    /// Adds the fields for a decision: the IETF fields always, the legacy, OpenAI and Anthropic
    /// sets when the plan asks. A decision with no limits (unknown key, degraded, unlimited) gets
    /// none.
    /// - Parameters:
    ///   - decision: The decision.
    ///   - styles: The plan's header styles.
    ///   - wallClockMs: This instance's clock (ms since the epoch), read only for Anthropic's
    ///     reset times of a decision that has no Redis time (``Decision/nowMs`` nil).
    ///   - headers: Where the fields go.
    public static func add(
        for decision: Decision,
        styles: Set<HeaderStyle> = [.ietf],
        wallClockMs: () -> Int64 = RateLimitHeaders.wallClockMs,
        to headers: inout HTTPFields
    ) {
        guard !decision.limits.isEmpty else { return }
        if styles.contains(.legacy) {
            headers[self.legacyLimit] = String(decision.limit)
            headers[self.legacyRemaining] = String(decision.remaining)
            headers[self.legacyReset] = String(self.seconds(decision.resetAfterMs))
        }
        if styles.contains(.openai) {
            // Cost and concurrency limits have no OpenAI field: only requests and tokens.
            if let state = Decision.mostConstraining(decision.limits.filter({ $0.unit == .requests })) {
                self.addOpenAI(state, self.openAIRequests, to: &headers)
            }
            if let state = Decision.mostConstraining(decision.limits.filter({ $0.unit == .tokens })) {
                self.addOpenAI(state, self.openAITokens, to: &headers)
            }
        }
        if styles.contains(.anthropic) {
            self.addAnthropic(decision, wallClockMs: wallClockMs, to: &headers)
        }
        var policy = ""
        var state = ""
        policy.reserveCapacity(48 * decision.limits.count)
        state.reserveCapacity(48 * decision.limits.count)
        for (index, limit) in decision.limits.enumerated() {
            if index > 0 {
                policy += ", "
                state += ", "
            }
            let name = self.sfString(limit.name)
            policy += name
            state += name
            state += ";r="
            state += String(limit.remaining)
            if limit.unit == .concurrentRequests {
                // Requests in flight: a quota with no window, and a reset only while a lease it
                // waits for is still held.
                policy += ";q="
                policy += String(limit.limit)
                policy += #";qu="concurrent-requests""#
                if limit.resetAfterMs > 0 {
                    state += ";t="
                    state += String(self.seconds(limit.resetAfterMs))
                }
                continue
            }
            policy += ";q="
            policy += String(limit.policyQuota)
            policy += ";w="
            policy += String(limit.windowSeconds)
            switch limit.unit {
            case .tokens:
                // The draft's quota-unit registry has no unit for tokens (docs/ARCHITECTURE.md,
                // "Rate-limit headers"): an explicit unit, so no client reads it as requests.
                policy += #";qu="tokens""#
            case .cost:
                // Nor for cost units: the same reasoning, outside the registry too.
                policy += #";qu="cost""#
            case .requests, .concurrentRequests:
                break
            }
            state += ";t="
            state += String(self.seconds(limit.resetAfterMs))
        }
        headers[self.policy] = policy
        headers[self.state] = state
        if !decision.allowed, decision.retryAfterMs > 0 {
            headers[.retryAfter] = String(self.seconds(decision.retryAfterMs))
        }
    }

    private static func addOpenAI(_ state: LimitState, _ names: Triple, to headers: inout HTTPFields) {
        headers[names.limit] = String(state.limit)
        headers[names.remaining] = String(state.remaining)
        headers[names.reset] = self.goDuration(milliseconds: state.resetAfterMs)
    }

    /// Anthropic's set: requests, all tokens, input tokens, output tokens; each the most
    /// constraining of its limits, its reset an RFC 3339 time counted from Redis's clock.
    private static func addAnthropic(_ decision: Decision, wallClockMs: () -> Int64, to headers: inout HTTPFields) {
        var nowMs = decision.nowMs
        func add(_ state: LimitState?, _ names: Triple) {
            guard let state else { return }
            let now: Int64
            if let known = nowMs {
                now = known
            } else {
                now = wallClockMs()
                nowMs = now
            }
            headers[names.limit] = String(state.limit)
            headers[names.remaining] = String(state.remaining)
            headers[names.reset] = self.rfc3339(resetAtMs: now, plus: state.resetAfterMs)
        }
        let limits = decision.limits
        add(Decision.mostConstraining(limits.filter { $0.unit == .requests }), self.anthropicRequests)
        add(Decision.mostConstraining(limits.filter { $0.unit == .tokens }), self.anthropicTokens)
        add(Decision.mostConstraining(limits.filter { $0.counts == .inputTokens }), self.anthropicInputTokens)
        add(Decision.mostConstraining(limits.filter { $0.counts == .outputTokens }), self.anthropicOutputTokens)
    }

    /// This instance's wall clock, in milliseconds since the epoch.
    public static func wallClockMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// The latest second an RFC 3339 time can name (9999-12-31T23:59:59Z).
    static let maxRFC3339Seconds: Int64 = 253_402_300_799

    /// `nowMs + afterMs` as an RFC 3339 UTC time in whole seconds, rounded up so that it is never
    /// before the real reset (`2026-12-02T04:05:06Z`). Clamped to 1970 … 9999.
    static func rfc3339(resetAtMs nowMs: Int64, plus afterMs: Int) -> String {
        let (sum, overflow) = nowMs.addingReportingOverflow(Int64(max(0, afterMs)))
        let ms = overflow ? Int64.max : sum
        let seconds = ms <= 0 ? 0 : ms / 1000 + (ms % 1000 > 0 ? 1 : 0)
        return self.rfc3339(epochSeconds: seconds)
    }

    /// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`, by arithmetic (Howard Hinnant's
    /// `civil_from_days`), not a date formatter: it runs on every answer of an Anthropic plan.
    /// Clamped to 1970-01-01T00:00:00Z … 9999-12-31T23:59:59Z (four-digit years).
    static func rfc3339(epochSeconds: Int64) -> String {
        let seconds = min(max(epochSeconds, 0), self.maxRFC3339Seconds)
        let days = seconds / 86_400
        let secondOfDay = Int(seconds % 86_400)
        // Days since 0000-03-01, eras of 400 years (146 097 days); non-negative here.
        let shifted = days + 719_468
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153  // March = 0
        let day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        let month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        let year = Int(yearOfEra + era * 400 + (month <= 2 ? 1 : 0))
        return String(unsafeUninitializedCapacity: 20) { buffer in
            func put(_ value: Int, digits: Int, at offset: Int) {
                var value = value
                for index in stride(from: offset + digits - 1, through: offset, by: -1) {
                    buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                }
            }
            put(year, digits: 4, at: 0)
            buffer[4] = UInt8(ascii: "-")
            put(month, digits: 2, at: 5)
            buffer[7] = UInt8(ascii: "-")
            put(day, digits: 2, at: 8)
            buffer[10] = UInt8(ascii: "T")
            put(secondOfDay / 3600, digits: 2, at: 11)
            buffer[13] = UInt8(ascii: ":")
            put(secondOfDay / 60 % 60, digits: 2, at: 14)
            buffer[16] = UInt8(ascii: ":")
            put(secondOfDay % 60, digits: 2, at: 17)
            buffer[19] = UInt8(ascii: "Z")
            return 20
        }
    }

    /// A duration as Go prints it (`20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`), as OpenAI's headers use.
    static func goDuration(milliseconds: Int) -> String {
        guard milliseconds > 0 else { return "0s" }
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let hours = milliseconds / 3_600_000
        let minutes = milliseconds / 60_000 % 60
        let seconds = milliseconds / 1000 % 60
        let millis = milliseconds % 1000
        var out = ""
        if hours > 0 { out += "\(hours)h" }
        if hours > 0 || minutes > 0 { out += "\(minutes)m" }
        out += String(seconds)
        if millis > 0 {
            var fraction = String(millis)
            fraction = String(repeating: "0", count: 3 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            out += "." + fraction
        }
        return out + "s"
    }

    /// Milliseconds as whole seconds, rounded up.
    static func seconds(_ milliseconds: Int) -> Int {
        milliseconds <= 0 ? 0 : milliseconds / 1000 + (milliseconds % 1000 > 0 ? 1 : 0)
    }

    /// A structured-field string (RFC 8941 §3.3.3): quoted, `"` and `\` escaped. Limit names are
    /// printable ASCII (``Limit/routeName(_:)`` escapes the rest); anything else would be
    /// replaced.
    static func sfString(_ value: String) -> String {
        // Names are nearly always printable ASCII without quotes or backslashes: one copy.
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            return "\"" + value + "\""
        }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case " "..."~": out.unicodeScalars.append(scalar)
            default: out += "?"
            }
        }
        return out + "\""
    }
}
