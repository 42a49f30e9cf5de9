import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// Shell completion as the package installs it (`plugsync --generate-completion-script bash`):
/// bash's completion function, called as bash calls it on TAB, offers the definitions of the
/// file the command line names (or `$PLUGSYNC_CONFIG`), their groups after `--group`, the types
/// after `--type` and files after `--config`.
final class CompletionTests: IntegrationTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        try writeConfig(
            definition("alpha", source: path("a"), destination: path("b"), ["group: laptop"]),
            definition("beta", source: path("a"), destination: path("c"), ["group: server"]),
            definition("gamma", source: path("a"), destination: path("d"), ["group: laptop"]),
            definition("alpine", source: path("a"), destination: path("e")))
        let script = try plugsync("--generate-completion-script", "bash", config: nil)
        XCTAssertEqual(script.status, 0, "\(script)")
        try write("completion.bash", script.stdout)
    }

    /// What bash offers for `line` (the cursor at its end): `_plugsync` run with COMP_WORDS,
    /// COMP_CWORD, COMP_LINE and COMP_POINT set as bash sets them, the binary under test as the
    /// command's first word. Sorted.
    func complete(_ line: String, environment: [String: String] = [:]) throws -> [String] {
        let binary = try PlugsyncBinary.path()
        let script = """
            source \(quote(path("completion.bash")))
            line=\(quote(binary + " " + line))
            read -ra COMP_WORDS <<<"$line"
            [[ $line == *" " ]] && COMP_WORDS+=("")
            COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
            COMP_LINE=$line
            COMP_POINT=${#line}
            COMPREPLY=()
            _plugsync "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        try write("complete.sh", script)
        // The environment of the shell, so that PLUGSYNC_CONFIG reaches the binary it calls;
        // HOME and XDG_CONFIG_HOME point into the test's folder, so no definitions file of the
        // machine's user is read.
        let settings = ["HOME": root!, "XDG_CONFIG_HOME": path("xdg"), "PLUGSYNC_CONFIG": ""].merging(environment) {
            $1
        }
        let assignments = settings.map { "\($0.key)=\(quote($0.value))" }.joined(separator: " ")
        let out = try shell("env \(assignments) bash \(quote(path("complete.sh")))")
        return out.split(separator: "\n").map(String.init).filter { !$0.isEmpty }.sorted()
    }

    func testDefinitionNamesAfterEveryCommandThatTakesOne() throws {
        let names = ["alpha", "alpine", "beta", "gamma"]
        for command in ["run", "edit", "show", "log", "check", "verify", "copy", "delete"] {
            XCTAssertEqual(try complete("\(command) --config \(configPath) "), names, command)
        }
        // What is typed of the name narrows them.
        XCTAssertEqual(try complete("run --config \(configPath) al"), ["alpha", "alpine"])
        XCTAssertEqual(try complete("show --config \(configPath) g"), ["gamma"])
        // run takes several.
        XCTAssertEqual(try complete("run --config \(configPath) alpha b"), ["beta"])
        // --config after the name, and --config=FILE.
        XCTAssertEqual(try complete("run alpha --config \(configPath) "), names)
        XCTAssertEqual(try complete("check --config=\(configPath) "), names)
        // $PLUGSYNC_CONFIG, as the commands read it.
        XCTAssertEqual(try complete("run ", environment: ["PLUGSYNC_CONFIG": configPath]), names)
        XCTAssertEqual(try complete("edit a", environment: ["PLUGSYNC_CONFIG": configPath]), ["alpha", "alpine"])
    }

    func testNoFileNoNames() throws {
        // No file: nothing to offer, and nothing printed (no error in the middle of a line).
        XCTAssertEqual(try complete("run --config \(path("none.yaml")) "), [])
        // A file that does not load, likewise.
        try write("bad.yaml", "definitions:\n  - name: [\n")
        XCTAssertEqual(try complete("run --config \(path("bad.yaml")) "), [])
        // The new name of `copy` is new: no definition's name is offered for it.
        XCTAssertEqual(try complete("copy --config \(configPath) alpha "), [])
    }

    func testGroupsTypesAndFiles() throws {
        XCTAssertEqual(try complete("run --config \(configPath) --group "), ["laptop", "server"])
        XCTAssertEqual(
            try complete("run --group ", environment: ["PLUGSYNC_CONFIG": configPath]), ["laptop", "server"])
        XCTAssertEqual(try complete("edit alpha --config \(configPath) --group s"), ["server"])
        XCTAssertEqual(try complete("add new --type "), ["backup", "mirror"])
        XCTAssertEqual(try complete("edit alpha --type m"), ["mirror"])
        // Files after --config.
        try write("other.yaml", "definitions: []\n")
        XCTAssertEqual(try complete("list --config \(path("oth"))"), [path("other.yaml")])
        XCTAssertEqual(try complete("run --config \(path("plugsync."))"), [configPath])
    }

    /// The scripts for zsh and fish are generated from the same description: they call the
    /// binary back for the same three kinds of words.
    func testEveryShellsScriptCallsBackForNamesAndGroups() throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try plugsync("--generate-completion-script", shell, config: nil)
            XCTAssertEqual(script.status, 0, "\(script)")
            for command in ["run", "edit", "show", "log", "check", "verify"] {
                XCTAssert(
                    script.stdout.contains("---completion \(command) -- positional@0"),
                    "the \(shell) script does not complete \(command)'s definition names")
            }
            XCTAssert(script.stdout.contains("---completion run -- --group"), "\(shell): run --group")
            XCTAssert(script.stdout.contains("mirror") && script.stdout.contains("backup"), "\(shell): --type")
        }
    }

    /// zsh and fish read their scripts; fish offers the types and files as bash does, and, at an
    /// interactive prompt, the definitions' names.
    func testZshAndFishReadTheirScripts() throws {
        for tool in ["zsh", "fish"] where !hasTool(tool) {
            throw HarnessError("\(tool) is not installed (scripts/setup installs it)")
        }
        for shell in ["zsh", "fish"] {
            let script = try plugsync("--generate-completion-script", shell, config: nil)
            XCTAssertEqual(script.status, 0, "\(script)")
            try write("completion.\(shell)", script.stdout)
        }
        try shell("zsh -n \(quote(path("completion.zsh")))")
        try shell("fish --no-config --no-execute \(quote(path("completion.fish")))")
        // `plugsync` on PATH: the fish script completes that command.
        try FileManager.default.createDirectory(atPath: path("bin"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: path("bin/plugsync"), withDestinationPath: PlugsyncBinary.path())
        try write("other.yaml", "definitions: []\n")
        func fish(_ line: String) throws -> [String] {
            let out = try shell(
                "PATH=\(quote(path("bin"))):$PATH fish --no-config -c \(quote("source \(quote(path("completion.fish"))); complete -C \(quote(line))"))"
            )
            return out.split(separator: "\n").map { String($0.prefix { $0 != "\t" }) }.sorted()
        }
        XCTAssertEqual(try fish("plugsync add new --type "), ["backup", "mirror"])
        XCTAssertEqual(try fish("plugsync list --config \(path("oth"))"), [path("other.yaml")])

        // The names, which plugsync gives back from the command line's file: fish asks for them
        // only at an interactive prompt, so an interactive fish on a pseudo-terminal
        // (Tests/Fixtures/pty-run.py) is typed the line once its prompt (a title) is shown.
        try writeConfig(
            definition("alpha", source: path("src"), destination: path("a")),
            definition("beta", source: path("src"), destination: path("b")))
        let line = "plugsync run --config \(configPath) "
        let typed =
            "source \(path("completion.fish")); complete -C '\(line)'; echo END-MARK; exit\\r"
        let session = try shell(
            "PATH=\(quote(path("bin"))):$PATH timeout 60 python3 \(quote(fixtureScript("pty-run.py"))) --type-after ']0;' \(quote(typed)) -- fish --no-config -i"
        )
        // The completions are the lines before the echo's END-MARK, the first after the prompt's
        // escape sequences and a carriage return.
        guard let end = session.range(of: "\r\nEND-MARK\r\n", options: .backwards) else {
            return XCTFail("fish printed no END-MARK:\n\(session.debugDescription)")
        }
        var names: [String] = []
        for text in session[..<end.lowerBound].components(separatedBy: "\r\n").reversed() {
            if text.contains("\u{1B}") {
                names.append(String(text.split(separator: "\r", omittingEmptySubsequences: false).last ?? ""))
                break
            }
            names.append(text)
        }
        XCTAssertEqual(
            names.map { String($0.prefix { $0 != "\t" }) }.sorted(), ["alpha", "beta"], session.debugDescription)
    }

    /// What zsh offers for `line`: an interactive zsh on a pseudo-terminal (zpty) with the
    /// completion system and the generated script loaded, sent the line and a TAB; `compadd`
    /// prints the matches it is given, between `<<` and `>>`, before adding them.
    func zshComplete(_ line: String, environment: [String: String] = [:]) throws -> [String] {
        let driver = """
            zmodload zsh/zpty
            zpty z zsh -f -i
            zpty -w z "PROMPT=''"
            zpty -w z "autoload -U compinit; compinit -u -D"
            zpty -w z "source ${(q)1}"
            zpty -w z "compdef _plugsync plugsync"
            zpty -w z 'compadd () { builtin compadd -O __hits "$@"; print -l -- "<<" $__hits ">>"; builtin compadd "$@" }'
            zpty -w z "print ready-now"
            zpty -r z out '*ready-now*'
            zpty -w -n z "$2"$'\\t'
            while zpty -r z out; do
              print -r -- ${out//$'\\r'/}
              [[ $out == *'>>'* ]] && break
            done
            zpty -d z
            """
        try write("zsh-complete.zsh", driver)
        let settings = [
            "HOME": root!, "XDG_CONFIG_HOME": path("xdg"), "PLUGSYNC_CONFIG": "",
            "PATH": path("bin") + ":/usr/bin:/bin",
        ].merging(environment) { $1 }
        let assignments = settings.map { "\($0.key)=\(quote($0.value))" }.joined(separator: " ")
        // On a loaded machine the driver's zsh now and then reads no answer at all (1 run in 5
        // under load: zpty, not the completion); only that is tried again, and a wrong answer
        // fails as it is.
        var out = ""
        for _ in 0..<3 {
            out = try shell(
                "env \(assignments) timeout 20 zsh -f \(quote(path("zsh-complete.zsh"))) \(quote(path("completion.zsh"))) \(quote(line))"
            )
            if out.contains("<<") { break }
        }
        // The lines between the first `<<` and the `>>` after it.
        var matches: [String] = []
        var inside = false
        for row in out.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }) {
            if row.hasSuffix("<<") {
                inside = true
            } else if row == ">>" {
                break
            } else if inside && !row.isEmpty {
                matches.append(row)
            }
        }
        return matches.sorted()
    }

    func testZshCompletesNamesGroupsAndTypes() throws {
        guard hasTool("zsh") else { throw HarnessError("zsh is not installed (scripts/setup installs it)") }
        let script = try plugsync("--generate-completion-script", "zsh", config: nil)
        try write("completion.zsh", script.stdout)
        try FileManager.default.createDirectory(atPath: path("bin"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: path("bin/plugsync"), withDestinationPath: PlugsyncBinary.path())
        let names = ["alpha", "alpine", "beta", "gamma"]
        XCTAssertEqual(try zshComplete("plugsync run --config \(configPath) "), names)
        XCTAssertEqual(try zshComplete("plugsync show ", environment: ["PLUGSYNC_CONFIG": configPath]), names)
        XCTAssertEqual(
            try zshComplete("plugsync edit al", environment: ["PLUGSYNC_CONFIG": configPath]), ["alpha", "alpine"])
        XCTAssertEqual(try zshComplete("plugsync run --config \(configPath) --group "), ["laptop", "server"])
        XCTAssertEqual(try zshComplete("plugsync add new --type "), ["backup", "mirror"])
    }
}
