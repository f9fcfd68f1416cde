#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

#if canImport(Glibc)
private let systemBind = Glibc.bind
#elseif canImport(Darwin)
private let systemBind = Darwin.bind
#endif

/// Free TCP ports on 127.0.0.1 for the servers tests start.
///
/// Ports come from below the kernel's ephemeral range: a port from inside it could be taken by
/// any outgoing connection's local end (the tests make thousands) between this check and the
/// server's bind. A port is handed out once per test process.
public enum FreePort {
    private static let handedOut = Mutex<Set<Int>>([])

    /// A port that was free a moment ago and that no other test of this process got.
    public static func find() throws -> Int {
        let ephemeralStart = Self.ephemeralRangeStart()
        let candidates = ephemeralStart > 12_000 ? 10_000..<ephemeralStart : 0..<0
        for _ in 0..<500 {
            guard let port = candidates.randomElement() else { break }
            let claimed = Self.handedOut.withLock { ports in ports.insert(port).inserted }
            if claimed, try Self.bind(port) == port { return port }
        }
        // No room below the ephemeral range: let the kernel choose.
        guard let port = try Self.bind(0) else { throw TestSupportError("bind() failed") }
        Self.handedOut.withLock { _ = $0.insert(port) }
        return port
    }

    /// The first port of the kernel's ephemeral range (32768 when it cannot be read).
    private static func ephemeralRangeStart() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
            let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap({ Int($0) })
        else { return 32768 }
        return first
    }

    /// Binds `port` (0: any) on 127.0.0.1 and closes it again.
    /// - Returns: the port bound, or nil when it is in use.
    private static func bind(_ port: Int) throws -> Int? {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { systemBind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            if port != 0 { return nil }
            throw TestSupportError("bind() failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw TestSupportError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A failure of the test harness itself (not of Sluice), with what went wrong.
public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
