import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore

/// `/admin/v1`: operators' API, behind bearer tokens. Tokens are compared as SHA-256
/// digests in constant time; no token configured = the admin API is disabled (404).
struct AdminRoutes: Sendable {
    let store: ConfigStore
    let reloader: ConfigReloader?

    func register<Context: RequestContext>(on router: Router<Context>) {
        let group = router.group("admin/v1").add(middleware: AdminAuthMiddleware<Context>(store: self.store))
        group.get("plans") { _, _ in
            self.plans()
        }
        group.post("keys/lookup") { request, _ in
            try await self.lookup(request)
        }
        group.post("reload") { _, _ in
            try self.reload()
        }
    }

    func plans() -> Response {
        let config = self.store.current.config
        var writer = JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: 512))
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
                writer.endObject()
            }
            writer.field("on_backend_error", plan.onBackendError.rawValue)
            writer.field("shadow", plan.shadow)
            writer.field("headers", strings: plan.headers.map(\.rawValue).sorted())
            writer.beginArray("routes")
            for rule in plan.routes {
                guard case .bucket(let bucket) = rule.limit.kind else { continue }
                writer.beginObject()
                writer.field("key", rule.key)
                writer.field("rate", number: bucket.rate)
                writer.field("burst", bucket.burst)
                writer.field("additional", rule.additional)
                writer.endObject()
            }
            writer.endArray()
            writer.endObject()
        }
        writer.endArray()
        writer.endObject()
        return Self.json(writer)
    }

    func lookup(_ request: Request) async throws -> Response {
        let snapshot = self.store.current
        let body = try await request.body.collect(upTo: snapshot.config.bounds.maxBodyBytes)
        struct Lookup: Decodable { let api_key: String }
        guard let lookup = try? JSONDecoder().decode(Lookup.self, from: Data(body.readableBytesView)), !lookup.api_key.isEmpty else {
            throw APIError(.badRequest, code: "invalid_body", message: #"send {"api_key": "..."}"#)
        }
        let id = KeyDigester(secret: snapshot.config.keySecret).keyID(apiKey: lookup.api_key)
        let entry = snapshot.config.rules.resolve(apiKey: lookup.api_key)
        var writer = JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: 128))
        writer.beginObject()
        writer.field("id", id)
        writer.field("known", entry != nil)
        writer.field("plan", entry?.plan.name)
        writer.endObject()
        return Self.json(writer)
    }

    func reload() throws -> Response {
        guard let reloader = self.reloader else {
            throw APIError(.notFound, code: "not_found", message: "this instance was not started from a config file")
        }
        switch reloader.reload() {
        case .success(let config):
            var writer = JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: 128))
            writer.beginObject()
            writer.field("status", "reloaded")
            writer.field("plans", config.rules.plans.count)
            writer.field("api_keys", config.rules.keyCount)
            writer.endObject()
            return Self.json(writer)
        case .failure(let error):
            throw APIError(.badRequest, code: "invalid_config", message: error.description)
        }
    }

    static func json(_ writer: JSONWriter) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = DecisionResponse.jsonContentType
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: writer.buffer))
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
        guard let authorization = request.headers[.authorization] else {
            throw APIError(.unauthorized, code: "missing_token", message: "send Authorization: Bearer <admin token>")
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError(.unauthorized, code: "missing_token", message: "send Authorization: Bearer <admin token>")
        }
        let presented = KeyDigester.sha256(of: String(parts[1]))
        // Every digest is compared in full, whatever matches: the time does not tell which.
        var matched = false
        for digest in digests where Self.constantTimeEqual(digest, presented) {
            matched = true
        }
        guard matched else {
            throw APIError(.forbidden, code: "invalid_token", message: "the admin token is not valid")
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
