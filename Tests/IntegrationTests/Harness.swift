import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

// The integration tests run the built `plugsync` binary on real folders, as a user would, and
// check its output, exit code and what it did to the disk. Nothing here links plugsync's code.

/// A failure of the harness itself (a tool that did not work, a binary that is not built).
struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Where the `plugsync` binary under test is.
enum PlugsyncBinary {
    /// `$PLUGSYNC_BIN`, else the `plugsync` built in the same scratch path as this test bundle
    /// (on Linux the bundle is `<scratch>/debug/plugsyncPackageTests.xctest`, the binary
    /// `<scratch>/debug/plugsync`). Throws, so that the test fails, when it is not built.
    static func path() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["PLUGSYNC_BIN"], !explicit.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: explicit) else {
                throw HarnessError("PLUGSYNC_BIN=\(explicit) is not an executable file")
            }
            return explicit
        }
        var folders: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            folders.append((exe as NSString).deletingLastPathComponent)
        }
        folders.append((CommandLine.arguments[0] as NSString).deletingLastPathComponent)
        if let url = Bundle.main.executableURL { folders.append(url.deletingLastPathComponent().path) }
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            folders.append((bundle.bundlePath as NSString).deletingLastPathComponent)
        }
        var seen = Set<String>()
        folders = folders.filter { !$0.isEmpty && seen.insert($0).inserted }
        for folder in folders {
            let candidate = folder + "/plugsync"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        // <scratch>/<triple>/debug → <scratch>
        var scratch = folders.first.map { ($0 as NSString).deletingLastPathComponent } ?? ".build"
        if (scratch as NSString).lastPathComponent.contains("-linux")
            || (scratch as NSString).lastPathComponent.contains("-apple-")
        {
            scratch = (scratch as NSString).deletingLastPathComponent
        }
        throw HarnessError(
            "the plugsync binary is not built next to the test bundle (looked in \(folders.joined(separator: ", "))): "
                + "run `swift build --scratch-path \(scratch)` first (the same scratch path as `swift test`), "
                + "or set PLUGSYNC_BIN")
    }
}

/// What one command did.
struct CommandResult: CustomStringConvertible {
    var arguments: [String]
    /// The exit status, or 128 + the signal when it died of one.
    var status: Int32
    var signaled: Bool
    var stdout: String
    var stderr: String

    /// Standard output's lines, whitespace runs collapsed to one space, empty lines dropped.
    var lines: [String] { stdout.split(separator: "\n").map { collapse(String($0)) }.filter { !$0.isEmpty } }
    var stderrLines: [String] { stderr.split(separator: "\n").map { collapse(String($0)) }.filter { !$0.isEmpty } }

    /// The action lines (`Copying (destination file not found) about.html`) of both streams,
    /// collapsed: standard output's (changes; with `-v` also the entries left as they are), then
    /// standard error's (failures). `stdoutActions` and `stderrActions` tell them apart.
    var actions: [String] { stdoutActions + stderrActions }
    var stdoutActions: [String] { lines.filter(isActionLine) }
    var stderrActions: [String] { stderrLines.filter(isActionLine) }
    func actions(_ verb: String) -> [String] { actions.filter { $0.hasPrefix(verb + " ") } }

    /// The summary line (`Done: …`, `Dry run: …`, `Refused: …`, `Stopped: …`).
    var summary: String? {
        lines.last { line in
            ["Done:", "Done with failures:", "Dry run:", "Refused:", "Failed:", "Stopped:"].contains {
                line.hasPrefix($0)
            }
        }
    }

    var description: String {
        "plugsync \(arguments.joined(separator: " "))\n  exit: \(status)\(signaled ? " (signal)" : "")\n"
            + "  stdout:\n\(indent(stdout))\n  stderr:\n\(indent(stderr))"
    }

    private func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
    }
}

let actionVerbs = [
    "Copying", "Uploading", "Downloading", "Skipping", "Deleting", "Creating", "Replacing", "Removing", "Failed",
    "Keeping", "Versioning", "Pruning",
]

