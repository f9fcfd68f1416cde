import SluiceCore
import SluiceRedis

/// Sluice's scripts as Redis runs them. Their sources and contracts live in SluiceCore
/// (`Scripts/`: each `.lua` beside the Swift that builds its call and reads its reply); the
/// generic `RedisScript` (SHA-1, EVALSHA) lives in SluiceRedis, which knows nothing of Sluice's
/// model. This module sees both.
extension RedisScript {
    /// A SluiceCore script, its SHA-1 computed once.
    init(_ script: LuaScript) {
        self.init(name: script.name, source: script.source)
    }

    /// The decision script (`Scripts/Decide/decide.lua`, ``DecisionScript``).
    public static let decide = RedisScript(DecisionScript.script)
    /// Reads limit state without consuming (`Scripts/State/inspect.lua`, ``StateScripts``).
    public static let inspect = RedisScript(StateScripts.inspectScript)
    /// Extends or sets a quota's current window (`Scripts/State/quota.lua`, ``StateScripts``).
    public static let quota = RedisScript(StateScripts.quotaScript)
    /// Changes the runtime key registry (`Scripts/Registry/registry.lua`, ``RegistryScript``).
    public static let registry = RedisScript(RegistryScript.script)

    /// Token limits, reservations and leases (`Scripts/Ledger/ledger.lua`, ``LedgerScript``).
    public static let ledger = RedisScript(LedgerScript.script)

    /// Every script Sluice runs, loaded on each connection.
    public static let all: [RedisScript] = [.decide, .inspect, .quota, .registry, .ledger]
}

extension RedisReply {
    /// An array reply as the ledger script's values (integers and strings); nil otherwise.
    public var ledgerValues: [LedgerScript.Value]? {
        guard let elements = self.array else { return nil }
        var values: [LedgerScript.Value] = []
        values.reserveCapacity(elements.count)
        for element in elements {
            switch element {
            case .integer(let value): values.append(.int(value))
            case .bulk, .status: values.append(.text(element.string ?? ""))
            default: return nil
            }
        }
        return values
    }
}
