import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A File Check regex, matched without backtracking.
///
/// Why not glibc's `regexec`, which `ignore` uses: the check file comes off a drive, so its
/// content is untrusted input, and glibc backtracks on back-references (`^(.*)\1$` on 64 KiB ran
/// for over a minute). So back-references are refused when the definition is read, and the rest
/// of POSIX extended syntax (what `grep -E` takes, with glibc's `\w \W \s \S \b \B \< \> \` \'`)
/// is compiled here to an NFA and run as a DFA built lazily, one byte at a time, with no
/// backtracking: the time grows linearly with the content whatever it holds. The NFA is capped
/// in size (a pattern like `(a{1000}){1000}` is refused), the DFA's cache too (cleared when
/// full, as RE2 does), and a match that still runs over its deadline gives up, which fails the
/// check. A File Check only asks whether the content matches, not where, so the POSIX
/// leftmost-longest rule plays no part: the answer is glibc's. glibc's `regcomp` still vets the
/// syntax first, so the same patterns as before are accepted. Bytes are matched as in the C
/// locale (plugsync never sets another): the classes are ASCII.
struct FileCheckPattern: @unchecked Sendable {
    /// The most NFA states a pattern may compile to.
    static let stateLimit = 10_000

    struct SyntaxError: Error, CustomStringConvertible {
        var description: String
    }

    enum Outcome: Equatable { case matched, notMatched, tooSlow }

    fileprivate enum Assertion: Int32 {
        case start, end, bufferStart, bufferEnd, wordBoundary, notWordBoundary, wordStart, wordEnd
    }

    fileprivate indirect enum Node {
        case bytes(ByteSet)
        case assertion(Assertion)
        case sequence([Node])
        case choice([Node])
        case repetition(Node, min: Int, max: Int?)
    }

    fileprivate struct ByteSet: Equatable {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        func contains(_ byte: UInt8) -> Bool {
            let bit = UInt64(1) << UInt64(byte & 63)
            switch byte >> 6 {
            case 0: return words.0 & bit != 0
            case 1: return words.1 & bit != 0
            case 2: return words.2 & bit != 0
            default: return words.3 & bit != 0
            }
        }
        mutating func insert(_ byte: UInt8) {
            let bit = UInt64(1) << UInt64(byte & 63)
            switch byte >> 6 {
            case 0: words.0 |= bit
            case 1: words.1 |= bit
            case 2: words.2 |= bit
            default: words.3 |= bit
            }
        }
        mutating func insert(where test: (UInt8) -> Bool) {
            for byte in UInt8(1)...255 where test(byte) { insert(byte) }
        }
        /// Every byte but NUL, which ends a C string (the content is matched as one).
        func inverted() -> ByteSet {
            var result = ByteSet()
            result.insert { !contains($0) }
            return result
        }
        static func == (a: ByteSet, b: ByteSet) -> Bool {
            a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
        }
    }

    // MARK: the NFA

    private enum Kind: UInt8 { case bytes, split, assertion, accept }
    private struct State {
        var kind: Kind
        var out: Int32 = -1
        var out2: Int32 = -1
        /// The byte set's index (`bytes`) or the assertion (`assertion`).
        var argument: Int32 = 0
    }
    private var states: [State] = []
    private var sets: [ByteSet] = []
    private var start: Int32 = 0
    /// Compile steps taken: an empty group repeated `{1000}{1000}` adds no state but takes time.
    private var steps = 0
    /// The longest pattern taken (repetitions nest once per character).
    static let lengthLimit = 4096

    /// Compiles `pattern`; throws a one-line reason when it cannot be a File Check regex.
    init(_ pattern: String) throws {
        if pattern.utf8.count > Self.lengthLimit {
            throw SyntaxError(description: "is longer than a File Check takes (\(Self.lengthLimit) bytes)")
        }
        var parser = Parser(Array(pattern.utf8))
        let tree = try parser.parse()
        states.append(State(kind: .accept))
        start = try compile(tree, next: 0)
    }

