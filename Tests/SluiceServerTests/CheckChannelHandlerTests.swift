import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import SluiceCore
import Testing

@testable import SluiceServer

/// ``CheckChannelHandler`` on an embedded channel, between a stand-in for the socket side
/// (counting reads) and a stand-in for the router (recording what reaches it), with decisions
/// that complete when a test says so. The ordering rules themselves are tested without a
/// channel in ``CheckConnectionStateMachineTests``.
@Suite("Check channel handler (embedded channel)")
struct CheckChannelHandlerTests {
    /// What reaches Hummingbird's async bridge, in order.
    final class RouterStandIn: ChannelInboundHandler {
        typealias InboundIn = HTTPRequestPart

        var seen: [String] = []
        var readCompletes = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head): self.seen.append("\(head.method.rawValue) \(head.path ?? "")")
            case .body(let body): self.seen.append("body \(String(buffer: body))")
            case .end: self.seen.append("end")
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            self.readCompletes += 1
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            self.seen.append("event \(event)")
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.seen.append("error \(error)")
        }
    }

    /// The socket side: counts the reads that get through.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any

        var reads = 0

        func read(context: ChannelHandlerContext) {
            self.reads += 1
            context.read()
        }
    }

    /// Decisions asked for, completed by the test (or at once, as a cache hit would be).
    final class DeciderStandIn {
        var asked: [String] = []
        var pending: [(key: String, promise: EventLoopPromise<Decider.Outcome>)] = []
        var answerAtOnce = false
        /// Where the stack was at each decision.
        var stackAddresses: [UInt] = []

        func decide(_ request: CheckRequest, on eventLoop: any EventLoop) -> EventLoopFuture<Decider.Outcome> {
            self.asked.append(request.apiKey)
            var marker = 0
            withUnsafeMutablePointer(to: &marker) { self.stackAddresses.append(UInt(bitPattern: $0)) }
            if self.answerAtOnce {
                return eventLoop.makeSucceededFuture(Self.outcome(request.apiKey))
            }
            let promise = eventLoop.makePromise(of: Decider.Outcome.self)
            self.pending.append((request.apiKey, promise))
            return promise.futureResult
        }

        /// An answer that names its check: the plan is the key.
        static func outcome(_ key: String) -> Decider.Outcome {
            .decision(.unlimited(plan: key), headers: [])
        }

        /// Completes the oldest decision asked for.
        func completeOldest() {
            let (key, promise) = self.pending.removeFirst()
            promise.succeed(Self.outcome(key))
        }
    }

    struct Answer: Equatable, CustomStringConvertible {
        var status: Int
        var body: String
        var close: Bool

        /// The plan (a check's key) or the router's body.
        var name: String {
            if let range = self.body.range(of: #""plan":""#) {
                return String(self.body[range.upperBound...].prefix { $0 != "\"" })
            }
            if let range = self.body.range(of: #""code":""#) {
                return String(self.body[range.upperBound...].prefix { $0 != "\"" })
            }
            return self.body
        }

        var description: String { "\(self.status) \(self.name)\(self.close ? " close" : "")" }
    }

    final class Harness {
        static let yaml = """
            plans: { p: { throttle: { rate: 1, burst: 3 } } }
            api_keys: [ { key: k, plan: p } ]
            """

        let loop = EmbeddedEventLoop()
        let channel: EmbeddedChannel
        let router = RouterStandIn()
        let socket = ReadCounter()
        let decider = DeciderStandIn()
        /// Every response written, in the order written.
        private(set) var answers: [Answer] = []
        private var current: Answer?

        init(answersChecks: Bool = true) throws {
            let config = try ConfigLoader.parse(yaml: Self.yaml, source: "test.yaml", environment: ["SLUICE_KEY_SECRET": "handler-test"])
            let store = ConfigStore(config)
            let decider = self.decider
            let handler = CheckChannelHandler(
                decisions: .stub { request, _, eventLoop in decider.decide(request, on: eventLoop) },
                store: store, answersChecks: answersChecks
            )
            self.channel = EmbeddedChannel(loop: self.loop)
            try self.channel.pipeline.syncOperations.addHandlers([self.socket, handler, self.router])
            try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
            precondition(self.channel.isActive)
        }

        static func check(_ key: String, close: Bool = false, contentType: String = "application/json") -> [HTTPRequestPart] {
            var fields: HTTPFields = [.contentType: contentType]
            if close { fields[.connection] = "close" }
            return [
                .head(HTTPRequest(method: .post, scheme: "http", authority: "t", path: "/v1/check", headerFields: fields)),
                .body(ByteBuffer(string: #"{"api_key":"\#(key)"}"#)),
                .end(nil),
            ]
        }

        static func get(_ path: String) -> [HTTPRequestPart] {
            [.head(HTTPRequest(method: .get, scheme: "http", authority: "t", path: path)), .end(nil)]
        }

        /// Each part arrives in a read of its own.
        func send(_ parts: [HTTPRequestPart]) throws {
            for part in parts {
                try self.channel.writeInbound(part)
            }
        }

        /// The router answers its oldest request.
        func routerAnswers(_ text: String) throws {
            try self.channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try self.channel.writeOutbound(HTTPResponsePart.body(ByteBuffer(string: text)))
            try self.channel.writeOutbound(HTTPResponsePart.end(nil))
        }

        /// Reads what was written since the last call.
        func written() throws -> [Answer] {
            var new: [Answer] = []
            while let part = try self.channel.readOutbound(as: HTTPResponsePart.self) {
                switch part {
                case .head(let response):
                    self.current = Answer(status: response.status.code, body: "", close: response.headerFields[.connection] == "close")
                case .body(let body):
                    self.current?.body += String(buffer: body)
                case .end:
                    if let answer = self.current { new.append(answer) }
                    self.current = nil
                }
            }
            self.answers += new
            return new
        }

        func names() throws -> [String] {
            _ = try self.written()
            return self.answers.map(\.description)
        }
    }

    @Test("a check behind a router request waits for its answer; requests behind a check wait for its decision")
    func pipelinedInOrder() throws {
        let h = try Harness()
        try h.send(Harness.get("/a"))
        try h.send(Harness.check("k1"))
        try h.send(Harness.get("/b"))
        // The router has /a; the check waits for /a's answer, /b waits behind the check.
        #expect(h.router.seen == ["GET /a", "end"])
        #expect(h.decider.asked.isEmpty)

        try h.routerAnswers("a")
        #expect(h.decider.asked == ["k1"])
        #expect(h.router.seen == ["GET /a", "end"], "/b still waits for the check's answer")

        let completesBefore = h.router.readCompletes
        h.decider.completeOldest()
        #expect(h.router.seen == ["GET /a", "end", "GET /b", "end"])
        #expect(h.router.readCompletes > completesBefore, "parts handed on outside a read cycle are followed by a read-complete")

        // A second check waits for /b's answer.
        try h.send(Harness.check("k2"))
        #expect(h.decider.asked == ["k1"])
        try h.routerAnswers("b")
        #expect(h.decider.asked == ["k1", "k2"])
        h.decider.completeOldest()
        #expect(try h.names() == ["200 a", "200 k1", "200 b", "200 k2"])
        #expect(h.channel.isActive)
    }

    @Test("pipelined checks are decided one at a time and answered in request order")
    func checksOneAtATime() throws {
        let h = try Harness()
        try h.send(Harness.check("k1") + Harness.check("k2") + Harness.check("k3"))
        #expect(h.decider.asked == ["k1"])
        h.decider.completeOldest()
        #expect(h.decider.asked == ["k1", "k2"])
        #expect(try h.names() == ["200 k1"])
        h.decider.completeOldest()
        h.decider.completeOldest()
        #expect(try h.names() == ["200 k1", "200 k2", "200 k3"])
        #expect(h.router.seen.isEmpty)
    }

    @Test("decisions answered at once (a cache hit, an unknown key) let what follows go, in order")
    func decisionsAtOnce() throws {
        let h = try Harness()
        h.decider.answerAtOnce = true
        try h.send(Harness.get("/a"))
        try h.send(Harness.check("k1") + Harness.check("k2") + Harness.get("/b") + Harness.check("k3"))
        try h.routerAnswers("a")
        // k1 and k2 answered inside the drain that /a's answer started; /b goes to the router, k3 waits for it.
        #expect(h.decider.asked == ["k1", "k2"])
        #expect(h.router.seen == ["GET /a", "end", "GET /b", "end"])
        try h.routerAnswers("b")
        #expect(try h.names() == ["200 a", "200 k1", "200 k2", "200 b", "200 k3"])
    }

    @Test("a check refused at its head is answered without a decision, in its place")
    func refusedAtHead() throws {
        let h = try Harness()
        try h.send(Harness.get("/a"))
        try h.send(Harness.check("k1", contentType: "text/plain") + Harness.get("/b"))
        try h.routerAnswers("a")
        #expect(h.decider.asked.isEmpty)
        #expect(h.router.seen == ["GET /a", "end", "GET /b", "end"])
        try h.routerAnswers("b")
        #expect(try h.names() == ["200 a", "415 unsupported_media_type", "200 b"])
    }

    @Test("read() is withheld while maxHeldParts are held, and called again once they drain")
    func backpressure() throws {
        let h = try Harness()
        try h.send(Harness.check("k0"))
        #expect(h.decider.asked == ["k0"])
        h.channel.read()
        #expect(h.socket.reads == 1, "nothing held: reads go through")

        // While k0 is decided, everything read is held: 3 parts a check.
        var sent = 0
        var key = 1
        while sent < CheckChannelHandler.maxHeldParts {
            try h.send(Harness.check("k\(key)"))
            sent += 3
            key += 1
        }
        h.channel.read()
        h.channel.read()
        #expect(h.socket.reads == 1, "\(sent) parts held: no read until they drain")

        // k0's answer lets k1 begin (3 parts leave): below the limit, the withheld read goes out, once.
        h.decider.completeOldest()
        #expect(h.decider.asked == ["k0", "k1"])
        #expect(h.socket.reads == 2)
        h.channel.read()
        #expect(h.socket.reads == 3)

        // Everything is answered, in order.
        while !h.decider.pending.isEmpty {
            h.decider.completeOldest()
        }
        #expect(try h.names() == (0..<key).map { "200 k\($0)" })
    }

    @Test("backpressure counts what waits for a router answer too")
    func backpressureBehindRouter() throws {
        let h = try Harness()
        try h.send(Harness.get("/a"))
        var sent = 0
        var key = 1
        while sent < CheckChannelHandler.maxHeldParts {
            try h.send(Harness.check("k\(key)"))
            sent += 3
            key += 1
        }
        h.channel.read()
        #expect(h.socket.reads == 0)
        h.decider.answerAtOnce = true
        try h.routerAnswers("a")
        // Every check is decided at once: everything drains, the read goes out.
        #expect(h.socket.reads == 1)
        #expect(try h.names() == ["200 a"] + (1..<key).map { "200 k\($0)" })
    }

    @Test("held checks answered at once are drained in a loop, not by recursion: the stack does not grow with them")
    func drainDoesNotRecurse() throws {
        // Failed before the state machine: each answer drained what followed from inside the
        // previous decision's callback, so a burst of pipelined checks needing no Redis
        // (unknown keys) behind one slow request went one stack level deeper per check.
        let h = try Harness()
        h.decider.answerAtOnce = true
        try h.send(Harness.get("/a"))
        let checks = 300
        try h.send((1...checks).flatMap { Harness.check("k\($0)") })
        try h.routerAnswers("a")
        #expect(h.decider.asked.count == checks)
        #expect(try h.written().count == checks + 1)
        let addresses = h.decider.stackAddresses
        let spread = (addresses.max() ?? 0) - (addresses.min() ?? 0)
        #expect(spread < 16 * 1024, "the stack moved \(spread) bytes over \(checks) decisions")
    }

    @Test("a decision completing after the channel closed writes nothing")
    func decisionAfterClose() throws {
        let h = try Harness()
        try h.send(Harness.check("k1") + Harness.get("/b"))
        #expect(h.decider.asked == ["k1"])
        try h.channel.close().wait()
        h.decider.completeOldest()
        #expect(try h.written().isEmpty)
        #expect(h.router.seen.isEmpty, "what was held is dropped, not handed on")
    }

    @Test("a decision completing after the channel went inactive (handler still in place) writes nothing")
    func decisionAfterInactive() throws {
        let h = try Harness()
        try h.send(Harness.check("k1") + Harness.get("/b"))
        h.channel.pipeline.fireChannelInactive()
        h.decider.completeOldest()
        #expect(try h.written().isEmpty)
        #expect(h.router.seen.isEmpty)
        // Nothing read afterwards is handled either.
        try h.send(Harness.get("/c"))
        #expect(h.router.seen.isEmpty)
    }

    @Test("a half-close read while a check is decided reaches the router after the check's answer")
    func halfCloseWhileDeciding() throws {
        let h = try Harness()
        try h.send(Harness.check("k1"))
        h.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(h.router.seen.isEmpty)
        h.decider.completeOldest()
        #expect(try h.names() == ["200 k1"])
        #expect(h.router.seen == ["event inputClosed"])
        #expect(h.channel.isActive)
    }

    @Test("a half-close mid-body is answered with incomplete_body, and the connection closes")
    func halfCloseMidBody() throws {
        let h = try Harness()
        try h.send(Array(Harness.check("k1").prefix(2)))
        h.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        #expect(try h.names() == ["400 incomplete_body close"])
        #expect(h.decider.asked.isEmpty)
        #expect(!h.channel.isActive)
    }

    @Test("a half-close mid-body of a check that waited behind a router request: incomplete_body, not silence")
    func halfCloseMidBodyAfterWaiting() throws {
        // Failed before the state machine: the held event could not be handled while
        // collecting, and the check waited forever for a body that could not come.
        let h = try Harness()
        try h.send(Harness.get("/a"))
        try h.send(Array(Harness.check("k1").prefix(2)))
        h.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        try h.routerAnswers("a")
        #expect(try h.names() == ["200 a", "400 incomplete_body close"])
        #expect(!h.channel.isActive)
        #expect(h.router.seen == ["GET /a", "end"])
    }

    @Test("a framing error mid-check is answered with a JSON 400 at once, then the connection closes")
    func framingErrorMidCheck() throws {
        let h = try Harness()
        try h.send(Array(Harness.check("k1").prefix(2)))
        h.channel.pipeline.fireErrorCaught(HTTPParserError.invalidChunkSize)
        #expect(try h.names() == ["400 malformed_request close"])
        #expect(!h.channel.isActive)
        #expect(h.router.seen.isEmpty)
    }

    @Test("a framing error is answered after every answer owed before it, then the connection closes")
    func framingErrorAfterAnswers() throws {
        let h = try Harness()
        try h.send(Harness.get("/a"))
        try h.send(Harness.check("k1"))
        h.channel.pipeline.fireErrorCaught(HTTPParserError.invalidEOFState)
        try h.routerAnswers("a")
        #expect(try h.names() == ["200 a"])
        h.decider.completeOldest()
        #expect(try h.names() == ["200 a", "200 k1", "400 malformed_request close"])
        #expect(!h.channel.isActive)
        #expect(h.router.seen == ["GET /a", "end"], "the router never sees the framing error")
    }

    @Test("a framing error in the middle of a router request is the router's")
    func framingErrorMidRouterRequest() throws {
        let h = try Harness()
        try h.send([Harness.get("/a")[0]])
        h.channel.pipeline.fireErrorCaught(HTTPParserError.invalidChunkSize)
        #expect(h.router.seen == ["GET /a", "error \(HTTPParserError.invalidChunkSize)"])
        #expect(try h.written().isEmpty)
        #expect(h.channel.isActive)
    }

    @Test("a check with Connection: close: its answer closes the connection, what was read after it is dropped")
    func connectionClose() throws {
        let h = try Harness()
        try h.send(Harness.check("k1", close: true) + Harness.get("/b"))
        h.decider.completeOldest()
        #expect(try h.names() == ["200 k1 close"])
        #expect(!h.channel.isActive)
        #expect(h.router.seen.isEmpty)
    }

    @Test("on the admin listener every request goes to the router, answers still in order")
    func adminListener() throws {
        let h = try Harness(answersChecks: false)
        try h.send(Harness.check("k1") + Harness.get("/b"))
        #expect(h.decider.asked.isEmpty)
        #expect(h.router.seen == [#"POST /v1/check"#, #"body {"api_key":"k1"}"#, "end", "GET /b", "end"])
        try h.routerAnswers("check")
        try h.routerAnswers("b")
        #expect(try h.names() == ["200 check", "200 b"])
    }

    @Test("isCheck: POST /v1/check with or without a query or a trailing slash, nothing else")
    func isCheck() {
        func head(_ method: HTTPRequest.Method, _ path: String) -> HTTPRequest {
            HTTPRequest(method: method, scheme: "http", authority: "t", path: path)
        }
        #expect(CheckChannelHandler.isCheck(head(.post, "/v1/check")))
        #expect(CheckChannelHandler.isCheck(head(.post, "/v1/check/")))
        #expect(CheckChannelHandler.isCheck(head(.post, "/v1/check?x=1")))
        #expect(!CheckChannelHandler.isCheck(head(.get, "/v1/check")))
        #expect(!CheckChannelHandler.isCheck(head(.post, "/v1/check/batch")))
        #expect(!CheckChannelHandler.isCheck(head(.post, "/v1/checks")))
    }
}
