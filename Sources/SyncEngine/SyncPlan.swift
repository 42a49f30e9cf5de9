/// `mirror` makes the destination an exact copy; `backup` copies new and changed files and never
/// deletes.
public enum SyncType: String, Sendable, CaseIterable {
    case mirror, backup
}

/// Why an action was chosen. The text names the destination side ("destination" locally,
/// "remote" for an FTP destination, "local" when downloading).
public enum Reason: Sendable, Equatable {
    case fileNotFound
    case folderNotFound
    case sizeDiffers
    case older
    case newer
    case upToDate
    case orphaned(EntryKind)
    case kindDiffers(EntryKind)
    case linkDiffers
    /// A backup cannot replace a destination entry of another kind without deleting it.
    case backupConflict(EntryKind)
    /// The file is another name of a source file copied before it (a hard link).
    case hardLink
    /// A case-insensitive destination cannot hold this name beside another that differs from
    /// it only in case (the action's `destination` is that other, synchronized entry).
    case namesDifferInCase
    /// The path is longer than an endpoint can work on (`maximumPathLength`).
    case pathTooLong
    /// The destination cannot hold a name with one of its forbidden characters (FAT, exFAT).
    case nameNotAllowed

    public func text(side: String) -> String {
        switch self {
        case .fileNotFound: return "\(side) file not found"
        case .folderNotFound: return "\(side) folder not found"
        case .sizeDiffers: return "\(side) file size differs"
        case .older: return "\(side) file is older"
        case .newer: return "\(side) file is newer"
        // The FTP report's established word when a server is involved; plain English locally.
        case .upToDate: return side == "destination" ? "destination file is up to date" : "\(side) file is uptodate"
        case .orphaned(let kind): return "\(side) \(Self.noun(kind)) is orphaned"
        case .kindDiffers(let kind): return "\(side) is a \(Self.noun(kind))"
        case .linkDiffers: return "\(side) link points elsewhere"
        case .backupConflict(let kind): return "\(side) is a \(Self.noun(kind)); a backup never deletes"
        case .hardLink: return "hard link, as on the source"
        case .namesDifferInCase: return "the \(side) cannot hold both names: they differ only in case"
        case .pathTooLong: return "path too long: with its root folder, longer than this system takes"
        case .nameNotAllowed:
            return "the \(side) cannot hold this name: its filesystem refuses one of its characters"
        }
    }

    static func noun(_ kind: EntryKind) -> String {
        switch kind {
        case .file: return "file"
        case .directory: return "folder"
        case .symlink: return "link"
        }
    }
}

/// One planned step.
public struct Action: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Copy a file (or re-create a link) from source to destination.
        case transfer
        /// Create a folder that the destination lacks.
        case createFolder
        /// Delete a destination entry (and, for a folder, everything below it).
        case delete
        /// Nothing to do; reported as a Skipping line.
        case skip
        /// Replace a destination entry of another kind: delete it, then transfer.
        case replace
        /// A conflict the run cannot resolve; counted as a failure.
        case conflict
        /// Make the file another name of one copied before it (`SyncPlan.hardLinks`).
        case link
    }

    public var kind: Kind
    public var reason: Reason
    // Compact on purpose: a plan holds an action per entry (10,000 for 10,000 unchanged files).
    // The entries are not copied but referred to in the listing's own arrays (a reference and
    // an index, no allocation), and the path is the parent folder's path (shared by all its
    // entries) plus the entry's name, joined when asked for. 48 bytes an action, instead of
    // ~150 inline plus a path allocation.
    /// `path` is `base` joined with the name of `source ?? destination`.
    private var named: Bool
    private var base: FileName
    private var sourceRef: EntryRef?
    private var destinationRef: EntryRef?

    /// Path relative to both roots.
    public var path: FileName {
        get {
            guard named, let ref = sourceRef ?? destinationRef else { return base }
            return base.appending(ref.entry.name)
        }
        set {
            base = newValue
            named = false
        }
    }
    public var source: Entry? {
        get { sourceRef?.entry }
        set {
            fixPath()
            sourceRef = newValue.map(EntryRef.init)
        }
    }
    public var destination: Entry? {
        get { destinationRef?.entry }
        set {
            fixPath()
            destinationRef = newValue.map(EntryRef.init)
        }
    }

    public init(kind: Kind, path: FileName, source: Entry?, destination: Entry?, reason: Reason) {
        self.kind = kind
        self.reason = reason
        self.base = path
        self.named = false
        self.sourceRef = source.map(EntryRef.init)
        self.destinationRef = destination.map(EntryRef.init)
    }

    /// The planner's form: entries by position in the listing arrays, under `parent`.
    init(kind: Kind, parent: FileName, source: EntryRef?, destination: EntryRef?, reason: Reason) {
        self.kind = kind
        self.reason = reason
        self.base = parent
        self.named = true
        self.sourceRef = source
        self.destinationRef = destination
    }

    private mutating func fixPath() {
        if named {
            base = path
            named = false
        }
    }
}

/// One entry of a listing, by its array and index: holding it shares the array, copies nothing.
struct EntryRef: Sendable {
    let siblings: [Entry]
    let index: UInt32

    init(_ siblings: [Entry], _ index: Int) {
        self.siblings = siblings
        self.index = UInt32(index)
    }

    init(_ entry: Entry) { self.init([entry], 0) }

    var entry: Entry { siblings[Int(index)] }
}

/// Everything a run will do, in order: deletions and replacements as found, folders before
/// their contents.
public struct SyncPlan: Sendable {
    public var actions: [Action] = []
    /// Folders whose mtime and mode are set after all files were written (children first).
    public var folderUpdates: [(path: FileName, entry: Entry)] = []
    /// For each `link` action's path, the path of the file it becomes another name of.
    public var hardLinks: [FileName: FileName] = [:]

    public init() {}

    /// How many destination entries the plan deletes, counting everything inside deleted folders.
    public var deletionCount: Int {
        actions.reduce(0) { count, action in
            switch action.kind {
            case .delete, .replace: return count + (action.destination?.treeCount ?? 1)
            default: return count
            }
        }
    }

    /// Bytes the plan transfers.
    public var transferBytes: Int64 {
        actions.reduce(0) { total, action in
            switch action.kind {
            case .transfer, .replace: return total + (action.source?.treeBytes ?? 0)
            default: return total
            }
        }
    }
}
