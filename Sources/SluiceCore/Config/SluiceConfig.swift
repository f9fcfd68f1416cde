/// Everything Sluice runs with, validated: an immutable snapshot built by ``ConfigLoader``.
public struct SluiceConfig: Sendable {
    /// Redis settings (section `redis`).
    public struct Redis: Sendable, Hashable {
        /// Where Redis is.
        public var url: RedisURL
        /// Per-command deadline in milliseconds.
        public var timeoutMs: Int
        /// Deadline of a connect plus its handshake, in milliseconds.
        public var connectTimeoutMs: Int
        /// Connections kept open on each event loop.
        public var connectionsPerLoop: Int
        /// Commands that may wait for replies on one connection.
        public var maxPending: Int
        /// TLS to Redis (a `rediss://` URL or the `redis.tls` section); nil: plain TCP.
        public var tls: TLS? = nil
        /// The sentinels that name the master (`redis.sentinel`); nil: standalone at `url`.
        public var sentinel: Sentinel? = nil
        /// The seed nodes of a Redis Cluster (`redis.cluster`); nil: not a cluster. When set,
        /// `url` is unused and the database is 0 (a cluster has no other).
        public var cluster: Cluster? = nil
        /// The data nodes' ACL user (`redis.username`); wins over the URL's.
        public var username: String? = nil
        /// The data nodes' password (`redis.password`, `SLUICE_REDIS_PASSWORD`); wins over the URL's.
        public var password: String? = nil
    }

    /// A Sentinel-managed master (section `redis.sentinel`).
    public struct Sentinel: Sendable, Hashable {
        /// The name the sentinels monitor the master under.
        public var masterName: String
        /// The sentinels as (host, port), asked in turn.
        public var nodes: [HostPort]
        /// The sentinels' own ACL user, if any.
        public var username: String?
        /// The sentinels' own password, if any.
        public var password: String?
    }

    /// A Redis Cluster (section `redis.cluster`).
    public struct Cluster: Sendable, Hashable {
        /// The seed nodes as (host, port), asked in turn for the slot map.
        public var nodes: [HostPort]
    }

    /// A `host:port` pair (`[v6]:port` in text).
    public struct HostPort: Sendable, Hashable {
        /// Host name or address (IPv6 without brackets).
        public var host: String
        /// TCP port, 1-65535.
        public var port: Int

        /// Parses `host:port` or `[v6]:port`; nil for anything else.
        public init?(_ text: String) {
            let host: Substring
            let portText: Substring
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]") else { return nil }
                host = text[text.index(after: text.startIndex)..<close]
                let after = text[text.index(after: close)...]
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            } else {
                guard let colon = text.lastIndex(of: ":") else { return nil }
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
                if host.contains(":") { return nil }
            }
            guard !host.isEmpty, !host.contains(" "), let port = Int(portText), (1...65535).contains(port) else { return nil }
            self.host = String(host)
            self.port = port
        }
    }

    /// TLS to Redis (section `redis.tls`); the server's certificate is always verified.
    public struct TLS: Sendable, Hashable {
        /// PEM file of the CAs to trust; nil: the system's trust store.
        public var caFile: String?
        /// PEM file of the client certificate; set together with `keyFile`.
        public var certFile: String?
        /// PEM file of the client certificate's private key.
        public var keyFile: String?
        /// Name sent as SNI and verified in the certificate; nil: the URL's host.
        public var serverName: String?

        /// Creates a TLS section's values.
        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.serverName = serverName
        }
    }

    /// The admin listener (section `admin`).
    public struct Admin: Sendable, Hashable {
        /// Address it binds.
        public var host: String
        /// Port it binds; equal to the decision port: one listener serves both.
        public var port: Int
        /// SHA-256 digests of the accepted bearer tokens; empty: the admin API is disabled (404).
        public var tokenDigests: [[UInt8]]
    }

    /// The admin listener; nil when neither an admin port nor admin tokens are configured.
    public var admin: Admin?
    /// Redis settings.
    public var redis: Redis
    /// Address the decision listener binds.
    public var host: String
    /// Port the decision listener binds (0: any free port).
    public var port: Int
    /// The header `/v1/auth` reads the API key from (besides `Authorization: Bearer`).
    public var apiKeyHeader: String
    /// Which headers `/v1/auth` takes the original request's method and URI from.
    public var routeSource: ForwardAuthRouteSource
    /// How long a request body may take to arrive, in milliseconds, before a 408.
    public var bodyTimeoutMs: Int
    /// Input bounds (section `limits`).
    public var bounds: InputBounds
    /// Entries of the local over-limit cache; 0 when it is off.
    public var overLimitCacheEntries: Int
    /// Log level.
    public var logLevel: LogLevel
    /// Plans and API keys.
    public var rules: RuleSet
    /// SHA-256 digests of the tokens gateways present in `X-Sluice-Token`; empty: none needed.
    public var clientTokenDigests: [[UInt8]]
    /// Log line format.
    public var logFormat: LogFormat
    /// The secret that key ids are made with.
    public var keySecret: String
    /// Things worth a loud warning that do not stop Sluice (the default key secret...).
    public var warnings: [String]
    /// The file it came from.
    public var source: String
}

/// Where `/v1/auth` finds the request a gateway asks about (`server.forward_auth.route_from`).
///
/// Exactly one source is trusted: a client can send any header, so the pair the gateway does not
/// set could carry a client's choice of route. Pairs are never mixed.
public enum ForwardAuthRouteSource: String, Sendable, Hashable, CaseIterable {
    /// `X-Original-Method` + `X-Original-URI` (nginx `auth_request`, the HAProxy example).
    case original
    /// `X-Forwarded-Method` + `X-Forwarded-Uri` (Caddy `forward_auth`, Traefik `ForwardAuth`).
    case forwarded
    /// Only the path after `/v1/auth/` with the sub-request's method (Envoy `ext_authz`).
    case path
}

/// Values given on the command line; they win over the environment and the file.
public struct ConfigOverrides: Sendable, Hashable {
    /// `--host`.
    public var host: String?
    /// `--port`.
    public var port: Int?
    /// `--redis-url`.
    public var redisURL: String?
    /// `--log-level`.
    public var logLevel: String?

    /// Creates overrides.
    public init(host: String? = nil, port: Int? = nil, redisURL: String? = nil, logLevel: String? = nil) {
        self.host = host
        self.port = port
        self.redisURL = redisURL
        self.logLevel = logLevel
    }
}
