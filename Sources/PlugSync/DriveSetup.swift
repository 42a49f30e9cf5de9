import Devices
import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `plugsync init-drive`: gives a mounted drive a File Check file holding a fresh random id, and
/// says how a definition recognizes the drive by it.
public struct DriveSetup {
    /// Where the drive is mounted.
    public var mountPoint: String
    /// The folder asked for, relative to the mount point ("" for the drive's root).
    public var directory: String
    /// `/dev/sdb1 (label BLUEDISK)`, or the mount's source when udev does not know it.
    public var drive: String
    /// The identity a definition names it by: its label, else its filesystem UUID (both nil
    /// when udev knows neither: the File Check alone recognizes it then).
    public var label: String?
    public var uuid: String?

    /// The default name of the File Check file, at the drive's root.
    public static let defaultFile = ".plugsync-id"

    /// Finds the drive of `target`: a folder on a mounted drive (its mount point or a folder in
    /// it; a relative path is taken from `currentDirectory`), or `device:label=…` of a mounted
    /// drive.
    public static func locate(_ target: String, currentDirectory: String?) throws -> DriveSetup {
        let resolver = EndpointResolver()
        let location = try EndpointSyntax.parseLocation(target, relativeTo: currentDirectory)
        let mountPoint: String
        let directory: String
        switch location {
        case .device(let device):
            let found = resolver.candidates(for: device)
            let points = Array(Set(found.map(\.mountPoint))).sorted()
            guard let point = points.first else {
                throw PreconditionError("no mounted drive matches \(device.summary)")
            }
            if points.count > 1 {
                throw UsageError(
                    "\(points.count) mounted drives match \(target) (\(points.joined(separator: ", "))); give the mount point of the one to set up"
                )
            }
            mountPoint = point
            directory = device.directory
        case .local(let path):
            var st = stat()
            let real = EndpointResolver.realPath(path)
            guard stat(real, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw UsageError("\(path) is not a folder")
            }
            guard let mount = MountTable.mount(containing: real, in: resolver.mounts),
                EndpointResolver.couldBeDrive(mount)
            else {
                throw UsageError(
                    "\(real) is not on a drive (it is on the system's own filesystem); give the mount point of a drive, or device:label=…"
                )
            }
            mountPoint = mount.mountPoint
            directory = FileCheck.components(
                of: String(real.dropFirst(mount.mountPoint == "/" ? 0 : mount.mountPoint.count))
            )
            .joined(separator: "/")
        case .server:
            throw UsageError("\(target): give a drive's mount point or device:label=…, not a server")
        }
        var setup = DriveSetup(mountPoint: mountPoint, directory: directory, drive: mountPoint)
        if let mount = resolver.mounts.first(where: { $0.mountPoint == mountPoint }) {
            setup.drive = mount.source
            if let block = resolver.devices.first(where: { $0.major == mount.major && $0.minor == mount.minor }) {
                setup.label = block.label ?? block.udevLabel
                setup.uuid = block.uuid
                setup.drive = "\(block.devnode) (\(EndpointResolver.identity(block)))"
            }
        }
        return setup
    }

    /// A new random id: 96 bits from the kernel's generator, as hex.
    public static func freshID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<3).map { _ in
            let hex = String(generator.next() as UInt32, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
    }

    /// Writes `id` and a line break to `file` (at the drive's root), atomically: a temporary
    /// file, flushed, then given its name. An existing file is replaced only with `replace`.
    /// The drive is untrusted: every name is opened beneath the mount point without following a
    /// symbolic link (a link planted under the temporary or the final name is never written
    /// through, nor read).
    public func writeID(_ id: String, file: String, replace: Bool) throws -> String {
        let check = try FileCheck(parsing: file)
        guard !check.path.hasPrefix("/"), !check.path.contains("/") else {
            throw UsageError("--file \(file): give a file name at the drive's root, e.g. \(Self.defaultFile)")
        }
        let name = check.path
        let path = (mountPoint == "/" ? "" : mountPoint) + "/" + name
        func failed(_ code: Int32) -> UsageError {
            UsageError("cannot write \(path): \(String(cString: strerror(code)))")
        }
        let directory = open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw failed(errno) }
        defer { close(directory) }
        var st = stat()
        if fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !replace {
            let holds = Self.firstLine(directory, name).map { " (it holds \"\($0)\")" } ?? ""
            throw UsageError("\(path) exists already\(holds); --force replaces it with a new id")
        }
        let temporary = ".plugsync-tmp-id." + Self.freshID()
        let fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failed(errno) }
        defer { unlinkat(directory, temporary, 0) }  // gone already once renamed
        let bytes = Array((id + "\n").utf8)
        var failure: Int32 = 0
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written != bytes.count { failure = written < 0 ? errno : EIO }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        fchmod(fd, 0o644)
        close(fd)
        if failure != 0 { throw failed(failure) }
        if replace {
            if renameat(directory, temporary, directory, name) != 0 { throw failed(errno) }
        } else if linkat(directory, temporary, directory, name, 0) != 0 {
            // Linked to its name, a file that appeared meanwhile is not replaced. A filesystem
            // without hard links (FAT) gets a rename after a last look.
            let code = errno
            if code == EEXIST { throw UsageError("\(path) appeared meanwhile; --force replaces it with a new id") }
            guard code == EPERM || code == EOPNOTSUPP || code == ENOSYS,
                fstatat(directory, name, &st, AT_SYMLINK_NOFOLLOW) != 0
            else { throw failed(code) }
            if renameat(directory, temporary, directory, name) != 0 { throw failed(errno) }
        }
        fsync(directory)
        return path
    }

    /// The first line of a regular file `name` in `directory` (not through a link), escaped for
    /// the terminal; nil when there is none.
    static func firstLine(_ directory: Int32, _ name: String) -> String? {
        let fd = openat(directory, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        var buffer = [UInt8](repeating: 0, count: 200)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let line = buffer[0..<count].split(separator: UInt8(ascii: "\n")).first ?? []
        return TerminalText.escaped(ASCII.trimmingBlanks(String(decoding: line, as: UTF8.self)))
    }

    /// The File Check that recognizes the drive by `id`.
    public func fileCheck(_ id: String, file: String) throws -> FileCheck {
        try FileCheck(parsing: file + "=^" + id + "$")
    }

    /// The endpoint a definition names the drive by: its identity and the folder.
    public var location: Location {
        var device = DeviceSpec(directory: directory)
        device.label = label
        device.uuid = label == nil ? uuid : nil
        return .device(device)
    }

    /// The lines of the definitions file for the drive as the endpoint `role` (`destination` or
    /// `source`), indented as under a definition.
    public func yaml(role: String, check: FileCheck) -> [String] {
        let spec = EndpointSpec(location, fileCheck: check)
        var definition = Definition(name: "x", source: spec, destination: spec)
        definition.type = .backup
        let lines = DefinitionEmitter.lines(for: definition, indent: 0)
        guard let start = lines.firstIndex(of: "  source:") else { return [] }
        let end = lines[(start + 1)...].firstIndex { !$0.hasPrefix("   ") } ?? lines.endIndex
        return ["    " + role + ":"] + lines[(start + 1)..<end].map { "  " + $0 }
    }

    /// `device:label=BLUEDISK,directory=backups`, for `add --destination`.
    public var argument: String {
        var parts: [String] = []
        if let label { parts.append("label=\(label)") } else if let uuid { parts.append("uuid=\(uuid)") }
        if !directory.isEmpty { parts.append("directory=\(directory)") }
        return "device:" + parts.joined(separator: ",")
    }
}
