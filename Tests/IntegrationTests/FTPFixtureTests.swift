import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Checks the FTP test servers themselves (Tests/Fixtures/ftp-servers) with curl, so that a
/// broken fixture fails here, loudly, rather than as a puzzling plugsync failure elsewhere.
final class FTPFixtureTests: XCTestCase {
    struct Curl {
        var status: Int32
        var stdout: String
        var stderr: String
        /// The server's replies (`< 213 …` lines of `curl -v`), without the `< `.
        var replies: [String] {
            stderr.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("< ") }.map { String($0.dropFirst(2)) }
        }
    }

    var work = ""

    override func setUpWithError() throws {
        work = "/tmp/plugsync-ftpfixture-\(getpid())"
        _ = try spawnAndWait("/bin/mkdir", ["-p", work], stdout: "/dev/null", stderr: "/dev/null")
    }

    override func tearDownWithError() throws {
        _ = try spawnAndWait("/bin/rm", ["-rf", work], stdout: "/dev/null", stderr: "/dev/null")
    }

    func curl(_ server: FTPServer, _ path: String = "/", _ arguments: [String]) throws -> Curl {
        var options = ["-sS", "-v", "--max-time", "20", "-u", "\(server.user):\(server.password)"]
        if let ca = server.caFile { options += ["--cacert", ca] }
        if server.tls == "explicit" { options.append("--ssl-reqd") }
        let out = work + "/curl.out"
        let err = work + "/curl.err"
        let status = try spawnAndWait(
            "/usr/bin/curl", options + arguments + [server.url + path], stdout: out, stderr: err)
        return Curl(status: status, stdout: FTPServer.readText(out), stderr: FTPServer.readText(err))
    }

    /// FEAT's feature lines, e.g. ["EPSV", "MDTM", "MFMT", "MLST modify*;…", "SIZE"].
    func features(_ server: FTPServer) throws -> [String] {
        let result = try curl(server, "/", ["--list-only", "-Q", "FEAT"])
        XCTAssertEqual(result.status, 0, "\(server.name): curl FEAT failed: \(result.stderr)")
        return result.replies.filter { $0.hasPrefix(" ") }.map { String($0.dropFirst()) }
    }

    func upload(_ server: FTPServer, _ name: String) throws -> Curl {
        let file = work + "/upload.txt"
        guard let handle = fopen(file, "w") else {
            throw HarnessError("cannot write \(file)")
        }
        fputs("plugsync fixture check\n", handle)
        fclose(handle)
        return try curl(server, "/" + name, ["-T", file])
    }

    /// The server's MDTM for `name` as seconds since the epoch (UTC), and the reply.
    func mdtm(_ server: FTPServer, _ name: String) throws -> (Int?, String) {
        let result = try curl(server, "/", ["--list-only", "-Q", "MDTM \(name)"])
        let reply = result.replies.first { $0.hasPrefix("213 ") || $0.hasPrefix("550 ") } ?? result.stderr
        let text = reply.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        let digits = Array(text.utf8).map { Int32($0) - 48 }
        guard reply.hasPrefix("213 "), digits.count == 14, digits.allSatisfy({ (0...9).contains($0) }) else {
            return (nil, reply)
        }
        func number(_ range: Range<Int>) -> Int32 { digits[range].reduce(0) { $0 * 10 + $1 } }
        var parts = tm()
        parts.tm_year = number(0..<4) - 1900
        parts.tm_mon = number(4..<6) - 1
        parts.tm_mday = number(6..<8)
        parts.tm_hour = number(8..<10)
        parts.tm_min = number(10..<12)
        parts.tm_sec = number(12..<14)
        return (Int(timegm(&parts)), reply)
    }

    func now() -> Int { Int(time(nil)) }

    /// Starts `name` on a fresh root; checks the root is owned by the login user.
    func start(_ name: String) throws -> FTPServer {
        let server = try FTPServer.start(name, root: work + "/" + name)
        addTeardownBlock { server.stop() }
        XCTAssertEqual(server.host, "127.0.0.1")
        var info = stat()
        XCTAssertEqual(stat(server.root, &info), 0, "\(name): root \(server.root) missing")
        XCTAssertEqual(getpwuid(info.st_uid).map { String(cString: $0.pointee.pw_name) }, server.user)
        return server
    }

    /// Upload, then MDTM: the file reads back at now + the server's skew (within a few seconds).
    func checkUploadAndClock(_ server: FTPServer, skew: Int) throws {
        let before = now()
        let put = try upload(server, "probe.txt")
        XCTAssertEqual(put.status, 0, "\(server.name): upload failed: \(put.stderr)")
        let (time, reply) = try mdtm(server, "probe.txt")
        guard let time else { return XCTFail("\(server.name): MDTM after upload: \(reply)") }
        XCTAssertTrue(
            (before + skew - 3...now() + skew + 1).contains(time),
            "\(server.name): MDTM \(time) is not now + \(skew) (now \(before))")
        let listing = try curl(server, "/", ["--list-only"])
        XCTAssertTrue(listing.stdout.contains("probe.txt"), "\(server.name): NLST: \(listing.stdout)")
    }

    func testVsftpdIsListOnlyAndSetsTimesWithMDTM() throws {
        let server = try start("vsftpd")
        let feat = try features(server)
        XCTAssertTrue(feat.contains("MDTM") && feat.contains("SIZE"), "FEAT: \(feat)")
        XCTAssertFalse(feat.contains { $0.hasPrefix("MLST") || $0 == "MFMT" }, "FEAT: \(feat)")
        try checkUploadAndClock(server, skew: 0)
        let mlsd = try curl(server, "/", ["-X", "MLSD"])
        XCTAssertTrue(mlsd.replies.contains { $0.hasPrefix("500 ") }, "MLSD should be unknown: \(mlsd.replies)")
        let set = try curl(server, "/", ["--list-only", "-Q", "MDTM 20210203040506 probe.txt"])
        XCTAssertEqual(set.status, 0, set.stderr)
        XCTAssertEqual(try mdtm(server, "probe.txt").0, 1_612_325_106)
    }

    func testProftpdHasMLSDAndMFMT() throws {
        let server = try start("proftpd")
        let feat = try features(server)
        XCTAssertTrue(feat.contains("MFMT") && feat.contains("MDTM"), "FEAT: \(feat)")
        XCTAssertTrue(feat.contains { $0.hasPrefix("MLST modify") }, "FEAT: \(feat)")
        try checkUploadAndClock(server, skew: 0)
        let set = try curl(server, "/", ["--list-only", "-Q", "MFMT 20210203040506 probe.txt"])
        XCTAssertTrue(set.replies.contains("213 Modify=20210203040506; probe.txt"), "\(set.replies)")
        XCTAssertEqual(try mdtm(server, "probe.txt").0, 1_612_325_106)
        let mlsd = try curl(server, "/", ["-X", "MLSD"])
        XCTAssertTrue(
            mlsd.stdout.contains("modify=20210203040506;") && mlsd.stdout.contains(" probe.txt"),
            "MLSD: \(mlsd.stdout)")
    }

    /// pure-ftpd: MLSD and MFMT, no `MDTM`-set form; its logins are fast (the fixture's SHA-512
    /// hash, not pure-pw's argon2id of about 3 s a login); its xferlog names each upload.
    func testPureFTPdHasMLSDAndMFMTAndLogsTransfers() throws {
        let server = try start("pure-ftpd")
        let feat = try features(server)
        XCTAssertTrue(feat.contains("MFMT") && feat.contains("MDTM") && feat.contains("MLSD"), "FEAT: \(feat)")
        let started = monotonicSeconds()
        try checkUploadAndClock(server, skew: 0)
        XCTAssertLessThan(monotonicSeconds() - started, 2.5, "three logins took over 2.5 s: a slow password hash?")
        let set = try curl(server, "/", ["--list-only", "-Q", "MFMT 20210203040506 probe.txt"])
        XCTAssertTrue(set.replies.contains { $0.hasPrefix("213 ") }, "\(set.replies)")
        XCTAssertEqual(try mdtm(server, "probe.txt").0, 1_612_325_106)
        let mdtmSet = try curl(server, "/", ["--list-only", "-Q", "MDTM 20200101000000 probe.txt"])
        XCTAssertNotEqual(mdtmSet.status, 0, "pure-ftpd took the MDTM-set form: \(mdtmSet.replies)")
        XCTAssertEqual(try mdtm(server, "probe.txt").0, 1_612_325_106)
        let mlsd = try curl(server, "/", ["-X", "MLSD"])
        XCTAssertTrue(
            mlsd.stdout.contains("modify=20210203040506;") && mlsd.stdout.contains(" probe.txt"),
            "MLSD: \(mlsd.stdout)")
        let log = FTPServer.readText(server.transferLog)
        XCTAssertTrue(
            log.split(separator: "\n").contains { $0.hasSuffix(" c") && $0.contains("/probe.txt b _ i ") },
            "no upload of probe.txt in \(server.transferLog): \(log)")
    }

    func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// A skewed server: fresh uploads read back 3684 s ahead, a time that is set reads back as
    /// set (the disk holds it 3684 s earlier, as on a host whose clock runs ahead).
    func checkSkew(_ name: String, setCommand: String) throws {
        let server = try start(name)
        XCTAssertEqual(server.skew, 3684)
        try checkUploadAndClock(server, skew: 3684)
        let set = try curl(server, "/", ["--list-only", "-Q", "\(setCommand) 20210203040506 probe.txt"])
        XCTAssertEqual(set.status, 0, set.stderr)
        XCTAssertEqual(try mdtm(server, "probe.txt").0, 1_612_325_106)
        var info = stat()
        XCTAssertEqual(stat(server.root + "/probe.txt", &info), 0)
        XCTAssertEqual(Int(info.st_mtim.tv_sec), 1_612_325_106 - 3684, "\(name): mtime on disk")
    }

    func testVsftpdSkewRunsAnHourAhead() throws { try checkSkew("vsftpd-skew", setCommand: "MDTM") }

    func testProftpdSkewRunsAnHourAhead() throws { try checkSkew("proftpd-skew", setCommand: "MFMT") }

    func testExplicitTLSWithThePrivateCA() throws {
        let server = try start("vsftpd-tls")
        let ca = try XCTUnwrap(server.caFile)
        XCTAssertEqual(server.tls, "explicit")
        XCTAssertTrue(server.url.hasPrefix("ftp://"))
        try checkUploadAndClock(server, skew: 0)
        XCTAssertTrue(try curl(server, "/", ["--list-only"]).replies.contains { $0.hasPrefix("234 ") }, "no AUTH reply")
        // Without the CA the certificate is refused; without TLS the login is refused.
        let plainArgs = ["-sS", "--max-time", "20", "-u", "\(server.user):\(server.password)", "--list-only"]
        let noCA = try spawnAndWait(
            "/usr/bin/curl", plainArgs + ["--ssl-reqd", server.url + "/"], stdout: "/dev/null", stderr: "/dev/null")
        XCTAssertEqual(noCA, 60, "curl without --cacert \(ca) should fail certificate verification")
        let noTLS = try spawnAndWait(
            "/usr/bin/curl", plainArgs + [server.url + "/"], stdout: "/dev/null", stderr: "/dev/null")
        XCTAssertNotEqual(noTLS, 0, "a login without TLS should be refused")
    }

    func testImplicitTLS() throws {
        let server = try start("vsftpd-tlsi")
        XCTAssertNotNil(server.caFile)
        XCTAssertEqual(server.tls, "implicit")
        XCTAssertTrue(server.url.hasPrefix("ftps://"))
        try checkUploadAndClock(server, skew: 0)
    }

    func testReadOnlyServerRefusesUploads() throws {
        let server = try start("vsftpd-ro")
        let listing = try curl(server, "/", ["--list-only"])
        XCTAssertEqual(listing.status, 0, "login and listing should work: \(listing.stderr)")
        let put = try upload(server, "probe.txt")
        XCTAssertNotEqual(put.status, 0)
        XCTAssertTrue(put.replies.contains { $0.hasPrefix("550 ") }, "\(put.replies)")
        var info = stat()
        XCTAssertNotEqual(stat(server.root + "/probe.txt", &info), 0, "the upload reached the disk")
    }

    func testStopFreesThePortAndInfoReportsIt() throws {
        let server = try start("vsftpd")
        let out = work + "/info.out"
        XCTAssertEqual(
            try spawnAndWait("/bin/bash", [FTPServer.script, "info", "vsftpd"], stdout: out, stderr: "/dev/null"), 0)
        XCTAssertTrue(FTPServer.readText(out).contains("PORT=\(server.port)\n"))
        server.stop()
        XCTAssertNotEqual(
            try spawnAndWait("/bin/bash", [FTPServer.script, "info", "vsftpd"], stdout: out, stderr: "/dev/null"), 0)
        XCTAssertNotEqual(try curl(server, "/", ["--list-only"]).status, 0, "still answering after stop")
    }
}
