import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `<path>=[<regex>]`: the run starts only if `path` exists and, with a regex, its content
/// matches. This tells the right drive from a wrong one.
///
/// The file sits on a drive anyone may have written, so it is read as untrusted input:
/// - its path is normalized once, when read (`.` and empty components dropped, `..` refused), so
///   however it is written it names one file, which the sync leaves out (`relativePath`);
/// - it is opened beneath the endpoint's root (a drive's mount point) one component at a time,
///   each with `O_NOFOLLOW` from its folder's descriptor: a symbolic link anywhere on the way
///   fails the check, so it never reads outside the drive. (A walk rather than `openat2` with
///   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: the path has no `..` left and every component is
///   opened without following, which is the same guarantee for a few system calls, once per run);
/// - only a regular file counts: its type is read before it is opened, it is opened
///   `O_NONBLOCK` (a FIFO swapped in meanwhile cannot block) and `fstat` must show the same file;
/// - at most `contentLimit` bytes are read, and the regex is matched by `FileCheckPattern`,
///   which does not backtrack and gives up after `matchTimeLimit` (its file says why);
/// - the whole check runs on a thread of its own and counts as failed after `timeLimit` (a
///   drive that stops answering leaves that thread waiting, not its caller).
public struct FileCheck: Sendable, Equatable, CustomStringConvertible {
    /// Relative to the endpoint's root, or absolute; normalized.
    public private(set) var path: String
    /// A POSIX extended regex the content must match; nil checks existence only.
    public var pattern: String? {
        didSet { compiled = pattern.flatMap { try? FileCheckPattern($0) } }
    }
    private var compiled: FileCheckPattern?

    /// The most of the file that is read for matching.
    public static let contentLimit = 64 * 1024
    /// The longest a regex may take to match the content.
    public static let matchTimeLimit = 1.0
    /// The longest a whole check may take (reading a drive that stopped answering included).
    public static let timeLimit = 10.0

    public init(path: String, pattern: String? = nil) {
        self.path = Self.normalized(path)
        self.pattern = pattern
        compiled = pattern.flatMap { try? FileCheckPattern($0) }
    }

    /// Parses `path=regex`, split at the first `=`; throws a message for a bad value.
    public init(parsing text: String) throws {
        let path: Substring
        var pattern: String?
        if let equals = text.firstIndex(of: "=") {
            path = text[..<equals]
            let written = String(text[text.index(after: equals)...])
            pattern = written.isEmpty ? nil : written
        } else {
            path = Substring(text)
        }
        if path.isEmpty { throw FileCheckError("has no file path before '='") }
        if path.split(separator: "/").contains("..") { throw FileCheckError("path may not contain '..'") }
        let normalized = Self.normalized(String(path))
        if normalized.isEmpty || normalized == "/" { throw FileCheckError("path names a folder, not a file") }
        self.path = normalized
        self.pattern = pattern
        if let pattern {
            // FileCheckPattern first: it refuses what it will not match, and sizes glibc's
            // regcomp overflows its stack on (`((){1000}){1000}`). Then glibc vets the syntax as
            // before, so no pattern it refuses is taken.
            do { compiled = try FileCheckPattern(pattern) } catch let error as FileCheckPattern.SyntaxError {
                throw FileCheckError("bad regex \"\(pattern)\": it \(error.description)")
            }
            do { _ = try IgnoreList([pattern]) } catch let error as IgnoreList.PatternError {
                throw FileCheckError(error.description)
            }
        }
    }

    public static func == (a: FileCheck, b: FileCheck) -> Bool { a.path == b.path && a.pattern == b.pattern }

    public var description: String { pattern.map { "\(path)=\($0)" } ?? path }

    /// `a//./b/` → `a/b`, `/x/./y` → `/x/y` (`..` is left in: it is refused where it matters).
    static func normalized(_ path: String) -> String {
        (path.hasPrefix("/") ? "/" : "") + components(of: path).joined(separator: "/")
    }

    static func components(of path: String) -> [Substring] {
        path.split(separator: "/").filter { $0 != "." }
    }

