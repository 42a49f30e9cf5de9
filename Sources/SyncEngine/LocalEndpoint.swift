import CPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A folder on a local or mounted filesystem, worked on with the system's calls directly.
public final class LocalEndpoint: Endpoint, @unchecked Sendable {
    public let root: String
    public let capabilities: EndpointCapabilities
    private let rootBytes: [UInt8]

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

    public init(
        root: String, timePrecision: Int64 = 1, keepsModes: Bool = true, keepsSymlinks: Bool = true,
        timesAfterRename: Bool = false, keepsHardLinks: Bool = true, caseInsensitiveNames: Bool = false,
        serialWrites: Bool = false
    ) {
        self.timesAfterRename = timesAfterRename
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed
        self.rootBytes = Array(trimmed.utf8)
        self.capabilities = EndpointCapabilities(
            timePrecision: timePrecision, setsModificationTimes: true, keepsModes: keepsModes,
            keepsSymlinks: keepsSymlinks, isRemote: false, keepsHardLinks: keepsHardLinks,
            caseInsensitiveNames: caseInsensitiveNames,
            maximumPathLength: Int(PATH_MAX) - 2 - trimmed.utf8.count,  // the root, a slash, a NUL
            serialWrites: serialWrites)
    }

    public var displayName: String { root }

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

