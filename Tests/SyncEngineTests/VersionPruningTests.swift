import Foundation
import LocalBackend
import TestSupport
import XCTest

@testable import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// Which versions go: per path, the newest `keep_min` always stay; beyond `keep_max` and older
/// than `keep_days` they go.
final class VersionPruningTests: XCTestCase {
    let day = 86400
    let now = 1_790_856_000

    func version(_ path: String, daysAgo: Int) -> KeptVersion {
        let seconds = now - daysAgo * day
        return KeptVersion(
            stamp: VersionsFolder.stamp(seconds), seconds: seconds, path: FileName(path),
            entry: Entry(name: FileName(path).lastComponent, kind: .file, size: 1, mtime: Timestamp(seconds: 0)))
    }

    func pruned(_ versions: [KeptVersion], _ policy: VersionPolicy) -> [String] {
        VersionPruning.plan(versions, policy: policy, now: now).map {
            "\($0.0.path)@\(($0.0.seconds - now) / day) \($0.1)"
        }
    }

    func testAgeCountAndMinimum() {
        let versions = [0, 5, 40, 50, 60].map { version("a.txt", daysAgo: $0) } + [version("b.txt", daysAgo: 90)]
        XCTAssertEqual(
            pruned(versions, VersionPolicy(keepDays: 30, keepMin: 3, keepMax: 20)),
            ["a.txt@-60 older than 30 days", "a.txt@-50 older than 30 days"],
            "the third newest stays though older; b.txt's only version stays")
        XCTAssertEqual(
            pruned(versions, VersionPolicy(keepDays: 0, keepMin: 1, keepMax: 2)),
            ["a.txt@-60 more than 2 versions", "a.txt@-50 more than 2 versions", "a.txt@-40 more than 2 versions"])
        XCTAssertEqual(pruned(versions, VersionPolicy(keepDays: 0, keepMin: 0, keepMax: 0)), [], "nothing by default")
        XCTAssertEqual(
            pruned(versions, VersionPolicy(keepDays: 1, keepMin: 0, keepMax: 0)).count, 5, "keep_min 0 keeps none")
    }

    func testStampsReadBack() {
        for seconds in [now, now + 3599, 1_700_000_000] {
            XCTAssertEqual(VersionsFolder.seconds(ofStamp: VersionsFolder.stamp(seconds)), seconds)
        }
        for bad in ["2026-10-01", "2026-13-01_120000", "2026-10-01-120000", "2026-10-01_12000x", "x"] {
            XCTAssertNil(VersionsFolder.seconds(ofStamp: bad), bad)
        }
    }

    func testOnlyRunFoldersHoldVersions() {
        let listing = [
            Entry(
                name: FileName(VersionsFolder.stamp(now)), kind: .directory, mtime: Timestamp(seconds: 0),
                children: [
                    Entry(
                        name: "docs", kind: .directory, mtime: Timestamp(seconds: 0),
                        children: [Entry(name: "r.odt", kind: .file, size: 3, mtime: Timestamp(seconds: 0))])
                ]),
            Entry(
                name: "notes", kind: .directory, mtime: Timestamp(seconds: 0),
                children: [Entry(name: "x.txt", kind: .file, size: 3, mtime: Timestamp(seconds: 0))]),
        ]
        XCTAssertEqual(KeptVersion.all(in: listing).map(\.path.description), ["docs/r.odt"])
    }

