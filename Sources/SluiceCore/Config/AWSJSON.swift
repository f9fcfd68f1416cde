import Foundation

/// A JSON value as the aws CLI prints it, kept whole so that `sluice import-aws` can list
/// every field it did not map (``AWSImport``), known or not.
enum AWSJSON: Decodable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([AWSJSON])
    case object([String: AWSJSON])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([AWSJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: AWSJSON].self))
        }
    }

    /// Parses a document.
    /// - Throws: ``AWSImportError`` naming `source` when it is not JSON.
    static func parse(_ data: Data, source: String) throws(AWSImportError) -> AWSJSON {
        do {
            return try JSONDecoder().decode(AWSJSON.self, from: data)
        } catch {
            throw AWSImportError("\(source): not the JSON the aws CLI prints (use --output json): \(Self.reason(error))")
        }
    }

    private static func reason(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            return context.underlyingError.map { "\($0.localizedDescription)" } ?? context.debugDescription
        }
        return "\(error)"
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    var object: [String: AWSJSON]? {
        if case .object(let value) = self { return value }
        return nil
    }

    var array: [AWSJSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// Whether the value says nothing: null, false, an empty string, list or map. A number,
    /// even 0, always says something.
    var isEmpty: Bool {
        switch self {
        case .null: return true
        case .bool(let value): return !value
        case .number: return false
        case .string(let value): return value.isEmpty
        case .array(let value): return value.isEmpty
        case .object(let value): return value.isEmpty
        }
    }

    /// Compact text for a message (JSON-like, keys sorted).
    var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let value): return AWSImport.format(value)
        case .string(let value): return ConfigYAMLWriter.quoted(value)
        case .array(let value): return "[" + value.map(\.summary).joined(separator: ", ") + "]"
        case .object(let value):
            return "{" + value.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.summary)" }.joined(separator: ", ") + "}"
        }
    }
}
