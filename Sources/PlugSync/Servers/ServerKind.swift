import SyncEngine

/// A server endpoint of the definitions file (`ftp:`, `sftp:`, …): what a run needs to know of
/// it without knowing which kind it is. Each kind is one file in this folder, with its spec type,
/// how the definitions file and the command line spell it, and how a run opens it; `serverKinds`
/// lists them. A new kind of server is its backend's target, one file here and one line there.
public protocol ServerSpec: Sendable {
    /// The key the definitions file holds it under (`ftps` for an FTP server with TLS).
    var key: String { get }
    /// A one-line description for listings (`ftp://user@host/dir`); never holds a password.
    var summary: String { get }
    /// Where the login's password comes from.
    var password: ServerPassword { get set }
    /// Whether the endpoint keeps what a run learned of the server for the next run (a file in
    /// the state directory, see `resolve`).
    var remembersBetweenRuns: Bool { get }

    /// Its fields under its key, in the definitions file's order: `(key, value)`, the value as
    /// written (quoted with `scalar` where it is text), nil for a field left out.
    func fields(_ scalar: (String) -> String) -> [(String, String?)]

    /// Logs in and checks the File Check; throws `UsageError` (exit 2) for what the user must
    /// fix, `PreconditionError` (exit 3) when the server cannot be reached or the check fails.
    func resolve(fileCheck: FileCheck?, role: String, connections: Int) throws -> ResolvedEndpoint

    /// A failure of this kind's endpoint as the error the command line maps to an exit code;
    /// other errors come back unchanged.
    static func translate(_ error: Error, role: String) -> Error

    func isEqual(to other: any ServerSpec) -> Bool
}

extension ServerSpec where Self: Equatable {
    public func isEqual(to other: any ServerSpec) -> Bool { (other as? Self) == self }
}

/// Where a server's password comes from.
public enum ServerPassword: Sendable, Equatable {
    case none
    case literal(String)
    case file(String)
    case environment(String)
    /// FTP only: the client reads ~/.netrc.
    case netrc
}

/// How one kind of server is read: its keys in the definitions file, its URL schemes on the
/// command line.
struct ServerKind: Sendable {
    /// `ftp`, `ftps`: the definitions file's keys.
    let keys: [String]
    /// `ftp://`, `ftps://`: the command line's.
    let schemes: [String]
    /// The keys of the mapping under `key` (`server`, `username`, …).
    let fieldKeys: [String]
    /// Reads the mapping under `key`.
    let parse:
        @Sendable (_ key: String, _ node: YAML.Node, _ field: String, _ parser: DefinitionsParser) throws ->
            any ServerSpec
    /// Reads `scheme` + `user@host:port/dir`.
    let parseURL: @Sendable (_ text: String, _ scheme: String) throws -> any ServerSpec
    /// Turns this kind's failures into the command line's errors (`ServerSpec.translate`).
    let translate: @Sendable (_ error: Error, _ role: String) -> Error
}

/// Every kind of server endpoint, in the order error messages name them.
let serverKinds: [ServerKind] = [FTPSpec.kind, SFTPSpec.kind]

extension ServerKind {
    static func named(_ key: String) -> ServerKind? { serverKinds.first { $0.keys.contains(key) } }

    /// Every server key of the definitions file (`ftp, ftps, sftp`).
    static var allKeys: [String] { serverKinds.flatMap(\.keys) }

    /// Any kind's failure as the command line's error.
    static func translate(_ error: Error, role: String) -> Error {
        serverKinds.reduce(error) { $1.translate($0, role) }
    }

    /// Reads a server's File Check through `read` (the endpoint's `contents(of:limit:)`) and
    /// returns what the listing leaves out: the check file. An absolute check path starts at the
    /// login folder and must lie inside the directory. A check file that is not there refuses
    /// the run as a failed check does (exit 3); other failures go through `translate`.
    static func readFileCheck(
        _ check: FileCheck?, directory: String, display: String, role: String,
        read: (FileName, Int) throws -> [UInt8], translate: (Error) -> Error
    ) throws -> Set<FileName> {
        guard let check else { return [] }
        var path = FileCheck.components(of: check.path).joined(separator: "/")
        if check.path.hasPrefix("/") {
            let root = FileCheck.components(of: directory).joined(separator: "/")
            guard root.isEmpty || path.hasPrefix(root + "/") else {
                throw UsageError("the \(role)'s file_check \(check.path) must lie inside its directory /\(root)")
            }
            if !root.isEmpty { path = String(path.dropFirst(root.count + 1)) }
        }
        let place = display + (display.hasSuffix("/") ? "" : "/") + path
        let content: [UInt8]
        do {
            content = try read(FileName(path), FileCheck.contentLimit)
        } catch  where EndpointErrorKind.of(error) == .notFound {
            throw PreconditionError("File Check of the \(role) failed: \(place): file not found")
        } catch {
            throw translate(error)
        }
        if let failure = check.contentFailure(content, where: place) {
            throw PreconditionError("File Check of the \(role) failed: \(failure)")
        }
        return [FileName(path)]
    }
}
