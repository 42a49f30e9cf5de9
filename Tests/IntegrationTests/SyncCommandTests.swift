import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync sync SOURCE DESTINATION`: one run with no definitions file, as `run` runs.
final class SyncCommandTests: IntegrationTestCase {
    /// No definitions file anywhere: `sync` must not need one, nor create one.
    private var noConfig: [String: String] {
        ["HOME": path("home"), "XDG_CONFIG_HOME": path("home/.config"), "PLUGSYNC_CONFIG": ""]
    }

    private func sync(_ arguments: String...) throws -> CommandResult {
        try plugsync(arguments: ["sync"] + arguments, config: nil, environment: noConfig)
    }

    // MARK: sync

    func testSyncCopiesBetweenRelativeFoldersAsABackup() throws {
        try write("src/a.txt", "a\n")
        try write("src/sub/b.txt", "b\n")
        try write("src/junk.tmp", "junk\n")
        try write("dst/mine.txt", "the user's own file\n")

        let first = try sync("src", "dst", "--ignore", #"\.tmp$"#)
        assertExit(first, 0)
        assertNoCrash(first)
        XCTAssertEqual(read("dst/a.txt"), "a\n", "\(first)")
        XCTAssertEqual(read("dst/sub/b.txt"), "b\n", "\(first)")
        XCTAssertNil(read("dst/junk.tmp"), "an ignored file was copied\n\(first)")
        XCTAssertEqual(read("dst/mine.txt"), "the user's own file\n", "a backup deleted the user's file")
        XCTAssertEqual(first.actions("Copying").count, 2, "\(first)")
        XCTAssertTrue(first.summary?.hasPrefix("Done: 2 copied") == true, "\(first)")
        XCTAssertFalse(exists("home/.config/plugsync/plugsync.yaml"), "sync wrote a definitions file")
        // Not in the run history (only a lock, one per pair of endpoints).
        let state = try FileManager.default.contentsOfDirectory(atPath: stateDirectory)
        XCTAssertEqual(state, ["locks"], "\(state)")
        let locks = try FileManager.default.contentsOfDirectory(atPath: stateDirectory + "/locks")
        XCTAssertEqual(locks.count, 1, "\(locks)")
        XCTAssertTrue(locks.first?.hasPrefix("sync-") == true, "\(locks)")

        // Nothing to do: a few lines, no action.
        let second = try sync("./src/", path("dst"), "--ignore", #"\.tmp$"#)
        assertExit(second, 0)
        XCTAssertEqual(second.actions, [], "\(second)")
        XCTAssertLessThanOrEqual(second.lines.count, 3, "\(second)")

        // A mirror's dry run shows the deletion, and does nothing.
        let dry = try sync("src", "dst", "--type", "mirror", "--dry-run", "--ignore", #"\.tmp$"#)
        assertExit(dry, 0)
        XCTAssertEqual(dry.actions("Deleting").count, 1, "\(dry)")
        XCTAssertTrue(dry.actions("Deleting").first?.hasSuffix("mine.txt") == true, "\(dry)")
        XCTAssertTrue(dry.summary?.hasPrefix("Dry run: would copy 0") == true, "\(dry)")
        XCTAssertEqual(read("dst/mine.txt"), "the user's own file\n", "a dry run deleted")

        let mirror = try sync("src", "dst", "--type", "mirror", "-q")
        assertExit(mirror, 0)
        XCTAssertNil(read("dst/mine.txt"), "the mirror kept what the source lacks\n\(mirror)")
        XCTAssertEqual(read("dst/junk.tmp"), "junk\n", "\(mirror)")
        XCTAssertEqual(mirror.lines.count, 1, "-q prints the summary only\n\(mirror)")
    }

    func testSyncKeepsRunsSafetyRails() throws {
        try write("src/one.txt", "1\n")
        for index in 0..<6 { try write("dst/own\(index).txt", "\(index)\n") }

        // A mirror that would delete 6 of 7 entries is refused (max_delete 50 %): exit 3, nothing done.
        let refused = try sync("src", "dst", "--type", "mirror")
        assertExit(refused, 3)
        XCTAssertTrue(
            refused.stderr.contains("would delete 6 of 6 destination entries, more than max_delete"), "\(refused)")
        XCTAssertEqual(read("dst/own0.txt"), "0\n")
        XCTAssertNil(read("dst/one.txt"), "a refused run copied\n\(refused)")
        // … unless allowed, as with run.
        assertExit(try sync("src", "dst", "--type", "mirror", "--max-delete", "10"), 0)
        XCTAssertNil(read("dst/own0.txt"))

        // One folder inside the other: refused as run refuses it.
        let overlap = try sync("src", "src/inner")
        assertExit(overlap, 3)
        XCTAssertTrue(overlap.stderr.contains("overlap"), "\(overlap)")
        XCTAssertFalse(exists("src/inner/one.txt"))

        // A File Check that fails refuses the run.
        let check = try sync("src", "dst", "--destination-check", ".plugsync-id=^blue$")
        assertExit(check, 3)
        XCTAssertTrue(check.stderr.contains("File Check of the destination failed"), "\(check)")
    }

    func testSyncReportsBadValuesByTheirOption() throws {
        try write("src/a.txt", "a\n")
        let cases: [([String], String)] = [
            (["src", "dst", "--ignore", "*.tmp"], "plugsync: --ignore: bad regex \"*.tmp\""),
            (["src", "dst", "--type", "sideways"], "plugsync: --type sideways"),
            (["src", "dst", "--destination-check", "../id"], "plugsync: --destination-check"),
            (["src", "dst", "--parallel", "0"], "plugsync: --parallel"),
            (["src", "ftp://ana:secret@example.com/dir"], "plugsync: DESTINATION: "),
            (["src", "device:directory=x"], "plugsync: DESTINATION: "),
            (["src", "device:colour=red"], "plugsync: DESTINATION: "),
        ]
        for (arguments, start) in cases {
            let result = try plugsync(arguments: ["sync"] + arguments, config: nil, environment: noConfig)
            assertExit(result, 2)
            XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
            XCTAssertTrue(result.stderr.hasPrefix(start), "expected \(start)\n\(result)")
            XCTAssertFalse(result.stderr.contains(".yaml"), "\(result)")
            XCTAssertFalse(result.stderr.contains("definitions["), "\(result)")
            XCTAssertFalse(exists("dst"), "\(arguments) wrote\n\(result)")
        }
        // The password in a URL is never echoed.
        let password = try sync("src", "ftp://ana:secret@example.com/dir")
        XCTAssertFalse(password.stderr.contains("secret"), "\(password)")
    }

    /// Two syncs of the same endpoints run one after the other (a lock per pair); Ctrl-C stops a
    /// sync as it stops `run`: `Stopped: …` with its counts, exit 130, nothing started after it.
    func testSyncWaitsForTheSamePairAndStopsOnCtrlC() throws {
        for index in 0..<5 { try write("src/f\(index).txt", "\(index)\n") }
        assertExit(try sync("src", "dst"), 0)
        try write("src/new.txt", "new\n")
        let locks = try FileManager.default.contentsOfDirectory(atPath: stateDirectory + "/locks")
        let lock = stateDirectory + "/locks/" + (try XCTUnwrap(locks.first))

        // Another run of the pair holds the lock until a file appears.
        let release = path("release")
        let holder = try shell(
            "flock -x \(quote(lock)) sh -c 'touch \(quote(path("held"))); while [ ! -e \(quote(release)) ]; do sleep 0.05; done' >/dev/null 2>&1 & echo $!"
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        addTeardownBlock { [self] in _ = try? shell("touch \(quote(release)); kill \(holder) 2>/dev/null; true") }
        for _ in 0..<200 where !exists("held") { usleep(20_000) }
        XCTAssertTrue(exists("held"), "the lock holder did not start")

        var environment = noConfig
        environment["PLUGSYNC_STATE_DIR"] = stateDirectory
        let running = try startPlugsync(["sync", "src", "dst"], environment: environment)
        let outPath = running.outPath
        func said(_ text: String) -> Bool {
            ((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").contains(text)
        }
        for _ in 0..<500 where !said("Waiting for the running sync of sync to finish.") { usleep(20_000) }
        XCTAssertTrue(said("Waiting for the running sync of sync to finish."), "the second sync did not wait")
        XCTAssertTrue(running.process.isRunning)
        kill(running.process.processIdentifier, SIGINT)
        usleep(200_000)
        try shell("touch \(quote(release))")
        running.process.waitUntilExit()
        let result = running.result()
        XCTAssertEqual(result.status, 130, "\(result)")
        XCTAssertTrue(result.summary?.hasPrefix("Stopped:") == true, "\(result)")
        XCTAssertNil(read("dst/new.txt"), "a file was started after Ctrl-C\n\(result)")
    }
}
