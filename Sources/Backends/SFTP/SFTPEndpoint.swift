import Dispatch
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A folder on an SSH server, through its SFTP subsystem (libssh2), as a source or a
/// destination.
///
/// Listing: each folder's listing gives every entry's kind, size, mode and exact time (a
/// symbolic link's target is read apart): no request per file.
/// Writes: a file is uploaded under its temporary name, given its mode and time before it is
/// closed, and renamed into place. An SFTP server of protocol version 3 (OpenSSH) renames onto
/// no existing name: a replaced file is moved aside just before the rename (and put back if the
/// rename fails), so for that instant neither version is under the name.
/// Symbolic links are kept: made under the temporary name and renamed the same way.
/// Host keys: the server's key must be in the known_hosts file; an unknown or changed key
/// refuses the connection. Connections: a pool, one per worker, kept open for the whole run.
public final class SFTPEndpoint: Endpoint, @unchecked Sendable {
    public let options: SFTPOptions
    /// The synchronized folder, relative to the login folder ("" for it).
    public let root: FileName
    public let displayName: String
    private let pool: SFTPPool
    /// Folders under `.plugsync-versions` made (or found) in this run.
    private let versionFolders = VersionFolderSet()

    public init(options: SFTPOptions, directory: String, connections: Int) {
        self.options = options
        self.root = FileName(directory.split(separator: "/").joined(separator: "/"))
        self.displayName = options.display + "/" + root.description
        self.pool = SFTPPool(options: options, size: max(1, connections))
    }

    public var capabilities: EndpointCapabilities {
        EndpointCapabilities(
            timePrecision: 1_000_000_000, setsModificationTimes: true, keepsModes: true, keepsSymlinks: true,
            isRemote: true, keepsVersions: true, readsBack: true)
    }

    /// Logs in (one connection; the host key is checked). Throws `SFTPError`.
    public func connect() throws {
        try pool.with { _ in }
    }

    // MARK: state and listing

    public func rootState() throws -> RootState {
        do {
            return try pool.with { try $0.holdsEntries(root) } ? .nonEmpty : .empty
        } catch let error as SFTPError where error.kind == .notFound {
            return .missing
        }
    }

    public func prepareRoot() throws {
        if root.isEmpty { return }
        var folders: [FileName] = []
        var folder = root
        while !folder.isEmpty {
            folders.append(folder)
            folder = folder.parent
        }
        try pool.with { connection in
            // Each folder on the way, from the top; one that exists fails and is passed over.
            for folder in folders.reversed() {
                do {
                    try connection.makeDirectory(folder)
                } catch let error as SFTPError where error.kind != .connection {
                    continue
                }
            }
            _ = try connection.holdsEntries(root)
        }
    }

    public func list(recursive: Bool, filter: ListingFilter) -> Listing {
        // A destination not made yet holds nothing (a missing source is refused before).
        listTree(.empty, recursive: recursive, filter)
    }

