import Dispatch
import Foundation
import SluiceTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

// The gateway suites (nginx, Caddy, HAProxy) run the same scenarios against the sites in
// deploy/, each with the real gateway in front of the sluice binary and a real redis-server.
// A suite says how to start its gateway (a `GatewaySite`); everything else is here.

/// What a gateway does when Sluice cannot answer.
enum FailMode: String, Sendable {
    case closed, open
}

/// How to start one gateway: its site file from deploy/, the Sluice setting it needs.
struct GatewaySite: Sendable {
    /// For messages.
    let name: String
    /// `server.forward_auth.route_from` the site requires of Sluice.
    let routeFrom: String
    /// Starts the gateway in front of `sluicePort`, passing allowed requests to `appPort`.
    let start: @Sendable (GatewayOptions) throws -> GatewayProcess
}

/// What a test asks of the gateway it starts.
struct GatewayOptions: Sendable {
    let sluicePort: Int
    let appPort: Int
    let failMode: FailMode
    /// The site's timeouts towards Sluice raised to seconds, for tests about Sluice's answers
    /// rather than its failures, so that a loaded machine's slow answer is not turned into
    /// the fail mode.
    let slowSluice: Bool
}

/// The files under deploy/: this checkout's, or those of `SLUICE_TEST_DEPLOY_DIR` (to run
/// the gateway suites against another version of the sites).
enum DeployFiles {
    /// The main nginx.conf of a test nginx in `directory` (no daemon, one worker, every temp
    /// path inside the directory) around the sites at `includes`.
    static func nginxMain(directory: URL, includes: [String]) -> String {
        let d = directory.path
        return """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(d)/nginx.pid;
            error_log \(d)/error.log warn;
            events { worker_connections 256; }
            http {
                access_log off;
                client_body_temp_path \(d)/tmp/body;
                proxy_temp_path \(d)/tmp/proxy;
                fastcgi_temp_path \(d)/tmp/fastcgi;
                uwsgi_temp_path \(d)/tmp/uwsgi;
                scgi_temp_path \(d)/tmp/scgi;
            \(includes.map { "    include \($0);" }.joined(separator: "\n"))
            }
            """
    }

    static var directory: URL {
        if let path = ProcessInfo.processInfo.environment["SLUICE_TEST_DEPLOY_DIR"] {
            return URL(fileURLWithPath: path)
        }
        return PythonTools.repositoryRoot.appendingPathComponent("deploy")
    }

    /// A file's text with every `(find, replace)` applied.
    /// - Throws: when a `find` does not occur: the file changed and the test must follow.
    static func text(_ path: String, replacing replacements: [(String, String)]) throws -> String {
        let url = self.directory.appendingPathComponent(path)
        var text = try String(contentsOf: url, encoding: .utf8)
        for (find, replace) in replacements {
            guard text.contains(find) else { throw TestSupportError("\(url.path) has no \"\(find)\"") }
            text = text.replacingOccurrences(of: find, with: replace)
        }
        return text
    }

    /// The first of `paths` that is an executable, else why the suite cannot run.
    static func binary(_ name: String, at paths: [String], package: String) throws -> URL {
        for path in paths where FileManager.default.isExecutableFile(atPath: path) {
            return URL(fileURLWithPath: path)
        }
        throw TestSupportError("\(name) is not installed (scripts/test installs \(package))")
    }
}

/// A gateway process in its own temp dir, on a free port, killed when released.
final class GatewayProcess: @unchecked Sendable {
    let name: String
    let port: Int
    let directory: URL
    private let process: Process
    private let logPath: URL

    /// - Parameters:
    ///   - port: the port the site listens on (the caller wrote it into the config).
    ///   - environment: added to this process's environment.
    init(name: String, port: Int, directory: URL, executable: URL, arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        self.port = port
        self.directory = directory
        self.logPath = directory.appendingPathComponent("gateway.log")
        _ = FileManager.default.createFile(atPath: self.logPath.path, contents: nil)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let log = try FileHandle(forWritingTo: self.logPath)
        defer { try? log.close() }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
    }

