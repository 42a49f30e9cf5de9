#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A block device (a disk or a partition) as udev describes it.
///
/// Identity fields come from udev's database, which exists only where `systemd-udevd` runs and
/// has processed the device; otherwise they are `nil` and `udevInitialized` is `false`.
public struct BlockDevice: Sendable, Hashable {
    /// Device node, e.g. `/dev/sdb1` or `/dev/loop0`.
    public var devnode: String
    /// Kernel name, e.g. `sdb1`.
    public var sysName: String
    /// Device number, major part.
    public var major: UInt32
    /// Device number, minor part.
    public var minor: UInt32
    /// The filesystem label as written on the drive: `ID_FS_LABEL_ENC` decoded (its `\xHH`
    /// escapes turned back into bytes), else `ID_FS_LABEL`. For a label `My Disk` this is
    /// `My Disk`, while udev's `ID_FS_LABEL` says `My_Disk` (see `udevLabel`).
    public var label: String?
    /// `ID_FS_LABEL` verbatim: udev's "safe" label, with blanks and unusual characters replaced
    /// by `_`. Equal to `label` for plain labels; match a user's `label:` against both.
    public var udevLabel: String?
    /// `ID_FS_UUID`: the filesystem UUID or volume serial (`137F-24C4` on FAT and exFAT).
    public var uuid: String?
    /// `ID_SERIAL_SHORT`, else `ID_SERIAL`: the drive's serial number (absent for loop devices).
    public var serial: String?
    /// `ID_FS_TYPE`, e.g. `ext4`, `vfat`, `exfat`, `ntfs`.
    public var fsType: String?
    /// `ID_FS_USAGE`, e.g. `filesystem`, `crypto`, `raid`, `other`.
    public var fsUsage: String?
    /// `ID_MODEL`, e.g. `Cruzer_Blade`.
    public var model: String?
    /// `ID_VENDOR`, e.g. `SanDisk`.
    public var vendor: String?
    /// `ID_BUS`, e.g. `usb`, `ata`, `scsi`; `nil` for loop and virtio devices.
    public var busType: String?
    /// The sysfs `removable` flag of the disk (of the parent disk, for a partition). Many USB
    /// hard disks say `false` here; `busType == "usb"` is the better hint for those.
    public var isRemovable: Bool?
    /// `true` for a partition, `false` for a whole disk (or a loop device without partitions).
    public var isPartition: Bool
    /// Whether udevd has processed this device, so that missing identity fields really are
    /// missing rather than unknown.
    public var udevInitialized: Bool

    /// Creates a device description; identity fields default to `nil`.
    public init(
        devnode: String, sysName: String, major: UInt32, minor: UInt32, label: String? = nil,
        udevLabel: String? = nil, uuid: String? = nil, serial: String? = nil, fsType: String? = nil,
        fsUsage: String? = nil, model: String? = nil, vendor: String? = nil, busType: String? = nil,
        isRemovable: Bool? = nil, isPartition: Bool = false, udevInitialized: Bool = false
    ) {
        self.devnode = devnode
        self.sysName = sysName
        self.major = major
        self.minor = minor
        self.label = label
        self.udevLabel = udevLabel
        self.uuid = uuid
        self.serial = serial
        self.fsType = fsType
        self.fsUsage = fsUsage
        self.model = model
        self.vendor = vendor
        self.busType = busType
        self.isRemovable = isRemovable
        self.isPartition = isPartition
        self.udevInitialized = udevInitialized
    }
}

