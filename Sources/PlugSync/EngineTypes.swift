import SyncEngine

// The engine's types that the command line names, under PlugSync: the command line depends on
// PlugSync (and the system helpers) only, never on the engine directly.
public typealias SyncType = SyncEngine.SyncType
public typealias MaxDelete = SyncEngine.MaxDelete
public typealias PreconditionError = SyncEngine.PreconditionError
public typealias TerminalText = SyncEngine.TerminalText
