#if canImport(Glibc)
    import Glibc
#endif

/// Runs a definition's `hooks` (`before`, `after`, `on_error`) through `/bin/sh -c`, with the
/// run's facts in the environment: `PLUGSYNC_NAME`, `PLUGSYNC_TRIGGER`, `PLUGSYNC_TYPE`,
/// `PLUGSYNC_STAGE`, and after a run `PLUGSYNC_RESULT` (success, failures, refused, error),
/// `PLUGSYNC_COPIED`, `PLUGSYNC_DELETED`, `PLUGSYNC_SKIPPED`, `PLUGSYNC_FAILED`,
/// `PLUGSYNC_BYTES`, `PLUGSYNC_MESSAGE`. Their output goes where plugsync's standard error goes.
struct Hooks {
    let definition: Definition
    let trigger: String
    let enabled: Bool

    /// Runs `before`; returns why the run must not start when it fails.
    func before(_ reporter: RunReporter) -> String? {
        guard enabled, let command = definition.hooks.before else { return nil }
        let status = run(command, stage: "before", extra: [:], reporter)
        return status == 0 ? nil : "the before hook failed (exit status \(status))"
    }

    /// Runs `after`, then `on_error` when the run did not succeed.
    func after(_ outcome: RunOutcome, _ reporter: RunReporter) {
        guard enabled else { return }
        let s = outcome.statistics
        let facts = [
            "PLUGSYNC_RESULT": outcome.status.rawValue, "PLUGSYNC_COPIED": "\(s.transferred)",
            "PLUGSYNC_DELETED": "\(s.deleted)", "PLUGSYNC_SKIPPED": "\(s.skipped)", "PLUGSYNC_FAILED": "\(s.failed)",
            "PLUGSYNC_BYTES": "\(s.bytes)", "PLUGSYNC_MESSAGE": outcome.message,
        ]
        if let command = definition.hooks.after { _ = run(command, stage: "after", extra: facts, reporter) }
        if outcome.status != .success, let command = definition.hooks.onError {
            _ = run(command, stage: "on_error", extra: facts, reporter)
        }
    }

    private func run(_ command: String, stage: String, extra: [String: String], _ reporter: RunReporter) -> Int32 {
        // Checked again when it runs (the agent runs long after it read the file): as root, a
        // program another user could change is not run (`FileTrust`).
        if FileTrust.applies {
            for program in FileTrust.programs(in: command) {
                if let distrust = FileTrust.problem(path: program) {
                    reporter.say(
                        "Hook \(stage) not run: \(program) "
                            + distrust.message("plugsync runs as root and would run it as root"))
                    return 126
                }
            }
        }
        var environment: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            entry += 1
        }
        environment["PLUGSYNC_NAME"] = definition.name
        environment["PLUGSYNC_TRIGGER"] = trigger
        environment["PLUGSYNC_TYPE"] = definition.type.rawValue
        environment["PLUGSYNC_STAGE"] = stage
        for (key, value) in extra { environment[key] = value }
        let status = Self.shell(command, environment: environment)
        reporter.say("Hook \(stage) exited with status \(status)")
        return status
    }

    /// `/bin/sh -c command`, waited for with `waitpid`; 127 when it cannot start.
    static func shell(_ command: String, environment: [String: String]) -> Int32 {
        execute("/bin/sh", ["/bin/sh", "-c", command], environment: environment)
    }

    /// A program found in `environment`'s PATH, given its arguments as they are (no shell reads
    /// them: a mount point or device name is never taken for syntax); 127 when it is not found.
    static func program(_ arguments: [String], environment: [String: String]) -> Int32 {
        guard let name = arguments.first else { return 127 }
        for folder in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = folder + "/" + name
            if access(path, X_OK) == 0 { return execute(path, arguments, environment: environment) }
        }
        return 127
    }

    private static func execute(_ path: String, _ arguments: [String], environment: [String: String]) -> Int32 {
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 2, 1)  // hook output joins plugsync's stderr
        // SIGINT and SIGTERM as they are by default: plugsync ignores them while it stops a run
        // (`plugsync run`, the agent), and an ignored signal would stay ignored in the hook.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))
        var pid = pid_t()
        guard posix_spawn(&pid, path, &actions, &attributes, argv, envp) == 0 else { return 127 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return 127 }
        }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
