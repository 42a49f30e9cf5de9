import CCurl
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Healthchecks-style pings (the healthchecks.io convention): an HTTP POST to `URL/start` when a
/// run starts, `URL` when it succeeds, `URL/fail` when it fails, is refused or is overdue, with
/// the run's summary lines as the body. Through libcurl, loaded at the first ping.
///
/// A ping never changes a run's result: it is sent after the run is recorded, and a server that
/// does not answer costs at most `timeout` seconds, retries included.
public enum Ping {
    /// The most one ping may take, retries included.
    public static let timeout = 10.0
    /// Attempts within the timeout (a refused connection or an error answer is tried again).
    static let attempts = 3

    /// Sends one ping; nil when the server took it, else why not (one line, without the URL's
    /// path: it is the check's secret).
    @discardableResult
    public static func send(_ url: String, body: String, deadline: Double = Condition.now() + timeout) -> String? {
        guard ccurl_global_init() == CURLE_OK else { return String(cString: ccurl_load_error()) }
        guard let easy = ccurl_easy_init() else { return "cannot initialize libcurl" }
        defer { ccurl_easy_cleanup(easy) }
        var problem = "no time left"
        for attempt in 0..<attempts {
            let left = deadline - Condition.now()
            if left < 0.05 { break }
            problem = post(easy, url: url, body: body, seconds: left) ?? ""
            if problem.isEmpty { return nil }
            // Wait a little before the next attempt (0.5 s, then 1 s), if time is left for it.
            let pause = 0.5 * Double(attempt + 1)
            if attempt + 1 < attempts && deadline - Condition.now() > pause + 0.5 {
                usleep(useconds_t(pause * 1e6))
            } else {
                break
            }
        }
        return problem
    }

    private static let discard: ccurl_data_callback = { _, size, count, _ in size * count }

    private static func post(_ easy: UnsafeMutableRawPointer, url: String, body: String, seconds: Double) -> String? {
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        errorBuffer[0] = 0
        ccurl_easy_reset(easy)
        ccurl_setopt_string(easy, CURLOPT_URL, url)
        ccurl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        ccurl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        ccurl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer)
        ccurl_setopt_long(easy, CURLOPT_TIMEOUT_MS, max(50, Int(seconds * 1000)))
        ccurl_setopt_long(easy, CURLOPT_FAILONERROR, 1)
        ccurl_setopt_string(easy, CURLOPT_USERAGENT, "plugsync/" + PlugSyncVersion.current)
        ccurl_setopt_long(easy, CURLOPT_POSTFIELDSIZE, body.utf8.count)
        ccurl_setopt_string(easy, CURLOPT_COPYPOSTFIELDS, body)
        let headers = ccurl_slist_append(nil, "Content-Type: text/plain; charset=utf-8")
        defer { ccurl_slist_free_all(headers) }
        ccurl_setopt_slist(easy, CURLOPT_HTTPHEADER, headers)
        ccurl_setopt_callback(easy, CURLOPT_WRITEFUNCTION, discard)
        let code = ccurl_easy_perform(easy)
        if code == CURLE_OK { return nil }
        return errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: ccurl_easy_strerror(code))
    }

    /// `https://hc-ping.com/…` → `hc-ping.com`: how a warning names the server.
    public static func host(_ url: String) -> String {
        String(url.drop { $0 != "/" }.dropFirst(2).prefix { $0 != "/" && $0 != "?" && $0 != "#" })
    }

    /// `URL` with `/start` or `/fail` added before its query, if any.
    public static func url(_ base: String, suffix: String) -> String {
        guard !suffix.isEmpty else { return base }
        let query = base.firstIndex { $0 == "?" || $0 == "#" } ?? base.endIndex
        var head = String(base[..<query])
        while head.hasSuffix("/") { head.removeLast() }
        return head + "/" + suffix + base[query...]
    }
}

/// The pings of one run: `start` on a thread of its own while the run goes on, then the
/// result's, after the start's (so that the server sees them in order), within `Ping.timeout`
/// of the result.
final class RunPings: @unchecked Sendable {
    private let url: String
    private let notify: NotifySettings
    private let name: String
    private let done = Condition()
    private var startPending = false

    init?(_ definition: Definition) {
        guard let notify = definition.notify, let url = notify.url else { return nil }
        self.url = url
        self.notify = notify
        self.name = definition.name
    }

    func started(_ line: String) {
        guard notify.wants(.start) else { return }
        startPending = true
        startThread { [self] in
            report(Ping.send(Ping.url(url, suffix: "start"), body: line + "\n"))
            done.lock()
            startPending = false
            done.broadcast()
            done.unlock()
        }
    }

    func finished(_ outcome: RunOutcome) {
        let success = outcome.status == .success
        guard notify.wants(success ? .success : .failure) else { return }
        let deadline = Condition.now() + Ping.timeout
        done.lock()
        while startPending && done.wait(until: deadline) {}
        done.unlock()
        var lines = outcome.message.isEmpty ? [] : [outcome.message]
        lines.append(outcome.summary)
        report(
            Ping.send(
                Ping.url(url, suffix: success ? "" : "fail"), body: lines.joined(separator: "\n") + "\n",
                deadline: deadline))
    }

    private func report(_ problem: String?) {
        guard let problem else { return }
        printError("warning: \(name): the ping to \(Ping.host(url)) was not delivered: \(problem)")
    }
}