    private static let tooLarge = SyntaxError(
        description: "is too large for a File Check (over \(stateLimit) states once its repetitions are counted out)")

    private mutating func add(_ state: State) throws -> Int32 {
        if states.count >= Self.stateLimit { throw Self.tooLarge }
        states.append(state)
        return Int32(states.count - 1)
    }

    /// Thompson's construction, from the end backwards: returns the state that matches `node`
    /// and then goes on to `next`.
    private mutating func compile(_ node: Node, next: Int32) throws -> Int32 {
        steps += 1
        if steps > Self.stateLimit * 10 { throw Self.tooLarge }
        switch node {
        case .bytes(let set):
            let index = sets.firstIndex(of: set) ?? sets.count
            if index == sets.count { sets.append(set) }
            return try add(State(kind: .bytes, out: next, argument: Int32(index)))
        case .assertion(let assertion):
            return try add(State(kind: .assertion, out: next, argument: assertion.rawValue))
        case .sequence(let nodes):
            var entry = next
            for node in nodes.reversed() { entry = try compile(node, next: entry) }
            return entry
        case .choice(let nodes):
            var entry = try compile(nodes[nodes.count - 1], next: next)
            for node in nodes.dropLast().reversed() {
                let branch = try compile(node, next: next)
                entry = try add(State(kind: .split, out: branch, out2: entry))
            }
            return entry
        case .repetition(let node, let min, let max):
            var entry = next
            if let max {
                // x{0,2} is (x(x)?)?: skipping any optional copy goes straight on.
                for _ in 0..<(max - min) {
                    let body = try compile(node, next: entry)
                    entry = try add(State(kind: .split, out: body, out2: next))
                }
            } else {
                let loop = try add(State(kind: .split))
                let body = try compile(node, next: loop)
                states[Int(loop)].out = body
                states[Int(loop)].out2 = next
                entry = loop
            }
            for _ in 0..<min { entry = try compile(node, next: entry) }
            return entry
        }
    }

    // MARK: matching

    /// Whether the pattern matches anywhere in `content` (a C string: no NUL), giving up at
    /// `deadline` (monotonic seconds, `Condition.now()`).
    func matches(_ content: [UInt8], deadline: Double) -> Outcome {
        let matcher = Matcher(self)
        return matcher.matches(content, deadline: deadline)
    }

    /// Whether any of `candidates` matches, with one DFA cache for them all.
    func matchesAny(_ candidates: [[UInt8]], deadline: Double) -> Outcome {
        let matcher = Matcher(self)
        for candidate in candidates {
            let outcome = matcher.matches(candidate, deadline: deadline)
            if outcome != .notMatched { return outcome }
        }
        return .notMatched
    }

    private static let wordBytes: [Bool] = (0...255).map { byte in
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == 0x5F
    }

    /// The DFA, built as the content asks for it. A DFA state is the set of NFA states the
    /// threads under way have reached before the next byte's assertions are looked at (they
    /// depend on that byte), plus what the byte before was. A new thread starts at every byte
    /// (the match may begin anywhere); it is kept apart because of how glibc reads anchors:
    /// - `^` holds at the content's start, and after a newline for a thread that has matched
    ///   something already (`a\n^b`), never for one just starting there (`^b` does not match
    ///   "a\nb");
    /// - `$` holds at the content's end, and before a newline that the thread goes on to match
    ///   (`a$\n` matches "a\nb"); a match may not end there (`a$` does not match "a\nb").
    /// glibc does this without REG_NEWLINE too; the File Check gives the same answers.
    private final class Matcher {
        let pattern: FileCheckPattern
        struct Key: Hashable {
            /// The threads under way (sorted), not the one starting at the next byte.
            var states: [Int32]
            var atStart: Bool
            var previous: ByteKind
        }
        enum ByteKind: UInt8 { case other, word, newline }
        var keys: [Key] = []
        var index: [Key: Int32] = [:]
        /// 256 entries per DFA state: the next state, -1 not built yet, -2 a match before the byte.
        var table: [Int32] = []
        var marks: [UInt32]
        var generation: UInt32 = 0
        var stack: [(state: Int32, started: Bool)] = []
        static let cacheLimit = 2_000

