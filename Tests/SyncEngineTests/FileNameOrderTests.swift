import TestSupport
import XCTest

@testable import SyncEngine

/// Names compare and sort by their bytes (the C locale's `ls` order), whatever their storage:
/// inline, on the heap, or escaped (bytes that are not UTF-8).
final class FileNameOrderTests: XCTestCase {
    func testOrderAndEqualityAreTheBytes() {
        var random = SplitMix64(seed: 20_261_124)
        let alphabet: [UInt8] = [0x00 + 1, 0x2e, 0x41, 0x61, 0x7a, 0x7f, 0x80, 0xc3, 0xa9, 0xef, 0xbf, 0xff]
        var names: [[UInt8]] = [[], [0x61], [0x61, 0x61], Array("é".utf8), Array("\u{FFFF}x".utf8)]
        for _ in 0..<3_000 {
            let length = Int(random.next() % 40)  // inline (up to 15 bytes) and on the heap
            names.append((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
        }
        let fileNames = names.map { FileName(bytes: $0) }
        for (index, name) in fileNames.enumerated() { XCTAssertEqual(name.bytes, names[index]) }
        for _ in 0..<20_000 {
            let i = Int(random.next() % UInt64(names.count))
            let j = Int(random.next() % UInt64(names.count))
            XCTAssertEqual(
                fileNames[i] < fileNames[j], names[i].lexicographicallyPrecedes(names[j]), "\(names[i]) \(names[j])")
            XCTAssertEqual(fileNames[i] == fileNames[j], names[i] == names[j], "\(names[i]) \(names[j])")
        }
        XCTAssertEqual(fileNames.sorted().map(\.bytes), names.sorted { $0.lexicographicallyPrecedes($1) })
    }

    /// `sortByName` sorts by the first 8 bytes as a number, then by the whole name, and moves
    /// the entries in place: the same order as sorting by name, for names that agree in their
    /// first 8 bytes or more, names that are the start of others, and escaped ones; each entry
    /// keeps its own fields.
    func testSortByNameIsTheOrderOfTheNames() {
        var random = SplitMix64(seed: 20_261_124_2)
        let alphabet: [UInt8] = [0x01, 0x2e, 0x61, 0x62, 0x7f, 0x80, 0xbf, 0xef, 0xff]
        let stems: [[UInt8]] = [[], Array("f0123".utf8), Array("abcdefgh".utf8), Array("abcdefghij".utf8)]
        for _ in 0..<300 {
            var names: Set<[UInt8]> = []
            for _ in 0..<Int(random.next() % 60) {
                let stem = stems[Int(random.next() % UInt64(stems.count))]
                let tail = (0..<Int(random.next() % 12)).map { _ in
                    alphabet[Int(random.next() % UInt64(alphabet.count))]
                }
                if !(stem + tail).isEmpty { names.insert(stem + tail) }
            }
            // The size tells each entry apart: it must travel with its name.
            var entries = names.map {
                Entry(
                    name: FileName(bytes: $0), kind: .file, size: Int64($0.count * 1000 + Int($0.last ?? 0)),
                    mtime: Timestamp(seconds: 0))
            }
            entries.sortByName()
            XCTAssertEqual(entries.map(\.name.bytes), names.sorted { $0.lexicographicallyPrecedes($1) })
            for entry in entries {
                let bytes = entry.name.bytes
                XCTAssertEqual(entry.size, Int64(bytes.count * 1000 + Int(bytes.last ?? 0)))
            }
        }
    }
}
