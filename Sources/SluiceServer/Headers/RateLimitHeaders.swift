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

    /// Adds the fields for a decision. A decision with no limits (unknown key,
    /// degraded, unlimited) gets none.
    public static func add(for decision: Decision, to headers: inout HTTPFields) {
        guard !decision.limits.isEmpty else { return }
        var policy = ""
        var state = ""
        for (index, limit) in decision.limits.enumerated() {
            if index > 0 {
                policy += ", "
                state += ", "
            }
            let name = self.sfString(limit.name)
            policy += "\(name);q=\(limit.limit);w=\(limit.windowSeconds)"
            state += "\(name);r=\(limit.remaining);t=\(self.seconds(limit.resetAfterMs))"
        }
        headers[self.policy] = policy
        headers[self.state] = state
        if !decision.allowed, decision.retryAfterMs > 0 {
            headers[.retryAfter] = String(self.seconds(decision.retryAfterMs))
        }
    }

    /// Milliseconds as whole seconds, rounded up.
    static func seconds(_ milliseconds: Int) -> Int {
        milliseconds <= 0 ? 0 : (milliseconds + 999) / 1000
    }

    /// A structured-field string (RFC 8941 §3.3.3): quoted, `"` and `\` escaped,
    /// anything outside printable ASCII replaced.
    static func sfString(_ value: String) -> String {
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
