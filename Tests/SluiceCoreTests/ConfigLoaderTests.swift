import Foundation
import SluiceCore
import Testing

@Suite("Config v1")
struct ConfigLoaderTests {
    static func fixture(_ name: String) -> String {
        Bundle.module.url(forResource: name, withExtension: "yaml", subdirectory: "Fixtures")!.path
    }

    static func problems(_ name: String, environment: [String: String] = [:]) -> [ConfigError.Problem] {
        do {
            _ = try ConfigLoader.load(path: self.fixture(name), environment: environment)
            return []
        } catch {
            return error.problems
        }
    }

    @Test("a valid file yields its plans, keys, bounds and settings")
    func validFile() throws {
        let config = try ConfigLoader.load(path: Self.fixture("valid"), environment: ["SLUICE_KEY_SECRET": "s"])
        #expect(config.redis.url.host == "redis.internal")
        #expect(config.redis.url.port == 6380)
        #expect(config.redis.url.database == 2)
        #expect(config.redis.url.username == "user")
        #expect(config.redis.url.password == "p@ss")
        #expect(config.redis.timeoutMs == 50)
        #expect(config.host == "0.0.0.0")
        #expect(config.port == 9000)
        #expect(config.bounds == InputBounds(maxBodyBytes: 4096, maxAPIKeyBytes: 64, maxRouteBytes: 128, maxCost: 500))
        #expect(config.logLevel == "debug")
        #expect(config.warnings.isEmpty)

        let basic = try #require(config.rules.plans["ml-basic"])
        #expect(basic.onBackendError == .deny)
        #expect(basic.throttle?.kind == .bucket(TokenBucket(rate: 2, burst: 1)))
        #expect(basic.quota?.kind == .quota(Quota(limit: 1000, period: .week, offsetHours: 2)))
        #expect(basic.limits(for: nil).map(\.name) == ["throttle", "quota"])
        #expect(basic.limits(for: RequestRoute("POST /v1/predict")).map(\.name) == ["route:POST /v1/predict", "quota"])
        #expect(basic.limits(for: RequestRoute("GET /v1/models")).map(\.name) == ["throttle", "route:get /v1/models", "quota"])
        #expect(basic.limits(for: RequestRoute("GET /v1/other")).map(\.name) == ["throttle", "quota"])
        #expect(config.rules.plans["open"]?.onBackendError == .allow)

        // The key given as SHA-256 resolves from the raw key, with the same id a raw entry would get.
        let hello = try #require(config.rules.resolve(apiKey: "hello"))
        #expect(hello.plan.name == "open")
        #expect(hello.keyID == KeyDigester(secret: "s").keyID(apiKey: "hello"))
        #expect(config.rules.resolve(apiKey: "demo-key-123")?.plan.name == "ml-basic")
        #expect(config.rules.resolve(apiKey: "nope") == nil)
    }

    @Test("defaults apply to a file of one plan and key, with the default-secret warning")
    func defaults() throws {
        let config = try ConfigLoader.parse(yaml: Self.minimalRules, source: "minimal.yaml")
        #expect(config.redis.url == (try RedisURL("redis://127.0.0.1:6379/0")))
        #expect(config.redis.timeoutMs == 100)
        #expect(config.host == "127.0.0.1")
        #expect(config.port == 8080)
        #expect(config.bounds == InputBounds())
        #expect(config.logLevel == "info")
        #expect(config.keySecret == KeyDigester.defaultSecret)
        #expect(config.warnings.contains { $0.contains("SLUICE_KEY_SECRET") })
    }

    /// The least a config must hold: a plan and a key.
    static let minimalRules = "plans: { p: { throttle: { rate: 1, burst: 1 } } }\napi_keys: [ { key: k, plan: p } ]\n"

    @Test("a file with nothing to enforce is refused: no plans (empty or half-written), or plans and no key while no runtime key can exist")
    func nothingToEnforce() throws {
        for (yaml, path) in [("", "plans"), ("   \n", "plans"), ("redis: { timeout_ms: 100 }\n", "plans"), ("plans: {}\n", "plans"),
                             ("plans: { p: { throttle: { rate: 1, burst: 1 } } }\n", "api_keys"),
                             ("plans: { p: { throttle: { rate: 1, burst: 1 } } }\napi_keys: []\n", "api_keys")] {
            do {
                _ = try ConfigLoader.parse(yaml: yaml, source: "thin.yaml")
                Issue.record("\(yaml.debugDescription) must be refused")
            } catch {
                #expect(error.problems.map(\.path) == [path], "\(yaml.debugDescription): \(error.problems)")
            }
        }
        // With the admin API on, keys may all be created at runtime.
        let runtimeOnly = try ConfigLoader.parse(yaml: "admin: { port: 9091 }\nplans: { p: { throttle: { rate: 1, burst: 1 } } }\n", source: "a.yaml")
        #expect(runtimeOnly.rules.keyCount == 0 && runtimeOnly.admin != nil)
    }

