import Testing

@testable import SluiceServer

/// ``CheckConnectionStateMachine`` alone, with no channel: strings stand for request parts,
/// events and errors, and the tests play the handler (docs/ARCHITECTURE.md, "The HTTP edge").
@Suite("Check connection state machine")
struct CheckConnectionStateMachineTests {
    typealias Machine = CheckConnectionStateMachine<String, String, String>
    typealias Action = Machine.Action
    typealias Part = (String, Machine.PartKind)

    static func check(_ name: String) -> [Part] {
        [("\(name) head", .checkHead), ("\(name) body", .body), ("\(name) end", .end)]
    }

    static func request(_ name: String) -> [Part] {
        [("\(name) head", .head), ("\(name) end", .end)]
    }

    /// Reads parts in order; the actions, in order.
    static func read(_ parts: [Part], into machine: inout Machine) -> [Action] {
        parts.map { machine.partRead($0.0, kind: $0.1) }
    }

    /// Takes held entries until one has to wait, as the handler's drain does.
    static func drain(_ machine: inout Machine) -> [Action] {
        var actions: [Action] = []
        while let action = machine.nextHeld() {
            actions.append(action)
        }
        return actions
    }

    static func passed(_ name: String) -> [Action] {
        [.forwardPart("\(name) head"), .forwardPart("\(name) end")]
    }

    static func decided(_ name: String) -> [Action] {
        [.beginCheck("\(name) head"), .collectBody("\(name) body"), .decide]
    }

    // MARK: requests and checks

    @Test("a router request passes through and is owed until its response ends; the router keeps its own order")
    func routerRequests() {
        var m = Machine(maxHeldParts: 8)
        #expect(m.partRead("a head", kind: .head) == .forwardPart("a head"))
        #expect(m.state == .passing && m.passedOutstanding == 1)
        #expect(m.partRead("a body", kind: .body) == .forwardPart("a body"))
        #expect(m.partRead("a end", kind: .end) == .forwardPart("a end"))
        #expect(m.state == .idle)
        // A second router request does not wait for the first's answer.
        #expect(Self.read(Self.request("b"), into: &m) == Self.passed("b"))
        #expect(m.passedOutstanding == 2)
        #expect(m.passedResponseEnded() == false)
        #expect(m.passedResponseEnded() == false)
        #expect(m.passedOutstanding == 0)
        // A response end with nothing owed (one the router wrote of its own accord) changes nothing.
        #expect(m.passedResponseEnded() == false)
        #expect(m.passedOutstanding == 0 && m.heldCount == 0)
    }

    @Test("a check: head, body, end, a decision, an answer, idle again")
    func checkLifecycle() {
        var m = Machine(maxHeldParts: 8)
        #expect(m.partRead("c head", kind: .checkHead) == .beginCheck("c head"))
        #expect(m.state == .collecting)
        #expect(m.partRead("c body 1", kind: .body) == .collectBody("c body 1"))
        #expect(m.partRead("c body 2", kind: .body) == .collectBody("c body 2"))
        #expect(m.partRead("c end", kind: .end) == .decide)
        #expect(m.state == .deciding)
        #expect(m.decisionCompleted() == .answer)
        m.checkAnswered()
        #expect(m.state == .idle && m.passedOutstanding == 0 && m.heldCount == 0)
        #expect(Self.drain(&m).isEmpty)
    }

    @Test("a check behind a pipelined router request waits for that request's response, then begins")
    func checkBehindRouterRequest() {
        var m = Machine(maxHeldParts: 8)
        #expect(Self.read(Self.request("a"), into: &m) == Self.passed("a"))
        #expect(Self.read(Self.check("c"), into: &m) == [.hold, .hold, .hold])
        #expect(m.heldCount == 3)
        #expect(m.nextHeld() == nil, "its turn has not come")
        #expect(m.passedResponseEnded() == true)
        #expect(Self.drain(&m) == Self.decided("c"))
        #expect(m.state == .deciding && m.heldCount == 0)
    }

    @Test("once something is held, everything after it is held too, even what could go at once")
    func nothingOvertakes() {
        var m = Machine(maxHeldParts: 8)
        _ = Self.read(Self.request("a"), into: &m)
        _ = Self.read(Self.check("c"), into: &m)
        // A router request could pass now, but it must not overtake the check.
        #expect(Self.read(Self.request("b"), into: &m) == [.hold, .hold])
        #expect(m.eventRead("e", inputClosed: false) == .hold)
        #expect(m.passedOutstanding == 1)
        #expect(m.passedResponseEnded() == true)
        #expect(Self.drain(&m) == Self.decided("c"))
        m.checkAnswered()
        #expect(Self.drain(&m) == Self.passed("b") + [.forwardEvent("e")])
    }