/// Finding block devices through libudev.
public enum BlockDevices {
    /// Block devices that carry a filesystem: those udev marks `ID_FS_USAGE=filesystem`, plus
    /// every block device that is mounted now (found by device number in `/proc/self/mountinfo`)
    /// even when udev knows nothing about it. Without a running udevd (no database under
    /// `/run/udev`), that second rule is what lists anything at all, with `nil` identity fields.
    ///
    /// Throws `DeviceError` only if libudev cannot be set up or `/sys` cannot be scanned.
    public static func enumerate() throws -> [BlockDevice] {
        let context = try UdevContext()
        let enumerator = try UdevEnumerator(context: context, subsystem: "block")
        let paths = try enumerator.scan()
        let mounted = mountedDeviceNumbers()
        var result: [BlockDevice] = []
        for path in paths {
            guard let device = UdevDevice(context: context, sysPath: path) else { continue }
            let number = device.number
            guard number.major != 0 || number.minor != 0 else { continue }
            let isMounted = mounted.contains(DeviceNumber.make(major: number.major, minor: number.minor))
            guard device.property("ID_FS_USAGE") == "filesystem" || isMounted else { continue }
            result.append(describe(device))
        }
        return result
    }

    /// The block device with this device number, or `nil` if there is none (or libudev fails).
    public static func device(major: UInt32, minor: UInt32) -> BlockDevice? {
        guard let context = try? UdevContext(),
            let device = UdevDevice(context: context, blockMajor: major, minor: minor)
        else { return nil }
        return describe(device)
    }

    /// The block device that `path` (e.g. `/dev/sdb1`, `/dev/disk/by-label/X`) names, or `nil`
    /// if it is not a block device node.
    public static func device(path: String) -> BlockDevice? {
        guard let number = SystemFiles.blockDeviceNumber(of: path) else { return nil }
        return device(major: number.major, minor: number.minor)
    }

    static func describe(_ device: UdevDevice) -> BlockDevice {
        let number = device.number
        let sysName = device.sysName ?? "\(number.major):\(number.minor)"
        let isPartition = device.devType == "partition"
        let disk = isPartition ? device.parent(subsystem: "block", devType: "disk") : device
        let removable: Bool?
        switch disk?.sysAttribute("removable") {
        case "1": removable = true
        case "0": removable = false
        default: removable = nil
        }
        let udevLabel = device.property("ID_FS_LABEL")
        return BlockDevice(
            devnode: device.devnode ?? device.property("DEVNAME").map { $0.hasPrefix("/") ? $0 : "/dev/" + $0 }
                ?? "/dev/" + sysName,
            sysName: sysName, major: number.major, minor: number.minor,
            label: device.property("ID_FS_LABEL_ENC").map(decodeUdevEscapes) ?? udevLabel,
            udevLabel: udevLabel,
            uuid: device.property("ID_FS_UUID"),
            serial: device.property("ID_SERIAL_SHORT") ?? device.property("ID_SERIAL"),
            fsType: device.property("ID_FS_TYPE"),
            fsUsage: device.property("ID_FS_USAGE"),
            model: device.property("ID_MODEL"),
            vendor: device.property("ID_VENDOR"),
            busType: device.property("ID_BUS"),
            isRemovable: removable,
            isPartition: isPartition,
            udevInitialized: device.isInitialized)
    }

    /// Device numbers of mounted filesystems: each entry's `major:minor`, plus the device a
    /// `/dev/...` source names (btrfs mounts show an anonymous number). Empty if unreadable.
    static func mountedDeviceNumbers() -> Set<UInt64> {
        guard let entries = try? MountTable.read() else { return [] }
        var numbers: Set<UInt64> = []
        for entry in entries {
            if entry.major != 0 { numbers.insert(DeviceNumber.make(major: entry.major, minor: entry.minor)) }
            if entry.source.hasPrefix("/dev/"), let number = SystemFiles.blockDeviceNumber(of: entry.source) {
                numbers.insert(DeviceNumber.make(major: number.major, minor: number.minor))
            }
        }
        return numbers
    }

    /// Decodes udev's `\xHH` escapes (as in `ID_FS_LABEL_ENC`, `ID_MODEL_ENC`).
    public static func decodeUdevEscapes(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(0x5C) else { return text }
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 0x30...0x39: return b - 0x30
            case 0x41...0x46: return b - 0x41 + 10
            case 0x61...0x66: return b - 0x61 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x5C, i + 3 < bytes.count, bytes[i + 1] == UInt8(ascii: "x"),
                let hi = hex(bytes[i + 2]), let lo = hex(bytes[i + 3])
            {
                out.append(hi << 4 | lo)
                i += 4
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
