import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `verify: true` with an FTP destination: each upload is downloaded again under its temporary
/// name and compared with what was sent before it is renamed into place.
extension FTPTests {
    func testVerifyOnVsftpd() throws { try verifyOnServer("vsftpd") }
    func testVerifyOnProftpd() throws { try verifyOnServer("proftpd") }

    /// A clean run with verify (and versions) says what a run without says; then a server whose
    /// storage returns a wrong byte for one file: that file fails, its old copy stays under its
    /// name and is not versioned, the others are uploaded.
    private func verifyOnServer(_ name: String) throws {
        try mountCorrupting(path("backing"), at: path("server"), pattern: "*bad*", serverCache: true)
        let server = try start(name, folder: "server")
        defer { server.stop() }  // before the mount goes at the test's end
        try write("src/a.txt", "alpha\n")
        try write("src/big.bin", randomData(2 << 20, seed: 3))
        try write("src/sub/c.txt", "charlie\n")
        try writeConfig(
            definition(
                "up", source: local(path("src")), destination: ftp(server, directory: "www"),
                ["type: mirror", "verify: true", "versions: {}"]))
        let environment = ["PLUGSYNC_TEST_FTP_PW": server.password]
        let first = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(first.status, 0, "\(first)")
        XCTAssertEqual(first.stderr, "", "\(first)")
        XCTAssertEqual(first.actions("Uploading").count, 3, "\(first)")
        try write("src/big.bin", randomData((2 << 20) + 1, seed: 4))
        let second = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(second.status, 0, "\(second)")
        XCTAssertEqual(
            second.actions,
            [
                action("Versioning", "remote file size differs", "big.bin"),
                action("Uploading", "remote file size differs", "big.bin"),
            ], "\(second)")
        XCTAssertTrue(filesEqual(path("src/big.bin"), path("backing/www/big.bin")))

        // Files whose name holds "bad" read back wrong from the server's disk.
        try write("backing/www/bad.txt", "the old file\n")
        try write("src/bad.txt", String(repeating: "the new file\n", count: 100))
        try write("src/newbad.txt", "a new file\n")
        try write("src/a.txt", "alpha, changed\n")
        let third = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(third.status, 1, "\(third)")
        XCTAssertEqual(
            third.stderrActions.sorted(),
            [
                action("Failed", "remote file not found; read back differs from what was sent", "newbad.txt"),
                action("Failed", "remote file size differs; read back differs from what was sent", "bad.txt"),
            ], "\(third)")
        XCTAssertTrue(
            third.stdoutActions.contains(action("Uploading", "remote file size differs", "a.txt")), "\(third)")
        XCTAssertEqual(third.stdoutActions.filter { $0.contains("bad") }, [], "\(third)")
        XCTAssertEqual(read("backing/www/bad.txt"), "the old file\n")
        XCTAssertFalse(exists("backing/www/newbad.txt"))
        XCTAssertEqual(read("backing/www/a.txt"), "alpha, changed\n")
        XCTAssertEqual(temporaryFiles(in: path("backing/www")), [])
    }
}

/// `verify: true` with an SFTP destination: each upload is downloaded again under its temporary
/// name before it is renamed into place.
extension SFTPTests {
    func testVerifyOnTheServer() throws {
        // The server's folder on storage that returns a wrong byte for files named *bad*.
        let remote = server.home + "/" + folder
        try mountCorrupting(path("backing"), at: remote, pattern: "*bad*", serverCache: true)
        try write("src/a.txt", "alpha\n")
        try write("src/big.bin", randomData(2 << 20, seed: 5))
        try writeConfig(
            definition("up", source: ["  local: '\(path("src"))'"], destination: sftp(directory: folder + "/copy"))
                + "    verify: true\n    versions: {}\n")
        let environment = ["PLUGSYNC_TEST_SFTP_PW": server.password]
        let first = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(first.status, 0, "\(first)")
        XCTAssertEqual(first.stderr, "", "\(first)")
        XCTAssertTrue(filesEqual(path("src/big.bin"), path("backing/copy/big.bin")))

        try write("backing/copy/bad.txt", "the old file\n")
        try write("src/bad.txt", String(repeating: "the new file\n", count: 100))
        try write("src/a.txt", "alpha, changed\n")
        let second = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(second.status, 1, "\(second)")
        XCTAssertEqual(
            second.stderrActions,
            [action("Failed", "remote file size differs; read back differs from what was sent", "bad.txt")],
            "\(second)")
        XCTAssertTrue(
            second.stdoutActions.contains(action("Uploading", "remote file size differs", "a.txt")), "\(second)")
        XCTAssertEqual(read("backing/copy/bad.txt"), "the old file\n")
        XCTAssertEqual(read("backing/copy/a.txt"), "alpha, changed\n")
        XCTAssertEqual(temporaryFiles(in: path("backing/copy")), [])
    }
}
