import Foundation

/// The random number generator of every randomised test: SplitMix64, whose whole state is one
/// `UInt64`, so a run is replayed exactly by giving its seed back.
///
/// A test gets one from ``SeededRandom/forTest(_:)``, which takes the seed from
/// `SLUICE_TEST_SEED` when it is set (decimal or `0x` hex) and draws a fresh one otherwise, and
/// prints it either way; the test names the seed in its failure messages too. To replay a
/// failure: `SLUICE_TEST_SEED=<seed> swift test --filter <Suite>`.
///
/// Not for anything that must differ between test processes (free ports, temp directories):
/// two processes given the same seed would draw the same values.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    /// The environment variable that replays a run.
    public static let environmentVariable = "SLUICE_TEST_SEED"

    /// The seed this generator started from.
    public let seed: UInt64
    private var state: UInt64

    /// A generator that starts from `seed`.
    public init(seed: UInt64) {
        self.seed = seed
        self.state = seed
    }

    /// The next 64 bits (SplitMix64, Steele, Lea and Flood 2014: Java's `SplittableRandom`).
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A generator for the test or suite `name`, seeded from `SLUICE_TEST_SEED` when set, else
    /// from the system's generator. Prints `seed: <seed> (<name>)` before the test draws anything.
    /// - Throws: when `SLUICE_TEST_SEED` is set to something that is not a 64-bit unsigned
    ///   integer (a replay must not quietly run with another seed).
    public static func forTest(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SeededRandom {
        let seed: UInt64
        if let text = environment[Self.environmentVariable] {
            guard let given = Self.parse(text) else {
                throw TestSupportError("\(Self.environmentVariable)=\(text) is not a seed: give a decimal or 0x-hex 64-bit unsigned integer")
            }
            seed = given
        } else {
            var system = SystemRandomNumberGenerator()
            seed = system.next()
        }
        print("seed: \(seed) (\(name)); replay with \(Self.environmentVariable)=\(seed)")
        return SeededRandom(seed: seed)
    }

    /// A seed from decimal or `0x` hex text, surrounding spaces ignored.
    static func parse(_ text: String) -> UInt64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("0x") || trimmed.hasPrefix("0X") {
            return UInt64(trimmed.dropFirst(2), radix: 16)
        }
        return UInt64(trimmed)
    }

    /// One seed for a whole suite, printed once, and a generator per test derived from it and
    /// the test's name: each test draws the same values on a replay whatever order the tests
    /// run in, and two tests of the suite draw different ones.
    public final class Suite: Sendable {
        /// The suite's seed (what `SLUICE_TEST_SEED` replays).
        public let seed: UInt64

        /// - Throws: as ``SeededRandom/forTest(_:environment:)``.
        public init(_ name: String) throws {
            self.seed = try SeededRandom.forTest(name).seed
        }

        /// The generator of the test `name`: the suite's seed mixed with a 64-bit FNV-1a hash of
        /// the name (stable across runs, unlike `Hasher`).
        public func generator(for name: String) -> SeededRandom {
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            for byte in name.utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
            return SeededRandom(seed: self.seed ^ hash)
        }
    }
}
