import ArgumentParser
import Foundation
import NIOHTTP1
import SluiceAdminAPI

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
        let answer = try await client.call(.POST, "/admin/v1/keys/lookup", body: AdminAPI.LookupRequest(apiKey: self.key))
        guard let lookup = try? answer.decode(AdminAPI.KeyLookup.self), lookup.known else {
            throw AdminClient.Failure(description: "unknown_key: no such API key")
        }
        return lookup.id
    }
}

/// Percent-encodes a path segment or query value.
func escaped(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
}
