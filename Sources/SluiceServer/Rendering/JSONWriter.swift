import NIOCore

/// A minimal JSON writer into a `ByteBuffer`, for the hot path's fixed shapes:
/// no intermediate dictionaries, no encoder object per request.
struct JSONWriter {
    var buffer: ByteBuffer
    private var needsComma = false

    init(buffer: ByteBuffer) {
        self.buffer = buffer
    }

    mutating func beginObject() {
        self.separate()
        self.buffer.writeInteger(UInt8(ascii: "{"))
        self.needsComma = false
    }

    mutating func endObject() {
        self.buffer.writeInteger(UInt8(ascii: "}"))
        self.needsComma = true
    }

    mutating func beginArray(_ key: String) {
        self.key(key)
        self.buffer.writeInteger(UInt8(ascii: "["))
        self.needsComma = false
    }

    mutating func endArray() {
        self.buffer.writeInteger(UInt8(ascii: "]"))
        self.needsComma = true
    }

    mutating func beginObject(_ key: String) {
        self.key(key)
        self.buffer.writeInteger(UInt8(ascii: "{"))
        self.needsComma = false
    }

    mutating func field(_ key: String, _ value: Int) {
        self.key(key)
        self.buffer.writeString(String(value))
        self.needsComma = true
    }

    mutating func field(_ key: String, number value: Double) {
        self.key(key)
        if value == value.rounded(), abs(value) < 1e15 {
            self.buffer.writeString(String(Int64(value)))
        } else {
            self.buffer.writeString(String(value))
        }
        self.needsComma = true
    }

    mutating func field(_ key: String, _ value: Bool) {
        self.key(key)
        self.buffer.writeString(value ? "true" : "false")
        self.needsComma = true
    }

    mutating func field(_ key: String, _ value: String?) {
        self.key(key)
        if let value {
            self.string(value)
        } else {
            self.buffer.writeString("null")
        }
        self.needsComma = true
    }

    mutating func field(_ key: String, strings: [String]) {
        self.beginArray(key)
        for value in strings {
            self.separate()
            self.string(value)
            self.needsComma = true
        }
        self.endArray()
    }

    private mutating func key(_ key: String) {
        self.separate()
        self.string(key)
        self.buffer.writeInteger(UInt8(ascii: ":"))
    }

    private mutating func separate() {
        if self.needsComma {
            self.buffer.writeInteger(UInt8(ascii: ","))
        }
    }

    private mutating func string(_ value: String) {
        self.buffer.writeInteger(UInt8(ascii: "\""))
        // Most strings (names, keys, codes) need no escaping: one copy, no per-byte work.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            self.buffer.writeString(value)
            self.buffer.writeInteger(UInt8(ascii: "\""))
            return
        }
        var escaped = ""
        Self.appendEscaped(value, to: &escaped)
        self.buffer.writeString(escaped)
        self.buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Appends `text` to `line` as a JSON string literal, quotes included.
    static func appendQuoted(_ text: String, to line: inout String) {
        line += "\""
        Self.appendEscaped(text, to: &line)
        line += "\""
    }

    /// Appends `text` to `line` escaped for the inside of a JSON string literal.
    private static func appendEscaped(_ text: String, to line: inout String) {
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                line.unicodeScalars.append(scalar)
            }
        }
    }
}
