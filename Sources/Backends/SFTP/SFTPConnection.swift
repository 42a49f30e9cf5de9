import CSSH2
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
        /// Here, not on the server (a source that could not be read, libssh2 missing).
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

/// What the server says of an entry (a stat's or a listing's attributes).
struct SFTPAttributes: Equatable {
    /// nil: neither a file, a folder nor a symbolic link (a device, a socket).
    var kind: EntryKind?
    /// A file's size (0 for the rest).
    var size: Int64
    /// The permission bits.
    var mode: UInt32
    /// Seconds; nil where the server gave no time.
    var mtime: Int64?

    init(kind: EntryKind?, size: Int64, mode: UInt32, mtime: Int64?) {
        self.kind = kind
        self.size = size
        self.mode = mode
        self.mtime = mtime
    }

    /// From the attributes of an SFTP reply: the kind from the permissions' type bits.
    init(flags: UInt, permissions: UInt, size: UInt64, mtime: UInt) {
        let hasPermissions = flags & UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS) != 0
        switch permissions & 0o170000 {
        case _ where !hasPermissions: kind = nil
        case 0o100000: kind = .file
        case 0o040000: kind = .directory
        case 0o120000: kind = .symlink
        default: kind = nil
        }
        self.size = kind == .file && flags & UInt(LIBSSH2_SFTP_ATTR_SIZE) != 0 ? Int64(clamping: size) : 0
        self.mode = hasPermissions ? UInt32(permissions & 0o7777) : 0
        self.mtime = flags & UInt(LIBSSH2_SFTP_ATTR_ACMODTIME) != 0 ? Int64(mtime) : nil
    }

    init(_ attributes: LIBSSH2_SFTP_ATTRIBUTES) {
        self.init(
            flags: attributes.flags, permissions: attributes.permissions, size: UInt64(attributes.filesize),
            mtime: attributes.mtime)
    }
}

/// A folder's entry as the server lists it.
struct SFTPListedEntry: Equatable {
    var name: [UInt8]
    var attributes: SFTPAttributes
}

/// An open remote file of an `SFTPConnection`.
struct SFTPFile {
    fileprivate let handle: OpaquePointer
}

/// One SSH connection's SFTP session, through libssh2 (blocking calls, each bounded by the
/// stall timeout). Not thread-safe: one thread uses it at a time (`SFTPPool`). Once a request
/// failed for the connection's sake (a timeout, a broken socket), `broken` is set and the pool
/// drops the connection.
///
/// Paths are relative to the login folder, from where the server resolves them (`.` for it).
final class SFTPConnection {
    let options: SFTPOptions
    private var connection = cssh2_connection()
    private(set) var broken = false
    /// The uploads' buffer, made at the first upload.
    private var buffer: UnsafeMutableRawBufferPointer?
    /// What an upload hands libssh2 at once: it sends it in several write requests without
    /// waiting for each one's answer.
    static let uploadBuffer = 1 << 20

    /// Connects, checks the host key and logs in.
    init(_ options: SFTPOptions) throws {
        self.options = options
        var error = [CChar](repeating: 0, count: 1024)
        let errorSize = error.count
        let agent = getenv("SSH_AUTH_SOCK") != nil
        let result = cssh2_open(
            &connection, options.host, Int32(clamping: options.port), options.username, options.keyFile,
            options.password, agent ? 1 : 0, options.knownHosts, Int32(clamping: options.connectTimeout * 1000),
            Int32(clamping: options.stallTimeout * 1000), &error, errorSize)
        let detail = String(cString: error)
        let server =
            options.host.contains(":") ? "[\(options.host)]:\(options.port)" : "\(options.host):\(options.port)"
        switch result {
        case CSSH2_OPENED:
            return
        case CSSH2_HOST_KEY_CHANGED:
            throw SFTPError(
                .hostKey,
                "the host key of \(server) is not the one \(options.knownHosts) holds for it: refused (the server's key was replaced, or someone is in between)"
            )
        case CSSH2_HOST_KEY_UNKNOWN:
            throw SFTPError(
                .hostKey,
                "the host key of \(server) is not in \(options.knownHosts): refused (check the server's key fingerprint, then add it, e.g. with ssh-keyscan -p \(options.port) \(options.host) >> \(options.knownHosts))"
            )
        case CSSH2_LOGIN_REFUSED:
            throw SFTPError(.login, "\(options.display): login refused (\(detail))")
        case CSSH2_NO_LIBRARY:
            throw SFTPError(.local, detail)
        case CSSH2_NO_SFTP:
            throw SFTPError(.refused, "\(options.display): \(detail)")
        default:
            throw SFTPError(.connection, "\(options.display): \(detail)")
        }
    }

