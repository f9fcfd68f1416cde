import NIOCore
import Testing

@testable import SluiceRedis

@Suite("Connection state machine")
struct RedisConnectionStateMachineTests {
    typealias Machine = RedisConnectionStateMachine<Int>
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("replies complete callers in FIFO order; the timer is armed once")
    func fifo() {
        var m = Machine(maxPending: 10, maxConsecutiveTimeouts: 3)
        guard case .write(armTimer: let first) = m.send(1, deadline: self.t0) else { Issue.record("write"); return }
        #expect(first == self.t0)
        guard case .write(armTimer: nil) = m.send(2, deadline: self.t0 + .milliseconds(1)) else { Issue.record("write"); return }
        guard case .succeed(1) = m.receive() else { Issue.record("1 first"); return }
        guard case .succeed(2) = m.receive() else { Issue.record("2 second"); return }
        guard case .close = m.receive() else { Issue.record("a reply with nothing pending closes"); return }
    }

    @Test("a command with an earlier deadline than the armed one re-arms the timer")
    func earlierDeadlineRearms() {
        var m = Machine(maxPending: 10, maxConsecutiveTimeouts: 3)
        // A handshake command with a long deadline, then an ordinary one.
        guard case .write(armTimer: self.t0 + .seconds(2)) = m.send(1, deadline: self.t0 + .seconds(2)) else {
            Issue.record("arm at the handshake deadline")
            return
        }
        guard case .write(armTimer: self.t0 + .milliseconds(100)) = m.send(2, deadline: self.t0 + .milliseconds(100)) else {
            Issue.record("re-arm at the earlier deadline")
            return
        }
        guard case .write(armTimer: nil) = m.send(3, deadline: self.t0 + .milliseconds(200)) else {
            Issue.record("a later deadline needs no new timer")
            return
        }
        let fired = m.timerFired(now: self.t0 + .milliseconds(100))
        #expect(fired.expired == [2])
        #expect(fired.rearm == self.t0 + .milliseconds(200))
    }

    @Test("a timed-out caller fails at its deadline; its late reply is dropped, not given to the next caller")
    func timeoutThenLateReply() {
        var m = Machine(maxPending: 10, maxConsecutiveTimeouts: 3)
        _ = m.send(1, deadline: self.t0)
        _ = m.send(2, deadline: self.t0 + .milliseconds(50))
        let fired = m.timerFired(now: self.t0)
        #expect(fired.expired == [1])
        #expect(fired.rearm == self.t0 + .milliseconds(50))
        #expect(!fired.closeConnection)
        guard case .discard = m.receive() else { Issue.record("late reply of 1 is dropped"); return }
        guard case .succeed(2) = m.receive() else { Issue.record("2 gets its own reply"); return }
        #expect(m.pendingCount == 0)
    }

    @Test("one stall expiring many commands is one timeout; timeouts at successive deadlines recycle")
    func recycle() {
        var m = Machine(maxPending: 10, maxConsecutiveTimeouts: 3)
        // Five commands caught by one stall: one timeout, not five.
        for i in 1...5 { _ = m.send(i, deadline: self.t0) }
        let first = m.timerFired(now: self.t0)
        #expect(first.expired == [1, 2, 3, 4, 5] && !first.closeConnection)
        _ = m.send(6, deadline: self.t0 + .milliseconds(100))
        #expect(!m.timerFired(now: self.t0 + .milliseconds(100)).closeConnection)
        _ = m.send(7, deadline: self.t0 + .milliseconds(200))
        let third = m.timerFired(now: self.t0 + .milliseconds(200))
        #expect(third.expired == [7] && third.closeConnection)
    }

    @Test("a reply resets the consecutive-timeout count")
    func replyResets() {
        var m = Machine(maxPending: 10, maxConsecutiveTimeouts: 2)
        _ = m.send(1, deadline: self.t0)
        _ = m.timerFired(now: self.t0)
        _ = m.receive()
        _ = m.send(2, deadline: self.t0 + .seconds(1))
        #expect(!m.timerFired(now: self.t0 + .seconds(1)).closeConnection)
        _ = m.send(3, deadline: self.t0 + .seconds(2))
        #expect(m.timerFired(now: self.t0 + .seconds(2)).closeConnection)
    }

    @Test("too many pending commands fail at once, unsent")
    func bounded() {
        var m = Machine(maxPending: 2, maxConsecutiveTimeouts: 3)
        _ = m.send(1, deadline: self.t0)
        _ = m.send(2, deadline: self.t0)
        guard case .fail(let error) = m.send(3, deadline: self.t0) else { Issue.record("third must fail"); return }
        #expect(error.code == .tooManyPending)
    }

    @Test("close fails every waiting caller once; later sends fail")
    func close() {
        var m = Machine(maxPending: 10, maxConsecutiveTimeouts: 3)
        _ = m.send(1, deadline: self.t0)
        _ = m.send(2, deadline: self.t0)
        _ = m.timerFired(now: self.t0 - .milliseconds(1))
        #expect(m.close(.connectionClosed("x")) == [1, 2])
        #expect(m.close(.connectionClosed("x")) == [])
        guard case .fail(let error) = m.send(3, deadline: self.t0) else { Issue.record("closed"); return }
        #expect(error.code == .connectionClosed)
    }
}
