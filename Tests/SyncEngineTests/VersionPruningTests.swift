import XCTest

@testable import SyncEngine

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
}
