import CCurl

#if canImport(Glibc)
    import Glibc
#endif

/// One logged-in FTP control connection, kept open across operations.
///
/// Every operation runs on the same curl easy handle through one multi handle, so curl reuses
/// the control connection (one login for the whole run) and a download can be read piece by
/// piece by its caller instead of being pushed into a callback. Not thread-safe: one thread uses
/// a connection at a time (a pool hands them out).
///
/// Paths are bytes relative to the login directory, components joined by `/`.
public final class FTPConnection {
    public let options: FTPOptions
    private let easy: UnsafeMutableRawPointer
    private let multi: UnsafeMutableRawPointer
    /// The login directory as `PWD` reported it, when it is a usable absolute path: operations
    /// then name absolute paths and curl never has to change back to it first.
    private var home: [UInt8]?

    // State of the operation in progress, read by the C callbacks.
    private var replyBytes: [UInt8] = []
    private var body: [UInt8] = []
    private var bodyLimit = 0
    private var bodyOverflow = false
    private var reader: ((UnsafeMutableRawBufferPointer) throws -> Int)?
    private var callbackError: Error?
    private var lists: [UnsafeMutablePointer<curl_slist>] = []

    /// Loads libcurl on a thread of its own (once), for a run that will connect soon: the
    /// dynamic loader maps and links libcurl and about thirty libraries it needs (4 ms here), and
    /// the first connection then finds them ready instead of waiting.
    public static func loadLibraryInBackground() { ccurl_load_in_background() }

    /// Waits for the load `loadLibraryInBackground` started, if any: call it before the process
    /// exits (an exit while the loader runs can crash in OpenSSL's cleanup).
    public static func waitForBackgroundLoad() { ccurl_wait_for_background_load() }

    /// Connects and logs in; throws `FTPError` (`.connection`, `.login`, `.tls`, …).
    ///
    /// `greeted` is called once the server's greeting (220) arrived, under explicit TLS once the
    /// handshake is done (the reply to USER): the connection is then counted by the server. `beforePassword` is called when the server asks for the password
    /// (331) and holds the login until it returns; false gives up before the password is sent
    /// (`.login`), so that a wrong password is tried once, not once per connection.
    public init(_ options: FTPOptions, greeted: (() -> Void)? = nil, beforePassword: (() -> Bool)? = nil) throws {
        guard ccurl_global_init() == CURLE_OK else {
            throw FTPError(.local, String(cString: ccurl_load_error()))
        }
        guard let easy = ccurl_easy_init(), let multi = ccurl_multi_init() else {
            throw FTPError(.local, "cannot initialize libcurl")
        }
        self.options = options
        self.easy = easy
        self.multi = multi
        self.greeted = greeted
        self.beforePassword = beforePassword
        defer {
            self.greeted = nil
            self.beforePassword = nil
        }
        // Connects and logs in. curl sends its own PWD after the login and keeps the answer (its
        // entry path), so the login directory costs no second PWD.
        try begin(path: nil)
        set(CURLOPT_NOBODY, 1)
        try perform(what: "login")
        if let path = ccurl_entry_path(easy) {
            let bytes = Array(UnsafeRawBufferPointer(start: path, count: strlen(path)))
            home = bytes.first == UInt8(ascii: "/") ? bytes : nil
        }
    }

