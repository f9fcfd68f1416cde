/// The inputs and outputs of the ledger script (`ledger.lua`, beside this file): decisions of
/// plans with token limits or a concurrency limit, and reservations (reserve, settle, renew,
/// cancel, charge after the fact). docs/ARCHITECTURE.md, "Token limits, reservations and
/// leases", states the rules.
public enum LedgerScript {
    /// The ledger script: `prelude.lua` + `ledger.lua`.
    public static let script = LuaScript(name: "ledger", body: PackageResources.ledger_lua)

    /// How long a settled or cancelled reservation is remembered, so that a retried settle
    /// returns the first answer: 10 minutes.
    public static let memoryMs = 600_000
    /// A reservation's TTL when the request names none: 300 s.
    public static let defaultTTLMs = 300_000
    /// The longest TTL a reservation may ask for: one day.
    public static let maxTTLMs = 86_400_000

    /// What a take call does.
    public enum Take: String, Sendable {
        /// Admit and charge now (`/v1/check` on a plan with token limits).
        case check = "c"
        /// Admit, charge the estimate and open a reservation (`/v1/reserve`).
        case reserve = "r"
        /// Charge usage after the fact, never denying (`/v1/settle` with an API key).
        case charge = "a"
    }

    /// A reservation's id as the API shows it: the key id, a dot, a random part. The key id
    /// finds the key (and so its hash slot) with nothing else sent.
    public struct ReservationID: Sendable, Hashable, CustomStringConvertible {
        /// The API key's id.
        public let keyID: String
        /// 128 random bits, base64url.
        public let token: String

        /// A new random id for a key.
        public static func random(keyID: String) -> ReservationID {
            var generator = SystemRandomNumberGenerator()
            var bytes: [UInt8] = []
            bytes.reserveCapacity(16)
            for _ in 0..<2 {
                let word = generator.next() as UInt64
                for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
            }
            return ReservationID(keyID: keyID, token: Base64URL.encode(bytes))
        }

        /// Parses an id from a request; nil when it is not one Sluice could have made.
        public init?(_ text: String) {
            let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            guard parts.count == 2, (1...64).contains(parts[0].count), parts[1].count == 22,
                parts.allSatisfy({ $0.allSatisfy(Base64URL.isAlphabet) })
            else { return nil }
            self.keyID = String(decoding: parts[0], as: UTF8.self)
            self.token = String(decoding: parts[1], as: UTF8.self)
        }

        init(keyID: String, token: String) {
            self.keyID = keyID
            self.token = token
        }

        public var description: String { self.keyID + "." + self.token }
    }

    /// A call: the script's KEYS and ARGV as bytes.
    public typealias Call = DecisionScript.Call

    /// The six keys every op names (the reservation's record, the idempotency entry, the
    /// reservations and leases sets, the usage records).
    static func commonKeys(keyID: String, reservation: String?, idempotencyKey: String?) -> [[UInt8]] {
        let prefix = StateKeys.prefix(keyID: keyID)
        let record = Array((prefix + StateKeys.reservationPrefix + (reservation ?? "")).utf8)
        let idempotency = idempotencyKey.map {
            Array((prefix + StateKeys.idempotencyPrefix + Base64URL.encode(Array(KeyDigester.sha256(of: $0).prefix(16)))).utf8)
        }
        return [
            record, idempotency ?? record,
            Array((prefix + StateKeys.reservationsSuffix).utf8), Array((prefix + StateKeys.leasesSuffix).utf8),
            Array((prefix + StateKeys.usageSuffix).utf8), Array((prefix + StateKeys.tokenUsageSuffix).utf8),
        ]
    }

