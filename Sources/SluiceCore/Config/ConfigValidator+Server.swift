extension ConfigValidator {
    /// The decision listener's settings (section `server`, but its client tokens).
    struct Server {
        var host: String
        var port: Int
        var apiKeyHeader: String
        var routeSource: ForwardAuthRouteSource
        var bodyTimeoutMs: Int
    }

    /// Section `server`: address, port, the API key header, forward auth and the body deadline.
    /// Its client tokens are ``clientTokens(_:)``.
    mutating func server(_ section: ConfigFile.ServerSection?) -> Server {
        let host = self.settings.resolve(
            "server.host", flag: ("--host", self.overrides.host), env: "SLUICE_HOST", file: section?.host, default: "127.0.0.1"
        )
        if host.value.isEmpty {
            // At the key path whichever source gave the empty host.
            self.fail("server.host", "must not be empty")
        }
        var port = 8080
        if let setting = self.settings.integer("server.port", flag: ("--port", self.overrides.port), env: "SLUICE_PORT", file: section?.port),
            let value = self.port(setting)
        {
            port = value
        }
        let apiKeyHeader = section?.apiKeyHeader ?? "X-API-Key"
        if apiKeyHeader.isEmpty || RequestRoute("\(apiKeyHeader) /") == nil || apiKeyHeader.contains("*") {
            self.fail("server.api_key_header", "must be an HTTP header name")
        }
        let routeSource = self.forwardAuthRouteSource(section?.forwardAuth)
        let bodyTimeoutMs = self.bounded(section?.bodyTimeoutMs, "server.body_timeout_ms", default: 10_000, 1...600_000)
        return Server(host: host.value, port: port, apiKeyHeader: apiKeyHeader, routeSource: routeSource, bodyTimeoutMs: bodyTimeoutMs)
    }

    /// `server.forward_auth.route_from` or `SLUICE_FORWARD_AUTH_ROUTE_FROM` (default `original`).
    private mutating func forwardAuthRouteSource(_ section: ConfigFile.ForwardAuthSection?) -> ForwardAuthRouteSource {
        guard let setting = self.settings.resolve(
            "server.forward_auth.route_from", env: "SLUICE_FORWARD_AUTH_ROUTE_FROM", file: section?.routeFrom
        ) else { return .original }
        guard let value = ForwardAuthRouteSource(rawValue: setting.value.lowercased()) else {
            self.fail(setting, "must be original, forwarded or path, not \"\(setting.value)\"")
            return .original
        }
        return value
    }

    /// `server.client_tokens_sha256`, or the raw tokens of `SLUICE_CLIENT_TOKENS`: when any is
    /// set, decision endpoints need `X-Sluice-Token`.
    mutating func clientTokens(_ section: ConfigFile.ServerSection?) -> [[UInt8]] {
        self.tokenDigests(
            self.settings.list("server.client_tokens_sha256", env: "SLUICE_CLIENT_TOKENS", file: section?.clientTokensSHA256)
        )
    }

    /// Section `admin`: the admin listener is on when a port or tokens are configured (tokens
    /// alone: port 9090).
    mutating func admin(_ section: ConfigFile.AdminSection?) -> SluiceConfig.Admin? {
        let host = self.settings.resolve("admin.host", env: "SLUICE_ADMIN_HOST", file: section?.host, default: "127.0.0.1")
        let portSetting = self.settings.integer("admin.port", env: "SLUICE_ADMIN_PORT", file: section?.port)
        // A bad port (reported) leaves the file's, valid or not: the config is refused anyway, and
        // the listener still counts as configured, so a file without keys is not also told it needs some.
        let port = portSetting.flatMap { self.port($0) } ?? section?.port
        let digests = self.tokenDigests(self.settings.list("admin.tokens_sha256", env: "SLUICE_ADMIN_TOKENS", file: section?.tokensSHA256))
        guard port != nil || !digests.isEmpty else { return nil }
        return SluiceConfig.Admin(host: host.value, port: port ?? 9090, tokenDigests: digests)
    }
}