    @Test("what is read while a check is decided is held, then released in order: parts, events, errors")
    func heldReleasedInOrder() {
        var m = Machine(maxHeldParts: 32)
        _ = Self.read(Self.check("c1"), into: &m)
        #expect(m.state == .deciding)
        var actions = Self.read(Self.request("b"), into: &m)
        actions.append(m.eventRead("e1", inputClosed: false))
        actions += Self.read(Self.check("c2"), into: &m)
        actions += Self.read(Self.request("d"), into: &m)
        actions.append(m.errorCaught("x", framing: false))
        #expect(actions == Array(repeating: .hold, count: 9))
        #expect(m.heldCount == 9)

        // c1 answered: b goes to the router, then the event; c2 waits for b's response.
        m.checkAnswered()
        #expect(Self.drain(&m) == Self.passed("b") + [.forwardEvent("e1")])
        #expect(m.state == .idle && m.passedOutstanding == 1 && m.heldCount == 6)
        // b answered: c2 is decided.
        #expect(m.passedResponseEnded() == true)
        #expect(Self.drain(&m) == Self.decided("c2"))
        // c2 answered: d goes to the router; the error waits for d's response.
        m.checkAnswered()
        #expect(Self.drain(&m) == Self.passed("d"))
        #expect(m.heldCount == 1)
        #expect(m.passedResponseEnded() == true)
        #expect(Self.drain(&m) == [.forwardError("x")])
        #expect(m.heldCount == 0)
    }

    @Test("answers keep request order: one decision at a time, interleaved with router requests")
    func responseOrder() {
        // The handler played for real: answers are recorded as the machine lets them go.
        var m = Machine(maxHeldParts: 64)
        var answered: [String] = []
        var routerOwes: [String] = []
        var deciding: String?
        func perform(_ actions: [Action]) {
            for action in actions {
                switch action {
                case .forwardPart(let part) where part.hasSuffix("head"):
                    routerOwes.append(String(part.dropLast(5)))
                case .beginCheck(let part):
                    #expect(deciding == nil, "a second decision while one is under way")
                    deciding = String(part.dropLast(5))
                default:
                    break
                }
            }
        }
        perform(Self.read(Self.check("c1") + Self.request("r1") + Self.check("c2") + Self.request("r2") + Self.check("c3"), into: &m))
        #expect(deciding == "c1" && routerOwes.isEmpty)

        // Decisions and router answers complete in whatever order they can; the machine lets a
        // check's decision start only when every answer before it has been written.
        func answerCheck() {
            guard let name = deciding else { Issue.record("no check under way"); return }
            #expect(m.decisionCompleted() == .answer)
            answered.append(name)
            deciding = nil
            m.checkAnswered()
            perform(Self.drain(&m))
        }
        func routerAnswers() {
            answered.append(routerOwes.removeFirst())
            if m.passedResponseEnded() {
                perform(Self.drain(&m))
            }
        }
        answerCheck()
        #expect(routerOwes == ["r1"] && deciding == nil, "c2 waits for r1's answer")
        routerAnswers()
        #expect(deciding == "c2")
        answerCheck()
        #expect(routerOwes == ["r2"] && deciding == nil)
        routerAnswers()
        answerCheck()
        #expect(answered == ["c1", "r1", "c2", "r2", "c3"])
        #expect(m.state == .idle && m.heldCount == 0 && m.passedOutstanding == 0)
    }

    // MARK: backpressure

    @Test("reading is withheld once maxHeldParts are held and resumes, once, when the held entries drain below it")
    func backpressure() {
        var m = Machine(maxHeldParts: 4)
        #expect(m.readRequested() == .read)
        _ = Self.read(Self.check("c1"), into: &m)
        _ = Self.read(Self.request("a"), into: &m)
        #expect(m.readRequested() == .read, "2 held, below the limit")
        _ = Self.read(Self.check("c2"), into: &m)
        #expect(m.heldCount == 5)
        #expect(m.readRequested() == .withhold)
        #expect(m.readRequested() == .withhold)
        #expect(m.resumeReading() == false, "nothing drained yet")

        // c1 answered: a goes to the router (2 leave), c2 waits for its response: 3 held.
        m.checkAnswered()
        #expect(Self.drain(&m) == Self.passed("a"))
        #expect(m.heldCount == 3)
        #expect(m.resumeReading() == true)
        #expect(m.resumeReading() == false, "the withheld read is owed once")
        #expect(m.readRequested() == .read)
    }

