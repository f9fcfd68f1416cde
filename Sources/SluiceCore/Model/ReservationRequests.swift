import Foundation

/// A token-count object of a request body (`tokens`, `estimate`, `actual`), read field by
/// field so that errors can be precise: unknown fields, negative or non-integer counts and
/// counts above `limits.max_cost` are refused.
struct TokenCountsBody: Decodable, Equatable {
    static let fields = ["input_tokens", "output_tokens", "cached_input_tokens"]

    var values: [String: Int] = [:]
    /// The first problem met while decoding (reported when validated, with the field's name).
    var problem: String?
    var tooLarge = false

    init(from decoder: any Decoder) throws {
        guard let container = try? decoder.container(keyedBy: AnyCodingKey.self) else {
            self.problem = "must be an object with input_tokens and output_tokens"
            return
        }
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            guard Self.fields.contains(key.stringValue) else {
                self.problem = "has an unknown field \"\(key.stringValue)\"; it takes \(Self.fields.joined(separator: ", "))"
                return
            }
            if let value = try? container.decodeIfPresent(Int.self, forKey: key) {
                guard value >= 0 else {
                    self.problem = "\(key.stringValue) must be a non-negative integer"
                    return
                }
                self.values[key.stringValue] = value
            } else if try container.decodeNil(forKey: key) {
                continue
            } else if let number = try? container.decode(Double.self, forKey: key), number == number.rounded(), number > 0 {
                self.problem = "\(key.stringValue) is larger than the maximum"
                self.tooLarge = true
                return
            } else {
                self.problem = "\(key.stringValue) must be a non-negative integer"
                return
            }
        }
    }

    /// Decodes an optional token-count field of `container`.
    static func decode<Key: CodingKey>(in container: KeyedDecodingContainer<Key>, forKey key: Key, field: String) throws -> TokenCountsBody? {
        guard container.contains(key), !(try container.decodeNil(forKey: key)) else { return nil }
        return try container.decode(TokenCountsBody.self, forKey: key)
    }

    /// Decodes an optional `model` field.
    static func model<Key: CodingKey>(in container: KeyedDecodingContainer<Key>, forKey key: Key) throws -> String? {
        let model: String?
        do {
            model = try container.decodeIfPresent(String.self, forKey: key)
        } catch {
            throw InputError(code: "invalid_model", message: "model must be a string")
        }
        if let model, model.isEmpty || model.utf8.count > 128 || model.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw InputError(code: "invalid_model", message: "model must be 1-128 printable characters")
        }
        return model
    }

    /// The counts, checked against the bounds.
    func validated(field: String, bounds: InputBounds) throws(InputError) -> TokenCounts {
        if let problem = self.problem {
            throw InputError(code: self.tooLarge ? "tokens_too_large" : "invalid_tokens", message: "\(field) \(problem)")
        }
        for (name, value) in self.values where value > bounds.maxCost {
            throw InputError(code: "tokens_too_large", message: "\(field).\(name) is larger than \(bounds.maxCost) (limits.max_cost)")
        }
        // The cached part of the input is at most all of it: more counts as all of it.
        let input = self.values["input_tokens"] ?? 0
        return TokenCounts(
            inputTokens: input, outputTokens: self.values["output_tokens"] ?? 0,
            cachedInputTokens: min(input, self.values["cached_input_tokens"] ?? 0)
        )
    }
}

/// The caller fields every token request shares: `api_key`, `route`, `stage`, `model`.
struct CallerBody: Equatable {
    var apiKey: String?
    var route: String?
    var stage: String?
    var model: String?

    /// The caller as a check request (cost 1) of the given tokens, validated.
    func validated(bounds: InputBounds, tokens: TokenCounts?) throws(InputError) -> CheckRequest {
        var body = CheckRequest.Body()
        body.apiKey = self.apiKey
        body.route = self.route
        body.stage = self.stage
        let request = try body.validated(bounds: bounds)
        return CheckRequest(apiKey: request.apiKey, route: request.route, cost: 1, stage: request.stage, model: self.model, tokens: tokens)
    }
}

