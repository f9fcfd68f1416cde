import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import SluiceCore
import SluiceRedis

/// Reservations for language-model traffic (docs/ARCHITECTURE.md, "Token limits, reservations
/// and leases"): `POST /v1/reserve`, `POST /v1/settle`, `POST /v1/reservations/{id}/renew`,
/// `DELETE /v1/reservations/{id}`. Each is one ledger script call in Redis.
struct ReservationRoutes: Sendable {
    let decider: Decider
    let store: ConfigStore

    var redis: RedisClient { self.decider.redis }
    var metrics: SluiceMetrics? { self.decider.metrics }

    func register(on router: Router<SluiceRequestContext>) {
        router.post("/v1/reserve") { request, context in
            try await self.reserve(request, context: context)
        }
        router.post("/v1/settle") { request, context in
            try await self.settle(request, context: context)
        }
        router.post("/v1/reservations/:id/renew") { request, context in
            try await self.renew(request, context: context)
        }
        router.delete("/v1/reservations/:id") { request, context in
            try await self.cancel(request, context: context)
        }
    }

    static let unknownReservation = APIError(
        .notFound, code: "unknown_reservation", message: "no open reservation has this id (never made, expired, or settled long ago)"
    )
    static let reservationCancelled = APIError(.conflict, code: "reservation_cancelled", message: "the reservation was cancelled")
    static let reservationSettled = APIError(.conflict, code: "reservation_settled", message: "the reservation was settled")

    /// The request's body, parsed by `parse`, after the gateway-token check.
    private func body<T>(
        _ request: Request, snapshot: ConfigStore.Snapshot, parse: (Data, InputBounds) throws(InputError) -> T
    ) async throws -> T {
        try ClientTokens.verify(request.headers, snapshot: snapshot)
        let bounds = snapshot.config.bounds
        let buffer = try await JSONBody.collect(request, limit: bounds.maxBodyBytes)
        do {
            return try parse(Data(buffer.readableBytesView), bounds)
        } catch {
            throw APIError(error)
        }
    }

    /// The script's reply as values, or the error for a failed call.
    private func values(_ reply: RedisReply) throws -> [LedgerScript.Value] {
        guard let values = reply.ledgerValues else {
            throw DecisionScript.MalformedReply(description: reply.errorMessage.map { "Redis replied \($0)" } ?? "unexpected reply from the ledger script")
        }
        return values
    }

    /// The key entry, its limits for the request, and its price; or the answer without Redis.
    private enum Target {
        case ready(KeyEntry, [Limit], ModelPrice)
        case answered(Decision, Set<HeaderStyle>)
    }

    private func target(_ check: CheckRequest, keyring: Keyring) throws -> Target {
        switch Decider.applicable(check, keyring: keyring) {
        case .answered(let decision, let headers):
            return .answered(decision, headers)
        case .invalid(let error):
            throw APIError(error)
        case .limits(let entry, let limits):
            guard let price = entry.plan.price(for: check.model) else {
                throw APIError(Decider.unknownModel(check.model))
            }
            return .ready(entry, limits, price)
        }
    }

    // MARK: Reserve

