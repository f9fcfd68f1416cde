import Foundation
import Yams

/// Reads the YAML file, applies environment variables and flags (flag > environment >
/// file > default), validates everything and builds a ``SluiceConfig``.
///
/// Every problem is reported, each with its source, key path and reason.
public enum ConfigLoader {
    /// Log levels Sluice accepts.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

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
        var validator = Validator(source: source, environment: environment, overrides: overrides)
        let config = validator.validate(file)
        guard validator.problems.isEmpty, let config else {
            throw ConfigError(problems: validator.problems)
        }
        return config
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

/// Validation of a decoded file, collecting every problem.
private struct Validator {
    let source: String
    let environment: [String: String]
    let overrides: ConfigOverrides
    var problems: [ConfigError.Problem] = []
    var usageRetentionDays = 90

    init(source: String, environment: [String: String], overrides: ConfigOverrides) {
        self.source = source
        self.environment = environment
        self.overrides = overrides
    }

    mutating func fail(_ path: String, _ reason: String, source: String? = nil) {
        self.problems.append(.init(source: source ?? self.source, path: path, reason: reason))
    }

    /// A value with its origin: flag, environment variable, file or default.
    private func pick<T>(flag: T?, flagName: String, env: String, file: T?, parse: (String) -> T?) -> (T?, String?, String?) {
        if let flag { return (flag, flagName, nil) }
        if let raw = self.environment[env] {
            return (parse(raw), env, raw)
        }
        return (file, nil, nil)
    }

