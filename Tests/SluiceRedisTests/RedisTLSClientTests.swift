import Foundation
import Logging
import NIOCore
import NIOPosix
import SluiceServer
import SluiceTestSupport
import Testing

@testable import SluiceRedis

/// The client over TLS against real redis-server processes serving TLS with certificates each
/// test makes. The server also keeps its plain port, which only the test's redis-cli uses.
@Suite("Redis client over TLS (real redis-server)")
struct RedisTLSClientTests {
    /// A redis-server serving TLS on its own port; the port is returned with it.
    static func server(
        _ certificates: TestCertificates, requireClientCertificate: Bool = false, named: Bool = false
    ) async throws -> (RedisServer, Int) {
        let tlsPort = try FreePort.find()
        let server = try await RedisServer.start(
            arguments: certificates.redisArguments(tlsPort: tlsPort, requireClientCertificate: requireClientCertificate, named: named)
        )
        return (server, tlsPort)
    }

    static func client(port: Int, tls: RedisTLSConfiguration, group: any EventLoopGroup) -> RedisClient {
        RedisClient(
            configuration: .init(
                host: "127.0.0.1", port: port, commandTimeout: .seconds(5), connectTimeout: .seconds(2),
                minReconnectDelay: .milliseconds(20), maxReconnectDelay: .milliseconds(200), tls: tls
            ),
            eventLoopGroup: group,
            scripts: [.decide],
            logger: {
                var logger = Logger(label: "test")
                logger.logLevel = ProcessInfo.processInfo.environment["TLS_TEST_DEBUG"] == nil ? .critical : .trace
                return logger
            }()
        )
    }

    /// Waits for the client's connect attempts to fail and returns the recorded reason.
    static func connectError(_ client: RedisClient) async throws -> String {
        try await RedisClientTests.eventually("a failed connect") { client.lastConnectError != nil }
        #expect(!client.isConnected)
        return client.lastConnectError ?? ""
    }

    @Test("commands over TLS with a CA file: the address host is verified against the certificate's IP, or server_name")
    func caFile() async throws {
        let certificates = try await TestCertificates.make()
        let (server, tlsPort) = try await Self.server(certificates)
        try await RedisClientTests.withGroup(threads: 2) { group in
            for serverName in [nil, "localhost"] {
                let client = Self.client(port: tlsPort, tls: .init(caFile: certificates.caFile, serverName: serverName), group: group)
                client.start()
                try await RedisClientTests.eventually("connected over TLS") { client.connectedCount == 2 }
                #expect(try await client.command(["SET", "sl:{tls}:k", "v"]) == .status("OK"))
                #expect(try await client.command(["GET", "sl:{tls}:k"]).string == "v")
                await client.shutdown()
            }
        }
        // The commands went through the TLS port: the plain port sees the key too.
        #expect(try await server.cliAsync("GET", "sl:{tls}:k") == "v")
    }

    @Test("a server certificate from another CA is refused, with the reason, and every attempt fails")
    func wrongCA() async throws {
        let certificates = try await TestCertificates.make()
        let (server, tlsPort) = try await Self.server(certificates)
        try await RedisClientTests.withGroup(threads: 1) { group in
            let client = Self.client(port: tlsPort, tls: .init(caFile: certificates.otherCAFile), group: group)
            client.start()
            let error = try await Self.connectError(client)
            #expect(error.contains("TLS handshake with Redis at 127.0.0.1:\(tlsPort) failed: certificate verify failed"), "\(error)")
            // Reconnects keep failing, and commands fail at once rather than reach a server not trusted.
            await #expect(throws: SluiceRedisError.self) { try await client.command(["PING"]) }
            #expect(!client.isConnected)
            await client.shutdown()
        }
        server.stop()
    }

    @Test("a certificate that names neither server_name nor the address connected to is refused")
    func wrongName() async throws {
        let certificates = try await TestCertificates.make()
        let (server, tlsPort) = try await Self.server(certificates, named: true)
        try await RedisClientTests.withGroup(threads: 1) { group in
            for serverName in ["redis.example", nil] {
                let client = Self.client(port: tlsPort, tls: .init(caFile: certificates.caFile, serverName: serverName), group: group)
                client.start()
                let error = try await Self.connectError(client)
                #expect(error.contains("TLS handshake with Redis at 127.0.0.1:\(tlsPort) failed"), "\(error)")
                #expect(error.contains("does not name the host"), "\(error)")
                await client.shutdown()
            }
            let named = Self.client(port: tlsPort, tls: .init(caFile: certificates.caFile, serverName: "redis.internal"), group: group)
            named.start()
            try await RedisClientTests.eventually("connected to the name in the certificate") { named.isConnected }
            #expect(try await named.command(["PING"]) == .status("PONG"))
            await named.shutdown()
        }
        server.stop()
    }

    @Test("a server that requires a client certificate: refused without one, served with one")
    func clientCertificate() async throws {
        let certificates = try await TestCertificates.make()
        let (server, tlsPort) = try await Self.server(certificates, requireClientCertificate: true)
        try await RedisClientTests.withGroup(threads: 1) { group in
            let without = Self.client(port: tlsPort, tls: .init(caFile: certificates.caFile), group: group)
            without.start()
            let error = try await Self.connectError(without)
            #expect(error.contains("TLS handshake with Redis at 127.0.0.1:\(tlsPort) failed"), "\(error)")
            await without.shutdown()

            let with = Self.client(
                port: tlsPort,
                tls: .init(caFile: certificates.caFile, certificateFile: certificates.clientCertFile, keyFile: certificates.clientKeyFile),
                group: group
            )
            with.start()
            try await RedisClientTests.eventually("connected with a client certificate") { with.isConnected }
            #expect(try await with.command(["PING"]) == .status("PONG"))
            await with.shutdown()
        }
        server.stop()
    }

    @Test("TLS files that cannot be loaded fail every connect with the reason, and nothing crashes")
    func unloadableFiles() async throws {
        let certificates = try await TestCertificates.make()
        let (server, tlsPort) = try await Self.server(certificates)
        try await RedisClientTests.withGroup(threads: 1) { group in
            let client = Self.client(port: tlsPort, tls: .init(caFile: certificates.directory.path + "/missing.pem"), group: group)
            client.start()
            let error = try await Self.connectError(client)
            #expect(error.contains("cannot load the Redis TLS files"), "\(error)")
            await client.shutdown()
        }
        server.stop()
    }
}
