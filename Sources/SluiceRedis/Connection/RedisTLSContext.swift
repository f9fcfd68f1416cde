import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// The TLS context of one client, built once when the client is created, never per connection
/// and never on an event loop: loading certificates is blocking file I/O (docs/ARCHITECTURE.md,
/// invariant 7).
final class RedisTLSContext: Sendable {
    private let context: Result<NIOSSLContext, SluiceRedisError>
    private let serverName: String?

    /// Builds the context; a failure is logged now and makes every connect fail with it.
    init(_ configuration: RedisTLSConfiguration, logger: Logger) {
        assert(MultiThreadedEventLoopGroup.currentEventLoop == nil, "TLS files must not be read on an event loop")
        self.serverName = configuration.serverName
        do {
            self.context = .success(try configuration.makeContext())
        } catch {
            let failure = SluiceRedisError.handshakeFailed("cannot load the Redis TLS files (redis.tls): \(error)")
            logger.error("\(failure.message)")
            self.context = .failure(failure)
        }
    }

    /// Adds the TLS client handler, and the handler that names its failures, at the front of a
    /// new channel's pipeline (before the RESP handler).
    /// - Throws: the context's load error, or NIOSSL's refusal of the server name.
    func addHandlers(to channel: any Channel, host: String, port: Int) throws {
        let context = try self.context.get()
        // SNI carries names only; an address host is verified against the certificate's IP
        // addresses, which NIOSSL does when no name is given.
        let name = self.serverName ?? (Self.isAddress(host) ? nil : host)
        let handler = try NIOSSLClientHandler(context: context, serverHostname: name)
        try channel.pipeline.syncOperations.addHandlers(handler, RedisTLSFailureHandler(host: host, port: port))
    }

    private static func isAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
