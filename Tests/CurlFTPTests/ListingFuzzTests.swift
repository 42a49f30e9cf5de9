import Foundation
import TestSupport
import XCTest

@testable import CurlFTP

#if canImport(Glibc)
    import Glibc
#endif

/// docs/RELIABILITY.md case 6 (second half): the LIST and MLSD parsers fed seeded random listings, valid
/// lines of every form first mutated by byte flips, hostile bytes, cuts, duplicated ranges and
/// huge or negative numbers. A listing is data from a server this client does not control.
///
/// Invariants: no crash (a trap ends the test process, so it cannot pass); every entry the
/// endpoint would accept (dot entries dropped, then `isSafeName`) has a name that is not empty,
/// not `.`/`..`, with no `/`, NUL, control character or DEL; no entry has a negative size; every
/// name is bytes of the listing itself; precisions are 0, 1, 60 or 86,400 s.
///
/// CI runs `PLUGSYNC_FUZZ_CASES` cases (default 200,000) from `PLUGSYNC_FUZZ_SEED` (default
/// 6_2026); set both for a longer run by hand:
/// `PLUGSYNC_FUZZ_CASES=20000000 PLUGSYNC_FUZZ_SEED=7 swift test --filter ListingFuzzTests`.
final class ListingFuzzTests: XCTestCase {
    func testListingParsersSurviveRandomListings() {
        let environment = ProcessInfo.processInfo.environment
        let cases = environment["PLUGSYNC_FUZZ_CASES"].flatMap { Int($0) } ?? 200_000
        let seed = environment["PLUGSYNC_FUZZ_SEED"].flatMap { UInt64($0) } ?? 6_2026
        print("listing fuzz: seed \(seed), \(cases) cases")
        var generator = ListingGenerator(seed: seed)
        var held = 0
        var accepted = 0
        var firstFailure: String?
        let start = Date()
        for index in 0..<cases {
            let (data, serverNow) = generator.listing()
            var problems: [String] = []
            let mlsd = FTPListingParser.parseMLSD(data)
            let list = FTPListingParser.parseLIST(data, serverNow: serverNow)
            for (parser, result) in [("MLSD", mlsd), ("LIST", list)] {
                if result.unreadable < 0 { problems.append("\(parser): negative unreadable count") }
                for entry in result.entries {
                    problems += Self.problems(of: entry, in: data)
                    // What FTPEndpoint keeps: dot entries dropped, then the safe-name rule.
                    if entry.name == [0x2e] || entry.name == [0x2e, 0x2e] { continue }
                    guard FTPListingParser.isSafeName(entry.name) else { continue }
                    accepted += 1
                    if let unsafe = Self.unsafe(entry.name) {
                        problems.append("\(parser): accepted name \(entry.name) \(unsafe)")
                    }
                }
            }
            if problems.isEmpty {
                held += 1
            } else if firstFailure == nil {
                firstFailure = "case \(index): \(problems.joined(separator: "; "))\nlisting bytes: \(data)"
            }
        }
        let seconds = Date().timeIntervalSince(start)
        print(
            "listing fuzz: \(accepted) entries accepted, \(String(format: "%.1f", seconds)) s"
        )
        print("reliability: case 6b LIST/MLSD parser fuzz: held \(held) of \(cases)")
        XCTAssertEqual(held, cases, firstFailure ?? "")
    }

    /// Independent of `isSafeName`: why a name may not become a path component, or nil.
    static func unsafe(_ name: [UInt8]) -> String? {
        if name.isEmpty { return "is empty" }
        if name == [0x2e] || name == [0x2e, 0x2e] { return "is a dot entry" }
        if name.contains(0x2f) { return "holds '/'" }
        if name.contains(0) { return "holds NUL" }
        if name.contains(where: { $0 < 0x20 || $0 == 0x7f }) { return "holds a control character" }
        return nil
    }