    deinit {
        cssh2_close(&connection)
        buffer?.deallocate()
    }

    // MARK: folders

    /// A folder's entries, without `.` and `..`, in the server's order.
    func listing(_ folder: FileName) throws -> [SFTPListedEntry] {
        var entries: [SFTPListedEntry] = []
        try eachEntry(folder) { name, attributes in
            entries.append(SFTPListedEntry(name: name, attributes: attributes))
            return true
        }
        return entries
    }

    /// Whether a folder holds anything (its listing read up to the first entry).
    func holdsEntries(_ folder: FileName) throws -> Bool {
        var found = false
        try eachEntry(folder) { _, _ in
            found = true
            return false
        }
        return found
    }

    /// Hands each entry of `folder` but `.` and `..` to `body`, until it returns false.
    private func eachEntry(_ folder: FileName, _ body: ([UInt8], SFTPAttributes) -> Bool) throws {
        guard
            let handle = withPath(folder, { cssh2_sftp_open(&connection, $0, $1, 0, 0, Int32(LIBSSH2_SFTP_OPENDIR)) })
        else { throw failure("list", folder) }
        defer { _ = cssh2_sftp_close(handle) }
        var name = [CChar](repeating: 0, count: 4096)
        let capacity = name.count
        var attributes = LIBSSH2_SFTP_ATTRIBUTES()
        while true {
            let n = cssh2_sftp_readdir(handle, &name, capacity, &attributes)
            if n == 0 { return }
            if n < 0 { throw failure("list", folder) }
            let bytes = name.prefix(Int(n)).map { UInt8(bitPattern: $0) }
            if bytes == [UInt8(ascii: ".")] || bytes == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            if !body(bytes, SFTPAttributes(attributes)) { return }
        }
    }

    /// What is at `path` (a link's own attributes, not its target's).
    func stat(_ path: FileName) throws -> SFTPAttributes {
        var attributes = LIBSSH2_SFTP_ATTRIBUTES()
        let code = withPath(path) { cssh2_sftp_stat(&connection, $0, $1, Int32(LIBSSH2_SFTP_LSTAT), &attributes) }
        if code < 0 { throw failure("stat", path) }
        return SFTPAttributes(attributes)
    }

    /// A symbolic link's target.
    func readLink(_ path: FileName) throws -> [UInt8] {
        var target = [CChar](repeating: 0, count: 4096)
        let capacity = UInt32(target.count)
        let n = withPath(path) {
            cssh2_sftp_symlink(&connection, $0, $1, &target, capacity, Int32(LIBSSH2_SFTP_READLINK))
        }
        if n < 0 { throw failure("readlink", path) }
        return target.prefix(Int(n)).map { UInt8(bitPattern: $0) }
    }

    func makeDirectory(_ path: FileName) throws {
        if withPath(path, { cssh2_sftp_mkdir(&connection, $0, $1, 0o755) }) < 0 { throw failure("mkdir", path) }
    }

    func removeDirectory(_ path: FileName) throws {
        if withPath(path, { cssh2_sftp_rmdir(&connection, $0, $1) }) < 0 { throw failure("rmdir", path) }
    }

    func removeFile(_ path: FileName) throws {
        if withPath(path, { cssh2_sftp_unlink(&connection, $0, $1) }) < 0 { throw failure("rm", path) }
    }

