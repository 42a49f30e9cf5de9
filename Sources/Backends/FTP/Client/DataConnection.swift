#if canImport(Glibc)
    import Glibc
#endif

/// One transfer's data connection (a listing, a download or an upload), opened by
/// `FTPConnection.openData` once the server announced the transfer (150): plain, or TLS
/// resuming the control connection's session under FTPS.
///
/// Reads and writes follow curl's rule on stalls (`StallWatch`). The end of the data is the
/// end of the transfer; the server's reply after it (`finish`) says whether it went through.
/// Any surprise gives up the control connection (`FTPConnection.lostStep`): the next operation
/// logs in anew.
final class DataConnection {
    private unowned let connection: FTPConnection
    private var stream: ByteStream?
    /// `server: RETR path`, for messages.
    let what: String
    private var watch: StallWatch
    /// The transfer's last reply where the server sent it before the data (a 226 at once).
    private var early: FTPReply?
    private var ended = false
    /// An upload (set by `FTPConnection.upload`): its end is said before the connection closes.
    var uploading = false

    init(connection: FTPConnection, stream: ByteStream, what: String, early: FTPReply?) {
        self.connection = connection
        self.stream = stream
        self.what = what
        self.early = early
        self.watch = StallWatch(timeout: connection.options.responseTimeout, what: what)
    }

    deinit { stream?.close() }

    /// Reads up to `buffer.count` bytes; 0 at the end of the data.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let stream, buffer.count > 0 else { return 0 }
        if stream is TLSStream {
            let n = try stream.receive(into: buffer)
            if n > 0 { try watch.moved(n) }
            return n
        }
        while true {
            let n = recv(stream.fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 {
                try watch.moved(n)
                return n
            }
            if n == 0 { return 0 }
            if errno == EINTR { continue }
            guard errno == EAGAIN || errno == EWOULDBLOCK else { throw watch.broken() }
            try watch.wait(stream.fd, for: POLLIN)
        }
    }

    /// Sends all of `bytes`.
    func send(_ bytes: UnsafeRawBufferPointer) throws {
        guard let stream else { throw FTPError(.interrupted, "\(what): the data connection is closed") }
        if stream is TLSStream {
            try stream.send(bytes)
            try watch.moved(bytes.count)
            return
        }
        var offset = 0
        while offset < bytes.count {
            let sent = Glibc.send(stream.fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent > 0 {
                offset += sent
                try watch.moved(sent)
                continue
            }
            if sent < 0 && errno == EINTR { continue }
            guard sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) else { throw watch.broken() }
            try watch.wait(stream.fd, for: POLLOUT)
        }
    }

    /// Closes the data connection (its end is the end of an upload) and reads the transfer's
    /// last reply: thrown when it is not 226 or 250.
    @discardableResult
    func finish() throws -> FTPReply {
        if uploading, let tls = stream as? TLSStream, let control = connection.controlDescriptor {
            tls.endUpload(watching: control)
        }
        stream?.close()
        stream = nil
        ended = true
        var reply: FTPReply
        if let early {
            reply = early
        } else {
            reply = try connection.nextReply()
        }
        if connection.passiveSentAhead { try connection.collectPassiveAhead(after: &reply) }
        guard connection.inStep else {
            connection.lostStep()
            throw FTPError(.protocolError, "\(what): replies out of step")
        }
        guard reply.code == 226 || reply.code == 250 else {
            throw FTPError(
                reply.code >= 500 ? .refused : .interrupted,
                "\(what): server replied \(FTPConnection.describe(reply))", replyCode: reply.code)
        }
        return reply
    }

    /// Ends a transfer that was not read or written to its end: the server's last reply is
    /// still to come at an unknown time, so the control connection is given up.
    func abandon() {
        if ended { return }
        ended = true
        stream?.close()
        stream = nil
        connection.lostStep()
    }

    // MARK: opening

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

