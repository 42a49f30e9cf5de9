import CYAML

/// The definitions file's YAML, read with libyaml's event parser.
///
/// Why libyaml: it is the C reader most YAML tools are built on, small (a few hundred KiB, no
/// Foundation, whose ICU would cost megabytes of resident memory in every run), and it reads all
/// of YAML's syntax the way other tools do, where a reader of our own only knew a subset and
/// each corner of the syntax it missed was a bug of ours.
///
/// The events become a tree of nodes in a loop with a stack of open collections (no recursion),
/// each node with the line and column (1-based) where it starts, for error messages and for the
/// editing commands, which find a definition's lines from its mark. Lines are counted at line
/// feeds, as the editing commands count them. Anchors, aliases, tags and complex keys (`? `, or a
/// list or mapping as a key) are refused with the line they are on; so is a second document, and
/// nesting deeper than `maxDepth`.
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

    /// Lists and mappings nested deeper than this are refused: nothing in the file needs more
    /// than a few levels, and a hostile `[[[[…` should cost nothing.
    static let maxDepth = 64

    /// The document's root node, or nil for an empty document.
    static func compose(_ text: String) throws -> Node? {
        var text = text
        return try text.withUTF8 { bytes in try Composer(bytes).compose() }
    }

    /// Turns libyaml's marks (0-based, counting characters, and counting a lone CR, NEL and the
    /// Unicode line and paragraph separators as line breaks too) into lines counted at line feeds.
    /// It keeps a checkpoint every `spacing` bytes (line, and where that line starts) and walks
    /// from the nearest one, or from the last place asked for when that is nearer (marks come in
    /// order): a few percent of the text whatever its shape (a line table would cost 16 bytes for
    /// each line of a file of empty lines).
    final class Lines {
        struct Checkpoint {
            var byte: Int
            var character: Int
            var line: Int
            /// The character offset where the checkpoint's line starts.
            var lineStart: Int
        }
        static let spacing = 512
        let bytes: UnsafeBufferPointer<UInt8>
        private var checkpoints: [Checkpoint] = []
        /// The last place walked to.
        private var cursor = Checkpoint(byte: 0, character: 0, line: 1, lineStart: 0)
        /// Characters (Unicode scalars) in the text.
        private(set) var characters = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
            checkpoints.reserveCapacity(bytes.count / Self.spacing + 1)
            var line = 1
            var lineStart = 0
            var next = 0
            for (offset, byte) in bytes.enumerated() where byte & 0xC0 != 0x80 {
                if offset >= next {
                    checkpoints.append(
                        Checkpoint(byte: offset, character: characters, line: line, lineStart: lineStart))
                    next = offset + Self.spacing
                }
                characters += 1
                if byte == 0x0A {
                    line += 1
                    lineStart = characters
                }
            }
            if checkpoints.isEmpty { checkpoints.append(Checkpoint(byte: 0, character: 0, line: 1, lineStart: 0)) }
        }

        /// The last checkpoint at or before a character (or byte) offset.
        private func checkpoint(_ offset: Int, byte: Bool) -> Checkpoint {
            var low = 0
            var high = checkpoints.count - 1
            while low < high {
                let middle = (low + high + 1) / 2
                if (byte ? checkpoints[middle].byte : checkpoints[middle].character) <= offset {
                    low = middle
                } else {
                    high = middle - 1
                }
            }
            return checkpoints[low]
        }

        /// Walks to a character (or byte) offset from the nearest checkpoint or the cursor.
        private func walk(to offset: Int, byte: Bool) -> Checkpoint {
            var at = checkpoint(offset, byte: byte)
            let (cursorAt, atAt) = byte ? (cursor.byte, at.byte) : (cursor.character, at.character)
            if cursorAt >= atAt && cursorAt <= offset { at = cursor }
            defer { cursor = at }
            while (byte ? at.byte : at.character) < offset && at.byte < bytes.count {
                let lead = bytes[at.byte]
                at.byte += 1
                while at.byte < bytes.count && bytes[at.byte] & 0xC0 == 0x80 { at.byte += 1 }
                at.character += 1
                if lead == 0x0A {
                    at.line += 1
                    at.lineStart = at.character
                }
            }
            return at
        }

        func mark(_ mark: yaml_mark_t) -> Mark {
            let at = walk(to: Int(mark.index), byte: false)
            return Mark(line: at.line, column: at.character - at.lineStart + 1)
        }

        func line(_ mark: yaml_mark_t) -> Int { walk(to: Int(mark.index), byte: false).line }

        func line(ofByte offset: Int) -> Int { walk(to: offset, byte: true).line }

        /// The character at a mark, nil at the end of the text.
        func character(at mark: yaml_mark_t) -> Unicode.Scalar? {
            let start = walk(to: Int(mark.index), byte: false).byte
            guard start < bytes.count else { return nil }
            var end = start + 1
            while end < bytes.count && bytes[end] & 0xC0 == 0x80 { end += 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self).unicodeScalars
                .first
        }
    }

    /// A list or mapping whose end event has not come yet.
    struct Open {
        var mark: Mark
        var isMapping: Bool
        /// `[…]` or `{…}`.
        var isFlow: Bool
        var items: [Node] = []
        var pairs: [(key: Node, value: Node)] = []
        var key: Node?

        var node: Node { Node(kind: isMapping ? .mapping(pairs) : .sequence(items), mark: mark) }
    }

    struct Composer {
        let bytes: UnsafeBufferPointer<UInt8>
        let lines: Lines

        init(_ bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
            lines = Lines(bytes)
        }

        func fail(_ mark: yaml_mark_t, _ problem: String) -> Error { Error(line: lines.line(mark), problem: problem) }

        func compose() throws -> Node? {
            guard !bytes.isEmpty else { return nil }
            let explicitKey = try firstExplicitKey()
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) != 0 else { throw Error(line: 1, problem: "out of memory") }
            defer { yaml_parser_delete(&parser) }
            yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)
            var stack: [Open] = []
            var root: Node?
            var documents = 0
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) != 0 else {
                    throw error(of: parser, openFlow: stack.last { $0.isFlow })
                }
                defer { yaml_event_delete(&event) }
                if let explicitKey, event.start_mark.index >= explicitKey.index {
                    throw fail(explicitKey, "complex keys ('? ') are not supported")
                }
                var node: Node
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    if let explicitKey { throw fail(explicitKey, "complex keys ('? ') are not supported") }
                    return root
                case YAML_DOCUMENT_START_EVENT:
                    documents += 1
                    if documents > 1 { throw fail(event.start_mark, "only one document is supported") }
                    continue
                case YAML_ALIAS_EVENT:
                    throw fail(event.start_mark, "anchors and aliases are not supported")
                case YAML_SCALAR_EVENT:
                    let scalar = event.data.scalar
                    try refuse(anchor: scalar.anchor, tag: scalar.tag, at: event.start_mark)
                    let style: Scalar.Style
                    switch scalar.style {
                    case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
                    case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
                    case YAML_LITERAL_SCALAR_STYLE: style = .literal
                    case YAML_FOLDED_SCALAR_STYLE: style = .folded
                    default: style = .plain
                    }
                    let value = String(
                        decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)), as: UTF8.self)
                    node = Node(kind: .scalar(Scalar(string: value, style: style)), mark: lines.mark(event.start_mark))
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    let isMapping = event.type == YAML_MAPPING_START_EVENT
                    let isFlow =
                        isMapping
                        ? event.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
                        : event.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE
                    if isMapping {
                        try refuse(
                            anchor: event.data.mapping_start.anchor, tag: event.data.mapping_start.tag,
                            at: event.start_mark)
                    } else {
                        try refuse(
                            anchor: event.data.sequence_start.anchor, tag: event.data.sequence_start.tag,
                            at: event.start_mark)
                    }
                    if stack.count >= YAML.maxDepth {
                        throw fail(event.start_mark, "nested more than \(YAML.maxDepth) levels deep")
                    }
                    stack.append(Open(mark: lines.mark(event.start_mark), isMapping: isMapping, isFlow: isFlow))
                    continue
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    node = stack.removeLast().node
                default:
                    continue
                }
                // The finished node goes into the open collection, or is the root.
                guard !stack.isEmpty else {
                    // An empty document (`---` alone) is libyaml's empty plain scalar.
                    if case .scalar(let scalar) = node.kind, scalar.style == .plain, scalar.string.isEmpty {
                        continue
                    }
                    root = node
                    continue
                }
                if !stack[stack.count - 1].isMapping {
                    stack[stack.count - 1].items.append(node)
                } else if let key = stack[stack.count - 1].key {
                    stack[stack.count - 1].pairs.append((key, node))
                    stack[stack.count - 1].key = nil
                } else {
                    guard case .scalar = node.kind else {
                        throw Error(
                            line: node.mark?.line ?? 1,
                            problem: "complex keys (a list or mapping as a key) are not supported")
                    }
                    stack[stack.count - 1].key = node
                }
            }
        }

        func refuse(
            anchor: UnsafeMutablePointer<yaml_char_t>?, tag: UnsafeMutablePointer<yaml_char_t>?, at mark: yaml_mark_t
        ) throws {
            if anchor != nil { throw fail(mark, "anchors and aliases are not supported") }
            if tag != nil { throw fail(mark, "tags are not supported") }
        }

        /// Where the first explicit key (`? key`) is, if any. libyaml's events do not tell an
        /// explicit key from a plain one, its tokens do: a `?` is a key token one character
        /// wide, an implicit key's token is empty. Scanned only when the text holds a '?'; an
        /// error here is left for the event parser to report.
        func firstExplicitKey() throws -> yaml_mark_t? {
            guard bytes.contains(UInt8(ascii: "?")) else { return nil }
            var scanner = yaml_parser_t()
            guard yaml_parser_initialize(&scanner) != 0 else { throw Error(line: 1, problem: "out of memory") }
            defer { yaml_parser_delete(&scanner) }
            yaml_parser_set_input_string(&scanner, bytes.baseAddress, bytes.count)
            var token = yaml_token_t()
            // libyaml's scanner takes time quadratic in the nesting: stop where the event parser
            // will stop (it counts at least as many levels as the tokens open).
            var depth = 0
            while yaml_parser_scan(&scanner, &token) != 0 {
                defer { yaml_token_delete(&token) }
                switch token.type {
                case YAML_KEY_TOKEN where token.end_mark.index > token.start_mark.index: return token.start_mark
                case YAML_STREAM_END_TOKEN: return nil
                case YAML_FLOW_SEQUENCE_START_TOKEN, YAML_FLOW_MAPPING_START_TOKEN, YAML_BLOCK_SEQUENCE_START_TOKEN,
                    YAML_BLOCK_MAPPING_START_TOKEN:
                    depth += 1
                    if depth > YAML.maxDepth { return nil }
                case YAML_FLOW_SEQUENCE_END_TOKEN, YAML_FLOW_MAPPING_END_TOKEN, YAML_BLOCK_END_TOKEN: depth -= 1
                default: continue
                }
            }
            return nil
        }

        /// libyaml's error, in words a user of the definitions file understands, on its line.
        /// `openFlow` is the innermost `[…]` or `{…}` open when it came.
        func error(of parser: yaml_parser_t, openFlow: Open?) -> Error {
            switch parser.error {
            case YAML_MEMORY_ERROR:
                return Error(line: 1, problem: "out of memory")
            case YAML_READER_ERROR:
                // A character YAML does not allow (controls but tab and line breaks, DEL, U+FFFE,
                // U+FFFF); libyaml gives its byte offset.
                let value = parser.problem_value
                let name =
                    value < 0x20 || value == 0x7F
                    ? "control character 0x" + hex(value, digits: 2) : "character U+" + hex(value, digits: 4)
                return Error(line: lines.line(ofByte: Int(parser.problem_offset)), problem: "\(name) is not allowed")
            default:
                break
            }
            let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
            let context = parser.context.map { String(cString: $0) } ?? ""
            let here = parser.problem_mark
            let atEnd = Int(here.index) >= lines.characters
            let character = lines.character(at: here)
            func at(_ mark: yaml_mark_t, _ words: String) -> Error { fail(mark, words) }
            if context.contains("anchor") || context.contains("alias") {
                return at(parser.context_mark, "anchors and aliases are not supported")
            }
            if context.contains("directive") {
                return at(parser.context_mark, "a line starting with '%' is a directive, and not one YAML knows")
            }
            if context.contains("tag") || problem.contains("tag handle") {
                return at(parser.context_mark, "tags are not supported")
            }
            if atEnd, let open = openFlow, !context.contains("quoted scalar") {
                return Error(line: open.mark.line, problem: "'\(open.isMapping ? "{" : "[")' is never closed")
            }
            switch problem {
            case "found a tab character that violates indentation",
                "found a tab character where an indentation space is expected":
                return at(here, "tabs are not allowed for indentation")
            case "found character that cannot start any token":
                guard let character else { break }
                if character == "\t" { return at(here, "tabs are not allowed for indentation") }
                return at(here, "a value cannot start with '\(character)' (quote it)")
            case "found unexpected end of stream" where context.contains("quoted scalar"):
                return at(parser.context_mark, "a quoted value is never closed")
            case "found unexpected end of stream":
                return at(parser.context_mark, "the file ends in the middle of a value")
            case "found unknown escape character", "found invalid Unicode character escape code",
                "did not find expected hexdecimal number":
                return at(here, "bad escape in a quoted value")
            case "found unexpected document indicator":
                return at(here, "a '---' or '...' line inside a quoted value")
            case "did not find expected ',' or ']'":
                return at(here, "expected ',' or ']' (is a '[' left open?)")
            case "did not find expected ',' or '}'":
                return at(here, "expected ',' or '}' (is a '{' left open?)")
            case "did not find expected node content" where atEnd:
                return at(here, "the file ends where a value was expected")
            case "did not find expected node content":
                return at(
                    here,
                    character.map { "unexpected '\($0)' where a value was expected" } ?? "a value was expected here")
            case "found incompatible YAML document":
                return at(here, "only YAML 1.x is read (see the '%YAML' line)")
            case "mapping values are not allowed in this context":
                return at(
                    here, "mapping values are not allowed here (check the indentation, or quote a value holding ': ')")
            case "mapping keys are not allowed in this context":
                return at(here, "complex keys ('? ') are not supported")
            case "block sequence entries are not allowed in this context":
                return at(here, "a list cannot start here (on its key's line, or at a wrong indentation)")
            case "did not find expected key" where character == "-":
                return at(here, "a list item where a key was expected (check the indentation)")
            case "did not find expected key":
                return at(here, "unexpected text, or bad indentation: a key was expected here")
            case "did not find expected '-' indicator":
                return at(here, "bad indentation of a list item, or a key where a list item ('- ') was expected")
            case "could not find expected ':'":
                // The key's line, not the one where libyaml gave up looking.
                return at(parser.context_mark, "could not find expected ':' after a key")
            case "did not find expected <document start>":
                return at(here, "unexpected text after the end of the document")
            case "did not find expected comment or line break" where context.contains("block scalar"),
                "found an indentation indicator equal to 0":
                return at(here, "bad block scalar header (after '|' or '>')")
            default:
                break
            }
            return at(here, context.isEmpty ? problem : "\(problem) (\(context))")
        }

        func hex(_ value: Int32, digits: Int) -> String {
            let text = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, digits - text.count)) + text
        }
    }
}
