import SFTPBackend
import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// Turns an `sftp:` endpoint of the definitions file into connection options, and SFTP failures
/// into the errors the command line maps to exit codes.
enum SFTPSettings {
    static func options(_ spec: SFTPSpec, role: String) throws -> SFTPOptions {
        // The agent, started by systemd as root, has no HOME: the user's entry says where it is.
        let home = getenv("HOME").map { String(cString: $0) } ?? homeFolder()
        func expanded(_ path: String) -> String { path.hasPrefix("~/") ? home + path.dropFirst(1) : path }
        let knownHosts = expanded(spec.knownHosts ?? "~/.ssh/known_hosts")
        var options = SFTPOptions(
            host: spec.host, port: spec.port, username: spec.username ?? currentUser(), knownHosts: knownHosts)
        options.password = try Secrets.password(spec.password, role: role)
        if let keyFile = spec.keyFile {
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

    /// Runs `body`, turning an unreachable server into a refusal (exit 3, like an absent drive),
    /// and a host key that is unknown or changed, or a refused login, into a configuration
    /// error (exit 2).
    static func mapErrors<R>(role: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as SFTPError {
            throw mapped(error, role: role)
        }
    }

    static func mapped(_ error: Error, role: String) -> Error {
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
