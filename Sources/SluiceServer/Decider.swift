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
    }

    let redis: RedisClient
    let logger: Logger
    /// Remembered denials, answered without Redis; nil when turned off.
    public let cache: OverLimitCache?

    /// Creates a decider over a Redis client that has ``RedisScript/decide`` loaded.
    public init(redis: RedisClient, logger: Logger, cache: OverLimitCache? = nil) {
        self.redis = redis
        self.logger = logger
        self.cache = cache
    }

    /// One answer of a batch.
    public enum BatchItem: Sendable {
        /// A decision.
        case decision(Decision)
        /// The item could not be decided: its machine-readable code and why.
        case error(code: String, message: String)
    }

    /// Decides many requests with one pipelined write to Redis (one round trip for the batch).
    /// Items that need no Redis (invalid, unknown key, no limits) are answered at once.
    public func decideBatch(
        _ requests: [Result<CheckRequest, InputError>],
        rules: RuleSet,
        on eventLoop: (any EventLoop)?
    ) async -> [BatchItem] {
        var items = [BatchItem?](repeating: nil, count: requests.count)
        var pending: [(index: Int, entry: KeyEntry, limits: [Limit], cost: Int)] = []
        var calls: [(keys: [RedisArgument], arguments: [RedisArgument])] = []
        for (index, request) in requests.enumerated() {
            switch request {
            case .failure(let error):
                items[index] = .error(code: error.code, message: error.message)
            case .success(let request):
                guard let entry = rules.resolve(apiKey: request.apiKey) else {
                    items[index] = .decision(.unknownKey)
                    continue
                }
                let limits = entry.plan.limits(for: request.route)
                if limits.isEmpty {
                    items[index] = .decision(.unlimited(plan: entry.plan.name))
                    continue
                }
                if !entry.plan.shadow,
                    let remembered = self.cache?.lookup(keyID: entry.keyID, limits: limits, cost: request.cost, now: .now)
                {
                    items[index] = .decision(remembered)
                    continue
                }
                let call = DecisionScript.encodedCall(entry: entry, limits: limits, cost: request.cost)
                pending.append((index, entry, limits, request.cost))
                calls.append((call.keys.map { RedisArgument(bytes: $0) }, call.arguments.map { RedisArgument(bytes: $0) }))
            }
        }
        let sentAt = ContinuousClock.now
        let futures = calls.isEmpty ? [] : self.redis.evaluateBatch(.decide, calls: calls, on: eventLoop)
        for (slot, future) in zip(pending, futures) {
            let detail: String
            do {
                let reply = try await future.get()
                if let values = reply.array?.compactMap({ (element: RedisReply) -> Int64? in element.int }) {
                    let decision = try DecisionScript.decision(plan: slot.entry.plan, limits: slot.limits, values: values)
                    if slot.entry.plan.shadow {
                        items[slot.index] = .decision(decision.shadowed())
                        continue
                    }
                    self.cache?.remember(decision, keyID: slot.entry.keyID, limits: slot.limits, cost: slot.cost, now: sentAt)
                    items[slot.index] = .decision(decision)
                    continue
                }
                detail = reply.errorMessage.map { "Redis replied \($0)" } ?? "unexpected reply from the decision script"
            } catch let error as SluiceRedisError {
                detail = error.message
            } catch {
                detail = "\(error)"
            }
            switch slot.entry.plan.shadow ? .allow : slot.entry.plan.onBackendError {
            case .allow: items[slot.index] = .decision(.degradedAllow(plan: slot.entry.plan.name))
            case .deny: items[slot.index] = .error(code: "backend_unavailable", message: "Redis cannot answer: \(detail)")
            }
        }
        return items.map { $0 ?? .error(code: "internal_error", message: "no answer") }
    }

    /// Decides one request.
    /// - Parameters:
    ///   - request: the validated request.
    ///   - rules: the plans and keys in force.
    ///   - eventLoop: the caller's event loop, whose Redis connection to use.
    public func decide(_ request: CheckRequest, rules: RuleSet, on eventLoop: (any EventLoop)?) async -> Outcome {
        guard let entry = rules.resolve(apiKey: request.apiKey) else {
            return .decision(.unknownKey, headers: [.ietf])
        }
        let plan = entry.plan
        let limits = plan.limits(for: request.route)
        if limits.isEmpty {
            return .decision(.unlimited(plan: plan.name), headers: plan.headers)
        }
        if !plan.shadow, let cache = self.cache,
            let remembered = cache.lookup(keyID: entry.keyID, limits: limits, cost: request.cost, now: .now)
        {
            return .decision(remembered, headers: plan.headers)
        }
        let call = DecisionScript.encodedCall(entry: entry, limits: limits, cost: request.cost)
        let sentAt = ContinuousClock.now
        let detail: String
        do {
            let reply = try await self.redis.evaluate(
                .decide,
                keys: call.keys.map { RedisArgument(bytes: $0) },
                arguments: call.arguments.map { RedisArgument(bytes: $0) },
                on: eventLoop
            ).get()
            if let values = reply.array?.compactMap({ (element: RedisReply) -> Int64? in element.int }) {
                let decision = try DecisionScript.decision(plan: plan, limits: limits, values: values)
                if plan.shadow {
                    return .decision(decision.shadowed(), headers: plan.headers)
                }
                self.cache?.remember(decision, keyID: entry.keyID, limits: limits, cost: request.cost, now: sentAt)
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
}
