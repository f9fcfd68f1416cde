import Synchronization

/// Denials remembered on this instance, so that a caller hammering a limit it is over
/// is answered from memory until the wait it was given has passed, with no Redis call.
///
/// It cannot over-admit: it only ever denies, and only while the limit could not have
/// admitted anyway (a bucket cannot refill, a quota window cannot end, before `retry_after`).
/// A denial of cost c answers later requests of cost ≥ c that need the same limits.
/// Peeks, shadow plans and never-passable (-1) denials are not remembered.
///
/// Bounded: two generations of at most `capacity / 2` entries each (an approximate LRU:
/// a hit moves an entry to the young generation; when the young one is full, the old
/// one is dropped). Thread-safe.
public final class OverLimitCache: Sendable {
    struct Key: Hashable {
        let keyID: String
        let limit: String
    }

    struct Entry {
        let cost: Int
        let until: ContinuousClock.Instant
        let deniedAt: ContinuousClock.Instant
        let decision: Decision
        /// The limits as they were configured: a reload that changes them makes the entry moot.
        let limits: [Limit]
    }

    struct Generations {
        var young: [Key: Entry] = [:]
        var old: [Key: Entry] = [:]
        var hits = 0
    }

    private let state: Mutex<Generations>
    private let half: Int

    /// Creates a cache holding at most `capacity` denials.
    public init(capacity: Int) {
        self.half = max(1, capacity / 2)
        self.state = Mutex(Generations())
    }

    /// Denials answered from memory so far.
    public var hits: Int { self.state.withLock { $0.hits } }
    /// Entries held now.
    public var count: Int { self.state.withLock { $0.young.count + $0.old.count } }

    /// The remembered denial for a request, with its waits counted down; nil to ask Redis.
    /// - Parameters:
    ///   - keyID: the API key's id.
    ///   - limits: the limits the request needs, in order.
    ///   - cost: the request's cost (peeks are never answered from memory).
    ///   - now: the current instant.
    public func lookup(keyID: String, limits: [Limit], cost: Int, now: ContinuousClock.Instant) -> Decision? {
        guard cost > 0 else { return nil }
        return self.state.withLock { state -> Decision? in
            for limit in limits {
                let key = Key(keyID: keyID, limit: limit.keySuffix)
                guard let entry = state.young[key] ?? state.old[key] else { continue }
                guard now < entry.until else {
                    state.young[key] = nil
                    state.old[key] = nil
                    continue
                }
                // Same limits, same configuration; a cost no limit's capacity rules out (so that
                // a never-passable cost still gets Redis's -1 answer).
                guard cost >= entry.cost, entry.limits == limits, limits.allSatisfy({ cost <= $0.capacity }) else { continue }
                if state.young[key] == nil {
                    state.old[key] = nil
                    Self.insert(key, entry, into: &state, half: self.half)
                }
                state.hits += 1
                return Self.countedDown(entry, now: now)
            }
            return nil
        }
    }

    /// Remembers a denial, if it is one worth remembering.
    /// - Parameters:
    ///   - decision: Redis's answer for the request.
    ///   - keyID: the API key's id.
    ///   - limits: the limits the request needed.
    ///   - cost: the request's cost.
    ///   - now: when the request was sent to Redis (the wait counts from when the script ran,
    ///     which is no earlier than that).
    public func remember(_ decision: Decision, keyID: String, limits: [Limit], cost: Int, now: ContinuousClock.Instant) {
        guard cost > 0, !decision.allowed, !decision.degraded, decision.retryAfterMs > 0,
            let denying = limits.first(where: { $0.name == decision.deniedBy })
        else { return }
        let entry = Entry(
            cost: cost, until: now + .milliseconds(decision.retryAfterMs), deniedAt: now, decision: decision, limits: limits
        )
        let key = Key(keyID: keyID, limit: denying.keySuffix)
        self.state.withLock { state in
            state.old[key] = nil
            Self.insert(key, entry, into: &state, half: self.half)
        }
    }

    /// Forgets every denial of one API key (after an admin reset, a quota change, a move).
    public func forget(keyID: String) {
        self.state.withLock { state in
            state.young = state.young.filter { $0.key.keyID != keyID }
            state.old = state.old.filter { $0.key.keyID != keyID }
        }
    }

    /// Forgets everything (after a config reload).
    public func removeAll() {
        self.state.withLock { state in
            state.young = [:]
            state.old = [:]
        }
    }

    private static func insert(_ key: Key, _ entry: Entry, into state: inout Generations, half: Int) {
        if state.young.count >= half {
            state.old = state.young
            state.young = [:]
            state.young.reserveCapacity(half)
        }
        state.young[key] = entry
    }

    private static func countedDown(_ entry: Entry, now: ContinuousClock.Instant) -> Decision {
        let elapsed = now - entry.deniedAt
        let elapsedMs = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        let d = entry.decision
        func down(_ ms: Int) -> Int { ms < 0 ? ms : max(0, ms - elapsedMs) }
        let limits = d.limits.map {
            LimitState(
                name: $0.name, limit: $0.limit, remaining: $0.remaining, resetAfterMs: down($0.resetAfterMs),
                retryAfterMs: down($0.retryAfterMs), windowSeconds: $0.windowSeconds, unit: $0.unit,
                policyQuota: $0.policyQuota, counts: $0.counts
            )
        }
        var decision = Decision(
            allowed: false, plan: d.plan, limit: d.limit, remaining: d.remaining, resetAfterMs: down(d.resetAfterMs),
            retryAfterMs: max(1, down(d.retryAfterMs)), deniedBy: d.deniedBy, reason: d.reason, limits: limits
        )
        // Redis's clock at the denial, moved on by the time since (for resets given as times).
        decision.nowMs = d.nowMs.map { $0 + Int64(elapsedMs) }
        return decision
    }
}