    /// A fresh temp dir for a gateway's files.
    static func makeDirectory(_ name: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    deinit {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
            self.process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// The gateway's output and every log file in its directory, so far.
    var log: String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: self.directory.path)) ?? []
        return files.filter { $0.hasSuffix(".log") }.sorted().map { name in
            let text = (try? String(contentsOf: self.directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return "\(name): \(text.suffix(4000))"
        }.joined(separator: "\n")
    }

    /// Waits until the site answers HTTP at all (any status).
    func waitUntilUp() async throws {
        let up = try await poll(.seconds(15), every: .milliseconds(30)) {
            guard self.process.isRunning else { throw TestSupportError("\(self.name) exited: \(self.log)") }
            return (try? await HTTPTestClient.request(port: self.port, path: "/gateway-up", timeout: 2)) != nil
        }
        guard up != nil else { throw TestSupportError("\(self.name) did not start: \(self.log)") }
    }

    /// One request on a connection of its own.
    func request(_ method: String = "GET", _ path: String, headers: [String: String] = [:]) async throws -> GatewayResponse {
        try await KeepAliveConnection(port: self.port).send(method, path, headers: headers)
    }
}

/// The app behind the gateway: answers every request 200 `upstream ok` (HTTP/1.1 keep-alive,
/// as gateways' upstream pools expect) and records what it served.
final class UpstreamApp: Sendable {
    let port: Int
    private let listener: Int32
    /// What the serving threads share with the app; they hold this, not the app, so that the
    /// app's release stops them.
    private final class State: Sendable {
        let values = Mutex<(requests: [String], connections: [Int32], stopped: Bool)>(([], [], false))
    }
    private let state = State()

    init() throws {
        self.port = try FreePort.find()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(self.port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw TestSupportError("the upstream app cannot listen on 127.0.0.1:\(self.port) (errno \(errno))")
        }
        self.listener = fd
        let state = self.state
        Thread.detachNewThread { Self.acceptLoop(fd, state) }
    }

    deinit { self.stop() }

    /// Closes the listener and every connection.
    func stop() {
        let connections = self.state.values.withLock { state -> [Int32] in
            guard !state.stopped else { return [] }
            state.stopped = true
            return state.connections
        }
        shutdown(self.listener, Int32(SHUT_RDWR))
        for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// `METHOD target` of every request served, in order.
    var requests: [String] { self.state.values.withLock { $0.requests } }

    private static func acceptLoop(_ listener: Int32, _ state: State) {
        defer { close(listener) }
        while true {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else {
                if errno == EINTR { continue }
                return
            }
            let accepted = state.values.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.connections.append(fd)
                return true
            }
            guard accepted else {
                close(fd)
                return
            }
            Thread.detachNewThread { Self.serve(fd, state) }
        }
    }

    private static func serve(_ fd: Int32, _ state: State) {
        defer {
            state.values.withLock { $0.connections.removeAll { $0 == fd } }
            close(fd)
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            // One request head, then its body if it says it has one.
            guard let head = HTTPWire.takeHead(from: &buffer, reading: { Self.receive(fd, &chunk) }) else { return }
            let lines = head.components(separatedBy: "\r\n")
            let length = HTTPWire.field("content-length", in: lines).flatMap { Int($0) } ?? 0
            while buffer.count < length {
                guard let more = Self.receive(fd, &chunk) else { return }
                buffer += more
            }
            buffer.removeFirst(length)
            let requestLine = lines.first?.split(separator: " ") ?? []
            state.values.withLock { $0.requests.append(requestLine.prefix(2).joined(separator: " ")) }
            let body = "upstream ok\n"
            let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            guard HTTPWire.sendAll(fd, Array(response.utf8)) else { return }
        }
    }

    private static func receive(_ fd: Int32, _ chunk: inout [UInt8]) -> [UInt8]? {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(chunk[0..<n]) : nil
    }
}

/// One client connection kept open across requests (HTTP/1.1 keep-alive), to see whether the
/// gateway keeps it open after an answer.
final class KeepAliveConnection: @unchecked Sendable {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, timeout: Double = 10) throws {
        self.fd = try HTTPTestClient.connectedSocket(port: port, timeout: timeout)
    }

    deinit { close(self.fd) }

    /// Sends one request and reads its response.
    /// - Throws: when the gateway closed the connection instead of answering.
    func send(_ method: String = "GET", _ path: String, headers: [String: String] = [:]) async throws -> GatewayResponse {
        try await offCooperativePool { try self.blockingSend(method, path, headers: headers) }
    }

