import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A real FTP server on 127.0.0.1 for a test, run by `Tests/Fixtures/ftp-servers`.
///
///     let server = try FTPServer.start("proftpd")          // skips (or fails under CI=true)
///     defer { server.stop() }                               // when it cannot run here
///     // ftp://\(server.user):\(server.password)@\(server.host):\(server.port)/ serves server.root
///
/// Names (see the script's header for details):
/// - `vsftpd`: vsftpd 3.0.3, LIST only (no MLSD, no MFMT), sets times with `MDTM YYYYMMDDHHMMSS f`;
/// - `proftpd`: proftpd 1.3.8, MLSD/MLST and MFMT;
/// - `vsftpd-skew`, `proftpd-skew`: the same with a clock `skew` (3684) seconds ahead: a fresh
///   upload reads back as now + 3684 s, a time T set by MDTM/MFMT reads back as T;
/// - `vsftpd-tls` (explicit FTPS, AUTH TLS required) and `vsftpd-tlsi` (implicit FTPS): the
///   certificate is for 127.0.0.1, signed by a private CA in `caFile`;
/// - `vsftpd-ro`: logins work, uploads and every other write are refused (550);
/// - `pure-ftpd`: pure-ftpd 1.0.50, MLSD/MLST, MFMT and `SITE UTIME`, no `MDTM`-set form.
///
/// Each name has a fixed port, so different servers can run at once, but one name runs once per
/// machine: starting a name stops a server of that name that is still running. Login as
/// `user`/`password` (a local unix user the script creates); `root` is owned by that user, so
/// files a test puts there as root may need a `chown` before the server can replace them.
///
/// `start` needs root (the servers switch to the login user). When that or a tool is missing
/// it throws `XCTSkip` with the reason, printed like `requireRoot` does; under `CI=true` an
/// unmet need is a failure instead. A server that does not come up is always a failure.
public final class FTPServer {
    public let name: String
    public let host = "127.0.0.1"
    public let port: Int
    public let user: String
    public let password: String
    /// The folder the login lands in (`/` on the server), as a real path.
    public let root: String
    /// The CA file that signed a TLS server's certificate; nil for plain FTP.
    public let caFile: String?
    /// `none`, `explicit` or `implicit`.
    public let tls: String
    /// How many seconds the server's clock runs ahead (0, or 3684 for the `-skew` servers).
    public let skew: Int
    /// The server's transfer log (vsftpd's `OK UPLOAD:` lines, proftpd's and pure-ftpd's xferlog).
    public let transferLog: String
    private var running = true

    init(name: String, values: [String: String]) throws {
        guard let port = values["PORT"].flatMap({ Int($0) }), let user = values["USER"],
            let password = values["PASSWORD"], let root = values["ROOT"]
        else {
            throw SpawnError(description: "ftp-servers start \(name) printed no PORT/USER/PASSWORD/ROOT: \(values)")
        }
        self.name = name
        self.port = port
        self.user = user
        self.password = password
        self.root = root
        self.caFile = values["CA"].flatMap { $0.isEmpty ? nil : $0 }
        self.tls = values["TLS"] ?? "none"
        self.skew = values["SKEW"].flatMap { Int($0) } ?? 0
        self.transferLog = values["LOG"] ?? ""
    }

    /// `ftp://host:port` (`ftps://` for implicit TLS), without credentials.
    public var url: String { "\(tls == "implicit" ? "ftps" : "ftp")://\(host):\(port)" }

    /// The fixture script, found from this source file's place in the tree.
    public static var script: String {
        let file = "\(#filePath)"
        let tests = file.split(separator: "/").dropLast(2).joined(separator: "/")
        return "/" + tests + "/Fixtures/ftp-servers"
    }

    /// Why the servers cannot run on this machine, or nil when they can.
    public static func unavailableReason(_ name: String) -> String? {
        if getuid() != 0 { return "needs root: the FTP test servers log in a local user (uid is \(getuid()))" }
        var needs = ["/usr/sbin/vsftpd", "/usr/bin/openssl", "/usr/bin/setsid", "/usr/bin/ss"]
        if name.hasPrefix("proftpd") { needs.append("/opt/plugsync-proftpd/usr/sbin/proftpd") }
        if name == "pure-ftpd" {
            needs += ["/opt/plugsync-pure-ftpd/usr/sbin/pure-ftpd", "/opt/plugsync-pure-ftpd/usr/bin/pure-pw"]
        }
        if name.hasSuffix("-skew") {
            needs += ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/bin/gcc"]
        }
        if let missing = needs.first(where: { access($0, X_OK) != 0 && access($0, R_OK) != 0 }) {
            return "needs \(missing) for the \(name) test server (run scripts/setup)"
        }
        return nil
    }

    /// Starts server `name` serving `root` (default: a fresh folder of the script's state) and
    /// returns once it answers on 127.0.0.1. See the type's comment for skips and failures.
    public static func start(_ name: String, root: String? = nil) throws -> FTPServer {
        if let reason = unavailableReason(name) {
            if getenv("CI").map({ String(cString: $0) }) == "true" {
                throw SpawnError(description: "cannot run in CI: \(reason)")
            }
            print("skipping: \(reason)")
            throw XCTSkip(reason)
        }
        let out = "/tmp/plugsync-ftp-start-\(getpid())-\(name).out"
        let err = "/tmp/plugsync-ftp-start-\(getpid())-\(name).err"
        defer {
            unlink(out)
            unlink(err)
        }
        let status = try spawnAndWait(
            "/bin/bash", [script, "start", name] + (root.map { [$0] } ?? []), stdout: out, stderr: err)
        let text = readText(out)
        guard status == 0 else {
            throw SpawnError(description: "ftp-servers start \(name) failed (\(status)): \(readText(err))")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return try FTPServer(name: name, values: values)
    }

    /// Stops the server (TERM to its process group, KILL after 5 s). Idempotent; also on deinit.
    public func stop() {
        guard running else { return }
        running = false
        _ = try? spawnAndWait("/bin/bash", [Self.script, "stop", name], stdout: "/dev/null", stderr: "/dev/null")
    }

    deinit { stop() }

    /// A file's whole contents as text ("" when it cannot be read).
    public static func readText(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
