import ArgumentParser
import Foundation
import SluiceCore

/// `sluice import-aws`: AWS API Gateway usage plans and API keys, as the aws CLI exports
/// them, become a Sluice config file; every AWS setting without a Sluice counterpart is
/// listed on standard error (README, "Coming from AWS API Gateway usage plans").
public struct ImportAWSCommand: ParsableCommand {
    /// The command's name and help.
    public static let configuration = CommandConfiguration(
        commandName: "import-aws",
        abstract: "Write a Sluice config from AWS API Gateway usage plans and API keys exported with the aws CLI.",
        discussion: """
            Export with the aws CLI (JSON output), then import:

              aws apigateway get-usage-plans > plans.json
              aws apigateway get-usage-plan-keys --usage-plan-id ID > keys-ID.json
                                                            (once per plan)
              aws apigateway get-api-keys --include-values > api-keys.json
              aws apigateway get-rest-apis > rest-apis.json        (optional)
              aws apigateway get-stages --rest-api-id API > stages-API.json
                                                  (optional, once per API)
              sluice import-aws --usage-plans plans.json \\
                  --usage-plan-keys ID=keys-ID.json --api-keys api-keys.json \\
                  --rest-apis rest-apis.json --stages API=stages-API.json \\
                  --output sluice.yaml

            One input may be - (standard input). Keys are written as
            key_sha256 (the hex SHA-256 of the value) unless --include-values.
            Every AWS setting not imported as it was is listed on standard
            error, one per line; the config written passes check-config.
            Exit 0 when the config was written, 1 when an input cannot be
            read or nothing valid could be built.
            """
    )

    @Option(name: .long, help: ArgumentHelp("Output of `aws apigateway get-usage-plans`.", valueName: "FILE"))
    var usagePlans: String

    @Option(name: .long, help: ArgumentHelp(
        "Output of `aws apigateway get-usage-plan-keys --usage-plan-id PLAN_ID`, for the plan with that id (or unique name); once per plan.",
        valueName: "PLAN_ID=FILE"))
    var usagePlanKeys: [String] = []

    @Option(name: .long, help: ArgumentHelp("Output of `aws apigateway get-api-keys --include-values`.", valueName: "FILE"))
    var apiKeys: String

    @Option(name: .long, help: ArgumentHelp("Output of `aws apigateway get-rest-apis`: stages are then named <API name>/<stage> instead of <API id>/<stage>.", valueName: "FILE"))
    var restApis: String?

    @Option(name: .long, help: ArgumentHelp(
        "Output of `aws apigateway get-stages --rest-api-id API_ID`: stage-wide throttles and stages the plans name but the API lacks are reported; once per API.",
        valueName: "API_ID=FILE"))
    var stages: [String] = []

    @Flag(name: .long, help: "Write each key's value (key:) instead of its SHA-256 (key_sha256:).")
    var includeValues = false

    @Option(name: [.short, .long], help: ArgumentHelp("Where to write the config (default: standard output).", valueName: "FILE"))
    var output: String?

    /// Creates the command (ArgumentParser fills in its arguments).
    public init() {}

    /// Checks the arguments together.
    public func validate() throws {
        let inputs = [self.usagePlans, self.apiKeys] + [self.restApis].compactMap { $0 }
            + (try self.pairs(self.usagePlanKeys, flag: "--usage-plan-keys", name: "PLAN_ID")).map(\.file)
            + (try self.pairs(self.stages, flag: "--stages", name: "API_ID")).map(\.file)
        if inputs.filter({ $0 == "-" }).count > 1 {
            throw ValidationError("standard input (-) can feed only one input")
        }
    }

    /// Splits `NAME=FILE` arguments at the first `=`.
    private func pairs(_ arguments: [String], flag: String, name: String) throws -> [(key: String, file: String)] {
        try arguments.map { argument in
            guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex,
                argument.index(after: equals) != argument.endIndex
            else {
                throw ValidationError("\(flag) takes \(name)=FILE, not \"\(argument)\"")
            }
            return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
        }
    }

    /// Runs the command.
    public func run() throws {
        let export: AWSExport
        let result: AWSImportResult
        do {
            export = AWSExport(
                usagePlans: try Self.read(self.usagePlans),
                usagePlanKeys: try self.pairs(self.usagePlanKeys, flag: "--usage-plan-keys", name: "PLAN_ID").map {
                    AWSExport.PlanKeys(plan: $0.key, document: try Self.read($0.file))
                },
                apiKeys: try Self.read(self.apiKeys),
                restAPIs: try self.restApis.map { try Self.read($0) },
                stages: try self.pairs(self.stages, flag: "--stages", name: "API_ID").map {
                    AWSExport.Stages(apiID: $0.key, document: try Self.read($0.file))
                })
            result = try AWSImport.convert(export, includeValues: self.includeValues)
        } catch let error as AWSImportError {
            throw Self.failure("error: \(error)")
        }
        for note in result.notes {
            Self.printError("import-aws: \(note)")
        }
        // Whatever is written must pass check-config; the environment does not take part.
        let target = self.output ?? "-"
        do {
            _ = try ConfigLoader.parse(yaml: result.yaml, source: target == "-" ? "<output>" : target, environment: [:])
        } catch {
            throw Self.failure("error: the config import-aws built does not validate, so it was not written:\n\(error.description)")
        }
        if target == "-" {
            FileHandle.standardOutput.write(Data(result.yaml.utf8))
        } else {
            do {
                try result.yaml.write(toFile: target, atomically: true, encoding: .utf8)
            } catch {
                throw Self.failure("error: cannot write \(target): \(error.localizedDescription)")
            }
        }
        Self.printError("import-aws: \(result.planCount) plan(s), \(result.keyCount) API key(s) written to \(target == "-" ? "standard output" : target); \(result.notes.count) AWS setting(s) not imported as they were\(result.notes.isEmpty ? "" : " (listed above)")")
    }

    /// Reads a file, or standard input for `-`.
    private static func read(_ path: String) throws -> AWSExport.Document {
        if path == "-" {
            return AWSExport.Document(source: "<stdin>", data: FileHandle.standardInput.readDataToEndOfFile())
        }
        do {
            return AWSExport.Document(source: path, data: try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw Self.failure("error: cannot read \(path): \(error.localizedDescription)")
        }
    }

    private static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Prints `message` on stderr.
    /// - Returns: exit status 1, to throw.
    private static func failure(_ message: String) -> ExitCode {
        self.printError(message)
        return ExitCode(1)
    }
}