    /// A check, reserve or charge call.
    /// - Parameters:
    ///   - take: what to do.
    ///   - entry: the API key's entry.
    ///   - limits: the limits that apply, in order.
    ///   - requestUnits: what requests-counting limits take (a check's cost; 1 for a reserve;
    ///     0 for a charge, whose request was counted when it was admitted).
    ///   - tokens: the estimate (reserve), the usage (check, charge).
    ///   - price: the model's price.
    ///   - reservation: the new reservation's id (reserve).
    ///   - idempotencyKey: the reserve's idempotency key, if any.
    ///   - ttlMs: the reservation's TTL.
    ///   - nowMicros: a clock override for tests; nil reads Redis `TIME`.
    public static func take(
        _ take: Take, entry: KeyEntry, limits: [Limit], requestUnits: Int, tokens: TokenCounts, price: ModelPrice,
        reservation: ReservationID? = nil, idempotencyKey: String? = nil, ttlMs: Int = defaultTTLMs, nowMicros: Int64? = nil
    ) -> Call {
        let plan = entry.plan
        var keys = self.commonKeys(keyID: entry.keyID, reservation: reservation?.token, idempotencyKey: take == .reserve ? idempotencyKey : nil)
        keys.reserveCapacity(6 + limits.count)
        for limit in limits {
            keys.append(entry.stateKey(for: limit))
        }
        let concurrency = take == .reserve ? plan.concurrency : nil
        var arguments: [[UInt8]] = [
            Array(take.rawValue.utf8), DecisionScript.clockArgument(nowMicros), self.text(requestUnits),
            self.text(tokens.inputTokens), self.text(tokens.outputTokens), self.text(tokens.cachedInputTokens),
            self.text(price.inputMicros), self.text(price.outputMicros), self.text(price.cachedInputMicros),
            self.text(plan.ledgerUsageRetentionDays), self.text(plan.usageOffsetSeconds), self.text(ttlMs),
            self.text(concurrency?.limit ?? 0), self.text(concurrency?.leaseTTLMs ?? 0),
            Array((reservation?.token ?? "").utf8), self.text(self.memoryMs),
        ]
        arguments.reserveCapacity(arguments.count + 6 * limits.count)
        for limit in limits {
            arguments.append(contentsOf: limit.ledgerArgumentBytes)
        }
        return Call(keys: keys, arguments: arguments)
    }

    /// A settle (`tokens`: the actual usage) or a cancel (`tokens` nil) call.
    public static func settle(_ id: ReservationID, tokens: TokenCounts?, retentionDays: Int, nowMicros: Int64? = nil) -> Call {
        let usage = tokens ?? .zero
        return Call(
            keys: self.commonKeys(keyID: id.keyID, reservation: id.token, idempotencyKey: nil),
            arguments: [
                Array((tokens == nil ? "x" : "s").utf8), DecisionScript.clockArgument(nowMicros),
                self.text(usage.inputTokens), self.text(usage.outputTokens), self.text(usage.cachedInputTokens),
                self.text(retentionDays), self.text(self.memoryMs), Array(id.token.utf8),
            ]
        )
    }

    /// A renew call; `ttlMs` nil keeps the reservation's own TTL.
    public static func renew(_ id: ReservationID, ttlMs: Int?, nowMicros: Int64? = nil) -> Call {
        Call(
            keys: self.commonKeys(keyID: id.keyID, reservation: id.token, idempotencyKey: nil),
            arguments: [
                Array("n".utf8), DecisionScript.clockArgument(nowMicros), self.text(ttlMs ?? 0), self.text(self.memoryMs),
                Array(id.token.utf8),
            ]
        )
    }

    /// A view call (admin): open reservations, leases, estimates held.
    public static func view(keyID: String, nowMicros: Int64? = nil) -> Call {
        Call(
            keys: self.commonKeys(keyID: keyID, reservation: nil, idempotencyKey: nil),
            arguments: [Array("v".utf8), DecisionScript.clockArgument(nowMicros)]
        )
    }

    private static func text(_ value: Int) -> [UInt8] { Array(String(value).utf8) }
    private static func text(_ value: Int64) -> [UInt8] { Array(String(value).utf8) }

    // MARK: Replies

    /// One element of a script reply, as the Redis layer hands it over.
    public enum Value: Sendable, Hashable {
        case int(Int64)
        case text(String)

        var int: Int64? {
            if case .int(let value) = self { return value }
            return nil
        }

        var text: String? {
            switch self {
            case .text(let text): return text
            case .int(let value): return String(value)
            }
        }
    }

    /// Integers before the limits in a take reply.
    static let takeHeader = 10

