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
        XCTAssertLessThanOrEqual(MemoryLayout<Action>.stride, 56)
        XCTAssertLessThanOrEqual(MemoryLayout<Entry>.stride, 72)
        XCTAssertEqual(MemoryLayout<FileName>.stride, 16)  // short names inline, no allocation
    }

    /// FileName keeps bytes exactly, compares them as bytes, whatever they are.
    func testFileNameBytes() {
        let latin1 = FileName(bytes: [0x63, 0x61, 0x66, 0xE9])  // "café" in Latin-1: not UTF-8
        XCTAssertEqual(latin1.bytes, [0x63, 0x61, 0x66, 0xE9])
        XCTAssertEqual(latin1.description, "caf\\xe9")
        let mark = FileName(bytes: Array("\u{FFFF}x".utf8))  // UTF-8 that starts like the escape
        XCTAssertEqual(mark.bytes, Array("\u{FFFF}x".utf8))
        XCTAssertNotEqual(mark, FileName(bytes: Array("x".utf8)))
        let composed = FileName("\u{E9}")
        let decomposed = FileName("e\u{301}")
        XCTAssertNotEqual(composed, decomposed)  // different bytes: different names
        XCTAssertEqual(Set([composed, decomposed, FileName("\u{E9}")]).count, 2)
        XCTAssertEqual(latin1, FileName(bytes: [0x63, 0x61, 0x66, 0xE9]))
        XCTAssertEqual(latin1.hashValue, FileName(bytes: [0x63, 0x61, 0x66, 0xE9]).hashValue)
        // Byte order across both storages.
        let names = [FileName("cafe"), latin1, FileName("caf\u{E9}"), FileName("caf"), mark, FileName("")]
        XCTAssertEqual(names.sorted().map(\.bytes), names.map(\.bytes).sorted { $0.lexicographicallyPrecedes($1) })
        XCTAssertEqual(FileName("a").appending(latin1).bytes, [0x61, 0x2F, 0x63, 0x61, 0x66, 0xE9])
        XCTAssertEqual(latin1.appending("b").bytes, [0x63, 0x61, 0x66, 0xE9, 0x2F, 0x62])
        XCTAssertEqual(FileName("a/b").appending("c"), "a/b/c")
        XCTAssertEqual(FileName.empty.appending("c"), "c")
        XCTAssertEqual(FileName("a/b/c").parent, "a/b")
        XCTAssertEqual(FileName("a/b/c").lastComponent, "c")
        var changed = FileName("x")
        changed.bytes.append(0xFF)
        XCTAssertEqual(changed.bytes, [0x78, 0xFF])
        XCTAssertEqual(latin1.withCString { strlen($0) }, 4)
    }
}
