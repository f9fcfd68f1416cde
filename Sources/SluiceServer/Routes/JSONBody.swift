import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore

/// The checks every JSON request body gets, in one place for the router's routes and the
/// check fast path: a Content-Type, when sent, must be JSON (415), and a declared
/// Content-Length over the bound is refused before anything is read (413).
enum JSONBody {
    /// Checks a request's head.
    /// - Throws: ``APIError`` 415 or 413.
    static func checkHead(_ headers: HTTPFields, limit: Int) throws(APIError) {
        if let contentType = headers[.contentType], !self.isJSON(contentType) {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be application/json")
        }
        if let length = headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError(InputError.bodyTooLarge(limit))
        }
    }

    /// The body of a router request, after the head checks, read up to `limit` bytes.
    /// - Throws: ``APIError`` 415 or 413.
    static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
        try self.checkHead(request.headers, limit: limit)
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(InputError.bodyTooLarge(limit))
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
