import Testing

@testable import SluiceCore

/// Flag > environment variable > file > default, for every setting that has all three, and the
/// source that won named in its problems.
@Suite("Config precedence")
struct ConfigPrecedenceTests {
    /// The least a config must hold: a plan and a key.
    static let rules = "plans: { p: { throttle: { rate: 1, burst: 1 } } }\napi_keys: [ { key: k, plan: p } ]\n"

    /// A setting given by a flag, a variable and a key of the file.
    struct ThreeSourceSetting: Sendable, CustomTestStringConvertible {
        let name: String
        /// The file's line that sets `value`.
        let yaml: @Sendable (String) -> String
        let variable: String
        let flag: String
        /// Overrides with the flag set to `value`.
        let overrides: @Sendable (String) -> ConfigOverrides
        /// The setting's value in a config, as text.
        let read: @Sendable (SluiceConfig) -> String
        /// Values from each source, and the default.
        let fileValue, envValue, flagValue, defaultValue: String
        /// A value no source may hold, the key path it is reported at in the file, and the reason.
        let bad: String
        let path: String
        let reason: String
        var testDescription: String { self.name }
    }

    static let settings: [ThreeSourceSetting] = [
        .init(
            name: "redis.url", yaml: { "redis: { url: \"\($0)\" }" }, variable: "SLUICE_REDIS_URL", flag: "--redis-url",
            overrides: { ConfigOverrides(redisURL: $0) }, read: { "\($0.redis.url)" },
            fileValue: "redis://file:1/0", envValue: "redis://env:2/0", flagValue: "redis://flag:3/0", defaultValue: "redis://127.0.0.1:6379/0",
            bad: "http://h", path: "redis.url", reason: "scheme must be redis:// or rediss:// (TLS), not http://"
        ),
        .init(
            name: "server.port", yaml: { "server: { port: \($0) }" }, variable: "SLUICE_PORT", flag: "--port",
            overrides: { ConfigOverrides(port: Int($0)!) }, read: { "\($0.port)" },
            fileValue: "1111", envValue: "2222", flagValue: "3333", defaultValue: "8080",
            bad: "70000", path: "server.port", reason: "must be 0-65535"
        ),
        .init(
            name: "logging.level", yaml: { "logging: { level: \"\($0)\" }" }, variable: "SLUICE_LOG_LEVEL", flag: "--log-level",
            overrides: { ConfigOverrides(logLevel: $0) }, read: { $0.logLevel.rawValue },
            fileValue: "error", envValue: "warning", flagValue: "debug", defaultValue: "info",
            bad: "loud", path: "logging.level", reason: "must be one of trace, debug, info, notice, warning, error, critical"
        ),
        .init(
            name: "server.host", yaml: { "server: { host: \"\($0)\" }" }, variable: "SLUICE_HOST", flag: "--host",
            overrides: { ConfigOverrides(host: $0) }, read: { $0.host },
            fileValue: "file-host", envValue: "env-host", flagValue: "flag-host", defaultValue: "127.0.0.1",
            bad: "", path: "server.host", reason: "must not be empty"
        ),
    ]

    static func parse(_ yaml: String, environment: [String: String] = [:], overrides: ConfigOverrides = .init()) throws(ConfigError) -> SluiceConfig {
        try ConfigLoader.parse(yaml: yaml + "\n" + Self.rules, source: "c.yaml", environment: environment, overrides: overrides)
    }

    static func problems(_ yaml: String, environment: [String: String] = [:], overrides: ConfigOverrides = .init()) -> [ConfigError.Problem] {
        do {
            _ = try Self.parse(yaml, environment: environment, overrides: overrides)
            return []
        } catch {
            return error.problems
        }
    }

    @Test("flag beats environment beats file beats default", arguments: Self.settings)
    func precedence(setting: ThreeSourceSetting) throws {
        #expect(setting.read(try Self.parse("")) == setting.defaultValue)
        let file = setting.yaml(setting.fileValue)
        #expect(setting.read(try Self.parse(file)) == setting.fileValue)
        let env = [setting.variable: setting.envValue]
        #expect(setting.read(try Self.parse("", environment: env)) == setting.envValue)
        #expect(setting.read(try Self.parse(file, environment: env)) == setting.envValue)
        let flag = setting.overrides(setting.flagValue)
        #expect(setting.read(try Self.parse("", overrides: flag)) == setting.flagValue)
        #expect(setting.read(try Self.parse(file, overrides: flag)) == setting.flagValue)
        #expect(setting.read(try Self.parse(file, environment: env, overrides: flag)) == setting.flagValue)
    }

