import CPosix
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A folder on a local or mounted filesystem, worked on with the system's calls directly.
/// Every call goes through a descriptor of the folder it concerns, opened beneath the root
/// without following symbolic links (Beneath.swift says why).
public final class LocalEndpoint: Endpoint, @unchecked Sendable {
    public let root: String
    public let capabilities: EndpointCapabilities
    private let rootBytes: [UInt8]
    let folders: FolderHandles
    /// Folders under `.plugsync-versions` made (or found) in this run: each is made once.
    let versionFolders = FolderSet()

    /// - Parameters:
    ///   - root: absolute path of the folder.
    ///   - timePrecision: the filesystem's mtime granularity in nanoseconds (FAT: 2 s).
    ///   - keepsModes: false on filesystems without Unix permissions (FAT, exFAT).
    /// FUSE filesystems (fusefat) stamp the current time on rename: times are set after it.
    private let timesAfterRename: Bool
    /// How each file's data reaches the disk before the file gets its final name.
    public enum FileSync: Sendable {
        /// Not at all: the page cache decides (local folders; a crash can leave a zero-length
        /// file under a final name, as with rsync or cp).
        case none
        /// The data is written and waited for (`sync_file_range`), no journal commit: enough
        /// where the journal commits a name only with or after the blocks it points to, which
        /// the data then already fill (ext3/ext4, XFS, btrfs).
        case data
        /// `fdatasync`: everywhere else (FAT, exFAT, FUSE).
        case full
    }
    /// For a drive, `.data` or `.full`. Without it, a drive pulled mid-run (ext4, delayed
    /// allocation) keeps names the journal committed for files whose data was never written:
    /// zero-length or truncated files under their final names.
    public var fileSync = FileSync.none
    /// For a drive: the `st_dev` of its filesystem when the run started. Every file and folder
    /// created is checked to lie on it, so a drive pulled mid-run never gets its remaining files
    /// written into the bare mount point underneath (`EndpointGone`).
    public var requiredDevice: UInt64?
    /// A removable drive is untrusted: the modes its listing gives lose setuid, setgid and
    /// write permission for group and others, and its files carry no owner to a destination.
    public var isRemovableDrive = false
    /// Permission bits a listing keeps.
    var modeMask: UInt32 { isRemovableDrive ? 0o1755 : 0o7777 }
    /// Whether entries read here give their owner and group to a destination that keeps modes:
    /// only when running as root (as `rsync -a` does), and never from a drive.
    var carriesOwners: Bool { !isRemovableDrive && Self.runningAs.uid == 0 }
    /// This process's effective user and group, read once.
    static let runningAs = Owner(uid: UInt32(geteuid()), gid: UInt32(getegid()))

    /// The process's umask, read from /proc (calling umask() to read it would change it for a
    /// moment under the other threads); 022 where it cannot be read.
    static let umaskBits: UInt32 = {
        guard let status = Posix.readFile("/proc/self/status", limit: 1 << 16) else { return 0o022 }
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("Umask:") {
            return UInt32(String(line.dropFirst("Umask:".count).filter { $0 != "\t" && $0 != " " }), radix: 8) ?? 0o022
        }
        return 0o022
    }()

    /// The mode a copy gets: the source's, or where the source has none (a server that lists
    /// no permissions) what a new file or folder gets here (0666 or 0777 less the umask);
    /// nil where this filesystem keeps no modes.
    private func mode(for entry: Entry) -> UInt32? {
        guard capabilities.keepsModes else { return nil }
        return entry.mode ?? ((entry.kind == .directory ? 0o777 : 0o666) & ~Self.umaskBits)
    }

    /// - Parameter mountPoint: for a folder on a drive, its mount point: the root is then
    ///   opened beneath it, and a symbolic link on the way there is refused.
    public init(
        root: String, timePrecision: Int64 = 1, keepsModes: Bool = true, keepsSymlinks: Bool = true,
        timesAfterRename: Bool = false, keepsHardLinks: Bool = true, caseInsensitiveNames: Bool = false,
        serialWrites: Bool = false, forbiddenNameBytes: [UInt8] = [], mountPoint: String? = nil
    ) {
        self.timesAfterRename = timesAfterRename
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed
        self.rootBytes = Array(trimmed.utf8)
        if let mountPoint {
            let base = mountPoint == "/" ? "" : mountPoint
            let below = trimmed.hasPrefix(base + "/") ? String(trimmed.dropFirst(base.count + 1)) : ""
            folders = FolderHandles(mountPoint: mountPoint, directory: below)
        } else {
            folders = FolderHandles(mountPoint: nil, directory: trimmed)
        }
        self.capabilities = EndpointCapabilities(
            timePrecision: timePrecision, setsModificationTimes: true, keepsModes: keepsModes,
            keepsSymlinks: keepsSymlinks, isRemote: false, keepsHardLinks: keepsHardLinks,
            caseInsensitiveNames: caseInsensitiveNames,
            maximumPathLength: Int(PATH_MAX) - 2 - trimmed.utf8.count,  // the root, a slash, a NUL
            serialWrites: serialWrites, forbiddenNameBytes: forbiddenNameBytes, keepsVersions: true,
            readsBack: true)
    }

    public var displayName: String { root }

    /// Why `directory` beneath a drive's `mountPoint` cannot be an endpoint's root (a symbolic
    /// link or a non-folder on the way, or `..`), or nil when it can (missing folders are fine).
    public static func problemBeneath(mountPoint: String, directory: String) -> String? {
        FolderHandles.problem(mountPoint: mountPoint, directory: directory)
    }