    private func blockingSend(_ method: String, _ path: String, headers: [String: String]) throws -> GatewayResponse {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if method == "POST" { request += "Content-Length: 0\r\n" }
        request += "\r\n"
        guard HTTPWire.sendAll(self.fd, Array(request.utf8)) else {
            throw TestSupportError("the gateway closed the connection before \(method) \(path) (errno \(errno))")
        }
        var chunk = [UInt8](repeating: 0, count: 16384)
        let read = { () -> [UInt8]? in
            let n = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            return n > 0 ? Array(chunk[0..<n]) : nil
        }
        guard let head = HTTPWire.takeHead(from: &self.buffer, reading: read) else {
            throw TestSupportError("the gateway closed the connection instead of answering \(method) \(path)")
        }
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw TestSupportError("malformed status line: \(lines[0])")
        }
        var fields: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var body: [UInt8] = []
        if method == "HEAD" || status == 204 || status == 304 {
            // No body.
        } else if HTTPWire.field("transfer-encoding", in: lines)?.lowercased() == "chunked" {
            while true {
                guard let sizeLine = HTTPWire.takeLine(from: &self.buffer, reading: read),
                    let size = Int(sizeLine.split(separator: ";").first.map(String.init) ?? "", radix: 16)
                else { throw TestSupportError("malformed or cut chunked body") }
                if size == 0 {
                    // Trailer fields up to the empty line.
                    while let trailer = HTTPWire.takeLine(from: &self.buffer, reading: read), !trailer.isEmpty {}
                    break
                }
                try self.fill(size + 2, read)
                body += self.buffer[..<size]
                self.buffer.removeFirst(size + 2)
            }
        } else {
            let length = HTTPWire.field("content-length", in: lines).flatMap { Int($0) } ?? 0
            try self.fill(length, read)
            body = Array(self.buffer[..<length])
            self.buffer.removeFirst(length)
        }
        return GatewayResponse(status: status, fields: fields, body: body)
    }

    private func fill(_ count: Int, _ read: () -> [UInt8]?) throws {
        while self.buffer.count < count {
            guard let more = read() else { throw TestSupportError("the connection closed inside a body") }
            self.buffer += more
        }
    }
}

/// One answer as the client saw it.
struct GatewayResponse: Sendable {
    let status: Int
    /// Every header field in order, names lower-cased.
    let fields: [(name: String, value: String)]
    let body: [UInt8]

    var text: String { String(decoding: self.body, as: UTF8.self) }

    /// A field's value (several joined with ", "), by case-insensitive name.
    func header(_ name: String) -> String? {
        let values = self.values(name)
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }

    /// Every value of a field, by case-insensitive name.
    func values(_ name: String) -> [String] {
        let name = name.lowercased()
        return self.fields.filter { $0.name == name }.map(\.value)
    }

    /// Status, fields and body, for failure messages.
    var dump: String {
        "\(self.status) " + self.fields.map { "\($0.name): \($0.value)" }.joined(separator: "; ") + " | " + self.text
    }
}

/// Bits of HTTP/1.1 framing the upstream app and the keep-alive client share.
enum HTTPWire {
    /// Removes one message head (up to the blank line) from `buffer`, reading more as needed.
    /// - Returns: the head without the blank line, or nil when the peer closed first.
    static func takeHead(from buffer: inout [UInt8], reading read: () -> [UInt8]?) -> String? {
        while true {
            if let end = self.index(of: [13, 10, 13, 10], in: buffer) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                return head
            }
            guard let more = read() else { return nil }
            buffer += more
        }
    }

    /// A header field's value from a head's lines, by lower-case name.
    static func field(_ name: String, in lines: [String]) -> String? {
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == name else { continue }
            return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    static func index(of needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        return (0...(bytes.count - needle.count)).first { bytes[$0..<$0 + needle.count].elementsEqual(needle) }
    }

    /// Removes one CRLF-ended line from `buffer`, reading more as needed.
    static func takeLine(from buffer: inout [UInt8], reading read: () -> [UInt8]?) -> String? {
        while true {
            if let end = self.index(of: [13, 10], in: buffer) {
                let line = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 2)
                return line
            }
            guard let more = read() else { return nil }
            buffer += more
        }
    }
}

// MARK: - The scenarios every gateway suite runs

/// Redis, Sluice and the app behind the gateway, for one test.
struct GatewayStack {
    let redis: RedisServer
    let sluice: SluiceProcess
    let app: UpstreamApp

    /// What the app served, without the harness's own start-up probes.
    var served: [String] { self.app.requests.filter { !$0.hasSuffix(" /gateway-up") } }
}

