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
}
