import ArgumentParser
import Foundation
import NIOHTTP1
import SluiceAdminAPI

/// `sluice keys create|list|move|revoke`.
public struct Keys: AsyncParsableCommand {
    /// The command's name, help and subcommands.
    public static let configuration = CommandConfiguration(
        abstract: "Manage API keys through the admin API (token: SLUICE_ADMIN_TOKEN).",
        subcommands: [Create.self, List.self, Move.self, Revoke.self]
    )

    /// Creates the command (ArgumentParser fills in its arguments).
    public init() {}

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a runtime API key; a generated key is shown only now.")
        @OptionGroup var options: AdminOptions
        @Option(name: .long, help: "The key's plan.") var plan: String
        @Option(name: .long, help: "The key itself (default: a generated one).") var apiKey: String?
        @Option(name: .long, help: "A name for the key.") var name: String?

        func run() async throws {
            try await runAdmin {
                let body = AdminAPI.CreateKeyRequest(plan: self.plan, apiKey: self.apiKey, name: self.name)
                let answer = try await self.options.client().call(.POST, "/admin/v1/keys", body: body)
                if self.options.json { return self.options.printJSON(answer) }
                let key = try answer.decode(AdminAPI.CreatedKey.self)
                print(TextTable.render(["API KEY", "ID", "PLAN", "NAME"], [[key.apiKey, key.id, key.plan, TextTable.cell(key.name)]]))
                print("The API key is shown only now: store it.")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List API keys, config and runtime, by id.")
        @OptionGroup var options: AdminOptions
        @Option(name: .long, help: "Only keys of this plan.") var plan: String?
        @Option(name: .long, help: "Keys per page (1-1000).") var limit: Int = 100
        @Option(name: .long, help: "Start after this key id (a previous page's next cursor).") var cursor: String?
        @Flag(name: .long, help: "Follow every page.") var all = false

        func run() async throws {
            try await runAdmin {
                let client = try self.options.client()
                var cursor = self.cursor
                var rows: [[String]] = []
                var pages: [Any] = []
                repeat {
                    var query = "?limit=\(self.limit)"
                    if let plan = self.plan { query += "&plan=" + escaped(plan) }
                    if let cursor { query += "&cursor=" + escaped(cursor) }
                    let answer = try await client.call(.GET, "/admin/v1/keys" + query)
                    let page = try answer.decode(AdminAPI.KeyPage.self)
                    pages.append(answer.json ?? [:])
                    for key in page.keys {
                        rows.append([key.id, key.plan, key.source.rawValue, TextTable.cell(key.name), TextTable.cell(key.created)])
                    }
                    cursor = page.nextCursor
                } while self.all && cursor != nil
                if self.options.json {
                    let value: Any = pages.count == 1 ? pages[0] : pages
                    let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                    return
                }
                print(TextTable.render(["ID", "PLAN", "SOURCE", "NAME", "CREATED"], rows))
                if let cursor { print("more: --cursor \(cursor)") }
            }
        }
    }

    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a runtime key to another plan.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The key id.") var id: String
        @Option(name: .long, help: "The new plan.") var plan: String

        func run() async throws {
            try await runAdmin {
                let answer = try await self.options.client().call(
                    .PUT, "/admin/v1/keys/" + escaped(self.id), body: AdminAPI.MoveKeyRequest(plan: self.plan)
                )
                if self.options.json { return self.options.printJSON(answer) }
                print("moved \(self.id) to plan \(try answer.decode(AdminAPI.KeyRecord.self).plan)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a runtime key.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The key id.") var id: String

        func run() async throws {
            try await runAdmin {
                _ = try await self.options.client().call(.DELETE, "/admin/v1/keys/" + escaped(self.id))
                if self.options.json { return print(#"{"id":"\#(self.id)","revoked":true}"#) }
                print("revoked \(self.id)")
            }
        }
    }
}
