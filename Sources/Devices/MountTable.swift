/// One line of `/proc/self/mountinfo` (see `man 5 proc`), with its octal escapes decoded.
///
/// ```
/// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
/// (1)(2)(3)   (4)   (5)      (6)        (7)   (8) (9)    (10)       (11)
/// ```
public struct MountEntry: Sendable, Hashable {
    /// Unique ID of the mount (1).
    public var mountID: Int
    /// ID of the parent mount, or of the mount itself for the root of the mount tree (2).
    public var parentID: Int
    /// Major number of `st_dev` for files on this filesystem (3). For FUSE filesystems that are
    /// not `fuseblk`, and for btrfs, this is an anonymous device (major 0), not the drive.
    public var major: UInt32
    /// Minor number of `st_dev` for files on this filesystem (3).
    public var minor: UInt32
    /// The directory of the filesystem that forms the root of this mount (4); `/` unless it is a
    /// bind mount of a subdirectory.
    public var root: String
    /// Where it is mounted, relative to the process's root directory (5).
    public var mountPoint: String
    /// Per-mount options such as `rw`, `nosuid`, `relatime` (6).
    public var options: [String]
    /// Optional fields such as `shared:2` or `master:1` (7).
    public var optionalFields: [String]
    /// Filesystem type, `type[.subtype]`, e.g. `ext4`, `fuse.fusefat`, `fuseblk` (9).
    public var fsType: String
    /// Filesystem-specific source: a device path like `/dev/sdb1`, or a name like `fusefat`,
    /// `tmpfs`, `none` (10).
    public var source: String
    /// Per-superblock options (11).
    public var superOptions: [String]

    /// Creates an entry; `optionalFields` defaults to none.
    public init(
        mountID: Int, parentID: Int, major: UInt32, minor: UInt32, root: String, mountPoint: String,
        options: [String], optionalFields: [String] = [], fsType: String, source: String,
        superOptions: [String]
    ) {
        self.mountID = mountID
        self.parentID = parentID
        self.major = major
        self.minor = minor
        self.root = root
        self.mountPoint = mountPoint
        self.options = options
        self.optionalFields = optionalFields
        self.fsType = fsType
        self.source = source
        self.superOptions = superOptions
    }

    /// `true` if the mount is read-only (`ro` in the mount or superblock options).
    public var isReadOnly: Bool { options.contains("ro") || superOptions.contains("ro") }
}

/// Reading and querying the kernel's mount table, `/proc/self/mountinfo`.
public enum MountTable {
    /// Reads and parses the mount table. Throws `DeviceError` only if the file cannot be read.
    public static func read(path: String = "/proc/self/mountinfo") throws -> [MountEntry] {
        parse(bytes: try SystemFiles.readAll(path))
    }

    /// Parses mountinfo text; malformed lines are skipped.
    public static func parse(_ text: String) -> [MountEntry] {
        parse(bytes: Array(text.utf8))
    }

    /// Parses mountinfo bytes; malformed lines are skipped. Escapes (`\040` space, `\011` tab,
    /// `\012` newline, `\134` backslash, any `\ooo`) are decoded; bytes that are not valid UTF-8
    /// become U+FFFD.
    public static func parse<Bytes: Collection>(bytes: Bytes) -> [MountEntry] where Bytes.Element == UInt8 {
        var entries: [MountEntry] = []
        var line: [UInt8] = []
        line.reserveCapacity(256)
        for byte in bytes {
            if byte == 0x0A {
                if let entry = parseLine(line) { entries.append(entry) }
                line.removeAll(keepingCapacity: true)
            } else {
                line.append(byte)
            }
        }
        if !line.isEmpty, let entry = parseLine(line) { entries.append(entry) }
        return entries
    }

