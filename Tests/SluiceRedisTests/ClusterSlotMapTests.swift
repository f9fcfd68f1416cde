import Testing

@testable import SluiceRedis

@Suite("Cluster slot map, hash slots and redirects")
struct ClusterSlotMapTests {
    let a = RedisAddress(host: "10.0.0.1", port: 6379)
    let b = RedisAddress(host: "10.0.0.2", port: 6379)

    @Test("CRC16 is XMODEM and slots follow Redis's hash-tag rule")
    func hashSlots() {
        #expect(ClusterSlotMap.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(ClusterSlotMap.slot(of: Array("foo".utf8)) == 12182)
        #expect(ClusterSlotMap.slot(of: Array("hello".utf8)) == 866)
        // Only the text between the first { and the next } counts, when it is not empty.
        #expect(ClusterSlotMap.slot(of: Array("{user1000}.following".utf8)) == ClusterSlotMap.slot(of: Array("{user1000}.followers".utf8)))
        #expect(ClusterSlotMap.slot(of: Array("foo{bar}{zap}".utf8)) == 5061)
        #expect(ClusterSlotMap.slot(of: Array("foo{{bar}}zap".utf8)) == 4015)
        #expect(ClusterSlotMap.slot(of: Array("foo{}{bar}".utf8)) == Int(ClusterSlotMap.crc16(Array("foo{}{bar}".utf8)) & 0x3FFF))
        // Every state key of one API key, and the registry's keys, share a slot.
        #expect(ClusterSlotMap.slot(of: Array("sl:{k1}:t".utf8)) == ClusterSlotMap.slot(of: Array("sl:{k1}:r:abc".utf8)))
        #expect(ClusterSlotMap.slot(of: Array("sluice:registry:{keys}".utf8)) == ClusterSlotMap.slot(of: Array("sluice:registry:{keys}:token".utf8)))
    }

    @Test("ranges, MOVED patches and masters that own nothing are dropped")
    func ranges() {
        var map = ClusterSlotMap(ranges: [(0...8191, self.a), (8192...16383, self.b)])
        #expect(map.masters == [self.a, self.b])
        #expect(map.master(forSlot: 0) == self.a)
        #expect(map.master(forSlot: 8192) == self.b)
        #expect(map.master(forSlot: 16384) == nil)
        #expect(map.unassignedSlots == 0)
        map.assign(slot: 100, to: self.b)
        #expect(map.master(forSlot: 100) == self.b)
        let half = ClusterSlotMap(ranges: [(0...8191, self.a)])
        #expect(half.unassignedSlots == 8192)
        #expect(half.master(forSlot: 9000) == nil)
        var moved = ClusterSlotMap(ranges: [(0...0, self.a), (1...16383, self.b)])
        moved.assign(slot: 0, to: self.b)
        #expect(moved.masters == [self.b])
    }

    @Test("CLUSTER SLOTS: masters per range; a master without a host is the node asked")
    func clusterSlots() throws {
        let reply = RedisReply.array([
            .array([.integer(0), .integer(5460), .array([.bulk(Array("10.0.0.1".utf8)), .integer(6379), .bulk(Array("id1".utf8))]),
                    .array([.bulk(Array("10.0.0.4".utf8)), .integer(6379), .bulk(Array("id4".utf8))])]),
            .array([.integer(5461), .integer(16383), .array([.bulk([]), .integer(7000), .bulk(Array("id2".utf8))])]),
        ])
        let map = try ClusterSlotMap.fromSlots(reply, askedNode: RedisAddress(host: "10.9.9.9", port: 1))
        #expect(map.master(forSlot: 5460) == self.a)
        #expect(map.master(forSlot: 5461) == RedisAddress(host: "10.9.9.9", port: 7000))
        #expect(throws: SluiceRedisError.self) { try ClusterSlotMap.fromSlots(.array([.integer(1)]), askedNode: self.a) }
        #expect(throws: SluiceRedisError.self) { try ClusterSlotMap.fromSlots(.error("ERR cluster support disabled"), askedNode: self.a) }
    }

    private func node(_ fields: [(String, RedisReply)]) -> RedisReply {
        .array(fields.flatMap { [RedisReply.bulk(Array($0.0.utf8)), $0.1] })
    }