    @Test("a value shadowed by a higher source is not checked", arguments: Self.settings)
    func shadowedValuesAreIgnored(setting: ThreeSourceSetting) throws {
        let badFile = setting.yaml(setting.bad)
        #expect(setting.read(try Self.parse(badFile, environment: [setting.variable: setting.envValue])) == setting.envValue)
        let flag = setting.overrides(setting.flagValue)
        #expect(setting.read(try Self.parse(badFile, environment: [setting.variable: setting.bad], overrides: flag)) == setting.flagValue)
    }

    @Test("a bad value is reported where it came from: the flag, else the variable, else the file's key",
          arguments: Self.settings.filter { $0.name != "server.host" })
    func problemNamesTheWinner(setting: ThreeSourceSetting) {
        let badFile = setting.yaml(setting.bad)
        let fromFile = Self.problems(badFile)
        #expect(fromFile.map(\.description) == ["c.yaml: \(setting.path): \(setting.reason)"])

        let fromEnv = Self.problems(badFile, environment: [setting.variable: setting.bad])
        let envReason = setting.name == "server.port" ? "must be an integer 0-65535, not \"\(setting.bad)\"" : setting.reason
        #expect(fromEnv.map(\.description) == ["\(setting.variable): \(envReason)"])

        let fromFlag = Self.problems(badFile, environment: [setting.variable: setting.bad], overrides: setting.overrides(setting.bad))
        #expect(fromFlag.map(\.description) == ["\(setting.flag): \(setting.reason)"])
    }

    @Test("an empty host is reported at server.host in the file, whichever source gave it")
    func emptyHostIsReportedAtTheKey() {
        let expected = ["c.yaml: server.host: must not be empty"]
        #expect(Self.problems("server: { host: \"\" }").map(\.description) == expected)
        #expect(Self.problems("", environment: ["SLUICE_HOST": ""]).map(\.description) == expected)
        #expect(Self.problems("", overrides: ConfigOverrides(host: "")).map(\.description) == expected)
    }

    @Test("a variable's port must be an integer; its text is quoted")
    func portVariableText() {
        for text in ["http", "", "80.5", "-1"] {
            let problems = Self.problems("", environment: ["SLUICE_PORT": text])
            #expect(problems.map(\.description) == ["SLUICE_PORT: must be an integer 0-65535, not \"\(text)\""])
        }
        #expect(Self.problems("", overrides: ConfigOverrides(port: -1)).map(\.description) == ["--port: must be 0-65535"])
    }

    @Test("a topology conflict names the source of the URL that won")
    func urlSourceInTopologyConflicts() {
        let yaml = "redis: { url: \"redis://file:1/0\", sentinel: { master_name: m, nodes: [\"s:26379\"] } }"
        func reason(_ environment: [String: String] = [:], _ overrides: ConfigOverrides = .init()) -> [String] {
            Self.problems(yaml, environment: environment, overrides: overrides).map(\.reason)
        }
        let conflict = "set exactly one topology: redis.url (standalone) or redis.sentinel, not both (a URL comes from "
        #expect(reason() == [conflict + "redis.url)"])
        #expect(reason(["SLUICE_REDIS_URL": "redis://env:2/0"]) == [conflict + "SLUICE_REDIS_URL)"])
        #expect(reason(["SLUICE_REDIS_URL": "redis://env:2/0"], ConfigOverrides(redisURL: "redis://flag:3/0")) == [conflict + "--redis-url)"])
    }

    @Test("the log level is typed, read in any case, and listed in severity order")
    func typedLogLevel() throws {
        #expect(try Self.parse("logging: { level: WARNING }").logLevel == .warning)
        #expect(try Self.parse("", overrides: ConfigOverrides(logLevel: "Trace")).logLevel == .trace)
        #expect(ConfigLoader.logLevels == ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        #expect(SluiceConfig.LogLevel.allCases.map(\.rawValue) == ConfigLoader.logLevels)
    }

    @Test("the log format is typed: variable > file > json")
    func typedLogFormat() throws {
        #expect(try Self.parse("").logFormat == .json)
        #expect(try Self.parse("logging: { format: TEXT }").logFormat == .text)
        #expect(try Self.parse("logging: { format: text }", environment: ["SLUICE_LOG_FORMAT": "json"]).logFormat == .json)
        #expect(Self.problems("", environment: ["SLUICE_LOG_FORMAT": "xml"]).map(\.description) == ["SLUICE_LOG_FORMAT: must be json or text"])
        #expect(Self.problems("logging: { format: xml }").map(\.description) == ["c.yaml: logging.format: must be json or text"])
    }

