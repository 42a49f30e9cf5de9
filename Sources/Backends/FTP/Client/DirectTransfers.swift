#if canImport(Glibc)
    import Glibc
#endif

/// Downloads and uploads that the connection runs itself, without curl, where it can: a plain
/// connection in passive mode that curl has finished with after a binary transfer of its own
/// (so the server is in `TYPE I`, as curl believes, and curl has nothing in flight on it).
///
/// The commands are curl's (`EPSV`, then `RETR` or `STOR` once the data connection to the EPSV
/// port is open), one per write. What goes is curl's overhead: it polls each socket before and
/// after every step and sets four socket options on each data connection, and a tree of small
/// files is mostly that for the client. The bytes go straight between the socket and the
/// caller's buffer. This class is a download; `DirectTransfer.store` an upload.
///
/// Any surprise (a reply out of order, a broken or stalled connection) leaves the control
/// connection out of step: it is shut down (`FTPConnection.lostStep`), and curl logs in anew
/// for the next operation, as after a failed `exchange`.
final class DirectRetrieval {
    private unowned let connection: FTPConnection
    private var data: Int32
    private var replies: ReplyReader
    private let what: String
    private var ended = false
    private var watch: StallWatch

    private init(connection: FTPConnection, data: Int32, replies: ReplyReader, what: String) {
        self.connection = connection
        self.data = data
        self.replies = replies
        self.what = what
        self.watch = StallWatch(
            timeout: connection.options.responseTimeout, what: connection.options.display + ": " + what)
    }

    deinit {
        if data >= 0 { close(data) }
    }

    /// Starts retrieving `path` (a path from the login directory, as `commandPath` names it);
    /// nil where the server would not open a passive connection (the connection stays usable,
    /// and curl's way, which also knows PASV, takes it from there).
    static func start(_ path: [UInt8], on connection: FTPConnection) throws -> DirectRetrieval? {
        guard let opened = try DirectTransfer.open("RETR", path, on: connection) else { return nil }
        return DirectRetrieval(connection: connection, data: opened.data, replies: opened.replies, what: opened.what)
    }

    /// Reads up to `buffer.count` bytes; 0 at the end of the file (after the server's 226).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if ended || buffer.count == 0 { return 0 }
        do {
            while true {
                let n = recv(data, buffer.baseAddress, buffer.count, 0)
                if n > 0 {
                    try watch.moved(n)
                    return n
                }
                if n == 0 { return try finish() }
                if errno == EINTR { continue }
                guard errno == EAGAIN || errno == EWOULDBLOCK else { throw watch.broken() }
                try watch.wait(data, for: POLLIN)
            }
        } catch {
            abandon()
            throw error
        }
    }

    /// Ends a retrieval that was not read to its end: the server's last reply is still to come
    /// at an unknown time, so the control connection is given up.
    func abandon() {
        if ended { return }
        ended = true
        if data >= 0 { close(data) }
        data = -1
        connection.lostStep()
    }

    /// The data connection ended: the server's reply says whether that was the whole file.
    private func finish() throws -> Int {
        close(data)
        data = -1
        let reply = try replies.next()
        if ProcessEnvironment.verbose { fputs("< \(reply.code) \(reply.text)\n", stderr) }
        guard replies.isEmpty else {
            throw FTPError(.protocolError, "\(connection.options.display): \(what): replies out of step")
        }
        ended = true  // in step whatever the reply: the connection goes on
        guard reply.code == 226 || reply.code == 250 else {
            throw FTPError(
                .interrupted, "\(connection.options.display): \(what): server replied \(reply.code) \(reply.text)",
                replyCode: reply.code)
        }
        return 0
    }

}

/// What both directions share: `EPSV`, the data connection to its port, the transfer command,
/// the server's 150.
enum DirectTransfer {
    struct Opened {
        var data: Int32
        var replies: ReplyReader
        var what: String
    }

