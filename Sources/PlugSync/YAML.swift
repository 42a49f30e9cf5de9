/// A small YAML reader for the subset the definitions file uses, without Foundation (whose ICU
/// costs megabytes of resident memory in every run).
///
/// Read: block mappings and sequences (a sequence may sit at its key's indentation), flow
/// sequences and mappings (`[mon, tue]`, `{a: b}`, across lines too), plain, single- and
/// double-quoted scalars, `|` and `>` block scalars, comments, a leading `---`. Every node keeps
/// the line and column (1-based) where it starts, for error messages and for the editing
/// commands, which find a definition's lines from its mark. Anchors, aliases, tags, complex keys
/// and multi-line plain scalars are refused with the line they are on.
enum YAML {
    struct Mark: Equatable {
        var line: Int
        var column: Int
    }

    struct Scalar {
        enum Style { case plain, singleQuoted, doubleQuoted, literal, folded }
        var string: String
        var style: Style
    }

    indirect enum Kind {
        case scalar(Scalar)
        case mapping([(key: Node, value: Node)])
        case sequence([Node])
    }

    struct Node {
        var kind: Kind
        var mark: Mark?
    }

    struct Error: Swift.Error, CustomStringConvertible {
        var line: Int
        var problem: String
        var description: String { "line \(line): \(problem)" }
    }

    /// The document's root node, or nil for an empty document.
    static func compose(_ text: String) throws -> Node? {
        var reader = Reader(Array(text.utf8))
        return try reader.document()
    }

    struct Reader {
        let b: [UInt8]
        var pos = 0
        var line = 1
        var lineStart = 0
        /// Nesting of the node being read. The reader recurses once per level, so a hostile
        /// `[[[[…` or `- - - …` would overflow the stack: refuse deeper than `maxDepth`.
        var depth = 0
        static let maxDepth = 64

        init(_ bytes: [UInt8]) { b = bytes }

        var column: Int { pos - lineStart + 1 }
        var atEnd: Bool { pos >= b.count }
        var char: UInt8 { pos < b.count ? b[pos] : 0 }
        func peek(_ offset: Int) -> UInt8 { pos + offset < b.count ? b[pos + offset] : 0 }
        var mark: Mark { Mark(line: line, column: column) }

        func fail(_ problem: String) -> Error { Error(line: line, problem: problem) }

        static func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
        static func isBreak(_ c: UInt8) -> Bool { c == 0x0A || c == 0x0D || c == 0 }
        static func isBlankOrBreak(_ c: UInt8) -> Bool { isBlank(c) || isBreak(c) }

        mutating func newline() {
            if char == 0x0D { pos += 1 }
            if char == 0x0A { pos += 1 }
            line += 1
            lineStart = pos
        }

        mutating func skipBlanks() { while Self.isBlank(char) { pos += 1 } }

        /// Skips blanks, comments and line breaks up to the next token; false at the end.
        mutating func skipToToken() throws -> Bool {
            while !atEnd {
                if char == 0x20 {
                    pos += 1
                } else if char == 0x09 {
                    if pos == lineStart || b[lineStart..<pos].allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                        // A tab before content on a line: YAML forbids tabs in indentation.
                        var p = pos
                        while p < b.count && Self.isBlank(b[p]) { p += 1 }
                        if p < b.count && !Self.isBreak(b[p]) && b[p] != UInt8(ascii: "#") {
                            throw fail("tabs are not allowed for indentation")
                        }
                    }
                    pos += 1
                } else if char == UInt8(ascii: "#") {
                    while !Self.isBreak(char) { pos += 1 }
                } else if char == 0x0A || char == 0x0D {
                    newline()
                } else {
                    return true
                }
            }
            return false
        }

        /// `---` or `...` at the start of a line.
        var isDocumentMarker: Bool {
            column == 1 && (b[pos...].starts(with: Array("---".utf8)) || b[pos...].starts(with: Array("...".utf8)))
                && Self.isBlankOrBreak(peek(3))
        }

