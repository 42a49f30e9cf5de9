import XCTest

@testable import SyncEngine

/// The compact action: entries referred to in the listing, path joined on demand.
final class ActionTests: XCTestCase {
    func file(_ name: String, size: Int64 = 10) -> Entry {
        Entry(name: FileName(name), kind: .file, size: size, mtime: Timestamp(seconds: 1000), mode: 0o644)
    }

    func testPlannedActionsCarryPathsAndEntries() {
        let source = [Entry(name: "a", kind: .directory, mtime: Timestamp(seconds: 1), children: [file("x", size: 5)])]
        let destination = [
            Entry(name: "a", kind: .directory, mtime: Timestamp(seconds: 1), children: [file("x", size: 7), file("y")])
        ]
        var plan = Planner(type: .mirror, tolerance: 1).plan(source: source, destination: destination)
        XCTAssertEqual(plan.actions.map(\.path), ["a/x", "a/y"])
        XCTAssertEqual(plan.actions[0].source?.size, 5)
        XCTAssertEqual(plan.actions[0].destination?.size, 7)
        XCTAssertNil(plan.actions[1].source)
        XCTAssertEqual(plan.actions[1].destination?.name, "y")
        // Changing the entries keeps the path; setting the path replaces it.
        plan.actions[1].destination = nil
        XCTAssertEqual(plan.actions[1].path, "a/y")
        plan.actions[0].source = file("other")
        XCTAssertEqual(plan.actions[0].path, "a/x")
        XCTAssertEqual(plan.actions[0].source?.name, "other")
        plan.actions[0].path = "b"
        XCTAssertEqual(plan.actions[0].path, "b")
        let made = Action(kind: .delete, path: "z/w", source: nil, destination: file("w"), reason: .orphaned(.file))
        XCTAssertEqual(made.path, "z/w")
        XCTAssertEqual(made.destination?.name, "w")
    }

    /// A plan holds one action per entry: keep them small (see bench/README.md, memory).
    func testSizes() {
        XCTAssertLessThanOrEqual(MemoryLayout<Action>.stride, 48)
        XCTAssertLessThanOrEqual(MemoryLayout<Entry>.stride, 56)
    }
}
