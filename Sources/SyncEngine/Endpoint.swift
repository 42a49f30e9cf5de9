/// What an endpoint can keep and how exact its times are; the planner and the report adapt to it.
public struct EndpointCapabilities: Sendable {
    /// Granularity of modification times in nanoseconds (1 = exact; FAT 2 s; FTP LIST 60 s).
    public var timePrecision: Int64
    /// Whether files written here can be given the source's modification time.
    public var setsModificationTimes: Bool
    /// Whether permission bits are stored.
    public var keepsModes: Bool
    /// Whether symbolic links can be created.
    public var keepsSymlinks: Bool
    /// A remote endpoint is named "remote" in reasons, and transfers to it are "Uploading"
    /// (wording only).
    public var isRemote: Bool
    /// Whether parallel writes go faster each in a folder of its own (an FTP server's create
    /// and rename wait on a folder's lock); a local disk keeps plan order, where new inodes stay
    /// together.
    public var spreadsWritesOverFolders: Bool
    /// Whether files can be hard links of each other (`Endpoint.link`): a source's hard links
    /// then stay links, instead of a copy each.
    public var keepsHardLinks: Bool
    /// Whether names that differ only in case are one name here (FAT, exFAT): `A.txt` and
    /// `a.txt` cannot both be held.
    public var caseInsensitiveNames: Bool
    /// The longest relative path the endpoint can work on (bytes), if it has a limit: a local
    /// endpoint joins its root and the path into one, which the system takes up to `PATH_MAX`.
    public var maximumPathLength: Int?
    /// Whether writes must be made one at a time: fusefat corrupts a FAT drive (lost clusters,
    /// stray `~N` entries) when two files are written into it at once, whatever their names.
    public var serialWrites: Bool
    /// Bytes no name may hold here besides `/` and NUL (FAT and exFAT: `" * : < > ? \ |` and
    /// control characters; fusefat: anything outside ASCII too): such an entry fails with one
    /// line instead of an unclear error.
    public var forbiddenNameBytes: [UInt8]
    /// Whether what a run replaces or deletes can be kept in `.plugsync-versions` here
    /// (`Endpoint.receive(_:from:entry:keepingVersion:of:progress:)`, `moveToVersions`).
    public var keepsVersions: Bool
    /// Whether each file received can be read back before it gets its final name (`verify: true`:
    /// `ReadableFile.writeCheck`); a run that asks for it elsewhere is refused.
    public var readsBack: Bool

    /// What FAT and exFAT refuse in a name.
    public static let fatForbiddenNameBytes = Array("\"*:<>?\\|".utf8) + Array(1...31)

    public init(
        timePrecision: Int64 = 1, setsModificationTimes: Bool = true, keepsModes: Bool = true,
        keepsSymlinks: Bool = true, isRemote: Bool = false, keepsHardLinks: Bool = false,
        caseInsensitiveNames: Bool = false, maximumPathLength: Int? = nil, serialWrites: Bool = false,
        forbiddenNameBytes: [UInt8] = [], spreadsWritesOverFolders: Bool = false, keepsVersions: Bool = false,
        readsBack: Bool = false
    ) {
        self.keepsVersions = keepsVersions
        self.readsBack = readsBack
        self.timePrecision = timePrecision
        self.setsModificationTimes = setsModificationTimes
        self.keepsModes = keepsModes
        self.keepsSymlinks = keepsSymlinks
        self.isRemote = isRemote
        self.keepsHardLinks = keepsHardLinks
        self.caseInsensitiveNames = caseInsensitiveNames
        self.maximumPathLength = maximumPathLength
        self.serialWrites = serialWrites
        self.forbiddenNameBytes = forbiddenNameBytes
        self.spreadsWritesOverFolders = spreadsWritesOverFolders
    }
}

/// The state of an endpoint's root folder before a run.
public enum RootState: Sendable, Equatable {
    case missing, empty, nonEmpty
}

/// Entries a listing leaves out on one side: the ignore list (by name), the File Check file
/// (by relative path), and this program's own temporary files.
public struct ListingFilter: Sendable {
    public var ignore: IgnoreList
    public var excludedPaths: Set<FileName>

    public init(ignore: IgnoreList = .none, excludedPaths: Set<FileName> = []) {
        self.ignore = ignore
        self.excludedPaths = excludedPaths
    }

    /// Prefix of the temporary names files are written under before the rename.
    public static let temporaryPrefix: [UInt8] = Array(".plugsync-tmp-".utf8)

