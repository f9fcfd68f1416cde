import Hummingbird
import Logging
import SluiceAdminAPI
import SluiceCore
import SluiceRedis

extension AdminRoutes {
    /// `GET /admin/v1/keys/{id}/state`: every limit's live state, consuming nothing.
    func state(_ id: String) async throws -> Response {
        let (entry, record) = try await self.activeKey(id)
        let limits = entry.plan.allLimits
        let snapshots: [StateScripts.LimitSnapshot]
        if limits.isEmpty {
            snapshots = []
        } else {
            snapshots = try await self.inspect(entry, limits: limits).limits
        }
        let state = AdminAPI.KeyState(
            id: id, plan: record.plan, source: AdminAPI.KeySource(record.source), limits: snapshots.map(AdminAPI.LimitState.init)
        )
        return try Self.response(state)
    }

    /// `POST /admin/v1/keys/{id}/state/reset[?limit=NAME]` (and the deprecated
    /// `DELETE .../state`): every limit of the key, or the one named, as new.
    func reset(_ id: String, request: Request, logger: Logger) async throws -> Response {
        let (entry, _) = try await self.activeKey(id)
        var limits = entry.plan.allLimits
        if let name = request.uri.queryParameters["limit"].map(String.init) {
            guard !name.isEmpty else {
                throw APIError(.badRequest, code: "invalid_query", message: "limit must name a limit; leave it out to reset them all")
            }
            limits = limits.filter { $0.name == name }
            guard !limits.isEmpty else {
                // 409, not 404: the key exists; the name does not fit its plan as it is now.
                throw APIError(
                    .conflict, code: "unknown_limit",
                    message: "the key's plan has no limit \"\(name)\"; it has \(entry.plan.allLimits.map(\.name).joined(separator: ", "))"
                )
            }
        }
        if !limits.isEmpty {
            let keys = limits.map { RedisArgument(bytes: entry.stateKey(for: $0)) }
            do {
                _ = try await self.redis.command(["DEL"] + keys)
            } catch {
                throw Self.backend(error)
            }
        }
        await self.registry.stateChanged(id: id)
        logger.info("key state reset", metadata: ["key_id": "\(id)", "limits": "\(limits.map(\.name))"])
        return try Self.response(AdminAPI.ResetResult(id: id, reset: limits.map(\.name)))
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
        return try Self.response(AdminAPI.LimitState(snapshot))
    }
}