        init(_ pattern: FileCheckPattern) {
            self.pattern = pattern
            marks = [UInt32](repeating: 0, count: pattern.states.count)
        }

        func state(_ key: Key) -> Int32 {
            if let known = index[key] { return known }
            let id = Int32(keys.count)
            keys.append(key)
            index[key] = id
            table.append(contentsOf: repeatElement(-1, count: 256))
            return id
        }

        static func kind(_ byte: UInt8) -> ByteKind {
            byte == 0x0A ? .newline : FileCheckPattern.wordBytes[Int(byte)] ? .word : .other
        }

        /// The byte-matching NFA states reachable from `key`'s threads and a new one without a
        /// byte, assertions decided by the context (`next` nil at the end); nil when a match
        /// ends here. With `newlineEnd`, `$` also holds before a newline (threads that go on).
        func closure(_ key: Key, next: UInt8?, newlineEnd: Bool) -> [Int32]? {
            generation &+= 1
            if generation == 0 {
                for i in marks.indices { marks[i] = 0 }
                generation = 1
            }
            let atEnd = next == nil
            let previousIsWord = key.previous == .word
            let nextIsWord = next.map { Self.kind($0) == .word } ?? false
            var result: [Int32] = []
            stack.removeAll(keepingCapacity: true)
            // The new thread last: a state the threads under way reach is explored with the
            // wider `^` already.
            stack.append((pattern.start, false))
            for s in key.states.reversed() { stack.append((s, true)) }
            while let (s, started) = stack.popLast() {
                if marks[Int(s)] == generation { continue }
                marks[Int(s)] = generation
                let state = pattern.states[Int(s)]
                switch state.kind {
                case .accept: if !newlineEnd { return nil }
                case .bytes: result.append(s)
                case .split:
                    stack.append((state.out2, started))
                    stack.append((state.out, started))
                case .assertion:
                    let holds: Bool
                    switch Assertion(rawValue: state.argument)! {
                    case .start: holds = key.atStart || (started && key.previous == .newline)
                    case .end: holds = atEnd || (newlineEnd && next == 0x0A)
                    case .bufferStart: holds = key.atStart
                    case .bufferEnd: holds = atEnd
                    case .wordBoundary: holds = previousIsWord != nextIsWord
                    case .notWordBoundary: holds = previousIsWord == nextIsWord
                    case .wordStart: holds = !previousIsWord && nextIsWord
                    case .wordEnd: holds = previousIsWord && !nextIsWord
                    }
                    if holds { stack.append((state.out, started)) }
                }
            }
            return result
        }

        func step(_ id: Int32, _ byte: UInt8) -> Int32 {
            let key = keys[Int(id)]
            guard var reached = closure(key, next: byte, newlineEnd: false) else { return -2 }
            if byte == 0x0A { reached = closure(key, next: byte, newlineEnd: true)! }
            var next: [Int32] = []
            for s in reached {
                let state = pattern.states[Int(s)]
                if pattern.sets[Int(state.argument)].contains(byte) { next.append(state.out) }
            }
            next.sort()
            var unique: [Int32] = []
            for s in next where unique.last != s { unique.append(s) }
            return state(Key(states: unique, atStart: false, previous: Self.kind(byte)))
        }

