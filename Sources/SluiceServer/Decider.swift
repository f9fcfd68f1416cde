import Logging
import NIOCore
import SluiceCore
import SluiceRedis

/// Makes decisions: key → plan → limits → one script call in Redis → decision.
///
/// At most one Redis round trip per decision (none for an unknown key or a request
/// no limit applies to).
public struct Decider: Sendable {
    /// What a decision attempt came to.
    public enum Outcome: Sendable {
        /// A decision, with the header sets its plan asks for.
        case decision(Decision, headers: Set<HeaderStyle>)
        /// Redis could not answer and the plan fails closed.
        case backendUnavailable(plan: String, detail: String)
        /// The request cannot be decided as it is, for the key's plan (a plan with stages and
        /// no stage given): a 400, nothing consumed.
        case invalid(InputError)
    }

    let redis: RedisClient
    let logger: Logger
    /// Remembered denials, answered without Redis; nil when turned off.
    public let cache: OverLimitCache?
    /// Where decisions are counted; nil: nowhere.
    public let metrics: SluiceMetrics?

    /// Creates a decider over a Redis client that has ``RedisScript/decide`` loaded.
    public init(redis: RedisClient, logger: Logger, cache: OverLimitCache? = nil, metrics: SluiceMetrics? = nil) {
        self.redis = redis
        self.logger = logger
        self.cache = cache
        self.metrics = metrics
    }

    /// One answer of a batch.
    public enum BatchItem: Sendable {
        /// A decision.
        case decision(Decision)
        /// The item could not be decided: its machine-readable code and why.
        case error(code: String, message: String)
    }

    /// A request that needs the decision script, with everything needed to finish it.
    struct Pending {
        let entry: KeyEntry
        let limits: [Limit]
        let cost: Int
        let keys: [RedisArgument]
        let arguments: [RedisArgument]
        /// Whether the call is to the ledger script (a plan with token limits or a concurrency
        /// limit), not the decision script.
        let isLedger: Bool

        var script: RedisScript { self.isLedger ? .ledger : .decide }
    }

    /// The steps before Redis: the answer when none is needed (unknown key, no limits,
    /// a remembered denial), else the script call to make.
    enum Preparation {
        case answered(Decision, headers: Set<HeaderStyle>)
        case invalid(InputError)
        case needsRedis(Pending)
    }

    /// A request without a stage, for a plan that lists stages.
    static let missingStage = InputError(code: "missing_stage", message: "the key's plan lists API stages: name the request's stage")

    /// A request's key and the limits its plan applies to it (by route and stage), or the answer
    /// when there are none to ask Redis about (an unknown key, a stage the plan does not cover).
    enum Applicable {
        case limits(KeyEntry, [Limit])
        case answered(Decision, headers: Set<HeaderStyle>)
        case invalid(InputError)
    }

    /// The key and limits of a request: shared by checks and reservations.
    static func applicable(_ request: CheckRequest, keyring: Keyring) -> Applicable {
        guard let entry = keyring.resolve(apiKey: request.apiKey) else {
            return .answered(.unknownKey, headers: [.ietf])
        }
        let plan = entry.plan
        switch plan.limits(for: request.route, stage: request.stage) {
        case .limits(let limits):
            return .limits(entry, limits)
        case .stageNotInPlan:
            // A shadow plan never denies, not even a stage it does not list.
            let decision = Decision.stageNotInPlan(plan: plan.name)
            return .answered(plan.shadow ? decision.shadowed() : decision, headers: plan.headers)
        case .missingStage:
            // A shadow plan never denies, not even a request without its stage: allowed, and
            // marked as the stage check would have denied it.
            guard plan.shadow else { return .invalid(Self.missingStage) }
            return .answered(Decision.stageNotInPlan(plan: plan.name).shadowed(), headers: plan.headers)
        }
    }

