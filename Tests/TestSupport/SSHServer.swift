import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A real OpenSSH server (SFTP only) on 127.0.0.1 for a test, run by `Tests/Fixtures/sshd-server`.
///
///     let server = try SSHServer.start()      // skips (or fails under CI=true) when it cannot run
///     defer { server.stop() }
///
/// It logs in `user` with the key `keyFile` or with `password`; its host key is in `knownHosts`
/// (`knownHosts + ".changed"` holds another key under the same name). Files land under `home`,
/// the login folder, owned by `user`. Needs root (sshd switches to the login user).
public final class SSHServer {
    public let host = "127.0.0.1"
    public let port: Int
    public let user: String
    public let password: String
    public let keyFile: String
    public let knownHosts: String
    /// The login folder, as a real path.
    public let home: String
    private var running = true

    init(values: [String: String]) throws {
        guard let port = values["PORT"].flatMap({ Int($0) }), let user = values["USER"],
            let password = values["PASSWORD"], let key = values["KEY"], let known = values["KNOWN_HOSTS"],
            let home = values["HOME"]
        else {
            throw SpawnError(description: "sshd-server start printed no PORT/USER/KEY/KNOWN_HOSTS/HOME: \(values)")
        }
        self.port = port
        self.user = user
        self.password = password
        self.keyFile = key
        self.knownHosts = known
        self.home = home
    }

    public static var script: String {
        let file = "\(#filePath)"
        let tests = file.split(separator: "/").dropLast(2).joined(separator: "/")
        return "/" + tests + "/Fixtures/sshd-server"
    }

    public static func unavailableReason() -> String? {
        if getuid() != 0 { return "needs root: the SSH test server logs in a local user (uid is \(getuid()))" }
        for need in ["/usr/sbin/sshd", "/usr/bin/ssh-keygen"] where access(need, X_OK) != 0 {
            return "needs \(need) for the SSH test server (run scripts/setup)"
        }
        return nil
    }

    public static func start() throws -> SSHServer {
        if let reason = unavailableReason() {
            if getenv("CI").map({ String(cString: $0) }) == "true" {
                throw SpawnError(description: "cannot run in CI: \(reason)")
            }
            print("skipping: \(reason)")
            throw XCTSkip(reason)
        }
        let out = "/tmp/plugsync-sshd-start-\(getpid()).out"
        let err = "/tmp/plugsync-sshd-start-\(getpid()).err"
        defer {
            unlink(out)
            unlink(err)
        }
        let status = try spawnAndWait("/bin/bash", [script, "start"], stdout: out, stderr: err)
        guard status == 0 else {
            throw SpawnError(description: "sshd-server start failed (\(status)): \(FTPServer.readText(err))")
        }
        var values: [String: String] = [:]
        for line in FTPServer.readText(out).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return try SSHServer(values: values)
    }

    /// Stops the server. Idempotent; also on deinit.
    public func stop() {
        guard running else { return }
        running = false
        _ = try? spawnAndWait("/bin/bash", [Self.script, "stop"], stdout: "/dev/null", stderr: "/dev/null")
    }

    deinit { stop() }
}
