#if canImport(Glibc)
    import Glibc
#endif

/// One logged-in FTP control connection, kept open across operations.
///
/// The client owns its sockets: the control connection is a `ByteStream` (plain, or TLS after
/// `AUTH TLS` or from the first byte) that commands are written to, as many at once as the
/// protocol allows, and replies read from in order; each listing or transfer opens a data
/// connection of its own (`openData`: EPSV, else PASV, or EPRT/PORT in active mode), under TLS
/// resuming the control connection's session. Not thread-safe: one thread uses a connection at
/// a time (a pool hands them out).
///
/// A connection that got out of step with its server (a broken or stalled transfer, replies
/// that do not match) is closed (`lostStep`), and the next operation logs in anew, as curl did.
///
/// Paths are bytes relative to the login directory, components joined by `/`.
public final class FTPConnection {
    public let options: FTPOptions
    /// The control connection and its replies; nil once given up.
    private var control: ByteStream?
    private var reader: ReplyReader?
    /// The login directory as `PWD` reported it, when it is a usable absolute path: operations
    /// then name absolute paths and the current directory never matters.
    private var home: [UInt8]?
    private var tlsContext: TLSContext?
    /// The control connection's TLS session, resumed by its data connections.
    private var session: TLSSession?
    /// Off once the server refused EPSV: PASV from then on.
    private var extendedPassive = true
    /// Commands a new login sends after its set-up (`OPTS UTF8 ON` where the server takes it):
    /// a connection logged in anew sees the same names as before. Their answers do not matter.
    public var afterLogin: [String] = []

    /// Connects and logs in; throws `FTPError` (`.connection`, `.login`, `.tls`, …).
    ///
    /// `greeted` is called once the server's greeting (220) arrived, under explicit TLS once the
    /// handshake is done: the connection is then counted by the server. `beforePassword` is
    /// called when the server asks for the password (331) and holds the login until it returns;
    /// false gives up before the password is sent (`.login`), so that a wrong password is tried
    /// once, not once per connection.
    public init(_ options: FTPOptions, greeted: (() -> Void)? = nil, beforePassword: (() -> Bool)? = nil) throws {
        self.options = options
        try logIn(greeted: greeted, beforePassword: beforePassword)
    }

    deinit {
        // QUIT, and its answer awaited a moment: the server ends the session cleanly.
        if let control, reader?.isEmpty == true {
            control.timeout = min(options.responseTimeout, 2)
            trace("> QUIT")
            if (try? control.send(Array("QUIT\r\n".utf8))) != nil { _ = try? reader?.next() }
        }
        control?.close()
    }

    // MARK: login

    /// Connects, shakes hands where TLS is asked for, and logs in: `USER` and `PASS` in one
    /// write (two where `beforePassword` holds the password), and the set-up after them in the
    /// same write (`PBSZ 0` and `PROT P` under TLS, `PWD`, `TYPE I`).
    private func logIn(greeted: (() -> Void)?, beforePassword: (() -> Bool)?) throws {
        let display = options.display
        let port = options.port ?? (options.tls == .implicit ? 990 : 21)
        let fd = try Self.connect(host: options.host, port: port, timeout: options.connectTimeout, display: display)
        var stream: ByteStream
        if options.tls == .implicit {
            stream = try TLSStream(
                fd: fd, host: options.host, context: try context(), timeout: options.connectTimeout, display: display)
        } else {
            stream = PlainStream(fd: fd, timeout: options.responseTimeout, display: display)
        }
        var reader = ReplyReader(stream: stream, display: display)
        do {
            stream.timeout = options.responseTimeout
            var greeting = try reader.next()
            while greeting.code < 200 { greeting = try reader.next() }  // 120: ready in a moment
            trace(greeting)
            guard greeting.code == 220 else {
                throw FTPError(
                    .interrupted, "\(display): the server refused the connection: \(Self.describe(greeting))",
                    replyCode: greeting.code)
            }
            if options.tls == .explicit {
                trace("> AUTH TLS")
                try stream.send(Array("AUTH TLS\r\n".utf8))
                let auth = try reader.next()
                trace(auth)
                guard auth.code == 234 || auth.code == 334, reader.isEmpty else {
                    throw FTPError(
                        .tls, "\(display): the server does not take AUTH TLS: \(Self.describe(auth))",
                        replyCode: auth.code)
                }
                let plain = stream as! PlainStream
                stream = try TLSStream(
                    fd: plain.detach(), host: options.host, context: try context(), timeout: options.connectTimeout,
                    display: display)
                stream.timeout = options.responseTimeout
                reader = ReplyReader(stream: stream, display: display)
            }
            greeted?()
            let (user, password) = credentials()
            var setup: [String] = []
            if options.tls != .none { setup += ["PBSZ 0", "PROT P"] }
            setup += ["PWD", "TYPE I"] + afterLogin.map { $0.hasPrefix("*") ? String($0.dropFirst()) : $0 }
            let userCommand = "USER " + user
            let passCommand = "PASS " + (password ?? "")
            try Self.validate([Array(userCommand.utf8), Array(passCommand.utf8)])
            // Where no one holds the password back, it goes with the user name, and the set-up
            // with both: a server answers them in order, the set-up after the login.
            let together = beforePassword == nil
            var first = [userCommand]
            if together { first += [passCommand] + setup }
            try send(first, on: stream)
            let userReply = try reader.next()
            trace(userReply)
            var loggedIn = userReply.code == 230 || userReply.code == 202
            if !loggedIn {
                guard userReply.code == 331 || userReply.code == 332 else {
                    throw loginError(userReply)
                }
                if let beforePassword, !beforePassword() {
                    throw FTPError(
                        .login, "\(display): the login was not tried (another connection's login failed)")
                }
                if !together { try send([passCommand] + setup, on: stream) }
            } else if together {
                _ = try reader.next()  // PASS after a login without one: answered, not needed
            } else {
                try send(setup, on: stream)
            }
            if !loggedIn {
                let passReply = try reader.next()
                trace(passReply)
                guard passReply.code == 230 || passReply.code == 202 else { throw loginError(passReply) }
                loggedIn = true
            }
            for command in setup {
                let bytes = try reader.nextBytes()
                guard let reply = FTPReply.parse(bytes).first else {
                    throw FTPError(.protocolError, "\(display): a reply that cannot be read")
                }
                trace(reply)
                switch command {
                case "PWD":
                    home =
                        reply.code == 257
                        ? Self.quotedPath(bytes).flatMap { $0.first == UInt8(ascii: "/") ? $0 : nil } : nil
                case "TYPE I":
                    guard reply.code < 300 else {
                        throw FTPError(
                            .refused, "\(display): the server refused binary mode: \(Self.describe(reply))",
                            replyCode: reply.code)
                    }
                case "PBSZ 0", "PROT P":
                    guard reply.code < 300 else {
                        throw FTPError(
                            .tls, "\(display): \(command): \(Self.describe(reply))", replyCode: reply.code)
                    }
                default:  // `afterLogin`: answered, whatever the answer
                    break
                }
            }
            guard reader.isEmpty else { throw FTPError(.protocolError, "\(display): replies out of step at login") }
        } catch {
            stream.close()
            throw error
        }
        if let tls = stream as? TLSStream { session = tls.session }
        control = stream
        self.reader = reader
    }

