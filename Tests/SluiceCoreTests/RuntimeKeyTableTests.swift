import Foundation
import Testing

@testable import SluiceCore


/// The runtime key table: changes in place, ids kept as 15 bytes, plans interned.
@Suite("Runtime key table")
struct RuntimeKeyTableTests {
    @Test("records go in, change and go out by id; ids round-trip; hand-written ids are kept too")
    func changes() {
        let table = RuntimeKeyTable()
        let digester = KeyDigester(secret: "t")
        let a = digester.keyID(apiKey: "a")
        let b = digester.keyID(apiKey: "b")
        #expect(RuntimeKeyTable.ID(a)?.text == a && RuntimeKeyTable.ID("not-a-key-id") == nil)
        table.replaceAll([a: RuntimeKey(id: a, plan: "p", name: "first", created: 1), "odd id": RuntimeKey(id: "odd id", plan: "q", name: nil, created: 2)])
        #expect(table.count == 2 && table.plan(id: a) == "p" && table.plan(id: "odd id") == "q")
        #expect(table.record(id: a) == RuntimeKey(id: a, plan: "p", name: "first", created: 1))
        table.update(id: b, record: RuntimeKey(id: b, plan: "q", name: nil, created: 3))
        table.update(id: a, record: RuntimeKey(id: a, plan: "q", name: nil, created: 1))
        #expect(table.plan(id: a) == "q" && table.count == 3)
        table.update(id: a, record: nil)
        #expect(table.plan(id: a) == nil && table.record(id: a) == nil && table.count == 2)
        #expect(Set(table.allRecords().map(\.id)) == [b, "odd id"])
        table.replaceAll([:])
        #expect(table.count == 0 && table.plan(id: b) == nil)
    }

    @Test("a keyring resolves runtime keys against its own config: a snapshot taken before a change sees the change, a plan that is gone resolves to nothing")
    func sharedAcrossSnapshots() throws {
        let config = try ConfigLoader.parse(
            yaml: "admin: { port: 9091 }\nplans: { p: { throttle: { rate: 1, burst: 1 } } }\n", source: "t.yaml", environment: ["SLUICE_KEY_SECRET": "t"]
        )
        let table = RuntimeKeyTable()
        let keyring = Keyring(rules: config.rules, digester: KeyDigester(secret: "t"), runtime: table)
        let id = keyring.keyID(apiKey: "runtime-key")
        #expect(keyring.resolve(apiKey: "runtime-key") == nil)
        table.update(id: id, record: RuntimeKey(id: id, plan: "p", name: nil, created: 0))
        #expect(keyring.resolve(apiKey: "runtime-key")?.plan.name == "p" && keyring.resolve(apiKey: "runtime-key")?.keyID == id)
        table.update(id: id, record: RuntimeKey(id: id, plan: "gone", name: nil, created: 0))
        #expect(keyring.resolve(apiKey: "runtime-key") == nil && keyring.orphans.map(\.id) == [id])
        #expect(keyring.key(id: id)?.record.plan == "gone" && keyring.key(id: id)?.entry == nil)
    }

    @Test("100,000 runtime keys cost at most 300 bytes each in the instance")
    func memoryPerKey() throws {
        let digester = KeyDigester(secret: "m")
        let count = 100_000
        let ids = (0..<count).map { digester.keyID(apiKey: "key-\($0)") }
        let table = RuntimeKeyTable()
        let before = try Self.residentBytes()
        for (index, id) in ids.enumerated() {
            table.update(id: id, record: RuntimeKey(id: id, plan: index % 2 == 0 ? "ml-basic" : "ml-enterprise-plan", name: nil, created: 1_700_000_000_000))
        }
        let after = try Self.residentBytes()
        #expect(table.count == count)
        // What the table's storage takes: its hash table's buckets (key and entry each) at the
        // capacity the dictionary grew to. Plan names are interned; a name costs what its
        // string does (none here).
        let perKey = Double(table.storageBytes) / Double(count)
        #expect(perKey <= 300, "\(perKey) bytes per runtime key")
        // The process's resident memory grew by about as much (other tests running at the same
        // time grow it too, so this is printed, not asserted; run this test alone to measure).
        print("runtime key table: \(Int(perKey.rounded())) bytes per key by layout, resident memory +\((after - before) / count) bytes per key over \(count) keys")
    }

    /// The process's resident set size, from /proc/self/statm.
    static func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8)
        let pages = statm.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
