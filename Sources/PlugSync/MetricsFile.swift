import FoundationEssentials
import Prometheus
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `settings: metrics_file`: a Prometheus textfile (for node exporter's textfile collector)
/// with each definition's last run, rewritten atomically after every run and at each overdue
/// check of the agent.
public enum MetricsFile {
    static let results = ["success", "failures", "refused", "error", "stopped"]

    /// The file's text for `definitions`, from the run history.
    public static func render(_ definitions: [Definition], history: RunHistory, now: Date) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
            registry.makeGauge(name: name, labels: labels, help: help).set(value)
        }
        for definition in definitions {
            let label = [("definition", definition.name)]
            // With drives in rotation: overdue when one of them is, and a series per drive besides.
            let overdue = !Overdue.late(definition, history: history, now: now).isEmpty
            gauge(
                "plugsync_overdue", "1 when the last successful run is older than max_age", label, overdue ? 1 : 0)
            for drive in DriveStatus.all(of: definition, history: history, now: now) {
                let labels = label + [("drive", drive.name)]
                gauge(
                    "plugsync_overdue", "1 when the last successful run is older than max_age", labels,
                    drive.overdue != nil ? 1 : 0)
                gauge(
                    "plugsync_last_run_timestamp_seconds", "When the last run ended", labels,
                    drive.last.ended.timeIntervalSince1970)
                if let success = drive.lastSuccess {
                    gauge(
                        "plugsync_last_success_timestamp_seconds", "When the last successful run ended", labels,
                        success.ended.timeIntervalSince1970)
                }
            }
            if let success = history.lastRun(of: definition.name, result: "success") {
                gauge(
                    "plugsync_last_success_timestamp_seconds", "When the last successful run ended", label,
                    success.started.timeIntervalSince1970 + success.seconds)
            }
            guard let last = history.runs(of: definition.name).first else { continue }
            gauge(
                "plugsync_last_run_timestamp_seconds", "When the last run ended", label,
                last.started.timeIntervalSince1970 + last.seconds)
            for result in results {
                gauge(
                    "plugsync_last_run_result", "1 for the result of the last run (success, failures, refused, error, stopped)",
                    label + [("result", result)], last.result == result ? 1 : 0)
            }
            for (action, count) in [("copied", last.transferred), ("deleted", last.deleted), ("failed", last.failed)] {
                gauge(
                    "plugsync_last_run_files", "Files copied, deleted and failed in the last run",
                    label + [("action", action)], Double(count))
            }
            gauge("plugsync_last_run_bytes", "Bytes copied in the last run", label, Double(last.bytes))
            gauge("plugsync_last_run_duration_seconds", "How long the last run took", label, last.seconds)
        }
        return registry.emitToBuffer()
    }

    /// Rewrites the file (readable by all: node exporter reads it); nil, or why it could not.
    @discardableResult
    public static func write(_ path: String, _ definitions: [Definition], history: RunHistory, now: Date) -> String? {
        let text = render(definitions, history: history, now: now)
        if let failure = Posix.writeFileAtomically(path, text, mode: 0o644) {
            return "cannot write the metrics file \(path): \(String(cString: strerror(failure)))"
        }
        return nil
    }
}
