import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore

/// `POST /v1/check`: validate, decide, answer with the decision and its headers.
struct CheckRoute: Sendable {
    let decider: Decider
    let store: ConfigStore

    func register(on router: Router<SluiceRequestContext>) {
        router.post("/v1/check/batch") { request, context in
            try await self.handleBatch(request, context: context)
        }
    }

    /// `POST /v1/check/batch`: `{"checks": [...]}` → `{"results": [...]}`, in order; each result
    /// is a /v1/check body or an `{"error": {...}}` object for an item that is itself invalid.
    func handleBatch(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let snapshot = self.store.current
        try ClientTokens.verify(request.headers, snapshot: snapshot)
        let config = snapshot.config
        let bounds = config.bounds
        let body = try await self.collect(request, limit: bounds.maxBatchBodyBytes)
        let requests: [Result<CheckRequest, InputError>]
        do {
            requests = try CheckRequest.parseBatch(json: Data(body.readableBytesView), bounds: bounds)
        } catch {
            throw APIError(error)
        }
        let items = await self.decider.decideBatch(requests, keyring: snapshot.keyring, on: context.eventLoop)
        defer { self.decider.metrics?.recordCheck(.batch, since: start) }
        var writer = JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: 64 + 300 * items.count))
        writer.beginObject()
        writer.beginArray("results")
        for item in items {
            switch item {
            case .decision(let decision):
                DecisionResponse.write(decision, into: &writer)
            case .error(let code, let message):
                writer.beginObject()
                writer.beginObject("error")
                writer.field("code", code)
                writer.field("message", message)
                writer.endObject()
                writer.endObject()
            }
        }
        writer.endArray()
        writer.endObject()
        var headers = HTTPFields()
        headers[.contentType] = DecisionResponse.jsonContentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: writer.buffer))
    }

    /// The body, after the content-type and size checks.
    private func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        if let contentType = request.headers[.contentType], !Self.isJSON(contentType) {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be application/json")
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError(InputError.bodyTooLarge(limit))
        }
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(InputError.bodyTooLarge(limit))
        }
    }

    func handle(_ request: Request, context: SluiceRequestContext) async throws -> Response {
        let start = ContinuousClock.now
        let snapshot = self.store.current
        try ClientTokens.verify(request.headers, snapshot: snapshot)
        let bounds = snapshot.config.bounds
        let body = try await self.collect(request, limit: bounds.maxBodyBytes)
        let checkRequest: CheckRequest
        do {
            checkRequest = try CheckRequest.parse(json: Data(body.readableBytesView), bounds: bounds)
        } catch {
            throw APIError(error)
        }
        let outcome = await self.decider.decide(checkRequest, keyring: snapshot.keyring, on: context.eventLoop)
        self.decider.metrics?.recordCheck(.check, since: start)
        switch outcome {
        case .decision(let decision, let styles):
            return DecisionResponse.response(for: decision, styles: styles, allocator: ByteBufferAllocator())
        case .backendUnavailable(_, let detail):
            throw APIError.backendUnavailable(detail)
        }
    }

    /// `application/json`, with parameters, or any `+json` type.
    static func isJSON(_ contentType: String) -> Bool {
        if contentType == "application/json" { return true }
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        return mediaType == "application/json" || (mediaType.hasPrefix("application/") && mediaType.hasSuffix("+json"))
    }
}
