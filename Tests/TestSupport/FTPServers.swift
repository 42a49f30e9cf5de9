#if canImport(Glibc)
    import Glibc
#endif

/// A test FTP server on 127.0.0.1, started by `Tests/Fixtures/ftp-servers` (root only).
///
/// Names: `vsftpd` (LIST only, sets times with the MDTM-set form), `proftpd` (MLSD, MFMT),
/// `vsftpd-skew` and `proftpd-skew` (clocks 3684 s ahead), `vsftpd-tls` (explicit FTPS with a
/// private CA: `caFile`), `vsftpd-tlsi` (implicit FTPS), `vsftpd-ro` (uploads refused).
/// Every server has its own port, so several can run at once; one instance per name.
public final class FTPServer {
    public let name: String
    public let host = "127.0.0.1"
    public let port: Int
    public let user: String
    public let password: String
    /// The folder the login lands in (files written there appear on the server).
    public let root: String
    /// The CA that signed a TLS server's certificate.
    public let caFile: String?
    private var running = true

    init(name: String, port: Int, user: String, password: String, root: String, caFile: String?) {
        self.name = name
        self.port = port
        self.user = user
        self.password = password
        self.root = root
        self.caFile = caFile
    }

    /// The fixture script, found from this source file's place in the tree.
    public static var script: String {
        let file = "\(#filePath)"
        let tests = file.split(separator: "/").dropLast(2).joined(separator: "/")
        return "/" + tests + "/Fixtures/ftp-servers"
    }

    /// Starts server `name` serving `root` and waits until it answers.
    public static func start(_ name: String, root: String) throws -> FTPServer {
        let out = "/tmp/plugsync-ftp-start-\(getpid()).out"
        let err = "/tmp/plugsync-ftp-start-\(getpid()).err"
        defer {
            unlink(out)
            unlink(err)
        }
        let status = try spawnAndWait("/bin/bash", [script, "start", name, root], stdout: out, stderr: err)
        let text = readText(out)
        guard status == 0 else {
            throw SpawnError(description: "ftp-servers start \(name) failed (\(status)): \(readText(err))")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let port = values["PORT"].flatMap({ Int($0) }), let user = values["USER"],
            let password = values["PASSWORD"]
        else { throw SpawnError(description: "ftp-servers start \(name) printed no PORT/USER/PASSWORD: \(text)") }
        let ca = values["CA"].flatMap { $0.isEmpty ? nil : $0 }
        return FTPServer(name: name, port: port, user: user, password: password, root: root, caFile: ca)
    }

    /// Stops the server (idempotent).
    public func stop() {
        guard running else { return }
        running = false
        _ = try? spawnAndWait("/bin/bash", [Self.script, "stop", name], stdout: "/dev/null", stderr: "/dev/null")
    }

    deinit { stop() }

    static func readText(_ path: String) -> String {
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
