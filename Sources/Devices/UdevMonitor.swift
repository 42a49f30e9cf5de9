import CUdev

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One block-device event from udevd: a drive (or partition) was added, changed or removed.
public struct DeviceEvent: Sendable {
    /// `add`, `change`, `remove`, …
    public var action: String
    /// The device as udev describes it after the event (identity fields from the event).
    public var device: BlockDevice
}

/// A libudev monitor on udevd's netlink socket, filtered to the `block` subsystem.
///
/// Owns its `udev` and `udev_monitor` objects and unrefs them in `deinit`. The caller polls
/// `fileDescriptor` (readable when an event waits) and calls `receive()`; nothing here sleeps.
public final class UdevMonitor {
    private let context: UdevContext
    private let monitor: OpaquePointer

    /// Connects to udevd's events ("udev", processed by udevd, with its properties).
    public init() throws {
        context = try UdevContext()
        guard let monitor = udev_monitor_new_from_netlink(context.pointer, "udev") else {
            throw DeviceError("cannot open the udev event socket (netlink)", errno: errno)
        }
        self.monitor = monitor
        var rc = udev_monitor_filter_add_match_subsystem_devtype(monitor, "block", nil)
        if rc < 0 {
            udev_monitor_unref(monitor)
            throw DeviceError.system("cannot filter udev events to block devices", errno: -rc)
        }
        rc = udev_monitor_enable_receiving(monitor)
        if rc < 0 {
            udev_monitor_unref(monitor)
            throw DeviceError.system("cannot receive udev events", errno: -rc)
        }
        // Non-blocking, so that a spurious wake-up never blocks the event loop.
        let fd = udev_monitor_get_fd(monitor)
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    deinit { udev_monitor_unref(monitor) }

    /// Readable when an event is waiting.
    public var fileDescriptor: Int32 { udev_monitor_get_fd(monitor) }

    /// The next waiting event, or `nil` when there is none now.
    public func receive() -> DeviceEvent? {
        guard let raw = udev_monitor_receive_device(monitor) else { return nil }
        let device = UdevDevice(owning: raw, context: context)
        let action = udev_device_get_action(raw).map { String(cString: $0) } ?? "change"
        return DeviceEvent(action: action, device: BlockDevices.describe(device))
    }
}

extension UdevDevice {
    /// Takes over a reference the caller owns (from `udev_monitor_receive_device`).
    convenience init(owning pointer: OpaquePointer, context: UdevContext) {
        self.init(context: context, adopting: pointer)
    }
}