    /// The port of a `PASV` reply: `Entering Passive Mode (h1,h2,h3,h4,p1,p2)`. The address is
    /// not used: the data connection goes to the control connection's peer, as curl does (a
    /// server behind NAT often names its private address).
    static func pasvPort(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        guard let start = bytes.firstIndex(where: { $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        var numbers: [Int] = []
        var current: Int?
        for byte in bytes[start...] {
            if byte >= 0x30 && byte <= 0x39 {
                current = (current ?? 0) * 10 + Int(byte - 0x30)
                if current! > 255 { return nil }
            } else if byte == UInt8(ascii: ","), let value = current {
                numbers.append(value)
                current = nil
            } else {
                break
            }
        }
        if let current { numbers.append(current) }
        guard numbers.count == 6 else { return nil }
        let port = numbers[4] * 256 + numbers[5]
        return port > 0 ? port : nil
    }

    /// A connection to `port` at the control connection's peer address (EPSV names no host).
    static func connect(port: Int, control: Int32, options: FTPOptions) throws -> Int32 {
        func broken(_ detail: String) -> FTPError {
            FTPError(.interrupted, "\(options.display): cannot open the data connection to port \(port) (\(detail))")
        }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(control, $0, &length) }
        }
        guard named == 0 else { throw broken(String(cString: strerror(errno))) }
        guard setPort(port, of: &address) else { throw broken("the control connection is neither IPv4 nor IPv6") }
        do {
            return try connectSocket(&address, length: length, timeout: options.connectTimeout)
        } catch let error as SocketError {
            throw broken(error.detail)
        }
    }

    /// Sets the port of an IPv4 or IPv6 address; false for another family.
    static func setPort(_ port: Int, of address: inout sockaddr_storage) -> Bool {
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
            return false
        }
        return true
    }

    struct SocketError: Error {
        var detail: String
        var refused: Bool
    }

    /// A non-blocking TCP connection to `address` (TCP_NODELAY: commands and small files go
    /// at once), within `timeout` seconds.
    static func connectSocket(_ address: inout sockaddr_storage, length: socklen_t, timeout: Int) throws -> Int32 {
        let fd = socket(
            Int32(address.ss_family),
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError(detail: String(cString: strerror(errno)), refused: false) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if connected != 0 {
            guard errno == EINPROGRESS else {
                let error = SocketError(detail: String(cString: strerror(errno)), refused: true)
                close(fd)
                throw error
            }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            var ready: Int32
            let deadline = monotonicSeconds() + Double(timeout)
            repeat {
                let left = max(0, deadline - monotonicSeconds())
                ready = poll(&entry, 1, Int32(left * 1000))
            } while ready < 0 && errno == EINTR
            var failure: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &size)
            if ready <= 0 || failure != 0 {
                close(fd)
                throw SocketError(
                    detail: ready == 0 ? "no answer within \(timeout) s" : String(cString: strerror(failure)),
                    refused: ready != 0)
            }
        }
        return fd
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

/// curl's rule on its own path (CURLOPT_LOW_SPEED_*): under 1 KiB/s for a whole response
/// timeout is a stall, so that a server trickling a few bytes a second cannot hold a run.
struct StallWatch {
    let timeout: Int
    /// `server: RETR path`, for messages.
    let what: String
    private var start = DataConnection.monotonicSeconds()
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
        let now = DataConnection.monotonicSeconds()
        guard now - start >= Double(timeout) else { return }
        if bytes < 1024 * timeout { throw FTPError(.interrupted, "\(what): under 1 KiB/s for \(timeout) s, given up") }
        start = now
        bytes = 0
    }

    /// Waits until `fd` is ready for `events`, at most until the window ends.
    mutating func wait(_ fd: Int32, for events: Int32) throws {
        try check()
        var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
        let left = Double(timeout) - (DataConnection.monotonicSeconds() - start)
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
    let stream: ByteStream
    let display: String
    private var buffer: [UInt8] = []

    init(stream: ByteStream, display: String) {
        self.stream = stream
        self.display = display
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
    /// A reply that comes slower than 1 KiB/s for the stream's timeout is given up (a server
    /// that never ends its greeting, a line at a time).
    mutating func nextBytes() throws -> [UInt8] {
        var watch = StallWatch(timeout: stream.timeout, what: display)
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
                let n = try stream.receive(into: chunk)
                if n > 0 { buffer += chunk[0..<n] }
                return n
            }
            if n == 0 { throw FTPError(.interrupted, "\(display): the server closed the control connection") }
            do {
                try watch.moved(n)
            } catch {
                throw FTPError(.interrupted, "\(display): no whole reply within \(stream.timeout) s")
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
