/// A token bucket: starts full with `burst` tokens, refills at `rate` tokens a second.
public struct TokenBucket: Sendable, Hashable {
    /// Tokens added per second (may be fractional).
    public let rate: Double
    /// Size of the bucket.
    public let burst: Int

    /// Creates a bucket; validation happens in the config layer.
    public init(rate: Double, burst: Int) {
        self.rate = rate
        self.burst = burst
    }

    /// Microseconds to refill one token.
    public var emissionIntervalMicros: Double { 1_000_000 / self.rate }

    /// The policy window `w` of the rate-limit headers: max(1, ceil(burst / rate)) seconds.
    public var policyWindowSeconds: Int {
        max(1, Int((Double(self.burst) / self.rate).rounded(.up)))
    }

    /// The policy quota `q` over ``policyWindowSeconds``: what the bucket lets through in that
    /// long, never less than its burst nor than rate × window (a bucket whose rate exceeds its
    /// burst, rate 2/s burst 1, admits 2 a second, not 1). Rounded up, with slack for the
    /// binary error of fractional rates (0.01 × 200 is 2, not 3).
    public var policyQuota: Int {
        let sustained = (self.rate * Double(self.policyWindowSeconds) - 1e-9).rounded(.up)
        return max(self.burst, Int(min(sustained, 1e15)))
    }
}

/// How long a quota window lasts.
public enum QuotaPeriod: String, Sendable, Hashable, CaseIterable {
    case day
    case week
    case month

    /// The code the decision script takes.
    var scriptCode: String {
        switch self {
        case .day: return "d"
        case .week: return "w"
        case .month: return "m"
        }
    }
}

/// A calendar quota: `limit` units per day, week (from Monday) or month (from the 1st),
/// windows starting at `offsetHours` past midnight UTC.
public struct Quota: Sendable, Hashable {
    /// Units per window.
    public let limit: Int
    /// Window length.
    public let period: QuotaPeriod
    /// Hours after 00:00 UTC at which windows start (0–23).
    public let offsetHours: Int
    /// AWS's quota offset: units subtracted from the limit in a key's initial window, the
    /// window of its first request (admitted or not) that this quota counts (docs/ARCHITECTURE.md,
    /// "Quota initial offset").
    public let initialOffset: Int

    /// Creates a quota; validation happens in the config layer.
    public init(limit: Int, period: QuotaPeriod, offsetHours: Int, initialOffset: Int = 0) {
        self.limit = limit
        self.period = period
        self.offsetHours = offsetHours
        self.initialOffset = initialOffset
    }
}

/// What a limit counts, for headers that tell requests from tokens (OpenAI's).
public enum LimitUnit: String, Sendable, Hashable {
    case requests
    case tokens
    /// Cost units (a limit that counts `cost`).
    case cost
    /// Requests in flight (the concurrency limit).
    case concurrentRequests = "concurrent-requests"
}

/// Extra rate-limit header sets a plan may ask for, besides the IETF fields.
public enum HeaderStyle: String, Sendable, Hashable, CaseIterable {
    /// `RateLimit-Policy` and `RateLimit` (always sent).
    case ietf
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` of the most constraining limit.
    case legacy
    /// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, as OpenAI's API sends them.
    case openai
    /// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
    /// as Anthropic's API sends them (reset as an RFC 3339 time).
    case anthropic
}

/// One limit as it applies to requests: a named bucket or quota with its Redis key suffix.
public struct Limit: Sendable, Hashable {
    /// What the limit counts.
    public enum Kind: Sendable, Hashable {
        case bucket(TokenBucket)
        case quota(Quota)
    }

    /// The limit's public name: `throttle`, `quota` or ``routeName(_:)`` of the route key.
    public let name: String
    /// Bucket or quota.
    public let kind: Kind
    /// Suffix of its state key after `sl:{<id>}:`.
    public let keySuffix: String
    /// What its headers call its unit.
    public let unit: LimitUnit
    /// What a request takes from it: its cost in requests, or a dimension of its tokens.
    public let counts: Dimension
    /// Its six arguments to the ledger script (kind, three parameters, dimension, name), built once.
    let ledgerArgumentBytes: [[UInt8]]
    /// Its four arguments to the decision script and its key suffix, as bytes built once:
    /// nothing per request.
    let scriptArgumentBytes: [[UInt8]]
    let keySuffixBytes: [UInt8]

    /// Creates a limit.
    public init(name: String, kind: Kind, keySuffix: String, unit: LimitUnit = .requests, counts: Dimension = .requests) {
        self.name = name
        self.kind = kind
        self.keySuffix = keySuffix
        self.counts = counts
        self.unit = counts == .requests ? unit : counts.unit
        let arguments: [String]
        switch kind {
        case .bucket(let bucket):
            arguments = ["b", Self.format(bucket.emissionIntervalMicros), String(bucket.burst), "0"]
        case .quota(let quota):
            // "limit,initial offset" when there is one (prelude.lua's quota_limit reads both).
            let limit = quota.initialOffset > 0 ? "\(quota.limit),\(quota.initialOffset)" : String(quota.limit)
            arguments = ["q", limit, quota.period.scriptCode, String(quota.offsetHours * 3600)]
        }
        self.scriptArgumentBytes = arguments.map { Array($0.utf8) }
        self.ledgerArgumentBytes = (arguments + [counts.scriptCode, name]).map { Array($0.utf8) }
        self.keySuffixBytes = Array(keySuffix.utf8)
    }

    /// The public name of a route's limit: `route:` and the route key as configured, with every
    /// byte outside printable ASCII, and `%` itself, percent-encoded (`GET /café` →
    /// `route:GET /caf%C3%A9`). The same text in JSON and in the structured-field headers (which
    /// carry only printable ASCII), and distinct for distinct keys.
    /// On a stage of a plan that lists stages, the stage comes first: `route:mlApi/prod:POST /predict`.
    public static func routeName(_ key: String, stage: String? = nil) -> String {
        var name = "route:"
        let text = stage.map { "\($0):\(key)" } ?? key
        for byte in text.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                name.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                name.unicodeScalars.append("%")
                name.unicodeScalars.append(digits[Int(byte >> 4)])
                name.unicodeScalars.append(digits[Int(byte & 0xF)])
            }
        }
        return name
    }

    /// A plan's named limit (config `limits.<name>`), counting `counts`; its state key is
    /// `sl:{<id>}:n:<name>`.
    public static func named(_ name: String, kind: Kind, counts: Dimension) -> Limit {
        Limit(name: name, kind: kind, keySuffix: StateKeys.namedSuffix(name), counts: counts)
    }

    /// The limit's capacity: a bucket's burst or a quota's units per window.
    public var capacity: Int {
        switch self.kind {
        case .bucket(let bucket): return bucket.burst
        case .quota(let quota): return quota.limit
        }
    }

    private static func format(_ value: Double) -> String {
        if value == value.rounded(), value < 1e15 {
            return String(Int64(value))
        }
        return String(value)
    }
}
