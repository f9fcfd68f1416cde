import ArgumentParser
import Foundation
import SluiceCore

/// `sluice check-config PATH`: exit 0 on a valid file, else print every problem and exit 1.
public struct CheckConfig: ParsableCommand {
    /// The command's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a config file (with SLUICE_* environment variables applied)."
    )

    @Argument(help: "The YAML config file.")
    var path: String

    /// Creates the command (ArgumentParser fills in its arguments).
    public init() {}

    /// Runs the command.
    public func run() throws {
        do {
            let config = try ConfigLoader.load(path: self.path)
            print("\(self.path): ok (\(config.rules.plans.count) plans, \(config.rules.keyCount) API keys)")
            for warning in config.warnings {
                print("warning: \(warning)")
            }
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
    }
}
