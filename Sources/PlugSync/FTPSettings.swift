import CurlFTP
import FTPBackend
import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// Turns an `ftp:` endpoint of the definitions file into client options, and FTP failures into
/// the errors the command line maps to exit codes.
enum FTPSettings {
    static func options(_ spec: FTPSpec, role: String) throws -> FTPOptions {
        var options = FTPOptions(host: spec.host, port: spec.port, username: spec.username ?? "")
        options.password = try password(spec.password, role: role)
        options.tls = FTPOptions.TLS(rawValue: spec.tls.rawValue) ?? .none
        options.passive = spec.passive
        options.caFile = spec.caFile
        // Tests (and impatient users) shorten the 60 s reply and stall timeout: whole seconds.
        if let text = getenv("PLUGSYNC_FTP_TIMEOUT").map({ String(cString: $0) }), let seconds = Int(text),
            seconds > 0
        {
            options.responseTimeout = seconds
            options.connectTimeout = min(options.connectTimeout, seconds)
        }
        return options
    }

    /// The password, read now (never stored in the definitions file's memory beyond the run);
    /// nil lets curl read ~/.netrc.
    static func password(_ password: FTPSpec.Password, role: String) throws -> String? {
        try Secrets.password(password, role: role)
    }

    /// Runs `body`, turning an unreachable server into a refusal (exit 3, like an absent drive)
    /// and a refused login or TLS failure into a configuration error (exit 2).
    static func mapErrors<R>(role: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as FTPError {
            throw mapped(error, role: role)
        }
    }

    static func mapped(_ error: Error, role: String) -> Error {
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