    /// The absolute path of a relative one, NUL-terminated.
    func absolute(_ path: FileName) -> [CChar] {
        var bytes = rootBytes
        if !path.isEmpty {
            if bytes.last != UInt8(ascii: "/") { bytes.append(UInt8(ascii: "/")) }
            bytes.append(contentsOf: path.bytes)
        }
        bytes.append(0)
        return bytes.map { CChar(bitPattern: $0) }
    }

    func display(_ path: FileName) -> String {
        path.isEmpty ? root : (root == "/" ? "/" : root + "/") + path.description
    }

    // MARK: state and listing

    /// A new descriptor of the root (its own offset, for reading it); nil when it is missing.
    private func openRootForReading() throws -> Int32? {
        guard let rootFD = try folders.root(display: root) else { return nil }
        let fd = openat(rootFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open", path: root, errno: errno) }
        return fd
    }

    public func rootState() throws -> RootState {
        guard let fd = try openRootForReading() else { return .missing }
        guard let dir = fdopendir(fd) else {
            let code = errno
            close(fd)
            throw SystemError("opendir", path: root, errno: code)
        }
        defer { closedir(dir) }
        while let item = readdir(dir) {
            let name = Self.name(of: item)
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            if name.starts(with: ListingFilter.temporaryPrefix) { continue }
            return .nonEmpty
        }
        return .empty
    }

    public func prepareRoot() throws {
        // On a drive, the deepest folder that exists must be on it: if the drive is gone, that
        // is the bare mount point (or above it), and nothing may be created there.
        if requiredDevice != nil {
            var existing = root
            var st = stat()
            while stat(existing, &st) != 0 {
                guard let slash = existing.lastIndex(of: "/"), slash != existing.startIndex else { break }
                existing = String(existing[..<slash])
            }
            if UInt64(st.st_dev) != requiredDevice {
                throw EndpointGone("\(existing) is no longer on the filesystem the run started on")
            }
        }
        if folders.mountPoint != nil {
            // On a drive, each folder is made beneath the one before, none through a symlink.
            try folders.createRoot(display: root)
            if let gone = goneError() { throw gone }
            return
        }
        var path: [UInt8] = []
        for component in rootBytes.split(separator: UInt8(ascii: "/")) {
            path.append(UInt8(ascii: "/"))
            path.append(contentsOf: component)
            let created = (path + [0]).withUnsafeBufferPointer {
                $0.baseAddress!.withMemoryRebound(to: CChar.self, capacity: $0.count) { mkdir($0, 0o755) }
            }
            if created != 0 && errno != EEXIST {
                throw SystemError("mkdir", path: String(decoding: path, as: UTF8.self), errno: errno)
            }
        }
        if let gone = goneError() { throw gone }
    }

    private func makeDurable(fd: Int32, path: FileName) throws {
        if fileSync == .none { return }
        while (fileSync == .data ? cposix_write_and_wait(fd) : fdatasync(fd)) != 0 {
            if errno == EINTR { continue }
            if errno == EINVAL || errno == ENOSYS || errno == ESPIPE { return }  // cannot: nothing to wait for
            throw SystemError("sync", path: display(path), errno: errno)
        }
    }

    // MARK: the drive's presence

    /// `EndpointGone` when the root no longer lies on `requiredDevice`.
    func goneError() -> EndpointGone? {
        guard let requiredDevice else { return nil }
        var st = stat()
        if stat(root, &st) == 0 && UInt64(st.st_dev) == requiredDevice { return nil }
        return EndpointGone("\(root) is no longer on the filesystem the run started on")
    }

    /// Checks that a file or folder just created lies on the drive, and that the drive is still
    /// where it was mounted: the descriptors held would go on writing to a drive unmounted
    /// lazily (`umount -l`) as if nothing happened. A failed call on a drive that went away
    /// becomes `EndpointGone`.
    func checkDevice(fd: Int32) throws {
        guard let requiredDevice else { return }
        var st = stat()
        if fstat(fd, &st) == 0 && UInt64(st.st_dev) == requiredDevice, goneError() == nil { return }
        throw goneError() ?? EndpointGone("a file under \(root) was created off it")
    }

    /// Runs `body`; when it fails on a drive that is gone, throws `EndpointGone` instead.
    func onDrive<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SystemError {
            throw gone(error) ?? error
        }
    }

    /// `EndpointGone` for a failed call on a drive that is gone: its root is elsewhere now, or
    /// the call failed the way only a vanished drive fails (EIO from a pulled drive that is still
    /// mounted, or a dying one; ENOTCONN from a FUSE drive whose daemon died: FUSE's attribute
    /// cache can keep answering `stat` for the root meanwhile).
    func gone(_ error: SystemError) -> EndpointGone? {
        if let gone = goneError() { return gone }
        guard requiredDevice != nil, [EIO, ENOTCONN, ECONNABORTED].contains(error.errno) else { return nil }
        return EndpointGone("\(error) (pulled out, or failing)")
    }

    public func list(recursive: Bool, filter: ListingFilter) -> Listing {
        var listing = Listing()
        let fd: Int32
        do {
            guard let opened = try openRootForReading() else { return listing }
            fd = opened
        } catch {
            listing.errors.append(error)
            return listing
        }
        listDirectory(fd: fd, recursive: recursive, filter: filter, into: &listing)
        return listing
    }

