import Foundation
import HTTPTypes
import SluiceCore
import SluiceTestSupport
import Testing

/// The README's worked example of a chat completion (reserved, renewed, settled), against the
/// example config's `llm-chat` plan as `deploy/config/example.yaml` ships it.
@Suite("README: a chat completion reserved, streamed, settled")
struct ReadmeLLMExampleTests {
    /// The example config's plans and keys (its redis, server and admin sections are the
    /// harness's own).
    static func examplePlans() throws -> String {
        let file = PythonTools.repositoryRoot.appendingPathComponent("deploy/config/example.yaml")
        let text = try String(contentsOf: file, encoding: .utf8)
        let start = try #require(text.range(of: "\nplans:\n"), "example.yaml has a plans section")
        return String(text[start.lowerBound...])
    }

    static let json = HTTPFields([HTTPField(name: .contentType, value: "application/json")])

    @Test("reserve, renew, settle and a reserve that can never fit answer as the README shows")
    func workedExample() async throws {
        let redis = try await RedisServer.start()
        try await ServerHarness.run(try ServerHarness.config(try Self.examplePlans(), redis: redis)) { h in
            let reserve = try await h.send(
                "/v1/reserve", method: .post, headers: Self.json,
                body: #"{"api_key":"llm-demo-key","model":"gpt-4o","estimate":{"input_tokens":1200,"output_tokens":1000},"idempotency_key":"chat-7f3a"}"#
            )
            let nowMs = try await redis.timeMs()
            #expect(reserve.status == .ok && reserve.allowed == true, "\(reserve.text)")
            #expect(reserve.json["limit"] as? Int == 4 && reserve.remaining == 3 && reserve.json["reset_after_ms"] as? Int == 30_000)
            #expect(reserve.limits.map { $0["name"] as? String } == ["throttle", "daily", "spend", "tpm", "concurrency"])
            #expect(reserve.remaining(of: "daily") == 1_997_800 && reserve.remaining(of: "spend") == 49_987_000)
            #expect(reserve.remaining(of: "tpm") == 57_800 && reserve.remaining(of: "throttle") == 9)
            #expect(reserve.header("x-ratelimit-remaining-tokens") == "57800" && reserve.header("x-ratelimit-reset-tokens") == "2.2s")
            #expect(reserve.header("anthropic-ratelimit-tokens-limit") == "60000" && reserve.header("anthropic-ratelimit-requests-remaining") == "9")
            // The month's length in seconds, as `w` of the monthly quota.
            let monthEnd = CalendarWindow.end(period: "month", offsetHours: 0, nowMs: nowMs)
            let monthStart = CalendarWindow.end(period: "month", offsetHours: 0, nowMs: monthEnd * 1000 - 86_400_000 * 32)
            #expect(
                reserve.header("RateLimit-Policy")
                    == #""throttle";q=10;w=2, "daily";q=2000000;w=86400;qu="tokens", "spend";q=50000000;w=\#(monthEnd - monthStart);qu="cost", "tpm";q=60000;w=60;qu="tokens", "concurrency";q=4;qu="concurrent-requests""#
            )
            let state = try #require(reserve.header("RateLimit"))
            #expect(state.hasPrefix(#""throttle";r=9;t=1, "daily";r=1997800;t="#) && state.hasSuffix(#", "tpm";r=57800;t=3, "concurrency";r=3;t=30"#), "\(state)")
            let id = try #require(reserve.json["reservation_id"] as? String)

            let renewed = try await h.send("/v1/reservations/\(id)/renew", method: .post, headers: [:], body: nil)
            #expect(renewed.status == .ok && renewed.json["lease"] as? String == "held", "\(renewed.text)")

            let settled = try await h.send(
                "/v1/settle", method: .post, headers: Self.json,
                body: #"{"reservation_id":"\#(id)","actual":{"input_tokens":1180,"output_tokens":412,"cached_input_tokens":1024}}"#
            )
            #expect(settled.status == .ok && settled.json["settled"] as? Bool == true, "\(settled.text)")
            let charged = try #require(settled.json["charged"] as? [String: Int])
            let refunded = try #require(settled.json["refunded"] as? [String: Int])
            #expect(charged == ["requests": 1, "input_tokens": 1180, "output_tokens": 412, "total_tokens": 1592, "cost": 5790])
            #expect(refunded == ["requests": 0, "input_tokens": 20, "output_tokens": 588, "total_tokens": 608, "cost": 7210])
            #expect(settled.limits.map { $0["name"] as? String } == ["daily", "spend", "tpm"])
            #expect(settled.remaining(of: "daily") == 1_998_408 && settled.remaining(of: "spend") == 49_994_210)

            let never = try await h.send(
                "/v1/reserve", method: .post, headers: Self.json,
                body: #"{"api_key":"llm-demo-key","model":"gpt-4o","estimate":{"input_tokens":1000,"output_tokens":70000}}"#
            )
            #expect(never.allowed == false && never.deniedBy == "tpm" && never.retryAfterMs == -1, "\(never.text)")
            #expect(never.json["reason"] as? String == "cost_exceeds_capacity" && never.remaining(of: "concurrency") == 4)
        }
    }
}
