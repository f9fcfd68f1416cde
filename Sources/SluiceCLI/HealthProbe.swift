import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One `GET /healthz` over a fresh connection, bounded by one deadline.
struct HealthProbe {
    /// Where to ask.
    struct Target: CustomStringConvertible {
        let host: String
        let port: Int

        /// Flag, else environment, else default; a wildcard address becomes loopback.
        /// - Throws: ``HealthProbe/Failure`` when `SLUICE_PORT` is not a port.
        init(host: String?, port: Int?, environment: [String: String]) throws {
            let host = host ?? environment["SLUICE_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
            switch host {
            case "0.0.0.0": self.host = "127.0.0.1"
            case "::", "[::]": self.host = "::1"
            default: self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            }
            if let port {
                self.port = port
            } else if let text = environment["SLUICE_PORT"], !text.isEmpty {
                // Port 0 makes serve pick any port, which a health check cannot know.
                guard let value = Int(text), (1...65535).contains(value) else {
                    throw Failure(description: "SLUICE_PORT must be 1-65535 for a health check, not \"\(text)\"; pass --port")
                }
                self.port = value
            } else {
                self.port = 8080
            }
        }

        var description: String {
            self.host.contains(":") ? "http://[\(self.host)]:\(self.port)" : "http://\(self.host):\(self.port)"
        }
    }

    /// Why the probe got no status.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let target: Target
    let timeout: TimeAmount

    /// Sends the request.
    /// - Returns: the response's status code.
    /// - Throws: ``Failure`` when there is no answer within the timeout, or the connection fails.
    func run() async throws -> Int {
        let group = MultiThreadedEventLoopGroup.singleton
        let deadline = NIODeadline.now() + self.timeout
        let status = group.any().makePromise(of: Int.self)
        let timeout = self.timeout
        let expiry = status.futureResult.eventLoop.scheduleTask(deadline: deadline) {
            status.fail(Failure(description: "no answer within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        let connected = ClientBootstrap(group: group)
            .connectTimeout(self.timeout)
            .channelInitializer { channel in
                channel.pipeline.addHTTPClientHandlers().flatMap {
                    channel.pipeline.addHandler(StatusReader(status: status))
                }
            }
            .connect(host: self.target.host, port: self.target.port)
        connected.whenFailure { error in
            status.fail(Failure(description: "cannot connect: \(Self.reason(error))"))
        }
        connected.whenSuccess { channel in
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: self.target.description.replacingOccurrences(of: "http://", with: ""))
            headers.add(name: "Connection", value: "close")
            headers.add(name: "User-Agent", value: "sluice-health")
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/healthz", headers: headers)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            // Whatever settles the status (answer, error, deadline) ends the connection.
            status.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
        defer { expiry.cancel() }
        return try await status.futureResult.get()
    }

    /// The system's words for a failed connect ("Connection refused"), not NIO's nested dump.
    private static func reason(_ error: any Error) -> String {
        var errors: [any Error] = [error]
        if let connection = error as? NIOConnectionError {
            errors = connection.connectionErrors.map(\.error) + [connection.dnsAError, connection.dnsAAAAError].compactMap { $0 }
        }
        let reasons = errors.map { error -> String in
            if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
            return "\(error)"
        }
        return reasons.isEmpty ? "\(error)" : Array(Set(reasons)).sorted().joined(separator: "; ")
    }
}

/// Takes the status line of the first response; anything else settles the promise as a failure.
private final class StatusReader: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used on its channel's event loop only; the promise is thread-safe.
    typealias InboundIn = HTTPClientResponsePart

    private let status: EventLoopPromise<Int>

    init(status: EventLoopPromise<Int>) {
        self.status = status
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data) {
            self.status.succeed(Int(head.status.code))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.status.fail(HealthProbe.Failure(description: "the connection closed before an answer"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.status.fail(HealthProbe.Failure(description: "connection failed: \(error)"))
        context.close(promise: nil)
    }
}
