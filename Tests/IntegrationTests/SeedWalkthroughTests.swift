import Foundation
import XCTest

/// The design's walkthrough on real folders: a first run copies everything; after changes
/// on both sides the next run deletes the orphan, copies the missing and the changed files, skips
/// the rest; the run after that copies nothing.
final class SeedWalkthroughTests: IntegrationTestCase {
    func testSeedWalkthroughOnRealTrees() throws {
        let src = path("src")
        let dst = path("dst")
        try buildSourceTree()
        try writeConfig(definition("seed", source: src, destination: dst))

        // Run 1: the destination does not exist; everything is copied.
        let first = try plugsync("run", "seed")
        assertExit(first, 0)
        assertNoCrash(first)
        XCTAssertEqual(first.lines.first, "Sync seed started (mirror, trigger: manual)", "\(first)")
        XCTAssertTrue(first.lines.contains("Synchronizing \(dst) from \(src)"), "\(first)")
        assertActions(
            first,
            [
                action("Creating", "destination folder not found", "becomes-file/"),
                action("Creating", "destination folder not found", "empty/"),
                action("Creating", "destination folder not found", "sub/"),
                action("Creating", "destination folder not found", "sub/deep/"),
                action("Copying", "destination file not found", ".hidden"),
                action("Copying", "destination file not found", "about.html"),
                action("Copying", "destination file not found", "back.jpg"),
                action("Copying", "destination file not found", "becomes-file/inner.txt"),
                action("Copying", "destination file not found", "becomes-folder"),
                action("Copying", "destination file not found", "café menu.txt"),
                action("Copying", "destination file not found", "contact.html"),
                action("Copying", "destination file not found", "dangling"),
                action("Copying", "destination file not found", "link-to-about"),
                action("Copying", "destination file not found", "private.txt"),
                action("Copying", "destination file not found", "size.txt"),
                action("Copying", "destination file not found", "sub/deep/file.txt"),
                action("Copying", "destination file not found", "tool.sh"),
            ])
        XCTAssertTrue(first.summary?.hasPrefix("Done: 13 copied") == true, "\(first)")
        XCTAssertTrue(first.summary?.contains("4 folders created, 0 deleted, 0 skipped, 0 failed") == true, "\(first)")
        try assertSameTree(src, dst)
        XCTAssertEqual(temporaryFiles(in: dst), [])

        // Changes, as in the walkthrough of the design: an orphan, a missing file, a same-size file with a newer
        // mtime, a file whose size changed, and an entry that changed kind each way.
        try write("dst/orphaned_file.txt", "nobody's\n")
        try write("dst/old-stuff/x.txt", "orphan folder content\n")
        try remove("dst/about.html")
        try write("src/contact.html", "contact v2\n", mtime: FileTime(1_700_000_160, 987_654_321))  // same size as v1
        try write("src/size.txt", "a longer text than before\n", mtime: FileTime(1_700_000_050, 5))
        try remove("src/becomes-folder")
        try write("src/becomes-folder/child.txt", "I was a file\n", mtime: FileTime(1_700_000_300, 300))
        try setMtime("src/becomes-folder", FileTime(1_700_000_301, 301))
        try remove("src/becomes-file")
        try write("src/becomes-file", "I was a folder\n", mtime: FileTime(1_700_000_400, 400))
        XCTAssertEqual(
            try snapshot(src)["contact.html"]?.size, try snapshot(dst)["contact.html"]?.size,
            "the test needs contact.html to keep its size")

        // The full report (-v), with a line for the files left as they are too.
        let second = try plugsync("run", "seed", "-v")
        assertExit(second, 0)
        assertNoCrash(second)
        assertActions(
            second,
            [
                action("Deleting", "destination folder is orphaned", "old-stuff/"),
                action("Deleting", "destination file is orphaned", "orphaned_file.txt"),
                action("Copying", "destination file not found", "about.html"),
                action("Copying", "destination file is older", "contact.html"),
                action("Copying", "destination file size differs", "size.txt"),
                action("Replacing", "destination is a folder", "becomes-file"),
                action("Replacing", "destination is a file", "becomes-folder"),
                action("Copying", "destination file not found", "becomes-folder/child.txt"),
                action("Skipping", "destination file is up to date", ".hidden"),
                action("Skipping", "destination file is up to date", "back.jpg"),
                action("Skipping", "destination file is up to date", "café menu.txt"),
                action("Skipping", "destination file is up to date", "dangling"),
                action("Skipping", "destination file is up to date", "link-to-about"),
                action("Skipping", "destination file is up to date", "private.txt"),
                action("Skipping", "destination file is up to date", "sub/deep/file.txt"),
                action("Skipping", "destination file is up to date", "tool.sh"),
            ])
        try assertSameTree(src, dst)
        XCTAssertEqual(read("dst/contact.html"), "contact v2\n")
        XCTAssertEqual(try snapshot(dst)["link-to-about"]?.kind, .symlink)
        XCTAssertEqual(try snapshot(dst)["becomes-folder"]?.kind, .directory)
        XCTAssertEqual(try snapshot(dst)["becomes-file"]?.kind, .file)
        XCTAssertEqual(temporaryFiles(in: dst), [])

        // Run 3: nothing left to do, and by default nothing but the header and the summary.
        let third = try plugsync("run", "seed")
        assertExit(third, 0)
        XCTAssertEqual(third.actions, [], "\(third)")
        XCTAssertEqual(third.lines.count, 3, "\(third)")
        XCTAssertTrue(third.summary?.hasPrefix("Done: 0 copied") == true, "\(third)")
        XCTAssertTrue(third.summary?.contains("0 folders created, 0 deleted, 13 skipped, 0 failed") == true, "\(third)")
        // The full report names the 13 entries that are up to date.
        let full = try plugsync("run", "seed", "--verbose")
        assertExit(full, 0)
        XCTAssertEqual(full.actions.filter { !$0.hasPrefix("Skipping ") }, [], "\(full)")
        XCTAssertEqual(full.actions("Skipping").count, 13, "\(full)")
        XCTAssertEqual(full.summary?.hasPrefix("Done: 0 copied") == true, true, "\(full)")
        try assertSameTree(src, dst)
    }

