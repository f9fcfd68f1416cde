import Synchronization

/// The runtime keys an instance mirrors, in a compact table shared by every config snapshot and
/// changed in place: one change costs O(1) whatever the registry's size (a snapshot never copies
/// it), and an entry costs well under 300 bytes (docs/ARCHITECTURE.md, "Runtime key registry").
///
/// An entry holds the key id as 15 bytes, its plan as an index into the table's plan names, its
/// creation time and its name. The plan itself is resolved against the config in force when a
/// key is looked up, so a config reload changes nothing here.
public final class RuntimeKeyTable: Sendable {
    /// A key id (20 base64url characters, 120 bits) as two integers.
    struct ID: Hashable, Sendable {
        let high: UInt64
        let low: UInt64

        /// Nil for an id that is not 20 base64url characters (a record written by hand).
        init?(_ id: String) {
            let bytes = id.utf8
            guard bytes.count == 20 else { return nil }
            var high: UInt64 = 0
            var low: UInt64 = 0
            for (index, byte) in bytes.enumerated() {
                guard let value = Self.sextet(byte) else { return nil }
                // 20 × 6 = 120 bits: the first 10 characters into high, the rest into low.
                if index < 10 { high = high << 6 | UInt64(value) } else { low = low << 6 | UInt64(value) }
            }
            self.high = high
            self.low = low
        }

        /// The id's text again.
        var text: String {
            var scalars = String.UnicodeScalarView()
            for half in [self.high, self.low] {
                for shift in stride(from: 54, through: 0, by: -6) {
                    scalars.append(Unicode.Scalar(Self.alphabet[Int(half >> UInt64(shift) & 0x3F)]))
                }
            }
            return String(scalars)
        }

        private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

        private static func sextet(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): return byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): return 62
            case UInt8(ascii: "_"): return 63
            default: return nil
            }
        }
    }

    struct Entry: Sendable {
        let plan: UInt32
        let created: Int64
        let name: String?
    }

    fileprivate struct State: Sendable {
        var entries: [ID: Entry] = [:]
        /// Records whose id is not a key id Sluice makes (written into Redis by hand).
        var odd: [String: Entry] = [:]
        var plans: [String] = []
        var planIndex: [String: UInt32] = [:]

        mutating func intern(_ plan: String) -> UInt32 {
            if let index = self.planIndex[plan] { return index }
            let index = UInt32(self.plans.count)
            self.plans.append(plan)
            self.planIndex[plan] = index
            return index
        }

        mutating func put(_ id: String, _ record: RuntimeKey?) {
            let entry = record.map { Entry(plan: self.intern($0.plan), created: $0.created, name: $0.name) }
            if let key = ID(id) { self.entries[key] = entry } else { self.odd[id] = entry }
        }

        func record(_ id: String, _ entry: Entry) -> RuntimeKey {
            RuntimeKey(id: id, plan: self.plans[Int(entry.plan)], name: entry.name, created: entry.created)
        }
    }

    private let state = Mutex(State())
    /// ``count``, kept apart so that a decision asks it without taking the lock.
    private let storedCount = Atomic<Int>(0)

    /// Creates an empty table.
    public init() {}

    /// How many keys it holds.
    public var count: Int { self.storedCount.load(ordering: .relaxed) }

    /// Bytes the table's hash tables take: each bucket of their capacity holds a key and an
    /// entry (strings that do not fit in one, and the plan names, come on top).
    var storageBytes: Int {
        self.state.withLock { state in
            state.entries.capacity * (MemoryLayout<ID>.stride + MemoryLayout<Entry>.stride)
                + state.odd.capacity * (MemoryLayout<String>.stride + MemoryLayout<Entry>.stride)
        }
    }

    /// Replaces every key (a full read of the registry).
    public func replaceAll(_ records: [String: RuntimeKey]) {
        var fresh = Builder()
        for (id, record) in records { fresh.add(id, record) }
        self.replaceAll(fresh)
    }

    /// A whole table built apart (a full read of the registry, page by page) and then put in
    /// force at once: no record is held twice while it is built.
    public struct Builder: Sendable {
        fileprivate var state = State()

        /// An empty table.
        public init() {}

        /// Adds one key (a later one with the same id wins).
        public mutating func add(_ id: String, _ record: RuntimeKey) {
            self.state.put(id, record)
        }

        /// Keys added so far.
        public var count: Int { self.state.entries.count + self.state.odd.count }
    }

    /// Replaces every key with those of `builder`.
    public func replaceAll(_ builder: Builder) {
        let fresh = builder.state
        self.state.withLock {
            $0 = fresh
            self.storedCount.store(fresh.entries.count + fresh.odd.count, ordering: .relaxed)
        }
    }

    /// Adds, replaces (a record) or removes (nil) one key.
    public func update(id: String, record: RuntimeKey?) {
        self.state.withLock {
            $0.put(id, record)
            self.storedCount.store($0.entries.count + $0.odd.count, ordering: .relaxed)
        }
    }

    /// The plan name of key `id`, nil when it is not here.
    public func plan(id: String) -> String? {
        self.state.withLock { state in
            let entry = ID(id).flatMap { state.entries[$0] } ?? state.odd[id]
            return entry.map { state.plans[Int($0.plan)] }
        }
    }

    /// Key `id` as stored, nil when it is not here.
    public func record(id: String) -> RuntimeKey? {
        self.state.withLock { state in
            (ID(id).flatMap { state.entries[$0] } ?? state.odd[id]).map { state.record(id, $0) }
        }
    }

    /// Every key, for listings (O(n): the admin API only).
    public func allRecords() -> [RuntimeKey] {
        self.state.withLock { state in
            state.entries.map { state.record($0.key.text, $0.value) } + state.odd.map { state.record($0.key, $0.value) }
        }
    }
}
