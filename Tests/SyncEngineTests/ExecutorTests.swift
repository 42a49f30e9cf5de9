import Foundation
import SystemSupport
import XCTest

@testable import LocalBackend
@testable import SyncEngine

final class ExecutorTests: XCTestCase {
    final class Recorder: SyncObserver, @unchecked Sendable {
        private let lock = NSLock()
        private(set) var lines: [String] = []
        let formatter = ActionFormatter(source: EndpointCapabilities(), destination: EndpointCapabilities())
        func finished(_ action: Action, outcome: Outcome) {
            lock.lock()
            lines.append(formatter.line(for: action, outcome: outcome))
            lock.unlock()
        }
        func removedTemporaryFile(_ path: FileName, folder: Bool) {}
        func transferred(bytes: Int64) {}
    }

    func testLinksOntoADestinationWithoutLinksAreSkippedWithAReasonWhileFilesAreCopied() throws {
        let root = NSTemporaryDirectory() + "plugsync-exec-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["src", "dst"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        FileManager.default.createFile(atPath: root + "/src/f", contents: Data("x".utf8))
        try FileManager.default.createSymbolicLink(atPath: root + "/src/l", withDestinationPath: "f")
        let source = LocalEndpoint(root: root + "/src")
        let destination = LocalEndpoint(root: root + "/dst", keepsSymlinks: false)  // e.g. FAT
        let listing = source.list(recursive: true, filter: ListingFilter())
        let plan = Planner(type: .mirror, tolerance: 1).plan(source: listing.entries, destination: [])
        let recorder = Recorder()
        let stats = Executor(source: source, destination: destination, parallelism: 2, observer: recorder)
            .execute(plan, temporaryFiles: [], dryRun: false)
        XCTAssertEqual(stats.transferred, 1)
        XCTAssertEqual(stats.failed, 0, "not a failure: a failure would withhold a mirror's deletions on every run")
        XCTAssertEqual(stats.skipped, 1)
        XCTAssertTrue(
            recorder.lines.contains {
                $0.hasPrefix("Skipping") && $0.contains("cannot store symbolic links") && $0.hasSuffix(" l")
            }, "\(recorder.lines)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/dst"), ["f"])

