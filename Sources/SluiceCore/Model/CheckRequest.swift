import Foundation

/// Bounds on what a caller may send (docs/ARCHITECTURE.md, invariant 8); config section `limits`.
public struct InputBounds: Sendable, Hashable {
    /// Largest accepted request body, in bytes.
    public var maxBodyBytes: Int
    /// Longest accepted API key, in bytes.
    public var maxAPIKeyBytes: Int
    /// Longest accepted route, in bytes.
    public var maxRouteBytes: Int
    /// Largest accepted cost.
    public var maxCost: Int
    /// Largest accepted `/v1/check/batch` body, in bytes.
    public var maxBatchBodyBytes: Int
    /// Most checks in one batch.
    public var maxBatchChecks: Int

    /// Creates bounds; the defaults are the README's configuration reference's.
    public init(
        maxBodyBytes: Int = 65536,
        maxAPIKeyBytes: Int = 256,
        maxRouteBytes: Int = 512,
        maxCost: Int = 1_000_000,
        maxBatchBodyBytes: Int = 1 << 20,
        maxBatchChecks: Int = 1000
    ) {
        self.maxBodyBytes = maxBodyBytes
        self.maxAPIKeyBytes = maxAPIKeyBytes
        self.maxRouteBytes = maxRouteBytes
        self.maxCost = maxCost
        self.maxBatchBodyBytes = maxBatchBodyBytes
        self.maxBatchChecks = maxBatchChecks
    }
}

/// A request rejected before anything was counted: a machine-readable code and a message.
public struct InputError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Machine-readable code (`invalid_json`, `missing_api_key`, ...).
    public let code: String
    /// What was wrong, for people.
    public let message: String
    /// Whether the body as a whole was too large (HTTP 413) rather than malformed (400).
    public let tooLarge: Bool

    /// Creates an error.
    public init(code: String, message: String, tooLarge: Bool = false) {
        self.code = code
        self.message = message
        self.tooLarge = tooLarge
    }

    public var description: String { "\(self.code): \(self.message)" }

    /// The body is larger than `limits.max_body_bytes`.
    public static func bodyTooLarge(_ max: Int) -> InputError {
        InputError(code: "body_too_large", message: "request body is larger than \(max) bytes", tooLarge: true)
    }
}

/// A validated `/v1/check` request.
public struct CheckRequest: Sendable, Hashable {
    /// The caller's API key, as the gateway received it.
    public let apiKey: String
    /// The route, if one was given.
    public let route: RequestRoute?
    /// Units to consume; 0 is a peek.
    public let cost: Int
    /// The API stage the request is for (`"mlApi/prod"`), if one was given.
    public let stage: String?
    /// The model the request is for, if one was given (prices a cost limit).
    public let model: String?
    /// Known token usage to admit and charge at once (plans with token limits), if given.
    public let tokens: TokenCounts?

    /// Creates a request; use ``parse(json:bounds:)`` for untrusted input.
    public init(apiKey: String, route: RequestRoute?, cost: Int, stage: String? = nil, model: String? = nil, tokens: TokenCounts? = nil) {
        self.apiKey = apiKey
        self.route = route
        self.cost = cost
        self.stage = stage
        self.model = model
        self.tokens = tokens
    }

    /// Longest accepted stage name, in bytes.
    public static let maxStageBytes = 128

