import Foundation

/// Bounds on what a caller may send (DESIGN invariant 8); config section `limits`.
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

    /// Creates bounds; the defaults are DESIGN.md's.
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

    /// Creates a request; use ``parse(json:bounds:)`` for untrusted input.
    public init(apiKey: String, route: RequestRoute?, cost: Int) {
        self.apiKey = apiKey
        self.route = route
        self.cost = cost
    }

    private static let decoder = JSONDecoder()

    /// Parses and validates a JSON body.
    /// - Throws: ``InputError`` naming what is wrong.
    public static func parse(json: Data, bounds: InputBounds) throws(InputError) -> CheckRequest {
        if json.count > bounds.maxBodyBytes {
            throw .bodyTooLarge(bounds.maxBodyBytes)
        }
        let body = try Self.decode(Body.self, from: json, notAnObject: "the body must be a JSON object")
        return try body.validated(bounds: bounds)
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
    private struct Body: Decodable {
        enum CodingKeys: String, CodingKey {
            case apiKey = "api_key"
            case route
            case cost
        }

        var apiKey: String?
        var route: String?
        var cost: Int?

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
            return CheckRequest(apiKey: apiKey, route: route, cost: cost)
        }
    }
}
