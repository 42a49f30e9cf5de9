import CCurl
import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// How to reach and log in to an SSH server's SFTP subsystem.
public struct SFTPOptions: Sendable {
    public var host: String
    public var port: Int
    public var username: String
    /// Password login (and the private key's passphrase, where a key is given too).
    public var password: String?
    /// A private key file; `keyFile.pub` is passed along where it exists.
    public var keyFile: String?
    /// The known_hosts file the server's host key must be in.
    public var knownHosts: String
    public var connectTimeout = 30
    /// Seconds a transfer may stall (no byte moving) before it fails.
    public var stallTimeout = 60

    public init(host: String, port: Int? = nil, username: String, knownHosts: String) {
        self.host = host
        self.port = port ?? 22
        self.username = username
        self.knownHosts = knownHosts
    }

    /// `sftp://user@host[:port]`, for messages.
    public var display: String {
        let server = host.contains(":") ? "[\(host)]" : host
        return "sftp://\(username)@\(server)" + (port == 22 ? "" : ":\(port)")
    }
}

/// What went wrong on an SFTP connection, by what a run does about it.
public struct SFTPError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The server cannot be reached, or the connection broke (tried again).
        case connection
        /// The server's host key is not in known_hosts, or another one is there.
        case hostKey
        /// The login was refused.
        case login
        /// What was asked for is not there.
        case notFound
        /// The server refused the operation.
        case refused
        /// Here, not on the server (a source that could not be read, libcurl missing).
        case local
    }
    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

extension SFTPError: EndpointFailure {
    public var endpointErrorKind: EndpointErrorKind {
        switch kind {
        case .connection: return .retryable
        case .notFound: return .notFound
        default: return .permanent
        }
    }
}

/// One SSH connection's SFTP session, through a libcurl easy handle that keeps it open between
/// requests. Not thread-safe: one thread uses it at a time (`SFTPPool`).
///
/// Paths are relative to the login folder. A request's URL is `sftp://host/~/path`; the
/// commands curl sends before or after a request (QUOTE, POSTQUOTE: mkdir, rm, rmdir, rename,
/// chmod, mtime) take the same path in double quotes, which the server resolves from the login
/// folder too.
final class SFTPConnection {
    let options: SFTPOptions
    private let easy: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let hostKeyMatch: UnsafeMutablePointer<Int32>
    private var lists: [UnsafeMutablePointer<curl_slist>] = []

    // The request in progress, for the callbacks.
    fileprivate var body: [UInt8] = []
    fileprivate var sink: ((UnsafeRawBufferPointer) -> Bool)?
    fileprivate var source: ((UnsafeMutableRawBufferPointer) throws -> Int)?
    fileprivate var callbackError: Error?

    init(_ options: SFTPOptions) throws {
        guard ccurl_global_init() == CURLE_OK else {
            throw SFTPError(.local, String(cString: ccurl_load_error()))
        }
        guard let easy = ccurl_easy_init() else { throw SFTPError(.local, "cannot initialize libcurl") }
        self.options = options
        self.easy = easy
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        hostKeyMatch = .allocate(capacity: 1)
        hostKeyMatch.initialize(to: -1)
    }

    deinit {
        ccurl_easy_cleanup(easy)
        freeLists()
        errorBuffer.deallocate()
        hostKeyMatch.deallocate()
    }

    /// Logs in (a request that only lists the login folder's own entry).
    func open() throws {
        _ = try stat(.empty, what: "login")
    }

    // MARK: requests

    /// A folder's long listing (`ls -l` lines, as the server words them).
    func listing(_ folder: FileName) throws -> [UInt8] {
        begin(url(folder, directory: true))
        body = []
        collect()
        try perform("list", folder)
        return body
    }

    /// The modification time (seconds) and size of `path`, from a stat of it (the size where the
    /// server gave one).
    func stat(_ path: FileName, what: String = "stat") throws -> (mtime: Int64, size: Int64?) {
        begin(url(path, directory: false))
        ccurl_setopt_long(easy, CURLOPT_NOBODY, 1)
        ccurl_setopt_long(easy, CURLOPT_FILETIME, 1)
        try perform(what, path)
        let size = Int64(ccurl_content_length(easy))
        return (Int64(ccurl_filetime(easy)), size >= 0 ? size : nil)
    }