extension GatewaySite {
    /// Starts Redis, Sluice (configured as this site requires, with `plans`) and the app.
    func startStack(plans: String) async throws -> GatewayStack {
        let redis = try await RedisServer.start()
        let yaml = """
            redis: { url: \(redis.url), timeout_ms: 5000 }
            server: { forward_auth: { route_from: \(self.routeFrom) } }

            """ + plans
        let sluice = try SluiceProcess(yaml: yaml)
        try await sluice.waitUntilReady()
        return GatewayStack(redis: redis, sluice: sluice, app: try UpstreamApp())
    }

    /// Starts the gateway and waits until it answers.
    func startGateway(sluicePort: Int, appPort: Int, failMode: FailMode = .closed, slowSluice: Bool) async throws -> GatewayProcess {
        let gateway = try self.start(GatewayOptions(sluicePort: sluicePort, appPort: appPort, failMode: failMode, slowSluice: slowSluice))
        try await gateway.waitUntilUp()
        return gateway
    }

    /// Allowed requests reach the app with every rate-limit field the plan emits; a denial is
    /// a 429 with Retry-After and the fields, on a connection that stays open; no key is a 401,
    /// an unknown key a 403; the app sees only what was allowed.
    func checkDecisions() async throws {
        let stack = try await self.startStack(plans: """
            plans:
              gw:
                throttle: { rate: 0.01, burst: 2 }
                headers: [legacy, openai]
                routes:
                  "GET /v1/models/{model}": { rate: 0.01, burst: 5 }
            api_keys: [ { key: gw-key, plan: gw } ]
            """)
        let gateway = try await self.startGateway(sluicePort: stack.sluice.port, appPort: stack.app.port, slowSluice: true)
        let connection = try KeepAliveConnection(port: gateway.port)
        let before = try await stack.redis.timeMs()

        for remaining in [1, 0] {
            let ok = try await connection.send("GET", "/hello?x=1", headers: ["X-API-Key": "gw-key"])
            #expect(ok.status == 200 && ok.text == "upstream ok\n", "\(self.name): \(ok.dump)\n\(gateway.log)")
            #expect(ok.header("RateLimit-Policy") == #""throttle";q=2;w=200"#, "\(self.name): \(ok.dump)")
            #expect(ok.header("RateLimit")?.hasPrefix(#""throttle";r=\#(remaining);t="#) == true, "\(self.name): \(ok.dump)")
            #expect(ok.header("X-RateLimit-Limit") == "2" && ok.header("X-RateLimit-Remaining") == "\(remaining)", "\(self.name): \(ok.dump)")
            #expect(ok.header("X-RateLimit-Reset") != nil, "\(self.name): \(ok.dump)")
            #expect(ok.header("x-ratelimit-limit-requests") == "2", "\(self.name): \(ok.dump)")
            #expect(ok.header("x-ratelimit-remaining-requests") == "\(remaining)", "\(self.name): \(ok.dump)")
            #expect(ok.header("x-ratelimit-reset-requests") != nil, "\(self.name): \(ok.dump)")
            #expect(ok.header("Retry-After") == nil, "\(self.name): \(ok.dump)")
        }

        // Over the limit, on the same connection.
        let limited = try await connection.send("GET", "/hello", headers: ["Authorization": "Bearer gw-key"])
        let after = try await stack.redis.timeMs()
        #expect(limited.status == 429, "\(self.name): \(limited.dump)\n\(gateway.log)")
        // The first token comes back 100 s after the first request, by Redis's clock.
        let retryAfter = Int64(limited.header("Retry-After") ?? "") ?? -1
        #expect(((100_000 - (after - before) + 999) / 1000)...100 ~= retryAfter, "\(self.name): Retry-After \(retryAfter), \(after - before) ms passed")
        #expect(limited.header("RateLimit-Policy") == #""throttle";q=2;w=200"#, "\(self.name): \(limited.dump)")
        #expect(limited.header("RateLimit")?.hasPrefix(#""throttle";r=0;t="#) == true, "\(self.name): \(limited.dump)")
        #expect(limited.header("X-RateLimit-Remaining") == "0" && limited.header("x-ratelimit-remaining-requests") == "0", "\(self.name): \(limited.dump)")
        #expect(limited.header("Connection")?.lowercased() != "close", "\(self.name): \(limited.dump)")

        // Still open after the 429. A client's X-Sluice-Deny-Status does not change the answer.
        let again = try await connection.send("GET", "/hello", headers: ["X-API-Key": "gw-key", "X-Sluice-Deny-Status": "403"])
        #expect(again.status == 429 && again.header("Retry-After") != nil, "\(self.name): \(again.dump)")

        // A route with its own bucket passes (the plan throttle does not apply there).
        let model = try await connection.send("GET", "/v1/models/gpt-4", headers: ["X-API-Key": "gw-key"])
        #expect(model.status == 200, "\(self.name): \(model.dump)")
        #expect(model.header("RateLimit-Policy") == #""route:GET /v1/models/{model}";q=5;w=500"#, "\(self.name): \(model.dump)")

        let missing = try await connection.send("GET", "/hello")
        #expect(missing.status == 401, "\(self.name): \(missing.dump)")
        #expect(missing.values("WWW-Authenticate") == [#"Bearer realm="sluice""#], "\(self.name): \(missing.dump)")
        let unknown = try await connection.send("GET", "/hello", headers: ["X-API-Key": "not-a-key"])
        #expect(unknown.status == 403, "\(self.name): \(unknown.dump)")

        #expect(stack.served == ["GET /hello?x=1", "GET /hello?x=1", "GET /v1/models/gpt-4"], "\(self.name): \(stack.served)")
    }

