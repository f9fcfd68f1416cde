import Hummingbird
import HTTPTypes
import NIOCore
import SluiceCore
import SluiceRedis

/// `GET /healthz` (the process is alive) and `GET /readyz` (config loaded and
/// listener up, with Redis's state and any warning). Readiness does not follow
/// Redis: every instance shares it, and `on_backend_error: allow` needs instances
/// to stay in the load balancer while Redis blips.
struct HealthRoutes: Sendable {
    let redis: RedisClient
    let store: ConfigStore
    let registry: KeyRegistry?

    func register(on router: Router<SluiceRequestContext>) {
        router.get("/healthz") { _, _ in
            Self.json { writer in writer.field("status", "ok") }
        }
        router.get("/readyz") { _, _ in
            let warnings = self.warnings()
            let up = self.redis.isConnected
            return Self.json { writer in
                writer.field("status", "ready")
                writer.field("redis", up ? "up" : "down")
                writer.field("warnings", strings: warnings)
            }
        }
    }

    /// Warnings worth an operator's attention: config ones, Redis's eviction policy, cluster
    /// masters without a connection, and the
    /// runtime key registry's (it went back; Redis keeps no persistence while holding keys).
    func warnings() -> [String] {
        var warnings = self.store.current.config.warnings
        if let warning = self.redis.evictionPolicy.warning {
            warnings.append(warning)
        }
        warnings += self.redis.topologyWarnings
        warnings += self.registry?.warnings ?? []
        return warnings
    }

    static func json(_ body: (inout JSONWriter) -> Void) -> Response {
        var writer = JSONWriter(buffer: ByteBufferAllocator().buffer(capacity: 128))
        writer.beginObject()
        body(&writer)
        writer.endObject()
        return writer.response(noStore: true)
    }
}