    /// Downloads `path`, handing its bytes to `sink` as they come (false from it stops).
    func download(_ path: FileName, into sink: @escaping (UnsafeRawBufferPointer) -> Bool) throws {
        begin(url(path, directory: false))
        self.sink = sink
        defer { self.sink = nil }
        let me = Unmanaged.passUnretained(self).toOpaque()
        ccurl_setopt_callback(easy, CURLOPT_WRITEFUNCTION, sinkCallback)
        ccurl_setopt_pointer(easy, CURLOPT_WRITEDATA, me)
        try perform("download", path)
    }

    /// Uploads `size` bytes from `source` to `path`, then runs `after` (commands as for `run`)
    /// when the upload is whole.
    func upload(
        _ path: FileName, size: Int64, mode: UInt32, after: [String],
        from source: @escaping (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws {
        begin(url(path, directory: false))
        self.source = source
        defer { self.source = nil }
        ccurl_setopt_long(easy, CURLOPT_UPLOAD, 1)
        ccurl_setopt_off(easy, CURLOPT_INFILESIZE_LARGE, curl_off_t(size))
        ccurl_setopt_long(easy, CURLOPT_NEW_FILE_PERMS, Int(mode))
        ccurl_setopt_callback(easy, CURLOPT_READFUNCTION, sourceCallback)
        ccurl_setopt_pointer(easy, CURLOPT_READDATA, Unmanaged.passUnretained(self).toOpaque())
        if !after.isEmpty { ccurl_setopt_slist(easy, CURLOPT_POSTQUOTE, list(after)) }
        try perform("upload", path)
    }

    /// Runs SFTP commands (`mkdir "a/b"`, `rename "x" "y"`; a leading `*` ignores the command's
    /// failure), one after the other, stopping at the first that fails.
    func run(_ commands: [String], about path: FileName) throws {
        begin(url(.empty, directory: true))
        ccurl_setopt_long(easy, CURLOPT_NOBODY, 1)
        ccurl_setopt_slist(easy, CURLOPT_QUOTE, list(commands))
        try perform(commands.first.map { String($0.prefix { $0 != " " }) } ?? "command", path)
    }

    // MARK: commands

    /// `path` (from the login folder) as a quoted argument of an SFTP command.
    static func quoted(_ path: FileName) -> String {
        var text = "\""
        for character in path.isEmpty ? "." : String(decoding: path.bytes, as: UTF8.self) {
            if character == "\"" || character == "\\" { text.append("\\") }
            text.append(character)
        }
        return text + "\""
    }

    /// The `mtime` command's date: an HTTP date, which curl reads.
    static func httpDate(_ seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }

    // MARK: the handle

    private func url(_ path: FileName, directory: Bool) -> String {
        let host = options.host.contains(":") ? "[\(options.host)]" : options.host
        var url = "sftp://\(host):\(options.port)/~/"
        url += Self.percentEncoded(path.bytes)
        if directory && !path.isEmpty { url += "/" }
        return url
    }

    static func percentEncoded(_ bytes: [UInt8]) -> String {
        var text = ""
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"), UInt8(ascii: "/"):
                text.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                text += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 15)]], as: UTF8.self)
            }
        }
        return text
    }

    /// Resets the handle (its connection stays open) and sets what every request needs.
    private func begin(_ url: String) {
        ccurl_easy_reset(easy)
        freeLists()
        callbackError = nil
        errorBuffer[0] = 0
        hostKeyMatch.pointee = -1
        ccurl_setopt_string(easy, CURLOPT_URL, url)
        ccurl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "sftp")
        ccurl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer)
        ccurl_setopt_string(easy, CURLOPT_USERNAME, options.username)
        var auth = 0
        if let keyFile = options.keyFile {
            auth |= Int(CURLSSH_AUTH_PUBLICKEY)
            ccurl_setopt_string(easy, CURLOPT_SSH_PRIVATE_KEYFILE, keyFile)
            // An empty public key lets libssh2 derive it from the private one.
            let publicKey = keyFile + ".pub"
            ccurl_setopt_string(easy, CURLOPT_SSH_PUBLIC_KEYFILE, access(publicKey, R_OK) == 0 ? publicKey : "")
            if let password = options.password { ccurl_setopt_string(easy, CURLOPT_KEYPASSWD, password) }
        }
        if let password = options.password {
            auth |= Int(CURLSSH_AUTH_PASSWORD) | Int(CURLSSH_AUTH_KEYBOARD)
            ccurl_setopt_string(easy, CURLOPT_PASSWORD, password)
        }
        // The keys of a running ssh-agent too (SSH_AUTH_SOCK), as ssh tries them.
        if getenv("SSH_AUTH_SOCK") != nil { auth |= Int(CURLSSH_AUTH_AGENT) }
        ccurl_setopt_long(easy, CURLOPT_SSH_AUTH_TYPES, auth == 0 ? Int(CURLSSH_AUTH_PUBLICKEY) : auth)
        ccurl_setopt_string(easy, CURLOPT_SSH_KNOWNHOSTS, options.knownHosts)
        ccurl_ssh_known_hosts_strict(easy, hostKeyMatch)
        ccurl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT, options.connectTimeout)
        ccurl_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
        ccurl_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, options.stallTimeout)
        if getenv("PLUGSYNC_CURL_VERBOSE") != nil { ccurl_verbose_without_secrets(easy) }
    }

    private func collect() {
        let me = Unmanaged.passUnretained(self).toOpaque()
        ccurl_setopt_callback(easy, CURLOPT_WRITEFUNCTION, bodyCallback)
        ccurl_setopt_pointer(easy, CURLOPT_WRITEDATA, me)
    }

    private func list(_ items: [String]) -> UnsafeMutablePointer<curl_slist>? {
        var list: UnsafeMutablePointer<curl_slist>?
        for item in items { list = ccurl_slist_append(list, item) }
        if let list { lists.append(list) }
        return list
    }

    private func freeLists() {
        for list in lists { ccurl_slist_free_all(list) }
        lists = []
    }

    private func perform(_ what: String, _ path: FileName) throws {
        let code = ccurl_easy_perform(easy)
        freeLists()
        if code == CURLE_OK { return }
        if let callbackError, code == CURLE_ABORTED_BY_CALLBACK || code == CURLE_WRITE_ERROR {
            throw callbackError
        }
        throw error(code, what, path)
    }

    private func error(_ code: CURLcode, _ what: String, _ path: FileName) -> SFTPError {
        let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: ccurl_easy_strerror(code))
        let place = options.display + "/" + path.description
        switch code {
        case CURLE_PEER_FAILED_VERIFICATION:
            let server =
                options.host.contains(":") ? "[\(options.host)]:\(options.port)" : "\(options.host):\(options.port)"
            if hostKeyMatch.pointee == Int32(CURLKHMATCH_MISMATCH.rawValue) {
                return SFTPError(
                    .hostKey,
                    "the host key of \(server) is not the one \(options.knownHosts) holds for it: refused (the server's key was replaced, or someone is in between)"
                )
            }
            return SFTPError(
                .hostKey,
                "the host key of \(server) is not in \(options.knownHosts): refused (check the server's key fingerprint, then add it, e.g. with ssh-keyscan -p \(options.port) \(options.host) >> \(options.knownHosts))"
            )
        case CURLE_LOGIN_DENIED:
            return SFTPError(.login, "\(options.display): login refused (\(detail))")
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR,
            CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
            return SFTPError(.connection, "\(place): \(what): \(detail)")
        case CURLE_REMOTE_FILE_NOT_FOUND:
            return SFTPError(.notFound, "\(place): \(what): \(detail)")
        case CURLE_SSH:
            // A broken session, or a failure curl words as an SSH error.
            if detail.contains("No such file") { return SFTPError(.notFound, "\(place): \(what): \(detail)") }
            return SFTPError(.connection, "\(place): \(what): \(detail)")
        default:
            if detail.contains("No such file") { return SFTPError(.notFound, "\(place): \(what): \(detail)") }
            return SFTPError(.refused, "\(place): \(what): \(detail)")
        }
    }

    // MARK: callbacks

    fileprivate func received(_ pointer: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        if let sink {
            return sink(UnsafeRawBufferPointer(start: pointer, count: count)) ? count : 0
        }
        body.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: count))
        return count
    }

    fileprivate func fill(_ pointer: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        guard let source else { return 0 }
        do {
            return try source(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        } catch {
            callbackError = error
            return ccurl_readfunc_abort
        }
    }
}

private let bodyCallback: ccurl_data_callback = { pointer, size, count, user in
    guard let pointer, let user else { return 0 }
    return Unmanaged<SFTPConnection>.fromOpaque(user).takeUnretainedValue().received(pointer, size * count)
}

private let sinkCallback = bodyCallback

private let sourceCallback: ccurl_data_callback = { pointer, size, count, user in
    guard let pointer, let user else { return 0 }
    return Unmanaged<SFTPConnection>.fromOpaque(user).takeUnretainedValue().fill(pointer, size * count)
}
