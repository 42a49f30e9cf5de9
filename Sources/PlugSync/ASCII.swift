/// Character classes the definitions file uses, on bytes (instead of Foundation's CharacterSet).
enum ASCII {
    static func isLetterOrDigit(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    /// Letters, digits, `.`, `_` and `-`: what a definition name may use.
    static func isNameCharacter(_ byte: UInt8) -> Bool {
        isLetterOrDigit(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    /// Bytes that need no quoting in a YAML scalar the emitter writes.
    static func isPlainScalarByte(_ byte: UInt8) -> Bool {
        isNameCharacter(byte) || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "@") || byte == UInt8(ascii: "+")
    }

    /// `text` without leading and trailing spaces and tabs.
    static func trimmingBlanks<S: StringProtocol>(_ text: S) -> String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = text.firstIndex(where: { !blank($0) }) else { return "" }
        let last = text.lastIndex(where: { !blank($0) })!
        return String(text[first...last])
    }
}
