/// Polls `condition` every `interval` until it holds or `limit` has passed.
/// - Returns: how long it took to hold, or nil when it never did within `limit`.
public func poll(
    _ limit: Duration, every interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
) async throws -> Duration? {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < limit {
        if try await condition() { return ContinuousClock.now - start }
        try await Task.sleep(for: interval)
    }
    // One last look: a slow check may have used up the limit just before the condition came true.
    if try await condition() { return ContinuousClock.now - start }
    return nil
}
