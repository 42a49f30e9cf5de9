import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `versions:` with an FTP destination: the old file is renamed (RNFR, RNTO) into
/// `.plugsync-versions/<run start>/` on the server, its folders made with MKD.
extension FTPTests {
    func testVersionsOnVsftpd() throws { try versionsOnServer("vsftpd") }
    func testVersionsOnProftpd() throws { try versionsOnServer("proftpd") }

    private func versionsOnServer(_ name: String) throws {
        let server = try start(name)
        let started = 1_790_856_000
        var time = time_t(started)
        var parts = tm()
        localtime_r(&time, &parts)
        var text = [CChar](repeating: 0, count: 32)
        strftime(&text, text.count, "%Y-%m-%d_%H%M%S", &parts)
        let stamp = String(cString: text)

        try write("src/contact.html", "old contact\n")
        try write("src/b.txt", "bee\n")
        try write("src/dir/c.txt", "sea\n")
        try writeConfig(
            definition(
                "up", source: local(path("src")), destination: ftp(server, directory: "www"),
                ["type: mirror", "versions: {keep_days: 30, keep_min: 1, keep_max: 2}"]))
        // The first run an hour before: the versions folder's name is the second run's start.
        let before = ["PLUGSYNC_TEST_FTP_PW": server.password, "PLUGSYNC_NOW": "\(started - 3600)"]
        XCTAssertEqual(try plugsync(arguments: ["run", "up"], environment: before).status, 0)
        try write("src/contact.html", "the new contact page\n")
        try remove("src/b.txt")
        try remove("src/dir")
        let environment = ["PLUGSYNC_TEST_FTP_PW": server.password, "PLUGSYNC_NOW": "\(started)"]
        let second = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(second.status, 0, "\(second)")
        let lines = second.lines
        let versioning = action("Versioning", "remote file size differs", "contact.html")
        let uploading = action("Uploading", "remote file size differs", "contact.html")
        XCTAssertEqual(lines.firstIndex(of: versioning).map { $0 + 1 }, lines.firstIndex(of: uploading), "\(second)")
        XCTAssertTrue(lines.contains(action("Versioning", "remote file is orphaned", "b.txt")), "\(second)")
        XCTAssertTrue(lines.contains(action("Versioning", "remote file is orphaned", "dir/c.txt")), "\(second)")
        XCTAssertTrue(second.summary?.contains("3 versioned") == true, "\(second)")
        let versions = server.root + "/www/.plugsync-versions/" + stamp
        XCTAssertEqual(try? String(contentsOfFile: versions + "/contact.html", encoding: .utf8), "old contact\n")
        XCTAssertEqual(try? String(contentsOfFile: versions + "/b.txt", encoding: .utf8), "bee\n")
        XCTAssertEqual(try? String(contentsOfFile: versions + "/dir/c.txt", encoding: .utf8), "sea\n")
        XCTAssertEqual(
            try? String(contentsOfFile: server.root + "/www/contact.html", encoding: .utf8), "the new contact page\n")

        let third = try plugsync(arguments: ["run", "up"], environment: environment)
        XCTAssertEqual(third.status, 0, "\(third)")
        XCTAssertTrue(third.summary?.hasPrefix("Done: 0 copied") == true, "\(third)")
        XCTAssertTrue(third.summary?.contains("0 deleted") == true, "\(third)")

        let listed = try plugsync(arguments: ["versions", "up"], environment: environment)
        XCTAssertEqual(listed.status, 0, "\(listed)")
        XCTAssertEqual(listed.lines.count, 3, "\(listed)")
    }

    /// The versions folder's name for a run started at `seconds` (local time, as plugsync names it).
    func versionStamp(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        var text = [CChar](repeating: 0, count: 32)
        strftime(&text, text.count, "%Y-%m-%d_%H%M%S", &parts)
        return String(cString: text)
    }

    func run(_ name: String, _ server: FTPServer, at seconds: Int) throws -> CommandResult {
        try plugsync(
            arguments: ["run", name],
            environment: ["PLUGSYNC_TEST_FTP_PW": server.password, "PLUGSYNC_NOW": "\(seconds)"])
    }