    /// The listing of `top` (relative to the root; nothing when it is missing) and, when
    /// `recursive`, of every folder below it. The first folders are read on one connection,
    /// until there are enough to share; then they are read several at once, each on a
    /// connection of the pool (a small tree opens no other connection). A folder below the top
    /// that cannot be listed is an error of the listing, not of the run; one gone since its
    /// parent was listed is left out.
    private func listTree(_ top: FileName, recursive: Bool, _ filter: ListingFilter) -> Listing {
        var listing = Listing()
        var folders: [FileName: [Entry]] = [:]
        var gone = Set<FileName>()
        var pending: [FileName] = []
        /// Takes in a folder's listing; returns the error that ends the whole listing, if any.
        func absorb(_ result: Result<FolderListing, Error>, _ folder: FileName) -> Error? {
            switch result {
            case .success(let part):
                folders[folder] = part.entries
                listing.temporaryFiles += part.temporaryFiles
                listing.errors += part.errors
                if recursive {
                    for entry in part.entries where entry.kind == .directory {
                        pending.append(folder.appending(entry.name))
                    }
                }
            case .failure(let error as SFTPError) where error.kind == .notFound: gone.insert(folder)
            case .failure(let error as SFTPError) where error.kind != .connection: listing.errors.append(error)
            case .failure(let error): return error
            }
            return nil
        }
        do {
            try pool.with { connection in
                let part = try folderListing(top, filter, connection)
                _ = absorb(.success(part), top)
                var next = 0
                while next < pending.count && pending.count - next < 2 * pool.size {
                    let folder = pending[next]
                    next += 1
                    if let error = absorb(Result { try folderListing(folder, filter, connection) }, folder) {
                        throw error
                    }
                }
                pending.removeFirst(next)
            }
        } catch let error as SFTPError where error.kind == .notFound && folders[top] == nil {
            return Listing()
        } catch {
            listing.errors.append(error)
            return listing
        }
        if !pending.isEmpty {
            let condition = Condition()
            var busy = 0
            var failure: Error?
            runOnThreads(min(pool.size, pending.count)) { _ in
                do {
                    try pool.with { connection in
                        condition.lock()
                        defer { condition.unlock() }
                        while failure == nil {
                            guard let folder = pending.popLast() else {
                                if busy == 0 { break }
                                _ = condition.wait(until: Condition.now() + 1)
                                continue
                            }
                            busy += 1
                            condition.unlock()
                            let result = Result { try folderListing(folder, filter, connection) }
                            condition.lock()
                            busy -= 1
                            if let error = absorb(result, folder) { failure = error }
                            condition.broadcast()
                        }
                    }
                } catch {
                    condition.lock()
                    if failure == nil { failure = error }
                    condition.broadcast()
                    condition.unlock()
                }
            }
            if let failure {
                listing.errors.append(failure)
                return listing
            }
        }
        func tree(_ folder: FileName) -> [Entry] {
            var entries = folders[folder] ?? []
            if recursive {
                entries.removeAll { $0.kind == .directory && gone.contains(folder.appending($0.name)) }
                for index in entries.indices where entries[index].kind == .directory {
                    let path = folder.appending(entries[index].name)
                    if folders[path] != nil { entries[index].children = tree(path) }
                }
            }
            return entries
        }
        listing.entries = tree(top)
        return listing
    }

    /// One folder's entries (sorted by name), its temporary files and what could not be read.
    private struct FolderListing {
        var entries: [Entry] = []
        var temporaryFiles: [FileName] = []
        var errors: [Error] = []
    }

    /// The entries of `folder` (relative to the root), from its listing alone but for a symbolic
    /// link's target.
    private func folderListing(_ folder: FileName, _ filter: ListingFilter, _ connection: SFTPConnection) throws
        -> FolderListing
    {
        let listed = try connection.listing(absolute(folder))
        var part = FolderListing()
        var unreadable = 0
        part.entries.reserveCapacity(listed.count)
        for item in listed {
            guard !item.name.isEmpty, !item.name.contains(UInt8(ascii: "/")), !item.name.contains(0) else {
                unreadable += 1
                continue
            }
            let name = FileName(bytes: item.name)
            let path = folder.appending(name)
            if item.name.starts(with: ListingFilter.temporaryPrefix) {
                if item.attributes.kind == .file { part.temporaryFiles.append(path) }
                continue
            }
            var attributes = item.attributes
            guard attributes.kind != nil else {
                unreadable += 1
                continue
            }
            if filter.ignore.matches(name, path: path) || filter.excludedPaths.contains(path) { continue }
            do {
                // A server that lists no time: the entry's own stat.
                if attributes.mtime == nil { attributes = try connection.stat(absolute(path)) }
                guard let kind = attributes.kind else { continue }
                var entry = Entry(
                    name: name, kind: kind, size: attributes.size, mtime: Timestamp(seconds: attributes.mtime ?? 0),
                    mode: attributes.mode)
                if kind == .symlink { entry.linkTarget = FileName(bytes: try connection.readLink(absolute(path))) }
                part.entries.append(entry)
            } catch let error as SFTPError where error.kind == .notFound {
                continue  // gone since the listing: left out
            }
        }
        if unreadable > 0 {
            part.errors.append(
                SFTPError(
                    .refused, "\(display(folder)): \(unreadable) entries of the listing are neither files nor folders"))
        }
        part.entries.sort { $0.name < $1.name }
        return part
    }

