import SluiceCore
import Testing

@Suite("Key ids")
struct KeyDigesterTests {
    @Test("ids are keyed: the secret changes them; raw key and its SHA-256 agree")
    func keyed() {
        let a = KeyDigester(secret: "one")
        let b = KeyDigester(secret: "two")
        #expect(a.keyID(apiKey: "k") != b.keyID(apiKey: "k"))
        #expect(a.keyID(apiKey: "k") == a.keyID(sha256: KeyDigester.sha256(of: "k")))
        #expect(a.keyID(apiKey: "k") != a.keyID(apiKey: "k2"))
    }

    @Test("ids are 20 base64url characters and never contain the key")
    func shape() {
        let id = KeyDigester(secret: "s").keyID(apiKey: "demo-key-123")
        #expect(id.count == 20)
        #expect(id.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(!id.contains("demo"))
    }

    @Test("hex and base64url")
    func encodings() {
        #expect(Hex.encode([0, 255, 16]) == "00ff10")
        #expect(Hex.decode("00FF10") == [0, 255, 16])
        #expect(Hex.decode("0g") == nil)
        #expect(Hex.decode("abc") == nil)
        #expect(Base64URL.encode(Array("any carnal pleas".utf8)) == "YW55IGNhcm5hbCBwbGVhcw")
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(KeyDigester.sha256Hex(of: "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("state keys share one hash tag per API key and hold no raw route")
    func stateKeys() {
        #expect(StateKeys.prefix(keyID: "abc") == "sl:{abc}:")
        let suffix = StateKeys.routeSuffix(normalizedRoute: "POST /v1/predict")
        #expect(suffix.hasPrefix("r:") && suffix.count == 10 && !suffix.contains("predict"))
    }
}
