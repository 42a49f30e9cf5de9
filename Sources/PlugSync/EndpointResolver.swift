import Devices
import LocalBackend
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// An endpoint made concrete for one run: where it is now, and what to leave out of it.
public struct ResolvedEndpoint {
    public var endpoint: Endpoint
    /// The folder synchronized (local and device endpoints).
    public var root: String
    /// Paths the listing leaves out: the File Check file when it lies inside `root`.
    public var excluded: Set<FileName> = []
    /// For a device: which drive, for the log.
    public var drive: String?
    /// For a device: its mount point.
    public var mountPoint: String?
    /// For a device: the drive's identity, for the run history.
    public var driveIdentity: DriveIdentity?
}

/// Turns an `EndpointSpec` into a working endpoint: a device into its mount point, a File Check
/// into a yes or no. Refusals are `PreconditionError`s (exit 3).
public struct EndpointResolver {
    public var mounts: [MountEntry]
    /// udev's block devices, read when first asked for: only a drive needs them, and reading
    /// them walks sysfs (a run between folders and servers does without).
    public var devices: [BlockDevice] {
        get { deviceList.value }
        set { deviceList = DeviceList(newValue) }
    }
    private var deviceList: DeviceList

    /// Reads the mount table now, and udev's block devices when a drive is resolved.
    public init() {
        mounts = (try? MountTable.read()) ?? []
        deviceList = DeviceList(nil)
    }

    public init(mounts: [MountEntry], devices: [BlockDevice]) {
        self.mounts = mounts
        self.deviceList = DeviceList(devices)
    }

    /// The devices, enumerated once on first use (the resolver is a value; copies share it).
    private final class DeviceList: @unchecked Sendable {
        private let lock = Lock()
        private var devices: [BlockDevice]?
        init(_ devices: [BlockDevice]?) { self.devices = devices }
        var value: [BlockDevice] {
            lock.withLock {
                if let devices { return devices }
                let read = (try? BlockDevices.enumerate()) ?? []
                devices = read
                return read
            }
        }
    }

    /// - Parameters:
    ///   - connections: for an FTP endpoint, how many control connections it may open.
    ///   - drive: for a device, the mount the agent matched it to (identity and File Check
    ///     passed there): it is used if it is still mounted, and no other drive is looked for.
    public func resolve(
        _ spec: EndpointSpec, role: String, connections: Int = 4, drive matched: MatchedDrive? = nil
    ) throws -> ResolvedEndpoint {
        switch spec.location {
        case .local(let path):
            if let check = spec.fileCheck, let failure = check.failure(root: path) {
                throw PreconditionError("File Check of the \(role) failed: \(failure)")
            }
            var excluded: Set<FileName> = []
            if let relative = spec.fileCheck?.relativePath(under: path) { excluded.insert(relative) }
            // A filesystem's own `lost+found` is no data: at its root it is never an orphan.
            let real = realPath(path)
            if mounts.contains(where: { $0.mountPoint == real }) { excluded.insert(Self.lostAndFound) }
            return ResolvedEndpoint(endpoint: localEndpoint(path), root: path, excluded: excluded)
        case .device(let device):
            let (mountPoint, drive, check) =
                try matched.map { try confirm($0, role: role) } ?? locate(device, fileCheck: spec.fileCheck, role: role)
            let root =
                device.directory.isEmpty ? mountPoint : (mountPoint == "/" ? "" : mountPoint) + "/" + device.directory
            var excluded: Set<FileName> = []
            if let relative = spec.fileCheck?.relativePath(onDriveAt: mountPoint, directory: device.directory) {
                excluded.insert(relative)
            }
            // A filesystem's own `lost+found` is no data: at the drive's root it is never an orphan.
            if FileCheck.components(of: device.directory).isEmpty { excluded.insert(Self.lostAndFound) }
            // The folder must lie on the drive: a symbolic link on the way there (which the drive
            // itself can hold) would take the run anywhere on the host.
            if let problem = LocalEndpoint.problemBeneath(mountPoint: mountPoint, directory: device.directory) {
                throw PreconditionError("the \(role) directory cannot be used: \(problem)")
            }
            // Writes must land on this drive, not in the bare mount point if it is pulled mid-run;
            // the root is opened beneath the mount point, never through a symlink.
            let endpoint = localEndpoint(root, mountPoint: mountPoint)
            // A drive is untrusted: no setuid, setgid or writable-by-others modes come off it.
            endpoint.isRemovableDrive = true
            var st = stat()
            if stat(mountPoint, &st) == 0 { endpoint.requiredDevice = UInt64(st.st_dev) }
            // A drive can be pulled: no final name before its data is on it.
            let fsType = MountTable.mount(containing: realPath(root), in: mounts)?.fsType ?? ""
            endpoint.fileSync = ["ext3", "ext4", "xfs", "btrfs"].contains(fsType) ? .data : .full
            return ResolvedEndpoint(
                endpoint: endpoint, root: root, excluded: excluded, drive: drive, mountPoint: mountPoint,
                driveIdentity: identity(ofMountAt: mountPoint).map { identity in
                    var identity = identity
                    identity.check = check
                    return identity
                })
        case .server(let server):
            return try server.resolve(fileCheck: spec.fileCheck, role: role, connections: connections)
        }
    }

