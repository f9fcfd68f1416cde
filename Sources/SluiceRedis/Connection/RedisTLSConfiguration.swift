import NIOCore
import NIOSSL

/// TLS to Redis: which certificates to trust and present, and which name to verify.
///
/// The server's certificate is always verified: against `caFile`, or the system's trust
/// store without one, and its name against `serverName`, or the host connected to (an IP
/// address host is matched against the certificate's IP addresses).
public struct RedisTLSConfiguration: Sendable, Hashable {
    /// PEM file of the certificate authorities to trust; nil: the system's trust store.
    public var caFile: String?
    /// PEM file of the client certificate (chain) to present; needs `keyFile`.
    public var certificateFile: String?
    /// PEM file of the client certificate's private key.
    public var keyFile: String?
    /// Name sent as SNI and verified in the server's certificate; nil: the host connected to.
    public var serverName: String?

    /// Creates a TLS configuration; nothing is read until a client uses it.
    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }

    /// Reads the files and builds the context every connection of one client shares.
    /// - Throws: NIOSSL's error when a file cannot be read or parsed.
    func makeContext() throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        // A connection recycled after timeouts must go at once, not wait 5 s (NIOSSL's default)
        // for the close_notify of a Redis that no longer answers.
        tls.shutdownTimeout = .milliseconds(100)
        if let caFile = self.caFile {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        }
        if let certificateFile = self.certificateFile {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
        }
        if let keyFile = self.keyFile {
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        }
        return try NIOSSLContext(configuration: tls)
    }
}
