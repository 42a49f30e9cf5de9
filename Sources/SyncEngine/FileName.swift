/// A path or name exactly as the filesystem stores it: bytes, not text.
///
/// Linux file names are arbitrary bytes except `/` and NUL. Decoding them as UTF-8 would turn a
/// Latin-1 name into a different name, so a mirror would copy it under the wrong name and then
/// delete the original as an orphan. Every name and relative path in the engine is kept as bytes;
/// text is made only for display.
public struct FileName: Hashable, Comparable, Sendable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }
    public init(_ string: String) { self.bytes = Array(string.utf8) }
    public init(stringLiteral value: String) { self.init(value) }

    public static let empty = FileName(bytes: [])

    public var isEmpty: Bool { bytes.isEmpty }

    /// Byte order, the order `ls` uses in the C locale; both sides of a sync sort the same way.
    public static func < (lhs: FileName, rhs: FileName) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The name for display; bytes that are not UTF-8 are shown as `\xNN`, control characters
    /// as `\xNN` too, so a hostile name cannot move the terminal's cursor.
    public var description: String {
        // Fast path: printable ASCII, which is nearly every name.
        if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return String(decoding: bytes, as: UTF8.self) }
        var out = ""
        if let text = String(validating: bytes, as: UTF8.self) {
            for scalar in text.unicodeScalars {
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += Self.escaped(scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
            return out
        }
        for byte in bytes {
            if byte < 0x20 || byte >= 0x7f {
                out += Self.escaped(UInt32(byte))
            } else {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        return out
    }

    private static func escaped(_ value: UInt32) -> String {
        "\\x" + String(value, radix: 16).leftPadded(to: 2)
    }

    /// `self` joined with `name` by a slash (no slash when `self` is empty).
    public func appending(_ name: FileName) -> FileName {
        if bytes.isEmpty { return name }
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

    /// The relative path of the parent folder (empty for a top-level entry).
    public var parent: FileName {
        if let slash = bytes.lastIndex(of: UInt8(ascii: "/")) {
            return FileName(bytes: Array(bytes[..<slash]))
        }
        return .empty
    }

    /// Calls `body` with a NUL-terminated copy of the bytes.
    public func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        var copy = bytes
        copy.append(0)
        return try copy.withUnsafeBufferPointer { buffer in
            try buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                try body($0)
            }
        }
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