    /// The temporary name a file is written under, in the same folder as its final name.
    ///
    /// Two names must never share a temporary name, also where a filesystem sees no case
    /// (FAT, exFAT): two workers writing `A.txt` and `a.txt` through one temporary file
    /// corrupted the drive. A name of lowercase ASCII (nearly every name) is used as it is;
    /// any other gets `~`, a hash of its exact bytes and then the name: no name of the first
    /// kind starts with `~`, and the hash (keyed per process, so a drive cannot aim at it) tells
    /// names apart that differ in case. Deterministic within the process: the FTP endpoint
    /// finds a staged file by it again.
    public static func temporaryName(for path: FileName) -> FileName {
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
}

/// The result of listing one endpoint.
public struct Listing: Sendable {
    /// The root's entries, sorted by name; folders carry their children when recursive.
    public var entries: [Entry] = []
    /// Entries that could not be read; a run with any of these deletes nothing.
    public var errors: [Error] = []
    /// Temporary files an interrupted run left behind (relative paths).
    public var temporaryFiles: [FileName] = []
    /// Folders an interrupted run was building under a temporary name (`StagingEndpoint`).
    public var temporaryFolders: [FileName] = []
    /// Files listed whose contents this process may not read (permissions): copying them will
    /// fail, so a run that must copy one deletes nothing.
    public var unreadableFiles: [FileName] = []
    /// Files listed that are hard links of each other.
    public var hardLinks = HardLinks()

    public init() {}

    /// Every entry in the listing, counted through all folders.
    public var count: Int { entries.reduce(0) { $0 + $1.treeCount } }

    /// Takes out the entries at `paths` (relative), as a `ListingFilter` with these
    /// `excludedPaths` would have left them out.
    public mutating func leaveOut(_ paths: Set<FileName>) {
        if paths.isEmpty { return }
        // Only the folders on the way to a path are looked into, not the whole tree.
        let folders = Planner.ancestors(of: paths)
        // Recursive, but only as deep as the paths left out (a File Check path), not the tree.
        func prune(_ entries: inout [Entry], _ base: FileName) {
            entries.removeAll { paths.contains(base.appending($0.name)) }
            for i in entries.indices where entries[i].children != nil {
                let path = base.appending(entries[i].name)
                if folders.contains(path) { prune(&entries[i].children!, path) }
            }
        }
        prune(&entries, .empty)
        temporaryFiles.removeAll { paths.contains($0) }
        unreadableFiles.removeAll { paths.contains($0) }
        for path in paths { hardLinks.remove(path) }
    }
}

/// Files of a listing that are hard links of one another (the same device and inode). Kept
/// beside the entries, not in them: only files with more than one link are looked at, and an
/// entry stays 56 bytes.
public struct HardLinks: Sendable {
    /// Each linked file's group: files of one group are one file on the source.
    public private(set) var groups: [FileName: Int] = [:]
    /// The folders that hold a linked file: only there does the planner look a path up.
    public private(set) var folders: Set<FileName> = []

    public init() {}

    /// Groups of paths, each a file with all the paths it has in the tree.
    public init(_ groups: [[FileName]]) {
        for (number, group) in groups.enumerated() where group.count > 1 {
            for path in group {
                self.groups[path] = number
                folders.insert(path.parent)
            }
        }
    }

    public var isEmpty: Bool { groups.isEmpty }

    mutating func remove(_ path: FileName) { groups[path] = nil }
}

/// Collects the paths of files whose link count is above 1, by device and inode.
public struct HardLinkCollector {
    private struct Key: Hashable {
        var device: UInt64
        var inode: UInt64
    }
    private var paths: [Key: [FileName]] = [:]

    public init() {}

    public mutating func add(_ path: FileName, device: UInt64, inode: UInt64) {
        paths[Key(device: device, inode: inode), default: []].append(path)
    }

    /// The files met under more than one path.
    public func result() -> HardLinks {
        if paths.isEmpty { return HardLinks() }
        return HardLinks(paths.values.filter { $0.count > 1 })
    }
}

/// A file opened for reading on a source endpoint.
public protocol ReadableFile: AnyObject {
    /// A local descriptor, when there is one: lets a local destination use `copy_file_range`.
    var localDescriptor: Int32? { get }
    /// Reads up to `buffer.count` bytes; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    func close()
    /// With `verify: true`, what the destination must pass before the file gets its final name
    /// (`Endpoint.receive`); nil: nothing to check.
    var writeCheck: WriteCheck? { get }
}

extension ReadableFile {
    public var writeCheck: WriteCheck? { nil }
}

/// Where files live: a local folder, a folder on a drive, an FTP directory.
///
/// Paths are relative to the endpoint's root, components joined by `/`. Every write is atomic:
/// `receive` writes under a temporary name in the destination folder and renames it into place.
/// Implementations must allow calls from several threads at once.
public protocol Endpoint: AnyObject, Sendable {
    /// Shown in messages, e.g. `/home/ana/Documents` or `ftp://web@host/www`.
    var displayName: String { get }
    var capabilities: EndpointCapabilities { get }

