import Foundation
import TestSupport
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// docs/RELIABILITY.md case 6 (first half): 1,000 seeded mutations of valid definitions files, each given
/// to the built binary (`plugsync list --config FILE`, every one a process of its own).
///
/// Invariants: no crash (no signal, no "Fatal error", no backtrace); exit 0 or 2 only; exit 2
/// prints nothing on stdout and exactly ONE line on stderr (one final line feed, no other control
/// character) that names the file; exit 0 (the mutation is still a valid file) prints nothing on
/// stderr. Valid mutations are counted apart. The seed is `PLUGSYNC_FUZZ_SEED` (default 6_2026),
/// the count `PLUGSYNC_DEFINITIONS_FUZZ_CASES` (default 1,000).
final class DefinitionsFuzzTests: IntegrationTestCase {
    func testMutatedDefinitionsFilesGiveOneLineAndExit2() throws {
        let environment = ProcessInfo.processInfo.environment
        let cases = environment["PLUGSYNC_DEFINITIONS_FUZZ_CASES"].flatMap { Int($0) } ?? 1_000
        let seed = environment["PLUGSYNC_FUZZ_SEED"].flatMap { UInt64($0) } ?? 6_2026
        let binary = try PlugsyncBinary.path()
        print("definitions fuzz: seed \(seed), \(cases) mutations, binary \(binary)")
        var generator = DefinitionsMutator(seed: seed, root: root)
        let mutations = (0..<cases).map { _ in generator.mutation() }
        var env = ProcessInfo.processInfo.environment
        env["PLUGSYNC_STATE_DIR"] = stateDirectory
        // Three launches at a time (each its own files); `list` and `status` in turn (`status`
        // also computes every schedule's next run).
        let workers = 3
        let results = Results(count: cases)
        let start = Date()
        let root = self.root!
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in stride(from: worker, to: cases, by: workers) {
                let (bytes, what) = mutations[index]
                let file = root + "/defs-\(worker).yaml"
                let out = root + "/fuzz-\(worker).out"
                let err = root + "/fuzz-\(worker).err"
                FileManager.default.createFile(
                    atPath: file, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
                let command = index % 2 == 0 ? "list" : "status"
                // `timeout`: a mutation that makes the reader loop must fail the test, not hang it.
                let status =
                    (try? spawnAndWait(
                        "timeout", ["-s", "KILL", "10", binary, command, "--config", file], stdout: out, stderr: err,
                        environment: env)) ?? -1
                let stdout = (try? Data(contentsOf: URL(fileURLWithPath: out))) ?? Data()
                let stderr = (try? Data(contentsOf: URL(fileURLWithPath: err))) ?? Data()
                if let problem = Self.problem(status: status, stdout: stdout, stderr: stderr, file: file) {
                    results.fail(
                        index,
                        "mutation \(index) (\(what)), plugsync \(command): \(problem)\n  stderr: "
                            + "\(String(decoding: stderr.prefix(2000), as: UTF8.self))\n  file: "
                            + String(decoding: bytes.prefix(600), as: UTF8.self).debugDescription)
                } else {
                    results.hold(index, valid: status == 0)
                }
            }
        }
        let (held, valid, failures) = results.summary()
        let seconds = Date().timeIntervalSince(start)
        print(
            "definitions fuzz: \(valid) mutations still valid (exit 0), \(held - valid) refused with one line and exit 2, "
                + "\(cases - held) broke an invariant; \(String(format: "%.1f", seconds)) s for \(cases) launches")
        print("reliability: case 6a definitions file mutations: held \(held) of \(cases)")
        XCTAssertEqual(held, cases, failures.prefix(5).joined(separator: "\n"))
    }

