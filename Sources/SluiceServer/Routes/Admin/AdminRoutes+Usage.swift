import Hummingbird
import SluiceAdminAPI
import SluiceCore
import SluiceRedis

extension AdminRoutes {
    /// `GET /admin/v1/keys/{id}/usage?days=N`: units admitted per day, most recent first; with a
    /// quota, the units left in its window at each day's end; with named limits, each day's
    /// tokens and cost. A plan with neither a quota nor named limits records no usage: 409
    /// `no_quota`.
    func usage(_ id: String, request: Request) async throws -> Response {
        var days = 7
        if let text = request.uri.queryParameters["days"] {
            guard let value = Int(String(text)), (1...366).contains(value) else {
                throw APIError(.badRequest, code: "invalid_query", message: "days must be an integer 1-366")
            }
            days = value
        }
        let (entry, record) = try await self.activeKey(id)
        let plan = entry.plan
        var quota: Quota?
        if let limit = plan.quota, case .quota(let q) = limit.kind {
            quota = q
        }
        guard quota != nil || !plan.namedLimits.isEmpty else {
            throw APIError(
                .conflict, code: "no_quota", message: "plan \"\(plan.name)\" has no quota and no named limits: it records no usage"
            )
        }
        // The usage records are asked for while the state is read: all three in flight at once.
        // Without a quota the inspect call reads no limit, only Redis's clock.
        async let usage = self.redis.command(["HGETALL", RedisArgument(bytes: entry.usageKey)])
        async let tokenUsage = self.redis.command(["HGETALL", RedisArgument(StateKeys.prefix(keyID: entry.keyID) + StateKeys.tokenUsageSuffix)])
        let (nowMs, states) = try await self.inspect(entry, limits: plan.quota.map { [$0] } ?? [])
        let (reply, tokenReply): (RedisReply, RedisReply)
        do {
            (reply, tokenReply) = (try await usage, try await tokenUsage)
        } catch {
            throw Self.backend(error)
        }
        var usedByDay: [Int64: Int] = [:]
        for (field, value) in reply.pairs {
            if let day = field.int, let used = value.int {
                usedByDay[day] = Int(clamping: used)
            }
        }
        let tokenFields = tokenReply.pairs.compactMap { field, value in
            field.string.flatMap { name in value.int.map { (field: name, value: $0) } }
        }
        let tokensByDay = UsageReport.tokensByDay(tokenFields)
        // Tokens show on plans with named limits, and on others whose keys recorded some
        // through reservations; never on a plan that has neither.
        let showsTokens = !plan.namedLimits.isEmpty || !tokensByDay.isEmpty
        let report = UsageReport(
            quota: quota, offsetSeconds: Int64(plan.usageOffsetSeconds), usedByDay: usedByDay, tokensByDay: showsTokens ? tokensByDay : nil,
            currentLimit: states.first?.limit, currentRemaining: states.first?.remaining, nowSeconds: QuotaCalendar.floorDiv(nowMs, 1000),
            count: days
        )
        let answer = AdminAPI.UsageReport(
            id: id, plan: record.plan,
            quota: quota.map { AdminAPI.UsageReport.Quota(limit: $0.limit, period: AdminAPI.QuotaPeriod($0.period), offsetHours: $0.offsetHours) },
            retentionDays: quota == nil ? plan.ledgerUsageRetentionDays : plan.usageRetentionDays,
            days: report.days.map(Self.usageDay)
        )
        return try Self.response(answer)
    }

    /// A day of the report for the API.
    static func usageDay(_ day: UsageReport.Day) -> AdminAPI.UsageReport.Day {
        var answer = AdminAPI.UsageReport.Day(day)
        answer.tokens = day.tokens.map {
            AdminAPI.UsageReport.Tokens(
                inputTokens: $0.inputTokens, outputTokens: $0.outputTokens, cachedInputTokens: $0.cachedInputTokens,
                totalTokens: $0.totalTokens, cost: $0.cost
            )
        }
        return answer
    }
}