    /// The check file's path relative to `root`, when it lies inside it (it is then excluded
    /// from the sync: it is part of the drive, not of the data).
    public func relativePath(under root: String) -> FileName? {
        let parts = Self.components(of: path)
        if !path.hasPrefix("/") { return parts.isEmpty ? nil : FileName(parts.joined(separator: "/")) }
        return Self.remainder(of: parts, after: Self.components(of: root))
    }

    /// For a drive: the check file's path relative to the endpoint's `directory` on the drive
    /// mounted at `mountPoint`, when it lies inside it.
    public func relativePath(onDriveAt mountPoint: String, directory: String) -> FileName? {
        var parts = Self.components(of: path)
        if path.hasPrefix("/") {
            guard let onDrive = Self.remainder(of: parts, after: Self.components(of: mountPoint)) else { return nil }
            parts = Self.components(of: onDrive.description)
        }
        return Self.remainder(of: parts, after: Self.components(of: directory))
    }

    private static func remainder(of parts: [Substring], after prefix: [Substring]) -> FileName? {
        guard parts.count > prefix.count, Array(parts.prefix(prefix.count)) == prefix else { return nil }
        return FileName(parts.dropFirst(prefix.count).joined(separator: "/"))
    }

    /// Evaluates the check against an endpoint's root; returns nil when it passes, else why not.
    /// With `drive`, `root` is a drive's mount point and an absolute path must lie on it.
    /// Gives up after `timeout` seconds.
    public func failure(root: String, drive: Bool = false, timeout: Double = FileCheck.timeLimit) -> String? {
        outcome(root: root, drive: drive, timeout: timeout).failure
    }

    /// What a check found: why it failed, or, when it passed, what the file holds (to tell
    /// apart drives that share a label and even a UUID, as clones do, by their check files).
    public struct Outcome: Sendable, Equatable {
        /// Why the check failed; nil when it passed.
        public var failure: String?
        /// When it passed: a short name for the file's content (`FileCheck.contentName`); nil
        /// when a check without a regex could not read the file.
        public var content: String?

        public init(failure: String? = nil, content: String? = nil) {
            self.failure = failure
            self.content = content
        }
    }

    /// The check as `failure(root:drive:timeout:)` makes it, with the content it read.
    public func outcome(root: String, drive: Bool = false, timeout: Double = FileCheck.timeLimit) -> Outcome {
        final class Answer: @unchecked Sendable {
            let done = Condition()
            var value: Outcome?
        }
        let answer = Answer()
        let check = self
        startThread {
            let value = check.evaluate(root: root, drive: drive)
            answer.done.lock()
            answer.value = value
            answer.done.broadcast()
            answer.done.unlock()
        }
        let deadline = Condition.now() + timeout
        answer.done.lock()
        defer { answer.done.unlock() }
        while answer.value == nil && answer.done.wait(until: deadline) {}
        if let value = answer.value { return value }
        return Outcome(
            failure: "\(displayPath(root: root)): no answer within \(Int(timeout)) s (the drive does not respond)")
    }

