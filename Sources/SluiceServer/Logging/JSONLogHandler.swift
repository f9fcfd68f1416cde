import Foundation
import Logging
import Synchronization

/// A log handler that writes one JSON object per line:
/// `{"ts":"…","level":"info","logger":"sluice","msg":"…","request_id":"…",…metadata}`.
///
/// Hummingbird's per-request `hb.request.id` is written as `request_id`. Lines are
/// written whole, under a lock, so lines of concurrent requests never interleave.
public struct JSONLogHandler: LogHandler {
    /// Where lines go.
    public enum Stream: Sendable {
        case standardOutput
        case standardError
    }

    private static let lock = Mutex<Void>(())

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let stream: Stream

    /// Creates a handler.
    public init(label: String, level: Logger.Level = .info, stream: Stream = .standardOutput) {
        self.label = label
        self.logLevel = level
        self.stream = stream
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() {
            merged.merge(provided) { _, new in new }
        }
        if let extra = event.metadata {
            merged.merge(extra) { _, new in new }
        }
        var line = "{\"ts\":\"" + Self.timestamp() + "\",\"level\":\"" + event.level.rawValue + "\",\"logger\":"
        JSONWriter.appendQuoted(self.label, to: &line)
        line += ",\"msg\":"
        JSONWriter.appendQuoted(event.message.description, to: &line)
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += ","
            JSONWriter.appendQuoted(key == "hb.request.id" ? "request_id" : key, to: &line)
            line += ":"
            Self.append(value, to: &line)
        }
        line += "}\n"
        let bytes = Array(line.utf8)
        let fd: Int32 = self.stream == .standardOutput ? 1 : 2
        Self.lock.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }

    private static func append(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text):
            JSONWriter.appendQuoted(text, to: &line)
        case .stringConvertible(let convertible):
            JSONWriter.appendQuoted(convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                self.append(element, to: &line)
            }
            line += "]"
        case .dictionary(let dictionary):
            line += "{"
            for (index, (key, element)) in dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { line += "," }
                JSONWriter.appendQuoted(key, to: &line)
                line += ":"
                self.append(element, to: &line)
            }
            line += "}"
        }
    }

    /// Now as RFC 3339 UTC with milliseconds.
    private static func timestamp() -> String {
        let now = Date().timeIntervalSince1970
        let whole = now.rounded(.down)
        var seconds = time_t(whole)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2) + "T"
            + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2) + "."
            + pad(Int32((now - whole) * 1000), 3) + "Z"
    }
}
