import ArgumentParser
import Foundation
import NIOHTTP1

/// Options every admin command takes.
struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: "The admin API (default: SLUICE_ADMIN_URL, else http://127.0.0.1:9090).")
    var adminURL: String?

    @Flag(name: .long, help: "Print the API's JSON instead of a table.")
    var json = false

    /// The client, with the token from SLUICE_ADMIN_TOKEN.
    func client() throws -> AdminClient {
        let environment = ProcessInfo.processInfo.environment
        let url = self.adminURL ?? environment["SLUICE_ADMIN_URL"] ?? "http://127.0.0.1:9090"
        return try AdminClient(url: url, token: environment["SLUICE_ADMIN_TOKEN"])
    }

    /// Prints the JSON body as the API sent it, pretty.
    func printJSON(_ answer: AdminClient.Answer) {
        if let json = answer.json, let data = try? JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]) {
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(decoding: answer.body, as: UTF8.self))
        }
    }
}

/// Runs an admin command body, turning failures into a message on stderr and exit 1.
func runAdmin(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as AdminClient.Failure {
        FileHandle.standardError.write(Data(("error: " + failure.description + "\n").utf8))
        throw ExitCode(1)
    }
}

/// The key an inspecting command is about: an API key, or with `--id` its key id.
struct KeyTarget: ParsableArguments {
    @Argument(help: "The API key (or, with --id, its key id).") var key: String
    @Flag(name: .long, help: "KEY is a key id.") var id = false

    /// The key id: KEY as is with `--id`, else looked up through the admin API.
    func keyID(client: AdminClient) async throws -> String {
        if self.id { return self.key }
        let answer = try await client.call(.POST, "/admin/v1/keys/lookup", body: ["api_key": self.key])
        guard answer.object["known"] as? Bool == true, let id = answer.object["id"] as? String else {
            throw AdminClient.Failure(description: "unknown_key: no such API key")
        }
        return id
    }
}

/// Percent-encodes a path segment or query value.
func escaped(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
}

/// `sluice keys create|list|move|revoke`.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API keys through the admin API (token: SLUICE_ADMIN_TOKEN).",
        subcommands: [Create.self, List.self, Move.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a runtime API key; a generated key is shown only now.")
        @OptionGroup var options: AdminOptions
        @Option(name: .long, help: "The key's plan.") var plan: String
        @Option(name: .long, help: "The key itself (default: a generated one).") var apiKey: String?
        @Option(name: .long, help: "A name for the key.") var name: String?

        func run() async throws {
            try await runAdmin {
                var body: [String: Any] = ["plan": self.plan]
                if let apiKey = self.apiKey { body["api_key"] = apiKey }
                if let name = self.name { body["name"] = name }
                let answer = try await self.options.client().call(.POST, "/admin/v1/keys", body: body)
                if self.options.json { return self.options.printJSON(answer) }
                let o = answer.object
                print(TextTable.render(["API KEY", "ID", "PLAN", "NAME"], [[o["api_key"], o["id"], o["plan"], o["name"]].map(TextTable.cell)]))
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
                    pages.append(answer.json ?? [:])
                    for key in answer.object["keys"] as? [[String: Any]] ?? [] {
                        rows.append([key["id"], key["plan"], key["source"], key["name"], key["created"]].map(TextTable.cell))
                    }
                    cursor = answer.object["next_cursor"] as? String
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
                let answer = try await self.options.client().call(.PUT, "/admin/v1/keys/" + escaped(self.id), body: ["plan": self.plan])
                if self.options.json { return self.options.printJSON(answer) }
                print("moved \(self.id) to plan \(TextTable.cell(answer.object["plan"]))")
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

/// `sluice inspect KEY`: the live state of every limit of a key.
struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the live state of every limit of a key, consuming nothing.")
    @OptionGroup var options: AdminOptions
    @OptionGroup var target: KeyTarget

    func run() async throws {
        try await runAdmin {
            let client = try self.options.client()
            let id = try await self.target.keyID(client: client)
            let answer = try await client.call(.GET, "/admin/v1/keys/" + escaped(id) + "/state")
            if self.options.json { return self.options.printJSON(answer) }
            print("key \(id)  plan \(TextTable.cell(answer.object["plan"]))  (\(TextTable.cell(answer.object["source"])))")
            var rows: [[String]] = []
            for limit in answer.object["limits"] as? [[String: Any]] ?? [] {
                let detail: String
                if limit["kind"] as? String == "quota" {
                    detail = "used \(TextTable.cell(limit["used"])), window \(TextTable.cell(limit["window_start"])) - \(TextTable.cell(limit["window_end"]))"
                        + ((limit["extension"] as? Int ?? 0) != 0 ? ", extension \(TextTable.cell(limit["extension"]))" : "")
                } else {
                    detail = "tokens \(TextTable.cell(limit["tokens"])), rate \(TextTable.cell(limit["rate"]))/s"
                }
                rows.append([limit["name"], limit["kind"], limit["limit"], limit["remaining"], limit["reset_after_ms"]].map(TextTable.cell) + [detail])
            }
            print(TextTable.render(["LIMIT", "KIND", "LIMIT", "REMAINING", "RESET MS", "DETAIL"], rows))
        }
    }
}

/// `sluice usage KEY`: per-day quota usage.
struct Usage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a key's quota units used and remaining per day, most recent first.")
    @OptionGroup var options: AdminOptions
    @OptionGroup var target: KeyTarget
    @Option(name: .long, help: "Days to show (1-366).") var days: Int = 7

    func run() async throws {
        try await runAdmin {
            let client = try self.options.client()
            let id = try await self.target.keyID(client: client)
            let answer = try await client.call(.GET, "/admin/v1/keys/" + escaped(id) + "/usage?days=\(self.days)")
            if self.options.json { return self.options.printJSON(answer) }
            let quota = answer.object["quota"] as? [String: Any] ?? [:]
            print("key \(id)  plan \(TextTable.cell(answer.object["plan"]))  quota \(TextTable.cell(quota["limit"])) a \(TextTable.cell(quota["period"]))")
            let rows = (answer.object["days"] as? [[String: Any]] ?? []).map { day in
                [day["date"], day["used"], day["remaining"]].map(TextTable.cell)
            }
            print(TextTable.render(["DAY", "USED", "REMAINING"], rows))
        }
    }
}
