#if canImport(Glibc)
    import Glibc
#endif

/// A path or name exactly as the filesystem stores it: bytes, not text.
///
/// Linux file names are arbitrary bytes except `/` and NUL. Decoding them as UTF-8 would turn a
/// Latin-1 name into a different name, so a mirror would copy it under the wrong name and then
/// delete the original as an orphan. Every name and relative path in the engine is kept as bytes;
/// text is made only for display.
public struct FileName: Hashable, Comparable, Sendable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    // Stored as a String when the bytes are UTF-8 (nearly always): names of up to 15 bytes then
    // live inline, with no allocation (a listing holds one name per entry; an array each cost
    // 64 bytes of heap). Other bytes are kept exactly, escaped as U+FFFF followed by hex digits
    // (as is a UTF-8 name that itself starts with U+FFFF). Comparison, equality and hashing are
    // always on the bytes, never on Unicode equivalence.
    private var storage: String
    private static let escapeMark: Unicode.Scalar = "\u{FFFF}"

    public var bytes: [UInt8] {
        get {
            if isEscaped { return Self.unescape(storage) }
            return Array(storage.utf8)
        }
        set { storage = Self.store(newValue) }
    }

    public init(bytes: [UInt8]) { storage = Self.store(bytes) }
    public init(_ string: String) { storage = Self.store(Array(string.utf8)) }
    public init(stringLiteral value: String) { self.init(value) }

    private static func store<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        if let text = String(validating: bytes, as: UTF8.self), text.unicodeScalars.first != escapeMark {
            return text
        }
        var out = String(escapeMark)
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 15)])
        }
        out += String(decoding: hex, as: UTF8.self)
        return out
    }

    // U+FFFF is EF BF BF in UTF-8: one byte's look settles nearly every name.
    private var isEscaped: Bool { storage.utf8.first == 0xEF && storage.unicodeScalars.first == Self.escapeMark }

    private static func unescape(_ text: String) -> [UInt8] {
        let hex = Array(text.utf8.dropFirst(3))  // U+FFFF is 3 bytes
        func value(_ c: UInt8) -> UInt8 { c <= UInt8(ascii: "9") ? c - UInt8(ascii: "0") : c - UInt8(ascii: "a") + 10 }
        var out: [UInt8] = []
        out.reserveCapacity(hex.count / 2)
        var i = 0
        while i + 1 < hex.count {
            out.append(value(hex[i]) << 4 | value(hex[i + 1]))
            i += 2
        }
        return out
    }

    /// Calls `body` with the bytes, without copying them when they are UTF-8.
    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        if !isEscaped, let result = try storage.utf8.withContiguousStorageIfAvailable(body) { return result }
        return try bytes.withUnsafeBufferPointer(body)
    }

    public static let empty = FileName(bytes: [])

    public var isEmpty: Bool { storage.isEmpty }

    public static func == (lhs: FileName, rhs: FileName) -> Bool {
        // The escaped form is unique too. Lengths first, then one memcmp: paths thousands of
        // bytes long (a deep tree) are compared many times, and most pairs differ in length.
        let left = lhs.storage.utf8
        let right = rhs.storage.utf8
        guard left.count == right.count else { return false }
        let equal = left.withContiguousStorageIfAvailable { l in
            right.withContiguousStorageIfAvailable { r in
                l.isEmpty || memcmp(l.baseAddress!, r.baseAddress!, l.count) == 0
            }
        }
        if let equal = equal ?? nil { return equal }
        return left.elementsEqual(right)
    }

    public func hash(into hasher: inout Hasher) {
        withBytes { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Byte order, the order `ls` uses in the C locale; both sides of a sync sort the same way.
    public static func < (lhs: FileName, rhs: FileName) -> Bool {
        if !lhs.isEscaped && !rhs.isEscaped { return lhs.storage.utf8.lexicographicallyPrecedes(rhs.storage.utf8) }
        return lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The first 8 bytes as a big-endian number, zeros after a shorter name. Names whose keys
    /// differ are in the order of their keys (a name holds no NUL), so a sort compares whole
    /// names only where the first 8 bytes agree (`[Entry].sortByName`).
    var orderKey: UInt64 {
        withBytes { bytes in
            var key: UInt64 = 0
            for i in 0..<8 { key = key << 8 | UInt64(i < bytes.count ? bytes[i] : 0) }
            return key
        }
    }

    /// The name for display (`TerminalText.escaped`): bytes that are not UTF-8 are shown as
    /// `\xNN`, and so are control and bidi characters, so a hostile name can neither move the
    /// terminal's cursor nor turn the line around.
    public var description: String {
        // Fast path: printable ASCII, which is nearly every name.
        if storage.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return storage }
        let bytes = self.bytes
        if let text = String(validating: bytes, as: UTF8.self) { return TerminalText.escaped(text) }
        var out = ""
        for byte in bytes {
            if byte < 0x20 || byte >= 0x7f {
                out += TerminalText.hex(byte)
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    /// `self` joined with `name` by a slash (no slash when `self` is empty).
    public func appending(_ name: FileName) -> FileName {
        if isEmpty { return name }
        if !isEscaped && !name.isEscaped {
            var joined = FileName.empty
            joined.storage = storage + "/" + name.storage
            return joined
        }
        var joined = bytes
        joined.reserveCapacity(bytes.count + 1 + name.bytes.count)
        joined.append(UInt8(ascii: "/"))
        joined.append(contentsOf: name.bytes)
        return FileName(bytes: joined)
    }

    /// The last component of a relative path.
    public var lastComponent: FileName {
        if let slash = bytes.lastIndex(of: UInt8(ascii: "/")) {
            return FileName(bytes: Array(bytes[(slash + 1)...]))
        }
        return self
    }

    /// The first component of a relative path (the path itself for a top-level entry).
    public var firstComponent: FileName {
        if let slash = bytes.firstIndex(of: UInt8(ascii: "/")) { return FileName(bytes: Array(bytes[..<slash])) }
        return self
    }

    /// The relative path of the parent folder (empty for a top-level entry).
    public var parent: FileName {
        if let slash = bytes.lastIndex(of: UInt8(ascii: "/")) {
            return FileName(bytes: Array(bytes[..<slash]))
        }
        return .empty
    }

    /// Calls `body` with a NUL-terminated copy of the bytes.
    public func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        if !isEscaped { return try storage.withCString(body) }
        var copy = bytes
        copy.append(0)
        return try copy.withUnsafeBufferPointer { buffer in
            try buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                try body($0)
            }
        }
    }
}

/// Text from a drive, a server or a file, made safe to print on a terminal or write to a log:
/// the one escaping every such line goes through (file names, labels, mount points, server
/// replies, configuration errors, the agent's lines).
///
/// A character is escaped when a terminal would act on it instead of showing it: C0 controls
/// (line breaks and tabs included, so a line stays one line), DEL, C1 controls (U+0080-U+009F:
/// U+009B is a one-character CSI on many terminals), the bidi controls that reorder what
/// follows (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069) and the Unicode line and
/// paragraph separators. Each of its UTF-8 bytes is shown as `\xNN`, as a file name's bytes
/// that are not UTF-8 are, so the user sees what is on the disk.
public enum TerminalText {
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F...0x9F, 0x061C, 0x200E, 0x200F, 0x2028...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    /// `text` with every unsafe character escaped; with `keepingNewlines`, line feeds stay (a
    /// log printed whole).
    public static func escaped(_ text: String, keepingNewlines: Bool = false) -> String {
        // Fast path: printable ASCII, nearly every line. Bytes from 0x80 may start an unsafe
        // character; the scalars decide.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f || ($0 == 0x0A && keepingNewlines) }) { return text }
        guard text.unicodeScalars.contains(where: { isUnsafe($0) && !(keepingNewlines && $0 == "\n") }) else {
            return text
        }
        var out = ""
        out.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) && !(keepingNewlines && scalar == "\n") {
                for byte in String(scalar).utf8 { out += hex(byte) }
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func hex(_ byte: UInt8) -> String { "\\x" + String(byte, radix: 16).leftPadded(to: 2) }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
