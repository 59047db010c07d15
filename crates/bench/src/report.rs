//! The Markdown the run prints: one table per benchmark, each with its ratio and
//! whether the target was met.

use std::fmt::Write as _;
use std::time::Duration;

use crate::requests::{ANSWER_TO_OPENCODE_TARGET, ASKED_TO_WAITING_TARGET, RequestFigures};
use crate::server::ServerFigures;
use crate::stats::ms;
use crate::watch::WatchFigures;

/// Throughput target: ours at least this many times the reference's requests/s.
pub const THROUGHPUT_TARGET: f64 = 20.0;

/// Memory target for our idle server, in bytes (10 MB, decimal).
pub const MEMORY_TARGET_BYTES: u64 = 10_000_000;

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// Benchmark 1's table. The first figure is ours, the second (if any) the reference.
pub fn watch_table(figures: &[WatchFigures]) -> String {
    let mut out = String::from(
        "| program | runs (wall time) | median | model requests |\n| --- | --- | ---: | ---: |\n",
    );
    for figure in figures {
        let runs: Vec<String> = figure.runs.iter().map(|d| seconds(*d)).collect();
        let requests: Vec<String> = figure.model_requests.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            figure.subject,
            runs.join(", "),
            seconds(figure.median()),
            requests.join(", ")
        );
    }
    if let [ours, reference] = figures {
        let ratio = reference.median().as_secs_f64() / ours.median().as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "\nReference median ÷ ours: **{ratio:.1}×** (ours finishes the same task {ratio:.1} times sooner)."
        );
    }
    out
}

