import Hummingbird
import HTTPTypes

extension JSONWriter {
    /// `{"error": {"code": ..., "message": ...}}`, the API's one error shape.
    mutating func errorObject(code: String, message: String) {
        self.beginObject()
        self.beginObject("error")
        self.field("code", code)
        self.field("message", message)
        self.endObject()
        self.endObject()
    }

    /// The written JSON as a response.
    /// - Parameter noStore: adds `Cache-Control: no-store` (health, admin and metrics answers).
    func response(status: HTTPResponse.Status = .ok, noStore: Bool = false) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = DecisionResponse.jsonContentType
        if noStore {
            headers[.cacheControl] = "no-store"
        }
        return Response(status: status, headers: headers, body: .init(byteBuffer: self.buffer))
    }
}
