extension SluiceConfig {
    /// How much Sluice logs (`logging.level`, `SLUICE_LOG_LEVEL`, `--log-level`): swift-log's
    /// `Logger.Level`, case for case and in the same order, least severe first.
    public enum LogLevel: String, Sendable, Hashable, CaseIterable, ExpressibleByStringLiteral {
        /// Everything.
        case trace
        /// Debugging detail.
        case debug
        /// Normal operation (the default).
        case info
        /// Worth noticing, not a problem.
        case notice
        /// Something may be wrong.
        case warning
        /// Something failed.
        case error
        /// Sluice cannot go on.
        case critical

        /// A level written in code (`"debug"`).
        ///
        /// Configured text is parsed with ``init(rawValue:)``; a literal is the programmer's, so
        /// one that names no level is a bug and traps.
        public init(stringLiteral value: String) {
            guard let level = Self(rawValue: value) else {
                preconditionFailure("\"\(value)\" is not a log level (\(Self.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            self = level
        }
    }

    /// How log lines are written (`logging.format`, `SLUICE_LOG_FORMAT`).
    public enum LogFormat: String, Sendable, Hashable, CaseIterable {
        /// One JSON object per line (the default).
        case json
        /// swift-log's plain text lines.
        case text
    }
}