private enum RequestKeys: String, CodingKey {
    case apiKey = "api_key"
    case route, stage, model, estimate, actual
    case idempotencyKey = "idempotency_key"
    case ttlMs = "ttl_ms"
    case reservationID = "reservation_id"
}

extension KeyedDecodingContainer where Key == RequestKeys {
    func caller() throws -> CallerBody {
        var caller = CallerBody()
        do {
            caller.apiKey = try self.decodeIfPresent(String.self, forKey: .apiKey)
        } catch {
            throw InputError(code: "invalid_api_key", message: "api_key must be a string")
        }
        do {
            caller.route = try self.decodeIfPresent(String.self, forKey: .route)
        } catch {
            throw InputError(code: "invalid_route", message: "route must be a string like \"POST /v1/predict\"")
        }
        do {
            caller.stage = try self.decodeIfPresent(String.self, forKey: .stage)
        } catch {
            throw InputError(code: "invalid_stage", message: "stage must be a string like \"mlApi/prod\"")
        }
        caller.model = try TokenCountsBody.model(in: self, forKey: .model)
        return caller
    }

    func ttl() throws -> Int? {
        guard self.contains(.ttlMs), !(try self.decodeNil(forKey: .ttlMs)) else { return nil }
        guard let ttl = try? self.decode(Int.self, forKey: .ttlMs), (1000...LedgerScript.maxTTLMs).contains(ttl) else {
            throw InputError(code: "invalid_ttl", message: "ttl_ms must be an integer from 1000 to \(LedgerScript.maxTTLMs)")
        }
        return ttl
    }
}

/// Decodes a JSON body into `Body`, mapping failures to the API's input errors.
private func decodeBody<Body: Decodable>(_ type: Body.Type, json: Data, bounds: InputBounds) throws(InputError) -> Body {
    if json.count > bounds.maxBodyBytes {
        throw .bodyTooLarge(bounds.maxBodyBytes)
    }
    do {
        return try JSONDecoder().decode(type, from: json)
    } catch let error as InputError {
        throw error
    } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
        throw InputError(code: "invalid_body", message: "the body must be a JSON object")
    } catch {
        throw InputError(code: "invalid_json", message: "the body is not valid JSON")
    }
}

/// A validated `POST /v1/reserve` request.
public struct ReserveRequest: Sendable, Hashable {
    /// The caller, as a check of cost 1 with the estimate as its tokens.
    public let check: CheckRequest
    /// The estimate (also `check.tokens`).
    public let estimate: TokenCounts
    /// The same key within the reservation's TTL returns the first answer.
    public let idempotencyKey: String?
    /// The reservation's TTL in milliseconds.
    public let ttlMs: Int

    private struct Body: Decodable {
        var caller: CallerBody
        var estimate: TokenCountsBody?
        var idempotencyKey: String?
        var ttlMs: Int?

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: RequestKeys.self)
            self.caller = try c.caller()
            self.estimate = try TokenCountsBody.decode(in: c, forKey: .estimate, field: "estimate")
            do {
                self.idempotencyKey = try c.decodeIfPresent(String.self, forKey: .idempotencyKey)
            } catch {
                throw InputError(code: "invalid_idempotency_key", message: "idempotency_key must be a string")
            }
            self.ttlMs = try c.ttl()
        }
    }

    /// Parses and validates a JSON body.
    /// - Throws: ``InputError`` naming what is wrong.
    public static func parse(json: Data, bounds: InputBounds) throws(InputError) -> ReserveRequest {
        let body = try decodeBody(Body.self, json: json, bounds: bounds)
        guard let estimateBody = body.estimate else {
            throw InputError(code: "missing_estimate", message: "estimate is required: {\"input_tokens\": N, \"output_tokens\": N}")
        }
        let estimate = try estimateBody.validated(field: "estimate", bounds: bounds)
        if let key = body.idempotencyKey {
            guard (1...128).contains(key.utf8.count), key.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
                throw InputError(code: "invalid_idempotency_key", message: "idempotency_key must be 1-128 printable ASCII characters without spaces")
            }
        }
        return ReserveRequest(
            check: try body.caller.validated(bounds: bounds, tokens: estimate), estimate: estimate,
            idempotencyKey: body.idempotencyKey, ttlMs: body.ttlMs ?? LedgerScript.defaultTTLMs
        )
    }
}

