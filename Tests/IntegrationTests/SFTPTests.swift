import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync run` with an `sftp:` endpoint, against OpenSSH's sshd on 127.0.0.1
/// (Tests/Fixtures/sshd-server): local to SFTP and back, a second run that copies nothing, and
/// host keys that are unknown or changed.
final class SFTPTests: IntegrationTestCase {
    var server: SSHServer!
    var folder = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        server = try SSHServer.start()
        folder = "sftp-it-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    override func tearDownWithError() throws {
        if let server {
            _ = try? shell("rm -rf \(quote(server.home + "/" + folder))")
            server.stop()
        }
        server = nil
        try super.tearDownWithError()
    }

    func sftp(directory: String, knownHosts: String? = nil, key: Bool = true) -> [String] {
        var lines = [
            "  sftp:", "    server: 127.0.0.1:\(server.port)", "    username: \(server.user)",
            "    known_hosts: '\(knownHosts ?? server.knownHosts)'", "    directory: '\(directory)'",
        ]
        lines.append(key ? "    key_file: '\(server.keyFile)'" : "    password_env: PLUGSYNC_TEST_SFTP_PW")
        return lines
    }

    func definition(_ name: String, source: [String], destination: [String]) -> String {
        let lines =
            ["  - name: \(name)", "    source:"] + source.map { "    " + $0 } + ["    destination:"]
            + destination.map { "    " + $0 }
        return Self.mirrorUnlessTyped(lines)
    }

    func run(_ name: String, _ more: String...) throws -> CommandResult {
        try plugsync(arguments: ["run", name] + more, environment: ["PLUGSYNC_TEST_SFTP_PW": server.password])
    }

    func testMirrorUpAndBack() throws {
        try write("src/a.txt", "alpha\n", mode: 0o640, mtime: FileTime(1_600_000_000))
        try write("src/sub/b.txt", "beta, a little longer\n")
        try write("src/sub/deeper/with space.txt", "gamma\n")
        try write("src/empty", "")
        try write("src/.plugsync-id", "laptop\n")
        try FileManager.default.createSymbolicLink(atPath: path("src/link"), withDestinationPath: "a.txt")
        try writeConfig(
            definition("up", source: ["  local: '\(path("src"))'"], destination: sftp(directory: folder + "/copy")),
            definition(
                "down", source: sftp(directory: folder + "/copy", key: false) + ["  file_check: .plugsync-id=^laptop$"],
                destination: ["  local: '\(path("back"))'"]),
            definition(
                "wrong-check", source: sftp(directory: folder + "/copy") + ["  file_check: .plugsync-id=^desktop$"],
                destination: ["  local: '\(path("elsewhere"))'"]),
            definition(
                "missing-check", source: sftp(directory: folder + "/copy") + ["  file_check: not-there=^x$"],
                destination: ["  local: '\(path("elsewhere"))'"]))

        let first = try run("up")
        XCTAssertEqual(first.status, 0, "\(first)")
        XCTAssertEqual(first.actions("Uploading").count, 6, "five files and the link\n\(first)")
        XCTAssertEqual(first.actions("Creating").count, 2, "\(first)")
        let remote = server.home + "/" + folder + "/copy"
        XCTAssertEqual(try String(contentsOfFile: remote + "/sub/deeper/with space.txt"), "gamma\n")
        var st = stat()
        XCTAssertEqual(stat(remote + "/a.txt", &st), 0)
        XCTAssertEqual(Int64(st.st_mtim.tv_sec), 1_600_000_000, "the file's time is kept")
        XCTAssertEqual(st.st_mode & 0o777, 0o640, "the file's mode is kept")

        let second = try run("up", "-v")  // the full report: a line for each file left as it is
        XCTAssertEqual(second.status, 0, "\(second)")
        XCTAssertEqual(
            second.actions.filter { !$0.hasPrefix("Skipping ") }, [], "a second run copies nothing\n\(second)")
        XCTAssertEqual(second.actions.count, 6, "\(second)")

        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: remote + "/link"), "a.txt")

        // A change, a link pointed elsewhere and a deletion reach the server; nothing is left
        // under a temporary name.
        try write("src/a.txt", "alpha, changed\n")
        try FileManager.default.removeItem(atPath: path("src/link"))
        try FileManager.default.createSymbolicLink(atPath: path("src/link"), withDestinationPath: "sub/deeper")
        try FileManager.default.removeItem(atPath: path("src/sub/b.txt"))
        let third = try run("up")
        XCTAssertEqual(third.status, 0, "\(third)")
        XCTAssertEqual(try String(contentsOfFile: remote + "/a.txt"), "alpha, changed\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: remote + "/sub/b.txt"), "\(third)")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: remote + "/link"), "sub/deeper")
        let leftovers = try shell("find \(quote(remote)) -name '.plugsync-tmp-*'")
        XCTAssertEqual(leftovers.trimmingCharacters(in: .whitespacesAndNewlines), "")

        // A File Check read from the server that does not hold refuses the run.
        let refused = try run("wrong-check")
        XCTAssertEqual(refused.status, 3, "\(refused)")
        XCTAssertTrue(refused.stderr.contains("File Check of the source failed"), "\(refused)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("elsewhere/a.txt")), "\(refused)")
        let missing = try run("missing-check")
        XCTAssertEqual(missing.status, 3, "\(missing)")
        XCTAssertTrue(missing.stderr.contains("not-there: file not found"), "\(missing)")

        // And back, logging in with the password this time; the File Check holds, and its file
        // is left out.
        let down = try run("down")
        XCTAssertEqual(down.status, 0, "\(down)")
        XCTAssertEqual(try String(contentsOfFile: path("back/a.txt")), "alpha, changed\n")
        XCTAssertEqual(try String(contentsOfFile: path("back/sub/deeper/with space.txt")), "gamma\n")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("back/empty"))).count, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("back/.plugsync-id")), "\(down)")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: path("back/link")), "sub/deeper")
        let again = try run("down", "-v")
        XCTAssertEqual(again.status, 0, "\(again)")
        XCTAssertEqual(
            again.actions.filter { !$0.hasPrefix("Skipping ") }, [], "a second run back copies nothing\n\(again)")
        XCTAssertEqual(again.actions.count, 4, "\(again)")
    }

    func testUnknownOrChangedHostKeyRefusesTheRun() throws {
        try write("src/a.txt", "alpha\n")
        let empty = path("known_hosts.empty")
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        try writeConfig(
            definition(
                "unknown", source: ["  local: '\(path("src"))'"],
                destination: sftp(directory: folder, knownHosts: empty)),
            definition(
                "changed", source: ["  local: '\(path("src"))'"],
                destination: sftp(directory: folder, knownHosts: server.knownHosts + ".changed")))
        for (name, words) in [("unknown", "is not in"), ("changed", "is not the one")] {
            let result = try run(name)
            XCTAssertEqual(result.status, 2, "\(result)")
            let lines = result.stderrLines.filter { $0.contains("host key") }
            XCTAssertEqual(lines.count, 1, "one line says why\n\(result)")
            XCTAssertTrue(lines.first?.contains(words) == true, "\(result)")
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: server.home + "/" + folder), "nothing was written\n\(result)")
        }
    }

    /// A server that takes the connection and never says a word (no SSH banner) is given up
    /// after the timeout: the run is refused, it does not hang.
    func testSilentServerRefusesTheRunAfterTheTimeout() throws {
        try write("src/a.txt", "alpha\n")
        // A listening socket nobody answers on: the kernel completes the connection.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(listener, pointer, length) == 0 && listen(listener, 8) == 0
                    && getsockname(listener, pointer, &length) == 0
            }
        }
        XCTAssertTrue(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        try writeConfig(
            definition(
                "silent", source: ["  local: '\(path("src"))'"],
                destination: [
                    "  sftp:", "    server: 127.0.0.1:\(port)", "    username: \(server.user)",
                    "    known_hosts: '\(server.knownHosts)'", "    key_file: '\(server.keyFile)'",
                    "    directory: '\(folder)'",
                ]))
        let started = Date()
        let result = try plugsync(arguments: ["run", "silent"], environment: ["PLUGSYNC_FTP_TIMEOUT": "2"])
        let seconds = Date().timeIntervalSince(started)
        XCTAssertEqual(result.status, 3, "\(result)")
        XCTAssertTrue(result.stderr.contains("cannot be reached"), "\(result)")
        XCTAssertLessThan(seconds, 20, "given up after the timeout\n\(result)")
    }

    /// A tree of many folders is listed on several connections at once: every file is seen
    /// (a second run copies nothing, the way back brings all of them), deletions reach every
    /// folder.
    func testManyFoldersListedOnSeveralConnections() throws {
        var files: [String] = []
        for top in 0..<6 {
            for sub in 0..<5 {
                let name = "src/t\(top)/s\(sub)/f.txt"
                try write(name, "\(top)-\(sub)\n")
                files.append(name)
            }
            try write("src/t\(top)/top.txt", "\(top)\n")
            files.append("src/t\(top)/top.txt")
        }
        try writeConfig(
            definition("up", source: ["  local: '\(path("src"))'"], destination: sftp(directory: folder + "/many")),
            definition("down", source: sftp(directory: folder + "/many"), destination: ["  local: '\(path("back"))'"]))
        let first = try run("up")
        XCTAssertEqual(first.status, 0, "\(first)")
        XCTAssertEqual(first.actions("Uploading").count, files.count, "\(first)")
        let second = try run("up", "-v")
        XCTAssertEqual(second.status, 0, "\(second)")
        XCTAssertEqual(second.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second)")
        XCTAssertEqual(second.actions.count, files.count, "\(second)")
        try FileManager.default.removeItem(atPath: path("src/t5/s4/f.txt"))
        let third = try run("up")
        XCTAssertEqual(third.status, 0, "\(third)")
        XCTAssertEqual(third.actions("Deleting").count, 1, "\(third)")
        let down = try run("down")
        XCTAssertEqual(down.status, 0, "\(down)")
        for name in files where name != "src/t5/s4/f.txt" {
            let back = "back/" + name.dropFirst(4)
            XCTAssertEqual(try String(contentsOfFile: path(back)), try String(contentsOfFile: path(name)), back)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("back/t5/s4/f.txt")))
    }
}
