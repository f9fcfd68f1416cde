import Foundation
import SluiceCore
import Testing

@Suite("Check request validation")
struct CheckRequestTests {
    let bounds = InputBounds(maxBodyBytes: 1024, maxAPIKeyBytes: 16, maxRouteBytes: 32, maxCost: 100)

    func parse(_ json: String) throws(InputError) -> CheckRequest {
        try CheckRequest.parse(json: Data(json.utf8), bounds: self.bounds)
    }

    @Test("a full request")
    func full() throws {
        let r = try self.parse(#"{"api_key":"k","route":"post /v1/predict?x=1","cost":3,"extra":true}"#)
        #expect(r.apiKey == "k" && r.route == RequestRoute("POST /v1/predict") && r.cost == 3)
    }

    @Test("route and cost are optional; cost defaults to 1; null means absent")
    func defaults() throws {
        let r = try self.parse(#"{"api_key":"k"}"#)
        #expect(r.route == nil && r.cost == 1)
        let n = try self.parse(#"{"api_key":"k","route":null,"cost":null}"#)
        #expect(n.route == nil && n.cost == 1)
        #expect(try self.parse(#"{"api_key":"k","cost":0}"#).cost == 0)
    }

    @Test(
        "bad input gets a precise code",
        arguments: [
            ("{", "invalid_json"),
            ("", "invalid_json"),
            ("[1,2]", "invalid_body"),
            ("\"k\"", "invalid_body"),
            ("{}", "missing_api_key"),
            (#"{"api_key":null}"#, "missing_api_key"),
            (#"{"api_key":42}"#, "invalid_api_key"),
            (#"{"api_key":""}"#, "invalid_api_key"),
            (#"{"api_key":"0123456789abcdefX"}"#, "api_key_too_long"),
            (#"{"api_key":"k","route":5}"#, "invalid_route"),
            (#"{"api_key":"k","route":"predict"}"#, "invalid_route"),
            (#"{"api_key":"k","route":"POST predict"}"#, "invalid_route"),
            (#"{"api_key":"k","route":"POST /0123456789012345678901234567890"}"#, "route_too_long"),
            (#"{"api_key":"k","cost":-1}"#, "invalid_cost"),
            (#"{"api_key":"k","cost":1.5}"#, "invalid_cost"),
            (#"{"api_key":"k","cost":"3"}"#, "invalid_cost"),
            (#"{"api_key":"k","cost":true}"#, "invalid_cost"),
            (#"{"api_key":"k","cost":101}"#, "cost_too_large"),
            (#"{"api_key":"k","cost":1e30}"#, "cost_too_large"),
        ]
    )
    func badInput(json: String, code: String) {
        do {
            _ = try self.parse(json)
            Issue.record("\(json) must be rejected")
        } catch {
            #expect(error.code == code, "\(json): \(error)")
            #expect(!error.tooLarge)
        }
    }

    @Test("a body over the bound is 'too large'")
    func tooLarge() {
        let json = #"{"api_key":"k","pad":""# + String(repeating: "x", count: 2000) + #""}"#
        do {
            _ = try self.parse(json)
            Issue.record("must be rejected")
        } catch {
            #expect(error.code == "body_too_large" && error.tooLarge)
        }
    }

    @Test("routes: method case-insensitive, query and fragment ignored")
    func routes() {
        #expect(RequestRoute("post /v1/predict?a=b")?.description == "POST /v1/predict")
        #expect(RequestRoute("GET /x#frag")?.description == "GET /x")
        #expect(RequestRoute("GET /") != nil)
        #expect(RequestRoute("GET") == nil)
        #expect(RequestRoute(" /x") == nil)
        #expect(RequestRoute("GET  /x") == nil)
        #expect(RequestRoute("G(T /x") == nil)
        #expect(RequestRoute("GET /a b") == nil)
    }
}
