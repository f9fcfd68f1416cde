import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One reply of Redis's protocol (RESP2) as ``RawRedisConnection`` reads it.
public indirect enum RawRedisReply: Sendable, Equatable {
    case status(String)
    case error(String)
    case integer(Int64)
    /// A bulk string's bytes (nil: the null bulk string).
    case bulk([UInt8]?)
    /// An array (nil: the null array).
    case array([RawRedisReply]?)

    /// A status or bulk string as text; nil otherwise.
    public var string: String? {
        switch self {
        case .status(let text): return text
        case .bulk(let bytes?): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// An integer reply, or a bulk string holding an integer.
    public var integer: Int64? {
        switch self {
        case .integer(let value): return value
        case .bulk(let bytes?): return Int64(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }

    /// The elements of an array reply (empty otherwise).
    public var elements: [RawRedisReply] {
        if case .array(let items?) = self { return items }
        return []
    }
}

/// A plain blocking connection to a Redis server, for tests that read state while a load runs
/// (no `redis-cli` process per read): one command at a time, a socket timeout on every read and
/// write, run on a Dispatch thread so it never holds Swift's cooperative pool.
public final class RawRedisConnection: @unchecked Sendable {
    // @unchecked: `pending` is read and written only under `lock`; `fd` never changes.
    private let lock = NSLock()
    private let fd: Int32
    private var pending: [UInt8] = []

    /// Connects to 127.0.0.1:`port`.
    /// - Parameter timeout: the socket's send and receive timeout in seconds.
    /// - Throws: ``TestSupportError`` when it cannot connect.
    public init(port: Int, timeout: Double = 5) throws {
        self.fd = try HTTPTestClient.connectedSocket(port: port, timeout: timeout)
    }

    deinit {
        close(self.fd)
    }

    /// Sends one command and waits for its reply, off the cooperative pool.
    /// - Throws: when the connection fails or times out (a `-ERR` reply is returned, not thrown).
    @discardableResult
    public func command(_ arguments: String...) async throws -> RawRedisReply {
        try await offCooperativePool { try self.blockingCommand(arguments) }
    }

    /// Sends one command and waits for its reply on the calling thread.
    public func blockingCommand(_ arguments: [String]) throws -> RawRedisReply {
        try self.lock.withLock {
            var request = "*\(arguments.count)\r\n"
            for argument in arguments {
                request += "$\(argument.utf8.count)\r\n\(argument)\r\n"
            }
            let bytes = Array(request.utf8)
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw TestSupportError("send to Redis failed (errno \(errno))") }
                sent += n
            }
            return try self.readReply()
        }
    }

    private func readReply() throws -> RawRedisReply {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            if let (reply, end) = try self.parse(from: 0) {
                self.pending.removeFirst(end)
                return reply
            }
            let n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw TestSupportError("no reply from Redis (errno \(errno))") }
            self.pending.append(contentsOf: chunk[0..<n])
        }
    }

    /// The text of the line starting at `start` and the index after its CRLF; nil when incomplete.
    private func line(from start: Int) -> (String, Int)? {
        var index = start
        while index + 1 < self.pending.count {
            if self.pending[index] == 13 && self.pending[index + 1] == 10 {
                return (String(decoding: self.pending[start..<index], as: UTF8.self), index + 2)
            }
            index += 1
        }
        return nil
    }

    /// The reply starting at `start` and the index after it; nil when not all of it arrived.
    private func parse(from start: Int) throws -> (RawRedisReply, Int)? {
        guard start < self.pending.count, let (text, next) = self.line(from: start + 1) else { return nil }
        switch self.pending[start] {
        case UInt8(ascii: "+"):
            return (.status(text), next)
        case UInt8(ascii: "-"):
            return (.error(text), next)
        case UInt8(ascii: ":"):
            guard let value = Int64(text) else { throw TestSupportError("bad integer reply \(text)") }
            return (.integer(value), next)
        case UInt8(ascii: "$"):
            guard let length = Int(text) else { throw TestSupportError("bad bulk length \(text)") }
            if length < 0 { return (.bulk(nil), next) }
            guard self.pending.count >= next + length + 2 else { return nil }
            return (.bulk(Array(self.pending[next..<(next + length)])), next + length + 2)
        case UInt8(ascii: "*"):
            guard let count = Int(text) else { throw TestSupportError("bad array length \(text)") }
            if count < 0 { return (.array(nil), next) }
            var items: [RawRedisReply] = []
            var position = next
            for _ in 0..<count {
                guard let (item, after) = try self.parse(from: position) else { return nil }
                items.append(item)
                position = after
            }
            return (.array(items), position)
        default:
            throw TestSupportError("unexpected RESP type byte \(self.pending[start])")
        }
    }
}
