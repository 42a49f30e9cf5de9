import SFTPBackend
import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// A folder on an SSH server, through SFTP: `sftp:` in the definitions file, `sftp://` on the
/// command line; SFTPBackend's `SFTPEndpoint` runs it.
public struct SFTPSpec: ServerSpec, Equatable {
    public var host: String
    public var port: Int?
    /// nil: the name of the user running plugsync.
    public var username: String?
    /// A password login (or the key's passphrase, with `keyFile`).
    public var password: ServerPassword = .none
    /// The private key; nil tries ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
    public var keyFile: String?
    /// nil: ~/.ssh/known_hosts.
    public var knownHosts: String?
    /// Relative to the login folder.
    public var directory = ""

    public init(host: String) { self.host = host }

    public var key: String { "sftp" }

    /// An IPv6 address in brackets, as in a URL.
    private var server: String { host.contains(":") ? "[\(host)]" : host }

    public var summary: String {
        let user = username.map { "\($0)@" } ?? ""
        let port = port.map { ":\($0)" } ?? ""
        return "sftp://\(user)\(server)\(port)/\(directory)"
    }

    /// SFTP reads exact times every run: nothing to keep.
    public var remembersBetweenRuns: Bool { false }

    static let kind = ServerKind(
        keys: ["sftp"], schemes: ["sftp://"],
        fieldKeys: [
            "server", "username", "password", "password_file", "password_env", "key_file", "known_hosts", "directory",
        ],
        parse: { _, node, field, parser in try parser.parseSFTP(node, field: field) },
        parseURL: { text, scheme in
            let (user, host, port, directory) = try EndpointSyntax.parseServerURL(
                text, scheme: scheme, passwordFrom: "key_file, password_file or password_env in the definitions file")
            var sftp = SFTPSpec(host: host)
            sftp.port = port
            sftp.username = user
            sftp.directory = directory
            return sftp
        },
        translate: { translate($0, role: $1) })

    public func fields(_ scalar: (String) -> String) -> [(String, String?)] {
        [("server", scalar(server + (port.map { ":\($0)" } ?? ""))), ("username", username.map(scalar))]
            + DefinitionEmitter.passwordFields(password, scalar)
            + [
                ("key_file", keyFile.map(scalar)), ("known_hosts", knownHosts.map(scalar)),
                ("directory", directory.isEmpty ? nil : scalar(directory)),
            ]
    }

    public func resolve(fileCheck: FileCheck?, role: String, connections: Int) throws -> ResolvedEndpoint {
        let endpoint = SFTPEndpoint(options: try options(role: role), directory: directory, connections: connections)
        do { try endpoint.connect() } catch { throw Self.translate(error, role: role) }
        let excluded = try ServerKind.readFileCheck(
            fileCheck, directory: directory, display: endpoint.displayName, role: role,
            read: { try endpoint.contents(of: $0, limit: $1) }, translate: { Self.translate($0, role: role) })
        return ResolvedEndpoint(endpoint: endpoint, root: summary, excluded: excluded)
    }

    func options(role: String) throws -> SFTPOptions {
        // The agent, started by systemd as root, has no HOME: the user's entry says where it is.
        let home = getenv("HOME").map { String(cString: $0) } ?? Self.homeFolder()
        func expanded(_ path: String) -> String { path.hasPrefix("~/") ? home + path.dropFirst(1) : path }
        var options = SFTPOptions(
            host: host, port: port, username: username ?? Self.currentUser(),
            knownHosts: expanded(knownHosts ?? "~/.ssh/known_hosts"))
        options.password = try Secrets.password(password, role: role)
        if let keyFile {
            let path = expanded(keyFile)
            guard access(path, R_OK) == 0 else {
                throw UsageError("the \(role)'s key_file \(path): \(String(cString: strerror(errno)))")
            }
            options.keyFile = path
        } else if options.password == nil {
            // As ssh does: the first of the usual keys that is there.
            options.keyFile = ["id_ed25519", "id_ecdsa", "id_rsa"].map { home + "/.ssh/" + $0 }.first {
                access($0, R_OK) == 0
            }
        }
        if let text = getenv("PLUGSYNC_FTP_TIMEOUT").map({ String(cString: $0) }), let seconds = Int(text), seconds > 0
        {
            options.stallTimeout = seconds
            options.connectTimeout = min(options.connectTimeout, seconds)
        }
        return options
    }

    private static func homeFolder() -> String {
        guard let entry = getpwuid(geteuid()), let folder = entry.pointee.pw_dir else { return "" }
        return String(cString: folder)
    }

    private static func currentUser() -> String {
        guard let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name else { return "" }
        return String(cString: name)
    }

    /// An unreachable server refuses the run (exit 3, like an absent drive); a host key that is
    /// unknown or changed, or a refused login, is a configuration error (exit 2).
    public static func translate(_ error: Error, role: String) -> Error {
        guard let error = error as? SFTPError else { return error }
        switch error.kind {
        case .connection:
            return PreconditionError("the \(role) server cannot be reached: \(error.message)")
        case .hostKey:
            return UsageError("the \(role) server: \(error.message)")
        case .login:
            return UsageError(
                "the \(role) server refused the login: \(error.message) (check username, key_file and password)")
        default:
            return UsageError("the \(role) server: \(error.message)")
        }
    }
}

extension DefinitionsParser {
    func parseSFTP(_ node: Node, field: String) throws -> SFTPSpec {
        guard case .mapping(let map) = node.kind else {
            throw error(node, field, "must be a mapping (server, username, key_file or password…, directory)")
        }
        let fields = try Fields(map, prefix: field + ".", parser: self)
        var (host, port) = try parseServer(node, fields)
        // An IPv6 address is kept without its brackets (they are put back where needed).
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var sftp = SFTPSpec(host: host)
        sftp.port = port
        sftp.username = try fields.string("username")
        if let password = try parsePassword(fields) { sftp.password = password }
        for key in ["key_file", "known_hosts"] {
            guard let path = try fields.string(key) else { continue }
            guard path.hasPrefix("/") || path.hasPrefix("~/") else {
                throw fields.invalid(key, "\"\(path)\" must be an absolute path (or start with ~/)")
            }
            if key == "key_file" { sftp.keyFile = path } else { sftp.knownHosts = path }
        }
        if let directory = try fields.string("directory") {
            sftp.directory = try relativeDirectory(directory, fields: fields, key: "directory")
        }
        try fields.finish(allowed: SFTPSpec.kind.fieldKeys)
        return sftp
    }
}
