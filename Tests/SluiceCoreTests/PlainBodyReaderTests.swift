import Foundation
import SluiceTestSupport
import Testing

@testable import SluiceCore

/// The hand reader of `/v1/check` bodies against JSONDecoder, the reference: for every
/// body, the same request or the same error.
@Suite("Check body: hand reader = JSONDecoder")
struct PlainBodyReaderTests {
    let bounds = InputBounds()

    func both(_ body: String) -> (Result<CheckRequest, InputError>, Result<CheckRequest, InputError>) {
        let data = Data(body.utf8)
        let fast = Result { () throws(InputError) -> CheckRequest in try CheckRequest.parse(json: data, bounds: self.bounds) }
        let reference = Result { () throws(InputError) -> CheckRequest in try CheckRequest.parseWithDecoder(json: data, bounds: self.bounds) }
        return (fast, reference)
    }

    @Test("common bodies are read by hand, with the decoder's result")
    func common() {
        let bodies = [
            #"{"api_key":"k"}"#,
            #"{"api_key":"demo-key-123","route":"POST /v1/predict","cost":3}"#,
            #" { "cost" : 0 , "api_key" : "k" } "#,
            "{\n\t\"route\": \"GET /v1/models/gpt-4?x=1\",\r\n\"api_key\": \"ключ-🔑\"}",
            #"{"api_key":"k","route":null,"cost":null}"#,
            #"{"api_key":"k","cost":999999999999999999}"#,
            #"{}"#,
            #"{"route":"POST /v1/x"}"#,
            #"{"api_key":"","cost":1}"#,
            #"{"api_key":"k","route":"nonsense"}"#,
            #"{"api_key":"k","cost":1000001}"#,
        ]
        for body in bodies {
            #expect(CheckRequest.plainBody(Data(body.utf8)) != nil, "\(body) should be read by hand")
            let (fast, reference) = self.both(body)
            #expect(fast == reference, "\(body)")
        }
    }

    @Test("everything else falls back to the decoder: same answers")
    func fallback() {
        let bodies = [
            #"{"api_key":"k\"q"}"#, #"{"api_key":"\u006b"}"#, #"{"api_key":"k","cost":1.0}"#, #"{"api_key":"k","cost":1e2}"#,
            #"{"api_key":"k","cost":-1}"#, #"{"api_key":"k","cost":01}"#, #"{"api_key":"k","cost":"1"}"#, #"{"api_key":"k","cost":true}"#,
            #"{"api_key":"k","cost":9999999999999999999999}"#, #"{"api_key":1}"#, #"{"api_key":"k","extra":{"a":[1,2]}}"#,
            #"{"api_key":"k","api_key":"j"}"#, #"{"api_key":"k",}"#, #"{"api_key":"k""#, #"[]"#, #""k""#, "", " ", "nul",
            #"{"api_key":"k"} x"#, #"{"api_key":nullx}"#, #"{"api_key":"a\#u{01}b"}"#, #"{"route":["x"],"api_key":"k"}"#,
            #"{"api_key":"k","cost":18446744073709551616}"#, #"{"api_key":"k","cost":12345678901234567890}"#,
        ]
        for body in bodies {
            let (fast, reference) = self.both(body)
            #expect(fast == reference, "\(body): \(fast) vs \(reference)")
        }
        // Invalid UTF-8 inside a string.
        var bytes = Array(#"{"api_key":"k"#.utf8)
        bytes += [0xC3, 0x28]
        bytes += Array(#""}"#.utf8)
        #expect(CheckRequest.plainBody(Data(bytes)) == nil)
    }

    /// Seeded (`SluiceTestSupport.SeededRandom`): the seed is printed and named in every failure;
    /// `SLUICE_TEST_SEED=<seed>` replays a run.
    @Test("random bodies: the hand reader never disagrees with the decoder")
    func random() throws {
        var generator = try SeededRandom.forTest("PlainBodyReaderTests.random")
        let seed = generator.seed
        let pieces = [
            "{", "}", "\"api_key\"", "\"route\"", "\"cost\"", ":", ",", " ", "\"k\"", "\"POST /v1/x\"", "1", "0", "12", "-", ".", "e",
            "null", "true", "\"\\n\"", "[", "]", "\"x\"", "007", "\"é\"",
        ]
        for _ in 0..<3000 {
            var body = ""
            for _ in 0..<Int.random(in: 1...12, using: &generator) {
                body += pieces.randomElement(using: &generator)!
            }
            let (fast, reference) = self.both(body)
            #expect(fast == reference, "\(body) (seed \(seed))")
        }
        // Well-formed bodies with random field order, spacing and values.
        for _ in 0..<2000 {
            var fields: [String] = []
            if Bool.random(using: &generator) { fields.append(#""api_key":"key-\#(Int.random(in: 0...999, using: &generator))""#) }
            if Bool.random(using: &generator) { fields.append(#""route":"POST /v1/p\#(Int.random(in: 0...9, using: &generator))""#) }
            if Bool.random(using: &generator) { fields.append(#""cost":\#(Int.random(in: 0...2_000_000, using: &generator))"#) }
            fields.shuffle(using: &generator)
            let space = [" ", "", "\n", "\t"].randomElement(using: &generator)!
            let body = "{" + space + fields.joined(separator: space + "," + space) + space + "}"
            #expect(CheckRequest.plainBody(Data(body.utf8)) != nil, "\(body) (seed \(seed))")
            let (fast, reference) = self.both(body)
            #expect(fast == reference, "\(body) (seed \(seed))")
        }
    }
}
