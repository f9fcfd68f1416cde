import Foundation
import Hummingbird
import Logging
import SluiceAdminAPI
import SluiceCore

extension AdminRoutes {
    /// `POST /admin/v1/keys/lookup`: the key id of a raw key, and its plan when it is known.
    func lookup(_ request: Request) async throws -> Response {
        let body = try await self.decode(AdminAPI.LookupRequest.self, from: request, hint: #"send {"api_key": "..."}"#)
        guard !body.apiKey.isEmpty else {
            throw APIError(.badRequest, code: "invalid_body", message: "api_key must not be empty")
        }
        let keyring = self.store.current.keyring
        let id = keyring.keyID(apiKey: body.apiKey)
        let known = keyring.key(id: id)
        return try Self.response(
            AdminAPI.KeyLookup(
                id: id, known: known != nil, plan: known?.record.plan, source: known.map { AdminAPI.KeySource($0.record.source) }
            )
        )
    }

    /// `POST /admin/v1/keys`: a runtime key, generated unless the body gives one.
    func create(_ request: Request, logger: Logger) async throws -> Response {
        let body = try await self.decode(
            AdminAPI.CreateKeyRequest.self, from: request, hint: #"send {"plan": "...", "api_key"?: "...", "name"?: "..."}"#
        )
        let snapshot = self.store.current
        guard snapshot.config.rules.plans[body.plan] != nil else {
            throw Self.unknownPlan(body.plan)
        }
        let apiKey: String
        if let given = body.apiKey {
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
        let created = AdminAPI.CreatedKey(
            id: id, apiKey: apiKey, plan: record.plan, name: record.name, created: Self.timestamp(ms: record.created), source: .runtime
        )
        return try Self.response(created, status: .created)
    }

    /// `GET /admin/v1/keys`: a page of keys by id, optionally of one plan.
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
        return try Self.response(AdminAPI.KeyPage(keys: page.keys.map(AdminAPI.KeyRecord.init), nextCursor: page.next))
    }

    /// `GET /admin/v1/keys/{id}`.
    func show(_ id: String) async throws -> Response {
        let key = try await self.key(id)
        return try Self.response(AdminAPI.KeyRecord(key.record))
    }

    /// `PUT /admin/v1/keys/{id}`: a runtime key moves to another plan.
    func move(_ id: String, request: Request, logger: Logger) async throws -> Response {
        let body = try await self.decode(AdminAPI.MoveKeyRequest.self, from: request, hint: #"send {"plan": "..."}"#)
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
        let moved = KeyRecord(id: id, name: record.name, plan: record.plan, created: record.created, source: .runtime)
        return try Self.response(AdminAPI.KeyRecord(moved))
    }

    /// `DELETE /admin/v1/keys/{id}`: a runtime key stops working everywhere (204).
    func revoke(_ id: String, logger: Logger) async throws -> Response {
        if self.store.current.config.rules.byID[id] != nil {
            throw Self.configKey()
        }
        try await self.change(.delete, id: id, record: nil, refused: Self.unknownKey(id))
        logger.info("runtime key revoked", metadata: ["key_id": "\(id)"])
        return Response(status: .noContent, headers: [.cacheControl: "no-store"])
    }

    /// A registry change, its refusal answered with `refused`, a Redis failure with 503.
    private func change(_ operation: RegistryScript.Operation, id: String, record: RuntimeKey?, refused: APIError) async throws {
        do {
            try await self.registry.change(operation, id: id, record: record)
        } catch is RegistryScript.Refused {
            throw refused
        } catch {
            throw Self.backend(error)
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
}
