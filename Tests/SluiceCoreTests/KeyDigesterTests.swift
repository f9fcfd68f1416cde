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

    /// Known answers, computed outside Swift from the documented derivation (docs/ARCHITECTURE.md,
    /// invariant 6: HMAC-SHA-256 under the secret of the key's SHA-256; KeyDigester: the first 15
    /// bytes, unpadded base64url). With Python 3's hashlib, hmac and base64:
    ///
    ///     d = hashlib.sha256(key.encode()).digest()
    ///     m = hmac.new(secret.encode(), d, hashlib.sha256).digest()
    ///     base64.urlsafe_b64encode(m[:15]).decode().rstrip("=")
    ///
    /// and the first again with openssl (`printf demo-key-123 | openssl dgst -sha256 -binary |
    /// openssl dgst -sha256 -mac HMAC -macopt key:server-test -binary | head -c 15 | base64`, then
    /// `+/` to `-_`). The ids hold `-` and `_`, so the URL-safe alphabet is checked too. A change
    /// here changes every key id, i.e. every caller's Redis state and every admin URL.
    @Test("key ids are the documented HMAC-SHA-256 of the key's SHA-256: fixed expected ids", arguments: [
        ("server-test", "demo-key-123", "VOMF_LdAfu6KppByF76l"),
        (KeyDigester.defaultSecret, "demo-key-123", "YK97J7Zi94TPRnLAlH2c"),
        ("one", "k", "RBeRRKP1MYlvKJ1Whmnh"),
        ("two", "k", "ACcY-c6Muf9DjWhVnDzU"),
        ("server-test", "ключ-🔑", "xzI8Ziyu8ScEGRF0ZLPf"),  // the key's UTF-8 bytes
    ])
    func knownIDs(secret: String, key: String, id: String) {
        let digester = KeyDigester(secret: secret)
        #expect(digester.keyID(apiKey: key) == id)
        // A config entry given as key_sha256 (hex) gets the same id.
        #expect(digester.keyID(sha256: Hex.decode(KeyDigester.sha256Hex(of: key)) ?? []) == id)
    }

    @Test("SHA-256 of keys: fixed expected hex (hashlib.sha256(key.encode()).hexdigest())")
    func knownSHA256() {
        #expect(KeyDigester.sha256Hex(of: "demo-key-123") == "a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873")
        #expect(KeyDigester.sha256Hex(of: "k") == "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a")
        #expect(KeyDigester.sha256Hex(of: "ключ-🔑") == "817281acd7012441f865e3ae0c0535f31fc058cbc14c894929b2086588ede9f3")
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
        // Known answers: "r:" + base64url(sha256(route)[:6]), computed with Python's hashlib and
        // base64 as above. A change would orphan every route bucket in Redis.
        #expect(suffix == "r:dnA2lk9X")
        #expect(StateKeys.routeSuffix(normalizedRoute: "GET /v1/models/{id}") == "r:eDtz7N3G")
        #expect(StateKeys.prefix(keyID: "VOMF_LdAfu6KppByF76l") + StateKeys.throttleSuffix == "sl:{VOMF_LdAfu6KppByF76l}:t")
        #expect(StateKeys.quotaSuffix == "q" && StateKeys.usageSuffix == "u")
    }
}