    /// Parses one line (without its newline); `nil` if it is malformed.
    static func parseLine(_ line: [UInt8]) -> MountEntry? {
        // Fields are separated by exactly one space (an empty source shows as two spaces);
        // whitespace inside a field is always escaped.
        var end = line.endIndex
        while end > line.startIndex, [0x20, 0x09, 0x0D].contains(line[end - 1]) { end -= 1 }
        let fields = line[..<end].split(separator: 0x20, omittingEmptySubsequences: false)
        guard fields.count >= 9,
            let dash = fields.indices.dropFirst(6).first(where: { fields[$0].elementsEqual([0x2D]) }),
            fields.count - dash >= 3
        else { return nil }
        guard let mountID = Int(ascii: fields[0]), let parentID = Int(ascii: fields[1]) else { return nil }
        let devParts = fields[2].split(separator: 0x3A, omittingEmptySubsequences: false)
        guard devParts.count == 2, let major = UInt32(ascii: devParts[0]), let minor = UInt32(ascii: devParts[1])
        else { return nil }
        return MountEntry(
            mountID: mountID, parentID: parentID, major: major, minor: minor,
            root: unescape(fields[3]), mountPoint: unescape(fields[4]),
            options: splitOptions(fields[5]),
            optionalFields: fields[6..<dash].map { unescape($0) },
            fsType: unescape(fields[dash + 1]), source: unescape(fields[dash + 2]),
            superOptions: dash + 3 < fields.count ? splitOptions(fields[dash + 3]) : [])
    }

