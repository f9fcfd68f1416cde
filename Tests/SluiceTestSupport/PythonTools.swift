import Foundation

/// The Python tools some tests drive (prometheus_client's parser, schemathesis), from the
/// virtual environment `scripts/test` sets up and names in `SLUICE_PYTHON_VENV`.
public enum PythonTools {
    /// The venv's python.
    /// - Throws: when no venv is named or it has no python: run ./scripts/test, which sets it up.
    public static func python() throws -> URL {
        try self.executable("python")
    }

    /// A program of the venv's `bin`.
    public static func executable(_ name: String) throws -> URL {
        guard let venv = ProcessInfo.processInfo.environment["SLUICE_PYTHON_VENV"] else {
            throw TestSupportError("SLUICE_PYTHON_VENV is not set: run ./scripts/test, which sets up the Python tools")
        }
        let url = URL(fileURLWithPath: venv).appendingPathComponent("bin").appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw TestSupportError("\(url.path) is missing: run ./scripts/test, which sets up the Python tools")
        }
        return url
    }

    /// A helper script of the integration tests (`Tests/IntegrationTests/Support`).
    public static func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("IntegrationTests/Support").appendingPathComponent(name).path
    }

    /// The repository's root.
    public static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
}
