import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceAdminAPI

/// A small HTTP/1.1 client for the admin API (plain `http://`: the admin listener is
/// meant to be private). The token comes from `SLUICE_ADMIN_TOKEN`. Bodies are the
/// ``AdminAPI`` types.
struct AdminClient {
    /// A failure the command reports and exits non-zero on.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// An answer: status and JSON body.
    struct Answer {
        let status: Int
        let body: [UInt8]

        /// The body as any JSON, for `--json` (printed as the API sent it).
        var json: Any? { try? JSONSerialization.jsonObject(with: Data(self.body)) }

        /// The body as one of the API's types.
        /// - Throws: ``Failure`` when the body is not of that shape.
        func decode<Body: Decodable>(_ type: Body.Type) throws -> Body {
            do {
                return try AdminAPI.decoder().decode(Body.self, from: Data(self.body))
            } catch {
                throw Failure(description: "the admin API answered HTTP \(self.status) with an unexpected body: \(error)")
            }
        }
    }

    let host: String
    let port: Int
    let basePath: String
    let token: String?

    /// Parses `http://host[:port][/base]`.
    init(url: String, token: String?) throws {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host, !host.isEmpty else {
            throw Failure(description: "--admin-url must be http://HOST[:PORT], not \(url)")
        }
        self.host = host
        self.port = components.port ?? 80
        self.basePath = components.path.hasSuffix("/") ? String(components.path.dropLast()) : components.path
        self.token = token
    }

    /// Sends a request with a JSON body and fails on anything but a 2xx, with the API's error
    /// code and message.
    func call(_ method: HTTPMethod, _ path: String, body: some Encodable) async throws -> Answer {
        let payload = try AdminAPI.encoder().encode(body)
        return try await self.call(method, path, payload: Array(payload))
    }

    /// Sends a request without a body and fails on anything but a 2xx, with the API's error
    /// code and message.
    func call(_ method: HTTPMethod, _ path: String) async throws -> Answer {
        try await self.call(method, path, payload: nil)
    }

    private func call(_ method: HTTPMethod, _ path: String, payload: [UInt8]?) async throws -> Answer {
        let answer = try await self.send(method, self.basePath + path, body: payload)
        guard (200..<300).contains(answer.status) else {
            let error = try? AdminAPI.decoder().decode(AdminAPI.ErrorBody.self, from: Data(answer.body)).error
            let code = error?.code ?? "http_\(answer.status)"
            let message = error?.message ?? String(decoding: answer.body, as: UTF8.self)
            throw Failure(description: "\(code) (HTTP \(answer.status)): \(message)")
        }
        return answer
    }

    private func send(_ method: HTTPMethod, _ path: String, body: [UInt8]?) async throws -> Answer {
        let group = MultiThreadedEventLoopGroup.singleton
        let collector = ResponseCollector(promise: group.any().makePromise(of: Answer.self))
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.pipeline.addHTTPClientHandlers().flatMap { channel.pipeline.addHandler(collector) }
                }
                .connect(host: self.host, port: self.port)
                .get()
        } catch {
            let failure = Failure(description: "cannot reach the admin API at \(self.host):\(self.port): \(error)")
            collector.fail(failure)
            throw failure
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(self.host):\(self.port)")
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Accept", value: "application/json")
        if let token = self.token {
            headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        if let body {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(body.count))
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(30)) {
            collector.fail(Failure(description: "the admin API did not answer within 30 s"))
            channel.close(promise: nil)
        }
        defer { timeout.cancel() }
        let answer = try await collector.promise.futureResult.get()
        try? await channel.close()
        return answer
    }
}

/// Gathers one HTTP response.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: used on its channel's event loop only, the promise is thread-safe.
    typealias InboundIn = HTTPClientResponsePart

    let promise: EventLoopPromise<AdminClient.Answer>
    private var status = 0
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<AdminClient.Answer>) {
        self.promise = promise
    }

    func fail(_ error: any Error) {
        self.promise.fail(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.status = Int(head.status.code)
        case .body(let buffer):
            self.body.append(contentsOf: buffer.readableBytesView)
        case .end:
            self.promise.succeed(AdminClient.Answer(status: self.status, body: self.body))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.fail(AdminClient.Failure(description: "the admin API closed the connection before answering"))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.promise.fail(AdminClient.Failure(description: "admin API connection failed: \(error)"))
        context.close(promise: nil)
    }
}
