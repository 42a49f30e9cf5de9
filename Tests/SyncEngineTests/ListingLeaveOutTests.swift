import XCTest

@testable import SyncEngine

/// `Listing.leaveOut` takes out exactly the entries at the given paths, at any depth, and keeps
/// entries of the same name elsewhere.
final class ListingLeaveOutTests: XCTestCase {
    func testOnlyTheGivenPathsGo() {
        func file(_ name: String) -> Entry { Entry(name: FileName(name), kind: .file, mtime: Timestamp(seconds: 0)) }
        func folder(_ name: String, _ children: [Entry]) -> Entry {
            Entry(name: FileName(name), kind: .directory, mtime: Timestamp(seconds: 0), children: children)
        }
        var listing = Listing()
        listing.entries = [
            folder("a", [folder("b", [file("id"), file("x")]), file("id")]),
            folder("c", [folder("b", [file("id")])]),
            file("id"),
        ]
        listing.temporaryFiles = [FileName("a/b/id"), FileName("c/t")]
        listing.unreadableFiles = [FileName("a/b/id"), FileName("a/id")]
        listing.leaveOut([FileName("a/b/id"), FileName("id")])
        var paths: [String] = []
        func walk(_ entries: [Entry], _ base: String) {
            for entry in entries {
                paths.append(base + entry.name.description)
                walk(entry.children ?? [], base + entry.name.description + "/")
            }
        }
        walk(listing.entries, "")
        XCTAssertEqual(paths, ["a", "a/b", "a/b/x", "a/id", "c", "c/b", "c/b/id"])
        XCTAssertEqual(listing.temporaryFiles, [FileName("c/t")])
        XCTAssertEqual(listing.unreadableFiles, [FileName("a/id")])
    }
}
