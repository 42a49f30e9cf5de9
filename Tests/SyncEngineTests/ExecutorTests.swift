import Foundation
import XCTest

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
        func removedTemporaryFile(_ path: FileName) {}
        func transferred(bytes: Int64) {}
    }

    func testLinksOntoADestinationWithoutLinksFailWithAReasonWhileFilesAreCopied() throws {
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
        XCTAssertEqual(stats.failed, 1)
        XCTAssertTrue(
            recorder.lines.contains {
                $0.hasPrefix("Failed") && $0.contains("cannot store symbolic links") && $0.hasSuffix(" l")
            }, "\(recorder.lines)")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/dst"), ["f"])
    }
}
