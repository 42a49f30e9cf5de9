import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// DESIGN 2, step 4: a file is written under a temporary name (or as an anonymous file) and
/// only then given its final name, so a run killed mid-copy leaves no half-written file under a
/// final name; the next run removes the leftovers and completes the copy.
final class InterruptedRunTests: IntegrationTestCase {
    static let bigFiles = 4
    static let bigSize = 200 << 20

    func testKilledRunLeavesNoPartialFileAndTheNextRunCleansUp() throws {
        let src = path("src")
        let dst = path("dst")
        let random = path("random.bin")
        // Four 200 MiB files of random data (one random file behind a distinct first line each,
        // to keep the setup fast), and 300 small ones in subfolders.
        try mkdir("src")
        try shell("head -c \(Self.bigSize) /dev/urandom > \(quote(random))")
        try writeBigFiles(version: "v1")
        for folder in 0..<10 {
            for file in 0..<30 {
                try write(
                    "src/many/dir-\(folder)/file-\(file).txt",
                    "small file \(folder)/\(file)\n" + String(repeating: "x", count: file * 37))
            }
        }
        try writeConfig(definition("big", source: src, destination: dst))

        // 1. A first copy into an empty destination, killed while a big file is half written.
        try killMidCopy(destination: dst, phase: "first copy") { _ in }
        try resume(source: src, destination: dst)

        // 2. Every big file changed: the run replaces existing files. Keep the old versions to
        // check that a final name holds either the complete old or the complete new file.
        try shell("mkdir \(quote(path("old"))) && cp \(quote(dst))/big-*.bin \(quote(path("old")))/")
        try writeBigFiles(version: "version 2")
        try killMidCopy(destination: dst, phase: "replacement") { leftovers in
            XCTAssertFalse(leftovers.isEmpty, "a replacement killed mid-copy left no temporary file behind")
        }
        try resume(source: src, destination: dst)
    }

    /// Ctrl-C (SIGINT) or SIGTERM during `plugsync run`: no entry is started after it, the run
    /// says `Stopped: …` with its counts on standard output and in the log, names the signal on
    /// standard error, is recorded as `stopped`, and exits 128 + the signal's number. The next
    /// run completes the sync.
    func testSignalStopsTheRunWithItsCounts() throws {
        for i in 0..<5 { try write("src/f\(i).txt", "file \(i)\n") }
        for (signal, name, code) in [(SIGINT, "SIGINT (Ctrl-C)", Int32(130)), (SIGTERM, "SIGTERM", 143)] {
            // The before hook says the run has begun, and holds it while the signal comes.
            let flag = path("hook-started")
            try? remove("hook-started")
            let log = path("stop.log")
            try writeConfig(
                definition(
                    "stop", source: path("src"), destination: path("dst"),
                    ["log_file: '\(log)'", "hooks:", "  before: 'touch \(flag); sleep 2'"]))
            let running = try startPlugsync(["run", "stop", "--config", configPath])
            let deadline = Date().addingTimeInterval(30)
            while !exists("hook-started") && running.process.isRunning && Date() < deadline { usleep(10_000) }
            XCTAssertTrue(exists("hook-started"), "the before hook did not run")
            kill(running.process.processIdentifier, signal)
            running.process.waitUntilExit()
            let result = running.result()
            XCTAssertFalse(result.signaled, "\(result)")
            XCTAssertEqual(result.status, code, "\(result)")
            XCTAssertTrue(
                result.summary?.hasPrefix(
                    "Stopped: 0 copied (0 B), 0 folders created, 0 deleted, 0 skipped, 0 failed, 5 not started")
                    == true,
                "\(result)")
            XCTAssertTrue(
                result.stderrLines.contains {
                    $0.hasPrefix("plugsync: stop: Stopped by \(name): 5 entries not started")
                },
                "\(result)")
            XCTAssertEqual(result.actions, [], "no line per entry not started\n\(result)")
            XCTAssertFalse(exists("dst/f0.txt"), "a file was copied after the signal\n\(result)")
            let logged = read("stop.log")?.split(separator: "\n").last.map(String.init) ?? ""
            XCTAssertTrue(logged.contains("Stopped: 0 copied"), "the log does not end with the summary: \(logged)")
            let status = try plugsync("status")
            XCTAssertTrue(
                status.lines.contains { $0.hasPrefix("stop ") && $0.contains(" manual stopped ") }, "\(status)")
        }
        try writeConfig(definition("stop", source: path("src"), destination: path("dst")))
        let next = try plugsync("run", "stop")
        assertExit(next, 0)
        try assertSameTree(path("src"), path("dst"))
    }

