import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// `<path>=[<regex>]`: the run starts only if `path` exists and, with a regex, its content
/// matches. This tells the right drive from a wrong one.
public struct FileCheck: Sendable, Equatable, CustomStringConvertible {
    /// Relative to the endpoint's root, or absolute.
    public var path: String
    /// A POSIX extended regex the content must match; nil checks existence only.
    public var pattern: String?

    /// The most of the file that is read for matching.
    public static let contentLimit = 64 * 1024

    public init(path: String, pattern: String? = nil) {
        self.path = path
        self.pattern = pattern
    }

    /// Parses `path=regex`, split at the first `=`; throws a message for a bad value.
    public init(parsing text: String) throws {
        let path: Substring
        if let equals = text.firstIndex(of: "=") {
            path = text[..<equals]
            let pattern = String(text[text.index(after: equals)...])
            self.pattern = pattern.isEmpty ? nil : pattern
        } else {
            path = Substring(text)
            self.pattern = nil
        }
        self.path = String(path)
        if self.path.isEmpty { throw FileCheckError("has no file path before '='") }
        if self.path.split(separator: "/").contains("..") { throw FileCheckError("path may not contain '..'") }
        if let pattern {
            do { _ = try IgnoreList([pattern]) } catch let error as IgnoreList.PatternError {
                throw FileCheckError(error.description)
            }
        }
    }

    public var description: String { pattern.map { "\(path)=\($0)" } ?? path }

    /// The check file's path relative to `root`, when it lies inside it (it is then excluded
    /// from the sync: it is part of the drive, not of the data).
    public func relativePath(under root: String) -> FileName? {
        if !path.hasPrefix("/") { return FileName(path.split(separator: "/").joined(separator: "/")) }
        let prefix = root.hasSuffix("/") ? root : root + "/"
        guard path.hasPrefix(prefix) else { return nil }
        return FileName(String(path.dropFirst(prefix.count)))
    }

    /// Evaluates the check against an endpoint root; returns nil when it passes, else why not.
    public func failure(root: String) -> String? {
        let full = path.hasPrefix("/") ? path : (root.hasSuffix("/") ? root : root + "/") + path
        let fd = open(full, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let reason = errno == ENOENT ? "file not found" : String(cString: strerror(errno))
            return "\(full): \(reason)"
        }
        defer { close(fd) }
        guard let pattern else { return nil }
        var content = [UInt8](repeating: 0, count: Self.contentLimit)
        var total = 0
        while total < content.count {
            let n = content.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                return "\(full): \(String(cString: strerror(errno)))"
            }
            if n == 0 { break }
            total += n
        }
        return contentFailure(Array(content[..<total]), where: full)
    }

    /// Whether `content` (the file's first `contentLimit` bytes) satisfies the regex; nil when it
    /// does (or there is none), else why not. `place` names the file in the message.
    public func contentFailure(_ content: [UInt8], where place: String) -> String? {
        guard let pattern else { return nil }
        // Match each line as well as the whole, so `^id$` works on a file ending in a newline.
        guard let regex = try? IgnoreList([pattern]) else { return "bad regex" }
        let candidates =
            [content] + content.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        for candidate in candidates where !candidate.contains(0) {
            if regex.matches(FileName(bytes: candidate)) { return nil }
        }
        return "\(place): content does not match \"\(pattern)\""
    }
}

struct FileCheckError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