    /// A take call's reply, decoded.
    public struct TakeResult: Sendable, Hashable {
        /// The decision (every limit, the concurrency limit last when the plan has one).
        public let decision: Decision
        /// The reservation opened (reserve, allowed).
        public let reservation: ReservationID?
        /// When it expires, ms since the epoch (Redis's clock).
        public let expiresAtMs: Int64?
        /// Expired reservations this call reclaimed (for the metrics).
        public let reclaimed: Int
        /// Whether this is the first answer of an earlier reserve with the same idempotency key.
        public let replay: Bool
    }

    /// Decodes a take reply.
    /// - Throws: ``DecisionScript/MalformedReply`` when it does not match the limits.
    public static func takeResult(plan: Plan, keyID: String, limits: [Limit], reserve: Bool, values: [Value]) throws -> TakeResult {
        let expected = self.takeHeader + DecisionScript.valuesPerLimit * limits.count
        let ints = values.map { $0.int ?? 0 }
        guard values.count == expected, values.enumerated().allSatisfy({ $0.offset == 2 || $0.element.int != nil }) else {
            throw DecisionScript.MalformedReply(description: "expected \(expected) values from the ledger script, got \(values.count)")
        }
        // The limits' five integers each, laid out as the decision script's after its first two.
        let perLimit = [ints[0], ints[1]] + ints[self.takeHeader...]
        var result = try DecisionScript.result(limits: limits, values: Array(perLimit))
        var states = result.limits
        if reserve, let concurrency = plan.concurrency, ints[6] > 0 {
            states.append(
                LimitState(
                    name: ConcurrencyLimit.name, limit: concurrency.limit, remaining: Int(max(0, ints[7])),
                    resetAfterMs: Int(max(0, ints[8])), retryAfterMs: Int(max(0, ints[9])), windowSeconds: 0,
                    unit: .concurrentRequests
                )
            )
            result = DecisionScript.Result(allowed: result.allowed, limits: states)
        }
        var decision = Decision.combine(plan: plan.name, allowed: result.allowed, limits: result.limits)
        decision.nowMs = ints[1]
        let token = values[2].text ?? ""
        let reservation = token.isEmpty ? nil : ReservationID(keyID: keyID, token: token)
        return TakeResult(
            decision: decision, reservation: reservation, expiresAtMs: reservation == nil ? nil : ints[3],
            reclaimed: Int(max(0, ints[4])), replay: ints[5] == 1
        )
    }

    /// Units of each dimension: the estimate or the actual usage of a settle.
    public struct Amounts: Sendable, Hashable {
        public let requests: Int
        public let inputTokens: Int
        public let outputTokens: Int
        public let totalTokens: Int
        public let cost: Int

        /// Creates amounts.
        public init(requests: Int, inputTokens: Int, outputTokens: Int, totalTokens: Int, cost: Int) {
            self.requests = requests
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
            self.totalTokens = totalTokens
            self.cost = cost
        }
    }

    /// One limit's state after a settle or cancel.
    public struct SettledLimit: Sendable, Hashable {
        public let name: String
        public let limit: Int
        public let remaining: Int
        public let resetAfterMs: Int
    }

    /// What a settle or cancel came to.
    public enum SettleOutcome: Sendable, Hashable {
        /// Done (now, or earlier when `replay`).
        case settled(estimate: Amounts, actual: Amounts, limits: [SettledLimit], replay: Bool, reclaimed: Int)
        /// No such open reservation: never made, expired, or forgotten.
        case unknown(reclaimed: Int)
        /// It was settled before (a cancel of a settled reservation).
        case alreadySettled(reclaimed: Int)
        /// It was cancelled before.
        case alreadyCancelled(reclaimed: Int)

        /// Expired reservations the call reclaimed, whatever it came to.
        public var reclaimed: Int {
            switch self {
            case .settled(_, _, _, _, let reclaimed), .unknown(let reclaimed), .alreadySettled(let reclaimed),
                .alreadyCancelled(let reclaimed):
                return reclaimed
            }
        }
    }