    func rootState() throws -> RootState
    /// Creates the root folder (and missing parents) when it is a destination that is absent.
    func prepareRoot() throws
    func list(recursive: Bool, filter: ListingFilter) -> Listing

    func openForReading(_ path: FileName, entry: Entry) throws -> ReadableFile
    /// Writes `file` to `path` atomically and gives it the entry's mtime and mode.
    /// `replacing` says the listing saw a file there (a hint; both cases must work).
    /// `progress` is called with byte counts as they are written.
    ///
    /// Reading back (`verify: true`, where `capabilities.readsBack`): when `file.writeCheck` is
    /// set, the endpoint reads the complete temporary file back, in one place for every way it
    /// writes (a drive or folder: written out and dropped from the page cache first, so the
    /// bytes come from the disk; a server: downloaded), and gives it to
    /// `WriteCheck.compare(readBack:)` before the rename. When that throws, the temporary is
    /// removed, the final name keeps what it held (no version is kept), and the error is thrown.
    func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, replacing: Bool, progress: (Int64) -> Void
    ) throws
    func createDirectory(_ path: FileName) throws
    func createSymlink(_ path: FileName, entry: Entry) throws
    /// Removes a file, a link, or an empty folder. Removing what is not there succeeds or throws
    /// a `notFound` error; a folder that still holds entries throws a `notEmpty` one.
    func remove(_ path: FileName, kind: EntryKind) throws
    /// Gives a folder the source folder's mtime and mode, after its contents were written.
    func setFolderAttributes(_ path: FileName, entry: Entry) throws
    /// Makes written data durable (removable drives) before the run reports success.
    func flush() throws
    /// Makes `path` another name of the file at `existing` (a hard link), replacing what is at
    /// `path`; where `capabilities.keepsHardLinks` is false it throws `Unsupported`.
    func link(_ path: FileName, to existing: FileName) throws
    /// The owner and group a destination should give the entry at `path` (a folder or a
    /// symbolic link; files carry theirs when opened), or nil where this source gives none.
    func owner(of path: FileName) -> Owner?
    /// Gives the folder or symbolic link at `path` an owner and group, where this endpoint
    /// keeps them; elsewhere it does nothing.
    func setOwner(_ path: FileName, _ owner: Owner) throws

    // MARK: versions
    // What a run replaces or deletes is kept at `.plugsync-versions/<run start>/<its path>`
    // (`VersionsFolder`), moved there by a rename on the endpoint itself, never copied. The
    // final name holds the whole old file or the whole new one at every moment, also when the
    // run is killed between the steps. Where the endpoint has hard links (a local folder, ext4,
    // most Linux filesystems) the old file is linked into the versions folder and the new one
    // renamed over it: the final name is never absent. Where it has none (FAT, exFAT, FTP,
    // SFTP) the old file is renamed into the versions folder, then the new one into place: a
    // kill between the two leaves the final name absent (never partial), and the next run
    // copies it again. An endpoint that cannot keep versions has `keepsVersions` false, and
    // a run that asks for them is refused before anything is changed.

    /// As `receive`, but the file at `path`, if there is one, is kept at `version` (its
    /// missing folders are created): `old` is what the listing saw there (its time is kept
    /// where a rename would change it). No file at `path` keeps nothing.
    func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, keepingVersion version: FileName, of old: Entry,
        progress: (Int64) -> Void
    ) throws
    /// Moves the file or link at `path` to `version` (creating its missing folders): a rename,
    /// no copy. Nothing at `path` throws a `notFound` error.
    func moveToVersions(_ path: FileName, to version: FileName, entry: Entry) throws
    /// The entries of the versions folder (`.plugsync-versions`, recursively: the run folders,
    /// the files below them); empty when there is none.
    func listVersions() -> Listing

    // MARK: a run's life cycle
    // A run calls these in this order; each has a default that does nothing, so an endpoint
    // implements only the steps it needs (a server measures its clock, remembers exact times
    // between runs and lists faster with the other side's folders; a local folder needs none).

    /// Before anything is listed: which side this endpoint is, whether the run is a dry run,
    /// and a file it may keep between runs of the definition.
    func beginRun(_ run: RunSettings)
    /// Says that `prepare` will run on another thread alongside `list`: a listing that needs
    /// what `prepare` learns waits for it (or for `cancelPrepare`).
    func willPrepare()
    /// Learns what the run needs before it plans (a server's clock, how to set times); lines
    /// for the run's report go to `say`.
    func prepare(say: (String) -> Void) throws
    /// Releases a listing waiting for a `prepare` that will not run (an earlier step failed).
    func cancelPrepare()
    /// The other side's folders as soon as they are listed: a slow listing can ask for them
    /// all at once instead of one level after the other.
    func useListingHint(_ hint: ListingHint)
    /// Makes coarse listed times exact where comparing with `other` (the other side's
    /// listing) needs it.
    func refineTimes(_ listing: inout Listing, comparedWith other: [Entry])
    /// How many files to transfer at once when the definition does not say (`given`, the
    /// default): more where the endpoint measured that they pay (a server far away, where each
    /// file costs round trips rather than bandwidth).
    func transfersAtOnce(_ given: Int) -> Int
    /// After the run's changes were made (not after a dry run or a refusal): keeps what this
    /// run learned in the file `beginRun` named.
    func finishRun()
    /// Closes connections; the endpoint is not used after it.
    func disconnect()
}

