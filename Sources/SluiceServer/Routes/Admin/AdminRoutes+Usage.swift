import Hummingbird
import SluiceAdminAPI
import SluiceCore
import SluiceRedis

extension AdminRoutes {
    /// `GET /admin/v1/keys/{id}/usage?days=N`: units admitted per day, most recent first.
    func usage(_ id: String, request: Request) async throws -> Response {
        var days = 7
        if let text = request.uri.queryParameters["days"] {
            guard let value = Int(String(text)), (1...366).contains(value) else {
                throw APIError(.badRequest, code: "invalid_query", message: "days must be an integer 1-366")
            }
            days = value
        }
        let (entry, record) = try await self.activeKey(id)
        guard let quotaLimit = entry.plan.quota, case .quota(let quota) = quotaLimit.kind else {
            throw Self.noQuota(entry.plan.name)
        }
        // The usage record is asked for while the state is read: both are in flight at once.
        async let usage = self.redis.command(["HGETALL", RedisArgument(bytes: entry.usageKey)])
        let (nowMs, states) = try await self.inspect(entry, limits: [quotaLimit])
        let reply: RedisReply
        do {
            reply = try await usage
        } catch {
            throw Self.backend(error)
        }
        var usedByDay: [Int64: Int] = [:]
        for (field, value) in reply.pairs {
            if let day = field.int, let used = value.int {
                usedByDay[day] = Int(clamping: used)
            }
        }
        let report = UsageReport(
            quota: quota, usedByDay: usedByDay, currentLimit: states.first?.limit ?? quota.limit, currentRemaining: states.first?.remaining,
            nowSeconds: QuotaCalendar.floorDiv(nowMs, 1000), count: days
        )
        let answer = AdminAPI.UsageReport(
            id: id, plan: record.plan,
            quota: AdminAPI.UsageReport.Quota(limit: quota.limit, period: AdminAPI.QuotaPeriod(quota.period), offsetHours: quota.offsetHours),
            retentionDays: entry.plan.usageRetentionDays,
            days: report.days.map(AdminAPI.UsageReport.Day.init)
        )
        return try Self.response(answer)
    }
}
