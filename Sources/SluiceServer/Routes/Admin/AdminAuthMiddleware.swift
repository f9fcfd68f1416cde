import Hummingbird
import HTTPTypes
import SluiceCore

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
