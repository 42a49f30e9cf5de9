#if canImport(Glibc)
    import Glibc
#endif

/// One entry of a remote directory listing, as the server described it.
public struct RemoteEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case file, directory, symlink, other }

    /// The name exactly as sent (not yet checked: see `FTPListingParser.isSafeName`).
    public var name: [UInt8]
    public var kind: Kind
    public var size: Int64
    /// Seconds since 1970 on the server's clock, uncorrected. MLSD and MDTM are UTC; a LIST
    /// time is the server's wall clock, read as if it were UTC.
    public var time: Int64
    /// How exact `time` is: the true time lies in `time ..< time + precision` seconds
    /// (1 for MLSD, 60 for a LIST `HH:MM`, 86,400 for a LIST date with a year).
    public var precision: Int64
    public var linkTarget: [UInt8]?
    public var mode: UInt32?

    public init(
        name: [UInt8], kind: Kind, size: Int64 = 0, time: Int64 = 0, precision: Int64 = 1,
        linkTarget: [UInt8]? = nil, mode: UInt32? = nil
    ) {
        self.name = name
        self.kind = kind
        self.size = size
        self.time = time
        self.precision = precision
        self.linkTarget = linkTarget
        self.mode = mode
    }
}

/// Parses MLSD and LIST (Unix `ls -l` and DOS/IIS forms) listings. Lines it cannot read are
/// counted, not fatal: a listing is data from a server this client does not control.
public enum FTPListingParser {
    /// Parses an MLSD listing (RFC 3659): `fact=value;…; name` per line.
    public static func parseMLSD(_ data: [UInt8]) -> (entries: [RemoteEntry], unreadable: Int) {
        var entries: [RemoteEntry] = []
        var unreadable = 0
        forEachLine(data) { line in
            guard let space = line.firstIndex(of: UInt8(ascii: " ")) else {
                unreadable += 1
                return
            }
            let name = Array(line[(space + 1)...])
            var entry = RemoteEntry(name: name, kind: .other)
            var sawType = false
            var sawModify = false
            // Facts are read in place (a server sends ten or so per line, most of them unused).
            var rest = line[..<space]
            while !rest.isEmpty {
                let stop = rest.firstIndex(of: UInt8(ascii: ";")) ?? rest.endIndex
                let fact = rest[..<stop]
                rest = stop < rest.endIndex ? rest[(stop + 1)...] : rest[stop...]
                guard let equals = fact.firstIndex(of: UInt8(ascii: "=")) else { continue }
                let key = fact[..<equals]
                let value = fact[(equals + 1)...]
                if isWord(key, "type") {
                    sawType = true
                    if isWord(value, "file") {
                        entry.kind = .file
                    } else if isWord(value, "dir") {
                        entry.kind = .directory
                    } else if isWord(value, "cdir") || isWord(value, "pdir") {
                        entry.kind = .other
                    } else if hasPrefixWord(value, "os.unix=slink") || hasPrefixWord(value, "os.unix=symlink") {
                        entry.kind = .symlink
                        if let colon = value.firstIndex(of: UInt8(ascii: ":")) {
                            entry.linkTarget = Array(value[(colon + 1)...])
                        }
                    }
                } else if isWord(key, "size") || isWord(key, "sizd") {
                    if let size = Int64(String(decoding: value, as: UTF8.self)), size >= 0 { entry.size = size }
                } else if isWord(key, "modify") {
                    if let time = parseTimeValue(String(decoding: value, as: UTF8.self)) {
                        entry.time = time
                        sawModify = true
                    }
                } else if isWord(key, "unix.mode") {
                    if let mode = UInt32(String(decoding: value, as: UTF8.self), radix: 8) {
                        entry.mode = mode & 0o7777
                    }
                }
            }
            guard sawType, !name.isEmpty else {
                unreadable += 1
                return
            }
            if entry.kind == .other { return }
            entry.precision = sawModify ? 1 : 0
            entries.append(entry)
        }
        return (entries, unreadable)
    }