    func prepare(_ request: CheckRequest, keyring: Keyring) -> Preparation {
        let entry: KeyEntry
        let limits: [Limit]
        switch Self.applicable(request, keyring: keyring) {
        case .limits(let e, let l): (entry, limits) = (e, l)
        case .answered(let decision, let headers): return .answered(decision, headers: headers)
        case .invalid(let error): return .invalid(error)
        }
        let plan = entry.plan
        if limits.isEmpty {
            return .answered(.unlimited(plan: plan.name), headers: plan.headers)
        }
        if plan.usesLedger {
            // Token limits: the tokens given (none: each token limit must have one left), priced
            // by the model. No over-limit cache: a denial depends on the tokens asked for.
            guard let price = plan.price(for: request.model) else {
                return .invalid(Self.unknownModel(request.model))
            }
            let call = LedgerScript.take(
                .check, entry: entry, limits: limits, requestUnits: request.cost, tokens: request.tokens ?? .zero, price: price
            )
            return .needsRedis(
                Pending(
                    entry: entry, limits: limits, cost: request.cost,
                    keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) },
                    isLedger: true
                )
            )
        }
        if !plan.shadow, let remembered = self.cache?.lookup(keyID: entry.keyID, limits: limits, cost: request.cost, now: .now) {
            self.metrics?.recordCacheHit()
            return .answered(remembered, headers: plan.headers)
        }
        let call = DecisionScript.call(entry: entry, limits: limits, cost: request.cost)
        return .needsRedis(
            Pending(
                entry: entry, limits: limits, cost: request.cost,
                keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) },
                isLedger: false
            )
        )
    }

    /// A request for a model the plan has no price for, on a plan that counts cost.
    static func unknownModel(_ model: String?) -> InputError {
        InputError(
            code: "unknown_model",
            message: model.map { "the key's plan has no price for model \"\($0)\" and no \"*\" price" }
                ?? "the key's plan counts cost: name the request's model (the plan has no \"*\" price)"
        )
    }

    /// The steps after Redis: the script's reply (or the failure to get one) made into a
    /// decision (shadowed, remembered) or, for a plan that fails closed, why Redis could not answer.
    /// - Parameter sentAt: when the call went to Redis; a remembered denial's wait counts from it.
    func finish(_ pending: Pending, reply: Result<RedisReply, any Error>, sentAt: ContinuousClock.Instant) -> Outcome {
        let plan = pending.entry.plan
        let detail: String
        do {
            let reply = try reply.get()
            if pending.isLedger, let values = reply.ledgerValues {
                let result = try LedgerScript.takeResult(
                    plan: plan, keyID: pending.entry.keyID, limits: pending.limits, reserve: false, values: values
                )
                self.metrics?.recordReservationsExpired(plan: plan.name, count: result.reclaimed)
                return .decision(result.decision, headers: plan.headers)
            }
            if let values = reply.array?.compactMap({ (element: RedisReply) -> Int64? in element.int }) {
                let decision = try DecisionScript.decision(plan: plan, limits: pending.limits, values: values)
                if plan.shadow {
                    return .decision(decision.shadowed(), headers: plan.headers)
                }
                self.cache?.remember(decision, keyID: pending.entry.keyID, limits: pending.limits, cost: pending.cost, now: sentAt)
                return .decision(decision, headers: plan.headers)
            }
            detail = reply.errorMessage.map { "Redis replied \($0)" } ?? "unexpected reply from the decision script"
        } catch let error as SluiceRedisError {
            detail = error.message
        } catch {
            detail = "\(error)"
        }
        self.logger.debug("decision without Redis", metadata: ["plan": "\(plan.name)", "error": "\(detail)"])
        // A shadow plan never denies, not even when Redis is down.
        switch plan.shadow ? .allow : plan.onBackendError {
        case .allow: return .decision(.degradedAllow(plan: plan.name), headers: plan.headers)
        case .deny: return .backendUnavailable(plan: plan.name, detail: detail)
        }
    }

    /// Decides many requests with one pipelined write to Redis (one round trip for the batch).
    /// Items that need no Redis (invalid, unknown key, no limits) are answered at once.
    public func decideBatch(
        _ requests: [Result<CheckRequest, InputError>],
        keyring: Keyring,
        on eventLoop: (any EventLoop)?
    ) async -> [BatchItem] {
        var items = [BatchItem?](repeating: nil, count: requests.count)
        var pending: [(index: Int, call: Pending)] = []
        for (index, request) in requests.enumerated() {
            switch request.map({ self.prepare($0, keyring: keyring) }) {
            case .failure(let error):
                items[index] = .error(code: error.code, message: error.message)
            case .success(.answered(let decision, let headers)):
                _ = self.counted(.decision(decision, headers: headers))
                items[index] = .decision(decision)
            case .success(.invalid(let error)):
                items[index] = .error(code: error.code, message: error.message)
            case .success(.needsRedis(let call)):
                pending.append((index, call))
            }
        }
        let sentAt = ContinuousClock.now
        // One pipelined write per script: the decision script's calls, then the ledger's.
        let ordered = pending.filter { !$0.call.isLedger } + pending.filter { $0.call.isLedger }
        var futures: [EventLoopFuture<RedisReply>] = []
        for isLedger in [false, true] {
            let calls = ordered.filter { $0.call.isLedger == isLedger }.map { (keys: $0.call.keys, arguments: $0.call.arguments) }
            if !calls.isEmpty {
                futures += self.redis.evaluateBatch(isLedger ? .ledger : .decide, calls: calls, on: eventLoop)
            }
        }
        for (slot, future) in zip(ordered, futures) {
            let reply: Result<RedisReply, any Error>
            do { reply = .success(try await future.get()) } catch { reply = .failure(error) }
            switch self.counted(self.finish(slot.call, reply: reply, sentAt: sentAt)) {
            case .decision(let decision, _):
                items[slot.index] = .decision(decision)
            case .backendUnavailable(_, let detail):
                items[slot.index] = .error(code: "backend_unavailable", message: "Redis cannot answer: \(detail)")
            case .invalid(let error):
                items[slot.index] = .error(code: error.code, message: error.message)
            }
        }
        return items.map { $0 ?? .error(code: "internal_error", message: "no answer") }
    }

    /// Decides one request.
    /// - Parameters:
    ///   - request: the validated request.
    ///   - keyring: the plans and keys in force.
    ///   - eventLoop: the caller's event loop, whose Redis connection to use.
    public func decide(_ request: CheckRequest, keyring: Keyring, on eventLoop: any EventLoop) async -> Outcome {
        // The future never fails: Redis failures become outcomes.
        (try? await self.decisionFuture(request, keyring: keyring, on: eventLoop).get())
            ?? .backendUnavailable(plan: "", detail: "no answer")
    }

    /// Decides one request without leaving `eventLoop`: the future completes there (the
    /// Redis connection used lives on that loop), and never fails.
    public func decisionFuture(_ request: CheckRequest, keyring: Keyring, on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        switch self.prepare(request, keyring: keyring) {
        case .answered(let decision, let headers):
            return eventLoop.makeSucceededFuture(self.counted(.decision(decision, headers: headers)))
        case .invalid(let error):
            return eventLoop.makeSucceededFuture(.invalid(error))
        case .needsRedis(let call):
            let sentAt = ContinuousClock.now
            let promise = eventLoop.makePromise(of: Outcome.self)
            self.redis.evaluate(call.script, keys: call.keys, arguments: call.arguments, on: eventLoop).whenComplete { reply in
                promise.succeed(self.counted(self.finish(call, reply: reply, sentAt: sentAt)))
            }
            return promise.futureResult
        }
    }

    /// Counts an outcome in the metrics, and passes it on.
    private func counted(_ outcome: Outcome) -> Outcome {
        switch outcome {
        case .decision(let decision, _): self.metrics?.record(decision)
        case .backendUnavailable(let plan, _): self.metrics?.recordUnavailable(plan: plan)
        case .invalid: break
        }
        return outcome
    }
}
