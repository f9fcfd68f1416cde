import Foundation

/// A parsed `redis://[user:password@]host[:port][/db]` URL (`rediss://`: the same over TLS).
public struct RedisURL: Sendable, Hashable, CustomStringConvertible {
    /// Whether the scheme is `rediss://`, which turns TLS on.
    public let tls: Bool
    /// Host name or address (IPv6 without brackets).
    public let host: String
    /// TCP port (default 6379).
    public let port: Int
    /// ACL user for AUTH, if any.
    public let username: String?
    /// Password for AUTH, if any.
    public let password: String?
    /// Database index for SELECT (default 0).
    public let database: Int

    /// Parses a URL.
    /// - Throws: a message saying what is wrong.
    public init(_ text: String) throws(ConfigIssue) {
        guard let schemeEnd = text.range(of: "://") else {
            throw ConfigIssue("must look like redis://[user:password@]host:port/db")
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "redis" || scheme == "rediss" else {
            throw ConfigIssue("scheme must be redis:// or rediss:// (TLS), not \(scheme)://")
        }
        var rest = Substring(text[schemeEnd.upperBound...])
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let db = Int(path), db >= 0 else {
                    throw ConfigIssue("database must be a non-negative integer, not \"\(path)\"")
                }
                database = db
            }
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = Self.percentDecoded(userinfo[..<colon])
                username = user.isEmpty ? nil : user
                password = Self.percentDecoded(userinfo[userinfo.index(after: colon)...])
            } else if !userinfo.isEmpty {
                // redis://secret@host: a password alone, as redis-cli reads it.
                password = Self.percentDecoded(userinfo)
            }
        }
        var host = rest
        var port = 6379
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw ConfigIssue("unclosed [ in IPv6 host") }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                    throw ConfigIssue("port must be 1-65535")
                }
                port = p
            }
        } else if let colon = host.lastIndex(of: ":") {
            guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else {
                throw ConfigIssue("port must be 1-65535")
            }
            port = p
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw ConfigIssue("host is missing") }
        self.tls = scheme == "rediss"
        self.host = String(host)
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// The URL with the password masked, for logs.
    public var description: String {
        var auth = ""
        if self.password != nil {
            auth = (self.username ?? "") + ":***@"
        }
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(self.tls ? "rediss" : "redis")://\(auth)\(host):\(self.port)/\(self.database)"
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let decoded = Hex.decode(String(decoding: [high, low], as: UTF8.self))
            {
                bytes.append(decoded[0])
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