    @Test("a drain that leaves maxHeldParts held does not resume reading; the one that goes below does")
    func backpressureStaysWhileFull() {
        var m = Machine(maxHeldParts: 3)
        _ = Self.read(Self.check("c1"), into: &m)
        _ = Self.read(Self.request("a") + Self.check("c2") + Self.check("c3"), into: &m)
        #expect(m.heldCount == 8)
        #expect(m.readRequested() == .withhold)
        m.checkAnswered()
        #expect(Self.drain(&m) == Self.passed("a"))
        #expect(m.heldCount == 6)
        #expect(m.resumeReading() == false)
        #expect(m.passedResponseEnded() == true)
        #expect(Self.drain(&m) == Self.decided("c2"))
        #expect(m.heldCount == 3)
        #expect(m.resumeReading() == false, "3 held: still at the limit")
        m.checkAnswered()
        #expect(Self.drain(&m) == Self.decided("c3"))
        #expect(m.resumeReading() == true)
    }

    @Test("without a withheld read, draining asks for no read")
    func noReadOwed() {
        var m = Machine(maxHeldParts: 4)
        _ = Self.read(Self.check("c1") + Self.request("a"), into: &m)
        m.checkAnswered()
        _ = Self.drain(&m)
        #expect(m.resumeReading() == false)
    }

    // MARK: close and half-close

    @Test("the channel going inactive while a decision is in flight: the answer and everything held are dropped")
    func inactiveWhileDeciding() {
        var m = Machine(maxHeldParts: 4)
        _ = Self.read(Self.check("c1") + Self.request("a") + Self.check("c2"), into: &m)
        #expect(m.readRequested() == .withhold)
        m.channelInactive()
        #expect(m.state == .closing && m.heldCount == 0)
        #expect(m.decisionCompleted() == .drop)
        #expect(m.partRead("b head", kind: .head) == .drop)
        #expect(m.eventRead("e", inputClosed: true) == .drop)
        #expect(m.errorCaught("x", framing: true) == .drop)
        #expect(m.nextHeld() == nil)
        m.checkAnswered()
        #expect(m.state == .closing, "closing is final")
        #expect(m.heldCount == 0)
    }

    @Test("an answer with Connection: close drops what was held behind it; nothing more is handled")
    func answeredAndClosing() {
        var m = Machine(maxHeldParts: 8)
        _ = Self.read(Self.check("c1") + Self.request("a"), into: &m)
        #expect(m.decisionCompleted() == .answer)
        m.answeredAndClosing()
        #expect(m.state == .closing && m.heldCount == 0)
        #expect(Self.read(Self.request("b"), into: &m) == [.drop, .drop])
        #expect(m.decisionCompleted() == .drop)
    }

    @Test("a half-close while a check is decided waits for its answer, then goes to the router")
    func halfCloseWhileDeciding() {
        var m = Machine(maxHeldParts: 8)
        _ = Self.read(Self.check("c1"), into: &m)
        #expect(m.eventRead("closed", inputClosed: true) == .hold)
        m.checkAnswered()
        #expect(Self.drain(&m) == [.forwardEvent("closed")])
    }

    @Test("a half-close between requests, or mid router request, goes to the router at once")
    func halfCloseToRouter() {
        var m = Machine(maxHeldParts: 8)
        #expect(m.eventRead("closed", inputClosed: true) == .forwardEvent("closed"))
        _ = m.partRead("a head", kind: .head)
        #expect(m.eventRead("closed", inputClosed: true) == .forwardEvent("closed"))
        _ = m.partRead("a end", kind: .end)
        // The router owes a's answer and keeps the event behind it itself.
        #expect(m.eventRead("closed", inputClosed: true) == .forwardEvent("closed"))
    }

