import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore

/// `POST /v1/check/batch` (`POST /v1/check` itself is answered in the channel pipeline:
/// see ``CheckChannelHandler``).
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
        let body = try await JSONBody.collect(request, limit: bounds.maxBatchBodyBytes)
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
                writer.errorObject(code: code, message: message)
            }
        }
        writer.endArray()
        writer.endObject()
        return writer.response()
    }
}
