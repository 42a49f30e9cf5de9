import CTLS

#if canImport(Glibc)
    import Glibc
#endif

/// The bytes of one connection the client owns, plain or under TLS: what the native FTP
/// engine (docs/ARCHITECTURE.md, "The FTP engine") reads replies and data from and writes
/// commands and data to. The socket is non-blocking; a call that would wait polls it, up to
/// `timeout` seconds, then throws `FTPError(.interrupted)`.
protocol ByteStream: AnyObject {
    var fd: Int32 { get }
    /// Seconds a call waits for the peer before it throws.
    var timeout: Int { get set }
    /// Sends all of `bytes`.
    func send(_ bytes: UnsafeRawBufferPointer) throws
    /// Reads what is there (waiting for something first): a count > 0, or 0 at the end.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Ends the stream (a TLS one says so first) and closes the socket.
    func close()
}

extension ByteStream {
    func send(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try send($0) } }
}

/// A plain TCP connection.
final class PlainStream: ByteStream {
    private(set) var fd: Int32
    var timeout: Int
    let display: String

    init(fd: Int32, timeout: Int, display: String) {
        self.fd = fd
        self.timeout = timeout
        self.display = display
    }

    deinit { close() }

    func send(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n > 0 {
                offset += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                try FTPConnection.wait(for: Int16(POLLOUT), on: fd, timeout: timeout, display: display)
            } else {
                throw FTPError(.interrupted, "\(display): the connection broke (\(String(cString: strerror(errno))))")
            }
        }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            guard errno == EAGAIN || errno == EINTR else {
                throw FTPError(.interrupted, "\(display): the connection broke (\(String(cString: strerror(errno))))")
            }
            try FTPConnection.wait(for: Int16(POLLIN), on: fd, timeout: timeout, display: display)
        }
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Hands the socket over (to a TLS stream after `AUTH TLS`): this stream no longer owns it.
    func detach() -> Int32 {
        defer { fd = -1 }
        return fd
    }
}

/// What TLS connections to one server share: the certificates they trust.
final class TLSContext: @unchecked Sendable {
    fileprivate let pointer: UnsafeMutableRawPointer

    /// - Parameter caFile: a PEM file of the certificates to trust; nil: the system's.
    init(caFile: String?) throws {
        guard let pointer = ctls_context_new(caFile) else {
            throw FTPError(.tls, String(cString: ctls_error()))
        }
        self.pointer = pointer
    }

    deinit { ctls_context_free(pointer) }
}

/// A TLS session, to resume on a data connection (servers such as vsftpd refuse a data
/// connection that does not resume the control connection's session).
final class TLSSession: @unchecked Sendable {
    fileprivate let pointer: UnsafeMutableRawPointer
    fileprivate init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
    deinit { ctls_session_free(pointer) }
}

/// A TLS client connection over a socket the client opened (after `AUTH TLS`, or from the
/// first byte for implicit FTPS), through OpenSSL's libssl (loaded at the first use).
final class TLSStream: ByteStream {
    private(set) var fd: Int32
    var timeout: Int
    let display: String
    private var ssl: UnsafeMutableRawPointer?

    /// Shakes hands on `fd` (connected, non-blocking); the server's certificate must be trusted
    /// by `context` and name `host`. `session`: the control connection's, to resume. Without
    /// `handshake`, the caller drives it (`handshakeStep`).
    init(
        fd: Int32, host: String, context: TLSContext, resuming session: TLSSession? = nil, timeout: Int,
        display: String, handshake: Bool = true
    ) throws {
        self.fd = fd
        self.timeout = timeout
        self.display = display
        guard let ssl = ctls_new(context.pointer, fd, host, session?.pointer) else {
            Glibc.close(fd)
            self.fd = -1
            throw FTPError(.tls, "\(display): \(String(cString: ctls_error()))")
        }
        self.ssl = ssl
        guard handshake else { return }
        do {
            try step { ctls_handshake(ssl) }
        } catch {
            close()
            throw error
        }
    }