        // A file where the source now has a link stays as it is (nothing deleted for nothing).
        try FileManager.default.removeItem(atPath: root + "/src/f")
        try FileManager.default.createSymbolicLink(atPath: root + "/src/f", withDestinationPath: "l")
        let again = Planner(type: .mirror, tolerance: 1).plan(
            source: source.list(recursive: true, filter: ListingFilter()).entries,
            destination: destination.list(recursive: true, filter: ListingFilter()).entries)
        let second = Executor(source: source, destination: destination, parallelism: 1, observer: Recorder())
            .execute(again, temporaryFiles: [], dryRun: false)
        XCTAssertEqual(second.failed, 0)
        XCTAssertEqual(try String(contentsOfFile: root + "/dst/f", encoding: .utf8), "x")
    }

    /// An endpoint whose writes fail `failures` times with `error`, then go through to a folder.
    final class FlakyDestination: Endpoint, @unchecked Sendable {
        struct Transient: EndpointFailure, CustomStringConvertible {
            var isRetryable: Bool
            var endpointErrorKind: EndpointErrorKind { isRetryable ? .retryable : .permanent }
            var description: String { isRetryable ? "connection reset" : "permission denied" }
        }
        let inner: LocalEndpoint
        var failures: Int
        let retryable: Bool
        private(set) var attempts = 0
        init(root: String, failures: Int, retryable: Bool) {
            inner = LocalEndpoint(root: root)
            self.failures = failures
            self.retryable = retryable
        }
        var displayName: String { inner.displayName }
        var capabilities: EndpointCapabilities { inner.capabilities }
        func rootState() throws -> RootState { try inner.rootState() }
        func prepareRoot() throws { try inner.prepareRoot() }
        func list(recursive: Bool, filter: ListingFilter) -> Listing {
            inner.list(recursive: recursive, filter: filter)
        }
        func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile {
            try inner.openForReading(path, entry: entry)
        }
        func receive(
            _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
        ) throws {
            attempts += 1
            if failures > 0 {
                failures -= 1
                throw Transient(isRetryable: retryable)
            }
            try inner.receive(path, from: file, entry: entry, replacing: replacing, progress: progress)
        }
        func createDirectory(_ path: FileName) throws { try inner.createDirectory(path) }
        func createSymlink(_ path: FileName, entry: Entry) throws { try inner.createSymlink(path, entry: entry) }
        func remove(_ path: FileName, kind: EntryKind) throws { try inner.remove(path, kind: kind) }
        func setFolderAttributes(_ path: FileName, entry: Entry) throws {}
        func flush() throws {}
        func link(_ path: FileName, to existing: FileName) throws { try inner.link(path, to: existing) }
    }

    func transferOneFile(to destination: FlakyDestination, root: String) throws -> (SyncStatistics, Recorder) {
        try FileManager.default.createDirectory(atPath: root + "/src", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/dst", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root + "/src/f", contents: Data("payload".utf8))
        let source = LocalEndpoint(root: root + "/src")
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: source.list(recursive: true, filter: ListingFilter()).entries, destination: [])
        let recorder = Recorder()
        let executor = Executor(source: source, destination: destination, parallelism: 1, observer: recorder)
        executor.retryDelays = [0.01, 0.01, 0.01]
        return (executor.execute(plan, temporaryFiles: [], dryRun: false), recorder)
    }

    func testATransientFailureIsRetriedUntilTheTransferSucceeds() throws {
        let root = NSTemporaryDirectory() + "plugsync-exec-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let destination = FlakyDestination(root: root + "/dst", failures: 2, retryable: true)
        let (stats, _) = try transferOneFile(to: destination, root: root)
        XCTAssertEqual(destination.attempts, 3)
        XCTAssertEqual(stats.transferred, 1)
        XCTAssertEqual(stats.failed, 0)
        XCTAssertEqual(try String(contentsOfFile: root + "/dst/f", encoding: .utf8), "payload")
    }

    func testAPermanentFailureIsNotRetriedAndIsRecorded() throws {
        let root = NSTemporaryDirectory() + "plugsync-exec-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let destination = FlakyDestination(root: root + "/dst", failures: 1, retryable: false)
        let (stats, recorder) = try transferOneFile(to: destination, root: root)
        XCTAssertEqual(destination.attempts, 1)
        XCTAssertEqual(stats.failed, 1)
        XCTAssertTrue(recorder.lines.contains { $0.hasPrefix("Failed") && $0.contains("permission denied") })
    }

    /// A remote destination that stages files in memory and writes them to a folder in `commit`;
    /// the first commit of each path in `failOnce` fails with a transient error, every commit of
    /// a path in `refused` with a permanent one. With `builds`, a new folder is built as
    /// `.plugsync-tmp-NAME` in the root and renamed by `commitFolder` (same failure sets).
    final class StagingDestination: StagingEndpoint, @unchecked Sendable {
        let root: String
        var failOnce: Set<String>
        let refused: Set<String>
        let builds: Bool
        private let lock = NSLock()
        private var staged: [FileName: Data] = [:]
        private(set) var batches: [[String]] = []
        private(set) var received: [String] = []
        private(set) var created: [String] = []
        private(set) var building: Set<String> = []
        /// Each folder put in place, with the lines the recorder had then.
        private(set) var folderCommits: [(String, [String])] = []
        private(set) var verified: Set<String> = []
        var recorder: Recorder?
        init(root: String, failOnce: Set<String>, refused: Set<String>, builds: Bool = false) {
            self.root = root
            self.failOnce = failOnce
            self.refused = refused
            self.builds = builds
        }
        var displayName: String { root }
        var capabilities: EndpointCapabilities { EndpointCapabilities(keepsSymlinks: false, isRemote: true) }
        var stagesInBatches: Bool { true }
        func rootState() throws -> RootState { .empty }
        func prepareRoot() throws {}
        func list(recursive: Bool, filter: ListingFilter) -> Listing { Listing() }
        func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile { throw SyncFailure("no") }
        func read(_ file: ReadableFile) throws -> Data {
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case let n = try buffer.withUnsafeMutableBytes({ try file.read(into: $0) }), n > 0 {
                data.append(contentsOf: buffer[..<n])
            }
            return data
        }
        func place(_ path: FileName, _ data: Data) throws {
            let folder = path.parent
            let built = lock.withLock { building.contains(folder.description) }
            let file = built ? temporary(folder) + "/" + path.lastComponent.description : root + "/" + path.description
            try FileManager.default.createDirectory(
                atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: file))
        }
        func receive(
            _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
        ) throws {
            let data = try read(file)
            lock.withLock { received.append(path.description) }
            try place(path, data)
        }
        func stage(_ path: FileName, from file: ReadableFile, entry: Entry, progress: (Int64) -> Void) throws {
            let data = try read(file)
            lock.withLock { staged[path] = data }
        }
        func commit(_ files: [StagedFile]) -> [Error?] {
            lock.withLock { batches.append(files.map { $0.path.description }) }
            return files.map { file in
                let name = file.path.description
                if refused.contains(name) { return FlakyDestination.Transient(isRetryable: false) }
                if lock.withLock({ failOnce.remove(name) }) != nil {
                    return FlakyDestination.Transient(isRetryable: true)
                }
                guard let data = lock.withLock({ staged[file.path] }) else { return SyncFailure("not staged") }
                do { try place(file.path, data) } catch { return error }
                return nil
            }
        }
        func createDirectory(_ path: FileName) throws {
            lock.withLock { created.append(path.description) }
            try FileManager.default.createDirectory(
                atPath: root + "/" + path.description, withIntermediateDirectories: true)
        }
        func temporary(_ folder: FileName) -> String {
            root + "/" + ListingFilter.temporaryName(for: folder).description
        }
        func createSymlink(_ path: FileName, entry: Entry) throws {}
        func remove(_ path: FileName, kind: EntryKind) throws {}
        func setFolderAttributes(_ path: FileName, entry: Entry) throws {}
        func flush() throws {}
        func buildFolder(_ path: FileName) throws {
            guard builds else { throw SyncFailure("no folders built here") }
            try FileManager.default.createDirectory(atPath: temporary(path), withIntermediateDirectories: false)
            lock.withLock { _ = building.insert(path.description) }
        }
        func commitFolder(_ path: FileName, holding files: [StagedFile], verify: Bool) throws {
            let name = path.description
            if refused.contains(name) { throw FlakyDestination.Transient(isRetryable: false) }
            if lock.withLock({ failOnce.remove(name) }) != nil { throw FlakyDestination.Transient(isRetryable: true) }
            try FileManager.default.moveItem(atPath: temporary(path), toPath: root + "/" + name)
            lock.withLock {
                if verify { verified.insert(name) }
                building.remove(name)
                folderCommits.append((name, recorder?.lines ?? []))
            }
        }
        func removeTemporaryFolder(_ path: FileName) throws {}
    }

    func testARemoteDestinationGetsAFoldersFilesInBatchesAndAFailedOneIsSentAgainOnItsOwn() throws {
        let root = NSTemporaryDirectory() + "plugsync-exec-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["src/a", "src/b", "dst"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        var names: [String] = []
        for i in 0..<70 { names.append(String(format: "a/%02d", i)) }
        for i in 0..<3 { names.append("b/\(i)") }
        for name in names { FileManager.default.createFile(atPath: root + "/src/" + name, contents: Data(name.utf8)) }
        let source = LocalEndpoint(root: root + "/src")
        let destination = StagingDestination(root: root + "/dst", failOnce: ["a/03", "b/1"], refused: ["a/65"])
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: source.list(recursive: true, filter: ListingFilter()).entries, destination: [])
        let recorder = Recorder()
        let executor = Executor(source: source, destination: destination, parallelism: 1, observer: recorder)
        executor.retryDelays = [0.01, 0.01]
        let stats = executor.execute(plan, temporaryFiles: [], dryRun: false)
        // A batch ends at 64 files and where the folder changes.
        XCTAssertEqual(destination.batches.map(\.count), [64, 6, 3])
        XCTAssertEqual(destination.batches.map { Set($0.map { $0.prefix(1) }) }, [["a"], ["a"], ["b"]])
        // The transient failures went again on their own; the refused file failed once.
        XCTAssertEqual(destination.received.sorted(), ["a/03", "b/1"])
        XCTAssertEqual(stats.transferred, 72)
        XCTAssertEqual(stats.failed, 1)
        XCTAssertTrue(recorder.lines.contains { $0.hasPrefix("Failed") && $0.hasSuffix("a/65") }, "\(recorder.lines)")
        for name in names where name != "a/65" {
            XCTAssertEqual(try? String(contentsOfFile: root + "/dst/" + name, encoding: .utf8), name)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/dst/a/65"))
        XCTAssertEqual(destination.created, ["a", "b"], "a destination that builds no folders creates them")
    }

    func testANewFolderOfFilesIsBuiltUnderATemporaryNameAndItsFilesAreReportedOnceItIsInPlace() throws {
        let root = NSTemporaryDirectory() + "plugsync-exec-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["src/a", "src/b/c", "src/late", "src/gone", "dst"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        let names = ["a/1", "a/2", "a/3", "b/4", "b/c/5", "late/6", "gone/7", "gone/8"]
        for name in names { FileManager.default.createFile(atPath: root + "/src/" + name, contents: Data(name.utf8)) }
        let source = LocalEndpoint(root: root + "/src")
        // a/2's commit fails once (sent again on its own, into the folder being built), a/3's
        // for good; the rename of "late" fails once and is tried again; "gone" cannot be renamed.
        let destination = StagingDestination(
            root: root + "/dst", failOnce: ["a/2", "late"], refused: ["gone", "a/3"], builds: true)
        let plan = Planner(type: .mirror, tolerance: 1).plan(
            source: source.list(recursive: true, filter: ListingFilter()).entries, destination: [])
        let recorder = Recorder()
        destination.recorder = recorder
        let executor = Executor(source: source, destination: destination, parallelism: 2, observer: recorder)
        executor.retryDelays = [0.01, 0.01]
        let stats = executor.execute(plan, temporaryFiles: [], dryRun: false)

        // b holds a folder: created as it is. a, b/c and late hold only files: built.
        XCTAssertEqual(destination.created, ["b"])
        XCTAssertEqual(destination.folderCommits.map(\.0).sorted(), ["a", "b/c", "late"])
        for (folder, linesThen) in destination.folderCommits {
            XCTAssertFalse(
                linesThen.contains { $0.contains(" \(folder)/") },
                "\(folder)'s files were reported before it was in place")
        }
        for name in names where !name.hasPrefix("gone") && name != "a/3" {
            XCTAssertEqual(try? String(contentsOfFile: root + "/dst/" + name, encoding: .utf8), name)
        }
        XCTAssertEqual(destination.received, ["a/2"])
        // A folder with a failed file is checked for what that file may have left.
        XCTAssertEqual(destination.verified, ["a"])
        // The folder that could not be put in place: it and both its files failed, not "copied".
        XCTAssertEqual(stats.transferred, 5)
        XCTAssertEqual(stats.failed, 4)
        XCTAssertTrue(
            recorder.lines.contains {
                $0.hasPrefix("Failed") && $0.contains("not put in place") && $0.hasSuffix("gone/7")
            },
            "\(recorder.lines)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/dst/gone"))
    }

    func testTheFolderQueueHandsOutEveryFileOnceAndKeepsWorkersInDifferentFolders() {
        // Plan order: 3 files in a, 2 in b, 1 in c, 4 in d (interleaved to check the grouping).
        let folders = ["a", "a", "b", "a", "b", "c", "d", "d", "d", "d"].map { FileName($0) }
        let queue = Executor.FolderQueue(folders: folders)
        // Two workers take turns: each keeps to its own folder while the other has one too.
        var taken: [Int: [Int]] = [0: [], 1: []]
        var idle = 0
        var turn = 0
        while idle < 2 {
            defer { turn += 1 }
            if let index = queue.next(worker: turn % 2) {
                taken[turn % 2]!.append(index)
                idle = 0
            } else {
                idle += 1
            }
        }
        XCTAssertEqual((taken[0]! + taken[1]!).sorted(), Array(0..<10), "every index exactly once")
        XCTAssertEqual(taken[0]!.prefix(3).map { folders[$0] }, Array(repeating: FileName("a"), count: 3))
        XCTAssertEqual(taken[1]!.prefix(2).map { folders[$0] }, Array(repeating: FileName("b"), count: 2))
        // While worker 0 was in a and worker 1 in b, they never shared a folder.
        for step in 0..<2 { XCTAssertNotEqual(folders[taken[0]![step]], folders[taken[1]![step]]) }
        // The last folder (d, 4 files) is shared once nothing else is left: both help.
        XCTAssertTrue(taken[0]!.contains { folders[$0] == FileName("d") })
        XCTAssertTrue(taken[1]!.contains { folders[$0] == FileName("d") })
    }

    // MARK: hard links

    func testHardLinkedSourceFilesStayLinksWhereTheDestinationHoldsThemAndAreCopiedElsewhere() throws {
        let root = NSTemporaryDirectory() + "plugsync-links-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["src/sub", "dst", "fat"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        FileManager.default.createFile(atPath: root + "/src/a", contents: Data(repeating: 7, count: 100_000))
        for name in ["sub/b", "sub/c", "z"] { XCTAssertEqual(link(root + "/src/a", root + "/src/" + name), 0) }
        let source = LocalEndpoint(root: root + "/src")
        let listing = source.list(recursive: true, filter: ListingFilter())
        XCTAssertEqual(listing.hardLinks.groups.count, 4)

        func run(_ destination: LocalEndpoint) -> (SyncStatistics, [String]) {
            // Listed anew each time: a file whose size changed since its listing is not copied.
            let listing = source.list(recursive: true, filter: ListingFilter())
            let plan = Planner(type: .mirror, source: source.capabilities, destination: destination.capabilities)
                .plan(
                    source: listing.entries,
                    destination: destination.list(recursive: true, filter: ListingFilter()).entries,
                    sourceLinks: listing.hardLinks)
            let recorder = Recorder()
            let stats = Executor(source: source, destination: destination, parallelism: 4, observer: recorder)
                .execute(plan, temporaryFiles: [], dryRun: false)
            return (stats, recorder.lines)
        }
        func inode(_ path: String) -> (ino: UInt64, links: Int) {
            var st = stat()
            XCTAssertEqual(lstat(root + "/" + path, &st), 0, path)
            return (UInt64(st.st_ino), Int(st.st_nlink))
        }

        let destination = LocalEndpoint(root: root + "/dst")
        let (first, lines) = run(destination)
        XCTAssertEqual(first.failed, 0, "\(lines)")
        XCTAssertEqual(first.bytes, 100_000, "one copy, three links: \(lines)")
        XCTAssertEqual(lines.filter { $0.hasPrefix("Linking") }.count, 3, "\(lines)")
        let names = ["dst/a", "dst/sub/b", "dst/sub/c", "dst/z"]
        XCTAssertEqual(Set(names.map { inode($0).ino }).count, 1)
        XCTAssertEqual(inode("dst/a").links, 4)
        let (second, again) = run(destination)
        XCTAssertEqual(second.transferred, 0, "\(again)")

        // The source changes: the new copy gets all four names again.
        FileManager.default.createFile(atPath: root + "/src/new", contents: Data("changed".utf8))
        XCTAssertEqual(rename(root + "/src/new", root + "/src/a"), 0)
        for name in ["sub/b", "sub/c", "z"] {
            XCTAssertEqual(unlink(root + "/src/" + name), 0)
            XCTAssertEqual(link(root + "/src/a", root + "/src/" + name), 0)
        }
        let changedListing = source.list(recursive: true, filter: ListingFilter())
        let plan = Planner(type: .mirror, source: source.capabilities, destination: destination.capabilities).plan(
            source: changedListing.entries,
            destination: destination.list(recursive: true, filter: ListingFilter()).entries,
            sourceLinks: changedListing.hardLinks)
        let third = Executor(source: source, destination: destination, parallelism: 4, observer: Recorder())
            .execute(plan, temporaryFiles: [], dryRun: false)
        XCTAssertEqual(third.failed, 0)
        XCTAssertEqual(Set(names.map { inode($0).ino }).count, 1)
        XCTAssertEqual(try String(contentsOfFile: root + "/dst/sub/c", encoding: .utf8), "changed")
        XCTAssertEqual(temporaryNames(in: root + "/dst"), [])

        // A destination without hard links (FAT, exFAT) gets a copy for each name.
        let fat = LocalEndpoint(root: root + "/fat", keepsHardLinks: false, caseInsensitiveNames: true)
        let (copied, fatLines) = run(fat)
        XCTAssertEqual(copied.failed, 0, "\(fatLines)")
        XCTAssertEqual(copied.transferred, 4)
        XCTAssertEqual(Set(["fat/a", "fat/sub/b", "fat/sub/c", "fat/z"].map { inode($0).ino }).count, 4)
    }

    func temporaryNames(in folder: String) -> [String] {
        let all = FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []
        return all.filter { ($0 as NSString).lastPathComponent.hasPrefix(".plugsync-tmp-") }
    }

    func testALinkWhoseFileFailedToCopyIsCopiedInsteadOfLinkedToOldContents() throws {
        let root = NSTemporaryDirectory() + "plugsync-links-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in ["src", "dst"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        FileManager.default.createFile(atPath: root + "/src/a", contents: Data("new".utf8))
        XCTAssertEqual(link(root + "/src/a", root + "/src/b"), 0)
        FileManager.default.createFile(atPath: root + "/dst/a", contents: Data("old contents".utf8))
        let source = LocalEndpoint(root: root + "/src")
        let listing = source.list(recursive: true, filter: ListingFilter())
        // The first copy fails for good; the link must not give "b" the old "a".
        let destination = FlakyDestination(root: root + "/dst", failures: 1, retryable: false)
        let plan = Planner(type: .mirror, tolerance: 1, destinationKeepsHardLinks: true).plan(
            source: listing.entries, destination: destination.list(recursive: true, filter: ListingFilter()).entries,
            sourceLinks: listing.hardLinks)
        XCTAssertEqual(plan.actions.map { "\($0.kind) \($0.path)" }, ["transfer a", "link b"])
        let stats = Executor(source: source, destination: destination, parallelism: 1, observer: Recorder())
            .execute(plan, temporaryFiles: [], dryRun: false)
        XCTAssertEqual(stats.failed, 1)
        XCTAssertEqual(try String(contentsOfFile: root + "/dst/b", encoding: .utf8), "new")
    }

    // MARK: deep trees

    /// Records removals, for a tree deeper than any path a local folder takes.
    final class RemovalRecorder: Endpoint, @unchecked Sendable {
        var removed = 0
        var displayName: String { "memory" }
        var capabilities: EndpointCapabilities { EndpointCapabilities() }
        func rootState() throws -> RootState { .nonEmpty }
        func prepareRoot() throws {}
        func list(recursive: Bool, filter: ListingFilter) -> Listing { Listing() }
        func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile { throw SyncFailure("none") }
        func receive(
            _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
        ) throws {}
        func createDirectory(_ path: FileName) throws {}
        func createSymlink(_ path: FileName, entry: Entry) throws {}
        func remove(_ path: FileName, kind: EntryKind) throws { removed += 1 }
        func setFolderAttributes(_ path: FileName, entry: Entry) throws {}
        func flush() throws {}
    }

    func testAnOrphanTreeTenThousandFoldersDeepIsDeletedWithoutRecursion() {
        var level: [Entry] = []
        for _ in 0..<10_000 {
            level = [Entry(name: "d", kind: .directory, mtime: Timestamp(seconds: 1), children: level)]
        }
        let tree = level
        nonisolated(unsafe) var removed = 0
        let done = expectation(description: "small-stack thread")
        let thread = Thread {
            let destination = RemovalRecorder()
            let plan = Planner(type: .mirror, tolerance: 1).plan(source: [], destination: tree)
            _ = Executor(source: destination, destination: destination, parallelism: 1, observer: Recorder())
                .execute(plan, temporaryFiles: [], dryRun: false)
            removed = destination.removed
            done.fulfill()
        }
        thread.stackSize = 256 << 10
        thread.start()
        wait(for: [done], timeout: 60)
        while !thread.isFinished { usleep(1000) }  // the tree is freed here, not on that thread
        XCTAssertEqual(removed, 10_000)
    }
}
