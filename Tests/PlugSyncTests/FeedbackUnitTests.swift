import XCTest

@testable import PlugSync

/// `max_age` durations, ping URLs, and `notify` / `settings` read and written back.
final class FeedbackUnitTests: XCTestCase {
    func testAgeTextReadsAndWritesDurations() {
        XCTAssertEqual(AgeText.seconds("30m"), 1800)
        XCTAssertEqual(AgeText.seconds("12h"), 43200)
        XCTAssertEqual(AgeText.seconds("7d"), 604_800)
        for bad in ["", "7", "d", "0d", "-1h", "7 d", "7w", "1.5h", "99999999999999999999d", "3651d"] {
            XCTAssertNil(AgeText.seconds(bad), bad)
        }
        XCTAssertEqual(AgeText.text(604_800), "7d")
        XCTAssertEqual(AgeText.text(90 * 60), "90m")
        XCTAssertEqual(AgeText.text(36 * 3600), "36h")
        XCTAssertEqual(AgeText.spoken(9.6 * 86400), "9 days")
        XCTAssertEqual(AgeText.spoken(86400), "1 day")
        XCTAssertEqual(AgeText.spoken(5 * 3600 + 59), "5 hours")
        XCTAssertEqual(AgeText.spoken(61), "1 minute")
    }

    func testPingURLs() {
        XCTAssertEqual(Ping.url("https://hc-ping.com/abc", suffix: "fail"), "https://hc-ping.com/abc/fail")
        XCTAssertEqual(Ping.url("https://hc-ping.com/abc/", suffix: "start"), "https://hc-ping.com/abc/start")
        XCTAssertEqual(Ping.url("https://hc-ping.com/abc?rid=1", suffix: "fail"), "https://hc-ping.com/abc/fail?rid=1")
        XCTAssertEqual(Ping.url("https://hc-ping.com/abc", suffix: ""), "https://hc-ping.com/abc")
        XCTAssertEqual(Ping.host("https://user@hc.example.org:8443/p/abc?x"), "user@hc.example.org:8443")
    }

    func testNotifyAndSettingsRoundTrip() throws {
        let text = """
            settings:
              metrics_file: /var/lib/node-exporter/plugsync.prom
            definitions:
              - name: docs
                source:
                  local: /a
                destination:
                  local: /b
                max_age: 36h
                notify:
                  desktop: false
                  url: https://hc-ping.com/x
                  events: [success, start]
              - name: quiet
                source:
                  local: /a
                destination:
                  local: /c
                notify: {}

            """
        let file = try DefinitionsFile(path: "/t.yaml", text: text)
        XCTAssertEqual(file.settings.metricsFile, "/var/lib/node-exporter/plugsync.prom")
        let docs = try file.definition(named: "docs")
        XCTAssertEqual(docs.maxAge, 36 * 3600)
        XCTAssertEqual(
            docs.notify, NotifySettings(desktop: false, url: "https://hc-ping.com/x", events: [.start, .success]))
        XCTAssertEqual(try file.definition(named: "quiet").notify, NotifySettings())
        for definition in file.definitions {
            let emitted = "definitions:\n" + DefinitionEmitter.lines(for: definition, indent: 2).joined(separator: "\n")
            let again = try DefinitionsFile(path: "/t.yaml", text: emitted + "\n")
            XCTAssertEqual(again.definitions, [definition], emitted)
        }
    }
}