    /// The data connection for `verb path`, open and announced (150); nil where the server
    /// would not open a passive connection (then downloads and uploads on this connection go
    /// through curl, which also knows PASV). A refusal (550 and the like) is answered in step
    /// and thrown; any other surprise shuts the control connection (`lostStep`).
    static func open(_ verb: String, _ path: [UInt8], on connection: FTPConnection) throws -> Opened? {
        let options = connection.options
        let control = connection.controlSocket
        let command = Array("\(verb) ".utf8) + connection.commandPath(path)
        try FTPConnection.validate([command])
        let what = "\(verb) " + FTPConnection.printable(path)
        var replies = ReplyReader(fd: control, timeout: options.responseTimeout, display: options.display)
        var data: Int32 = -1
        var refusal: FTPError?
        do {
            // One command per write, each after the reply to the one before, as curl sends them:
            // proftpd sometimes joins `EPSV` and a `RETR` sent in one write into one command and
            // answers once (about one run in four of 10,000 files; a 60 s wait each time).
            if ProcessEnvironment.verbose { fputs("> EPSV (direct)\n", stderr) }
            try FTPConnection.send(
                Array("EPSV\r\n".utf8), on: control, timeout: options.responseTimeout, display: options.display)
            let passive = try replies.next()
            guard passive.code == 229, replies.isEmpty, let port = epsvPort(passive.text) else {
                // In step (nothing else was sent): curl takes this connection's transfers from
                // here, with PASV where EPSV is refused.
                connection.directTransfers = false
                return nil
            }
            data = try connectData(port: port, control: control, options: options)
            if ProcessEnvironment.verbose { fputs("> \(FTPConnection.printable(command)) (direct)\n", stderr) }
            try FTPConnection.send(
                command + [13, 10], on: control, timeout: options.responseTimeout, display: options.display)
            let opening = try replies.next()
            if opening.code >= 400 && replies.isEmpty {
                let missing = (opening.code == 550 || opening.code == 450) && FTPConnection.soundsMissing(opening.text)
                refusal = FTPError(
                    missing ? .notFound : .refused,
                    "\(options.display): \(what): server replied \(opening.code) \(opening.text)",
                    replyCode: opening.code)
            } else if opening.code != 150 && opening.code != 125 {
                throw FTPError(
                    .protocolError, "\(options.display): \(what): unexpected reply \(opening.code) \(opening.text)",
                    replyCode: opening.code)
            }
        } catch {
            if data >= 0 { close(data) }
            connection.lostStep()
            throw error
        }
        if let refusal {
            close(data)
            throw refusal  // answered in step: the connection goes on
        }
        return Opened(data: data, replies: replies, what: what)
    }

    /// The port of an `EPSV` reply: `Entering Extended Passive Mode (|||6446|)` (RFC 2428; any
    /// delimiter, the same four times).
    static func epsvPort(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")), open + 4 < bytes.count else { return nil }
        let delimiter = bytes[open + 1]
        guard bytes[open + 2] == delimiter, bytes[open + 3] == delimiter else { return nil }
        var port = 0
        var index = open + 4
        while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39, port < 65536 {
            port = port * 10 + Int(bytes[index] - 0x30)
            index += 1
        }
        guard index > open + 4, index < bytes.count, bytes[index] == delimiter, port > 0, port < 65536 else {
            return nil
        }
        return port
    }

