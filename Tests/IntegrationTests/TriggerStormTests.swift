import Foundation
import PlugSync
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// docs/RELIABILITY.md case 7: trigger storms. The source changes, then a mount trigger, a schedule trigger
/// and a manual `plugsync run` of the same definition fire at once.
///
/// Invariants: no two runs overlap (each run's `before` and `after` hooks append a start and an
/// end line with a nanosecond time to one file; the lines must alternate start, end, start, …
/// and the intervals must not intersect); no trigger is lost (every submitted trigger's
/// completion is reported, the manual run exits 0, and after each storm the destination equals
/// the source, contents and all).
///
/// `testStormsThroughTheJobQueue` (50 storms, no root): mount and schedule triggers are submitted
/// to a `JobQueue` whose work is the agent's (`SyncRunner.run` with that trigger, lines not
/// printed), the manual run is the built binary in its own process, serialized by the same lock
/// file. The agent's timer cannot fire more than once a minute, so the schedule trigger is
/// submitted the way `Agent.scheduleFired` does, not by the timer.
///
/// `testStormsWithTheRealAgent` (root, 6 storms): `plugsync agent` with real udevd, a loop device
/// with ext4, real mounts; each storm remounts the drive and starts `plugsync run` at once; the
/// definition has `every: 1m`, and the last storm starts 0.1 s before a minute boundary so that
/// the agent's own timer fires into it (so this test waits up to a minute).
final class TriggerStormTests: IntegrationTestCase {
    private let storms = 50

    private func hookLines(_ events: String) -> [String] {
        [
            "hooks:",
            "  before: 'echo \"B $PLUGSYNC_TRIGGER $(date +%s%N)\" >> \(events); sleep 0.03'",
            "  after: 'echo \"A $PLUGSYNC_TRIGGER $(date +%s%N)\" >> \(events)'",
        ]
    }

    /// Changes the source for storm `i`: a new file, a same-size edit, and (every third storm) a
    /// deletion, so a mirror has to copy, replace and delete.
    private func changeSource(_ i: Int) throws {
        try write("src/new-\(i).txt", "storm \(i)\n")
        try write("src/counter.txt", String(format: "storm %04d\n", i))
        if i % 3 == 2 { try remove("src/new-\(i - 1).txt") }
    }

    /// Start/end events from the hook file: overlaps (a start before the previous end) and runs.
    struct Events {
        var runs = 0
        var overlaps: [String] = []
        var triggers: [String: Int] = [:]
    }

    private func readEvents(_ file: String, from offset: Int) -> (Events, Int) {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        let lines = text.split(separator: "\n").map(String.init)
        var events = Events()
        var open: (trigger: String, time: Int64)?
        var lastEnd: Int64 = 0
        for line in lines.dropFirst(offset) {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let time = Int64(parts[2]) else {
                events.overlaps.append("unreadable event line \(line)")
                continue
            }
            let trigger = String(parts[1])
            if parts[0] == "B" {
                if let open { events.overlaps.append("\(trigger) started while \(open.trigger) was running") }
                if time < lastEnd { events.overlaps.append("\(trigger) started before the previous run ended") }
                open = (trigger, time)
                events.runs += 1
                events.triggers[trigger, default: 0] += 1
            } else {
                if open == nil { events.overlaps.append("an end without a start (\(trigger))") }
                open = nil
                lastEnd = time
            }
        }
        if let open { events.overlaps.append("\(open.trigger) never ended") }
        return (events, lines.count)
    }

    private func sameTree(_ a: String, _ b: String) throws -> String? {
        let x = try snapshot(a)
        let y = try snapshot(b)
        if x.keys.sorted() != y.keys.sorted() {
            return "entries differ: only in source \(Set(x.keys).subtracting(y.keys).sorted()), "
                + "only in destination \(Set(y.keys).subtracting(x.keys).sorted())"
        }
        for (key, node) in x where node.kind == .file {
            if !filesEqual(a + "/" + key, b + "/" + key) { return "\(key) differs" }
        }
        return nil
    }

