import Foundation
import XCTest

/// Backup vs mirror, `recursive: false`, `ignore`, `--dry-run`, `--quiet`, `--group`/`--all`,
/// the log file and `status`.
final class RunOptionsTests: IntegrationTestCase {
    func testBackupNeverDeletes() throws {
        let src = path("src")
        let dst = path("dst")
        try write("src/a.txt", "a v1\n", mtime: FileTime(1_700_000_000, 1))
        try write("src/b.txt", "b\n", mtime: FileTime(1_700_000_000, 2))
        try write("src/dir/c.txt", "c\n", mtime: FileTime(1_700_000_000, 3))
        try writeConfig(definition("keep", source: src, destination: dst, ["type: backup"]))
        let first = try plugsync("run", "keep")
        assertExit(first, 0)
        XCTAssertEqual(first.lines.first, "Sync keep started (backup, trigger: manual)", "\(first)")

        try write("dst/orphan.txt", "only here\n")
        try write("dst/orphan-dir/x.txt", "only here too\n")
        try write("src/a.txt", "a v2, longer\n", mtime: FileTime(1_700_000_100, 1))
        try remove("src/b.txt")
        try remove("src/dir")
        try write("src/new.txt", "new\n")
        let before = try snapshot(dst)

        let second = try plugsync("run", "keep")
        assertExit(second, 0)
        assertActions(
            second,
            [
                action("Copying", "destination file size differs", "a.txt"),
                action("Copying", "destination file not found", "new.txt"),
            ])
        XCTAssertEqual(second.actions("Deleting"), [])
        XCTAssertTrue(second.summary?.contains(" 0 deleted") == true, "\(second)")
        let after = try snapshot(dst)
        for kept in ["orphan.txt", "orphan-dir", "orphan-dir/x.txt", "b.txt", "dir", "dir/c.txt"] {
            XCTAssertEqual(after[kept], before[kept], "\(kept) must be left as it was by a backup")
        }
        XCTAssertEqual(read("dst/a.txt"), "a v2, longer\n")
        XCTAssertEqual(read("dst/new.txt"), "new\n")
    }

    /// A backup cannot put a folder where the destination has a file without deleting it: the
    /// entry fails (exit 1) and the file stays.
    func testBackupKindConflictFailsAndKeepsTheFile() throws {
        try write("src/x/inside.txt", "in a folder\n")
        try write("src/ok.txt", "ok\n")
        try write("dst/x", "a file in the way\n")
        try writeConfig(definition("keep", source: path("src"), destination: path("dst"), ["type: backup"]))
        let result = try plugsync("run", "keep")
        assertExit(result, 1)
        assertNoCrash(result)
        XCTAssertEqual(result.actions("Failed").count, 1, "\(result)")
        XCTAssertTrue(result.actions("Failed").first?.hasSuffix(" x") == true, "\(result)")
        // The failure goes to standard error, the actions to standard output.
        XCTAssertEqual(result.stderrActions, result.actions("Failed"), "\(result)")
        XCTAssertTrue(result.stdoutActions.allSatisfy { !$0.hasPrefix("Failed ") }, "\(result)")
        XCTAssertEqual(result.stdoutActions, [action("Copying", "destination file not found", "ok.txt")], "\(result)")
        XCTAssertEqual(read("dst/x"), "a file in the way\n")
        XCTAssertEqual(read("dst/ok.txt"), "ok\n")

        // --quiet still says which entry failed: on standard error, besides the summary.
        let quiet = try plugsync("run", "keep", "--quiet")
        assertExit(quiet, 1)
        XCTAssertEqual(quiet.lines.count, 1, "\(quiet)")
        XCTAssertTrue(quiet.lines.first?.hasPrefix("keep: Done with failures:") == true, "\(quiet)")
        XCTAssertEqual(quiet.stderrActions.count, 1, "\(quiet)")
        XCTAssertTrue(quiet.stderrActions.first?.hasPrefix("Failed (destination is a file") == true, "\(quiet)")
        XCTAssertTrue(quiet.stderrActions.first?.hasSuffix(" x") == true, "\(quiet)")
    }

