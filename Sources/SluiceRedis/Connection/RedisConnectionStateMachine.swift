import DequeModule
import NIOCore

/// The logic of one Redis connection, free of any channel: a FIFO of pending
/// replies, per-command deadlines and the decision to recycle the connection.
///
/// Every mutating method returns what the handler must do; the handler does it.
/// Replies arrive in the order commands were written (RESP2 has no ids), so the
/// oldest pending entry owns the next reply, even when its caller has already
/// been failed with a timeout: that reply is read and dropped.
struct RedisConnectionStateMachine<Promise> {
    /// One command written and not yet answered.
    struct Pending {
        /// nil once the caller was failed with a timeout; the reply is then dropped.
        var promise: Promise?
        let deadline: NIODeadline
    }

    enum State {
        case active
        case closed(SluiceRedisError)
    }

    enum SendAction {
        /// Write the command. If `armTimer` is set, schedule the deadline timer for it.
        case write(armTimer: NIODeadline?)
        /// Do not write; fail the caller at once.
        case fail(SluiceRedisError)
    }

    enum ReplyAction {
        /// Complete this caller's promise with the reply.
        case succeed(Promise)
        /// The caller timed out earlier; drop the reply.
        case discard
        /// A reply nobody asked for: close the connection with this error.
        case close(SluiceRedisError)
    }

    struct TimerAction {
        /// Callers whose deadline passed: fail them with a timeout.
        var expired: [Promise] = []
        /// When to fire next, if anything is still waiting.
        var rearm: NIODeadline?
        /// Too many consecutive timeouts: close (and so recycle) the connection.
        var closeConnection = false
    }

    private(set) var state: State = .active
    private var pending: Deque<Pending> = []
    private var consecutiveTimeouts = 0
    /// When the deadline timer fires next; nil when it is not scheduled.
    private var armedDeadline: NIODeadline?

    /// At most this many commands wait for replies at once.
    let maxPending: Int
    /// After this many timeouts in a row with no reply in between, the connection is recycled.
    let maxConsecutiveTimeouts: Int

    init(maxPending: Int, maxConsecutiveTimeouts: Int) {
        self.maxPending = max(1, maxPending)
        self.maxConsecutiveTimeouts = max(1, maxConsecutiveTimeouts)
    }

    /// Commands written and not yet answered (timed-out ones included, until their reply is read).
    var pendingCount: Int { self.pending.count }

    /// A caller wants to send a command that must be answered by `deadline`.
    mutating func send(_ promise: Promise, deadline: NIODeadline) -> SendAction {
        if case .closed(let error) = self.state {
            return .fail(error)
        }
        if self.pending.count >= self.maxPending {
            return .fail(.tooManyPending("\(self.pending.count) commands already wait for Redis on this connection"))
        }
        self.pending.append(Pending(promise: promise, deadline: deadline))
        // Commands may carry different deadlines (a handshake's is longer): the timer
        // must fire by the earliest one.
        if let armed = self.armedDeadline, armed <= deadline {
            return .write(armTimer: nil)
        }
        self.armedDeadline = deadline
        return .write(armTimer: deadline)
    }

    /// A complete reply was decoded.
    mutating func receive() -> ReplyAction {
        guard case .active = self.state else { return .discard }
        guard let first = self.pending.popFirst() else {
            return .close(.protocolError("Redis sent a reply with no command waiting for it"))
        }
        // Redis answered: it is alive, whatever happened to earlier commands.
        self.consecutiveTimeouts = 0
        guard let promise = first.promise else { return .discard }
        return .succeed(promise)
    }

    /// The deadline timer fired at `now`.
    mutating func timerFired(now: NIODeadline) -> TimerAction {
        var action = TimerAction()
        self.armedDeadline = nil
        guard case .active = self.state else { return action }
        var next: NIODeadline?
        // A full scan: the timer fires about once per command timeout, and the queue
        // holds only what is in flight. It makes no assumption on deadline order.
        for index in self.pending.indices {
            guard let promise = self.pending[index].promise else { continue }
            let deadline = self.pending[index].deadline
            if deadline <= now {
                action.expired.append(promise)
                self.pending[index].promise = nil
            } else if next == nil || deadline < next! {
                next = deadline
            }
        }
        // One stall expires every command in flight at once; that is one timeout, not many.
        // Only timeouts at successive deadlines with no reply between them recycle.
        if !action.expired.isEmpty {
            self.consecutiveTimeouts += 1
        }
        if self.consecutiveTimeouts >= self.maxConsecutiveTimeouts {
            action.closeConnection = true
        }
        if let next, !action.closeConnection {
            self.armedDeadline = next
            action.rearm = next
        }
        return action
    }

    /// The connection is gone (closed, errored or recycled): every waiting caller fails.
    /// - Returns: the promises to fail with `error`.
    mutating func close(_ error: SluiceRedisError) -> [Promise] {
        guard case .active = self.state else { return [] }
        self.state = .closed(error)
        self.armedDeadline = nil
        let promises = self.pending.compactMap(\.promise)
        self.pending.removeAll()
        return promises
    }
}