    /// Why `stage` is not a usable stage name, or nil: 1-128 printable ASCII characters, spaces
    /// only inside (it travels in a header, `X-Sluice-Stage`, as well as in JSON).
    public static func stageProblem(_ stage: String) -> String? {
        let bytes = stage.utf8
        guard let first = bytes.first, let last = bytes.last, bytes.count <= Self.maxStageBytes,
            bytes.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }), first != 0x20, last != 0x20
        else {
            return "a stage name is 1-\(Self.maxStageBytes) printable ASCII characters (spaces only inside), like \"mlApi/prod\""
        }
        return nil
    }

    private static let decoder = JSONDecoder()

    /// Parses and validates a JSON body.
    /// - Throws: ``InputError`` naming what is wrong.
    public static func parse(json: Data, bounds: InputBounds) throws(InputError) -> CheckRequest {
        try json.withUnsafeBytes { bytes in
            Result { () throws(InputError) -> CheckRequest in try self.parse(bytes: bytes, bounds: bounds) }
        }.get()
    }

    /// Parses and validates a JSON body in place (the bytes a server read), copying it only
    /// when JSONDecoder has to read it.
    /// - Throws: ``InputError`` naming what is wrong.
    public static func parse(bytes: UnsafeRawBufferPointer, bounds: InputBounds) throws(InputError) -> CheckRequest {
        if bytes.count > bounds.maxBodyBytes {
            throw .bodyTooLarge(bounds.maxBodyBytes)
        }
        // The common shape is read by hand; anything else (escapes, other keys, fractions,
        // nesting, malformed input) goes through JSONDecoder, whose reading and errors are the
        // reference: both give the same answer for every body the hand reader accepts.
        let body: Body
        if let plain = Self.plainBody(bytes) {
            body = plain
        } else {
            body = try Self.decode(Body.self, from: Data(bytes), notAnObject: "the body must be a JSON object")
        }
        return try body.validated(bounds: bounds)
    }

    /// Parses and validates a JSON body with JSONDecoder only (the reference the hand reader
    /// is tested against).
    static func parseWithDecoder(json: Data, bounds: InputBounds) throws(InputError) -> CheckRequest {
        try Self.decode(Body.self, from: json, notAnObject: "the body must be a JSON object").validated(bounds: bounds)
    }

    /// Reads `{"api_key": "...", "route": "...", "cost": N, "stage": "..."}` (any order, any subset, `null`
    /// for absent, JSON whitespace) when every string is plain (no escape, no control
    /// character, valid UTF-8) and the cost a non-negative integer of at most 18 digits
    /// without a leading zero. Returns nil for anything else.
    static func plainBody(_ json: Data) -> Body? {
        json.withUnsafeBytes { self.plainBody($0) }
    }

    /// ``plainBody(_:)`` over bytes in place.
    static func plainBody(_ raw: UnsafeRawBufferPointer) -> Body? {
        let bytes = raw.bindMemory(to: UInt8.self)
        var i = 0
        let n = bytes.count
        func skipSpace() {
            while i < n, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }
        func expect(_ byte: UInt8) -> Bool {
            skipSpace()
            guard i < n, bytes[i] == byte else { return false }
            i += 1
            return true
        }
        /// A plain string's bytes (after its opening quote).
        func plainString() -> UnsafeBufferPointer<UInt8>? {
            let start = i
            while i < n {
                let byte = bytes[i]
                if byte == UInt8(ascii: "\"") {
                    let slice = UnsafeBufferPointer(rebasing: bytes[start..<i])
                    i += 1
                    return slice
                }
                if byte == UInt8(ascii: "\\") || byte < 0x20 { return nil }
                i += 1
            }
            return nil
        }
        /// A plain string value, quotes included, as text.
        func stringValue() -> String? {
            guard bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            guard let slice = plainString() else { return nil }
            return String(validating: slice, as: UTF8.self)
        }
        func isLiteral(_ word: StaticString) -> Bool {
            let length = word.utf8CodeUnitCount
            guard i + length <= n else { return false }
            for k in 0..<length where bytes[i + k] != word.utf8Start[k] { return false }
            i += length
            return true
        }

        var body = Body()
        var seen = (apiKey: false, route: false, cost: false, stage: false)
        guard expect(UInt8(ascii: "{")) else { return nil }
        skipSpace()
        if i < n, bytes[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                guard expect(UInt8(ascii: "\"")), let key = plainString(), expect(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                guard i < n else { return nil }
                let isNull = isLiteral("null")
                switch key.count {
                case 7 where key.elementsEqual("api_key".utf8):
                    guard !seen.apiKey else { return nil }
                    seen.apiKey = true
                    if !isNull {
                        guard let string = stringValue() else { return nil }
                        body.apiKey = string
                    }
                case 5 where key.elementsEqual("route".utf8):
                    guard !seen.route else { return nil }
                    seen.route = true
                    if !isNull {
                        guard let string = stringValue() else { return nil }
                        body.route = string
                    }
                case 5 where key.elementsEqual("stage".utf8):
                    guard !seen.stage else { return nil }
                    seen.stage = true
                    if !isNull {
                        guard let string = stringValue() else { return nil }
                        body.stage = string
                    }
                case 4 where key.elementsEqual("cost".utf8):
                    guard !seen.cost else { return nil }
                    seen.cost = true
                    if !isNull {
                        let start = i
                        var value = 0
                        while i < n, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                            // More than 18 digits might not fit: the decoder decides those.
                            guard i - start < 18 else { return nil }
                            value = value * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                            i += 1
                        }
                        let digits = i - start
                        guard digits >= 1, digits == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
                        // A fraction or an exponent follows: not a plain integer.
                        if i < n, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                            return nil
                        }
                        body.cost = value
                    }
                default:
                    return nil
                }
                skipSpace()
                guard i < n else { return nil }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if bytes[i] == UInt8(ascii: "}") {
                    i += 1
                    break
                }
                return nil
            }
        }
        skipSpace()
        return i == n ? body : nil
    }

    /// Decodes a body, mapping failures to the API's input errors.
    private static func decode<Body: Decodable>(_ type: Body.Type, from json: Data, notAnObject: String) throws(InputError) -> Body {
        do {
            return try Self.decoder.decode(type, from: json)
        } catch let error as InputError {
            throw error
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            throw InputError(code: "invalid_body", message: notAnObject)
        } catch {
            throw InputError(code: "invalid_json", message: "the body is not valid JSON")
        }
    }

    /// Parses a `/v1/check/batch` body, `{"checks": [...]}`: each item validated on its own.
    /// - Returns: one result per item, in order: the request, or why that item is invalid.
    /// - Throws: ``InputError`` when the body as a whole is unusable.
    public static func parseBatch(json: Data, bounds: InputBounds) throws(InputError) -> [Result<CheckRequest, InputError>] {
        if json.count > bounds.maxBatchBodyBytes {
            throw .bodyTooLarge(bounds.maxBatchBodyBytes)
        }
        let batch = try Self.decode(BatchBody.self, from: json, notAnObject: "the body must be a JSON object with a checks array")
        guard batch.checks.count <= bounds.maxBatchChecks else {
            throw InputError(code: "too_many_checks", message: "a batch holds at most \(bounds.maxBatchChecks) checks")
        }
        return batch.checks.map { item -> Result<CheckRequest, InputError> in
            switch item.body {
            case .success(let body):
                return Result { () throws(InputError) -> CheckRequest in try body.validated(bounds: bounds) }
            case .failure(let error):
                return .failure(error)
            }
        }
    }

    private struct BatchBody: Decodable {
        var checks: [Item]

        enum CodingKeys: String, CodingKey {
            case checks
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard let checks = try? container.decodeIfPresent([Item].self, forKey: .checks) else {
                throw InputError(code: "invalid_body", message: "the body must hold a checks array")
            }
            self.checks = checks
        }
    }

    /// One item of a batch: never fails to decode, holds its own error instead.
    private struct Item: Decodable {
        var body: Result<Body, InputError>

        init(from decoder: any Decoder) throws {
            do {
                self.body = .success(try Body(from: decoder))
            } catch let error as InputError {
                self.body = .failure(error)
            } catch {
                self.body = .failure(InputError(code: "invalid_check", message: "each check must be a JSON object"))
            }
        }
    }

    /// The raw body, each field as loosely as JSON allows, so that errors can be precise.
    struct Body: Decodable, Equatable {
        enum CodingKeys: String, CodingKey {
            case apiKey = "api_key"
            case route
            case cost
            case stage
            case model
            case tokens
        }

        var apiKey: String?
        var route: String?
        var cost: Int?
        var stage: String?
        var model: String?
        var tokens: TokenCountsBody?

        init() {}

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            do {
                self.apiKey = try container.decodeIfPresent(String.self, forKey: .apiKey)
            } catch {
                throw InputError(code: "invalid_api_key", message: "api_key must be a string")
            }
            do {
                self.route = try container.decodeIfPresent(String.self, forKey: .route)
            } catch {
                throw InputError(code: "invalid_route", message: "route must be a string like \"POST /v1/predict\"")
            }
            do {
                self.stage = try container.decodeIfPresent(String.self, forKey: .stage)
            } catch {
                throw InputError(code: "invalid_stage", message: "stage must be a string like \"mlApi/prod\"")
            }
            self.model = try TokenCountsBody.model(in: container, forKey: .model)
            self.tokens = try TokenCountsBody.decode(in: container, forKey: .tokens, field: "tokens")
            do {
                self.cost = try container.decodeIfPresent(Int.self, forKey: .cost)
            } catch {
                // Tell a huge integer from a fraction, a string or a boolean.
                if let number = try? container.decodeIfPresent(Double.self, forKey: .cost),
                    number == number.rounded(), number > 0
                {
                    throw InputError(code: "cost_too_large", message: "cost is larger than the maximum")
                }
                throw InputError(code: "invalid_cost", message: "cost must be a non-negative integer")
            }
        }

        func validated(bounds: InputBounds) throws(InputError) -> CheckRequest {
            guard let apiKey = self.apiKey else {
                throw InputError(code: "missing_api_key", message: "api_key is required")
            }
            guard !apiKey.isEmpty else {
                throw InputError(code: "invalid_api_key", message: "api_key must not be empty")
            }
            guard apiKey.utf8.count <= bounds.maxAPIKeyBytes else {
                throw InputError(code: "api_key_too_long", message: "api_key is longer than \(bounds.maxAPIKeyBytes) bytes")
            }
            var route: RequestRoute?
            if let text = self.route {
                guard RequestRoute.matchedLength(of: text) <= bounds.maxRouteBytes else {
                    throw InputError(code: "route_too_long", message: "route is longer than \(bounds.maxRouteBytes) bytes")
                }
                guard let parsed = RequestRoute(text) else {
                    throw InputError(code: "invalid_route", message: "route must look like \"POST /v1/predict\"")
                }
                route = parsed
            }
            let cost = self.cost ?? 1
            guard cost >= 0 else {
                throw InputError(code: "invalid_cost", message: "cost must be a non-negative integer")
            }
            guard cost <= bounds.maxCost else {
                throw InputError(code: "cost_too_large", message: "cost is larger than \(bounds.maxCost)")
            }
            if let stage = self.stage, let problem = CheckRequest.stageProblem(stage) {
                throw InputError(code: "invalid_stage", message: problem)
            }
            return CheckRequest(
                apiKey: apiKey, route: route, cost: cost, stage: self.stage, model: self.model,
                tokens: try self.tokens?.validated(field: "tokens", bounds: bounds)
            )
        }
    }
}
