/// How to reach one FTP or FTPS server.
public struct FTPOptions: Sendable {
    public enum TLS: String, Sendable {
        /// Plain FTP.
        case none
        /// `AUTH TLS` on the usual port, then TLS for control and data (FTPES).
        case explicit
        /// TLS from the first byte (ftps://, port 990 by default).
        case implicit
    }

    public var host: String
    public var port: Int?
    public var username: String
    /// nil: take it from ~/.netrc (`Netrc`), or log in anonymously.
    public var password: String?
    public var tls: TLS = .none
    /// Passive mode (EPSV/PASV); active mode (EPRT/PORT) when false.
    public var passive = true
    /// A PEM file of certificate authorities for a private CA; the system store otherwise.
    public var caFile: String?
    /// Seconds to wait for a TCP connection and the TLS handshake.
    public var connectTimeout = 15
    /// Seconds to wait for any server reply, and the longest a transfer may stall.
    public var responseTimeout = 60
    /// The most a directory listing may hold; a larger one is refused (a hostile server).
    public var maximumListingBytes = 256 << 20

    public init(host: String, port: Int? = nil, username: String, password: String? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
    }

    /// `ftp://host:port/` (or `ftps://` for implicit TLS): the base of every URL.
    var baseURL: String {
        let scheme = tls == .implicit ? "ftps" : "ftp"
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "\(scheme)://\(hostPart)" + (port.map { ":\($0)" } ?? "") + "/"
    }

    /// For messages: never holds the password.
    public var display: String {
        let scheme = tls == .none ? "ftp" : "ftps"
        return "\(scheme)://\(username)@\(host)" + (port.map { ":\($0)" } ?? "")
    }
}

/// Why an FTP operation failed, classified so callers can decide to retry, refuse or report.
public struct FTPError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The server could not be reached (connection refused, unknown host, timeout on connect).
        case connection
        /// The login was refused (wrong user or password).
        case login
        /// TLS failed (certificate not trusted, handshake, server without TLS).
        case tls
        /// The file or folder does not exist.
        case notFound
        /// The server refused the command (permissions, quota, policy).
        case refused
        /// The connection broke or stalled during an operation: worth retrying.
        case interrupted
        /// The server said something this client cannot use.
        case protocolError
        /// Our own reader or writer failed (a local file), not the server.
        case local
    }

    public var kind: Kind
    public var message: String
    /// The server's last reply code, when there was one.
    public var replyCode: Int?

    public init(_ kind: Kind, _ message: String, replyCode: Int? = nil) {
        self.kind = kind
        self.message = message
        self.replyCode = replyCode
    }

    /// Worth another try after a pause: a broken connection, or a 4xx (transient) reply.
    public var isRetryable: Bool {
        switch kind {
        case .interrupted: return true
        case .refused, .notFound: return (replyCode ?? 500) < 500
        default: return false
        }
    }

    public var description: String { message }
}
