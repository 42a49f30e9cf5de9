import Foundation
import XCTest

@testable import PlugSync

final class JobQueueTests: XCTestCase {
    /// Triggers arriving during a run become exactly one follow-up run, with the latest trigger.
    func testTriggersDuringARunCoalesceIntoOneFollowUp() throws {
        let gate = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let log = Log()
        let queue = JobQueue { name, trigger in
            log.append("\(name):\(trigger)")
            started.signal()
            gate.wait()
        }
        let done = Log()
        XCTAssertEqual(queue.submit("a", trigger: "mount", done: { done.append("first") }), .started)
        XCTAssertEqual(started.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(queue.submit("a", trigger: "schedule", done: { done.append("second") }), .queued)
        XCTAssertEqual(queue.submit("a", trigger: "mount", done: { done.append("third") }), .merged)
        XCTAssertEqual(queue.submit("a", trigger: "manual"), .merged)
        // Another definition is independent.
        XCTAssertEqual(queue.submit("b", trigger: "mount"), .started)
        XCTAssertEqual(started.wait(timeout: .now() + 5), .success)
        gate.signal()  // a's first run ends
        gate.signal()  // b ends
        XCTAssertEqual(started.wait(timeout: .now() + 5), .success)  // the follow-up of a
        gate.signal()
        XCTAssertTrue(queue.waitUntilIdle(timeout: 5))
        let runs = log.items.filter { $0.hasPrefix("a:") }
        XCTAssertEqual(runs, ["a:mount", "a:manual"], "one run, then ONE follow-up with the latest trigger")
        XCTAssertEqual(log.items.filter { $0.hasPrefix("b:") }, ["b:mount"])
        for _ in 0..<50 where done.items.count < 3 { usleep(10_000) }
        XCTAssertEqual(Set(done.items), ["first", "second", "third"])
        // Idle again: the next trigger starts a run at once.
        XCTAssertEqual(queue.submit("a", trigger: "mount"), .started)
        gate.signal()
        XCTAssertTrue(queue.waitUntilIdle(timeout: 5))
        XCTAssertEqual(log.items.filter { $0.hasPrefix("a:") }.count, 3)
    }

    func testDrainStopsFollowUpsAndWaitsForTheRunningOne() {
        let gate = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let log = Log()
        let queue = JobQueue { name, trigger in
            log.append(trigger.kind)
            started.signal()
            gate.wait()
        }
        queue.submit("a", trigger: "mount")
        XCTAssertEqual(started.wait(timeout: .now() + 5), .success)
        queue.submit("a", trigger: "schedule")
        XCTAssertFalse(queue.drain(timeout: 0.2), "a run is still going on")
        gate.signal()
        XCTAssertTrue(queue.drain(timeout: 5))
        XCTAssertEqual(log.items, ["mount"], "no follow-up after shutdown began")
        XCTAssertNil(queue.submit("a", trigger: "mount"), "nothing is accepted after drain")
    }

    /// `every` across the autumn change in Berlin (2026-10-25, 03:00 CEST → 02:00 CET).
    func testEveryRuleAcrossTheAutumnChange() throws {
        // Schedules use the process's time zone (localtime_r/mktime): set it for this test.
        let saved = getenv("TZ").map { String(cString: $0) }
        setenv("TZ", "Europe/Berlin", 1)
        tzset()
        defer {
            if let saved { setenv("TZ", saved, 1) } else { unsetenv("TZ") }
            tzset()
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try XCTUnwrap(TimeZone(identifier: "Europe/Berlin"))
        let start = calendar.date(from: DateComponents(year: 2026, month: 10, day: 25, hour: 0, minute: 30))!
        let rule = ScheduleRule(when: .every(120))
        let first = try XCTUnwrap(rule.nextRun(after: start))
        XCTAssertEqual(calendar.component(.hour, from: first), 2)
        XCTAssertEqual(first.timeIntervalSince(start), 1.5 * 3600)
        let second = try XCTUnwrap(rule.nextRun(after: first))
        XCTAssertEqual(calendar.component(.hour, from: second), 4)
        XCTAssertEqual(second.timeIntervalSince(first), 3 * 3600, "02:00 CEST to 04:00 CET is three real hours")
        // Spring: 2026-03-29 02:00 CET → 03:00 CEST; every 30 m never lands in the missing hour.
        let spring = calendar.date(from: DateComponents(year: 2026, month: 3, day: 29, hour: 1, minute: 40))!
        let half = ScheduleRule(when: .every(30))
        let next = try XCTUnwrap(half.nextRun(after: spring))
        XCTAssertEqual(next.timeIntervalSince(spring), 20 * 60, "01:40 CET to 03:00 CEST is 20 real minutes")
        XCTAssertEqual(calendar.component(.hour, from: next), 3)
    }

    func testHooksAndDriveOptionsParseAndRoundTrip() throws {
        let text = """
            definitions:
              - name: h
                source:
                  local: /a
                destination:
                  device:
                    label: X
                    unmount_after: true
                    power_off_after: yes
                hooks:
                  before: "test -d /a"
                  after: 'echo "$PLUGSYNC_RESULT"'
                  on_error: notify-send failed
            """
        var file = try DefinitionsFile(path: "t.yaml", text: text)
        let d = try file.definition(named: "h")
        XCTAssertEqual(
            d.hooks,
            HookCommands(before: "test -d /a", after: "echo \"$PLUGSYNC_RESULT\"", onError: "notify-send failed"))
        guard case .device(let device) = d.destination.location else { return XCTFail() }
        XCTAssertTrue(device.unmountAfter)
        XCTAssertTrue(device.powerOffAfter)
        var copy = d
        copy.name = "h2"
        try file.add(copy)
        let reread = try DefinitionsFile(path: "t.yaml", text: file.text)
        XCTAssertEqual(try reread.definition(named: "h2").hooks, d.hooks)
        XCTAssertEqual(try reread.definition(named: "h2").destination, d.destination)
        XCTAssertThrowsError(
            try DefinitionsFile(path: "t.yaml", text: text.replacingOccurrences(of: "on_error:", with: "onerror:"))
        ) { error in
            XCTAssertTrue("\(error)".contains("hooks.onerror"), "\(error)")
        }
        XCTAssertThrowsError(
            try DefinitionsFile(path: "t.yaml", text: text.replacingOccurrences(of: "yes", with: "maybe")))
    }
}

final class Log: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ item: String) {
        lock.lock()
        storage.append(item)
        lock.unlock()
    }
    var items: [String] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}
