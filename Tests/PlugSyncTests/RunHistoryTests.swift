import Foundation
import XCTest

@testable import PlugSync

/// The run history keeps every run across opens, and its write-ahead log stays between runs
/// (created once, not at every run with its syncs).
final class RunHistoryTests: XCTestCase {
    func testRunsAreKeptAcrossOpensAndTheLogStays() throws {
        let state = NSTemporaryDirectory() + "plugsync-history-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: state) }
        func run(_ seconds: Double, _ result: String) -> RunRecord {
            RunRecord(
                definition: "up", trigger: "manual", started: Date(timeIntervalSince1970: 1_700_000_000 + seconds),
                seconds: seconds, result: result, transferred: 1, deleted: 0, skipped: 2, failed: 0, bytes: 3,
                message: "")
        }
        do {
            let history = try RunHistory(stateDirectory: state)
            try history.record(run(1, "success"))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: state + "/history.sqlite-wal"))
        let history = try RunHistory(stateDirectory: state)
        try history.record(run(2, "failures"))
        XCTAssertEqual(history.runs(of: "up", limit: 5).map(\.result), ["failures", "success"])
    }

    /// Clones share a UUID; their File Check files tell them apart. Runs recorded before the
    /// check was kept join the first drive recorded with one; a forgotten drive leaves the
    /// rotation until it runs again.
    func testDrivesAreToldApartByTheirCheckAndCanBeForgotten() throws {
        let state = NSTemporaryDirectory() + "plugsync-history-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: state) }
        let history = try RunHistory(stateDirectory: state)
        func run(_ at: Double, _ drive: DriveIdentity) throws {
            try history.record(
                RunRecord(
                    definition: "offsite", trigger: "mount", started: Date(timeIntervalSince1970: 1_700_000_000 + at),
                    seconds: 1, result: "success", drive: drive))
        }
        let uuid = "0F1E2D3C-0000-4000-8000-00000000ABCD"
        try run(0, DriveIdentity(label: "OFFSITE", uuid: uuid))
        try run(10, DriveIdentity(label: "OFFSITE", uuid: uuid, check: "offsite-a"))
        XCTAssertEqual(history.drives(of: "offsite").map(\.drive?.check), ["offsite-a"])
        XCTAssertEqual(
            history.runs(of: "offsite", limit: 5, drive: "uuid:\(uuid.lowercased()) check:offsite-a").count, 2)
        try run(20, DriveIdentity(label: "OFFSITE", uuid: uuid, check: "offsite-b"))
        XCTAssertEqual(history.drives(of: "offsite").map(\.drive?.check), ["offsite-b", "offsite-a"])
        // Only once: runs without the check that come later stay on their own key.
        try run(30, DriveIdentity(label: "OFFSITE", uuid: uuid))
        XCTAssertEqual(history.drives(of: "offsite").count, 3)

        let a = DriveIdentity(label: "OFFSITE", uuid: uuid, check: "offsite-a")
        try history.forget(drive: a.key, of: "offsite", at: Date(timeIntervalSince1970: 1_700_000_005))
        XCTAssertEqual(history.drives(of: "offsite").map(\.drive?.check), [nil, "offsite-b"])
        try run(40, a)
        XCTAssertEqual(history.drives(of: "offsite").map(\.drive?.check), ["offsite-a", nil, "offsite-b"])
    }

    /// A check file's content is named by its first line when that is short text, else by a digest.
    func testCheckContentNames() {
        XCTAssertEqual(FileCheck.contentName(Array("offsite-b\n".utf8)), "offsite-b")
        XCTAssertEqual(FileCheck.contentName(Array("3f9a1c2e00112233aabbccdd".utf8)), "3f9a1c2e00112233aabbccdd")
        let long = FileCheck.contentName(Array("id=1\nowner=ana\n".utf8))
        XCTAssertTrue(long.hasPrefix("#") && long.count == 17, long)
        XCTAssertNotEqual(long, FileCheck.contentName(Array("id=2\nowner=ana\n".utf8)))
        XCTAssertTrue(FileCheck.contentName(Array("a b".utf8)).hasPrefix("#"))
        XCTAssertTrue(FileCheck.contentName([0x1B, 0x5B, 0x32, 0x4A]).hasPrefix("#"))
    }
}