/// A validated `POST /v1/settle` request: a reservation's actual usage, or usage charged
/// after the fact for an API key.
public enum SettleRequest: Sendable, Hashable {
    /// Settle a reservation with its actual usage.
    case reservation(LedgerScript.ReservationID, actual: TokenCounts)
    /// Charge usage with no reservation (the caller as a check of cost 0 with these tokens).
    case charge(CheckRequest, actual: TokenCounts)

    private struct Body: Decodable {
        var caller: CallerBody
        var reservationID: String?
        var actual: TokenCountsBody?

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: RequestKeys.self)
            // Which of the two shapes is meant goes by the fields present, null or not.
            if c.contains(.reservationID) && c.contains(.apiKey) {
                throw InputError(code: "conflicting_fields", message: "give reservation_id or api_key, not both")
            }
            if c.contains(.reservationID) {
                if [RequestKeys.route, .stage, .model].contains(where: { c.contains($0) }) {
                    throw InputError(
                        code: "conflicting_fields",
                        message: "a settle of a reservation takes reservation_id and actual only (route, stage and model were given when it was reserved)"
                    )
                }
                guard let id = try? c.decode(String.self, forKey: .reservationID) else {
                    throw InputError(code: "invalid_reservation_id", message: "reservation_id must be a string")
                }
                self.reservationID = id
                self.caller = CallerBody()
            } else {
                self.caller = try c.caller()
                if self.caller.apiKey == nil, c.contains(.apiKey) {
                    throw InputError(code: "invalid_api_key", message: "api_key must be a string")
                }
            }
            self.actual = try TokenCountsBody.decode(in: c, forKey: .actual, field: "actual")
        }
    }

    /// Parses and validates a JSON body.
    /// - Throws: ``InputError`` naming what is wrong.
    public static func parse(json: Data, bounds: InputBounds) throws(InputError) -> SettleRequest {
        let body = try decodeBody(Body.self, json: json, bounds: bounds)
        guard let actualBody = body.actual else {
            throw InputError(code: "missing_actual", message: "actual is required: {\"input_tokens\": N, \"output_tokens\": N}")
        }
        let actual = try actualBody.validated(field: "actual", bounds: bounds)
        switch (body.reservationID, body.caller.apiKey) {
        case (let id?, nil):
            return .reservation(try self.reservationID(id), actual: actual)
        case (nil, _?):
            let check = try body.caller.validated(bounds: bounds, tokens: actual)
            return .charge(CheckRequest(apiKey: check.apiKey, route: check.route, cost: 0, stage: check.stage, model: check.model, tokens: actual), actual: actual)
        case (_?, _?):
            throw InputError(code: "conflicting_fields", message: "give reservation_id or api_key, not both")
        case (nil, nil):
            throw InputError(code: "missing_reservation_id", message: "reservation_id is required (or api_key, to charge usage with no reservation)")
        }
    }

    /// A reservation id from a request (body or path).
    /// - Throws: ``InputError`` `invalid_reservation_id`.
    public static func reservationID(_ text: String) throws(InputError) -> LedgerScript.ReservationID {
        guard let id = LedgerScript.ReservationID(text) else {
            throw InputError(code: "invalid_reservation_id", message: "reservation_id is not one Sluice gave out")
        }
        return id
    }
}

/// A validated `POST /v1/reservations/{id}/renew` body: `{"ttl_ms"?}` (an empty body renews
/// for the reservation's own TTL).
public struct RenewRequest: Sendable, Hashable {
    /// The new TTL from now; nil: the reservation's own.
    public let ttlMs: Int?

    private struct Body: Decodable {
        var ttlMs: Int?

        init(from decoder: any Decoder) throws {
            self.ttlMs = try decoder.container(keyedBy: RequestKeys.self).ttl()
        }
    }

    /// Parses and validates a body; empty means `{}`.
    public static func parse(json: Data, bounds: InputBounds) throws(InputError) -> RenewRequest {
        if json.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return RenewRequest(ttlMs: nil)
        }
        return RenewRequest(ttlMs: try decodeBody(Body.self, json: json, bounds: bounds).ttlMs)
    }
}
