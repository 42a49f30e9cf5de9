import ArgumentParser
import Dispatch
import PlugSync

struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the long-running service: sync when drives are mounted, and on schedule.",
        discussion: """
            Logs to standard error, one line per trigger, run and skip. SIGTERM or SIGINT: no new \
            file starts, the files in flight finish, and it exits. SIGHUP: reads the definitions \
            file again (a bad file keeps the previous definitions).
            """)
    @OptionGroup var options: ConfigOptions

    func run() throws {
        let path = options.path
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await failingAsync {
                    try await AgentServices.run(configPath: path, stateDirectory: StateDirectory.path())
                }
            } catch { box.error = error }
            done.signal()
        }
        done.wait()
        if let error = box.error { throw error }
    }
}

func failingAsync(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch {
        throw reported(error)
    }
}

final class ResultBox: @unchecked Sendable {
    var error: Error?
}