    /// A connection to `port` at the control connection's peer address (EPSV names no host).
    static func connectData(port: Int, control: Int32, options: FTPOptions) throws -> Int32 {
        func broken(_ detail: String) -> FTPError {
            FTPError(.interrupted, "\(options.display): cannot open the data connection to port \(port) (\(detail))")
        }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(control, $0, &length) }
        }
        guard named == 0 else { throw broken(String(cString: strerror(errno))) }
        switch Int32(address.ss_family) {
        case AF_INET:
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_port = UInt16(port).bigEndian }
            }
        case AF_INET6:
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    $0.pointee.sin6_port = UInt16(port).bigEndian
                }
            }
        default:
            throw broken("the control connection is neither IPv4 nor IPv6")
        }
        let fd = socket(
            Int32(address.ss_family),
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FTPError(.local, "socket failed (\(String(cString: strerror(errno))))") }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if connected != 0 {
            guard errno == EINPROGRESS else {
                let error = broken(String(cString: strerror(errno)))
                close(fd)
                throw error
            }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var ready: Int32
            repeat { ready = poll(&entry, 1, Int32(options.connectTimeout * 1000)) } while ready < 0 && errno == EINTR
            var failure: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size)
            if ready <= 0 || failure != 0 {
                close(fd)
                throw broken(
                    ready == 0 ? "no answer within \(options.connectTimeout) s" : String(cString: strerror(failure)))
            }
        }
        return fd
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Uploads what `read` gives (0 at the end) to `path`; false where the server would not open
    /// a passive connection. The end of the data connection is the end of the file for the
    /// server: when `read` fails, the server still gets (and keeps) what was sent, as with curl,
    /// and the caller's size check and temporary names deal with it; the error is `read`'s.
    static func store(
        _ path: [UInt8], size: Int64, on connection: FTPConnection,
        read: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> Bool {
        guard let opened = try open("STOR", path, on: connection) else { return false }
        var data = opened.data
        var replies = opened.replies
        let display = connection.options.display
        let timeout = connection.options.responseTimeout
        var readError: Error?
        let reply: FTPReply
        do {
            // As large as the file (most are small), at most 256 KiB.
            let buffer = UnsafeMutableRawBufferPointer.allocate(
                byteCount: Int(min(max(size, 4096), 1 << 18)), alignment: 16)
            defer { buffer.deallocate() }
            var watch = StallWatch(timeout: timeout, what: display + ": " + opened.what)
            sending: while true {
                let n: Int
                do {
                    n = try read(buffer)
                } catch {
                    readError = error
                    break sending
                }
                if n == 0 { break }
                var offset = 0
                while offset < n {
                    let sent = send(data, buffer.baseAddress! + offset, n - offset, Int32(MSG_NOSIGNAL))
                    if sent > 0 {
                        offset += sent
                        try watch.moved(sent)
                        continue
                    }
                    if sent < 0 && errno == EINTR { continue }
                    guard sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) else { throw watch.broken() }
                    try watch.wait(data, for: POLLOUT)
                }
            }
            close(data)
            data = -1
            reply = try replies.next()
            if ProcessEnvironment.verbose { fputs("< \(reply.code) \(reply.text)\n", stderr) }
            guard replies.isEmpty else {
                throw FTPError(.protocolError, "\(display): \(opened.what): replies out of step")
            }
        } catch {
            if data >= 0 { close(data) }
            connection.lostStep()
            throw error
        }
        if let readError { throw readError }
        guard reply.code == 226 || reply.code == 250 else {
            throw FTPError(
                reply.code < 500 ? .interrupted : .refused,
                "\(display): \(opened.what): server replied \(reply.code) \(reply.text)", replyCode: reply.code)
        }
        return true
    }
}

/// curl's rule on its own path (CURLOPT_LOW_SPEED_*): under 1 KiB/s for a whole response
/// timeout is a stall, so that a server trickling a few bytes a second cannot hold a run.
struct StallWatch {
    let timeout: Int
    /// `server: RETR path`, for messages.
    let what: String
    private var start = DirectTransfer.monotonicSeconds()
    private var bytes = 0

    init(timeout: Int, what: String) {
        self.timeout = timeout
        self.what = what
    }

    mutating func moved(_ count: Int) throws {
        bytes += count
        try check()
    }

    mutating func check() throws {
        let now = DirectTransfer.monotonicSeconds()
        guard now - start >= Double(timeout) else { return }
        if bytes < 1024 * timeout { throw FTPError(.interrupted, "\(what): under 1 KiB/s for \(timeout) s, given up") }
        start = now
        bytes = 0
    }

