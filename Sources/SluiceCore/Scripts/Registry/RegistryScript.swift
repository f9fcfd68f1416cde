import Foundation

/// The runtime key registry's script (`registry.lua`, beside this file) and the protocol
/// around it: the keys and arguments of a change, the script's reply, the records the hash
/// holds and the notices on the registry's channel (docs/ARCHITECTURE.md, "Runtime key
/// registry"). SluiceServer's `KeyRegistry` sends and reads these.
public enum RegistryScript {
    /// The registry script: `prelude.lua` + `registry.lua`.
    public static let script = LuaScript(name: "registry", body: PackageResources.registry_lua)

    /// The hash of runtime keys: key id → JSON record (the script's KEYS[1]).
    public static let hashKey = "sluice:registry:{keys}"
    /// The registry's version, bumped by every change (KEYS[2]).
    public static let versionKey = "sluice:registry:{keys}:version"
    /// The token of the registry's last change (KEYS[3]).
    public static let tokenKey = "sluice:registry:{keys}:token"

    /// The pub/sub channel of the registry's notices for Redis database `database` (one per
    /// database, so instances on other databases of the same Redis hear nothing of it).
    public static func channel(database: Int) -> String {
        "sluice:registry:events:\(database)"
    }

    /// KEYS and ARGV of a script call, as ``DecisionScript`` makes them.
    public typealias Call = DecisionScript.Call

    /// What a change does (the script's ARGV[1]).
    public enum Operation: String, Sendable {
        case create
        case update
        case delete
    }

    /// The call that creates, replaces or deletes (nil record) runtime key `id`, its notice
    /// published on `channel`.
    /// - Throws: the record's encoding error.
    public static func call(_ operation: Operation, id: String, record: RuntimeKey?, channel: String) throws -> Call {
        var arguments: [[UInt8]] = [Array(operation.rawValue.utf8), Array(id.utf8)]
        if let record {
            arguments.append(Array(try JSONEncoder().encode(record)))
        } else {
            arguments.append([])
        }
        arguments.append(Array(channel.utf8))
        return Call(keys: [Array(Self.hashKey.utf8), Array(Self.versionKey.utf8), Array(Self.tokenKey.utf8)], arguments: arguments)
    }

    /// A change the script refused: the id exists (create) or does not (update, delete).
    public struct Refused: Error {}

    /// One change's token and the token of the change before it: a mirror applies the change
    /// only on top of that previous state.
    public struct Change: Sendable, Hashable {
        /// The change's token (Redis's time and the version).
        public let token: String
        /// The token of the change before it ("" when none is on record).
        public let previous: String

        /// Creates a change's tokens.
        public init(token: String, previous: String) {
            self.token = token
            self.previous = previous
        }
    }

    /// The script's reply to a change that was made.
    public struct Result: Sendable, Hashable {
        /// The registry's version after the change.
        public let version: Int64
        /// The change's token and its predecessor's.
        public let change: Change
    }

    /// Decodes the script's reply `{ status, version, token, previous token }`.
    /// - Parameter elements: the reply array's elements, each read as an integer and as text
    ///   (nil where it is not one).
    /// - Throws: ``Refused`` when the status is not 1, or the reply is not four elements.
    public static func result(_ elements: [(integer: Int64?, text: String?)]) throws -> Result {
        guard elements.count == 4, elements[0].integer == 1, let version = elements[1].integer else { throw Refused() }
        return Result(version: version, change: Change(token: elements[2].text ?? "", previous: elements[3].text ?? ""))
    }

    /// A record as the registry hash holds it (the JSON ``call(_:id:record:channel:)`` sends);
    /// nil when it does not decode.
    public static func record(from bytes: [UInt8]) -> RuntimeKey? {
        try? JSONDecoder().decode(RuntimeKey.self, from: Data(bytes))
    }

    /// A notice on the registry's channel.
    public enum Notice: Sendable, Hashable {
        /// `key <version> <id> <token> <previous token>`: change `version` of key `id`, published
        /// by `registry.lua`. An instance of an earlier release sends `key <version> <id>` only
        /// (no change tokens).
        case key(version: Int64, id: String, change: Change?)
        /// `state <id>`: the key's limit state changed (admin reset, quota change), so its
        /// remembered denials go.
        case state(id: String)

        /// Parses a notice's payload; nil for anything else.
        public init?(payload: [UInt8]) {
            let parts = String(decoding: payload, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
            if parts.count >= 3, parts[0] == "key", let version = Int64(parts[1]) {
                let change = parts.count >= 5 ? Change(token: String(parts[3]), previous: String(parts[4])) : nil
                self = .key(version: version, id: String(parts[2]), change: change)
            } else if parts.count == 2, parts[0] == "state" {
                self = .state(id: String(parts[1]))
            } else {
                return nil
            }
        }

        /// The notice as published.
        public var text: String {
            switch self {
            case .key(let version, let id, let change?): "key \(version) \(id) \(change.token) \(change.previous)"
            case .key(let version, let id, nil): "key \(version) \(id)"
            case .state(let id): "state " + id
            }
        }
    }
}