    // MARK: reading

    public func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile {
        try SFTPDownload(pool: pool, path: absolute(path), size: entry.kind == .file ? entry.size : nil)
    }

    /// The first `limit` bytes of a file (a File Check).
    public func contents(of path: FileName, limit: Int) throws -> [UInt8] {
        let file = try SFTPDownload(pool: pool, path: absolute(path), size: nil)
        defer { file.close() }
        var data = [UInt8](repeating: 0, count: max(0, limit))
        var count = 0
        while count < data.count {
            let n = try data.withUnsafeMutableBytes {
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[count...]))
            }
            if n == 0 { break }
            count += n
        }
        return Array(data.prefix(count))
    }

    // MARK: writing

    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
    ) throws {
        let temporary = absolute(ListingFilter.temporaryName(for: path))
        do {
            try pool.with { connection in
                try upload(path, to: temporary, from: file, entry: entry, connection, progress: progress)
                try readBack(temporary, file.writeCheck, connection)  // a copy that differs moves nothing
                try moveIntoPlace(temporary, path, replacing: replacing, connection)
            }
        } catch {
            try? pool.with { try $0.removeFile(temporary) }
            throw error
        }
    }

    /// Renames `temporary` (from the login folder) to `path`. Version 3 of the protocol renames
    /// onto no existing name: where something is there (`replacing`, or the rename refused),
    /// the old entry is moved aside (under a temporary name), the new one renamed into place, and
    /// the old one removed. Should the second rename fail, the old entry is put back.
    private func moveIntoPlace(
        _ temporary: FileName, _ path: FileName, replacing: Bool, _ connection: SFTPConnection
    ) throws {
        let final = absolute(path)
        if !replacing {
            do {
                try connection.rename(temporary, to: final)
                return
            } catch let error as SFTPError where error.kind == .refused {
                // Something is there after all.
            }
        }
        let aside = absolute(asideName(for: path))
        do {
            try connection.rename(final, to: aside)
        } catch let error as SFTPError where error.kind == .notFound {
            // Nothing there to move aside.
            try connection.rename(temporary, to: final)
            return
        }
        do {
            try connection.rename(temporary, to: final)
        } catch {
            try? connection.rename(aside, to: final)
            throw error
        }
        try? connection.removeFile(aside)
    }

    /// Uploads `file` to `temporary` on `connection`, with the entry's mode and time.
    private func upload(
        _ path: FileName, to temporary: FileName, from file: ReadableFile, entry: Entry,
        _ connection: SFTPConnection, progress: (Int64) -> Void
    ) throws {
        var sent: Int64 = 0
        let expected = entry.size
        try connection.upload(temporary, mode: entry.mode, mtime: entry.mtime.seconds) { buffer in
            let n = try file.read(into: buffer)
            if n == 0 && sent < expected {
                throw SFTPError(.local, "\(path): the source ended after \(sent) of \(expected) bytes")
            }
            sent += Int64(n)
            progress(Int64(n))
            return n
        }
    }

    /// With `verify: true` (`check`): reads the file just uploaded back under its temporary
    /// name and has it compared with what was sent, before it is renamed (the caller removes
    /// the temporary file when this throws). The one place this endpoint reads back.
    func readBack(_ temporary: FileName, _ check: WriteCheck?, _ connection: SFTPConnection) throws {
        guard let check else { return }
        try check.compare { consume in
            let file = try connection.openForReading(temporary)
            defer { connection.close(file) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 18, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let n = try connection.read(file, into: buffer, path: temporary)
                if n == 0 { return }
                consume(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            }
        }
    }

    /// A temporary name in `path`'s folder for the file being replaced there, while the new one
    /// is renamed into place.
    private func asideName(for path: FileName) -> FileName {
        let number = asideCount.withLock {
            $0 += 1
            return $0
        }
        let name = ListingFilter.temporaryPrefix + Array("replaced-\(getpid())-\(number)".utf8)
        return path.parent.appending(FileName(bytes: name))
    }
    private let asideCount = Counter()

    public func createDirectory(_ path: FileName) throws {
        try pool.with { connection in
            do {
                try connection.makeDirectory(absolute(path))
            } catch let error as SFTPError where error.kind == .refused {
                // A folder that is there already is no error.
                if (try? connection.stat(absolute(path)))?.kind == .directory { return }
                throw error
            }
        }
    }

    public func createSymlink(_ path: FileName, entry: Entry) throws {
        guard let target = entry.linkTarget, !target.isEmpty else {
            throw SFTPError(.local, "\(display(path)): a symbolic link without a target")
        }
        let temporary = absolute(ListingFilter.temporaryName(for: path))
        do {
            try pool.with { connection in
                try? connection.removeFile(temporary)
                try connection.makeSymlink(temporary, to: target)
                try moveIntoPlace(temporary, path, replacing: false, connection)
            }
        } catch {
            try? pool.with { try $0.removeFile(temporary) }
            throw error
        }
    }

    public func remove(_ path: FileName, kind: EntryKind) throws {
        let target = absolute(path)
        try pool.with { connection in
            do {
                if kind == .directory {
                    try connection.removeDirectory(target)
                } else {
                    try connection.removeFile(target)
                }
            } catch let error as SFTPError where error.kind == .notFound {
                throw EndpointError(.notFound, "\(display(path)): not there")
            } catch let error as SFTPError where error.kind == .refused && kind == .directory {
                // The server says only "failure" for a folder that still holds entries.
                if (try? connection.holdsEntries(target)) == true {
                    throw EndpointError(.notEmpty, "\(display(path)): the folder is not empty")
                }
                throw error
            }
        }
    }

    public func setFolderAttributes(_ path: FileName, entry: Entry) throws {
        try pool.with { try $0.setAttributes(absolute(path), mode: entry.mode, mtime: entry.mtime.seconds) }
    }

    public func flush() throws {}

    /// Closes every connection.
    public func disconnect() { pool.drain() }

    // MARK: paths

    private func absolute(_ path: FileName) -> FileName {
        if root.isEmpty { return path }
        return path.isEmpty ? root : root.appending(path)
    }

    private func display(_ path: FileName) -> String { displayName + (path.isEmpty ? "" : "/" + path.description) }
}

