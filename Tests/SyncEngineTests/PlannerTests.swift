import XCTest

@testable import SyncEngine

final class PlannerTests: XCTestCase {
    func file(_ name: String, size: Int64 = 10, at seconds: Int64 = 1000, ns: Int64 = 0) -> Entry {
        Entry(
            name: FileName(name), kind: .file, size: size, mtime: Timestamp(seconds: seconds, nanoseconds: ns),
            mode: 0o644)
    }

    func folder(_ name: String, _ children: [Entry]?, at seconds: Int64 = 1000) -> Entry {
        Entry(
            name: FileName(name), kind: .directory, mtime: Timestamp(seconds: seconds), mode: 0o755, children: children)
    }

    func link(_ name: String, to target: String) -> Entry {
        Entry(name: FileName(name), kind: .symlink, mtime: Timestamp(seconds: 1000), linkTarget: FileName(target))
    }

    func summary(_ plan: SyncPlan) -> [String] {
        plan.actions.map { "\($0.kind) \($0.path) \($0.reason.text(side: "destination"))" }
    }

    /// The second seed's walkthrough: orphan, not found, up to date, older.
    func testSeedWalkthrough() {
        let planner = Planner(type: .mirror, tolerance: 1)
        let plan = planner.plan(
            source: [file("about.html"), file("back.jpg"), file("contact.html", at: 2000)],
            destination: [file("back.jpg"), file("contact.html", at: 1000), file("orphaned_file.txt")])
        XCTAssertEqual(
            summary(plan),
            [
                "transfer about.html destination file not found",
                "skip back.jpg destination file is up to date",
                "transfer contact.html destination file is older",
                "delete orphaned_file.txt destination file is orphaned",
            ])
    }

