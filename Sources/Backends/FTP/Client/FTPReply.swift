/// One server reply: its code and text (the lines of a multi-line reply joined by newlines).
public struct FTPReply: Sendable, Equatable {
    public var code: Int
    public var text: String
    /// Every line of the reply, the code stripped from the first and last.
    public var lines: [String]

    /// Splits the server's side of a dialogue into replies. A reply ends at a line that starts
    /// with three digits and a space; `NNN-` starts a multi-line reply.
    public static func parse(_ bytes: [UInt8]) -> [FTPReply] {
        var replies: [FTPReply] = []
        var pending: [String] = []
        var pendingCode: Int?
        for rawLine in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var line = rawLine[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            let text = String(decoding: line, as: UTF8.self)
            let code =
                line.count >= 3 && line.prefix(3).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
                ? Int(String(decoding: line.prefix(3), as: UTF8.self)) : nil
            let separator = line.count > 3 ? line[line.startIndex + 3] : UInt8(ascii: " ")
            if let code, separator == UInt8(ascii: " ") && (pendingCode == nil || pendingCode == code) {
                pending.append(String(text.dropFirst(min(4, text.count))))
                replies.append(FTPReply(code: code, text: pending.last ?? "", lines: pending))
                pending = []
                pendingCode = nil
            } else if let code, separator == UInt8(ascii: "-"), pendingCode == nil {
                pendingCode = code
                pending = [String(text.dropFirst(4))]
            } else if pendingCode != nil {
                pending.append(text)
            }
            // Anything else (a line without a code) is not part of a reply.
        }
        return replies
    }

    /// Whether this reply ends a listing that the server cut short: a 226 or 250 that says the
    /// output was truncated (pure-ftpd's `226 Output truncated to 10000 matches`, past its `-L`
    /// limit). The entries past the cut are simply missing from the data.
    public var saysListingWasCutShort: Bool {
        (code == 226 || code == 250) && lines.contains { $0.lowercased().contains("truncated") }
    }
}

/// What a server says it supports (the `FEAT` reply), upper-cased feature names.
public struct FTPFeatures: Sendable, Equatable {
    public var names: Set<String>

    public init(names: Set<String> = []) { self.names = names }

    public init(reply: FTPReply) {
        var names = Set<String>()
        for line in reply.lines.dropFirst() {
            let word = line.split(separator: " ", omittingEmptySubsequences: true).first
            if let word { names.insert(word.uppercased()) }
        }
        self.names = names
    }

    public var mlsd: Bool { names.contains("MLSD") || names.contains("MLST") }
    public var mfmt: Bool { names.contains("MFMT") }
    public var mdtm: Bool { names.contains("MDTM") }
    public var size: Bool { names.contains("SIZE") }
    public var utf8: Bool { names.contains("UTF8") }
}
