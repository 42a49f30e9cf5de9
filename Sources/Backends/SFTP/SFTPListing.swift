import SyncEngine

/// One line of a folder's long listing, as an SFTP server words it for `ls -l`
/// (`-rw-r--r--    1 ana ana     1234 Dec  3 03:35 name`; curl adds ` -> target` to a link).
struct SFTPListedEntry: Equatable {
    var name: [UInt8]
    var kind: EntryKind
    var size: Int64
    var mode: UInt32
    var linkTarget: [UInt8]?
}

enum SFTPListingParser {
    /// The entries of a listing, without `.` and `..`; `unreadable` counts lines that are not
    /// entries of a kind this program knows (devices, sockets, lines it cannot read).
    static func parse(_ data: [UInt8]) -> (entries: [SFTPListedEntry], unreadable: Int) {
        var entries: [SFTPListedEntry] = []
        var unreadable = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var bytes = Array(line)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            if bytes.isEmpty { continue }
            guard var entry = parseLine(bytes) else {
                unreadable += 1
                continue
            }
            if entry.name == [UInt8(ascii: ".")] || entry.name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            if entry.kind != .symlink { entry.linkTarget = nil }
            entries.append(entry)
        }
        return (entries, unreadable)
    }

    /// The mode string, link count, owner, group, size and the date's three parts, then the name.
    static func parseLine(_ line: [UInt8]) -> SFTPListedEntry? {
        var index = 0
        var fields: [[UInt8]] = []
        let space = UInt8(ascii: " ")
        while fields.count < 8 {
            while index < line.count && line[index] == space { index += 1 }
            let start = index
            while index < line.count && line[index] != space { index += 1 }
            if start == index { return nil }
            fields.append(Array(line[start..<index]))
        }
        // One space before the name: the name's own leading spaces are part of it.
        guard index < line.count, line[index] == space else { return nil }
        var name = Array(line[(index + 1)...])
        let modeText = fields[0]
        guard modeText.count >= 10, let size = Int64(String(decoding: fields[4], as: UTF8.self)), size >= 0 else {
            return nil
        }
        let kind: EntryKind
        switch modeText[0] {
        case UInt8(ascii: "-"): kind = .file
        case UInt8(ascii: "d"): kind = .directory
        case UInt8(ascii: "l"): kind = .symlink
        default: return nil
        }
        var target: [UInt8]?
        if kind == .symlink, let arrow = find(Array(" -> ".utf8), in: name) {
            target = Array(name[(arrow + 4)...])
            name = Array(name[..<arrow])
        }
        if name.isEmpty || name.contains(UInt8(ascii: "/")) || name.contains(0) { return nil }
        return SFTPListedEntry(
            name: name, kind: kind, size: kind == .file ? size : 0, mode: mode(modeText), linkTarget: target)
    }

    /// Permission bits from `rwxr-sr-t` (after the kind's letter).
    static func mode(_ text: [UInt8]) -> UInt32 {
        var mode: UInt32 = 0
        let bits: [UInt32] = [0o400, 0o200, 0o100, 0o040, 0o020, 0o010, 0o004, 0o002, 0o001]
        for (offset, bit) in bits.enumerated() {
            let letter = text[offset + 1]
            if letter != UInt8(ascii: "-") && letter != UInt8(ascii: "S") && letter != UInt8(ascii: "T") {
                mode |= bit
            }
        }
        let special: [(Int, UInt32)] = [(3, 0o4000), (6, 0o2000), (9, 0o1000)]
        for (offset, bit) in special {
            let letter = text[offset]
            if [UInt8(ascii: "s"), UInt8(ascii: "S"), UInt8(ascii: "t"), UInt8(ascii: "T")].contains(letter) {
                mode |= bit
            }
        }
        return mode
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }
}
