import XCTest

@testable import PlugSync

final class RunReporterTests: XCTestCase {
    /// The word-at-a-time test of a line's bytes agrees with a byte-by-byte one, on every
    /// byte value at every place of a line and on random lines of every length up to 40.
    func testPrintableASCIIAgreesWithTheByteByByteTest() {
        func naive(_ bytes: [UInt8], _ range: Range<Int>) -> Bool {
            bytes[range].allSatisfy { $0 >= 0x20 && $0 < 0x7f }
        }
        for value in 0...255 {
            for place in 0..<19 {
                var line = [UInt8](repeating: UInt8(ascii: "a"), count: 19)
                line[place] = UInt8(value)
                for start in 0..<3 {
                    let range = start..<line.count
                    XCTAssertEqual(
                        RunReporter.isPrintableASCII(line, range), naive(line, range), "byte \(value) at \(place)")
                }
            }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let line = (0..<Int.random(in: 0...40, using: &generator)).map { _ in
                UInt8.random(in: 0x1e...0x81, using: &generator)
            }
            XCTAssertEqual(RunReporter.isPrintableASCII(line, 0..<line.count), naive(line, 0..<line.count), "\(line)")
        }
    }
}
