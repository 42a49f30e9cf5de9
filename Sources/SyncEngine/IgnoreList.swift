#if canImport(Glibc)
    import Glibc
#endif

/// The `ignore` patterns of a definition, compiled once.
///
/// Three forms:
/// - a bare pattern, or `re:…`: a POSIX extended regular expression (the syntax of `grep -E`)
///   matched anywhere in the entry's name unless anchored: `\.tmp$`, `^~\$`,
///   `^(Thumbs\.db|desktop\.ini)$`;
/// - `glob:…`: a shell pattern (`*`, `?`, `[abc]`, `[!abc]`, `\` to take the next character as it
///   is) matching the whole name: `glob:*.tmp`. With a `/` it matches the entry's path from the
///   endpoint's root instead (a leading `/` changes nothing), and `**` crosses folders:
///   `glob:build/*.o`, `glob:**/cache/**`.
///
/// A glob becomes an anchored regular expression here, so one engine matches every form.
/// glibc's `regexec` is safe to call from several threads on one compiled pattern.
public final class IgnoreList: @unchecked Sendable {
    public let patterns: [String]
    private var names: [UnsafeMutablePointer<regex_t>] = []
    private var paths: [UnsafeMutablePointer<regex_t>] = []

    /// Compiles every pattern; throws `IgnoreList.PatternError` naming the first bad one.
    public init(_ patterns: [String]) throws {
        self.patterns = patterns
        for (index, pattern) in patterns.enumerated() {
            let (expression, onPath) = Self.expression(pattern)
            let regex = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
            let status = regcomp(regex, expression, REG_EXTENDED | REG_NOSUB)
            if status != 0 {
                var buffer = [CChar](repeating: 0, count: 256)
                regerror(status, regex, &buffer, buffer.count)
                regex.deallocate()
                var reason = String(cString: buffer)
                if Self.looksLikeGlob(pattern) {
                    reason += " (a bare pattern is a regular expression; for a shell pattern write glob:\(pattern))"
                }
                throw PatternError(index: index, pattern: pattern, reason: reason)
            }
            if onPath { paths.append(regex) } else { names.append(regex) }
        }
    }

    public static let none = try! IgnoreList([])

    deinit {
        for regex in names + paths {
            regfree(regex)
            regex.deallocate()
        }
    }

    public var isEmpty: Bool { names.isEmpty && paths.isEmpty }

    /// True when any pattern matches the entry: a name pattern its name, a path pattern its
    /// path from the endpoint's root (only computed where there are path patterns).
    public func matches(_ name: FileName, path: @autoclosure () -> FileName) -> Bool {
        if !names.isEmpty, name.withCString({ cName in names.contains { regexec($0, cName, 0, nil, 0) == 0 } }) {
            return true
        }
        if paths.isEmpty { return false }
        return path().withCString { cPath in paths.contains { regexec($0, cPath, 0, nil, 0) == 0 } }
    }

    /// The regular expression for `pattern`, and whether it matches paths rather than names.
    static func expression(_ pattern: String) -> (String, onPath: Bool) {
        if pattern.hasPrefix("re:") { return (String(pattern.dropFirst(3)), false) }
        guard pattern.hasPrefix("glob:") else { return (pattern, false) }
        var glob = Substring(pattern.dropFirst(5))
        let onPath = glob.contains("/")
        while glob.first == "/" { glob = glob.dropFirst() }
        return (regex(fromGlob: Array(glob)), onPath)
    }

    /// `*` and `?` stop at a `/`, `**` does not (`**/` also matches no folder at all), a bracket
    /// expression is kept (`[!…]` as `[^…]`), everything else is taken literally.
    static func regex(fromGlob glob: [Character]) -> String {
        var out = "^"
        var i = 0
        while i < glob.count {
            let c = glob[i]
            switch c {
            case "*":
                if i + 1 < glob.count && glob[i + 1] == "*" {
                    i += 1
                    if i + 1 < glob.count && glob[i + 1] == "/" {
                        i += 1
                        out += "(.*/)?"
                    } else {
                        out += ".*"
                    }
                } else {
                    out += "[^/]*"
                }
            case "?":
                out += "[^/]"
            case "[":
                // The closing bracket: a `]` right after `[` or `[!` is a member, not the end.
                var j = i + 1
                if j < glob.count && glob[j] == "!" { j += 1 }
                if j < glob.count && glob[j] == "]" { j += 1 }
                while j < glob.count && glob[j] != "]" { j += 1 }
                if j < glob.count {
                    var members = glob[(i + 1)..<j]
                    var set = "["
                    if members.first == "!" {
                        set += "^"
                        members = members.dropFirst()
                    }
                    set += String(members) + "]"
                    out += set
                    i = j
                } else {
                    out += "\\["
                }
            case "\\":
                if i + 1 < glob.count {
                    i += 1
                    out += literal(glob[i])
                } else {
                    out += "\\\\"
                }
            default:
                out += literal(c)
            }
            i += 1
        }
        return out + "$"
    }

    private static func literal(_ c: Character) -> String {
        ".^$*+?()[]{}|\\".contains(c) ? "\\" + String(c) : String(c)
    }

    /// A bare pattern that reads as a shell pattern: it starts with `*` or `?`, or holds `*.`.
    private static func looksLikeGlob(_ pattern: String) -> Bool {
        !pattern.hasPrefix("re:") && !pattern.hasPrefix("glob:")
            && (pattern.hasPrefix("*") || pattern.hasPrefix("?") || pattern.contains("*."))
    }

    public struct PatternError: Error, CustomStringConvertible {
        public var index: Int
        public var pattern: String
        public var reason: String
        public var description: String { "bad regex \"\(pattern)\": \(reason)" }
    }
}
