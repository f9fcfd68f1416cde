import Foundation
import SluiceTestSupport
import Testing

/// The shipped deploy files, checked without a Docker engine or a cluster: `sluice health` (the
/// image's health check) against live and dead servers, the Dockerfile's HEALTHCHECK run as
/// Docker runs it, hadolint, the Compose file against the Compose Specification's schema and
/// its gateway run with nginx on one loopback, the Kubernetes manifests against Kubernetes'
/// schemas (strict) with their security settings, ports and network policy.
@Suite("deploy files (deploy/docker, deploy/compose.yaml, deploy/kubernetes)", .serialized)
struct DeployFilesTests {
    static let root = PythonTools.repositoryRoot
    static let dockerfile = root.appendingPathComponent("deploy/docker/Dockerfile")
    static let compose = root.appendingPathComponent("deploy/compose.yaml")
    static let kubernetes = root.appendingPathComponent("deploy/kubernetes/sluice.yaml")

    static let yaml = """
        logging: { level: error }
        plans:
          deploy:
            throttle: { rate: 0.01, burst: 1 }
        api_keys:
          - { key: deploy-key, plan: deploy }
        """

    /// A redis-server and a ready `sluice serve` using it.
    static func startSluice() async throws -> (RedisServer, SluiceProcess) {
        let redis = try await RedisServer.start()
        let sluice = try SluiceProcess(yaml: "redis: { url: \(redis.url), timeout_ms: 5000 }\n" + Self.yaml)
        try await sluice.waitUntilReady()
        return (redis, sluice)
    }

    /// Runs a program to completion off the cooperative pool.
    static func run(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        try await offCooperativePool { try Subprocess.run(executable, arguments, environment: environment) }
    }

    /// Every YAML document of `file`, as JSON values (PyYAML of the test venv).
    static func yamlDocuments(_ file: URL) async throws -> [[String: Any]] {
        let result = try await Self.run(try PythonTools.python(), [PythonTools.script("yaml_to_json.py"), file.path])
        guard result.status == 0, let documents = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [Any] else {
            throw TestSupportError("cannot read \(file.path) as YAML: \(result.output)")
        }
        return documents.compactMap { $0 as? [String: Any] }
    }

    /// A scratch directory, removed by the caller.
    static func scratch(_ name: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    // MARK: sluice health

    @Test("sluice health: 0 against a running sluice (by flag, and by SLUICE_HOST=0.0.0.0 / SLUICE_PORT as in the image)")
    func healthAgainstSluice() async throws {
        let (redis, sluice) = try await Self.startSluice()
        defer { withExtendedLifetime(redis) {} }
        let byFlag = try await SluiceProcess.runCLI(["health", "--port", String(sluice.port)])
        #expect(byFlag.status == 0, "\(byFlag.output)")
        let byEnvironment = try await SluiceProcess.runCLI(["health"], environment: ["SLUICE_HOST": "0.0.0.0", "SLUICE_PORT": String(sluice.port)])
        #expect(byEnvironment.status == 0, "\(byEnvironment.output)")
    }

    @Test("sluice health: 1 with one line on stderr for a dead port, a server that is not HTTP, and one that never answers")
    func healthFailures() async throws {
        let deadPort = try FreePort.find()
        let dead = try await SluiceProcess.runCLI(["health", "--port", String(deadPort)])
        #expect(dead.status == 1)
        #expect(dead.output == "unhealthy: GET http://127.0.0.1:\(deadPort)/healthz: cannot connect: Connection refused\n", "\(dead.output)")

        // Redis reads an HTTP request as an attack and closes the connection.
        let redis = try await RedisServer.start()
        let notHTTP = try await SluiceProcess.runCLI(["health", "--port", String(redis.port)])
        #expect(notHTTP.status == 1)
        #expect(notHTTP.output.hasPrefix("unhealthy: ") && notHTTP.output.split(separator: "\n").count == 1, "\(notHTTP.output)")

        // A listener that accepts (the kernel does) but never answers: the deadline ends it.
        let silent = try SilentListener()
        defer { silent.stop() }
        let start = ContinuousClock.now
        let hung = try await SluiceProcess.runCLI(["health", "--port", String(silent.port), "--timeout-ms", "300"])
        let elapsed = ContinuousClock.now - start
        #expect(hung.status == 1)
        #expect(hung.output == "unhealthy: GET http://127.0.0.1:\(silent.port)/healthz: no answer within 300 ms\n", "\(hung.output)")
        #expect(elapsed < .seconds(10), "health took \(elapsed) with a 300 ms timeout")
    }

    // MARK: deploy/docker/Dockerfile

    /// The Dockerfile's instructions, continuation lines joined, comments dropped.
    static func dockerInstructions() throws -> [String] {
        let text = try String(contentsOf: Self.dockerfile, encoding: .utf8)
        var instructions: [String] = []
        var current = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") || (trimmed.isEmpty && current.isEmpty) { continue }
            if trimmed.hasSuffix("\\") {
                current += trimmed.dropLast() + " "
            } else {
                instructions.append(current + trimmed)
                current = ""
            }
        }
        return instructions.filter { !$0.isEmpty }
    }

