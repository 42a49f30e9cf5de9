import TestSupport
import XCTest

@testable import CurlFTP

#if canImport(Glibc)
    import Glibc
#endif

/// The native engine's byte streams against real FTPS servers (vsftpd with a private CA):
/// explicit TLS after `AUTH TLS` and implicit TLS from the first byte, a login and a listing
/// over a TLS data connection that resumes the control connection's session, and the refusals
/// (a certificate no trusted CA signed, a name the certificate does not hold).
final class TLSStreamTests: XCTestCase {
    /// A plain, non-blocking TCP connection to 127.0.0.1:`port`.
    func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            XCTAssertEqual(errno, EINPROGRESS)
            try FTPConnection.wait(for: Int16(POLLOUT), on: fd, timeout: 10, display: "connect")
        }
        return fd
    }

    struct Control {
        let stream: ByteStream
        var replies: ReplyReader

        init(_ stream: ByteStream) {
            self.stream = stream
            self.replies = ReplyReader(stream: stream, display: "test")
        }

        /// Sends the commands in one write and returns their replies.
        mutating func send(_ commands: String...) throws -> [FTPReply] {
            try stream.send(Array(commands.map { $0 + "\r\n" }.joined().utf8))
            return try commands.map { _ in try replies.next() }
        }
    }

    func testExplicitTLSLoginAndAListingOverAResumedSession() throws {
        let server = try FTPServer.start("vsftpd-tls")
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: server.root + "/hello.txt"))
        _ = chown(server.root + "/hello.txt", getpwnam(server.user).pointee.pw_uid, 0)
        let context = try TLSContext(caFile: server.caFile)

        let plain = PlainStream(fd: try connect(server.port), timeout: 10, display: "test")
        var greeting = ReplyReader(stream: plain, display: "test")
        XCTAssertEqual(try greeting.next().code, 220)
        try plain.send(Array("AUTH TLS\r\n".utf8))
        XCTAssertEqual(try greeting.next().code, 234)
        XCTAssertTrue(greeting.isEmpty)
        let tlsFD = dup(plain.fd)
        plain.close()
        var control = Control(
            try TLSStream(fd: tlsFD, host: "127.0.0.1", context: context, timeout: 10, display: "test"))
        // One write for the whole login and set-up: the replies come in order.
        let login = try control.send(
            "USER \(server.user)", "PASS \(server.password)", "PBSZ 0", "PROT P", "TYPE I", "EPSV")
        XCTAssertEqual(login.map(\.code), [331, 230, 200, 200, 200, 229], "\(login)")
        let port = try XCTUnwrap(DataConnection.epsvPort(login[5].text), login[5].text)
        let tlsControl = try XCTUnwrap(control.stream as? TLSStream)
        let session = try XCTUnwrap(tlsControl.session)

        try control.stream.send(Array("LIST\r\n".utf8))
        let data = try TLSStream(
            fd: try connect(port), host: "127.0.0.1", context: context, resuming: session, timeout: 10,
            display: "data")
        XCTAssertTrue(data.resumedSession, "the data connection resumes the control connection's session")
        XCTAssertEqual(try control.replies.next().code, 150)
        var listing: [UInt8] = []
        try withUnsafeTemporaryAllocation(byteCount: 4096, alignment: 1) { chunk in
            while case let n = try data.receive(into: chunk), n > 0 { listing += chunk[0..<n] }
        }
        data.close()
        XCTAssertEqual(try control.replies.next().code, 226)
        XCTAssertTrue(
            String(decoding: listing, as: UTF8.self).contains("hello.txt"), String(decoding: listing, as: UTF8.self))
        XCTAssertEqual(try control.send("QUIT").map(\.code), [221])
        control.stream.close()
    }

    func testImplicitTLSFromTheFirstByte() throws {
        let server = try FTPServer.start("vsftpd-tlsi")
        let context = try TLSContext(caFile: server.caFile)
        var control = Control(
            try TLSStream(
                fd: try connect(server.port), host: "127.0.0.1", context: context, timeout: 10, display: "test"))
        XCTAssertEqual(try control.replies.next().code, 220)
        XCTAssertEqual(try control.send("USER \(server.user)", "PASS \(server.password)").map(\.code), [331, 230])
        control.stream.close()
    }

    func testACertificateNotTrustedOrForAnotherNameIsRefused() throws {
        let server = try FTPServer.start("vsftpd-tlsi")
        // The system's certificates never signed the test CA's.
        let system = try TLSContext(caFile: nil)
        XCTAssertThrowsError(
            try TLSStream(fd: try connect(server.port), host: "127.0.0.1", context: system, timeout: 10, display: "t")
        ) { error in
            XCTAssertEqual((error as? FTPError)?.kind, .tls, "\(error)")
            XCTAssertTrue("\(error)".contains("certificate"), "\(error)")
        }
        // Trusted, but it names 127.0.0.1 and localhost, not this name.
        let trusted = try TLSContext(caFile: server.caFile)
        XCTAssertThrowsError(
            try TLSStream(
                fd: try connect(server.port), host: "ftp.example.com", context: trusted, timeout: 10, display: "t")
        ) { error in
            XCTAssertEqual((error as? FTPError)?.kind, .tls, "\(error)")
        }
        XCTAssertThrowsError(try TLSContext(caFile: "/nonexistent/ca.pem")) { error in
            XCTAssertEqual((error as? FTPError)?.kind, .tls, "\(error)")
        }
    }
}