    public func rootState() throws -> RootState {
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return .missing }
            throw SystemError("open", path: root, errno: errno)
        }
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

    /// Checks that a file or folder just created lies on the drive; a failed call on a drive
    /// that went away becomes `EndpointGone`.
    func checkDevice(fd: Int32) throws {
        guard let requiredDevice else { return }
        var st = stat()
        if fstat(fd, &st) == 0 && UInt64(st.st_dev) == requiredDevice { return }
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
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 {
            if errno != ENOENT { listing.errors.append(SystemError("open", path: root, errno: errno)) }
            return listing
        }
        listDirectory(fd: fd, recursive: recursive, filter: filter, into: &listing)
        return listing
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
            if filter.ignore.matches(name) || (folder.mayHoldExcluded && filter.excludedPaths.contains(path)) {
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
            let mode = UInt32(st.st_mode) & 0o7777
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

    // MARK: reading

    public func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile {
        let fd = open(absolute(path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw SystemError("open", path: display(path), errno: errno) }
        return LocalFile(fd: fd, path: display(path))
    }

    final class LocalFile: ReadableFile {
        let fd: Int32
        let path: String
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

    /// The temporary name a file is written under, in the same folder as its final name.
    ///
    /// Two names must never share a temporary name, also where a filesystem sees no case
    /// (FAT, exFAT): two workers writing `A.txt` and `a.txt` through one temporary file
    /// corrupted the drive. A name of lowercase ASCII (nearly every name) is used as it is;
    /// any other gets `~`, a hash of its exact bytes and then the name: no name of the first
    /// kind starts with `~`, and the hash (keyed per process, so a drive cannot aim at it) tells
    /// names apart that differ in case. Deterministic within the process: the FTP endpoint
    /// finds a staged file by it again.
    static func temporaryName(for path: FileName) -> FileName {
        var name = ListingFilter.temporaryPrefix
        let last = path.lastComponent.bytes
        let plain =
            last.count <= 200 && last.first != UInt8(ascii: "~")
            && !last.contains { $0 >= 0x80 || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }
        if plain {
            name.append(contentsOf: last)
        } else {
            var hasher = Hasher()
            last.withUnsafeBytes { hasher.combine(bytes: $0) }
            let hash = UInt64(bitPattern: Int64(hasher.finalize()))
            name.append(UInt8(ascii: "~"))
            name.append(contentsOf: Array(String(hash, radix: 16).leftPadded(to: 16).utf8))
            name.append(UInt8(ascii: "-"))
            // Within NAME_MAX, cut where a UTF-8 character starts.
            var end = min(last.count, 180)
            while end < last.count && end > 0 && last[end] & 0xC0 == 0x80 { end -= 1 }
            name.append(contentsOf: last[..<end])
        }
        return path.parent.appending(FileName(bytes: name))
    }

    /// Whether `O_TMPFILE` works here; FUSE filesystems (fusefat, exfat-fuse) refuse it.
    private let anonymousFiles = ManagedFlag(true)

    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
    ) throws {
        try onDrive { try receiveOnDrive(path, from: file, entry: entry, replacing: replacing, progress: progress) }
    }

    private func receiveOnDrive(
        _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
    ) throws {
        // A new file: an anonymous file in the destination folder, linked under its final name
        // only when complete; one directory operation instead of two, and nothing left behind
        // by a crash. A replacement needs a rename over the old file anyway: a temporary name.
        if !replacing && anonymousFiles.value {
            let folder = absolute(path.parent)
            let fd = open(folder, O_WRONLY | cposix_o_tmpfile | O_CLOEXEC, 0o600)
            if fd >= 0 {
                try receiveAnonymous(fd: fd, path, from: file, entry: entry, progress: progress)
                return
            }
            if errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL {
                anonymousFiles.value = false
            } else {
                throw SystemError("create", path: display(path), errno: errno)
            }
        }
        try receiveNamed(path, from: file, entry: entry, progress: progress)
    }

    private func receiveAnonymous(
        fd: Int32, _ path: FileName, from file: ReadableFile, entry: Entry, progress: (Int64) -> Void
    ) throws {
        var open = true
        defer { if open { close(fd) } }
        try checkDevice(fd: fd)
        try copyContents(from: file, to: fd, path: path, expected: entry.size, progress: progress)
        try finishAttributes(fd: fd, path: path, entry: entry)
        try makeDurable(fd: fd, path: path)
        let procPath = "/proc/self/fd/\(fd)"
        let final = absolute(path)
        if linkat(AT_FDCWD, procPath, AT_FDCWD, final, AT_SYMLINK_FOLLOW) == 0 {
            open = false
            if close(fd) != 0 { throw SystemError("close", path: display(path), errno: errno) }
            return
        }
        guard errno == EEXIST else { throw SystemError("link", path: display(path), errno: errno) }
        // Replacing a file: link under the temporary name, then rename over the old one.
        let temporary = absolute(Self.temporaryName(for: path))
        unlink(temporary)
        if linkat(AT_FDCWD, procPath, AT_FDCWD, temporary, AT_SYMLINK_FOLLOW) != 0 {
            throw SystemError("link", path: display(path), errno: errno)
        }
        if rename(temporary, final) != 0 {
            let code = errno
            unlink(temporary)
            throw SystemError("rename", path: display(path), errno: code)
        }
    }

    private func applyMode(fd: Int32, path: FileName, entry: Entry) throws {
        if capabilities.keepsModes, let mode = entry.mode {
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
        _ path: FileName, from file: ReadableFile, entry: Entry, progress: (Int64) -> Void
    ) throws {
        let temporary = Self.temporaryName(for: path)
        let tmpPath = absolute(temporary)
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = open(tmpPath, flags, 0o600)
        if fd < 0 && errno == EEXIST {
            unlink(tmpPath)
            fd = open(tmpPath, flags, 0o600)
        }
        if fd < 0 { throw SystemError("create", path: display(temporary), errno: errno) }
        var succeeded = false
        defer {
            if !succeeded {
                close(fd)
                unlink(tmpPath)
            }
        }
        try checkDevice(fd: fd)
        try copyContents(from: file, to: fd, path: temporary, expected: entry.size, progress: progress)
        try applyMode(fd: fd, path: path, entry: entry)
        try makeDurable(fd: fd, path: temporary)
        let closed = close(fd)
        succeeded = true  // the descriptor is closed either way
        if closed != 0 {
            let code = errno
            unlink(tmpPath)
            throw SystemError("close", path: display(temporary), errno: code)
        }
        // The time is set after close: FUSE filesystems (fusefat, exfat-fuse) write cached data
        // at close and stamp the file with the current time then; fusefat also on rename.
        var times = Self.times(entry.mtime)
        if !timesAfterRename && utimensat(AT_FDCWD, tmpPath, &times, 0) != 0 {
            let code = errno
            unlink(tmpPath)
            throw SystemError("set time", path: display(path), errno: code)
        }
        let final = absolute(path)
        if rename(tmpPath, final) != 0 {
            let code = errno
            unlink(tmpPath)
            throw SystemError("rename", path: display(path), errno: code)
        }
        if timesAfterRename && utimensat(AT_FDCWD, final, &times, 0) != 0 {
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
            var offset = 0
            while offset < n {
                let written = write(fd, buffer.baseAddress! + offset, n - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SystemError("write", path: display(path), errno: errno)
                }
                offset += written
            }
            progress(Int64(n))
        }
    }

    public func createDirectory(_ path: FileName) throws {
        // Owner-writable until its contents are in; setFolderAttributes gives the final mode.
        let created = mkdir(absolute(path), 0o700) == 0
        if !created && errno != EEXIST {
            let error = SystemError("mkdir", path: display(path), errno: errno)
            throw gone(error) ?? error
        }
        if requiredDevice != nil {
            let fd = open(absolute(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd < 0 {
                let error = SystemError("open", path: display(path), errno: errno)
                throw gone(error) ?? error
            }
            defer { close(fd) }
            do { try checkDevice(fd: fd) } catch {
                if created { rmdir(absolute(path)) }  // made in the bare mount point: take it back
                throw error
            }
        }
    }

    public func createSymlink(_ path: FileName, entry: Entry) throws {
        let temporary = absolute(Self.temporaryName(for: path))
        unlink(temporary)
        let target = (entry.linkTarget?.bytes ?? []).map { CChar(bitPattern: $0) } + [0]
        if symlink(target, temporary) != 0 {
            throw SystemError("symlink", path: display(path), errno: errno)
        }
        var times = Self.times(entry.mtime)
        _ = utimensat(AT_FDCWD, temporary, &times, AT_SYMLINK_NOFOLLOW)
        if rename(temporary, absolute(path)) != 0 {
            let code = errno
            unlink(temporary)
            throw SystemError("rename", path: display(path), errno: code)
        }
    }

    public func remove(_ path: FileName, kind: EntryKind) throws {
        let result = kind == .directory ? rmdir(absolute(path)) : unlink(absolute(path))
        if result != 0 {
            let error = SystemError(kind == .directory ? "rmdir" : "unlink", path: display(path), errno: errno)
            if let gone = gone(error) { throw gone }  // not "already deleted": the drive is gone
            if error.errno != ENOENT { throw error }
        }
    }

    public func setFolderAttributes(_ path: FileName, entry: Entry) throws {
        let target = absolute(path)
        if capabilities.keepsModes, let mode = entry.mode {
            if chmod(target, mode_t(mode)) != 0 { throw SystemError("chmod", path: display(path), errno: errno) }
        }
        var times = Self.times(entry.mtime)
        if utimensat(AT_FDCWD, target, &times, 0) != 0 {
            throw SystemError("set time", path: display(path), errno: errno)
        }
    }

    public func flush() throws {
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open", path: root, errno: errno) }
        defer { close(fd) }
        if cposix_syncfs(fd) != 0 { throw SystemError("syncfs", path: root, errno: errno) }
    }
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
