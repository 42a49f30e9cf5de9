import CurlFTP
import Foundation
import LocalBackend
import SyncEngine
import SystemSupport
import TestSupport
import XCTest

@testable import FTPBackend

#if canImport(Glibc)
    import Glibc
#endif

/// FTP endpoints against real servers started on 127.0.0.1 (Tests/Fixtures/ftp-servers):
/// vsftpd (LIST only, the MDTM-set form), proftpd (MLSD, MFMT), pure-ftpd (MLSD, MFMT), a vsftpd
/// whose clock runs 3684 s ahead, FTPS, and a server that refuses uploads.
final class FTPTests: IntegrationTestCase {
    var servers: [FTPServer] = []

    override func tearDownWithError() throws {
        for server in servers { server.stop() }
        servers = []
        try super.tearDownWithError()
    }

    /// Starts `name` serving a fresh folder of this test; skips (or fails in CI) without root.
    /// `loggingCommands` makes a vsftpd log every command it gets (`commandsLogged`).
    /// `connectionsPerAddress` limits the connections the server takes from 127.0.0.1, `denied`
    /// lists commands a vsftpd refuses (550).
    func start(
        _ name: String, folder: String = "server", loggingCommands: Bool = false, connectionsPerAddress: Int? = nil,
        denied: [String] = []
    ) throws -> FTPServer {
        try requireRoot("the FTP test servers bind ports and log in local users")
        if loggingCommands { setenv("PLUGSYNC_FTP_LOG_PROTOCOL", "YES", 1) }
        if let connectionsPerAddress { setenv("PLUGSYNC_FTP_MAX_PER_IP", "\(connectionsPerAddress)", 1) }
        if !denied.isEmpty { setenv("PLUGSYNC_FTP_DENY", denied.joined(separator: ","), 1) }
        defer {  // read at start only
            unsetenv("PLUGSYNC_FTP_LOG_PROTOCOL")
            unsetenv("PLUGSYNC_FTP_MAX_PER_IP")
            unsetenv("PLUGSYNC_FTP_DENY")
        }
        let root = path(folder)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let server = try FTPServer.start(name, root: root)
        servers.append(server)
        return server
    }

    /// The lines of an `ftp:` endpoint for `server`, its password passed in the environment.
    /// `port` reaches the server through a proxy.
    func ftp(_ server: FTPServer, directory: String, port: Int? = nil, _ extra: [String] = []) -> [String] {
        var lines = [
            "  ftp:", "    server: 127.0.0.1:\(port ?? server.port)", "    username: \(server.user)",
            "    password_env: PLUGSYNC_TEST_FTP_PW", "    directory: '\(directory)'",
        ]
        if let ca = server.caFile {
            lines += ["    tls: \(server.name == "vsftpd-tlsi" ? "implicit" : "explicit")", "    ca_file: '\(ca)'"]
        }
        return lines + extra.map { "    " + $0 }
    }

    func definition(_ name: String, source: [String], destination: [String], _ extra: [String] = []) -> String {
        var lines = ["  - name: \(name)", "    source:"] + source.map { "    " + $0 }
        lines += ["    destination:"] + destination.map { "    " + $0 }
        lines += extra.map { "    " + $0 }
        return Self.mirrorUnlessTyped(lines)
    }

    func local(_ folder: String) -> [String] { ["  local: '\(folder)'"] }

    func run(_ name: String, _ server: FTPServer, _ more: String...) throws -> CommandResult {
        try plugsync(arguments: ["run", name] + more, environment: ["PLUGSYNC_TEST_FTP_PW": server.password])
    }

    /// Gives the server's files to its login user (the tests write them as root).
    func chownToServer(_ server: FTPServer) throws {
        _ = try shell("chown -R \(quote(server.user)) \(quote(server.root))")
    }

    func mtimeSeconds(_ file: String) -> Int64? {
        var st = stat()
        guard stat(file, &st) == 0 else { return nil }
        return Int64(st.st_mtim.tv_sec)
    }

    func clockDifference(_ result: CommandResult) -> Int? {
        for line in result.lines where line.hasPrefix("Clock time difference is ") {
            return Int(line.dropFirst("Clock time difference is ".count).split(separator: " ")[0])
        }
        return nil
    }

    // MARK: the FTP walkthrough of the design, upload

    func testUploadWalkthroughVsftpd() throws { try uploadWalkthrough("vsftpd", clock: 0) }
    func testUploadWalkthroughProftpd() throws { try uploadWalkthrough("proftpd", clock: 0) }
    func testUploadWalkthroughPureFTPd() throws { try uploadWalkthrough("pure-ftpd", clock: 0) }
    func testUploadWalkthroughSkewedVsftpd() throws { try uploadWalkthrough("vsftpd-skew", clock: 3684) }
    func testUploadWalkthroughSkewedProftpd() throws { try uploadWalkthrough("proftpd-skew", clock: 3684) }
    func testUploadWalkthroughExplicitFTPS() throws { try uploadWalkthrough("vsftpd-tls", clock: 0) }
    func testUploadWalkthroughImplicitFTPS() throws { try uploadWalkthrough("vsftpd-tlsi", clock: 0) }

