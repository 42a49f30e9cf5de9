import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

// Hard links on a local endpoint (`Endpoint.link`): the two folders are held as descriptors
// opened beneath the root (Beneath.swift), and the link and rename are made in them by name
// (`linkat`, `renameat`), so nothing goes through a symbolic link anywhere on the way.

extension LocalEndpoint {
    /// Makes `path` another name of the regular file at `existing`: linked under a temporary
    /// name in `path`'s folder, then renamed over whatever is at `path`.
    public func link(_ path: FileName, to existing: FileName) throws {
        guard capabilities.keepsHardLinks else { throw Unsupported("\(displayName) cannot hold hard links") }
        try onDrive { try linkOnDrive(path, to: existing) }
    }

    private func linkOnDrive(_ path: FileName, to existing: FileName) throws {
        try folders.withFolder(existing.parent, display: display) { fromFD in
            try folders.withFolder(path.parent, display: display) { toFD in
                try checkDevice(fd: toFD)
                try link(path, in: toFD, to: existing, in: fromFD)
            }
        }
    }

    private func link(_ path: FileName, in toFD: Int32, to existing: FileName, in fromFD: Int32) throws {
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
        let temporary = ListingFilter.temporaryName(for: path).lastComponent
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
}
