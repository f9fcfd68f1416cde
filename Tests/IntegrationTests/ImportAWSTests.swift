import Foundation
import SluiceTestSupport
import Testing

/// `sluice import-aws` end to end: the real aws CLI builds a REST API, stages, usage plans
/// (throttles, method throttles, quotas with an offset) and keys in moto's server on loopback,
/// exports them as users would, and Sluice, run on the imported config, decides as the AWS
/// plans say (README, "Coming from AWS API Gateway usage plans").
@Suite("import-aws against moto and the aws CLI", .serialized)
struct ImportAWSTests {
    @Test("exported usage plans import into a config that check-config accepts and Sluice enforces as AWS would")
    func exportImportEnforce() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let aws = AWSCLI(moto: moto)

        // A REST API with POST /predict (moto wants an integration before a deployment) and
        // three stages; the plans below cover prod and dev, none covers test.
        let api = try await aws.text("create-rest-api", "--name", "mlApi", "--query", "id")
        let root = try await aws.text("get-resources", "--rest-api-id", api, "--query", "items[?path=='/'].id | [0]")
        let predict = try await aws.text("create-resource", "--rest-api-id", api, "--parent-id", root, "--path-part", "predict", "--query", "id")
        _ = try await aws.run("put-method", "--rest-api-id", api, "--resource-id", predict, "--http-method", "POST",
            "--authorization-type", "NONE", "--api-key-required")
        _ = try await aws.run("put-integration", "--rest-api-id", api, "--resource-id", predict, "--http-method", "POST", "--type", "MOCK")
        let deployment = try await aws.text("create-deployment", "--rest-api-id", api, "--query", "id")
        for stage in ["prod", "dev", "test"] {
            _ = try await aws.run("create-stage", "--rest-api-id", api, "--stage-name", stage, "--deployment-id", deployment)
        }
        // A stage-wide throttle: every caller of prod together, which Sluice has no counterpart for.
        _ = try await aws.run("update-stage", "--rest-api-id", api, "--stage-name", "prod", "--patch-operations",
            "op=replace,path=/*/*/throttling/rateLimit,value=100", "op=replace,path=/*/*/throttling/burstLimit,value=50")

        // Slow rates (a token every 10 s), so that no refill lands between two requests of a check.
        let basic = try await aws.text(
            "create-usage-plan", "--name", "ml-basic", "--description", "basic tier",
            "--throttle", "burstLimit=2,rateLimit=0.1",
            "--quota", "limit=6,offset=2,period=MONTH",
            "--api-stages", #"[{"apiId":"\#(api)","stage":"prod","throttle":{"/predict/POST":{"burstLimit":3,"rateLimit":0.1}}},{"apiId":"\#(api)","stage":"dev"}]"#,
            "--tags", "team=ml", "--query", "id")
        let pro = try await aws.text(
            "create-usage-plan", "--name", "ml-pro", "--throttle", "burstLimit=5,rateLimit=1", "--quota", "limit=100,period=DAY",
            "--api-stages", "apiId=\(api),stage=dev", "--query", "id")
        var keyIDs: [String: String] = [:]
        for (name, enabled) in [("alice", true), ("dan", true), ("carol", true), ("bob", false)] {
            keyIDs[name] = try await aws.text(
                "create-api-key", "--name", name, "--value", "\(name)-key-0123456789abcdef", enabled ? "--enabled" : "--no-enabled",
                "--customer-id", "customer-\(name)", "--query", "id")
        }
        for (plan, key) in [(basic, "alice"), (basic, "dan"), (basic, "bob"), (pro, "carol")] {
            _ = try await aws.run("create-usage-plan-key", "--usage-plan-id", plan, "--key-id", keyIDs[key]!, "--key-type", "API_KEY")
        }

        // Export, as the README says.
        let plans = try await aws.export("plans.json", "get-usage-plans")
        let basicKeys = try await aws.export("keys-basic.json", "get-usage-plan-keys", "--usage-plan-id", basic)
        let proKeys = try await aws.export("keys-pro.json", "get-usage-plan-keys", "--usage-plan-id", pro)
        let apiKeys = try await aws.export("api-keys.json", "get-api-keys", "--include-values")
        let restAPIs = try await aws.export("rest-apis.json", "get-rest-apis")
        let stages = try await aws.export("stages.json", "get-stages", "--rest-api-id", api)

