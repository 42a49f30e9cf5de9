import Dispatch
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A folder on an SSH server, through its SFTP subsystem (libcurl with libssh2), as a source or
/// a destination.
///
/// Listing: one long listing per folder gives names, kinds, sizes and modes; its times are
/// rounded to the minute, so each file and folder is asked for its exact time (a stat each, on
/// all the pool's connections at once: 1,000 files in 0.9 s instead of 1.4 s one by one).
/// Writes: a file is uploaded under its temporary name, given its mode and time, and renamed
/// into place in the same request (curl runs the commands after the upload). An SFTP server
/// of protocol version 3 (OpenSSH) renames onto no existing name: a replaced file is moved
/// aside just before the rename (and put back if the rename fails), so for that instant
/// neither version is under the name.
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
        try pool.with { try $0.open() }
    }

    // MARK: state and listing

    public func rootState() throws -> RootState {
        do {
            let data = try pool.with { try $0.listing(root) }
            return SFTPListingParser.parse(data).entries.isEmpty ? .empty : .nonEmpty
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
            try connection.run(folders.reversed().map { "*mkdir " + SFTPConnection.quoted($0) }, about: root)
            _ = try connection.listing(root)
        }
    }

    public func list(recursive: Bool, filter: ListingFilter) -> Listing {
        var listing = Listing()
        var paths: [FileName] = []
        do {
            try pool.with { connection in
                listing.entries = try entries(of: .empty, recursive: recursive, filter, &listing, &paths, connection)
            }
        } catch let error as SFTPError where error.kind == .notFound {
            // A destination not made yet holds nothing (a missing source is refused before).
            return listing
        } catch {
            listing.errors.append(error)
            return listing
        }
        // The listing's times are to the minute: each entry's exact one is its own stat, asked
        // on every connection of the pool at once. A file's size is taken from there too: the
        // listing is text the server words as it likes.
        var times = [(mtime: Int64, size: Int64?)?](repeating: nil, count: paths.count)
        var failures: [Error] = []
        let queue = WorkQueue(count: paths.count)
        let lock = Lock()
        runOnThreads(min(pool.size, (paths.count + 15) / 16)) { _ in
            do {
                try pool.with { connection in
                    while let index = queue.next() {
                        do {
                            let time = try connection.stat(absolute(paths[index]))
                            lock.withLock { times[index] = time }
                        } catch let error as SFTPError where error.kind == .notFound {
                            continue  // gone since the listing: left out
                        } catch let error as SFTPError where error.kind != .connection {
                            lock.withLock { failures.append(error) }
                        }
                    }
                }
            } catch {
                lock.withLock { failures.append(error) }
            }
        }
        listing.errors += failures
        var known: [FileName: (mtime: Int64, size: Int64?)] = [:]
        known.reserveCapacity(paths.count)
        for (path, time) in zip(paths, times) { if let time { known[path] = time } }
        // Entries gone since the listing, or whose time could not be read, are left out.
        func date(_ entries: inout [Entry], _ folder: FileName) {
            entries.removeAll { entry in
                entry.kind != .symlink && known[folder.appending(entry.name)] == nil
            }
            for position in entries.indices where entries[position].kind != .symlink {
                let path = folder.appending(entries[position].name)
                let status = known[path]!
                entries[position].mtime = Timestamp(seconds: status.mtime)
                if entries[position].kind == .file { entries[position].size = status.size ?? entries[position].size }
                if entries[position].children != nil { date(&entries[position].children!, path) }
            }
        }
        date(&listing.entries, .empty)
        return listing
    }

    /// The entries of `folder` (relative to the root), their folders' children when `recursive`;
    /// `paths` gets the path of each file and folder, whose exact time the caller reads. A folder
    /// below the root that cannot be listed is an error of the listing, not of the run.
    private func entries(
        of folder: FileName, recursive: Bool, _ filter: ListingFilter, _ listing: inout Listing,
        _ paths: inout [FileName], _ connection: SFTPConnection
    ) throws -> [Entry] {
        let parsed = SFTPListingParser.parse(try connection.listing(absolute(folder)))
        if parsed.unreadable > 0 {
            listing.errors.append(
                SFTPError(
                    .refused,
                    "\(display(folder)): \(parsed.unreadable) entries of the listing are neither files nor folders"))
        }
        var result: [Entry] = []
        for item in parsed.entries {
            let name = FileName(bytes: item.name)
            let path = folder.appending(name)
            if item.name.starts(with: ListingFilter.temporaryPrefix) {
                if item.kind == .file { listing.temporaryFiles.append(path) }
                continue
            }
            if filter.ignore.matches(name, path: path) || filter.excludedPaths.contains(path) { continue }
            var entry = Entry(
                name: name, kind: item.kind, size: item.size, mtime: Timestamp(seconds: 0), mode: item.mode)
            if item.kind == .symlink {
                entry.linkTarget = item.linkTarget.map { FileName(bytes: $0) }
            } else {
                paths.append(path)
            }
            if item.kind == .directory && recursive {
                do {
                    entry.children = try entries(of: path, recursive: true, filter, &listing, &paths, connection)
                } catch let error as SFTPError where error.kind != .connection {
                    listing.errors.append(error)
                }
            }
            result.append(entry)
        }
        result.sort { $0.name < $1.name }
        return result
    }

    // MARK: reading

    public func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile {
        try SFTPDownload(pool: pool, path: absolute(path))
    }

    /// The first `limit` bytes of a file (a File Check).
    public func contents(of path: FileName, limit: Int) throws -> [UInt8] {
        var data: [UInt8] = []
        try pool.with { connection in
            try connection.download(absolute(path)) { buffer in
                data.append(contentsOf: buffer.prefix(max(0, limit - data.count)))
                return data.count < limit
            }
        }
        return data
    }

    // MARK: writing

    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
    ) throws {
        let temporary = absolute(ListingFilter.temporaryName(for: path))
        let quotedTemporary = SFTPConnection.quoted(temporary)
        let rename = "rename \(quotedTemporary) \(SFTPConnection.quoted(absolute(path)))"
        do {
            try pool.with { connection in
                guard let check = file.writeCheck else {
                    return try upload(
                        path, to: temporary, from: file, entry: entry, then: [rename], connection, progress: progress)
                }
                try upload(path, to: temporary, from: file, entry: entry, then: [], connection, progress: progress)
                try readBack(temporary, check, connection)
                try connection.run([rename], about: path)
            }
        } catch let error as SFTPError where Self.renameFailed(error) {
            try replace(path, with: temporary)
        } catch {
            try? pool.with { try $0.run(["*rm " + quotedTemporary], about: path) }
            throw error
        }
    }

    /// Uploads `file` to `temporary` on `connection`, gives it the entry's mode and time, and
    /// runs `then` (the rename into place, if any) in the same batch of commands.
    private func upload(
        _ path: FileName, to temporary: FileName, from file: ReadableFile, entry: Entry, then: [String],
        _ connection: SFTPConnection, progress: (Int64) -> Void
    ) throws {
        let quoted = SFTPConnection.quoted(temporary)
        var after: [String] = []
        if let mode = entry.mode { after.append("chmod \(String(mode & 0o7777, radix: 8)) \(quoted)") }
        if entry.mtime.seconds >= 0 {
            after.append("mtime \"\(SFTPConnection.httpDate(entry.mtime.seconds))\" \(quoted)")
        }
        var sent: Int64 = 0
        let expected = entry.size
        try withoutActuallyEscaping(progress) { progress in
            try connection.upload(temporary, size: expected, mode: entry.mode ?? 0o644, after: after + then) {
                buffer in
                let n = try file.read(into: buffer)
                if n == 0 && sent < expected {
                    throw SFTPError(.local, "\(path): the source ended after \(sent) of \(expected) bytes")
                }
                sent += Int64(n)
                progress(Int64(n))
                return n
            }
        }
    }

    /// With `verify: true` (`check`): downloads the file just uploaded under its temporary name
    /// and has it compared with what was sent, before it is renamed (the caller removes the
    /// temporary file when this throws). The one place this endpoint reads back.
    func readBack(_ temporary: FileName, _ check: WriteCheck?, _ connection: SFTPConnection) throws {
        guard let check else { return }
        try check.compare { consume in
            try withoutActuallyEscaping(consume) { consume in
                try connection.download(temporary) { buffer in
                    consume(buffer)
                    return true
                }
            }
        }
    }

    private static func renameFailed(_ error: SFTPError) -> Bool {
        error.kind == .refused && error.message.contains("rename command failed")
    }

    /// Puts `temporary` (from the login folder) in place of what is at `path`: version 3 of the
    /// protocol renames onto no existing name, so the old entry is moved aside (under a
    /// temporary name), the new one renamed into place, and the old one removed. Should the
    /// second rename fail, the old entry is put back and the new one removed.
    private func replace(_ path: FileName, with temporary: FileName) throws {
        let final = SFTPConnection.quoted(absolute(path))
        let quotedTemporary = SFTPConnection.quoted(temporary)
        let aside = SFTPConnection.quoted(absolute(asideName(for: path)))
        do {
            try pool.with {
                try $0.run(
                    ["rename \(final) \(aside)", "rename \(quotedTemporary) \(final)", "*rm \(aside)"], about: path)
            }
        } catch {
            try? pool.with { try $0.run(["*rename \(aside) \(final)", "*rm " + quotedTemporary], about: path) }
            throw error
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
                try connection.run(["mkdir " + SFTPConnection.quoted(absolute(path))], about: path)
            } catch let error as SFTPError where error.kind == .refused {
                // A folder that is there already is no error.
                if (try? connection.listing(absolute(path))) != nil { return }
                throw error
            }
        }
    }

    public func createSymlink(_ path: FileName, entry: Entry) throws {
        guard let target = entry.linkTarget, !target.isEmpty else {
            throw SFTPError(.local, "\(display(path)): a symbolic link without a target")
        }
        let temporary = absolute(ListingFilter.temporaryName(for: path))
        let quotedTemporary = SFTPConnection.quoted(temporary)
        do {
            try pool.with {
                try $0.run(
                    [
                        "*rm \(quotedTemporary)", "symlink \(SFTPConnection.quoted(target)) \(quotedTemporary)",
                        "rename \(quotedTemporary) \(SFTPConnection.quoted(absolute(path)))",
                    ], about: path)
            }
        } catch let error as SFTPError where Self.renameFailed(error) {
            try replace(path, with: temporary)
        } catch {
            try? pool.with { try $0.run(["*rm " + quotedTemporary], about: path) }
            throw error
        }
    }

    public func remove(_ path: FileName, kind: EntryKind) throws {
        let target = absolute(path)
        try pool.with { connection in
            do {
                try connection.run(
                    [(kind == .directory ? "rmdir " : "rm ") + SFTPConnection.quoted(target)], about: path)
            } catch let error as SFTPError where error.kind == .notFound {
                throw EndpointError(.notFound, "\(display(path)): not there")
            } catch let error as SFTPError where error.kind == .refused && kind == .directory {
                // The server says only "failure" for a folder that still holds entries.
                if let inside = try? connection.listing(target), !SFTPListingParser.parse(inside).entries.isEmpty {
                    throw EndpointError(.notEmpty, "\(display(path)): the folder is not empty")
                }
                throw error
            }
        }
    }

    public func setFolderAttributes(_ path: FileName, entry: Entry) throws {
        let folder = SFTPConnection.quoted(absolute(path))
        var commands: [String] = []
        if let mode = entry.mode { commands.append("chmod \(String(mode & 0o7777, radix: 8)) \(folder)") }
        if entry.mtime.seconds >= 0 {
            commands.append("mtime \"\(SFTPConnection.httpDate(entry.mtime.seconds))\" \(folder)")
        }
        if commands.isEmpty { return }
        try pool.with { try $0.run(commands, about: path) }
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

/// A remote file being downloaded: curl writes into one end of a socket pair on a thread of its
/// own (with a connection of the pool), and `read` reads the other end.
final class SFTPDownload: ReadableFile {
    private var reading: Int32 = -1
    private let finished = DispatchSemaphore(value: 0)
    private var failure: Error?
    private var ended = false

    init(pool: SFTPPool, path: FileName) throws {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw SFTPError(.local, "socketpair: \(String(cString: strerror(errno)))")
        }
        reading = pair[0]
        let writing = pair[1]
        startThread { [self] in
            do {
                try pool.with { connection in
                    try connection.download(path) { buffer in
                        var offset = 0
                        while offset < buffer.count {
                            let n = send(
                                writing, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                            if n < 0 && errno == EINTR { continue }
                            if n <= 0 { return false }  // the reader closed its end
                            offset += n
                        }
                        return true
                    }
                }
            } catch {
                failure = error
            }
            Glibc.close(writing)
            finished.signal()
        }
    }

    var localDescriptor: Int32? { nil }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if ended { return 0 }
        while true {
            let n = Glibc.read(reading, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw SFTPError(.local, "reading a download: \(String(cString: strerror(errno)))") }
            if n > 0 { return n }
            break
        }
        ended = true
        finished.wait()
        if let failure { throw failure }
        return 0
    }

    func close() {
        guard reading >= 0 else { return }
        Glibc.close(reading)
        reading = -1
        // The download stops at its next write; its connection goes back to the pool then.
        if !ended {
            ended = true
            finished.wait()
        }
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
        available.wait()
        defer { available.signal() }
        let connection = try mutex.withLock { idle.popLast() } ?? SFTPConnection(options)
        defer { mutex.withLock { if !closed { idle.append(connection) } } }
        return try body(connection)
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
        let quotedTemporary = SFTPConnection.quoted(temporary)
        do {
            try pool.with { connection in
                try upload(path, to: temporary, from: file, entry: entry, then: [], connection, progress: progress)
                try readBack(temporary, file.writeCheck, connection)  // a copy that differs moves nothing
                do {
                    try moveOnServer(path, to: version, connection)
                } catch let error where EndpointErrorKind.of(error) == .notFound {
                    // Nothing there to keep (a retried transfer whose first try moved it).
                }
                try connection.run(
                    ["rename \(quotedTemporary) \(SFTPConnection.quoted(absolute(path)))"], about: path)
            }
        } catch {
            try? pool.with { try $0.run(["*rm " + quotedTemporary], about: path) }
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
            try connection.run(missing.reversed().map { "*mkdir " + SFTPConnection.quoted(absolute($0)) }, about: path)
            versionFolders.insert(missing)
        }
        do {
            try connection.run(
                ["rename \(SFTPConnection.quoted(absolute(path))) \(SFTPConnection.quoted(absolute(version)))"],
                about: path)
        } catch let error as SFTPError where error.kind == .notFound || error.kind == .refused {
            // Told apart by the folder's listing: a file not there, or a real refusal.
            if let data = try? connection.listing(absolute(path.parent)),
                !SFTPListingParser.parse(data).entries.contains(where: { $0.name == path.lastComponent.bytes })
            {
                throw EndpointError(.notFound, "\(display(path)): not there")
            }
            throw error
        }
    }

    public func listVersions() -> Listing {
        var listing = Listing()
        var paths: [FileName] = []
        do {
            try pool.with { connection in
                listing.entries = try entries(
                    of: VersionsFolder.name, recursive: true, ListingFilter(), &listing, &paths, connection)
            }
        } catch let error as SFTPError where error.kind == .notFound {
            return Listing()  // no versions yet
        } catch {
            listing.errors.append(error)
        }
        return listing
    }
}
