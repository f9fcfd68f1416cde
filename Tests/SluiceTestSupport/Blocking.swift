import Dispatch
import Foundation

/// Runs blocking work (a subprocess, a socket) on a Dispatch thread, so that it never
/// holds one of the few threads of Swift's cooperative pool that the servers under test need.
public func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try work() })
        }
    }
}

/// Short-lived programs run to completion.
public enum Subprocess {
    /// A write to a child that already exited raises SIGPIPE, which would end the whole test
    /// process; ignored, the write fails instead. Done once.
    private static let brokenPipesIgnored: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
    private static func ignoreBrokenPipes() { _ = Self.brokenPipesIgnored }

    /// Runs a program and returns its exit status and its output (stdout and stderr together).
    /// - Parameters:
    ///   - environment: variables added to this process's environment.
    ///   - input: written to the program's stdin, which is then closed.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String] = [:], input: String? = nil
    ) throws -> (status: Int32, output: String) {
        Self.ignoreBrokenPipes()
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let stdin = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try process.run()
        if let input {
            // Written from another thread, so a large input cannot deadlock against a full output pipe.
            let writer = stdin.fileHandleForWriting
            DispatchQueue.global().async {
                // A child that exits without reading all of it fails its own test, not the run.
                try? writer.write(contentsOf: Data(input.utf8))
                try? writer.close()
            }
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
