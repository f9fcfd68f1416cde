import Crypto

/// A Lua script run with EVALSHA. Its SHA-1 is computed once, here, so every
/// connection can call it without asking Redis; connections SCRIPT LOAD it on connect.
public struct RedisScript: Sendable, Hashable {
    /// A name for logs.
    public let name: String
    /// The Lua source.
    public let source: String
    /// Lower-case hex SHA-1 of the source, as Redis names scripts.
    public let sha1: String
    /// The SHA-1 as an EVALSHA argument, encoded once.
    let sha1Argument: RedisArgument

    /// Creates a script and computes its SHA-1.
    public init(name: String, source: String) {
        self.name = name
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
        self.sha1Argument = RedisArgument(self.sha1)
    }

    /// A script of Sluice's: `Lua/prelude.lua` (shared helpers) followed by its own file,
    /// both embedded in the binary at build time.
    private static func sluice(_ name: String, _ body: [UInt8]) -> RedisScript {
        RedisScript(name: name, source: String(decoding: PackageResources.prelude_lua + [0x0A] + body, as: UTF8.self))
    }

    /// The decision script (`Lua/decide.lua`).
    public static let decide = sluice("decide", PackageResources.decide_lua)
    /// Reads limit state without consuming (`Lua/inspect.lua`).
    public static let inspect = sluice("inspect", PackageResources.inspect_lua)
    /// Extends or sets a quota's current window (`Lua/quota.lua`).
    public static let quota = sluice("quota", PackageResources.quota_lua)
    /// Changes the runtime key registry (`Lua/registry.lua`).
    public static let registry = sluice("registry", PackageResources.registry_lua)

    /// Every script Sluice runs, loaded on each connection.
    public static let all: [RedisScript] = [.decide, .inspect, .quota, .registry]
}