        mutating func document() throws -> Node? {
            try refuseControlCharacters()
            if b.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }
            guard try skipToToken() else { return nil }
            if column == 1 && b[pos...].starts(with: Array("---".utf8)) && Self.isBlankOrBreak(peek(3)) {
                pos += 3
                guard try skipToToken() else { return nil }
            }
            let root = try node(minIndent: 0)
            if try skipToToken() {
                if column == 1 && b[pos...].starts(with: Array("...".utf8)) && Self.isBlankOrBreak(peek(3)) {
                    pos += 3
                    if try skipToToken() { throw fail("only one document is supported") }
                } else {
                    throw fail(isDocumentMarker ? "only one document is supported" : "bad indentation")
                }
            }
            return root
        }

        /// YAML allows no C0 control character but tab, line feed and carriage return, nor DEL
        /// (`c-printable`). The reader uses NUL as its end-of-text mark, so one inside the text
        /// would make it loop; refuse them all up front, with the line.
        func refuseControlCharacters() throws {
            var line = 1
            for c in b {
                if c == 0x0A { line += 1 }
                if (c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) || c == 0x7F {
                    let hex = String(c, radix: 16, uppercase: true)
                    throw Error(
                        line: line, problem: "control character 0x\(hex.count == 1 ? "0" + hex : hex) is not allowed")
                }
            }
        }

        mutating func enter() throws {
            depth += 1
            if depth > Self.maxDepth { throw fail("nested more than \(Self.maxDepth) levels deep") }
        }

        /// A node in block context starting at the current token.
        mutating func node(minIndent: Int) throws -> Node {
            try enter()
            defer { depth -= 1 }
            let indent = column - 1
            if indent < minIndent { throw fail("bad indentation") }
            try refuseUnsupported()
            if char == UInt8(ascii: "-") && Self.isBlankOrBreak(peek(1)) {
                return try blockSequence(indent: indent)
            }
            let start = mark
            if char == UInt8(ascii: "|") || char == UInt8(ascii: ">") {
                return try blockScalar(parentIndent: indent - 1)
            }
            let first = try (char == UInt8(ascii: "[") || char == UInt8(ascii: "{")) ? flow() : scalar(flow: false)
            skipBlanks()
            if char == UInt8(ascii: ":") && Self.isBlankOrBreak(peek(1)) {
                guard case .scalar = first.kind, start.line == line else {
                    throw fail("only plain, single-line keys are supported")
                }
                return try blockMapping(indent: indent, firstKey: first)
            }
            try endOfLine()
            return first
        }

        mutating func refuseUnsupported() throws {
            switch char {
            case UInt8(ascii: "&"), UInt8(ascii: "*"): throw fail("anchors and aliases are not supported")
            case UInt8(ascii: "!"): throw fail("tags are not supported")
            case UInt8(ascii: "?") where Self.isBlankOrBreak(peek(1)): throw fail("complex keys are not supported")
            case UInt8(ascii: "@"), UInt8(ascii: "`"):
                throw fail("a plain value cannot start with '\(Character(Unicode.Scalar(char)))'")
            default: break
            }
        }

        /// After a value: only blanks and a comment may follow on its line.
        mutating func endOfLine() throws {
            skipBlanks()
            if char == UInt8(ascii: "#") || Self.isBreak(char) { return }
            if char == UInt8(ascii: ":") { throw fail("mapping values are not allowed here") }
            throw fail("unexpected text after a value")
        }

        mutating func blockMapping(indent: Int, firstKey: Node) throws -> Node {
            var pairs: [(key: Node, value: Node)] = []
            var key = firstKey
            while true {
                pos += 1  // the ':'
                let value = try mappingValue(indent: indent)
                pairs.append((key, value))
                guard try skipToToken() else { break }
                let next = column - 1
                if next < indent || isDocumentMarker { break }
                if next > indent { throw fail("bad indentation of a mapping entry") }
                try refuseUnsupported()
                if char == UInt8(ascii: "-") && Self.isBlankOrBreak(peek(1)) {
                    throw fail("a list item where a key was expected")
                }
                let keyLine = line
                key = try (char == UInt8(ascii: "[") || char == UInt8(ascii: "{")) ? flow() : scalar(flow: false)
                skipBlanks()
                guard char == UInt8(ascii: ":") && Self.isBlankOrBreak(peek(1)), keyLine == line else {
                    throw fail("could not find expected ':'")
                }
            }
            return Node(kind: .mapping(pairs), mark: firstKey.mark)
        }

        mutating func mappingValue(indent: Int) throws -> Node {
            skipBlanks()
            let here = mark
            if char == UInt8(ascii: "#") || Self.isBreak(char) {
                let savedPos = pos
                let savedLine = line
                let savedStart = lineStart
                if try skipToToken() {
                    let next = column - 1
                    if next > indent { return try node(minIndent: indent + 1) }
                    if next == indent && char == UInt8(ascii: "-") && Self.isBlankOrBreak(peek(1)) {
                        return try blockSequence(indent: indent)
                    }
                }
                pos = savedPos
                line = savedLine
                lineStart = savedStart
                return Node(kind: .scalar(Scalar(string: "", style: .plain)), mark: here)
            }
            try refuseUnsupported()
            if char == UInt8(ascii: "-") && Self.isBlankOrBreak(peek(1)) {
                throw fail("a list cannot start on its key's line")
            }
            if char == UInt8(ascii: "|") || char == UInt8(ascii: ">") { return try blockScalar(parentIndent: indent) }
            let value = try (char == UInt8(ascii: "[") || char == UInt8(ascii: "{")) ? flow() : scalar(flow: false)
            try endOfLine()
            return value
        }

        mutating func blockSequence(indent: Int) throws -> Node {
            let start = mark
            var items: [Node] = []
            while true {
                pos += 1  // the '-'
                skipBlanks()
                let here = mark
                if char == UInt8(ascii: "#") || Self.isBreak(char) {
                    let savedPos = pos
                    let savedLine = line
                    let savedStart = lineStart
                    if try skipToToken(), column - 1 > indent {
                        items.append(try node(minIndent: indent + 1))
                    } else {
                        pos = savedPos
                        line = savedLine
                        lineStart = savedStart
                        items.append(Node(kind: .scalar(Scalar(string: "", style: .plain)), mark: here))
                    }
                } else {
                    items.append(try node(minIndent: indent + 1))
                }
                guard try skipToToken() else { break }
                let next = column - 1
                if next < indent { break }
                if next > indent { throw fail("bad indentation of a list item") }
                guard char == UInt8(ascii: "-") && Self.isBlankOrBreak(peek(1)) else { break }
            }
            return Node(kind: .sequence(items), mark: start)
        }

        /// `[a, b]` or `{k: v}`; may span lines.
        mutating func flow() throws -> Node {
            try enter()
            defer { depth -= 1 }
            let start = mark
            let open = char
            let close = open == UInt8(ascii: "[") ? UInt8(ascii: "]") : UInt8(ascii: "}")
            pos += 1
            var items: [Node] = []
            var pairs: [(key: Node, value: Node)] = []
            while true {
                guard try skipToToken() else {
                    throw Error(line: start.line, problem: "'\(Character(Unicode.Scalar(open)))' is never closed")
                }
                if char == close {
                    pos += 1
                    break
                }
                try refuseUnsupported()
                let item = try (char == UInt8(ascii: "[") || char == UInt8(ascii: "{")) ? flow() : scalar(flow: true)
                _ = try skipToToken()
                if open == UInt8(ascii: "{") {
                    guard char == UInt8(ascii: ":") else { throw fail("could not find expected ':'") }
                    pos += 1
                    guard try skipToToken() else { throw Error(line: start.line, problem: "'{' is never closed") }
                    let value: Node
                    if char == UInt8(ascii: ",") || char == close {
                        value = Node(kind: .scalar(Scalar(string: "", style: .plain)), mark: mark)
                    } else {
                        try refuseUnsupported()
                        value =
                            try (char == UInt8(ascii: "[") || char == UInt8(ascii: "{")) ? flow() : scalar(flow: true)
                    }
                    pairs.append((item, value))
                    _ = try skipToToken()
                } else {
                    if char == UInt8(ascii: ":") { throw fail("mappings inside '[...]' are not supported") }
                    items.append(item)
                }
                if char == UInt8(ascii: ",") {
                    pos += 1
                } else if char != close {
                    if atEnd {
                        throw Error(line: start.line, problem: "'\(Character(Unicode.Scalar(open)))' is never closed")
                    }
                    throw fail("expected ',' or '\(Character(Unicode.Scalar(close)))'")
                }
            }
            return Node(kind: open == UInt8(ascii: "[") ? .sequence(items) : .mapping(pairs), mark: start)
        }

        mutating func scalar(flow: Bool) throws -> Node {
            let start = mark
            switch char {
            case UInt8(ascii: "'"): return Node(kind: .scalar(try singleQuoted()), mark: start)
            case UInt8(ascii: "\""): return Node(kind: .scalar(try doubleQuoted()), mark: start)
            default: break
            }
            if flow && (char == UInt8(ascii: "]") || char == UInt8(ascii: "}") || char == UInt8(ascii: ",")) {
                throw fail("unexpected '\(Character(Unicode.Scalar(char)))'")
            }
            let startPos = pos
            var end = pos
            while !Self.isBreak(char) {
                let c = char
                if c == UInt8(ascii: ":")
                    && (Self.isBlankOrBreak(peek(1))
                        || (flow && [UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}")].contains(peek(1))))
                {
                    break
                }
                if c == UInt8(ascii: "#") && pos > 0 && Self.isBlank(b[pos - 1]) { break }
                if flow
                    && (c == UInt8(ascii: ",") || c == UInt8(ascii: "]") || c == UInt8(ascii: "}")
                        || c == UInt8(ascii: "[") || c == UInt8(ascii: "{"))
                {
                    break
                }
                pos += 1
                if !Self.isBlank(c) { end = pos }
            }
            let text = String(decoding: b[startPos..<end], as: UTF8.self)
            pos = end
            if !flow { try refuseContinuation(of: start) }
            return Node(kind: .scalar(Scalar(string: text, style: .plain)), mark: start)
        }

        /// A plain value continued on the next, deeper-indented line is valid YAML but not
        /// supported here: say so instead of reading it as something else.
        mutating func refuseContinuation(of start: Mark) throws {
            var p = pos
            while p < b.count && Self.isBlank(b[p]) { p += 1 }
            if p < b.count && b[p] == UInt8(ascii: "#") { return }
            guard p < b.count, b[p] == 0x0A || b[p] == 0x0D else { return }
            p += 1
            if p < b.count && b[p - 1] == 0x0D && b[p] == 0x0A { p += 1 }
            var indent = 0
            while p < b.count && b[p] == 0x20 {
                p += 1
                indent += 1
            }
            guard p < b.count, !Self.isBreak(b[p]), b[p] != UInt8(ascii: "#") else { return }
            // Deeper than the line's own indentation, and not a key or list item.
            var lineIndent = 0
            while lineStart + lineIndent < b.count && b[lineStart + lineIndent] == 0x20 { lineIndent += 1 }
            if indent > lineIndent && !(b[p] == UInt8(ascii: "-") && p + 1 < b.count && Self.isBlankOrBreak(b[p + 1])) {
                var q = p
                var isKey = false
                while q < b.count && !Self.isBreak(b[q]) {
                    if b[q] == UInt8(ascii: ":") && (q + 1 >= b.count || Self.isBlankOrBreak(b[q + 1])) {
                        isKey = true
                        break
                    }
                    q += 1
                }
                if !isKey {
                    throw Error(
                        line: line + 1, problem: "a value continued on the next line is not supported; quote it")
                }
            }
        }

        mutating func singleQuoted() throws -> Scalar {
            let startLine = line
            pos += 1
            var out: [UInt8] = []
            while true {
                if atEnd { throw Error(line: startLine, problem: "a quoted value is never closed") }
                let c = char
                if c == UInt8(ascii: "'") {
                    if peek(1) == UInt8(ascii: "'") {
                        out.append(c)
                        pos += 2
                        continue
                    }
                    pos += 1
                    break
                }
                if c == 0x0A || c == 0x0D {
                    try foldBreak(into: &out)
                    continue
                }
                out.append(c)
                pos += 1
            }
            return Scalar(string: String(decoding: out, as: UTF8.self), style: .singleQuoted)
        }

        /// A line break inside a quoted value: trailing blanks dropped, one break becomes a
        /// space, further empty lines become line feeds, the next line's indentation dropped.
        mutating func foldBreak(into out: inout [UInt8]) throws {
            while let last = out.last, Self.isBlank(last) { out.removeLast() }
            newline()
            var breaks = 0
            while true {
                skipBlanks()
                if char == 0x0A || char == 0x0D {
                    breaks += 1
                    newline()
                } else {
                    break
                }
            }
            if breaks == 0 { out.append(0x20) } else { out.append(contentsOf: repeatElement(0x0A, count: breaks)) }
        }

        mutating func doubleQuoted() throws -> Scalar {
            let startLine = line
            pos += 1
            var out: [UInt8] = []
            while true {
                if atEnd { throw Error(line: startLine, problem: "a quoted value is never closed") }
                let c = char
                if c == UInt8(ascii: "\"") {
                    pos += 1
                    break
                }
                if c == 0x0A || c == 0x0D {
                    try foldBreak(into: &out)
                    continue
                }
                if c != UInt8(ascii: "\\") {
                    out.append(c)
                    pos += 1
                    continue
                }
                pos += 1
                let e = char
                pos += 1
                var simple: UInt8?
                switch e {
                case UInt8(ascii: "0"): simple = 0
                case UInt8(ascii: "a"): simple = 7
                case UInt8(ascii: "b"): simple = 8
                case UInt8(ascii: "t"), 0x09: simple = 9
                case UInt8(ascii: "n"): simple = 10
                case UInt8(ascii: "v"): simple = 11
                case UInt8(ascii: "f"): simple = 12
                case UInt8(ascii: "r"): simple = 13
                case UInt8(ascii: "e"): simple = 27
                case 0x20: simple = 0x20
                case UInt8(ascii: "\""): simple = e
                case UInt8(ascii: "/"): simple = e
                case UInt8(ascii: "\\"): simple = e
                case 0x0A, 0x0D:
                    pos -= 1
                    newline()
                    skipBlanks()
                    continue
                case UInt8(ascii: "x"), UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let digits = e == UInt8(ascii: "x") ? 2 : e == UInt8(ascii: "u") ? 4 : 8
                    guard pos + digits <= b.count,
                        let value = UInt32(String(decoding: b[pos..<pos + digits], as: UTF8.self), radix: 16),
                        let scalar = Unicode.Scalar(value)
                    else { throw fail("bad escape in a quoted value") }
                    pos += digits
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                    continue
                case UInt8(ascii: "N"):
                    out.append(contentsOf: [0xC2, 0x85])
                    continue
                case UInt8(ascii: "_"):
                    out.append(contentsOf: [0xC2, 0xA0])
                    continue
                case UInt8(ascii: "L"):
                    out.append(contentsOf: [0xE2, 0x80, 0xA8])
                    continue
                case UInt8(ascii: "P"):
                    out.append(contentsOf: [0xE2, 0x80, 0xA9])
                    continue
                default: throw fail("bad escape in a quoted value")
                }
                out.append(simple!)
            }
            return Scalar(string: String(decoding: out, as: UTF8.self), style: .doubleQuoted)
        }

        /// `|` (literal) or `>` (folded), with an optional chomping indicator (`-`, `+`).
        mutating func blockScalar(parentIndent: Int) throws -> Node {
            let start = mark
            let folded = char == UInt8(ascii: ">")
            pos += 1
            var chomp: UInt8 = 0
            var explicitIndent: Int?
            while !Self.isBlankOrBreak(char) && char != UInt8(ascii: "#") {
                if char == UInt8(ascii: "-") || char == UInt8(ascii: "+") {
                    chomp = char
                } else if char >= UInt8(ascii: "1") && char <= UInt8(ascii: "9") {
                    explicitIndent = Int(char - UInt8(ascii: "0"))
                } else {
                    throw fail("bad block scalar header")
                }
                pos += 1
            }
            try endOfLine()
            while !Self.isBreak(char) { pos += 1 }
            var lines: [[UInt8]] = []
            var indent = explicitIndent.map { max(parentIndent, 0) + $0 }
            while !atEnd {
                let save = (pos, line, lineStart)
                newline()
                var p = pos
                while p < b.count && b[p] == 0x20 { p += 1 }
                let lineIndent = p - pos
                let blank = p >= b.count || Self.isBreak(b[p])
                if blank {
                    if atEnd { break }
                    lines.append([])
                    pos = p
                    continue
                }
                if indent == nil {
                    if lineIndent <= parentIndent {
                        (pos, line, lineStart) = save
                        break
                    }
                    indent = lineIndent
                }
                if lineIndent < indent! {
                    (pos, line, lineStart) = save
                    break
                }
                var q = pos + indent!
                let contentStart = q
                while q < b.count && !Self.isBreak(b[q]) { q += 1 }
                lines.append(Array(b[contentStart..<q]))
                pos = q
            }
            // Trailing empty lines belong to chomping; put the reader back before them.
            var trailing = 0
            while let last = lines.last, last.isEmpty {
                lines.removeLast()
                trailing += 1
            }
            var out: [UInt8] = []
            for (i, l) in lines.enumerated() {
                if i > 0 {
                    let previous = lines[i - 1]
                    let plainPrevious = !previous.isEmpty && previous.first != 0x20
                    if folded && plainPrevious && !l.isEmpty && l.first != 0x20 {
                        out.append(0x20)
                    } else if folded && plainPrevious && l.isEmpty {
                        // The break before empty lines is folded away; each empty line is one.
                    } else {
                        out.append(0x0A)
                    }
                }
                out.append(contentsOf: l)
            }
            if !lines.isEmpty && chomp != UInt8(ascii: "-") { out.append(0x0A) }
            if chomp == UInt8(ascii: "+") { out.append(contentsOf: repeatElement(0x0A, count: trailing)) }
            return Node(
                kind: .scalar(Scalar(string: String(decoding: out, as: UTF8.self), style: folded ? .folded : .literal)),
                mark: start)
        }
    }
}
