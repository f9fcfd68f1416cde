/// What a limit counts (config `counts`): requests, or one dimension of a language model's usage
/// (docs/ARCHITECTURE.md, "Token limits, reservations and leases").
public enum Dimension: String, Sendable, Hashable, CaseIterable {
    /// Requests, each weighing its `cost` (1 by default), as every limit did before token limits.
    case requests
    /// Input (prompt) tokens, cached input included.
    case inputTokens = "input_tokens"
    /// Output (completion) tokens.
    case outputTokens = "output_tokens"
    /// Input + output tokens.
    case totalTokens = "total_tokens"
    /// Cost units: the ceiling of Σ tokens × price, with the model's prices.
    case cost

    /// The one-letter code the ledger script takes.
    var scriptCode: String {
        switch self {
        case .requests: return "r"
        case .inputTokens: return "i"
        case .outputTokens: return "o"
        case .totalTokens: return "t"
        case .cost: return "c"
        }
    }

    /// The unit its headers report.
    public var unit: LimitUnit {
        switch self {
        case .requests: return .requests
        case .inputTokens, .outputTokens, .totalTokens: return .tokens
        case .cost: return .cost
        }
    }
}

/// Token counts of one request: an estimate before the call or the usage after it.
public struct TokenCounts: Sendable, Hashable {
    /// Input tokens, cached input included.
    public var inputTokens: Int
    /// Output tokens.
    public var outputTokens: Int
    /// The part of `inputTokens` read from a prompt cache (priced at `cached_input`).
    public var cachedInputTokens: Int

    /// Creates counts.
    public init(inputTokens: Int = 0, outputTokens: Int = 0, cachedInputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cachedInputTokens = cachedInputTokens
    }

    /// No tokens.
    public static let zero = TokenCounts()

    /// Input + output.
    public var totalTokens: Int { self.inputTokens + self.outputTokens }
}

/// A model's prices, in cost units per token, kept as whole millionths (so that `2.5` is
/// exact and the script's arithmetic is integral).
public struct ModelPrice: Sendable, Hashable {
    /// Millionths of a cost unit per input token (not cached).
    public let inputMicros: Int64
    /// Millionths of a cost unit per output token.
    public let outputMicros: Int64
    /// Millionths of a cost unit per cached input token.
    public let cachedInputMicros: Int64

    /// Creates a price from millionths.
    public init(inputMicros: Int64, outputMicros: Int64, cachedInputMicros: Int64) {
        self.inputMicros = inputMicros
        self.outputMicros = outputMicros
        self.cachedInputMicros = cachedInputMicros
    }

    /// Creates a price from cost units per token (rounded to millionths); `cachedInput`
    /// defaults to `input`.
    public init(input: Double, output: Double, cachedInput: Double? = nil) {
        self.init(
            inputMicros: Self.micros(input), outputMicros: Self.micros(output),
            cachedInputMicros: Self.micros(cachedInput ?? input)
        )
    }

    /// The price that charges nothing (a plan without cost limits).
    public static let free = ModelPrice(inputMicros: 0, outputMicros: 0, cachedInputMicros: 0)

    /// Largest accepted price, in cost units per token.
    public static let maxPrice: Double = 1_000_000

    static func micros(_ value: Double) -> Int64 { Int64((value * 1_000_000).rounded()) }

    /// The cost units of some usage: ⌈Σ tokens × price⌉ (the same arithmetic as the ledger
    /// script's `cost_of`, for callers that show an amount before Redis does).
    public func cost(of tokens: TokenCounts) -> Int {
        // 128 bits: a trillion tokens at a million units each still fits.
        let uncached = Int128(max(0, tokens.inputTokens - tokens.cachedInputTokens))
        let micros =
            uncached * Int128(self.inputMicros) + Int128(tokens.cachedInputTokens) * Int128(self.cachedInputMicros)
            + Int128(tokens.outputTokens) * Int128(self.outputMicros)
        return Int(clamping: (micros + 999_999) / 1_000_000)
    }
}

/// A plan's concurrency limit: requests in flight across the fleet, each holding a lease
/// that a settle, a cancel or its expiry gives back.
public struct ConcurrencyLimit: Sendable, Hashable {
    /// Most leases held at once.
    public let limit: Int
    /// A lease not renewed within this many milliseconds is free again.
    public let leaseTTLMs: Int

    /// Creates a limit; validation happens in the config layer.
    public init(limit: Int, leaseTTLMs: Int) {
        self.limit = limit
        self.leaseTTLMs = leaseTTLMs
    }

    /// The name decisions and headers give it.
    public static let name = "concurrency"
}