        // Import, the API keys from standard input.
        let output = aws.directory.appendingPathComponent("sluice.yaml")
        let imported = try await offCooperativePool {
            try Subprocess.run(
                try SluiceProcess.binary(),
                ["import-aws", "--usage-plans", plans.path, "--usage-plan-keys", "\(basic)=\(basicKeys.path)",
                 "--usage-plan-keys", "ml-pro=\(proKeys.path)", "--api-keys", "-", "--rest-apis", restAPIs.path,
                 "--stages", "\(api)=\(stages.path)", "--output", output.path],
                input: try String(contentsOf: apiKeys, encoding: .utf8))
        }
        #expect(imported.status == 0, "\(imported.output)")
        let yaml = try String(contentsOf: output, encoding: .utf8)
        let alice = try await KeySHA256.hex("alice-key-0123456789abcdef")
        for line in [
            "  \"ml-basic\":  # AWS usage plan \(basic)\n    throttle: { rate: 0.1, burst: 2 }\n    quota: { limit: 6, period: month, initial_offset: 2 }\n    stages:\n      \"mlApi/dev\": {}\n      \"mlApi/prod\":\n        routes:\n          \"POST /predict\": { rate: 0.1, burst: 3 }\n",
            "  \"ml-pro\":  # AWS usage plan \(pro)\n    throttle: { rate: 1, burst: 5 }\n    quota: { limit: 100, period: day }\n    stages:\n      \"mlApi/dev\": {}\n",
            "  - key_sha256: \"\(alice)\"\n    plan: \"ml-basic\"\n    name: \"alice\"\n",
        ] {
            #expect(yaml.contains(line), "\(line) not in:\n\(yaml)")
        }
        #expect(!yaml.contains("bob"), "a disabled key was imported:\n\(yaml)")
        // What AWS has and Sluice does not is said, never dropped.
        for note in [
            "import-aws: usage plan \"ml-basic\" (\(basic)): description \"basic tier\"",
            "import-aws: usage plan \"ml-basic\" (\(basic)): tags {team: \"ml\"}: not imported",
            "import-aws: stage mlApi/prod: method settings \"*/*\" throttle every caller of the stage together (rate 100, burst 50)",
            "import-aws: API key \"bob\" (\(keyIDs["bob"]!)): disabled in AWS",
            "import-aws: API key \"alice\" (\(keyIDs["alice"]!)): customerId \"customer-alice\": not imported",
            "import-aws: 2 plan(s), 3 API key(s) written to \(output.path)",
        ] {
            #expect(imported.output.contains(note), "\(note) not in:\n\(imported.output)")
        }
        let checked = try await SluiceProcess.runCLI(["check-config", output.path])
        #expect(checked.status == 0, "\(checked.output)")