    deinit {
        freeLists()
        ccurl_easy_cleanup(easy)
        ccurl_multi_cleanup(multi)
        errorBufferPointer.deallocate()
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
        try Self.validate(commands)
        try begin(path: nil)
        set(CURLOPT_NOBODY, 1)
        // After the (possible) CWD curl makes for the request itself, so the last replies are ours.
        set(CURLOPT_POSTQUOTE, list(commands))
        try perform(what: commands.first.map { Self.verb(of: $0) } ?? "command")
        guard let reply = FTPReply.parse(replyBytes).last else {
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
    /// round trip per KiB of commands instead of one per command. Only on a
    /// plain connection that curl has finished with, so nothing else is in flight on it; under
    /// TLS, or once a server got out of step, the commands go one by one through curl. A reply
    /// of 400 or more ends it with that command's error (a command starting with `*` may fail).
    @discardableResult
    public func pipeline(_ commands: [[UInt8]]) throws -> [FTPReply] {
        if commands.isEmpty { return [] }
        guard let replies = try exchange(commands) else {
            try command(commands)
            return Array(FTPReply.parse(replyBytes).suffix(commands.count))
        }
        if let error = refusal(commands, replies) { throw error }
        return replies
    }

    /// The error of the first reply of 400 or more to a command not starting with `*`.
    private func refusal(_ commands: some Collection<[UInt8]>, _ replies: some Collection<FTPReply>) -> FTPError? {
        for (command, reply) in zip(commands, replies) {
            guard reply.code >= 400, command.first != UInt8(ascii: "*") else { continue }
            let verb = Self.verb(of: command)
            let argument = command.count > verb.utf8.count + 1 ? Array(command[(verb.utf8.count + 1)...]) : []
            let missing = (reply.code == 550 || reply.code == 450) && Self.soundsMissing(reply.text)
            return FTPError(
                missing ? .notFound : .refused,
                "\(options.display): \(verb) \(Self.printable(argument)): server replied \(reply.code) \(reply.text)",
                replyCode: reply.code)
        }
        return nil
    }

    /// Several `pipeline`s at once: each group's replies, or the error of its first refused
    /// command (a group's later commands are still sent). Where the connection can pipeline,
    /// all groups go in a few round trips (`exchange`), else group by group. Throws only when
    /// the connection fails.
    public func pipeline(groups: [[[UInt8]]]) throws -> [Result<[FTPReply], FTPError>] {
        if let replies = try exchange(groups.flatMap { $0 }) {
            var offset = 0
            return groups.map { group in
                let mine = Array(replies[offset..<(offset + group.count)])
                offset += group.count
                return refusal(group, mine).map { .failure($0) } ?? .success(mine)
            }
        }
        return try groups.map { group in
            do {
                return .success(try pipeline(group))
            } catch let error as FTPError where error.kind == .refused || error.kind == .notFound {
                return .failure(error)
            }
        }
    }

    /// The most bytes of commands one write of `exchange` sends.
    static let pipelineBytes = 1024

    /// The replies to `commands`, sent together (see `pipeline`), whatever their codes; nil
    /// where this connection cannot pipeline (TLS, no finished request yet, out of step before).
    /// Throws only when the connection fails.
    public func exchange(_ commands: [[UInt8]]) throws -> [FTPReply]? {
        try Self.validate(commands)
        let fd = options.tls == .none && pipelining ? controlSocket : -1
        guard fd >= 0, !commands.isEmpty else { return nil }
        var replies: [FTPReply] = []
        replies.reserveCapacity(commands.count)
        do {
            // In writes of at most `pipelineBytes`, each after the replies to the one before:
            // proftpd joins two commands into one (and never answers the second) when a read of
            // its own ends between a command's CR and LF; a write that small arrives whole in
            // one TCP segment and finds the server's buffer empty.
            var reader = ReplyReader(fd: fd, timeout: options.responseTimeout, display: options.display)
            var start = 0
            while start < commands.count {
                var request: [UInt8] = []
                var end = start
                while end < commands.count {
                    let command = commands[end]
                    let text = command.first == UInt8(ascii: "*") ? Array(command.dropFirst()) : command
                    if end > start && request.count + text.count + 2 > Self.pipelineBytes { break }
                    if ProcessEnvironment.verbose { fputs("> \(Self.printable(text)) (pipelined)\n", stderr) }
                    request += text + [13, 10]
                    end += 1
                }
                try Self.send(request, on: fd, timeout: options.responseTimeout, display: options.display)
                for _ in start..<end { replies.append(try reader.next()) }
                start = end
            }
        } catch {
            lostStep()
            throw error
        }
        if ProcessEnvironment.verbose { for reply in replies { fputs("< \(reply.code) \(reply.text)\n", stderr) } }
        return replies
    }
    var pipelining = true

    /// Out of step with the server: curl must not use this connection again (it sees it closed
    /// and logs in anew), and this connection pipelines no more.
    func lostStep() {
        if controlSocket >= 0 { shutdown(controlSocket, Int32(SHUT_RDWR)) }
        pipelining = false
    }

    static func send(_ bytes: [UInt8], on fd: Int32, timeout: Int, display: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                offset += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(for: Int16(POLLOUT), on: fd, timeout: timeout, display: display)
            } else {
                throw FTPError(
                    .interrupted, "\(display): the control connection broke (\(String(cString: strerror(errno))))")
            }
        }
    }

