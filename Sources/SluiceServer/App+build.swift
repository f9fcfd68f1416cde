import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import SluiceCore
import ServiceLifecycle
import SluiceRedis

/// Builds the Sluice application: HTTP routes plus the Redis client as a service.
/// `sluice serve` and the tests use this same function.
/// - Parameters:
///   - config: the validated configuration.
///   - logger: the root logger.
///   - eventLoopGroup: loops for HTTP and Redis alike.
///   - source: where the config came from; with it, SIGHUP re-reads the file.
///   - onServerRunning: called with the listening channel once it is bound.
public func buildApplication(
    config: SluiceConfig,
    logger: Logger,
    eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    source: ConfigSource? = nil,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let metrics = SluiceMetrics()
    if config.redis.cluster != nil {
        metrics.expectClusterRedirects()
    }
    let redis = RedisClient(
        configuration: RedisClientConfiguration(config.redis),
        eventLoopGroup: eventLoopGroup,
        scripts: RedisScript.all,
        logger: logger,
        observer: metrics
    )
    let router = Router(context: SluiceRequestContext.self)
    router.add(middleware: ErrorMiddleware())
    let cache = config.overLimitCacheEntries > 0 ? OverLimitCache(capacity: config.overLimitCacheEntries) : nil
    let decider = Decider(redis: redis, logger: logger, cache: cache, metrics: metrics)
    let store = ConfigStore(config)
    CheckRoute(decider: decider, store: store).register(on: router)
    AuthRoute(decider: decider, store: store).register(on: router)
    ReservationRoutes(decider: decider, store: store).register(on: router)
    let registry = KeyRegistry(redis: redis, store: store, cache: cache, eventLoopGroup: eventLoopGroup, logger: logger)
    HealthRoutes(redis: redis, store: store, registry: registry).register(on: router)
    var services: [any Service] = [redis, registry]
    var reloader: ConfigReloader?
    if let source {
        let configReloader = ConfigReloader(store: store, source: source, cache: cache, metrics: metrics, logger: logger)
        reloader = configReloader
        services.append(configReloader)
    }
    if let admin = config.admin {
        let adminRoutes = AdminRoutes(store: store, reloader: reloader, registry: registry, redis: redis, cache: cache, metrics: metrics)
        if admin.port == config.port && admin.host == config.host {
            // One listener serves both.
            adminRoutes.register(on: router)
        } else {
            let adminRouter = Router(context: BasicRequestContext.self)
            adminRouter.add(middleware: ErrorMiddleware())
            adminRoutes.register(on: adminRouter)
            let adminLogger: Logger = {
                var adminLogger = logger
                adminLogger[metadataKey: "listener"] = "admin"
                return adminLogger
            }()
            services.append(
                Application(
                    router: adminRouter,
                    // The same HTTP edge as the decision listener (body deadline, JSON errors for
                    // malformed requests), without the check fast path.
                    server: HTTPServerBuilder { responder in
                        DecisionHTTPChannel(
                            http1: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: .seconds(30))),
                            bodyTimeout: .milliseconds(Int64(config.bodyTimeoutMs)),
                            makeCheckHandler: { CheckChannelHandler(decider: decider, store: store, answersChecks: false) }
                        )
                    },
                    configuration: .init(address: .hostname(admin.host, port: admin.port), serverName: "sluice-admin"),
                    onServerRunning: { channel in
                        adminLogger.info("admin listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
                    },
                    eventLoopGroupProvider: .shared(eventLoopGroup),
                    logger: adminLogger
                )
            )
        }
    }

    for warning in config.warnings {
        logger.warning("\(warning)")
    }
    return Application(
        router: router,
        // POST /v1/check is answered in the channel pipeline, on the connection's event loop;
        // the rest goes through the router. A client that stops mid-request (or idles) does not
        // hold a connection forever.
        server: HTTPServerBuilder { responder in
            DecisionHTTPChannel(
                http1: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: .seconds(30))),
                bodyTimeout: .milliseconds(Int64(config.bodyTimeoutMs)),
                makeCheckHandler: { CheckChannelHandler(decider: decider, store: store) }
            )
        },
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: "sluice"),
        services: services,
        onServerRunning: onServerRunning,
        eventLoopGroupProvider: .shared(eventLoopGroup),
        logger: logger
    )
}

extension RedisClientConfiguration {
    /// The client configuration of a validated `redis` section.
    public init(_ redis: SluiceConfig.Redis) {
        self.init(
            host: redis.url.host,
            port: redis.url.port,
            username: redis.username ?? redis.url.username,
            password: redis.password ?? redis.url.password,
            database: redis.sentinel == nil && redis.cluster == nil ? redis.url.database : 0,
            commandTimeout: .milliseconds(Int64(redis.timeoutMs)),
            connectTimeout: .milliseconds(Int64(redis.connectTimeoutMs)),
            connectionsPerEventLoop: redis.connectionsPerLoop,
            maxPendingCommands: redis.maxPending,
            tls: redis.tls.map {
                RedisTLSConfiguration(caFile: $0.caFile, certificateFile: $0.certFile, keyFile: $0.keyFile, serverName: $0.serverName)
            },
            sentinel: redis.sentinel.map {
                RedisSentinelConfiguration(
                    masterName: $0.masterName,
                    nodes: $0.nodes.map { RedisAddress(host: $0.host, port: $0.port) },
                    username: $0.username,
                    password: $0.password
                )
            },
            cluster: redis.cluster.map {
                RedisClusterConfiguration(nodes: $0.nodes.map { RedisAddress(host: $0.host, port: $0.port) })
            }
        )
    }
}
