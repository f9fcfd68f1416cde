/// Why one value of the configuration is wrong.
public struct ConfigIssue: Error, Sendable, Hashable {
    /// The reason, for people.
    public let reason: String

    /// Creates an issue.
    public init(_ reason: String) { self.reason = reason }
}

/// A configuration that cannot be used: every problem found, each with its
/// source (file or environment variable), key path and reason.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// One problem.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The file path, or the environment variable or flag that set the value.
        public let source: String
        /// Dotted key path (`plans.ml-basic.throttle.rate`, `api_keys[2].plan`); empty for the whole file.
        public let path: String
        /// Why it is wrong.
        public let reason: String

        /// Creates a problem.
        public init(source: String, path: String, reason: String) {
            self.source = source
            self.path = path
            self.reason = reason
        }

        /// `source: path: reason`.
        public var description: String {
            self.path.isEmpty ? "\(self.source): \(self.reason)" : "\(self.source): \(self.path): \(self.reason)"
        }
    }

    /// Every problem found.
    public let problems: [Problem]

    /// Creates an error.
    public init(problems: [Problem]) { self.problems = problems }

    /// One problem a line.
    public var description: String { self.problems.map(\.description).joined(separator: "\n") }
}
