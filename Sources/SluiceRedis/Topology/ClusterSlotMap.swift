/// Which master owns each of a Redis Cluster's 16,384 hash slots (docs/ARCHITECTURE.md,
/// "Redis Cluster"). A value: every event loop keeps its own copy and patches it on `MOVED`.
public struct ClusterSlotMap: Sendable, Hashable {
    /// Hash slots in a Redis Cluster.
    public static let slotCount = 16384

    /// The masters that own at least one slot, in the order first seen.
    public private(set) var masters: [RedisAddress]
    /// Per slot, an index into `masters`, or -1 when no master serves it.
    private var owners: [Int16]

    /// A map in which no slot has a master.
    public init() {
        self.masters = []
        self.owners = Array(repeating: -1, count: Self.slotCount)
    }

    /// A map from slot ranges and their masters; later ranges win over earlier ones.
    public init(ranges: [(slots: ClosedRange<Int>, master: RedisAddress)]) {
        self.init()
        for range in ranges {
            let index = self.index(of: range.master)
            for slot in range.slots.clamped(to: 0...(Self.slotCount - 1)) {
                self.owners[slot] = index
            }
        }
        self.dropUnused()
    }

    /// The master that owns `slot`, or nil when none does (or the slot is out of range).
    public func master(forSlot slot: Int) -> RedisAddress? {
        guard slot >= 0, slot < Self.slotCount else { return nil }
        let index = self.owners[slot]
        return index < 0 ? nil : self.masters[Int(index)]
    }

    /// Slots that no master serves.
    public var unassignedSlots: Int { self.owners.reduce(0) { $0 + ($1 < 0 ? 1 : 0) } }

    /// Records that `master` now owns `slot` (a `MOVED` redirect).
    public mutating func assign(slot: Int, to master: RedisAddress) {
        guard slot >= 0, slot < Self.slotCount else { return }
        self.owners[slot] = self.index(of: master)
        self.dropUnused()
    }

    private mutating func index(of master: RedisAddress) -> Int16 {
        if let index = self.masters.firstIndex(of: master) { return Int16(index) }
        self.masters.append(master)
        return Int16(self.masters.count - 1)
    }

    /// Removes masters that no longer own a slot, renumbering the rest.
    private mutating func dropUnused() {
        var used = Array(repeating: false, count: self.masters.count)
        for owner in self.owners where owner >= 0 { used[Int(owner)] = true }
        guard used.contains(false) else { return }
        var renumbered = Array(repeating: Int16(-1), count: self.masters.count)
        var kept: [RedisAddress] = []
        for (index, master) in self.masters.enumerated() where used[index] {
            renumbered[index] = Int16(kept.count)
            kept.append(master)
        }
        self.masters = kept
        for slot in 0..<Self.slotCount where self.owners[slot] >= 0 {
            self.owners[slot] = renumbered[Int(self.owners[slot])]
        }
    }
}

// MARK: - Hash slots

extension ClusterSlotMap {
    /// The hash slot of a key: CRC16 (XMODEM) of its hash tag, the text between the first
    /// `{` and the next `}` when that text is not empty, or of the whole key, modulo 16,384.
    public static func slot<Bytes: Collection>(of key: Bytes) -> Int where Bytes.Element == UInt8, Bytes.Index == Int {
        var start = key.startIndex
        var end = key.endIndex
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
            close > open + 1
        {
            start = open + 1
            end = close
        }
        return Int(Self.crc16(key[start..<end]) & 0x3FFF)
    }

