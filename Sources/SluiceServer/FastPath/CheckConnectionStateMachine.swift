import DequeModule

/// The ordering logic of one connection's HTTP edge (``CheckChannelHandler``), free of any
/// channel: what read can be handled now and what must wait, when a check may begin, when
/// reading stops and resumes (docs/ARCHITECTURE.md, "The HTTP edge").
///
/// Every mutating method returns what the handler must do; the handler does it. Responses
/// leave in request order because nothing that could be answered out of order is handled
/// early: a check begins only once every request passed to the router has its response
/// written, and while a check is decided everything read after it is held.
///
/// Generic over what it holds, which it never looks into: `Part` is a request part, `Event`
/// an inbound user event, `Failure` an error caught. The handler says what each one is
/// (``PartKind``, `inputClosed`, `framing`).
struct CheckConnectionStateMachine<Part, Event, Failure> {
    enum State: Equatable {
        /// Between requests.
        case idle
        /// Forwarding the parts of a request that is not a check to the router.
        case passing
        /// Reading a check's body (the handler keeps the body).
        case collecting
        /// A check's decision is under way; its response is not written yet.
        case deciding
        /// A `Connection: close` answer was written, or the channel went inactive: nothing
        /// more is handled. Final.
        case closing
    }

    /// What a request part is, as far as ordering goes.
    enum PartKind: Equatable {
        /// The head of a request this edge answers itself (`POST /v1/check`).
        case checkHead
        /// The head of any other request (the router's).
        case head
        case body
        case end
    }

    /// What to do with something read.
    enum Action {
        /// Nothing yet: it is held, and comes back from ``nextHeld()`` when its turn comes.
        case hold
        /// Nothing ever: the connection is closing.
        case drop
        /// Pass the part on to the router.
        case forwardPart(Part)
        /// Pass the event on to the router.
        case forwardEvent(Event)
        /// Pass the error on to the router.
        case forwardError(Failure)
        /// A check's head: start collecting it.
        case beginCheck(Part)
        /// A piece of the check's body.
        case collectBody(Part)
        /// The check's body is complete: decide it, then report the answer with
        /// ``checkAnswered()`` or ``answeredAndClosing()``.
        case decide
        /// A framing error where this edge answers: a JSON 400 `malformed_request`, then close.
        case answerMalformed(Failure)
        /// The client half-closed mid-body of a check: a 400 `incomplete_body`, then close.
        case answerIncompleteBody
        /// A part the HTTP decoder never sends here (a request without its head): close.
        case close
    }

    enum ReadAction: Equatable {
        /// Ask the socket for more.
        case read
        /// Do not: too much is held. ``resumeReading()`` says when to ask.
        case withhold
    }

    enum DecisionAction: Equatable {
        /// Write the check's answer.
        case answer
        /// The connection went away meanwhile: write nothing.
        case drop
    }

    /// What was read while it could not be handled yet, in order: request parts, and the
    /// events and errors that must not overtake them (input closed, a decoding error).
    private enum Held {
        case part(Part, PartKind)
        case event(Event, inputClosed: Bool)
        case error(Failure, framing: Bool)
    }

    private(set) var state: State = .idle
    /// Requests passed to the router whose responses have not been written completely.
    private(set) var passedOutstanding = 0
    private var held = Deque<Held>()
    /// A read was withheld and is owed once the held entries drop below ``maxHeldParts``.
    private var readWithheld = false
    /// Entries held back at most before reading stops.
    let maxHeldParts: Int

    init(maxHeldParts: Int) {
        self.maxHeldParts = max(1, maxHeldParts)
    }

    /// Parts, events and errors waiting for their turn.
    var heldCount: Int { self.held.count }

    // MARK: reads

    /// A request part was read.
    mutating func partRead(_ part: Part, kind: PartKind) -> Action {
        if case .closing = self.state { return .drop }
        let entry = Held.part(part, kind)
        if !self.held.isEmpty || !self.canHandle(entry) {
            self.held.append(entry)
            return .hold
        }
        return self.handle(entry)
    }

    /// An inbound user event arrived. `inputClosed`: it is `ChannelEvent.inputClosed` (the
    /// client half-closed); it must not reach the router before the answers to the requests
    /// read before it.
    mutating func eventRead(_ event: Event, inputClosed: Bool) -> Action {
        if case .closing = self.state { return .drop }
        let entry = Held.event(event, inputClosed: inputClosed)
        if !self.held.isEmpty || !self.canHandle(entry) {
            self.held.append(entry)
            return .hold
        }
        return self.handle(entry)
    }

    /// An error was caught. `framing`: the HTTP decoder refused the bytes; it is answered
    /// after every earlier answer.
    mutating func errorCaught(_ error: Failure, framing: Bool) -> Action {
        if case .closing = self.state { return .drop }
        let entry = Held.error(error, framing: framing)
        if !self.held.isEmpty || !self.canHandle(entry) {
            self.held.append(entry)
            return .hold
        }
        return self.handle(entry)
    }