    /// One step of a handshake the caller drives: nil when it is done, else the poll events it
    /// waits for (`POLLIN` or `POLLOUT`).
    func handshakeStep() throws -> Int16? {
        guard let ssl else { throw FTPError(.interrupted, "\(display): the connection is closed") }
        switch ctls_handshake(ssl) {
        case 1: return nil
        case CTLS_WANT_READ: return Int16(POLLIN)
        case CTLS_WANT_WRITE: return Int16(POLLOUT)
        default: throw FTPError(.tls, "\(display): \(String(cString: ctls_error()))")
        }
    }

    /// Whether the peer sent something or ended the session without being asked: reads what
    /// is there without waiting (a TLS 1.3 session ticket is no data).
    func hasUnsolicitedInput() -> Bool {
        guard let ssl else { return true }
        var byte: UInt8 = 0
        let result = ctls_read(ssl, &byte, 1)
        return result != Int(CTLS_WANT_READ) && result != Int(CTLS_WANT_WRITE)
    }

    deinit { close() }

    /// The session, for data connections to resume (read it after the first reply on the
    /// stream: a TLS 1.3 server sends its session ticket after the handshake).
    var session: TLSSession? { ssl.flatMap { ctls_session($0) }.map(TLSSession.init) }

    /// Whether the handshake resumed the session it was given.
    var resumedSession: Bool { ssl.map { ctls_session_reused($0) == 1 } ?? false }

    func send(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            offset += try step { ctls_write(ssl, bytes.baseAddress! + offset, bytes.count - offset) }
        }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try step { ctls_read(ssl, buffer.baseAddress, buffer.count) }
    }

    /// Ends an upload: says close_notify, then reads (and drops) what the server still sends on
    /// this connection (TLS 1.3 session tickets, its own close_notify) until it closes it or
    /// `control` has something to read (the transfer's last reply). A socket closed with bytes
    /// unread is reset, and the server would lose the end of the file (vsftpd: 426).
    func endUpload(watching control: Int32) {
        guard let ssl, !saidClose else { return }
        saidClose = true
        ctls_close(ssl)
        var scratch = [UInt8](repeating: 0, count: 4096)
        let deadline = DataConnection.monotonicSeconds() + Double(timeout)
        while true {
            let n = ctls_read(ssl, &scratch, scratch.count)
            if n > 0 { continue }
            guard n == Int(CTLS_WANT_READ) || n == Int(CTLS_WANT_WRITE) else { return }
            let left = deadline - DataConnection.monotonicSeconds()
            if left <= 0 { return }
            var entries = [
                pollfd(fd: fd, events: Int16(n == Int(CTLS_WANT_READ) ? POLLIN : POLLOUT), revents: 0),
                pollfd(fd: control, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&entries, 2, Int32(left * 1000))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 || entries[1].revents != 0 { return }
        }
    }
    private var saidClose = false

    func close() {
        if let ssl {
            if !saidClose { ctls_close(ssl) }
            ctls_free(ssl)
        }
        ssl = nil
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Runs one libssl call until it gets somewhere: its count (or 1), 0 when the peer ended
    /// the session, polling the socket in between.
    private func step<N: BinaryInteger>(_ call: () -> N) throws -> Int {
        guard ssl != nil else { throw FTPError(.interrupted, "\(display): the connection is closed") }
        while true {
            let result = Int(call())
            switch Int32(result) {
            case CTLS_WANT_READ:
                try FTPConnection.wait(for: Int16(POLLIN), on: fd, timeout: timeout, display: display)
            case CTLS_WANT_WRITE:
                try FTPConnection.wait(for: Int16(POLLOUT), on: fd, timeout: timeout, display: display)
            case CTLS_CLOSED:
                return 0
            case CTLS_FAILED:
                throw FTPError(.tls, "\(display): \(String(cString: ctls_error()))")
            default:
                return result
            }
        }
    }
}