func isActionLine(_ line: String) -> Bool {
    actionVerbs.contains { line.hasPrefix($0 + " (") }
}

/// `Copying     (destination file not found)        a b.txt` → `Copying (destination file not found) a b.txt`.
func collapse(_ line: String) -> String {
    line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).joined(separator: " ")
}

/// An action line as the tests expect it: verb, reason and path.
func action(_ verb: String, _ reason: String, _ path: String) -> String {
    collapse("\(verb) (\(reason)) \(path)")
}

/// One file, folder or link as `snapshot` found it.
struct Node: Equatable, CustomStringConvertible {
    enum Kind: String { case file, directory, symlink, other }
    var kind: Kind
    var size: Int64
    var mtime: Int64  // nanoseconds
    var mode: UInt32
    var linkTarget: String?
    /// Files up to 1 MiB; bigger ones are compared with `filesEqual`.
    var content: Data?

    var description: String {
        "\(kind) size=\(size) mtime=\(mtime) mode=\(String(mode, radix: 8))" + (linkTarget.map { " -> \($0)" } ?? "")
    }
}

/// A time with nanoseconds, for `utimensat`.
struct FileTime {
    var seconds: Int
    var nanoseconds: Int
    init(_ seconds: Int, _ nanoseconds: Int = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }
    var total: Int64 { Int64(seconds) * 1_000_000_000 + Int64(nanoseconds) }
}

