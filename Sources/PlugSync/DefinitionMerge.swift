/// Puts a changed definition's lines in place of its old ones while keeping what the user wrote:
/// a line whose key has the same value stays as it was (spacing, quoting, comment), a changed
/// value keeps the line's comment (`key: value  # why`), and a comment line stays above the line
/// it stood above. The caller checks that the result reads back as the new definition.
enum DefinitionMerge {
    /// One line of YAML that holds a key (or a list item), with what belongs to it.
    struct Entry {
        /// `[0]/source/local`: the keys (and list positions) above it, its own last.
        var path: String
        /// The value as written, without comment or surrounding blanks ("" for a parent key).
        var value: String
        /// The blanks before the `#` and the comment, or "".
        var comment: String
        var raw: String
        /// Lines after it that hold no key (a block scalar's, a long flow list's).
        var continuation: [String] = []
        /// Comment and blank lines right above it.
        var above: [String] = []
    }

    static func merge(old: [String], new: [String]) -> [String] {
        var olds = entries(old)
        var used = [Bool](repeating: false, count: olds.count)
        var out: [String] = []
        for entry in entries(new) {
            guard let index = olds.indices.first(where: { !used[$0] && olds[$0].path == entry.path }) else {
                out.append(entry.raw)
                continue
            }
            used[index] = true
            let previous = olds[index]
            out += previous.above
            if previous.value == entry.value {
                out.append(previous.raw)
                out += previous.continuation
            } else {
                out.append(entry.raw + previous.comment)
            }
            olds[index].above = []
        }
        return out
    }

    static func entries(_ lines: [String]) -> [Entry] {
        var result: [Entry] = []
        var stack: [(indent: Int, component: String, isItem: Bool, index: Int, opensBlock: Bool)] = []
        var pendingAbove: [String] = []
        for line in lines {
            let indent = line.prefix { $0 == " " }.count
            var rest = Substring(line.dropFirst(indent))
            if rest.isEmpty || rest.hasPrefix("#") {
                pendingAbove.append(line)
                continue
            }
            var keyColumn = indent
            var itemPath: String?
            if rest == "-" || rest.hasPrefix("- ") {
                while let top = stack.last,
                    top.indent > indent || (top.indent == indent && !top.isItem && !top.opensBlock)
                {
                    stack.removeLast()
                }
                var index = 0
                if let top = stack.last, top.indent == indent, top.isItem {
                    index = top.index + 1
                    stack.removeLast()
                }
                stack.append((indent, "[\(index)]", true, index, false))
                rest = rest.dropFirst()
                let blanks = rest.prefix { $0 == " " }.count
                rest = rest.dropFirst(blanks)
                keyColumn = indent + 1 + blanks
                itemPath = stack.map(\.component).joined(separator: "/")
            }
            let (content, comment) = splitComment(rest)
            if let (key, value) = keyAndValue(content) {
                while let top = stack.last, top.indent >= keyColumn { stack.removeLast() }
                let path = (stack.map(\.component) + [key]).joined(separator: "/")
                stack.append((keyColumn, key, false, 0, value.isEmpty))
                result.append(Entry(path: path, value: value, comment: comment, raw: line, above: pendingAbove))
            } else if let itemPath {
                result.append(
                    Entry(path: itemPath, value: content, comment: comment, raw: line, above: pendingAbove))
            } else if !result.isEmpty {
                result[result.count - 1].continuation += pendingAbove + [line]
            } else {
                result.append(Entry(path: "?", value: content, comment: comment, raw: line, above: pendingAbove))
            }
            pendingAbove = []
        }
        if !pendingAbove.isEmpty && !result.isEmpty { result[result.count - 1].continuation += pendingAbove }
        return result
    }

    /// `key: value` of a line's content; nil when it holds no plain key.
    static func keyAndValue(_ content: String) -> (String, String)? {
        guard let colon = content.firstIndex(of: ":") else { return nil }
        let key = content[..<colon]
        let after = content[content.index(after: colon)...]
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }),
            after.isEmpty || after.first == " " || after.first == "\t"
        else { return nil }
        return (String(key), ASCII.trimmingBlanks(after))
    }

    /// The content and the comment (with the blanks before its `#`) of a line's text after its
    /// indentation: a `#` after a blank and outside quotes starts a comment.
    static func splitComment(_ text: Substring) -> (String, String) {
        var quote: Character?
        var previous: Character = " "
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if let open = quote {
                if open == "\"" && c == "\\" {
                    index = text.index(after: index)
                    if index < text.endIndex { index = text.index(after: index) }
                    previous = "x"
                    continue
                }
                if c == open { quote = nil }
            } else if c == "'" || c == "\"",
                previous == " " || previous == "\t" || previous == ":" || previous == "["
                    || previous == "," || previous == "{"
            {
                quote = c
            } else if c == "#" && (previous == " " || previous == "\t") {
                var start = index
                while start > text.startIndex {
                    let before = text.index(before: start)
                    guard text[before] == " " || text[before] == "\t" else { break }
                    start = before
                }
                return (ASCII.trimmingBlanks(text[..<start]), String(text[start...]))
            }
            previous = c
            index = text.index(after: index)
        }
        return (ASCII.trimmingBlanks(text), "")
    }
}