    /// Renames `source` to `destination`. A server of protocol version 3 (OpenSSH) renames onto
    /// no existing name: it refuses.
    func rename(_ source: FileName, to destination: FileName) throws {
        let flags = LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE
        let code = withPath(source) { from, fromLength in
            withPath(destination) { cssh2_sftp_rename(&connection, from, fromLength, $0, $1, Int(flags)) }
        }
        if code < 0 { throw failure("rename", source) }
    }

    /// Makes a symbolic link at `path` that points to `target`.
    func makeSymlink(_ path: FileName, to target: FileName) throws {
        // OpenSSH's server takes the target first (the protocol's draft says the other order),
        // as every client sends it.
        var targetBytes = target.bytes.map { CChar(bitPattern: $0) }
        let targetLength = UInt32(targetBytes.count)
        let code = withPath(path) { link, linkLength in
            cssh2_sftp_symlink(
                &connection, &targetBytes, targetLength, UnsafeMutablePointer(mutating: link),
                linkLength, Int32(LIBSSH2_SFTP_SYMLINK))
        }
        if code >= 0 { return }
        let error = failure("symlink", path)
        // Some builds of libssh2 (Debian 12's 1.10.0-3+deb12u1) misread the server's answer to
        // this request and report a failure with the request's number as its status, the link
        // made: the link itself tells.
        if error.kind != .connection, (try? readLink(path)) == target.bytes { return }
        throw error
    }

    /// Sets the permission bits and the modification time (either where not nil).
    func setAttributes(_ path: FileName, mode: UInt32?, mtime: Int64?) throws {
        guard var attributes = Self.attributes(mode: mode, mtime: mtime) else { return }
        let code = withPath(path) { cssh2_sftp_stat(&connection, $0, $1, Int32(LIBSSH2_SFTP_SETSTAT), &attributes) }
        if code < 0 { throw failure("setstat", path) }
    }

    private static func attributes(mode: UInt32?, mtime: Int64?) -> LIBSSH2_SFTP_ATTRIBUTES? {
        var attributes = LIBSSH2_SFTP_ATTRIBUTES()
        if let mode {
            attributes.flags |= UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
            attributes.permissions = UInt(mode & 0o7777)
        }
        // The protocol's times are unsigned 32-bit seconds.
        if let mtime, mtime >= 0, mtime <= Int64(UInt32.max) {
            attributes.flags |= UInt(LIBSSH2_SFTP_ATTR_ACMODTIME)
            attributes.atime = UInt(mtime)
            attributes.mtime = UInt(mtime)
        }
        return attributes.flags == 0 ? nil : attributes
    }

    // MARK: files

