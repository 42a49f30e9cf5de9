#if canImport(Glibc)
    import Glibc
#endif

/// The `ignore` regexes of a definition, compiled once, matched against entry names.
///
/// The patterns are POSIX extended regular expressions (the syntax of `grep -E`), matched
/// anywhere in the name unless anchored: `\.tmp$`, `^~\$`, `^(Thumbs\.db|desktop\.ini)$`.
/// glibc's `regexec` is safe to call from several threads on one compiled pattern.
public final class IgnoreList: @unchecked Sendable {
    public let patterns: [String]
    private var compiled: [UnsafeMutablePointer<regex_t>] = []

    /// Compiles every pattern; throws `IgnoreList.PatternError` naming the first bad one.
    public init(_ patterns: [String]) throws {
        self.patterns = patterns
        for (index, pattern) in patterns.enumerated() {
            let regex = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
            let status = regcomp(regex, pattern, REG_EXTENDED | REG_NOSUB)
            if status != 0 {
                var buffer = [CChar](repeating: 0, count: 256)
                regerror(status, regex, &buffer, buffer.count)
                regex.deallocate()
                throw PatternError(index: index, pattern: pattern, reason: String(cString: buffer))
            }
            compiled.append(regex)
        }
    }

    public static let none = try! IgnoreList([])

    deinit {
        for regex in compiled {
            regfree(regex)
            regex.deallocate()
        }
    }

    public var isEmpty: Bool { compiled.isEmpty }

    /// True when any pattern matches the name.
    public func matches(_ name: FileName) -> Bool {
        if compiled.isEmpty { return false }
        return name.withCString { cName in
            compiled.contains { regexec($0, cName, 0, nil, 0) == 0 }
        }
    }

    public struct PatternError: Error, CustomStringConvertible {
        public var index: Int
        public var pattern: String
        public var reason: String
        public var description: String { "bad regex \"\(pattern)\": \(reason)" }
    }
}
