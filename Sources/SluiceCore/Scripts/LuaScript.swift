/// One of Sluice's Lua scripts as Redis runs it: a name and the full source, `prelude.lua`
/// (shared helpers) followed by the script's own file, both embedded in the binary at build
/// time. Each script's folder holds its `.lua` and the Swift that builds its call and reads
/// its reply; SluiceServer runs them as `RedisScript`s (SHA-1, EVALSHA).
public struct LuaScript: Sendable, Hashable {
    /// A name for logs.
    public let name: String
    /// The Lua source sent to Redis: the prelude, a newline, the script's own file. Its
    /// SHA-1 names the script in Redis, so these bytes must not change unless the script does.
    public let source: String

    /// A script of Sluice's: `prelude.lua` followed by `body` (a `.lua` embedded beside it).
    init(name: String, body: [UInt8]) {
        self.name = name
        self.source = String(decoding: PackageResources.prelude_lua + [0x0A] + body, as: UTF8.self)
    }
}