    /// Decodes the kernel's `\ooo` octal escapes.
    static func unescape<S: Collection>(_ field: S) -> String where S.Element == UInt8, S.Index == Int {
        guard field.contains(0x5C) else { return String(decoding: field, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(field.count)
        var i = field.startIndex
        while i < field.endIndex {
            let b = field[i]
            if b == 0x5C, field.endIndex - i >= 4,
                let d1 = octal(field[i + 1]), let d2 = octal(field[i + 2]), let d3 = octal(field[i + 3]),
                d1 <= 3
            {
                out.append(d1 << 6 | d2 << 3 | d3)
                i += 4
            } else {
                out.append(b)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func octal(_ b: UInt8) -> UInt8? { (0x30...0x37).contains(b) ? b - 0x30 : nil }

    private static func splitOptions<S: Collection>(_ field: S) -> [String]
    where S.Element == UInt8, S.Index == Int, S.SubSequence: Collection, S.SubSequence.Index == Int {
        field.split(separator: 0x2C).map { unescape($0) }
    }

    // MARK: Queries

    /// The mount that holds `path`.
    ///
    /// The rule: among the entries whose mount point is a prefix of `path` on a component boundary
    /// (`/mnt/a` holds `/mnt/a` and `/mnt/a/x`, not `/mnt/ab`), the one with the longest mount
    /// point; for the same mount point the last one in the table wins, because the kernel stacks
    /// a later mount on top of an earlier one. When the entries' parent IDs link that candidate to
    /// the root of the table, the path is instead resolved the way the kernel walks it, mount by
    /// mount, so a mount hidden by a later mount on an ancestor directory (mount `/mnt/a/b`,
    /// then mount over `/mnt/a`) is not returned.
    ///
    /// `path` must be absolute; repeated and trailing slashes are ignored, but `.`, `..` and
    /// symbolic links are not resolved (pass a `realpath` for that). Returns `nil` for a relative
    /// path or when no entry matches.
    public static func mount(containing path: String, in entries: [MountEntry]) -> MountEntry? {
        let target = normalize(path)
        guard target.first == "/" else { return nil }
        var matching: [Int] = []  // indices into entries, in table order
        for (i, entry) in entries.enumerated() where isPrefix(normalize(entry.mountPoint), of: target) {
            matching.append(i)
        }
        guard !matching.isEmpty else { return nil }
        let lengths = Dictionary(
            uniqueKeysWithValues: matching.map { ($0, normalize(entries[$0].mountPoint).utf8.count) })

        // Longest prefix, last wins on ties.
        var longest = matching[0]
        for i in matching where lengths[i]! >= lengths[longest]! { longest = i }

        // Kernel-style walk when the tree is connected.
        var indexByID: [Int: Int] = [:]
        for (i, entry) in entries.enumerated() { indexByID[entry.mountID] = i }
        func rootOf(_ start: Int) -> Int? {
            var current = start
            var steps = 0
            while let parent = indexByID[entries[current].parentID], parent != current {
                current = parent
                steps += 1
                if steps > entries.count { return nil }  // a cycle: not a real tree
            }
            return current
        }
        guard let root = rootOf(longest), matching.contains(root) else { return entries[longest] }
        var childrenByParent: [Int: [Int]] = [:]
        for i in matching where i != root {
            childrenByParent[entries[i].parentID, default: []].append(i)
        }
        var current = root
        var visited: Set<Int> = [root]
        while let children = childrenByParent[entries[current].mountID], !children.isEmpty {
            // The path walk crosses the nearest mount point first; last one wins on ties.
            var next = children[0]
            for i in children where lengths[i]! <= lengths[next]! { next = i }
            guard visited.insert(next).inserted else { break }
            current = next
        }
        return entries[current]
    }

    /// Every entry whose filesystem is the block device `major:minor`, in table order (a device
    /// can be mounted, or bind-mounted, in several places; the last one is the newest).
    ///
    /// An entry matches when its `major:minor` is the device's, or when its `source` is a path
    /// under `/dev/` naming that block device (this catches btrfs, whose mounts show an anonymous
    /// device number, and `/dev/mapper` or `/dev/disk/by-*` sources). A FUSE filesystem that is
    /// not `fuseblk` (such as `fuse.fusefat`, whose source is just `fusefat`) cannot be matched.
    public static func mounts(ofDevice major: UInt32, minor: UInt32, in entries: [MountEntry]) -> [MountEntry] {
        var numbersBySource: [String: (major: UInt32, minor: UInt32)?] = [:]
        return entries.filter { entry in
            if entry.major == major && entry.minor == minor { return true }
            guard entry.source.hasPrefix("/dev/") else { return false }
            let number: (major: UInt32, minor: UInt32)?
            if let cached = numbersBySource[entry.source] {
                number = cached
            } else {
                number = SystemFiles.blockDeviceNumber(of: entry.source)
                numbersBySource[entry.source] = number
            }
            return number.map { $0.major == major && $0.minor == minor } ?? false
        }
    }

    /// The mount points of `mounts(ofDevice:minor:in:)`, without duplicates, in table order.
    public static func mountPoints(ofDevice major: UInt32, minor: UInt32, in entries: [MountEntry]) -> [String] {
        var seen: Set<String> = []
        return mounts(ofDevice: major, minor: minor, in: entries).compactMap {
            seen.insert($0.mountPoint).inserted ? $0.mountPoint : nil
        }
    }

    // MARK: Path helpers

    /// Collapses repeated slashes and drops a trailing slash (except for `/` itself).
    static func normalize(_ path: String) -> String {
        guard path.contains("//") || (path.count > 1 && path.hasSuffix("/")) else { return path }
        var out = ""
        out.reserveCapacity(path.utf8.count)
        var lastWasSlash = false
        for ch in path {
            if ch == "/" {
                if lastWasSlash { continue }
                lastWasSlash = true
            } else {
                lastWasSlash = false
            }
            out.append(ch)
        }
        if out.count > 1 && out.hasSuffix("/") { out.removeLast() }
        return out
    }

    /// Whether normalized `prefix` is `path` or an ancestor directory of it.
    static func isPrefix(_ prefix: String, of path: String) -> Bool {
        if prefix == "/" { return path.hasPrefix("/") }
        guard path.hasPrefix(prefix) else { return false }
        let p = prefix.utf8
        let s = path.utf8
        if p.count == s.count { return true }
        return s[s.index(s.startIndex, offsetBy: p.count)] == UInt8(ascii: "/")
    }
}

extension Int {
    fileprivate init?<S: Collection>(ascii: S) where S.Element == UInt8 {
        guard let value = UInt64(ascii: ascii), value <= UInt64(Int.max) else { return nil }
        self = Int(value)
    }
}

extension UInt32 {
    fileprivate init?<S: Collection>(ascii: S) where S.Element == UInt8 {
        guard let value = UInt64(ascii: ascii), value <= UInt64(UInt32.max) else { return nil }
        self = UInt32(value)
    }
}

extension UInt64 {
    fileprivate init?<S: Collection>(ascii: S) where S.Element == UInt8 {
        guard !ascii.isEmpty, ascii.count <= 19 else { return nil }
        var value: UInt64 = 0
        for b in ascii {
            guard (0x30...0x39).contains(b) else { return nil }
            value = value * 10 + UInt64(b - 0x30)
        }
        self = value
    }
}