    /// The final stage's HEALTHCHECK as Docker runs it: the exec form's array as is, the shell
    /// form under `/bin/sh -c` (dash on Debian).
    static func healthcheckCommand() throws -> [String] {
        let checks = try Self.dockerInstructions().filter { $0.uppercased().hasPrefix("HEALTHCHECK ") }
        guard let check = checks.last else { throw TestSupportError("the Dockerfile has no HEALTHCHECK") }
        var rest = Substring(check.dropFirst("HEALTHCHECK ".count)).drop(while: { $0 == " " })
        while rest.hasPrefix("--") {
            rest = rest.drop(while: { $0 != " " }).drop(while: { $0 == " " })
        }
        guard rest.uppercased().hasPrefix("CMD ") else { throw TestSupportError("HEALTHCHECK without CMD: \(check)") }
        let command = rest.dropFirst(4).trimmingCharacters(in: .whitespaces)
        if command.hasPrefix("["), let array = try? JSONSerialization.jsonObject(with: Data(command.utf8)) as? [String], !array.isEmpty {
            return array
        }
        return ["/bin/sh", "-c", command]
    }

    /// The image's environment (`ENV NAME=value ...` of the final stage).
    static func imageEnvironment() throws -> [String: String] {
        let instructions = try Self.dockerInstructions()
        let lastFrom = instructions.lastIndex { $0.uppercased().hasPrefix("FROM ") } ?? 0
        var environment: [String: String] = [:]
        for instruction in instructions[lastFrom...] where instruction.uppercased().hasPrefix("ENV ") {
            for pair in instruction.dropFirst(4).split(separator: " ") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { throw TestSupportError("ENV in a form this test does not read: \(instruction)") }
                environment[String(parts[0])] = String(parts[1])
            }
        }
        return environment
    }

    /// Where the image puts the binary: the destination of `COPY --from=... <binary>`.
    static func imageBinaryPath() throws -> String {
        for instruction in try Self.dockerInstructions() where instruction.hasPrefix("COPY --from=") {
            let words = instruction.split(separator: " ")
            if let destination = words.last, destination.hasSuffix("/sluice") { return String(destination) }
        }
        throw TestSupportError("no COPY --from=... .../sluice in the Dockerfile")
    }

    /// Runs the HEALTHCHECK with the image's environment, SLUICE_PORT set to `port` (as
    /// `docker run -e SLUICE_PORT=...` would) and the image's binary path mapped to the built one.
    static func runHealthcheck(port: Int) async throws -> (status: Int32, output: String, command: [String]) {
        let installed = try Self.imageBinaryPath()
        let binary = try SluiceProcess.binary().path
        let command = try Self.healthcheckCommand().map { $0.replacingOccurrences(of: installed, with: binary) }
        var environment = try Self.imageEnvironment()
        environment["SLUICE_PORT"] = String(port)
        let result = try await Self.run(URL(fileURLWithPath: command[0]), Array(command.dropFirst()), environment: environment)
        return (result.status, result.output, command)
    }

    @Test("Dockerfile HEALTHCHECK, run as Docker runs it: 0 against a running sluice, non-zero against nothing")
    func dockerHealthcheck() async throws {
        let (redis, sluice) = try await Self.startSluice()
        defer { withExtendedLifetime(redis) {} }
        let healthy = try await Self.runHealthcheck(port: sluice.port)
        #expect(healthy.status == 0, "\(healthy.command) exited \(healthy.status): \(healthy.output)")
        let nothing = try await Self.runHealthcheck(port: try FreePort.find())
        #expect(nothing.status != 0, "\(nothing.command) passed with nothing listening")
    }

    @Test("Dockerfile passes hadolint (every rule, info level included)")
    func hadolint() async throws {
        let hadolint = try PythonTools.executable("hadolint")
        let result = try await Self.run(hadolint, ["--no-color", "--failure-threshold", "info", Self.dockerfile.path])
        #expect(result.status == 0 && result.output.isEmpty, "\(result.output)")
    }

    @Test("hadolint finds what it should: the pin rule fires on an unpinned apt-get install")
    func hadolintCanFail() async throws {
        let directory = try Self.scratch("hadolint")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("Dockerfile")
        try "FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y curl\n".write(to: file, atomically: true, encoding: .utf8)
        let result = try await Self.run(try PythonTools.executable("hadolint"), ["--no-color", file.path])
        #expect(result.status != 0 && result.output.contains("DL3008"), "\(result.output)")
    }

    // MARK: deploy/compose.yaml

    @Test("compose.yaml validates against the Compose Specification schema (check-jsonschema's built-in copy)")
    func composeSchema() async throws {
        let checker = try PythonTools.executable("check-jsonschema")
        let result = try await Self.run(checker, ["--builtin-schema", "vendor.compose-spec", Self.compose.path])
        #expect(result.status == 0, "\(result.output)")

        // The same schema refuses a service with a key Compose does not define.
        let directory = try Self.scratch("compose")
        defer { try? FileManager.default.removeItem(at: directory) }
        let broken = directory.appendingPathComponent("compose.yaml")
        try "services:\n  redis:\n    image: redis:7\n    volumez: [data:/data]\n".write(to: broken, atomically: true, encoding: .utf8)
        let refused = try await Self.run(checker, ["--builtin-schema", "vendor.compose-spec", broken.path])
        #expect(refused.status != 0 && refused.output.contains("volumez"), "\(refused.output)")
    }

    /// compose.yaml as JSON, with its services.
    static func composeDocument() async throws -> (document: [String: Any], services: [String: [String: Any]]) {
        guard let document = try await Self.yamlDocuments(Self.compose).first,
            let services = document["services"] as? [String: [String: Any]]
        else { throw TestSupportError("compose.yaml has no services") }
        return (document, services)
    }

    /// The configs a service mounts: target path to the config's definition.
    static func mountedConfigs(_ service: [String: Any], in document: [String: Any]) -> [String: [String: Any]] {
        let definitions = document["configs"] as? [String: [String: Any]] ?? [:]
        var mounted: [String: [String: Any]] = [:]
        for entry in service["configs"] as? [[String: Any]] ?? [] {
            if let source = entry["source"] as? String, let target = entry["target"] as? String, let definition = definitions[source] {
                mounted[target] = definition
            }
        }
        return mounted
    }

    /// The loopback ports deploy/nginx/sluice.conf's upstreams name, in order.
    static func siteUpstreamPorts() throws -> [Int] {
        let site = try String(contentsOf: Self.root.appendingPathComponent("deploy/nginx/sluice.conf"), encoding: .utf8)
        let pattern = /server\s+127\.0\.0\.1:(\d+)\s*;/
        return site.matches(of: pattern).compactMap { Int($0.output.1) }
    }

    @Test("compose.yaml: the gateway mounts the tested deploy/nginx/sluice.conf (no copy), and the site's upstreams are its neighbours")
    func composeGatewayUsesTestedSite() async throws {
        let (document, services) = try await Self.composeDocument()
        let gateway = try #require(services["gateway"], "no gateway service")
        let mounted = Self.mountedConfigs(gateway, in: document)
        let site = mounted["/etc/nginx/conf.d/default.conf"]
        let file = try #require(site?["file"] as? String, "the gateway's default.conf is not a file config: \(String(describing: site))")
        let resolved = Self.compose.deletingLastPathComponent().appendingPathComponent(file).standardizedFileURL
        #expect(resolved.path == Self.root.appendingPathComponent("deploy/nginx/sluice.conf").standardizedFileURL.path)

        // No nginx text in compose.yaml that could drift from the tested site.
        for (name, definition) in document["configs"] as? [String: [String: Any]] ?? [:] {
            let content = definition["content"] as? String ?? ""
            #expect(!content.contains("auth_request") && !content.contains("upstream"), "config \(name) carries its own copy of the site")
        }

        // The site reaches Sluice and the app on loopback: both share the gateway's namespace,
        // on the ports the site names.
        let ports = try Self.siteUpstreamPorts()
        #expect(ports.count == 2, "upstreams of the site: \(ports)")
        for name in ["sluice", "app"] {
            #expect(services[name]?["network_mode"] as? String == "service:gateway", "\(name) is not in the gateway's network namespace")
        }
        let sluiceEnvironment = services["sluice"]?["environment"] as? [String: Any] ?? [:]
        #expect(sluiceEnvironment["SLUICE_PORT"].map { "\($0)" } == ports.first.map(String.init), "SLUICE_PORT vs the site's Sluice upstream \(ports)")
        #expect(sluiceEnvironment["SLUICE_HOST"] as? String == "127.0.0.1", "the decision port should stay on the namespace's loopback")
        let app = try #require(services["app"])
        let appSite = Self.mountedConfigs(app, in: document)["/etc/nginx/conf.d/default.conf"]?["content"] as? String ?? ""
        #expect(ports.count == 2 && appSite.contains("listen 127.0.0.1:\(ports[1]);"), "the app does not listen where the site sends it: \(appSite)")
    }

    @Test("compose.yaml: Redis keeps runtime API keys (append-only file on a named volume, noeviction)")
    func composeRedisPersists() async throws {
        let (document, services) = try await Self.composeDocument()
        let redis = try #require(services["redis"])
        let command = (redis["command"] as? [String]) ?? ((redis["command"] as? String)?.split(separator: " ").map(String.init) ?? [])
        func value(_ flag: String) -> String? {
            command.firstIndex(of: flag).flatMap { $0 + 1 < command.count ? command[$0 + 1] : nil }
        }
        #expect(value("--appendonly") == "yes", "redis command: \(command)")
        #expect(value("--maxmemory-policy") == "noeviction", "redis command: \(command)")
        let volumes = redis["volumes"] as? [String] ?? []
        let data = volumes.first { $0.hasSuffix(":/data") }
        let name = data.map { String($0.split(separator: ":")[0]) }
        #expect(name != nil && !(name!.hasPrefix(".") || name!.hasPrefix("/")), "no named volume on /data: \(volumes)")
        let declared = (document["volumes"] as? [String: Any])?.keys.contains(name ?? "") ?? false
        #expect(declared, "volume \(name ?? "-") is not declared under volumes:")
    }

    @Test("compose.yaml's gateway pieces on one loopback: front door -> the tested site -> sluice, then the app (nginx, sluice, redis-server)")
    func composeGatewayRuns() async throws {
        let (document, services) = try await Self.composeDocument()
        let gateway = try #require(services["gateway"])
        let app = try #require(services["app"])
        let gatewayConfigs = Self.mountedConfigs(gateway, in: document)
        let appConfigs = Self.mountedConfigs(app, in: document)
        let published = try #require((gateway["ports"] as? [String])?.first?.split(separator: ":").last.flatMap { Int($0) }, "the gateway publishes no port")
        let upstreams = try Self.siteUpstreamPorts()
        try #require(upstreams.count == 2, "upstreams of the site: \(upstreams)")

        let (redis, sluice) = try await Self.startSluice()
        defer { withExtendedLifetime(redis) {} }
        let frontPort = try FreePort.find()
        let appPort = try FreePort.find()
        let directory = try Self.scratch("compose-nginx")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("tmp"), withIntermediateDirectories: true)

        // The same files Compose would mount, with Compose's $$ unescaped, this machine's free
        // ports for the fixed ones (one loopback stands for the shared namespace) and the
        // sub-request timeouts raised so a loaded machine's slow answer is not a 503.
        let publishedPort = try Regex("\\b\(published)\\b")
        func adapt(_ text: String) -> String {
            var text = text.replacingOccurrences(of: "127.0.0.1:\(upstreams[0])", with: "127.0.0.1:\(sluice.port)")
            text = text.replacingOccurrences(of: "127.0.0.1:\(upstreams[1])", with: "127.0.0.1:\(appPort)")
            text = text.replacing(publishedPort, with: String(frontPort))
            return text.replacing(/(proxy_\w+_timeout) \d+ms;/) { "\($0.output.1) 5s;" }
        }
        var includes: [String] = []
        for (index, (target, definition)) in (gatewayConfigs.sorted { $0.key < $1.key } + appConfigs.sorted { $0.key < $1.key }).enumerated()
        where target.hasPrefix("/etc/nginx/conf.d/") {
            let text: String
            if let file = definition["file"] as? String {
                text = try String(contentsOf: Self.compose.deletingLastPathComponent().appendingPathComponent(file), encoding: .utf8)
            } else {
                text = (definition["content"] as? String ?? "").replacingOccurrences(of: "$$", with: "$")
            }
            let path = directory.appendingPathComponent("site-\(index).conf")
            try adapt(text).write(to: path, atomically: true, encoding: .utf8)
            includes.append(path.path)
        }
        #expect(includes.count == 3, "expected the site, the front door and the app's site: \(includes)")
        let d = directory.path
        let main = DeployFiles.nginxMain(directory: directory, includes: includes)
        try main.write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        let nginx = Process()
        nginx.executableURL = try Self.nginxBinary()
        nginx.arguments = ["-p", d, "-c", "\(d)/nginx.conf", "-e", "\(d)/error.log"]
        nginx.standardOutput = FileHandle.nullDevice
        nginx.standardError = FileHandle.nullDevice
        try nginx.run()
        defer {
            if nginx.isRunning {
                kill(nginx.processIdentifier, SIGKILL)
                nginx.waitUntilExit()
            }
        }
        let errorLog = { (try? String(contentsOfFile: "\(d)/error.log", encoding: .utf8)) ?? "" }
        let up = try await poll(.seconds(10)) {
            guard nginx.isRunning else { return false }
            return (try? await HTTPTestClient.request(port: appPort, path: "/", timeout: 1))?.status == 200
        }
        try #require(up != nil, "nginx did not start: \(errorLog())")

        // From outside the namespace: an address other than 127.0.0.1 reaches only the front door.
        let python = try PythonTools.python()
        let client = """
            import sys, urllib.request, urllib.error
            request = urllib.request.Request(sys.argv[1], headers={"X-API-Key": "deploy-key"})
            try:
                answer = urllib.request.urlopen(request, timeout=10)
            except urllib.error.HTTPError as error:
                answer = error
            print(answer.status, answer.headers.get("RateLimit-Policy"), answer.read().decode().strip(), sep="|")
            """
        let url = "http://127.0.0.2:\(frontPort)/anything"
        let first = try await Self.run(python, ["-c", client, url])
        #expect(first.output == "200|\"throttle\";q=1;w=100|hello from the app\n", "\(first.output) \(errorLog())")
        let second = try await Self.run(python, ["-c", client, url])
        #expect(second.output.hasPrefix("429|\"throttle\";q=1;w=100|"), "\(second.output) \(errorLog())")
    }

    static func nginxBinary() throws -> URL {
        for path in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] where FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        throw TestSupportError("nginx is not installed (scripts/test installs nginx-light)")
    }

    // MARK: deploy/kubernetes/sluice.yaml

    @Test("every Kubernetes manifest passes kubernetes-validate --strict, without warnings")
    func kubernetesValidate() async throws {
        let validator = try PythonTools.executable("kubernetes-validate")
        let result = try await Self.run(validator, ["--strict", Self.kubernetes.path])
        #expect(result.status == 0 && !result.output.contains("WARN") && !result.output.contains("ERROR"), "\(result.output)")
        let kinds = try await Self.yamlDocuments(Self.kubernetes).compactMap { $0["kind"] as? String }
        #expect(result.output.components(separatedBy: " passed for resource ").count - 1 == kinds.count, "\(kinds): \(result.output)")

        // Strict mode refuses a field Kubernetes does not define.
        let directory = try Self.scratch("kubernetes")
        defer { try? FileManager.default.removeItem(at: directory) }
        let broken = directory.appendingPathComponent("broken.yaml")
        try "apiVersion: v1\nkind: Service\nmetadata: { name: x }\nspec:\n  port: 8080\n  ports: [{ port: 8080 }]\n".write(to: broken, atomically: true, encoding: .utf8)
        let refused = try await Self.run(validator, ["--strict", broken.path])
        #expect(refused.status != 0 && refused.output.contains("'port' was unexpected"), "\(refused.output)")
    }

    /// The manifests by kind (one of each).
    static func manifests() async throws -> [String: [String: Any]] {
        var byKind: [String: [String: Any]] = [:]
        for document in try await Self.yamlDocuments(Self.kubernetes) {
            if let kind = document["kind"] as? String { byKind[kind] = document }
        }
        return byKind
    }

    /// The Deployment's pod spec and its one container.
    static func podSpec(_ manifests: [String: [String: Any]]) throws -> (pod: [String: Any], labels: [String: String], container: [String: Any]) {
        let template = ((manifests["Deployment"]?["spec"] as? [String: Any])?["template"] as? [String: Any]) ?? [:]
        let labels = (template["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
        guard let pod = template["spec"] as? [String: Any], let containers = pod["containers"] as? [[String: Any]], containers.count == 1 else {
            throw TestSupportError("no Deployment with one container")
        }
        return (pod, labels, containers[0])
    }

    @Test("Kubernetes: a placeholder image that cannot be pulled by accident, never :latest")
    func kubernetesImage() async throws {
        let (_, _, container) = try Self.podSpec(try await Self.manifests())
        let image = try #require(container["image"] as? String)
        let name = image.split(separator: "@")[0]
        let lastPart = name.split(separator: "/").last ?? ""
        #expect(lastPart.contains(":") && !lastPart.hasSuffix(":latest"), "image \(image) has no pinned tag")
        // A registry host under a name reserved for examples and tests never resolves to someone's registry.
        let host = image.split(separator: "/").first.map(String.init) ?? ""
        let reserved = ["example.com", "example.org", "example.net", "example", "invalid", "test", "localhost"]
        let isReserved = image.contains("/") && reserved.contains { host == $0 || host.hasSuffix(".\($0)") }
        #expect(isReserved, "image \(image) is not on a reserved placeholder registry")
    }

    @Test("Kubernetes: restrictive security context matching the image's non-root user")
    func kubernetesSecurityContext() async throws {
        let (pod, _, container) = try Self.podSpec(try await Self.manifests())
        let podContext = pod["securityContext"] as? [String: Any] ?? [:]
        let containerContext = container["securityContext"] as? [String: Any] ?? [:]
        func setting(_ key: String) -> Any? { containerContext[key] ?? podContext[key] }
        #expect(setting("runAsNonRoot") as? Bool == true)
        let user = setting("runAsUser") as? Int
        #expect(user != nil && user != 0, "runAsUser: \(String(describing: user))")
        let seccomp = setting("seccompProfile") as? [String: Any]
        #expect(seccomp?["type"] as? String == "RuntimeDefault")
        #expect(containerContext["allowPrivilegeEscalation"] as? Bool == false)
        #expect(containerContext["readOnlyRootFilesystem"] as? Bool == true)
        #expect((containerContext["capabilities"] as? [String: Any])?["drop"] as? [String] == ["ALL"])
        #expect(containerContext["privileged"] as? Bool != true)

        // The image's USER is that same numeric user.
        let users = try Self.dockerInstructions().filter { $0.uppercased().hasPrefix("USER ") }
        let imageUser = users.last.flatMap { Int($0.dropFirst(5).split(separator: ":")[0]) }
        #expect(imageUser != nil && imageUser == user, "Dockerfile \(users) vs runAsUser \(String(describing: user))")
    }

    @Test("Kubernetes: resource requests and a memory limit, a PodDisruptionBudget over the pods")
    func kubernetesResourcesAndDisruptionBudget() async throws {
        let manifests = try await Self.manifests()
        let (_, labels, container) = try Self.podSpec(manifests)
        let resources = container["resources"] as? [String: [String: Any]] ?? [:]
        #expect(resources["requests"]?["cpu"] != nil && resources["requests"]?["memory"] != nil, "requests: \(resources)")
        #expect(resources["limits"]?["memory"] != nil, "limits: \(resources)")
        let budget = try #require(manifests["PodDisruptionBudget"]?["spec"] as? [String: Any], "no PodDisruptionBudget")
        let selector = (budget["selector"] as? [String: Any])?["matchLabels"] as? [String: String] ?? [:]
        #expect(!selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value }, "PDB selector \(selector) vs pod labels \(labels)")
        #expect(budget["maxUnavailable"] != nil || budget["minAvailable"] != nil)
        let replicas = (manifests["Deployment"]?["spec"] as? [String: Any])?["replicas"] as? Int ?? 1
        if let minAvailable = budget["minAvailable"] as? Int {
            #expect(minAvailable < replicas, "minAvailable \(minAvailable) of \(replicas) replicas blocks every drain")
        }
    }

    @Test("Kubernetes: the ConfigMap's config passes sluice check-config, and its ports are the container's and Prometheus' scrape port")
    func kubernetesConfigAndPorts() async throws {
        let manifests = try await Self.manifests()
        let (_, _, container) = try Self.podSpec(manifests)
        let config = try #require((manifests["ConfigMap"]?["data"] as? [String: String])?["sluice.yaml"], "no sluice.yaml in the ConfigMap")
        let directory = try Self.scratch("kubernetes-config")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("sluice.yaml")
        try config.write(to: file, atomically: true, encoding: .utf8)
        let checked = try await SluiceProcess.runCLI(["check-config", file.path])
        #expect(checked.status == 0, "\(checked.output)")

        let parsed = try #require(try await Self.yamlDocuments(file).first)
        let decisionPort = (parsed["server"] as? [String: Any])?["port"] as? Int
        let adminPort = (parsed["admin"] as? [String: Any])?["port"] as? Int
        let ports = Dictionary(uniqueKeysWithValues: (container["ports"] as? [[String: Any]] ?? []).compactMap { port in
            (port["name"] as? String).flatMap { name in (port["containerPort"] as? Int).map { (name, $0) } }
        })
        #expect(ports["http"] == decisionPort && decisionPort != nil, "container ports \(ports) vs server.port \(String(describing: decisionPort))")
        #expect(ports["admin"] == adminPort && adminPort != nil, "container ports \(ports) vs admin.port \(String(describing: adminPort))")
        let annotations = ((manifests["Deployment"]?["spec"] as? [String: Any])?["template"] as? [String: Any])
            .flatMap { ($0["metadata"] as? [String: Any])?["annotations"] as? [String: String] } ?? [:]
        #expect(annotations["prometheus.io/port"] == adminPort.map(String.init), "Prometheus scrapes \(annotations)")
    }

    @Test("Kubernetes NetworkPolicy: the decision port open to gateways anywhere, the admin port only to Prometheus and operators")
    func kubernetesNetworkPolicy() async throws {
        let manifests = try await Self.manifests()
        let (_, labels, container) = try Self.podSpec(manifests)
        let namedPorts = Dictionary(uniqueKeysWithValues: (container["ports"] as? [[String: Any]] ?? []).compactMap { port in
            (port["name"] as? String).flatMap { name in (port["containerPort"] as? Int).map { (name, $0) } }
        })
        let decision = try #require(namedPorts["http"])
        let admin = try #require(namedPorts["admin"])
        let policy = try NetworkPolicyModel(manifests["NetworkPolicy"], podLabels: labels, namedPorts: namedPorts)
        let sluiceNamespace = "sluice"
        let cases: [(String, NetworkPolicyModel.Peer, Int, Bool)] = [
            ("a gateway in another namespace, decision port", .init(namespace: "ingress", namespaceLabels: [:], podLabels: ["app": "nginx"]), decision, true),
            ("a pod of the same namespace, decision port", .init(namespace: sluiceNamespace, namespaceLabels: [:], podLabels: [:]), decision, true),
            ("Prometheus in monitoring, admin port", .init(namespace: "monitoring", namespaceLabels: [:], podLabels: ["app.kubernetes.io/name": "prometheus"]), admin, true),
            (
                "an operator's pod in an admin-access namespace, admin port",
                .init(namespace: "ops", namespaceLabels: ["sluice-admin-access": "true"], podLabels: ["sluice-admin-access": "true"]), admin, true
            ),
            ("a gateway, admin port", .init(namespace: "ingress", namespaceLabels: [:], podLabels: ["app": "nginx"]), admin, false),
            ("an unlabelled pod of the same namespace, admin port", .init(namespace: sluiceNamespace, namespaceLabels: [:], podLabels: [:]), admin, false),
            ("a pod labelled prometheus outside monitoring, admin port", .init(namespace: "default", namespaceLabels: [:], podLabels: ["app.kubernetes.io/name": "prometheus"]), admin, false),
            ("any pod in monitoring that is not Prometheus, admin port", .init(namespace: "monitoring", namespaceLabels: [:], podLabels: ["app": "grafana"]), admin, false),
            (
                "an operator label without the namespace label, admin port",
                .init(namespace: "ops", namespaceLabels: [:], podLabels: ["sluice-admin-access": "true"]), admin, false
            ),
            ("a gateway, another port", .init(namespace: "ingress", namespaceLabels: [:], podLabels: [:]), 6379, false),
        ]
        for (name, peer, port, expected) in cases {
            let allowed = try policy.admits(peer, port: port, policyNamespace: sluiceNamespace)
            #expect(allowed == expected, "\(name): \(allowed ? "admitted" : "refused"), expected \(expected ? "admitted" : "refused")")
        }
    }

    // MARK: repository hygiene

    @Test("schemathesis' cache (.schemathesis/) is ignored and not committed")
    func schemathesisCacheIgnored() async throws {
        let git = URL(fileURLWithPath: "/usr/bin/git")
        let root = Self.root.path
        let tracked = try await Self.run(git, ["-C", root, "ls-files", "--", ".schemathesis"])
        #expect(tracked.status == 0 && tracked.output.isEmpty, "tracked: \(tracked.output)")
        let ignored = try await Self.run(git, ["-C", root, "check-ignore", "-q", "--no-index", ".schemathesis/default/cache/crashes/manifest.json"])
        #expect(ignored.status == 0, ".schemathesis/ is not in .gitignore: \(ignored.output)")
    }
}

/// The part of Kubernetes' NetworkPolicy semantics the manifest uses: ingress rules with
/// ports (numbers or container port names) and peers with `matchLabels` pod and namespace
/// selectors. Anything else makes the test fail rather than guess.
struct NetworkPolicyModel {
    /// A pod that opens a connection.
    struct Peer {
        let namespace: String
        /// Labels set by the cluster's users; `kubernetes.io/metadata.name` is added as Kubernetes does.
        let namespaceLabels: [String: String]
        let podLabels: [String: String]
    }

    private let rules: [[String: Any]]?
    private let namedPorts: [String: Int]

    /// - Parameter manifest: the NetworkPolicy, or nil (then every peer is admitted, as without one).
    init(_ manifest: [String: Any]?, podLabels: [String: String], namedPorts: [String: Int]) throws {
        self.namedPorts = namedPorts
        guard let spec = manifest?["spec"] as? [String: Any] else {
            self.rules = nil
            return
        }
        let selects = try Self.matches(spec["podSelector"], podLabels)
        let types = spec["policyTypes"] as? [String] ?? ["Ingress"]
        self.rules = selects && types.contains("Ingress") ? (spec["ingress"] as? [[String: Any]] ?? []) : nil
    }

    /// Whether a connection from `peer` to the selected pods' `port` is admitted.
    func admits(_ peer: Peer, port: Int, policyNamespace: String) throws -> Bool {
        guard let rules = self.rules else { return true }
        for rule in rules {
            if let ports = rule["ports"] as? [[String: Any]] {
                let numbers = try ports.map { entry -> Int in
                    if let number = entry["port"] as? Int { return number }
                    if let name = entry["port"] as? String, let number = self.namedPorts[name] { return number }
                    throw TestSupportError("port entry the model does not read: \(entry)")
                }
                guard numbers.contains(port) else { continue }
            }
            guard let from = rule["from"] as? [[String: Any]] else { return true }
            for source in from {
                if source["ipBlock"] != nil { continue }
                var namespaceLabels = peer.namespaceLabels
                namespaceLabels["kubernetes.io/metadata.name"] = peer.namespace
                let namespaceMatches =
                    source["namespaceSelector"] == nil
                    ? peer.namespace == policyNamespace : try Self.matches(source["namespaceSelector"], namespaceLabels)
                let podMatches = source["podSelector"] == nil ? true : try Self.matches(source["podSelector"], peer.podLabels)
                if namespaceMatches && podMatches { return true }
            }
        }
        return false
    }

    private static func matches(_ selector: Any?, _ labels: [String: String]) throws -> Bool {
        guard let selector = selector as? [String: Any] else { throw TestSupportError("selector the model does not read: \(String(describing: selector))") }
        guard selector["matchExpressions"] == nil else { throw TestSupportError("matchExpressions: not modelled") }
        let required = selector["matchLabels"] as? [String: String] ?? [:]
        return required.allSatisfy { labels[$0.key] == $0.value }
    }
}

/// A TCP listener on 127.0.0.1 that never accepts: the kernel completes connections into its
/// backlog, and nothing ever answers.
final class SilentListener: @unchecked Sendable {
    let port: Int
    private let process: Process
    private let stdin: Pipe

    init() throws {
        // Python holds the socket, so no descriptor of this test process is involved.
        let process = Process()
        process.executableURL = try PythonTools.python()
        process.arguments = [
            "-c",
            "import socket, sys\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(16)\nprint(s.getsockname()[1], flush=True)\nsys.stdin.read()\n",
        ]
        let output = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        self.process = process
        self.stdin = input
        var line = Data()
        while let byte = try output.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            process.terminate()
            throw TestSupportError("the silent listener did not start")
        }
        self.port = port
    }

    /// Ends the listener (closing its stdin ends the script).
    func stop() {
        try? self.stdin.fileHandleForWriting.close()
        self.process.waitUntilExit()
    }
}
