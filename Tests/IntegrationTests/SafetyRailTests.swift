import Foundation
import XCTest

/// DESIGN 2, step 2: the rails that keep a mirror from wiping a destination.
final class SafetyRailTests: IntegrationTestCase {
    /// Ten files in the destination, `kept` of them also in the source.
    private func setUpMirror(kept: Int, _ extra: [String] = []) throws {
        for i in 0..<10 { try write("dst/f\(i).txt", "file \(i)\n", mtime: FileTime(1_700_000_000 + i)) }
        for i in 0..<kept { try write("src/f\(i).txt", "file \(i)\n", mtime: FileTime(1_700_000_000 + i)) }
        try writeConfig(definition("m", source: path("src"), destination: path("dst"), extra))
    }

    func testMissingSourceRefusesEvenWithForceDelete() throws {
        try setUpMirror(kept: 0)  // creates no source folder
        XCTAssertFalse(exists("src"))
        let before = try snapshot(path("dst"))
        for arguments in [["run", "m"], ["run", "m", "--force-delete"]] {
            let result = try plugsync(arguments: arguments)
            assertRefused(result, name: "m", because: [path("src"), "does not exist"])
            XCTAssertEqual(try snapshot(path("dst")), before, "\(result)")
        }
        XCTAssertFalse(exists("src"), "the run created the missing source")
    }

    /// A destination inside its source would nest one level deeper each run; a source inside a
    /// mirror's destination would be deleted as an orphan. Both are refused, nothing touched.
    func testOverlappingTreesAreRefused() throws {
        try write("top/src/a.txt", "a\n")
        try write("top/other.txt", "keep me\n")
        try writeConfig(
            definition("nested", source: path("top/src"), destination: path("top/src/copy"), ["max_delete: 100%"]),
            definition("around", source: path("top/src"), destination: path("top"), ["max_delete: 100%"]))
        let before = try snapshot(path("top"))
        for name in ["nested", "around"] {
            let result = try plugsync("run", name, "--force-delete")
            assertRefused(result, name: name, because: ["overlap"])
        }
        XCTAssertEqual(try snapshot(path("top")), before, "a refused run changed something")
    }

    func testEmptySourceRefusesUnlessForced() throws {
        try setUpMirror(kept: 0, ["max_delete: 100%"])
        try mkdir("src")
        let before = try snapshot(path("dst"))
        let refused = try plugsync("run", "m")
        assertRefused(refused, name: "m", because: ["empty", "--force-delete"])
        XCTAssertEqual(try snapshot(path("dst")), before)

        let dry = try plugsync("run", "m", "--dry-run")
        assertExit(dry, 3)
        XCTAssertEqual(try snapshot(path("dst")), before)

        let forced = try plugsync("run", "m", "--force-delete")
        assertExit(forced, 0)
        XCTAssertEqual(forced.actions("Deleting").count, 10, "\(forced)")
        XCTAssertEqual(try snapshot(path("dst")).count, 0)
    }

    func testDefaultMaxDeleteIsHalfTheDestination() throws {
        try setUpMirror(kept: 4)  // 6 of 10 deleted: 60 %
        let before = try snapshot(path("dst"))
        let refused = try plugsync("run", "m")
        assertRefused(refused, name: "m", because: ["6", "10", "max_delete"])
        XCTAssertEqual(try snapshot(path("dst")), before)

        // A dry run shows the whole plan, the deletions the rail stops included, says that the
        // real run would be refused and why, and exits 3 like the real run.
        let dry = try plugsync("run", "m", "--dry-run")
        assertExit(dry, 3)
        XCTAssertEqual(dry.actions("Deleting").count, 6, "\(dry)")
        XCTAssertTrue(
            dry.stderr.contains("the real run would be refused") && dry.stderr.contains("6 of 10")
                && dry.stderr.contains("max_delete (50%)") && dry.stderr.contains("--force-delete"), "\(dry)")
        XCTAssertTrue(
            dry.summary?.hasPrefix("Dry run: would copy 0 (0 B), create 0 folders, delete 6;") == true
                && dry.summary?.contains("the real run would be refused") == true, "\(dry)")
        XCTAssertEqual(try snapshot(path("dst")), before, "a dry run changed the destination")

        let forced = try plugsync("run", "m", "--force-delete")
        assertExit(forced, 0)
        XCTAssertEqual(forced.actions("Deleting").count, 6, "\(forced)")
        try assertSameTree(path("src"), path("dst"))

        // Exactly half is allowed.
        try remove("src")
        try remove("dst")
        try setUpMirror(kept: 5)
        let half = try plugsync("run", "m")
        assertExit(half, 0)
        XCTAssertEqual(half.actions("Deleting").count, 5, "\(half)")
    }

    func testMaxDeleteCount() throws {
        try setUpMirror(kept: 6, ["max_delete: 3"])  // 4 deletions
        let before = try snapshot(path("dst"))
        assertRefused(try plugsync("run", "m"), name: "m", because: ["4", "max_delete"])
        XCTAssertEqual(try snapshot(path("dst")), before)

        try write("src/f6.txt", "file 6\n", mtime: FileTime(1_700_000_006))  // now 3 deletions
        let allowed = try plugsync("run", "m")
        assertExit(allowed, 0)
        XCTAssertEqual(allowed.actions("Deleting").count, 3, "\(allowed)")

        // Counts include everything inside a deleted folder.
        try write("dst/tree/a", "a\n")
        try write("dst/tree/b", "b\n")
        try write("dst/tree/c/d", "d\n")  // tree/, a, b, c/, d: 5 entries
        assertRefused(try plugsync("run", "m"), name: "m", because: ["5", "max_delete"])
        XCTAssertTrue(exists("dst/tree/c/d"))
        assertExit(try plugsync("run", "m", "--force-delete"), 0)
        XCTAssertFalse(exists("dst/tree"))
    }