        // Sluice on the imported file, on its own Redis.
        let redis = try await RedisServer.start()
        let sluice = try SluiceProcess(yaml: "redis: { url: \(redis.url), timeout_ms: 5000 }\n" + yaml)
        try await sluice.waitUntilReady()
        func check(_ key: String, stage: String, route: String? = nil) async throws -> [String: Any] {
            var body = #"{"api_key":"\#(key)-key-0123456789abcdef","stage":"\#(stage)""#
            if let route { body += #","route":"\#(route)""# }
            let response = try await HTTPTestClient.check(port: sluice.port, body + "}")
            #expect(response.status == 200, "\(response.text)")
            return response.json
        }
        func quotaRemaining(_ decision: [String: Any]) -> Int? {
            (decision["limits"] as? [[String: Any]])?.first { $0["name"] as? String == "quota" }?["remaining"] as? Int
        }

        // A stage the key's plan does not cover is refused, and consumes nothing.
        var d = try await check("alice", stage: "mlApi/test", route: "POST /predict")
        #expect(d["allowed"] as? Bool == false && d["denied_by"] as? String == "stage" && d["reason"] as? String == "stage_not_in_plan", "\(d)")
        #expect(d["retry_after_ms"] as? Int == -1)

        // The method throttle of prod replaces the plan throttle there: its burst of 3, not 2.
        // The quota's initial offset leaves 6 - 2 = 4 in this first window.
        for expectedRemaining in [3, 2, 1] {
            d = try await check("alice", stage: "mlApi/prod", route: "POST /predict")
            #expect(d["allowed"] as? Bool == true && d["plan"] as? String == "ml-basic", "\(d)")
            #expect(quotaRemaining(d) == expectedRemaining, "\(d)")
        }
        d = try await check("alice", stage: "mlApi/prod", route: "POST /predict")
        #expect(d["allowed"] as? Bool == false && d["denied_by"] as? String == "route:mlApi/prod:POST /predict", "\(d)")
        #expect(quotaRemaining(d) == 1, "a denied request consumed quota: \(d)")
        // dev has no method throttle: the plan throttle (2 tokens) admits one more, then the
        // quota, offset included, is spent.
        d = try await check("alice", stage: "mlApi/dev", route: "POST /predict")
        #expect(d["allowed"] as? Bool == true && quotaRemaining(d) == 0, "\(d)")
        d = try await check("alice", stage: "mlApi/dev", route: "POST /predict")
        #expect(d["allowed"] as? Bool == false && d["denied_by"] as? String == "quota", "\(d)")

        // The plan throttle: burst 2 at 0.1/s, shared by every stage; prod's POST /predict has
        // its own bucket, per stage.
        for _ in 0..<2 {
            d = try await check("dan", stage: "mlApi/dev", route: "GET /models")
            #expect(d["allowed"] as? Bool == true, "\(d)")
        }
        d = try await check("dan", stage: "mlApi/prod", route: "GET /models")
        #expect(d["allowed"] as? Bool == false && d["denied_by"] as? String == "throttle", "\(d)")
        #expect((d["retry_after_ms"] as? Int ?? 0) > 5000, "\(d)")
        d = try await check("dan", stage: "mlApi/dev", route: "POST /predict")
        #expect(d["allowed"] as? Bool == false && d["denied_by"] as? String == "throttle", "\(d)")
        d = try await check("dan", stage: "mlApi/prod", route: "POST /predict")
        #expect(d["allowed"] as? Bool == true && d["denied_by"] is NSNull, "\(d)")

        // ml-pro covers dev only; a disabled AWS key is unknown to Sluice.
        d = try await check("carol", stage: "mlApi/prod")
        #expect(d["allowed"] as? Bool == false && d["denied_by"] as? String == "stage", "\(d)")
        d = try await check("carol", stage: "mlApi/dev")
        #expect(d["allowed"] as? Bool == true && d["plan"] as? String == "ml-pro", "\(d)")
        d = try await check("bob", stage: "mlApi/prod")
        #expect(d["denied_by"] as? String == "unknown_api_key", "\(d)")

        #expect(await sluice.terminate() == 0)
    }

    @Test("the command writes nothing when an input is unreadable or the result would not validate")
    func refusals() async throws {
        let fixtures = PythonTools.repositoryRoot.appendingPathComponent("Tests/SluiceCoreTests/Fixtures/aws")
        func path(_ name: String) -> String { fixtures.appendingPathComponent(name).path }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("out.yaml").path
        let base = ["import-aws", "--usage-plans", path("usage-plans.json"), "--output", output]

        var run = try await SluiceProcess.runCLI(base + ["--usage-plan-keys", "up1basic=" + path("usage-plan-keys-up1basic.json"), "--api-keys", path("api-keys.json")])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("import-aws: 4 plan(s), 1 API key(s) written to \(output)"), "\(run.output)")
        #expect(try await SluiceProcess.runCLI(["check-config", output]).status == 0)
        try FileManager.default.removeItem(atPath: output)

        // Only the plan without stages has keys: none can be imported, and a file without keys
        // would not pass check-config.
        run = try await SluiceProcess.runCLI(base + ["--usage-plan-keys", "draft=" + path("usage-plan-keys-up4draft.json"), "--api-keys", path("api-keys.json")])
        #expect(run.status == 1 && run.output.contains("does not validate, so it was not written"), "\(run.output)")
        #expect(!FileManager.default.fileExists(atPath: output))

        run = try await SluiceProcess.runCLI(base + ["--api-keys", path("rest-apis.json").replacingOccurrences(of: ".json", with: ".missing")])
        #expect(run.status == 1 && run.output.contains("error: cannot read"), "\(run.output)")
        let notJSON = directory.appendingPathComponent("api-keys.json")
        try Data("An error occurred (UnrecognizedClientException)".utf8).write(to: notJSON)
        run = try await SluiceProcess.runCLI(base + ["--api-keys", notJSON.path])
        #expect(run.status == 1 && run.output.contains("\(notJSON.path): not the JSON the aws CLI prints"), "\(run.output)")
        run = try await SluiceProcess.runCLI(base + ["--api-keys", path("api-keys.json"), "--usage-plan-keys", "nope=" + path("usage-plan-keys-up1basic.json")])
        #expect(run.status == 1 && run.output.contains("no usage plan has the id or name \"nope\""), "\(run.output)")
        run = try await SluiceProcess.runCLI(["import-aws", "--usage-plans", "-", "--api-keys", "-"])
        #expect(run.status != 0 && run.output.contains("standard input (-) can feed only one input"), "\(run.output)")
        run = try await SluiceProcess.runCLI(base + ["--api-keys", path("api-keys.json"), "--stages", "no-equals-sign"])
        #expect(run.status != 0 && run.output.contains("--stages takes API_ID=FILE"), "\(run.output)")
        #expect(!FileManager.default.fileExists(atPath: output))
    }
}

