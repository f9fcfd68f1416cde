import Foundation

extension ConfigValidator {
    /// Section `redis`: where Redis is (one topology: a URL, a Sentinel or a cluster), its
    /// deadlines, TLS and credentials.
    mutating func redis(_ section: ConfigFile.RedisSection?) -> SluiceConfig.Redis {
        let urlSetting = self.settings.resolve(
            "redis.url", flag: ("--redis-url", self.overrides.redisURL), env: "SLUICE_REDIS_URL", file: section?.url
        )
        let url = self.redisURL(urlSetting)
        let timeoutMs = self.bounded(section?.timeoutMs, "redis.timeout_ms", default: 100, 1...60_000)
        let connectTimeoutMs = self.bounded(section?.connectTimeoutMs, "redis.connect_timeout_ms", default: 1000, 1...60_000)
        let perLoop = self.bounded(section?.connectionsPerLoop, "redis.connections_per_loop", default: 1, 1...64)
        let maxPending = self.bounded(section?.maxPending, "redis.max_pending", default: 1024, 1...1_000_000)
        let tls = self.redisTLS(section?.tls, urlTLS: url.tls)
        let sentinel = self.redisSentinel(section?.sentinel, urlSource: urlSetting?.sourceName)
        let sentinelSource = section?.sentinel != nil
            ? "redis.sentinel"
            : ["SLUICE_REDIS_SENTINEL_NODES", "SLUICE_REDIS_SENTINEL_MASTER"].first { self.settings.environment[$0] != nil }
        let cluster = self.redisCluster(
            section?.cluster, urlSource: urlSetting?.sourceName, urlDatabase: url.database, sentinelSource: sentinelSource
        )
        let password = self.settings.resolve("redis.password", env: "SLUICE_REDIS_PASSWORD", file: section?.password)
        return SluiceConfig.Redis(
            url: url, timeoutMs: timeoutMs, connectTimeoutMs: connectTimeoutMs, connectionsPerLoop: perLoop, maxPending: maxPending,
            tls: tls, sentinel: sentinel, cluster: cluster, username: section?.username, password: password?.value
        )
    }

    /// The URL given, or `redis://127.0.0.1:6379/0` when none is (or the one given is wrong: reported).
    private mutating func redisURL(_ setting: Setting<String>?) -> RedisURL {
        let fallback = try! RedisURL("redis://127.0.0.1:6379/0")
        guard let setting else { return fallback }
        do {
            return try RedisURL(setting.value)
        } catch {
            self.fail(setting, error.reason)
            return fallback
        }
    }

    /// `redis.sentinel` and its `SLUICE_REDIS_SENTINEL_*` variables (a variable wins over its key).
    /// A URL from any source as well is an error: a config names exactly one topology.
    private mutating func redisSentinel(_ section: ConfigFile.SentinelSection?, urlSource: String?) -> SluiceConfig.Sentinel? {
        let master = self.settings.resolve("redis.sentinel.master_name", env: "SLUICE_REDIS_SENTINEL_MASTER", file: section?.masterName)
        let nodesSetting = self.settings.list("redis.sentinel.nodes", env: "SLUICE_REDIS_SENTINEL_NODES", file: section?.nodes)
        // Without the section, a value can only have come from a variable.
        guard section != nil || master != nil || nodesSetting != nil else { return nil }
        if let urlSource {
            self.fail(
                "redis.sentinel",
                "set exactly one topology: redis.url (standalone) or redis.sentinel, not both (a URL comes from \(urlSource))"
            )
        }
        var ok = true
        if master?.value.isEmpty != false {
            ok = false
            // At the key path even when the variable gave the empty name.
            self.fail(
                "redis.sentinel.master_name",
                "is required: the name the sentinels monitor the master under (or SLUICE_REDIS_SENTINEL_MASTER)",
                source: master?.problemLocation().source
            )
        }
        let nodes = self.hostPorts(nodesSetting, path: "redis.sentinel.nodes", what: "sentinel")
        guard ok, let master, let nodes else { return nil }
        return SluiceConfig.Sentinel(masterName: master.value, nodes: nodes, username: section?.username, password: section?.password)
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
        let nodesSetting = self.settings.list("redis.cluster.nodes", env: "SLUICE_REDIS_CLUSTER_NODES", file: section?.nodes)
        let fromEnv = nodesSetting?.isFromEnvironment == true
        guard section != nil || fromEnv else { return nil }
        // A topology problem names what asked for the cluster: the variable, else the section.
        let (path, source) = fromEnv ? ("", "SLUICE_REDIS_CLUSTER_NODES") : ("redis.cluster", nil as String?)
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
        let nodes = self.hostPorts(nodesSetting, path: "redis.cluster.nodes", what: "seed node")
        return nodes.map { SluiceConfig.Cluster(nodes: $0) }
    }

