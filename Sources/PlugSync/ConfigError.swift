import SyncEngine

/// A problem in the definitions file: one line naming the file, the line, the field and the
/// problem. The command line prints it and exits with code 2.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var line: Int?
    public var field: String?
    public var problem: String

    public init(file: String, line: Int? = nil, field: String? = nil, problem: String) {
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if let field { text += "\(field): " }
        return Self.printable(text + problem)
    }

    /// The message with control characters escaped (`TerminalText`): values quoted from the
    /// file may hold line breaks or terminal escapes, and the message must stay ONE line that
    /// cannot rewrite the user's terminal.
    static func printable(_ text: String) -> String { TerminalText.escaped(text) }
}

/// A wrong command-line request (unknown definition, conflicting options). Exit code 2.
public struct UsageError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
