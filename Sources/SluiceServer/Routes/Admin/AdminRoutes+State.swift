import Hummingbird
import Logging
import SluiceAdminAPI
import SluiceCore
import SluiceRedis

extension AdminRoutes {
    /// `GET /admin/v1/keys/{id}/state`: every limit's live state, consuming nothing, and the
    /// key's open reservations and leases (when the plan has a concurrency limit or any is
    /// held). The limits and the reservations are read by two scripts in flight at once: one
    /// round trip of latency.
    func state(_ id: String) async throws -> Response {
        let (entry, record) = try await self.activeKey(id)
        let plan = entry.plan
        let limits = plan.allLimits
        async let view = self.ledgerView(entry)
        let snapshots: [StateScripts.LimitSnapshot]
        if limits.isEmpty {
            snapshots = []
        } else {
            snapshots = try await self.inspect(entry, limits: limits).limits
        }
        let held = try await view
        self.metrics.recordReservationsExpired(plan: plan.name, count: held.reclaimed)
        var reservations: AdminAPI.KeyState.Reservations?
        if plan.concurrency != nil || held.open > 0 || held.leases > 0 {
            reservations = AdminAPI.KeyState.Reservations(
                open: held.open,
                held: AdminAPI.KeyState.Amounts(
                    requests: held.held.requests, inputTokens: held.held.inputTokens, outputTokens: held.held.outputTokens,
                    totalTokens: held.held.totalTokens, cost: held.held.cost
                ),
                leases: AdminAPI.KeyState.Leases(limit: plan.concurrency?.limit, inUse: held.leases, leaseTTLMs: plan.concurrency?.leaseTTLMs)
            )
        }
        let state = AdminAPI.KeyState(
            id: id, plan: record.plan, source: AdminAPI.KeySource(record.source), limits: snapshots.map(Self.limitState),
            reservations: reservations
        )
        return try Self.response(state)
    }

    /// A limit's state for the API: the snapshot and the dimension the limit counts.
    static func limitState(_ snapshot: StateScripts.LimitSnapshot) -> AdminAPI.LimitState {
        var state = AdminAPI.LimitState(snapshot)
        state.counts = AdminAPI.Plan.Dimension(snapshot.counts)
        return state
    }

    /// The ledger script's view of a key: open reservations, the estimates they hold, leases.
    /// The view also drops expired reservations and leases, as any ledger call does.
    func ledgerView(_ entry: KeyEntry) async throws -> LedgerScript.View {
        let call = LedgerScript.view(keyID: entry.keyID)
        do {
            let reply = try await self.redis.evaluate(
                .ledger, keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) }
            ).get()
            guard let values = reply.ledgerValues else {
                throw DecisionScript.MalformedReply(
                    description: reply.errorMessage.map { "Redis replied \($0)" } ?? "unexpected reply from the ledger script"
                )
            }
            return try LedgerScript.view(values: values)
        } catch {
            throw Self.backend(error)
        }
    }

    /// `POST /admin/v1/keys/{id}/state/reset[?limit=NAME]` (and the deprecated
    /// `DELETE .../state`): every limit of the key, or the one named, as new.
    ///
    /// A reset of every limit also drops the key's open reservations and leases (the sets
    /// `sl:{<id>}:vz` and `sl:{<id>}:lz`): every lease is free at once, and the reservations'
    /// estimates, charged to the state just dropped, are not refunded. Their records are left to
    /// expire on their own, so a later settle or cancel of one answers `unknown_reservation`
    /// (and a renew, the same). `limit=concurrency` (a plan with a concurrency limit) frees the
    /// leases only: the reservations stay open and settle as usual, without a lease. The usage
    /// records (`u`, `tu`) are history, not state: a reset keeps them.
    func reset(_ id: String, request: Request, logger: Logger) async throws -> Response {
        let (entry, _) = try await self.activeKey(id)
        let plan = entry.plan
        var limits = plan.allLimits
        var names = limits.map(\.name) + (plan.concurrency == nil ? [] : [ConcurrencyLimit.name])
        var (dropReservations, dropLeases) = (true, true)
        if let name = request.uri.queryParameters["limit"].map(String.init) {
            guard !name.isEmpty else {
                throw APIError(.badRequest, code: "invalid_query", message: "limit must name a limit; leave it out to reset them all")
            }
            guard names.contains(name) else {
                // 409, not 404: the key exists; the name does not fit its plan as it is now.
                throw APIError(
                    .conflict, code: "unknown_limit",
                    message: "the key's plan has no limit \"\(name)\"; it has \(names.joined(separator: ", "))"
                )
            }
            limits = limits.filter { $0.name == name }
            names = [name]
            (dropReservations, dropLeases) = (false, name == ConcurrencyLimit.name)
        }
        let prefix = StateKeys.prefix(keyID: entry.keyID)
        var keys = limits.map { RedisArgument(bytes: entry.stateKey(for: $0)) }
        if dropReservations { keys.append(RedisArgument(prefix + StateKeys.reservationsSuffix)) }
        if dropLeases { keys.append(RedisArgument(prefix + StateKeys.leasesSuffix)) }
        if !keys.isEmpty {
            do {
                _ = try await self.redis.command(["DEL"] + keys)
            } catch {
                throw Self.backend(error)
            }
        }
        await self.registry.stateChanged(id: id)
        logger.info(
            "key state reset",
            metadata: [
                "key_id": "\(id)", "limits": "\(names)", "reservations_dropped": "\(dropReservations)", "leases_dropped": "\(dropLeases)",
            ]
        )
        return try Self.response(AdminAPI.ResetResult(id: id, reset: names))
    }

    /// `POST /admin/v1/keys/{id}/quota`: units granted for, or left in, the current window.
    func adjustQuota(_ id: String, request: Request, logger: Logger) async throws -> Response {
        let hint = #"send {"add": N} (N >= 1) or {"remaining": N} (N >= 0)"#
        let body = try await self.decode(AdminAPI.QuotaChangeRequest.self, from: request, hint: hint)
        let change: StateScripts.QuotaChange
        switch (body.add, body.remaining) {
        case (let add?, nil) where (1...Self.maxQuotaUnits).contains(add):
            change = .add(add)
        case (nil, let remaining?) where (0...Self.maxQuotaUnits).contains(remaining):
            change = .setRemaining(remaining)
        default:
            throw APIError(.badRequest, code: "invalid_body", message: hint + ", at most \(Self.maxQuotaUnits)")
        }
        let (entry, _) = try await self.activeKey(id)
        guard let quota = entry.plan.quota else {
            throw Self.noQuota(entry.plan.name)
        }
        let call = StateScripts.adjustQuota(entry: entry, quota: quota, change: change)
        let snapshot: StateScripts.LimitSnapshot
        do {
            let values = try await self.script(.quota, call)
            snapshot = try StateScripts.adjusted(quota: quota, values: values)
        } catch {
            throw Self.backend(error)
        }
        await self.registry.stateChanged(id: id)
        logger.info("quota changed", metadata: ["key_id": "\(id)", "change": "\(change)", "limit": "\(snapshot.limit)"])
        return try Self.response(Self.limitState(snapshot))
    }
}
