import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore
import SluiceRedis

extension AdminRoutes {
    /// `GET /metrics`: Prometheus text format.
    func renderMetrics() async -> Response {
        let snapshot = self.store.current
        // Series of the plans in force start at 0, at the first scrape after start or reload.
        self.metrics.declare(plans: snapshot.config.rules.plans.values)
        self.metrics.sample(
            pendingRedisCommands: await self.redis.pendingCommands(),
            cacheEntries: self.cache?.count ?? 0,
            runtimeKeys: snapshot.keyring.runtimeKeyCount
        )
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.render())))
    }
}
