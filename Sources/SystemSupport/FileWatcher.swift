#if canImport(Glibc)
    import Glibc
#endif

/// Calls `changed` when a file may have changed: written and closed, renamed onto (an editor's
/// or `plugsync add`'s atomic replace), created, deleted, or its attributes changed.
///
/// The file's folder is watched (inotify), not the file: a rename onto the name replaces the
/// inode a watch on the file would hold. Where the path is a symbolic link, the folder of the
/// file it points to is watched too. Events for other names in those folders are ignored.
/// Several events in a row (a write in pieces, then a rename) give one call, `settle` seconds
/// after the last. Hand-written over inotify: no package in this project's list watches files
/// on Linux without Foundation.
public final class FileWatcher: @unchecked Sendable {
    private let fd: Int32
    private var watches: [Int32: [UInt8]] = [:]  // watch descriptor -> the file name it is for
    private let changed: @Sendable () -> Void
    private let settle: Double
    private let lock = Condition()
    private var stopping = false
    private var running = false

    /// Throws (a `SystemError`) when inotify is unavailable or the folder cannot be watched.
    public init(path: String, settle: Double = 0.2, changed: @escaping @Sendable () -> Void) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0 { throw SystemError("inotify_init1", path: path, errno: errno) }
        self.changed = changed
        self.settle = settle
        var targets = [path]
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        if let resolved = realpath(path, &buffer) {
            let real = String(cString: resolved)
            if real != path { targets.append(real) }
        }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)
        for target in targets {
            let (folder, name) = Self.split(target)
            let wd = inotify_add_watch(fd, folder, mask)
            if wd < 0 {
                let code = errno
                close(fd)
                throw SystemError("watch", path: folder, errno: code)
            }
            watches[wd] = Array(name.utf8)
        }
    }

    deinit { close(fd) }

    /// Watches on a thread of its own until `stop`.
    public func start() {
        locked { running = true }
        startThread { [self] in
            loop()
            lock.lock()
            running = false
            lock.broadcast()
            lock.unlock()
        }
    }

    /// Ends the watching thread (within a tenth of a second) and waits for it.
    public func stop() {
        lock.lock()
        stopping = true
        while running { _ = lock.wait(until: Condition.now() + 1) }
        lock.unlock()
    }

    private var isStopping: Bool { locked { stopping } }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var due: Double?  // when to call `changed`, on the monotonic clock
        while !isStopping {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let wait = due.map { max(0, min(100, Int32(($0 - Condition.now()) * 1000))) } ?? 100
            let ready = poll(&pfd, 1, wait)
            if ready > 0 && readEvents(&buffer) { due = Condition.now() + settle }
            if let deadline = due, Condition.now() >= deadline {
                due = nil
                changed()
            }
        }
    }

    /// Reads what is pending; true when an event names a watched file.
    private func readEvents(_ buffer: inout [UInt8]) -> Bool {
        var relevant = false
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return relevant }
            var offset = 0
            let header = MemoryLayout<inotify_event>.size
            while offset + header <= n {
                let (wd, nameLength, overflow) = buffer.withUnsafeBytes { raw -> (Int32, Int, Bool) in
                    let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                    return (event.wd, Int(event.len), event.mask & UInt32(IN_Q_OVERFLOW) != 0)
                }
                let nameStart = offset + header
                let nameEnd = min(n, nameStart + nameLength)
                offset = nameStart + nameLength
                if overflow {  // events were lost: look anyway
                    relevant = true
                    continue
                }
                guard let wanted = watches[wd] else { continue }
                let name = buffer[nameStart..<nameEnd].prefix { $0 != 0 }
                if name.elementsEqual(wanted) { relevant = true }
            }
        }
    }

    private static func split(_ path: String) -> (folder: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let folder = String(path[..<slash])
        return (folder.isEmpty ? "/" : folder, String(path[path.index(after: slash)...]))
    }
}