    private func loginError(_ reply: FTPReply) -> FTPError {
        FTPError(
            reply.code >= 500 ? .login : .interrupted,
            "\(options.display): the login was refused: \(Self.describe(reply))", replyCode: reply.code)
    }

    /// The user name and password: the options', else ~/.netrc's for the host (as curl read it),
    /// else anonymous.
    private func credentials() -> (String, String?) {
        var user = options.username
        var password = options.password
        if password == nil, let entry = Netrc.entry(host: options.host, login: user.isEmpty ? nil : user) {
            if user.isEmpty, let login = entry.login { user = login }
            password = entry.password
        }
        if user.isEmpty {
            user = "anonymous"
            if password == nil { password = "ftp@example.com" }
        }
        return (user, password)
    }

    private func context() throws -> TLSContext {
        if let tlsContext { return tlsContext }
        let context = try TLSContext(caFile: options.caFile)
        tlsContext = context
        return context
    }

    /// The path in a `257 "path" …` reply (a quote in it doubled), as bytes.
    static func quotedPath(_ reply: [UInt8]) -> [UInt8]? {
        guard let open = reply.firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        var path: [UInt8] = []
        var index = open + 1
        while index < reply.count {
            let byte = reply[index]
            if byte == UInt8(ascii: "\"") {
                if index + 1 < reply.count && reply[index + 1] == UInt8(ascii: "\"") {
                    path.append(byte)
                    index += 2
                    continue
                }
                return path
            }
            if byte == 13 || byte == 10 { return nil }
            path.append(byte)
            index += 1
        }
        return nil
    }