    @Test("CLUSTER SHARDS: the online master of each shard; TLS takes tls-port; a shard without one stays unassigned")
    func clusterShards() throws {
        func text(_ s: String) -> RedisReply { .bulk(Array(s.utf8)) }
        let reply = RedisReply.array([
            self.node([
                ("slots", .array([.integer(0), .integer(100), .integer(200), .integer(300)])),
                ("nodes", .array([
                    self.node([("id", text("r1")), ("port", .integer(6380)), ("ip", text("10.0.0.3")), ("endpoint", text("10.0.0.3")), ("role", text("replica")), ("health", text("online"))]),
                    self.node([("id", text("m1")), ("port", .integer(6379)), ("tls-port", .integer(6390)), ("ip", text("10.0.0.1")), ("endpoint", text("10.0.0.1")), ("role", text("master")), ("health", text("online"))]),
                ])),
            ]),
            self.node([
                ("slots", .array([.integer(101), .integer(199)])),
                ("nodes", .array([
                    self.node([("id", text("m2")), ("port", .integer(6379)), ("ip", text("10.0.0.2")), ("endpoint", text("10.0.0.2")), ("role", text("master")), ("health", text("failed"))]),
                ])),
            ]),
        ])
        let plain = try ClusterSlotMap.fromShards(reply, askedNode: self.b, tls: false)
        #expect(plain.master(forSlot: 0) == self.a)
        #expect(plain.master(forSlot: 250) == self.a)
        #expect(plain.master(forSlot: 150) == nil)
        #expect(plain.master(forSlot: 301) == nil)
        let tls = try ClusterSlotMap.fromShards(reply, askedNode: self.b, tls: true)
        #expect(tls.master(forSlot: 0) == RedisAddress(host: "10.0.0.1", port: 6390))
        #expect(throws: SluiceRedisError.self) { try ClusterSlotMap.fromShards(.array([self.node([("slots", .array([]))])]), askedNode: self.a, tls: false) }
    }

    @Test("MOVED, ASK, TRYAGAIN and CLUSTERDOWN are read; other errors are not redirects")
    func redirects() {
        #expect(ClusterRedirect(errorMessage: "MOVED 3999 127.0.0.1:6381", askedNode: nil) == .moved(slot: 3999, to: RedisAddress(host: "127.0.0.1", port: 6381)))
        #expect(ClusterRedirect(errorMessage: "ASK 3999 10.0.0.2:6379", askedNode: nil) == .ask(slot: 3999, to: self.b))
        #expect(ClusterRedirect(errorMessage: "MOVED 1 [::1]:7000", askedNode: nil) == .moved(slot: 1, to: RedisAddress(host: "::1", port: 7000)))
        #expect(ClusterRedirect(errorMessage: "MOVED 1 :7000", askedNode: self.a) == .moved(slot: 1, to: RedisAddress(host: "10.0.0.1", port: 7000)))
        #expect(ClusterRedirect(errorMessage: "TRYAGAIN Multiple keys request during rehashing of slot", askedNode: nil) == .retryLater)
        #expect(ClusterRedirect(errorMessage: "CLUSTERDOWN Hash slot not served", askedNode: nil) == .retryLater)
        #expect(ClusterRedirect(errorMessage: "MOVED 99999 127.0.0.1:1", askedNode: nil) == nil)
        #expect(ClusterRedirect(errorMessage: "MOVED x y", askedNode: nil) == nil)
        #expect(ClusterRedirect(errorMessage: "ERR unknown command", askedNode: nil) == nil)
        #expect(ClusterRedirect(errorMessage: "NOSCRIPT No matching script", askedNode: nil) == nil)
    }

    @Test("the routing key of a command: its first argument, EVALSHA's first key, none for keyless commands")
    func routingKey() {
        #expect(RedisClient.key(of: ["HGET", "sluice:registry:{keys}", "k"]) == "sluice:registry:{keys}")
        #expect(RedisClient.key(of: ["evalsha", "abc", "2", "sl:{k}:t", "sl:{k}:q", "1"]) == "sl:{k}:t")
        #expect(RedisClient.key(of: ["EVALSHA", "abc", "0", "x"]) == nil)
        #expect(RedisClient.key(of: ["CONFIG", "GET", "save"]) == nil)
        #expect(RedisClient.key(of: ["PUBLISH", "channel", "x"]) == nil)
        #expect(RedisClient.key(of: ["PING"]) == nil)
    }
}