    /// Files with nanosecond mtimes, several modes, links (one dangling), an empty folder,
    /// hidden and non-ASCII names; folder times are set last.
    private func buildSourceTree() throws {
        try write("src/about.html", "<html>about</html>\n", mtime: FileTime(1_700_000_000, 111_111_111))
        try write("src/contact.html", "contact v1\n", mtime: FileTime(1_700_000_100, 222_222_222))
        try write("src/back.jpg", randomData(70_000, seed: 1), mtime: FileTime(1_600_000_000, 333_333_333))
        try write("src/size.txt", "short\n", mtime: FileTime(1_700_000_050, 5))
        try write("src/tool.sh", "#!/bin/sh\necho hi\n", mode: 0o755, mtime: FileTime(1_500_000_000, 1))
        try write("src/private.txt", "secret\n", mode: 0o600, mtime: FileTime(1_500_000_001, 999_999_999))
        try write("src/.hidden", "dot file\n", mode: 0o640, mtime: FileTime(1_500_000_002, 2))
        try write("src/café menu.txt", "crêpes\n", mtime: FileTime(1_500_000_003, 3))
        try write("src/sub/deep/file.txt", "deep\n", mtime: FileTime(1_650_000_000, 444_444_444))
        try write("src/becomes-folder", "I am a file for now\n", mtime: FileTime(1_650_000_001, 1))
        try write("src/becomes-file/inner.txt", "inside a folder for now\n", mtime: FileTime(1_650_000_002, 2))
        try mkdir("src/empty", mode: 0o750)
        try symlink("src/link-to-about", to: "about.html")
        try symlink("src/dangling", to: "nowhere/at/all")
        try setMtime("src/link-to-about", FileTime(1_550_000_000, 123))
        try setMtime("src/dangling", FileTime(1_550_000_001, 456))
        try chmod("src/sub/deep", 0o700)
        try setMtime("src/sub/deep", FileTime(1_660_000_000, 555_555_555))
        try setMtime("src/sub", FileTime(1_660_000_001, 666_666_666))
        try setMtime("src/empty", FileTime(1_660_000_002, 777_777_777))
        try setMtime("src/becomes-file", FileTime(1_660_000_003, 888_888_888))
    }
}