    final class Completions: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func add() {
            lock.lock()
            count += 1
            lock.unlock()
        }
        var value: Int {
            lock.lock()
            defer { lock.unlock() }
            return count
        }
    }

    func testStormsThroughTheJobQueue() throws {
        try write("src/counter.txt", String(format: "storm %04d\n", 0))
        for i in 0..<20 { try write("src/base/f\(i).txt", "base \(i)\n") }
        try mkdir("dst")
        let events = path("events.txt")
        try writeConfig(definition("storm", source: path("src"), destination: path("dst"), hookLines(events)))
        let definition = try DefinitionsFile.load(path: configPath).definition(named: "storm")
        let runner = try SyncRunner(stateDirectory: stateDirectory)
        // The agent's work: one run of the definition with the trigger, lines to the log only.
        let queue = JobQueue { _, trigger in
            var options = RunOptions()
            options.trigger = trigger.kind
            options.verbosity = .silent
            _ = runner.run(definition, options: options)
        }
        var held = 0
        var offset = 0
        var totals = Events()
        let start = Date()
        for i in 1...storms {
            try changeSource(i)
            let completions = Completions()
            // All three at once: the manual process starts first (it takes longest to get going).
            let manual = try startPlugsync(["run", "storm", "--config", configPath, "--quiet"])
            DispatchQueue.concurrentPerform(iterations: 2) { k in
                queue.submit("storm", trigger: k == 0 ? "mount" : "schedule") { completions.add() }
            }
            let deadline = Date().addingTimeInterval(30)
            while (manual.process.isRunning || completions.value < 2 || !queue.isIdle) && Date() < deadline {
                usleep(2_000)
            }
            var problems: [String] = []
            if manual.process.isRunning {
                kill(manual.process.processIdentifier, SIGKILL)
                problems.append("the manual run did not end within 30 s")
            }
            manual.process.waitUntilExit()
            let result = manual.result()
            if result.status != 0 { problems.append("the manual run exited \(result.status): \(result)") }
            if completions.value != 2 { problems.append("\(completions.value) of 2 queued triggers completed") }
            let (stormEvents, lines) = readEvents(events, from: offset)
            offset = lines
            problems += stormEvents.overlaps
            if stormEvents.runs < 2 { problems.append("only \(stormEvents.runs) runs for three triggers") }
            if let difference = try sameTree(path("src"), path("dst")) {
                problems.append("the destination is not synced: \(difference)")
            }
            totals.runs += stormEvents.runs
            for (trigger, count) in stormEvents.triggers { totals.triggers[trigger, default: 0] += count }
            if problems.isEmpty { held += 1 } else { XCTFail("storm \(i): \(problems.joined(separator: "; "))") }
        }
        let (all, _) = readEvents(events, from: 0)
        XCTAssertEqual(all.overlaps, [], "overlaps across storms")
        print(
            "trigger storms (job queue): \(totals.runs) runs for \(3 * storms) triggers (\(totals.triggers)), "
                + "\(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        print("reliability: case 7 trigger storms: held \(held) of \(storms)")
        XCTAssertEqual(held, storms)
    }

    // MARK: the real agent

    private var agent: Running?

    override func tearDownWithError() throws {
        agent?.stop()
        agent = nil
        try super.tearDownWithError()
    }

    private var agentLog: String {
        guard let agent else { return "" }
        return (try? String(contentsOfFile: agent.errPath, encoding: .utf8)) ?? ""
    }

    private func count(_ text: String, in log: String) -> Int { log.components(separatedBy: text).count - 1 }

    func testStormsWithTheRealAgent() throws {
        let realStorms = 6
        try requireRoot(
            "loop devices, mounts and udevd", tools: ["truncate", "mkfs.ext4", "losetup", "udevadm", "mount", "umount"])
        try ensureUdevd()
        let label = "PSST" + String(UInt32.random(in: 0...UInt32.max), radix: 16, uppercase: true)
        try write("src/counter.txt", String(format: "storm %04d\n", 0))
        let image = try makeImage("storm.img")
        try shell("mkfs.ext4 -q -F -L \(label) \(quote(image))")
        let device = try attach(image)
        try shell("udevadm trigger --action=change \(device) && udevadm settle --timeout=20")
        try waitForUdevLabel(device, label)
        let mount = try mountPoint("storm")
        addTeardownBlock { [self] in unmount(mount, fuse: false) }
        let events = path("events.txt")
        try writeConfig(
            ([
                "  - name: stormdev", "    type: mirror", "    source:", "      local: '\(path("src"))'", "    destination:",
                "      device:", "        label: \(label)", "        directory: backup", "    schedule:",
                "      - every: 1m",
            ] + hookLines(events).map { "    " + $0 }).joined(separator: "\n") + "\n")
        agent = try startPlugsync(["agent", "--config", configPath])
        for _ in 0..<400 where !agentLog.contains("started") { usleep(25_000) }
        guard agentLog.contains("started") else { return XCTFail("the agent did not start:\n\(agentLog)") }

        var held = 0
        var offset = 0
        let start = Date()
        for i in 1...realStorms {
            // The last storm meets the agent's own timer: its manual run starts 0.1 s before a
            // minute boundary, when `every: 1m` fires (up to a minute's wait). The drive is
            // mounted 2 s before (its mount run comes first): a timer that finds no drive skips
            // its run, and on a busy machine the mount command alone can take longer than 0.1 s.
            let aligned = i == realStorms
            var boundary = 0.0
            func wait(until time: Double) {
                let wait = time - Date().timeIntervalSince1970
                if wait > 0 { usleep(useconds_t(wait * 1_000_000)) }
            }
            if aligned {
                let now = Date().timeIntervalSince1970
                boundary = (now / 60).rounded(.down) * 60 + 60
                if boundary - now < 2.5 { boundary += 60 }
                wait(until: boundary - 2)
            }
            let schedulesBefore = count("(trigger: schedule)", in: agentLog)
            try changeSource(i)
            let before = count("stormdev: run started", in: agentLog)
            try shell("mount \(device) \(quote(mount))")
            if aligned {
                // A mount that outlasted the 2 s: the next minute's timer finds the drive mounted.
                if Date().timeIntervalSince1970 > boundary - 0.2 { boundary += 60 }
                wait(until: boundary - 0.1)
            }
            let manual = try startPlugsync(["run", "stormdev", "--config", configPath, "--quiet"])
            // The agent's mount run (and any follow-up) and the manual run must all end.
            let deadline = Date().addingTimeInterval(30)
            var settled = false
            while Date() < deadline {
                let log = agentLog
                let started = count("stormdev: run started", in: log)
                let ended = count("(trigger: ", in: log) - started
                let scheduled = !aligned || count("run started (trigger: schedule)", in: log) > 0
                if !manual.process.isRunning && started > before && ended == started && scheduled
                    && (!aligned || count("(trigger: schedule)", in: log) > schedulesBefore)
                {
                    settled = true
                    break
                }
                usleep(10_000)
            }
            manual.process.waitUntilExit()
            let result = manual.result()
            var problems: [String] = []
            if !settled { problems.append("the agent's runs did not settle within 30 s") }
            if result.status != 0 { problems.append("the manual run exited \(result.status): \(result)") }
            let (stormEvents, lines) = readEvents(events, from: offset)
            offset = lines
            problems += stormEvents.overlaps
            if stormEvents.runs < 2 {
                problems.append("only \(stormEvents.runs) runs for the mount and manual triggers")
            }
            if let difference = try sameTree(path("src"), mount + "/backup") {
                problems.append("the drive is not synced: \(difference)")
            }
            try shell("umount \(quote(mount))")
            if problems.isEmpty {
                held += 1
            } else {
                XCTFail("real storm \(i): \(problems.joined(separator: "; "))\n\(agentLog)")
            }
        }
        let (all, _) = readEvents(events, from: 0)
        XCTAssertEqual(all.overlaps, [])
        print(
            "trigger storms (real agent): \(all.runs) runs (\(all.triggers)), "
                + "\(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        XCTAssertGreaterThan(all.triggers["schedule"] ?? 0, 0, "the aligned storm met no schedule run:\n\(agentLog)")
        print(
            "reliability: case 7 trigger storms, real agent: held \(held) of \(realStorms)"
        )
        XCTAssertEqual(held, realStorms)
    }
}
