import ArgumentParser
import NIOHTTP1
import SluiceAdminAPI

/// `sluice inspect KEY`: the live state of every limit of a key, and its reservations.
public struct Inspect: AsyncParsableCommand {
    /// The command's name and help.
    public static let configuration = CommandConfiguration(
        abstract: "Show the live state of every limit of a key, and its open reservations and leases, consuming nothing."
    )
    @OptionGroup var options: AdminOptions
    @OptionGroup var target: KeyTarget

    /// Creates the command (ArgumentParser fills in its arguments).
    public init() {}

    /// Runs the command.
    public func run() async throws {
        try await runAdmin {
            let client = try self.options.client()
            let id = try await self.target.keyID(client: client)
            let answer = try await client.call(.GET, "/admin/v1/keys/" + escaped(id) + "/state")
            if self.options.json { return self.options.printJSON(answer) }
            let state = try answer.decode(AdminAPI.KeyState.self)
            print("key \(id)  plan \(state.plan)  (\(state.source.rawValue))")
            var rows: [[String]] = []
            for limit in state.limits {
                let detail: String
                switch limit.detail {
                case .quota(let quota):
                    detail = "used \(quota.used), window \(quota.windowStart) - \(quota.windowEnd)"
                        + (quota.extension != 0 ? ", extension \(quota.extension)" : "")
                case .bucket(let bucket):
                    detail = "tokens \(TextTable.cell(bucket.tokens)), rate \(TextTable.cell(bucket.rate))/s"
                }
                rows.append(
                    [
                        limit.name, limit.kind.rawValue, limit.counts.rawValue, TextTable.cell(limit.limit), TextTable.cell(limit.remaining),
                        TextTable.cell(limit.resetAfterMs), detail,
                    ]
                )
            }
            print(TextTable.render(["LIMIT", "KIND", "COUNTS", "LIMIT", "REMAINING", "RESET MS", "DETAIL"], rows))
            if let reservations = state.reservations {
                let held = reservations.held
                let leases = reservations.leases
                print(
                    "reservations: \(reservations.open) open, holding \(held.requests) requests, \(held.inputTokens) input, "
                        + "\(held.outputTokens) output, \(held.totalTokens) total tokens, \(held.cost) cost"
                )
                print(
                    "leases: \(leases.inUse) in use" + (leases.limit.map { " of \($0)" } ?? "")
                        + (leases.leaseTTLMs.map { ", TTL \($0) ms" } ?? "")
                )
            }
        }
    }
}
