import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `versions:` on a definition: what a run replaces or deletes is moved to
/// `.plugsync-versions/<run start>/<its path>` on the destination, the folder is never
/// synchronized, and versions are pruned by age and count after a run that succeeded.
final class VersionsTests: IntegrationTestCase {
    /// 2026-10-01 12:00:00 UTC; runs are placed in time with `PLUGSYNC_NOW`.
    let base = 1_790_856_000
    let day = 86400

    /// The versions folder's name for a run started at `seconds`, in local time as plugsync
    /// writes it (this process has plugsync's time zone).
    func stamp(_ seconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        var text = [CChar](repeating: 0, count: 32)
        strftime(&text, text.count, "%Y-%m-%d_%H%M%S", &parts)
        return String(cString: text)
    }

    func run(_ name: String, at seconds: Int, _ extra: String...) throws -> CommandResult {
        try plugsync(arguments: ["run", name] + extra, environment: ["PLUGSYNC_NOW": "\(seconds)"])
    }

    func versionsConfig(_ destination: String, keep: String = "{keep_days: 30, keep_min: 3, keep_max: 20}")
        throws
    {
        try writeConfig(
            definition("m", source: path("src"), destination: destination, ["type: mirror", "versions: \(keep)"]))
    }

    /// An edit, a deleted file and a deleted folder on `destination` (a local folder or a
    /// folder on a loop drive): each old file lies under the run's versions folder, the report
    /// says `Versioning` before the line that replaced or deleted it, and the summary counts them.
    func checkEditAndDelete(_ destination: String) throws {
        try write("src/contact.html", "old contact\n")
        try write("src/b.txt", "bee\n")
        try write("src/dir/c.txt", "sea\n")
        try write("src/dir/sub/d.txt", "dee\n")
        try write("src/keep.txt", "kept\n")
        try versionsConfig(destination)
        let first = try run("m", at: base)
        XCTAssertEqual(first.status, 0, "\(first)")
        XCTAssertFalse(first.stdout.contains("Versioning"), "nothing replaced yet\n\(first)")

        try write("src/contact.html", "the new contact page\n")
        try remove("src/b.txt")
        try remove("src/dir")
        let second = try run("m", at: base + 3600)
        // 4 of the 7 destination entries deleted: more than the 50 % max_delete, but nothing is lost.
        XCTAssertEqual(second.status, 0, "\(second)")
        let lines = second.lines
        let versioning = action("Versioning", "destination file size differs", "contact.html")
        let copying = action("Copying", "destination file size differs", "contact.html")
        XCTAssertEqual(
            lines.firstIndex(of: versioning).map { $0 + 1 }, lines.firstIndex(of: copying),
            "Versioning, then the copy\n\(second)")
        XCTAssertTrue(lines.contains(action("Versioning", "destination file is orphaned", "b.txt")), "\(second)")
        XCTAssertTrue(lines.contains(action("Versioning", "destination file is orphaned", "dir/c.txt")), "\(second)")
        XCTAssertTrue(
            lines.contains(action("Versioning", "destination file is orphaned", "dir/sub/d.txt")), "\(second)")
        XCTAssertTrue(lines.contains(action("Deleting", "destination folder is orphaned", "dir/")), "\(second)")
        XCTAssertTrue(second.summary?.contains("4 versioned") == true, "\(second)")

        let versions = destination + "/.plugsync-versions/" + stamp(base + 3600)
        XCTAssertEqual(try String(contentsOfFile: versions + "/contact.html", encoding: .utf8), "old contact\n")
        XCTAssertEqual(try String(contentsOfFile: versions + "/b.txt", encoding: .utf8), "bee\n")
        XCTAssertEqual(try String(contentsOfFile: versions + "/dir/c.txt", encoding: .utf8), "sea\n")
        XCTAssertEqual(try String(contentsOfFile: versions + "/dir/sub/d.txt", encoding: .utf8), "dee\n")
        XCTAssertEqual(
            try String(contentsOfFile: destination + "/contact.html", encoding: .utf8), "the new contact page\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: destination + "/b.txt"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: destination + "/dir"))
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: versions + "/keep.txt"), "an unchanged file is not versioned")