    func testNonRecursiveLeavesSubfoldersAlone() throws {
        let src = path("src")
        let dst = path("dst")
        try write("src/top.txt", "top\n")
        try write("src/sub/inner.txt", "inner\n")
        try write("src/newsub/n.txt", "n\n")
        try write("dst/sub/old.txt", "old, in a subfolder\n")
        try write("dst/olddir/o.txt", "old folder\n")
        try write("dst/stale.txt", "stale\n")
        try writeConfig(definition("flat", source: src, destination: dst, ["recursive: false", "max_delete: 100%"]))
        let before = try snapshot(dst)

        let result = try plugsync("run", "flat")
        assertExit(result, 0)
        assertActions(
            result,
            [
                action("Copying", "destination file not found", "top.txt"),
                action("Deleting", "destination file is orphaned", "stale.txt"),
            ])
        let after = try snapshot(dst)
        XCTAssertEqual(Set(after.keys), ["top.txt", "sub", "sub/old.txt", "olddir", "olddir/o.txt"])
        for path in ["sub", "sub/old.txt", "olddir", "olddir/o.txt"] {
            XCTAssertEqual(after[path], before[path], "\(path) must be left alone")
        }
    }

    /// `glob:` patterns (shell-style; with a `/`, on the path from the endpoint's root, `**`
    /// across folders) and `re:` beside bare regexes, on both sides.
    func testGlobAndRegexIgnorePatterns() throws {
        let src = path("src")
        let dst = path("dst")
        for file in [
            "a.txt", "a.tmp", "notes.TMP", "build/out.o", "build/keep.c", "lib/build/x.o", "deep/a/cache/c.bin",
            "cache/top.bin", "~lock", "[x].txt",
        ] {
            try write("src/" + file, file + "\n")
        }
        try write("dst/old.tmp", "an ignored orphan\n")
        try writeConfig(
            definition(
                "globs", source: src, destination: dst,
                [
                    "ignore: ['glob:*.tmp', 'glob:/build/*.o', 'glob:**/cache/**', 're:^~', 'glob:\\[x].txt']",
                    "type: mirror",
                ]))
        let result = try plugsync("run", "globs")
        assertExit(result, 0)
        XCTAssertEqual(
            Set(try snapshot(dst).keys),
            [
                "a.txt", "notes.TMP", "build", "build/keep.c", "lib", "lib/build", "lib/build/x.o", "deep", "deep/a",
                "deep/a/cache", "cache", "old.tmp",
            ], "\(result)")
        XCTAssertEqual(read("dst/old.tmp"), "an ignored orphan\n")
    }

