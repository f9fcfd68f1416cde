import Foundation

/// Where a setting's value came from, highest precedence first.
enum SettingSource: Hashable, Sendable {
    /// A command-line flag (`--port`).
    case flag(String)
    /// An environment variable (`SLUICE_PORT`).
    case environment(String)
    /// The file, at the setting's key path.
    case file
    /// Nothing gave a value.
    case byDefault
}

/// One setting's value and its source, resolved by the precedence every setting follows:
/// command-line flag > environment variable > file > default (``SettingResolver``).
///
/// A problem with the value names that source, and some messages cite it ("a URL comes from
/// SLUICE_REDIS_URL"), so the source travels with the value.
struct Setting<Value> {
    /// The value.
    let value: Value
    /// Where it came from.
    let source: SettingSource
    /// The setting's key path in the file (`server.port`); empty for a setting the file cannot hold.
    let path: String

    /// Whether an environment variable gave the value.
    var isFromEnvironment: Bool {
        if case .environment = self.source { true } else { false }
    }

    /// The flag, variable or key path that gave the value; nil for a default.
    var sourceName: String? {
        switch self.source {
        case .flag(let name), .environment(let name): name
        case .file: self.path
        case .byDefault: nil
        }
    }

    /// Where a problem with the value is reported: a flag or variable by its name with no key
    /// path; otherwise the file (source nil) at the key path, `[index]` appended for an item of a list.
    func problemLocation(item index: Int? = nil) -> (path: String, source: String?) {
        switch self.source {
        case .flag(let name), .environment(let name):
            return ("", name)
        case .file, .byDefault:
            return (index.map { "\(self.path)[\($0)]" } ?? self.path, nil)
        }
    }
}

/// Resolves settings from command-line flags, environment variables and the file, in that order.
///
/// A variable that is set wins even when empty (`SLUICE_HOST=` is an empty host, not no host).
struct SettingResolver {
    /// The environment variables (`SLUICE_*`).
    let environment: [String: String]

    /// The value of the first source that has one: `flag`, the variable `env`, then `file`.
    /// - Parameters:
    ///   - path: the setting's key path in the file, where problems with a file's value are reported.
    ///   - flag: the flag's name and its value (nil: not given).
    ///   - env: the variable's name.
    ///   - file: the file's value (nil: absent).
    ///   - fromEnvironment: turns the variable's text into a value.
    /// - Returns: nil when no source gives a value.
    func resolve<Value>(
        _ path: String = "",
        flag: (name: String, value: Value?)? = nil,
        env: String? = nil,
        file: Value? = nil,
        fromEnvironment: (String) -> Value
    ) -> Setting<Value>? {
        if let flag, let value = flag.value {
            return Setting(value: value, source: .flag(flag.name), path: path)
        }
        if let env, let text = self.environment[env] {
            return Setting(value: fromEnvironment(text), source: .environment(env), path: path)
        }
        if let file {
            return Setting(value: file, source: .file, path: path)
        }
        return nil
    }

    /// The value of the first source that has one, else `fallback`.
    func resolve<Value>(
        _ path: String,
        flag: (name: String, value: Value?)? = nil,
        env: String? = nil,
        file: Value?,
        default fallback: Value,
        fromEnvironment: (String) -> Value
    ) -> Setting<Value> {
        self.resolve(path, flag: flag, env: env, file: file, fromEnvironment: fromEnvironment)
            ?? Setting(value: fallback, source: .byDefault, path: path)
    }

    /// A text setting; nil when no source gives a value.
    func resolve(
        _ path: String = "",
        flag: (name: String, value: String?)? = nil,
        env: String? = nil,
        file: String? = nil
    ) -> Setting<String>? {
        self.resolve(path, flag: flag, env: env, file: file) { $0 }
    }

    /// A text setting, else `fallback`.
    func resolve(
        _ path: String,
        flag: (name: String, value: String?)? = nil,
        env: String? = nil,
        file: String?,
        default fallback: String
    ) -> Setting<String> {
        self.resolve(path, flag: flag, env: env, file: file, default: fallback) { $0 }
    }

    /// An integer setting. Flags and the file hold integers already; a variable holds text, so
    /// the value is nil when the variable won with text that is not an integer.
    /// - Returns: nil when no source gives a value.
    func integer(_ path: String, flag: (name: String, value: Int?)? = nil, env: String, file: Int?) -> Setting<Int?>? {
        // Wrapped explicitly: a flag or key that is absent must stay absent, not become a present nil.
        self.resolve(
            path,
            flag: flag.map { ($0.name, $0.value.map(Optional.some)) },
            env: env,
            file: file.map(Optional.some)
        ) { Int($0) }
    }

    /// A list setting: the file's list, or the variable's comma-separated items (blank ones dropped).
    /// - Returns: nil when no source gives a value.
    func list(_ path: String, env: String, file: [String]?) -> Setting<[String]>? {
        self.resolve(path, env: env, file: file) { text in
            text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }
}