/// Benchmark 2's table, one row per endpoint and program, with ratios.
pub fn throughput_table(figures: &[ServerFigures]) -> String {
    let mut out = String::from(
        "| endpoint | program | requests/s | p50 | p99 | errors | server CPU per request | tasks / sessions in a response | mean body |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let endpoints = figures.first().map(|f| f.endpoints.len()).unwrap_or(0);
    let mut ratios = String::new();
    for index in 0..endpoints {
        for figure in figures {
            let Some(endpoint) = figure.endpoints.get(index) else { continue };
            let report = &endpoint.report;
            let sessions =
                endpoint.sessions_in_response.map_or("–".to_owned(), |n| n.to_string());
            let _ = writeln!(
                out,
                "| GET {} | {} | {:.0} | {} | {} | {} | {:.0} µs | {} / {} | {:.1} KiB |",
                endpoint.path,
                figure.subject,
                report.rate(),
                ms(report.p50()),
                ms(report.p99()),
                report.errors,
                endpoint.cpu_per_request_us(),
                endpoint.tasks_in_response,
                sessions,
                report.mean_body() as f64 / 1024.0
            );
        }
        if let [ours, reference] = figures {
            if let (Some(a), Some(b)) = (ours.endpoints.get(index), reference.endpoints.get(index))
            {
                let ratio = a.report.rate() / b.report.rate().max(1e-9);
                let cpu = b.cpu_per_request_us() / a.cpu_per_request_us().max(1e-9);
                let _ = writeln!(
                    ratios,
                    "- GET {}: ours ÷ reference = **{ratio:.1}×** requests/s (target ≥ {THROUGHPUT_TARGET:.0}×: {}); \
                     p50 {} vs {}; the reference spends {cpu:.1}× our server CPU per request.",
                    a.path,
                    verdict(ratio >= THROUGHPUT_TARGET),
                    ms(a.report.p50()),
                    ms(b.report.p50()),
                );
            }
        }
    }
    if !ratios.is_empty() {
        out.push('\n');
        out.push_str(&ratios);
    }
    out
}

/// Benchmark 3's table.
pub fn memory_table(figures: &[ServerFigures]) -> String {
    let mut out = String::from(
        "| program | idle VmRSS (start-up + idle) | of it: data / mapped files | VmRSS after the load | VmHWM (peak) |\n| --- | ---: | ---: | ---: | ---: |\n",
    );
    for figure in figures {
        let _ = writeln!(
            out,
            "| {} | {} | {} KiB / {} KiB | {} | {} |",
            figure.subject,
            kib(figure.idle.rss_kib),
            figure.idle.anon_kib,
            figure.idle.file_kib,
            kib(figure.after_load.rss_kib),
            kib(figure.after_load.peak_kib)
        );
    }
    if let Some(ours) = figures.first() {
        let bytes = ours.idle.rss_kib * 1024;
        let _ = writeln!(
            out,
            "\nOurs idle: {:.1} MB (target < 10 MB: {}).",
            bytes as f64 / 1e6,
            verdict(bytes < MEMORY_TARGET_BYTES)
        );
    }
    if let [ours, reference] = figures {
        let ratio = reference.idle.rss_kib as f64 / (ours.idle.rss_kib as f64).max(1.0);
        let _ = writeln!(out, "Reference idle ÷ ours: **{ratio:.1}×**.");
    }
    out
}

/// The burst of large tasks (ours only), or an empty string when it did not run.
pub fn burst_table(figures: &[ServerFigures]) -> String {
    let Some(burst) = figures.iter().find_map(|f| f.burst.as_ref()) else {
        return String::new();
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} tasks of {:.0} KB each created over the API (and paused), then `GET /api/tasks` \
         and the SSE snapshot read 5 times each; one list answer: {:.1} KB.\n",
        crate::burst::TASKS,
        burst.spec_bytes as f64 / 1000.0,
        burst.list_bytes as f64 / 1000.0
    );
    out.push_str("| moment | VmRSS | of it: data / mapped files | VmHWM (peak so far) |\n| --- | ---: | ---: | ---: |\n");
    let settle = crate::burst::SETTLE.as_secs();
    for (moment, memory) in [
        ("before the burst (after the load)".to_owned(), &burst.before),
        ("right after the last read".to_owned(), &burst.after_reads),
        (format!("{settle} s later, no requests"), &burst.settled),
        (format!("after a second such burst and {settle} s"), &burst.second),
    ] {
        let _ = writeln!(
            out,
            "| {moment} | {} | {} KiB / {} KiB | {} |",
            kib(memory.rss_kib),
            memory.anon_kib,
            memory.file_kib,
            kib(memory.peak_kib)
        );
    }
    out
}

fn kib(value: u64) -> String {
    format!("{:.1} MB ({value} KiB)", (value * 1024) as f64 / 1e6)
}

