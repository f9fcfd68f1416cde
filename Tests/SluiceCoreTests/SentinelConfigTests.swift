import Testing

@testable import SluiceCore

@Suite("redis.sentinel in the config")
struct SentinelConfigTests {
    private static let rest = """
        plans:
          p: { throttle: { rate: 1, burst: 1 } }
        api_keys:
          - { key: k, plan: p }
        """

    @Test("the section, with the data nodes' and the sentinels' credentials")
    func section() throws {
        let yaml = """
            redis:
              sentinel:
                master_name: mymaster
                nodes: ["10.0.0.5:26379", "[::1]:26380", "sentinel-3.internal:26381"]
                username: watcher
                password: s3cret
              username: sluice
              password: data-pw
            """ + "\n" + Self.rest
        let config = try ConfigLoader.parse(yaml: yaml, source: "s.yaml")
        let sentinel = try #require(config.redis.sentinel)
        #expect(sentinel.masterName == "mymaster")
        #expect(sentinel.nodes.map(\.host) == ["10.0.0.5", "::1", "sentinel-3.internal"])
        #expect(sentinel.nodes.map(\.port) == [26379, 26380, 26381])
        #expect(sentinel.username == "watcher" && sentinel.password == "s3cret")
        #expect(config.redis.username == "sluice" && config.redis.password == "data-pw")
    }

    @Test("environment variables set the topology and win over the file")
    func environment() throws {
        let yaml = """
            redis:
              sentinel: { master_name: file-name, nodes: ["10.0.0.1:26379"] }
              password: file-pw
            """ + "\n" + Self.rest
        let config = try ConfigLoader.parse(
            yaml: yaml,
            source: "s.yaml",
            environment: [
                "SLUICE_REDIS_SENTINEL_MASTER": "env-name",
                "SLUICE_REDIS_SENTINEL_NODES": "127.0.0.1:26379, 127.0.0.1:26380",
                "SLUICE_REDIS_PASSWORD": "env-pw",
            ]
        )
        #expect(config.redis.sentinel?.masterName == "env-name")
        #expect(config.redis.sentinel?.nodes.map(\.port) == [26379, 26380])
        #expect(config.redis.password == "env-pw")

        let envOnly = try ConfigLoader.parse(
            yaml: Self.rest,
            source: "s.yaml",
            environment: ["SLUICE_REDIS_SENTINEL_MASTER": "m", "SLUICE_REDIS_SENTINEL_NODES": "127.0.0.1:26379"]
        )
        #expect(envOnly.redis.sentinel?.masterName == "m")
    }

    @Test("a URL from the environment and a sentinel section are two topologies")
    func twoTopologies() {
        let yaml = "redis:\n  sentinel: { master_name: m, nodes: [\"127.0.0.1:26379\"] }\n" + Self.rest
        #expect {
            try ConfigLoader.parse(yaml: yaml, source: "s.yaml", environment: ["SLUICE_REDIS_URL": "redis://127.0.0.1:6380/0"])
        } throws: { error in
            let problem = (error as? ConfigError)?.problems.first { $0.path == "redis.sentinel" }
            return problem?.reason.contains("SLUICE_REDIS_URL") == true
        }
    }

    @Test("a bad node in SLUICE_REDIS_SENTINEL_NODES names the variable")
    func badEnvironmentNode() {
        #expect {
            try ConfigLoader.parse(
                yaml: Self.rest,
                source: "s.yaml",
                environment: ["SLUICE_REDIS_SENTINEL_MASTER": "m", "SLUICE_REDIS_SENTINEL_NODES": "127.0.0.1:26379,nohost:0"]
            )
        } throws: { error in
            let problem = (error as? ConfigError)?.problems.first
            return problem?.source == "SLUICE_REDIS_SENTINEL_NODES" && problem?.reason.contains("nohost:0") == true
        }
    }

    @Test("host:port forms", arguments: ["h:1", "[::1]:6379", "10.0.0.5:26379"])
    func hostPort(text: String) {
        #expect(SluiceConfig.HostPort(text) != nil)
    }

    @Test("not host:port", arguments: ["h", "h:", ":1", "h:0", "h:65536", "::1:6379", "[::1]", "h :1", "h:x"])
    func notHostPort(text: String) {
        #expect(SluiceConfig.HostPort(text) == nil)
    }
}