/// `moto_server` from the suite's venv on a free loopback port, stopped by PID.
private final class MotoServer: @unchecked Sendable {
    // @unchecked: the process is only started and stopped, from one test.
    let port: Int
    let directory: URL
    private let process: Process

    static func start() async throws -> MotoServer {
        let server = try MotoServer()
        let ready = try await poll(.seconds(30), every: .milliseconds(100)) {
            guard server.process.isRunning else {
                throw TestSupportError("moto_server exited with \(server.process.terminationStatus): \(server.log)")
            }
            return (try? await HTTPTestClient.request(port: server.port, path: "/moto-api/", timeout: 2))?.status == 200
        }
        guard ready != nil else {
            server.stop()
            throw TestSupportError("moto_server on port \(server.port) did not answer within 30 s: \(server.log)")
        }
        return server
    }

    private init() throws {
        self.port = try FreePort.find()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-moto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let log = self.directory.appendingPathComponent("moto.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = try PythonTools.executable("moto_server")
        process.arguments = ["-H", "127.0.0.1", "-p", String(self.port)]
        process.environment = ProcessInfo.processInfo.environment.merging(AWSCLI.environment) { _, new in new }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }

    var log: String {
        (try? String(contentsOf: self.directory.appendingPathComponent("moto.log"), encoding: .utf8)) ?? ""
    }

    func stop() {
        guard self.process.isRunning else { return }
        kill(self.process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while self.process.isRunning && Date() < deadline { usleep(20_000) }
        if self.process.isRunning { kill(self.process.processIdentifier, SIGKILL) }
        self.process.waitUntilExit()
    }
}

/// The aws CLI of the suite's venv, pointed at moto, with dummy credentials and no config
/// files of the machine's user.
private struct AWSCLI: Sendable {
    static let environment = [
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
    ]

    let endpoint: String
    /// Where exports and the imported config go (the moto server's temp dir).
    let directory: URL

    init(moto: MotoServer) {
        self.endpoint = "http://127.0.0.1:\(moto.port)"
        self.directory = moto.directory
    }

    /// Runs `aws apigateway ARGS --output json`.
    /// - Returns: its standard output.
    /// - Throws: when it exits non-zero, with its standard error.
    func run(_ arguments: String...) async throws -> String {
        try await self.run(arguments)
    }

    func run(_ arguments: [String]) async throws -> String {
        let aws = try PythonTools.executable("aws")
        let full = ["--endpoint-url", self.endpoint, "--output", "json", "apigateway"] + arguments
        let errors = self.directory.appendingPathComponent("aws-\(UUID().uuidString).err")
        return try await offCooperativePool {
            _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
            let process = Process()
            process.executableURL = aws
            process.arguments = full
            process.environment = ProcessInfo.processInfo.environment.merging(Self.environment) { _, new in new }
            let stdout = Pipe()
            let stderr = try FileHandle(forWritingTo: errors)
            defer { try? stderr.close() }
            process.standardOutput = stdout
            process.standardError = stderr
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let data = stdout.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                let message = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
                throw TestSupportError("aws \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): \(message)")
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// The JSON string a `--query` selects.
    func text(_ arguments: String...) async throws -> String {
        let output = try await self.run(arguments)
        guard let value = try JSONSerialization.jsonObject(with: Data(output.utf8), options: .fragmentsAllowed) as? String, !value.isEmpty else {
            throw TestSupportError("aws \(arguments.joined(separator: " ")) printed \(output), not a string")
        }
        return value
    }

    /// Writes a command's output to `name` in the directory, as `aws ... > name` would.
    func export(_ name: String, _ arguments: String...) async throws -> URL {
        let url = self.directory.appendingPathComponent(name)
        try Data(try await self.run(arguments).utf8).write(to: url)
        return url
    }
}

/// The hex SHA-256 a config's `key_sha256` holds, computed with sha256sum so that the test
/// does not share Sluice's own code.
private enum KeySHA256 {
    static func hex(_ key: String) async throws -> String {
        let result = try await offCooperativePool {
            try Subprocess.run(URL(fileURLWithPath: "/usr/bin/sha256sum"), [], input: key)
        }
        return String(result.output.prefix(64))
    }
}
