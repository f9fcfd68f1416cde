import ArgumentParser
import NIOHTTP1
import SluiceAdminAPI

/// `sluice usage KEY`: per-day quota usage.
public struct Usage: AsyncParsableCommand {
    /// The command's name and help.
    public static let configuration = CommandConfiguration(abstract: "Show a key's quota units used and remaining per day, most recent first.")
    @OptionGroup var options: AdminOptions
    @OptionGroup var target: KeyTarget
    @Option(name: .long, help: "Days to show (1-366).") var days: Int = 7

    /// Creates the command (ArgumentParser fills in its arguments).
    public init() {}

    /// Runs the command.
    public func run() async throws {
        try await runAdmin {
            let client = try self.options.client()
            let id = try await self.target.keyID(client: client)
            let answer = try await client.call(.GET, "/admin/v1/keys/" + escaped(id) + "/usage?days=\(self.days)")
            if self.options.json { return self.options.printJSON(answer) }
            let report = try answer.decode(AdminAPI.UsageReport.self)
            print("key \(id)  plan \(report.plan)  quota \(report.quota.limit) a \(report.quota.period.rawValue)")
            let rows = report.days.map { day in
                [day.date, TextTable.cell(day.used), TextTable.cell(day.remaining)]
            }
            print(TextTable.render(["DAY", "USED", "REMAINING"], rows))
        }
    }
}
