import DequeModule
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import SluiceCore

/// `POST /v1/check` answered inside the channel pipeline, on the connection's event loop
/// from the request's first byte to the response's last: body, decision (the Redis
/// connection of this same loop), rendering. Every other request goes on to Hummingbird.
///
/// Sits after Hummingbird's `HTTPConnectionStateHandler` (which so sees every request and
/// response: idle timeout and graceful shutdown keep working) and before the channel's
/// async bridge. Responses leave in request order: while a check is being decided, later
/// requests wait here; while requests passed to Hummingbird await their responses, a
/// check waits for them.
final class CheckChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Parts held back at most before the handler stops asking the socket for more.
    static let maxHeldParts = 256

    private enum State {
        /// Between requests.
        case idle
        /// Forwarding the parts of a request that is not a check.
        case passing
        /// Reading a check's body.
        case collecting(Collecting)
        /// A check's decision is under way; its response is not written yet.
        case deciding
        /// The connection is closing (a `Connection: close` answer was written, or it closed):
        /// nothing more is handled.
        case closing
    }

    /// What was read while it could not be handled yet, kept in order: request parts, and the
    /// events and errors that must not overtake them (input closed, a decoding error).
    private enum Held {
        case part(HTTPRequestPart)
        case event(Any)
        case error(any Error)
    }

    private struct Collecting {
        let start: ContinuousClock.Instant
        let snapshot: ConfigStore.Snapshot
        var body: ByteBuffer
        var rejected: APIError?
        let closeAfter: Bool
    }

    private let decider: Decider
    private let store: ConfigStore
    /// False on the admin listener: every request goes to the router, and the handler only
    /// keeps answers in order and turns framing errors into JSON 400s.
    private let answersChecks: Bool
    private var state: State = .idle
    /// Requests passed on whose responses have not been written completely.
    private var passedOutstanding = 0
    /// Parts read while they could not be handled yet, in order.
    private var held = Deque<Held>()
    private var readHeld = false
    private var context: ChannelHandlerContext?
    private var dateCache = DateHeader()

    init(decider: Decider, store: ConfigStore, answersChecks: Bool = true) {
        self.decider = decider
        self.store = store
        self.answersChecks = answersChecks
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        if case .closing = self.state { return }
        if !self.held.isEmpty || !self.canHandle(.part(part)) {
            self.held.append(.part(part))
            return
        }
        self.handle(part, context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if self.held.isEmpty, case .collecting = self.state, let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            // The client stopped sending mid-body: the check can never complete.
            self.respond(error: .incompleteBody, closeAfter: true, context: context)
            return
        }
        // Input closed (the client half-closed) must not reach the router before the answers
        // to the requests read before it.
        if !self.held.isEmpty || !self.canHandle(.event(event)) {
            self.held.append(.event(event))
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A decoding error must come after earlier answers too.
        if !self.held.isEmpty || !self.canHandle(.error(error)) {
            self.held.append(.error(error))
            return
        }
        self.handle(error: error, context: context)
    }

    /// An error read when every earlier answer has been written (or mid-check).
    private func handle(error: any Error, context: ChannelHandlerContext) {
        switch self.state {
        case .collecting, .idle:
            // Malformed framing mid-check, or a request the decoder refused: answered here with
            // the JSON error (the router's fallback would send an empty 400), then closed, since
            // nothing after a framing error can be trusted.
            if error is HTTPParserError {
                self.respond(error: .malformedRequest(error), closeAfter: true, context: context)
                return
            }
            context.fireErrorCaught(error)
        case .passing, .deciding, .closing:
            context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.state = .closing
        self.held.removeAll()
        context.fireChannelInactive()
    }

    /// Whether `entry` can be handled now without answering out of order.
    private func canHandle(_ entry: Held) -> Bool {
        switch self.state {
        case .deciding, .closing:
            return false
        case .idle:
            switch entry {
            case .part(.head(let head)) where self.answersChecks && Self.isCheck(head):
                // A check waits until every response before it has been written.
                return self.passedOutstanding == 0
            case .part:
                return true
            case .event:
                // Between requests: the router may act on it once it has answered.
                return true
            case .error:
                // Answered here once the router has answered what came before.
                return self.passedOutstanding == 0
            }
        case .passing:
            // Mid-request: the router's request is the one the error or event is about.
            return true
        case .collecting:
            // A check being collected is answered before the router sees what follows; a framing
            // error ends it (answered at once).
            switch entry {
            case .part: return true
            case .error(let error): return error is HTTPParserError
            case .event: return false
            }
        }
    }

    private func handle(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (self.state, part) {
        case (.idle, .head(let head)):
            if self.answersChecks && Self.isCheck(head) {
                self.state = .collecting(self.begin(head))
            } else {
                self.passedOutstanding += 1
                self.state = .passing
                context.fireChannelRead(self.wrapInboundOut(part))
            }
        case (.passing, .end):
            self.state = .idle
            context.fireChannelRead(self.wrapInboundOut(part))
        case (.passing, _):
            context.fireChannelRead(self.wrapInboundOut(part))
        case (.collecting(var collecting), .body(var chunk)):
            if collecting.rejected == nil {
                let limit = collecting.snapshot.config.bounds.maxBodyBytes
                if collecting.body.readableBytes + chunk.readableBytes > limit {
                    collecting.rejected = APIError(InputError.bodyTooLarge(limit))
                    collecting.body.clear()
                } else if collecting.body.readableBytes == 0 {
                    // Most bodies come in one piece: keep it, no copy.
                    collecting.body = chunk
                } else {
                    collecting.body.writeBuffer(&chunk)
                }
            }
            self.state = .collecting(collecting)
        case (.collecting(let collecting), .end):
            self.state = .deciding
            self.decide(collecting, context: context)
        case (.idle, _), (.collecting, .head), (.deciding, _), (.closing, _):
            // The HTTP decoder never sends these; a request without its head cannot be answered.
            context.close(promise: nil)
        }
    }

    private func begin(_ head: HTTPRequest) -> Collecting {
        let snapshot = self.store.current
        var rejected: APIError?
        do {
            try ClientTokens.verify(head.headerFields, snapshot: snapshot)
            try JSONBody.checkHead(head.headerFields, limit: snapshot.config.bounds.maxBodyBytes)
        } catch let error as APIError {
            rejected = error
        } catch {
            rejected = APIError(.badRequest, code: "bad_request", message: "\(error)")
        }
        let closeAfter = head.headerFields[.connection].map { $0.lowercased().contains("close") } ?? false
        return Collecting(
            start: .now, snapshot: snapshot,
            body: ByteBuffer(), rejected: rejected, closeAfter: closeAfter
        )
    }

    private func decide(_ collecting: Collecting, context: ChannelHandlerContext) {
        if let rejected = collecting.rejected {
            self.respond(error: rejected, closeAfter: collecting.closeAfter, context: context)
            return
        }
        let bounds = collecting.snapshot.config.bounds
        let parsed = collecting.body.withUnsafeReadableBytes { bytes in
            Result { () throws(InputError) -> CheckRequest in try CheckRequest.parse(bytes: bytes, bounds: bounds) }
        }
        let request: CheckRequest
        switch parsed {
        case .success(let checkRequest):
            request = checkRequest
        case .failure(let error):
            self.respond(error: APIError(error), closeAfter: collecting.closeAfter, context: context)
            return
        }
        let start = collecting.start
        let closeAfter = collecting.closeAfter
        // The Redis connection a check uses lives on this channel's loop, so the hop is free.
        self.decider.decisionFuture(request, keyring: collecting.snapshot.keyring, on: context.eventLoop)
            .hop(to: context.eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                self.finish(result, start: start, closeAfter: closeAfter)
            }
    }

    /// Answers a decided check, unless the connection went away meanwhile.
    private func finish(_ result: Result<Decider.Outcome, any Error>, start: ContinuousClock.Instant, closeAfter: Bool) {
        defer { self.decider.metrics?.recordCheck(.check, since: start) }
        guard let context = self.context else { return }
        if case .closing = self.state { return }
        switch result {
        case .success(.decision(let decision, let styles)):
            let (headers, body) = DecisionResponse.rendered(decision, styles: styles, allocator: context.channel.allocator)
            self.respond(status: .ok, headers: headers, body: body, closeAfter: closeAfter, context: context)
        case .success(.backendUnavailable(_, let detail)):
            self.respond(error: .backendUnavailable(detail), closeAfter: closeAfter, context: context)
        case .success(.invalid(let error)):
            self.respond(error: APIError(error), closeAfter: closeAfter, context: context)
        case .failure(let error):
            self.respond(error: .backendUnavailable("\(error)"), closeAfter: closeAfter, context: context)
        }
    }

    private func respond(error: APIError, closeAfter: Bool, context: ChannelHandlerContext) {
        let (headers, body) = error.rendered(allocator: context.channel.allocator)
        self.respond(status: error.status, headers: headers, body: body, closeAfter: closeAfter, context: context)
    }

    private func respond(status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer, closeAfter: Bool, context: ChannelHandlerContext) {
        var headers = headers
        headers[.contentLength] = String(body.readableBytes)
        headers[.date] = self.dateCache.current()
        headers[.server] = "sluice"
        if closeAfter {
            headers[.connection] = "close"
        }
        context.write(self.wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(body)), promise: nil)
        if closeAfter {
            self.state = .closing
            self.held.removeAll()
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        self.state = .idle
        self.drain(context: context)
    }

    /// Handles held parts, in order, until one has to wait again.
    private func drain(context: ChannelHandlerContext) {
        var handled = false
        while let entry = self.held.first, self.canHandle(entry) {
            self.held.removeFirst()
            switch entry {
            case .part(let part): self.handle(part, context: context)
            case .event(let event): context.fireUserInboundEventTriggered(event)
            case .error(let error): self.handle(error: error, context: context)
            }
            handled = true
        }
        if handled {
            // Outside a read cycle: the handlers after this one (the async bridge) deliver
            // what they got on read-complete.
            context.fireChannelReadComplete()
        }
        if self.readHeld && self.held.count < Self.maxHeldParts {
            self.readHeld = false
            context.read()
        }
    }

    static func isCheck(_ head: HTTPRequest) -> Bool {
        guard head.method == .post, var path = head.path?[...] else { return false }
        if let query = path.firstIndex(of: "?") {
            path = path[..<query]
        }
        // As the router would: a trailing slash names the same route.
        if path.hasSuffix("/") {
            path = path.dropLast()
        }
        return path == "/v1/check"
    }

    // MARK: outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        if case .end = self.unwrapOutboundIn(data), self.passedOutstanding > 0 {
            // A passed request's response is complete: a check waiting for it may go.
            self.passedOutstanding -= 1
            if self.passedOutstanding == 0 && !self.held.isEmpty {
                self.drain(context: context)
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        // Too much held back: stop reading until it is handled.
        if self.held.count >= Self.maxHeldParts {
            self.readHeld = true
            return
        }
        context.read()
    }
}

/// The `Date` header value, formatted once per second.
struct DateHeader {
    private var second: Int = -1
    private var value = ""

    mutating func current() -> String {
        var now = time(nil)
        if now != self.second {
            self.second = now
            var parts = tm()
            gmtime_r(&now, &parts)
            let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
            self.value = "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
                + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
        }
        return self.value
    }
}
