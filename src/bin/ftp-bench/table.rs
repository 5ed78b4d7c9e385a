//! The Markdown comparison table that `bench/compare.sh` prints: one row per figure
//! ([`ROWS`], with the server's CPU per unit of work beside each rate), one column per
//! server, the median and min–max over rounds, the ratio of ours to the best other
//! server (which way is better depends on the row), our large transfers as a share of
//! the raw loopback copy, the machine's own figures below, and every failed round
//! listed under the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::record::{Record, MIB};

/// One row of the table: which results, how to show them, and which way is better.
struct Row {
    title: &'static str,
    workload: &'static str,
    client: &'static str,
    kind: RowKind,
}

#[derive(Clone, Copy, PartialEq)]
enum RowKind {
    /// The figure itself; `higher` says whether more is better.
    Value { higher: bool },
    /// Server CPU per unit of work of the same results: CPU seconds / work * `per`.
    CpuPer { per: f64 },
}

impl Row {
    const fn value(
        title: &'static str,
        workload: &'static str,
        client: &'static str,
        higher: bool,
    ) -> Row {
        Row {
            title,
            workload,
            client,
            kind: RowKind::Value { higher },
        }
    }

    const fn cpu_per(
        title: &'static str,
        workload: &'static str,
        client: &'static str,
        per: f64,
    ) -> Row {
        Row {
            title,
            workload,
            client,
            kind: RowKind::CpuPer { per },
        }
    }
}

/// Bytes in a GiB: the large transfers' CPU is per GiB.
const GIB: f64 = 1024.0 * MIB;

const ROWS: &[Row] = &[
    Row::value(
        "large RETR, our client into a tmpfs file (MiB/s)",
        "retr-large",
        "ftp-bench",
        true,
    ),
    Row::cpu_per("… server CPU (s per GiB)", "retr-large", "ftp-bench", GIB),
    Row::value(
        "large RETR, curl into /dev/null (MiB/s)",
        "retr-large",
        "curl",
        true,
    ),
    Row::cpu_per("… server CPU (s per GiB)", "retr-large", "curl", GIB),
    Row::value(
        "large RETR, curl into a tmpfs file (MiB/s)",
        "retr-large",
        "curl>file",
        true,
    ),
    Row::value(
        "large STOR, our client (MiB/s)",
        "stor-large",
        "ftp-bench",
        true,
    ),
    Row::cpu_per("… server CPU (s per GiB)", "stor-large", "ftp-bench", GIB),
    Row::value("large STOR, curl (MiB/s)", "stor-large", "curl", true),
    Row::cpu_per("… server CPU (s per GiB)", "stor-large", "curl", GIB),
    Row::value(
        "small RETR, concurrent sessions (transfers/s)",
        "retr-small",
        "ftp-bench",
        true,
    ),
    Row::cpu_per(
        "… server CPU (µs per transfer)",
        "retr-small",
        "ftp-bench",
        1e6,
    ),
    Row::value(
        "small STOR, concurrent sessions (transfers/s)",
        "stor-small",
        "ftp-bench",
        true,
    ),
    Row::cpu_per(
        "… server CPU (µs per transfer)",
        "stor-small",
        "ftp-bench",
        1e6,
    ),
    Row::value(
        "session churn, concurrent clients (sessions/s)",
        "churn",
        "ftp-bench",
        true,
    ),
    Row::cpu_per("… server CPU (µs per session)", "churn", "ftp-bench", 1e6),
    Row::value(
        "idle sessions: server RSS (MiB)",
        "idle-rss",
        "ftp-bench",
        false,
    ),
    Row::value(
        "idle sessions: server PSS (MiB)",
        "idle-pss",
        "ftp-bench",
        false,
    ),
    Row::value(
        "idle sessions: new client served in (ms, worst)",
        "idle-latency",
        "ftp-bench",
        false,
    ),
    Row::value(
        "trickling connections: new client's LIST in (ms, worst)",
        "trickle-list",
        "ftp-bench",
        false,
    ),
    Row::value("… median (ms)", "trickle-list-median", "ftp-bench", false),
    Row::value(
        "trickling connections: new client's small RETR in (ms, worst)",
        "trickle-retr",
        "ftp-bench",
        false,
    ),
    Row::value("… median (ms)", "trickle-retr-median", "ftp-bench", false),
    Row::value(
        "trickling connections: new clients refused or failed",
        "trickle-refused",
        "ftp-bench",
        false,
    ),
];

