import HTTPTypes

/// Every path Sluice serves and the methods each takes, so that a known path asked with
/// another method gets 405 with `Allow` (RFC 9110) rather than the router's 404.
enum KnownRoutes {
    /// Path patterns by segment (`*` one segment, `**` the rest, at least one) and their methods.
    static let table: [(segments: [Substring], methods: [HTTPRequest.Method])] = [
        (["v1", "check"], [.post]),
        (["v1", "check", "batch"], [.post]),
        (["v1", "reserve"], [.post]),
        (["v1", "settle"], [.post]),
        (["v1", "reservations", "*"], [.delete]),
        (["v1", "reservations", "*", "renew"], [.post]),
        (["v1", "auth"], AuthRoute.methods),
        (["v1", "auth", "**"], AuthRoute.methods),
        (["healthz"], [.get]),
        (["readyz"], [.get]),
        (["metrics"], [.get]),
        (["admin", "v1", "plans"], [.get]),
        (["admin", "v1", "reload"], [.post]),
        (["admin", "v1", "keys"], [.get, .post]),
        (["admin", "v1", "keys", "lookup"], [.post]),
        (["admin", "v1", "keys", "*"], [.get, .put, .delete]),
        (["admin", "v1", "keys", "*", "state"], [.get, .delete]),
        (["admin", "v1", "keys", "*", "state", "reset"], [.post]),
        (["admin", "v1", "keys", "*", "quota"], [.post]),
        (["admin", "v1", "keys", "*", "usage"], [.get]),
    ]

    /// The methods a path takes, or nil for a path Sluice does not serve. The most specific
    /// pattern wins (`keys/lookup` over `keys/*`).
    static func methods(forPath path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        var best: (literals: Int, methods: [HTTPRequest.Method])?
        for (pattern, methods) in self.table where self.matches(pattern, segments) {
            let literals = pattern.filter { $0 != "*" && $0 != "**" }.count
            if best == nil || literals > best!.literals {
                best = (literals, methods)
            }
        }
        return best?.methods
    }

    private static func matches(_ pattern: [Substring], _ segments: [Substring]) -> Bool {
        if pattern.last == "**" {
            guard segments.count >= pattern.count else { return false }
        } else if segments.count != pattern.count {
            return false
        }
        for (index, part) in pattern.enumerated() where part != "**" {
            if part != "*" && part != segments[index] { return false }
        }
        return true
    }
}