/// The base of every integration test: a private temporary folder (with the state folder and
/// the definitions file inside it), ways to build trees, run plugsync, and compare trees.
class IntegrationTestCase: XCTestCase {
    /// The test's own folder, realpath'ed; removed at tearDown.
    var root: String!
    var stateDirectory: String { root + "/state" }
    var configPath: String { root + "/plugsync.yaml" }
    /// Python fixtures started by `startFixture`.
    var fixtures: [pid_t] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        let base =
            NSTemporaryDirectory() + "/plugsync-it-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        root = realPath(base) ?? base
    }

    override func tearDownWithError() throws {
        for pid in fixtures { stopFixture(pid) }
        fixtures = []
        // Teardown blocks (unmounts, detaches) have run already. Make unreadable folders readable
        // again, then remove everything.
        if let root, FileManager.default.fileExists(atPath: root) {
            _ = try? shell("chmod -R u+rwX \(quote(root)) 2>/dev/null; true")
            try? FileManager.default.removeItem(atPath: root)
        }
        try super.tearDownWithError()
    }

    // MARK: Python fixtures (proxies, servers), stopped at tearDown

    /// The Python fixture `name` in Tests/Fixtures.
    func fixtureScript(_ name: String) -> String {
        (FTPServer.script as NSString).deletingLastPathComponent + "/" + name
    }

    /// Starts a Python fixture with `arguments` (plus `--port-file`) and returns its pid and the
    /// port it listens on (127.0.0.1). `script`: its path, where it is not in Tests/Fixtures.
    func startFixture(_ name: String, _ arguments: [String], script: String? = nil) throws -> (pid: pid_t, port: Int) {
        let portFile = path(".port-\(UInt32.random(in: 0...UInt32.max))")
        let argv = ["python3", script ?? fixtureScript(name)] + arguments + ["--port-file", portFile]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, path(".\(name).err"), O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid = pid_t()
        let status = posix_spawnp(&pid, "python3", &actions, nil, cArgs, environ)
        guard status == 0 else { throw HarnessError("cannot start \(name): \(String(cString: strerror(status)))") }
        fixtures.append(pid)
        for _ in 0..<400 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return (pid, port)
            }
            var wstatus: Int32 = 0
            if waitpid(pid, &wstatus, WNOHANG) == pid {
                fixtures.removeAll { $0 == pid }
                throw HarnessError("\(name) exited at start: \(read(".\(name).err") ?? "")")
            }
            usleep(25_000)
        }
        throw HarnessError("\(name) wrote no port within 10 s")
    }

    func stopFixture(_ pid: pid_t) {
        guard fixtures.contains(pid) else { return }
        fixtures.removeAll { $0 == pid }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    // MARK: paths and files

    /// An absolute path inside the test's folder.
    func path(_ relative: String) -> String { root + "/" + relative }

    /// Writes a file (creating its folders), then sets its mode and mtime when given.
    func write(_ relative: String, _ content: String, mode: UInt32? = nil, mtime: FileTime? = nil) throws {
        try write(relative, Data(content.utf8), mode: mode, mtime: mtime)
    }

    func write(_ relative: String, _ data: Data, mode: UInt32? = nil, mtime: FileTime? = nil) throws {
        let full = path(relative)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: full))
        if let mode { try chmod(relative, mode) }
        if let mtime { try setMtime(relative, mtime) }
    }

    func read(_ relative: String) -> String? {
        (try? Data(contentsOf: URL(fileURLWithPath: path(relative)))).map { String(decoding: $0, as: UTF8.self) }
    }

    func mkdir(_ relative: String, mode: UInt32? = nil) throws {
        try FileManager.default.createDirectory(atPath: path(relative), withIntermediateDirectories: true)
        if let mode { try chmod(relative, mode) }
    }

    func symlink(_ relative: String, to target: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path(relative) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: path(relative), withDestinationPath: target)
    }

    func remove(_ relative: String) throws {
        try FileManager.default.removeItem(atPath: path(relative))
    }

    func exists(_ relative: String) -> Bool {
        var st = stat()
        return lstat(path(relative), &st) == 0
    }

    func chmod(_ relative: String, _ mode: UInt32) throws {
        if Glibc.chmod(path(relative), mode_t(mode)) != 0 { throw HarnessError("chmod \(relative): \(errnoText())") }
    }

    /// Sets the mtime (and atime) without following a link.
    func setMtime(_ relative: String, _ time: FileTime) throws {
        var times = [
            timespec(tv_sec: time.seconds, tv_nsec: time.nanoseconds),
            timespec(tv_sec: time.seconds, tv_nsec: time.nanoseconds),
        ]
        if utimensat(AT_FDCWD, path(relative), &times, AT_SYMLINK_NOFOLLOW) != 0 {
            throw HarnessError("utimensat \(relative): \(errnoText())")
        }
    }

    func mtime(_ relative: String) -> Int64? {
        var st = stat()
        guard lstat(path(relative), &st) == 0 else { return nil }
        return Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
    }

    /// Pseudo-random bytes, the same for the same seed.
    func randomData(_ count: Int, seed: UInt64) -> Data {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var data = Data(count: count)
        data.withUnsafeMutableBytes { (bytes: UnsafeMutableRawBufferPointer) in
            for i in 0..<count {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                bytes[i] = UInt8(truncatingIfNeeded: state)
            }
        }
        return data
    }

    // MARK: definitions file

    /// Writes the definitions file: `definitions:` followed by the given blocks.
    func writeConfig(_ definitions: String...) throws {
        try ("definitions:\n" + definitions.joined()).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// A definition with two local endpoints; `extra` lines go under the definition (indent 4),
    /// `destinationExtra`/`sourceExtra` under the endpoint (indent 6), e.g. a `file_check`.
    /// A definition's lines, with `type: mirror` unless they give a type: the tests' definitions
    /// are mirrors unless they say otherwise (the file's default is a backup).
    static func mirrorUnlessTyped(_ lines: [String]) -> String {
        let typed = lines.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("type:") }
        // Last: the line numbers of the other lines stay as the tests count them.
        return (typed ? lines : lines + ["    type: mirror"]).joined(separator: "\n") + "\n"
    }

    func definition(
        _ name: String, source: String, destination: String, _ extra: [String] = [],
        sourceExtra: [String] = [], destinationExtra: [String] = []
    ) -> String {
        var lines = ["  - name: \(name)", "    source:", "      local: '\(source)'"]
        lines += sourceExtra.map { "      " + $0 }
        lines += ["    destination:", "      local: '\(destination)'"]
        lines += destinationExtra.map { "      " + $0 }
        lines += extra.map { "    " + $0 }
        return Self.mirrorUnlessTyped(lines)
    }

    // MARK: running

    /// Runs plugsync with `--config` appended unless `config` is nil; `wrapper` runs it through
    /// another program (e.g. `setpriv …`).
    @discardableResult
    func plugsync(
        _ arguments: String..., config: String? = "", wrapper: [String] = [], environment: [String: String] = [:],
        timeout: TimeInterval = 90
    ) throws -> CommandResult {
        try plugsync(arguments: arguments, config: config, wrapper: wrapper, environment: environment, timeout: timeout)
    }

    @discardableResult
    func plugsync(
        arguments: [String], config: String? = "", wrapper: [String] = [], environment: [String: String] = [:],
        timeout: TimeInterval = 90
    ) throws -> CommandResult {
        var args = arguments
        if let config { args += ["--config", config.isEmpty ? configPath : config] }
        let process = try startPlugsync(args, wrapper: wrapper, environment: environment)
        let deadline = Date().addingTimeInterval(timeout)
        while process.process.isRunning && Date() < deadline { usleep(5_000) }
        if process.process.isRunning {
            kill(process.process.processIdentifier, SIGKILL)
            process.process.waitUntilExit()
            let result = process.result()
            throw HarnessError("plugsync did not finish within \(Int(timeout)) s and was killed\n\(result)")
        }
        process.process.waitUntilExit()
        return process.result()
    }

    /// A plugsync started in the background, its output going to files.
    final class Running {
        let process: Process
        let arguments: [String]
        let outPath: String
        let errPath: String
        init(process: Process, arguments: [String], outPath: String, errPath: String) {
            self.process = process
            self.arguments = arguments
            self.outPath = outPath
            self.errPath = errPath
        }
        /// SIGTERM, then SIGKILL after `grace` seconds; waits for the process to end.
        func stop(grace: TimeInterval = 10) {
            guard process.isRunning else { return }
            kill(process.processIdentifier, SIGTERM)
            let start = Date()
            while process.isRunning && Date().timeIntervalSince(start) < grace { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        func result() -> CommandResult {
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            let err = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
            let signaled = process.terminationReason == .uncaughtSignal
            return CommandResult(
                arguments: arguments, status: signaled ? 128 + process.terminationStatus : process.terminationStatus,
                signaled: signaled, stdout: out, stderr: err)
        }
    }

    func startPlugsync(_ arguments: [String], wrapper: [String] = [], environment: [String: String] = [:]) throws
        -> Running
    {
        let binary = try PlugsyncBinary.path()
        let process = Process()
        if let tool = wrapper.first {
            process.executableURL = URL(fileURLWithPath: try which(tool))
            process.arguments = Array(wrapper.dropFirst()) + [binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        var env = ProcessInfo.processInfo.environment
        env["PLUGSYNC_STATE_DIR"] = stateDirectory
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.currentDirectoryURL = URL(fileURLWithPath: root)
        let base = root + "/.cmd-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let outPath = base + ".out"
        let errPath = base + ".err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        defer {
            try? out.close()
            try? err.close()
        }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Running(process: process, arguments: arguments, outPath: outPath, errPath: errPath)
    }

    /// Runs a shell command; returns its standard output, throws with its standard error when it
    /// fails. Output goes through files: daemons it starts (fusefat, udevd) keep descriptors open.
    @discardableResult
    func shell(_ command: String, allowFailure: Bool = false) throws -> String {
        let folder = root.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil } ?? NSTemporaryDirectory()
        let base = folder + "/.sh-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        let outPath = base + ".out"
        let errPath = base + ".err"
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = (env["PATH"] ?? "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        // posix_spawn + waitpid: Foundation's Process never returned for commands that leave
        // a daemon behind (fusefat, mount.exfat-fuse, udevd).
        let status = try spawnAndWait("/bin/sh", ["-c", command], stdout: outPath, stderr: errPath, environment: env)
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        if status != 0 && !allowFailure {
            throw HarnessError("`\(command)` failed (\(status)): \(stderr)\(stdout)")
        }
        return stdout
    }

    func which(_ tool: String) throws -> String {
        if tool.hasPrefix("/") { return tool }
        let dirs =
            (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        guard
            let found = dirs.map({ $0 + "/" + tool }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw HarnessError("\(tool) is not installed") }
        return found
    }

    func hasTool(_ tool: String) -> Bool { (try? which(tool)) != nil }

    /// Skips a test that needs root (printing why), except with CI=true, where it fails.
    func requireRoot(_ why: String, tools: [String] = []) throws {
        var reason: String?
        if getuid() != 0 {
            reason = "needs root: \(why) (uid is \(getuid()))"
        } else if let missing = tools.first(where: { !hasTool($0) }) {
            reason = "needs \(missing) on PATH for \(why)"
        }
        guard let reason else { return }
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            throw HarnessError("cannot run in CI: \(reason)")
        }
        print("skipping \(name): \(reason)")
        throw XCTSkip(reason)
    }

    /// How to run plugsync so that file permissions apply to it: as root, without the
    /// capabilities that bypass them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
    func withoutPermissionBypass() throws -> [String] {
        if getuid() != 0 { return [] }
        guard hasTool("setpriv") else {
            let reason = "as root, an unreadable folder needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
            if ProcessInfo.processInfo.environment["CI"] == "true" { throw HarnessError(reason) }
            print("skipping \(name): \(reason)")
            throw XCTSkip(reason)
        }
        return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
    }

    // MARK: trees

    /// Every entry below `folder` by relative path (the folder itself is not included).
    func snapshot(_ folder: String) throws -> [String: Node] {
        var result: [String: Node] = [:]
        func walk(_ relative: String) throws {
            let full = relative.isEmpty ? folder : folder + "/" + relative
            for name in try FileManager.default.contentsOfDirectory(atPath: full).sorted() {
                let rel = relative.isEmpty ? name : relative + "/" + name
                let entryPath = folder + "/" + rel
                var st = stat()
                guard lstat(entryPath, &st) == 0 else { throw HarnessError("lstat \(entryPath): \(errnoText())") }
                let kind: Node.Kind
                switch st.st_mode & S_IFMT {
                case S_IFREG: kind = .file
                case S_IFDIR: kind = .directory
                case S_IFLNK: kind = .symlink
                default: kind = .other
                }
                var node = Node(
                    kind: kind, size: kind == .file ? Int64(st.st_size) : 0,
                    mtime: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                    mode: UInt32(st.st_mode) & 0o7777)
                if kind == .symlink {
                    node.linkTarget = try FileManager.default.destinationOfSymbolicLink(atPath: entryPath)
                }
                if kind == .file && st.st_size <= 1 << 20 {
                    node.content = try Data(contentsOf: URL(fileURLWithPath: entryPath))
                }
                result[rel] = node
                if kind == .directory { try walk(rel) }
            }
        }
        try walk("")
        return result
    }

    /// Whether two files hold the same bytes (read in chunks: they may be large).
    func filesEqual(_ a: String, _ b: String) -> Bool {
        guard let x = FileHandle(forReadingAtPath: a), let y = FileHandle(forReadingAtPath: b) else { return false }
        defer {
            try? x.close()
            try? y.close()
        }
        while true {
            let chunkA = x.readData(ofLength: 4 << 20)
            let chunkB = y.readData(ofLength: 4 << 20)
            if chunkA != chunkB { return false }
            if chunkA.isEmpty { return true }
        }
    }

    /// Asserts that `destination` is an exact copy of `source`: the same entries, kinds, sizes,
    /// contents, link targets, modes and mtimes to the nanosecond (within `tolerance` when the
    /// destination is coarser). `skip` leaves paths out (e.g. a File Check file).
    func assertSameTree(
        _ source: String, _ destination: String, modes: Bool = true, folderTimes: Bool = true, linkTimes: Bool = true,
        tolerance: Int64 = 0, skip: (String) -> Bool = { _ in false },
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let a = try snapshot(source).filter { !skip($0.key) }
        let b = try snapshot(destination).filter { !skip($0.key) }
        let onlySource = Set(a.keys).subtracting(b.keys).sorted()
        let onlyDestination = Set(b.keys).subtracting(a.keys).sorted()
        XCTAssertEqual(onlySource, [], "entries missing from \(destination)", file: file, line: line)
        XCTAssertEqual(onlyDestination, [], "entries in \(destination) that \(source) lacks", file: file, line: line)
        for (path, s) in a.sorted(by: { $0.key < $1.key }) {
            guard let d = b[path] else { continue }
            let what = "\(path): source \(s), destination \(d)"
            XCTAssertEqual(s.kind, d.kind, what, file: file, line: line)
            guard s.kind == d.kind else { continue }
            switch s.kind {
            case .file:
                XCTAssertEqual(s.size, d.size, what, file: file, line: line)
                XCTAssertTrue(
                    filesEqual(source + "/" + path, destination + "/" + path), "\(path): contents differ", file: file,
                    line: line)
            case .symlink:
                XCTAssertEqual(s.linkTarget, d.linkTarget, what, file: file, line: line)
            default: break
            }
            if s.kind == .file || (s.kind == .directory && folderTimes) || (s.kind == .symlink && linkTimes) {
                XCTAssertLessThanOrEqual(abs(s.mtime - d.mtime), tolerance, "mtime: \(what)", file: file, line: line)
            }
            if modes && s.kind != .symlink {
                XCTAssertEqual(
                    String(s.mode, radix: 8), String(d.mode, radix: 8), "mode: \(what)", file: file, line: line)
            }
        }
    }

    /// Paths of leftover temporary files below `folder`.
    func temporaryFiles(in folder: String) -> [String] {
        let all = FileManager.default.enumerator(atPath: folder)?.allObjects as? [String] ?? []
        return all.filter { ($0 as NSString).lastPathComponent.hasPrefix(".plugsync-tmp-") }.sorted()
    }

    // MARK: assertions

    /// The action lines equal `expected` (order ignored: files are copied in parallel).
    func assertActions(
        _ result: CommandResult, _ expected: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(result.actions.sorted(), expected.map(collapse).sorted(), "\(result)", file: file, line: line)
    }

    func assertExit(_ result: CommandResult, _ status: Int32, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.status, status, "\(result)", file: file, line: line)
    }

    /// No crash, no Swift runtime trap or stack trace in the output.
    func assertNoCrash(_ result: CommandResult, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(result.signaled, "plugsync died of a signal\n\(result)", file: file, line: line)
        for marker in [
            "Fatal error", "Stack dump", "Backtrace", "Current stack trace", "fatalError", "Illegal instruction",
            "0x0000",
        ] {
            XCTAssertFalse(
                result.stderr.contains(marker) || result.stdout.contains(marker), "'\(marker)' in output\n\(result)",
                file: file, line: line)
        }
    }
}

func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// Single-quotes a string for /bin/sh.
func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

extension IntegrationTestCase {
    /// Prints a reliability case's line, `reliability: <label>: held H of T`, each failed trial
    /// above it, and fails the test when a trial did not hold.
    func reportReliability(_ label: String, held: Int, of trials: Int, failures: [String]) {
        for failure in failures { print("  \(failure)") }
        print("reliability: \(label): held \(held) of \(trials)")
        XCTAssertEqual(held, trials, "\(label): \(failures.joined(separator: "\n"))")
    }
}

/// A seeded generator (xorshift) for reliability trials: a printed seed makes a failing trial
/// reproducible.
struct Seeded {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
    mutating func next(_ bound: Int) -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Int(state % UInt64(bound))
    }
}
