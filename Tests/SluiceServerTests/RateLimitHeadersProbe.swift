@testable import SluiceServer

/// Reaches the header helpers that are internal to the server module.
enum RateLimitHeadersProbe {
    static func goDuration(_ ms: Int) -> String { RateLimitHeaders.goDuration(milliseconds: ms) }
    static func sfString(_ value: String) -> String { RateLimitHeaders.sfString(value) }
}
