import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync restore` from each kind of destination: a local folder, a drive (ext4, FAT) found by
/// its File Check as a run finds it, and FTP servers (vsftpd, proftpd). A file and a folder, now
/// and at a time between two versions, into the source and into another folder, with their
/// times back.
final class RestoreTests: IntegrationTestCase {
    /// 2026-10-01 12:00:00 UTC; runs are placed in time with `PLUGSYNC_NOW`.
    let base = 1_790_856_000
    /// The files' own times: even, as FAT keeps them (to 2 s), and over six months old, as an
    /// FTP server's LIST shows only their day.
    let when = 1_700_000_000
    var servers: [FTPServer] = []

    override func tearDownWithError() throws {
        for server in servers { server.stop() }
        servers = []
        try super.tearDownWithError()
    }

    /// `2026-10-01 12:30`, local time, as `--at` takes it.
    func minute(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        var text = [CChar](repeating: 0, count: 32)
        strftime(&text, text.count, "%Y-%m-%d %H:%M", &parts)
        return String(cString: text)
    }

    func seconds(_ relative: String) -> Int? { mtime(relative).map { Int($0 / 1_000_000_000) } }

    /// Three runs an hour apart with versions, then restores. `destination`: the definition's
    /// destination lines (indented under `destination:`); `environment`: for every command.
    func checkRestore(_ destination: [String], environment: [String: String] = [:]) throws {
        try write("src/doc/report.odt", "v1", mtime: FileTime(when))
        try write("src/doc/notes.txt", "notes", mtime: FileTime(when + 6))
        try write("src/doc/sub/deep.txt", "deep", mtime: FileTime(when + 10))
        try write("src/other.txt", "other", mtime: FileTime(when))
        try writeConfig(
            Self.mirrorUnlessTyped(
                ["  - name: m", "    source:", "      local: '\(path("src"))'", "    destination:"]
                    + destination.map { "      " + $0 } + ["    versions: {}"]))
        func run(at seconds: Int) throws {
            var variables = environment
            variables["PLUGSYNC_NOW"] = "\(seconds)"
            let result = try plugsync(arguments: ["run", "m"], environment: variables)
            XCTAssertEqual(result.status, 0, "\(result)")
        }
        func restore(_ arguments: String...) throws -> CommandResult {
            try plugsync(arguments: ["restore", "m"] + arguments, environment: environment)
        }
        try run(at: base)
        try write("src/doc/report.odt", "v2-", mtime: FileTime(when + 100))
        try run(at: base + 3600)
        try write("src/doc/report.odt", "v3--", mtime: FileTime(when + 200))
        try remove("src/doc/notes.txt")
        try run(at: base + 7200)

        // A deleted file, into the source: its newest version, with its time.
        let dry = try restore("doc/notes.txt", "--dry-run")
        XCTAssertEqual(dry.status, 0, "\(dry)")
        XCTAssertFalse(exists("src/doc/notes.txt"), "a dry run restores nothing")
        let deleted = try restore("doc/notes.txt")
        XCTAssertEqual(deleted.status, 0, "\(deleted)")
        XCTAssertEqual(read("src/doc/notes.txt"), "notes")
        XCTAssertEqual(seconds("src/doc/notes.txt"), when + 6, "its time comes back\n\(deleted)")

        // A file as it was between the first and the second run: not over the newer one unless
        // --force.
        let early = minute(base + 1800)
        let kept = try restore("doc/report.odt", "--at", early)
        XCTAssertEqual(kept.status, 0, "\(kept)")
        XCTAssertTrue(
            kept.lines.contains(action("Skipping", "target file is newer; --force replaces it", "doc/report.odt")),
            "\(kept)")
        XCTAssertEqual(read("src/doc/report.odt"), "v3--")
        let forced = try restore("doc/report.odt", "--at", early, "--force")
        XCTAssertEqual(forced.status, 0, "\(forced)")
        XCTAssertEqual(read("src/doc/report.odt"), "v1")
        XCTAssertEqual(seconds("src/doc/report.odt"), when, "\(forced)")

        // The folder as it was between the second and the third run, into another folder.
        let folder = try restore("doc", "--at", minute(base + 5400), "--to", path("then"))
        XCTAssertEqual(folder.status, 0, "\(folder)")
        XCTAssertEqual(read("then/doc/report.odt"), "v2-")
        XCTAssertEqual(seconds("then/doc/report.odt"), when + 100, "\(folder)")
        XCTAssertEqual(read("then/doc/notes.txt"), "notes")
        XCTAssertEqual(read("then/doc/sub/deep.txt"), "deep")
        XCTAssertEqual(seconds("then/doc/sub/deep.txt"), when + 10, "\(folder)")
        XCTAssertFalse(exists("then/other.txt"))

        // The folder now: the current copies, and the deleted file's newest version.
        let now = try restore("doc", "--to", path("now"))
        XCTAssertEqual(now.status, 0, "\(now)")
        XCTAssertEqual(read("now/doc/report.odt"), "v3--")
        XCTAssertEqual(seconds("now/doc/report.odt"), when + 200, "\(now)")
        XCTAssertEqual(read("now/doc/notes.txt"), "notes")
        XCTAssertEqual(read("now/doc/sub/deep.txt"), "deep")
        XCTAssertEqual(now.lines.filter { $0.hasPrefix("Restoring ") }.count, 3, "\(now)")

        let nothing = try restore("no-such.txt")
        XCTAssertEqual(nothing.status, 1, "\(nothing)")
    }

    func testRestoreFromAFolder() throws {
        try checkRestore(["local: '\(path("dst"))'"])
    }

    /// A drive found by its File Check alone (`device: {directory: …}`), as a run finds it.
    func checkRestoreFromDrive(kind: String) throws {
        try requireLoopDrives([kind])
        let drive = try makeLoopDrive("restore" + kind, kind: kind, megabytes: 32)
        let id = "restore-\(kind)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try id.appending("\n").write(toFile: drive.mount + "/.plugsync-id", atomically: false, encoding: .utf8)
        try checkRestore(["device:", "  directory: backup", "file_check: '.plugsync-id=^\(id)$'"])
        XCTAssertEqual(
            try String(contentsOfFile: drive.mount + "/backup/doc/report.odt", encoding: .utf8), "v3--",
            "restoring changes nothing on the drive")
        XCTAssertNil(try fsckLoopDrive(drive))
    }

    func testRestoreFromAnExt4Drive() throws { try checkRestoreFromDrive(kind: "ext4") }
    func testRestoreFromAFatDrive() throws { try checkRestoreFromDrive(kind: "fat") }

    func checkRestoreFromServer(_ name: String) throws {
        try requireRoot("the FTP test servers bind ports and log in local users")
        let root = path("server")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let server = try FTPServer.start(name, root: root)
        servers.append(server)
        try checkRestore(
            [
                "ftp:", "  server: 127.0.0.1:\(server.port)", "  username: \(server.user)",
                "  password_env: PLUGSYNC_TEST_FTP_PW", "  directory: www",
            ], environment: ["PLUGSYNC_TEST_FTP_PW": server.password])
        XCTAssertEqual(try String(contentsOfFile: root + "/www/doc/report.odt", encoding: .utf8), "v3--")
    }

    func testRestoreFromVsftpd() throws { try checkRestoreFromServer("vsftpd") }
    func testRestoreFromProftpd() throws { try checkRestoreFromServer("proftpd") }
}