    /// The oldest held entry's action, if its turn has come (it is then no longer held).
    /// Called in a loop after the state changed (``checkAnswered()``, ``passedResponseEnded()``)
    /// until it returns nil, then ``resumeReading()``.
    mutating func nextHeld() -> Action? {
        guard let entry = self.held.first, self.canHandle(entry) else { return nil }
        self.held.removeFirst()
        return self.handle(entry)
    }

    // MARK: reading

    /// The channel asks the socket for more.
    mutating func readRequested() -> ReadAction {
        if self.held.count >= self.maxHeldParts {
            self.readWithheld = true
            return .withhold
        }
        return .read
    }

    /// Whether the withheld read is owed now (after a drain): the held entries are below the
    /// limit again.
    mutating func resumeReading() -> Bool {
        guard self.readWithheld, self.held.count < self.maxHeldParts else { return false }
        self.readWithheld = false
        return true
    }

    // MARK: responses

    /// A response's end went out through the handler (the router answered).
    /// - Returns: whether held entries may have their turn now (drain).
    mutating func passedResponseEnded() -> Bool {
        guard self.passedOutstanding > 0 else { return false }
        self.passedOutstanding -= 1
        return self.passedOutstanding == 0 && !self.held.isEmpty
    }

    /// A check's decision completed.
    func decisionCompleted() -> DecisionAction {
        if case .closing = self.state { return .drop }
        return .answer
    }

    /// The check's answer was written and the connection stays open: drain next.
    mutating func checkAnswered() {
        if case .closing = self.state { return }
        self.state = .idle
    }

    /// An answer with `Connection: close` is being written: nothing more is handled, and
    /// what was held is dropped.
    mutating func answeredAndClosing() {
        self.state = .closing
        self.held.removeAll()
    }

    /// The channel went inactive.
    mutating func channelInactive() {
        self.state = .closing
        self.held.removeAll()
    }

    // MARK: rules

    /// Whether `entry` can be handled now without answering out of order.
    private func canHandle(_ entry: Held) -> Bool {
        switch self.state {
        case .deciding, .closing:
            return false
        case .idle:
            switch entry {
            case .part(_, .checkHead):
                // A check waits until every response before it has been written.
                return self.passedOutstanding == 0
            case .part:
                // The router keeps its own answers in order.
                return true
            case .event:
                // Between requests: the router acts on it after the answers it owes.
                return true
            case .error:
                // Answered here (or passed on) once the router has answered what came before.
                return self.passedOutstanding == 0
            }
        case .passing:
            // Mid-request: the router's request is the one the error or event is about.
            return true
        case .collecting:
            // A check being collected is answered before the router sees what follows; a framing
            // error or the client's half-close ends it (answered at once).
            switch entry {
            case .part: return true
            case .error(_, let framing): return framing
            case .event(_, let inputClosed): return inputClosed
            }
        }
    }

    /// Handles an entry that ``canHandle(_:)`` allows.
    private mutating func handle(_ entry: Held) -> Action {
        switch entry {
        case .part(let part, let kind):
            return self.handle(part, kind: kind)
        case .event(let event, let inputClosed):
            if inputClosed, case .collecting = self.state {
                // The client stopped sending mid-body: the check can never complete.
                return .answerIncompleteBody
            }
            return .forwardEvent(event)
        case .error(let error, let framing):
            switch self.state {
            case .idle, .collecting:
                // Malformed framing mid-check, or a request the decoder refused: answered here
                // with the JSON error (the router's fallback would send an empty 400), then
                // closed, since nothing after a framing error can be trusted.
                return framing ? .answerMalformed(error) : .forwardError(error)
            case .passing, .deciding, .closing:
                return .forwardError(error)
            }
        }
    }

    private mutating func handle(_ part: Part, kind: PartKind) -> Action {
        switch (self.state, kind) {
        case (.idle, .checkHead):
            self.state = .collecting
            return .beginCheck(part)
        case (.idle, .head):
            self.passedOutstanding += 1
            self.state = .passing
            return .forwardPart(part)
        case (.passing, .end):
            self.state = .idle
            return .forwardPart(part)
        case (.passing, _):
            return .forwardPart(part)
        case (.collecting, .body):
            return .collectBody(part)
        case (.collecting, .end):
            self.state = .deciding
            return .decide
        case (.idle, .body), (.idle, .end), (.collecting, .head), (.collecting, .checkHead), (.deciding, _), (.closing, _):
            // The HTTP decoder never sends these; a request without its head cannot be answered.
            return .close
        }
    }
}

extension CheckConnectionStateMachine.Action: Equatable where Part: Equatable, Event: Equatable, Failure: Equatable {}
