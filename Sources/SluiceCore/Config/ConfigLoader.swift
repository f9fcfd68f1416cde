import Foundation
import Yams

/// Reads the YAML file, applies environment variables and flags (flag > environment >
/// file > default), validates everything and builds a ``SluiceConfig``.
///
/// Every problem is reported, each with its source, key path and reason.
public enum ConfigLoader {
    /// Log levels Sluice accepts (``SluiceConfig/LogLevel``), least severe first.
    public static let logLevels = SluiceConfig.LogLevel.allCases.map(\.rawValue)

    /// Loads a config file.
    /// - Parameters:
    ///   - path: the YAML file.
    ///   - environment: environment variables (`SLUICE_*`).
    ///   - overrides: command-line flags.
    /// - Throws: ``ConfigError`` with every problem found.
    public static func load(
        path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        overrides: ConfigOverrides = .init()
    ) throws(ConfigError) -> SluiceConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(problems: [.init(source: path, path: "", reason: "cannot read the file: \(error.localizedDescription)")])
        }
        return try self.parse(yaml: text, source: path, environment: environment, overrides: overrides)
    }

    /// Parses YAML text as a config file named `source`.
    /// - Throws: ``ConfigError`` with every problem found.
    public static func parse(
        yaml: String,
        source: String,
        environment: [String: String] = [:],
        overrides: ConfigOverrides = .init()
    ) throws(ConfigError) -> SluiceConfig {
        let file: ConfigFile
        do {
            if yaml.allSatisfy({ $0.isWhitespace }) {
                file = try YAMLDecoder().decode(ConfigFile.self, from: "{}")
            } else {
                file = try YAMLDecoder().decode(ConfigFile.self, from: yaml)
            }
        } catch {
            throw ConfigError(problems: [self.problem(decoding: error, source: source)])
        }
        var validator = ConfigValidator(source: source, environment: environment, overrides: overrides)
        guard let config = self.validate(file, with: &validator) else {
            throw ConfigError(problems: validator.problems)
        }
        return config
    }

    /// Validates every section, in the order their problems are reported, and builds the config;
    /// nil when `validator` found any problem. (That order is why `logging.level`, `usage` and
    /// `logging.format` interleave, and why the server's client tokens come after them.)
    private static func validate(_ file: ConfigFile, with validator: inout ConfigValidator) -> SluiceConfig? {
        let redis = validator.redis(file.redis)
        let server = validator.server(file.server)
        let bounds = validator.bounds(file.limits, maxPending: redis.maxPending)
        let admin = validator.admin(file.admin)
        let overLimitCacheEntries = validator.overLimitCacheEntries(file.overLimitCache)
        let logLevel = validator.logLevel(file.logging)
        let usageRetentionDays = validator.usageRetentionDays(file.usage)
        let logFormat = validator.logFormat(file.logging)
        let clientTokenDigests = validator.clientTokens(file.server)
        let plans = validator.plans(file.plans, usageRetentionDays: usageRetentionDays)
        let (keySecret, secretWarning) = validator.keySecret()
        let rules = validator.apiKeys(
            file.apiKeys, plans: plans, definedPlans: file.plans, digester: KeyDigester(secret: keySecret), maxKeyBytes: bounds.maxAPIKeyBytes
        )
        validator.requireSomethingToEnforce(file, adminOn: admin != nil)
        guard validator.problems.isEmpty else { return nil }
        return SluiceConfig(
            admin: admin,
            redis: redis,
            host: server.host,
            port: server.port,
            apiKeyHeader: server.apiKeyHeader,
            routeSource: server.routeSource,
            bodyTimeoutMs: server.bodyTimeoutMs,
            bounds: bounds,
            overLimitCacheEntries: overLimitCacheEntries,
            logLevel: logLevel,
            rules: rules,
            clientTokenDigests: clientTokenDigests,
            logFormat: logFormat,
            keySecret: keySecret,
            warnings: secretWarning.map { [$0] } ?? [],
            source: validator.source
        )
    }

    private static func problem(decoding error: any Error, source: String) -> ConfigError.Problem {
        switch error {
        case let error as UnknownConfigKey:
            let path = self.path(error.codingPath)
            return .init(source: source, path: path, reason: "unknown key (expected one of: \(error.allowed.joined(separator: ", ")))")
        case DecodingError.typeMismatch(let type, let context):
            return .init(source: source, path: self.path(context.codingPath), reason: "expected \(self.describe(type))")
        case DecodingError.valueNotFound(let type, let context):
            return .init(source: source, path: self.path(context.codingPath), reason: "expected \(self.describe(type)), found null")
        case DecodingError.keyNotFound(let key, let context):
            return .init(source: source, path: self.path(context.codingPath + [key]), reason: "is required")
        case DecodingError.dataCorrupted(let context):
            // Yams wraps what a nested init(from:) throws, and YAML syntax errors, this way.
            if let underlying = context.underlyingError {
                return self.problem(decoding: underlying, source: source)
            }
            return .init(source: source, path: self.path(context.codingPath), reason: context.debugDescription)
        case let error as YamlError:
            return .init(source: source, path: "", reason: "invalid YAML: \(error)")
        default:
            return .init(source: source, path: "", reason: "\(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is [String: Any].Type, is [String: ConfigFile.PlanSection].Type, is [String: ConfigFile.RouteSection].Type:
            return "a mapping"
        case is [Any].Type, is [ConfigFile.APIKeySection].Type: return "a list"
        default: return "a mapping"
        }
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += out.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return out
    }
}
