import ArgumentParser
import NIOHTTP1
import SluiceAdminAPI

/// `sluice usage KEY`: per-day usage: quota units, and tokens on plans with named limits.
public struct Usage: AsyncParsableCommand {
    /// The command's name and help.
    public static let configuration = CommandConfiguration(
        abstract: "Show a key's units used per day, most recent first: quota units remaining, tokens and cost when recorded."
    )
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
            print("key \(id)  plan \(report.plan)" + (report.quota.map { "  quota \($0.limit) a \($0.period.rawValue)" } ?? ""))
            // Columns for what the report holds: remaining units with a quota, tokens and cost
            // when the days carry them.
            let hasQuota = report.quota != nil
            let hasTokens = report.days.contains { $0.tokens != nil }
            var header = ["DAY", "USED"]
            if hasQuota { header.append("REMAINING") }
            if hasTokens { header += ["INPUT", "OUTPUT", "CACHED", "TOTAL", "COST"] }
            let rows = report.days.map { day in
                var row = [day.date, TextTable.cell(day.used)]
                if hasQuota { row.append(day.remaining.map(TextTable.cell) ?? "-") }
                if hasTokens {
                    let tokens = day.tokens
                    row += [tokens?.inputTokens, tokens?.outputTokens, tokens?.cachedInputTokens, tokens?.totalTokens, tokens?.cost].map {
                        $0.map(TextTable.cell) ?? "-"
                    }
                }
                return row
            }
            print(TextTable.render(header, rows))
        }
    }
}
