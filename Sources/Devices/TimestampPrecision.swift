/// How finely a filesystem stores modification times.
///
/// Two timestamps that differ by less than the coarser precision of the two sides must be
/// treated as equal when deciding whether a file changed.
///
/// The rule, by the mount's filesystem type (`MountEntry.fsType`):
///
/// | type | precision |
/// |---|---|
/// | `vfat`, `msdos`, `fat`, `umsdos`, `fuse.fusefat` | 2 s (FAT stores even seconds) |
/// | `exfat`, `fuse.exfat`, `fuse.exfat-fuse` | 1 s |
/// | `hfs`, `hfsplus`, `iso9660`, `fuse.sshfs` | 1 s |
/// | `ntfs`, `ntfs3`, `fuse.ntfs-3g`, `smb3`, `cifs` | 100 ns |
/// | `fuseblk` | by the device, see below |
/// | anything else (`ext4`, `xfs`, `btrfs`, `tmpfs`, …) | exact (1 ns) |
///
/// `fuseblk` is what both exfat-fuse and ntfs-3g show, so the type alone cannot tell. Then, in
/// order: (1) if `source` is a path under `/dev/` that can be read, its boot sector decides
/// (`EXFAT   ` at byte 3 → exFAT, 1 s; `NTFS    ` at byte 3 → NTFS, 100 ns; `FAT` at byte 0x36
/// or 0x52 → FAT, 2 s); (2) else udev's `ID_FS_TYPE` for the mount's `major:minor` is mapped
/// with the table above; (3) else 1 s, the safe guess.
public struct TimestampPrecision: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The granularity in nanoseconds; at least 1.
    public var nanoseconds: Int64

    /// A precision of `nanoseconds` (values below 1 become 1).
    public init(nanoseconds: Int64) { self.nanoseconds = max(1, nanoseconds) }

    /// Nanosecond timestamps (ext4, xfs, btrfs, tmpfs, …).
    public static let exact = TimestampPrecision(nanoseconds: 1)
    /// NTFS and SMB: 100 ns ticks.
    public static let hundredNanoseconds = TimestampPrecision(nanoseconds: 100)
    /// exFAT (as exfat-fuse keeps it), HFS+, ISO 9660, SFTP v3.
    public static let oneSecond = TimestampPrecision(nanoseconds: 1_000_000_000)
    /// FAT12/16/32.
    public static let twoSeconds = TimestampPrecision(nanoseconds: 2_000_000_000)

    /// `true` for `.exact`.
    public var isExact: Bool { nanoseconds <= 1 }
    /// The precision in seconds, e.g. `2.0`.
    public var seconds: Double { Double(nanoseconds) / 1e9 }

    public static func < (lhs: TimestampPrecision, rhs: TimestampPrecision) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    public var description: String {
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000) s" }
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000) ms" }
        if nanoseconds % 1_000 == 0 { return "\(nanoseconds / 1_000) µs" }
        return "\(nanoseconds) ns"
    }

    /// The precision implied by a filesystem type name (a mount's fs type or udev's
    /// `ID_FS_TYPE`); `nil` for `fuseblk`, which does not say which filesystem it is.
    public static func forFilesystemType(_ type: String) -> TimestampPrecision? {
        switch type.lowercased() {
        case "vfat", "msdos", "fat", "umsdos", "fuse.fusefat", "fusefat":
            return .twoSeconds
        case "exfat", "fuse.exfat", "fuse.exfat-fuse":
            return .oneSecond
        case "hfs", "hfsplus", "iso9660", "fuse.sshfs":
            return .oneSecond
        case "ntfs", "ntfs3", "fuse.ntfs-3g", "fuse.ntfs", "smb3", "cifs":
            return .hundredNanoseconds
        case "fuseblk":
            return nil
        default:
            return .exact
        }
    }

    /// The precision of the filesystem of a mount, following the rule in the type's
    /// documentation. For `fuseblk` this may read 512 bytes of the device and ask udev.
    public static func of(_ entry: MountEntry) -> TimestampPrecision {
        if let known = forFilesystemType(entry.fsType) { return known }
        return resolveFuseblk(
            bootSectorType: entry.source.hasPrefix("/dev/") ? sniffFilesystemType(devicePath: entry.source) : nil,
            udevType: { BlockDevices.device(major: entry.major, minor: entry.minor)?.fsType })
    }

    /// The precision of the filesystem holding `path` (see `MountTable.mount(containing:in:)`);
    /// `nil` if no entry holds it.
    public static func of(path: String, in entries: [MountEntry]) -> TimestampPrecision? {
        MountTable.mount(containing: path, in: entries).map { of($0) }
    }

    /// Steps (1)–(3) of the `fuseblk` rule, given what the boot sector said and a way to ask udev.
    static func resolveFuseblk(bootSectorType: String?, udevType: () -> String?) -> TimestampPrecision {
        if let type = bootSectorType, let precision = forFilesystemType(type) { return precision }
        if let type = udevType(), let precision = forFilesystemType(type) { return precision }
        return .oneSecond
    }

    /// Reads the first sector of a device or image and names its filesystem (see
    /// `sniffFilesystemType(bootSector:)`); `nil` if unreadable or unrecognized.
    public static func sniffFilesystemType(devicePath: String) -> String? {
        guard let sector = SystemFiles.readPrefix(devicePath, count: 512) else { return nil }
        return sniffFilesystemType(bootSector: sector)
    }

    /// Names the filesystem of a boot sector: `"exfat"` (`EXFAT   ` at offset 3), `"ntfs"`
    /// (`NTFS    ` at offset 3), `"vfat"` (`FAT` at 0x36, FAT12/16, or at 0x52, FAT32), else `nil`.
    public static func sniffFilesystemType(bootSector: [UInt8]) -> String? {
        func has(_ text: String, at offset: Int) -> Bool {
            let expected = Array(text.utf8)
            guard bootSector.count >= offset + expected.count else { return false }
            return bootSector[offset..<offset + expected.count].elementsEqual(expected)
        }
        if has("EXFAT   ", at: 3) { return "exfat" }
        if has("NTFS    ", at: 3) { return "ntfs" }
        if has("FAT", at: 0x36) || has("FAT", at: 0x52) { return "vfat" }
        return nil
    }
}
