import Foundation
import SluiceTestSupport
import Testing

/// schemathesis drives the public and admin API from `openapi/sluice.yaml` against a
/// running `sluice serve`: generated valid and invalid requests, stateful key chains,
/// undeclared methods. No 5xx, and every response must match the document.
@Suite("API contract (schemathesis)", .serialized)
struct ContractTests {
    @Test("openapi/sluice.yaml loads with a strict YAML loader: no mapping holds a key twice")
    func strictYAML() async throws {
        let python = try PythonTools.python()
        let document = PythonTools.repositoryRoot.appendingPathComponent("openapi/sluice.yaml").path
        let result = try await offCooperativePool {
            try Subprocess.run(python, [PythonTools.script("strict_yaml.py"), document])
        }
        #expect(result.status == 0, "\(result.output)")
    }

    @Test("the strict loader refuses a duplicate key, and takes overrides of merged keys")
    func strictLoaderRefusesDuplicates() async throws {
        let python = try PythonTools.python()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("strict-yaml-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let duplicate = scratch.appendingPathComponent("duplicate.yaml")
        try "a:\n  content: 1\n  other: 2\n  content: 3\n".write(to: duplicate, atomically: true, encoding: .utf8)
        let merged = scratch.appendingPathComponent("merged.yaml")
        try "base: &b { x: 1, y: 2 }\nderived:\n  <<: *b\n  x: 3\n".write(to: merged, atomically: true, encoding: .utf8)
        let refused = try await offCooperativePool {
            try Subprocess.run(python, [PythonTools.script("strict_yaml.py"), duplicate.path])
        }
        #expect(refused.status == 1 && refused.output.contains("duplicate.yaml:4:3: duplicate key 'content' (first at line 2)"), "\(refused.output)")
        let accepted = try await offCooperativePool {
            try Subprocess.run(python, [PythonTools.script("strict_yaml.py"), merged.path])
        }
        #expect(accepted.status == 0, "\(accepted.output)")
    }

    @Test("every operation of openapi/sluice.yaml: no server error, every response conforms (st run --checks all)")
    func schemathesis() async throws {
        let st = try PythonTools.executable("st")
        let redis = try await RedisServer.start()
        let port = try FreePort.find()
        // One listener serves the decision and admin APIs, so one base URL reaches every operation.
        let yaml = """
            redis: { url: \(redis.url), timeout_ms: 5000 }
            admin: { port: \(port) }
            logging: { level: error }
            plans:
              ml-basic:
                throttle: { rate: 2, burst: 1 }
                quota: { limit: 1000, period: week, offset_hours: 2 }
                headers: [legacy, openai]
                routes:
                  "POST /v1/predict": { rate: 10, burst: 5 }
              free:
                throttle: { rate: 1000, burst: 1000 }
                on_backend_error: allow
              llm:
                throttle: { rate: 1000, burst: 1000 }
                limits:
                  tpm: { counts: total_tokens, rate: 100000, burst: 4000000 }
                  spend: { counts: cost, quota: { limit: 1000000000, period: day } }
                concurrency: { limit: 1000, lease_ttl_s: 30 }
                prices: { gpt-4o: { input: 2.5, output: 10, cached_input: 1.25 }, "*": { input: 1, output: 1 } }
                headers: [openai, anthropic]
            api_keys:
              - key: demo-key-123
                plan: ml-basic
              - key: free-key
                plan: free
              - key: llm-key
                plan: llm
            """
        let sluice = try SluiceProcess(yaml: yaml, port: port, environment: ["SLUICE_ADMIN_TOKENS": "contract-token"])
        defer { sluice.kill() }
        try await sluice.waitUntilReady()

        let root = PythonTools.repositoryRoot
        // schemathesis's default checks judge the document as it is: the config may say how to
        // authenticate and which keys to draw, never switch off an operation, a phase or a check.
        let settings = try String(contentsOf: root.appendingPathComponent("openapi/schemathesis.toml"), encoding: .utf8)
        let allowances = settings.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { line in
            if line.hasPrefix("[") {
                let table = line.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                return !(table.hasPrefix("auth.") || table == "cache" || table.hasPrefix("dictionaries.") || table == "parameters")
            }
            let key = line.split(separator: "=").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            return ["phases", "checks", "expected-statuses", "exclude", "include", "operations", "generation"].contains { key.hasPrefix($0) }
        }
        #expect(allowances.isEmpty, "openapi/schemathesis.toml relaxes schemathesis: \(allowances)")
        // --exclude-deprecated below leaves out one operation, and must not leave out more.
        let document = try String(contentsOf: root.appendingPathComponent("openapi/sluice.yaml"), encoding: .utf8)
        let deprecated = document.split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces) == "deprecated: true" }
        #expect(deprecated.count == 1 && document.contains("operationId: resetKeyStateFormer"), "deprecated operations: \(deprecated.count)")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("schemathesis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let arguments = [
            "--config-file", root.appendingPathComponent("openapi/schemathesis.toml").path,
            "run", root.appendingPathComponent("openapi/sluice.yaml").path,
            "--url", "http://127.0.0.1:\(port)",
            "--checks", "all",
            "--max-examples", "25",
            // One worker: two crash inside schemathesis on Python 3.11 now and then (its own bug).
            "--workers", "1",
            "--generation-codec", "ascii",
            "--generation-database", "none",
            "--seed", "1",
            "--no-color",
            // The one operation left out: DELETE .../state, the deprecated former spelling of
            // POST .../state/reset, kept so existing scripts keep working. It resets and deletes
            // nothing, so the stateful phase rightly reports the state still readable after it
            // (use_after_free); that finding goes away only with the alias itself. Documented (so
            // that Allow and the undeclared-method check agree with the server), not tested here:
            // AdminKeysTests covers it.
            "--exclude-deprecated",
        ]
        let result = try await offCooperativePool {
            try Subprocess.run(
                st, arguments,
                environment: ["SLUICE_ADMIN_TOKEN": "contract-token", "HYPOTHESIS_STORAGE_DIRECTORY": scratch.path]
            )
        }
        #expect(result.status == 0, "\(result.output.suffix(6000))")
        #expect(result.output.contains("No issues found"), "\(result.output.suffix(3000))")
        #expect(sluice.isRunning, "\(sluice.log.suffix(3000))")
    }
}