    func testMaxDeletePercent() throws {
        try setUpMirror(kept: 8, ["max_delete: 10%"])  // 2 of 10 deleted: 20 %
        let before = try snapshot(path("dst"))
        assertRefused(try plugsync("run", "m"), name: "m", because: ["2", "10%"])
        XCTAssertEqual(try snapshot(path("dst")), before)
        try write("src/f8.txt", "file 8\n", mtime: FileTime(1_700_000_008))  // 1 of 10: 10 %
        let allowed = try plugsync("run", "m")
        assertExit(allowed, 0)
        XCTAssertEqual(
            allowed.actions("Deleting"), [action("Deleting", "destination file is orphaned", "f9.txt")], "\(allowed)")
    }

    /// A source folder that cannot be listed is not an empty one: nothing is deleted.
    func testUnlistableSourceFolderDeletesNothing() throws {
        let wrapper = try withoutPermissionBypass()
        try write("src/ok.txt", "ok\n")
        try write("src/locked/inside.txt", "cannot be listed\n")
        try write("dst/locked/inside.txt", "cannot be listed\n")
        try write("dst/locked/old.txt", "an orphan, but the source folder is unreadable\n")
        try write("dst/orphan.txt", "orphan\n")
        try writeConfig(definition("m", source: path("src"), destination: path("dst"), ["max_delete: 100%"]))
        try chmod("src/locked", 0o000)
        let result = try plugsync("run", "m", "--force-delete", wrapper: wrapper)
        try chmod("src/locked", 0o755)
        assertExit(result, 1)
        assertNoCrash(result)
        // A listing error goes to standard error, as failures do.
        XCTAssertTrue(
            result.stderrLines.contains { $0.hasPrefix("Cannot list") && $0.contains(path("src/locked")) },
            "\(result)")
        XCTAssertEqual(result.actions("Deleting"), [], "\(result)")
        XCTAssertTrue(exists("dst/orphan.txt"), "deleted although the source listing failed\n\(result)")
        XCTAssertTrue(exists("dst/locked/old.txt"), "deleted although the source listing failed\n\(result)")
        XCTAssertEqual(read("dst/ok.txt"), "ok\n", "the readable part is still copied\n\(result)")
    }

    /// The same for a destination folder that cannot be listed.
    func testUnlistableDestinationFolderDeletesNothing() throws {
        let wrapper = try withoutPermissionBypass()
        try write("src/ok.txt", "ok\n")
        try write("dst/locked/inside.txt", "cannot be listed\n")
        try write("dst/orphan.txt", "orphan\n")
        try writeConfig(definition("m", source: path("src"), destination: path("dst"), ["max_delete: 100%"]))
        try chmod("dst/locked", 0o000)
        let result = try plugsync("run", "m", "--force-delete", wrapper: wrapper)
        try chmod("dst/locked", 0o755)
        assertExit(result, 1)
        assertNoCrash(result)
        XCTAssertTrue(
            result.stderrLines.contains { $0.hasPrefix("Cannot list") && $0.contains(path("dst/locked")) },
            "\(result)")
        XCTAssertEqual(result.actions("Deleting"), [], "\(result)")
        XCTAssertTrue(exists("dst/orphan.txt"), "deleted although the destination listing failed\n\(result)")
        XCTAssertTrue(exists("dst/locked/inside.txt"))
        XCTAssertEqual(read("dst/ok.txt"), "ok\n")
    }

    /// A file that cannot be read fails alone: exit 1, the others are copied, and nothing is
    /// left under its name or as a temporary file.
    func testUnreadableSourceFileFailsAloneWithExitCode1() throws {
        let wrapper = try withoutPermissionBypass()
        try write("src/a.txt", "a\n")
        try write("src/secret.bin", randomData(100_000, seed: 3))
        try write("src/z.txt", "z\n")
        try writeConfig(definition("m", source: path("src"), destination: path("dst")))
        try chmod("src/secret.bin", 0o000)
        let result = try plugsync("run", "m", wrapper: wrapper)
        try chmod("src/secret.bin", 0o644)
        assertExit(result, 1)
        assertNoCrash(result)
        let failed = result.actions("Failed")
        XCTAssertEqual(failed.count, 1, "\(result)")
        XCTAssertTrue(
            failed.first?.hasPrefix("Failed (destination file not found") == true
                && failed.first?.hasSuffix(" secret.bin") == true, "\(result)")
        XCTAssertEqual(result.stderrActions, failed, "a failure goes to standard error\n\(result)")
        XCTAssertTrue(
            result.summary?.hasPrefix("Done with failures: 2 copied") == true
                && result.summary?.contains("1 failed") == true, "\(result)")
        XCTAssertEqual(read("dst/a.txt"), "a\n")
        XCTAssertEqual(read("dst/z.txt"), "z\n")
        XCTAssertFalse(exists("dst/secret.bin"), "\(result)")
        XCTAssertEqual(temporaryFiles(in: path("dst")), [])

        // Readable again: the next run copies it, and only it.
        let again = try plugsync("run", "m")
        assertExit(again, 0)
        XCTAssertEqual(
            again.actions("Copying"), [action("Copying", "destination file not found", "secret.bin")], "\(again)")
        try assertSameTree(path("src"), path("dst"))
    }
}
