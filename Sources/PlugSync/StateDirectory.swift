import SyncEngine
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Where plugsync keeps its run history and locks: `$PLUGSYNC_STATE_DIR`, else
/// `/var/lib/plugsync` for root, else `$XDG_STATE_HOME/plugsync` (`~/.local/state/plugsync`).
public enum StateDirectory {
    public static func path(environment: [String: String] = Posix.environment()) -> String {
        if let explicit = environment["PLUGSYNC_STATE_DIR"], !explicit.isEmpty { return explicit }
        if getuid() == 0 { return "/var/lib/plugsync" }
        let base =
            environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ((environment["HOME"] ?? "/tmp") + "/.local/state")
        return base + "/plugsync"
    }

    /// Creates the folder (private to its owner) if needed and returns it.
    public static func prepare(_ path: String) throws -> String {
        do {
            try Posix.makeDirectories(path + "/locks", mode: 0o700)
        } catch let error as SystemError {
            throw UsageError("cannot create the state folder \(path): \(error.reason)")
        } catch {
            throw UsageError("cannot create the state folder \(path): \(error)")
        }
        return path
    }
}

/// One run of a definition at a time, across processes: an exclusive `flock` on
/// `<state>/locks/<name>.lock`, released when the process ends, however it ends.
public final class DefinitionLock {
    private let fd: Int32

    /// Takes the lock; when another run holds it, calls `waiting` once and blocks until it ends.
    public init(stateDirectory: String, name: String, waiting: () -> Void) throws {
        let path = stateDirectory + "/locks/" + name + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 { throw UsageError("cannot open lock \(path): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            waiting()
            while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        }
    }

    /// Whether some process holds the lock of `name` now.
    public static func isHeld(stateDirectory: String, name: String) -> Bool {
        let fd = open(stateDirectory + "/locks/" + name + ".lock", O_RDONLY | O_CLOEXEC)
        if fd < 0 { return false }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return true
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