    @Test("variable > file > default for the settings without a flag")
    func environmentOverFile() throws {
        let yaml = "admin: { host: a.file, port: 9091 }\nserver: { forward_auth: { route_from: forwarded } }\nredis: { password: file-pw }"
        let fromFile = try Self.parse(yaml)
        #expect(fromFile.admin?.host == "a.file" && fromFile.admin?.port == 9091)
        #expect(fromFile.routeSource == .forwarded && fromFile.redis.password == "file-pw")
        let environment = [
            "SLUICE_ADMIN_HOST": "a.env", "SLUICE_ADMIN_PORT": "9092", "SLUICE_FORWARD_AUTH_ROUTE_FROM": "path", "SLUICE_REDIS_PASSWORD": "env-pw",
        ]
        let fromEnv = try Self.parse(yaml, environment: environment)
        #expect(fromEnv.admin?.host == "a.env" && fromEnv.admin?.port == 9092)
        #expect(fromEnv.routeSource == .path && fromEnv.redis.password == "env-pw")
        let defaults = try Self.parse("")
        #expect(defaults.admin == nil && defaults.routeSource == .original && defaults.redis.password == nil)
    }

    // MARK: The resolver itself

    @Test("the resolver takes the first source that has a value and says which")
    func resolver() {
        let resolver = SettingResolver(environment: ["V": "env", "EMPTY": ""])
        func resolve(flag: String?, env: String, file: String?) -> Setting<String> {
            resolver.resolve("a.b", flag: ("--f", flag), env: env, file: file, default: "dflt")
        }
        let byFlag = resolve(flag: "flag", env: "V", file: "file")
        #expect(byFlag.value == "flag" && byFlag.source == .flag("--f") && byFlag.sourceName == "--f")
        let byEnv = resolve(flag: nil, env: "V", file: "file")
        #expect(byEnv.value == "env" && byEnv.source == .environment("V") && byEnv.sourceName == "V")
        let byFile = resolve(flag: nil, env: "UNSET", file: "file")
        #expect(byFile.value == "file" && byFile.source == .file && byFile.sourceName == "a.b")
        let byDefault = resolve(flag: nil, env: "UNSET", file: nil)
        #expect(byDefault.value == "dflt" && byDefault.source == .byDefault && byDefault.sourceName == nil)
        // A variable that is set wins even when empty.
        #expect(resolve(flag: nil, env: "EMPTY", file: "file").value == "")

        #expect(byFlag.problemLocation() == ("", "--f"))
        #expect(byEnv.problemLocation() == ("", "V"))
        #expect(byFile.problemLocation(item: 2) == ("a.b[2]", nil))
        #expect(byDefault.problemLocation() == ("a.b", nil))
    }

    @Test("an integer setting: absent stays absent, a variable's text may not parse")
    func integerResolver() throws {
        let resolver = SettingResolver(environment: ["N": "12", "BAD": "x"])
        #expect(resolver.integer("p", flag: ("--p", nil), env: "UNSET", file: nil) == nil)
        let byFile = try #require(resolver.integer("p", flag: ("--p", nil), env: "UNSET", file: 5))
        #expect(byFile.value == 5 && byFile.source == .file)
        let byEnv = try #require(resolver.integer("p", flag: ("--p", nil), env: "N", file: 5))
        #expect(byEnv.value == 12 && byEnv.source == .environment("N"))
        let unparsed = try #require(resolver.integer("p", env: "BAD", file: 5))
        #expect(unparsed.value == nil && unparsed.source == .environment("BAD"))
        #expect(resolver.integer("p", flag: ("--p", 7), env: "BAD", file: 5)?.value == 7)
    }

    @Test("a list setting: a variable holds its items comma-separated")
    func listResolver() {
        let resolver = SettingResolver(environment: ["L": " a:1, ,b:2,", "E": ""])
        #expect(resolver.list("l", env: "L", file: ["f:1"])?.value == ["a:1", "b:2"])
        #expect(resolver.list("l", env: "E", file: ["f:1"])?.value == [])
        #expect(resolver.list("l", env: "UNSET", file: ["f:1"])?.value == ["f:1"])
        #expect(resolver.list("l", env: "UNSET", file: nil) == nil)
    }
}