        func matches(_ content: [UInt8], deadline: Double) -> Outcome {
            var current = state(Key(states: [], atStart: true, previous: .other))
            var position = 0
            while position < content.count {
                if position & 4095 == 0 && position > 0 && Condition.now() > deadline { return .tooSlow }
                let byte = content[position]
                var next = table[Int(current) * 256 + Int(byte)]
                if next == -1 {
                    // A new DFA state costs up to the whole NFA: the clock is read before each.
                    if Condition.now() > deadline { return .tooSlow }
                    if keys.count >= Self.cacheLimit {
                        // Full: start the cache again from the state we are in.
                        let key = keys[Int(current)]
                        keys = []
                        index = [:]
                        table = []
                        current = state(key)
                    }
                    next = step(current, byte)
                    table[Int(current) * 256 + Int(byte)] = next
                }
                if next == -2 { return .matched }
                current = next
                position += 1
            }
            return closure(keys[Int(current)], next: nil, newlineEnd: false) == nil ? .matched : .notMatched
        }
    }

    // MARK: parsing

    /// POSIX extended syntax as glibc reads it (`regcomp` has accepted the pattern already).
    private struct Parser {
        let text: [UInt8]
        var position = 0
        var depth = 0

        init(_ text: [UInt8]) { self.text = text }

        private func fail(_ reason: String) -> SyntaxError { SyntaxError(description: reason) }
        private var peek: UInt8? { position < text.count ? text[position] : nil }

        mutating func parse() throws -> Node {
            let node = try alternatives()
            if position < text.count { throw fail("has an unexpected '\(Character(Unicode.Scalar(text[position])))'") }
            return node
        }

        mutating func alternatives() throws -> Node {
            var branches = [try branch()]
            while peek == UInt8(ascii: "|") {
                position += 1
                branches.append(try branch())
            }
            return branches.count == 1 ? branches[0] : .choice(branches)
        }

        mutating func branch() throws -> Node {
            var items: [Node] = []
            while let c = peek, c != UInt8(ascii: "|"), !(c == UInt8(ascii: ")") && depth > 0) {
                var node = try atom()
                while let (min, max) = try quantifier() { node = .repetition(node, min: min, max: max) }
                items.append(node)
            }
            return items.count == 1 ? items[0] : .sequence(items)
        }

        mutating func quantifier() throws -> (Int, Int?)? {
            switch peek {
            case UInt8(ascii: "*"):
                position += 1
                return (0, nil)
            case UInt8(ascii: "+"):
                position += 1
                return (1, nil)
            case UInt8(ascii: "?"):
                position += 1
                return (0, 1)
            case UInt8(ascii: "{"):
                position += 1
                let low = number()
                var high = low
                if peek == UInt8(ascii: ",") {
                    position += 1
                    high = number()
                }
                guard peek == UInt8(ascii: "}") else { throw fail("has an unmatched '{'") }
                position += 1
                let min = low ?? 0
                if let high, high < min { throw fail("has a repetition {\(min),\(high)} that counts down") }
                return (min, high)
            default:
                return nil
            }
        }

        mutating func number() -> Int? {
            var value: Int?
            while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
                value = min(100_000, (value ?? 0) * 10 + Int(c - UInt8(ascii: "0")))
                position += 1
            }
            return value
        }

