import ArgumentParser

/// The `sluice` command: serve decisions, or check a config file.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Sluice: a centralized rate-limit decision service backed by Redis.",
        subcommands: [Serve.self, CheckConfig.self, HealthCommand.self, Keys.self, Inspect.self, Usage.self, ImportAWSCommand.self],
        defaultSubcommand: Serve.self
    )
}