    /// Listings of folders of the versions folder a vsftpd logging its commands has seen (STAT
    /// of the folder, or CWD into it for a LIST).
    func versionListings(_ server: FTPServer) -> Int { versionListingLines(server).count }

    func versionListingLines(_ server: FTPServer) -> [String] {
        let log = (try? String(contentsOfFile: server.transferLog, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").map(String.init).filter {
            ($0.contains("\"STAT ") || $0.contains("\"CWD ")) && $0.contains(".plugsync-versions")
        }
    }

    // MARK: pruning, which lists only the top of the versions folder and what can go

    func testPruningByCountOnVsftpd() throws { try pruningByCount("vsftpd") }
    func testPruningByCountOnProftpd() throws { try pruningByCount("proftpd") }

    /// The same file changed in five runs with `keep_max: 3`, `keep_min: 2` (as in a local
    /// folder): the three newest versions stay, the run folders left empty go, and each run
    /// lists only the top of the versions folder (no run folder is old).
    func pruningByCount(_ name: String) throws {
        let server = try start(name, loggingCommands: name == "vsftpd")
        let base = 1_790_856_000
        try write("src/doc/deep/report.odt", "v0")
        try write("src/other.txt", "o0")
        try writeConfig(
            definition(
                "up", source: local(path("src")), destination: ftp(server, directory: "www"),
                ["type: mirror", "versions: {keep_days: 0, keep_min: 2, keep_max: 3}"]))
        XCTAssertEqual(try run("up", server, at: base).status, 0)
        var pruned: [String] = []
        for i in 1...5 {
            try write("src/doc/deep/report.odt", "v\(i)" + String(repeating: "+", count: i))
            if i == 1 { try write("src/other.txt", "o1-") }
            let listed = versionListings(server)
            let result = try run("up", server, at: base + i * 3600)
            XCTAssertEqual(result.status, 0, "\(result)")
            pruned += result.lines.filter { $0.hasPrefix("Pruning ") }
            if name == "vsftpd" {
                XCTAssertEqual(versionListings(server) - listed, 1, "only the top of the versions folder\n\(result)")
            }
        }
        XCTAssertEqual(
            pruned,
            [
                action("Pruning", "more than 3 versions", versionStamp(base + 3600) + "/doc/deep/report.odt"),
                action("Pruning", "more than 3 versions", versionStamp(base + 2 * 3600) + "/doc/deep/report.odt"),
            ])
        let folder = server.root + "/www/.plugsync-versions"
        let kept = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        XCTAssertEqual(
            kept, [1, 3, 4, 5].map { versionStamp(base + $0 * 3600) },
            "the run folder left empty is removed; the one still holding other.txt stays")
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: folder + "/" + versionStamp(base + 3600)), ["other.txt"]
        )
        XCTAssertEqual(
            read("server/www/.plugsync-versions/\(versionStamp(base + 5 * 3600))/doc/deep/report.odt"), "v4++++")
        let listed = try plugsync(
            arguments: ["versions", "up", "doc/deep/report.odt"], environment: ["PLUGSYNC_TEST_FTP_PW": server.password]
        )
        XCTAssertEqual(listed.status, 0, "\(listed)")
        XCTAssertEqual(listed.lines.count, 3, "\(listed)")
    }

    func testPruningByAgeOnVsftpd() throws { try pruningByAge("vsftpd") }
    func testPruningByAgeOnProftpd() throws { try pruningByAge("proftpd") }

    /// `keep_days: 2`, `keep_min: 2` (as in a local folder): versions older than two days go
    /// but the two newest of each path, found in the newer run folder without listing it; only
    /// the old run folders are listed whole.
    func pruningByAge(_ name: String) throws {
        let server = try start(name, loggingCommands: name == "vsftpd")
        let base = 1_790_856_000
        let day = 86400
        try write("src/a.txt", "a0")
        try write("src/b.txt", "b0")
        try write("src/c/d.txt", "d0")
        try writeConfig(
            definition(
                "up", source: local(path("src")), destination: ftp(server, directory: "www"),
                ["type: mirror", "versions: {keep_days: 2, keep_min: 2, keep_max: 0}"]))
        XCTAssertEqual(try run("up", server, at: base - 60).status, 0)
        // Day 0: a.txt and c/d.txt changed, b.txt deleted; days 1 and 2: a.txt changed again.
        try write("src/a.txt", "a1-")
        try write("src/c/d.txt", "d1-")
        try remove("src/b.txt")
        XCTAssertEqual(try run("up", server, at: base).status, 0)
        for i in 1...2 {
            try write("src/a.txt", "a\(i + 1)" + String(repeating: "-", count: i + 1))
            let result = try run("up", server, at: base + i * day)
            XCTAssertEqual(result.status, 0, "\(result)")
            XCTAssertFalse(result.stdout.contains("Pruning"), "nothing is older than two days yet\n\(result)")
        }
        // Day 10: a.txt's versions of days 0 and 1 go (two stay: days 2 and 10); b.txt's and
        // c/d.txt's only versions stay (keep_min), so day 0's folder stays too.
        try write("src/a.txt", "a10")
        let listed = versionListings(server)
        let late = try run("up", server, at: base + 10 * day)
        XCTAssertEqual(late.status, 0, "\(late)")
        XCTAssertEqual(
            late.lines.filter { $0.hasPrefix("Pruning ") },
            [
                action("Pruning", "older than 2 days", versionStamp(base) + "/a.txt"),
                action("Pruning", "older than 2 days", versionStamp(base + day) + "/a.txt"),
            ], "\(late)")
        XCTAssertTrue(late.summary?.contains("2 pruned") == true, "\(late)")
        if name == "vsftpd" {
            // The top, the three run folders older than two days (days 0, 1 and 2) and day 0's
            // folder c; not day 10's.
            XCTAssertEqual(
                versionListings(server) - listed, 5,
                "\(late)\n\(versionListingLines(server).suffix(8).joined(separator: "\n"))")
        }
        let folder = server.root + "/www/.plugsync-versions"
        let kept = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        XCTAssertEqual(kept, [versionStamp(base), versionStamp(base + 2 * day), versionStamp(base + 10 * day)])
        XCTAssertEqual(read("server/www/.plugsync-versions/\(versionStamp(base))/b.txt"), "b0")
        XCTAssertEqual(read("server/www/.plugsync-versions/\(versionStamp(base))/c/d.txt"), "d0")
        XCTAssertFalse(exists("server/www/.plugsync-versions/\(versionStamp(base))/a.txt"))
    }

    /// Versions asked for by name (`SIZE` on vsftpd) that a vsftpd logging its commands has seen.
    func versionQueries(_ server: FTPServer) -> Int {
        let log = (try? String(contentsOfFile: server.transferLog, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.contains("\"SIZE ") && $0.contains(".plugsync-versions") }.count
    }

    func testPruningBesideManyRunFoldersOnVsftpd() throws { try pruningBesideManyRunFolders("vsftpd") }
    func testPruningBesideManyRunFoldersOnProftpd() throws { try pruningBesideManyRunFolders("proftpd") }

    /// `keep_max: 3` beside more run folders than that: the first six runs each also keep a
    /// file of their own (so their folders stay), and report.odt changes in every run. Pruning
    /// knows from what it remembers of each run folder where report.odt is: it asks for it in
    /// the four run folders that hold it (none before there are four), for no other path, and
    /// lists only the top of the versions folder.
    func pruningBesideManyRunFolders(_ name: String) throws {
        let server = try start(name, loggingCommands: name == "vsftpd")
        let base = 1_790_856_000
        try write("src/doc/report.odt", "r0")
        for i in 1...6 { try write("src/once/f\(i).txt", "f\(i)") }
        try writeConfig(
            definition(
                "up", source: local(path("src")), destination: ftp(server, directory: "www"),
                ["type: mirror", "versions: {keep_days: 0, keep_min: 1, keep_max: 3}"]))
        XCTAssertEqual(try run("up", server, at: base).status, 0)
        var pruned: [String] = []
        for i in 1...10 {
            try write("src/doc/report.odt", "r\(i)" + String(repeating: "+", count: i))
            if i <= 6 { try write("src/once/f\(i).txt", "f\(i) changed") }
            let listed = versionListings(server)
            let asked = versionQueries(server)
            let result = try run("up", server, at: base + i * 3600)
            XCTAssertEqual(result.status, 0, "\(result)")
            pruned += result.lines.filter { $0.hasPrefix("Pruning ") }
            if name == "vsftpd" {
                XCTAssertEqual(versionListings(server) - listed, 1, "run \(i): only the top\n\(result)")
                XCTAssertEqual(versionQueries(server) - asked, i >= 4 ? 4 : 0, "run \(i)\n\(result)")
            }
        }
        XCTAssertEqual(
            pruned,
            (1...7).map {
                action("Pruning", "more than 3 versions", versionStamp(base + $0 * 3600) + "/doc/report.odt")
            })
        let folder = server.root + "/www/.plugsync-versions"
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: folder).sorted(),
            [1, 2, 3, 4, 5, 6, 8, 9, 10].map { versionStamp(base + $0 * 3600) },
            "run 7's folder, left empty, is removed")
        for i in 8...10 {
            XCTAssertEqual(
                read("server/www/.plugsync-versions/\(versionStamp(base + i * 3600))/doc/report.odt"),
                "r\(i - 1)" + String(repeating: "+", count: i - 1))
        }
        let memory = (try? String(contentsOfFile: path("state/ftp-times/up.destination"), encoding: .utf8)) ?? ""
        XCTAssertTrue(memory.contains("versions \(versionStamp(base + 10 * 3600)) 1\nv doc/report.odt\n"), memory)
    }

    func testRunFolderMadeByHandOnVsftpd() throws { try runFolderMadeByHand("vsftpd") }
    func testRunFolderMadeByHandOnProftpd() throws { try runFolderMadeByHand("proftpd") }

    /// A run folder made behind plugsync's back (by hand, or by another computer) is not in
    /// what pruning remembers: the next pruning lists it whole and counts its versions, so it
    /// prunes exactly what the whole listing would; after that it is known, and only the top of
    /// the versions folder is listed again.
    func runFolderMadeByHand(_ name: String) throws {
        let server = try start(name, loggingCommands: name == "vsftpd")
        let base = 1_790_856_000
        try write("src/doc/report.odt", "r0")
        try writeConfig(
            definition(
                "up", source: local(path("src")), destination: ftp(server, directory: "www"),
                ["type: mirror", "versions: {keep_days: 0, keep_min: 1, keep_max: 2}"]))
        XCTAssertEqual(try run("up", server, at: base).status, 0)
        for i in 1...2 {
            try write("src/doc/report.odt", "r\(i)" + String(repeating: "+", count: i))
            let result = try run("up", server, at: base + i * 3600)
            XCTAssertEqual(result.status, 0, "\(result)")
            XCTAssertFalse(result.stdout.contains("Pruning"), "\(result)")
        }
        // Half an hour after run 2, by hand: a version of report.odt, and a file of its own.
        let byHand = versionStamp(base + 2 * 3600 + 1800)
        try write("server/www/.plugsync-versions/\(byHand)/doc/report.odt", "by hand")
        try write("server/www/.plugsync-versions/\(byHand)/extra/x.txt", "x")
        try chownToServer(server)
        // Run 3: report.odt has four versions (runs 1 and 2, by hand, run 3): two go.
        try write("src/doc/report.odt", "r3+++")
        var listed = versionListings(server)
        let third = try run("up", server, at: base + 3 * 3600)
        XCTAssertEqual(third.status, 0, "\(third)")
        XCTAssertEqual(
            third.lines.filter { $0.hasPrefix("Pruning ") },
            [1, 2].map {
                action("Pruning", "more than 2 versions", versionStamp(base + $0 * 3600) + "/doc/report.odt")
            },
            "\(third)")
        if name == "vsftpd" {
            // The top, and the folder made by hand with its two folders.
            XCTAssertEqual(versionListings(server) - listed, 4, "\(third)")
        }
        // Run 4: the version made by hand is the oldest of three now; its folder is known.
        try write("src/doc/report.odt", "r4++++")
        listed = versionListings(server)
        let fourth = try run("up", server, at: base + 4 * 3600)
        XCTAssertEqual(fourth.status, 0, "\(fourth)")
        XCTAssertEqual(
            fourth.lines.filter { $0.hasPrefix("Pruning ") },
            [action("Pruning", "more than 2 versions", byHand + "/doc/report.odt")], "\(fourth)")
        if name == "vsftpd" { XCTAssertEqual(versionListings(server) - listed, 1, "only the top\n\(fourth)") }
        let folder = server.root + "/www/.plugsync-versions"
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: folder).sorted(),
            [byHand, versionStamp(base + 3 * 3600), versionStamp(base + 4 * 3600)])
        XCTAssertEqual(read("server/www/.plugsync-versions/\(byHand)/extra/x.txt"), "x")
        XCTAssertFalse(exists("server/www/.plugsync-versions/\(byHand)/doc"), "the folder left empty is removed")
    }

    // MARK: a run killed while it replaces files in batches

    func testKilledWhileReplacingOnVsftpd() throws { try killedWhileReplacing("vsftpd") }
    func testKilledWhileReplacingOnProftpd() throws { try killedWhileReplacing("proftpd") }

    /// Runs killed (SIGKILL) at seeded moments while they replace files in batches (the old
    /// files moved to the versions folder, the new ones renamed into place, both pipelined):
    /// every final name holds the whole old or the whole new file, or is absent while its old
    /// file lies in the versions folder, and the next run completes.
    func killedWhileReplacing(_ name: String) throws {
        let server = try start(name)
        let base = 1_790_856_000
        let files = 400
        let trials = 20
        var random = SplitMix64(seed: 2222)
        func content(_ round: Int, _ file: Int) -> String {
            "round \(round) file \(file)\n" + String(repeating: "r", count: (round * 7 + file) % 50)
        }
        for file in 0..<files { try write("src/d\(file % 4)/f\(file).txt", content(0, file)) }
        try writeConfig(
            definition(
                "up", source: local(path("src")), destination: ftp(server, directory: "www"),
                ["type: mirror", "versions: {keep_days: 0}"]))
        XCTAssertEqual(try run("up", server, at: base).status, 0)
        let site = server.root + "/www"
        var killedBetween = 0
        var killedWhileRunning = 0
        for trial in 1...trials {
            for file in 0..<files { try write("src/d\(file % 4)/f\(file).txt", content(trial, file)) }
            let started = base + trial * 60
            let folder = site + "/.plugsync-versions/" + versionStamp(started)
            let running = try startPlugsync(
                ["run", "up", "--config", configPath],
                environment: ["PLUGSYNC_TEST_FTP_PW": server.password, "PLUGSYNC_NOW": "\(started)"])
            let deadline = Date().addingTimeInterval(30)
            while running.process.isRunning && !FileManager.default.fileExists(atPath: folder) && Date() < deadline {
                usleep(100)
            }
            usleep(useconds_t(random.below(30_000)))
            if running.process.isRunning { killedWhileRunning += 1 }
            kill(running.process.processIdentifier, SIGKILL)
            running.process.waitUntilExit()
            for file in 0..<files {
                let relative = "d\(file % 4)/f\(file).txt"
                let final = try? String(contentsOfFile: site + "/" + relative, encoding: .utf8)
                let kept = try? String(contentsOfFile: folder + "/" + relative, encoding: .utf8)
                if let final {
                    XCTAssertTrue(
                        final == content(trial, file) || final == content(trial - 1, file),
                        "trial \(trial): \(relative) holds neither the whole old nor the whole new file")
                } else {
                    XCTAssertEqual(kept, content(trial - 1, file), "trial \(trial): \(relative) is absent and not kept")
                    killedBetween += 1
                }
            }
            let next = try run("up", server, at: started + 30)
            XCTAssertEqual(next.status, 0, "trial \(trial): \(next)")
            for file in 0..<files {
                XCTAssertEqual(
                    try? String(contentsOfFile: site + "/d\(file % 4)/f\(file).txt", encoding: .utf8),
                    content(trial, file), "trial \(trial): the next run completes")
            }
            XCTAssertEqual(temporaryFiles(in: site), [], "trial \(trial): the next run removed what was left")
        }
        XCTAssertGreaterThan(killedWhileRunning, trials / 2, "most kills hit a run at work")
        print("\(name): killed between the two steps: \(killedBetween) files in \(trials) trials")
    }
}