    /// Waits until `fd` is ready for `events`, at most until the window ends.
    mutating func wait(_ fd: Int32, for events: Int32) throws {
        try check()
        var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
        let left = Double(timeout) - (DirectTransfer.monotonicSeconds() - start)
        if poll(&entry, 1, Int32(max(1, left * 1000))) < 0 && errno != EINTR {
            throw FTPError(.interrupted, "\(what): poll failed (\(String(cString: strerror(errno))))")
        }
    }

    /// The error for a data connection that failed (`errno`).
    func broken() -> FTPError {
        FTPError(.interrupted, "\(what): the data connection broke (\(String(cString: strerror(errno))))")
    }
}

/// Replies read from a control connection one at a time; bytes after a reply are kept for the
/// next one.
struct ReplyReader {
    let fd: Int32
    let timeout: Int
    let display: String
    private var buffer: [UInt8] = []

    /// Where the bytes come from when the client owns the connection (plain or TLS); nil: `fd`.
    private let stream: ByteStream?

    init(fd: Int32, timeout: Int, display: String) {
        self.fd = fd
        self.timeout = timeout
        self.display = display
        self.stream = nil
    }

    init(stream: ByteStream, timeout: Int, display: String) {
        self.fd = stream.fd
        self.timeout = timeout
        self.display = display
        self.stream = stream
    }

    /// Nothing read past the last reply.
    var isEmpty: Bool { buffer.isEmpty }

    /// The most bytes a reply may hold: 64 KiB, more for a listing in a reply (`STAT path`).
    var limit = 1 << 16

    mutating func next() throws -> FTPReply {
        if let reply = FTPReply.parse(try nextBytes()).first { return reply }
        throw FTPError(.protocolError, "\(display): a reply that cannot be read")
    }

    /// The next whole reply as the server sent it, up to and with the line feed that ends it.
    mutating func nextBytes() throws -> [UInt8] {
        while true {
            if let end = Self.endOfFirstReply(buffer) {
                let reply = Array(buffer[...end])
                buffer.removeFirst(end + 1)
                return reply
            }
            guard buffer.count < limit else {
                throw FTPError(.protocolError, "\(display): a reply of over \(limit >> 10) KiB")
            }
            // Reads of 4 KiB for short replies; a long one is read 64 KiB at a time, so that
            // looking for its end again after each read stays cheap.
            let size = buffer.count < 1 << 14 ? 4096 : 1 << 16
            let n = try withUnsafeTemporaryAllocation(byteCount: size, alignment: 1) { chunk in
                let n = try stream?.receive(into: chunk) ?? recv(fd, chunk.baseAddress, chunk.count, 0)
                if n > 0 { buffer += chunk[0..<n] }
                return n
            }
            if n > 0 {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                try FTPConnection.wait(for: Int16(POLLIN), on: fd, timeout: timeout, display: display)
            } else {
                throw FTPError(.interrupted, "\(display): the server closed the control connection")
            }
        }
    }

    /// The index of the line feed that ends the first whole reply in `bytes` (by the rules of
    /// `FTPReply.parse`: three digits and a space end it, `NNN-` opens a multi-line one).
    static func endOfFirstReply(_ bytes: [UInt8]) -> Int? {
        var start = 0
        var open: ArraySlice<UInt8>?
        while start < bytes.count, let newline = bytes[start...].firstIndex(of: 10) {
            var line = bytes[start..<newline]
            if line.last == 13 { line = line.dropLast() }
            let code = line.count >= 3 && line.prefix(3).allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
            let separator = line.count > 3 ? line[line.startIndex + 3] : UInt8(ascii: " ")
            if code && separator == UInt8(ascii: " ") && (open == nil || open! == line.prefix(3)) { return newline }
            if code && separator == UInt8(ascii: "-") && open == nil { open = line.prefix(3) }
            start = newline + 1
        }
        return nil
    }
}
