import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import SluiceAdminAPI
import SluiceCore
import SluiceRedis

/// `/admin/v1` (operators' API, behind bearer tokens) and `/metrics` (no token: the admin
/// listener is private and Prometheus scrapes it). Keys are addressed by key id, never by
/// the raw key.
///
/// Bodies are the ``AdminAPI`` types (`openapi/sluice.yaml` describes the same shapes); the
/// handlers live by resource in `AdminRoutes+<Resource>.swift`.
struct AdminRoutes: Sendable {
    let store: ConfigStore
    let reloader: ConfigReloader?
    let registry: KeyRegistry
    let redis: RedisClient
    let cache: OverLimitCache?
    let metrics: SluiceMetrics

    /// Longest name a key may be given.
    static let maxNameBytes = 200
    /// Largest quota change accepted.
    static let maxQuotaUnits = 1_000_000_000_000

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("metrics") { _, _ in
            await self.renderMetrics()
        }
        let group = router.group("admin/v1").add(middleware: AdminAuthMiddleware<Context>(store: self.store))
        group.get("plans") { _, _ in try self.plans() }
        group.post("keys/lookup") { request, _ in try await self.lookup(request) }
        group.post("keys") { request, context in try await self.create(request, logger: context.logger) }
        group.get("keys") { request, _ in try self.list(request) }
        group.get("keys/:id") { _, context in try await self.show(context.parameters.require("id")) }
        group.put("keys/:id") { request, context in
            try await self.move(context.parameters.require("id"), request: request, logger: context.logger)
        }
        group.delete("keys/:id") { _, context in
            try await self.revoke(context.parameters.require("id"), logger: context.logger)
        }
        group.get("keys/:id/state") { _, context in try await self.state(context.parameters.require("id")) }
        group.post("keys/:id/state/reset") { request, context in
            try await self.reset(context.parameters.require("id"), request: request, logger: context.logger)
        }
        // The former spelling of the reset, kept for existing scripts and deprecated in the API
        // document: a reset deletes no resource (the state still reads afterwards).
        group.delete("keys/:id/state") { request, context in
            try await self.reset(context.parameters.require("id"), request: request, logger: context.logger)
        }
        group.post("keys/:id/quota") { request, context in
            try await self.adjustQuota(context.parameters.require("id"), request: request, logger: context.logger)
        }
        group.get("keys/:id/usage") { request, context in
            try await self.usage(context.parameters.require("id"), request: request)
        }
        group.post("reload") { _, _ in try self.reload() }
    }

    // MARK: shared by the resources

    /// A key by id: this instance's keyring first, then (for a runtime key created on another
    /// instance a moment ago) the registry in Redis.
    func key(_ id: String) async throws -> (entry: KeyEntry?, record: KeyRecord) {
        let keyring = self.store.current.keyring
        if let known = keyring.key(id: id) {
            return known
        }
        guard let record = try await self.runtimeRecord(id) else {
            throw Self.unknownKey(id)
        }
        let entry = keyring.rules.plans[record.plan].map { KeyEntry(keyID: id, plan: $0) }
        return (entry, KeyRecord(id: id, name: record.name, plan: record.plan, created: record.created, source: .runtime))
    }

    /// A key whose plan is in force.
    func activeKey(_ id: String) async throws -> (entry: KeyEntry, record: KeyRecord) {
        let key = try await self.key(id)
        guard let entry = key.entry else {
            throw APIError(.conflict, code: "unknown_plan", message: "the key's plan \"\(key.record.plan)\" is not in the config")
        }
        return (entry, key.record)
    }

    func runtimeRecord(_ id: String) async throws -> RuntimeKey? {
        do {
            return try await self.registry.record(id: id)
        } catch {
            throw Self.backend(error)
        }
    }

    func inspect(_ entry: KeyEntry, limits: [Limit]) async throws -> (nowMs: Int64, limits: [StateScripts.LimitSnapshot]) {
        do {
            let values = try await self.script(.inspect, StateScripts.inspect(entry: entry, limits: limits))
            return try StateScripts.snapshots(limits: limits, values: values)
        } catch {
            throw Self.backend(error)
        }
    }

    func script(_ script: RedisScript, _ call: StateScripts.Call) async throws -> [Int64] {
        let reply = try await self.redis.run(
            script, keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) }
        )
        guard let values = reply.array?.compactMap(\.int) else {
            throw StateScripts.MalformedReply(description: "not an integer array")
        }
        return values
    }

    /// A request body as one of the ``AdminAPI`` request types.
    /// - Throws: ``APIError`` 400 `invalid_body` with `hint` when it is not, 413 or 415 from
    ///   the body checks.
    func decode<Body: Decodable>(_ type: Body.Type, from request: Request, hint: String) async throws -> Body {
        let body = try await JSONBody.collect(request, limit: self.store.current.config.bounds.maxBodyBytes)
        do {
            return try AdminAPI.decoder().decode(Body.self, from: Data(body.readableBytesView))
        } catch {
            throw APIError(.badRequest, code: "invalid_body", message: hint)
        }
    }

    /// An admin answer: `body` as JSON (``AdminAPI/encoder()``), `Cache-Control: no-store`.
    static func response(_ body: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try AdminAPI.encoder().encode(body)
        var headers = HTTPFields()
        headers[.contentType] = DecisionResponse.jsonContentType
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func timestamp(ms: Int64) -> String {
        QuotaCalendar.timestamp(seconds: QuotaCalendar.floorDiv(ms, 1000))
    }

    // MARK: errors

    /// A plan a request body names is not in the config: 409, a conflict with the config in
    /// force (a reload may add it), as when a runtime key's plan has left the config. Not 404,
    /// which would say the target resource (the key, the key collection) is missing.
    static func unknownPlan(_ plan: String) -> APIError {
        APIError(.conflict, code: "unknown_plan", message: "there is no plan \"\(plan)\"")
    }

    static func unknownKey(_ id: String) -> APIError {
        APIError(.notFound, code: "unknown_key", message: "no API key has the id \"\(id)\"")
    }

    static func configKey() -> APIError {
        APIError(.conflict, code: "config_key", message: "this key is declared in the config file: change it there")
    }

    static func noQuota(_ plan: String) -> APIError {
        APIError(.conflict, code: "no_quota", message: "plan \"\(plan)\" has no quota")
    }

    static func backend(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        return APIError.backendUnavailable("\(error)")
    }
}
