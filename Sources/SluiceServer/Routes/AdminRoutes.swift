import Foundation
import Hummingbird
import Logging
import HTTPTypes
import NIOCore
import SluiceCore
import SluiceRedis

/// `/admin/v1` (operators' API, behind bearer tokens) and `/metrics` (no token: the admin
/// listener is private and Prometheus scrapes it). Keys are addressed by key id, never by
/// the raw key.
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
        group.get("plans") { _, _ in self.plans() }
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

    // MARK: metrics

    func renderMetrics() async -> Response {
        let snapshot = self.store.current
        // Series of the plans in force start at 0, at the first scrape after start or reload.
        self.metrics.declare(plans: snapshot.config.rules.plans.values)
        self.metrics.sample(
            pendingRedisCommands: await self.redis.pendingCommands(),
            cacheEntries: self.cache?.count ?? 0,
            runtimeKeys: snapshot.keyring.runtimeKeyCount
        )
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.render())))
    }

    // MARK: plans

    func plans() -> Response {
        let config = self.store.current.config
        var writer = Self.writer()
        writer.beginObject()
        writer.beginArray("plans")
        for plan in config.rules.plans.values.sorted(by: { $0.name < $1.name }) {
            writer.beginObject()
            writer.field("name", plan.name)
            if let throttle = plan.throttle, case .bucket(let bucket) = throttle.kind {
                writer.beginObject("throttle")
                writer.field("rate", number: bucket.rate)
                writer.field("burst", bucket.burst)
                writer.endObject()
            }
            if let quota = plan.quota, case .quota(let q) = quota.kind {
                writer.beginObject("quota")
                writer.field("limit", q.limit)
                writer.field("period", q.period.rawValue)
                writer.field("offset_hours", q.offsetHours)
                writer.field("initial_offset", q.initialOffset)
                writer.endObject()
            }
            writer.field("on_backend_error", plan.onBackendError.rawValue)
            writer.field("shadow", plan.shadow)
            writer.field("headers", strings: plan.headers.map(\.rawValue).sorted())
            Self.write(routes: plan.routes, to: &writer)
            if let stages = plan.stages {
                // Absent: the plan covers every stage.
                writer.beginArray("stages")
                for (name, rules) in stages.sorted(by: { $0.key < $1.key }) {
                    writer.beginObject()
                    writer.field("name", name)
                    Self.write(routes: rules, to: &writer)
                    writer.endObject()
                }
                writer.endArray()
            }
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.response(noStore: true)
    }

    /// A `routes` array of the plan view: each rule's key, its limit's name, rate, burst.
    private static func write(routes: [RouteRule], to writer: inout JSONWriter) {
        writer.beginArray("routes")
        for rule in routes {
            guard case .bucket(let bucket) = rule.limit.kind else { continue }
            writer.beginObject()
            writer.field("key", rule.key)
            writer.field("limit", rule.limit.name)
            writer.field("rate", number: bucket.rate)
            writer.field("burst", bucket.burst)
            writer.field("additional", rule.additional)
            writer.endObject()
        }
        writer.endArray()
    }

    // MARK: keys

    func lookup(_ request: Request) async throws -> Response {
        struct Body: Decodable { let api_key: String }
        let body = try await self.decode(Body.self, from: request, hint: #"send {"api_key": "..."}"#)
        guard !body.api_key.isEmpty else {
            throw APIError(.badRequest, code: "invalid_body", message: "api_key must not be empty")
        }
        let keyring = self.store.current.keyring
        let id = keyring.keyID(apiKey: body.api_key)
        let known = keyring.key(id: id)
        var writer = Self.writer()
        writer.beginObject()
        writer.field("id", id)
        writer.field("known", known != nil)
        writer.field("plan", known?.record.plan)
        writer.field("source", known?.record.source.rawValue)
        writer.endObject()
        return writer.response(noStore: true)
    }

    func create(_ request: Request, logger: Logger) async throws -> Response {
        struct Body: Decodable {
            let plan: String
            let api_key: String?
            let name: String?
        }
        let body = try await self.decode(Body.self, from: request, hint: #"send {"plan": "...", "api_key"?: "...", "name"?: "..."}"#)
        let snapshot = self.store.current
        guard snapshot.config.rules.plans[body.plan] != nil else {
            throw Self.unknownPlan(body.plan)
        }
        let apiKey: String
        if let given = body.api_key {
            guard !given.isEmpty, given.utf8.count <= snapshot.config.bounds.maxAPIKeyBytes else {
                throw APIError(
                    .badRequest, code: "invalid_body",
                    message: "api_key must be 1-\(snapshot.config.bounds.maxAPIKeyBytes) bytes"
                )
            }
            apiKey = given
        } else {
            apiKey = Self.generateKey()
        }
        try Self.validateName(body.name)
        let id = snapshot.keyring.keyID(apiKey: apiKey)
        if snapshot.config.rules.byID[id] != nil {
            throw APIError(.conflict, code: "key_exists", message: "this API key is declared in the config file")
        }
        let record = RuntimeKey(id: id, plan: body.plan, name: body.name, created: Self.nowMs())
        try await self.change(
            .create, id: id, record: record, refused: APIError(.conflict, code: "key_exists", message: "a runtime key with this value exists")
        )
        logger.info("runtime key created", metadata: ["key_id": "\(id)", "plan": "\(body.plan)"])
        var writer = Self.writer()
        writer.beginObject()
        writer.field("id", id)
        writer.field("api_key", apiKey)
        writer.field("plan", record.plan)
        writer.field("name", record.name)
        writer.field("created", Self.timestamp(ms: record.created))
        writer.field("source", KeySource.runtime.rawValue)
        writer.endObject()
        return writer.response(status: .created, noStore: true)
    }

    func list(_ request: Request) throws -> Response {
        let query = request.uri.queryParameters
        let keyring = self.store.current.keyring
        var limit = 100
        if let text = query["limit"] {
            guard let value = Int(String(text)), (1...1000).contains(value) else {
                throw APIError(.badRequest, code: "invalid_query", message: "limit must be an integer 1-1000")
            }
            limit = value
        }
        let plan = query["plan"].map(String.init)
        if let plan, keyring.rules.plans[plan] == nil {
            // Here the URI itself names the plan: nothing answers to it.
            throw APIError(.notFound, code: "unknown_plan", message: "there is no plan \"\(plan)\"")
        }
        let cursor = query["cursor"].map(String.init)
        let page = keyring.page(plan: plan, after: cursor, limit: limit)
        var writer = Self.writer(capacity: 128 + 160 * page.keys.count)
        writer.beginObject()
        writer.beginArray("keys")
        for record in page.keys {
            Self.write(record, into: &writer)
        }
        writer.endArray()
        writer.field("next_cursor", page.next)
        writer.endObject()
        return writer.response(noStore: true)
    }

    func show(_ id: String) async throws -> Response {
        let key = try await self.key(id)
        var writer = Self.writer()
        Self.write(key.record, into: &writer)
        return writer.response(noStore: true)
    }

    func move(_ id: String, request: Request, logger: Logger) async throws -> Response {
        struct Body: Decodable { let plan: String }
        let body = try await self.decode(Body.self, from: request, hint: #"send {"plan": "..."}"#)
        let snapshot = self.store.current
        guard snapshot.config.rules.plans[body.plan] != nil else {
            throw Self.unknownPlan(body.plan)
        }
        if snapshot.config.rules.byID[id] != nil {
            throw Self.configKey()
        }
        guard var record = try await self.runtimeRecord(id) else {
            throw Self.unknownKey(id)
        }
        record.plan = body.plan
        try await self.change(.update, id: id, record: record, refused: Self.unknownKey(id))
        logger.info("runtime key moved", metadata: ["key_id": "\(id)", "plan": "\(body.plan)"])
        var writer = Self.writer()
        Self.write(KeyRecord(id: id, name: record.name, plan: record.plan, created: record.created, source: .runtime), into: &writer)
        return writer.response(noStore: true)
    }

    func revoke(_ id: String, logger: Logger) async throws -> Response {
        if self.store.current.config.rules.byID[id] != nil {
            throw Self.configKey()
        }
        try await self.change(.delete, id: id, record: nil, refused: Self.unknownKey(id))
        logger.info("runtime key revoked", metadata: ["key_id": "\(id)"])
        return Response(status: .noContent, headers: [.cacheControl: "no-store"])
    }

    // MARK: state

    func state(_ id: String) async throws -> Response {
        let (entry, record) = try await self.activeKey(id)
        let limits = entry.plan.allLimits
        let snapshots: [StateScripts.LimitSnapshot]
        if limits.isEmpty {
            snapshots = []
        } else {
            snapshots = try await self.inspect(entry, limits: limits).limits
        }
        var writer = Self.writer(capacity: 256 + 256 * snapshots.count)
        writer.beginObject()
        writer.field("id", id)
        writer.field("plan", record.plan)
        writer.field("source", record.source.rawValue)
        writer.beginArray("limits")
        for snapshot in snapshots {
            Self.write(snapshot, into: &writer)
        }
        writer.endArray()
        writer.endObject()
        return writer.response(noStore: true)
    }

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
        var writer = Self.writer()
        writer.beginObject()
        writer.field("id", id)
        writer.field("reset", strings: limits.map(\.name))
        writer.endObject()
        return writer.response(noStore: true)
    }

    func adjustQuota(_ id: String, request: Request, logger: Logger) async throws -> Response {
        struct Body: Decodable {
            let add: Int?
            let remaining: Int?
        }
        let hint = #"send {"add": N} (N >= 1) or {"remaining": N} (N >= 0)"#
        let body = try await self.decode(Body.self, from: request, hint: hint)
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
        var writer = Self.writer()
        Self.write(snapshot, into: &writer)
        return writer.response(noStore: true)
    }

    func usage(_ id: String, request: Request) async throws -> Response {
        var days = 7
        if let text = request.uri.queryParameters["days"] {
            guard let value = Int(String(text)), (1...366).contains(value) else {
                throw APIError(.badRequest, code: "invalid_query", message: "days must be an integer 1-366")
            }
            days = value
        }
        let (entry, record) = try await self.activeKey(id)
        guard let quotaLimit = entry.plan.quota, case .quota(let quota) = quotaLimit.kind else {
            throw Self.noQuota(entry.plan.name)
        }
        // The usage record is asked for while the state is read: both are in flight at once.
        async let usage = self.redis.command(["HGETALL", RedisArgument(bytes: entry.usageKey)])
        let (nowMs, states) = try await self.inspect(entry, limits: [quotaLimit])
        let reply: RedisReply
        do {
            reply = try await usage
        } catch {
            throw Self.backend(error)
        }
        var usedByDay: [Int64: Int] = [:]
        for (field, value) in reply.pairs {
            if let day = field.int, let used = value.int {
                usedByDay[day] = Int(clamping: used)
            }
        }
        let report = UsageReport(
            quota: quota, usedByDay: usedByDay, currentLimit: states.first?.limit ?? quota.limit, currentRemaining: states.first?.remaining,
            nowSeconds: QuotaCalendar.floorDiv(nowMs, 1000), count: days
        )
        var writer = Self.writer(capacity: 256 + 128 * days)
        writer.beginObject()
        writer.field("id", id)
        writer.field("plan", record.plan)
        writer.beginObject("quota")
        writer.field("limit", quota.limit)
        writer.field("period", quota.period.rawValue)
        writer.field("offset_hours", quota.offsetHours)
        writer.endObject()
        writer.field("retention_days", entry.plan.usageRetentionDays)
        writer.beginArray("days")
        for day in report.days {
            writer.beginObject()
            writer.field("date", day.date)
            writer.field("start", QuotaCalendar.timestamp(seconds: day.start))
            writer.field("end", QuotaCalendar.timestamp(seconds: day.end))
            writer.field("used", day.used)
            writer.field("remaining", day.remaining)
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return writer.response(noStore: true)
    }

    // MARK: reload

    func reload() throws -> Response {
        guard let reloader = self.reloader else {
            throw APIError(.notFound, code: "not_found", message: "this instance was not started from a config file")
        }
        switch reloader.reload() {
        case .success(let config):
            var writer = Self.writer()
            writer.beginObject()
            writer.field("status", "reloaded")
            writer.field("plans", config.rules.plans.count)
            writer.field("api_keys", config.rules.keyCount)
            writer.endObject()
            return writer.response(noStore: true)
        case .failure(let error):
            throw APIError(.badRequest, code: "invalid_config", message: error.description)
        }
    }

    // MARK: helpers

    /// A key by id: this instance's keyring first, then (for a runtime key created on another
    /// instance a moment ago) the registry in Redis.
    private func key(_ id: String) async throws -> (entry: KeyEntry?, record: KeyRecord) {
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
    private func activeKey(_ id: String) async throws -> (entry: KeyEntry, record: KeyRecord) {
        let key = try await self.key(id)
        guard let entry = key.entry else {
            throw APIError(.conflict, code: "unknown_plan", message: "the key's plan \"\(key.record.plan)\" is not in the config")
        }
        return (entry, key.record)
    }

    /// A registry change, its refusal answered with `refused`, a Redis failure with 503.
    private func change(_ operation: KeyRegistry.Operation, id: String, record: RuntimeKey?, refused: APIError) async throws {
        do {
            try await self.registry.change(operation, id: id, record: record)
        } catch is KeyRegistry.Refused {
            throw refused
        } catch {
            throw Self.backend(error)
        }
    }

    private func runtimeRecord(_ id: String) async throws -> RuntimeKey? {
        do {
            return try await self.registry.record(id: id)
        } catch {
            throw Self.backend(error)
        }
    }

    private func inspect(_ entry: KeyEntry, limits: [Limit]) async throws -> (nowMs: Int64, limits: [StateScripts.LimitSnapshot]) {
        do {
            let values = try await self.script(.inspect, StateScripts.inspect(entry: entry, limits: limits))
            return try StateScripts.snapshots(limits: limits, values: values)
        } catch {
            throw Self.backend(error)
        }
    }

    private func script(_ script: RedisScript, _ call: StateScripts.Call) async throws -> [Int64] {
        let reply = try await self.redis.run(
            script, keys: call.keys.map { RedisArgument(bytes: $0) }, arguments: call.arguments.map { RedisArgument(bytes: $0) }
        )
        guard let values = reply.array?.compactMap(\.int) else {
            throw StateScripts.MalformedReply(description: "not an integer array")
        }
        return values
    }

    private func decode<Body: Decodable>(_ type: Body.Type, from request: Request, hint: String) async throws -> Body {
        let body = try await JSONBody.collect(request, limit: self.store.current.config.bounds.maxBodyBytes)
        do {
            return try JSONDecoder().decode(Body.self, from: Data(body.readableBytesView))
        } catch {
            throw APIError(.badRequest, code: "invalid_body", message: hint)
        }
    }

    private static func validateName(_ name: String?) throws {
        guard let name else { return }
        if name.utf8.count > self.maxNameBytes || name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw APIError(.badRequest, code: "invalid_body", message: "name must be at most \(self.maxNameBytes) bytes of printable text")
        }
    }

    /// A new API key: `sk-` and 192 random bits, base64url.
    static func generateKey() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "sk-" + Base64URL.encode(bytes)
    }

    private static func nowMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    private static func timestamp(ms: Int64) -> String {
        QuotaCalendar.timestamp(seconds: QuotaCalendar.floorDiv(ms, 1000))
    }

    private static func write(_ record: KeyRecord, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("id", record.id)
        writer.field("name", record.name)
        writer.field("plan", record.plan)
        writer.field("created", record.created.map { Self.timestamp(ms: $0) })
        writer.field("source", record.source.rawValue)
        writer.endObject()
    }

    private static func write(_ snapshot: StateScripts.LimitSnapshot, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("name", snapshot.name)
        switch snapshot.kind {
        case .bucket: writer.field("kind", "bucket")
        case .quota: writer.field("kind", "quota")
        }
        writer.field("limit", snapshot.limit)
        writer.field("remaining", snapshot.remaining)
        writer.field("reset_after_ms", snapshot.resetAfterMs)
        writer.field("ttl_ms", snapshot.ttlMs)
        switch snapshot.kind {
        case .bucket(let bucket):
            writer.field("rate", number: bucket.rate)
            writer.field("burst", bucket.burst)
            writer.field("tokens", number: snapshot.tokens)
        case .quota(let quota):
            writer.field("base_limit", quota.limit)
            writer.field("extension", snapshot.extension_)
            writer.field("used", snapshot.used)
            writer.field("period", quota.period.rawValue)
            writer.field("offset_hours", quota.offsetHours)
            writer.field("window_start", QuotaCalendar.timestamp(seconds: snapshot.windowStart))
            writer.field("window_end", QuotaCalendar.timestamp(seconds: snapshot.windowEnd))
        }
        writer.endObject()
    }

    /// A plan a request body names is not in the config: 409, a conflict with the config in
    /// force (a reload may add it), as when a runtime key's plan has left the config. Not 404,
    /// which would say the target resource (the key, the key collection) is missing.
    private static func unknownPlan(_ plan: String) -> APIError {
        APIError(.conflict, code: "unknown_plan", message: "there is no plan \"\(plan)\"")
    }

    private static func unknownKey(_ id: String) -> APIError {
        APIError(.notFound, code: "unknown_key", message: "no API key has the id \"\(id)\"")
    }

    private static func configKey() -> APIError {
        APIError(.conflict, code: "config_key", message: "this key is declared in the config file: change it there")
    }

    private static func noQuota(_ plan: String) -> APIError {
        APIError(.conflict, code: "no_quota", message: "plan \"\(plan)\" has no quota")
    }

    private static func backend(_ error: any Error) -> APIError {
        if let error = error as? APIError { return error }
        return APIError.backendUnavailable("\(error)")
    }

    private static func writer(capacity: Int = 256) -> JSONWriter {
        JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: capacity))
    }

}

/// Bearer-token check for `/admin/v1`: 404 when no token is configured, 401 without a
/// token, 403 with a wrong one.
struct AdminAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let store: ConfigStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let digests = self.store.current.config.admin?.tokenDigests ?? []
        guard !digests.isEmpty else {
            throw APIError(.notFound, code: "not_found", message: "the admin API is disabled: configure admin tokens")
        }
        guard let token = request.headers[.authorization].flatMap(BearerTokens.credential(in:)) else {
            throw APIError(.unauthorized, code: "missing_token", message: "send Authorization: Bearer <admin token>")
        }
        guard BearerTokens.matches(String(token), digests: digests) else {
            throw APIError(.forbidden, code: "invalid_token", message: "the admin token is not valid")
        }
        return try await next(request, context)
    }
}
