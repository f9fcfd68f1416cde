/// Names of the Redis keys that hold one API key's limit state.
///
/// Every name carries the key id as its hash tag (`sl:{<id>}:...`), so all of a
/// caller's state lives in one Redis Cluster slot and one script can touch it
/// (docs/ARCHITECTURE.md, invariant 4). No name holds a raw API key (invariant 6).
public enum StateKeys {
    /// `sl:{<id>}:`, the prefix of every state key of one API key.
    public static func prefix(keyID: String) -> String {
        "sl:{" + keyID + "}:"
    }

    /// Suffix of the plan throttle's bucket.
    public static let throttleSuffix = "t"
    /// Suffix of the quota's counter.
    public static let quotaSuffix = "q"

    /// Suffix of the per-day usage record (a hash of day → units admitted).
    public static let usageSuffix = "u"

    /// Suffix of a plan's named limit (`limits.<name>`; names are `[a-z0-9_-]`, so no two collide
    /// and none meets another suffix).
    public static func namedSuffix(_ name: String) -> String {
        "n:" + name
    }

    /// Suffix of a reservation's record (`v:` and the reservation's random part).
    public static let reservationPrefix = "v:"
    /// Suffix of the sorted set of a key's open reservations, scored by expiry (ms).
    public static let reservationsSuffix = "vz"
    /// Suffix of the sorted set of a key's leases (concurrency), scored by expiry (ms).
    public static let leasesSuffix = "lz"
    /// Suffix of an idempotency key's entry (`i:` and a digest of the idempotency key).
    public static let idempotencyPrefix = "i:"
    /// Suffix of the per-day token usage record (a hash of `<day>:<dimension>` → units).
    public static let tokenUsageSuffix = "tu"

    /// Suffix of a route's bucket: a short digest of the route's normalised pattern,
    /// so a long or odd route never lands in a key name.
    public static func routeSuffix(normalizedRoute: String) -> String {
        "r:" + Base64URL.encode(Array(KeyDigester.sha256(of: normalizedRoute).prefix(6)))
    }
}