    /// Lists the versions folder, opened as `fd` (closed here), into `listing.entries`.
    func listVersionsFolder(fd: Int32, into listing: inout Listing) {
        listDirectory(fd: fd, recursive: true, filter: ListingFilter(), into: &listing)
    }

    @inline(__always)
    static func name(of item: UnsafeMutablePointer<dirent>) -> [UInt8] {
        withUnsafePointer(to: &item.pointee.d_name) { tuple in
            tuple.withMemoryRebound(to: UInt8.self, capacity: 256) { bytes in
                Array(
                    UnsafeBufferPointer(
                        start: bytes, count: strlen(UnsafeRawPointer(bytes).assumingMemoryBound(to: CChar.self))))
            }
        }
    }

    /// A folder being listed: its entries so far, and the subfolders still to descend into.
    private struct ListedFolder {
        // No path: it is made from the names on the way only when needed (a tree 10,000
        // folders deep would hold 100 MB of paths).
        /// Kept open while its subfolders are listed (they are opened relative to it); -1 when
        /// closed to stay within `openFolderLimit` (reopened through a subfolder's `..`).
        var fd: Int32
        /// Its device and inode, to check that a reopened `..` is this folder.
        var device: UInt64
        var inode: UInt64
        /// Whether an excluded path can lie in it (it is the root or on the way to one).
        var mayHoldExcluded: Bool
        var entries: [Entry] = []
        /// Indexes into `entries` of the subfolders, and how many of them are done.
        var subfolders: [Int] = []
        var done = 0
    }

    /// Open folder descriptors the listing keeps at most, however deep the tree: deeper, the
    /// outer ones are closed and reopened on the way back up.
    static let openFolderLimit = 64

