import ArgumentParser
import Foundation
import NIOCore

/// `sluice health [--host H] [--port N] [--timeout-ms T]`: asks a running instance's
/// `GET /healthz` and exits 0 on 200, 1 otherwise (with one line saying why on stderr).
///
/// It is the container image's health check, which has no curl: the address comes from the
/// same `SLUICE_HOST` / `SLUICE_PORT` the image gives `serve`, and a wildcard listen address
/// (`0.0.0.0`, `::`) means the loopback of the same family.
public struct HealthCommand: AsyncParsableCommand {
    /// The command's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Exit 0 when GET /healthz of a running instance answers 200, else 1."
    )

    @Option(name: .long, help: "Address of the instance (default: SLUICE_HOST, else 127.0.0.1; 0.0.0.0 and :: mean loopback).")
    var host: String?

    @Option(name: .long, help: "Decision port of the instance (default: SLUICE_PORT, else 8080).")
    var port: Int?

    @Option(name: .long, help: "Give up after this many milliseconds (connect and answer together).")
    var timeoutMs: Int = 2000

    /// Creates the command (ArgumentParser fills in its arguments).
    public init() {}

    /// Checks the arguments together.
    public func validate() throws {
        if let port = self.port, !(1...65535).contains(port) {
            throw ValidationError("--port must be 1-65535, not \(port)")
        }
        guard (1...600_000).contains(self.timeoutMs) else {
            throw ValidationError("--timeout-ms must be 1-600000, not \(self.timeoutMs)")
        }
    }

    /// Runs the command.
    public func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let target: HealthProbe.Target
        do {
            target = try HealthProbe.Target(host: self.host, port: self.port, environment: environment)
        } catch {
            throw Self.failure("\(error)")
        }
        let probe = HealthProbe(target: target, timeout: .milliseconds(Int64(self.timeoutMs)))
        let status: Int
        do {
            status = try await probe.run()
        } catch {
            throw Self.failure("unhealthy: GET \(target)/healthz: \(error)")
        }
        guard status == 200 else {
            throw Self.failure("unhealthy: GET \(target)/healthz answered HTTP \(status)")
        }
    }

    /// Prints `reason` on stderr.
    /// - Returns: exit status 1, to throw (ArgumentParser prints nothing more for it).
    private static func failure(_ reason: String) -> ExitCode {
        FileHandle.standardError.write(Data((reason + "\n").utf8))
        return ExitCode(1)
    }
}
