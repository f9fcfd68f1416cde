import HTTPTypes
import SluiceCore

/// The rate-limit header fields of draft-ietf-httpapi-ratelimit-headers-10:
/// `RateLimit-Policy` and `RateLimit` (one list member per limit that applied), and
/// `Retry-After` when denied with a finite wait.
public enum RateLimitHeaders {
    /// `RateLimit-Policy`.
    public static let policy = HTTPField.Name("RateLimit-Policy")!
    /// `RateLimit`.
    public static let state = HTTPField.Name("RateLimit")!

    static let legacyLimit = HTTPField.Name("X-RateLimit-Limit")!
    static let legacyRemaining = HTTPField.Name("X-RateLimit-Remaining")!
    static let legacyReset = HTTPField.Name("X-RateLimit-Reset")!
    static let openAINames: [LimitUnit: (limit: HTTPField.Name, remaining: HTTPField.Name, reset: HTTPField.Name)] = [
        .requests: (
            HTTPField.Name("x-ratelimit-limit-requests")!, HTTPField.Name("x-ratelimit-remaining-requests")!,
            HTTPField.Name("x-ratelimit-reset-requests")!
        ),
        .tokens: (
            HTTPField.Name("x-ratelimit-limit-tokens")!, HTTPField.Name("x-ratelimit-remaining-tokens")!,
            HTTPField.Name("x-ratelimit-reset-tokens")!
        ),
    ]

    /// Adds the fields for a decision: the IETF fields always, the legacy and OpenAI sets when
    /// the plan asks. A decision with no limits (unknown key, degraded, unlimited) gets none.
    public static func add(for decision: Decision, styles: Set<HeaderStyle> = [.ietf], to headers: inout HTTPFields) {
        guard !decision.limits.isEmpty else { return }
        if styles.contains(.legacy) {
            headers[self.legacyLimit] = String(decision.limit)
            headers[self.legacyRemaining] = String(decision.remaining)
            headers[self.legacyReset] = String(self.seconds(decision.resetAfterMs))
        }
        if styles.contains(.openai) {
            for unit in [LimitUnit.requests, .tokens] {
                guard let names = self.openAINames[unit],
                    let state = Decision.mostConstraining(decision.limits.filter { $0.unit == unit })
                else { continue }
                headers[names.limit] = String(state.limit)
                headers[names.remaining] = String(state.remaining)
                headers[names.reset] = self.goDuration(milliseconds: state.resetAfterMs)
            }
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
            policy += ";q="
            policy += String(limit.policyQuota)
            policy += ";w="
            policy += String(limit.windowSeconds)
            if limit.unit == .tokens {
                // The draft's quota-unit registry has no unit for tokens (docs/ARCHITECTURE.md,
                // "Rate-limit headers"): an explicit unit, so no client reads it as requests.
                policy += #";qu="tokens""#
            }
            state += name
            state += ";r="
            state += String(limit.remaining)
            state += ";t="
            state += String(self.seconds(limit.resetAfterMs))
        }
        headers[self.policy] = policy
        headers[self.state] = state
        if !decision.allowed, decision.retryAfterMs > 0 {
            headers[.retryAfter] = String(self.seconds(decision.retryAfterMs))
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