    /// Lists the tree under `fd` (closed here) into `listing.entries`.
    ///
    /// Iterative, with its own stack: a recursive walk overflowed the thread's stack on a tree a
    /// few thousand folders deep, which anyone can put on a drive. Each folder is read whole
    /// (each entry `fstatat` relative to it) before its subfolders are opened relative to it.
    private func listDirectory(fd rootFD: Int32, recursive: Bool, filter: ListingFilter, into listing: inout Listing) {
        // The names of the folders on the stack, the root's empty: the relative path of the one
        // at `depth`, when needed, is made from them. (Apart from the stack, so that a closure
        // can hold them while a folder on the stack is changed, without a copy.)
        var names: [FileName] = [.empty]
        // Their paths' lengths in bytes. A folder whose path is longer than the endpoint can
        // work on (`maximumPathLength`) is not descended into: the planner stops at its entries
        // with one failure, and the tree held stays within what the system can reach.
        var lengths = [0]
        let limit = capabilities.maximumPathLength ?? Int.max
        func relative(_ names: [FileName], to depth: Int) -> FileName {
            var path = FileName.empty
            for name in names[1..<(depth + 1)] { path = path.appending(name) }
            return path
        }
        // Folders on the way to an excluded path: only in those is each entry's path looked up.
        let excludedFolders = Planner.ancestors(of: filter.excludedPaths)
        var links = HardLinkCollector()
        var st = stat()
        if fstat(rootFD, &st) != 0 {
            listing.errors.append(SystemError("stat", path: root, errno: errno))
            close(rootFD)
            return
        }
        var stack = [
            ListedFolder(
                fd: rootFD, device: UInt64(st.st_dev), inode: UInt64(st.st_ino),
                mayHoldExcluded: !filter.excludedPaths.isEmpty)
        ]
        readFolder(&stack[0], relative: { .empty }, recursive: recursive, filter: filter, links: &links, into: &listing)
        while !stack.isEmpty {
            let top = stack.count - 1
            if stack[top].done < stack[top].subfolders.count {
                let index = stack[top].subfolders[stack[top].done]
                stack[top].done += 1
                let name = stack[top].entries[index].name
                let length = (top == 0 ? 0 : lengths[top] + 1) + name.withBytes { $0.count }
                if length > limit {
                    stack[top].entries[index].children = nil
                    continue
                }
                var path: FileName { relative(names, to: top).appending(name) }
                let child = name.withCString {
                    openat(stack[top].fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
                if child < 0 || fstat(child, &st) != 0 {
                    listing.errors.append(SystemError("open", path: display(path), errno: errno))
                    if child >= 0 { close(child) }
                    stack[top].entries[index].children = nil
                    continue
                }
                if stack.count > Self.openFolderLimit {
                    let outer = stack.count - 1 - Self.openFolderLimit
                    if stack[outer].fd >= 0 {
                        close(stack[outer].fd)
                        stack[outer].fd = -1
                    }
                }
                stack.append(
                    ListedFolder(
                        fd: child, device: UInt64(st.st_dev), inode: UInt64(st.st_ino),
                        mayHoldExcluded: !excludedFolders.isEmpty && excludedFolders.contains(path)))
                let made = stack[top + 1].mayHoldExcluded ? path : nil
                names.append(name)
                lengths.append(length)
                readFolder(
                    &stack[top + 1], relative: { made ?? relative(names, to: top + 1) }, recursive: true,
                    filter: filter, links: &links, into: &listing)
                continue
            }
            // Done with this folder: its entries in name order go to its parent (or the root).
            var folder = stack.removeLast()
            names.removeLast()
            lengths.removeLast()
            folder.entries.sortByName()
            // Kept for the whole run: an exact-size copy drops the slack of appending (a quarter
            // of the listing's memory on average).
            let entries =
                folder.entries.count == folder.entries.capacity
                ? folder.entries : folder.entries.withUnsafeBufferPointer { Array($0) }
            guard let parent = stack.indices.last else {
                close(folder.fd)
                listing.entries = entries
                break
            }
            if stack[parent].fd < 0 {
                // Closed on the way down: back up through `..`, checked to be the same folder.
                let reopened = openat(folder.fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if reopened >= 0 && fstat(reopened, &st) == 0 && UInt64(st.st_dev) == stack[parent].device
                    && UInt64(st.st_ino) == stack[parent].inode
                {
                    stack[parent].fd = reopened
                } else {
                    let code = reopened < 0 ? errno : ENOENT
                    if reopened >= 0 { close(reopened) }
                    let where_ = parent == 0 ? root : display(relative(names, to: parent))
                    listing.errors.append(SystemError("reopen (moved while listed)", path: where_, errno: code))
                    // Its remaining subfolders are not listed.
                    for i in stack[parent].subfolders[stack[parent].done...] {
                        stack[parent].entries[i].children = nil
                    }
                    stack[parent].done = stack[parent].subfolders.count
                }
            }
            close(folder.fd)
            let index = stack[parent].subfolders[stack[parent].done - 1]
            stack[parent].entries[index].children = entries
        }
        listing.hardLinks = links.result()
    }

    /// Reads one folder's entries into `folder` (each stat'ed relative to it), noting its
    /// subfolders for the walk.
    private func readFolder(
        _ folder: inout ListedFolder, relative makeRelative: () -> FileName, recursive: Bool, filter: ListingFilter,
        links: inout HardLinkCollector,
        into listing: inout Listing
    ) {
        // Made when first needed (a temporary file, an error, a hard link, an excluded path).
        var madeRelative: FileName?
        func relative() -> FileName {
            if let madeRelative { return madeRelative }
            let made = makeRelative()
            madeRelative = made
            return made
        }
        // The folder's descriptor stays for its subfolders: the stream reads a duplicate.
        let streamFD = dup(folder.fd)
        guard streamFD >= 0, let dir = fdopendir(streamFD) else {
            listing.errors.append(SystemError("opendir", path: display(relative()), errno: errno))
            if streamFD >= 0 { close(streamFD) }
            return
        }
        defer { closedir(dir) }
        let fd = folder.fd
        var st = stat()
        while true {
            errno = 0
            guard let item = readdir(dir) else {
                if errno != 0 { listing.errors.append(SystemError("readdir", path: display(relative()), errno: errno)) }
                break
            }
            let nameBytes = Self.name(of: item)
            if nameBytes.count <= 2 && nameBytes.allSatisfy({ $0 == UInt8(ascii: ".") }) { continue }
            let name = FileName(bytes: nameBytes)
            // The relative path is built only when something needs it (most entries do not).
            var path: FileName { relative().appending(name) }
            if nameBytes.starts(with: ListingFilter.temporaryPrefix) {
                listing.temporaryFiles.append(path)
                continue
            }
            if filter.ignore.matches(name, path: path) || (folder.mayHoldExcluded && filter.excludedPaths.contains(path)) {
                continue
            }
            let status =
                item.pointee.d_name.0 == 0
                ? -1
                : withUnsafePointer(to: &item.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) {
                        fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW)
                    }
                }
            if status != 0 {
                if errno != ENOENT {  // vanished since readdir: not an error
                    listing.errors.append(SystemError("stat", path: display(path), errno: errno))
                }
                continue
            }
            let mtime = Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int64(st.st_mtim.tv_nsec))
            let mode = UInt32(st.st_mode) & modeMask
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                // Readable by all: no call. Otherwise ask the kernel (uid, groups, ACLs, capabilities).
                if st.st_mode & S_IROTH == 0 {
                    let readable = withUnsafePointer(to: &item.pointee.d_name) {
                        $0.withMemoryRebound(to: CChar.self, capacity: 256) {
                            faccessat(fd, $0, R_OK, AT_EACCESS) == 0
                        }
                    }
                    if !readable { listing.unreadableFiles.append(path) }
                }
                if st.st_nlink > 1 { links.add(path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) }
                folder.entries.append(
                    Entry(name: name, kind: .file, size: Int64(st.st_size), mtime: mtime, mode: mode))
            case S_IFDIR:
                var entry = Entry(name: name, kind: .directory, mtime: mtime, mode: mode)
                if recursive {
                    entry.children = []  // filled in when the walk gets to it
                    folder.subfolders.append(folder.entries.count)
                }
                folder.entries.append(entry)
            case S_IFLNK:
                var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
                let length = withUnsafePointer(to: &item.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { cName in
                        buffer.withUnsafeMutableBufferPointer {
                            readlinkat(
                                fd, cName,
                                UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count)
                        }
                    }
                }
                if length < 0 {
                    listing.errors.append(SystemError("readlink", path: display(path), errno: errno))
                    continue
                }
                folder.entries.append(
                    Entry(
                        name: name, kind: .symlink, mtime: mtime, mode: mode,
                        linkTarget: FileName(bytes: Array(buffer[..<length]))))
            default:
                continue  // sockets, fifos and devices are not synchronized
            }
        }
    }

    // MARK: descriptors

    /// Runs `body` with the descriptor of `path`'s folder, opened beneath the root without
    /// following a symbolic link, and `path`'s last component.
    private func inFolder<T>(of path: FileName, _ body: (Int32, UnsafePointer<CChar>) throws -> T) throws -> T {
        try folders.withFolder(path.parent, display: display) { dirfd in
            try path.lastComponent.withCString { try body(dirfd, $0) }
        }
    }

    // MARK: reading

    /// Opens a listed file without following a symbolic link and without blocking (a FIFO
    /// swapped in would), then checks it is still the regular file of the size listed.
    public func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile {
        let fd = try inFolder(of: path) { dirfd, name in
            openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        }
        if fd < 0 {
            if errno == ELOOP { throw Self.changed(display(path), now: "a symbolic link") }
            throw SystemError("open", path: display(path), errno: errno)
        }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let code = errno
            close(fd)
            throw SystemError("stat", path: display(path), errno: code)
        }
        if st.st_mode & S_IFMT != S_IFREG {
            close(fd)
            throw Self.changed(display(path), now: Self.kindName(st.st_mode))
        }
        if Int64(st.st_size) != entry.size {
            close(fd)
            throw SyncFailure(
                "\(display(path)): changed during the run (listed with \(entry.size) bytes, now \(st.st_size)); it is copied next time"
            )
        }
        let file = LocalFile(fd: fd, path: display(path))
        file.size = Int64(st.st_size)
        // Fewer blocks than the size holds: holes, kept as holes by the copy.
        file.sparse = Int64(st.st_blocks) * 512 < Int64(st.st_size)
        if carriesOwners { file.owner = Owner(uid: UInt32(st.st_uid), gid: UInt32(st.st_gid)) }
        return file
    }

    static func changed(_ place: String, now kind: String) -> SyncFailure {
        SyncFailure("\(place): changed during the run: listed as a file, now \(kind); left as it is")
    }

    static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a folder"
        case S_IFLNK: "a symbolic link"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR, S_IFBLK: "a device"
        default: "not a regular file"
        }
    }

    final class LocalFile: ReadableFile {
        let fd: Int32
        let path: String
        /// Size when opened (the listed one).
        var size: Int64 = 0
        /// Whether the file has holes.
        var sparse = false
        /// Owner and group for a destination to give the copy (`carriesOwners`), else nil.
        var owner: Owner?
        init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }
        var localDescriptor: Int32? { fd }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            while true {
                let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
                if n >= 0 { return n }
                if errno != EINTR { throw SystemError("read", path: path, errno: errno) }
            }
        }
        func close() { _ = Glibc.close(fd) }
    }

    // MARK: writing

    /// Whether `O_TMPFILE` works here; FUSE filesystems (fusefat, exfat-fuse) refuse it.
    private let anonymousFiles = ManagedFlag(true)

    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
    ) throws {
        try onDrive {
            // The folder's descriptor is held for the whole file: every call is relative to it.
            try folders.withFolder(path.parent, display: display) { dirfd in
                try receiveOnDrive(path, in: dirfd, from: file, entry: entry, replacing: replacing, progress: progress)
            }
        }
    }

    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, keepingVersion version: FileName, of old: Entry,
        progress: (Int64) -> Void
    ) throws {
        try onDrive {
            try folders.withFolder(path.parent, display: display) { dirfd in
                try receiveNamed(path, in: dirfd, from: file, entry: entry, version: (version, old), progress: progress)
            }
        }
    }

    private func receiveOnDrive(
        _ path: FileName, in dirfd: Int32, from file: ReadableFile, entry: Entry, replacing: Bool,
        progress: (Int64) -> Void
    ) throws {
        // A new file: an anonymous file in the destination folder, linked under its final name
        // only when complete; one directory operation instead of two, and nothing left behind
        // by a crash. A replacement needs a rename over the old file anyway: a temporary name.
        if !replacing && anonymousFiles.value {
            let fd = openat(dirfd, ".", O_WRONLY | cposix_o_tmpfile | O_CLOEXEC, 0o600)
            if fd >= 0 {
                try receiveAnonymous(fd: fd, path, in: dirfd, from: file, entry: entry, progress: progress)
                return
            }
            if errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL {
                anonymousFiles.value = false
            } else {
                throw SystemError("create", path: display(path), errno: errno)
            }
        }
        try receiveNamed(path, in: dirfd, from: file, entry: entry, progress: progress)
    }

    private func receiveAnonymous(
        fd: Int32, _ path: FileName, in dirfd: Int32, from file: ReadableFile, entry: Entry,
        progress: (Int64) -> Void
    ) throws {
        var open = true
        defer { if open { close(fd) } }
        try checkDevice(fd: fd)
        try copyContents(from: file, to: fd, path: path, expected: entry.size, progress: progress)
        try applyOwner(fd: fd, path: path, from: file)
        try finishAttributes(fd: fd, path: path, entry: entry)
        try makeDurable(fd: fd, path: path)
        let procPath = "/proc/self/fd/\(fd)"
        if let check = file.writeCheck {
            // Unnamed still: read through a descriptor of its own (this one only writes).
            try readBack(Glibc.open(procPath, O_RDONLY | O_CLOEXEC), path: path, check: check)
        }
        let name = path.lastComponent
        let linked = name.withCString { linkat(AT_FDCWD, procPath, dirfd, $0, AT_SYMLINK_FOLLOW) }
        if linked == 0 {
            open = false
            if close(fd) != 0 { throw SystemError("close", path: display(path), errno: errno) }
            return
        }
        guard errno == EEXIST else { throw SystemError("link", path: display(path), errno: errno) }
        // Replacing a file: link under the temporary name, then rename over the old one.
        let temporary = ListingFilter.temporaryName(for: path).lastComponent
        try temporary.withCString { tmp in
            unlinkat(dirfd, tmp, 0)
            if linkat(AT_FDCWD, procPath, dirfd, tmp, AT_SYMLINK_FOLLOW) != 0 {
                throw SystemError("link", path: display(path), errno: errno)
            }
            if name.withCString({ renameat(dirfd, tmp, dirfd, $0) }) != 0 {
                let code = errno
                unlinkat(dirfd, tmp, 0)
                throw SystemError("rename", path: display(path), errno: code)
            }
        }
    }

    /// Reads a file just written back through `fd` (a new descriptor of it, closed here), from
    /// the disk: what is dirty is written out and the file's pages dropped from the page cache
    /// first (`WriteCheck.dropCachedPages`), so a block the drive stored wrongly, or data that
    /// never reached it, shows. The one place a local folder or a drive reads back
    /// (`verify: true`), for every way it writes.
    private func readBack(_ fd: Int32, path: FileName, check: WriteCheck) throws {
        if fd < 0 { throw ReadBackFailed("\(SystemError("open", path: display(path), errno: errno))") }
        let copy = LocalFile(fd: fd, path: display(path))
        defer { copy.close() }
        WriteCheck.dropCachedPages(fd)
        try check.compare(readBack: copy)
    }

    /// Gives a file the source file's owner and group (`LocalFile.owner`), where modes are kept.
    /// Before the mode: a change of owner clears setuid and setgid.
    private func applyOwner(fd: Int32, path: FileName, from file: ReadableFile) throws {
        let local = (file as? LocalFile) ?? ((file as? CheckedFile)?.original as? LocalFile)
        guard capabilities.keepsModes, let owner = local?.owner else { return }
        // A new file is ours already: no call for the common case of root's own files.
        if owner == Self.runningAs { return }
        if fchown(fd, owner.uid, owner.gid) != 0 { throw SystemError("chown", path: display(path), errno: errno) }
    }

    private func applyMode(fd: Int32, path: FileName, entry: Entry) throws {
        if let mode = mode(for: entry) {
            if fchmod(fd, mode_t(mode)) != 0 { throw SystemError("chmod", path: display(path), errno: errno) }
        }
    }

    private func finishAttributes(fd: Int32, path: FileName, entry: Entry) throws {
        try applyMode(fd: fd, path: path, entry: entry)
        var times = Self.times(entry.mtime)
        if futimens(fd, &times) != 0 { throw SystemError("set time", path: display(path), errno: errno) }
    }

    /// The portable way: a temporary name in the destination folder, renamed when complete.
    private func receiveNamed(
        _ path: FileName, in dirfd: Int32, from file: ReadableFile, entry: Entry,
        version: (path: FileName, old: Entry)? = nil, progress: (Int64) -> Void
    ) throws {
        let temporary = ListingFilter.temporaryName(for: path)
        let tmpName = temporary.lastComponent
        let name = path.lastComponent
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = tmpName.withCString { openat(dirfd, $0, flags, 0o600) }
        if fd < 0 && errno == EEXIST {
            _ = tmpName.withCString { unlinkat(dirfd, $0, 0) }
            fd = tmpName.withCString { openat(dirfd, $0, flags, 0o600) }
        }
        if fd < 0 { throw SystemError("create", path: display(temporary), errno: errno) }
        func removeTemporary() { _ = tmpName.withCString { unlinkat(dirfd, $0, 0) } }
        var succeeded = false
        defer {
            if !succeeded {
                close(fd)
                removeTemporary()
            }
        }
        try checkDevice(fd: fd)
        try copyContents(from: file, to: fd, path: temporary, expected: entry.size, progress: progress)
        try applyOwner(fd: fd, path: path, from: file)
        try applyMode(fd: fd, path: path, entry: entry)
        try makeDurable(fd: fd, path: temporary)
        let closed = close(fd)
        succeeded = true  // the descriptor is closed either way
        if closed != 0 {
            let code = errno
            removeTemporary()
            throw SystemError("close", path: display(temporary), errno: code)
        }
        // The time is set after close: FUSE filesystems (fusefat, exfat-fuse) write cached data
        // at close and stamp the file with the current time then; fusefat also on rename.
        var times = Self.times(entry.mtime)
        if !timesAfterRename && tmpName.withCString({ utimensat(dirfd, $0, &times, AT_SYMLINK_NOFOLLOW) }) != 0 {
            let code = errno
            removeTemporary()
            throw SystemError("set time", path: display(path), errno: code)
        }
        if let check = file.writeCheck {
            do {
                try readBack(
                    tmpName.withCString { openat(dirfd, $0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }, path: temporary,
                    check: check)
            } catch {
                removeTemporary()
                throw error
            }
        }
        if let version {
            do {
                try keepVersion(path, in: dirfd, at: version.path, old: version.old, link: capabilities.keepsHardLinks)
            } catch {
                removeTemporary()
                throw error
            }
        }
        let renamed = tmpName.withCString { tmp in name.withCString { renameat(dirfd, tmp, dirfd, $0) } }
        if renamed != 0 {
            let code = errno
            removeTemporary()
            throw SystemError("rename", path: display(path), errno: code)
        }
        if timesAfterRename && name.withCString({ utimensat(dirfd, $0, &times, AT_SYMLINK_NOFOLLOW) }) != 0 {
            throw SystemError("set time", path: display(path), errno: errno)
        }
    }

    /// atime = now (what a fresh copy has anyway), mtime = the source's. Not UTIME_OMIT for
    /// atime: fusefat then sets both to now.
    static func times(_ mtime: Timestamp) -> [timespec] {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return [now, timespecOf(mtime)]
    }

    static func timespecOf(_ t: Timestamp) -> timespec {
        timespec(tv_sec: Int(t.seconds), tv_nsec: Int(t.nanoseconds))
    }

    private func copyContents(
        from file: ReadableFile, to fd: Int32, path: FileName, expected: Int64, progress: (Int64) -> Void
    ) throws {
        if let local = file as? LocalFile, local.sparse,
            try copySparse(from: local.fd, size: local.size, to: fd, path: path, progress: progress)
        {
            return
        }
        if let input = file.localDescriptor {
            var useCopyRange = true
            var copied: Int64 = 0
            while useCopyRange {
                let n = cposix_copy_file_range(input, fd, 1 << 30)
                if n > 0 {
                    progress(Int64(n))
                    copied += Int64(n)
                    if copied == expected { return }  // the listed size: no call just to read the end
                    continue
                }
                if n == 0 { return }
                switch errno {
                case EINTR: continue
                case EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, EPERM, EBADF:
                    guard copied == 0 else { throw SystemError("write", path: display(path), errno: errno) }
                    useCopyRange = false  // e.g. FUSE or another filesystem type: fall back to read/write
                default:
                    throw SystemError("write", path: display(path), errno: errno)
                }
            }
        }
        let size = 1 << 18
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 4096)
        defer { buffer.deallocate() }
        while true {
            let n = try file.read(into: buffer)
            if n == 0 { return }
            try writeAll(fd, buffer.baseAddress!, n, at: nil, path: path)
            progress(Int64(n))
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int, at offset: Int64?, path: FileName)
        throws
    {
        var done = 0
        while done < count {
            let written =
                offset.map { pwrite(fd, bytes + done, count - done, off_t($0) + off_t(done)) }
                ?? write(fd, bytes + done, count - done)
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path: display(path), errno: errno)
            }
            done += written
        }
    }

    /// Copies only the data of a file with holes (SEEK_DATA / SEEK_HOLE) and sets the size: the
    /// holes stay holes where the destination can hold them, so a file of 2 GiB of nothing
    /// costs no space. False when the source cannot tell its holes (nothing written then).
    private func copySparse(
        from input: Int32, size: Int64, to fd: Int32, path: FileName, progress: (Int64) -> Void
    ) throws -> Bool {
        var offset: Int64 = 0
        var buffer: UnsafeMutableRawBufferPointer?
        defer { buffer?.deallocate() }
        while offset < size {
            let data = Int64(lseek(input, off_t(offset), cposix_seek_data))
            if data < 0 {
                if errno == ENXIO { break }  // only a hole from here to the end
                if offset == 0 { return false }
                throw SystemError("read", path: display(path), errno: errno)
            }
            if data >= size { break }
            var hole = Int64(lseek(input, off_t(data), cposix_seek_hole))
            if hole < 0 { throw SystemError("read", path: display(path), errno: errno) }
            hole = min(hole, size)
            if data > offset { progress(data - offset) }
            var at = data
            while at < hole {
                let n = buffer == nil ? cposix_copy_file_range_at(input, at, fd, Int(hole - at)) : -1
                if n > 0 {
                    at += Int64(n)
                    progress(Int64(n))
                    continue
                }
                if n == 0 { break }  // shorter than listed: the size below still holds
                if buffer == nil && errno == EINTR { continue }
                if buffer == nil && ![EXDEV, EINVAL, ENOSYS, EOPNOTSUPP, EPERM, EBADF].contains(errno) {
                    throw SystemError("write", path: display(path), errno: errno)
                }
                // copy_file_range cannot here (FUSE, another filesystem type): pread/pwrite.
                if buffer == nil { buffer = .allocate(byteCount: 1 << 18, alignment: 4096) }
                let read = pread(input, buffer!.baseAddress, min(buffer!.count, Int(hole - at)), off_t(at))
                if read < 0 {
                    if errno == EINTR { continue }
                    throw SystemError("read", path: display(path), errno: errno)
                }
                if read == 0 { break }
                try writeAll(fd, buffer!.baseAddress!, read, at: at, path: path)
                at += Int64(read)
                progress(Int64(read))
            }
            offset = hole
        }
        if size > offset { progress(size - offset) }
        if ftruncate(fd, off_t(size)) != 0 { throw SystemError("write", path: display(path), errno: errno) }
        return true
    }

    public func createDirectory(_ path: FileName) throws {
        try onDrive {
            try inFolder(of: path) { dirfd, name in
                // Owner-writable until its contents are in; setFolderAttributes gives the final mode.
                let created = mkdirat(dirfd, name, 0o700) == 0
                if !created && errno != EEXIST { throw SystemError("mkdir", path: display(path), errno: errno) }
                if requiredDevice != nil {
                    let fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    if fd < 0 { throw SystemError("open", path: display(path), errno: errno) }
                    defer { close(fd) }
                    do { try checkDevice(fd: fd) } catch {
                        if created { unlinkat(dirfd, name, AT_REMOVEDIR) }  // made off the drive: take it back
                        throw error
                    }
                }
            }
        }
    }

    public func createSymlink(_ path: FileName, entry: Entry) throws {
        let temporary = ListingFilter.temporaryName(for: path).lastComponent
        let target = (entry.linkTarget?.bytes ?? []).map { CChar(bitPattern: $0) } + [0]
        try inFolder(of: path) { dirfd, name in
            try temporary.withCString { tmp in
                unlinkat(dirfd, tmp, 0)
                if symlinkat(target, dirfd, tmp) != 0 {
                    throw SystemError("symlink", path: display(path), errno: errno)
                }
                var times = Self.times(entry.mtime)
                _ = utimensat(dirfd, tmp, &times, AT_SYMLINK_NOFOLLOW)
                if renameat(dirfd, tmp, dirfd, name) != 0 {
                    let code = errno
                    unlinkat(dirfd, tmp, 0)
                    throw SystemError("rename", path: display(path), errno: code)
                }
            }
        }
    }

    public func remove(_ path: FileName, kind: EntryKind) throws {
        do {
            try inFolder(of: path) { dirfd, name in
                if unlinkat(dirfd, name, kind == .directory ? AT_REMOVEDIR : 0) != 0 {
                    var code = errno
                    // fusefat answers EPERM for a folder that still holds entries: a look inside
                    // tells that from a real refusal.
                    if kind == .directory && code == EPERM && Self.holdsEntries(dirfd, name) { code = ENOTEMPTY }
                    throw SystemError(kind == .directory ? "rmdir" : "unlink", path: display(path), errno: code)
                }
            }
            if kind == .directory { folders.forget(path) }
        } catch let error as SystemError {
            if let gone = gone(error) { throw gone }  // not "already deleted": the drive is gone
            if error.errno != ENOENT { throw error }
        }
    }

    public func owner(of path: FileName) -> Owner? {
        guard carriesOwners else { return nil }
        var st = stat()
        let found = try? inFolder(of: path) { dirfd, name in fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 }
        return found == true ? Owner(uid: UInt32(st.st_uid), gid: UInt32(st.st_gid)) : nil
    }

    /// Through the parent folder's descriptor, never following a link: a symbolic link gets
    /// the owner itself. A folder gets it after its contents are in (`setFolderAttributes`),
    /// so that nobody else can write into it while the run fills it.
    public func setOwner(_ path: FileName, _ owner: Owner) throws {
        guard capabilities.keepsModes, Self.runningAs.uid == 0 else { return }
        try inFolder(of: path) { dirfd, name in
            var st = stat()
            if fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid == owner.uid && st.st_gid == owner.gid {
                return
            }
            if fchownat(dirfd, name, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) != 0 {
                throw SystemError("chown", path: display(path), errno: errno)
            }
        }
    }

    /// Whether the folder `name` in `dirfd` holds an entry (without following a link).
    private static func holdsEntries(_ dirfd: Int32, _ name: UnsafePointer<CChar>) -> Bool {
        let fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        guard let dir = fdopendir(fd) else {
            close(fd)
            return false
        }
        defer { closedir(dir) }
        while let item = readdir(dir) {
            let first = item.pointee.d_name.0
            let second = item.pointee.d_name.1
            let dot = CChar(UInt8(ascii: "."))
            if first == dot && (second == 0 || (second == dot && item.pointee.d_name.2 == 0)) { continue }
            return true
        }
        return false
    }

    public func setFolderAttributes(_ path: FileName, entry: Entry) throws {
        // Through the folder's own descriptor (usually still open from writing its files).
        do {
            try folders.withFolder(path, display: display) { fd in
                try setAttributes(fd: fd, path: path, entry: entry)
            }
        } catch let error as SystemError where error.errno == EACCES {
            // A folder this process may not read (mode 0 on a second run as a user): a
            // descriptor that only names it, and the calls through /proc.
            let fd = try inFolder(of: path) { dirfd, name in
                openat(dirfd, name, cposix_o_path | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if fd < 0 { throw Self.openErrorOrChanged(display(path), errno: errno) }
            defer { close(fd) }
            let proc = "/proc/self/fd/\(fd)"
            if let mode = mode(for: entry), chmod(proc, mode_t(mode)) != 0 {
                throw SystemError("chmod", path: display(path), errno: errno)
            }
            var times = Self.times(entry.mtime)
            if utimensat(AT_FDCWD, proc, &times, 0) != 0 {
                throw SystemError("set time", path: display(path), errno: errno)
            }
        }
    }

    static func openErrorOrChanged(_ place: String, errno code: Int32) -> SystemError {
        FolderHandles.openError(display: place, errno: code)
    }

    private func setAttributes(fd: Int32, path: FileName, entry: Entry) throws {
        if let mode = mode(for: entry) {
            if fchmod(fd, mode_t(mode)) != 0 { throw SystemError("chmod", path: display(path), errno: errno) }
        }
        var times = Self.times(entry.mtime)
        if futimens(fd, &times) != 0 { throw SystemError("set time", path: display(path), errno: errno) }
    }

    public func flush() throws {
        guard let fd = try folders.root(display: root) else {
            throw SystemError("open", path: root, errno: ENOENT)
        }
        if cposix_syncfs(fd) != 0 { throw SystemError("syncfs", path: root, errno: errno) }
    }
}

/// A set of folders that several threads look up and add to.
final class FolderSet: @unchecked Sendable {
    private var paths = Set<FileName>()
    private let lock = Lock()

    func contains(_ path: FileName) -> Bool { lock.withLock { paths.contains(path) } }
    func insert(_ path: FileName) { _ = lock.withLock { paths.insert(path) } }
}

/// A flag that several threads read and that flips at most once.
final class ManagedFlag: @unchecked Sendable {
    private let lock = Lock()
    private var stored: Bool
    init(_ value: Bool) { stored = value }
    var value: Bool {
        get {
            lock.lock()
            defer { lock.unlock() }
            return stored
        }
        set {
            lock.lock()
            stored = newValue
            lock.unlock()
        }
    }
}
