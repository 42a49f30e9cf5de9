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

    /// Writes `id` and a line break to `file` (relative to the mount point), atomically: a
    /// temporary file, flushed, then given its name. An existing file is replaced only with
    /// `replace`; a symbolic link in its place is never followed.
    public func writeID(_ id: String, file: String, replace: Bool) throws -> String {
        let check = try FileCheck(parsing: file)
        guard !check.path.hasPrefix("/"), !check.path.contains("/") else {
            throw UsageError("--file \(file): give a file name at the drive's root, e.g. \(Self.defaultFile)")
        }
        let path = (mountPoint == "/" ? "" : mountPoint) + "/" + check.path
        var st = stat()
        if lstat(path, &st) == 0 && !replace {
            var holds = ""
            if st.st_mode & S_IFMT == S_IFREG, let data = Posix.readFile(path, limit: 200),
                let text = String(validating: data, as: UTF8.self)
            {
                holds =
                    " (it holds \"\(TerminalText.escaped(ASCII.trimmingBlanks(text.split(separator: "\n").first ?? "")))\")"
            }
            throw UsageError("\(path) exists already\(holds); --force replaces it with a new id")
        }
        if replace {
            if let failure = Posix.writeFileAtomically(path, Array((id + "\n").utf8), mode: 0o644) {
                throw UsageError("cannot write \(path): \(String(cString: strerror(failure)))")
            }
        } else {
            // Written under a temporary name, then linked to its own: a file that appeared
            // meanwhile is not replaced. A filesystem without hard links (FAT) gets a rename.
            let temporary = (mountPoint == "/" ? "" : mountPoint) + "/.plugsync-tmp-id.\(getpid())"
            if let failure = Posix.writeFileAtomically(temporary, Array((id + "\n").utf8), mode: 0o644) {
                throw UsageError("cannot write \(path): \(String(cString: strerror(failure)))")
            }
            defer { unlink(temporary) }
            if link(temporary, path) != 0 {
                let failure = errno
                if failure == EEXIST { throw UsageError("\(path) appeared meanwhile; --force replaces it") }
                guard failure == EPERM || failure == EOPNOTSUPP || failure == ENOSYS, lstat(path, &st) != 0,
                    rename(temporary, path) == 0
                else { throw UsageError("cannot write \(path): \(String(cString: strerror(failure)))") }
            }
        }
        let directory = open(mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
        return path
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
