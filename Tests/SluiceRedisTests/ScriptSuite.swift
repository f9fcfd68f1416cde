import Foundation
import NIOCore
import NIOPosix
import SluiceTestSupport

@testable import SluiceRedis

/// What the script suites share: a real redis-server, a one-loop group and a connected client
/// with Sluice's scripts, and a unique tag for key ids. The client and group are shut down when
/// the suite instance goes away; the server is stopped by PID.
class ScriptSuite {
    let server: RedisServer
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let client: RedisClient
    let tag = UUID().uuidString

    init(scripts: [RedisScript]) async throws {
        self.server = try await RedisServer.start()
        self.client = RedisClientTests.client(self.server, group: self.group, scripts: scripts)
        self.client.start()
        try await RedisClientTests.eventually("connected") { self.client.isConnected }
    }

    deinit {
        let client = self.client
        let group = self.group
        Task {
            await client.shutdown()
            try? await group.shutdownGracefully()
        }
    }

    /// Seconds since the epoch of a UTC calendar time (Foundation's calendar, not the script's).
    static func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0, _ second: Int = 0) -> Int64 {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = calendar.date(from: DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second))!
        return Int64(date.timeIntervalSince1970)
    }
}
