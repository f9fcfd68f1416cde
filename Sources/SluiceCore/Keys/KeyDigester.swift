import Crypto

/// Turns API keys into key ids: HMAC-SHA-256, under the server secret, of the
/// key's SHA-256 (docs/ARCHITECTURE.md, invariant 6). A config entry given as `key_sha256` gets
/// the same id as the raw key, and a Redis dump does not reveal short keys.
public struct KeyDigester: Sendable {
    /// The built-in secret used when `SLUICE_KEY_SECRET` is unset (with a warning).
    public static let defaultSecret = "sluice-default-key-secret-change-me"

    private let secret: [UInt8]

    /// Creates a digester with a server secret (the same on every instance).
    public init(secret: String) {
        self.secret = Array(secret.utf8)
    }

    /// SHA-256 of an API key.
    public static func sha256(of apiKey: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(apiKey.utf8)))
    }

    /// Lower-case hex SHA-256 of an API key.
    public static func sha256Hex(of apiKey: String) -> String {
        Hex.encode(self.sha256(of: apiKey))
    }

    /// The key id of a raw API key.
    public func keyID(apiKey: String) -> String {
        self.keyID(sha256: Self.sha256(of: apiKey))
    }

    /// The key id of a key known by its SHA-256 (32 bytes).
    /// 120 bits of the HMAC, base64url: 20 characters, short in every Redis key name.
    public func keyID(sha256 digest: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: digest, using: SymmetricKey(data: self.secret))
        return Base64URL.encode(Array(Array(mac).prefix(15)))
    }
}

/// Lower-case hexadecimal.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    /// Hex of bytes.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(self.digits[Int(byte >> 4)])
            out.append(self.digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Bytes of a hex string (either case); nil if it is not hex of whole bytes.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = self.value(chars[index]), let low = self.value(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    /// The value of one hex digit (either case); nil for anything else.
    static func value(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return char - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// Unpadded base64url (RFC 4648 §5): safe in URLs, Redis key names and logs.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Whether `byte` is one of the alphabet's characters.
    public static func isAlphabet(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }

    /// Encodes bytes without padding.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out.append(self.alphabet[Int(n >> 18 & 63)])
            out.append(self.alphabet[Int(n >> 12 & 63)])
            out.append(self.alphabet[Int(n >> 6 & 63)])
            out.append(self.alphabet[Int(n & 63)])
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let n = UInt32(bytes[index]) << 16
            out.append(self.alphabet[Int(n >> 18 & 63)])
            out.append(self.alphabet[Int(n >> 12 & 63)])
        } else if rest == 2 {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out.append(self.alphabet[Int(n >> 18 & 63)])
            out.append(self.alphabet[Int(n >> 12 & 63)])
            out.append(self.alphabet[Int(n >> 6 & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
