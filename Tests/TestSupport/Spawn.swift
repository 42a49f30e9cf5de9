#if canImport(Glibc)
    import Glibc
#endif

/// Runs a program and waits for it with `waitpid`, its output going to files.
///
/// Foundation's `Process.waitUntilExit` on Linux did not return for commands that leave a
/// daemon behind (`fusefat`, `mount.exfat-fuse`, `systemd-udevd --daemon`): the test hung with
/// the command exited and its daemon holding what it inherited. `posix_spawn` + `waitpid` waits
/// for the command itself, whatever its children do.
///
/// - Returns: the exit status (128 + signal number when killed by a signal).
public func spawnAndWait(
    _ executable: String, _ arguments: [String], stdout: String, stderr: String,
    environment: [String: String]? = nil
) throws -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer { envp?.forEach { free($0) } }
    var pid = pid_t()
    let status: Int32
    if envp != nil {
        status = posix_spawnp(&pid, executable, &actions, nil, argv, &envp!)
    } else {
        status = posix_spawnp(&pid, executable, &actions, nil, argv, environ)
    }
    guard status == 0 else {
        throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(status)))")
    }
    var wait: Int32 = 0
    while waitpid(pid, &wait, 0) < 0 {
        guard errno == EINTR else {
            throw SpawnError(description: "waitpid \(executable): \(String(cString: strerror(errno)))")
        }
    }
    if wait & 0x7f == 0 { return (wait >> 8) & 0xff }
    return 128 + (wait & 0x7f)
}

public struct SpawnError: Error, CustomStringConvertible {
    public var description: String
}
