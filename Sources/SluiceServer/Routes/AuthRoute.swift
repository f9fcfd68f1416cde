import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore

/// `/v1/auth` (any method): the forward-auth endpoint for gateways that can only send
/// a sub-request with the original request's headers (nginx `auth_request`, Traefik
/// `ForwardAuth`, Caddy `forward_auth`, HAProxy, Envoy `ext_authz`).
///
/// The key comes from `server.api_key_header` (default `X-API-Key`) or
/// `Authorization: Bearer`; the cost from `X-RateLimit-Cost`; the API stage from `X-Sluice-Stage`
/// (set by the gateway only); the route from the one source
/// `server.forward_auth.route_from` trusts (docs/ARCHITECTURE.md, "Forward auth"):
/// `X-Original-Method` + `X-Original-URI`, `X-Forwarded-Method` + `X-Forwarded-Uri`, or the
/// path after `/v1/auth/` (Envoy's path form, which wins under every setting since the gateway
/// builds that URL itself). Answers: 204 allowed, 429 denied (the decision as JSON), 401 no key,
/// 403 unknown key or a stage the plan does not cover, 400 bad headers, 503 when Redis is down and the plan fails closed (204
/// when it fails open).
///
/// A gateway that can pass on only 401 and 403 without dropping the client's connection
/// (nginx `auth_request` turns anything else into a 500) sends `X-Sluice-Deny-Status: 403`:
/// a rate-limit denial then comes as 403, and every answer names the status Sluice means in
/// `X-Sluice-Status`.
struct AuthRoute: Sendable {
    static let methods: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .head, .options]
    static let originalMethod = HTTPField.Name("X-Original-Method")!
    static let originalURI = HTTPField.Name("X-Original-URI")!
    static let forwardedMethod = HTTPField.Name("X-Forwarded-Method")!
    static let forwardedURI = HTTPField.Name("X-Forwarded-Uri")!
    static let cost = HTTPField.Name("X-RateLimit-Cost")!
    static let denyStatus = HTTPField.Name("X-Sluice-Deny-Status")!
    static let stage = HTTPField.Name("X-Sluice-Stage")!
    static let meantStatus = HTTPField.Name("X-Sluice-Status")!

    let decider: Decider
    let store: ConfigStore

    init(decider: Decider, store: ConfigStore) {
        self.decider = decider
        self.store = store
    }

    func register(on router: Router<SluiceRequestContext>) {
        for method in Self.methods {
            router.on("/v1/auth", method: method) { request, context in
                try await self.handle(request, context: context)
            }
            // Envoy's ext_authz (HTTP) appends the original path to the auth path.
            router.on("/v1/auth/**", method: method) { request, context in
                try await self.handle(request, context: context)
            }
        }
    }

    func handle(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        guard let remap = request.headers[Self.denyStatus] else {
            return try await self.decide(request, context: context)
        }
        guard remap == "403" else {
            throw APIError(.badRequest, code: "invalid_deny_status", message: "X-Sluice-Deny-Status may only be 403")
        }
        var response: Response
        do {
            response = try await self.decide(request, context: context)
        } catch let error as APIError {
            response = error.response(allocator: ByteBufferAllocator())
        }
        response.headers[Self.meantStatus] = String(response.status.code)
        if response.status == .tooManyRequests {
            response.status = .forbidden
        }
        return response
    }

    private func decide(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        var suffixRoute: RequestRoute?
        let path = request.uri.path
        if path.hasPrefix("/v1/auth/") {
            suffixRoute = RequestRoute(method: request.method.rawValue, target: path.dropFirst("/v1/auth".count))
        }
        let start = ContinuousClock.now
        let snapshot = self.store.current
        try ClientTokens.verify(request.headers, snapshot: snapshot)
        let checkRequest = try self.checkRequest(from: request.headers, pathRoute: suffixRoute, snapshot: snapshot)
        // Envoy's ext_authz (the path form) takes only 200 as "allowed"; the others take any 2xx.
        let allowedStatus: HTTPResponse.Status = suffixRoute == nil ? .noContent : .ok
        let outcome = await self.decider.decide(checkRequest, keyring: snapshot.keyring, on: context.eventLoop)
        self.decider.metrics?.recordCheck(.auth, since: start)
        switch outcome {
        case .decision(let decision, let styles):
            if decision.allowed {
                return DecisionResponse.emptyResponse(for: decision, styles: styles, status: allowedStatus)
            }
            if decision.reason == .unknownAPIKey || decision.reason == .stageNotInPlan {
                return DecisionResponse.response(for: decision, styles: styles, status: .forbidden, allocator: ByteBufferAllocator())
            }
            return DecisionResponse.response(for: decision, styles: styles, status: .tooManyRequests, allocator: ByteBufferAllocator())
        case .backendUnavailable(_, let detail):
            throw APIError.backendUnavailable(detail)
        case .invalid(let error):
            throw APIError(error)
        }
    }

    /// The request a gateway's headers describe.
    /// - Throws: ``APIError`` 401 without a key, 400 for a malformed key, route or cost.
    /// - Parameter pathRoute: the route in the path after `/v1/auth` (Envoy), used when no
    ///   route headers came.
    func checkRequest(from headers: HTTPFields, pathRoute: RequestRoute?, snapshot: ConfigStore.Snapshot) throws -> CheckRequest {
        let bounds = snapshot.config.bounds
        var apiKey = headers[snapshot.apiKeyHeader]
        if apiKey == nil || apiKey?.isEmpty == true, let authorization = headers[.authorization] {
            if let credential = BearerTokens.credential(in: authorization) {
                apiKey = credential.trimmingCharacters(in: .whitespaces)
            }
        }
        guard let apiKey, !apiKey.isEmpty else {
            throw APIError(
                .unauthorized, code: "missing_api_key",
                message: "send the API key in \(snapshot.config.apiKeyHeader) or Authorization: Bearer"
            )
        }
        guard apiKey.utf8.count <= bounds.maxAPIKeyBytes else {
            throw APIError(.badRequest, code: "api_key_too_long", message: "the API key is longer than \(bounds.maxAPIKeyBytes) bytes")
        }

        var route: RequestRoute?
        // One trusted pair, never mixed: the other pair may be a client's.
        let method: String?
        let target: String?
        switch snapshot.config.routeSource {
        case .original: (method, target) = (headers[Self.originalMethod], headers[Self.originalURI])
        case .forwarded: (method, target) = (headers[Self.forwardedMethod], headers[Self.forwardedURI])
        case .path: (method, target) = (nil, nil)
        }
        if let pathRoute {
            // The path form (Envoy) carries the request itself: headers a client could have
            // set do not override it.
            guard pathRoute.description.utf8.count <= bounds.maxRouteBytes else {
                throw APIError(.badRequest, code: "route_too_long", message: "the route is longer than \(bounds.maxRouteBytes) bytes")
            }
            route = pathRoute
        } else if let method, let target {
            guard method.utf8.count + 1 + RequestRoute.matchedLength(of: target) <= bounds.maxRouteBytes else {
                throw APIError(.badRequest, code: "route_too_long", message: "the route is longer than \(bounds.maxRouteBytes) bytes")
            }
            guard let parsed = RequestRoute(method: method, target: target) else {
                throw APIError(.badRequest, code: "invalid_route", message: "the original method and URI do not form a route")
            }
            route = parsed
        } else if method != nil || target != nil {
            throw APIError(.badRequest, code: "invalid_route", message: "send both the original method and the original URI")
        }

        var cost = 1
        if let text = headers[Self.cost] {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, trimmed.allSatisfy(\.isASCII), trimmed.allSatisfy(\.isNumber) else {
                throw APIError(.badRequest, code: "invalid_cost", message: "X-RateLimit-Cost must be a non-negative integer")
            }
            guard let value = Int(trimmed), value <= bounds.maxCost else {
                throw APIError(.badRequest, code: "cost_too_large", message: "X-RateLimit-Cost is larger than \(bounds.maxCost)")
            }
            // A peek answers "would it pass" and consumes nothing: as a gateway's gate it would
            // let every request through, so forward auth never peeks.
            guard value >= 1 else {
                throw APIError(.badRequest, code: "invalid_cost", message: "X-RateLimit-Cost must be at least 1 on /v1/auth")
            }
            cost = value
        }
        var stage: String?
        if let text = headers[Self.stage] {
            if let problem = CheckRequest.stageProblem(text) {
                throw APIError(.badRequest, code: "invalid_stage", message: "X-Sluice-Stage: \(problem)")
            }
            stage = text
        }
        return CheckRequest(apiKey: apiKey, route: route, cost: cost, stage: stage)
    }
}
