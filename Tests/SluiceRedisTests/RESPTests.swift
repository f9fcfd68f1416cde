import NIOCore
import Testing

@testable import SluiceRedis

@Suite("RESP over hiredis")
struct RESPTests {
    @Test("commands are encoded as arrays of bulk strings, binary-safe")
    func encode() throws {
        let buffer = try RESPEncoder.encode(["SET", "k", RedisArgument(bytes: [0, 13, 10, 255])])
        #expect(String(decoding: buffer.readableBytesView, as: UTF8.self) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\0\r\n\u{FFFD}\r\n")
        #expect(Array(buffer.readableBytesView)[24...27] == [0, 13, 10, 255])
        let empty = try RESPEncoder.encode(["GET", ""])
        #expect(String(decoding: empty.readableBytesView, as: UTF8.self) == "*2\r\n$3\r\nGET\r\n$0\r\n\r\n")
    }

    @Test("every reply type, fed one byte at a time")
    func parseIncrementally() throws {
        let stream = "+OK\r\n-ERR bad\r\n:-42\r\n$5\r\nhe\r\no\r\n$-1\r\n*3\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n*0\r\n*-1\r\n$0\r\n\r\n"
        let reader = try RESPReader()
        var replies: [RedisReply] = []
        for byte in stream.utf8 {
            var buffer = ByteBufferAllocator().buffer(capacity: 1)
            buffer.writeInteger(byte)
            try reader.feed(buffer)
            while let reply = try reader.next() { replies.append(reply) }
        }
        #expect(replies == [
            .status("OK"), .error("ERR bad"), .integer(-42), .bulk(Array("he\r\no".utf8)), .null,
            .array([.integer(1), .array([.bulk([120])]), .null]), .array([]), .null, .bulk([]),
        ])
    }

    @Test("a malformed stream is a protocol error")
    func malformed() throws {
        let reader = try RESPReader()
        try reader.feed(ByteBuffer(string: "?what\r\n"))
        #expect(throws: SluiceRedisError.self) { try reader.next() }
    }

    @Test("reply accessors")
    func accessors() {
        #expect(RedisReply.bulk(Array("12".utf8)).int == 12)
        #expect(RedisReply.integer(3).int == 3)
        #expect(RedisReply.null.string == nil)
        #expect(RedisReply.error("NOSCRIPT x").errorMessage == "NOSCRIPT x")
        #expect(RedisServerError(message: "WRONGPASS invalid").prefix == "WRONGPASS")
    }
}
