/// A route as `"METHOD /path"`: the method upper-cased, the path without query or fragment.
public struct RequestRoute: Sendable, Hashable, CustomStringConvertible {
    /// Upper-cased HTTP method.
    public let method: String
    /// Path, starting with `/`, query string and fragment removed.
    public let path: String
    /// The path's normalised segments (percent-decoded, `.`, `..` and empty segments resolved).
    public let segments: [Substring]

    /// Parses `"METHOD /path"`; nil if it is not of that form.
    ///
    /// The method is an HTTP token (letters, digits and `!#$%&'*+-.^_|~`), matched
    /// case-insensitively; the path starts with `/` and holds no spaces or controls.
    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard let space = utf8.firstIndex(of: UInt8(ascii: " ")), space > 0 else { return nil }
        let methodBytes = utf8[..<space]
        guard methodBytes.allSatisfy(Self.isTokenByte) else { return nil }
        var pathBytes = utf8[(space + 1)...]
        guard pathBytes.first == UInt8(ascii: "/") else { return nil }
        if let cut = pathBytes.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            pathBytes = pathBytes[..<cut]
        }
        guard pathBytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        self.method = String(decoding: methodBytes, as: UTF8.self).uppercased()
        self.path = String(decoding: pathBytes, as: UTF8.self)
        self.segments = PathNormalizer.segments(self.path)
    }

    /// A route from a method and a request target (`/path?query`), as gateways forward them.
    public init?(method: some StringProtocol, target: some StringProtocol) {
        self.init("\(method) \(target)")
    }

    /// Bytes of `text` before any query string or fragment: what bounds a route's length,
    /// since the query plays no part in matching.
    public static func matchedLength(of text: some StringProtocol) -> Int {
        var count = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") { break }
            count += 1
        }
        return count
    }

    /// `"METHOD /path"`.
    public var description: String { self.method + " " + self.path }

    public static func == (lhs: RequestRoute, rhs: RequestRoute) -> Bool {
        lhs.method == rhs.method && lhs.path == rhs.path
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.method)
        hasher.combine(self.path)
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return Array("!#$%&'*+-.^_|~".utf8).contains(byte)
        }
    }
}
