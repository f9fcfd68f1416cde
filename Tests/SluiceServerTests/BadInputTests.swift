import Foundation
import HTTPTypes
import SluiceTestSupport
import Testing

/// Bad input gets a 4xx with a JSON error code, and consumes nothing.
@Suite("Bad input")
struct BadInputTests {
    static let yaml = """
        limits: { max_body_bytes: 512, max_api_key_bytes: 32, max_route_bytes: 64, max_cost: 100 }
        plans: { p: { throttle: { rate: 0.01, burst: 3 } } }
        api_keys: [ { key: k, plan: p } ]
        """

    @Test("every kind of bad body is a 4xx with a code, and nothing is consumed")
    func badBodies() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let cases: [(String, HTTPResponse.Status, String)] = [
                ("{", .badRequest, "invalid_json"),
                ("not json", .badRequest, "invalid_json"),
                ("[]", .badRequest, "invalid_body"),
                ("{}", .badRequest, "missing_api_key"),
                (#"{"api_key":7}"#, .badRequest, "invalid_api_key"),
                (#"{"api_key":["k"]}"#, .badRequest, "invalid_api_key"),
                (#"{"api_key":"\#(String(repeating: "a", count: 33))"}"#, .badRequest, "api_key_too_long"),
                (#"{"api_key":"k","cost":-1}"#, .badRequest, "invalid_cost"),
                (#"{"api_key":"k","cost":2.5}"#, .badRequest, "invalid_cost"),
                (#"{"api_key":"k","cost":"1"}"#, .badRequest, "invalid_cost"),
                (#"{"api_key":"k","cost":101}"#, .badRequest, "cost_too_large"),
                (#"{"api_key":"k","cost":99999999999999999999999}"#, .badRequest, "cost_too_large"),
                (#"{"api_key":"k","route":"no-method"}"#, .badRequest, "invalid_route"),
                (#"{"api_key":"k","route":{}}"#, .badRequest, "invalid_route"),
                (#"{"api_key":"k","route":"GET /\#(String(repeating: "x", count: 70))"}"#, .badRequest, "route_too_long"),
                (#"{"api_key":"k","pad":"\#(String(repeating: "x", count: 600))"}"#, .contentTooLarge, "body_too_large"),
            ]
            for (body, status, code) in cases {
                let r = try await h.check(body)
                #expect(r.status == status, "\(body.prefix(60)): \(r.status) \(r.text)")
                #expect(r.errorCode == code, "\(body.prefix(60)): \(r.text)")
                #expect(r.header("Content-Type") == "application/json")
                #expect(((r.json["error"] as? [String: Any])?["message"] as? String)?.isEmpty == false)
            }
            // Nothing above consumed a token.
            #expect(try await h.check(key: "k", cost: 0).remaining == 3)
        }
    }

    @Test("wrong content type is 415; a JSON type with parameters is fine")
    func contentType() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let wrong = try await h.check(#"{"api_key":"k"}"#, contentType: "text/plain")
            #expect(wrong.status == .unsupportedMediaType && wrong.errorCode == "unsupported_media_type")
            let form = try await h.check(#"{"api_key":"k"}"#, contentType: "application/x-www-form-urlencoded")
            #expect(form.status == .unsupportedMediaType)
            #expect(try await h.check(key: "k", cost: 0).remaining == 3)
            let charset = try await h.check(#"{"api_key":"k","cost":0}"#, contentType: "application/json; charset=utf-8")
            #expect(charset.status == .ok)
            let none = try await h.check(#"{"api_key":"k","cost":0}"#, contentType: nil)
            #expect(none.status == .ok)
        }
    }

    @Test("unknown paths are 404 not_found; a known path with another method is 405 method_not_allowed with Allow")
    func notFound() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(Self.yaml, redis: redis)) { h in
            let missing = try await h.get("/v2/nothing")
            #expect(missing.status == .notFound && missing.errorCode == "not_found")
            #expect(missing.header("Content-Type") == "application/json" && missing.header("Allow") == nil)
            // ErrorMiddleware turns the router's 404 for a path KnownRoutes lists into a 405 with
            // the path's methods in Allow (RFC 9110 §15.5.6) and the JSON error shape.
            let cases: [(HTTPRequest.Method, String, String)] = [
                (.get, "/v1/check", "POST"),
                (.put, "/v1/check/batch", "POST"),
                (.delete, "/healthz", "GET"),
                (.post, "/readyz", "GET"),
            ]
            for (method, path, allow) in cases {
                let wrong = try await h.send(path, method: method, headers: [.contentType: "application/json"], body: method == .get ? nil : "{}")
                #expect(wrong.status == .methodNotAllowed, "\(method) \(path): \(wrong.status) \(wrong.text)")
                #expect(wrong.header("Allow") == allow, "\(method) \(path)")
                #expect(wrong.errorCode == "method_not_allowed", "\(method) \(path): \(wrong.text)")
                #expect(wrong.header("Content-Type") == "application/json")
                let message = (wrong.json["error"] as? [String: Any])?["message"] as? String
                #expect(message == "\(method.rawValue) is not allowed here; use \(allow)", "\(wrong.text)")
            }
            // The refused GET consumed nothing.
            #expect(try await h.check(key: "k", cost: 0).remaining == 3)
        }
    }
}
