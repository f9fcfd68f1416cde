import Foundation
import Hummingbird
import Logging
import HTTPTypes
import NIOCore
import NIOHTTP1
import SluiceCore

/// An error answer: `{"error": {"code": ..., "message": ...}}` with an HTTP status.
///
/// The only place where failures become HTTP statuses.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let message: String

    init(_ status: HTTPResponse.Status, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// 400, or 413 when the body as a whole is too large.
    init(_ error: InputError) {
        self.init(error.tooLarge ? .contentTooLarge : .badRequest, code: error.code, message: error.message)
    }

    /// The challenge every 401 carries: API keys, admin and gateway tokens are all bearer
    /// credentials (the gateway token travels in `X-Sluice-Token`, as the message says).
    static let challenge = #"Bearer realm="sluice""#

    /// A request whose framing the HTTP decoder refused (bad chunking, conflicting lengths,
    /// oversized headers, a body cut short by the client's half-close, garbage).
    static func malformedRequest(_ error: any Error) -> APIError {
        APIError(.badRequest, code: "malformed_request", message: "the request is not well-formed HTTP/1.1 (\(error))")
    }

    /// A body that ended before its declared length (the client closed its side).
    static let incompleteBody = APIError(.badRequest, code: "incomplete_body", message: "the request body ended before it was complete")

    static func backendUnavailable(_ detail: String) -> APIError {
        APIError(.serviceUnavailable, code: "backend_unavailable", message: "Redis cannot answer: \(detail)")
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        self.response(allocator: ByteBufferAllocator())
    }

    func response(allocator: ByteBufferAllocator) -> Response {
        let (headers, body) = self.rendered(allocator: allocator)
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: body))
    }

    /// The error's header fields and JSON body.
    func rendered(allocator: ByteBufferAllocator) -> (HTTPFields, ByteBuffer) {
        var writer = JSONWriter(buffer: allocator.buffer(capacity: 96 + self.message.utf8.count))
        writer.errorObject(code: self.code, message: self.message)
        var headers = HTTPFields()
        headers[.contentType] = DecisionResponse.jsonContentType
        if self.status == .unauthorized {
            // RFC 9110 §11.6.1: a 401 names the scheme that would work.
            headers[.wwwAuthenticate] = Self.challenge
        }
        return (headers, writer.buffer)
    }
}

/// Turns every error that reaches the edge into the JSON error shape: Hummingbird's
/// own (404, 405, 413...) included, and anything unexpected into a 500 without detail.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return error.response(allocator: ByteBufferAllocator())
        } catch let error as HTTPError {
            if error.status == .notFound, let methods = KnownRoutes.methods(forPath: request.uri.path), !methods.contains(request.method) {
                var response = APIError(
                    .methodNotAllowed, code: "method_not_allowed",
                    message: "\(request.method.rawValue) is not allowed here; use \(methods.map(\.rawValue).joined(separator: ", "))"
                ).response(allocator: ByteBufferAllocator())
                response.headers[.allow] = methods.map(\.rawValue).joined(separator: ", ")
                return response
            }
            let code: String
            switch error.status {
            case .notFound: code = "not_found"
            case .methodNotAllowed: code = "method_not_allowed"
            case .contentTooLarge: code = "body_too_large"
            case .badRequest: code = "bad_request"
            case .unsupportedMediaType: code = "unsupported_media_type"
            default: code = error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
            }
            let message = error.body ?? error.status.reasonPhrase
            return APIError(error.status, code: code, message: message).response(allocator: ByteBufferAllocator())
        } catch let error as HTTPParserError {
            // Framing broke while a route read its body (the decoder's error reaches the body stream).
            var response = APIError.malformedRequest(error).response(allocator: ByteBufferAllocator())
            response.headers[.connection] = "close"
            return response
        } catch is NIOTooManyBytesError {
            return APIError(.contentTooLarge, code: "body_too_large", message: "request body is too large")
                .response(allocator: ByteBufferAllocator())
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(error)"])
            return APIError(.internalServerError, code: "internal_error", message: "internal error")
                .response(allocator: ByteBufferAllocator())
        }
    }
}