    static let lostAndFound = FileName("lost+found")

    /// A local endpoint with the timestamp precision and abilities of the filesystem under it.
    /// - Parameter mountPoint: for a drive, its mount point: the root is opened beneath it.
    public func localEndpoint(_ path: String, mountPoint: String? = nil) -> LocalEndpoint {
        guard let mount = MountTable.mount(containing: realPath(path), in: mounts) else {
            return LocalEndpoint(root: path, mountPoint: mountPoint)
        }
        let precision = TimestampPrecision.of(mount)
        let fat =
            ["vfat", "msdos", "exfat", "fuse.fusefat", "fuse.exfat", "fuseblk"].contains(mount.fsType)
            && precision.nanoseconds >= 1_000_000_000
        // FAT and exFAT see no case in names (`A.txt` and `a.txt` are one file) and hold no
        // hard links, whichever driver mounts them.
        let noCase = fat || ["vfat", "msdos", "exfat"].contains(mount.fsType)
        // fusefat writes no name outside ASCII (EPERM); the kernel's vfat does.
        let forbidden =
            (noCase ? EndpointCapabilities.fatForbiddenNameBytes : [])
            + (mount.fsType == "fuse.fusefat" ? Array(0x80...0xFF) : [])
        return LocalEndpoint(
            root: path, timePrecision: precision.nanoseconds, keepsModes: !fat, keepsSymlinks: !fat,
            timesAfterRename: mount.fsType.hasPrefix("fuse"), keepsHardLinks: !noCase, caseInsensitiveNames: noCase,
            serialWrites: mount.fsType == "fuse.fusefat",
            forbiddenNameBytes: forbidden, mountPoint: mountPoint)
    }

    /// The two folders' real paths when one is inside the other (or they are the same), else nil.
    static func overlap(_ a: String, _ b: String) -> (String, String)? {
        let (realA, realB) = (realPath(a), realPath(b))
        func inside(_ inner: String, _ outer: String) -> Bool {
            inner == outer || inner.hasPrefix(outer == "/" ? "/" : outer + "/")
        }
        return inside(realA, realB) || inside(realB, realA) ? (realA, realB) : nil
    }

    func realPath(_ path: String) -> String { Self.realPath(path) }

    /// The path with symbolic links resolved, as far as it exists.
    static func realPath(_ path: String) -> String {
        var components = path.split(separator: "/").map(String.init)
        var suffix: [String] = []
        while true {
            let candidate = "/" + components.joined(separator: "/")
            if let resolved = realpath(candidate, nil) {
                defer { free(resolved) }
                let base = String(cString: resolved)
                return suffix.isEmpty
                    ? base : (base == "/" ? "" : base) + "/" + suffix.reversed().joined(separator: "/")
            }
            guard let last = components.popLast() else { return path }
            suffix.append(last)
        }
    }

    /// Drives whose identity matches (all given fields), with their mount points.
    public func candidates(for device: DeviceSpec) -> [(mountPoint: String, drive: String)] {
        let hasIdentity = device.label != nil || device.uuid != nil || device.serial != nil
        if hasIdentity {
            var found: [(String, String)] = []
            for block in devices where Self.matches(block, device) {
                for point in MountTable.mountPoints(ofDevice: block.major, minor: block.minor, in: mounts) {
                    found.append((point, "\(block.devnode) (\(Self.identity(block)))"))
                }
            }
            return found
        }
        // Recognized by File Check alone: any mounted filesystem that could be a drive.
        return mounts.filter { Self.couldBeDrive($0) }.map { ($0.mountPoint, "\($0.source) (\($0.fsType))") }
    }