    @Test("a half-close mid-body of a check is answered with incomplete_body")
    func halfCloseMidBody() {
        var m = Machine(maxHeldParts: 8)
        _ = Self.read(Array(Self.check("c").prefix(2)), into: &m)
        #expect(m.eventRead("closed", inputClosed: true) == .answerIncompleteBody)
        m.answeredAndClosing()
        #expect(m.state == .closing)
    }

    @Test("a half-close mid-body of a check that waited for a router answer is answered too, when the check's turn comes")
    func halfCloseMidBodyAfterWaiting() {
        // Before the state machine, a held half-close could not be handled while collecting:
        // the check waited forever for the rest of its body.
        var m = Machine(maxHeldParts: 8)
        _ = Self.read(Self.request("a"), into: &m)
        _ = Self.read(Array(Self.check("c").prefix(2)), into: &m)
        #expect(m.eventRead("closed", inputClosed: true) == .hold)
        #expect(m.passedResponseEnded() == true)
        #expect(Self.drain(&m) == [.beginCheck("c head"), .collectBody("c body"), .answerIncompleteBody])
    }

    @Test("other events wait while a check is collected or decided")
    func otherEventsMidCheck() {
        var m = Machine(maxHeldParts: 8)
        _ = m.partRead("c head", kind: .checkHead)
        #expect(m.eventRead("e1", inputClosed: false) == .hold)
        // Held: the check's own parts now wait behind the event.
        #expect(m.partRead("c end", kind: .end) == .hold)
        #expect(m.heldCount == 2)
    }

    // MARK: errors

    @Test("a framing error between requests is answered here at once")
    func framingErrorIdle() {
        var m = Machine(maxHeldParts: 8)
        #expect(m.errorCaught("bad", framing: true) == .answerMalformed("bad"))
    }

    @Test("a framing error mid-check is answered at once")
    func framingErrorMidCheck() {
        var m = Machine(maxHeldParts: 8)
        _ = Self.read(Array(Self.check("c").prefix(2)), into: &m)
        #expect(m.errorCaught("bad", framing: true) == .answerMalformed("bad"))
    }

    @Test("a framing error waits for the router's answers and for a decision under way")
    func framingErrorWaits() {
        var m = Machine(maxHeldParts: 8)
        _ = Self.read(Self.request("a"), into: &m)
        #expect(m.errorCaught("bad", framing: true) == .hold)
        #expect(m.passedResponseEnded() == true)
        #expect(Self.drain(&m) == [.answerMalformed("bad")])

        var n = Machine(maxHeldParts: 8)
        _ = Self.read(Self.check("c"), into: &n)
        #expect(n.errorCaught("bad", framing: true) == .hold)
        n.checkAnswered()
        #expect(Self.drain(&n) == [.answerMalformed("bad")])
    }

    @Test("an error in the middle of a router request is the router's, framing or not")
    func errorMidRouterRequest() {
        var m = Machine(maxHeldParts: 8)
        _ = m.partRead("a head", kind: .head)
        #expect(m.errorCaught("bad", framing: true) == .forwardError("bad"))
        #expect(m.errorCaught("io", framing: false) == .forwardError("io"))
    }

    @Test("other errors go to the router in their turn; mid-check they wait")
    func otherErrors() {
        var m = Machine(maxHeldParts: 8)
        #expect(m.errorCaught("io", framing: false) == .forwardError("io"))
        _ = Self.read(Self.request("a"), into: &m)
        #expect(m.errorCaught("io", framing: false) == .hold)
        #expect(m.passedResponseEnded() == true)
        #expect(Self.drain(&m) == [.forwardError("io")])

        var n = Machine(maxHeldParts: 8)
        _ = n.partRead("c head", kind: .checkHead)
        #expect(n.errorCaught("io", framing: false) == .hold)
    }

    @Test("parts the decoder never sends where they are read close the connection")
    func impossibleParts() {
        var m = Machine(maxHeldParts: 8)
        #expect(m.partRead("stray body", kind: .body) == .close)
        #expect(m.partRead("stray end", kind: .end) == .close)
        #expect(m.state == .idle)
        _ = m.partRead("c head", kind: .checkHead)
        #expect(m.partRead("a head", kind: .head) == .close)
        #expect(m.partRead("c2 head", kind: .checkHead) == .close)
        #expect(m.state == .collecting)
    }

    @Test("maxHeldParts is at least 1")
    func minimumLimit() {
        var m = Machine(maxHeldParts: 0)
        #expect(m.maxHeldParts == 1)
        #expect(m.readRequested() == .read)
    }
}
