import CHiredis
import NIOCore

/// Incremental RESP2 parser backed by hiredis's `redisReader`.
///
/// Owns one reader; not thread-safe (one per connection, used on its event loop).
/// Each reply is copied into a ``RedisReply`` and hiredis's object is freed at once.
final class RESPReader {
    private let reader: UnsafeMutablePointer<redisReader>

    /// Creates a reader.
    /// - Throws: ``SluiceRedisError/outOfMemory`` when hiredis cannot allocate one.
    init() throws {
        guard let reader = redisReaderCreate() else {
            throw SluiceRedisError.outOfMemory("redisReaderCreate failed")
        }
        // Keep the read buffer between replies instead of freeing it whenever
        // more than 16 KiB sit unused: a pipelining connection reads all the time.
        sluice_reader_set_max_buf(reader, 0)
        self.reader = reader
    }

    deinit {
        redisReaderFree(self.reader)
    }

    /// Hands bytes read from the socket to the parser.
    /// - Throws: ``SluiceRedisError/protocolError`` if the reader is in an error state.
    func feed(_ buffer: ByteBuffer) throws {
        let status = buffer.withUnsafeReadableBytes { bytes -> Int32 in
            guard let base = bytes.baseAddress, bytes.count > 0 else { return REDIS_OK }
            return redisReaderFeed(self.reader, base.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        if status != REDIS_OK {
            throw SluiceRedisError.protocolError(self.errorText)
        }
    }

    /// The next complete reply, or nil when more bytes are needed.
    /// - Throws: ``SluiceRedisError/protocolError`` on a malformed stream.
    func next() throws -> RedisReply? {
        var object: UnsafeMutableRawPointer?
        guard redisReaderGetReply(self.reader, &object) == REDIS_OK else {
            throw SluiceRedisError.protocolError(self.errorText)
        }
        guard let object else { return nil }
        let reply = object.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(object) }
        return Self.convert(reply)
    }

    private var errorText: String {
        guard let text = sluice_reader_error(self.reader) else { return "unknown RESP parse error" }
        return String(cString: text)
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STATUS:
            return .status(Self.text(r.str, r.len))
        case REDIS_REPLY_ERROR:
            return .error(Self.text(r.str, r.len))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(r.integer))
        case REDIS_REPLY_STRING:
            guard let str = r.str else { return .bulk([]) }
            let raw = UnsafeRawBufferPointer(start: str, count: Int(r.len))
            return .bulk(Array(raw))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(Int(r.elements))
            for i in 0..<Int(r.elements) {
                guard let element = sluice_reply_element(reply, i) else {
                    elements.append(.null)
                    continue
                }
                elements.append(Self.convert(element))
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func text(_ str: UnsafeMutablePointer<CChar>?, _ len: Int) -> String {
        guard let str else { return "" }
        let raw = UnsafeRawBufferPointer(start: str, count: len)
        return String(decoding: raw, as: UTF8.self)
    }
}
