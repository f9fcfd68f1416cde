import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One HTTP answer as a client saw it.
public struct HTTPTestResponse: Sendable {
    /// Status code.
    public let status: Int
    /// Header fields, names lower-cased.
    public let headers: [String: String]
    /// The body.
    public let body: [UInt8]

    /// The body as text.
    public var text: String { String(decoding: self.body, as: UTF8.self) }

    /// The body as a JSON object (empty if it is not one).
    public var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(self.body))) as? [String: Any] ?? [:]
    }

    /// A header's value by case-insensitive name.
    public func header(_ name: String) -> String? { self.headers[name.lowercased()] }
}

/// A deliberately plain HTTP/1.1 client over a blocking socket (`Connection: close`),
/// run on a Dispatch thread so it never blocks Swift's cooperative pool.
public enum HTTPTestClient {
    /// Sends one request to 127.0.0.1:`port`.
    /// - Parameters:
    ///   - rawBody: sent as is; `Content-Length` is added.
    ///   - timeout: socket send/receive timeout in seconds.
    public static func request(
        port: Int,
        method: String = "GET",
        path: String,
        headers: [String: String] = [:],
        body: String? = nil,
        timeout: Double = 10
    ) async throws -> HTTPTestResponse {
        try await offCooperativePool {
            try self.blockingRequest(port: port, method: method, path: path, headers: headers, body: body, timeout: timeout)
        }
    }

    /// Writes `raw` (several requests, pipelined) in one go and reads until the server closes
    /// the connection; the last request should say `Connection: close`.
    /// - Returns: the responses, in the order they came.
    /// - Parameter halfClose: shut the sending side after writing, as `nc -N` does.
    public static func pipelined(port: Int, raw: String, halfClose: Bool = false, timeout: Double = 10) async throws -> [HTTPTestResponse] {
        try await offCooperativePool {
            let fd = try self.connectedSocket(port: port, timeout: timeout)
            defer { close(fd) }
            let bytes = Array(raw.utf8)
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw TestSupportError("send failed") }
                sent += n
            }
            if halfClose {
                shutdown(fd, Int32(SHUT_WR))
            }
            return try self.responses(in: self.readUntilClosed(fd))
        }
    }

    /// Sends `parts` one after another, `pause` apart (a slow client), optionally half-closes,
    /// then reads until the server closes or `timeout` passes without a byte.
    /// - Returns: the complete responses received, in order (none when the server said nothing).
    public static func trickle(
        port: Int, parts: [String], pause: Duration, halfClose: Bool = false, timeout: Double = 10
    ) async throws -> [HTTPTestResponse] {
        try await offCooperativePool {
            let fd = try self.connectedSocket(port: port, timeout: timeout)
            defer { close(fd) }
            for (index, part) in parts.enumerated() {
                if index > 0 {
                    let (seconds, attoseconds) = pause.components
                    usleep(UInt32(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
                }
                let bytes = Array(part.utf8)
                // A server that already answered and closed refuses the rest: that is an answer too.
                let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 { break }
            }
            if halfClose {
                shutdown(fd, Int32(SHUT_WR))
            }
            return try self.responses(in: self.readUntilClosed(fd))
        }
    }

    /// Everything `fd` receives until the peer closes, or the receive timeout passes.
    static func readUntilClosed(_ fd: Int32) -> [UInt8] {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received.append(contentsOf: chunk[0..<n])
        }
        return received
    }

    /// The complete responses in `received`, split on each one's Content-Length.
    static func responses(in received: [UInt8]) throws -> [HTTPTestResponse] {
        var responses: [HTTPTestResponse] = []
        var rest = received[...]
        let separator: [UInt8] = [13, 10, 13, 10]
        while !rest.isEmpty {
            guard let end = rest.indices.dropLast(3).first(where: { Array(rest[$0..<$0 + 4]) == separator }) else { break }
            let head = String(decoding: rest[rest.startIndex..<end], as: UTF8.self).lowercased()
            let length = head.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            let total = end + 4 + length - rest.startIndex
            guard rest.count >= total else { break }
            responses.append(try self.parse(Array(rest.prefix(total))))
            rest = rest.dropFirst(total)
        }
        return responses
    }

    /// POSTs a JSON body to `/v1/check`.
    public static func check(port: Int, _ json: String) async throws -> HTTPTestResponse {
        try await self.request(port: port, method: "POST", path: "/v1/check", headers: ["Content-Type": "application/json"], body: json)
    }

    /// ``request(port:method:path:headers:body:timeout:)`` on the calling thread, blocking it:
    /// for load from many clients at once, each on a thread of its own (blocking calls queued on
    /// Dispatch's global queue hold its few worker threads).
    public static func blockingRequest(
        port: Int, method: String, path: String, headers: [String: String], body: String?, timeout: Double
    ) throws -> HTTPTestResponse {
        let fd = try self.connectedSocket(port: port, timeout: timeout)
        defer { close(fd) }

        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        let bodyBytes = Array((body ?? "").utf8)
        if body != nil || method == "POST" { request += "Content-Length: \(bodyBytes.count)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8) + bodyBytes
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestSupportError("send failed (errno \(errno))") }
            sent += n
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else {
                if received.isEmpty { throw TestSupportError("no answer from 127.0.0.1:\(port) (errno \(errno))") }
                break
            }
            received.append(contentsOf: chunk[0..<n])
        }
        return try self.parse(received)
    }

    /// A blocking TCP socket connected to 127.0.0.1:`port`, with send/receive timeouts.
    public static func connectedSocket(port: Int, timeout: Double) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int(timeout.truncatingRemainder(dividingBy: 1) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw TestSupportError("cannot connect to 127.0.0.1:\(port) (errno \(errno))")
        }
        return fd
    }

    static func parse(_ bytes: [UInt8]) throws -> HTTPTestResponse {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
            throw TestSupportError("malformed HTTP answer: \(String(decoding: bytes, as: UTF8.self))")
        }
        let head = String(decoding: bytes[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw TestSupportError("malformed status line: \(head[0])")
        }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            body = self.dechunk(body)
        }
        return HTTPTestResponse(status: status, headers: headers, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = (index..<bytes.count - 1).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size > 0 else { break }
            let start = lineEnd + 2
            out.append(contentsOf: bytes[start..<min(bytes.count, start + size)])
            index = start + size + 2
        }
        return out
    }
}
