#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// What changed in the mount table between two reads.
public struct MountChange: Sendable {
    /// Mounts that appeared (by mount ID), in table order.
    public var added: [MountEntry]
    /// Mounts that went away.
    public var removed: [MountEntry]
    /// The whole table now.
    public var table: [MountEntry]
}

/// Watches `/proc/self/mountinfo`: the kernel flags the open file with `POLLPRI | POLLERR`
/// whenever a mount appears or goes away. The caller polls `fileDescriptor` for `POLLPRI`
/// and calls `changes()`, which re-reads the table (which also clears the flag) and diffs it.
public final class MountWatcher {
    private let fd: Int32
    public let path: String
    /// The table as last read.
    public private(set) var table: [MountEntry]

    public init(path: String = "/proc/self/mountinfo") throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw DeviceError.system("cannot open \(path)", errno: errno) }
        table = []
        do { table = try readTable() } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Poll it for `POLLPRI`.
    public var fileDescriptor: Int32 { fd }

    /// Re-reads the table and returns what was added and removed since the last read.
    public func changes() throws -> MountChange {
        let now = try readTable()
        let before = Set(table.map(\.mountID))
        let after = Set(now.map(\.mountID))
        let change = MountChange(
            added: now.filter { !before.contains($0.mountID) },
            removed: table.filter { !after.contains($0.mountID) }, table: now)
        table = now
        return change
    }

    /// Reads the whole file again from the start through the watched descriptor.
    private func readTable() throws -> [MountEntry] {
        if lseek(fd, 0, SEEK_SET) < 0 { throw DeviceError.system("cannot rewind \(path)", errno: errno) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw DeviceError.system("cannot read \(path)", errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[..<n])
        }
        return MountTable.parse(bytes: bytes)
    }
}

/// The agent's device event loop: one `poll()` over udev's monitor socket, the mount table and
/// a wake-up descriptor. It blocks until something happens; there is no timer and no sleep.
public final class DeviceWatch: @unchecked Sendable {
    public enum Event: Sendable {
        case device(DeviceEvent)
        case mounts(MountChange)
    }

    private let udev: UdevMonitor?
    private let mounts: MountWatcher
    /// A pipe: `stop()` writes to [1], the loop polls [0].
    private var wake: [Int32] = [-1, -1]
    /// Why the udev monitor could not be opened, when it could not (the mount table still works).
    public let udevProblem: String?

    public init() throws {
        var problem: String?
        do { udev = try UdevMonitor() } catch {
            udev = nil
            problem = "\(error)"
        }
        udevProblem = problem
        mounts = try MountWatcher()
        if pipe(&wake) != 0 { throw DeviceError.system("cannot create a pipe", errno: errno) }
        for fd in wake {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
    }

    deinit {
        close(wake[0])
        close(wake[1])
    }

    /// The mount table as the watch last read it.
    public var mountTable: [MountEntry] { mounts.table }

    /// Delivers events to `handler` until `stop()` is called. Call from one thread only.
    public func run(_ handler: (Event) -> Void) {
        var fds = [
            pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0),
            pollfd(fd: mounts.fileDescriptor, events: Int16(POLLPRI), revents: 0),
        ]
        if let udev { fds.append(pollfd(fd: udev.fileDescriptor, events: Int16(POLLIN), revents: 0)) }
        while true {
            for i in fds.indices { fds[i].revents = 0 }
            let n = poll(&fds, nfds_t(fds.count), -1)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[0].revents != 0 { return }
            // udev first: a drive's identity should be known before its mount is looked at.
            if fds.count > 2, fds[2].revents & Int16(POLLIN) != 0, let udev {
                while let event = udev.receive() { handler(.device(event)) }
            }
            if fds[1].revents & Int16(POLLPRI | POLLERR) != 0 {
                if let change = try? mounts.changes(), !change.added.isEmpty || !change.removed.isEmpty {
                    handler(.mounts(change))
                }
            }
        }
    }

    /// Makes `run` return.
    public func stop() {
        var one: UInt8 = 1
        _ = write(wake[1], &one, 1)
    }
}