    /// The client's own route and cost headers choose neither the limit charged nor the cost:
    /// only the method and URI the gateway saw do.
    func checkSpoofing() async throws {
        let stack = try await self.startStack(plans: """
            plans:
              gw:
                throttle: { rate: 0.01, burst: 10 }
                routes:
                  "* /v1/predict": { rate: 0.01, burst: 5 }
            api_keys: [ { key: gw-key, plan: gw } ]
            """)
        let gateway = try await self.startGateway(sluicePort: stack.sluice.port, appPort: stack.app.port, slowSluice: true)
        let plan = #""throttle";q=10;w=1000"#
        let attempts: [(what: String, method: String, path: String, headers: [String: String], policy: String, remaining: Int)] = [
            (
                "both route pairs and a cost", "GET", "/hello",
                [
                    "X-Original-Method": "POST", "X-Original-URI": "/v1/predict", "X-Forwarded-Method": "POST",
                    "X-Forwarded-Uri": "/v1/predict", "X-RateLimit-Cost": "7",
                ], plan, 9
            ),
            ("X-Original-URI alone", "GET", "/hello", ["X-Original-URI": "/v1/predict"], plan, 8),
            ("X-Original-Method and X-Original-URI", "GET", "/hello", ["X-Original-Method": "POST", "X-Original-URI": "/v1/predict"], plan, 7),
            ("X-Forwarded-Method and X-Forwarded-Uri", "GET", "/hello", ["X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/v1/predict"], plan, 6),
            ("X-Forwarded-Uri alone", "GET", "/hello", ["X-Forwarded-Uri": "/v1/predict"], plan, 5),
            ("a peek (cost 0)", "GET", "/hello", ["X-RateLimit-Cost": "0"], plan, 4),
            (
                "the other way round", "POST", "/v1/predict",
                [
                    "X-Original-Method": "GET", "X-Original-URI": "/hello", "X-Forwarded-Method": "GET",
                    "X-Forwarded-Uri": "/hello", "X-RateLimit-Cost": "3",
                ], #""route:* /v1/predict";q=5;w=500"#, 4
            ),
        ]
        for attempt in attempts {
            var headers = attempt.headers
            headers["X-API-Key"] = "gw-key"
            let answer = try await gateway.request(attempt.method, attempt.path, headers: headers)
            #expect(answer.status == 200, "\(self.name), \(attempt.what): \(answer.dump)\n\(gateway.log)")
            #expect(answer.header("RateLimit-Policy") == attempt.policy, "\(self.name), \(attempt.what): \(answer.dump)")
            let state = answer.header("RateLimit") ?? ""
            #expect(state.hasPrefix(attempt.policy.prefix { $0 != ";" } + ";r=\(attempt.remaining);"), "\(self.name), \(attempt.what): \(answer.dump)")
        }
    }

