import Foundation
import SluiceTestSupport
import Testing

/// The Pulumi program in `deploy/pulumi` is tested by its own Python tests
/// (`deploy/pulumi/tests`), run here with the suite's venv, which holds the pinned `pulumi` and
/// `pulumi-kubernetes` (scripts/lib/python.sh). They use Pulumi's mocks: no Pulumi CLI, engine or
/// cluster. They run `sluice check-config` on what the program renders (`SLUICE_BIN`, else the
/// debug build) and `kubernetes-validate --strict` on the objects it declares.
@Suite("deploy/pulumi (the Pulumi program's tests, with Pulumi's mocks)")
struct PulumiProgramTests {
    @Test("deploy/pulumi/tests pass: rendered config, Kubernetes objects, usage-plan helper")
    func pythonTests() async throws {
        let python = try PythonTools.python()
        let root = PythonTools.repositoryRoot
        let tests = root.appendingPathComponent("deploy/pulumi/tests").path
        let result = try await offCooperativePool {
            try Subprocess.run(
                python, ["-m", "unittest", "discover", "--start-directory", tests, "--pattern", "test_*.py", "--verbose"],
                // Nothing written into the source tree; the program reads no Pulumi state or CLI.
                environment: ["PYTHONDONTWRITEBYTECODE": "1", "PULUMI_SKIP_UPDATE_CHECK": "1"]
            )
        }
        #expect(result.status == 0, "\(result.output.suffix(12000))")
        let ran = result.output.split(separator: "\n").first { $0.hasPrefix("Ran ") }.map(String.init) ?? ""
        #expect(ran.hasPrefix("Ran ") && !ran.hasPrefix("Ran 0 "), "no tests ran: \(result.output.suffix(3000))")
        #expect(result.output.contains("\nOK"), "\(result.output.suffix(12000))")
    }
}
