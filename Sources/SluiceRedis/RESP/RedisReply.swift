/// One decoded RESP2 reply, copied out of hiredis's reply object.
public enum RedisReply: Sendable, Hashable {
    /// A status reply (`+OK`).
    case status(String)
    /// An error reply (`-ERR ...`). A reply, not a thrown error: the caller decides.
    case error(String)
    /// An integer reply (`:42`).
    case integer(Int64)
    /// A bulk string reply (`$3\r\nfoo`).
    case bulk([UInt8])
    /// A null bulk string or null array.
    case null
    /// An array reply.
    indirect case array([RedisReply])

    /// The reply as text: status and bulk replies; nil otherwise.
    public var string: String? {
        switch self {
        case .status(let s): return s
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// The reply as an integer: integer replies and bulk strings holding a decimal number.
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .bulk, .status: return self.string.flatMap { Int64($0) }
        default: return nil
        }
    }

    /// The elements of an array reply; nil otherwise.
    public var array: [RedisReply]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// The elements of an array reply two at a time (HGETALL's fields and values); empty otherwise.
    public var pairs: [(RedisReply, RedisReply)] {
        guard let elements = self.array else { return [] }
        return stride(from: 0, to: elements.count - 1, by: 2).map { (elements[$0], elements[$0 + 1]) }
    }

    /// The message of an error reply; nil otherwise.
    public var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }
}
