import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore

/// `POST /v1/check`: validate, decide, answer with the decision and its headers.
struct CheckRoute: Sendable {
    let decider: Decider
    let config: SluiceConfig

    func register(on router: Router<SluiceRequestContext>) {
        router.post("/v1/check") { request, context in
            try await self.handle(request, context: context)
        }
    }

    func handle(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        let bounds = self.config.bounds
        if let contentType = request.headers[.contentType], !Self.isJSON(contentType) {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be application/json")
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > bounds.maxBodyBytes {
            throw APIError(InputError.bodyTooLarge(bounds.maxBodyBytes))
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: bounds.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw APIError(InputError.bodyTooLarge(bounds.maxBodyBytes))
        }
        let checkRequest: CheckRequest
        do {
            checkRequest = try CheckRequest.parse(json: Data(body.readableBytesView), bounds: bounds)
        } catch {
            throw APIError(error)
        }
        switch await self.decider.decide(checkRequest, rules: self.config.rules, on: context.eventLoop) {
        case .decision(let decision, let styles):
            return DecisionResponse.response(for: decision, styles: styles, allocator: ByteBufferAllocator())
        case .backendUnavailable(_, let detail):
            throw APIError.backendUnavailable(detail)
        }
    }

    /// `application/json`, with parameters, or any `+json` type.
    static func isJSON(_ contentType: String) -> Bool {
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        return mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json"))
    }
}
