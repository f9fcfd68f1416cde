import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Ends a request whose body has not arrived within `server.body_timeout_ms` of its head with
/// a 408 and closes the connection.
///
/// Hummingbird's idle timeout restarts with every byte read, so a body sent a byte a second
/// would otherwise hold a connection (and a check waiting for its body) forever. Sits right
/// after Hummingbird's `HTTPConnectionStateHandler`, so it sees every request part and every
/// response part of the connection.
final class BodyTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// When the head of a request whose body has not ended yet arrived; nil otherwise.
    private var bodyPendingSince: NIODeadline?
    private var requestsRead = 0
    /// A 408 was written: nothing read after it is passed on (a body ending late must not be
    /// decided after its request was answered), and the connection is closing.
    private var expired = false
    private var responsesStarted = 0
    private var responsesEnded = 0

    /// - Parameter timeout: how long a body may take, from its request's head to its end.
    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.expired { return }
        switch self.unwrapInboundIn(data) {
        case .head:
            self.requestsRead += 1
            self.deadline?.cancel()
            self.deadline = nil
            self.bodyPendingSince = .now()
        case .end:
            self.deadline?.cancel()
            self.deadline = nil
            self.bodyPendingSince = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Most requests arrive whole in one read: a deadline is set only for a body still
        // missing once a read is done, not for every request.
        if let since = self.bodyPendingSince, self.deadline == nil {
            self.deadline = context.eventLoop.assumeIsolated().scheduleTask(deadline: since + self.timeout) {
                self.expire(context: context)
            }
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head: self.responsesStarted += 1
        case .end: self.responsesEnded += 1
        case .body: break
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A framing error ends the body: the error's own answer follows, not a 408.
        self.deadline?.cancel()
        self.deadline = nil
        self.bodyPendingSince = nil
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            // Nothing more can arrive: the body is answered as incomplete, not as late.
            self.deadline?.cancel()
            self.deadline = nil
            self.bodyPendingSince = nil
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.deadline?.cancel()
        self.deadline = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.deadline?.cancel()
        self.deadline = nil
    }

    private func expire(context: ChannelHandlerContext) {
        self.deadline = nil
        self.bodyPendingSince = nil
        guard context.channel.isActive else { return }
        // The 408 may go out only where this request's answer belongs: every earlier answer
        // written in full, none of this one's begun. Otherwise the connection just closes.
        let earlier = self.requestsRead - 1
        if self.responsesStarted == earlier && self.responsesEnded == earlier {
            let error = APIError(
                .requestTimeout, code: "body_timeout",
                message: "the request body did not arrive within \(self.timeout.nanoseconds / 1_000_000) ms"
            )
            let (rendered, body) = error.rendered(allocator: context.channel.allocator)
            var headers = rendered
            headers[.contentLength] = String(body.readableBytes)
            headers[.connection] = "close"
            headers[.server] = "sluice"
            var date = DateHeader()
            headers[.date] = date.current()
            context.write(self.wrapOutboundOut(.head(HTTPResponse(status: .requestTimeout, headerFields: headers))), promise: nil)
            context.write(self.wrapOutboundOut(.body(body)), promise: nil)
            self.expired = true
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
            // A client that reads nothing never lets the flush complete: close regardless.
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) {
                context.close(promise: nil)
            }
            return
        }
        self.expired = true
        context.close(promise: nil)
    }
}