/// The machine's figures shown under the servers' rows.
const LIMIT_ROWS: &[(&str, &str, &str)] = &[
    (
        "loadavg",
        "/proc/loadavg",
        "load average (1 min) as each round began: other work on the machine",
    ),
    (
        "time-wait",
        "ss",
        "TCP sockets in TIME-WAIT as each round began",
    ),
    (
        "loopback-tcp",
        "iperf3",
        "loopback TCP, iperf3 one stream (MiB/s)",
    ),
    (
        "page-cache-read",
        "read 1 MiB",
        "page-cache read of a tmpfs file (MiB/s)",
    ),
    (
        "raw-copy",
        "sendfile->read",
        "raw loopback copy: sendfile → socket → read into a buffer (MiB/s)",
    ),
    (
        "raw-copy-to-file",
        "sendfile->splice",
        "raw loopback copy into a tmpfs file: sendfile → socket → splice (MiB/s)",
    ),
];

/// Median, min and max.
fn stats(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

/// A number with about three significant digits.
fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn cell(s: Option<(f64, f64, f64)>, failed: usize, rounds: usize) -> String {
    let mut text = match s {
        Some((med, lo, hi)) if rounds > 1 => format!("{} ({}–{})", num(med), num(lo), num(hi)),
        Some((med, _, _)) => num(med),
        None => "–".to_owned(),
    };
    if failed > 0 {
        let _ = write!(text, " ✗{failed}");
    }
    text
}

/// The Markdown comparison table: one column per server (in the order they first
/// appear, ours first), the median and min–max over rounds, and the ratio of ours
/// to the best other server.
pub(crate) fn table(records: &[Record], ours: &str) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for r in records {
        if r.label != "machine" && !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
    }
    if let Some(i) = labels.iter().position(|l| *l == ours) {
        let l = labels.remove(i);
        labels.insert(0, l);
    }
    // (label, workload, client) -> its results
    let mut by: BTreeMap<(&str, &str, &str), Vec<&Record>> = BTreeMap::new();
    for r in records {
        by.entry((&r.label, &r.workload, &r.client))
            .or_default()
            .push(r);
    }
    let raw = records
        .iter()
        .filter(|r| r.label == "machine" && r.workload == "raw-copy" && r.ok)
        .map(|r| r.value)
        .collect::<Vec<_>>();
    let raw_median = stats(&raw).map(|s| s.0);

    let mut out = String::new();
    let _ = write!(out, "| figure |");
    for l in &labels {
        let _ = write!(out, " {l} |");
    }
    let _ = writeln!(out, " ours / best other | ours / raw copy |");
    let _ = write!(out, "|---|");
    for _ in &labels {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out, "---:|---:|");

    for row in ROWS {
        if !labels
            .iter()
            .any(|l| by.contains_key(&(*l, row.workload, row.client)))
        {
            continue;
        }
        let mut medians: Vec<(&str, f64)> = Vec::new();
        let _ = write!(out, "| {} |", row.title);
        for l in &labels {
            let results = by.get(&(*l, row.workload, row.client));
            let results: &[&Record] = results.map_or(&[], Vec::as_slice);
            let good: Vec<&Record> = results.iter().copied().filter(|r| r.ok).collect();
            let failed = results.len() - good.len();
            let values: Vec<f64> = good
                .iter()
                .filter_map(|r| match row.kind {
                    RowKind::Value { .. } => Some(r.value),
                    RowKind::CpuPer { per } => {
                        let cpu = r.server_cpu?;
                        (r.work > 0.0).then(|| cpu / r.work * per)
                    }
                })
                .collect();
            let s = stats(&values);
            if let Some((med, _, _)) = s {
                medians.push((l, med));
            }
            let _ = write!(out, " {} |", cell(s, failed, results.len()));
        }
        let higher = match row.kind {
            RowKind::Value { higher } => higher,
            RowKind::CpuPer { .. } => false,
        };
        let our = medians.iter().find(|(l, _)| *l == ours).map(|m| m.1);
        let best = medians
            .iter()
            .filter(|(l, _)| *l != ours)
            .copied()
            .reduce(|a, b| {
                let better = if higher { b.1 > a.1 } else { b.1 < a.1 };
                if better {
                    b
                } else {
                    a
                }
            });
        match (our, best) {
            (Some(o), Some((name, b))) if b > 0.0 => {
                let _ = write!(out, " {:.2}× ({name}) |", o / b);
            }
            _ => {
                let _ = write!(out, " – |");
            }
        }
        let is_large = matches!(row.workload, "retr-large" | "stor-large")
            && matches!(row.kind, RowKind::Value { .. });
        match (our, raw_median) {
            (Some(o), Some(raw)) if is_large && raw > 0.0 => {
                let _ = writeln!(out, " {:.0}% |", 100.0 * o / raw);
            }
            _ => {
                let _ = writeln!(out, " |");
            }
        }
    }
    for (workload, client, title) in LIMIT_ROWS {
        let values: Vec<f64> = records
            .iter()
            .filter(|r| {
                r.label == "machine" && r.workload == *workload && r.client == *client && r.ok
            })
            .map(|r| r.value)
            .collect();
        let Some(s) = stats(&values) else {
            continue;
        };
        let _ = write!(out, "| machine: {title} |");
        let _ = write!(out, " {} |", cell(Some(s), 0, values.len()));
        for _ in 1..labels.len() {
            let _ = write!(out, " |");
        }
        let _ = writeln!(out, " | |");
    }
    // Every failure, also one no row shows (a workload that crashed before it could
    // name its row).
    let mut failures = records.iter().filter(|r| !r.ok).peekable();
    if failures.peek().is_some() {
        let _ = writeln!(
            out,
            "\nFailed or incomplete rounds (✗, left out of the figures):"
        );
        for r in failures {
            let _ = writeln!(
                out,
                "- {} {} {} round {}: {}",
                r.label, r.workload, r.client, r.round, r.note
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::rec;

    #[test]
    fn stats_give_median_min_and_max() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(stats(&[]), None);
    }

    #[test]
    fn the_table_puts_ours_first_and_compares_with_the_best_other() {
        let mut records = Vec::new();
        for round in 0..3 {
            records.push(rec(
                "peer-a",
                round,
                "retr-small",
                1000.0 + f64::from(round),
                0.2,
                1000.0,
            ));
            records.push(rec("ours", round, "retr-small", 3000.0, 0.05, 1000.0));
            records.push(rec("peer-b", round, "retr-small", 2000.0, 0.1, 1000.0));
        }
        let t = table(&records, "ours");
        let header = t.lines().next().expect("header");
        assert!(
            header.starts_with("| figure | ours | peer-a | peer-b |"),
            "{header}"
        );
        let row = t
            .lines()
            .find(|l| l.starts_with("| small RETR"))
            .expect("row");
        assert!(row.contains("1.50× (peer-b)"), "{row}");
        let cpu = t
            .lines()
            .find(|l| l.starts_with("| … server CPU (µs per transfer)"))
            .expect("cpu row");
        // 0.05 s over 1000 transfers is 50 µs; the best other is peer-b's 100 µs.
        assert!(cpu.contains("| 50.0 (50.0–50.0) |"), "{cpu}");
        assert!(cpu.contains("0.50× (peer-b)"), "{cpu}");
    }

    #[test]
    fn failed_rounds_are_marked_and_left_out() {
        let mut bad = rec("ours", 1, "churn", 5.0, 0.1, 10.0);
        bad.ok = false;
        bad.note = "refused".into();
        let records = vec![rec("ours", 0, "churn", 100.0, 0.1, 100.0), bad];
        let t = table(&records, "ours");
        assert!(
            t.contains("| 100 (100–100) ✗1 |") || t.contains("| 100 ✗1 |"),
            "{t}"
        );
        assert!(t.contains("ours churn ftp-bench round 1: refused"), "{t}");
        assert_eq!(t.matches("refused").count(), 1, "listed once: {t}");
    }

    #[test]
    fn a_failure_no_row_shows_is_still_listed() {
        let mut crashed = rec("peer", 2, "curl-retr", 0.0, 0.0, 0.0);
        crashed.ok = false;
        crashed.note = "ftp-bench curl-retr exited with an error".into();
        let records = vec![rec("ours", 0, "churn", 100.0, 0.1, 100.0), crashed];
        let t = table(&records, "ours");
        assert!(
            t.contains("- peer curl-retr ftp-bench round 2: ftp-bench curl-retr exited"),
            "{t}"
        );
    }

    #[test]
    fn the_trickle_rows_show_worst_median_and_refusals_lower_being_better() {
        let mut records = Vec::new();
        for (label, worst, median, refused) in [("ours", 8.0, 2.0, 0.0), ("peer", 400.0, 90.0, 7.0)]
        {
            for (workload, value) in [
                ("trickle-list", worst),
                ("trickle-list-median", median),
                ("trickle-retr", worst * 2.0),
                ("trickle-retr-median", median * 2.0),
                ("trickle-refused", refused),
            ] {
                records.push(rec(label, 1, workload, value, 0.1, 20.0));
            }
        }
        let t = table(&records, "ours");
        let row = |start: &str| {
            t.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("{start}: {t}"))
                .to_owned()
        };
        let list = row("| trickling connections: new client's LIST in (ms, worst) |");
        assert!(list.contains("| 8.00 | 400 | 0.02× (peer) |"), "{list}");
        let retr = row("| trickling connections: new client's small RETR in (ms, worst) |");
        assert!(retr.contains("| 16.0 | 800 | 0.02× (peer) |"), "{retr}");
        assert_eq!(t.matches("| … median (ms) |").count(), 2, "{t}");
        let refused = row("| trickling connections: new clients refused or failed |");
        assert!(refused.contains("| 0 | 7.00 | 0.00× (peer) |"), "{refused}");
    }
}