    func testSizeDiffersEvenWithEqualTimes() {
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: [file("a", size: 11)], destination: [file("a", size: 10)])
        XCTAssertEqual(plan.actions.map(\.reason), [.sizeDiffers])
    }

    func testNanosecondDifferenceCountsOnExactFilesystems() {
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: [file("a", ns: 500)], destination: [file("a", ns: 499)])
        XCTAssertEqual(plan.actions.map(\.reason), [.older])
    }

    func testFATToleranceHidesRoundingButNotRealChanges() {
        let planner = Planner(type: .mirror, tolerance: 2_000_000_000)
        // FAT stores 10:00:01.7 as 10:00:00: within 2 s, up to date.
        XCTAssertNil(planner.difference(source: file("a", at: 1001, ns: 700_000_000), destination: file("a", at: 1000)))
        // Two seconds newer is a change.
        XCTAssertEqual(planner.difference(source: file("a", at: 1002), destination: file("a", at: 1000)), .older)
    }

    func testNewerDestinationIsReplacedOnlyWhenTimesAreKept() {
        let keeps = Planner(type: .mirror, tolerance: 1, destinationKeepsTimes: true)
        XCTAssertEqual(keeps.difference(source: file("a", at: 1000), destination: file("a", at: 1005)), .newer)
        // An FTP server without MFMT stamps upload times: a newer remote file is the upload itself.
        let uploads = Planner(type: .mirror, tolerance: 60_000_000_000, destinationKeepsTimes: false)
        XCTAssertNil(uploads.difference(source: file("a", at: 1000), destination: file("a", at: 5000)))
        XCTAssertEqual(uploads.difference(source: file("a", at: 5000), destination: file("a", at: 1000)), .older)
    }

    func testNewFolderIsCreatedBeforeItsContents() {
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: [folder("docs", [file("a"), folder("empty", [])])], destination: [])
        XCTAssertEqual(
            summary(plan),
            [
                "createFolder docs destination folder not found",
                "transfer docs/a destination file not found",
                "createFolder docs/empty destination folder not found",
            ])
        XCTAssertEqual(plan.folderUpdates.map(\.path), ["docs/empty", "docs"])
    }

    func testOrphanFolderCountsEverythingInside() {
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: [], destination: [folder("old", [file("a"), folder("b", [file("c")])])])
        XCTAssertEqual(plan.actions.count, 1)
        XCTAssertEqual(plan.deletionCount, 4)
    }

    func testBackupNeverDeletes() {
        let plan = Planner(type: .backup, tolerance: 1).plan(
            source: [file("a")], destination: [file("a"), file("orphan"), folder("old", [file("x")])])
        XCTAssertEqual(plan.deletionCount, 0)
        XCTAssertEqual(summary(plan), ["skip a destination file is up to date"])
    }

    func testKindChangesAreReplacements() {
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: [folder("x", [file("inner")]), file("y")],
            destination: [file("x"), folder("y", [file("z")])])
        XCTAssertEqual(
            summary(plan),
            [
                "replace x destination is a file",
                "transfer x/inner destination file not found",
                "replace y destination is a folder",
            ])
        XCTAssertEqual(plan.deletionCount, 3)  // file x; folder y and y/z
    }

    func testBackupReportsKindConflictInsteadOfDeleting() {
        let plan = Planner(type: .backup, tolerance: 1).plan(source: [file("x")], destination: [folder("x", [])])
        XCTAssertEqual(plan.actions.map(\.kind), [.conflict])
    }

    func testSymlinksCompareByTarget() {
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: [link("a", to: "one"), link("b", to: "two")],
            destination: [link("a", to: "one"), link("b", to: "three")])
        XCTAssertEqual(
            summary(plan), ["skip a destination file is up to date", "transfer b destination link points elsewhere"])
    }

    func testNonRecursiveListingsLeaveSubfoldersAlone() {
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: [file("a"), folder("sub", nil)], destination: [folder("other", nil)])
        XCTAssertEqual(summary(plan), ["transfer a destination file not found"])
    }

    func testNamesAreComparedAsBytes() {
        let latin1 = FileName(bytes: [0x63, 0x61, 0x66, 0xe9])  // "café" in Latin-1, not UTF-8
        let entry = Entry(name: latin1, kind: .file, size: 1, mtime: Timestamp(seconds: 1))
        let plan = Planner(type: .mirror, tolerance: 1).plan(source: [entry], destination: [entry])
        XCTAssertEqual(plan.actions.map(\.kind), [.skip])
        XCTAssertEqual(latin1.description, "caf\\xe9")
    }

    func testReasonsUseTheSeedsWordsForRemoteSides() {
        let remote = EndpointCapabilities(isRemote: true)
        let local = EndpointCapabilities()
        let up = ActionFormatter(source: local, destination: remote)
        let action = Action(
            kind: .transfer, path: "about.html", source: file("about.html"), destination: nil, reason: .fileNotFound)
        XCTAssertEqual(
            up.line(for: action, outcome: .done).split(separator: " ", omittingEmptySubsequences: true).joined(
                separator: " "),
            "Uploading (remote file not found) about.html")
        let down = ActionFormatter(source: remote, destination: local)
        XCTAssertTrue(down.line(for: action, outcome: .done).hasPrefix("Downloading "))
    }

    func testControlCharactersInNamesAreEscapedForDisplay() {
        XCTAssertEqual(FileName("a\u{1B}[2Jb\n").description, "a\\x1b[2Jb\\x0a")
    }

    func testFoldersLeadingToAFileCheckFileAreKeptButTheirOrphansGo() {
        let kept = Planner.ancestors(of: [".plugsync/ids/disk"])
        XCTAssertEqual(kept, [".plugsync", ".plugsync/ids"])
        let planner = Planner(type: .mirror, tolerance: 1, keptFolders: kept)
        // The listing left the check file out; the folders holding it look like orphans.
        let plan = planner.plan(
            source: [], destination: [folder(".plugsync", [folder("ids", []), file("stale")]), file("orphan")])
        XCTAssertEqual(
            summary(plan),
            ["delete .plugsync/stale destination file is orphaned", "delete orphan destination file is orphaned"])
    }
}