    private func writeBigFiles(version: String) throws {
        for i in 1...Self.bigFiles {
            try shell(
                "{ printf 'big file %d %s\\n' \(i) \(quote(version)); cat \(quote(path("random.bin"))); } > \(quote(path("src/big-\(i).bin")))"
            )
        }
    }

    /// Starts `run big`, waits until it has a regular file below `destination` open and partly
    /// written (or a temporary file shows up), kills it with SIGKILL, and checks that every file
    /// under a final name is complete: the source's version, or the one it was replacing.
    private func killMidCopy(destination: String, phase: String, leftoversCheck: ([String]) -> Void) throws {
        let running = try startPlugsync(["run", "big", "--config", configPath])
        let pid = running.process.processIdentifier
        var caught = false
        let deadline = Date().addingTimeInterval(60)
        while running.process.isRunning && Date() < deadline {
            if isWritingBigFile(pid: pid, below: destination) {
                caught = true
                break
            }
            usleep(200)
        }
        caught = caught && running.process.isRunning
        kill(pid, SIGKILL)
        running.process.waitUntilExit()
        let interrupted = running.result()
        XCTAssertTrue(caught, "\(phase): the run ended before it was seen writing a big file\n\(interrupted)")
        guard caught else { return }
        XCTAssertTrue(interrupted.signaled, "\(interrupted)")

        let leftovers = temporaryFiles(in: destination)
        leftoversCheck(leftovers)
        let source = try snapshot(path("src"))
        for (relative, node) in try snapshot(destination) where node.kind == .file {
            if (relative as NSString).lastPathComponent.hasPrefix(".plugsync-tmp-") { continue }
            guard let original = source[relative] else {
                XCTFail("\(phase): \(relative) is in the destination but not in the source")
                continue
            }
            let complete =
                (node.size == original.size && filesEqual(path("src/") + relative, destination + "/" + relative))
                || filesEqual(path("old/") + relative, destination + "/" + relative)
            XCTAssertTrue(
                complete, "\(phase): \(relative) under its final name is neither the new nor the old complete file")
        }
        lastLeftovers = leftovers
    }

    private var lastLeftovers: [String] = []

    /// The next run: exit 0, every leftover removed with its line, the destination a copy.
    private func resume(source: String, destination: String) throws {
        let resumed = try plugsync("run", "big", timeout: 120)
        assertExit(resumed, 0)
        assertNoCrash(resumed)
        let removed = resumed.actions("Removing")
        for leftover in lastLeftovers {
            XCTAssertTrue(
                removed.contains(action("Removing", "temporary file of an interrupted run", leftover)),
                "no 'Removing (temporary file of an interrupted run) \(leftover)' line\n\(resumed)")
        }
        XCTAssertEqual(removed.count, lastLeftovers.count, "\(resumed)")
        XCTAssertEqual(temporaryFiles(in: destination), [], "\(resumed)")
        try assertSameTree(source, destination)
    }

    /// Whether the process has a regular file below `folder` open that is partly written: a
    /// named temporary file, or an anonymous one (`O_TMPFILE`, shown as `folder/#123 (deleted)`).
    private func isWritingBigFile(pid: Int32, below folder: String) -> Bool {
        let fds = "/proc/\(pid)/fd"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: fds) else { return false }
        for name in names {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: fds + "/" + name),
                target.hasPrefix(folder + "/")
            else { continue }
            var st = stat()
            guard stat(fds + "/" + name, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
            if st.st_size > 0 && st.st_size < Self.bigSize { return true }
        }
        return false
    }
}