    mutating func validate(_ file: ConfigFile) -> SluiceConfig? {
        // redis
        let redisSection = file.redis
        var redisURL = try! RedisURL("redis://127.0.0.1:6379/0")
        let urlText: String?
        let urlSource: String?
        if let flag = self.overrides.redisURL {
            (urlText, urlSource) = (flag, "--redis-url")
        } else if let env = self.environment["SLUICE_REDIS_URL"] {
            (urlText, urlSource) = (env, "SLUICE_REDIS_URL")
        } else {
            (urlText, urlSource) = (redisSection?.url, nil)
        }
        if let urlText {
            do {
                redisURL = try RedisURL(urlText)
            } catch {
                self.fail(urlSource == nil ? "redis.url" : "", error.reason, source: urlSource)
            }
        }
        let timeoutMs = self.bounded(redisSection?.timeoutMs, "redis.timeout_ms", default: 100, 1...60_000)
        let connectTimeoutMs = self.bounded(redisSection?.connectTimeoutMs, "redis.connect_timeout_ms", default: 1000, 1...60_000)
        let perLoop = self.bounded(redisSection?.connectionsPerLoop, "redis.connections_per_loop", default: 1, 1...64)
        let maxPending = self.bounded(redisSection?.maxPending, "redis.max_pending", default: 1024, 1...1_000_000)
        let redisTLS = self.redisTLS(redisSection?.tls, urlTLS: redisURL.tls)
        let givenURLSource = urlText == nil ? nil : urlSource ?? "redis.url"
        let sentinel = self.redisSentinel(redisSection?.sentinel, urlSource: givenURLSource)
        let sentinelSource = redisSection?.sentinel != nil
            ? "redis.sentinel"
            : ["SLUICE_REDIS_SENTINEL_NODES", "SLUICE_REDIS_SENTINEL_MASTER"].first { self.environment[$0] != nil }
        let cluster = self.redisCluster(
            redisSection?.cluster, urlSource: givenURLSource, urlDatabase: redisURL.database, sentinelSource: sentinelSource
        )
        let redisPassword = self.environment["SLUICE_REDIS_PASSWORD"] ?? redisSection?.password

        // server
        var host = file.server?.host ?? "127.0.0.1"
        if let flag = self.overrides.host {
            host = flag
        } else if let env = self.environment["SLUICE_HOST"] {
            host = env
        }
        if host.isEmpty { self.fail("server.host", "must not be empty") }
        var port = 8080
        if let flag = self.overrides.port {
            if (0...65535).contains(flag) { port = flag } else { self.fail("", "must be 0-65535", source: "--port") }
        } else if let env = self.environment["SLUICE_PORT"] {
            if let value = Int(env), (0...65535).contains(value) { port = value } else {
                self.fail("", "must be an integer 0-65535, not \"\(env)\"", source: "SLUICE_PORT")
            }
        } else if let value = file.server?.port {
            if (0...65535).contains(value) { port = value } else { self.fail("server.port", "must be 0-65535") }
        }

        let apiKeyHeader = file.server?.apiKeyHeader ?? "X-API-Key"
        if apiKeyHeader.isEmpty || RequestRoute("\(apiKeyHeader) /") == nil || apiKeyHeader.contains("*") {
            self.fail("server.api_key_header", "must be an HTTP header name")
        }
        var routeSource = ForwardAuthRouteSource.original
        let routeSourceText = self.environment["SLUICE_FORWARD_AUTH_ROUTE_FROM"] ?? file.server?.forwardAuth?.routeFrom
        if let text = routeSourceText {
            if let value = ForwardAuthRouteSource(rawValue: text.lowercased()) {
                routeSource = value
            } else {
                let fromEnv = self.environment["SLUICE_FORWARD_AUTH_ROUTE_FROM"] != nil
                self.fail(
                    fromEnv ? "" : "server.forward_auth.route_from", "must be original, forwarded or path, not \"\(text)\"",
                    source: fromEnv ? "SLUICE_FORWARD_AUTH_ROUTE_FROM" : nil
                )
            }
        }
        let bodyTimeoutMs = self.bounded(file.server?.bodyTimeoutMs, "server.body_timeout_ms", default: 10_000, 1...600_000)

        // limits
        let defaults = InputBounds()
        let bounds = InputBounds(
            maxBodyBytes: self.bounded(file.limits?.maxBodyBytes, "limits.max_body_bytes", default: defaults.maxBodyBytes, 64...(64 << 20)),
            maxAPIKeyBytes: self.bounded(file.limits?.maxAPIKeyBytes, "limits.max_api_key_bytes", default: defaults.maxAPIKeyBytes, 1...65536),
            maxRouteBytes: self.bounded(file.limits?.maxRouteBytes, "limits.max_route_bytes", default: defaults.maxRouteBytes, 1...65536),
            maxCost: self.bounded(file.limits?.maxCost, "limits.max_cost", default: defaults.maxCost, 1...1_000_000_000_000),
            maxBatchBodyBytes: self.bounded(
                file.limits?.maxBatchBodyBytes, "limits.max_batch_body_bytes", default: defaults.maxBatchBodyBytes, 64...(256 << 20)
            ),
            maxBatchChecks: self.bounded(file.limits?.maxBatchChecks, "limits.max_batch_checks", default: defaults.maxBatchChecks, 1...100_000)
        )

        if bounds.maxBatchChecks > maxPending {
            self.fail(
                "limits.max_batch_checks",
                "must not exceed redis.max_pending (\(maxPending)): a batch is written to one connection at once"
            )
        }

        // admin: on when a port or tokens are configured (tokens alone: port 9090)
        var admin: SluiceConfig.Admin?
        var adminHost = file.admin?.host ?? "127.0.0.1"
        if let env = self.environment["SLUICE_ADMIN_HOST"] { adminHost = env }
        var adminPort = file.admin?.port
        if let env = self.environment["SLUICE_ADMIN_PORT"] {
            if let value = Int(env), (0...65535).contains(value) { adminPort = value } else {
                self.fail("", "must be an integer 0-65535, not \"\(env)\"", source: "SLUICE_ADMIN_PORT")
            }
        } else if let value = adminPort, !(0...65535).contains(value) {
            self.fail("admin.port", "must be 0-65535")
        }
        let digests = self.tokenDigests(env: "SLUICE_ADMIN_TOKENS", file: file.admin?.tokensSHA256, path: "admin.tokens_sha256")
        if adminPort != nil || !digests.isEmpty {
            admin = SluiceConfig.Admin(host: adminHost, port: adminPort ?? 9090, tokenDigests: digests)
        }

        // over_limit_cache (on by default)
        var cacheEntries = self.bounded(file.overLimitCache?.maxEntries, "over_limit_cache.max_entries", default: 100_000, 2...10_000_000)
        if file.overLimitCache?.enabled == false {
            cacheEntries = 0
        }

        // logging
        var logLevel = file.logging?.level ?? "info"
        var levelSource: String?
        if let flag = self.overrides.logLevel {
            (logLevel, levelSource) = (flag, "--log-level")
        } else if let env = self.environment["SLUICE_LOG_LEVEL"] {
            (logLevel, levelSource) = (env, "SLUICE_LOG_LEVEL")
        }
        logLevel = logLevel.lowercased()
        if !ConfigLoader.logLevels.contains(logLevel) {
            self.fail(levelSource == nil ? "logging.level" : "", "must be one of \(ConfigLoader.logLevels.joined(separator: ", "))", source: levelSource)
        }

        // usage
        self.usageRetentionDays = self.bounded(file.usage?.retentionDays, "usage.retention_days", default: 90, 0...3660)

        // logging format
        let logFormat = (self.environment["SLUICE_LOG_FORMAT"] ?? file.logging?.format ?? "json").lowercased()
        if !["json", "text"].contains(logFormat) {
            self.fail(file.logging?.format == nil ? "" : "logging.format", "must be json or text", source: self.environment["SLUICE_LOG_FORMAT"] == nil ? nil : "SLUICE_LOG_FORMAT")
        }

        // client tokens: when set, decision endpoints need X-Sluice-Token
        let clientDigests = self.tokenDigests(
            env: "SLUICE_CLIENT_TOKENS", file: file.server?.clientTokensSHA256, path: "server.client_tokens_sha256"
        )

        // plans
        var plans: [String: Plan] = [:]
        for (name, section) in (file.plans ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let plan = self.plan(name: name, section: section) {
                plans[name] = plan
            }
        }

        // keys
        var warnings: [String] = []
        let secret: String
        if let env = self.environment["SLUICE_KEY_SECRET"], !env.isEmpty {
            secret = env
        } else {
            secret = KeyDigester.defaultSecret
            warnings.append(
                "SLUICE_KEY_SECRET is not set: key ids use the built-in default secret; set the same secret on every instance"
            )
        }
        let digester = KeyDigester(secret: secret)
        var rawKeys: [String: KeyEntry] = [:]
        var shaKeys: [[UInt8]: KeyEntry] = [:]
        var seen: [[UInt8]: Int] = [:]
        var names: [String: String] = [:]
        for (index, entry) in (file.apiKeys ?? []).enumerated() {
            let path = "api_keys[\(index)]"
            let plan = plans[entry.plan]
            if plan == nil {
                if file.plans?[entry.plan] == nil {
                    self.fail(path + ".plan", "plan \"\(entry.plan)\" is not defined under plans")
                }
            }
            let digest: [UInt8]
            switch (entry.key, entry.keySHA256) {
            case (nil, nil):
                self.fail(path, "needs key or key_sha256")
                continue
            case (.some, .some):
                self.fail(path, "has both key and key_sha256; give one")
                continue
            case (let key?, nil):
                if key.isEmpty {
                    self.fail(path + ".key", "must not be empty")
                    continue
                }
                if key.utf8.count > bounds.maxAPIKeyBytes {
                    self.fail(path + ".key", "is longer than limits.max_api_key_bytes (\(bounds.maxAPIKeyBytes))")
                    continue
                }
                digest = KeyDigester.sha256(of: key)
            case (nil, let hex?):
                guard hex.utf8.count == 64, let bytes = Hex.decode(hex) else {
                    self.fail(path + ".key_sha256", "must be 64 hexadecimal characters (the SHA-256 of the key)")
                    continue
                }
                digest = bytes
            }
            if let first = seen[digest] {
                self.fail(path, "the same key as api_keys[\(first)]")
                continue
            }
            seen[digest] = index
            guard let plan else { continue }
            let keyEntry = KeyEntry(keyID: digester.keyID(sha256: digest), plan: plan)
            if let name = entry.name {
                if name.utf8.count > 200 {
                    self.fail(path + ".name", "must be at most 200 bytes")
                }
                names[keyEntry.keyID] = name
            }
            if let key = entry.key {
                rawKeys[key] = keyEntry
            } else {
                shaKeys[digest] = keyEntry
            }
        }

        // A file with nothing to enforce is almost always a mistake (an empty or half-written
        // file): every key would turn unknown and every request be refused.
        if (file.plans ?? [:]).isEmpty {
            self.fail("plans", "at least one plan is required (a config without plans refuses every request)")
        } else if (file.apiKeys ?? []).isEmpty && admin == nil {
            self.fail(
                "api_keys",
                "at least one key is required when the admin API is off (admin:): no runtime key can exist, so every request would be refused"
            )
        }

        guard self.problems.isEmpty else { return nil }
        return SluiceConfig(
            admin: admin,
            redis: .init(
                url: redisURL,
                timeoutMs: timeoutMs,
                connectTimeoutMs: connectTimeoutMs,
                connectionsPerLoop: perLoop,
                maxPending: maxPending,
                tls: redisTLS,
                sentinel: sentinel,
                cluster: cluster,
                username: redisSection?.username,
                password: redisPassword
            ),
            host: host,
            port: port,
            apiKeyHeader: apiKeyHeader,
            routeSource: routeSource,
            bodyTimeoutMs: bodyTimeoutMs,
            bounds: bounds,
            overLimitCacheEntries: cacheEntries,
            logLevel: logLevel,
            rules: RuleSet(plans: plans, rawKeys: rawKeys, sha256Keys: shaKeys, names: names),
            clientTokenDigests: clientDigests,
            logFormat: logFormat,
            keySecret: secret,
            warnings: warnings,
            source: self.source
        )
    }