    /// Decodes a settle or cancel reply.
    public static func settleOutcome(values: [Value]) throws -> SettleOutcome {
        guard values.count >= 4, let status = values[0].int, let reclaimedValue = values[3].int else {
            throw DecisionScript.MalformedReply(description: "short reply from the ledger script")
        }
        let reclaimed = Int(max(0, reclaimedValue))
        switch status {
        case 0: return .unknown(reclaimed: reclaimed)
        case 2: return .alreadySettled(reclaimed: reclaimed)
        case 3: return .alreadyCancelled(reclaimed: reclaimed)
        case 1: break
        default: throw DecisionScript.MalformedReply(description: "unknown status \(status) from the ledger script")
        }
        guard values.count >= 15, let count = values[14].int, values.count == 15 + 4 * Int(count),
            values[4..<14].allSatisfy({ $0.int != nil })
        else {
            throw DecisionScript.MalformedReply(description: "settle reply of \(values.count) values does not match its limits")
        }
        func amounts(_ base: Int) -> Amounts {
            let v = values[base..<(base + 5)].map { Int(max(0, $0.int ?? 0)) }
            return Amounts(requests: v[0], inputTokens: v[1], outputTokens: v[2], totalTokens: v[3], cost: v[4])
        }
        var limits: [SettledLimit] = []
        for index in 0..<Int(count) {
            let base = 15 + 4 * index
            limits.append(
                SettledLimit(
                    name: values[base].text ?? "",
                    limit: Int(max(0, values[base + 1].int ?? 0)),
                    remaining: Int(max(0, values[base + 2].int ?? 0)),
                    resetAfterMs: Int(max(0, values[base + 3].int ?? 0))
                )
            )
        }
        return .settled(estimate: amounts(4), actual: amounts(9), limits: limits, replay: values[2].int == 1, reclaimed: reclaimed)
    }

    /// What a renew came to.
    public enum RenewOutcome: Sendable, Hashable {
        /// Renewed until `expiresAtMs`; `lease`: true held, false lost (expired first), nil none.
        case renewed(expiresAtMs: Int64, lease: Bool?, reclaimed: Int)
        case unknown(reclaimed: Int)
        case alreadySettled(reclaimed: Int)
        case alreadyCancelled(reclaimed: Int)

        /// Expired reservations the call reclaimed, whatever it came to.
        public var reclaimed: Int {
            switch self {
            case .renewed(_, _, let reclaimed), .unknown(let reclaimed), .alreadySettled(let reclaimed), .alreadyCancelled(let reclaimed):
                return reclaimed
            }
        }
    }

    /// Decodes a renew reply.
    public static func renewOutcome(values: [Value]) throws -> RenewOutcome {
        let ints = values.compactMap(\.int)
        guard ints.count == 5 else {
            throw DecisionScript.MalformedReply(description: "expected 5 integers from a renew, got \(values.count)")
        }
        let reclaimed = Int(max(0, ints[4]))
        switch ints[0] {
        case 1: return .renewed(expiresAtMs: ints[2], lease: ints[3] < 0 ? nil : ints[3] == 1, reclaimed: reclaimed)
        case 2: return .alreadySettled(reclaimed: reclaimed)
        case 3: return .alreadyCancelled(reclaimed: reclaimed)
        default: return .unknown(reclaimed: reclaimed)
        }
    }

    /// Open reservations of a key, as the admin API shows them.
    public struct View: Sendable, Hashable {
        /// Redis's clock, ms.
        public let nowMs: Int64
        /// Open reservations.
        public let open: Int
        /// Leases held.
        public let leases: Int
        /// Estimates held by the open reservations (the first 1000 of them).
        public let held: Amounts
        /// Expired reservations this call reclaimed.
        public let reclaimed: Int
    }

    /// Decodes a view reply.
    public static func view(values: [Value]) throws -> View {
        let ints = values.compactMap(\.int)
        guard ints.count == 9 else {
            throw DecisionScript.MalformedReply(description: "expected 9 integers from a view, got \(values.count)")
        }
        let held = ints[4...8].map { Int(max(0, $0)) }
        return View(
            nowMs: ints[0], open: Int(ints[2]), leases: Int(ints[3]),
            held: Amounts(requests: held[0], inputTokens: held[1], outputTokens: held[2], totalTokens: held[3], cost: held[4]),
            reclaimed: Int(max(0, ints[1]))
        )
    }
}