        mutating func atom() throws -> Node {
            let c = text[position]
            position += 1
            switch c {
            case UInt8(ascii: "("):
                depth += 1
                if depth > 500 { throw fail("nests its parentheses too deep") }
                let inner = try alternatives()
                guard peek == UInt8(ascii: ")") else { throw fail("has an unmatched '('") }
                position += 1
                depth -= 1
                return inner
            case UInt8(ascii: "."):
                var set = ByteSet()
                set.insert { _ in true }
                return .bytes(set)
            case UInt8(ascii: "^"): return .assertion(.start)
            case UInt8(ascii: "$"): return .assertion(.end)
            case UInt8(ascii: "["): return .bytes(try bracket())
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"):
                throw fail("has '\(Character(Unicode.Scalar(c)))' with nothing before it to repeat")
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw fail("ends with a lone '\\'") }
                position += 1
                switch e {
                case UInt8(ascii: "1")...UInt8(ascii: "9"):
                    throw fail(
                        "has a back-reference (\\\(Character(Unicode.Scalar(e)))), which a File Check does not allow: matching one can take exponential time on the drive's content"
                    )
                case UInt8(ascii: "w"), UInt8(ascii: "W"):
                    var set = ByteSet()
                    set.insert { FileCheckPattern.wordBytes[Int($0)] }
                    return .bytes(e == UInt8(ascii: "w") ? set : set.inverted())
                case UInt8(ascii: "s"), UInt8(ascii: "S"):
                    var set = ByteSet()
                    set.insert { isspace(Int32($0)) != 0 && $0 < 0x80 }
                    return .bytes(e == UInt8(ascii: "s") ? set : set.inverted())
                case UInt8(ascii: "b"): return .assertion(.wordBoundary)
                case UInt8(ascii: "B"): return .assertion(.notWordBoundary)
                case UInt8(ascii: "<"): return .assertion(.wordStart)
                case UInt8(ascii: ">"): return .assertion(.wordEnd)
                case UInt8(ascii: "`"): return .assertion(.bufferStart)
                case UInt8(ascii: "'"): return .assertion(.bufferEnd)
                default:
                    var set = ByteSet()
                    set.insert(e)
                    return .bytes(set)
                }
            default:
                var set = ByteSet()
                set.insert(c)
                return .bytes(set)
            }
        }

        /// After the `[`: a bracket expression up to its `]`.
        mutating func bracket() throws -> ByteSet {
            var set = ByteSet()
            var negated = false
            if peek == UInt8(ascii: "^") {
                negated = true
                position += 1
            }
            var first = true
            while true {
                guard let c = peek else { throw fail("has an unmatched '['") }
                if c == UInt8(ascii: "]") && !first {
                    position += 1
                    break
                }
                first = false
                if c == UInt8(ascii: "["), position + 1 < text.count, text[position + 1] == UInt8(ascii: ":") {
                    let name = try delimited(UInt8(ascii: ":"))
                    guard let test = Self.classes[name] else { throw fail("has an unknown class [:\(name):]") }
                    set.insert { $0 < 0x80 && test(Int32($0)) != 0 }
                    continue
                }
                let low = try bracketByte()
                if peek == UInt8(ascii: "-"), position + 1 < text.count, text[position + 1] != UInt8(ascii: "]") {
                    position += 1
                    let high = try bracketByte()
                    guard low <= high else { throw fail("has a range that counts down") }
                    for byte in low...high where byte != 0 { set.insert(byte) }
                } else {
                    set.insert(low)
                }
            }
            return negated ? set.inverted() : set
        }

        /// One byte of a bracket expression: itself, `[.x.]` or `[=x=]`.
        mutating func bracketByte() throws -> UInt8 {
            let c = text[position]
            if c == UInt8(ascii: "["), position + 1 < text.count,
                text[position + 1] == UInt8(ascii: ".") || text[position + 1] == UInt8(ascii: "=")
            {
                let name = try delimited(text[position + 1])
                guard name.utf8.count == 1 else { throw fail("has [.\(name).], which a File Check does not support") }
                return name.utf8.first!
            }
            position += 1
            return c
        }

        /// `[` `d` name `d` `]` at the position: the name.
        mutating func delimited(_ delimiter: UInt8) throws -> String {
            var end = position + 2
            while end + 1 < text.count && !(text[end] == delimiter && text[end + 1] == UInt8(ascii: "]")) { end += 1 }
            guard end + 1 < text.count else { throw fail("has an unmatched '['") }
            let name = String(decoding: text[(position + 2)..<end], as: UTF8.self)
            position = end + 2
            return name
        }

        static let classes: [String: (Int32) -> Int32] = [
            "alpha": { isalpha($0) }, "upper": { isupper($0) }, "lower": { islower($0) }, "digit": { isdigit($0) },
            "xdigit": { isxdigit($0) }, "alnum": { isalnum($0) }, "punct": { ispunct($0) }, "space": { isspace($0) },
            "blank": { isblank($0) }, "cntrl": { iscntrl($0) }, "graph": { isgraph($0) }, "print": { isprint($0) },
        ]
    }
}