    /// A definition without `type:` is a backup: new and changed files are copied, an orphan on
    /// the destination stays (only a definition that says `type: mirror` deletes).
    func testADefinitionWithoutATypeIsABackup() throws {
        try write("src/a.txt", "new\n")
        try write("dst/mine.txt", "the user's own file\n")
        try
            ([
                "definitions:", "  - name: plain", "    source:", "      local: '\(path("src"))'", "    destination:",
                "      local: '\(path("dst"))'",
            ].joined(separator: "\n") + "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        let result = try plugsync("run", "plain")
        assertExit(result, 0)
        XCTAssertTrue(result.lines.contains { $0.hasPrefix("Sync plain started (backup,") }, "\(result)")
        XCTAssertEqual(read("dst/a.txt"), "new\n")
        XCTAssertEqual(read("dst/mine.txt"), "the user's own file\n", "a backup deletes nothing")
        XCTAssertTrue(try plugsync("show", "plain").stdout.contains("type: backup"))
    }

    func testIgnoredEntriesAreNeitherCopiedNorDeleted() throws {
        let src = path("src")
        let dst = path("dst")
        try write("src/doc.txt", "doc\n")
        try write("src/thumbs.db", "cache\n")
        try write("src/~$doc.txt", "office lock file\n")
        try write("src/cache/big.bin", "ignored folder\n")
        try write("src/sub/local.db", "ignored in a subfolder\n")
        try write("src/sub/keep.txt", "kept\n")
        try write("dst/keep.db", "ignored orphan\n")
        try write("dst/cache/old", "ignored orphan folder\n")
        try write("dst/orphan.txt", "orphan\n")
        try write("dst/gone/x.db", "an orphan folder that holds an ignored file\n")
        try writeConfig(
            definition(
                "ign", source: src, destination: dst, [#"ignore: ['\.db$', '^~\$', '^cache$']"#, "max_delete: 100%"]))

        // With -v: the orphan folder that is kept changes nothing, and shows only in the full report.
        let result = try plugsync("run", "ign", "-v")
        assertExit(result, 0)
        assertActions(
            result,
            [
                action("Copying", "destination file not found", "doc.txt"),
                action("Creating", "destination folder not found", "sub/"),
                action("Copying", "destination file not found", "sub/keep.txt"),
                action("Deleting", "destination file is orphaned", "orphan.txt"),
                action("Keeping", "folder still holds ignored entries", "gone/"),
            ])
        XCTAssertEqual(
            Set(try snapshot(dst).keys),
            ["doc.txt", "sub", "sub/keep.txt", "keep.db", "cache", "cache/old", "gone", "gone/x.db"])
        XCTAssertEqual(read("dst/keep.db"), "ignored orphan\n")
        XCTAssertEqual(read("dst/cache/old"), "ignored orphan folder\n")
    }

    func testDryRunChangesNothing() throws {
        let src = path("src")
        let dst = path("dst")
        try write("src/same.txt", "same\n")
        try write("src/changed.txt", "v1\n", mtime: FileTime(1_700_000_000))
        try write("src/kind", "a file\n")
        try write("src/dir/a.txt", "a\n")
        try writeConfig(
            definition("dry", source: src, destination: dst, ["max_delete: 100%"]),
            definition("fresh", source: src, destination: path("never-created/dst")))
        assertExit(try plugsync("run", "dry"), 0)

        try write("src/changed.txt", "v2\n", mtime: FileTime(1_700_000_100))
        try write("src/new/deep/n.txt", "new\n")
        try remove("src/kind")
        try write("src/kind/inside.txt", "now a folder\n")
        try write("dst/orphan.txt", "orphan\n")
        try remove("dst/dir/a.txt")
        let sourceBefore = try snapshot(src)
        let destinationBefore = try snapshot(dst)

        let dry = try plugsync("run", "dry", "--dry-run")
        assertExit(dry, 0)
        XCTAssertTrue(dry.lines.first?.contains("dry run") == true, "\(dry)")
        // The summary says what the real run would do, not what was done.
        XCTAssertTrue(
            dry.summary?.hasPrefix("Dry run: would copy 4 (22 B), create 3 folders, delete 2; 1 skipped, 0 would fail")
                == true, "\(dry)")
        XCTAssertFalse(dry.summary?.contains("/s)") == true, "a dry run reports no transfer rate\n\(dry)")
        let expected = [
            action("Copying", "destination file is older", "changed.txt"),
            action("Copying", "destination file not found", "dir/a.txt"),
            action("Replacing", "destination is a file", "kind"),
            action("Copying", "destination file not found", "kind/inside.txt"),
            action("Creating", "destination folder not found", "new/"),
            action("Creating", "destination folder not found", "new/deep/"),
            action("Copying", "destination file not found", "new/deep/n.txt"),
            action("Deleting", "destination file is orphaned", "orphan.txt"),
        ]
        assertActions(dry, expected)
        // The full report adds the file that is up to date.
        let verbose = try plugsync("run", "dry", "--dry-run", "--verbose")
        assertExit(verbose, 0)
        assertActions(verbose, expected + [action("Skipping", "destination file is up to date", "same.txt")])
        XCTAssertEqual(try snapshot(src), sourceBefore, "a dry run changed the source")
        XCTAssertEqual(try snapshot(dst), destinationBefore, "a dry run changed the destination")

        let freshDry = try plugsync("run", "fresh", "--dry-run")
        assertExit(freshDry, 0)
        XCTAssertFalse(exists("never-created"), "a dry run created the destination folder\n\(freshDry)")

        // The real run does what the dry run said.
        let real = try plugsync("run", "dry")
        assertExit(real, 0)
        assertActions(real, expected)
        try assertSameTree(src, dst)
    }

    func testLogFileGetsTheSameLinesWithTimestamps() throws {
        let src = path("src")
        let dst = path("dst")
        let log = path("logs/sub/logged.txt")
        try write("src/a.txt", "a\n")
        try write("src/b/c.txt", "c\n")
        try write("dst/orphan.txt", "o\n")
        try writeConfig(
            definition("logged", source: src, destination: dst, ["log_file: '\(log)'", "max_delete: 100%"]))
        let run = try plugsync("run", "logged")
        assertExit(run, 0)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        let logLines = text.split(separator: "\n").map(String.init)
        let stamp = try NSRegularExpression(pattern: #"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} "#)
        for line in logLines {
            XCTAssertNotNil(
                stamp.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)), "no timestamp: \(line)")
        }
        let stripped = logLines.map { collapse(String($0.dropFirst(20))) }
        XCTAssertEqual(stripped, run.lines, "the log must hold the lines printed on stdout")

        // A second run appends; with --quiet the log still gets what a run without it prints:
        // the new file's line, and no line for the files already up to date.
        try write("src/new.txt", "new\n")
        let quiet = try plugsync("run", "logged", "--quiet")
        assertExit(quiet, 0)
        XCTAssertEqual(quiet.actions, [], "--quiet printed action lines\n\(quiet)")
        XCTAssertEqual(quiet.lines.count, 1, "--quiet prints one line per definition\n\(quiet)")
        XCTAssertTrue(quiet.lines.first?.hasPrefix("logged: Done: 1 copied") == true, "\(quiet)")
        XCTAssertEqual(quiet.stderr, "", "\(quiet)")
        func logged() throws -> [String] {
            try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map {
                collapse(String($0.dropFirst(20)))
            }
        }
        let again = try logged()
        XCTAssertEqual(Array(again.prefix(stripped.count)), stripped, "the log must be appended to")
        XCTAssertTrue(
            again.contains(action("Copying", "destination file not found", "new.txt")), again.joined(separator: "\n"))
        XCTAssertFalse(again.contains { $0.hasPrefix("Skipping ") }, again.joined(separator: "\n"))

        // log_level: full logs the full report: a line for every file that is up to date too.
        try writeConfig(
            definition(
                "logged", source: src, destination: dst,
                ["log_file: '\(log)'", "log_level: full", "max_delete: 100%"]))
        let full = try plugsync("run", "logged")
        assertExit(full, 0)
        XCTAssertEqual(full.actions, [], "a run with nothing to do printed action lines\n\(full)")
        let fullLog = try logged().dropFirst(again.count)
        XCTAssertEqual(
            fullLog.filter(isActionLine).sorted(),
            ["a.txt", "b/c.txt", "new.txt"].map { action("Skipping", "destination file is up to date", $0) },
            fullLog.joined(separator: "\n"))
    }

    /// A bad `log_level` is refused with the key, the value and the values it may take.
    func testBadLogLevelIsRefused() throws {
        try write("src/a.txt", "a\n")
        try writeConfig(
            definition(
                "lv", source: path("src"), destination: path("dst"),
                ["log_file: '\(path("lv.txt"))'", "log_level: debug"]))
        let result = try plugsync("run", "lv")
        assertExit(result, 2)
        XCTAssertTrue(
            result.stderr.contains("log_level") && result.stderr.contains("\"debug\" is not one of normal, full"),
            "\(result)")
        XCTAssertFalse(exists("dst"), "\(result)")
    }

    /// A run with nothing to do on a 10,000-file tree prints its header and its summary, at most
    /// three lines; `-v` adds a line per file. The same for its dry run after one edit: the one
    /// change is all it lists.
    func testRunWithNothingToDoIsShort() throws {
        let src = path("src")
        try mkdir("src")
        try shell(
            "cd \(quote(src)) && for d in $(seq 0 19); do mkdir d$d; for f in $(seq 0 499); do echo \"$d $f\" > d$d/f$f.txt; done; done"
        )
        try writeConfig(definition("big", source: src, destination: path("dst")))
        // (10,000 lines: counted on the raw output, which is quicker than `actions`.)
        func count(_ text: String, _ prefix: String) -> Int {
            text.split(separator: "\n").filter { $0.hasPrefix(prefix) }.count
        }
        let first = try plugsync("run", "big")
        assertExit(first, 0)
        XCTAssertEqual(count(first.stdout, "Copying "), 10_000)

        let noop = try plugsync("run", "big")
        assertExit(noop, 0)
        XCTAssertLessThanOrEqual(noop.stdout.split(separator: "\n").count, 3, "\(noop)")
        XCTAssertEqual(noop.stderr, "", "\(noop)")
        XCTAssertTrue(noop.summary?.hasPrefix("Done: 0 copied") == true, "\(noop)")
        XCTAssertTrue(noop.summary?.contains(" 10000 skipped, 0 failed") == true, "\(noop)")

        let verbose = try plugsync("run", "big", "-v")
        assertExit(verbose, 0)
        XCTAssertEqual(count(verbose.stdout, "Skipping    (destination file is up to date) "), 10_000)
        XCTAssertEqual(verbose.stdout.split(separator: "\n").count, 10_003)

        try write("src/d7/f7.txt", "edited\n")
        let dry = try plugsync("run", "big", "--dry-run")
        assertExit(dry, 0)
        XCTAssertEqual(dry.actions, [action("Copying", "destination file size differs", "d7/f7.txt")], "\(dry)")
        XCTAssertLessThanOrEqual(dry.stdout.split(separator: "\n").count, 4, "\(dry)")
    }

    func testGroupAllAndUnknownNames() throws {
        for name in ["a", "b", "c", "d"] { try write("src-\(name)/f.txt", "\(name)\n") }
        try writeConfig(
            definition("a", source: path("src-a"), destination: path("dst-a"), ["group: g"]),
            definition("b", source: path("src-b"), destination: path("dst-b"), ["group: g"]),
            definition("c", source: path("src-c"), destination: path("dst-c")),
            definition("d", source: path("src-d"), destination: path("dst-d"), ["group: g", "enabled: false"]))

        let group = try plugsync("run", "--group", "g")
        assertExit(group, 0)
        XCTAssertTrue(exists("dst-a/f.txt") && exists("dst-b/f.txt"), "\(group)")
        XCTAssertFalse(exists("dst-c"), "c is not in group g\n\(group)")
        XCTAssertFalse(exists("dst-d"), "d is disabled\n\(group)")

        let all = try plugsync("run", "--all")
        assertExit(all, 0)
        XCTAssertTrue(exists("dst-c/f.txt"), "\(all)")
        XCTAssertFalse(exists("dst-d"), "--all runs enabled definitions only\n\(all)")

        for arguments in [["run", "nosuch"], ["run", "--group", "nosuch"], ["run"], ["run", "a", "--all"]] {
            let result = try plugsync(arguments: arguments)
            assertExit(result, 2)
            assertNoCrash(result)
            XCTAssertFalse(result.stderrLines.isEmpty, "\(result)")
        }
    }

    func testStatusShowsTheLastRun() throws {
        try write("src/f.txt", "f\n")
        try writeConfig(
            definition("ok", source: path("src"), destination: path("dst")),
            definition("refused", source: path("missing"), destination: path("dst2")))
        let never = try plugsync("status")
        assertExit(never, 0)
        XCTAssertTrue(never.lines.contains { $0.hasPrefix("ok ") && $0.contains("never") }, "\(never)")

        assertExit(try plugsync("run", "ok"), 0)
        assertExit(try plugsync("run", "refused"), 3)
        let status = try plugsync("status")
        assertExit(status, 0)
        let ok = status.lines.first { $0.hasPrefix("ok ") } ?? ""
        let refused = status.lines.first { $0.hasPrefix("refused ") } ?? ""
        XCTAssertTrue(ok.contains("manual") && ok.contains("success"), "\(status)")
        XCTAssertTrue(refused.contains("refused"), "\(status)")
        XCTAssertFalse(ok.contains("never"), "\(status)")
    }
}
