import Foundation

/// The admin API's request and response bodies (`/admin/v1`, described in
/// `openapi/sluice.yaml`), typed once for the server that encodes them and the clients (the
/// `sluice` CLI) that decode them.
///
/// Only Foundation: a client needs neither the server nor the config layer to speak the
/// API. Field names are the API's (`snake_case`, through each type's `CodingKeys`); a field
/// the document marks nullable and required is written as `null` when absent, one it marks
/// optional is left out.
public enum AdminAPI {
    /// The encoder for admin bodies: keys sorted (the same bytes for the same value, on every
    /// platform), `/` unescaped (route keys and paths read as written).
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// The decoder for admin bodies (Foundation's defaults: unknown fields are ignored, `null`
    /// counts as absent for an optional field).
    public static func decoder() -> JSONDecoder {
        JSONDecoder()
    }

    /// Where a key is declared.
    public enum KeySource: String, Codable, Sendable, Hashable, CaseIterable {
        /// In the config file's `api_keys`.
        case config
        /// Created through the admin API, kept in Redis's registry.
        case runtime
    }

    /// A quota's calendar period.
    public enum QuotaPeriod: String, Codable, Sendable, Hashable, CaseIterable {
        /// From 00:00 UTC plus the quota's offset.
        case day
        /// From Monday at that hour.
        case week
        /// From the 1st at that hour.
        case month
    }
}