    /// SHA-256 digests of bearer tokens: raw tokens from `env` (comma-separated) replace the
    /// file's hex digests at `path`.
    private mutating func tokenDigests(env: String, file: [String]?, path: String) -> [[UInt8]] {
        if let raw = self.environment[env] {
            return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .map { KeyDigester.sha256(of: $0) }
        }
        var digests: [[UInt8]] = []
        for (index, hex) in (file ?? []).enumerated() {
            if hex.utf8.count == 64, let bytes = Hex.decode(hex) {
                digests.append(bytes)
            } else {
                self.fail("\(path)[\(index)]", "must be 64 hexadecimal characters (the SHA-256 of a token)")
            }
        }
        return digests
    }

    /// `redis.sentinel` and its `SLUICE_REDIS_SENTINEL_*` variables (a variable wins over its key).
    /// A URL from any source as well is an error: a config names exactly one topology.
    private mutating func redisSentinel(_ section: ConfigFile.SentinelSection?, urlSource: String?) -> SluiceConfig.Sentinel? {
        let masterEnv = self.environment["SLUICE_REDIS_SENTINEL_MASTER"]
        let nodesEnv = self.environment["SLUICE_REDIS_SENTINEL_NODES"]
        guard section != nil || masterEnv != nil || nodesEnv != nil else { return nil }
        if let urlSource {
            self.fail(
                "redis.sentinel",
                "set exactly one topology: redis.url (standalone) or redis.sentinel, not both (a URL comes from \(urlSource))"
            )
        }
        var ok = true
        let masterName = masterEnv ?? section?.masterName
        if masterName == nil || masterName?.isEmpty == true {
            ok = false
            self.fail(
                "redis.sentinel.master_name",
                "is required: the name the sentinels monitor the master under (or SLUICE_REDIS_SENTINEL_MASTER)",
                source: masterEnv == nil ? nil : "SLUICE_REDIS_SENTINEL_MASTER"
            )
        }
        let nodes = self.hostPorts(env: "SLUICE_REDIS_SENTINEL_NODES", file: section?.nodes, path: "redis.sentinel.nodes", what: "sentinel")
        guard ok, let masterName, let nodes else { return nil }
        return SluiceConfig.Sentinel(masterName: masterName, nodes: nodes, username: section?.username, password: section?.password)
    }

