import HTTPTypes
import SluiceCore

/// Gateways' tokens (`server.client_tokens_sha256`): when any is configured, every decision
/// endpoint needs one in `X-Sluice-Token` (not `Authorization`, which may carry the caller's
/// API key), compared as a SHA-256 digest in constant time.
enum ClientTokens {
    static let header = HTTPField.Name("X-Sluice-Token")!

    /// Checks the request's client token.
    /// - Throws: ``APIError`` 401 `missing_client_token` or `invalid_client_token`.
    static func verify(_ headers: HTTPFields, snapshot: ConfigStore.Snapshot) throws {
        let digests = snapshot.config.clientTokenDigests
        if digests.isEmpty { return }
        guard let token = headers[self.header], !token.isEmpty else {
            throw APIError(.unauthorized, code: "missing_client_token", message: "send the gateway's token in X-Sluice-Token")
        }
        guard BearerTokens.matches(token, digests: digests) else {
            throw APIError(.unauthorized, code: "invalid_client_token", message: "the X-Sluice-Token is not valid")
        }
    }
}

/// Token checks shared by the admin API and client tokens.
enum BearerTokens {
    /// The credential of an `Authorization: Bearer <credential>` value (scheme case-insensitive);
    /// nil for another scheme or none.
    static func credential(in authorization: String) -> Substring? {
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1]
    }

    /// Whether `token`'s SHA-256 is one of `digests`. Every digest is compared in full,
    /// whatever matches: the time does not tell which, nor how much of one, matched.
    static func matches(_ token: String, digests: [[UInt8]]) -> Bool {
        let presented = KeyDigester.sha256(of: token)
        var matched = false
        for digest in digests where self.constantTimeEqual(digest, presented) {
            matched = true
        }
        return matched
    }

    /// Byte-wise equality whose time depends only on the lengths.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
