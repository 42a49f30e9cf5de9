import SyncEngine
import CPosix
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

// Hand-written descriptor handling, and why: a drive is untrusted, and so is anyone who can write
// a folder a run creates. Every change a local endpoint makes (create, write, rename, link,
// chmod, chown, set times, unlink, rmdir) and every file it reads goes through the descriptor
// of the folder the entry lies in, opened beneath the endpoint's root without following a
// symbolic link anywhere on the way (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or a
// walk of O_NOFOLLOW | O_DIRECTORY opens), and then an *at call on the last component that
// does not follow it either. A folder swapped for a symlink mid-run is then an error, never a
// way out of the endpoint. (rsync came to the same design: trust the root the user named,
// resolve everything below it one held folder at a time.)
//
// The root is opened once, when first needed, and kept for the run: a drive's root beneath its
// mount point (the mount point is the user's, the folders on the drive are not), a local
// endpoint's root as the user wrote it. Folder descriptors are cached (a few dozen, shared by
// the workers, counted while in use): workers keep to one folder at a time, so a file costs
// about the system calls it cost when paths were used.

/// The folders of one local endpoint, as descriptors opened beneath its root.
final class FolderHandles: @unchecked Sendable {
    /// For a drive, its mount point; the root is `directory` beneath it.
    let mountPoint: String?
    /// The root: a path relative to `mountPoint` for a drive (empty: the mount point itself),
    /// else the root's absolute path.
    let directory: String

    private let lock = Lock()
    private var rootDescriptor: Int32 = -1
    private struct Slot {
        var path: FileName
        /// The path's hash: a lookup compares it first (paths of one tree share long prefixes
        /// and often their length, so comparing paths themselves cost a copy's run 10 %).
        var key: Int
        var fd: Int32
        var users: Int
        var stale: Bool
        var lastUse: UInt64
    }
    private var slots: [Slot] = []
    private var clock: UInt64 = 0
    private static let capacity = 32

    init(mountPoint: String?, directory: String) {
        self.mountPoint = mountPoint
        self.directory = directory
    }

    deinit {
        for slot in slots { close(slot.fd) }
        if rootDescriptor >= 0 { close(rootDescriptor) }
    }

    /// The root's descriptor, opened on first use and kept; nil when the root does not exist
    /// (yet). A root that is not a folder, or reached through a symlink on a drive, throws.
    func root(display: String) throws -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if rootDescriptor >= 0 { return rootDescriptor }
        let fd: Int32
        if let mountPoint {
            let base = open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if base < 0 { throw SystemError("open", path: mountPoint, errno: errno) }
            if directory.isEmpty {
                fd = base
            } else {
                fd = cposix_open_beneath(base, directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
                let code = errno
                close(base)
                if fd < 0 {
                    if code == ENOENT { return nil }
                    throw Self.openError(display: display, errno: code)
                }
            }
        } else {
            fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd < 0 {
                if errno == ENOENT { return nil }
                throw SystemError("open", path: display, errno: errno)
            }
        }
        rootDescriptor = fd
        return fd
    }

    /// The error for a folder that `cposix_open_beneath` could not open.
    static func openError(display: String, errno code: Int32) -> SystemError {
        if code == ELOOP || code == ENOTDIR || code == EXDEV {
            return SystemError("open", path: display, errno: code).symlinkOnTheWay
        }
        return SystemError("open", path: display, errno: code)
    }

    /// Runs `body` with the descriptor of the folder `path` (relative to the root; empty: the
    /// root), opened beneath the root without following symbolic links.
    func withFolder<T>(_ path: FileName, display: (FileName) -> String, _ body: (Int32) throws -> T) throws -> T {
        guard let root = try root(display: display(.empty)) else {
            throw SystemError("open", path: display(.empty), errno: ENOENT)
        }
        if path.isEmpty { return try body(root) }
        let fd = try acquire(path, root: root, display: display)
        defer { release(fd) }
        return try body(fd)
    }

