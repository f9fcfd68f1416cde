import HummingbirdCore
import Logging
import NIOCore

/// Hummingbird's HTTP/1.1 child channel with ``BodyTimeoutHandler`` and ``CheckChannelHandler``
/// added after its connection-state handler: `POST /v1/check` is answered in the pipeline, everything else
/// by the router.
struct DecisionHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let http1: HTTP1Channel
    let bodyTimeout: TimeAmount
    let makeCheckHandler: @Sendable () -> CheckChannelHandler

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        self.http1.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let state = try operations.handler(type: HTTPConnectionStateHandler.self)
            let bodyTimeout = BodyTimeoutHandler(timeout: self.bodyTimeout)
            try operations.addHandler(bodyTimeout, position: .after(state))
            try operations.addHandler(self.makeCheckHandler(), position: .after(bodyTimeout))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await self.http1.handle(value: value, logger: logger)
    }
}