    func reserve(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        defer { self.metrics?.recordCheck(.reserve, since: start) }
        let snapshot = self.store.current
        let reserve = try await self.body(request, snapshot: snapshot, parse: ReserveRequest.parse)
        let (entry, limits, price): (KeyEntry, [Limit], ModelPrice)
        switch try self.target(reserve.check, keyring: snapshot.keyring) {
        case .answered(let decision, let styles):
            self.metrics?.record(decision)
            return self.reserveResponse(decision, styles: styles, reservation: nil, expiresAtMs: nil, allocator: ByteBufferAllocator())
        case .ready(let e, let l, let p): (entry, limits, price) = (e, l, p)
        }
        let plan = entry.plan
        let id = LedgerScript.ReservationID.random(keyID: entry.keyID)
        let call = LedgerScript.take(
            .reserve, entry: entry, limits: limits, requestUnits: 1, tokens: reserve.estimate, price: price,
            reservation: id, idempotencyKey: reserve.idempotencyKey, ttlMs: reserve.ttlMs
        )
        let result: LedgerScript.TakeResult
        do {
            let reply = try await self.redis.evaluate(
                .ledger, keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) },
                on: context.eventLoop
            ).get()
            result = try LedgerScript.takeResult(plan: plan, keyID: entry.keyID, limits: limits, reserve: true, values: try self.values(reply))
        } catch {
            switch plan.shadow ? .allow : plan.onBackendError {
            case .allow:
                let decision = Decision.degradedAllow(plan: plan.name)
                self.metrics?.record(decision)
                return self.reserveResponse(decision, styles: plan.headers, reservation: nil, expiresAtMs: nil, allocator: ByteBufferAllocator())
            case .deny:
                self.metrics?.recordUnavailable(plan: plan.name)
                throw APIError.backendUnavailable("\(error)")
            }
        }
        self.metrics?.recordReservationsExpired(plan: plan.name, count: result.reclaimed)
        var decision = result.decision
        if plan.shadow, !decision.allowed {
            // A shadow plan never denies: allowed, with nothing taken and no reservation to settle.
            decision = decision.shadowed()
        }
        self.metrics?.record(decision)
        if result.reservation != nil, !result.replay {
            self.metrics?.recordReservations(.opened, plan: plan.name)
        }
        return self.reserveResponse(
            decision, styles: plan.headers, reservation: result.reservation, expiresAtMs: result.expiresAtMs, allocator: ByteBufferAllocator()
        )
    }

    private func reserveResponse(
        _ decision: Decision, styles: Set<HeaderStyle>, reservation: LedgerScript.ReservationID?, expiresAtMs: Int64?,
        allocator: ByteBufferAllocator
    ) -> Response {
        var writer = JSONWriter(buffer: allocator.buffer(capacity: 384 + 96 * decision.limits.count))
        DecisionResponse.write(decision, into: &writer) { writer in
            if let reservation, let expiresAtMs {
                writer.field("reservation_id", reservation.description)
                writer.field("expires_at_ms", Int(expiresAtMs))
            }
        }
        var headers = HTTPFields()
        headers[.contentType] = DecisionResponse.jsonContentType
        RateLimitHeaders.add(for: decision, styles: styles, to: &headers)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: writer.buffer))
    }

    // MARK: Settle

    func settle(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        defer { self.metrics?.recordCheck(.settle, since: start) }
        let snapshot = self.store.current
        switch try await self.body(request, snapshot: snapshot, parse: SettleRequest.parse) {
        case .reservation(let id, let actual):
            let plan = snapshot.keyring.key(id: id.keyID)?.entry?.plan
            let call = LedgerScript.settle(id, tokens: actual, retentionDays: plan?.ledgerUsageRetentionDays ?? 0)
            let outcome = try await self.run(call, on: context.eventLoop, decode: LedgerScript.settleOutcome)
            return try self.settleResponse(outcome, id: id, plan: plan?.name, allocator: ByteBufferAllocator())
        case .charge(let check, let actual):
            return try await self.charge(check, actual: actual, snapshot: snapshot, context: context)
        }
    }

    /// Runs a settle, cancel or renew call; Redis failures are 503s (nothing may be assumed).
    private func run<T>(_ call: LedgerScript.Call, on eventLoop: any EventLoop, decode: ([LedgerScript.Value]) throws -> T) async throws -> T {
        do {
            let reply = try await self.redis.evaluate(
                .ledger, keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) },
                on: eventLoop
            ).get()
            return try decode(try self.values(reply))
        } catch {
            throw APIError.backendUnavailable("\(error)")
        }
    }

    private func settleResponse(_ outcome: LedgerScript.SettleOutcome, id: LedgerScript.ReservationID, plan: String?, allocator: ByteBufferAllocator) throws -> Response {
        let planName = plan ?? ""
        self.metrics?.recordReservationsExpired(plan: planName, count: outcome.reclaimed)
        switch outcome {
        case .unknown:
            throw Self.unknownReservation
        case .alreadyCancelled:
            throw Self.reservationCancelled
        case .alreadySettled:
            // Only a cancel meets this; a settle of a settled reservation replays its answer.
            throw Self.reservationSettled
        case .settled(let estimate, let actual, let limits, let replay, _):
            if !replay {
                self.metrics?.recordReservations(.settled, plan: planName)
                self.metrics?.recordSettledTokens(
                    plan: planName, refunded: max(0, estimate.totalTokens - actual.totalTokens),
                    overrun: max(0, actual.totalTokens - estimate.totalTokens)
                )
            }
            var writer = JSONWriter(buffer: allocator.buffer(capacity: 512 + 96 * limits.count))
            writer.beginObject()
            writer.field("settled", true)
            writer.field("reservation_id", id.description)
            if replay {
                writer.field("replayed", true)
            }
            Self.writeAmounts("charged", actual, into: &writer)
            Self.writeAmounts("refunded", Self.difference(estimate, actual), into: &writer)
            Self.writeAmounts("overrun", Self.difference(actual, estimate), into: &writer)
            writer.beginArray("limits")
            for limit in limits {
                DecisionResponse.writeLimit(name: limit.name, limit: limit.limit, remaining: limit.remaining, resetAfterMs: limit.resetAfterMs, into: &writer)
            }
            writer.endArray()
            writer.endObject()
            return writer.response()
        }
    }

    /// What `a` holds beyond `b`, dimension by dimension (never negative).
    static func difference(_ a: LedgerScript.Amounts, _ b: LedgerScript.Amounts) -> LedgerScript.Amounts {
        LedgerScript.Amounts(
            requests: max(0, a.requests - b.requests), inputTokens: max(0, a.inputTokens - b.inputTokens),
            outputTokens: max(0, a.outputTokens - b.outputTokens), totalTokens: max(0, a.totalTokens - b.totalTokens),
            cost: max(0, a.cost - b.cost)
        )
    }

    static func writeAmounts(_ key: String, _ amounts: LedgerScript.Amounts, into writer: inout JSONWriter) {
        writer.beginObject(key)
        writer.field("requests", amounts.requests)
        writer.field("input_tokens", amounts.inputTokens)
        writer.field("output_tokens", amounts.outputTokens)
        writer.field("total_tokens", amounts.totalTokens)
        writer.field("cost", amounts.cost)
        writer.endObject()
    }

    /// `POST /v1/settle` with an API key: usage charged after the fact, never denied (the key
    /// may go into debt), requests-counting limits untouched (the request was admitted before).
    private func charge(_ check: CheckRequest, actual: TokenCounts, snapshot: ConfigStore.Snapshot, context: SluiceRequestContext) async throws -> Response {
        let zero = LedgerScript.Amounts(requests: 0, inputTokens: 0, outputTokens: 0, totalTokens: 0, cost: 0)
        let (entry, limits, price): (KeyEntry, [Limit], ModelPrice)
        switch try self.target(check, keyring: snapshot.keyring) {
        case .answered(let decision, _):
            // An unknown key, or a stage its plan does not cover: nothing to charge.
            var writer = JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: 384))
            writer.beginObject()
            writer.field("settled", false)
            writer.field("reason", decision.reason?.rawValue ?? decision.deniedBy)
            Self.writeAmounts("charged", zero, into: &writer)
            Self.writeAmounts("refunded", zero, into: &writer)
            writer.beginArray("limits")
            writer.endArray()
            writer.endObject()
            return writer.response()
        case .ready(let e, let l, let p): (entry, limits, price) = (e, l, p)
        }
        let plan = entry.plan
        let call = LedgerScript.take(.charge, entry: entry, limits: limits, requestUnits: 0, tokens: actual, price: price)
        let result = try await self.run(call, on: context.eventLoop) { values in
            try LedgerScript.takeResult(plan: plan, keyID: entry.keyID, limits: limits, reserve: false, values: values)
        }
        self.metrics?.recordReservationsExpired(plan: plan.name, count: result.reclaimed)
        let charged = LedgerScript.Amounts(
            requests: 0, inputTokens: actual.inputTokens, outputTokens: actual.outputTokens, totalTokens: actual.totalTokens,
            cost: price.cost(of: actual)
        )
        var writer = JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: 512 + 96 * limits.count))
        writer.beginObject()
        writer.field("settled", true)
        Self.writeAmounts("charged", charged, into: &writer)
        Self.writeAmounts("refunded", zero, into: &writer)
        writer.beginArray("limits")
        for limit in result.decision.limits {
            DecisionResponse.writeLimit(name: limit.name, limit: limit.limit, remaining: limit.remaining, resetAfterMs: limit.resetAfterMs, into: &writer)
        }
        writer.endArray()
        writer.endObject()
        return writer.response()
    }

    // MARK: Renew and cancel

    private func pathID(_ context: SluiceRequestContext) throws -> LedgerScript.ReservationID {
        guard let text = context.parameters.get("id") else { throw Self.unknownReservation }
        do {
            return try SettleRequest.reservationID(text)
        } catch {
            throw APIError(error)
        }
    }

    func renew(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        let snapshot = self.store.current
        let id = try self.pathID(context)
        let renew = try await self.body(request, snapshot: snapshot, parse: RenewRequest.parse)
        let plan = snapshot.keyring.key(id: id.keyID)?.entry?.plan.name ?? ""
        let outcome = try await self.run(LedgerScript.renew(id, ttlMs: renew.ttlMs), on: context.eventLoop, decode: LedgerScript.renewOutcome)
        self.metrics?.recordReservationsExpired(plan: plan, count: outcome.reclaimed)
        switch outcome {
        case .unknown:
            throw Self.unknownReservation
        case .alreadySettled:
            throw Self.reservationSettled
        case .alreadyCancelled:
            throw Self.reservationCancelled
        case .renewed(let expiresAtMs, let lease, _):
            var writer = JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: 160))
            writer.beginObject()
            writer.field("reservation_id", id.description)
            writer.field("expires_at_ms", Int(expiresAtMs))
            writer.field("lease", lease.map { $0 ? "held" : "lost" } ?? "none")
            writer.endObject()
            return writer.response()
        }
    }

    func cancel(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        let snapshot = self.store.current
        try ClientTokens.verify(request.headers, snapshot: snapshot)
        let id = try self.pathID(context)
        let plan = snapshot.keyring.key(id: id.keyID)?.entry?.plan
        let call = LedgerScript.settle(id, tokens: nil, retentionDays: plan?.ledgerUsageRetentionDays ?? 0)
        let outcome = try await self.run(call, on: context.eventLoop, decode: LedgerScript.settleOutcome)
        let planName = plan?.name ?? ""
        self.metrics?.recordReservationsExpired(plan: planName, count: outcome.reclaimed)
        switch outcome {
        case .settled:
            self.metrics?.recordReservations(.cancelled, plan: planName)
            return Response(status: .noContent)
        case .alreadyCancelled:
            return Response(status: .noContent)
        case .alreadySettled:
            throw Self.reservationSettled
        case .unknown:
            throw Self.unknownReservation
        }
    }
}
