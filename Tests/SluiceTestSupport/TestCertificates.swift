import Foundation

/// Certificates for TLS tests, made with `openssl` in a temp dir: a CA, a server certificate it
/// signed for 127.0.0.1 and localhost, a client certificate it signed, and an unrelated CA.
public final class TestCertificates: Sendable {
    /// The folder holding every file.
    public let directory: URL

    /// Makes the certificates (on a Dispatch thread: openssl runs as child processes).
    /// - Throws: ``TestSupportError`` with openssl's output when a step fails.
    public static func make() async throws -> TestCertificates {
        try await offCooperativePool { try TestCertificates() }
    }

    private init() throws {
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        try self.makeCA("ca", name: "Sluice Test CA")
        try self.makeCA("other-ca", name: "Unrelated Test CA")
        try self.makeSigned("server", name: "localhost", extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try self.makeSigned("named-server", name: "redis.internal", extensions: "subjectAltName=DNS:redis.internal\nextendedKeyUsage=serverAuth\n")
        try self.makeSigned("client", name: "sluice", extensions: "extendedKeyUsage=clientAuth\n")
    }

    deinit {
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// The CA that signed the server and client certificates.
    public var caFile: String { self.path("ca.pem") }
    /// A CA that signed nothing here.
    public var otherCAFile: String { self.path("other-ca.pem") }
    /// The server certificate (127.0.0.1 and localhost) and its key.
    public var serverCertFile: String { self.path("server.pem") }
    public var serverKeyFile: String { self.path("server.key") }
    /// A server certificate that names only redis.internal (no address), and its key.
    public var namedServerCertFile: String { self.path("named-server.pem") }
    public var namedServerKeyFile: String { self.path("named-server.key") }
    /// The client certificate and its key.
    public var clientCertFile: String { self.path("client.pem") }
    public var clientKeyFile: String { self.path("client.key") }

    /// `redis-server` arguments that serve TLS on `port` with the server certificate (the one
    /// naming only redis.internal when `named`), trusting the CA for client certificates, which
    /// it requires when `requireClientCertificate`.
    public func redisArguments(tlsPort port: Int, requireClientCertificate: Bool, named: Bool = false) -> [String] {
        [
            "--tls-port", String(port),
            "--tls-cert-file", named ? self.namedServerCertFile : self.serverCertFile,
            "--tls-key-file", named ? self.namedServerKeyFile : self.serverKeyFile,
            "--tls-ca-cert-file", self.caFile, "--tls-auth-clients", requireClientCertificate ? "yes" : "no",
        ]
    }

    private func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }

    private func makeCA(_ stem: String, name: String) throws {
        try self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", self.path("\(stem).key"), "-out", self.path("\(stem).pem"), "-days", "2", "-subj", "/CN=\(name)",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    private func makeSigned(_ stem: String, name: String, extensions: String) throws {
        try extensions.write(toFile: self.path("\(stem).ext"), atomically: true, encoding: .utf8)
        try self.openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", self.path("\(stem).key"), "-out", self.path("\(stem).csr"), "-subj", "/CN=\(name)",
        ])
        try self.openssl([
            "x509", "-req", "-in", self.path("\(stem).csr"), "-CA", self.caFile, "-CAkey", self.path("ca.key"),
            "-CAcreateserial", "-out", self.path("\(stem).pem"), "-days", "2", "-extfile", self.path("\(stem).ext"),
        ])
    }

    private func openssl(_ arguments: [String]) throws {
        let result = try Subprocess.run(try RedisServer.executable("openssl"), arguments)
        guard result.status == 0 else {
            throw TestSupportError("openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(result.output)")
        }
    }
}
