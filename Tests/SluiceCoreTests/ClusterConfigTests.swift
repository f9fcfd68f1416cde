import Testing

@testable import SluiceCore

@Suite("redis.cluster in the config")
struct ClusterConfigTests {
    private static let rest = """
        plans:
          p: { throttle: { rate: 1, burst: 1 } }
        api_keys:
          - { key: k, plan: p }
        """

    /// The problems `yaml` (with `environment` and `overrides`) is refused with; empty if it loads.
    private static func problems(
        _ yaml: String,
        environment: [String: String] = [:],
        overrides: ConfigOverrides = .init()
    ) -> [ConfigError.Problem] {
        do {
            _ = try ConfigLoader.parse(yaml: yaml + "\n" + Self.rest, source: "c.yaml", environment: environment, overrides: overrides)
            return []
        } catch {
            return error.problems
        }
    }

    @Test("the section, with the data nodes' credentials and TLS")
    func section() throws {
        let yaml = """
            redis:
              cluster:
                nodes: ["10.0.0.1:6379", "[::1]:7000", "node-3.internal:7001"]
              username: sluice
              password: data-pw
              tls: {}
            """ + "\n" + Self.rest
        let config = try ConfigLoader.parse(yaml: yaml, source: "c.yaml")
        let cluster = try #require(config.redis.cluster)
        #expect(cluster.nodes.map(\.host) == ["10.0.0.1", "::1", "node-3.internal"])
        #expect(cluster.nodes.map(\.port) == [6379, 7000, 7001])
        #expect(config.redis.sentinel == nil)
        #expect(config.redis.username == "sluice" && config.redis.password == "data-pw")
        #expect(config.redis.tls != nil)
    }

    @Test("no cluster without the section or the variable")
    func absent() throws {
        let config = try ConfigLoader.parse(yaml: "redis:\n  url: redis://127.0.0.1:6379/2\n" + Self.rest, source: "c.yaml")
        #expect(config.redis.cluster == nil)
    }

    @Test("SLUICE_REDIS_CLUSTER_NODES sets the topology and wins over the file")
    func environment() throws {
        let yaml = """
            redis:
              cluster: { nodes: ["10.0.0.1:6379"] }
              password: file-pw
            """ + "\n" + Self.rest
        let config = try ConfigLoader.parse(
            yaml: yaml,
            source: "c.yaml",
            environment: ["SLUICE_REDIS_CLUSTER_NODES": "127.0.0.1:7000, [::1]:7001,", "SLUICE_REDIS_PASSWORD": "env-pw"]
        )
        #expect(config.redis.cluster?.nodes.map(\.host) == ["127.0.0.1", "::1"])
        #expect(config.redis.cluster?.nodes.map(\.port) == [7000, 7001])
        #expect(config.redis.password == "env-pw")

        let envOnly = try ConfigLoader.parse(
            yaml: Self.rest,
            source: "c.yaml",
            environment: ["SLUICE_REDIS_CLUSTER_NODES": "127.0.0.1:7000"]
        )
        #expect(envOnly.redis.cluster?.nodes.map(\.port) == [7000])
    }

    @Test("the variable wins even over a bad list in the file")
    func environmentReplacesFileList() throws {
        let yaml = "redis:\n  cluster: { nodes: [\"not-a-node\"] }\n" + Self.rest
        let config = try ConfigLoader.parse(yaml: yaml, source: "c.yaml", environment: ["SLUICE_REDIS_CLUSTER_NODES": "h:7000"])
        #expect(config.redis.cluster?.nodes.map(\.host) == ["h"])
    }

    @Test("redis.url and redis.cluster are two topologies")
    func urlAndCluster() {
        let problems = Self.problems("redis:\n  url: redis://127.0.0.1:6379/0\n  cluster: { nodes: [\"127.0.0.1:7000\"] }")
        let problem = problems.first { $0.path == "redis.cluster" }
        #expect(problem?.source == "c.yaml")
        #expect(problem?.reason.contains("exactly one topology") == true, "\(problems)")
        #expect(problem?.reason.contains("redis.url") == true)
        #expect(problem?.reason.contains("database") == false)
    }

    @Test("a URL from the environment or a flag and a cluster section are two topologies")
    func urlFromEnvironmentOrFlag() {
        let yaml = "redis:\n  cluster: { nodes: [\"127.0.0.1:7000\"] }"
        let fromEnv = Self.problems(yaml, environment: ["SLUICE_REDIS_URL": "redis://127.0.0.1:6380/0"])
        #expect(fromEnv.contains { $0.path == "redis.cluster" && $0.reason.contains("SLUICE_REDIS_URL") }, "\(fromEnv)")
        let fromFlag = Self.problems(yaml, overrides: .init(redisURL: "redis://127.0.0.1:6380/0"))
        #expect(fromFlag.contains { $0.path == "redis.cluster" && $0.reason.contains("--redis-url") }, "\(fromFlag)")
    }

