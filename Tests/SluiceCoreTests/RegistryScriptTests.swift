import Foundation
import SluiceCore
import Testing

/// The registry script's protocol without Redis: the call's bytes, the reply's decoding, the
/// notices. The script itself runs against Redis in SluiceServerTests' registry suites.
@Suite("Registry script protocol")
struct RegistryScriptTests {
    let record = RuntimeKey(id: "abc", plan: "gold", name: "ci", created: 1_700_000_000_000)

    func text(_ bytes: [[UInt8]]) -> [String] {
        bytes.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("a change's KEYS are the hash, version and token; ARGV the operation, id, JSON record and channel")
    func call() throws {
        let channel = RegistryScript.channel(database: 3)
        #expect(channel == "sluice:registry:events:3")
        let create = try RegistryScript.call(.create, id: "abc", record: self.record, channel: channel)
        #expect(self.text(create.keys) == ["sluice:registry:{keys}", "sluice:registry:{keys}:version", "sluice:registry:{keys}:token"])
        #expect(create.arguments.count == 4)
        #expect(self.text(create.arguments)[0...1] == ["create", "abc"])
        // The record as JSON (whose key order JSONEncoder leaves open), read back the same.
        #expect(RegistryScript.record(from: create.arguments[2]) == self.record)
        #expect(self.text(create.arguments)[3] == channel)

        let delete = try RegistryScript.call(.delete, id: "abc", record: nil, channel: channel)
        #expect(self.text(delete.arguments) == ["delete", "abc", "", channel])
        #expect(RegistryScript.record(from: Array("not json".utf8)) == nil)
    }

    @Test("the reply: status 1 gives the version and tokens; anything else is refused")
    func result() throws {
        let done = try RegistryScript.result([(1, nil), (12, nil), (nil, "1700000000.5.12"), (nil, "1700000000.1.11")])
        #expect(done.version == 12 && done.change == RegistryScript.Change(token: "1700000000.5.12", previous: "1700000000.1.11"))
        // Integers read from text, missing tokens as "".
        let text = try RegistryScript.result([(1, "1"), (3, "3"), (nil, nil), (nil, "")])
        #expect(text.version == 3 && text.change == RegistryScript.Change(token: "", previous: ""))
        #expect(throws: RegistryScript.Refused.self) {
            try RegistryScript.result([(0, nil), (0, nil), (nil, ""), (nil, "")])
        }
        #expect(throws: RegistryScript.Refused.self) {
            try RegistryScript.result([(1, nil), (12, nil), (nil, "t")])
        }
        #expect(throws: RegistryScript.Refused.self) {
            try RegistryScript.result([(1, nil), (nil, "x"), (nil, "t"), (nil, "p")])
        }
    }

    @Test("notices: key changes with and without tokens, state changes, anything else ignored")
    func notices() {
        func parse(_ text: String) -> RegistryScript.Notice? { RegistryScript.Notice(payload: Array(text.utf8)) }
        let change = RegistryScript.Change(token: "1700000000.5.12", previous: "")
        #expect(parse("key 12 abc 1700000000.5.12 ") == .key(version: 12, id: "abc", change: change))
        #expect(parse("key 12 abc") == .key(version: 12, id: "abc", change: nil))
        #expect(parse("state abc") == .state(id: "abc"))
        for other in ["key x abc", "key 12", "state", "state abc def", "lock abc", ""] {
            #expect(parse(other) == nil, "\(other)")
        }
        for notice: RegistryScript.Notice in [.key(version: 12, id: "abc", change: change), .key(version: 3, id: "a", change: nil), .state(id: "abc")] {
            #expect(parse(notice.text) == notice)
        }
        #expect(RegistryScript.Notice.state(id: "abc").text == "state abc")
    }
}
