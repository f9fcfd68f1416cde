/// Validation of a decoded file, one section at a time, collecting every problem.
///
/// ``ConfigLoader`` calls the sections (`ConfigValidator+<Section>.swift`) in the order their
/// problems are reported and assembles the ``SluiceConfig``. A section reports what is wrong and
/// returns a value all the same (a default in place of a bad one), so that later sections can
/// go on; the config is built only when no problem was found.
struct ConfigValidator {
    /// The file's name, the source of every problem in the file.
    let source: String
    /// Resolves flag > environment variable > file > default.
    let settings: SettingResolver
    /// The command-line flags.
    let overrides: ConfigOverrides
    /// Every problem found so far, in order.
    private(set) var problems: [ConfigError.Problem] = []

    init(source: String, environment: [String: String], overrides: ConfigOverrides) {
        self.source = source
        self.settings = SettingResolver(environment: environment)
        self.overrides = overrides
    }

    /// Reports a problem at `path`, in the file unless `source` names a flag or variable.
    mutating func fail(_ path: String, _ reason: String, source: String? = nil) {
        self.problems.append(.init(source: source ?? self.source, path: path, reason: reason))
    }

    /// Reports a problem with a setting where its value came from (``Setting/problemLocation(item:)``).
    mutating func fail<Value>(_ setting: Setting<Value>, item index: Int? = nil, _ reason: String) {
        let location = setting.problemLocation(item: index)
        self.fail(location.path, reason, source: location.source)
    }

    /// An integer key of the file: `fallback` when absent, reported and `fallback` when outside `range`.
    mutating func bounded(_ value: Int?, _ path: String, default fallback: Int, _ range: ClosedRange<Int>) -> Int {
        guard let value else { return fallback }
        guard range.contains(value) else {
            self.fail(path, "must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
            return fallback
        }
        return value
    }

    /// A TCP port 0-65535 from a flag, the file or a variable (whose text must be an integer);
    /// nil when it is not one (reported).
    mutating func port(_ setting: Setting<Int?>) -> Int? {
        if let port = setting.value, (0...65535).contains(port) {
            return port
        }
        if case .environment(let variable) = setting.source {
            self.fail(setting, "must be an integer 0-65535, not \"\(self.settings.environment[variable] ?? "")\"")
        } else {
            self.fail(setting, "must be 0-65535")
        }
        return nil
    }

    /// SHA-256 digests of bearer tokens: a variable's raw tokens, or the file's hex digests (a
    /// malformed one is reported at its index); none when neither is given.
    mutating func tokenDigests(_ tokens: Setting<[String]>?) -> [[UInt8]] {
        guard let tokens else { return [] }
        if tokens.isFromEnvironment {
            return tokens.value.map { KeyDigester.sha256(of: $0) }
        }
        var digests: [[UInt8]] = []
        for (index, hex) in tokens.value.enumerated() {
            if hex.utf8.count == 64, let bytes = Hex.decode(hex) {
                digests.append(bytes)
            } else {
                self.fail(tokens, item: index, "must be 64 hexadecimal characters (the SHA-256 of a token)")
            }
        }
        return digests
    }
}
