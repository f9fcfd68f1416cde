import CHiredis
import NIOCore

/// Encodes commands as RESP with hiredis's `redisFormatCommandArgv`.
public enum RESPEncoder {
    /// Appends one command, encoded as a RESP array of bulk strings, to `buffer`.
    /// - Parameters:
    ///   - arguments: the command name and its arguments, as raw bytes.
    ///   - buffer: where the encoded command goes.
    /// - Throws: ``SluiceRedisError/outOfMemory`` if hiredis cannot allocate the command.
    public static func encode(_ arguments: [RedisArgument], into buffer: inout ByteBuffer) throws {
        // One contiguous copy of every argument, then pointers into it: hiredis
        // wants `const char **argv` and a parallel array of lengths.
        var storage: [UInt8] = []
        storage.reserveCapacity(arguments.reduce(0) { $0 + $1.bytes.count })
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            storage.append(contentsOf: argument.bytes)
            lengths.append(argument.bytes.count)
        }
        let count = arguments.count
        let written: Int32 = storage.withUnsafeBufferPointer { bytes in
            lengths.withUnsafeBufferPointer { lengths in
                withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: count) { argv in
                    let base = UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                    var offset = 0
                    for i in 0..<count {
                        argv[i] = (base + offset).assumingMemoryBound(to: CChar.self)
                        offset += lengths[i]
                    }
                    var target: UnsafeMutablePointer<CChar>?
                    let n = redisFormatCommandArgv(&target, Int32(count), argv.baseAddress, lengths.baseAddress)
                    guard n >= 0, let target else { return -1 }
                    defer { redisFreeCommand(target) }
                    buffer.writeBytes(UnsafeRawBufferPointer(start: target, count: Int(n)))
                    return n
                }
            }
        }
        if written < 0 {
            throw SluiceRedisError.outOfMemory("redisFormatCommandArgv failed")
        }
    }

    /// One command, encoded into a new buffer.
    /// - Throws: ``SluiceRedisError/outOfMemory`` if hiredis cannot allocate the command.
    public static func encode(_ arguments: [RedisArgument], allocator: ByteBufferAllocator = .init()) throws -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64 + arguments.reduce(0) { $0 + $1.bytes.count + 16 })
        try encode(arguments, into: &buffer)
        return buffer
    }
}

/// One argument of a Redis command: raw bytes, usually made from a string or an integer.
public struct RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral {
    /// The bytes sent to Redis.
    public let bytes: [UInt8]

    /// An argument from raw bytes.
    public init(bytes: [UInt8]) { self.bytes = bytes }
    /// An argument from a string's UTF-8 bytes.
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    /// An argument from an integer in decimal.
    public init(_ integer: Int) { self.bytes = Array(String(integer).utf8) }
    /// An argument from a string literal.
    public init(stringLiteral value: String) { self.init(value) }
}
