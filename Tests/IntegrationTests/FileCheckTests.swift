import Foundation
import XCTest

/// File Checks on local endpoints: a passing check lets the run start and its file is part of
/// the drive, not of the data; a failing one refuses (exit 3) and says which check and why.
final class FileCheckTests: IntegrationTestCase {
    private func setUpTrees() throws {
        try write("src/a.txt", "a\n")
        try write("src/sub/b.txt", "b\n")
        try write("dst/orphan.txt", "orphan\n")
    }

    func testPassingCheckRunsAndTheCheckFileIsNeverDeleted() throws {
        try setUpTrees()
        try write("dst/.id", "blue\n")
        try write("dst2/.plugsync/id", "green\n")
        try writeConfig(
            definition(
                "blue", source: path("src"), destination: path("dst"), ["max_delete: 100%"],
                destinationExtra: [#"file_check: ".id=^blue$""#]),
            definition(
                "green", source: path("src"), destination: path("dst2"),
                destinationExtra: [#"file_check: ".plugsync/id=^green$""#]))
        let result = try plugsync("run", "blue")
        assertExit(result, 0)
        XCTAssertFalse(
            result.actions.contains { $0.hasSuffix(" .id") }, "the check file is not part of the data\n\(result)")
        XCTAssertTrue(
            result.actions.contains(action("Deleting", "destination file is orphaned", "orphan.txt")), "\(result)")
        XCTAssertEqual(read("dst/.id"), "blue\n")
        try assertSameTree(path("src"), path("dst"), skip: { $0 == ".id" })

        // A check file in a subfolder the source lacks: the folder stays for it.
        let green = try plugsync("run", "green")
        assertExit(green, 0)
        XCTAssertEqual(read("dst2/.plugsync/id"), "green\n", "\(green)")
        XCTAssertTrue(exists("dst2/a.txt") && exists("dst2/sub/b.txt"), "\(green)")

        let check = try plugsync("check", "blue")
        assertExit(check, 0)
        XCTAssertTrue(check.stdout.contains("passed"), "\(check)")

        let again = try plugsync("run", "blue")
        assertExit(again, 0)
        XCTAssertEqual(again.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(again)")
    }

    /// DESIGN 1: "The File Check file is part of the drive, not of the data"; the brief: "the
    /// check file itself is never deleted or overwritten by a mirror". A source holding a file of
    /// the same name must not replace it (it would also make every later run refuse).
    func testCheckFileIsNeverOverwrittenByASourceFileOfTheSameName() throws {
        try setUpTrees()
        try write("src/.id", "red\n")
        try write("dst/.id", "blue\n")
        try writeConfig(
            definition(
                "blue", source: path("src"), destination: path("dst"), ["max_delete: 100%"],
                destinationExtra: [#"file_check: ".id=^blue$""#]))
        let first = try plugsync("run", "blue")
        assertExit(first, 0)
        XCTAssertEqual(
            read("dst/.id"), "blue\n", "the destination's File Check file was overwritten by the source's .id\n\(first)"
        )
        let second = try plugsync("run", "blue")
        assertExit(second, 0)
    }

    func testMissingCheckFileRefuses() throws {
        try setUpTrees()
        let log = path("logs/blue.txt")
        try writeConfig(
            definition(
                "blue", source: path("src"), destination: path("dst"), ["log_file: '\(log)'"],
                destinationExtra: [#"file_check: ".id=^blue$""#]))
        let before = try snapshot(path("dst"))
        let result = try plugsync("run", "blue")
        assertRefused(
            result, name: "blue", because: ["File Check of the destination failed", path("dst/.id"), "file not found"])
        XCTAssertEqual(try snapshot(path("dst")), before, "a refused run changed the destination")
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertTrue(
            logText.contains("File Check of the destination failed") && logText.contains("file not found"),
            "log:\n\(logText)")

        let check = try plugsync("check", "blue")
        assertExit(check, 3)
        XCTAssertTrue(check.stdout.contains("file not found"), "\(check)")
    }

    func testMismatchingContentRefuses() throws {
        try setUpTrees()
        try write("dst/.id", "red\n")
        let log = path("blue.log")
        try writeConfig(
            definition(
                "blue", source: path("src"), destination: path("dst"), ["log_file: '\(log)'"],
                destinationExtra: [#"file_check: ".id=^blue$""#]))
        let before = try snapshot(path("dst"))
        let result = try plugsync("run", "blue")
        assertRefused(
            result, name: "blue", because: ["File Check of the destination failed", "content does not match", "^blue$"])
        XCTAssertEqual(try snapshot(path("dst")), before, "a refused run changed the destination")
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertTrue(logText.contains("content does not match"), "log:\n\(logText)")
    }

    func testSourceCheckRefuses() throws {
        try setUpTrees()
        try writeConfig(
            definition(
                "src-check", source: path("src"), destination: path("dst"),
                sourceExtra: [#"file_check: "/nonexistent/plugsync-check=""#]))
        let before = try snapshot(path("dst"))
        let result = try plugsync("run", "src-check")
        assertRefused(
            result, name: "src-check", because: ["File Check of the source failed", "/nonexistent/plugsync-check"])
        XCTAssertEqual(try snapshot(path("dst")), before)
    }

    /// However the check path is written, its file is left out of the sync: not overwritten by
    /// a source file of the same name, not deleted when the source lacks it, and the next run
    /// is not refused.
    func testCheckPathWrittenAnyWayIsNeitherOverwrittenNorDeleted() throws {
        for (written, file) in [
            ("./.id", ".id"), ("meta/./id", "meta/id"), ("a//b", "a/b"), (path("dst") + "/./meta//id", "meta/id"),
        ] {
            for sourceHasIt in [true, false] {
                try? remove("src")
                try? remove("dst")
                try setUpTrees()
                if sourceHasIt { try write("src/" + file, "red\n") }
                try write("dst/" + file, "blue\n")
                try writeConfig(
                    definition(
                        "blue", source: path("src"), destination: path("dst"), ["max_delete: 100%"],
                        destinationExtra: ["file_check: '\(written)=^blue$'"]))
                let first = try plugsync("run", "blue")
                assertExit(first, 0)
                XCTAssertEqual(read("dst/" + file), "blue\n", "\(written), source has it: \(sourceHasIt)\n\(first)")
                XCTAssertFalse(first.actions.contains { $0.hasSuffix(" " + file) }, "\(first)")
                let second = try plugsync("run", "blue")
                assertExit(second, 0)
            }
        }
    }

    /// A FIFO, a symbolic link or a folder as the check file refuses the run at once, in one
    /// line, and `check` says the same.
    func testSpecialFileOrLinkAsTheCheckFileRefusesAtOnce() throws {
        try setUpTrees()
        try write("elsewhere/id", "blue\n")
        for (what, make, reason) in [
            ("fifo", "mkfifo \(quote(path("dst/.id")))", "is a FIFO, not a regular file"),
            ("link", "ln -s \(quote(path("elsewhere/id"))) \(quote(path("dst/.id")))", "symbolic link"),
            ("folder link", "ln -s \(quote(path("elsewhere"))) \(quote(path("dst/.id")))", "symbolic link"),
            ("folder", "mkdir \(quote(path("dst/.id")))", "is a folder, not a regular file"),
        ] {
            try shell("rm -rf \(quote(path("dst/.id"))) && \(make)")
            for check in [".id=^blue$", ".id"] {
                try writeConfig(
                    definition(
                        "blue", source: path("src"), destination: path("dst"),
                        destinationExtra: ["file_check: '\(check)'"]))
                let result = try plugsync("run", "blue", timeout: 20)
                assertRefused(result, name: "blue", because: ["File Check of the destination failed", reason])
                XCTAssertEqual(result.stderrLines.count, 1, "\(what)\n\(result)")
                let checked = try plugsync("check", "blue", timeout: 20)
                assertExit(checked, 3)
                XCTAssertTrue(checked.stdout.contains(reason), "\(what)\n\(checked)")
            }
        }
        // Through a folder link: meta -> elsewhere, check meta/id.
        try shell("ln -s \(quote(path("elsewhere"))) \(quote(path("dst/meta")))")
        try writeConfig(
            definition(
                "blue", source: path("src"), destination: path("dst"),
                destinationExtra: ["file_check: 'meta/id=^blue$'"]))
        let result = try plugsync("run", "blue")
        assertRefused(result, name: "blue", because: [path("dst/meta") + " is a symbolic link"])
    }

    /// A back-reference is refused when the definitions are read: one line, exit 2.
    func testBackReferenceIsRefusedWhenRead() throws {
        try setUpTrees()
        try writeConfig(
            definition(
                "blue", source: path("src"), destination: path("dst"),
                destinationExtra: [#"file_check: '.id=^(.*)\1$'"#]))
        let result = try plugsync("run", "blue")
        assertExit(result, 2)
        XCTAssertEqual(result.stderrLines.count, 1, "\(result)")
        XCTAssertTrue(result.stderr.contains("file_check") && result.stderr.contains("back-reference"), "\(result)")
    }
}

extension IntegrationTestCase {
    /// Exit 3, `plugsync: NAME: Refused: …` on stderr with every fragment of `because`.
    func assertRefused(
        _ result: CommandResult, name: String, because: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        assertExit(result, 3, file: file, line: line)
        assertNoCrash(result, file: file, line: line)
        let refusal = result.stderrLines.first { $0.hasPrefix("plugsync: \(name): Refused: ") }
        XCTAssertNotNil(refusal, "no 'plugsync: \(name): Refused:' line on stderr\n\(result)", file: file, line: line)
        for fragment in because {
            XCTAssertTrue(
                refusal?.contains(fragment) == true, "the refusal does not say \(fragment)\n\(result)", file: file,
                line: line)
        }
        XCTAssertEqual(
            result.actions.filter { !$0.hasPrefix("Skipping ") }, [], "a refused run acted\n\(result)", file: file,
            line: line)
    }
}