    /// Pruning that reads the versions folder in parts prunes what pruning from the whole
    /// listing prunes, with the same lines: two copies of one versions folder, grown by seeded
    /// runs (each keeping a random few of a set of paths) two a day for 30 days, each pruned
    /// after every run, one from its whole listing and one in parts, under several policies.
    func testPruningInPartsPrunesWhatTheWholeListingPrunes() throws {
        let policies = [
            VersionPolicy(keepDays: 3, keepMin: 1, keepMax: 4), VersionPolicy(keepDays: 0, keepMin: 2, keepMax: 3),
            VersionPolicy(keepDays: 2, keepMin: 0, keepMax: 0), VersionPolicy(keepDays: 5, keepMin: 3, keepMax: 3),
            VersionPolicy(keepDays: 1, keepMin: 2, keepMax: 0),
        ]
        let paths = ["a.txt", "d/b.txt", "d/e/c.txt", "d/e/f.txt", "g/h.txt", "i.txt"].map { FileName($0) }
        for (number, policy) in policies.enumerated() {
            let base = NSTemporaryDirectory() + "plugsync-prune-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: base) }
            let whole = LocalEndpoint(root: base + "/whole")
            let parts = PartsReadingFolder(root: base + "/parts")
            var random = SplitMix64(seed: 4242 + UInt64(number))
            var prunedInAll = 0
            for step in 0..<60 {
                let now = self.now + step * day / 2
                let stamp = VersionsFolder.stamp(now)
                var kept = Set<FileName>()
                for path in paths where random.below(10) < 4 {
                    kept.insert(path)
                    for side in ["whole", "parts"] {
                        let file = "\(base)/\(side)/.plugsync-versions/\(stamp)/\(path)"
                        try FileManager.default.createDirectory(
                            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                        try Data("\(step) \(path)".utf8).write(to: URL(fileURLWithPath: file))
                    }
                }
                var expected: [String] = []
                var got: [String] = []
                var errors: [String] = []
                let count = VersionPruning.prune(
                    whole, policy: policy, now: now, say: { expected.append($0) }, sayError: { errors.append($0) })
                let countInParts = VersionPruning.prune(
                    parts, policy: policy, now: now, versioned: kept, say: { got.append($0) },
                    sayError: { errors.append($0) })
                XCTAssertEqual(errors, [], "policy \(number) step \(step)")
                XCTAssertEqual(got, expected, "policy \(number) step \(step)")
                XCTAssertEqual(countInParts, count, "policy \(number) step \(step)")
                XCTAssertEqual(
                    tree(base + "/parts/.plugsync-versions"), tree(base + "/whole/.plugsync-versions"),
                    "policy \(number) step \(step)")
                prunedInAll += count
            }
            XCTAssertGreaterThan(prunedInAll, 10, "policy \(number) pruned something")
            XCTAssertLessThan(parts.runsListed, parts.runsSeen, "policy \(number): not every run folder was listed")
        }
    }

    /// Every file and folder below `folder`, by relative path.
    func tree(_ folder: String) -> [String] {
        ((FileManager.default.enumerator(atPath: folder)?.allObjects as? [String]) ?? []).sorted()
    }
}

/// A local folder whose versions folder is read in parts (`VersionsLookup`) with the file
/// system's own calls; everything else is the local endpoint's.
final class PartsReadingFolder: VersionsLookup, @unchecked Sendable {
    let local: LocalEndpoint
    let versions: String
    /// Run folders listed whole (`listVersionRuns(_:)`), and run folders found at the top.
    private(set) var runsListed = 0
    private(set) var runsSeen = 0

    init(root: String) {
        local = LocalEndpoint(root: root)
        versions = root + "/" + VersionsFolder.name.description
    }

    var displayName: String { local.displayName }
    var capabilities: EndpointCapabilities { local.capabilities }
    func rootState() throws -> RootState { try local.rootState() }
    func prepareRoot() throws { try local.prepareRoot() }
    func list(recursive: Bool, filter: ListingFilter) -> Listing { local.list(recursive: recursive, filter: filter) }
    func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile {
        try local.openForReading(path, entry: entry)
    }
    func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
    ) throws {
        try local.receive(path, from: file, entry: entry, replacing: replacing, progress: progress)
    }
    func createDirectory(_ path: FileName) throws { try local.createDirectory(path) }
    func createSymlink(_ path: FileName, entry: Entry) throws { try local.createSymlink(path, entry: entry) }
    func remove(_ path: FileName, kind: EntryKind) throws { try local.remove(path, kind: kind) }
    func setFolderAttributes(_ path: FileName, entry: Entry) throws {
        try local.setFolderAttributes(path, entry: entry)
    }
    func flush() throws { try local.flush() }
    func listVersions() -> Listing { local.listVersions() }

    func listVersionRuns() -> Listing {
        var listing = Listing()
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: versions)) ?? []).sorted() {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: versions + "/" + name, isDirectory: &isFolder),
                isFolder.boolValue
            else { continue }
            listing.entries.append(Entry(name: FileName(name), kind: .directory, mtime: Timestamp(seconds: 0)))
        }
        runsSeen += listing.entries.count
        return listing
    }

    func listVersionRuns(_ runs: [FileName]) -> Listing {
        runsListed += runs.count
        var listing = local.listVersions()
        listing.entries.removeAll { !runs.contains($0.name) }
        return listing
    }

    func versionEntries(_ paths: [FileName]) throws -> [Entry?] {
        paths.map { path in
            var st = stat()
            guard lstat(versions + "/" + path.description, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
            return Entry(name: path.lastComponent, kind: .file, size: Int64(st.st_size), mtime: Timestamp(seconds: 0))
        }
    }

    func removeVersions(_ paths: [FileName]) -> [Error?] {
        paths.map { path in
            do {
                try local.remove(VersionsFolder.name.appending(path), kind: .file)
                return nil
            } catch {
                return error
            }
        }
    }

    func removeEmptyVersionFolders(_ folders: [FileName]) {
        for folder in folders { rmdir(versions + "/" + folder.description) }
    }
}