    /// A TCP connection to `host`:`port` (its addresses in turn), within `timeout` seconds.
    static func connect(host: String, port: Int, timeout: Int, display: String) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let resolved = getaddrinfo(bare, String(port), &hints, &list)
        guard resolved == 0, let list else {
            throw FTPError(
                .connection, "\(display): cannot resolve \(bare) (\(String(cString: gai_strerror(resolved))))")
        }
        defer { freeaddrinfo(list) }
        var failure = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            entry = current.pointee.ai_next
            var address = sockaddr_storage()
            let length = current.pointee.ai_addrlen
            withUnsafeMutableBytes(of: &address) {
                $0.copyMemory(from: UnsafeRawBufferPointer(start: current.pointee.ai_addr, count: Int(length)))
            }
            do {
                let fd = try DataConnection.connectSocket(&address, length: length, timeout: timeout)
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            } catch let error as DataConnection.SocketError {
                failure = error.detail
            }
        }
        throw FTPError(.connection, "\(display): cannot connect to \(bare) port \(port) (\(failure))")
    }

    /// The control connection, logged in anew where it was given up or the server closed it
    /// while it was idle (a timeout of its own: 421 and the end).
    private func ready() throws -> ByteStream {
        if let control, let reader, reader.isEmpty, !Self.hasInput(control) { return control }
        lostStep()
        try logIn(greeted: nil, beforePassword: nil)
        return control!
    }

    /// Whether an idle control connection has something to read (an unasked reply, or its end).
    private static func hasInput(_ stream: ByteStream) -> Bool {
        var entry = pollfd(fd: stream.fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 0) > 0 else { return false }
        if let tls = stream as? TLSStream { return tls.hasUnsolicitedInput() }
        return true
    }

    /// Out of step with the server (or broken): the control connection is closed, and the next
    /// operation logs in anew.
    func lostStep() {
        control?.close()
        control = nil
        reader = nil
        passiveSentAhead = false
        portAhead = nil
    }

    /// On a far server: the passive port of the next transfer is asked for (`EPSV`) as soon as a
    /// download has started, so that its answer comes right after that download's end instead
    /// of a round trip later (vsftpd and proftpd read it only once the download is over). Off
    /// where the server answers it otherwise than with a port.
    public var passiveAhead = false
    /// The server answered an `EPSV` sent during a transfer otherwise than with a port.
    public private(set) var passiveAheadRefused = false
    /// An `EPSV` sent during the current transfer: its answer follows the transfer's end.
    private(set) var passiveSentAhead = false
    /// The port it gave, for the next transfer (`passivePort`).
    private var portAhead: Int?

    /// Reads the answer to the `EPSV` sent during a transfer (`end`: the reply read as the
    /// transfer's last). A server that answered it first (a port, or a refusal such as
    /// proftpd's `450 data transfer in progress`) gets its order put right: the transfer's end is
    /// its `226`.
    func collectPassiveAhead(after end: inout FTPReply) throws {
        passiveSentAhead = false
        var ahead = try nextReply()
        let ends = { (reply: FTPReply) in reply.code == 226 || reply.code == 250 }
        if end.code == 229 || (ends(ahead) && !ends(end)) { swap(&end, &ahead) }
        trace(ahead)
        if ahead.code == 229, let port = DataConnection.epsvPort(ahead.text) {
            portAhead = port
        } else {
            passiveAhead = false
            passiveAheadRefused = true
        }
    }

    /// No reply read ahead of the ones asked for.
    var inStep: Bool { reader?.isEmpty ?? false }

    /// The control connection's socket, while it is open.
    var controlDescriptor: Int32? { control?.fd }

    /// The next reply on the control connection (a transfer's end).
    func nextReply() throws -> FTPReply {
        guard reader != nil else {
            throw FTPError(.interrupted, "\(options.display): the control connection is closed")
        }
        do {
            let reply = try reader!.next()
            trace(reply)
            return reply
        } catch {
            lostStep()
            throw error
        }
    }

    /// Sends `commands` in one write and reads a reply for each, in order.
    private func exchangeInOneWrite(_ commands: [[UInt8]], on stream: ByteStream) throws -> [FTPReply] {
        for command in commands { trace("> " + Self.printable(command)) }
        try stream.send(Array(commands.map { $0 + [13, 10] }.joined()))
        var replies: [FTPReply] = []
        for _ in commands {
            replies.append(try reader!.next())
            trace(replies.last!)
        }
        return replies
    }

    private func send(_ commands: [String], on stream: ByteStream) throws {
        if commands.isEmpty { return }
        for command in commands { trace("> " + (command.hasPrefix("PASS ") ? "PASS ****" : command)) }
        try stream.send(Array(commands.map { $0 + "\r\n" }.joined().utf8))
    }

    // MARK: operations

    /// Sends one or more commands on the control connection and returns the last reply.
    /// A reply of 4xx or 5xx throws, unless the command is prefixed with `*`.
    @discardableResult
    public func command(_ commands: String...) throws -> FTPReply {
        try command(commands.map { Array($0.utf8) })
    }

    /// Commands as bytes (paths in them may be any bytes but NUL, CR and LF).
    @discardableResult
    public func command(_ commands: [[UInt8]]) throws -> FTPReply {
        guard let reply = try pipeline(commands).last else {
            throw FTPError(.protocolError, "no reply from \(options.display)")
        }
        return reply
    }

    static func validate(_ commands: [[UInt8]]) throws {
        for command in commands where command.contains(where: { $0 == 0 || $0 == 10 || $0 == 13 }) {
            throw FTPError(.local, "a command cannot hold NUL, CR or LF: \(Self.printable(command))")
        }
    }

    /// Sends `commands` together on the control connection and reads a reply for each: one
    /// round trip per KiB of commands instead of one per command. A reply of 400 or more ends
    /// it with that command's error (a command starting with `*` may fail).
    @discardableResult
    public func pipeline(_ commands: [[UInt8]]) throws -> [FTPReply] {
        if commands.isEmpty { return [] }
        let replies = try exchange(commands)
        if let error = refusal(commands, replies) { throw error }
        return replies
    }

    /// The error of the first reply of 400 or more to a command not starting with `*`.
    private func refusal(_ commands: some Collection<[UInt8]>, _ replies: some Collection<FTPReply>) -> FTPError? {
        for (command, reply) in zip(commands, replies) {
            guard reply.code >= 400, command.first != UInt8(ascii: "*") else { continue }
            let verb = Self.verb(of: command)
            let argument = command.count > verb.utf8.count + 1 ? Array(command[(verb.utf8.count + 1)...]) : []
            return refusal(verb + " " + Self.printable(argument), reply)
        }
        return nil
    }

    private func refusal(_ what: String, _ reply: FTPReply) -> FTPError {
        let missing = (reply.code == 550 || reply.code == 450) && Self.soundsMissing(reply.text)
        return FTPError(
            missing ? .notFound : .refused, "\(options.display): \(what): server replied \(Self.describe(reply))",
            replyCode: reply.code)
    }

    /// Several `pipeline`s at once: each group's replies, or the error of its first refused
    /// command (a group's later commands are still sent), all groups in a few round trips.
    /// Throws only when the connection fails.
    public func pipeline(groups: [[[UInt8]]]) throws -> [Result<[FTPReply], FTPError>] {
        let replies = try exchange(groups.flatMap { $0 })
        var offset = 0
        return groups.map { group in
            let mine = Array(replies[offset..<(offset + group.count)])
            offset += group.count
            return refusal(group, mine).map { .failure($0) } ?? .success(mine)
        }
    }

    /// The most bytes of commands one write of `exchange` sends.
    static let pipelineBytes = 1024

    /// The replies to `commands`, sent together (see `pipeline`), whatever their codes. Throws
    /// only when the connection fails.
    public func exchange(_ commands: [[UInt8]]) throws -> [FTPReply] {
        try Self.validate(commands)
        if commands.isEmpty { return [] }
        let stream = try ready()
        var replies: [FTPReply] = []
        replies.reserveCapacity(commands.count)
        do {
            // In writes of at most `pipelineBytes`, each after the replies to the one before:
            // proftpd joins two commands into one (and never answers the second) when a read of
            // its own ends between a command's CR and LF; a write that small arrives whole in
            // one TCP segment and finds the server's buffer empty.
            var start = 0
            while start < commands.count {
                var request: [UInt8] = []
                var end = start
                while end < commands.count {
                    let command = commands[end]
                    let text = command.first == UInt8(ascii: "*") ? Array(command.dropFirst()) : command
                    if end > start && request.count + text.count + 2 > Self.pipelineBytes { break }
                    trace("> " + Self.printable(text))
                    request += text + [13, 10]
                    end += 1
                }
                try stream.send(request)
                for _ in start..<end { replies.append(try reader!.next()) }
                start = end
            }
        } catch {
            lostStep()
            throw error
        }
        for reply in replies { trace(reply) }
        return replies
    }

    static func wait(for events: Int16, on fd: Int32, timeout: Int, display: String) throws {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let ready = poll(&entry, 1, Int32(timeout * 1000))
        if ready == 0 { throw FTPError(.interrupted, "\(display): no reply within \(timeout) s") }
        if ready < 0 && errno != EINTR {
            throw FTPError(.interrupted, "\(display): poll failed (\(String(cString: strerror(errno))))")
        }
    }

    // MARK: data connections

    /// Sends `before` (a `CWD`: each must succeed), opens the data connection, sends `command`
    /// and returns the data connection once the server announced the transfer (150). A refusal
    /// (550 and the like) is answered in step and thrown; any other surprise gives the control
    /// connection up (`lostStep`).
    func openData(_ command: [UInt8], what: String, before: [[UInt8]] = []) throws -> DataConnection {
        let ahead = before.isEmpty && portAhead != nil
        do {
            return try openDataOnce(command, what: what, before: before)
        } catch let error as FTPError where ahead && error.replyCode == 425 && inStep {
            // The port asked for ahead is gone (the server closed its listener): ask again.
            return try openDataOnce(command, what: what, before: before)
        }
    }

    private func openDataOnce(_ command: [UInt8], what: String, before: [[UInt8]]) throws -> DataConnection {
        try Self.validate(before + [command])
        let stream = try ready()
        let display = options.display
        let what = "\(display): \(what)"
        var data: Int32 = -1
        var listener: Int32 = -1
        var refused: FTPError?
        do {
            defer { if listener >= 0 { close(listener) } }
            if options.passive {
                let ahead = before.isEmpty ? portAhead : nil
                portAhead = nil
                if let ahead, let fd = try? DataConnection.connect(port: ahead, control: stream.fd, options: options) {
                    data = fd
                } else {
                    let port = try passivePort(before: before, on: stream)
                    guard let port else { throw refusedBefore! }
                    data = try DataConnection.connect(port: port, control: stream.fd, options: options)
                }
            } else {
                listener = try activeListener(before: before, on: stream)
                if listener < 0 { throw refusedBefore! }
            }
            trace("> " + Self.printable(command))
            try stream.send(command + [13, 10])
            var tls: TLSStream?
            var waitingFor: Int16?
            if options.tls != .none && data >= 0 {
                // The handshake starts now and goes on while the server's answer is awaited: a
                // server may take it before or after its 150.
                let fd = data
                data = -1  // the TLS stream owns it (and closes it when it fails)
                tls = try TLSStream(
                    fd: fd, host: options.host, context: try context(), resuming: session,
                    timeout: options.connectTimeout, display: what, handshake: false)
                waitingFor = try tls!.handshakeStep()
                while let events = waitingFor, reader!.isEmpty {
                    var entries = [
                        pollfd(fd: stream.fd, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: tls!.fd, events: events, revents: 0),
                    ]
                    let ready = poll(&entries, 2, Int32(options.responseTimeout * 1000))
                    if ready == 0 {
                        throw FTPError(.interrupted, "\(what): no reply within \(options.responseTimeout) s")
                    }
                    if entries[0].revents != 0 { break }
                    if entries[1].revents != 0 { waitingFor = try tls!.handshakeStep() }
                }
            }
            let opening = try reader!.next()
            trace(opening)
            if opening.code >= 400 && reader!.isEmpty {
                let missing = (opening.code == 550 || opening.code == 450) && Self.soundsMissing(opening.text)
                refused = FTPError(
                    missing ? .notFound : .refused, "\(what): server replied \(Self.describe(opening))",
                    replyCode: opening.code)
                tls?.close()
                throw refused!
            }
            var early: FTPReply?
            if opening.code == 226 || opening.code == 250 {
                early = opening  // done at once (an empty listing, on some servers)
            } else if opening.code != 150 && opening.code != 125 {
                throw FTPError(
                    .protocolError, "\(what): unexpected reply \(Self.describe(opening))", replyCode: opening.code)
            }
            // Downloads only: proftpd reads commands during an upload and refuses this one.
            if passiveAhead && options.passive && extendedPassive && early == nil
                && command.starts(with: Array("RETR ".utf8))
            {
                trace("> EPSV (for the next transfer)")
                try stream.send(Array("EPSV\r\n".utf8))
                passiveSentAhead = true
            }
            if listener >= 0 {
                data = try Self.accept(listener, timeout: options.connectTimeout, what: what)
                if options.tls != .none {
                    let fd = data
                    data = -1
                    tls = try TLSStream(
                        fd: fd, host: options.host, context: try context(), resuming: session,
                        timeout: options.connectTimeout, display: what)
                }
            }
            if let tls {
                while let events = waitingFor {
                    try Self.wait(for: events, on: tls.fd, timeout: options.connectTimeout, display: what)
                    waitingFor = try tls.handshakeStep()
                }
                tls.timeout = options.responseTimeout
                return DataConnection(connection: self, stream: tls, what: what, early: early)
            }
            return DataConnection(
                connection: self, stream: PlainStream(fd: data, timeout: options.responseTimeout, display: what),
                what: what, early: early)
        } catch let error as FTPError where refused != nil || refusedBefore != nil {
            refusedBefore = nil
            if data >= 0 { close(data) }
            throw error  // answered in step: the connection goes on
        } catch {
            if data >= 0 { close(data) }
            lostStep()
            throw error
        }
    }
    /// The refusal of a command sent before a transfer (`openData`'s `before`), answered in step.
    private var refusedBefore: FTPError?

    /// Sends `before` and `EPSV` (`PASV` where EPSV is refused or its answer unusable) in one
    /// write; the port to connect to, or nil when a command of `before` was refused
    /// (`refusedBefore`).
    private func passivePort(before: [[UInt8]], on stream: ByteStream) throws -> Int? {
        refusedBefore = nil
        let verb = extendedPassive ? "EPSV" : "PASV"
        let replies = try exchangeInOneWrite(before + [Array(verb.utf8)], on: stream)
        if let error = refusal(before, replies) {
            refusedBefore = error
            return nil
        }
        let reply = replies.last!
        if extendedPassive, reply.code == 229, let port = DataConnection.epsvPort(reply.text) { return port }
        if extendedPassive {
            if reply.code >= 500 { extendedPassive = false }
            trace("> PASV")
            try stream.send(Array("PASV\r\n".utf8))
            let pasv = try reader!.next()
            trace(pasv)
            if pasv.code == 227, let port = DataConnection.pasvPort(pasv.text) { return port }
            throw FTPError(
                .protocolError,
                "\(options.display): no usable passive mode: \(Self.describe(reply)); \(Self.describe(pasv))",
                replyCode: pasv.code)
        }
        if reply.code == 227, let port = DataConnection.pasvPort(reply.text) { return port }
        throw FTPError(
            .protocolError, "\(options.display): no usable passive mode: \(Self.describe(reply))", replyCode: reply.code
        )
    }

    /// Active mode: a socket listening on the control connection's local address, announced
    /// with `EPRT` (IPv6) or `PORT` (IPv4) after `before`; -1 when a command of `before` was
    /// refused (`refusedBefore`).
    private func activeListener(before: [[UInt8]], on stream: ByteStream) throws -> Int32 {
        refusedBefore = nil
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(stream.fd, $0, &length) }
        }
        guard DataConnection.setPort(0, of: &address) else {
            throw FTPError(.local, "\(options.display): active mode needs an IPv4 or IPv6 connection")
        }
        let fd = socket(
            Int32(address.ss_family),
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard fd >= 0, bound == 0, listen(fd, 1) == 0 else {
            let error = FTPError(.local, "cannot listen for active mode (\(String(cString: strerror(errno))))")
            if fd >= 0 { close(fd) }
            throw error
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        var text = [CChar](repeating: 0, count: 64)
        let announce: String
        if Int32(address.ss_family) == AF_INET {
            let (host, port) = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    (UInt32(bigEndian: $0.pointee.sin_addr.s_addr), Int(UInt16(bigEndian: $0.pointee.sin_port)))
                }
            }
            let parts = [host >> 24, (host >> 16) & 255, (host >> 8) & 255, host & 255].map { String($0) }
            announce = "PORT " + (parts + [String(port >> 8), String(port & 255)]).joined(separator: ",")
        } else {
            let port = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { entry in
                    _ = inet_ntop(AF_INET6, &entry.pointee.sin6_addr, &text, 64)
                    return Int(UInt16(bigEndian: entry.pointee.sin6_port))
                }
            }
            announce = "EPRT |2|\(String(cString: text))|\(port)|"
        }
        do {
            let replies = try exchangeInOneWrite(before + [Array(announce.utf8)], on: stream)
            if let error = refusal(before, replies) {
                refusedBefore = error
                close(fd)
                return -1
            }
            guard replies.last!.code < 300 else {
                throw FTPError(
                    .refused, "\(options.display): active mode refused: \(Self.describe(replies.last!))",
                    replyCode: replies.last!.code)
            }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// The server's data connection to `listener`, within `timeout` seconds.
    private static func accept(_ listener: Int32, timeout: Int, what: String) throws -> Int32 {
        try wait(for: Int16(POLLIN), on: listener, timeout: timeout, display: what)
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0, fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 else {
            throw FTPError(.interrupted, "\(what): the server did not connect (\(String(cString: strerror(errno))))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    // MARK: listings

    /// Runs a listing command (`MLSD`, `LIST -a`) in `directory` and returns the raw data.
    public func listing(_ directory: [UInt8], verb: String) throws -> [UInt8] {
        listingCutShort = nil
        let data: DataConnection
        if verb == "MLSD", home != nil, !directory.contains(UInt8(ascii: " ")) {
            // MLSD names its folder (RFC 3659: a path, never a pattern). A name with a space
            // goes the CWD way (servers may trim a trailing one).
            data = try openData(Array("MLSD ".utf8) + commandPath(directory), what: "MLSD " + Self.printable(directory))
        } else {
            let before = directory.isEmpty && home == nil ? [] : [Array("CWD ".utf8) + commandPath(directory)]
            data = try openData(Array(verb.utf8), what: verb + " " + Self.printable(directory), before: before)
        }
        var body: [UInt8] = []
        let limit = options.maximumListingBytes
        do {
            try withUnsafeTemporaryAllocation(byteCount: 1 << 16, alignment: 16) { chunk in
                while true {
                    let n = try data.receive(into: chunk)
                    if n == 0 { break }
                    if body.count + n > limit {
                        throw FTPError(
                            .protocolError, "\(data.what): the server sent more than \(limit) bytes")
                    }
                    body += chunk[0..<n]
                }
            }
        } catch {
            data.abandon()
            throw error
        }
        let end = try data.finish()
        if end.saysListingWasCutShort { listingCutShort = end.text }
        return body
    }

    /// After `listing`: the server's words when it said it left entries out (pure-ftpd stops at
    /// 10,000 by default and ends with `226 Output truncated to 10000 matches`), else nil.
    public private(set) var listingCutShort: String?

    /// The replies to `STAT path` for folders, as the server sent them: most servers put the
    /// folder's listing in it, in LIST's form, on the control connection (no data connection;
    /// the folders asked together, a round trip per KiB of commands). A line of a listing
    /// is a name's: one holding a line break could make a line look like the reply's end, and
    /// the replies after it would be read out of step. So each `STAT` is followed in the same
    /// write by `REST N`, N a random number the server's answer must repeat, alone on its line,
    /// right after that listing; a last `REST 0` undoes them. From the first reply without its
    /// proof on, the connection is given up (`lostStep`: the next operation logs in anew) and the
    /// folders get nil, as all do where this connection cannot ask (no absolute login
    /// directory). Throws only when the connection fails.
    public func statReplies(_ directories: [[UInt8]]) throws -> [[UInt8]?] {
        guard home != nil, !directories.isEmpty else { return directories.map { _ in nil } }
        let commands = directories.map { Array("STAT ".utf8) + commandPath($0) }
        try Self.validate(commands)
        let stream = try ready()
        let tokens = directories.map { _ in String(UInt64.random(in: 1_000_000_000_000...999_999_999_999_999)) }
        restRefused = false
        reader!.limit = options.maximumListingBytes
        defer { reader?.limit = 1 << 16 }
        var replies: [[UInt8]?] = []
        replies.reserveCapacity(directories.count)
        do {
            // In writes of at most `pipelineBytes` (see `exchange`), each after the replies to
            // the one before; `REST 0` ends the last.
            var start = 0
            while start < commands.count {
                var request: [UInt8] = []
                var end = start
                while end < commands.count {
                    let pair = commands[end] + Array("\r\nREST \(tokens[end])\r\n".utf8)
                    if end > start && request.count + pair.count > Self.pipelineBytes { break }
                    trace("> \(Self.printable(commands[end])) (with REST \(tokens[end]))")
                    request += pair
                    end += 1
                }
                if end == commands.count { request += Array("REST 0\r\n".utf8) }
                try stream.send(request)
                for token in tokens[start..<end] {
                    let reply = try reader!.nextBytes()
                    let marker = try reader!.nextBytes()
                    trace("< \(reply.count) bytes; \(Self.printable(marker))")
                    guard Self.isMarker(marker, token: token) else {
                        // A server that answers `REST N` with a refusal of one line (proftpd in
                        // ASCII mode) gives no proof here, and will not later: `restRefused`
                        // tells the caller.
                        restRefused = Self.isLine(marker, below: 600) && !Self.isLine(marker, below: 400)
                        lostStep()
                        return replies + Array(repeating: nil, count: directories.count - replies.count)
                    }
                    replies.append(reply)
                }
                start = end
            }
            let reset = try reader!.nextBytes()
            trace("< " + Self.printable(reset))
            if !reader!.isEmpty || !Self.isLine(reset, below: 400) { lostStep() }
        } catch {
            lostStep()
            throw error
        }
        return replies
    }

    /// The last `statReplies` gave up because the server refused `REST N`.
    public private(set) var restRefused = false

    /// Whether `reply` is one line, a 3xx answer that names `token` as a number of its own.
    static func isMarker(_ reply: [UInt8], token: String) -> Bool {
        guard isLine(reply, below: 400), reply.first == UInt8(ascii: "3") else { return false }
        let digits = Array(token.utf8)
        let isDigit = { (byte: UInt8) in byte >= 0x30 && byte <= 0x39 }
        guard reply.count > digits.count + 4 else { return false }
        for start in 4...(reply.count - digits.count) where reply[start..<(start + digits.count)].elementsEqual(digits)
        {
            let before = reply[start - 1]
            let after = start + digits.count < reply.count ? reply[start + digits.count] : 0
            if !isDigit(before) && !isDigit(after) { return true }
        }
        return false
    }

    /// Whether `reply` is a one-line answer (`NNN text` and its line end) with a code below `limit`.
    static func isLine(_ reply: [UInt8], below limit: Int) -> Bool {
        guard reply.count >= 4, reply.prefix(3).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            reply[3] == UInt8(ascii: " ") || reply[3] == 13 || reply[3] == 10,
            reply.firstIndex(of: 10) == reply.count - 1,
            let code = Int(String(decoding: reply.prefix(3), as: UTF8.self))
        else { return false }
        return code < limit
    }

    // MARK: transfers

    /// Reads a small file whole (File Checks, clock probes); at most `limit` bytes are kept.
    public func contents(of path: [UInt8], limit: Int) throws -> [UInt8] {
        let data = try openData(Array("RETR ".utf8) + commandPath(path), what: "RETR " + Self.printable(path))
        var body: [UInt8] = []
        do {
            try withUnsafeTemporaryAllocation(byteCount: 1 << 16, alignment: 16) { chunk in
                while body.count <= limit {
                    let n = try data.receive(into: chunk)
                    if n == 0 { break }
                    body += chunk[0..<n]
                }
            }
        } catch {
            data.abandon()
            throw error
        }
        if body.count > limit {
            data.abandon()  // the rest is not wanted
            return Array(body.prefix(limit))
        }
        try data.finish()
        return body
    }

    /// Uploads `size` bytes from `read` to `path`, then sends `after` (e.g. SIZE and setting the
    /// time) on the same connection, pipelined. `read` fills the buffer and returns 0 at the end.
    /// Returns the replies to `after`, in order. The end of the data connection is the end of
    /// the file for the server: when `read` fails, the server still gets (and keeps) what was
    /// sent, and the caller's size check and temporary names deal with it; the error is `read`'s.
    @discardableResult
    public func upload(
        to path: [UInt8], size: Int64, after: [[UInt8]] = [],
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> [FTPReply] {
        let data = try openData(Array("STOR ".utf8) + commandPath(path), what: "STOR " + Self.printable(path))
        data.uploading = true
        var readError: Error?
        do {
            // As large as the file (most are small), at most 256 KiB.
            let buffer = UnsafeMutableRawBufferPointer.allocate(
                byteCount: Int(min(max(size, 4096), 1 << 18)), alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let n: Int
                do {
                    n = try read(buffer)
                } catch {
                    readError = error
                    break
                }
                if n == 0 { break }
                try data.send(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
        } catch {
            data.abandon()
            throw error
        }
        do {
            try data.finish()
        } catch let error as FTPError {
            if let readError { throw readError }
            throw error
        }
        if let readError { throw readError }
        return try pipeline(after)
    }

    /// Starts downloading `path`; the caller reads it piece by piece and must `close` it.
    /// `size` (as listed) is not needed: the end of the data is the end of the file.
    public func download(_ path: [UInt8], size: Int64 = 0) throws -> FTPDownload {
        let data = try openData(Array("RETR ".utf8) + commandPath(path), what: "RETR " + Self.printable(path))
        return FTPDownload(path: path, data: data)
    }

    /// The path commands must name for `relative` (a path from the login directory): absolute
    /// when the login directory is known, so the server's current directory never matters.
    public func commandPath(_ relative: [UInt8]) -> [UInt8] {
        guard let home else { return relative }
        if relative.isEmpty { return home }
        return (home.last == UInt8(ascii: "/") ? home : home + [UInt8(ascii: "/")]) + relative
    }

    public static func soundsMissing(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.contains("no such file") || lower.contains("not found") || lower.contains("does not exist")
            || lower.contains("failed to change directory") || lower.contains("can't check for file existence")
    }

    // MARK: text helpers

    /// `code text` of a reply for a message, the server's text escaped.
    static func describe(_ reply: FTPReply) -> String {
        "\(reply.code) \(printable(Array(reply.text.utf8)))"
    }

    private func trace(_ line: @autoclosure () -> String) {
        if ProcessEnvironment.verbose { fputs(line() + "\n", stderr) }
    }

    private func trace(_ reply: FTPReply) {
        if ProcessEnvironment.verbose { fputs("< \(Self.describe(reply))\n", stderr) }
    }

    static func verb(of command: [UInt8]) -> String {
        let start = command.first == UInt8(ascii: "*") ? 1 : 0
        let end = command[start...].firstIndex(of: UInt8(ascii: " ")) ?? command.count
        return String(decoding: command[start..<end], as: UTF8.self)
    }

    /// Bytes for a message: printable ASCII as is, everything else as `\xNN`.
    public static func printable(_ bytes: [UInt8]) -> String {
        if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return String(decoding: bytes, as: UTF8.self) }
        if let text = String(validating: bytes, as: UTF8.self),
            !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
        {
            return text
        }
        var out = ""
        for byte in bytes {
            if byte >= 0x20 && byte < 0x7f {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out
    }
}

/// A download in progress: read it like a file, then close it.
public final class FTPDownload {
    public let path: [UInt8]
    private let data: DataConnection
    private var ended = false

    init(path: [UInt8], data: DataConnection) {
        self.path = path
        self.data = data
    }

    /// Reads up to `buffer.count` bytes; 0 at the end of the file (after the server's 226).
    /// Throws `FTPError`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if ended || buffer.count == 0 { return 0 }
        do {
            let n = try data.receive(into: buffer)
            if n > 0 { return n }
        } catch {
            ended = true
            data.abandon()
            throw error
        }
        ended = true
        try data.finish()
        return 0
    }

    /// Ends the download; a download closed before its end is abandoned.
    public func close() {
        if !ended {
            ended = true
            data.abandon()
        }
    }
}

/// Debugging aid: `PLUGSYNC_CURL_VERBOSE=1` prints the FTP dialogue on stderr, passwords
/// masked and the server's text escaped.
enum ProcessEnvironment {
    static let verbose = getenv("PLUGSYNC_CURL_VERBOSE") != nil
}

/// `~/.netrc`'s login and password for a host, as curl read them: `machine NAME login USER
/// password PASS`, or `default`.
enum Netrc {
    struct Entry {
        var login: String?
        var password: String?
    }

    static func entry(host: String, login: String?) -> Entry? {
        guard let home = getenv("HOME").map({ String(cString: $0) }),
            let file = fopen(home + "/.netrc", "r")
        else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return parse(String(decoding: bytes, as: UTF8.self), host: host, login: login)
    }

    static func parse(_ text: String, host: String, login: String?) -> Entry? {
        var tokens: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("#") { continue }
            tokens += line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        }
        var found: Entry?
        var current: Entry?
        var matching = false
        func endEntry() {
            if matching, let entry = current, login == nil || entry.login == nil || entry.login == login,
                found == nil
            {
                found = entry
            }
            current = nil
            matching = false
        }
        var index = 0
        while index < tokens.count {
            let token = tokens[index]
            let value = index + 1 < tokens.count ? tokens[index + 1] : nil
            switch token {
            case "machine":
                endEntry()
                matching = value == host
                current = Entry()
                index += 2
            case "default":
                endEntry()
                matching = true
                current = Entry()
                index += 1
            case "login":
                current?.login = value
                index += 2
            case "password":
                current?.password = value
                index += 2
            case "account", "macdef":
                index += 2
            default:
                index += 1
            }
        }
        endEntry()
        return found
    }
}