    /// Whether `bytes` spell `word` (lowercase ASCII) in any case.
    static func isWord(_ bytes: ArraySlice<UInt8>, _ word: StaticString) -> Bool {
        bytes.count == word.utf8CodeUnitCount && hasPrefixWord(bytes, word)
    }

    /// Whether `bytes` begin with `word` (lowercase ASCII) in any case.
    static func hasPrefixWord(_ bytes: ArraySlice<UInt8>, _ word: StaticString) -> Bool {
        guard bytes.count >= word.utf8CodeUnitCount else { return false }
        return word.withUTF8Buffer { letters in
            var index = bytes.startIndex
            for letter in letters {
                var byte = bytes[index]
                if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte += 32 }
                if byte != letter { return false }
                index += 1
            }
            return true
        }
    }

    /// Parses a LIST listing in Unix or DOS form. `serverNow` (the server's clock, seconds)
    /// places `Mon DD HH:MM` dates, which carry no year, in the right year.
    public static func parseLIST(_ data: [UInt8], serverNow: Int64) -> (entries: [RemoteEntry], unreadable: Int) {
        var entries: [RemoteEntry] = []
        var unreadable = 0
        forEachLine(data) { line in
            if line.starts(with: Array("total ".utf8)) { return }
            if let entry = parseUnixLine(line, serverNow: serverNow) ?? parseDOSLine(line) {
                if entry.kind != .other { entries.append(entry) }
            } else {
                unreadable += 1
            }
        }
        return (entries, unreadable)
    }

    /// The listing in a reply to `STAT path` (the reply's bytes as sent, its last line end
    /// included): its code, and the lines between the first and the last, one per LF, in LIST's
    /// form with the one-space indent some servers add (proftpd) taken off. The lines are nil
    /// where the reply cannot carry the listing unambiguously, because a name held a line break:
    /// a CR or LF that is not a line's CRLF end, lines indented unevenly (the rest of a name
    /// after its line break is not indented), or `total` anywhere but first.
    public static func statListing(_ reply: [UInt8]) -> (code: Int, lines: [UInt8]?) {
        guard reply.count >= 5, reply.prefix(3).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return (0, nil) }
        let code = reply.prefix(3).reduce(0) { $0 * 10 + Int($1 - 0x30) }
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index < reply.count {
            let byte = reply[index]
            if byte == 13 {
                guard index + 1 < reply.count, reply[index + 1] == 10 else { return (code, nil) }
                lines.append(reply[start..<index])
                index += 2
                start = index
            } else if byte == 10 {
                return (code, nil)
            } else {
                index += 1
            }
        }
        guard start == reply.count, !lines.isEmpty else { return (code, nil) }
        let middle = lines.dropFirst().dropLast()
        let indented = middle.first?.first == UInt8(ascii: " ")
        var out: [UInt8] = []
        out.reserveCapacity(reply.count)
        for (offset, line) in middle.enumerated() {
            guard (line.first == UInt8(ascii: " ")) == indented else { return (code, nil) }
            let text = indented ? line.dropFirst() : line
            if offset > 0 && text.starts(with: Array("total ".utf8)) { return (code, nil) }
            out += text
            out.append(10)
        }
        return (code, out)
    }

    /// Whether a name from a server may become a local or remote path component: not empty, not
    /// `.` or `..`, no `/`, NUL or control characters. Anything else could write outside the
    /// destination or confuse a terminal and the FTP command channel.
    public static func isSafeName(_ name: [UInt8]) -> Bool {
        if name.isEmpty || name == [0x2e] || name == [0x2e, 0x2e] { return false }
        return !name.contains { $0 == UInt8(ascii: "/") || $0 < 0x20 || $0 == 0x7f }
    }

    // MARK: Unix `ls -l`

    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    static func parseUnixLine(_ line: ArraySlice<UInt8>, serverNow: Int64) -> RemoteEntry? {
        guard let type = line.first, line.count > 10 else { return nil }
        let kind: RemoteEntry.Kind
        switch type {
        case UInt8(ascii: "-"): kind = .file
        case UInt8(ascii: "d"): kind = .directory
        case UInt8(ascii: "l"): kind = .symlink
        case UInt8(ascii: "b"), UInt8(ascii: "c"), UInt8(ascii: "p"), UInt8(ascii: "s"): kind = .other
        default: return nil
        }
        // Fields separated by runs of spaces; the name is everything after the date's third field
        // and one space (names may hold spaces, even leading ones).
        let fields = Self.fields(of: line, limit: 12)
        func text(_ field: Range<Int>) -> String { String(decoding: line[field], as: UTF8.self) }
        // Find the month: the size is the field before it, then day and time-or-year follow.
        var monthIndex: Int?
        for i in 2..<max(2, fields.count - 2) where months.contains(text(fields[i]).lowercased()) {
            if Int(text(fields[i - 1])) != nil && Int(text(fields[i + 1])) != nil {
                monthIndex = i
                break
            }
        }
        guard let m = monthIndex, m + 2 < fields.count,
            let size = Int64(text(fields[m - 1])), size >= 0,
            let month = months.firstIndex(of: text(fields[m]).lowercased()),
            let day = Int(text(fields[m + 1])), (1...31).contains(day)
        else { return nil }
        let nameStart = fields[m + 2].upperBound + 1
        guard nameStart < line.endIndex else { return nil }
        var name = Array(line[nameStart...])
        var target: [UInt8]?
        if kind == .symlink, let arrow = find(Array(" -> ".utf8), in: name) {
            target = Array(name[(arrow + 4)...])
            name = Array(name[..<arrow])
        }
        guard !name.isEmpty else { return nil }  // `l… 2026  -> target`: no name, an unreadable line
        let when = text(fields[m + 2])
        var time: Int64
        var precision: Int64
        if let colon = when.firstIndex(of: ":") {
            guard let hour = Int(when[..<colon]), let minute = Int(when[when.index(after: colon)...]),
                (0..<24).contains(hour), (0..<60).contains(minute)
            else { return nil }
            var year = civilYear(of: serverNow)
            time = utcSeconds(year: year, month: month + 1, day: day, hour: hour, minute: minute)
            if time > serverNow + 86_400 {  // a date "in the future" is last year's
                year -= 1
                time = utcSeconds(year: year, month: month + 1, day: day, hour: hour, minute: minute)
            }
            precision = 60
        } else {
            // Years beyond 9999 are refused: a hostile year must not overflow the arithmetic.
            guard let year = Int(when), year > 1900, year <= 9999 else { return nil }
            time = utcSeconds(year: year, month: month + 1, day: day, hour: 0, minute: 0)
            precision = 86_400
        }
        var mode: UInt32?
        let permissions = Array(line[(line.startIndex + 1)..<min(line.startIndex + 10, line.endIndex)])
        if permissions.count == 9 {
            var bits: UInt32 = 0
            for (i, c) in permissions.enumerated()
            where c != UInt8(ascii: "-") && c != UInt8(ascii: "S")
                && c != UInt8(ascii: "T")
            {
                bits |= 1 << UInt32(8 - i)
            }
            mode = bits
        }
        return RemoteEntry(
            name: name, kind: kind, size: kind == .file ? size : 0, time: time, precision: precision,
            linkTarget: target, mode: mode)
    }

    // MARK: DOS / IIS

    /// `11-23-26  07:53AM       <DIR>          name` or `… 1234 name` (2- or 4-digit years).
    static func parseDOSLine(_ line: ArraySlice<UInt8>) -> RemoteEntry? {
        let fields = Self.fields(of: line, limit: 3)
        guard fields.count == 3 else { return nil }
        func text(_ field: Range<Int>) -> String { String(decoding: line[field], as: UTF8.self) }
        let date = text(fields[0]).split(separator: "-")
        guard date.count == 3, let month = Int(date[0]), let day = Int(date[1]), var year = Int(date[2]),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        if date[2].count == 2 { year += year < 70 ? 2000 : 1900 }
        guard (1900...9999).contains(year) else { return nil }  // a hostile year must not overflow
        var clock = text(fields[1]).uppercased()
        var pm = false
        if clock.hasSuffix("AM") || clock.hasSuffix("PM") {
            pm = clock.hasSuffix("PM")
            clock.removeLast(2)
        }
        let parts = clock.split(separator: ":")
        guard parts.count == 2, var hour = Int(parts[0]), let minute = Int(parts[1]), (0..<24).contains(hour),
            (0..<60).contains(minute)
        else { return nil }
        if pm && hour < 12 { hour += 12 }
        if !pm && hour == 12 && text(fields[1]).uppercased().hasSuffix("AM") { hour = 0 }
        let sizeOrDir = text(fields[2])
        var nameStart = fields[2].upperBound
        while nameStart < line.endIndex && line[nameStart] == UInt8(ascii: " ") { nameStart += 1 }
        guard nameStart < line.endIndex else { return nil }
        let name = Array(line[nameStart...])
        let time = utcSeconds(year: year, month: month, day: day, hour: hour, minute: minute)
        if sizeOrDir.uppercased() == "<DIR>" {
            return RemoteEntry(name: name, kind: .directory, time: time, precision: 60)
        }
        guard let size = Int64(String(sizeOrDir.filter { $0 != "," })), size >= 0 else { return nil }
        return RemoteEntry(name: name, kind: .file, size: size, time: time, precision: 60)
    }

    // MARK: time

    /// `YYYYMMDDHHMMSS[.sss]` (MLSD `modify`, MDTM) as UTC seconds.
    public static func parseTimeValue(_ text: String) -> Int64? {
        let digits = Array(text.utf8.prefix(14))
        guard digits.count == 14, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        func number(_ from: Int, _ count: Int) -> Int {
            digits[from..<(from + count)].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        let (year, month, day) = (number(0, 4), number(4, 2), number(6, 2))
        let (hour, minute, second) = (number(8, 2), number(10, 2), number(12, 2))
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        return utcSeconds(year: year, month: month, day: day, hour: hour, minute: minute) + Int64(second)
    }

    /// UTC seconds as `YYYYMMDDHHMMSS` (MFMT, MDTM-set).
    public static func timeValue(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let year = String(parts.tm_year + 1900)
        return String(repeating: "0", count: max(0, 4 - year.count)) + year + two(parts.tm_mon + 1)
            + two(parts.tm_mday) + two(parts.tm_hour) + two(parts.tm_min) + two(parts.tm_sec)
    }

    /// Days from civil (proleptic Gregorian) to seconds, without the C library's time zone.
    static func utcSeconds(year: Int, month: Int, day: Int, hour: Int, minute: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = Int64(era * 146_097 + doe - 719_468)
        return days * 86_400 + Int64(hour * 3600 + minute * 60)
    }

    static func civilYear(of seconds: Int64) -> Int {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return Int(parts.tm_year) + 1900
    }

    /// The first `limit` runs of non-space bytes of `line`, as index ranges.
    static func fields(of line: ArraySlice<UInt8>, limit: Int) -> [Range<Int>] {
        var fields: [Range<Int>] = []
        var index = line.startIndex
        while index < line.endIndex && fields.count < limit {
            while index < line.endIndex && line[index] == UInt8(ascii: " ") { index += 1 }
            let start = index
            while index < line.endIndex && line[index] != UInt8(ascii: " ") { index += 1 }
            if start < index { fields.append(start..<index) }
        }
        return fields
    }

    static func forEachLine(_ data: [UInt8], _ body: (ArraySlice<UInt8>) -> Void) {
        for var line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if !line.isEmpty { body(line) }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i..<(i + needle.count)].elementsEqual(needle) {
            return i
        }
        return nil
    }
}
