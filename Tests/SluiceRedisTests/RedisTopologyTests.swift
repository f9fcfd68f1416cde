import Logging
import NIOCore
import NIOPosix
import Testing

@testable import SluiceRedis

@Suite("Sentinel replies, parsed without servers")
struct RedisTopologyTests {
    @Test("get-master-addr-by-name: the address")
    func masterAddress() throws {
        let reply = RedisReply.array([.bulk(Array("10.0.0.7".utf8)), .bulk(Array("6380".utf8))])
        #expect(try RedisTopology.masterAddress(from: reply, masterName: "m") == RedisAddress(host: "10.0.0.7", port: 6380))
    }

    @Test("get-master-addr-by-name: unknown master, error, odd shapes")
    func masterAddressFailures() {
        let replies: [RedisReply] = [
            .null,
            .error("NOAUTH Authentication required."),
            .array([.bulk(Array("h".utf8))]),
            .array([.bulk(Array("h".utf8)), .bulk(Array("0".utf8))]),
            .array([.bulk(Array("".utf8)), .bulk(Array("6379".utf8))]),
            .status("OK"),
        ]
        for reply in replies {
            #expect(throws: SluiceRedisError.self, "\(reply)") { try RedisTopology.masterAddress(from: reply, masterName: "m") }
        }
        #expect {
            try RedisTopology.masterAddress(from: .null, masterName: "mymaster")
        } throws: { error in
            (error as? SluiceRedisError)?.message.contains("mymaster") == true
        }
    }

    @Test("+switch-master: the new address, for our master only")
    func switchMaster() {
        #expect(
            RedisTopology.switchedMaster(message: "mymaster 127.0.0.1 6379 127.0.0.1 6380", masterName: "mymaster")
                == RedisAddress(host: "127.0.0.1", port: 6380)
        )
        #expect(RedisTopology.switchedMaster(message: "other 127.0.0.1 6379 127.0.0.1 6380", masterName: "mymaster") == nil)
        #expect(RedisTopology.switchedMaster(message: "mymaster 127.0.0.1 6379", masterName: "mymaster") == nil)
        #expect(RedisTopology.switchedMaster(message: "mymaster a 1 b x", masterName: "mymaster") == nil)
    }

    @Test("ROLE: master, replica, sentinel; other arrays are not ROLE replies")
    func role() {
        let master = RedisReply.array([.bulk(Array("master".utf8)), .integer(42), .array([])])
        let replica = RedisReply.array([.bulk(Array("slave".utf8)), .bulk(Array("127.0.0.1".utf8)), .integer(6379)])
        #expect(RedisTopology.role(of: master) == "master")
        #expect(RedisTopology.role(of: replica) == "slave")
        #expect(RedisTopology.role(of: .array([.bulk(Array("subscribe".utf8)), .bulk(Array("c".utf8)), .integer(1)])) == nil)
        #expect(RedisTopology.role(of: .error("ERR")) == nil)
    }

    @Test("a standalone topology answers the configured address, no sentinel asked")
    func standalone() async throws {
        let topology = RedisTopology(
            configuration: RedisClientConfiguration(host: "10.1.2.3", port: 6390),
            tls: nil,
            logger: .init(label: "test")
        )
        #expect(!topology.confirmsRole)
        let address = try await topology.resolve(on: NIOSingletons.posixEventLoopGroup.next()).get()
        #expect(address == RedisAddress(host: "10.1.2.3", port: 6390))
    }

    @Test("every sentinel down: the connect fails naming each one")
    func allSentinelsDown() async throws {
        let configuration = RedisClientConfiguration(
            connectTimeout: .milliseconds(500),
            sentinel: RedisSentinelConfiguration(
                masterName: "m",
                nodes: [RedisAddress(host: "127.0.0.1", port: 1), RedisAddress(host: "127.0.0.1", port: 2)]
            )
        )
        let topology = RedisTopology(configuration: configuration, tls: nil, logger: .init(label: "test"))
        #expect(topology.confirmsRole)
        await #expect {
            try await topology.resolve(on: NIOSingletons.posixEventLoopGroup.next()).get()
        } throws: { error in
            let message = (error as? SluiceRedisError)?.message ?? ""
            return message.contains("127.0.0.1:1") && message.contains("127.0.0.1:2")
        }
    }
}
