import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Whether an agent runs for a state folder, and which definitions file it follows: the agent
/// holds an exclusive `flock` on `<state>/agent.lock` for its whole life, with its pid and file
/// written in it. A lock, not a pid file: it is gone when the process is, however it ends, so
/// a stale file never reads as a running agent.
public struct AgentPresence: Sendable, Equatable {
    public var pid: Int32
    public var configPath: String

    static func lockPath(_ stateDirectory: String) -> String { stateDirectory + "/agent.lock" }

    /// Marks this process as the agent of `stateDirectory` until it exits. Returns the agent
    /// already holding it (a second agent on the same state), or nil.
    @discardableResult
    public static func announce(stateDirectory: String, configPath: String) -> AgentPresence? {
        let path = lockPath(stateDirectory)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let other = read(fd)
            close(fd)
            return other
        }
        let text = Array("\(getpid())\n\(absolute(configPath))\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return nil  // the descriptor stays open (and locked) until the process exits
    }

    /// The agent running for `stateDirectory`, or nil when none holds the lock.
    public static func find(stateDirectory: String) -> AgentPresence? {
        let fd = open(lockPath(stateDirectory), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 { return nil }  // nobody holds it
        guard errno == EWOULDBLOCK else { return nil }
        return read(fd)
    }

    /// One line for `status`: whether an agent runs, and whether it follows `configPath`.
    public static func summary(stateDirectory: String, configPath: String) -> String {
        guard let agent = find(stateDirectory: stateDirectory) else {
            return "Agent: not running: only plugsync run starts runs (drives and schedules wait for the agent)."
        }
        if agent.follows(configPath) {
            return "Agent: running (pid \(agent.pid)), following this definitions file."
        }
        return "Agent: running (pid \(agent.pid)), following another definitions file: \(agent.configPath)."
    }

    /// Whether the running agent (if any) follows `configPath`.
    public func follows(_ configPath: String) -> Bool { self.configPath == Self.absolute(configPath) }

    static func absolute(_ path: String) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard let resolved = realpath(path, &buffer) else { return path }
        return String(cString: resolved)
    }

    private static func read(_ fd: Int32) -> AgentPresence? {
        var buffer = [UInt8](repeating: 0, count: 8192)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        let lines = buffer[..<n].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        guard lines.count >= 2, let pid = Int32(String(decoding: lines[0], as: UTF8.self)) else { return nil }
        return AgentPresence(pid: pid, configPath: String(decoding: lines[1], as: UTF8.self))
    }
}