    private func acquire(_ path: FileName, root: Int32, display: (FileName) -> String) throws -> Int32 {
        let key = path.hashValue
        lock.lock()
        clock &+= 1
        if let index = slots.firstIndex(where: { $0.key == key && !$0.stale && $0.path == path }) {
            slots[index].users += 1
            slots[index].lastUse = clock
            let fd = slots[index].fd
            lock.unlock()
            return fd
        }
        lock.unlock()
        let fd = path.withCString { cposix_open_beneath(root, $0, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0) }
        if fd < 0 { throw Self.openError(display: display(path), errno: errno) }
        lock.lock()
        defer { lock.unlock() }
        slots.append(Slot(path: path, key: key, fd: fd, users: 1, stale: false, lastUse: clock))
        if slots.count > Self.capacity {
            var oldest: Int?
            for index in slots.indices where slots[index].users == 0 {
                if oldest == nil || slots[index].lastUse < slots[oldest!].lastUse { oldest = index }
            }
            if let oldest {
                close(slots[oldest].fd)
                slots.remove(at: oldest)
            }
        }
        return fd
    }

    private func release(_ fd: Int32) {
        lock.lock()
        defer { lock.unlock() }
        guard let index = slots.firstIndex(where: { $0.fd == fd }) else { return }
        slots[index].users -= 1
        if slots[index].stale && slots[index].users == 0 {
            close(slots[index].fd)
            slots.remove(at: index)
        }
    }

    /// Forgets the descriptors of `path` and the folders below it (it was removed).
    func forget(_ path: FileName) {
        let prefix = path.bytes + [UInt8(ascii: "/")]
        lock.lock()
        defer { lock.unlock() }
        var index = 0
        while index < slots.count {
            if slots[index].path == path || slots[index].path.bytes.starts(with: prefix) {
                if slots[index].users == 0 {
                    close(slots[index].fd)
                    slots.remove(at: index)
                    continue
                }
                slots[index].stale = true
            }
            index += 1
        }
    }

    /// `cposix_open_beneath` (or, with `walk`, the fallback walk alone, as on kernels without
    /// openat2) of a folder: the descriptor, or -1 with errno set.
    static func openFolder(beneath dirfd: Int32, _ path: String, walk: Bool = false) -> Int32 {
        walk
            ? cposix_open_beneath_walk(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
            : cposix_open_beneath(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
    }

    /// Where `directory` beneath `mountPoint` cannot be used as a drive's root: nil when every
    /// existing component is a real folder (missing ones are fine: a destination creates them),
    /// else one line naming the component. `..` components are refused too.
    static func problem(mountPoint: String, directory: String) -> String? {
        let base = open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if base < 0 { return "\(mountPoint): \(String(cString: strerror(errno)))" }
        var current = base
        defer { close(current) }
        var walked = mountPoint == "/" ? "" : mountPoint
        for component in directory.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            walked += "/" + component
            if component == ".." { return "\(walked): the directory may not climb out with .." }
            var st = stat()
            if fstatat(current, String(component), &st, AT_SYMLINK_NOFOLLOW) != 0 {
                if errno == ENOENT { return nil }
                return "\(walked): \(String(cString: strerror(errno)))"
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR: break
            case S_IFLNK: return "\(walked) is a symbolic link on the drive; the directory must be a real folder on it"
            default: return "\(walked) is not a folder"
            }
            let next = openat(current, String(component), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 { return "\(walked): \(String(cString: strerror(errno)))" }
            close(current)
            current = next
        }
        return nil
    }

    /// Creates the missing folders of `directory` beneath the mount point, each relative to the
    /// one before and none through a symbolic link.
    func createRoot(display: String, mode: mode_t = 0o755) throws {
        guard let mountPoint else { return }
        var current = open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if current < 0 { throw SystemError("open", path: mountPoint, errno: errno) }
        defer { close(current) }
        for component in directory.split(separator: "/", omittingEmptySubsequences: true) {
            let name = String(component)
            if name == "." { continue }
            if name == ".." { throw SystemError("open", path: display, errno: EXDEV).symlinkOnTheWay }
            if mkdirat(current, name, mode) != 0 && errno != EEXIST {
                throw SystemError("mkdir", path: display, errno: errno)
            }
            let next = openat(current, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 { throw Self.openError(display: display, errno: errno) }
            close(current)
            current = next
        }
    }
}

extension SystemError {
    /// The error for a path with a symbolic link (or a non-folder) where a folder was expected.
    var symlinkOnTheWay: SystemError {
        var error = self
        error.operation = "open (a symbolic link or a non-folder is on the way; nothing is done through it)"
        return error
    }
}