/// Benchmark 4's table: each latency's runs, median, worst and target.
pub fn requests_table(figures: &RequestFigures) -> String {
    let (median_waiting, median_opencode) = figures.medians();
    let (worst_waiting, worst_opencode) = figures.worst();
    let runs = |v: &[Duration]| v.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ");
    let mut out = String::from(
        "| latency | runs | median | worst | target |\n| --- | --- | ---: | ---: | --- |\n",
    );
    let _ = writeln!(
        out,
        "| asked in OpenCode → `waiting` in the store | {} | {} | {} | < {} ({}) |",
        runs(&figures.to_waiting),
        ms(median_waiting),
        ms(worst_waiting),
        ms(ASKED_TO_WAITING_TARGET),
        verdict(worst_waiting < ASKED_TO_WAITING_TARGET)
    );
    let _ = writeln!(
        out,
        "| `openloom answer` started → OpenCode took it | {} | {} | {} | < {} ({}) |",
        runs(&figures.to_opencode),
        ms(median_opencode),
        ms(worst_opencode),
        ms(ANSWER_TO_OPENCODE_TARGET),
        verdict(worst_opencode < ANSWER_TO_OPENCODE_TARGET)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadReport;
    use crate::process::Memory;
    use crate::server::EndpointFigures;

    fn watch(subject: &'static str, secs: &[u64]) -> WatchFigures {
        WatchFigures {
            subject,
            runs: secs.iter().map(|&s| Duration::from_secs(s)).collect(),
            model_requests: vec![5; secs.len()],
        }
    }

    fn server(subject: &'static str, rate: usize, rss_kib: u64) -> ServerFigures {
        let report = LoadReport {
            latencies: vec![Duration::from_millis(2); rate],
            errors: 0,
            first_error: None,
            bytes: rate as u64 * 2048,
            elapsed: Duration::from_secs(1),
        };
        ServerFigures {
            subject,
            idle: Memory { rss_kib, peak_kib: rss_kib, anon_kib: 0, file_kib: rss_kib },
            after_load: Memory {
                rss_kib: rss_kib * 2,
                peak_kib: rss_kib * 3,
                anon_kib: 0,
                file_kib: 0,
            },
            endpoints: vec![EndpointFigures {
                path: "/api/tasks",
                tasks_in_response: 50,
                sessions_in_response: None,
                server_cpu: Duration::from_millis(500),
                requests_in_cpu_window: rate,
                report,
            }],
            burst: None,
        }
    }

    #[test]
    fn the_watch_ratio_is_reference_over_ours() {
        let table = watch_table(&[watch("ours", &[2, 3, 4]), watch("ref", &[30, 30, 36])]);
        assert!(table.contains("| ours | 2.00 s, 3.00 s, 4.00 s | 3.00 s | 5, 5, 5 |"), "{table}");
        assert!(table.contains("**10.0×**"), "{table}");
    }

    #[test]
    fn throughput_verdicts_follow_the_target() {
        let met = throughput_table(&[server("ours", 2000, 8000), server("ref", 100, 60000)]);
        assert!(met.contains("**20.0×** requests/s (target ≥ 20×: met)"), "{met}");
        // 500 ms over 2000 requests = 250 µs; over 100 requests = 5000 µs: 20×.
        let row =
            "| GET /api/tasks | ours | 2000 | 2.00 ms | 2.00 ms | 0 | 250 µs | 50 / – | 2.0 KiB |";
        assert!(met.contains(row), "{met}");
        assert!(met.contains("spends 20.0× our server CPU per request"), "{met}");
        let missed = throughput_table(&[server("ours", 1900, 8000), server("ref", 100, 60000)]);
        assert!(missed.contains("MISSED"), "{missed}");
    }

    #[test]
    fn the_burst_table_shows_four_moments_or_nothing() {
        let mut ours = server("ours (Rust)", 100, 9000);
        assert_eq!(burst_table(std::slice::from_ref(&ours)), "");
        let at = |rss_kib| Memory { rss_kib, peak_kib: 30_000, anon_kib: 1, file_kib: 2 };
        ours.burst = Some(crate::burst::BurstFigures {
            before: at(9000),
            after_reads: at(25_000),
            settled: at(12_000),
            second: at(12_500),
            spec_bytes: 195_000,
            list_bytes: 40_000,
        });
        let table = burst_table(&[ours]);
        assert_eq!(table.lines().filter(|l| l.starts_with("| ") && l.contains("KiB /")).count(), 4);
        assert!(table.contains("25.6 MB (25000 KiB)"), "{table}");
        assert!(
            table.contains("| after a second such burst and 5 s | 12.8 MB (12500 KiB)"),
            "{table}"
        );
        assert!(table.contains("195 KB each"), "{table}");
    }

    #[test]
    fn memory_verdict_uses_decimal_megabytes() {
        // 9,765 KiB = 9.999 MB: met; 9,766 KiB = 10.000,384 MB: missed.
        assert!(memory_table(&[server("ours", 1, 9765)]).contains("met"));
        let missed = memory_table(&[server("ours", 1, 9766), server("ref", 1, 97660)]);
        assert!(missed.contains("MISSED"), "{missed}");
        assert!(missed.contains("**10.0×**"), "{missed}");
    }
}