/// A remote file being downloaded, on a connection of the pool held until it is closed.
///
/// libssh2 asks for four times what each read wants ahead, in requests of up to 30,000 bytes:
/// where the listing gave the file's size, a read wants no more than a quarter of what is left,
/// so that no request goes past the end (a 16 KiB file is one request, not 35), and the
/// download ends once that size is read, without one more request to learn of the end (as a
/// local copy copies the size listed).
final class SFTPDownload: ReadableFile {
    private let pool: SFTPPool
    private var connection: SFTPConnection?
    private let file: SFTPFile
    private let path: FileName
    /// The bytes left to read of the size listed, nil when unknown.
    private var left: Int64?

    init(pool: SFTPPool, path: FileName, size: Int64?) throws {
        let connection = try pool.take()
        do {
            file = try connection.openForReading(path)
        } catch {
            pool.give(connection)
            throw error
        }
        self.pool = pool
        self.connection = connection
        self.path = path
        self.left = size
    }

    var localDescriptor: Int32? { nil }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let connection else { return 0 }
        var wanted = buffer.count
        if let left {
            if left <= 0 { return 0 }
            wanted = Int(min(Int64(wanted), max(1, (left + 3) / 4)))
        }
        let n = try connection.read(file, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<wanted]), path: path)
        if let left { self.left = left - Int64(n) }
        return n
    }

    func close() {
        guard let connection else { return }
        if !connection.broken { connection.close(file) }
        self.connection = nil
        pool.give(connection)
    }

    deinit { close() }
}

/// Folders several threads look up and add to.
final class VersionFolderSet: @unchecked Sendable {
    private var folders = Set<FileName>()
    private let lock = Lock()
    func contains(_ folder: FileName) -> Bool { lock.withLock { folders.contains(folder) } }
    func insert(_ more: [FileName]) { lock.withLock { folders.formUnion(more) } }
}