    /// The launches' outcomes, from several threads.
    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var held = 0
        private var valid = 0
        private var failures: [(Int, String)] = []
        init(count: Int) {}
        func hold(_ index: Int, valid isValid: Bool) {
            lock.lock()
            held += 1
            if isValid { valid += 1 }
            lock.unlock()
        }
        func fail(_ index: Int, _ text: String) {
            lock.lock()
            failures.append((index, text))
            lock.unlock()
        }
        func summary() -> (held: Int, valid: Int, failures: [String]) {
            lock.lock()
            defer { lock.unlock() }
            return (held, valid, failures.sorted { $0.0 < $1.0 }.map(\.1))
        }
    }

    /// Why one launch broke an invariant, or nil.
    static func problem(status: Int32, stdout: Data, stderr: Data, file: String) -> String? {
        let text = String(decoding: stderr, as: UTF8.self) + String(decoding: stdout, as: UTF8.self)
        for marker in ["Fatal error", "Backtrac", "Stack dump", "Current stack trace", "*** Signal", "0x0000"]
        where text.contains(marker) {
            return "'\(marker)' in the output"
        }
        switch status {
        case 0:
            return stderr.isEmpty ? nil : "exit 0 with something on stderr"
        case 2:
            if !stdout.isEmpty { return "exit 2 with output on stdout" }
            guard stderr.last == 0x0A, stderr.dropLast().allSatisfy({ $0 >= 0x20 && $0 != 0x7f }) else {
                return "exit 2 without exactly one line on stderr (or with control characters)"
            }
            if !String(decoding: stderr, as: UTF8.self).contains(file) { return "the line does not name the file" }
            return nil
        case 137:
            return "killed after 10 s (a loop, or memory without end)"
        default:
            return status > 128 ? "killed by signal \(status - 128)" : "exit \(status)"
        }
    }
}

/// Valid definitions files and seeded mutations of them: byte flips, deleted and duplicated
/// lines, indentation, truncation, wrong types, unknown keys, bad regexes, huge values, invalid
/// UTF-8, tabs, control characters, deep nesting, YAML features the reader refuses.
struct DefinitionsMutator {
    private var random: SplitMix64
    let bases: [String]

    init(seed: UInt64, root: String) {
        random = SplitMix64(seed: seed)
        bases = [
            """
            # plugsync definitions
            definitions:
              - name: docs-to-usb
                description: Home documents to the blue USB disk
                group: laptop
                type: mirror
                recursive: true
                max_delete: 50%
                parallel: 4
                source:
                  local: \(root)/src
                destination:
                  device:
                    label: BLUEDISK
                    uuid: 1234-ABCD
                    directory: backups/docs
                    mount: auto
                    unmount_after: false
                  file_check: ".plugsync-id=^ana-blue$"
                ignore: ['\\.tmp$', '^~\\$']
                log_file: \(root)/docs.log
                schedule:
                  - days: [mon, tue, wed, thu, fri]
                    at: "18:30"
                  - days: [sat]
                    every: 2h
                    between: "08:00-20:00"
                  - month_days: [1, 15]
                    at: "03:00"
                on_mount: true
                enabled: true
                hooks:
                  before: 'test -d /tmp'
                  after: "echo done"

            """,
            """
            definitions:
              - name: www-upload
                type: backup
                source:
                  local: \(root)/www
                destination:
                  ftp:
                    server: 127.0.0.1:2121
                    username: web
                    password_env: WWW_PASSWORD
                    directory: www/site
                    tls: explicit
                    passive: true
                    clock_diff: -3600
                  file_check: ".plugsync-id"
              - name: pull
                source:
                  ftps:
                    server: "ftp.example.com"
                    password_file: /etc/plugsync/pull.pass
                    clock_diff: auto
                    ca_file: /etc/ssl/ca.pem
                destination: {local: \(root)/pull}
                ignore:
                  - '\\.db$'
                  - "^tmp"

            """,
            "---\ndefinitions:\n  - name: a\n    source:\n      local: /srv/a\n    destination:\n      local: /srv/b\n"
                + "    description: |\n      two\n      lines\n    group: >-\n      folded\n      text\n...\n",
        ]
    }

    mutating func next() -> UInt64 { random.next() }
    mutating func below(_ n: Int) -> Int { random.below(n) }
    mutating func pick<T>(_ items: [T]) -> T { random.pick(items) }

