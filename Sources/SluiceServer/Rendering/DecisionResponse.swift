import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore

/// The HTTP response of a decision: JSON body and rate-limit headers.
enum DecisionResponse {
    static let jsonContentType = "application/json"

    /// Renders a decision with its JSON body (HTTP 200 for /v1/check).
    static func response(
        for decision: Decision,
        styles: Set<HeaderStyle>,
        status: HTTPResponse.Status = .ok,
        allocator: ByteBufferAllocator
    ) -> Response {
        let (headers, body) = self.rendered(decision, styles: styles, allocator: allocator)
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// A decision's header fields (content type and rate-limit headers) and JSON body.
    static func rendered(_ decision: Decision, styles: Set<HeaderStyle>, allocator: ByteBufferAllocator) -> (HTTPFields, ByteBuffer) {
        var writer = JSONWriter(buffer: allocator.buffer(capacity: 256 + 96 * decision.limits.count))
        self.write(decision, into: &writer)
        var headers = HTTPFields()
        headers.reserveCapacity(8)
        headers[.contentType] = self.jsonContentType
        RateLimitHeaders.add(for: decision, styles: styles, to: &headers)
        return (headers, writer.buffer)
    }

    /// A decision as headers only, with no body (204 for /v1/auth).
    static func emptyResponse(for decision: Decision, styles: Set<HeaderStyle>, status: HTTPResponse.Status) -> Response {
        var headers = HTTPFields()
        RateLimitHeaders.add(for: decision, styles: styles, to: &headers)
        return Response(status: status, headers: headers)
    }

    /// The decision's JSON object, as the README's API reference lists its fields.
    static func write(_ decision: Decision, into writer: inout JSONWriter) {
        self.write(decision, into: &writer) { _ in }
    }

    /// The decision's JSON object with more fields (a reservation's) before `limits`.
    static func write(_ decision: Decision, into writer: inout JSONWriter, extra: (inout JSONWriter) -> Void) {
        writer.beginObject()
        writer.field("allowed", decision.allowed)
        writer.field("plan", decision.plan)
        writer.field("limit", decision.limit)
        writer.field("remaining", decision.remaining)
        writer.field("reset_after_ms", decision.resetAfterMs)
        writer.field("retry_after_ms", decision.retryAfterMs)
        writer.field("denied_by", decision.deniedBy)
        if let reason = decision.reason {
            writer.field("reason", reason.rawValue)
        }
        if decision.degraded {
            writer.field("degraded", true)
        }
        if let shadowDeniedBy = decision.shadowDeniedBy {
            writer.field("shadow_denied", true)
            writer.field("shadow_denied_by", shadowDeniedBy)
        }
        extra(&writer)
        writer.beginArray("limits")
        for limit in decision.limits {
            self.writeLimit(name: limit.name, limit: limit.limit, remaining: limit.remaining, resetAfterMs: limit.resetAfterMs, into: &writer)
        }
        writer.endArray()
        writer.endObject()
    }

    /// One object of a `limits` array.
    static func writeLimit(name: String, limit: Int, remaining: Int, resetAfterMs: Int, into writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("name", name)
        writer.field("limit", limit)
        writer.field("remaining", remaining)
        writer.field("reset_after_ms", resetAfterMs)
        writer.endObject()
    }
}
