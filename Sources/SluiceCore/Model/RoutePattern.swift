/// A route key of the config, compiled: a method (or `*`) and path segments that
/// are literal, a `{parameter}` (one segment) or a trailing `*` (one or more segments).
public struct RoutePattern: Sendable, Hashable, CustomStringConvertible {
    /// One segment of a pattern's path.
    public enum Segment: Sendable, Hashable {
        /// Matches exactly this (normalised, percent-decoded) segment.
        case literal(String)
        /// `{name}`: matches any one segment.
        case parameter
        /// A trailing `*`: matches one or more remaining segments, across slashes.
        case wildcard
    }

    /// Upper-cased method, or nil for `*` (any method).
    public let method: String?
    /// The path's segments.
    public let segments: [Segment]

    /// Compiles a route key like `"POST /v1/models/{model}/predict"`, `"GET /v1/files/*"` or
    /// `"* /v1/embeddings"`.
    /// - Throws: ``ConfigIssue`` saying what is wrong.
    public init(_ text: String) throws(ConfigIssue) {
        let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].first == "/" else {
            throw ConfigIssue("route keys must look like \"POST /v1/predict\" (a method or *, one space, a path starting with /)")
        }
        if parts[0] == "*" {
            self.method = nil
        } else {
            guard RequestRoute("\(parts[0]) /") != nil else {
                throw ConfigIssue("\"\(parts[0])\" is not an HTTP method")
            }
            self.method = parts[0].uppercased()
        }
        let path = parts[1]
        if path.contains("?") || path.contains("#") || path.contains(" ") {
            throw ConfigIssue("a route's path holds no query string, fragment or space")
        }
        let raw = path.split(separator: "/", omittingEmptySubsequences: true)
        var segments: [Segment] = []
        for (index, piece) in raw.enumerated() {
            if piece == "*" {
                guard index == raw.count - 1 else {
                    throw ConfigIssue("* may only be the last segment of a route's path")
                }
                segments.append(.wildcard)
            } else if piece.hasPrefix("{") && piece.hasSuffix("}") && piece.count > 2 {
                segments.append(.parameter)
            } else if piece.contains("{") || piece.contains("}") || piece.contains("*") {
                throw ConfigIssue("a path parameter fills a whole segment, like /{model}/; * only ends a path")
            } else {
                segments.append(.literal(String(piece)))
            }
        }
        // Literals are normalised like request paths, so both sides compare equal.
        var normalised: [Segment] = []
        for segment in segments {
            guard case .literal(let text) = segment else {
                normalised.append(segment)
                continue
            }
            let decoded = PathNormalizer.decode(Substring(text))
            if decoded == "." { continue }
            if decoded == ".." {
                throw ConfigIssue("a route's path may not contain ..")
            }
            normalised.append(.literal(decoded))
        }
        self.segments = normalised
    }


    public var description: String {
        let path = self.segments.map { segment -> String in
            switch segment {
            case .literal(let text): return text
            case .parameter: return "{}"
            case .wildcard: return "*"
            }
        }.joined(separator: "/")
        return "\(self.method ?? "*") /\(path)"
    }

    /// Whether the pattern matches a request's method and normalised path segments.
    func matches(method: String, segments: [Substring]) -> Bool {
        if let own = self.method, own != method { return false }
        var index = 0
        for segment in self.segments {
            switch segment {
            case .literal(let text):
                guard index < segments.count, segments[index] == text else { return false }
                index += 1
            case .parameter:
                guard index < segments.count else { return false }
                index += 1
            case .wildcard:
                return index < segments.count
            }
        }
        return index == segments.count
    }

    /// Whether `self` is more specific than `other` for a path both match: segment by
    /// segment, literal > parameter > wildcard (so the longer fixed prefix wins among
    /// wildcards); then a named method over `*`. Nil when they tie.
    func isMoreSpecific(than other: RoutePattern) -> Bool? {
        func rank(_ segment: Segment?) -> Int {
            switch segment {
            case .literal: return 3
            case .parameter: return 2
            case .wildcard: return 1
            case nil: return 0
            }
        }
        let count = max(self.segments.count, other.segments.count)
        for index in 0..<count {
            let mine = rank(index < self.segments.count ? self.segments[index] : nil)
            let theirs = rank(index < other.segments.count ? other.segments[index] : nil)
            if mine != theirs { return mine > theirs }
        }
        if (self.method == nil) != (other.method == nil) {
            return self.method != nil
        }
        return nil
    }
}

/// Request-path normalisation shared by route patterns and requests: query and
/// fragment stripped, percent-decoding per segment, empty and `.` segments dropped,
/// `..` resolved (never above the root).
public enum PathNormalizer {
    /// The normalised segments of a path (query string and fragment ignored).
    public static func segments(_ path: some StringProtocol) -> [Substring] {
        var out: [Substring] = []
        var rest = Substring(path)
        if let cut = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            rest = rest[..<cut]
        }
        for raw in rest.split(separator: "/", omittingEmptySubsequences: true) {
            let segment = raw.contains("%") ? Substring(self.decode(raw)) : raw
            if segment.isEmpty || segment == "." { continue }
            if segment == ".." {
                _ = out.popLast()
                continue
            }
            out.append(segment)
        }
        return out
    }

    /// A segment with `%XX` escapes decoded; malformed escapes are kept as they are.
    static func decode(_ segment: Substring) -> String {
        guard segment.contains("%") else { return String(segment) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(segment.utf8.count)
        let utf8 = Array(segment.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%"), index + 2 < utf8.count,
                let high = Hex.value(utf8[index + 1]), let low = Hex.value(utf8[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
