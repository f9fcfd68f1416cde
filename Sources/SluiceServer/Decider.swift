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

    /// Creates a decider over a Redis client that has ``RedisScript/decide`` loaded.
    public init(redis: RedisClient, logger: Logger) {
        self.redis = redis
        self.logger = logger
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
        let call = DecisionScript.call(entry: entry, limits: limits, cost: request.cost)
        let detail: String
        do {
            let reply = try await self.redis.evaluate(
                .decide,
                keys: call.keys.map { RedisArgument($0) },
                arguments: call.arguments.map { RedisArgument($0) },
                on: eventLoop
            ).get()
            if let values = reply.array?.compactMap({ (element: RedisReply) -> Int64? in element.int }) {
                return .decision(try DecisionScript.decision(plan: plan, limits: limits, values: values), headers: plan.headers)
            }
            detail = reply.errorMessage.map { "Redis replied \($0)" } ?? "unexpected reply from the decision script"
        } catch let error as SluiceRedisError {
            detail = error.message
        } catch {
            detail = "\(error)"
        }
        self.logger.debug("decision without Redis", metadata: ["plan": "\(plan.name)", "error": "\(detail)"])
        switch plan.onBackendError {
        case .allow: return .decision(.degradedAllow(plan: plan.name), headers: plan.headers)
        case .deny: return .backendUnavailable(plan: plan.name, detail: detail)
        }
    }
}