    @Test("SLUICE_REDIS_CLUSTER_NODES with a URL names the variable")
    func environmentClusterAndURL() {
        let problems = Self.problems(
            "redis:\n  url: redis://127.0.0.1:6379/0",
            environment: ["SLUICE_REDIS_CLUSTER_NODES": "127.0.0.1:7000"]
        )
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.source == "SLUICE_REDIS_CLUSTER_NODES")
        #expect(problems.first?.reason.contains("exactly one topology") == true)
        #expect(problems.first?.reason.contains("redis.url") == true)
    }

    @Test("a URL selecting a database other than 0 with a cluster says a cluster has database 0 only")
    func nonZeroDatabase() {
        let fromFile = Self.problems("redis:\n  url: redis://127.0.0.1:6379/3\n  cluster: { nodes: [\"127.0.0.1:7000\"] }")
        let problem = fromFile.first { $0.path == "redis.cluster" }
        #expect(problem?.reason.contains("exactly one topology") == true, "\(fromFile)")
        #expect(problem?.reason.contains("database 0 only") == true)
        #expect(problem?.reason.contains("database 3") == true)

        let fromEnv = Self.problems(
            "",
            environment: ["SLUICE_REDIS_CLUSTER_NODES": "127.0.0.1:7000", "SLUICE_REDIS_URL": "redis://127.0.0.1:6379/5"]
        )
        #expect(fromEnv.contains { $0.source == "SLUICE_REDIS_CLUSTER_NODES" && $0.reason.contains("database 5") }, "\(fromEnv)")
    }

    @Test("redis.sentinel and redis.cluster are two topologies")
    func sentinelAndCluster() {
        let yaml = """
            redis:
              sentinel: { master_name: m, nodes: ["127.0.0.1:26379"] }
              cluster: { nodes: ["127.0.0.1:7000"] }
            """
        let problems = Self.problems(yaml)
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.path == "redis.cluster")
        #expect(problems.first?.reason.contains("exactly one topology") == true)
        #expect(problems.first?.reason.contains("redis.sentinel") == true)
    }

    @Test(
        "a Sentinel and a cluster from the environment are two topologies",
        arguments: [
            ["SLUICE_REDIS_SENTINEL_MASTER": "m", "SLUICE_REDIS_SENTINEL_NODES": "127.0.0.1:26379"],
            [
                "SLUICE_REDIS_SENTINEL_MASTER": "m", "SLUICE_REDIS_SENTINEL_NODES": "127.0.0.1:26379",
                "SLUICE_REDIS_CLUSTER_NODES": "127.0.0.1:7000",
            ],
        ]
    )
    func sentinelAndClusterFromEnvironment(environment: [String: String]) {
        // The first: a cluster section with Sentinel variables; the second: only variables.
        let yaml = environment["SLUICE_REDIS_CLUSTER_NODES"] == nil ? "redis:\n  cluster: { nodes: [\"127.0.0.1:7000\"] }" : ""
        let problems = Self.problems(yaml, environment: environment)
        #expect(problems.count == 1, "\(problems)")
        let problem = problems.first
        #expect(problem?.reason.contains("exactly one topology") == true)
        #expect(problem?.reason.contains("SLUICE_REDIS_SENTINEL_NODES") == true)
        if environment["SLUICE_REDIS_CLUSTER_NODES"] == nil {
            #expect(problem?.path == "redis.cluster")
        } else {
            #expect(problem?.source == "SLUICE_REDIS_CLUSTER_NODES")
        }
    }

    @Test("an empty node list, or no nodes key, is refused", arguments: ["cluster: { nodes: [] }", "cluster: {}"])
    func emptyNodes(section: String) {
        let problems = Self.problems("redis:\n  " + section)
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.path == "redis.cluster.nodes")
        #expect(problems.first?.reason.contains("at least one seed node") == true)
    }

    @Test("an empty SLUICE_REDIS_CLUSTER_NODES names the variable", arguments: ["", " , ,"])
    func emptyEnvironmentNodes(value: String) {
        let problems = Self.problems("", environment: ["SLUICE_REDIS_CLUSTER_NODES": value])
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.source == "SLUICE_REDIS_CLUSTER_NODES")
        #expect(problems.first?.reason.contains("at least one seed node") == true)
    }

    @Test("every malformed node is named by its index")
    func badNodes() {
        let problems = Self.problems("redis:\n  cluster: { nodes: [\"127.0.0.1:7000\", \"nohost\", \"::1:6379\", \"h:65536\"] }")
        #expect(problems.map(\.path) == ["redis.cluster.nodes[1]", "redis.cluster.nodes[2]", "redis.cluster.nodes[3]"], "\(problems)")
        #expect(problems.allSatisfy { $0.reason.contains("host:port") })
        #expect(problems.first?.reason.contains("\"nohost\"") == true)
    }

    @Test("a malformed node in SLUICE_REDIS_CLUSTER_NODES names the variable")
    func badEnvironmentNode() {
        let problems = Self.problems("", environment: ["SLUICE_REDIS_CLUSTER_NODES": "127.0.0.1:7000,nohost:0"])
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.source == "SLUICE_REDIS_CLUSTER_NODES" && problems.first?.path == "")
        #expect(problems.first?.reason.contains("nohost:0") == true)
    }

    @Test("an unknown key under redis.cluster is refused")
    func unknownKey() {
        let problems = Self.problems("redis:\n  cluster: { nodes: [\"127.0.0.1:7000\"], password: x }")
        #expect(problems.first?.path == "redis.cluster.password", "\(problems)")
        #expect(problems.first?.reason.contains("unknown key (expected one of: nodes)") == true)
    }

    @Test("a nodes value that is not a list is refused")
    func nodesNotAList() {
        let problems = Self.problems("redis:\n  cluster: { nodes: \"127.0.0.1:7000\" }")
        #expect(problems.first?.path == "redis.cluster.nodes", "\(problems)")
    }
}
