import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

/// Changes made concurrently, on one instance and on two: each is still applied alone on
/// every instance, whatever order its reply and the notices arrive in; no full read.
@Suite("Runtime key registry under concurrent changes", .serialized)
struct RegistryConcurrencyTests {
    @Test("concurrent creates, moves and revokes on two instances: no full read anywhere, both mirrors end equal to Redis")
    func concurrentChanges() async throws {
        let redis = try await RedisServer.start()
        try await RegistryRecoveryTests.twoInstances(redis) { a, b in
            try await RegistryRecoveryTests.create(a, "warm-up")
            #expect(try await RegistryRecoveryTests.settles(b, "warm-up", known: true))
            let before = try await redis.commandCalls()
            // 8 clients, 4 on each instance, 12 keys each: created, half moved, a quarter revoked.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in 0..<8 {
                    let h = client % 2 == 0 ? a : b
                    group.addTask {
                        for index in 0..<12 {
                            let key = "c\(client)-\(index)"
                            try await RegistryRecoveryTests.create(h, key)
                            let id = ServerHarness.keyID(key)
                            if index % 2 == 0 {
                                let moved = try await h.admin("/admin/v1/keys/\(id)", method: .put, body: #"{"plan":"p"}"#)
                                #expect(moved.status == .ok, "\(moved.status) \(moved.text)")
                            }
                            if index % 4 == 0 {
                                let revoked = try await h.admin("/admin/v1/keys/\(id)", method: .delete)
                                #expect(revoked.status == .noContent)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            for h in [a, b] {
                #expect(try await RegistryRecoveryTests.settles(h, "c7-11", known: true))
                #expect(try await RegistryRecoveryTests.settles(h, "c0-0", known: false))
                #expect(try await RegistryRecoveryTests.settles(h, "c5-1", known: true))
            }
            let after = try await redis.commandCalls()
            #expect(after["hscan", default: 0] == before["hscan", default: 0], "a full read of the registry ran: \(before["hscan", default: 0]) → \(after["hscan", default: 0])")
            // Both mirrors hold exactly what Redis holds.
            let ids = try await redis.cliAsync("HKEYS", RegistryScript.hashKey).split(separator: "\n").count
            #expect(ids == 1 + 8 * 12 - 8 * 3)
            for h in [a, b] {
                for client in 0..<8 {
                    for index in 0..<12 {
                        let answer = try await h.check(key: "c\(client)-\(index)", cost: 0)
                        #expect((answer.deniedBy == "unknown_api_key") == (index % 4 == 0), "c\(client)-\(index): \(answer.text)")
                    }
                }
            }
        }
    }
}
