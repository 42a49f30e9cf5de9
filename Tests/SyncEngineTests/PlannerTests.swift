import Foundation
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

    /// The design's walkthrough: orphan, not found, up to date, older.
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

    // MARK: deep trees

    /// Runs `body` on a thread with a 256 KiB stack, as small as a thread of a busy agent may
    /// get: a walk that recursed per folder would overflow it on these trees.
    func onSmallStack(_ body: @escaping @Sendable () -> Void) {
        let done = expectation(description: "small-stack thread")
        let thread = Thread {
            body()
            done.fulfill()
        }
        thread.stackSize = 256 << 10
        thread.start()
        wait(for: [done], timeout: 60)
        // The caller's trees must not be freed last by that thread: freeing a nested array
        // recurses (as deep as the tree), which is the test's doing, not the planner's.
        while !thread.isFinished { usleep(1000) }
    }

    /// A chain of `depth` folders `d`, each with a file `f`.
    func chain(_ depth: Int, mtime: Int64 = 1000) -> [Entry] {
        var level: [Entry] = [file("f", at: mtime)]
        for _ in 0..<depth { level = [folder("d", level), file("f", at: mtime)] }
        return level
    }

    func testATreeTenThousandFoldersDeepIsPlannedWithoutRecursion() {
        let source = chain(10_000)
        let destination = chain(10_000, mtime: 900)
        let orphans = [folder("old", chain(10_000))]
        nonisolated(unsafe) var counts: [Int] = []
        onSmallStack {
            let planner = Planner(type: .mirror, tolerance: 1)
            let fresh = planner.plan(source: source, destination: [])
            let changed = planner.plan(source: source, destination: destination)
            let gone = planner.plan(source: [], destination: orphans)
            counts = [
                fresh.actions.count, fresh.folderUpdates.count, changed.actions.filter { $0.kind == .transfer }.count,
                gone.deletionCount, source[0].treeCount,
            ]
        }
        XCTAssertEqual(counts, [20_001, 10_000, 10_001, 20_002, 20_000])
    }

    func testPathsLongerThanAnEndpointTakesStopWithOneFailure() {
        var planner = Planner(type: .mirror, tolerance: 1)
        planner.maximumPathLength = 7  // "d/d/d/d" fits, "d/d/d/d/f" does not
        let plan = planner.plan(source: chain(10), destination: [])
        let failures = plan.actions.filter { $0.kind == .conflict }
        XCTAssertEqual(failures.map { "\($0.path)" }.sorted(), ["d/d/d/d/d", "d/d/d/d/f"])
        XCTAssertEqual(failures.map(\.reason), [.pathTooLong, .pathTooLong])
        XCTAssertEqual(plan.actions.count, 4 * 2 + 2, "\(summary(plan))")
    }

    /// A name the destination's filesystem refuses (`"` on FAT) fails with one line when
    /// planning, its folder's contents too; the other entries are copied.
    func testANameTheDestinationRefusesFailsWhenPlanned() {
        var planner = Planner(type: .mirror, tolerance: 1)
        planner.forbiddenNameBytes = EndpointCapabilities.fatForbiddenNameBytes
        let plan = planner.plan(
            source: [file("ok.txt"), file("a\"b.txt"), folder("w:x", [file("in.txt")])],
            destination: [])
        let failures = plan.actions.filter { $0.kind == .conflict }
        XCTAssertEqual(failures.map { "\($0.path)" }.sorted(), ["a\"b.txt", "w:x"], "\(summary(plan))")
        XCTAssertEqual(failures.map(\.reason), [.nameNotAllowed, .nameNotAllowed])
        XCTAssertEqual(plan.actions.filter { $0.kind == .transfer }.map { "\($0.path)" }, ["ok.txt"])
    }

    // MARK: case-insensitive destinations

    func testACaseInsensitiveDestinationGetsOneOfTwoNamesThatDifferOnlyInCase() {
        let planner = Planner(type: .mirror, tolerance: 1, caseInsensitive: true)
        let source = [
            folder("Docs", [file("x")]), file("README", size: 5), file("a.txt"), file("docs"), file("A.txt"),
            folder("x", [file("y")]), folder("X", [file("z")]),
        ].sorted { $0.name < $1.name }
        let first = planner.plan(source: source, destination: [])
        XCTAssertEqual(
            summary(first).sorted(),
            [
                "conflict a.txt the destination cannot hold both names: they differ only in case",
                "conflict docs the destination cannot hold both names: they differ only in case",
                "conflict x the destination cannot hold both names: they differ only in case",
                "createFolder Docs destination folder not found",
                "createFolder X destination folder not found",
                "transfer A.txt destination file not found",
                "transfer Docs/x destination file not found",
                "transfer README destination file not found",
                "transfer X/z destination file not found",
            ])
        let line = ActionFormatter(source: EndpointCapabilities(), destination: EndpointCapabilities())
            .line(for: first.actions.first { $0.path == "a.txt" }!, outcome: .failed("not copied"))
        XCTAssertTrue(
            line.hasPrefix("Failed      (the destination cannot hold both A.txt and a.txt: names differ only in case)"),
            line)

        // What the drive holds (one spelling of each) is matched whatever its case: nothing is
        // deleted, the spelling it has is the one kept, and a second run copies nothing.
        let destination = [
            folder("DOCS", [file("x")]), file("a.txt"), folder("x", [file("y")]), file("readme", size: 5),
        ]
        let second = planner.plan(source: source, destination: destination)
        XCTAssertEqual(second.deletionCount, 0, "\(summary(second))")
        XCTAssertEqual(second.actions.filter { $0.kind == .transfer || $0.kind == .createFolder }.count, 0)
        XCTAssertEqual(
            second.actions.filter { $0.kind == .conflict }.map { "\($0.path)" }.sorted(), ["A.txt", "X", "docs"])

        // A case-sensitive destination gets them all.
        let sensitive = Planner(type: .mirror, tolerance: 1).plan(source: source, destination: [])
        XCTAssertFalse(sensitive.actions.contains { $0.kind == .conflict })
        XCTAssertEqual(Planner.foldedCase("Ärger.TXT"), Array("ärger.txt".utf8))
    }

    // MARK: hard links

    func testHardLinkedFilesBecomeLinksWhereTheDestinationHoldsThem() {
        let source = [file("a"), folder("sub", [file("b"), file("c")]), file("z")]
        let links = HardLinks([["sub/c", "a", "sub/b"]])
        let keeps = Planner(type: .mirror, tolerance: 1, destinationKeepsHardLinks: true)
        let plan = keeps.plan(source: source, destination: [], sourceLinks: links)
        XCTAssertEqual(
            plan.actions.map { "\($0.kind) \($0.path)" },
            ["transfer a", "createFolder sub", "link sub/b", "link sub/c", "transfer z"])
        XCTAssertEqual(plan.hardLinks, ["sub/b": "a", "sub/c": "a"])
        XCTAssertEqual(plan.transferBytes, 20)

        // The first name up to date on the destination: the others are linked to it.
        let later = keeps.plan(source: source, destination: [file("a"), folder("sub", [])], sourceLinks: links)
        XCTAssertEqual(later.actions.filter { $0.kind == .link }.map { "\($0.path)" }, ["sub/b", "sub/c"])
        XCTAssertEqual(later.hardLinks, ["sub/b": "a", "sub/c": "a"])

        // FAT, exFAT, FTP: copies, as before.
        let copies = Planner(type: .mirror, tolerance: 1).plan(source: source, destination: [], sourceLinks: links)
        XCTAssertEqual(copies.actions.filter { $0.kind == .transfer }.count, 4)
        XCTAssertTrue(copies.hardLinks.isEmpty)
    }
}
