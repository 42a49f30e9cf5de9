import CUdev

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// Thin owners of libudev objects. Each class holds one reference and drops it in `deinit`;
// objects derived from a context keep that context alive. None of these types is public, and
// none is shared between threads: every public call creates and releases its own.

/// Owns a `struct udev *`.
final class UdevContext {
    let pointer: OpaquePointer

    init() throws {
        errno = 0
        guard let pointer = udev_new() else {
            throw DeviceError.system("cannot create a libudev context", errno: errno == 0 ? ENOMEM : errno)
        }
        self.pointer = pointer
    }

    deinit { udev_unref(pointer) }
}

/// Owns a `struct udev_enumerate *`.
final class UdevEnumerator {
    let context: UdevContext
    let pointer: OpaquePointer

    init(context: UdevContext, subsystem: String) throws {
        guard let pointer = udev_enumerate_new(context.pointer) else {
            throw DeviceError("cannot create a libudev enumerator", errno: ENOMEM)
        }
        self.context = context
        self.pointer = pointer
        let rc = udev_enumerate_add_match_subsystem(pointer, subsystem)
        if rc < 0 { throw DeviceError.system("cannot filter udev devices by subsystem \(subsystem)", errno: -rc) }
    }

    /// Scans sysfs and returns the sys paths of the matching devices, sorted.
    func scan() throws -> [String] {
        let rc = udev_enumerate_scan_devices(pointer)
        if rc < 0 { throw DeviceError.system("cannot enumerate udev devices under /sys", errno: -rc) }
        var paths: [String] = []
        var entry = udev_enumerate_get_list_entry(pointer)
        while let current = entry {
            if let name = udev_list_entry_get_name(current) { paths.append(String(cString: name)) }
            entry = udev_list_entry_get_next(current)
        }
        return paths
    }

    deinit { udev_enumerate_unref(pointer) }
}

/// Owns a `struct udev_device *`.
final class UdevDevice {
    let context: UdevContext
    let pointer: OpaquePointer

    private init(context: UdevContext, pointer: OpaquePointer) {
        self.context = context
        self.pointer = pointer
    }

    /// Adopts a reference the caller owns.
    convenience init(context: UdevContext, adopting pointer: OpaquePointer) {
        self.init(context: context, pointer: pointer)
    }

    convenience init?(context: UdevContext, sysPath: String) {
        guard let pointer = udev_device_new_from_syspath(context.pointer, sysPath) else { return nil }
        self.init(context: context, pointer: pointer)
    }

    convenience init?(context: UdevContext, blockMajor major: UInt32, minor: UInt32) {
        let devnum = dev_t(DeviceNumber.make(major: major, minor: minor))
        guard let pointer = udev_device_new_from_devnum(context.pointer, CChar(UInt8(ascii: "b")), devnum)
        else { return nil }
        self.init(context: context, pointer: pointer)
    }

    deinit { udev_device_unref(pointer) }

    /// A udev property (from the udev database, or the kernel's uevent when there is none);
    /// `nil` when absent or empty.
    func property(_ key: String) -> String? {
        nonEmpty(udev_device_get_property_value(pointer, key))
    }

    /// A sysfs attribute of the device; `nil` when absent or empty.
    func sysAttribute(_ name: String) -> String? {
        nonEmpty(udev_device_get_sysattr_value(pointer, name))
    }

    var devnode: String? { nonEmpty(udev_device_get_devnode(pointer)) }
    var sysName: String? { nonEmpty(udev_device_get_sysname(pointer)) }
    var devType: String? { nonEmpty(udev_device_get_devtype(pointer)) }
    var subsystem: String? { nonEmpty(udev_device_get_subsystem(pointer)) }
    var number: (major: UInt32, minor: UInt32) { DeviceNumber.split(UInt64(udev_device_get_devnum(pointer))) }

    /// Whether udevd has processed this device and stored its properties in its database.
    var isInitialized: Bool { udev_device_get_is_initialized(pointer) > 0 }

    /// The nearest ancestor in `subsystem` (with `devType`, if given), with its own reference.
    func parent(subsystem: String, devType: String?) -> UdevDevice? {
        guard let borrowed = udev_device_get_parent_with_subsystem_devtype(pointer, subsystem, devType),
            let owned = udev_device_ref(borrowed)
        else { return nil }
        return UdevDevice(context: context, pointer: owned)
    }

    private func nonEmpty(_ text: UnsafePointer<CChar>?) -> String? {
        guard let text, text.pointee != 0 else { return nil }
        return String(cString: text)
    }
}
