import ArgumentParser
import PlugSync
import SyncEngine

#if canImport(Glibc)
    import Glibc
#endif

/// The command line: parse, call PlugSync, print. Nothing else lives here.
@main
struct Plugsync: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugsync",
        abstract: "Back up and mirror folders when a drive is plugged in, on a schedule, or now.",
        discussion: """
            Definitions live in one YAML file: /etc/plugsync/plugsync.yaml for root, \
            $XDG_CONFIG_HOME/plugsync/plugsync.yaml for others, or --config FILE.
            Exit codes: 0 success, 1 the run finished with failed entries, 2 usage or \
            configuration error, 3 a precondition refused the run (File Check, absent drive, safety rail).
            """,
        version: PlugSyncVersion.current,
        subcommands: [
            Add.self, Edit.self, Copy.self, Delete.self, List.self, Show.self, Run.self, Log.self,
            Status.self, Devices.self, Check.self, AgentCommand.self,
        ]
    )

    static func main() {
        SyncRunner.loadLibrariesEarly(arguments: CommandLine.arguments)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit {
                exit(withError: error)
            }
            if let exit = error as? ExitCode { Glibc.exit(exit.rawValue) }
            // Argument errors are usage errors: exit code 2, as DESIGN section 5 says.
            let message = fullMessage(for: error)
            if !message.isEmpty { FileHandleOut.error(message) }
            Glibc.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

/// Options every command takes.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The definitions file.", valueName: "file"))
    var config: String?

    var path: String { config ?? DefinitionsFile.defaultPath() }

    func load(allowMissing: Bool = false) throws -> DefinitionsFile {
        let file = try DefinitionsFile.load(path: path, allowMissing: allowMissing)
        for warning in file.warnings { FileHandleOut.error(warning) }
        return file
    }
}

/// Maps PlugSync's errors to one line on stderr and the exit codes of DESIGN section 5.
func failing<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw reported(error)
    }
}

/// The exit for a PlugSync error, its line printed: 2 for configuration and usage, 3 for a
/// refusal. Other errors pass through unchanged.
func reported(_ error: Error) -> Error {
    let code: Int32
    switch error {
    case is ConfigError, is UsageError: code = 2
    case is PreconditionError: code = 3
    default: return error
    }
    FileHandleOut.error("plugsync: \(error)")
    return ExitCode(code)
}

enum FileHandleOut {
    /// One line on standard error, escaped (`TerminalText`): it may quote a drive or a server.
    static func error(_ line: String) {
        var text = TerminalText.escaped(line)
        if !text.hasSuffix("\n") { text += "\n" }
        _ = text.withCString { fputs($0, stderr) }
    }
}
