#if canImport(Glibc)
    import Glibc
#endif

// Hard links on a local endpoint (`Endpoint.link`), apart from the rest of the endpoint: each
// call opens the folders it works in from the root's descriptor, and links and renames in
// them by name (`linkat`, `renameat`), so nothing goes through a symbolic link at the last
// component.

extension LocalEndpoint {
    /// Makes `path` another name of the regular file at `existing`: linked under a temporary
    /// name in `path`'s folder, then renamed over whatever is at `path`.
    public func link(_ path: FileName, to existing: FileName) throws {
        guard capabilities.keepsHardLinks else { throw Unsupported("\(displayName) cannot hold hard links") }
        try onDrive { try linkOnDrive(path, to: existing) }
    }

    private func linkOnDrive(_ path: FileName, to existing: FileName) throws {
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if rootFD < 0 { throw SystemError("open", path: root, errno: errno) }
        defer { close(rootFD) }
        try checkDevice(fd: rootFD)
        let fromFD = try openFolder(existing.parent, under: rootFD)
        defer { close(fromFD) }
        let toFD = path.parent == existing.parent ? fromFD : try openFolder(path.parent, under: rootFD)
        defer { if toFD != fromFD { close(toFD) } }
        let existingName = existing.lastComponent
        let name = path.lastComponent
        var st = stat()
        if existingName.withCString({ fstatat(fromFD, $0, &st, AT_SYMLINK_NOFOLLOW) }) != 0 {
            throw SystemError("link", path: display(existing), errno: errno)
        }
        guard st.st_mode & S_IFMT == S_IFREG else { throw SystemError("link", path: display(existing), errno: EINVAL) }
        // Already a name of that file: nothing to do (a rename onto it would do nothing and
        // leave the temporary name behind).
        var there = stat()
        if name.withCString({ fstatat(toFD, $0, &there, AT_SYMLINK_NOFOLLOW) }) == 0 && there.st_dev == st.st_dev
            && there.st_ino == st.st_ino
        {
            return
        }
        let temporary = Self.temporaryName(for: path).lastComponent
        _ = temporary.withCString { unlinkat(toFD, $0, 0) }
        let linked = existingName.withCString { from in
            temporary.withCString { to in linkat(fromFD, from, toFD, to, 0) }
        }
        if linked != 0 { throw SystemError("link", path: display(path), errno: errno) }
        let renamed = temporary.withCString { from in name.withCString { to in renameat(toFD, from, toFD, to) } }
        if renamed != 0 {
            let code = errno
            _ = temporary.withCString { unlinkat(toFD, $0, 0) }
            throw SystemError("rename", path: display(path), errno: code)
        }
    }

    /// A folder of the endpoint, relative to its root (the root itself for an empty path).
    private func openFolder(_ relative: FileName, under rootFD: Int32) throws -> Int32 {
        let fd =
            relative.isEmpty
            ? dup(rootFD) : relative.withCString { openat(rootFD, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        if fd < 0 { throw SystemError("open", path: display(relative), errno: errno) }
        return fd
    }
}
