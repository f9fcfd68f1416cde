import SluiceTestSupport
import Testing

/// Starts one Redis Cluster for the whole suite and stops it (every node by PID, temp dirs
/// removed) after its last test. Tests read it from ``group``.
struct ClusterGroupScope: SuiteTrait, TestScoping {
    @TaskLocal static var group: RedisClusterGroup?

    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let group = try await RedisClusterGroup.start()
        do {
            try await Self.$group.withValue(group) { try await function() }
        } catch {
            try await offCooperativePool { group.stop() }
            throw error
        }
        try await offCooperativePool { group.stop() }
    }

    /// The suite's cluster.
    /// - Throws: when the suite lacks the trait.
    static func current() throws -> RedisClusterGroup {
        try #require(Self.group, "the suite's Redis Cluster is missing (add ClusterGroupScope() to the suite)")
    }
}
