import SluiceTestSupport
import Testing

/// The randomised tests' generator: a replay is exact only if a seed always gives the same
/// stream, and `SLUICE_TEST_SEED` is read as documented (README, "Tests").
@Suite("Seeded test generator")
struct SeededRandomTests {
    @Test("SplitMix64's published stream: seed 0 gives e220a8397b1dcdaf, 6e789e6aa1b965f4, 06c45d188009454f")
    func knownAnswer() {
        // The reference outputs of Vigna's splitmix64.c for seed 0, checked again with the
        // same recurrence in Python (x += 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
        // z = (z ^ z>>27) * 0x94D049BB133111EB; z ^ z>>31, all mod 2^64).
        var zero = SeededRandom(seed: 0)
        #expect([zero.next(), zero.next(), zero.next()] == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var other = SeededRandom(seed: 1_234_567)
        #expect([other.next(), other.next(), other.next()] == [0x599E_D017_FB08_FC85, 0x2C73_F084_5854_0FA5, 0x883E_BCE5_A3F2_7C77])
    }

    @Test("SLUICE_TEST_SEED is read in decimal or 0x hex; anything else is refused, not replaced")
    func environment() throws {
        #expect(try SeededRandom.forTest("t", environment: ["SLUICE_TEST_SEED": "42"]).seed == 42)
        #expect(try SeededRandom.forTest("t", environment: ["SLUICE_TEST_SEED": "0x2A"]).seed == 42)
        #expect(try SeededRandom.forTest("t", environment: ["SLUICE_TEST_SEED": "18446744073709551615"]).seed == .max)
        for bad in ["", "-1", "seed", "18446744073709551616", "0x"] {
            #expect(throws: TestSupportError.self, "\(bad)") { try SeededRandom.forTest("t", environment: ["SLUICE_TEST_SEED": bad]) }
        }
        // Two runs with the same seed draw the same values, through the standard library's
        // algorithms the tests use (ranges, elements, shuffles).
        var first = try SeededRandom.forTest("t", environment: ["SLUICE_TEST_SEED": "7"])
        var second = try SeededRandom.forTest("t", environment: ["SLUICE_TEST_SEED": "7"])
        var a = Array(0..<20)
        var b = Array(0..<20)
        a.shuffle(using: &first)
        b.shuffle(using: &second)
        #expect(a == b && a != Array(0..<20))
        #expect(Int.random(in: 0...1_000_000, using: &first) == Int.random(in: 0...1_000_000, using: &second))
    }

    @Test("a suite's seed gives each test its own stream, the same on every run")
    func suiteStreams() throws {
        let suite = try SeededRandom.Suite("t")
        var one = suite.generator(for: "one()")
        var again = suite.generator(for: "one()")
        var two = suite.generator(for: "two()")
        let first = one.next()
        #expect(first == again.next() && first != two.next())
    }
}
