import CurlFTP
import FTPBackend
import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// An FTP or FTPS server directory: `ftp:` / `ftps:` in the definitions file; on the command
/// line `ftp://`, `ftps://` (implicit TLS, as curl and lftp read it) and `ftpes://` (explicit
/// TLS, `AUTH TLS`, as FileZilla names it). FTPBackend's `FTPEndpoint` runs it.
public struct FTPSpec: ServerSpec, Equatable {
    public enum TLS: String, Sendable, CaseIterable { case none, explicit, implicit }
    public enum ClockDiff: Sendable, Equatable {
        case auto
        case seconds(Int)
    }

    public var host: String
    public var port: Int?
    public var username: String?
    public var password: ServerPassword = .netrc
    public var directory = ""
    public var tls: TLS = .none
    public var passive = true
    public var clockDiff: ClockDiff = .auto
    public var caFile: String?

    public init(host: String) { self.host = host }

    /// Written back as `ftp:` with its `tls:` (`ftps:` reads as `ftp:` with `tls: explicit`).
    public var key: String { "ftp" }

    public var summary: String {
        let scheme = ["ftp", "ftpes", "ftps"][[TLS.none, .explicit, .implicit].firstIndex(of: tls)!]
        let user = username.map { "\($0)@" } ?? ""
        let port = port.map { ":\($0)" } ?? ""
        return "\(scheme)://\(user)\(host)\(port)/\(directory)"
    }

    /// Exact times read with MDTM and the server's clock are kept for the next run.
    public var remembersBetweenRuns: Bool { true }

    static let kind = ServerKind(
        keys: ["ftp", "ftps"], schemes: ["ftp://", "ftps://", "ftpes://"],
        fieldKeys: [
            "server", "username", "password", "password_file", "password_env", "directory", "tls", "passive",
            "clock_diff", "ca_file",
        ],
        parse: { key, node, field, parser in try parser.parseFTP(node, field: field, secure: key == "ftps") },
        parseURL: { text, scheme in
            let (user, host, port, directory) = try EndpointSyntax.parseServerURL(
                text, scheme: scheme, passwordFrom: "password_file or password_env in the definitions file, or ~/.netrc"
            )
            var ftp = FTPSpec(host: host)
            ftp.port = port
            ftp.username = user
            ftp.directory = directory
            ftp.tls = scheme == "ftps://" ? .implicit : scheme == "ftpes://" ? .explicit : .none
            return ftp
        },
        translate: { translate($0, role: $1) })

    public func fields(_ scalar: (String) -> String) -> [(String, String?)] {
        var fields: [(String, String?)] = [
            ("server", scalar(host + (port.map { ":\($0)" } ?? ""))), ("username", username.map(scalar)),
        ]
        fields += DefinitionEmitter.passwordFields(password, scalar)
        fields += [
            ("directory", directory.isEmpty ? nil : scalar(directory)),
            ("tls", tls == .none ? nil : tls.rawValue),
            ("passive", passive ? nil : "false"),
        ]
        if case .seconds(let seconds) = clockDiff { fields.append(("clock_diff", "\(seconds)")) }
        fields.append(("ca_file", caFile.map(scalar)))
        return fields
    }

    public func resolve(fileCheck: FileCheck?, role: String, connections: Int) throws -> ResolvedEndpoint {
        let endpoint = FTPEndpoint(
            options: try options(role: role), directory: directory, connections: connections,
            clock: clockDiff.engineValue)
        do { try endpoint.connect() } catch { throw Self.translate(error, role: role) }
        let excluded = try ServerKind.readFileCheck(
            fileCheck, directory: directory, display: endpoint.displayName, role: role,
            read: { try endpoint.contents(of: $0, limit: $1) }, translate: { Self.translate($0, role: role) })
        return ResolvedEndpoint(endpoint: endpoint, root: summary, excluded: excluded)
    }

    /// The client's options; the password is read now (never kept beyond the run), nil lets
    /// the client read ~/.netrc.
    func options(role: String) throws -> FTPOptions {
        var options = FTPOptions(host: host, port: port, username: username ?? "")
        options.password = try Secrets.password(password, role: role)
        options.tls = FTPOptions.TLS(rawValue: tls.rawValue) ?? .none
        options.passive = passive
        options.caFile = caFile
        // Tests (and impatient users) shorten the 60 s reply and stall timeout: whole seconds.
        if let text = getenv("PLUGSYNC_FTP_TIMEOUT").map({ String(cString: $0) }), let seconds = Int(text),
            seconds > 0
        {
            options.responseTimeout = seconds
            options.connectTimeout = min(options.connectTimeout, seconds)
        }
        return options
    }

    /// An unreachable server refuses the run (exit 3, like an absent drive); a refused login or
    /// a TLS failure is a configuration error (exit 2).
    public static func translate(_ error: Error, role: String) -> Error {
        guard let error = error as? FTPError else {
            if let refused = error as? ClockProbeRefused { return PreconditionError(refused.message) }
            return error
        }
        switch error.kind {
        case .connection, .interrupted:
            return PreconditionError("the \(role) server cannot be reached: \(error.message)")
        case .login:
            return UsageError("the \(role) server refused the login: \(error.message) (check username and password)")
        case .tls:
            return UsageError(
                "TLS with the \(role) server failed: \(error.message) (check tls: and ca_file:, or the server's certificate)"
            )
        default:
            return UsageError("the \(role) server: \(error.message)")
        }
    }
}

extension FTPSpec.ClockDiff {
    var engineValue: FTPEndpoint.ClockDifference {
        switch self {
        case .auto: return .auto
        case .seconds(let seconds): return .seconds(Int64(seconds))
        }
    }
}

extension DefinitionsParser {
    func parseFTP(_ node: Node, field: String, secure: Bool) throws -> FTPSpec {
        guard case .mapping(let map) = node.kind else {
            throw error(node, field, "must be a mapping (server, username, password…, directory)")
        }
        let fields = try Fields(map, prefix: field + ".", parser: self)
        let (host, port) = try parseServer(node, fields)
        var ftp = FTPSpec(host: host)
        ftp.port = port
        ftp.username = try fields.string("username")
        if let password = try parsePassword(fields) { ftp.password = password }
        if let directory = try fields.string("directory") {
            ftp.directory = try relativeDirectory(directory, fields: fields, key: "directory")
        }
        ftp.tls = secure ? .explicit : .none
        if let tls = try fields.string("tls") {
            guard let value = FTPSpec.TLS(rawValue: tls) else {
                throw fields.invalid("tls", "\"\(tls)\" is not one of none, explicit, implicit")
            }
            ftp.tls = value
        }
        ftp.passive = try fields.bool("passive") ?? true
        if let clock = try fields.string("clock_diff") {
            if clock == "auto" {
                ftp.clockDiff = .auto
            } else if let seconds = Int(clock) {
                // A year either way is far beyond any real clock or time zone, and keeps the time
                // arithmetic of a run from overflowing.
                guard seconds.magnitude <= 366 * 86_400 else {
                    throw fields.invalid("clock_diff", "\"\(clock)\" is more than a year (31622400 seconds)")
                }
                ftp.clockDiff = .seconds(seconds)
            } else {
                throw fields.invalid("clock_diff", "\"\(clock)\" is neither auto nor a number of seconds")
            }
        }
        if let ca = try fields.string("ca_file") {
            guard ca.hasPrefix("/") else { throw fields.invalid("ca_file", "\"\(ca)\" must be an absolute path") }
            ftp.caFile = ca
        }
        try fields.finish(allowed: FTPSpec.kind.fieldKeys)
        return ftp
    }
}