    static func problems(of entry: RemoteEntry, in data: [UInt8]) -> [String] {
        var problems: [String] = []
        if entry.size < 0 { problems.append("negative size \(entry.size)") }
        if entry.kind == .other { problems.append("an entry of kind other was returned") }
        if ![0, 1, 60, 86_400].contains(entry.precision) { problems.append("precision \(entry.precision)") }
        if entry.name.isEmpty { problems.append("empty name") }
        if entry.name.contains(0x0A) { problems.append("a name spans lines") }
        if !entry.name.isEmpty && ListingGenerator.find(entry.name, in: data) == nil {
            problems.append("name \(entry.name) is not in the listing")
        }
        return problems
    }
}

/// Seeded listings: valid Unix, DOS and MLSD lines with hostile names and numbers, mutated.
struct ListingGenerator {
    private var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { random.next() }
    mutating func below(_ n: Int) -> Int { random.below(n) }
    mutating func chance(_ percent: Int) -> Bool { random.chance(percent) }
    mutating func pick<T>(_ items: [T]) -> T { random.pick(items) }

    static let months = ["Jan", "feb", "MAR", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo", ""]

    mutating func number() -> String {
        if chance(50) { return String(below(100_000)) }
        switch below(12) {
        case 0: return "-\(below(100_000))"
        case 1: return "99999999999999999999999"
        case 2: return "9223372036854775807"
        case 3: return "-9223372036854775808"
        case 4: return "+\(below(1000))"
        case 5: return "0x1F"
        case 6: return ""
        case 7: return String(next())
        default: return String(below(100_000_000))
        }
    }

    mutating func year() -> String {
        if chance(60) { return String(1990 + below(40)) }
        return pick([
            "2026", "1999", "1901", "1900", "0", "-5", "10000", "99999", "292277026596", "9223372036854775807",
            "99999999999999999999", "20", "+2026",
        ])
    }

    mutating func clock() -> String {
        if chance(60) { return "\(below(24)):\(10 + below(50))" }
        return pick([
            "07:53", "00:00", "23:59", "24:00", "12:60", "-1:30", "1:2:3", ":", "99999999999999999999:00", "7:5",
        ])
    }

    mutating func name() -> [UInt8] {
        let pieces: [[UInt8]] = [
            Array("about.html".utf8), Array(".".utf8), Array("..".utf8), Array("a/b".utf8), Array("../../etc".utf8),
            [0], [0x1b, 0x5b, 0x32, 0x4a], [0x0d], [0x7f], [0x09], Array(" -> ".utf8), Array(" ".utf8),
            [0xff, 0xfe], [0xc3, 0xa9], Array("name with spaces".utf8), Array("type=file;".utf8), Array("<DIR>".utf8),
            Array("x".utf8), [],
        ]
        var out: [UInt8] = []
        if chance(60) { return Array("file\(below(1000)).txt".utf8) }
        for _ in 0..<(1 + below(3)) { out += pick(pieces) }
        return out
    }

    mutating func unixLine() -> [UInt8] {
        let type = chance(60) ? "-" : pick(["-", "d", "l", "c", "b", "p", "s", "x", ""])
        let permissions = pick(["rw-r--r--", "rwxrwxrwx", "rwsr-sr-t", "rwSr-Sr-T", "rw-", "", "---------x"])
        var fields = [type + permissions]
        if chance(80) { fields.append(number()) }
        if chance(80) { fields.append(pick(["owner", "1001", "0"])) }
        if chance(70) { fields.append(pick(["group", "1001", "0"])) }
        fields.append(number())
        fields.append(chance(70) ? Self.months[below(12)] : pick(Self.months))
        fields.append(chance(70) ? String(1 + below(31)) : pick(["32", "0", "-1", "99999999999999999999"]))
        fields.append(chance(50) ? clock() : year())
        let separator = pick([" ", "  ", "    "])
        var line = Array(fields.joined(separator: separator).utf8) + [0x20]
        line += name()
        if type == "l" && chance(60) { line += Array(" -> ".utf8) + name() }
        return line
    }

    mutating func dosLine() -> [UInt8] {
        let date = "\(pick(["11", "1", "13", "0", "99999999999999999999"]))-\(pick(["23", "31", "0"]))-\(year())"
        let time = clock() + pick(["AM", "PM", "am", "", "XM"])
        let size = chance(30) ? pick(["<DIR>", "<dir>", "<JUNCTION>"]) : pick([number(), "1,234", ",", "1,,2"])
        return Array("\(date)  \(time)   \(size) ".utf8) + name()
    }

    mutating func mlsdLine() -> [UInt8] {
        var facts: [String] = []
        for _ in 0..<below(6) {
            switch below(8) {
            case 0:
                facts.append(
                    "type=" + pick(["file", "dir", "cdir", "pdir", "OS.unix=slink:/etc", "os.unix=symlink", ""]))
            case 1: facts.append("size=" + number())
            case 2: facts.append("sizd=" + number())
            case 3:
                facts.append("modify=" + pick(["20261123075326", "20261123075326.123", "99999999999999", "2026", "x"]))
            case 4: facts.append("UNIX.mode=" + pick(["0644", "7777777777777777777777", "-1", "9"]))
            case 5: facts.append("perm=adfr")
            case 6: facts.append("=;=")
            default: facts.append(pick(["type", "size=", "==", ";"]))
            }
        }
        var line = Array((facts.joined(separator: ";") + (chance(80) ? ";" : "")).utf8)
        if chance(90) { line.append(0x20) }
        return line + name()
    }

    mutating func mutate(_ line: inout [UInt8]) {
        let interesting: [UInt8] = [
            0, 0x0a, 0x0d, 0x20, 0x2f, 0x2e, 0x2d, 0x3a, 0x3b, 0x3d, 0x1b, 0x7f, 0xff, 0x39, 0x09,
        ]
        switch below(8) {
        case 0 where !line.isEmpty: line[below(line.count)] ^= UInt8(truncatingIfNeeded: 1 << below(8))
        case 1: line.insert(pick(interesting), at: below(line.count + 1))
        case 2 where !line.isEmpty:
            let from = below(line.count)
            line.removeSubrange(from..<min(line.count, from + 1 + below(8)))
        case 3 where !line.isEmpty: line.removeSubrange(below(line.count)...)
        case 4 where !line.isEmpty:
            let from = below(line.count)
            let range = from..<min(line.count, from + 1 + below(16))
            line.insert(contentsOf: Array(line[range]), at: below(line.count + 1))
        case 5: line.insert(contentsOf: Array(number().utf8), at: below(line.count + 1))
        case 6 where !line.isEmpty: line[below(line.count)] = UInt8(truncatingIfNeeded: next())
        default: line.insert(contentsOf: Array(" ".utf8), at: below(line.count + 1))
        }
    }

    /// One listing (1 to 6 lines) and the server's clock to read it with.
    mutating func listing() -> (data: [UInt8], serverNow: Int64) {
        var data: [UInt8] = []
        let lines = 1 + below(6)
        for i in 0..<lines {
            var line: [UInt8]
            switch below(10) {
            case 0: line = dosLine()
            case 1, 2, 3: line = mlsdLine()
            case 4: line = Array("total \(number())".utf8)
            default: line = unixLine()
            }
            if chance(35) {
                for _ in 0..<(1 + below(3)) { mutate(&line) }
            }
            data += line
            if i < lines - 1 || chance(80) { data += chance(50) ? [0x0d, 0x0a] : [0x0a] }
        }
        // The server's clock: MDTM gives at most 14 digits (year 9999), so no further.
        let serverNow = Int64(below(253_402_300_799))
        return (data, chance(80) ? 1_795_420_800 : serverNow)
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) {
            return i
        }
        return nil
    }
}
