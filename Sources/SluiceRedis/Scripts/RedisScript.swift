import Crypto

/// A Lua script run with EVALSHA. Its SHA-1 is computed once, here, so every
/// connection can call it without asking Redis; connections SCRIPT LOAD it on connect.
/// Sluice's own scripts live in SluiceCore (`Scripts/`, with their calls and replies);
/// SluiceServer makes them `RedisScript`s (`RedisScript.decide` ...).
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
}
