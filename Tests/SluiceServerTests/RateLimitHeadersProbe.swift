import NIOCore
@testable import SluiceServer

/// Reaches the header helpers that are internal to the server module.
enum RateLimitHeadersProbe {
    static func goDuration(_ ms: Int) -> String { RateLimitHeaders.goDuration(milliseconds: ms) }
    static func sfString(_ value: String) -> String { RateLimitHeaders.sfString(value) }
    static func rfc3339(epochSeconds: Int64) -> String { RateLimitHeaders.rfc3339(epochSeconds: epochSeconds) }
    static func rfc3339(nowMs: Int64, plus afterMs: Int) -> String { RateLimitHeaders.rfc3339(resetAtMs: nowMs, plus: afterMs) }
    static var maxRFC3339Seconds: Int64 { RateLimitHeaders.maxRFC3339Seconds }
}

extension RateLimitHeadersProbe {
    /// A JSON object with one string field, as the hot path writes it.
    static func jsonField(_ value: String) -> String {
        var writer = JSONWriter(buffer: .init())
        writer.beginObject()
        writer.field("v", value)
        writer.endObject()
        return String(buffer: writer.buffer)
    }
}
