import Foundation
import SluiceTestSupport
import Testing

/// deploy/compose-sentinel.yaml, without a Docker engine: the Compose schema, and its Sluice config
/// through `sluice check-config`.
@Suite("deploy/compose-sentinel.yaml")
struct SentinelComposeTests {
    static let compose = DeployFilesTests.root.appendingPathComponent("deploy/compose-sentinel.yaml")

    @Test("validates against the Compose Specification schema (check-jsonschema's built-in copy)")
    func schema() async throws {
        let checker = try PythonTools.executable("check-jsonschema")
        let result = try await DeployFilesTests.run(checker, ["--builtin-schema", "vendor.compose-spec", Self.compose.path])
        #expect(result.status == 0, "\(result.output)")
    }

    @Test("its Sluice config passes check-config and names every sentinel service; the image's own config is replaced")
    func sluiceConfig() async throws {
        let document = try #require(try await DeployFilesTests.yamlDocuments(Self.compose).first)
        let services = try #require(document["services"] as? [String: [String: Any]])
        let sluice = try #require(services["sluice"])
        let mounted = DeployFilesTests.mountedConfigs(sluice, in: document)
        let content = try #require(mounted["/etc/sluice/sluice.yaml"]?["content"] as? String, "sluice must mount its own config")

        let directory = try DeployFilesTests.scratch("compose-sentinel")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("sluice.yaml")
        try content.write(to: file, atomically: true, encoding: .utf8)
        let checked = try await SluiceProcess.runCLI(["check-config", file.path])
        #expect(checked.status == 0, "\(checked.output)")

        let sentinels = services.keys.filter { $0.hasPrefix("sentinel-") }.sorted()
        #expect(sentinels.count == 3)
        for name in sentinels {
            #expect(content.contains("\"\(name):26379\""), "\(name) is not in redis.sentinel.nodes")
        }
        #expect(!content.contains("url:"), "a URL besides the sentinels would be a second topology")
    }
}