    /// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster uses it.
    static func crc16<Bytes: Collection>(_ bytes: Bytes) -> UInt16 where Bytes.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ Self.crcTable[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    private static let crcTable: [UInt16] = (0..<256).map { value in
        var crc = UInt16(value) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
        return crc
    }
}

// MARK: - Replies

extension ClusterSlotMap {
    /// The map in a `CLUSTER SHARDS` reply (Redis 7+): per shard, its slot ranges and the
    /// node whose role is master and health online. A shard without one leaves its slots
    /// unassigned. A node without an endpoint (`?` or empty) is taken to be `askedNode`'s host.
    /// - Parameters:
    ///   - tls: whether connections use TLS: the node's `tls-port` is then preferred to `port`.
    /// - Throws: ``SluiceRedisError`` (protocol error) for a reply of another shape.
    public static func fromShards(_ reply: RedisReply, askedNode: RedisAddress, tls: Bool) throws -> ClusterSlotMap {
        guard let shards = reply.array else {
            throw SluiceRedisError.protocolError("CLUSTER SHARDS: not an array: \(reply)")
        }
        var ranges: [(slots: ClosedRange<Int>, master: RedisAddress)] = []
        for shard in shards {
            let fields = Self.fields(shard)
            guard let slots = fields["slots"]?.array, let nodes = fields["nodes"]?.array else {
                throw SluiceRedisError.protocolError("CLUSTER SHARDS: a shard without slots or nodes: \(shard)")
            }
            let master = nodes.map(Self.fields).first { node in
                node["role"]?.string == "master" && (node["health"]?.string ?? "online") == "online"
            }
            guard let master else { continue }
            let port = (tls ? master["tls-port"]?.int : nil) ?? master["port"]?.int ?? master["tls-port"]?.int
            guard let port, (1...65535).contains(port) else {
                throw SluiceRedisError.protocolError("CLUSTER SHARDS: a master without a port: \(master)")
            }
            let host = [master["endpoint"], master["ip"]].compactMap { $0?.string }.first { !$0.isEmpty && $0 != "?" } ?? askedNode.host
            let address = RedisAddress(host: host, port: Int(port))
            var index = 0
            while index + 1 < slots.count {
                guard let first = slots[index].int, let last = slots[index + 1].int, first <= last else {
                    throw SluiceRedisError.protocolError("CLUSTER SHARDS: a bad slot range in \(slots)")
                }
                ranges.append((Int(first)...Int(last), address))
                index += 2
            }
        }
        return ClusterSlotMap(ranges: ranges)
    }

    /// The map in a `CLUSTER SLOTS` reply: per range, `[first, last, [host, port, id, ...], replicas...]`.
    /// A master without a host (empty or `?`) is taken to be `askedNode`'s host.
    /// - Throws: ``SluiceRedisError`` (protocol error) for a reply of another shape.
    public static func fromSlots(_ reply: RedisReply, askedNode: RedisAddress) throws -> ClusterSlotMap {
        guard let entries = reply.array else {
            throw SluiceRedisError.protocolError("CLUSTER SLOTS: not an array: \(reply)")
        }
        var ranges: [(slots: ClosedRange<Int>, master: RedisAddress)] = []
        for entry in entries {
            guard let parts = entry.array, parts.count >= 3, let first = parts[0].int, let last = parts[1].int, first <= last,
                let node = parts[2].array, node.count >= 2, let port = node[1].int, (1...65535).contains(port)
            else {
                throw SluiceRedisError.protocolError("CLUSTER SLOTS: an entry of another shape: \(entry)")
            }
            let host = node[0].string.flatMap { $0.isEmpty || $0 == "?" ? nil : $0 } ?? askedNode.host
            ranges.append((Int(first)...Int(last), RedisAddress(host: host, port: Int(port))))
        }
        return ClusterSlotMap(ranges: ranges)
    }

    /// A flat `[name, value, name, value, ...]` array as a dictionary (RESP2 maps).
    private static func fields(_ reply: RedisReply) -> [String: RedisReply] {
        var fields: [String: RedisReply] = [:]
        for (name, value) in reply.pairs {
            if let name = name.string { fields[name] = value }
        }
        return fields
    }
}

// MARK: - Redirects

/// What a Redis Cluster error reply asks the client to do (docs/ARCHITECTURE.md, "Redis Cluster").
public enum ClusterRedirect: Sendable, Hashable {
    /// `MOVED <slot> <host>:<port>`: the slot lives there now; update the map and send there.
    case moved(slot: Int, to: RedisAddress)
    /// `ASK <slot> <host>:<port>`: this key is being migrated there; send `ASKING` and the
    /// command there, once, without changing the map.
    case ask(slot: Int, to: RedisAddress)
    /// `TRYAGAIN` (a multi-key command during a migration), `CLUSTERDOWN` (the slot has no
    /// master right now) or `MASTERDOWN`: the command did not run; it may run a little later.
    case retryLater

    /// The redirect in an error reply's message, or nil for any other error.
    /// A `MOVED`/`ASK` whose address has no host (`:6380`) takes `askedNode`'s host.
    public init?(errorMessage message: String, askedNode: RedisAddress?) {
        if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") || message.hasPrefix("MASTERDOWN") {
            self = .retryLater
            return
        }
        let isMoved = message.hasPrefix("MOVED ")
        guard isMoved || message.hasPrefix("ASK ") else { return nil }
        let fields = message.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 3, let slot = Int(fields[1]), (0..<ClusterSlotMap.slotCount).contains(slot),
            let colon = fields[2].lastIndex(of: ":"), let port = Int(fields[2][fields[2].index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(fields[2][..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty {
            guard let askedNode else { return nil }
            host = askedNode.host
        }
        let address = RedisAddress(host: host, port: port)
        self = isMoved ? .moved(slot: slot, to: address) : .ask(slot: slot, to: address)
    }
}
