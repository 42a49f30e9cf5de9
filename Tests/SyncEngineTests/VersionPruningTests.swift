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

    static let policies = [
        VersionPolicy(keepDays: 3, keepMin: 1, keepMax: 4), VersionPolicy(keepDays: 0, keepMin: 2, keepMax: 3),
        VersionPolicy(keepDays: 2, keepMin: 0, keepMax: 0), VersionPolicy(keepDays: 5, keepMin: 3, keepMax: 3),
        VersionPolicy(keepDays: 1, keepMin: 2, keepMax: 0),
    ]

    /// Pruning that reads the versions folder in parts prunes what pruning from the whole
    /// listing prunes, with the same lines: two copies of one versions folder, grown by seeded
    /// runs (each keeping a random few of a set of paths) two a day for 30 days, each pruned
    /// after every run, one from its whole listing and one in parts, under several policies.
    func testPruningInPartsPrunesWhatTheWholeListingPrunes() throws {
        for (number, policy) in Self.policies.enumerated() {
            let parts = try pruneBoth(policy, seed: 4242 + UInt64(number), index: false, label: "policy \(number)")
            XCTAssertLessThan(parts.runsListed, parts.runsSeen, "policy \(number): not every run folder was listed")
        }
    }

    /// With an index of what each run folder holds (kept between runs, starting empty), the
    /// same: and it asks for fewer versions by path than pruning without one.
    func testPruningWithAnIndexPrunesWhatTheWholeListingPrunes() throws {
        var askedWithout = 0
        var askedWith = 0
        for (number, policy) in Self.policies.enumerated() {
            let seed = 4242 + UInt64(number)
            let without = try pruneBoth(policy, seed: seed, index: false, label: "policy \(number)")
            let with = try pruneBoth(policy, seed: seed, index: true, label: "policy \(number), index")
            XCTAssertLessThanOrEqual(with.pathsAsked, without.pathsAsked, "policy \(number)")
            XCTAssertNotNil(with.index, "policy \(number)")
            askedWithout += without.pathsAsked
            askedWith += with.pathsAsked
        }
        XCTAssertLessThan(askedWith * 2, askedWithout, "the index spares most questions")
    }

    /// An index that the versions folder no longer matches: run folders and versions removed
    /// by hand, run folders made by hand (or another computer), run folders the index
    /// remembers as too large to hold. Pruning still prunes what the whole listing prunes.
    func testPruningWithAStaleIndexPrunesWhatTheWholeListingPrunes() throws {
        for (number, policy) in Self.policies.enumerated() {
            let parts = try pruneBoth(
                policy, seed: 77 + UInt64(number), index: true, handChanges: true, label: "policy \(number), stale")
            XCTAssertGreaterThan(parts.handChanges, 5, "policy \(number)")
        }
    }

    /// A version put in a run folder behind the index's back is not counted (the index does not
    /// tell where to ask for it): pruning may then keep more than the whole listing would, but
    /// never removes what the whole listing keeps.
    func testAVersionTheIndexDoesNotKnowOfOnlyKeepsMore() throws {
        let policy = VersionPolicy(keepDays: 0, keepMin: 1, keepMax: 2)
        let base = NSTemporaryDirectory() + "plugsync-prune-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let parts = PartsReadingFolder(root: base)
        parts.index = VersionsIndex()
        var random = SplitMix64(seed: 99)
        let paths = ["a.txt", "d/b.txt", "d/e/c.txt"].map { FileName($0) }
        var keptMore = 0
        for step in 0..<40 {
            let now = self.now + step * 3600
            let stamp = VersionsFolder.stamp(now)
            var kept = Set<FileName>()
            for path in paths where random.below(10) < 5 {
                kept.insert(path)
                try write("\(base)/.plugsync-versions/\(stamp)/\(path)", "\(step)")
            }
            if step % 5 == 4 {
                // Into an earlier run folder: a copy of the file, by hand.
                let runs = try FileManager.default.contentsOfDirectory(atPath: base + "/.plugsync-versions").sorted()
                let folder = runs[random.below(runs.count)]
                try write("\(base)/.plugsync-versions/\(folder)/\(paths[random.below(paths.count)])", "by hand")
            }
            let whole = Set(
                VersionPruning.plan(KeptVersion.all(in: parts.local.listVersions().entries), policy: policy, now: now)
                    .map { $0.0.pathInVersions.description })
            var got: [String] = []
            var errors: [String] = []
            _ = VersionPruning.prune(
                parts, policy: policy, now: now, versioned: kept, run: stamp,
                say: { got.append($0) }, sayError: { errors.append($0) })
            XCTAssertEqual(errors, [], "step \(step)")
            let gotPaths = Set(got.map { String($0.split(separator: " ").last ?? "") })
            XCTAssertTrue(gotPaths.isSubset(of: whole), "step \(step): \(gotPaths.subtracting(whole))")
            keptMore += whole.subtracting(gotPaths).count
        }
        XCTAssertGreaterThan(keptMore, 0, "some version by hand was not counted")
    }

    func testIndexReadsBackFromItsLines() {
        var index = VersionsIndex()
        let first = VersionsFolder.stamp(now)
        let second = VersionsFolder.stamp(now + 60)
        let third = VersionsFolder.stamp(now + 120)
        index.set(first, [FileName("a b.txt"), FileName("d/v 1 2 3"), FileName("x")])
        index.set(second, [])
        index.set(third, Set((0...VersionsIndex.largestRun).map { FileName("f\($0)") }))
        XCTAssertEqual(index.unknown, [third], "a run folder holding too many is remembered as unknown")
        XCTAssertFalse(index.holds(third, "f1"))
        XCTAssertTrue(index.knows(third))
        let text = Array("plugsync-ftp-times 1 x\n12 34 56 other\n".utf8) + index.stateLines
        let lines = text.split(separator: UInt8(ascii: "\n"))
        XCTAssertEqual(VersionsIndex(stateLines: lines), index)
        // A line lost: the run folder whose paths are not all there is unknown.
        let damaged = VersionsIndex(stateLines: lines.filter { Array($0) != Array("v x".utf8) })
        XCTAssertTrue(damaged.knows(first))
        XCTAssertFalse(damaged.holds(first, "a b.txt"))
        XCTAssertTrue(damaged.unknown.contains(first))
        XCTAssertEqual(damaged.runs[second], [])
    }

    /// Grows two copies of a versions folder by seeded runs (each keeping a random few of a set
    /// of paths) two a day for 30 days and prunes each after every run, one from its whole
    /// listing and one in parts (with an index kept between runs, or none): the same lines, the
    /// same trees. With `handChanges`, every few runs both copies are changed alike behind the
    /// index's back.
    func pruneBoth(
        _ policy: VersionPolicy, seed: UInt64, index: Bool, handChanges: Bool = false, label: String
    ) throws -> PartsReadingFolder {
        let paths = ["a.txt", "d/b.txt", "d/e/c.txt", "d/e/f.txt", "g/h.txt", "i.txt"].map { FileName($0) }
        let base = NSTemporaryDirectory() + "plugsync-prune-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let whole = LocalEndpoint(root: base + "/whole")
        let parts = PartsReadingFolder(root: base + "/parts")
        if index { parts.index = VersionsIndex() }
        var random = SplitMix64(seed: seed)
        var prunedInAll = 0
        for step in 0..<60 {
            let now = self.now + step * day / 2
            let stamp = VersionsFolder.stamp(now)
            var kept = Set<FileName>()
            for path in paths where random.below(10) < 4 {
                kept.insert(path)
                for side in ["whole", "parts"] {
                    try write("\(base)/\(side)/.plugsync-versions/\(stamp)/\(path)", "\(step) \(path)")
                }
            }
            if handChanges && step >= 8 && step % 3 == 0 {
                try changeByHand(base, step: step, now: now, paths: paths, parts: parts, &random)
            }
            var expected: [String] = []
            var got: [String] = []
            var errors: [String] = []
            let count = VersionPruning.prune(
                whole, policy: policy, now: now, say: { expected.append($0) }, sayError: { errors.append($0) })
            let countInParts = VersionPruning.prune(
                parts, policy: policy, now: now, versioned: kept, run: stamp, say: { got.append($0) },
                sayError: { errors.append($0) })
            XCTAssertEqual(errors, [], "\(label) step \(step)")
            XCTAssertEqual(got, expected, "\(label) step \(step)")
            XCTAssertEqual(countInParts, count, "\(label) step \(step)")
            let partsTree = tree(base + "/parts/.plugsync-versions")
            let wholeTree = tree(base + "/whole/.plugsync-versions")
            if handChanges {
                // A folder emptied by hand is removed by pruning from the whole listing; in parts,
                // where a version in it is looked for.
                let more = Set(partsTree).subtracting(wholeTree)
                XCTAssertEqual(
                    more.filter { !isFolder(base + "/parts/.plugsync-versions/" + $0) }, [], "\(label) step \(step)")
                XCTAssertEqual(Set(wholeTree).subtracting(partsTree), [], "\(label) step \(step)")
            } else {
                XCTAssertEqual(partsTree, wholeTree, "\(label) step \(step)")
            }
            prunedInAll += count
        }
        XCTAssertGreaterThan(prunedInAll, 10, "\(label) pruned something")
        return parts
    }

    /// One change to both copies that the index is not told of.
    func changeByHand(
        _ base: String, step: Int, now: Int, paths: [FileName], parts: PartsReadingFolder, _ random: inout SplitMix64
    ) throws {
        let folder = base + "/parts/.plugsync-versions"
        let runs = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        guard !runs.isEmpty else { return }
        let run = runs[random.below(runs.count)]
        parts.handChanges += 1
        switch step / 3 % 4 {
        case 0:  // a run folder removed
            for side in ["whole", "parts"] {
                try FileManager.default.removeItem(atPath: "\(base)/\(side)/.plugsync-versions/\(run)")
            }
        case 1:  // a version removed
            let files = tree(folder + "/" + run).filter { !isFolder(folder + "/" + run + "/" + $0) }
            guard !files.isEmpty else { return }
            let file = files[random.below(files.count)]
            for side in ["whole", "parts"] {
                try FileManager.default.removeItem(atPath: "\(base)/\(side)/.plugsync-versions/\(run)/\(file)")
            }
        case 2:  // a run folder made by another computer, an hour before this run
            let stamp = VersionsFolder.stamp(now - 3600)
            for path in paths where random.below(10) < 5 {
                for side in ["whole", "parts"] {
                    try write("\(base)/\(side)/.plugsync-versions/\(stamp)/\(path)", "elsewhere \(path)")
                }
            }
        default:  // a run folder remembered as too large to hold
            parts.index?.set(run, Set((0...VersionsIndex.largestRun).map { FileName("x\($0)") }))
        }
    }

    func write(_ file: String, _ text: String) throws {
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
    }

    func isFolder(_ path: String) -> Bool {
        var folder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &folder) && folder.boolValue
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
    /// Versions asked for by path (`versionEntries`).
    private(set) var pathsAsked = 0
    /// What it remembers of its run folders (nil: nothing), and how often the tests changed
    /// its versions folder behind that memory's back.
    var index: VersionsIndex?
    var handChanges = 0

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

    func rememberedVersions() -> VersionsIndex? { index }
    func rememberVersions(_ index: VersionsIndex) { self.index = index }

    func versionEntries(_ paths: [FileName]) throws -> [Entry?] {
        pathsAsked += paths.count
        return paths.map { path in
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