    /// Writes `path` (made or emptied) with the bytes `source` gives until it returns 0, then
    /// sets its mode and time (either where not nil) and closes it: the file is whole once this
    /// returns.
    func upload(
        _ path: FileName, mode: UInt32?, mtime: Int64?, from source: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws {
        let flags = LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC
        guard
            let handle = withPath(
                path,
                {
                    cssh2_sftp_open(
                        &connection, $0, $1, UInt(flags), Int(mode ?? 0o644) & 0o777, Int32(LIBSSH2_SFTP_OPENFILE))
                })
        else { throw failure("upload", path) }
        var open = true
        defer { if open { _ = cssh2_sftp_close(handle) } }
        let buffer = self.buffer ?? .allocate(byteCount: Self.uploadBuffer, alignment: 16)
        self.buffer = buffer
        let base = buffer.baseAddress!
        // libssh2 answers once the first of the write requests it sent is acknowledged, with
        // the bytes that one held: the rest of the buffer is handed again (it sends what it
        // has not sent yet). The buffer is topped up when half of it is acknowledged.
        var start = 0
        var end = 0
        var ended = false
        while true {
            if !ended && end - start < buffer.count / 2 {
                if start > 0 {
                    memmove(base, base + start, end - start)
                    end -= start
                    start = 0
                }
                while end < buffer.count {
                    let n = try source(UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
                    if n == 0 {
                        ended = true
                        break
                    }
                    end += n
                }
            }
            if start == end {
                if ended { break }
                continue
            }
            let n = cssh2_sftp_write(handle, base.assumingMemoryBound(to: CChar.self) + start, end - start)
            if n < 0 { throw failure("upload", path) }
            start += n
        }
        if var attributes = Self.attributes(mode: mode, mtime: mtime) {
            if cssh2_sftp_fstat(handle, &attributes, 1) < 0 { throw failure("setstat", path) }
        }
        open = false
        // The server reports a write it could not finish (a full disk) at the latest here.
        if cssh2_sftp_close(handle) < 0 { throw failure("upload", path) }
    }

    /// Opens `path` for reading.
    func openForReading(_ path: FileName) throws -> SFTPFile {
        guard
            let handle = withPath(
                path,
                {
                    cssh2_sftp_open(&connection, $0, $1, UInt(LIBSSH2_FXF_READ), 0, Int32(LIBSSH2_SFTP_OPENFILE))
                })
        else { throw failure("download", path) }
        return SFTPFile(handle: handle)
    }

    /// Reads the next bytes of `file` (0 at its end). libssh2 asks for the following ones ahead.
    func read(_ file: SFTPFile, into buffer: UnsafeMutableRawBufferPointer, path: FileName) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let n = cssh2_sftp_read(file.handle, base.assumingMemoryBound(to: CChar.self), buffer.count)
        if n < 0 { throw failure("download", path) }
        return n
    }

    func close(_ file: SFTPFile) {
        _ = cssh2_sftp_close(file.handle)
    }

    // MARK: errors

    /// `path` (from the login folder) as libssh2 takes it: its bytes and their count; `.` for
    /// the login folder.
    private func withPath<R>(_ path: FileName, _ body: (UnsafePointer<CChar>, UInt32) -> R) -> R {
        let bytes = path.isEmpty ? [UInt8(ascii: ".")] : path.bytes
        return bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { body($0.baseAddress!, UInt32($0.count)) }
        }
    }

    /// The error of the request that just failed: the server's refusal (the connection is
    /// fine), or the connection's failure (it is dropped).
    private func failure(_ what: String, _ path: FileName) -> SFTPError {
        var text: UnsafePointer<CChar>?
        let code = cssh2_last_error(&connection, &text)
        let place = options.display + "/" + path.description
        if code == LIBSSH2_ERROR_SFTP_PROTOCOL {
            let status = cssh2_sftp_last_error(&connection)
            let (kind, words) = Self.meaning(ofStatus: status)
            if kind == .connection { broken = true }
            return SFTPError(kind, "\(place): \(what): \(words)")
        }
        broken = true
        let detail = text.map { String(cString: $0) } ?? "error \(code)"
        return SFTPError(.connection, "\(place): \(what): \(detail)")
    }

    /// What an SFTP status code means to a run, and its words.
    static func meaning(ofStatus status: UInt) -> (SFTPError.Kind, String) {
        switch status {
        case LIBSSH2_FX_NO_SUCH_FILE, LIBSSH2_FX_NO_SUCH_PATH: return (.notFound, "no such file")
        case LIBSSH2_FX_PERMISSION_DENIED: return (.refused, "permission denied")
        case LIBSSH2_FX_FILE_ALREADY_EXISTS: return (.refused, "already there")
        case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return (.refused, "no space left on the server")
        case LIBSSH2_FX_QUOTA_EXCEEDED: return (.refused, "quota exceeded")
        case LIBSSH2_FX_DIR_NOT_EMPTY: return (.refused, "the folder is not empty")
        case LIBSSH2_FX_OP_UNSUPPORTED: return (.refused, "not supported by the server")
        case LIBSSH2_FX_NO_CONNECTION, LIBSSH2_FX_CONNECTION_LOST: return (.connection, "connection lost")
        default: return (.refused, "the server refused it (SFTP status \(status))")
        }
    }
}
