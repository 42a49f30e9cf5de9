import Foundation
import XCTest

@testable import SyncEngine

/// `verify: true`'s comparison: the hash of what was sent against the hash of what is read back.
final class WriteCheckTests: XCTestCase {
    /// Bytes served from memory, a given number at a time.
    final class Bytes: ReadableFile {
        var data: [UInt8]
        var offset = 0
        let piece: Int
        init(_ data: [UInt8], piece: Int = 1 << 20) {
            self.data = data
            self.piece = piece
        }
        var localDescriptor: Int32? { 3 }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let n = min(buffer.count, piece, data.count - offset)
            if n > 0 {
                data.withUnsafeBytes { source in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<offset + n]))
                }
            }
            offset += n
            return n
        }
        func close() {}
    }

    func sample(_ count: Int) -> [UInt8] {
        var state: UInt64 = 0x1234_5678
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    func hash(_ bytes: [UInt8], pieces: Int) -> ContentHash {
        var hash = ContentHash()
        var at = 0
        while at < bytes.count {
            let end = min(bytes.count, at + pieces)
            bytes[at..<end].withUnsafeBytes { hash.update($0) }
            at = end
        }
        return hash
    }

    func testTheHashDoesNotDependOnHowTheBytesArriveButOnEveryBit() {
        let data = sample(100_003)
        let whole = hash(data, pieces: data.count)
        for pieces in [1, 7, 31, 32, 33, 4096, 65_537] {
            XCTAssertEqual(hash(data, pieces: pieces), whole, "in pieces of \(pieces)")
        }
        XCTAssertEqual(whole.count, 100_003)
        // Every bit of a few positions (the first block, a lane boundary, the tail), one at a time.
        for position in [0, 8, 31, 32, 50_000, 99_999, 100_002] {
            for bit in 0..<8 {
                var changed = data
                changed[position] ^= UInt8(1 << bit)
                XCTAssertNotEqual(hash(changed, pieces: 4096).value, whole.value, "bit \(bit) of byte \(position)")
            }
        }
        XCTAssertNotEqual(hash(Array(data.dropLast()), pieces: 4096), whole, "one byte short")
        XCTAssertNotEqual(hash(data + [0], pieces: 4096), whole, "a zero byte more")
        XCTAssertNotEqual(ContentHash(), hash([0], pieces: 1), "nothing and a zero byte")
        // Two blocks swapped: the lanes are mixed in order.
        let swapped = Array(data[32..<64] + data[0..<32] + data[64...])
        XCTAssertNotEqual(hash(swapped, pieces: 4096), whole)
    }

    func testACopyReadBackIsComparedWithWhatWasSent() throws {
        let data = sample(300_000)
        func sent() throws -> CheckedFile {
            let file = CheckedFile(Bytes(data, piece: 5000))
            XCTAssertNil(file.localDescriptor, "every byte passes through read")
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 8)
            defer { buffer.deallocate() }
            while try file.read(into: buffer) > 0 {}
            return file
        }
        XCTAssertNoThrow(try sent().check.compare(readBack: Bytes(data, piece: 777)))

        var flipped = data
        flipped[123_456] ^= 0x10
        XCTAssertThrowsError(try sent().check.compare(readBack: Bytes(flipped))) {
            XCTAssertTrue($0 is ReadBackDiffers, "\($0)")
            XCTAssertEqual("\($0)", "read back differs from what was sent")
        }
        XCTAssertThrowsError(try sent().check.compare(readBack: Bytes(Array(data.prefix(299_999))))) {
            XCTAssertTrue($0 is ReadBackDiffers, "\($0)")
        }
        XCTAssertThrowsError(try sent().check.compare(readBack: Bytes([UInt8](repeating: 0, count: 300_000)))) {
            XCTAssertTrue($0 is ReadBackDiffers, "zeros where the data never landed: \($0)")
        }

        final class Broken: ReadableFile {
            var localDescriptor: Int32? { nil }
            func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
                throw EndpointError(.permanent, "Input/output error")
            }
            func close() {}
        }
        XCTAssertThrowsError(try sent().check.compare(readBack: Broken())) {
            XCTAssertTrue($0 is ReadBackFailed, "\($0)")
            XCTAssertEqual("\($0)", "cannot read it back: Input/output error")
            XCTAssertEqual(EndpointErrorKind.of($0), .permanent)
        }
    }
}