    func uploadWalkthrough(_ name: String, clock: Int) throws {
        let server = try start(name)
        let site = server.root + "/www"
        let t = Int(Date().timeIntervalSince1970) - 7200
        try write("src/about.html", "about us\n", mtime: FileTime(t))
        try write("src/back.jpg", "JPEG bytes\n", mtime: FileTime(t, 400_000_000))
        try write("src/contact.html", "contact v2\n", mtime: FileTime(t + 300))
        try write("src/index.html", "<h1>index</h1>\n", mtime: FileTime(t))
        try write("src/notes.txt", "notes\n", mtime: FileTime(t))
        try write("src/sub/deep.txt", "deep\n", mtime: FileTime(t))
        // The remote side as in the FTP walkthrough: an orphan, an up-to-date file, an older one.
        try write("server/www/orphaned_file.txt", "orphan\n", mtime: FileTime(t))
        try write("server/www/back.jpg", "JPEG bytes\n", mtime: FileTime(t))
        try write("server/www/contact.html", "contact v1\n", mtime: FileTime(t))
        try write("server/www/notes.txt", "notes\n", mtime: FileTime(t))
        try write("server/www/sub/deep.txt", "deep\n", mtime: FileTime(t))
        try chownToServer(server)
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))

        // The full report (-v), with a line for the files left as they are too.
        let first = try run("up", server, "-v")
        assertExit(first, 0)
        assertNoCrash(first)
        XCTAssertTrue(
            first.lines.contains("Uploading temporary file to calculate server-client clock time difference."),
            "\(first)")
        let measured = try XCTUnwrap(clockDifference(first), "\(first)")
        XCTAssertLessThanOrEqual(abs(measured - clock), 2, "\(first)")
        assertActions(
            first,
            [
                action("Deleting", "remote file is orphaned", "orphaned_file.txt"),
                action("Uploading", "remote file not found", "about.html"),
                action("Skipping", "remote file is uptodate", "back.jpg"),
                action("Uploading", "remote file is older", "contact.html"),
                action("Uploading", "remote file not found", "index.html"),
                action("Skipping", "remote file is uptodate", "notes.txt"),
                action("Skipping", "remote file is uptodate", "sub/deep.txt"),
            ])
        XCTAssertFalse(first.stdout.contains(server.password) || first.stderr.contains(server.password))
        for file in ["about.html", "contact.html", "index.html", "back.jpg", "notes.txt", "sub/deep.txt"] {
            XCTAssertEqual(read("server/www/" + file), read("src/" + file), file)
            // The server holds the source's mtime (to the second), whatever its clock says.
            XCTAssertEqual(mtimeSeconds(site + "/" + file), mtimeSeconds(path("src/" + file)), file)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: site + "/orphaned_file.txt"))
        XCTAssertEqual(temporaryFiles(in: server.root), [], "no probe or temporary file is left behind")

        // A second run transfers nothing.
        let second = try run("up", server, "-v")
        assertExit(second, 0)
        XCTAssertEqual(second.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second)")
        XCTAssertEqual(second.actions.count, 6, "\(second)")

        // A same-size edit seconds after the upload, within the same minute: LIST shows the same
        // minute for old and new content, so only an exact time can tell; it must be uploaded.
        try write("src/notes.txt", "NOTES\n")
        try write("src/sub/deep.txt", "DEEP\n")
        let third = try run("up", server, "-v")
        assertExit(third, 0)
        assertActions(
            third,
            [
                action("Skipping", "remote file is uptodate", "about.html"),
                action("Skipping", "remote file is uptodate", "back.jpg"),
                action("Skipping", "remote file is uptodate", "contact.html"),
                action("Skipping", "remote file is uptodate", "index.html"),
                action("Uploading", "remote file is older", "notes.txt"),
                action("Uploading", "remote file is older", "sub/deep.txt"),
            ])
        XCTAssertEqual(read("server/www/notes.txt"), "NOTES\n")
        XCTAssertEqual(read("server/www/sub/deep.txt"), "DEEP\n")
    }

    // MARK: remembered exact times

    /// The MDTM reads of synchronized files (one argument; the MDTM-set form has two; the clock
    /// probe left out) in vsftpd's protocol log.
    func mdtmReads(_ log: String) -> Int {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.contains("\"MDTM /") && !$0.contains("-tmp-clock-") }.count
    }

    /// A LIST-only server gives minutes, so an unchanged tree would need one MDTM per file. The
    /// exact times a run set are remembered, and trusted only while the LIST line agrees with
    /// them and its minute was over before they were set: then a second run needs no MDTM, and a
    /// same-size edit made on the server afterwards (its LIST time moves) is still uploaded over.
    func testRememberedTimesSpareMDTMAndServerEditsAreStillSeen() throws {
        let server = try start("vsftpd", loggingCommands: true)
        let t = Int(Date().timeIntervalSince1970) - 7200
        for i in 0..<6 { try write("src/f\(i).txt", "file \(i)\n", mtime: FileTime(t + i)) }
        try write("src/new.txt", "recent\n")  // its minute is not over when it is uploaded
        try chownToServer(server)
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))
        let first = try run("up", server)
        assertExit(first, 0)
        XCTAssertEqual(first.actions.filter { $0.hasPrefix("Uploading ") }.count, 7, "\(first)")
        let memory = try XCTUnwrap(
            try? String(contentsOfFile: path("state/ftp-times/up.destination"), encoding: .utf8))
        // The header, the clock, its LIST zone measured, and 7 files.
        XCTAssertEqual(memory.split(separator: "\n").count, 10, memory)
        XCTAssertTrue(memory.contains("\nclock-zone\n"), memory)

        let before = mdtmReads(server.transferLog)
        let second = try run("up", server)
        assertExit(second, 0)
        XCTAssertEqual(second.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second)")
        // Only new.txt, whose minute was not over when its time was set, is asked for.
        XCTAssertEqual(mdtmReads(server.transferLog) - before, 1, "\(second)")

        // Someone rewrites f1.txt on the server: same size, the server's current time.
        try write("server/www/f1.txt", "FILE 1\n")
        try chownToServer(server)
        let third = try run("up", server)
        assertExit(third, 0)
        XCTAssertEqual(third.actions.filter { !$0.hasPrefix("Skipping ") }.count, 1, "\(third)")
        XCTAssertTrue(third.actions.contains { $0.hasPrefix("Uploading ") && $0.hasSuffix(" f1.txt") }, "\(third)")
        XCTAssertEqual(read("server/www/f1.txt"), "file 1\n")

        // A forgotten memory (or a foreign one) only costs MDTM commands.
        try "plugsync-ftp-times 1 elsewhere\n0 0 0 f0.txt\n".write(
            toFile: path("state/ftp-times/up.destination"), atomically: true, encoding: .utf8)
        let fourth = try run("up", server)
        assertExit(fourth, 0)
        XCTAssertEqual(fourth.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(fourth)")
    }

    /// The remembered times are written (a new file, fsync'd, renamed) only when a run learned
    /// something: a run that changed nothing leaves the file as it was.
    func testARunThatLearnsNothingLeavesTheRememberedTimesAsTheyWere() throws {
        let server = try start("vsftpd", loggingCommands: true)
        let t = Int(Date().timeIntervalSince1970) - 7200
        for i in 0..<3 { try write("src/f\(i).txt", "file \(i)\n", mtime: FileTime(t + i)) }
        try chownToServer(server)
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))
        let memory = path("state/ftp-times/up.destination")
        // Inode and change time in nanoseconds: a rewrite is a new file renamed over the old one.
        func stamp() throws -> [Int] {
            var info = stat()
            guard stat(memory, &info) == 0 else {
                _ = try XCTUnwrap(nil as Int?, "no remembered times at \(memory)")
                return []
            }
            return [Int(info.st_ino), info.st_ctim.tv_sec, info.st_ctim.tv_nsec]
        }
        // A remembered line: size, exact time (client clock) and when it was known, in seconds.
        func remembered(_ name: String) -> [Int]? {
            for line in (read("state/ftp-times/up.destination") ?? "").split(separator: "\n") {
                let fields = line.split(separator: " ", maxSplits: 3)
                if fields.count == 4, fields[3] == name { return fields[0..<3].compactMap { Int($0) } }
            }
            return nil
        }
        assertExit(try run("up", server), 0)
        let written = try stamp()
        let firstKnown = try XCTUnwrap(remembered("f1.txt"), "the first run did not remember f1.txt")
        XCTAssertEqual(Array(firstKnown.prefix(2)), [7, t + 1])
        let before = mdtmReads(server.transferLog)

        let second = try run("up", server)
        assertExit(second, 0)
        XCTAssertEqual(second.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second)")
        XCTAssertEqual(mdtmReads(server.transferLog) - before, 0, "\(second)")
        XCTAssertEqual(try stamp(), written, "a run that changed nothing rewrote \(memory)")

        // A same-size edit on the server: uploaded over, and its new exact time remembered.
        // Times are remembered in whole seconds: an upload within the first run's second would
        // remember exactly what that run did (and rightly write nothing), so the third run starts
        // in a later second, where its upload must leave a newer line for f1.txt.
        while Int(Date().timeIntervalSince1970) <= firstKnown[2] { usleep(20_000) }
        let thirdStarted = Int(Date().timeIntervalSince1970)
        try write("server/www/f1.txt", "FILE 1\n")
        try chownToServer(server)
        let third = try run("up", server)
        assertExit(third, 0)
        XCTAssertTrue(third.actions.contains { $0.hasPrefix("Uploading ") && $0.hasSuffix(" f1.txt") }, "\(third)")
        XCTAssertNotEqual(try stamp(), written, "the run that uploaded f1.txt did not save its time")
        let known = try XCTUnwrap(remembered("f1.txt"), "the run that uploaded f1.txt dropped its time")
        XCTAssertEqual(Array(known.prefix(2)), [7, t + 1], "f1.txt is remembered with its source's time")
        XCTAssertGreaterThanOrEqual(known[2], thirdStarted, "f1.txt is still remembered as the first run knew it")
    }

    /// A dry run changes nothing on the server: the clock difference and the way times are set
    /// come from the last run's measurement (kept with the remembered times), not from a probe.
    /// Without one (the first run ever), the probe is still uploaded and deleted.
    func testADryRunTakesTheLastRunsClockMeasurementAndUploadsNoProbe() throws {
        let server = try start("vsftpd-skew", loggingCommands: true)
        let t = Int(Date().timeIntervalSince1970) - 7200
        try write("src/a.txt", "a\n", mtime: FileTime(t))
        try chownToServer(server)
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))
        // The server's log outlives a test: count what this test adds to it.
        let before = commandsLogged("STOR ", by: server)
        let stores = { self.commandsLogged("STOR ", by: server) - before }

        let firstDry = try run("up", server, "--dry-run")
        assertExit(firstDry, 0)
        XCTAssertTrue(firstDry.stdout.contains("Clock time difference is 3684 seconds."), firstDry.stdout)
        XCTAssertEqual(stores(), 1, "with nothing remembered, the probe is uploaded")
        let first = try run("up", server)
        assertExit(first, 0)
        XCTAssertEqual(stores(), 3, "the probe and a.txt")

        try write("src/b.txt", "b\n", mtime: FileTime(t))
        let dry = try run("up", server, "--dry-run")
        assertExit(dry, 0)
        XCTAssertTrue(
            dry.stdout.contains("Clock time difference is 3684 seconds (as the last run measured it"), dry.stdout)
        XCTAssertEqual(stores(), 3, "a dry run with a remembered measurement uploads nothing:\n\(dry.stdout)")
        // The plan is the real one: a.txt is up to date on the skewed server, b.txt would go up.
        XCTAssertEqual(dry.actions.filter { !$0.hasPrefix("Skipping ") }.count, 1, "\(dry)")
        XCTAssertTrue(dry.actions.contains { $0.hasPrefix("Uploading ") && $0.hasSuffix(" b.txt") }, "\(dry)")
        XCTAssertNil(read("server/www/b.txt"))
    }

    func testARunListsEachFolderOnceAndTheClockProbeByStat() throws {
        let server = try start("vsftpd", loggingCommands: true)
        let t = Int(Date().timeIntervalSince1970) - 7200
        try write("src/a.txt", "a\n", mtime: FileTime(t))
        try write("src/sub/b.txt", "b\n", mtime: FileTime(t))
        try chownToServer(server)
        // Data connections held 1 s on their way (a proxy): the clock probe (an upload) is still
        // running when the listing starts, on any machine, so the listing takes the last run's
        // measurement as its guess.
        let slowData = try startFixture(
            "ftp-fault-proxy.py", ["--upstream", "\(server.port)", "--seed", "1", "--faults", "0", "--data-delay", "1"])
        try writeConfig(
            definition(
                "up", source: local(path("src")), destination: ftp(server, directory: "www", port: slowData.port)))
        let first = try run("up", server)
        assertExit(first, 0)
        // The server's log outlives a test: count what the second run adds to it.
        let before = commandsLogged("LIST", by: server) + commandsLogged("STAT", by: server)
        let again = try run("up", server)
        assertExit(again, 0)
        XCTAssertEqual(again.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(again)")
        // www (the checks before the run, kept for the run's own listing), www/sub, and the clock
        // probe's time: each one STAT on the control connection; none again after planning.
        func listings() -> Int { commandsLogged("LIST", by: server) + commandsLogged("STAT", by: server) }
        XCTAssertEqual(listings() - before, 3, "\(again)")

        // The listing does not wait for the probe: it reads LIST times against the last run's
        // clock measurement, and reads the folders again when the probe finds another one.
        let memory = path("state/ftp-times/up.destination")
        let remembered = try XCTUnwrap(read("state/ftp-times/up.destination"))
        XCTAssertTrue(remembered.contains("\nclock 0 0 "), remembered)
        try remembered.replacingOccurrences(of: "\nclock 0 0 ", with: "\nclock 0 3600 ")
            .write(toFile: memory, atomically: true, encoding: .utf8)
        let other = listings()
        let relisted = try run("up", server)
        assertExit(relisted, 0)
        XCTAssertEqual(relisted.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(relisted)")
        XCTAssertEqual(listings() - other, 5, "www and www/sub twice, and the probe's time\n\(relisted)")
        XCTAssertTrue(try XCTUnwrap(read("state/ftp-times/up.destination")).contains("\nclock 0 0 "))
    }

    /// Commands of the set-up and the clock probe that a server refuses: without FEAT, OPTS and
    /// STAT the run lists with LIST and reads the probe's listed time from a listing, as before.
    func testRefusedSetupCommandsOnlyTakeTheLongerWay() throws {
        let server = try start("vsftpd-skew", loggingCommands: true, denied: ["FEAT", "OPTS", "STAT"])
        let stats = commandsLogged("STAT", by: server)  // the server's log outlives a test
        let t = Int(Date().timeIntervalSince1970) - 7200
        try write("src/a.txt", "a\n", mtime: FileTime(t))
        try write("src/sub/b.txt", "b\n", mtime: FileTime(t))
        try chownToServer(server)
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))
        let first = try run("up", server)
        assertExit(first, 0)
        XCTAssertEqual(clockDifference(first), 3684, "\(first)")
        XCTAssertEqual(read("server/www/sub/b.txt"), "b\n")
        XCTAssertEqual(mtimeSeconds(server.root + "/www/a.txt"), Int64(t), "\(first)")
        let again = try run("up", server)
        assertExit(again, 0)
        XCTAssertEqual(again.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(again)")
        XCTAssertEqual(
            commandsLogged("STAT", by: server) - stats, 4,
            "asked once per run for the listing and once for the probe, refused")
    }

    func testAFolderIsCheckedAndRenamedInBatchesOnVsftpd() throws { try batchUpload("vsftpd", newFolder: false) }
    func testAFolderIsCheckedAndRenamedInBatchesOnProftpd() throws { try batchUpload("proftpd", newFolder: false) }
    func testANewFolderIsBuiltAndRenamedWithItsFilesOnVsftpd() throws { try batchUpload("vsftpd", newFolder: true) }
    func testANewFolderIsBuiltAndRenamedWithItsFilesOnProftpd() throws { try batchUpload("proftpd", newFolder: true) }
    func testAFolderIsCheckedAndRenamedInBatchesOnPureFTPd() throws { try batchUpload("pure-ftpd", newFolder: false) }
    func testANewFolderIsBuiltAndRenamedWithItsFilesOnPureFTPd() throws {
        try batchUpload("pure-ftpd", newFolder: true)
    }

    /// One worker uploads 60 files into one folder. Their sizes are checked by a listing of the
    /// folder (no SIZE per file), and their times and renames are pipelined: over 4 KiB of
    /// commands per batch. proftpd joins two commands into one, and never answers the second,
    /// when one of its reads ends between a CR and its LF; its reads take 4102 bytes, so the
    /// first 20 names are as long as puts the 20th MFMT's CR there and its LF after
    /// (`MFMT <14 digits> ` is 20 bytes, `/www/many/.plugsync-tmp-` 24, CR LF 2). Written all at
    /// once, the batch leaves the run waiting for the reply timeout and sending the files again.
    /// With `newFolder`, the server has no folder "many": it is built as `.plugsync-tmp-many`
    /// (also 24 bytes with `/www/` and the `/` after it), its files under their own names, and
    /// renamed once.
    func batchUpload(_ name: String, newFolder: Bool) throws {
        let server = try start(name, loggingCommands: true)
        if !newFolder {
            try FileManager.default.createDirectory(atPath: path("server/www/many"), withIntermediateDirectories: true)
        }
        let t = Int(Date().timeIntervalSince1970) - 7200
        let names = (0..<60).map { i in
            let length = i < 17 ? 159 : i < 20 ? 160 : 40  // 20 lines of 46 + length: 4103 bytes
            let stem = String(format: "f%02d-", i)
            return stem + String(repeating: "x", count: length - stem.count)
        }
        XCTAssertEqual(names.prefix(20).reduce(0) { $0 + 46 + $1.utf8.count }, 4103)
        for (i, name) in names.enumerated() {
            try write("src/many/\(name)", "file \(i)\n" + String(repeating: "x", count: i), mtime: FileTime(t - i))
        }
        // A folder an interrupted run was building: removed with its files.
        try write("server/www/.plugsync-tmp-old/a", "half", mtime: FileTime(t))
        try write("server/www/.plugsync-tmp-old/b", "whole", mtime: FileTime(t))
        try chownToServer(server)
        try writeConfig(
            definition("up", source: local(path("src")), destination: ftp(server, directory: "www"), ["parallel: 1"]))
        let sizes = commandsLogged("SIZE", by: server)
        let renames = commandsLogged("RNFR", by: server)
        let builds = commandsLogged("MKD /www/.plugsync-tmp-many", by: server)
        let result = try plugsync(
            arguments: ["run", "up"],
            environment: ["PLUGSYNC_TEST_FTP_PW": server.password, "PLUGSYNC_FTP_TIMEOUT": "5"])
        assertExit(result, 0)
        XCTAssertEqual(result.actions("Uploading").count, 60, "\(result)")
        XCTAssertEqual(result.lines.filter { $0.hasPrefix("Retrying ") }, [], "\(result)")
        for (i, name) in names.enumerated() {
            let file = "server/www/many/\(name)"
            XCTAssertEqual(read(file), "file \(i)\n" + String(repeating: "x", count: i), file)
            XCTAssertEqual(mtimeSeconds(path(file)), Int64(t - i), file)
        }
        XCTAssertEqual(temporaryFiles(in: path("server/www")), [])
        XCTAssertTrue(
            result.lines.contains { $0.hasPrefix("Removing ") && $0.hasSuffix(" .plugsync-tmp-old/") }, "\(result)")
        if name == "vsftpd" {  // the one that logs commands
            XCTAssertEqual(commandsLogged("SIZE", by: server) - sizes, 0, "\(result)")
            XCTAssertEqual(commandsLogged("RNFR", by: server) - renames, newFolder ? 1 : 60, "\(result)")
            XCTAssertEqual(
                commandsLogged("MKD /www/.plugsync-tmp-many", by: server) - builds, newFolder ? 1 : 0, "\(result)")
        }
    }

    func testAFolderWithAFailedFileIsClearedBeforeItsRenameOnVsftpd() throws { try clearedBuild("vsftpd") }
    func testAFolderWithAFailedFileIsClearedBeforeItsRenameOnProftpd() throws { try clearedBuild("proftpd") }
    func testAFolderWithAFailedFileIsClearedBeforeItsRenameOnPureFTPd() throws { try clearedBuild("pure-ftpd") }

    /// The server's File Check file is left out of the local side's listing, which is taken
    /// before the server's check is known (while the server logs in): a local file of the same
    /// name neither replaces it nor counts it as an orphan.
    func testTheServersCheckFileIsNeverOverwrittenByALocalFileOfTheSameName() throws {
        let server = try start("proftpd")
        let t = Int(Date().timeIntervalSince1970) - 7200
        try write("server/www/.id", "blue\n", mtime: FileTime(t))
        try write("server/www/orphan.txt", "orphan\n", mtime: FileTime(t))
        try chownToServer(server)
        try write("src/.id", "red\n", mtime: FileTime(t + 60))
        try write("src/sub/a.txt", "a\n", mtime: FileTime(t))
        try writeConfig(
            definition(
                "up", source: local(path("src")),
                destination: ftp(server, directory: "www") + [#"  file_check: ".id=^blue$""#], ["max_delete: 100%"]))
        let first = try run("up", server)
        assertExit(first, 0)
        XCTAssertEqual(read("server/www/.id"), "blue\n", "\(first)")
        XCTAssertFalse(first.actions.contains { $0.hasSuffix(" .id") }, "\(first)")
        XCTAssertFalse(exists("server/www/orphan.txt"), "\(first)")
        XCTAssertEqual(read("server/www/sub/a.txt"), "a\n", "\(first)")
        let again = try run("up", server)
        assertExit(again, 0)
        XCTAssertEqual(again.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(again)")

        // A check file the server does not have refuses the run as a failed File Check (exit 3),
        // not as a configuration error, and nothing is sent.
        try write("src/sub/new.txt", "new\n", mtime: FileTime(t))
        try writeConfig(
            definition(
                "up", source: local(path("src")),
                destination: ftp(server, directory: "www") + [#"  file_check: "not-there=^blue$""#],
                ["max_delete: 100%"]))
        let missing = try run("up", server)
        assertExit(missing, 3)
        XCTAssertTrue(missing.stderr.contains("File Check of the destination failed"), "\(missing)")
        XCTAssertTrue(missing.stderr.contains("not-there: file not found"), "\(missing)")
        XCTAssertFalse(exists("server/www/sub/new.txt"), "\(missing)")

        // An absolute check path starts at the login folder and must lie inside the directory.
        try writeConfig(
            definition(
                "up", source: local(path("src")),
                destination: ftp(server, directory: "www") + [#"  file_check: "/.id=^blue$""#]))
        let outside = try run("up", server)
        assertExit(outside, 2)
        XCTAssertTrue(outside.stderr.contains("file_check /.id must lie inside its directory /www"), "\(outside)")
        try writeConfig(
            definition(
                "up", source: local(path("src")),
                destination: ftp(server, directory: "www") + [#"  file_check: "/www/.id=^blue$""#]))
        assertExit(try run("up", server), 0)
        XCTAssertEqual(read("server/www/sub/new.txt"), "new\n")
    }

    func testAHintedListingEqualsThePlainOneOnVsftpd() throws { try hintedListing("vsftpd") }
    func testAHintedListingEqualsThePlainOneOnProftpd() throws { try hintedListing("proftpd") }
    func testAHintedListingEqualsThePlainOneOnPureFTPd() throws { try hintedListing("pure-ftpd") }

    /// A listing told the local side's folders (`ListingHint`) lists them before their parents
    /// are listed, and keeps only what the parents' listings confirm: a guessed folder that is
    /// missing on the server, or a file there, leaves no trace; a folder only the server has is
    /// still found. The result is the plain listing's, entry for entry, and so is that of a
    /// listing whose hint comes while it runs (as a run's local side is listed alongside).
    func hintedListing(_ name: String) throws {
        let server = try start(name, loggingCommands: name == "vsftpd")
        let t = Int(Date().timeIntervalSince1970) - 7200
        for file in ["a/b/c/f1", "a/b/f2", "a/x", "a/only-server/d/f3", "a/locked/f4", "top"] {
            try write("server/www/" + file, file + "\n", mtime: FileTime(t))
        }
        try chownToServer(server)
        // A folder the server shows but will not list: the guess fails quietly, and the folder
        // is then listed the normal way and reported, as in the plain listing.
        _ = try shell("chmod 000 \(quote(path("server/www/a/locked")))")
        defer { _ = try? shell("chmod 755 \(quote(path("server/www/a/locked")))") }
        // The local side: a/b/c as on the server, a/x a folder here but a file there, a/gone and
        // a/b/c/deeper not on the server, new/ a top-level folder the server lacks.
        for file in ["a/b/c/f1", "a/b/c/deeper/f", "a/x/f", "a/gone/f", "a/locked/f4", "new/sub/f"] {
            try write("src/" + file, "local\n", mtime: FileTime(t))
        }
        let local = LocalEndpoint(root: path("src")).list(recursive: true, filter: ListingFilter())
        func logged() -> String { (try? String(contentsOfFile: server.transferLog, encoding: .utf8)) ?? "" }
        /// The listings (LIST or STAT) vsftpd logged after the first `offset` bytes of its log (it logs a
        /// command as it receives it, before it answers).
        func listsLogged(since offset: Int) -> Int {
            guard let file = FileHandle(forReadingAtPath: server.transferLog) else { return 0 }
            defer { try? file.close() }
            guard (try? file.seek(toOffset: UInt64(offset))) != nil else { return 0 }
            let text = String(decoding: (try? file.readToEnd()) ?? Data(), as: UTF8.self)
            return text.components(separatedBy: "\"LIST").count + text.components(separatedBy: "\"STAT").count - 2
        }
        /// `late`: the hint is given by another thread while the listing runs, as a run's local
        /// side is listed alongside. On vsftpd it is given once the synchronized folder's LIST
        /// is logged, and `inTime` says whether a folder's LIST was still to come after it was
        /// given: then a folder's listing ended after the hint, which the listing had to take.
        func listing(hinted: Bool, late: Bool = false, lists: Int = 0) throws -> (
            lines: [String], errors: [String], inTime: Bool
        ) {
            let offset = logged().utf8.count
            var options = FTPOptions(
                host: server.host, port: server.port, username: server.user, password: server.password)
            options.responseTimeout = 5
            let endpoint = FTPEndpoint(options: options, directory: "www", connections: 3, clock: .seconds(0))
            defer { endpoint.disconnect() }
            try endpoint.connect()
            XCTAssertEqual(try endpoint.rootState(), .nonEmpty)
            let hint = ListingHint()
            if hinted { endpoint.listingHint = hint }
            if hinted && !late { hint.provide(local) }
            let feeder = Background { () -> Bool in
                guard late else { return false }
                if name == "vsftpd" {
                    let deadline = Date().addingTimeInterval(10)
                    while listsLogged(since: offset) == 0 && Date() < deadline { usleep(1000) }
                }
                hint.provide(local)
                return name == "vsftpd" && listsLogged(since: offset) < lists
            }
            let result = endpoint.list(recursive: true, filter: ListingFilter())
            let inTime = feeder.value
            var lines: [String] = []
            func walk(_ entries: [Entry], _ base: String) {
                for entry in entries {
                    let path = base + entry.name.description
                    lines.append("\(path) \(entry.kind) \(entry.size) \(entry.mtime.seconds)")
                    if let children = entry.children { walk(children, path + "/") }
                }
            }
            walk(result.entries, "")
            return (lines, result.errors.map { "\($0)" }, inTime)
        }
        let start = logged().count
        let plain = try listing(hinted: false)
        let middle = logged().count
        let plainLog = logged().dropFirst(start).prefix(middle - start)
        let plainLists =
            plainLog.components(separatedBy: "\"LIST").count + plainLog.components(separatedBy: "\"STAT").count - 2
        let hinted = try listing(hinted: true)
        let end = logged().count
        // Under load the late hint can come after the listing's last LIST (then it may rightly be
        // too late): a few tries, of which one must give it in time.
        var lateTries = 0
        var lateEnd = end
        var late = try listing(hinted: true, late: true, lists: plainLists)
        while name == "vsftpd" && !late.inTime && lateTries < 4 {
            lateTries += 1
            lateEnd = logged().count
            late = try listing(hinted: true, late: true, lists: plainLists)
        }
        XCTAssertEqual(late.errors, plain.errors)
        XCTAssertEqual(late.lines, plain.lines)
        XCTAssertEqual(plain.errors.count, 1, "\(plain.errors)")
        XCTAssertTrue(plain.errors.allSatisfy { $0.contains("/www/a/locked") }, "\(plain.errors)")
        XCTAssertEqual(hinted.errors, plain.errors)
        XCTAssertEqual(hinted.lines, plain.lines)
        XCTAssertEqual(
            plain.lines.map { $0.split(separator: " ").prefix(2).joined(separator: " ") },
            [
                "a directory", "a/b directory", "a/b/c directory", "a/b/c/f1 file", "a/b/f2 file",
                "a/locked directory", "a/only-server directory", "a/only-server/d directory", "a/only-server/d/f3 file",
                "a/x file",
                "top file",
            ])
        if name == "vsftpd" {
            // The guesses were asked for (a STAT, then curl's CWD into them, refused): a/gone,
            // a/b/c/deeper and a/x, and nothing below new/, which www lacks. The plain listing
            // asked for none.
            let log = logged()
            let plainLog = String(log.dropFirst(start).prefix(middle - start))
            let hintedLog = String(log.dropFirst(middle).prefix(end - middle))
            // The late hint was taken too (it came while the listing ran).
            XCTAssertTrue(late.inTime, "the late hint never came before the listing's last LIST (5 tries)")
            // A STAT for each of the 7 folders (a/locked's answer is empty: its LIST is not sent,
            // curl's CWD into it is refused).
            XCTAssertEqual(plainLists, 7, plainLog)
            XCTAssertTrue(String(log.dropFirst(lateEnd)).contains("/www/a/gone\""), String(log.dropFirst(lateEnd)))
            for guess in ["/www/a/gone\"", "/www/a/b/c/deeper\"", "/www/a/x\""] {
                XCTAssertTrue(hintedLog.contains(guess), "no listing of \(guess) in \(hintedLog)")
                XCTAssertFalse(plainLog.contains(guess), plainLog)
            }
            XCTAssertFalse(hintedLog.contains("/www/new"), hintedLog)
            XCTAssertTrue(plainLog.contains("/www/a/only-server/d\""), plainLog)
            XCTAssertTrue(hintedLog.contains("/www/a/only-server/d\""), hintedLog)
        }
    }

    /// The endpoint's side of a built folder whose file `b` failed: an upload whose tries all
    /// failed can leave a short `b` in the folder. Told so (`verify`), `commitFolder` lists the
    /// folder and deletes what it was not given before the rename: `n` appears with `a` alone.
    func clearedBuild(_ name: String) throws {
        let server = try start(name)
        try FileManager.default.createDirectory(atPath: path("server/www"), withIntermediateDirectories: true)
        try chownToServer(server)
        let t = Int(Date().timeIntervalSince1970) - 7200
        try write("src/n/a", "all of a\n", mtime: FileTime(t))
        try write("src/n/b", "all of b\n", mtime: FileTime(t))
        let source = LocalEndpoint(root: path("src"))
        let files = try XCTUnwrap(source.list(recursive: true, filter: ListingFilter()).entries.first?.children)
        var options = FTPOptions(host: server.host, port: server.port, username: server.user, password: server.password)
        options.responseTimeout = 5
        let endpoint = FTPEndpoint(options: options, directory: "www", connections: 1, clock: .seconds(0))
        defer { endpoint.disconnect() }
        try endpoint.connect()
        try endpoint.prepare(needsTimeSetter: true) { _ in }
        try endpoint.buildFolder("n")
        var staged: [StagedFile] = []
        for entry in files {
            let path = FileName("n").appending(entry.name)
            let file = try source.openForReading(path, entry: entry)
            try endpoint.stage(path, from: file, entry: entry) { _ in }
            file.close()
            staged.append(StagedFile(path: path, entry: entry, replacing: false))
        }
        XCTAssertEqual(staged.map(\.path.description), ["n/a", "n/b"])
        XCTAssertEqual(endpoint.commit([staged[0]]).map { $0 == nil }, [true])
        // What a cut upload of b left, its tries used up: a short file under b's own name.
        try write("server/www/.plugsync-tmp-n/b", "all", mtime: FileTime(t))
        try chownToServer(server)
        try endpoint.commitFolder("n", holding: [staged[0]], verify: true)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path("server/www/n")), ["a"])
        XCTAssertEqual(read("server/www/n/a"), "all of a\n")
        XCTAssertEqual(mtimeSeconds(path("server/www/n/a")), Int64(t))
        XCTAssertEqual(temporaryFiles(in: path("server/www")), [])
    }

    /// How many commands starting with `prefix` a vsftpd started with PLUGSYNC_FTP_LOG_PROTOCOL=YES
    /// has logged so far (its log lines quote each command: `"LIST -a"`).
    func commandsLogged(_ prefix: String, by server: FTPServer) -> Int {
        ((try? String(contentsOfFile: server.transferLog, encoding: .utf8)) ?? "")
            .components(separatedBy: "\"" + prefix).count - 1
    }

    // MARK: download

    func testDownloadWalkthroughVsftpd() throws { try downloadWalkthrough("vsftpd") }
    func testDownloadWalkthroughProftpd() throws { try downloadWalkthrough("proftpd") }
    func testDownloadWalkthroughPureFTPd() throws { try downloadWalkthrough("pure-ftpd") }
    func testDownloadWalkthroughSkewedVsftpd() throws { try downloadWalkthrough("vsftpd-skew") }

    func downloadWalkthrough(_ name: String) throws {
        let server = try start(name)
        let t = Int(Date().timeIntervalSince1970) - 7200
        let old = 1_600_000_000  // 2020: LIST shows a year, not a time (a day's precision)
        try write("server/pub/about.html", "about us\n", mtime: FileTime(t))
        try write("server/pub/back.jpg", "JPEG bytes\n", mtime: FileTime(t))
        try write("server/pub/contact.html", "contact v2\n", mtime: FileTime(t + 300))
        try write("server/pub/archive/2020.txt", "old news\n", mtime: FileTime(old))
        try write("server/pub/with space.txt", "spaces\n", mtime: FileTime(t))
        try write("dst/orphaned_file.txt", "orphan\n", mtime: FileTime(t))
        try write("dst/back.jpg", "JPEG bytes\n", mtime: FileTime(t))
        try write("dst/contact.html", "contact v1\n", mtime: FileTime(t))
        try chownToServer(server)
        try writeConfig(definition("down", source: ftp(server, directory: "pub"), destination: local(path("dst"))))

        let first = try run("down", server, "-v")
        assertExit(first, 0)
        assertNoCrash(first)
        assertActions(
            first,
            [
                action("Deleting", "local file is orphaned", "orphaned_file.txt"),
                action("Downloading", "local file not found", "about.html"),
                action("Skipping", "local file is uptodate", "back.jpg"),
                action("Downloading", "local file is older", "contact.html"),
                action("Creating", "local folder not found", "archive/"),
                action("Downloading", "local file not found", "archive/2020.txt"),
                action("Downloading", "local file not found", "with space.txt"),
            ])
        for file in ["about.html", "contact.html", "archive/2020.txt", "with space.txt"] {
            XCTAssertEqual(read("dst/" + file), read("server/pub/" + file), file)
            XCTAssertEqual(mtimeSeconds(path("dst/" + file)), mtimeSeconds(path("server/pub/" + file)), file)
        }
        XCTAssertEqual(temporaryFiles(in: path("dst")), [])
        XCTAssertEqual(temporaryFiles(in: server.root), [], "the clock probe is deleted")

        let second = try run("down", server)
        assertExit(second, 0)
        XCTAssertEqual(second.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second)")

        // A same-size change on the server, in the same minute as the last download.
        try write("server/pub/about.html", "ABOUT US\n")
        try chownToServer(server)
        let third = try run("down", server)
        assertExit(third, 0)
        XCTAssertEqual(
            third.actions.filter { !$0.hasPrefix("Skipping ") },
            [
                action("Downloading", "local file is older", "about.html")
            ], "\(third)")
        XCTAssertEqual(read("dst/about.html"), "ABOUT US\n")
    }

    /// Files of 1 MiB and more are received with a larger buffer (fewer reads and polls): they
    /// still arrive whole, byte for byte, with their times, next to a small one.
    func testLargeFilesDownloadWhole() throws {
        let server = try start("proftpd")
        let t = Int(Date().timeIntervalSince1970) - 7200
        var big = Data(count: 5 << 20 + 12_345)
        for i in stride(from: 0, to: big.count, by: 4096) { big[i] = UInt8(truncatingIfNeeded: i / 4096 + 1) }
        try write("server/pub/big.bin", big, mtime: FileTime(t))
        try write("server/pub/edge.bin", Data(repeating: 7, count: 1 << 20), mtime: FileTime(t + 1))
        try write("server/pub/small.txt", "small\n", mtime: FileTime(t + 2))
        try chownToServer(server)
        try writeConfig(definition("down", source: ftp(server, directory: "pub"), destination: local(path("dst"))))
        let result = try run("down", server)
        assertExit(result, 0)
        XCTAssertEqual(result.actions("Downloading").count, 3, "\(result)")
        for (name, offset) in [("big.bin", 0), ("edge.bin", 1), ("small.txt", 2)] {
            XCTAssertEqual(
                try Data(contentsOf: URL(fileURLWithPath: path("dst/" + name))),
                try Data(contentsOf: URL(fileURLWithPath: path("server/pub/" + name))), name)
            XCTAssertEqual(mtimeSeconds(path("dst/" + name)), Int64(t + offset), name)
        }
    }

    // MARK: pure-ftpd

    /// The files an xferlog (proftpd's, pure-ftpd's) shows moved after its first `offset` bytes,
    /// `up` or down, by name: an upload's temporary name counts as its file's name, the clock
    /// probe not at all. Both servers write a space in a name as `_`, so fields are counted from
    /// the end: the path is the 10th, the direction (`i`, `o`) the 7th.
    func xferlogFiles(_ server: FTPServer, since offset: Int, up: Bool) -> [String] {
        let text = String(
            decoding: (try? Data(contentsOf: URL(fileURLWithPath: server.transferLog))) ?? Data(), as: UTF8.self)
        var names: [String] = []
        for line in text.utf8.dropFirst(offset).split(separator: UInt8(ascii: "\n")) {
            let fields = String(decoding: line, as: UTF8.self).split(separator: " ")
            guard fields.count >= 14, fields[fields.count - 7] == (up ? "i" : "o") else { continue }
            var name = String(fields[fields.count - 10].split(separator: "/").last ?? "")
            if name.hasPrefix(".plugsync-tmp-") { name = String(name.dropFirst(".plugsync-tmp-".count)) }
            if !name.hasPrefix("clock-") { names.append(name) }
        }
        return names.sorted()
    }

    func logSize(_ server: FTPServer) -> Int {
        var st = stat()
        return stat(server.transferLog, &st) == 0 ? Int(st.st_size) : 0
    }

    /// local -> pure-ftpd -> local: a mirror up, and one from there down to a second folder.
    /// Both copies end up as the source, to the second; a second pass moves nothing; a same-size
    /// edit made within the minute of the last pass, and a deletion, reach the far copy, and
    /// the server's transfer log shows that only the edited file moved, once each way.
    func testMirrorUpAndBackThroughPureFTPd() throws {
        let server = try start("pure-ftpd")
        let t = Int(Date().timeIntervalSince1970) - 7200
        try write("src/a.txt", "alpha\n", mtime: FileTime(t))
        try write("src/b.txt", "bravo\n", mtime: FileTime(t + 1, 500_000_000))
        try write("src/with space.txt", "spaces\n", mtime: FileTime(t + 2))
        try write("src/sub/c.txt", "charlie\n", mtime: FileTime(t + 3))
        try write(
            "src/sub/deeper/d.bin", Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 * 7) }),
            mtime: FileTime(t + 4))
        try mkdir("back")
        try writeConfig(
            definition("up", source: local(path("src")), destination: ftp(server, directory: "www")),
            definition("down", source: ftp(server, directory: "www"), destination: local(path("back"))))
        func pass() throws -> (up: CommandResult, down: CommandResult, uploaded: [String], downloaded: [String]) {
            let offset = logSize(server)
            let up = try run("up", server)
            assertExit(up, 0)
            assertNoCrash(up)
            let down = try run("down", server)
            assertExit(down, 0)
            assertNoCrash(down)
            return (
                up, down, xferlogFiles(server, since: offset, up: true), xferlogFiles(server, since: offset, up: false)
            )
        }
        func assertSame(_ note: String) throws {
            let source = try snapshot(path("src"))
            let copy = try snapshot(path("back"))
            XCTAssertEqual(copy.keys.sorted(), source.keys.sorted(), note)
            for (name, node) in source {
                XCTAssertEqual(copy[name]?.kind, node.kind, "\(note): \(name)")
                XCTAssertEqual(copy[name]?.content, node.content, "\(note): \(name)")
                if node.kind == .file {
                    XCTAssertEqual(
                        copy[name].map { $0.mtime / 1_000_000_000 }, node.mtime / 1_000_000_000, "\(note): \(name)")
                }
            }
            XCTAssertEqual(temporaryFiles(in: server.root), [], note)
        }

        let first = try pass()
        let all = ["a.txt", "b.txt", "c.txt", "d.bin", "with_space.txt"]  // the log's `_` for a space
        XCTAssertEqual(first.uploaded, all, "\(first.up)")
        XCTAssertEqual(first.downloaded, all, "\(first.down)")
        try assertSame("first pass")

        let second = try pass()
        XCTAssertEqual(second.up.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second.up)")
        XCTAssertEqual(second.down.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second.down)")
        XCTAssertEqual(second.uploaded + second.downloaded, [])

        // Same size, now (the minute of the last pass), and a file gone.
        try write("src/a.txt", "ALPHA\n")
        try remove("src/sub/c.txt")
        let third = try pass()
        XCTAssertEqual(
            third.up.actions.filter { !$0.hasPrefix("Skipping ") },
            [
                action("Deleting", "remote file is orphaned", "sub/c.txt"),
                action("Uploading", "remote file is older", "a.txt"),
            ],
            "\(third.up)")
        XCTAssertEqual(
            third.down.actions.filter { !$0.hasPrefix("Skipping ") },
            [
                action("Deleting", "local file is orphaned", "sub/c.txt"),
                action("Downloading", "local file is older", "a.txt"),
            ],
            "\(third.down)")
        XCTAssertEqual(third.uploaded, ["a.txt"])
        XCTAssertEqual(third.downloaded, ["a.txt"])
        try assertSame("after an edit and a deletion")
        XCTAssertEqual(read("back/a.txt"), "ALPHA\n")
    }

    /// pure-ftpd lists at most 10,000 entries of a folder (its `-L` default) and ends such a
    /// listing with `226 Output truncated to 10000 matches`. The entries past the cut are
    /// missing, not gone: a mirror down from such a folder says so and deletes nothing.
    func testAListingTheServerCutsShortDeletesNothing() throws {
        let server = try start("pure-ftpd")
        let t = Int(Date().timeIntervalSince1970) - 7200
        try mkdir("server/pub/many")
        _ = try shell("cd \(quote(path("server/pub/many"))) && seq -f 'f%05g' 0 10000 | xargs touch -d @\(t)")
        try chownToServer(server)
        _ = try shell(
            "mkdir -p \(quote(path("dst"))) && cp -a \(quote(path("server/pub/many"))) \(quote(path("dst/")))")
        try write("dst/many/orphan.txt", "orphan\n", mtime: FileTime(t))
        try writeConfig(definition("down", source: ftp(server, directory: "pub"), destination: local(path("dst"))))
        let result = try run("down", server)
        assertNoCrash(result)
        XCTAssertNotEqual(result.status, 0, "\(result)")
        XCTAssertTrue(
            result.stdout.contains("cut the listing short") || result.stderr.contains("cut the listing short"),
            "\(result)")
        XCTAssertEqual(result.actions("Deleting"), [], "\(result)")
        XCTAssertTrue(exists("dst/many/orphan.txt"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path("dst/many")).count, 10_002)
    }

    // MARK: FTP to FTP

    func testFTPToFTP() throws {
        let from = try start("vsftpd", folder: "server-a")
        let to = try start("proftpd", folder: "server-b")
        try write("server-a/data/a.txt", "a\n", mtime: FileTime(1_700_000_000))
        try write("server-a/data/sub/b.txt", "bb\n", mtime: FileTime(1_700_000_100))
        try write("server-b/copy/orphan.txt", "x\n")
        try chownToServer(from)
        try chownToServer(to)
        XCTAssertEqual(from.password, to.password, "the fixture uses one login for every server")
        try writeConfig(
            definition(
                "relay", source: ftp(from, directory: "data"), destination: ftp(to, directory: "copy"),
                ["max_delete: 5"]))
        let first = try run("relay", from)
        assertExit(first, 0)
        assertActions(
            first,
            [
                action("Deleting", "remote file is orphaned", "orphan.txt"),
                action("Uploading", "remote file not found", "a.txt"),
                action("Creating", "remote folder not found", "sub/"),
                action("Uploading", "remote file not found", "sub/b.txt"),
            ])
        XCTAssertEqual(read("server-b/copy/sub/b.txt"), "bb\n")
        XCTAssertEqual(mtimeSeconds(path("server-b/copy/sub/b.txt")), 1_700_000_100)
        let second = try run("relay", from)
        assertExit(second, 0)
        XCTAssertEqual(second.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(second)")
    }

    // MARK: refusals and errors

    /// A read-only server: a download goes on without the clock probe (the listed times, the
    /// last run's difference or none), an upload is refused and told to set clock_diff.
    func testRefusedClockProbeStopsOnlyAnUpload() throws {
        let server = try start("vsftpd-ro")
        try write("server/pub/a.txt", "a\n", mtime: FileTime(1_700_000_000))
        try write("src/b.txt", "b\n")
        try chownToServer(server)
        try writeConfig(
            definition("ro", source: ftp(server, directory: "pub"), destination: local(path("dst"))),
            definition(
                "ro-manual", source: ftp(server, directory: "pub", ["clock_diff: 0"]), destination: local(path("dst2"))),
            definition("up", source: local(path("src")), destination: ftp(server, directory: "pub"))
        )
        let download = try run("ro", server)
        assertExit(download, 0)
        XCTAssertEqual(
            download.lines.filter { $0.contains("clock probe") }.count, 1, "one line says so\n\(download)")
        XCTAssertTrue(download.stdout.contains("taken as this computer's"), "\(download)")
        XCTAssertEqual(read("dst/a.txt"), "a\n")
        XCTAssertEqual(mtimeSeconds(path("dst/a.txt")), 1_700_000_000)
        let again = try run("ro", server)
        assertExit(again, 0)
        XCTAssertEqual(again.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(again)")
        XCTAssertTrue(again.stdout.contains("the last run's clock difference stands, 0 seconds"), "\(again)")

        let refused = try run("up", server)
        assertExit(refused, 3)
        assertNoCrash(refused)
        XCTAssertTrue(refused.stderr.contains("clock_diff"), "\(refused)")
        // With the difference given by hand, no probe is needed and nothing is said of one.
        let manual = try run("ro-manual", server)
        assertExit(manual, 0)
        XCTAssertFalse(
            manual.lines.contains { $0.hasPrefix("Clock time difference") || $0.contains("clock probe") }, "\(manual)")
        XCTAssertEqual(read("dst2/a.txt"), "a\n")
    }

    func testLoginAndConnectionErrorsAreOneClearLine() throws {
        let server = try start("vsftpd")
        try write("src/a.txt", "a\n")
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))
        let badLogin = try plugsync(arguments: ["run", "up"], environment: ["PLUGSYNC_TEST_FTP_PW": "wrong-password"])
        assertExit(badLogin, 2)
        assertNoCrash(badLogin)
        XCTAssertTrue(badLogin.stderr.contains("refused the login"), "\(badLogin)")
        XCTAssertFalse(badLogin.stderr.contains("wrong-password") || badLogin.stdout.contains("wrong-password"))
        server.stop()
        let unreachable = try run("up", server)
        assertExit(unreachable, 3)
        assertNoCrash(unreachable)
        XCTAssertTrue(unreachable.stderr.contains("cannot be reached"), "\(unreachable)")
        let unset = try plugsync("run", "up")
        assertExit(unset, 2)
        XCTAssertTrue(unset.stderr.contains("PLUGSYNC_TEST_FTP_PW"), "\(unset)")
    }

    /// The connections open together, but a wrong password is sent once, by the first: the
    /// others give up before theirs (one error, and no account locked by four tries).
    func testAWrongPasswordIsSentOnceAndTheRightOneByEveryConnection() throws {
        let server = try start("vsftpd", loggingCommands: true)
        try write("src/a.txt", "a\n")
        try chownToServer(server)
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))
        func connections() -> Int {
            ((try? String(contentsOfFile: server.transferLog, encoding: .utf8)) ?? "")
                .components(separatedBy: "CONNECT: Client").count - 1
        }
        let before = commandsLogged("PASS", by: server)
        let bad = try plugsync(arguments: ["run", "up"], environment: ["PLUGSYNC_TEST_FTP_PW": "wrong-password"])
        assertExit(bad, 2)
        assertNoCrash(bad)
        XCTAssertEqual(bad.stderr.components(separatedBy: "refused the login").count - 1, 1, "\(bad)")
        XCTAssertEqual(commandsLogged("PASS", by: server) - before, 1, "\(bad)")
        let passwordsBefore = commandsLogged("PASS", by: server)
        let connectionsBefore = connections()
        let good = try run("up", server)
        assertExit(good, 0)
        XCTAssertEqual(read("server/www/a.txt"), "a\n")
        // Then every connection sends it once: 4, or more where a loaded machine made this server
        // look far away (and a connection was opened while the others were still logging in).
        let passwords = commandsLogged("PASS", by: server) - passwordsBefore
        XCTAssertEqual(passwords, connections() - connectionsBefore, "\(good)")
        XCTAssertGreaterThanOrEqual(passwords, 4, "\(good)")
    }

    /// A server that takes fewer connections from one address than `parallel:` asks for refuses
    /// the others (vsftpd: 421 at the greeting, proftpd: 530 to the password): the run goes on
    /// with the connections it has, without retries or errors.
    func testAServerTakingTwoConnectionsRunsOnTwoOnVsftpd() throws { try fewerConnections("vsftpd") }
    func testAServerTakingTwoConnectionsRunsOnTwoOnProftpd() throws { try fewerConnections("proftpd") }

    func fewerConnections(_ name: String) throws {
        let server = try start(name, connectionsPerAddress: 2)
        let t = Int(Date().timeIntervalSince1970) - 7200
        for folder in ["", "a/", "a/b/", "c/"] {
            for file in 1...3 { try write("src/\(folder)f\(file).txt", "\(folder)\(file)\n", mtime: FileTime(t)) }
        }
        try chownToServer(server)
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))
        let first = try run("up", server)
        assertExit(first, 0)
        assertNoCrash(first)
        XCTAssertTrue(first.stdout.contains("Done: 12 copied"), "\(first)")
        XCTAssertFalse(first.stdout.contains("Retrying") || first.stdout.contains("Cannot"), "\(first)")
        XCTAssertEqual(read("server/www/a/b/f3.txt"), "a/b/3\n")
        try write("src/a/f1.txt", "changed\n", mtime: FileTime(t + 60))
        let again = try run("up", server)
        assertExit(again, 0)
        XCTAssertTrue(again.stdout.contains("Done: 1 copied"), "\(again)")
        XCTAssertFalse(again.stdout.contains("Retrying") || again.stdout.contains("Cannot"), "\(again)")
        XCTAssertEqual(read("server/www/a/f1.txt"), "changed\n")
    }

    /// The listing's connections beyond `parallel:` open on first need, and a server's limit
    /// per address holds for them too: a place the server refuses is given up, and whoever
    /// wanted it gets a connection when another is checked in.
    func testExtraConnectionsOpenOnNeedAndAServersLimitHolds() throws {
        XCTAssertEqual([1, 2, 4, 8, 16].map(FTPEndpoint.listingConnections), [2, 4, 8, 8, 16])
        let server = try start("vsftpd", connectionsPerAddress: 6)
        let options = FTPOptions(host: server.host, port: server.port, username: server.user, password: server.password)
        // As far away as a server can be: the places beyond the 4 opened are kept.
        let pool = ConnectionPool(options: options, size: 8, opened: 4, nearBelow: 0)
        try pool.connect { _ in [] }
        XCTAssertEqual(pool.retired, 0)
        let opened = Date().addingTimeInterval(10)
        while pool.idleCount < 4 && Date() < opened { usleep(10_000) }
        XCTAssertEqual(pool.idleCount, 4, "connect opens the first and 3 others alongside it")
        var held = try (0..<6).map { _ in try pool.checkOut() }  // 4 opened by connect, 2 on need
        XCTAssertEqual(pool.refused, 0)
        let seventh = Background { try? pool.checkOut() }
        let deadline = Date().addingTimeInterval(10)
        while pool.refused < 2 && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(pool.refused, 2, "the two places beyond the server's 6 are given up")
        let returned = held.removeLast()
        pool.checkIn(returned)
        XCTAssertTrue(seventh.value === returned, "the waiting caller gets the connection checked in")
        for connection in held { pool.checkIn(connection) }
        pool.checkIn(returned)
        pool.drain()
    }

    /// A server whose set-up answers within 5 ms is near: logging in more connections costs more
    /// than the listing's waits they would save, so the pool keeps to the transfers' connections.
    func testANearServerGetsNoExtraListingConnections() throws {
        let server = try start("vsftpd")
        let options = FTPOptions(host: server.host, port: server.port, username: server.user, password: server.password)
        // The bound is 5 ms by default; a loaded machine can take longer than that on loopback, so
        // the test takes 2 s: any answer on this machine is near, and the test never races the load.
        let pool = ConnectionPool(options: options, size: 8, opened: 4, nearBelow: 2_000_000_000)
        try pool.connect { connection in
            _ = try connection.exchange([Array("NOOP".utf8)])  // one round trip, as the real set-up
            return []
        }
        XCTAssertEqual(pool.retired, 4, "the 4 places beyond the opened ones are given up")
        let held = try (0..<4).map { _ in try pool.checkOut() }
        let fifth = Background { try? pool.checkOut() }
        pool.checkIn(held[0])
        XCTAssertTrue(fifth.value === held[0], "a fifth caller waits for a connection checked in")
        for connection in held.dropFirst() { pool.checkIn(connection) }
        pool.checkIn(held[0])
        pool.drain()
    }

    /// A server far away (20 ms a round trip here, through the bench's latency proxy) gets as
    /// many transfers at once as the listing's connections (8) when the definition does not set
    /// `parallel`: there a small file costs round trips, not bandwidth. A definition's
    /// `parallel` is kept as it is.
    func testAFarServerGetsMoreTransfersAtOnceUnlessTheDefinitionSaysHowMany() throws {
        let server = try start("vsftpd")
        for index in 0..<64 {
            try write("src/d\(index % 16)/f\(index).bin", String(repeating: "x", count: 2000 + index))
        }
        try chownToServer(server)
        func mostTransfersAtOnce(_ directory: String, parallel: Int?) throws -> Int {
            let counters = path("counters-\(directory).json")
            let proxy = try startLatencyProxy(server, counters: counters)
            defer { stopFixture(proxy.pid) }
            try writeConfig(
                definition(
                    "up", source: local(path("src")), destination: ftp(server, directory: directory, port: proxy.port),
                    parallel.map { ["parallel: \($0)"] } ?? []))
            let result = try run("up", server)
            assertExit(result, 0)
            XCTAssertTrue(result.stdout.contains("Done: 64 copied"), "\(result)")
            kill(proxy.pid, SIGUSR1)  // the proxy writes its counters (its second time)
            for _ in 0..<200 {
                if let text = read("counters-\(directory).json"),
                    let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                    (json["dumps"] as? Int ?? 0) >= 2
                {
                    return json["max_data_open"] as? Int ?? 0
                }
                usleep(25_000)
            }
            XCTFail("the proxy wrote no counters")
            return 0
        }
        XCTAssertGreaterThan(try mostTransfersAtOnce("default", parallel: nil), 4)
        XCTAssertLessThanOrEqual(try mostTransfersAtOnce("given", parallel: 4), 4)
        XCTAssertEqual(read("server/given/d3/f3.bin"), String(repeating: "x", count: 2003))
    }

    /// The bench's latency proxy (20 ms a round trip) in front of `server`; its counters go to
    /// `counters` (JSON) on SIGUSR1.
    func startLatencyProxy(_ server: FTPServer, counters: String) throws -> (pid: pid_t, port: Int) {
        let script = (FTPServer.script as NSString).deletingLastPathComponent + "/../../bench/latency-proxy.py"
        return try startFixture(
            "latency-proxy.py",
            [
                "--listen", "0", "--upstream", "\(server.port)", "--rtt", "20", "--data-ports", "any", "--counters",
                counters,
            ], script: script)
    }

    /// On a far server each connection asks for the next transfer's passive port while a
    /// download runs, and the next transfer uses it: downloads from vsftpd and proftpd through
    /// the latency proxy come whole, with a fresh `EPSV` only for each connection's first.
    func testAFarServersNextPassivePortIsAskedForDuringATransfer() throws {
        for name in ["vsftpd", "proftpd"] {
            let server = try start(name)
            for index in 0..<40 {
                try write("server/\(name)/d\(index % 4)/f\(index).bin", String(repeating: "y", count: 30_000 + index))
            }
            try chownToServer(server)
            let proxy = try startLatencyProxy(server, counters: path("counters-\(name).json"))
            defer { stopFixture(proxy.pid) }
            try writeConfig(
                definition(
                    "down", source: ftp(server, directory: name, port: proxy.port),
                    destination: local(path("dst-\(name)"))
                ))
            let result = try plugsync(
                arguments: ["run", "down"],
                environment: ["PLUGSYNC_TEST_FTP_PW": server.password, "PLUGSYNC_CURL_VERBOSE": "1"])
            assertExit(result, 0)
            XCTAssertTrue(result.stdout.contains("Done: 40 copied"), "\(result.stdout)")
            XCTAssertEqual(read("dst-\(name)/d3/f39.bin"), String(repeating: "y", count: 30_039))
            let ahead = result.stderrLines.filter { $0 == "> EPSV (for the next transfer)" }.count
            let fresh = result.stderrLines.filter { $0 == "> EPSV" }.count
            // 40 files on at most 8 connections; fresh: each connection's first download, the
            // clock probe's upload, and on proftpd the 5 folders' MLSD listings of a first run.
            XCTAssertGreaterThanOrEqual(ahead, 32, "\(name)")
            XCTAssertLessThanOrEqual(fresh, 9 + (name == "proftpd" ? 5 : 0), "\(name)")
        }
    }

    /// Uploads over FTPS end cleanly: the client says close_notify and reads what the server
    /// still sends on the data connection (TLS 1.3 session tickets) before it closes it; a socket
    /// closed with bytes unread is reset, and vsftpd answered such an upload 426.
    func testManyUploadsOverFTPSEndCleanly() throws {
        let server = try start("vsftpd-tls")
        for index in 1...80 {
            try write("src/d\(index % 4)/f\(index).txt", String(repeating: "x", count: index) + "\n")
        }
        try write("src/empty.txt", "")
        try chownToServer(server)
        try writeConfig(definition("up", source: local(path("src")), destination: ftp(server, directory: "www")))
        let first = try run("up", server)
        assertExit(first, 0)
        XCTAssertTrue(first.stdout.contains("Done: 81 copied"), "\(first)")
        XCTAssertFalse(first.stdout.contains("Retrying") || first.stdout.contains("Failed"), "\(first)")
        XCTAssertEqual(read("server/www/d1/f77.txt"), String(repeating: "x", count: 77) + "\n")
        XCTAssertEqual(read("server/www/empty.txt"), "")
    }

    func testMissingSourceFolderIsRefused() throws {
        let server = try start("vsftpd")
        try write("dst/keep.txt", "precious\n")
        try writeConfig(
            definition("down", source: ftp(server, directory: "nothing-here"), destination: local(path("dst"))))
        let result = try run("down", server)
        assertExit(result, 3)
        XCTAssertEqual(read("dst/keep.txt"), "precious\n", "a missing remote source never empties the mirror")
    }

    func testTLSWithoutTheRightCAFails() throws {
        let server = try start("vsftpd-tls")
        try write("src/a.txt", "a\n")
        var endpoint = ftp(server, directory: "www")
        endpoint.removeAll { $0.contains("ca_file") }
        try writeConfig(definition("up", source: local(path("src")), destination: endpoint))
        let result = try run("up", server)
        assertExit(result, 2)
        assertNoCrash(result)
        XCTAssertTrue(result.stderr.contains("TLS"), "\(result)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: server.root + "/www/a.txt"))
    }

    func testHostileNamesAreRefusedAndNothingIsWrittenOutside() throws {
        let server = try start("vsftpd")
        try write("server/pub/fine.txt", "fine\n")
        try write("server/pub/new\nline.txt", "nl\n")
        try write("server/pub/esc\u{1b}[2J.txt", "esc\n")
        try chownToServer(server)
        try writeConfig(definition("down", source: ftp(server, directory: "pub"), destination: local(path("dst"))))
        let result = try run("down", server)
        assertNoCrash(result)
        XCTAssertEqual(result.status, 1, "refused names make the run one with failures\n\(result)")
        XCTAssertEqual(read("dst/fine.txt"), "fine\n")
        XCTAssertEqual(try snapshot(path("dst")).keys.sorted(), ["fine.txt"])
        // A listing error: on standard error, as failures are.
        XCTAssertTrue(result.stderr.contains("refused a name from the server"), "\(result)")
        XCTAssertFalse(
            result.stdout.contains("\u{1b}") || result.stderr.contains("\u{1b}"),
            "a terminal escape from the server is never printed raw")
    }
}
