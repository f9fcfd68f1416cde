import NIOCore

/// Turns the TLS layer's errors, until Redis has answered once, into a ``SluiceRedisError``
/// that says the TLS handshake failed and why, for the connect attempt that logs it.
///
/// With TLS 1.3 the client's side of the handshake completes before the server has checked a
/// client certificate; a refusal then arrives as an alert on the first read. So the handler
/// stays until the first bytes of a reply, then leaves the pipeline.
final class RedisTLSFailureHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let host: String
    private let port: Int

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let address = self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
        context.fireErrorCaught(
            SluiceRedisError.handshakeFailed("TLS handshake with Redis at \(address) failed: \(Self.reason(error))")
        )
    }

    /// BoringSSL's error stack in words: its short reason first, the raw entries after.
    static func reason(_ error: any Error) -> String {
        let raw = "\(error)"
        let known: [(String, String)] = [
            ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed: the server's certificate is not signed by a trusted CA (redis.tls.ca_file) or has expired"),
            ("failedToValidateHostname", "certificate verify failed: the server's certificate does not name the host (redis.tls.server_name)"),
            ("CERTIFICATE_REQUIRED", "the server requires a client certificate (redis.tls.cert_file and key_file)"),
            ("ALERT_BAD_CERTIFICATE", "the server refused the client certificate"),
            ("ALERT_UNKNOWN_CA", "the server does not trust the client certificate's CA"),
            ("WRONG_VERSION_NUMBER", "the server does not speak TLS on this port"),
        ]
        for (marker, words) in known where raw.contains(marker) {
            return "\(words) (\(raw))"
        }
        return raw
    }
}