    static let hostileValues = [
        "[a, b]", "{x: 1}", "~", "''", "\"\"", "99999999999999999999999999", "-1", "0", "153722867280912931h",
        "99999999999m", "9223372036854775807", "-9223372036854775808", "25h", "1441m", "0m", "1e308%", "nan%", "-0%",
        "\"mir\\nror\"", "\"tab\\there\"",
        "\"esc\\e[2J\"", "\"nul\\0x\"", "\"\\u2028sep\"", "'(unclosed'", "'[z-a]'", "'*x'", "'\\\\'", "&anchor x",
        "*alias", "!!str x", "@at", "`tick", "| \n  block", "> \n  folded", "\"unterminated", "'unterminated",
        "[unclosed", "{unclosed: 1", "\"\\xZZ\"", "\"\\uD800\"", "\"\\U0011FFFF\"", "25:00", "\"08:00-07:00\"",
        "\"-\"", "../../etc", "/", "relative/path", "\"a\\\"b\"", "yes", "Off", "[[[[[[[[]]]]]]]]", "-", "- x",
        "? x", "x: y: z", "#comment", "'it''s'", "\"\\N\\_\\L\\P\"", "  ", "\t", "\u{00e9}t\u{00e9}",
    ]

    static let keys = [
        "name", "colour", "type", "source", "destination", "local", "device", "ftp", "ftps", "label", "schedule",
        "days", "at", "every", "between", "month_days", "ignore", "parallel", "max_delete", "hooks", "before",
        "password", "password_file", "server", "tls", "clock_diff", "file_check", "directory", "mount", "definitions",
        "on-mount", "Enabled", "",
    ]