    static func wait(for events: Int16, on fd: Int32, timeout: Int, display: String) throws {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let ready = poll(&entry, 1, Int32(timeout * 1000))
        if ready == 0 { throw FTPError(.interrupted, "\(display): no reply within \(timeout) s") }
        if ready < 0 && errno != EINTR {
            throw FTPError(.interrupted, "\(display): poll failed (\(String(cString: strerror(errno))))")
        }
    }

    /// Runs a listing command (`MLSD`, `LIST -a`) in `directory` and returns the raw data.
    public func listing(_ directory: [UInt8], verb: String) throws -> [UInt8] {
        if verb == "MLSD", home != nil, !directory.contains(UInt8(ascii: " ")) {
            // MLSD names its folder (RFC 3659: a path, never a pattern), so curl stays in the
            // login directory instead of changing into each folder first: one round trip less.
            // A name with a space keeps the CWD way (servers may trim a trailing one).
            try begin(path: [], isDirectory: true)
            let request = Array("MLSD ".utf8) + commandPath(directory) + [0]
            request.withUnsafeBufferPointer {
                $0.withMemoryRebound(to: CChar.self) {
                    _ = ccurl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, $0.baseAddress)
                }
            }
        } else {
            try begin(path: directory, isDirectory: true)
            set(CURLOPT_CUSTOMREQUEST, verb)
        }
        set(CURLOPT_FTP_FILEMETHOD, Int(CURLFTPMETHOD_SINGLECWD.rawValue))
        collectBody(limit: options.maximumListingBytes)
        listingCutShort = nil
        try perform(what: verb, path: directory)
        if let end = FTPReply.parse(replyBytes).last, end.saysListingWasCutShort { listingCutShort = end.text }
        return body
    }

    /// After `listing`: the server's words when it said it left entries out (pure-ftpd stops at
    /// 10,000 by default and ends with `226 Output truncated to 10000 matches`), else nil.
    public private(set) var listingCutShort: String?

    /// The reply to `STAT path` for a folder, as the server sent it: most servers put the
    /// folder's listing in it, in LIST's form, on the control connection (one round trip, no data
    /// connection). A line of the listing is a name's: one holding a line break could make a line
    /// look like the reply's end, and the replies after it would be read out of step. So
    /// `REST N`, with N a random number the server's answer repeats, goes in the same write and
    /// its answer must come right after the listing, alone on its line; then `REST 0` undoes it.
    /// Anything else gives up the connection (`lostStep`: curl logs in anew for the next
    /// operation) and returns nil, as where this connection cannot ask (TLS, out of step, no
    /// absolute login directory, or curl is not done with it). Throws only when the connection
    /// fails.
    public func statReply(_ directory: [UInt8]) throws -> [UInt8]? {
        let fd = options.tls == .none && pipelining && home != nil ? controlSocket : -1
        guard fd >= 0 else { return nil }
        let command = Array("STAT ".utf8) + commandPath(directory)
        try Self.validate([command])
        let token = String(UInt64.random(in: 1_000_000_000_000...999_999_999_999_999))
        restRefused = false
        var reader = ReplyReader(fd: fd, timeout: options.responseTimeout, display: options.display)
        reader.limit = options.maximumListingBytes
        let replies: [[UInt8]]
        do {
            if ProcessEnvironment.verbose {
                fputs("> \(Self.printable(command)) (with REST \(token), REST 0)\n", stderr)
            }
            let request = command + Array("\r\nREST \(token)\r\nREST 0\r\n".utf8)
            try Self.send(request, on: fd, timeout: options.responseTimeout, display: options.display)
            replies = [try reader.nextBytes(), try reader.nextBytes(), try reader.nextBytes()]
        } catch {
            lostStep()
            throw error
        }
        if ProcessEnvironment.verbose {
            fputs("< \(replies[0].count) bytes; \(Self.printable(replies[1] + replies[2]))\n", stderr)
        }
        guard reader.isEmpty, Self.isMarker(replies[1], token: token), Self.isLine(replies[2], below: 400) else {
            // A server that answers `REST N` with a refusal of one line (proftpd in ASCII mode)
            // gives no proof here, and will not later: `restRefused` tells the caller.
            restRefused = Self.isLine(replies[1], below: 600) && !Self.isLine(replies[1], below: 400)
            lostStep()
            return nil
        }
        return replies[0]
    }

    /// The last `statReply` returned nil because the server refused `REST N`.
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

    /// Reads a small file whole (File Checks, clock probes); at most `limit` bytes are kept.
    public func contents(of path: [UInt8], limit: Int) throws -> [UInt8] {
        try begin(path: path)
        set(CURLOPT_IGNORE_CONTENT_LENGTH, 1)
        collectBody(limit: limit)
        bodyOverflowIsError = false
        try perform(what: "RETR", path: path)
        return body
    }
    private var bodyOverflowIsError = true

    /// Uploads `size` bytes from `read` to `path`, then sends `after` (e.g. SIZE and setting the
    /// time) on the same connection, pipelined where it can be. `read` fills the buffer and
    /// returns 0 at the end. Returns the replies to `after`, in order.
    @discardableResult
    public func upload(
        to path: [UInt8], size: Int64, after: [[UInt8]] = [],
        read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> [FTPReply] {
        if canTransferDirectly, try DirectTransfer.store(path, size: size, on: self, read: read) {
            return try pipeline(after)
        }
        try begin(path: path)
        set(CURLOPT_UPLOAD, 1)
        setOff(CURLOPT_INFILESIZE_LARGE, size)
        reader = read
        ccurl_setopt_callback(easy, CURLOPT_READFUNCTION, readCallback)
        ccurl_setopt_pointer(easy, CURLOPT_READDATA, Unmanaged.passUnretained(self).toOpaque())
        let pipelined = options.tls == .none && pipelining
        if !after.isEmpty && !pipelined { set(CURLOPT_POSTQUOTE, list(after)) }
        defer { reader = nil }
        try perform(what: "STOR", path: path)
        if pipelined { return try pipeline(after) }
        return Array(FTPReply.parse(replyBytes).suffix(after.count))
    }

    /// Starts downloading `path`; the caller reads it piece by piece and must `close` it.
    /// `size` (as listed) gives a large file a larger receive buffer.
    public func download(_ path: [UInt8], size: Int64 = 0) throws -> FTPDownload {
        if canTransferDirectly, let direct = try DirectRetrieval.start(path, on: self) {
            return FTPDownload(connection: self, path: path, direct: direct)
        }
        try begin(path: path)
        set(CURLOPT_IGNORE_CONTENT_LENGTH, 1)  // no SIZE round trip: the listing said the size
        // curl reads 16 KiB at a time by default: a 20 MiB file is then 1,280 reads, writes and
        // polls. Small files keep the default (a larger buffer is allocated for each transfer).
        if size >= Self.largeDownload { set(CURLOPT_BUFFERSIZE, Self.largeBuffer) }
        collectBody(limit: Int.max)
        let added = ccurl_multi_add_handle(multi, easy)
        guard added == CURLM_OK else { throw FTPError(.local, "curl_multi_add_handle failed (\(added.rawValue))") }
        return FTPDownload(connection: self, path: path)
    }

    static let largeDownload: Int64 = 1 << 20
    static let largeBuffer = 1 << 18

    /// The path commands must name for `relative` (a path from the login directory): absolute
    /// when the login directory is known, so the server's current directory never matters.
    public func commandPath(_ relative: [UInt8]) -> [UInt8] {
        guard let home else { return relative }
        if relative.isEmpty { return home }
        return (home.last == UInt8(ascii: "/") ? home : home + [UInt8(ascii: "/")]) + relative
    }

    // MARK: download steps (used by FTPDownload)

    /// Moves a download forward until data is waiting or it has ended; returns false at the end.
    func step() throws -> Bool {
        if !body.isEmpty { return true }
        var running: Int32 = 0
        while body.isEmpty {
            let code = ccurl_multi_perform(multi, &running)
            guard code == CURLM_OK else { throw FTPError(.local, "curl_multi_perform failed (\(code.rawValue))") }
            if running == 0 { break }
            if body.isEmpty { waitForActivity() }
        }
        if running == 0 && body.isEmpty {
            let result = finishedResult()
            controlSocket = result == CURLE_OK ? ccurl_control_socket(easy) : -1
            binaryType = result == CURLE_OK
            ccurl_multi_remove_handle(multi, easy)
            try check(result, what: "RETR", path: downloadPath)
            return false
        }
        return true
    }

    /// Hands over up to `buffer.count` waiting bytes.
    func take(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(buffer.count, body.count - bodyStart)
        body.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + bodyStart, byteCount: n)
        }
        bodyStart += n
        if bodyStart == body.count {
            body.removeAll(keepingCapacity: true)
            bodyStart = 0
        }
        return n
    }
    private var bodyStart = 0
    var downloadPath: [UInt8] = []

    /// Ends a download early (the caller stopped reading): the connection is reset by curl.
    func abandonDownload() {
        ccurl_multi_remove_handle(multi, easy)
        body.removeAll()
        bodyStart = 0
    }

    // MARK: plumbing

    /// Resets the handle for a new operation and applies the connection-wide options.
    private func begin(path: [UInt8]?, isDirectory: Bool = false) throws {
        ccurl_easy_reset(easy)  // keeps the live connection
        controlSocket = -1
        binaryType = false
        freeLists()
        replyBytes.removeAll(keepingCapacity: true)
        body.removeAll(keepingCapacity: true)
        bodyStart = 0
        bodyLimit = 0
        bodyOverflow = false
        bodyOverflowIsError = true
        callbackError = nil
        errorBufferPointer[0] = 0
        downloadPath = path ?? []
        let url = options.baseURL + (path.map { Self.urlPath($0, home: home, isDirectory: isDirectory) } ?? "")
        set(CURLOPT_URL, url)
        if !options.username.isEmpty { set(CURLOPT_USERNAME, options.username) }
        if let password = options.password {
            set(CURLOPT_PASSWORD, password)
        } else {
            set(CURLOPT_NETRC, Int(CURL_NETRC_OPTIONAL.rawValue))
        }
        set(CURLOPT_FTP_FILEMETHOD, Int(CURLFTPMETHOD_NOCWD.rawValue))
        set(CURLOPT_CONNECTTIMEOUT, options.connectTimeout)
        set(CURLOPT_SERVER_RESPONSE_TIMEOUT, options.responseTimeout)
        // Under 1 KiB/s for the whole timeout is a stall: a server trickling a few bytes a second
        // (a hostile one) would otherwise hold a run forever.
        set(CURLOPT_LOW_SPEED_LIMIT, 1024)
        set(CURLOPT_LOW_SPEED_TIME, options.responseTimeout)
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_TCP_KEEPALIVE, 1)
        // curl caches every address it resolves under "host:port", and each passive-mode reply
        // names a new port, so one entry per transfer piles up, and curl walks the whole cache
        // before each resolve: quadratic in the files of a run (3.5 % of a 10,000-file upload's
        // CPU). Nothing is lost without the cache: the data connection's address is the control
        // connection's numeric IP, which curl converts without a lookup, and the server's name
        // is resolved once per connection, at login.
        set(CURLOPT_DNS_CACHE_TIMEOUT, 0)
        set(CURLOPT_PROTOCOLS_STR, "ftp,ftps")
        if !options.passive { set(CURLOPT_FTPPORT, "-") }
        if options.tls != .none {
            if options.tls == .explicit { set(CURLOPT_USE_SSL, Int(CURLUSESSL_ALL.rawValue)) }
            if let caFile = options.caFile { set(CURLOPT_CAINFO, caFile) }
            set(CURLOPT_SSL_VERIFYPEER, 1)
            set(CURLOPT_SSL_VERIFYHOST, 2)
        }
        ccurl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBufferPointer)
        let me = Unmanaged.passUnretained(self).toOpaque()
        ccurl_setopt_callback(easy, CURLOPT_HEADERFUNCTION, headerCallback)
        ccurl_setopt_pointer(easy, CURLOPT_HEADERDATA, me)
        ccurl_setopt_callback(easy, CURLOPT_WRITEFUNCTION, writeCallback)
        ccurl_setopt_pointer(easy, CURLOPT_WRITEDATA, me)
        if ProcessEnvironment.verbose { ccurl_verbose_without_secrets(easy) }
    }

    private lazy var errorBufferPointer: UnsafeMutablePointer<CChar> = {
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        pointer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        return pointer
    }()

    private func collectBody(limit: Int) {
        bodyLimit = limit
    }

    /// Runs the prepared operation to its end.
    private func perform(what: String, path: [UInt8]? = nil) throws {
        let added = ccurl_multi_add_handle(multi, easy)
        guard added == CURLM_OK else { throw FTPError(.local, "curl_multi_add_handle failed (\(added.rawValue))") }
        var running: Int32 = 1
        while true {
            let code = ccurl_multi_perform(multi, &running)
            guard code == CURLM_OK else {
                ccurl_multi_remove_handle(multi, easy)
                throw FTPError(.local, "curl_multi_perform failed (\(code.rawValue))")
            }
            if running == 0 { break }
            waitForActivity()
        }
        let result = finishedResult()
        // The connection's socket, while curl can still name it (a removed handle has no
        // connection cache to look in): `pipeline` writes to it.
        controlSocket = result == CURLE_OK ? ccurl_control_socket(easy) : -1
        binaryType = result == CURLE_OK && (what == "RETR" || what == "STOR")
        ccurl_multi_remove_handle(multi, easy)
        try check(result, what: what, path: path)
    }
    var controlSocket: Int32 = -1
    /// curl's last operation on the connection was a binary transfer that succeeded: the server
    /// is in TYPE I, and curl believes so (a direct transfer must not change what curl believes).
    private var binaryType = false
    /// Off once the server answered a direct transfer's EPSV with anything but a usable 229.
    var directTransfers = true

    /// Whether the next download or upload can go without curl (`DirectTransfer`): a plain
    /// connection in passive mode, in step, in TYPE I, with absolute paths.
    private var canTransferDirectly: Bool {
        options.tls == .none && options.passive && pipelining && directTransfers && binaryType && home != nil
            && controlSocket >= 0
    }

    /// Waits for socket activity, but never past curl's own timer, and not at all when curl has
    /// no socket to wait on (a blind one-second wait after each passive-mode reply stalled
    /// transfers by a second).
    private func waitForActivity() {
        var timeout = -1
        ccurl_multi_timeout(multi, &timeout)
        if timeout == 0 { return }
        _ = ccurl_multi_wait(multi, Int32(timeout < 0 ? 1000 : min(timeout, 1000)))
    }

    private func finishedResult() -> CURLcode {
        var result = CURLE_OK
        var queued: Int32 = 0
        while let message = ccurl_multi_info_read(multi, &queued) {
            if message.pointee.msg == CURLMSG_DONE { result = message.pointee.data.result }
        }
        return result
    }

    /// Turns curl's result and the server's last reply into an `FTPError`.
    private func check(_ result: CURLcode, what: String, path: [UInt8]?) throws {
        if result == CURLE_OK {
            if bodyOverflow && bodyOverflowIsError {
                throw FTPError(
                    .protocolError,
                    "\(what) \(path.map(Self.printable) ?? ""): the server sent more than \(bodyLimit) bytes")
            }
            return
        }
        if let callbackError { throw callbackError }
        if bodyOverflow && result == CURLE_WRITE_ERROR {
            if !bodyOverflowIsError { return }
            throw FTPError(
                .protocolError,
                "\(options.display): \(what) \(path.map(Self.printable) ?? ""): the server sent more than \(bodyLimit) bytes"
            )
        }
        let reply = FTPReply.parse(replyBytes).last
        let curlText = String(cString: errorBufferPointer)
        let detail = curlText.isEmpty ? String(cString: ccurl_easy_strerror(result)) : curlText
        let target = path.map { " " + Self.printable($0) } ?? ""
        var message = "\(options.display): \(what)\(target): \(detail)"
        if let reply, !detail.contains(reply.text) { message += " (server: \(reply.code) \(reply.text))" }
        let kind: FTPError.Kind
        switch result {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            kind = .connection
        case CURLE_LOGIN_DENIED:
            kind = .login
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_USE_SSL_FAILED, CURLE_SSL_CERTPROBLEM,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_CRL_BADFILE:
            kind = .tls
        case CURLE_REMOTE_FILE_NOT_FOUND:
            kind = .notFound
        case CURLE_REMOTE_ACCESS_DENIED, CURLE_FTP_COULDNT_RETR_FILE, CURLE_QUOTE_ERROR, CURLE_UPLOAD_FAILED,
            CURLE_REMOTE_DISK_FULL, CURLE_FTP_COULDNT_USE_REST:
            if let code = reply?.code, code == 550 || code == 450, Self.soundsMissing(reply!.text) {
                kind = .notFound
            } else {
                kind = .refused
            }
        case CURLE_OPERATION_TIMEDOUT:
            kind = replyBytes.isEmpty ? .connection : .interrupted
        case CURLE_FTP_WEIRD_PASV_REPLY, CURLE_FTP_WEIRD_227_FORMAT,
            CURLE_BAD_CONTENT_ENCODING:
            kind = .protocolError
        default:
            kind = .interrupted  // broken or reset connection, partial transfer: worth a retry
        }
        throw FTPError(kind, message, replyCode: reply?.code)
    }

    public static func soundsMissing(_ text: String) -> Bool {
        let lower = text.lowercased()
        return lower.contains("no such file") || lower.contains("not found") || lower.contains("does not exist")
            || lower.contains("failed to change directory") || lower.contains("can't check for file existence")
    }

    private func set(_ option: CURLoption, _ value: Int) {
        ccurl_setopt_long(easy, option, value)
    }

    private func setOff(_ option: CURLoption, _ value: Int64) {
        ccurl_setopt_off(easy, option, curl_off_t(value))
    }

    private func set(_ option: CURLoption, _ value: String) {
        ccurl_setopt_string(easy, option, value)  // curl copies strings
    }

    private func set(_ option: CURLoption, _ list: UnsafeMutablePointer<curl_slist>?) {
        ccurl_setopt_slist(easy, option, list)
    }

    /// A curl string list kept until the next operation (curl does not copy lists).
    private func list(_ items: [[UInt8]]) -> UnsafeMutablePointer<curl_slist>? {
        var head: UnsafeMutablePointer<curl_slist>?
        for item in items {
            var bytes = item
            bytes.append(0)
            head = bytes.withUnsafeBufferPointer {
                $0.withMemoryRebound(to: CChar.self) { ccurl_slist_append(head, $0.baseAddress) }
            }
        }
        if let head { lists.append(head) }
        return head
    }

    private func freeLists() {
        for list in lists { ccurl_slist_free_all(list) }
        lists.removeAll()
    }

    // MARK: callbacks

    /// The login's hooks (see `init`), each called once.
    private var greeted: (() -> Void)?
    private var beforePassword: (() -> Bool)?

    fileprivate func receivedReply(_ pointer: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        if greeted != nil || beforePassword != nil, count >= 3 {
            let code = pointer.withMemoryRebound(to: UInt8.self, capacity: 3) {
                Array(UnsafeBufferPointer(start: $0, count: 3))
            }
            // Under explicit TLS the greeting comes before the handshake: the reply to USER
            // (after it) tells that the certificate was taken.
            let ready = options.tls == .explicit ? ["331", "230"] : ["220"]
            if ready.contains(where: { Array($0.utf8) == code }), let greeted {
                self.greeted = nil
                greeted()
            }
            if code == Array("331".utf8), let beforePassword {
                self.beforePassword = nil
                if !beforePassword() {
                    callbackError = FTPError(
                        .login, "\(options.display): the login was not tried (another connection's login failed)")
                    return 0  // curl stops before it sends the password
                }
            }
        }
        if replyBytes.count < 1 << 20 {
            pointer.withMemoryRebound(to: UInt8.self, capacity: count) {
                replyBytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: count))
            }
        }
        return count
    }

    fileprivate func receivedBody(_ pointer: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        if body.count + count > bodyLimit {
            bodyOverflow = true
            return 0  // curl stops with CURLE_WRITE_ERROR
        }
        pointer.withMemoryRebound(to: UInt8.self, capacity: count) {
            body.append(contentsOf: UnsafeBufferPointer(start: $0, count: count))
        }
        return count
    }

    fileprivate func fill(_ pointer: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        guard let reader else { return 0 }
        do {
            return try reader(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        } catch {
            callbackError = error
            return ccurl_readfunc_abort
        }
    }

    // MARK: text helpers

    /// The URL path for `path`: absolute (from the login directory) when it is known, each byte
    /// outside the unreserved set percent-encoded.
    static func urlPath(_ path: [UInt8], home: [UInt8]?, isDirectory: Bool) -> String {
        var full: [UInt8]
        if let home {
            full = home
            if full.last != UInt8(ascii: "/") { full.append(UInt8(ascii: "/")) }
            full.append(contentsOf: path)
        } else {
            full = path
        }
        var out = ""
        out.reserveCapacity(full.count + 8)
        for (index, byte) in full.enumerated() {
            // A leading slash is written %2F: RFC 1738 reads the first path segment as relative.
            if byte == UInt8(ascii: "/") && index > 0 {
                out.append("/")
            } else if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "~")
            {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = Array("0123456789ABCDEF".utf8)
                out.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 15)]))
            }
        }
        if isDirectory && !out.hasSuffix("/") { out.append("/") }
        return out
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
    private let connection: FTPConnection
    public let path: [UInt8]
    private var ended = false
    private let direct: DirectRetrieval?

    init(connection: FTPConnection, path: [UInt8], direct: DirectRetrieval? = nil) {
        self.connection = connection
        self.path = path
        self.direct = direct
    }

    /// Reads up to `buffer.count` bytes; 0 at the end of the file. Throws `FTPError`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let direct { return try direct.read(into: buffer) }
        if ended || buffer.count == 0 { return 0 }
        do {
            guard try connection.step() else {
                ended = true
                return 0
            }
        } catch {
            ended = true
            throw error
        }
        return connection.take(into: buffer)
    }

    /// Ends the download; a download closed before its end is abandoned.
    public func close() {
        if let direct { return direct.abandon() }
        if !ended {
            ended = true
            connection.abandonDownload()
        }
    }
}

/// Debugging aid: `PLUGSYNC_CURL_VERBOSE=1` makes curl print the FTP dialogue on stderr.
enum ProcessEnvironment {
    static let verbose = getenv("PLUGSYNC_CURL_VERBOSE") != nil
}

private let headerCallback: ccurl_data_callback = { pointer, size, count, user in
    guard let pointer, let user else { return 0 }
    return Unmanaged<FTPConnection>.fromOpaque(user).takeUnretainedValue().receivedReply(pointer, size * count)
}

private let writeCallback: ccurl_data_callback = { pointer, size, count, user in
    guard let pointer, let user else { return 0 }
    return Unmanaged<FTPConnection>.fromOpaque(user).takeUnretainedValue().receivedBody(pointer, size * count)
}

private let readCallback: ccurl_data_callback = { pointer, size, count, user in
    guard let pointer, let user else { return 0 }
    return Unmanaged<FTPConnection>.fromOpaque(user).takeUnretainedValue().fill(pointer, size * count)
}
