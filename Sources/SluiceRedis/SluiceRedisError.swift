/// A client-side failure of the Redis layer: the command got no reply from Redis.
///
/// Redis's own `-ERR` replies are ``RedisServerError``s, a separate type.
public struct SluiceRedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Base: String, Sendable, Hashable {
            case timeout
            case connectionClosed
            case unavailable
            case tooManyPending
            case protocolError
            case handshakeFailed
            case outOfMemory
            case shutdown
        }
        fileprivate let base: Base

        /// No reply came within the command's deadline. The command may still have run in Redis.
        public static var timeout: Code { .init(base: .timeout) }
        /// The connection closed before the reply came. The command may have run in Redis.
        public static var connectionClosed: Code { .init(base: .connectionClosed) }
        /// No connection to Redis is up; the command was not sent.
        public static var unavailable: Code { .init(base: .unavailable) }
        /// Too many commands are already waiting on the connection; the command was not sent.
        public static var tooManyPending: Code { .init(base: .tooManyPending) }
        /// Redis sent bytes that are not RESP2, or a reply nobody asked for.
        public static var protocolError: Code { .init(base: .protocolError) }
        /// AUTH, SELECT or SCRIPT LOAD failed while connecting.
        public static var handshakeFailed: Code { .init(base: .handshakeFailed) }
        /// hiredis could not allocate memory.
        public static var outOfMemory: Code { .init(base: .outOfMemory) }
        /// The client is shutting down.
        public static var shutdown: Code { .init(base: .shutdown) }

        /// A short snake_case name, for logs and metrics labels.
        public var description: String {
            switch self.base {
            case .timeout: return "timeout"
            case .connectionClosed: return "connection_closed"
            case .unavailable: return "unavailable"
            case .tooManyPending: return "too_many_pending"
            case .protocolError: return "protocol_error"
            case .handshakeFailed: return "handshake_failed"
            case .outOfMemory: return "out_of_memory"
            case .shutdown: return "shutdown"
            }
        }
    }

    /// The kind of failure.
    public let code: Code
    /// What happened, for people.
    public let message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(self.code): \(self.message)" }

    static func timeout(_ message: String) -> Self { .init(code: .timeout, message: message) }
    static func connectionClosed(_ message: String) -> Self { .init(code: .connectionClosed, message: message) }
    static func unavailable(_ message: String) -> Self { .init(code: .unavailable, message: message) }
    static func tooManyPending(_ message: String) -> Self { .init(code: .tooManyPending, message: message) }
    static func protocolError(_ message: String) -> Self { .init(code: .protocolError, message: message) }
    static func handshakeFailed(_ message: String) -> Self { .init(code: .handshakeFailed, message: message) }
    static func outOfMemory(_ message: String) -> Self { .init(code: .outOfMemory, message: message) }
    static func shutdown(_ message: String) -> Self { .init(code: .shutdown, message: message) }
}

/// An error reply from Redis (`-ERR ...`, `-NOSCRIPT ...`, `-WRONGPASS ...`).
public struct RedisServerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The reply's text, prefix included (`"NOSCRIPT No matching script..."`).
    public let message: String

    /// Creates an error from a reply's text.
    public init(message: String) { self.message = message }

    /// The first word of the reply (`ERR`, `NOSCRIPT`, `WRONGTYPE`...).
    public var prefix: Substring {
        self.message.prefix { $0 != " " }
    }

    public var description: String { "Redis error: \(self.message)" }
}