/// A number guarded by a lock.
final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = Lock()
    func withLock<R>(_ body: (inout Int) -> R) -> R { lock.withLock { body(&value) } }
}

/// Logged-in connections handed to one thread at a time, opened on first need, up to `size`.
/// A connection that broke is closed, not handed out again.
final class SFTPPool: @unchecked Sendable {
    let options: SFTPOptions
    let size: Int
    private var idle: [SFTPConnection] = []
    private var closed = false
    private let mutex = Lock()
    private let available: DispatchSemaphore

    init(options: SFTPOptions, size: Int) {
        self.options = options
        self.size = size
        self.available = DispatchSemaphore(value: size)
    }

    func with<R>(_ body: (SFTPConnection) throws -> R) throws -> R {
        let connection = try take()
        defer { give(connection) }
        return try body(connection)
    }

    /// A connection for the caller alone, until it `give`s it back.
    func take() throws -> SFTPConnection {
        available.wait()
        do {
            return try mutex.withLock { idle.popLast() } ?? SFTPConnection(options)
        } catch {
            available.signal()
            throw error
        }
    }

    func give(_ connection: SFTPConnection) {
        mutex.withLock { if !closed && !connection.broken { idle.append(connection) } }
        available.signal()
    }

    /// Closes the idle connections; connections handed back later are closed, not kept.
    func drain() {
        mutex.withLock {
            closed = true
            idle.removeAll()
        }
    }
}

// MARK: versions

// No hard links over SFTP: once the whole new file is on the server under its temporary name
// (with its mode and time), the old one is renamed into the versions folder, then the new one
// into place. A run killed between the two leaves the final name absent, never partial; the
// next run uploads the file again. Should the old file not move, the new one is not renamed
// over it (an OpenSSH server renames onto no existing name anyway): the old one stays.
extension SFTPEndpoint {
    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, keepingVersion version: FileName, of old: Entry,
        progress: (Int64) -> Void
    ) throws {
        let temporary = absolute(ListingFilter.temporaryName(for: path))
        do {
            try pool.with { connection in
                try upload(path, to: temporary, from: file, entry: entry, connection, progress: progress)
                try readBack(temporary, file.writeCheck, connection)  // a copy that differs moves nothing
                do {
                    try moveOnServer(path, to: version, connection)
                } catch let error where EndpointErrorKind.of(error) == .notFound {
                    // Nothing there to keep (a retried transfer whose first try moved it).
                }
                try connection.rename(temporary, to: absolute(path))
            }
        } catch {
            try? pool.with { try $0.removeFile(temporary) }
            throw error
        }
    }

    public func moveToVersions(_ path: FileName, to version: FileName, entry: Entry) throws {
        try pool.with { connection in try moveOnServer(path, to: version, connection) }
    }

    /// Renames `path` to `version` (both relative to the root), the version's missing folders
    /// made first. Nothing at `path` throws a `notFound` error.
    private func moveOnServer(_ path: FileName, to version: FileName, _ connection: SFTPConnection) throws {
        var missing: [FileName] = []
        var folder = version.parent
        while !folder.isEmpty && !versionFolders.contains(folder) {
            missing.append(folder)
            folder = folder.parent
        }
        if !missing.isEmpty {
            // From the top; one that exists fails and is passed over.
            for folder in missing.reversed() {
                do {
                    try connection.makeDirectory(absolute(folder))
                } catch let error as SFTPError where error.kind != .connection {
                    continue
                }
            }
            versionFolders.insert(missing)
        }
        do {
            try connection.rename(absolute(path), to: absolute(version))
        } catch let error as SFTPError where error.kind == .notFound || error.kind == .refused {
            // Told apart by a stat: a file not there, or a real refusal.
            if error.kind == .refused, (try? connection.stat(absolute(path))) != nil { throw error }
            throw EndpointError(.notFound, "\(display(path)): not there")
        }
    }

    public func listVersions() -> Listing {
        listTree(VersionsFolder.name, recursive: true, ListingFilter())
    }
}
