import ArgumentParser
import SluiceCLI

/// The `sluice` command: serve decisions (`serve`, wired here), or the operator commands of
/// `SluiceCLI` (check a config file, probe health, the admin CLI, import from AWS).
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Sluice: a centralized rate-limit decision service backed by Redis.",
        subcommands: [Serve.self, CheckConfig.self, HealthCommand.self, Keys.self, Inspect.self, Usage.self, ImportAWSCommand.self],
        defaultSubcommand: Serve.self
    )
}
