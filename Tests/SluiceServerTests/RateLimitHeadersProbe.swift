import NIOCore
@testable import SluiceServer

/// Reaches the header helpers that are internal to the server module.
enum RateLimitHeadersProbe {
    static func goDuration(_ ms: Int) -> String { RateLimitHeaders.goDuration(milliseconds: ms) }
    static func sfString(_ value: String) -> String { RateLimitHeaders.sfString(value) }
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
