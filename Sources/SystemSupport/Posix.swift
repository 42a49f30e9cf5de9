import CPosix

#if canImport(Glibc)
    import Glibc
#endif

// Small replacements for Foundation conveniences. Linking Foundation (with ICU) costs several
// MiB of resident memory in every run, so the binary does without it (see bench/README.md).

/// A mutual-exclusion lock over `pthread_mutex_t` (what `NSLock` was used for).
public final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }

    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

public enum Posix {
    /// The process environment (what `ProcessInfo.processInfo.environment` gave).
    public static func environment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                let key = String(text[..<equals])
                if result[key] == nil { result[key] = String(text[text.index(after: equals)...]) }
            }
            pointer += 1
        }
        return result
    }

    /// One environment variable.
    public static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Creates `path` and its missing parents (`mkdir -p`); an existing folder is fine. Throws
    /// `SystemError` naming the folder that could not be made.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        var st = stat()
        if stat(path, &st) == 0 {
            if st.st_mode & S_IFMT == S_IFDIR { return }
            throw SystemError("mkdir", path: path, errno: EEXIST)
        }
        let parent = parentPath(path)
        if !parent.isEmpty && parent != path { try makeDirectories(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path: path, errno: errno) }
    }

    /// The whole content of a file, or nil (with `errno` set) when it cannot be read.
    public static func readFile(_ path: String, from offset: Int = 0, limit: Int = 1 << 30) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        if offset > 0 && lseek(fd, off_t(offset), SEEK_SET) < 0 { return nil }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while result.count < limit {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<n])
        }
        return result
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
    /// then renamed over `path`. Returns nil, or the errno of what failed (nothing is left then).
    public static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) -> Int32? {
        let directory = parentPath(path)
        let temporary = (directory.isEmpty ? "." : directory) + "/.plugsync-tmp-" + lastComponent(path) + ".\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        if fd < 0 { return errno }
        var offset = 0
        var failure: Int32 = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                break
            }
            offset += n
        }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        fchmod(fd, mode)
        close(fd)
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            return failure
        }
        return nil
    }

    /// Writes all of `bytes` to standard output, after what `print` buffered.
    public static func writeStandardOutput(_ bytes: [UInt8]) {
        fflush(stdout)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
    }

    /// `/a/b/c` → `/a/b`; `c` → ``; `/c` → `/` (as `NSString.deletingLastPathComponent`).
    public static func parentPath(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// `/a/b/c` → `c` (as `NSString.lastPathComponent`).
    public static func lastComponent(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/"), trimmed.count > 1 else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// Returns the heap's free pages to the system (`malloc_trim`), so that what a finished
    /// phase freed does not add to the peak of the next.
    public static func releaseFreeMemory() {
        _ = cposix_malloc_trim()
    }

    /// `rss 10.1 MiB (peak 12.3 MiB)` from /proc/self/status, for PLUGSYNC_TIMING.
    public static func memoryStatus() -> String {
        guard let status = readFile("/proc/self/status") else { return "" }
        var rss = "?"
        var peak = "?"
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let kib = Double(fields[1]) else { continue }
            if fields[0] == "VmRSS:" { rss = formatFixed(kib / 1024, decimals: 1) }
            if fields[0] == "VmHWM:" { peak = formatFixed(kib / 1024, decimals: 1) }
        }
        return "rss \(rss) MiB (peak \(peak) MiB)"
    }

    /// Seconds since the epoch, with nanoseconds (what `Date()` was used for).
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// A seconds-since-epoch as local time, `2026-11-22 18:30:02` (`DateFormatter` before).
    public static func localTimeString(_ seconds: Double, format: String = "%Y-%m-%d %H:%M:%S") -> String {
        var t = time_t(seconds.rounded(.down))
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `value` with `decimals` digits after the point, rounded (what `String(format: "%.Nf")` gave).
public func formatFixed(_ value: Double, decimals: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    let n = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(decimals)f", $0) }
    return String(decoding: buffer[0..<Int(min(max(n, 0), 63))].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// `value` as at least `width` decimal digits, zero-padded (`%02d`).
public func formatPadded(_ value: Int, width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// A failed system call: which call, on which path, and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var path: String
    public var errno: Int32

    public init(_ operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// The C library's text for the errno, e.g. "No space left on device".
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String { "\(path): \(operation): \(reason)" }
}