    /// A short name for a check file's content: its first line when that is short printable
    /// text (`offsite-b`, the id `init-drive` writes), else `#` and a 64-bit FNV-1a digest of
    /// the bytes read. FNV-1a, written here, because it only has to tell a user's few drives
    /// apart, not resist anyone: a drive that forges another's content passes its check anyway.
    public static func contentName(_ content: [UInt8]) -> String {
        let line = content.prefix { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }
        if !line.isEmpty, line.count <= 40, line.count + 2 >= content.count,
            line.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            return String(decoding: line, as: UTF8.self)
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in content {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return "#" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    private func displayPath(root: String) -> String {
        path.hasPrefix("/") ? path : (root.hasSuffix("/") ? root : root + "/") + path
    }

    /// The check, on the caller's thread.
    func evaluate(root: String, drive: Bool) -> Outcome {
        func failed(_ why: String) -> Outcome { Outcome(failure: why) }
        let full = displayPath(root: root)
        var parts = Self.components(of: path)
        if parts.contains("..") { return failed("\(full): a File Check path may not contain '..'") }
        var base = root
        if path.hasPrefix("/") {
            if let inside = Self.remainder(of: parts, after: Self.components(of: root)) {
                parts = Self.components(of: inside.description)
            } else if drive {
                return failed("\(full): not on the drive mounted at \(root)")
            } else {
                // A host file the definition names outside its folder: the folders on the way
                // are the host's; the file itself is not followed.
                base = "/" + parts.dropLast().joined(separator: "/")
                parts = Array(parts.suffix(1))
            }
        }
        guard let name = parts.last else { return failed("\(full): names a folder, not a file") }
        var folder = open(base, openPath | O_DIRECTORY | O_CLOEXEC)
        if folder < 0 { return failed("\(full): \(Self.reason(errno))") }
        defer { close(folder) }
        var walked = base == "/" ? "" : base
        for component in parts.dropLast() {
            walked += "/" + component
            let next = openat(folder, String(component), openPath | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 { return failed("\(full): \(problem(folder, String(component), walked, errno))") }
            close(folder)
            folder = next
        }
        var st = stat()
        if fstatat(folder, String(name), &st, AT_SYMLINK_NOFOLLOW) != 0 {
            return failed("\(full): \(Self.reason(errno))")
        }
        if st.st_mode & S_IFMT == S_IFLNK {
            return failed("\(full): is a symbolic link; a File Check does not follow links")
        }
        if st.st_mode & S_IFMT != S_IFREG { return failed("\(full): is \(Self.kind(st.st_mode)), not a regular file") }
        // Without a regex the file need only exist; it is still read (when it can be) for the
        // name of its content, which tells rotating drives apart.
        let fd = openat(folder, String(name), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC)
        if fd < 0 { return pattern == nil ? Outcome() : failed("\(full): \(Self.reason(errno))") }
        defer { close(fd) }
        var opened = stat()
        guard fstat(fd, &opened) == 0, opened.st_mode & S_IFMT == S_IFREG, opened.st_dev == st.st_dev,
            opened.st_ino == st.st_ino
        else { return failed("\(full): changed while it was being checked") }
        var content = [UInt8](repeating: 0, count: Self.contentLimit)
        var total = 0
        while total < content.count {
            let n = content.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                return pattern == nil ? Outcome() : failed("\(full): \(Self.reason(errno))")
            }
            if n == 0 { break }
            total += n
        }
        content.removeSubrange(total...)
        if let failure = contentFailure(content, where: full) { return failed(failure) }
        return Outcome(content: Self.contentName(content))
    }

    /// Why a folder on the way could not be opened.
    private func problem(_ folder: Int32, _ name: String, _ walked: String, _ error: Int32) -> String {
        var st = stat()
        if (error == ELOOP || error == ENOTDIR) && fstatat(folder, name, &st, AT_SYMLINK_NOFOLLOW) == 0 {
            if st.st_mode & S_IFMT == S_IFLNK {
                return "\(walked) is a symbolic link; a File Check does not follow links"
            }
            return "\(walked) is \(Self.kind(st.st_mode)), not a folder"
        }
        return Self.reason(error)
    }

    private static func reason(_ error: Int32) -> String {
        error == ENOENT ? "file not found" : String(cString: strerror(error))
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFDIR: return "a folder"
        case S_IFLNK: return "a symbolic link"
        default: return "a regular file"
        }
    }

    /// Whether `content` (the file's first `contentLimit` bytes) satisfies the regex; nil when it
    /// does (or there is none), else why not. `place` names the file in the message.
    public func contentFailure(_ content: [UInt8], where place: String) -> String? {
        guard let pattern else { return nil }
        guard let compiled else { return "\(place): bad regex \"\(pattern)\"" }
        // Match each line as well as the whole, so `^id$` works on a file ending in a newline.
        // (A C string ends at NUL: a candidate holding one is not matched, as with regexec.)
        let candidates =
            ([content]
            + content.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map(Array.init)).filter { !$0.contains(0) }
        switch compiled.matchesAny(candidates, deadline: Condition.now() + Self.matchTimeLimit) {
        case .matched: return nil
        case .notMatched: return "\(place): content does not match \"\(pattern)\""
        case .tooSlow:
            return "\(place): matching \"\(pattern)\" took over \(Int(Self.matchTimeLimit)) s; the check fails"
        }
    }
}

/// Linux's `O_PATH` (Glibc exports it only with `_GNU_SOURCE`): a folder opened only to walk
/// from, which needs no read permission on it.
private let openPath: Int32 = 0o10_000_000

struct FileCheckError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