    @Test("flag > environment > file > default")
    func precedence() throws {
        let yaml = """
            redis: { url: redis://file:1/0 }
            server: { host: file-host, port: 1111 }
            logging: { level: error }
            """ + "\n" + Self.minimalRules
        let env = ["SLUICE_REDIS_URL": "redis://env:2/0", "SLUICE_HOST": "env-host", "SLUICE_PORT": "2222", "SLUICE_LOG_LEVEL": "warning"]
        let fromFile = try ConfigLoader.parse(yaml: yaml, source: "f.yaml")
        #expect(fromFile.redis.url.host == "file" && fromFile.host == "file-host" && fromFile.port == 1111 && fromFile.logLevel == "error")
        let fromEnv = try ConfigLoader.parse(yaml: yaml, source: "f.yaml", environment: env)
        #expect(fromEnv.redis.url.host == "env" && fromEnv.host == "env-host" && fromEnv.port == 2222 && fromEnv.logLevel == "warning")
        let fromFlags = try ConfigLoader.parse(
            yaml: yaml, source: "f.yaml", environment: env,
            overrides: ConfigOverrides(host: "flag-host", port: 3333, redisURL: "redis://flag:3/0", logLevel: "debug")
        )
        #expect(fromFlags.redis.url.host == "flag" && fromFlags.host == "flag-host" && fromFlags.port == 3333 && fromFlags.logLevel == "debug")
    }

    @Test("a bad environment value names the variable")
    func badEnvironment() {
        let problems = Self.problems("valid", environment: ["SLUICE_PORT": "http"])
        #expect(problems.count == 1)
        #expect(problems.first?.source == "SLUICE_PORT")
    }

    /// One fixture per error class: each must fail naming the file, the key path and why.
    @Test(
        "each error class names the file, the key path and the reason",
        arguments: [
            ("unknown_key", "plans.p.throttle.brust", "unknown key"),
            ("unknown_top_level", "admin_port", "unknown key"),
            ("undefined_plan", "api_keys[1].plan", "not defined"),
            ("nonpositive_rate", "plans.p.throttle.rate", "positive"),
            ("nonpositive_burst", "plans.p.throttle.burst", "positive"),
            ("fractional_burst", "plans.p.throttle.burst", "integer"),
            ("bad_period", "plans.p.quota.period", "day, week or month"),
            ("bad_offset", "plans.p.quota.offset_hours", "between 0 and 23"),
            ("nonpositive_quota", "plans.p.quota.limit", "positive"),
            ("bad_backend_policy", "plans.p.on_backend_error", "deny or allow"),
            ("bad_route_key", "plans.p.routes./v1/predict", "POST /v1/predict"),
            ("bad_route_pattern", "plans.p.routes.GET /v1/*/files", "last segment"),
            ("tied_routes", "plans.p.routes.GET /v1/models/{name}", "ties with"),
            ("bad_headers", "plans.p.headers[1]", "ietf, legacy, openai or anthropic"),
            ("bad_unit", "plans.p.throttle.unit", "requests or tokens"),
            ("slow_refill", "plans.p.throttle", "at most 100000000 seconds"),
            ("batch_over_pending", "limits.max_batch_checks", "redis.max_pending"),
            ("duplicate_route", "plans.p.routes.post /v1/predict", "ties with"),
            ("bad_route_rate", "plans.p.routes.POST /v1/predict.rate", "positive"),
            ("missing_key", "api_keys[0]", "key or key_sha256"),
            ("both_keys", "api_keys[0]", "both"),
            ("bad_sha", "api_keys[0].key_sha256", "64 hexadecimal"),
            ("duplicate_api_key", "api_keys[1]", "same key"),
            ("wrong_type", "server.port", "integer"),
            ("bad_redis_url", "redis.url", "redis://"),
            ("bad_timeout", "redis.timeout_ms", "between"),
            ("bad_log_level", "logging.level", "one of"),
            ("bad_limits", "limits.max_cost", "between"),
            ("invalid_yaml", "", "invalid YAML"),
            ("missing_plan_field", "api_keys[0].plan", "required"),
            ("bad_route_from", "server.forward_auth.route_from", "original, forwarded or path"),
            ("bad_body_timeout", "server.body_timeout_ms", "between"),
            ("bad_initial_offset", "plans.p.quota.initial_offset", "between 0 and the quota's limit"),
            ("empty_stages", "plans.p.stages", "at least one stage"),
            ("tied_stage_routes", "plans.p.stages.api/prod.routes.GET /v1/models/{b}", "ties with"),
            ("tls_unreadable_ca", "redis.tls.ca_file", "cannot read the file /nonexistent/sluice-redis-ca.pem"),
            ("tls_ca_not_pem", "redis.tls.ca_file", "holds no PEM certificate"),
            ("tls_cert_without_key", "redis.tls.cert_file", "needs its private key"),
            ("tls_key_without_cert", "redis.tls.key_file", "needs its client certificate"),
            ("tls_address_server_name", "redis.tls.server_name", "must be a host name"),
            ("tls_unknown_key", "redis.tls.ca_path", "unknown key"),
            ("sentinel_and_url", "redis.sentinel", "exactly one topology"),
            ("sentinel_empty_nodes", "redis.sentinel.nodes", "at least one sentinel"),
            ("sentinel_bad_node", "redis.sentinel.nodes[1]", "host:port"),
            ("sentinel_missing_master", "redis.sentinel.master_name", "is required"),
            ("sentinel_unknown_key", "redis.sentinel.quorum", "unknown key"),
        ]
    )
    func errorClass(fixture: String, path: String, reason: String) {
        let problems = Self.problems(fixture)
        #expect(!problems.isEmpty, "\(fixture) must be rejected")
        let problem = problems.first { $0.path == path }
        #expect(problem != nil, "\(fixture): expected a problem at \(path), got \(problems)")
        #expect(problem?.reason.contains(reason) == true, "\(fixture): \(problems)")
        #expect(problem?.source.hasSuffix("\(fixture).yaml") == true)
        #expect(problem?.description.hasPrefix(Self.fixture(fixture)) == true)
    }