    /// `redis.cluster` and `SLUICE_REDIS_CLUSTER_NODES` (the variable wins over the key). A URL or
    /// a Sentinel from any source as well is an error: a config names exactly one topology. A
    /// cluster has database 0 only, and a database can only come with a URL, so that case is the same.
    private mutating func redisCluster(
        _ section: ConfigFile.ClusterSection?,
        urlSource: String?,
        urlDatabase: Int,
        sentinelSource: String?
    ) -> SluiceConfig.Cluster? {
        let nodesEnv = "SLUICE_REDIS_CLUSTER_NODES"
        let fromEnv = self.environment[nodesEnv] != nil
        guard section != nil || fromEnv else { return nil }
        // A topology problem names what asked for the cluster: the variable, else the section.
        let (path, source) = fromEnv ? ("", nodesEnv) : ("redis.cluster", nil as String?)
        if let urlSource {
            var reason = "set exactly one topology: redis.url (standalone) or redis.cluster, not both (a URL comes from \(urlSource))"
            if urlDatabase != 0 {
                reason += "; a cluster has database 0 only, and that URL selects database \(urlDatabase)"
            }
            self.fail(path, reason, source: source)
        }
        if let sentinelSource {
            self.fail(
                path,
                "set exactly one topology: redis.sentinel or redis.cluster, not both (a Sentinel comes from \(sentinelSource))",
                source: source
            )
        }
        let nodes = self.hostPorts(env: nodesEnv, file: section?.nodes, path: "redis.cluster.nodes", what: "seed node")
        return nodes.map { SluiceConfig.Cluster(nodes: $0) }
    }