        // The versions folder is neither an orphan nor counted: the next run does nothing.
        let third = try plugsync(
            arguments: ["run", "m", "-v"], environment: ["PLUGSYNC_NOW": "\(base + 7200)"])
        XCTAssertEqual(third.status, 0, "\(third)")
        XCTAssertFalse(third.stdout.contains(".plugsync-versions"), "\(third)")
        XCTAssertTrue(third.summary?.hasPrefix("Done: 0 copied") == true, "\(third)")
        XCTAssertTrue(third.summary?.contains("0 deleted") == true, "\(third)")
    }

    func testEditDeleteAndFolderDeletedInALocalFolder() throws {
        try checkEditAndDelete(path("dst"))
        let verified = try plugsync("verify", "m")
        XCTAssertEqual(verified.status, 0, "verify leaves the versions folder out\n\(verified)")
    }

    /// A file that becomes a hard link of another (as on the source) is kept first.
    func testAFileReplacedByAHardLinkIsKept() throws {
        try write("src/a.txt", "AAAA")
        try write("src/b.txt", "B")
        try versionsConfig(path("dst"))
        XCTAssertEqual(try run("m", at: base).status, 0)
        try remove("src/b.txt")
        XCTAssertEqual(link(path("src/a.txt"), path("src/b.txt")), 0)
        let result = try run("m", at: base + 60)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertEqual(result.actions("Versioning").count, 1, "\(result)")
        XCTAssertEqual(read("dst/b.txt"), "AAAA")
        XCTAssertEqual(read("dst/.plugsync-versions/\(stamp(base + 60))/b.txt"), "B")
    }

    func testEditDeleteAndFolderDeletedOnAnExt4Drive() throws {
        try requireLoopDrives(["ext4"])
        let drive = try makeLoopDrive("versions", kind: "ext4", megabytes: 32)
        try checkEditAndDelete(drive.mount + "/backup")
        XCTAssertNil(try fsckLoopDrive(drive))
    }

    func testEditDeleteAndFolderDeletedOnAFatDrive() throws {
        try requireLoopDrives(["fat"])
        let drive = try makeLoopDrive("versions", kind: "fat", megabytes: 32)
        try checkEditAndDelete(drive.mount + "/backup")
        XCTAssertNil(try fsckLoopDrive(drive))
    }

    func testEditDeleteAndFolderDeletedOnAnExFatDrive() throws {
        try requireLoopDrives(["exfat"])
        let drive = try makeLoopDrive("versions", kind: "exfat", megabytes: 32)
        try checkEditAndDelete(drive.mount + "/backup")
        XCTAssertNil(try fsckLoopDrive(drive))
    }

    /// Without versions, the same deletions are refused by max_delete; with them, an empty
    /// source still is.
    func testMaxDeleteCountsOnlyWhatWouldBeLost() throws {
        for name in ["a", "b", "c", "d"] { try write("src/\(name).txt", name) }
        try writeConfig(
            definition("plain", source: path("src"), destination: path("plain"), ["type: mirror"]),
            definition("kept", source: path("src"), destination: path("kept"), ["type: mirror", "versions: {}"]))
        XCTAssertEqual(try run("plain", at: base).status, 0)
        XCTAssertEqual(try run("kept", at: base).status, 0)
        for name in ["a", "b", "c"] { try remove("src/\(name).txt") }
        let plain = try run("plain", at: base + 60)
        XCTAssertEqual(plain.status, 3, "75 % deleted without versions is refused\n\(plain)")
        let kept = try run("kept", at: base + 60)
        XCTAssertEqual(kept.status, 0, "\(kept)")
        XCTAssertEqual(kept.actions("Deleting").count, 3, "\(kept)")

        try remove("src/d.txt")
        let empty = try run("kept", at: base + 120)
        XCTAssertEqual(empty.status, 3, "an empty source never empties a mirror\n\(empty)")
        XCTAssertTrue(exists("kept/d.txt"))
    }

    /// Two runs that start in the same second keep their versions in two folders.
    func testRunsInTheSameSecondKeepEachTheirVersions() throws {
        try write("src/a.txt", "one")
        try versionsConfig(path("dst"))
        XCTAssertEqual(try run("m", at: base).status, 0)
        try write("src/a.txt", "two-")
        XCTAssertEqual(try run("m", at: base).status, 0)
        try write("src/a.txt", "three")
        XCTAssertEqual(try run("m", at: base).status, 0)
        XCTAssertEqual(read("dst/.plugsync-versions/\(stamp(base + 1))/a.txt"), "one")
        XCTAssertEqual(read("dst/.plugsync-versions/\(stamp(base + 2))/a.txt"), "two-")
        XCTAssertEqual(read("dst/a.txt"), "three")
    }

    /// A `.plugsync-versions` folder on the source is not copied.
    func testTheVersionsFolderIsNeverSynchronized() throws {
        try write("src/a.txt", "a")
        try write("src/.plugsync-versions/2026-01-01_000000/x.txt", "not data")
        try versionsConfig(path("dst"))
        let result = try run("m", at: base)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertFalse(exists("dst/.plugsync-versions/2026-01-01_000000/x.txt"), "\(result)")
        XCTAssertTrue(exists("dst/a.txt"))
    }

    /// The same file changed in five runs with `keep_max: 3`, `keep_min: 2`: the three newest
    /// versions stay, and `plugsync versions` lists them newest first.
    func testPruningByCountAndTheVersionsCommand() throws {
        try write("src/doc/report.odt", "v0")
        try versionsConfig(path("dst"), keep: "{keep_days: 0, keep_min: 2, keep_max: 3}")
        XCTAssertEqual(try run("m", at: base).status, 0)
        var pruned: [String] = []
        for i in 1...5 {
            try write("src/doc/report.odt", "v\(i)" + String(repeating: "+", count: i))
            let result = try run("m", at: base + i * 3600)
            XCTAssertEqual(result.status, 0, "\(result)")
            pruned += result.lines.filter { $0.hasPrefix("Pruning ") }
        }
        XCTAssertEqual(
            pruned,
            [
                action("Pruning", "more than 3 versions", stamp(base + 3600) + "/doc/report.odt"),
                action("Pruning", "more than 3 versions", stamp(base + 2 * 3600) + "/doc/report.odt"),
            ])
        let kept = try FileManager.default.contentsOfDirectory(atPath: path("dst/.plugsync-versions")).sorted()
        XCTAssertEqual(kept, [3, 4, 5].map { stamp(base + $0 * 3600) }, "empty run folders are removed")
        XCTAssertEqual(read("dst/.plugsync-versions/\(stamp(base + 5 * 3600))/doc/report.odt"), "v4++++")

        let listed = try plugsync("versions", "m", "doc/report.odt")
        XCTAssertEqual(listed.status, 0, "\(listed)")
        func time(_ seconds: Int) -> String {
            let text = stamp(seconds)
            let chars = Array(text)
            return String(chars[0..<10]) + " " + String(chars[11..<13]) + ":" + String(chars[13..<15]) + ":"
                + String(chars[15..<17])
        }
        XCTAssertEqual(
            listed.lines,
            [
                "\(time(base + 5 * 3600)) 6 B doc/report.odt", "\(time(base + 4 * 3600)) 5 B doc/report.odt",
                "\(time(base + 3 * 3600)) 4 B doc/report.odt",
            ], "\(listed)")
        XCTAssertEqual(try plugsync("versions", "m", "doc").lines.count, 3)
        XCTAssertEqual(
            try plugsync("versions", "m", "other.txt").lines, ["No versions of other.txt on \(path("dst"))."])
    }

    /// `keep_days: 2`, `keep_min: 2`: versions older than two days go, except the two newest
    /// of each path; a run folder left empty is removed, one that still holds a version stays.
    func testPruningByAgeKeepsTheMinimum() throws {
        try write("src/a.txt", "a0")
        try write("src/b.txt", "b0")
        try versionsConfig(path("dst"), keep: "{keep_days: 2, keep_min: 2, keep_max: 0}")
        XCTAssertEqual(try run("m", at: base - 60).status, 0)
        // Day 0: a.txt changed and b.txt deleted; days 1 and 2: a.txt changed again.
        try write("src/a.txt", "a1-")
        try remove("src/b.txt")
        XCTAssertEqual(try run("m", at: base).status, 0)
        for i in 1...2 {
            try write("src/a.txt", "a\(i + 1)" + String(repeating: "-", count: i + 1))
            let result = try run("m", at: base + i * day)
            XCTAssertEqual(result.status, 0, "\(result)")
            XCTAssertFalse(result.stdout.contains("Pruning"), "nothing is older than two days yet\n\(result)")
        }
        // Day 10: a.txt's versions of days 0 and 1 go (two stay: days 2 and 10); b.txt's only
        // version stays (keep_min), so day 0's folder stays too.
        try write("src/a.txt", "a10")
        let late = try run("m", at: base + 10 * day)
        XCTAssertEqual(late.status, 0, "\(late)")
        XCTAssertEqual(
            late.lines.filter { $0.hasPrefix("Pruning ") },
            [
                action("Pruning", "older than 2 days", stamp(base) + "/a.txt"),
                action("Pruning", "older than 2 days", stamp(base + day) + "/a.txt"),
            ], "\(late)")
        XCTAssertTrue(late.summary?.contains("2 pruned") == true, "\(late)")
        let kept = try FileManager.default.contentsOfDirectory(atPath: path("dst/.plugsync-versions")).sorted()
        XCTAssertEqual(kept, [stamp(base), stamp(base + 2 * day), stamp(base + 10 * day)])
        XCTAssertEqual(read("dst/.plugsync-versions/\(stamp(base))/b.txt"), "b0")
        XCTAssertFalse(exists("dst/.plugsync-versions/\(stamp(base))/a.txt"))
    }

    /// `show` writes the versions back; `edit --versions` changes and removes them.
    func testShowAndEdit() throws {
        try versionsConfig(path("dst"), keep: "{keep_days: 7}")
        func versionLines(_ result: CommandResult) -> [String] {
            Array(result.lines.drop { $0 != "versions:" }.prefix(4))
        }
        let shown = try plugsync("show", "m")
        XCTAssertEqual(versionLines(shown), ["versions:", "keep_days: 7", "keep_min: 3", "keep_max: 20"], "\(shown)")
        XCTAssertEqual(try plugsync("edit", "m", "--versions", "10,2,5").status, 0)
        XCTAssertEqual(
            versionLines(try plugsync("show", "m")), ["versions:", "keep_days: 10", "keep_min: 2", "keep_max: 5"])
        XCTAssertTrue(try String(contentsOfFile: configPath, encoding: .utf8).contains("keep_days: 10"))
        let bad = try plugsync("edit", "m", "--versions", "10,6,5")
        XCTAssertEqual(bad.status, 2, "\(bad)")
        XCTAssertTrue(bad.stderr.contains("keep_min (6) is more than keep_max (5)"), "\(bad)")
        XCTAssertEqual(try plugsync("edit", "m", "--versions", "off").status, 0)
        XCTAssertFalse(try plugsync("show", "m").stdout.contains("versions"))
    }
    /// A dry run says what it would keep, and keeps nothing; a backup (which never deletes)
    /// keeps what it replaces.
    func testDryRunAndBackup() throws {
        try write("src/a.txt", "old")
        try write("src/b.txt", "bee")
        try writeConfig(
            definition("m", source: path("src"), destination: path("dst"), ["type: mirror", "versions: {}"]),
            definition("b", source: path("src"), destination: path("bak"), ["type: backup", "versions: {}"]))
        XCTAssertEqual(try run("m", at: base).status, 0)
        XCTAssertEqual(try run("b", at: base).status, 0)
        try write("src/a.txt", "newer")
        try remove("src/b.txt")
        let dry = try run("m", at: base + 60, "--dry-run")
        XCTAssertEqual(dry.status, 0, "\(dry)")
        XCTAssertEqual(
            dry.actions("Versioning"),
            [
                action("Versioning", "destination file size differs", "a.txt"),
                action("Versioning", "destination file is orphaned", "b.txt"),
            ], "\(dry)")
        XCTAssertTrue(dry.summary?.contains("keep 2 versions") == true, "\(dry)")
        XCTAssertFalse(exists("dst/.plugsync-versions"), "a dry run changes nothing")
        XCTAssertEqual(read("dst/a.txt"), "old")

        let backup = try run("b", at: base + 60)
        XCTAssertEqual(backup.status, 0, "\(backup)")
        XCTAssertEqual(backup.actions("Versioning"), [action("Versioning", "destination file size differs", "a.txt")])
        XCTAssertEqual(read("bak/.plugsync-versions/\(stamp(base + 60))/a.txt"), "old")
        XCTAssertEqual(read("bak/b.txt"), "bee", "a backup deletes nothing")
    }

    /// Runs killed (SIGKILL) at seeded moments while they replace files: every final name holds
    /// the whole old or the whole new file (or, where the destination has no hard links, is
    /// absent while its old file lies in the versions folder), and the next run completes.
    func checkKilledWhileReplacing(_ destination: String, trials: Int, files: Int, linksKeepName: Bool) throws {
        var random = SplitMix64(seed: 2222)
        func content(_ round: Int, _ file: Int) -> String {
            "round \(round) file \(file)\n" + String(repeating: "r", count: (round * 7 + file) % 50)
        }
        for file in 0..<files { try write("src/d\(file % 4)/f\(file).txt", content(0, file)) }
        try writeConfig(
            definition(
                "m", source: path("src"), destination: destination, ["type: mirror", "versions: {keep_days: 0}"]))
        XCTAssertEqual(try run("m", at: base).status, 0)
        var killedBetween = 0
        for trial in 1...trials {
            for file in 0..<files { try write("src/d\(file % 4)/f\(file).txt", content(trial, file)) }
            let started = base + trial * 60
            let folder = destination + "/.plugsync-versions/" + stamp(started)
            let running = try startPlugsync(
                ["run", "m", "--config", configPath], environment: ["PLUGSYNC_NOW": "\(started)"])
            let deadline = Date().addingTimeInterval(30)
            while running.process.isRunning && !FileManager.default.fileExists(atPath: folder) && Date() < deadline {
                usleep(100)
            }
            usleep(useconds_t(random.below(30_000)))
            kill(running.process.processIdentifier, SIGKILL)
            running.process.waitUntilExit()
            for file in 0..<files {
                let relative = "d\(file % 4)/f\(file).txt"
                let final = try? String(contentsOfFile: destination + "/" + relative, encoding: .utf8)
                let kept = try? String(contentsOfFile: folder + "/" + relative, encoding: .utf8)
                if let final {
                    XCTAssertTrue(
                        final == content(trial, file) || final == content(trial - 1, file),
                        "trial \(trial): \(relative) holds neither the whole old nor the whole new file")
                    if final == content(trial - 1, file) && kept != nil { killedBetween += 1 }
                } else {
                    XCTAssertFalse(linksKeepName, "trial \(trial): \(relative) is absent")
                    XCTAssertEqual(kept, content(trial - 1, file), "trial \(trial): \(relative) is absent and not kept")
                    killedBetween += 1
                }
            }
            let next = try run("m", at: started + 30)
            XCTAssertEqual(next.status, 0, "trial \(trial): \(next)")
            for file in 0..<files {
                XCTAssertEqual(
                    try? String(contentsOfFile: destination + "/d\(file % 4)/f\(file).txt", encoding: .utf8),
                    content(trial, file), "trial \(trial): the next run completes")
            }
        }
        print("killed between the two steps: \(killedBetween) files in \(trials) trials")
    }

    func testKilledWhileReplacingInALocalFolder() throws {
        try checkKilledWhileReplacing(path("dst"), trials: 20, files: 400, linksKeepName: true)
    }

    func testKilledWhileReplacingOnAFatDrive() throws {
        try requireLoopDrives(["fat"])
        let drive = try makeLoopDrive("versions", kind: "fat", megabytes: 32)
        try checkKilledWhileReplacing(drive.mount + "/backup", trials: 6, files: 60, linksKeepName: false)
        XCTAssertNil(try fsckLoopDrive(drive))
    }
    /// `restore`: a deleted file back into the source, a file as it was between two versions
    /// (not over a newer one without --force), a folder at a time into another folder.
    func testRestore() throws {
        func minute(_ seconds: Int) -> String {
            var time = time_t(seconds)
            var parts = tm()
            localtime_r(&time, &parts)
            var text = [CChar](repeating: 0, count: 32)
            strftime(&text, text.count, "%Y-%m-%d %H:%M", &parts)
            return String(cString: text)
        }
        let when = 1_700_000_000
        try write("src/doc/report.odt", "v1", mtime: FileTime(when))
        try write("src/doc/notes.txt", "notes", mtime: FileTime(when + 5))
        try write("src/other.txt", "other")
        try versionsConfig(path("dst"))
        XCTAssertEqual(try run("m", at: base).status, 0)
        try write("src/doc/report.odt", "v2-", mtime: FileTime(when + 100))
        XCTAssertEqual(try run("m", at: base + 3600).status, 0)
        try write("src/doc/report.odt", "v3--", mtime: FileTime(when + 200))
        try remove("src/doc/notes.txt")
        XCTAssertEqual(try run("m", at: base + 7200).status, 0)

        let dry = try plugsync("restore", "m", "doc/notes.txt", "--dry-run")
        XCTAssertEqual(dry.status, 0, "\(dry)")
        XCTAssertFalse(exists("src/doc/notes.txt"), "a dry run restores nothing")
        let deleted = try plugsync("restore", "m", "doc/notes.txt")
        XCTAssertEqual(deleted.status, 0, "\(deleted)")
        XCTAssertEqual(read("src/doc/notes.txt"), "notes")
        XCTAssertEqual(mtime("src/doc/notes.txt"), Int64(when + 5) * 1_000_000_000, "its time comes back")

        // Between the first and the second run: v1, older than the source's v3.
        let early = minute(base + 1800)
        let kept = try plugsync("restore", "m", "doc/report.odt", "--at", early)
        XCTAssertEqual(kept.status, 0, "\(kept)")
        XCTAssertTrue(
            kept.lines.contains(action("Skipping", "target file is newer; --force replaces it", "doc/report.odt")),
            "\(kept)")
        XCTAssertEqual(read("src/doc/report.odt"), "v3--")
        let forced = try plugsync("restore", "m", "doc/report.odt", "--at", early, "--force")
        XCTAssertEqual(forced.status, 0, "\(forced)")
        XCTAssertEqual(read("src/doc/report.odt"), "v1")

        // Between the second and the third run, the folder, elsewhere.
        let folder = try plugsync("restore", "m", "doc", "--at", minute(base + 5400), "--to", path("restored"))
        XCTAssertEqual(folder.status, 0, "\(folder)")
        XCTAssertEqual(read("restored/doc/report.odt"), "v2-")
        XCTAssertEqual(read("restored/doc/notes.txt"), "notes")
        XCTAssertFalse(exists("restored/other.txt"))

        let nothing = try plugsync("restore", "m", "no-such.txt")
        XCTAssertEqual(nothing.status, 1, "\(nothing)")
        XCTAssertEqual(try plugsync("restore", "m", "doc", "--at", "yesterday").status, 2)
    }
}
