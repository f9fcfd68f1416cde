import Hummingbird
import Logging
import NIOCore

/// The request context of Sluice's routes: Hummingbird's core storage plus the
/// event loop of the HTTP connection, so a check uses the Redis connection that
/// lives on that same loop.
public struct SluiceRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The HTTP connection's event loop.
    public let eventLoop: any EventLoop

    /// Creates a context for a request arriving on `source.channel`.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.eventLoop = source.channel.eventLoop
    }
}
