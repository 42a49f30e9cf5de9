import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

// Versions on a local endpoint (`Endpoint.moveToVersions`, `receive(…keepingVersion:…)`): the
// file's folder and the version's folder are held as descriptors opened beneath the root
// (Beneath.swift), and the link or rename is made between them by name (`linkat`, `renameat`),
// never through a symbolic link. Where the filesystem has hard links (ext4 and other Linux
// filesystems: `keepsHardLinks`) the old file is linked into the versions folder and the new
// one then renamed over its name, so the final name is never absent; on FAT and exFAT (no hard
// links) the old file is renamed into the versions folder and the new one then into place: a
// kill between the two leaves the name absent, and the next run copies the file again.

extension LocalEndpoint {
    public func moveToVersions(_ path: FileName, to version: FileName, entry: Entry) throws {
        try onDrive {
            try folders.withFolder(path.parent, display: display) { dirfd in
                try keepVersion(path, in: dirfd, at: version, old: entry, link: false, required: true)
            }
        }
    }

    public func listVersions() -> Listing {
        var listing = Listing()
        let fd: Int32
        do {
            fd = try folders.withFolder(VersionsFolder.name, display: display) { folder in
                openat(folder, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            }
            if fd < 0 { throw SystemError("open", path: display(VersionsFolder.name), errno: errno) }
        } catch let error as SystemError where error.errno == ENOENT {
            return listing  // no versions yet
        } catch {
            listing.errors.append(error)
            return listing
        }
        listVersionsFolder(fd: fd, into: &listing)
        return listing
    }

    /// Keeps the file `path` (in the folder `dirfd`) at `version`: a hard link with `link`
    /// (the name stays), else a rename. Nothing at `path` keeps nothing: a `notFound` error when
    /// `required`, else no error (a retried transfer whose first try moved it already).
    func keepVersion(
        _ path: FileName, in dirfd: Int32, at version: FileName, old: Entry, link: Bool, required: Bool = false
    ) throws {
        try makeVersionFolders(version.parent)
        let name = path.lastComponent
        let versionName = version.lastComponent
        try folders.withFolder(version.parent, display: display) { versionFD in
            try checkDevice(fd: versionFD)
            try name.withCString { from in
                try versionName.withCString { to in
                    if link {
                        var linked = linkat(dirfd, from, versionFD, to, 0)
                        if linked != 0 && errno == EEXIST {
                            // The same path kept by this run already (a retried transfer): the
                            // newer of the two is what the file held before this run's copy.
                            unlinkat(versionFD, to, 0)
                            linked = linkat(dirfd, from, versionFD, to, 0)
                        }
                        if linked == 0 { return }
                        if errno == ENOENT && !required { return }
                        // No links here after all (EPERM, EMLINK, EXDEV...): the rename below.
                    }
                    if renameat(dirfd, from, versionFD, to) != 0 {
                        let code = errno
                        if code == ENOENT && !required { return }
                        throw SystemError("move to versions", path: display(path), errno: code)
                    }
                    // FUSE filesystems (fusefat) stamp a renamed file with the current time: the
                    // version gets its own back.
                    if old.kind == .file {
                        var times = Self.times(old.mtime)
                        _ = utimensat(versionFD, to, &times, AT_SYMLINK_NOFOLLOW)
                    }
                }
            }
        }
    }

    /// Creates the folders of `folder` (under `.plugsync-versions`) that are missing, each in
    /// its parent's descriptor.
    private func makeVersionFolders(_ folder: FileName) throws {
        if versionFolders.contains(folder) { return }
        var chain: [FileName] = []
        var current = folder
        while !current.isEmpty && !versionFolders.contains(current) {
            chain.append(current)
            current = current.parent
        }
        for path in chain.reversed() {
            try folders.withFolder(path.parent, display: display) { dirfd in
                try path.lastComponent.withCString { name in
                    if mkdirat(dirfd, name, 0o700) != 0 && errno != EEXIST {
                        throw SystemError("mkdir", path: display(path), errno: errno)
                    }
                }
            }
            versionFolders.insert(path)
        }
    }
}
