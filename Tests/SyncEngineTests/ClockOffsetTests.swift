import XCTest

@testable import FTPBackend
@testable import SyncEngine

/// The clock difference from the probe file: the server's stamp (to the second, its clock)
/// against the interval of this computer's clock in which the upload happened.
final class ClockOffsetTests: XCTestCase {
    func offset(_ serverTime: Int64, _ before: Double, _ after: Double, likely: [Int64] = [0]) -> Int64 {
        FTPEndpoint.clockOffset(serverTime: serverTime, before: before, after: after, likely: likely)
    }

    func testWithinOneSecondTheOffsetIsExact() {
        XCTAssertEqual(offset(1_000, 1_000.20, 1_000.25), 0)
        XCTAssertEqual(offset(4_684, 1_000.20, 1_000.25), 3_684)
        XCTAssertEqual(offset(1_000, 1_003.40, 1_003.41), -3)
        // Not a likely value, but the only one that fits.
        XCTAssertEqual(offset(1_001, 1_000.20, 1_000.25, likely: [0]), 1)
    }

    /// The upload ended just before a second turned and its reply came just after (or late:
    /// a busy server): the middle of the interval said -1, and the next run copied every file.
    func testAcrossTheTurnOfASecondTheLikelyOffsetIsTaken() {
        XCTAssertEqual(offset(1_000, 1_000.98, 1_001.05), 0)
        XCTAssertEqual(offset(1_000, 1_000.90, 1_001.30), 0)
        // The kernel's file times lag its clock by up to a tick.
        XCTAssertEqual(offset(999, 1_000.005, 1_000.04), 0)
        // A skewed server: the last run's measurement, where it fits.
        XCTAssertEqual(offset(4_684, 1_000.98, 1_001.05, likely: [3_684, 0]), 3_684)
        // Nothing likely fits: the middle of the interval, within what fits.
        XCTAssertEqual(offset(4_684, 1_000.98, 1_001.05, likely: [0]), 3_683)
        XCTAssertEqual(offset(4_684, 1_000.90, 1_001.02, likely: [0]), 3_684)
        XCTAssertEqual(offset(1_000, 1_000.98, 1_001.05, likely: []), -1)
    }
}
