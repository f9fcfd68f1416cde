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
/// check waits for them. Which read waits and which goes is ``CheckConnectionStateMachine``'s
/// call; this handler does what it says and owns the check being collected.
final class CheckChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Parts held back at most before the handler stops asking the socket for more.
    static let maxHeldParts = 256

    /// The ordering rules; events and errors are held as they came (no new existential).
    typealias StateMachine = CheckConnectionStateMachine<HTTPRequestPart, Any, any Error>

    /// Where a check's outcome comes from.
    enum Decisions {
        /// The decider: Redis, on this channel's loop.
        case decider(Decider)
        /// Tests: a stand-in called as ``Decider/decisionFuture(_:keyring:on:)`` would be.
        case stub((CheckRequest, Keyring, any EventLoop) -> EventLoopFuture<Decider.Outcome>)
    }

    /// A check whose body is being read.
    private struct Collecting {
        let start: ContinuousClock.Instant
        let snapshot: ConfigStore.Snapshot
        var body: ByteBuffer
        var rejected: APIError?
        let closeAfter: Bool

        mutating func append(_ chunk: ByteBuffer) {
            guard self.rejected == nil else { return }
            let limit = self.snapshot.config.bounds.maxBodyBytes
            if self.body.readableBytes + chunk.readableBytes > limit {
                self.rejected = APIError(InputError.bodyTooLarge(limit))
                self.body.clear()
            } else if self.body.readableBytes == 0 {
                // Most bodies come in one piece: keep it, no copy.
                self.body = chunk
            } else {
                var chunk = chunk
                self.body.writeBuffer(&chunk)
            }
        }
    }

    private let decisions: Decisions
    private let metrics: SluiceMetrics?
    private let store: ConfigStore
    /// False on the admin listener: every request goes to the router, and the handler only
    /// keeps answers in order and turns framing errors into JSON 400s.
    private let answersChecks: Bool
    private var machine = StateMachine(maxHeldParts: CheckChannelHandler.maxHeldParts)
    /// The check being collected (the machine is `collecting`); nil otherwise.
    private var collecting: Collecting?
    /// A drain is under way further up the stack: an answer written meanwhile (a decision
    /// that needed no Redis) leaves the held entries to it instead of draining from within.
    private var draining = false
    private var context: ChannelHandlerContext?
    private var dateCache = DateHeader()

    convenience init(decider: Decider, store: ConfigStore, answersChecks: Bool = true) {
        self.init(decisions: .decider(decider), store: store, answersChecks: answersChecks)
    }

    init(decisions: Decisions, store: ConfigStore, answersChecks: Bool = true) {
        self.decisions = decisions
        if case .decider(let decider) = decisions {
            self.metrics = decider.metrics
        } else {
            self.metrics = nil
        }
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
        let kind: StateMachine.PartKind
        switch part {
        case .head(let head): kind = self.answersChecks && Self.isCheck(head) ? .checkHead : .head
        case .body: kind = .body
        case .end: kind = .end
        }
        self.perform(self.machine.partRead(part, kind: kind), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        let inputClosed = (event as? ChannelEvent) == .inputClosed
        self.perform(self.machine.eventRead(event, inputClosed: inputClosed), context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.perform(self.machine.errorCaught(error, framing: error is HTTPParserError), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.machine.channelInactive()
        self.collecting = nil
        context.fireChannelInactive()
    }

    private func perform(_ action: StateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .hold, .drop:
            break
        case .forwardPart(let part):
            context.fireChannelRead(self.wrapInboundOut(part))
        case .forwardEvent(let event):
            context.fireUserInboundEventTriggered(event)
        case .forwardError(let error):
            context.fireErrorCaught(error)
        case .beginCheck(let part):
            if case .head(let head) = part {
                self.collecting = self.begin(head)
            }
        case .collectBody(let part):
            if case .body(let chunk) = part {
                self.collecting?.append(chunk)
            }
        case .decide:
            guard let collecting = self.collecting else {
                context.close(promise: nil)
                return
            }
            self.collecting = nil
            self.decide(collecting, context: context)
        case .answerMalformed(let error):
            // Malformed framing mid-check, or a request the decoder refused: answered here with
            // the JSON error (the router's fallback would send an empty 400), then closed.
            self.respond(error: .malformedRequest(error), closeAfter: true, context: context)
        case .answerIncompleteBody:
            self.respond(error: .incompleteBody, closeAfter: true, context: context)
        case .close:
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
        let outcome: EventLoopFuture<Decider.Outcome>
        switch self.decisions {
        case .decider(let decider):
            outcome = decider.decisionFuture(request, keyring: collecting.snapshot.keyring, on: context.eventLoop)
        case .stub(let decide):
            outcome = decide(request, collecting.snapshot.keyring, context.eventLoop)
        }
        // The Redis connection a check uses lives on this channel's loop, so the hop is free.
        outcome
            .hop(to: context.eventLoop)
            .assumeIsolated()
            .whenComplete { result in
                self.finish(result, start: start, closeAfter: closeAfter)
            }
    }

    /// Answers a decided check, unless the connection went away meanwhile.
    private func finish(_ result: Result<Decider.Outcome, any Error>, start: ContinuousClock.Instant, closeAfter: Bool) {
        defer { self.metrics?.recordCheck(.check, since: start) }
        guard let context = self.context, self.machine.decisionCompleted() == .answer else { return }
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
            self.machine.answeredAndClosing()
            self.collecting = nil
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            return
        }
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        self.machine.checkAnswered()
        self.drain(context: context)
    }

    /// Handles held entries, in order, until one has to wait again; then reads again if
    /// reading was withheld and enough has drained.
    private func drain(context: ChannelHandlerContext) {
        // A check answered during a drain (its decision needed no Redis) returns here, to
        // the loop below, rather than draining one stack level deeper per check.
        if self.draining { return }
        self.draining = true
        var handled = false
        while let action = self.machine.nextHeld() {
            self.perform(action, context: context)
            handled = true
        }
        self.draining = false
        if handled {
            // Outside a read cycle: the handlers after this one (the async bridge) deliver
            // what they got on read-complete.
            context.fireChannelReadComplete()
        }
        if self.machine.resumeReading() {
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
        // A passed request's response is complete: a check waiting for it may go.
        if case .end = self.unwrapOutboundIn(data), self.machine.passedResponseEnded() {
            self.drain(context: context)
        }
    }

    func read(context: ChannelHandlerContext) {
        switch self.machine.readRequested() {
        case .read:
            context.read()
        case .withhold:
            // Too much held back: reading resumes once it is handled.
            break
        }
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