    /// A mutated file and a short description of what was done to it.
    mutating func mutation() -> (bytes: [UInt8], what: String) {
        var lines = pick(bases).split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.utf8) }
        var what: [String] = []
        for _ in 0..<(1 + below(3)) {
            what.append(mutate(&lines))
        }
        var bytes = Array(lines.joined(separator: [0x0A]))
        // Byte-level mutations on the whole file.
        if below(4) == 0 {
            what.append(mutateBytes(&bytes))
        }
        return (bytes, what.joined(separator: ", "))
    }

    private mutating func valueLine(_ lines: [[UInt8]]) -> Int? {
        let candidates = lines.indices.filter { lines[$0].contains(UInt8(ascii: ":")) }
        return candidates.isEmpty ? nil : pick(candidates)
    }

    private mutating func mutate(_ lines: inout [[UInt8]]) -> String {
        guard !lines.isEmpty else {
            lines = [Array(pick(Self.hostileValues).utf8)]
            return "hostile file"
        }
        let i = below(lines.count)
        switch below(15) {
        case 0:
            lines.remove(at: i)
            return "deleted line \(i + 1)"
        case 1:
            lines.insert(lines[i], at: i)
            return "duplicated line \(i + 1)"
        case 2:
            let change = pick([-4, -2, -1, 1, 2, 3, 6])
            if change < 0 {
                lines[i].removeFirst(min(-change, lines[i].prefix { $0 == 0x20 }.count))
            } else {
                lines[i].insert(contentsOf: repeatElement(0x20, count: change), at: 0)
            }
            return "indentation \(change) on line \(i + 1)"
        case 3:
            lines[i].insert(0x09, at: below(lines[i].count + 1))
            return "tab on line \(i + 1)"
        case 4, 5, 6:
            // A wrong type or hostile value after a key.
            guard let j = valueLine(lines), let colon = lines[j].firstIndex(of: UInt8(ascii: ":")) else {
                return "nothing"
            }
            let value = pick(Self.hostileValues)
            lines[j] = Array(lines[j][...colon]) + [0x20] + Array(value.utf8)
            return "value \(value.debugDescription) on line \(j + 1)"
        case 13:
            // A hostile number where the file holds numbers and times.
            let targets = lines.indices.filter { index in
                ["every:", "at:", "clock_diff:", "parallel:", "max_delete:", "between:", "month_days:", "server:"]
                    .contains { String(decoding: lines[index], as: UTF8.self).contains($0) }
            }
            guard !targets.isEmpty else { return "nothing" }
            let j = pick(targets)
            let colon = lines[j].firstIndex(of: UInt8(ascii: ":"))!
            let value = pick([
                "153722867280912931h", "99999999999m", "9223372036854775807", "-9223372036854775808", "25h", "1441m",
                "0m", "-1", "[1, 99]", "\"23:59-00:00\"", "1e400%", "h:1:2", "x:99999", "host:0", "host:65536",
                "'[::1]'", "\":\"",
            ])
            lines[j] = Array(lines[j][...colon]) + [0x20] + Array(value.utf8)
            return "number \(value) on line \(j + 1)"
        case 7:
            let indent = lines[i].prefix { $0 == 0x20 }.count
            let key = pick(Self.keys)
            let value = pick(Self.hostileValues + ["red", "x", ""])
            lines.insert(Array(repeating: 0x20, count: indent) + Array("\(key): \(value)".utf8), at: i)
            return "key \(key): \(value) before line \(i + 1)"
        case 8:
            let line =
                "    ignore: ['\(pick(["(unclosed", "[z-a]", "*x", "\\", "a{2,1}", "(?=x)", "[[:nope:]]", "x**"]))']"
            lines.insert(Array(line.utf8), at: i)
            return "bad regex before line \(i + 1)"
        case 9:
            let huge = pick([
                String(repeating: "x", count: 100_000), String(repeating: "9", count: 5_000),
                String(repeating: "[", count: 50_000), String(repeating: "{a: ", count: 20_000),
                String(repeating: "- ", count: 20_000) + "x", "\"" + String(repeating: "\\\\", count: 50_000) + "\"",
            ])
            guard let j = valueLine(lines), let colon = lines[j].firstIndex(of: UInt8(ascii: ":")) else {
                return "nothing"
            }
            lines[j] = Array(lines[j][...colon]) + [0x20] + Array(huge.utf8)
            return "huge value (\(huge.prefix(6))…) on line \(j + 1)"
        case 10:
            let bytes: [[UInt8]] = [
                [0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x00], [0x1b],
            ]
            lines[i].insert(contentsOf: pick(bytes), at: below(lines[i].count + 1))
            return "bad bytes on line \(i + 1)"
        case 11:
            let deep = below(2) == 0 ? 2_000 : 200
            let nested = (0..<deep).map { String(repeating: " ", count: $0 * 2) + "- " }.joined(separator: "\n")
            lines.insert(Array(("  - " + nested).utf8), at: i)
            return "nested \(deep) deep before line \(i + 1)"
        case 12:
            lines = lines.map { $0 + [0x0D] }
            return "CRLF"
        default:
            lines.insert(
                Array(pick(["---", "...", "--- x", "%YAML 1.2", "? complex", "&a", "!tag", "- stray"]).utf8), at: i)
            return "marker before line \(i + 1)"
        }
    }

    private mutating func mutateBytes(_ bytes: inout [UInt8]) -> String {
        guard !bytes.isEmpty else { return "empty" }
        switch below(4) {
        case 0:
            let at = below(bytes.count)
            bytes[at] ^= UInt8(truncatingIfNeeded: 1 << below(8))
            return "bit flip at \(at)"
        case 1:
            let at = below(bytes.count)
            bytes.removeSubrange(at...)
            return "truncated at \(at)"
        case 2:
            let at = below(bytes.count)
            bytes[at] = UInt8(truncatingIfNeeded: next())
            return "random byte at \(at)"
        default:
            let at = below(bytes.count)
            let length = min(bytes.count - at, 1 + below(40))
            bytes.insert(contentsOf: Array(bytes[at..<(at + length)]), at: below(bytes.count + 1))
            return "duplicated \(length) bytes"
        }
    }
}