    /// A list of `host:port` nodes: the variable `env` (comma-separated) wins over the file's list
    /// at `path`. Reports an empty list (`what` names a node) and every malformed node, then
    /// returns nil.
    private mutating func hostPorts(env: String, file: [String]?, path: String, what: String) -> [SluiceConfig.HostPort]? {
        let texts: [String]
        let nodesPath: String
        let nodesSource: String?
        if let raw = self.environment[env] {
            texts = raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            (nodesPath, nodesSource) = ("", env)
        } else {
            texts = file ?? []
            (nodesPath, nodesSource) = (path, nil)
        }
        var ok = true
        if texts.isEmpty {
            ok = false
            self.fail(nodesPath, "must list at least one \(what) as host:port", source: nodesSource)
        }
        var nodes: [SluiceConfig.HostPort] = []
        for (index, text) in texts.enumerated() {
            guard let node = SluiceConfig.HostPort(text) else {
                ok = false
                let path = nodesSource == nil ? "\(nodesPath)[\(index)]" : ""
                self.fail(path, "must be host:port with a port 1-65535 ([v6]:port for IPv6), not \"\(text)\"", source: nodesSource)
                continue
            }
            nodes.append(node)
        }
        return ok ? nodes : nil
    }

    /// `redis.tls` and its `SLUICE_REDIS_TLS_*` variables: on with the section, any variable or a
    /// `rediss://` URL. Files are read here so that `check-config` names an unreadable one.
    private mutating func redisTLS(_ section: ConfigFile.TLSSection?, urlTLS: Bool) -> SluiceConfig.TLS? {
        // A variable wins over the file; a problem names the variable, or the key path.
        func pick(_ file: String?, _ key: String, _ env: String) -> (value: String?, path: String, source: String?) {
            if let raw = self.environment[env] { return (raw, "", env) }
            return (file, "redis.tls." + key, nil)
        }
        let ca = pick(section?.caFile, "ca_file", "SLUICE_REDIS_TLS_CA_FILE")
        let cert = pick(section?.certFile, "cert_file", "SLUICE_REDIS_TLS_CERT_FILE")
        let key = pick(section?.keyFile, "key_file", "SLUICE_REDIS_TLS_KEY_FILE")
        let name = pick(section?.serverName, "server_name", "SLUICE_REDIS_TLS_SERVER_NAME")
        let anyEnv = [ca, cert, key, name].contains { $0.source != nil }
        guard section != nil || urlTLS || anyEnv else { return nil }

        if cert.value != nil, key.value == nil {
            self.fail(cert.path, "a client certificate needs its private key: set redis.tls.key_file too", source: cert.source)
        } else if key.value != nil, cert.value == nil {
            self.fail(key.path, "a private key needs its client certificate: set redis.tls.cert_file too", source: key.source)
        }
        for (entry, marker, what) in [
            (ca, "-----BEGIN CERTIFICATE-----", "PEM certificate"),
            (cert, "-----BEGIN CERTIFICATE-----", "PEM certificate"),
            (key, "PRIVATE KEY-----", "PEM private key"),
        ] {
            guard let path = entry.value else { continue }
            guard !path.isEmpty else {
                self.fail(entry.path, "must be a file path, not empty", source: entry.source)
                continue
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else {
                self.fail(entry.path, "cannot read the file \(path)", source: entry.source)
                continue
            }
            if !String(decoding: data, as: UTF8.self).contains(marker) {
                self.fail(entry.path, "\(path) holds no \(what) (no \"\(marker)\" line)", source: entry.source)
            }
        }
        if let serverName = name.value {
            if serverName.isEmpty {
                self.fail(name.path, "must not be empty (leave it out to verify the URL's host)", source: name.source)
            } else if serverName.contains(":") || serverName.allSatisfy({ $0.isNumber || $0 == "." }) {
                self.fail(
                    name.path,
                    "must be a host name, not an address: an address host is verified from the URL's host",
                    source: name.source
                )
            }
        }
        return SluiceConfig.TLS(caFile: ca.value, certFile: cert.value, keyFile: key.value, serverName: name.value)
    }

    private mutating func bounded(_ value: Int?, _ path: String, default fallback: Int, _ range: ClosedRange<Int>) -> Int {
        guard let value else { return fallback }
        guard range.contains(value) else {
            self.fail(path, "must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return fallback
        }
        return value
    }

    private mutating func bucket(rate: Double, burst: Int, path: String) -> TokenBucket? {
        var ok = true
        if !(rate > 0) || !rate.isFinite {
            self.fail(path + ".rate", "must be a positive number, not \(rate)")
            ok = false
        } else if rate > 1_000_000 {
            self.fail(path + ".rate", "must be at most 1000000 per second")
            ok = false
        }
        if burst <= 0 {
            self.fail(path + ".burst", "must be a positive integer, not \(burst)")
            ok = false
        } else if burst > 1_000_000_000 {
            self.fail(path + ".burst", "must be at most 1000000000")
            ok = false
        }
        // A bucket takes burst / rate seconds to refill; beyond ~3 years the script's
        // microsecond arithmetic would lose precision.
        if ok, Double(burst) / rate > 1e8 {
            self.fail(path, "burst / rate must be at most 100000000 seconds (about 3 years) to refill")
            ok = false
        }
        return ok ? TokenBucket(rate: rate, burst: burst) : nil
    }

    private mutating func unit(_ text: String?, path: String) -> LimitUnit {
        guard let text else { return .requests }
        guard let unit = LimitUnit(rawValue: text.lowercased()) else {
            self.fail(path, "must be requests or tokens, not \"\(text)\"")
            return .requests
        }
        return unit
    }

    /// The route rules of a `routes` mapping at `path` (a plan's, or a stage's when `stage` is set).
    private mutating func routeRules(_ sections: [String: ConfigFile.RouteSection], path: String, stage: String?) -> [RouteRule] {
        var rules: [RouteRule] = []
        var shapes: [String: String] = [:]
        var seenSuffixes: [String: String] = [:]
        for (key, route) in sections.sorted(by: { $0.key < $1.key }) {
            let rpath = path + "." + key
            let pattern: RoutePattern
            do {
                pattern = try RoutePattern(key)
            } catch {
                self.fail(rpath, error.reason)
                continue
            }
            if let other = shapes[pattern.description] {
                self.fail(rpath, "ties with \"\(other)\": both match the same requests equally specifically")
                continue
            }
            shapes[pattern.description] = key
            let unit = self.unit(route.unit, path: rpath + ".unit")
            guard let bucket = self.bucket(rate: route.rate, burst: route.burst, path: rpath) else { continue }
            let rule = RouteRule(key: key, pattern: pattern, bucket: bucket, additional: route.additional ?? false, unit: unit, stage: stage)
            if let other = seenSuffixes[rule.limit.keySuffix] {
                self.fail(rpath, "its state key collides with \"\(other)\"; rename one route")
                continue
            }
            seenSuffixes[rule.limit.keySuffix] = key
            rules.append(rule)
        }
        return rules
    }

    private mutating func plan(name: String, section: ConfigFile.PlanSection) -> Plan? {
        let path = "plans." + name
        let problemsBefore = self.problems.count
        if name.isEmpty || name.utf8.count > 128 || name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            self.fail(path, "plan names must be 1-128 printable characters")
        }
        var throttle: TokenBucket?
        if let t = section.throttle {
            throttle = self.bucket(rate: t.rate, burst: t.burst, path: path + ".throttle")
        }
        var quota: Quota?
        if let q = section.quota {
            let qpath = path + ".quota"
            let period = QuotaPeriod(rawValue: q.period.lowercased())
            if period == nil {
                self.fail(qpath + ".period", "must be day, week or month, not \"\(q.period)\"")
            }
            if q.limit <= 0 || q.limit > 1_000_000_000_000_000 {
                self.fail(qpath + ".limit", "must be a positive integer up to 10^15, not \(q.limit)")
            }
            let offset = q.offsetHours ?? 0
            if !(0...23).contains(offset) {
                self.fail(qpath + ".offset_hours", "must be between 0 and 23, not \(offset)")
            }
            let initialOffset = q.initialOffset ?? 0
            let initialOK = initialOffset >= 0 && initialOffset <= max(q.limit, 0)
            if !initialOK {
                self.fail(qpath + ".initial_offset", "must be between 0 and the quota's limit (\(q.limit)), not \(initialOffset)")
            }
            if let period, q.limit > 0, q.limit <= 1_000_000_000_000_000, (0...23).contains(offset), initialOK {
                quota = Quota(limit: q.limit, period: period, offsetHours: offset, initialOffset: initialOffset)
            }
        }
        var policy = BackendErrorPolicy.deny
        if let text = section.onBackendError {
            if let value = BackendErrorPolicy(rawValue: text.lowercased()) {
                policy = value
            } else {
                self.fail(path + ".on_backend_error", "must be deny or allow, not \"\(text)\"")
            }
        }
        var headers: Set<HeaderStyle> = [.ietf]
        for (index, name) in (section.headers ?? []).enumerated() {
            if let style = HeaderStyle(rawValue: name.lowercased()) {
                headers.insert(style)
            } else {
                self.fail(path + ".headers[\(index)]", "must be ietf, legacy or openai, not \"\(name)\"")
            }
        }
        let throttleUnit = self.unit(section.throttle?.unit, path: path + ".throttle.unit")
        let quotaUnit = self.unit(section.quota?.unit, path: path + ".quota.unit")
        let rules = self.routeRules(section.routes ?? [:], path: path + ".routes", stage: nil)
        var stages: [String: [RouteRule]]?
        if let stageSections = section.stages {
            if stageSections.isEmpty {
                self.fail(path + ".stages", "list at least one stage, or leave stages out to cover every stage")
            }
            var built: [String: [RouteRule]] = [:]
            for (stage, stageSection) in stageSections.sorted(by: { $0.key < $1.key }) {
                let spath = path + ".stages." + stage
                if let problem = CheckRequest.stageProblem(stage) {
                    self.fail(spath, problem)
                    continue
                }
                var stageRules = self.routeRules(stageSection.routes ?? [:], path: spath + ".routes", stage: stage)
                // The plan's routes apply on every stage it lists, as that stage's own buckets,
                // unless the stage has its own entry of the same shape.
                let own = Set(stageRules.map(\.pattern.description))
                stageRules += rules.filter { !own.contains($0.pattern.description) }.map { $0.on(stage: stage) }
                built[stage] = stageRules
            }
            stages = built
        }
        guard self.problems.count == problemsBefore else { return nil }
        return Plan(
            name: name, throttle: throttle, quota: quota, routes: rules, onBackendError: policy,
            throttleUnit: throttleUnit, quotaUnit: quotaUnit, headers: headers, shadow: section.shadow ?? false,
            usageRetentionDays: self.usageRetentionDays, stages: stages
        )
    }
}