    /// A client's `X-Sluice-Stage` never reaches Sluice: the site sets the stage itself (or,
    /// as shipped, sends none), so a plan that lists stages answers 400 `missing_stage`, not a
    /// decision for the stage the client named.
    func checkStageSpoofing() async throws {
        let stack = try await self.startStack(plans: """
            plans:
              gw:
                throttle: { rate: 0.01, burst: 10 }
                stages: { "mlApi/prod": {} }
            api_keys: [ { key: gw-key, plan: gw } ]
            """)
        let gateway = try await self.startGateway(sluicePort: stack.sluice.port, appPort: stack.app.port, slowSluice: true)
        for stage in ["mlApi/prod", "mlApi/dev"] {
            let answer = try await gateway.request("GET", "/hello", headers: ["X-API-Key": "gw-key", "X-Sluice-Stage": stage])
            #expect(answer.status == 400, "\(self.name), client stage \(stage): \(answer.dump)\n\(gateway.log)")
        }
        #expect(stack.served.isEmpty, "\(self.name): \(stack.served)")
    }

    /// Sluice down: fail-closed answers 503 at once and nothing reaches the app; fail-open
    /// lets the request through.
    func checkSluiceUnreachable() async throws {
        let deadPort = try FreePort.find()
        let app = try UpstreamApp()
        let closed = try await self.startGateway(sluicePort: deadPort, appPort: app.port, failMode: .closed, slowSluice: false)
        let open = try await self.startGateway(sluicePort: deadPort, appPort: app.port, failMode: .open, slowSluice: false)

        let started = ContinuousClock.now
        let refused = try await closed.request("GET", "/closed", headers: ["X-API-Key": "gw-key"])
        // A refused connection fails at once; the sites' timeouts bound it well below this.
        #expect(refused.status == 503 && ContinuousClock.now - started < .seconds(5), "\(self.name): \(refused.dump)\n\(closed.log)")
        #expect(refused.text.contains("rate_limiter_unavailable"), "\(self.name): \(refused.dump)")

        let passed = try await open.request("GET", "/open", headers: ["X-API-Key": "gw-key"])
        #expect(passed.status == 200 && passed.text == "upstream ok\n", "\(self.name): \(passed.dump)\n\(open.log)")
        #expect(app.requests.filter { !$0.hasSuffix(" /gateway-up") } == ["GET /open"], "\(self.name): \(app.requests)")
    }

    /// Redis down, Sluice up: the plan decides in both fail modes. `on_backend_error: deny`
    /// is Sluice's 503 (the fail-open gateway must not let it through); `allow` passes.
    func checkRedisDown() async throws {
        let stack = try await self.startStack(plans: """
            plans:
              strict: { throttle: { rate: 0.01, burst: 100 }, on_backend_error: deny }
              lenient: { throttle: { rate: 0.01, burst: 100 }, on_backend_error: allow }
            api_keys: [ { key: strict-key, plan: strict }, { key: lenient-key, plan: lenient } ]
            """)
        let gateways = [
            try await self.startGateway(sluicePort: stack.sluice.port, appPort: stack.app.port, failMode: .closed, slowSluice: true),
            try await self.startGateway(sluicePort: stack.sluice.port, appPort: stack.app.port, failMode: .open, slowSluice: true),
        ]
        let first = try await gateways[0].request("GET", "/strict", headers: ["X-API-Key": "strict-key"])
        #expect(first.status == 200, "\(self.name): \(first.dump)\n\(gateways[0].log)")

        let redis = stack.redis
        try await offCooperativePool { redis.stop() }
        // Sluice answers 503 for the strict plan once it has noticed.
        let noticed = try await poll(.seconds(15), every: .milliseconds(50)) {
            (try? await HTTPTestClient.check(port: stack.sluice.port, #"{"api_key":"strict-key"}"#))?.status == 503
        }
        #expect(noticed != nil, "\(self.name): Sluice did not answer 503 with Redis down: \(stack.sluice.log.suffix(2000))")

        for (gateway, mode) in zip(gateways, [FailMode.closed, .open]) {
            let denied = try await gateway.request("GET", "/strict", headers: ["X-API-Key": "strict-key"])
            #expect(denied.status == 503, "\(self.name) fail-\(mode.rawValue): \(denied.dump)\n\(gateway.log)")
            #expect(denied.text.contains("backend_unavailable"), "\(self.name) fail-\(mode.rawValue): \(denied.dump)")
            let allowed = try await gateway.request("GET", "/lenient", headers: ["X-API-Key": "lenient-key"])
            #expect(allowed.status == 200 && allowed.text == "upstream ok\n", "\(self.name) fail-\(mode.rawValue): \(allowed.dump)\n\(gateway.log)")
        }
        #expect(stack.served == ["GET /strict", "GET /lenient", "GET /lenient"], "\(self.name): \(stack.served)")
    }
}