extension Endpoint {
    public func link(_ path: FileName, to existing: FileName) throws {
        throw Unsupported("\(displayName) cannot hold hard links")
    }
    public func receive(
        _ path: FileName, from file: ReadableFile, entry: Entry, keepingVersion version: FileName, of old: Entry,
        progress: (Int64) -> Void
    ) throws {
        throw Unsupported("\(displayName) cannot keep versions")
    }
    public func moveToVersions(_ path: FileName, to version: FileName, entry: Entry) throws {
        throw Unsupported("\(displayName) cannot keep versions")
    }
    public func listVersions() -> Listing { Listing() }
    public func owner(of path: FileName) -> Owner? { nil }
    public func setOwner(_ path: FileName, _ owner: Owner) throws {}

    public func beginRun(_ run: RunSettings) {}
    public func transfersAtOnce(_ given: Int) -> Int { given }
    public func willPrepare() {}
    public func prepare(say: (String) -> Void) throws {}
    public func cancelPrepare() {}
    public func useListingHint(_ hint: ListingHint) {}
    public func refineTimes(_ listing: inout Listing, comparedWith other: [Entry]) {}
    public func finishRun() {}
    public func disconnect() {}
}

/// Which side of a run an endpoint is on.
public enum RunSide: String, Sendable {
    case source, destination
}

/// What a run tells each of its endpoints before it starts (`Endpoint.beginRun`).
public struct RunSettings: Sendable {
    public var side: RunSide
    public var dryRun: Bool
    /// A file of the state directory this endpoint may keep between runs of one definition
    /// (what its listing cannot tell, learned by the last run); nil keeps nothing.
    public var memoryFile: String?

    public init(side: RunSide, dryRun: Bool, memoryFile: String? = nil) {
        self.side = side
        self.dryRun = dryRun
        self.memoryFile = memoryFile
    }
}

/// A user and group, kept from a local tree by a root backup (as `rsync -a` does).
public struct Owner: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }
}

/// An operation this endpoint cannot do.
public struct Unsupported: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A file that `StagingEndpoint.stage` wrote under its temporary name.
public struct StagedFile: Sendable {
    public var path: FileName
    public var entry: Entry
    /// The listing saw a file at `path` (a hint, as for `receive`).
    public var replacing: Bool

    public init(path: FileName, entry: Entry, replacing: Bool) {
        self.path = path
        self.entry = entry
        self.replacing = replacing
    }
}

/// A destination that puts received files in place in batches: on an FTP server, checking,
/// dating and renaming a folder's files together takes a few round trips for all of them
/// instead of two and a command more for each.
public protocol StagingEndpoint: Endpoint {
    /// Whether batches pay on this endpoint now (else the executor uses `receive`).
    var stagesInBatches: Bool { get }
    /// Writes `file` under the temporary name for `path` (the first half of `receive`).
    func stage(_ path: FileName, from file: ReadableFile, entry: Entry, progress: (Int64) -> Void) throws
    /// Checks staged files, gives them their entries' times and renames them into place. One
    /// result per file, in order: nil when it is in place, else why not (its temporary file is
    /// then gone where the endpoint could remove it). A file of a folder being built is in place
    /// in that folder.
    func commit(_ files: [StagedFile]) -> [Error?]

    /// Creates a new folder under its temporary name. Until `commitFolder`, the files for it
    /// (stage, commit, receive) go to that folder under their final names, with no rename each.
    func buildFolder(_ path: FileName) throws
    /// Renames a folder built by `buildFolder` into place, with all its files at once. `files`
    /// are those put in place in it; with `verify` (some file for it failed), whatever else the
    /// folder holds is removed first, and a file listed with another size stops the rename.
    func commitFolder(_ path: FileName, holding files: [StagedFile], verify: Bool) throws
    /// Removes a folder an interrupted run was building, with the files in it.
    func removeTemporaryFolder(_ path: FileName) throws
}
