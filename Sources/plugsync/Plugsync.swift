import ArgumentParser
import PlugSync
import SystemSupport

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
            configuration error, 3 a precondition refused the run (File Check, absent drive, safety rail), \
            130 or 143 the run was stopped by Ctrl-C or SIGTERM.
            """,
        version: PlugSyncVersion.current,
        subcommands: [
            Add.self, Edit.self, Copy.self, Delete.self, List.self, Show.self, Run.self, SyncNow.self, Log.self,
            Status.self, Devices.self, Check.self, Verify.self, Versions.self, Restore.self, InitDrive.self,
            ForgetDrive.self,
            AgentCommand.self,
        ]
    )

    /// The value of `--config FILE` or `--config=FILE` among `arguments`, read as the parser will.
    static func configOption(in arguments: ArraySlice<String>) -> String? {
        var path: String?
        var index = arguments.startIndex
        while index < arguments.endIndex {
            if arguments[index] == "--config", index + 1 < arguments.endIndex {
                path = arguments[index + 1]
                index += 1
            } else if arguments[index].hasPrefix("--config=") {
                path = String(arguments[index].dropFirst("--config=".count))
            }
            index += 1
        }
        return path
    }

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit {
                exit(withError: error)
            }
            if let exit = error as? ExitCode { Glibc.exit(exit.rawValue) }
            // Argument errors are usage errors: exit code 2, as for every usage error.
            let message = fullMessage(for: error)
            // The parser's message has several lines (the error, the usage): each escaped.
            for line in message.split(separator: "\n", omittingEmptySubsequences: false) where !message.isEmpty {
                FileHandleOut.error(String(line))
            }
            Glibc.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

/// Options every command takes.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The definitions file.", valueName: "file"), completion: .file())
    var config: String?

    var path: String { config ?? DefinitionsFile.defaultPath() }

    func load(allowMissing: Bool = false) throws -> DefinitionsFile {
        let file = try DefinitionsFile.load(path: path, allowMissing: allowMissing)
        for warning in file.warnings { FileHandleOut.error(warning) }
        return file
    }
}

/// Maps PlugSync's errors to one line on stderr and the exit codes (README, "Command line").
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

/// Shell completion of what the definitions file holds: the generated completion scripts call
/// plugsync back with the words typed so far, and these read the file those words name
/// (`--config FILE`), else the one plugsync would use. A file that does not load completes
/// nothing, silently.
enum Completion {
    /// The definitions' names.
    static func names(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        definitions(words).map(\.name).filter { $0.hasPrefix(prefix) }
    }

    /// The groups of the definitions, each once.
    static func groups(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        var seen = Set<String>()
        return definitions(words).compactMap(\.group).filter { $0.hasPrefix(prefix) && seen.insert($0).inserted }
    }

    private static func definitions(_ words: [String]) -> [Definition] {
        var path = Plugsync.configOption(in: words[...]).map(unquoted) ?? DefinitionsFile.defaultPath()
        if path.hasPrefix("~/"), let home = Posix.environment("HOME") { path = home + path.dropFirst(1) }
        return (try? DefinitionsFile.load(path: path).definitions) ?? []
    }

    /// A word as the shell passes it (`'my file.yaml'`, `my\ file.yaml`), as the shell would read it.
    private static func unquoted(_ word: String) -> String {
        if word.count >= 2, let first = word.first, first == "'" || first == "\"", word.last == first {
            return String(word.dropFirst().dropLast())
        }
        return word.replacing("\\ ", with: " ")
    }
}