    /// Where a block device is mounted now.
    public func mountPoints(of block: BlockDevice) -> [String] {
        MountTable.mountPoints(ofDevice: block.major, minor: block.minor, in: mounts)
    }

    public static func matches(_ block: BlockDevice, _ device: DeviceSpec) -> Bool {
        if let label = device.label, block.label != label && block.udevLabel != label { return false }
        if let uuid = device.uuid, block.uuid?.lowercased() != uuid.lowercased() { return false }
        if let serial = device.serial, block.serial != serial { return false }
        return true
    }

    static func identity(_ block: BlockDevice) -> String {
        var parts: [String] = []
        if let label = block.label { parts.append("label \(label)") }
        if let uuid = block.uuid { parts.append("uuid \(uuid)") }
        if let serial = block.serial { parts.append("serial \(serial)") }
        return parts.isEmpty ? "no identity" : parts.joined(separator: ", ")
    }

    /// The identity of the drive mounted at `mountPoint` (the mount seen there), as udev
    /// describes it; a mount udev knows nothing of is named by its source.
    func identity(ofMountAt mountPoint: String) -> DriveIdentity? {
        guard let entry = mounts.last(where: { $0.mountPoint == mountPoint }) else { return nil }
        if entry.major != 0 || entry.minor != 0,
            let block = devices.first(where: { $0.major == entry.major && $0.minor == entry.minor }),
            block.label != nil || block.uuid != nil || block.serial != nil
        {
            return DriveIdentity(label: block.label, uuid: block.uuid, serial: block.serial, device: block.devnode)
        }
        return DriveIdentity(device: entry.source)
    }

    static func couldBeDrive(_ mount: MountEntry) -> Bool {
        let pseudo: Set<String> = [
            "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "securityfs", "debugfs",
            "tracefs", "configfs", "fusectl", "mqueue", "hugetlbfs", "pstore", "bpf", "binfmt_misc",
            "autofs", "overlay", "rpc_pipefs", "nsfs", "efivarfs", "ramfs",
        ]
        return !pseudo.contains(mount.fsType) && mount.mountPoint != "/"
    }

    /// The drive the agent matched, if the same mount is still there.
    func confirm(_ drive: MatchedDrive, role: String) throws -> (String, String, String?) {
        guard mounts.contains(where: { $0.mountID == drive.mountID && $0.mountPoint == drive.mountPoint }) else {
            throw PreconditionError(
                "the \(role) drive \(drive.description) that started this run is not mounted at \(drive.mountPoint) any more"
            )
        }
        return (drive.mountPoint, drive.description, drive.check)
    }

    /// The one mounted drive that matches `device` and passes its File Check: its mount point,
    /// how the report names it, and what its check file holds.
    func locate(_ device: DeviceSpec, fileCheck: FileCheck?, role: String) throws -> (String, String, String?) {
        let found = candidates(for: device)
        if found.isEmpty {
            var message = "the \(role) drive \(device.summary) is not mounted"
            if devices.allSatisfy({ !$0.udevInitialized })
                && (device.label != nil || device.uuid != nil || device.serial != nil)
            {
                message += " (udev knows no drive identities here: is systemd-udevd running?)"
            }
            throw PreconditionError(message)
        }
        guard let fileCheck else {
            let points = Set(found.map(\.mountPoint))
            if points.count > 1 {
                throw PreconditionError(
                    "\(points.count) mounted drives match the \(role) \(device.summary) (\(points.sorted().joined(separator: ", "))); add a file_check to tell them apart"
                )
            }
            return (found[0].mountPoint, found[0].drive, nil)
        }
        var passed: [(String, String, String?)] = []
        var failures: [String] = []
        for candidate in found {
            let outcome = fileCheck.outcome(root: candidate.mountPoint, drive: true)
            if let failure = outcome.failure {
                failures.append(failure)
            } else if !passed.contains(where: { $0.0 == candidate.mountPoint }) {
                passed.append((candidate.mountPoint, candidate.drive, outcome.content))
            }
        }
        if passed.isEmpty {
            throw PreconditionError("File Check of the \(role) failed: " + failures.joined(separator: "; "))
        }
        if passed.count > 1 {
            throw PreconditionError(
                "\(passed.count) mounted drives pass the \(role) File Check (\(passed.map(\.0).joined(separator: ", "))); give the check a regex that tells them apart"
            )
        }
        return passed[0]
    }
}