    /// A list of `host:port` nodes. Reports an empty list (`what` names a node) and every
    /// malformed node, then returns nil.
    private mutating func hostPorts(_ setting: Setting<[String]>?, path: String, what: String) -> [SluiceConfig.HostPort]? {
        let nodes = setting ?? Setting(value: [], source: .byDefault, path: path)
        var ok = true
        if nodes.value.isEmpty {
            ok = false
            self.fail(nodes, "must list at least one \(what) as host:port")
        }
        var parsed: [SluiceConfig.HostPort] = []
        for (index, text) in nodes.value.enumerated() {
            guard let node = SluiceConfig.HostPort(text) else {
                ok = false
                self.fail(nodes, item: index, "must be host:port with a port 1-65535 ([v6]:port for IPv6), not \"\(text)\"")
                continue
            }
            parsed.append(node)
        }
        return ok ? parsed : nil
    }

    /// `redis.tls` and its `SLUICE_REDIS_TLS_*` variables: on with the section, any variable or a
    /// `rediss://` URL. Files are read here so that `check-config` names an unreadable one.
    private mutating func redisTLS(_ section: ConfigFile.TLSSection?, urlTLS: Bool) -> SluiceConfig.TLS? {
        let ca = self.settings.resolve("redis.tls.ca_file", env: "SLUICE_REDIS_TLS_CA_FILE", file: section?.caFile)
        let cert = self.settings.resolve("redis.tls.cert_file", env: "SLUICE_REDIS_TLS_CERT_FILE", file: section?.certFile)
        let key = self.settings.resolve("redis.tls.key_file", env: "SLUICE_REDIS_TLS_KEY_FILE", file: section?.keyFile)
        let name = self.settings.resolve("redis.tls.server_name", env: "SLUICE_REDIS_TLS_SERVER_NAME", file: section?.serverName)
        let anyEnv = [ca, cert, key, name].contains { $0?.isFromEnvironment == true }
        guard section != nil || urlTLS || anyEnv else { return nil }

        if let cert, key == nil {
            self.fail(cert, "a client certificate needs its private key: set redis.tls.key_file too")
        } else if let key, cert == nil {
            self.fail(key, "a private key needs its client certificate: set redis.tls.cert_file too")
        }
        self.pemFile(ca, marker: "-----BEGIN CERTIFICATE-----", what: "PEM certificate")
        self.pemFile(cert, marker: "-----BEGIN CERTIFICATE-----", what: "PEM certificate")
        self.pemFile(key, marker: "PRIVATE KEY-----", what: "PEM private key")
        if let name {
            if name.value.isEmpty {
                self.fail(name, "must not be empty (leave it out to verify the URL's host)")
            } else if name.value.contains(":") || name.value.allSatisfy({ $0.isNumber || $0 == "." }) {
                self.fail(name, "must be a host name, not an address: an address host is verified from the URL's host")
            }
        }
        return SluiceConfig.TLS(caFile: ca?.value, certFile: cert?.value, keyFile: key?.value, serverName: name?.value)
    }

    /// Reports a PEM file setting that is empty, unreadable or without a `marker` line.
    private mutating func pemFile(_ setting: Setting<String>?, marker: String, what: String) {
        guard let setting else { return }
        let path = setting.value
        guard !path.isEmpty else {
            self.fail(setting, "must be a file path, not empty")
            return
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
            let data = FileManager.default.contents(atPath: path)
        else {
            self.fail(setting, "cannot read the file \(path)")
            return
        }
        if !String(decoding: data, as: UTF8.self).contains(marker) {
            self.fail(setting, "\(path) holds no \(what) (no \"\(marker)\" line)")
        }
    }
}
