import SluiceCore
import Testing

@Suite("Route patterns")
struct RoutePatternTests {
    static let plan: Plan = {
        let keys = [
            "POST /v1/predict",
            "POST /v1/models/{model}/predict",
            "POST /v1/models/special/predict",
            "* /v1/models/special/predict",
            "GET /v1/files/*",
            "GET /v1/files/public/*",
            "GET /v1/*",
            "* /v1/embeddings",
            "POST /v1/embeddings",
            "GET /v1/files/{id}",
            "* /static/caf%C3%A9",
        ]
        let rules = keys.map { key in
            RouteRule(key: key, pattern: try! RoutePattern(key), bucket: TokenBucket(rate: 1, burst: 1), additional: false)
        }
        return Plan(name: "p", throttle: TokenBucket(rate: 1, burst: 1), quota: nil, routes: rules, onBackendError: .deny)
    }()

    func match(_ route: String) -> String? {
        guard let parsed = RequestRoute(route) else { return "invalid" }
        return Self.plan.rule(for: parsed)?.key
    }

    @Test(
        "the most specific pattern wins",
        arguments: [
            ("POST /v1/predict", "POST /v1/predict"),
            ("post /v1/predict?stream=true", "POST /v1/predict"),
            ("POST /v1/predict/", "POST /v1/predict"),
            ("POST //v1///predict", "POST /v1/predict"),
            ("POST /v1/./predict", "POST /v1/predict"),
            ("POST /v1/x/../predict", "POST /v1/predict"),
            ("POST /../../v1/predict", "POST /v1/predict"),
            ("POST /v1/%70redict", "POST /v1/predict"),
            ("POST /v1/models/gpt-4/predict", "POST /v1/models/{model}/predict"),
            ("POST /v1/models/gpt%2F4/predict", "POST /v1/models/{model}/predict"),
            ("POST /v1/models/special/predict", "POST /v1/models/special/predict"),
            ("PUT /v1/models/special/predict", "* /v1/models/special/predict"),
            ("PUT /v1/models/other/predict", nil),
            ("GET /v1/files/a", "GET /v1/files/{id}"),
            ("GET /v1/files/a/b/c", "GET /v1/files/*"),
            ("GET /v1/files/public/a/b", "GET /v1/files/public/*"),
            ("GET /v1/files/public", "GET /v1/files/{id}"),
            ("GET /v1/files", "GET /v1/*"),
            ("GET /v1/anything/else", "GET /v1/*"),
            ("GET /v1", nil),
            ("GET /v1/", nil),
            ("POST /v1/embeddings", "POST /v1/embeddings"),
            ("DELETE /v1/embeddings", "* /v1/embeddings"),
            ("GET /v1/embeddings", "* /v1/embeddings"),  // path first: exact beats a wildcard
            ("GET /static/café", "* /static/caf%C3%A9"),
            ("GET /static/caf%c3%a9", "* /static/caf%C3%A9"),
            ("POST /v1/predict%", nil),
            ("POST /v2/predict", nil),
        ] as [(String, String?)]
    )
    func mostSpecific(route: String, expected: String?) {
        #expect(self.match(route) == expected, "\(route)")
    }

    @Test("a very long path is matched without trouble")
    func longPath() {
        let long = "GET /v1/files/" + Array(repeating: "segment", count: 5000).joined(separator: "/")
        #expect(self.match(long) == "GET /v1/files/*")
        let dots = "GET /v1/files/" + String(repeating: "../", count: 3000) + "v1/files/x"
        #expect(self.match(dots) == "GET /v1/files/{id}")
    }

    @Test("specificity: path first, then method")
    func ordering() throws {
        let exactAny = try RoutePattern("* /a/b")
        let paramNamed = try RoutePattern("GET /a/{x}")
        #expect(exactAny.isMoreSpecificForTesting(than: paramNamed) == true)
        let shortWildcard = try RoutePattern("GET /a/*")
        let longWildcard = try RoutePattern("GET /a/b/*")
        #expect(longWildcard.isMoreSpecificForTesting(than: shortWildcard) == true)
        #expect(try RoutePattern("GET /a/{x}").isMoreSpecificForTesting(than: try RoutePattern("GET /a/{y}")) == nil)
    }

    @Test("bad patterns are refused", arguments: ["GET /a/*/b", "GET /a/{x", "GET /a/b{x}", "/a", "GET a", "GET /a?x=1", "G@T /a", "GET /a/../b"])
    func badPatterns(text: String) {
        #expect(throws: ConfigIssue.self) { try RoutePattern(text) }
    }

    @Test("path normalisation")
    func normalisation() {
        #expect(PathNormalizer.segments("/a//b/./c/../d?x=/y#z") == ["a", "b", "d"])
        #expect(PathNormalizer.segments("/%61%2Fb") == ["a/b"])
        #expect(PathNormalizer.segments("/%zz/%4") == ["%zz", "%4"])
        #expect(PathNormalizer.segments("/") == [])
    }
}

extension RoutePattern {
    /// Which of two patterns a plan picks for a path both match, whatever their order in the
    /// config: true for `self`, false for `other`, nil when the choice depends on the order (a tie).
    func isMoreSpecificForTesting(than other: RoutePattern) -> Bool? {
        func plan(_ patterns: [(String, RoutePattern)]) -> Plan {
            Plan(
                name: "t", throttle: nil, quota: nil,
                routes: patterns.map { RouteRule(key: $0.0, pattern: $0.1, bucket: TokenBucket(rate: 1, burst: 1), additional: false) },
                onBackendError: .deny
            )
        }
        // A path both match, built from the literals, with "x" for parameters and wildcards.
        let path = "/" + self.segments.map { segment -> String in
            if case .literal(let text) = segment { return text }
            return "x"
        }.joined(separator: "/")
        let route = RequestRoute("\(self.method ?? other.method ?? "GET") \(path)")!
        let a = plan([("a", self), ("b", other)]).rule(for: route)?.key
        let b = plan([("b", other), ("a", self)]).rule(for: route)?.key
        if a == "a" && b == "a" { return true }
        if a == "b" && b == "b" { return false }
        return nil
    }
}