    @Test("every problem of a file is reported, not just the first")
    func allProblems() {
        let yaml = """
            plans:
              a: { throttle: { rate: 0, burst: 0 } }
              b: { quota: { limit: 1, period: year } }
            api_keys:
              - { key: x, plan: c }
            """
        do {
            _ = try ConfigLoader.parse(yaml: yaml, source: "multi.yaml")
            Issue.record("must fail")
        } catch {
            let paths = Set(error.problems.map(\.path))
            #expect(paths == ["plans.a.throttle.rate", "plans.a.throttle.burst", "plans.b.quota.period", "api_keys[0].plan"])
        }
    }

    @Test("the example config in deploy/ is valid")
    func exampleConfig() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let config = try ConfigLoader.load(path: root.appendingPathComponent("deploy/config/example.yaml").path, environment: [:])
        let plan = try #require(config.rules.plans["ml-basic"])
        #expect(plan.throttle?.kind == .bucket(TokenBucket(rate: 2, burst: 1)))
        #expect(plan.quota?.kind == .quota(Quota(limit: 1000, period: .week, offsetHours: 2)))
        #expect(plan.rule(for: RequestRoute("POST /v1/predict")!)?.limit.kind == .bucket(TokenBucket(rate: 10, burst: 5)))
        #expect(config.rules.resolve(apiKey: "demo-key-123") != nil)
        let llm = try #require(config.rules.plans["llm-chat"])
        #expect(llm.namedLimits.map(\.name) == ["daily", "spend", "tpm"])
        #expect(llm.concurrency == ConcurrencyLimit(limit: 4, leaseTTLMs: 30_000))
        #expect(llm.price(for: "gpt-4o") == ModelPrice(input: 2.5, output: 10, cachedInput: 1.25))
        #expect(config.rules.resolve(apiKey: "llm-demo-key")?.plan.name == "llm-chat")
    }

    @Test(
        "Redis URLs",
        arguments: [
            ("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, nil, nil, 0),
            ("redis://localhost", "localhost", 6379, nil, nil, 0),
            ("redis://:secret@h:7000/3", "h", 7000, nil, "secret", 3),
            ("redis://secret@h", "h", 6379, nil, "secret", 0),
            ("redis://alice:pw@[::1]:6390/1", "::1", 6390, "alice", "pw", 1),
        ] as [(String, String, Int, String?, String?, Int)]
    )
    func redisURLs(text: String, host: String, port: Int, user: String?, password: String?, db: Int) throws {
        let url = try RedisURL(text)
        #expect(url.host == host && url.port == port && url.username == user && url.password == password && url.database == db)
        #expect(!url.description.contains("secret") && !url.description.contains("pw"))
    }

    @Test("bad Redis URLs", arguments: ["rediss://h:0", "http://h", "redis://h:0", "redis://h:70000", "redis://h/x", "redis://", "127.0.0.1:6379"])
    func badRedisURLs(text: String) {
        #expect(throws: ConfigIssue.self) { try RedisURL(text) }
    }
}
