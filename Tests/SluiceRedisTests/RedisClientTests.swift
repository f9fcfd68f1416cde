import Foundation
import Logging
import NIOCore
import NIOPosix
import SluiceServer
import SluiceTestSupport
import Testing

@testable import SluiceRedis

/// The client against real redis-server processes started by each test.
@Suite("Redis client (real redis-server)")
struct RedisClientTests {
    static func client(
        _ server: RedisServer,
        group: any EventLoopGroup,
        password: String? = nil,
        username: String? = nil,
        database: Int = 0,
        timeout: TimeAmount = .seconds(5),
        maxConsecutiveTimeouts: Int = 3,
        scripts: [RedisScript] = [.decide]
    ) -> RedisClient {
        RedisClient(
            configuration: .init(
                host: "127.0.0.1", port: server.port, username: username, password: password, database: database,
                commandTimeout: timeout, connectTimeout: .seconds(2), maxConsecutiveTimeouts: maxConsecutiveTimeouts,
                minReconnectDelay: .milliseconds(20), maxReconnectDelay: .milliseconds(200)
            ),
            eventLoopGroup: group,
            scripts: scripts,
            logger: {
                var logger = Logger(label: "test")
                logger.logLevel = .critical
                return logger
            }()
        )
    }

    /// Runs `body` with an event-loop group that is shut down afterwards, also when `body` throws.
    static func withGroup(threads: Int, _ body: (MultiThreadedEventLoopGroup) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            try await body(group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    /// Polls until `condition` holds, failing after `timeout` seconds.
    static func eventually(_ what: String, timeout: Double = 10, _ condition: () async -> Bool) async throws {
        if try await poll(.seconds(timeout), { await condition() }) != nil { return }
        Issue.record("not within \(timeout) s: \(what)")
        throw TestSupportError("timed out: \(what)")
    }

    /// Clients connected to `server` now (`INFO clients`), less the redis-cli that asks.
    static func connectedClients(_ server: RedisServer) async throws -> Int {
        let info = try await server.cliAsync("INFO", "clients")
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("connected_clients:") }
        return (line.flatMap { Int($0.dropFirst("connected_clients:".count)) } ?? 0) - 1
    }

    /// Records when each connection came back, on the client's own clock.
    final class Reconnects: RedisClientObserver, @unchecked Sendable {
        // @unchecked: `times` is read and written under `lock`.
        private let lock = NSLock()
        private var times: [ContinuousClock.Instant] = []

        func commandCompleted(duration: Duration, errorKind: String?) {}
        func reconnected() { self.lock.withLock { self.times.append(.now) } }
        var instants: [ContinuousClock.Instant] { self.lock.withLock { self.times } }
    }

    @Test("after an outage, every event loop's connection is back within a second of the first one (default backoff; each loop no longer waits out its own)")
    func loopsComeBackTogether() async throws {
        let server = try await RedisServer.start()
        try await RedisClientTests.withGroup(threads: 4) { group in
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let reconnects = Reconnects()
            let client = RedisClient(
                configuration: .init(host: "127.0.0.1", port: server.port, commandTimeout: .seconds(5), connectTimeout: .seconds(2)),
                eventLoopGroup: group, logger: logger, observer: reconnects
            )
            client.start()
            try await Self.eventually("one connection per event loop") { client.connectedCount == 4 }
            server.stop()
            try await Self.eventually("every connection down") { !client.isConnected }
            // An outage long enough for backoffs to grow: 3 s (at the former 2 s cap, loops came
            // back one by one up to 2 s after Redis did; now together, the first waking the rest).
            try await Task.sleep(for: .seconds(3))
            try await server.restart()
            try await Self.eventually("one connection per event loop again", timeout: 10) { reconnects.instants.count >= 4 }
            // Measured between the client's own reconnects, so that a loaded machine's slow
            // polling (a redis-cli per look) does not count.
            let instants = reconnects.instants
            let spread = (instants.max() ?? .now) - (instants.min() ?? .now)
            #expect(spread < .seconds(1), "the last loop reconnected \(spread) after the first")
            #expect(client.connectedCount == 4)
            await client.shutdown()
        }
    }

    @Test("commands round-trip; many concurrent commands pipeline in order")
    func roundTripAndPipelining() async throws {
        let server = try await RedisServer.start()
        try await RedisClientTests.withGroup(threads: 2) { group in
            let client = Self.client(server, group: group)
            client.start()
            try await Self.eventually("connected") { client.connectedCount == 2 }

            #expect(try await client.command(["SET", "sl:{t}:k", "v"]) == .status("OK"))
            #expect(try await client.command(["GET", "sl:{t}:k"]).string == "v")

            // 500 INCRs from every loop at once: each reply goes to its own caller.
            let loop = group.next()
            let futures = (0..<500).map { _ in client.send(["INCR", "sl:{t}:n"], on: loop) }
            var values: [Int64] = []
            for future in futures { values.append(try await future.get().int ?? -1) }
            #expect(values == Array(1...500))

            do {
                _ = try await client.command(["NOSUCHCOMMAND"])
                Issue.record("an error reply must throw")
            } catch let error as RedisServerError {
                #expect(error.prefix == "ERR")
            }
            await client.shutdown()
        }
    }

    @Test("EVALSHA after SCRIPT FLUSH: the script is loaded again and the call retried once")
    func noscript() async throws {
        let server = try await RedisServer.start()
        try await RedisClientTests.withGroup(threads: 1) { group in
            let script = RedisScript(name: "echo", source: "return ARGV[1]")
            let client = Self.client(server, group: group, scripts: [script])
            client.start()
            try await Self.eventually("connected") { client.isConnected }
            #expect(try await client.evaluate(script, keys: [], arguments: ["a"]).get().string == "a")
            try await server.cliAsync("SCRIPT", "FLUSH")
            #expect(try await server.cliAsync("SCRIPT", "EXISTS", script.sha1) == "0")
            #expect(try await client.evaluate(script, keys: [], arguments: ["b"]).get().string == "b")
            #expect(try await server.cliAsync("SCRIPT", "EXISTS", script.sha1) == "1")
            await client.shutdown()
        }
    }

    @Test("AUTH with a password, with an ACL user, and a wrong password fails the handshake")
    func auth() async throws {
        let server = try await RedisServer.start(arguments: ["--requirepass", "s3cret"])
        try await server.cliAsync("ACL", "SETUSER", "sluice", "on", ">userpw", "~*", "+@all")
        try await RedisClientTests.withGroup(threads: 1) { group in

            let good = Self.client(server, group: group, password: "s3cret")
            good.start()
            try await Self.eventually("connected with password") { good.isConnected }
            #expect(try await good.command(["PING"]) == .status("PONG"))
            await good.shutdown()

            let user = Self.client(server, group: group, password: "userpw", username: "sluice")
            user.start()
            try await Self.eventually("connected as ACL user") { user.isConnected }
            #expect(try await user.command(["ACL", "WHOAMI"]).string == "sluice")
            await user.shutdown()

            let bad = Self.client(server, group: group, password: "wrong")
            bad.start()
            try await Self.eventually("handshake failure recorded") { bad.lastConnectError != nil }
            #expect(!bad.isConnected)
            #expect(bad.lastConnectError?.contains("AUTH") == true)
            do {
                _ = try await bad.command(["PING"])
                Issue.record("must fail without a connection")
            } catch let error as SluiceRedisError {
                #expect(error.code == .unavailable || error.code == .timeout)
            }
            await bad.shutdown()
        }
    }

    @Test("SELECT puts commands in the configured database")
    func select() async throws {
        let server = try await RedisServer.start()
        try await RedisClientTests.withGroup(threads: 1) { group in
            let client = Self.client(server, group: group, database: 3)
            client.start()
            try await Self.eventually("connected") { client.isConnected }
            _ = try await client.command(["SET", "sl:{t}:db", "3"])
            #expect(try await server.cliAsync("-n", "3", "GET", "sl:{t}:db") == "3")
            #expect(try await server.cliAsync("-n", "0", "EXISTS", "sl:{t}:db") == "0")
            await client.shutdown()
        }
    }

    @Test("maxmemory-policy is read on connect", arguments: ["noeviction", "allkeys-lru"])
    func evictionPolicy(policy: String) async throws {
        let server = try await RedisServer.start(arguments: ["--maxmemory-policy", policy])
        try await RedisClientTests.withGroup(threads: 1) { group in
            let client = Self.client(server, group: group)
            #expect(client.evictionPolicy == .notChecked)
            client.start()
            try await Self.eventually("connected") { client.isConnected }
            #expect(client.evictionPolicy == .policy(policy))
            await client.shutdown()
        }
    }

    @Test("Redis down: commands fail fast, not at a pile-up; after a restart the client reconnects by itself")
    func downAndBack() async throws {
        let server = try await RedisServer.start()
        try await RedisClientTests.withGroup(threads: 1) { group in
            let client = Self.client(server, group: group, timeout: .milliseconds(100))
            client.start()
            try await Self.eventually("connected") { client.isConnected }
            server.stop()
            try await Self.eventually("noticed the drop") { !client.isConnected }

            // While the client backs off, commands fail at once ("unavailable"), without waiting
            // for a deadline or queueing; during a connect attempt they wait at most their deadline.
            let started = ContinuousClock.now
            var immediate = 0
            for _ in 0..<20 {
                do {
                    _ = try await client.command(["PING"])
                    Issue.record("no Redis: must fail")
                } catch let error as SluiceRedisError {
                    #expect([.unavailable, .timeout, .connectionClosed].contains(error.code))
                    if error.code == .unavailable { immediate += 1 }
                }
            }
            #expect(immediate >= 10, "most failures are immediate: \(immediate) of 20")
            // A hang would take far longer than 20 deadlines (2 s); this only catches one (with
            // room for the whole suite's load, which once stretched these 20 awaits to 16 s).
            #expect(ContinuousClock.now - started < .seconds(30))

            try await server.restart()
            try await Self.eventually("reconnected") { client.isConnected }
            #expect(try await client.command(["PING"]) == .status("PONG"))
            await client.shutdown()
        }
    }

    @Test("a slow Redis fails only the late command; consecutive timeouts recycle the connection")
    func slowRedis() async throws {
        let server = try await RedisServer.start()
        try await RedisClientTests.withGroup(threads: 1) { group in
            let client = Self.client(server, group: group, timeout: .seconds(1), maxConsecutiveTimeouts: 3)
            // A second client holds every write with CLIENT PAUSE ... WRITE until it sends CLIENT
            // UNPAUSE (which is not a write, so it passes): the server stays slow for exactly as
            // long as the test needs, however loaded the machine is.
            let blocker = Self.client(server, group: group, timeout: .seconds(5))
            client.start()
            blocker.start()
            try await Self.eventually("connected") { client.isConnected && blocker.isConnected }
            _ = try await client.command(["SET", "sl:{t}:a", "A"])
            let firstConnection = try await client.command(["CLIENT", "ID"]).int

            // One late command: it alone fails; the connection stays and the next reply is the right one.
            _ = try await blocker.command(["CLIENT", "PAUSE", "60000", "WRITE"])
            try await Self.expectTimeout(client, ["SET", "sl:{t}:a", "late"])
            _ = try await blocker.command(["CLIENT", "UNPAUSE"])
            // The late SET is applied once the pause ends; its reply is dropped, not handed to the GET.
            #expect(try await client.command(["GET", "sl:{t}:a"]).string == "late")
            #expect(try await client.command(["CLIENT", "ID"]).int == firstConnection)

            // Three timeouts in a row, at successive deadlines: the connection is recycled and a
            // new one serves the next command.
            _ = try await blocker.command(["CLIENT", "PAUSE", "60000", "WRITE"])
            // Each one is sent after the one before failed, so each fails by its own deadline,
            // the third included: the connection is closed only after it.
            for attempt in 0..<3 {
                try await Self.expectTimeout(client, ["SET", "sl:{t}:a", RedisArgument("paused \(attempt)")])
            }
            _ = try await blocker.command(["CLIENT", "UNPAUSE"])
            try await Self.eventually("reconnected") { client.isConnected }
            _ = try await client.command(["SET", "sl:{t}:a", "B"])
            #expect(try await client.command(["GET", "sl:{t}:a"]).string == "B")
            let secondConnection = try await client.command(["CLIENT", "ID"]).int
            #expect(secondConnection != nil && secondConnection != firstConnection)
            await client.shutdown()
            await blocker.shutdown()
        }
    }

    /// Sends one command to a paused server and requires it to fail by its deadline.
    static func expectTimeout(_ client: RedisClient, _ command: [RedisArgument]) async throws {
        do {
            let reply = try await client.command(command)
            Issue.record("\(command) must time out on a paused server, answered \(reply)")
        } catch let error as SluiceRedisError {
            #expect(error.code == .timeout, "\(command): \(error)")
        }
    }
}

@Suite("Redis client batches (real redis-server)")
struct RedisClientBatchTests {
    @Test("a batch of script calls: every reply to its own call, in order, also after SCRIPT FLUSH")
    func batch() async throws {
        let server = try await RedisServer.start()
        try await RedisClientTests.withGroup(threads: 1) { group in
            let script = RedisScript(name: "incr", source: "return redis.call('INCRBY', KEYS[1], ARGV[1])")
            let client = RedisClientTests.client(server, group: group, scripts: [script])
            client.start()
            try await RedisClientTests.eventually("connected") { client.isConnected }
            let calls = (1...200).map { i in (keys: [RedisArgument("sl:{b}:\(i % 3)")], arguments: [RedisArgument(i)]) }
            var totals = [0, 0, 0]
            for (i, future) in zip(1...200, client.evaluateBatch(script, calls: calls)) {
                totals[i % 3] += i
                #expect(try await future.get().int == Int64(totals[i % 3]))
            }
            try await server.cliAsync("SCRIPT", "FLUSH")
            let again = client.evaluateBatch(script, calls: [(keys: ["sl:{b}:x"], arguments: ["5"]), (keys: ["sl:{b}:x"], arguments: ["6"])])
            #expect(try await again[0].get().int == 5)
            #expect(try await again[1].get().int == 11)
            await client.shutdown()
        }
    }
}
