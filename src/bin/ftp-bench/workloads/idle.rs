//! Idle sessions: many logged-in sessions held open at once, then the server's memory
//! (RSS and PSS of its process tree) and the time a new client takes to be served
//! (connect + login + LIST + QUIT, the worst of a few), and whether every idle session
//! still answers afterwards.
//!
//! Each session is one socket here too: before opening any, the workload checks that
//! its own open-files limit (raised to the hard limit at start) has room for them all,
//! and says so plainly rather than failing on the first `EMFILE`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::ensure;
use simple_ftp::Client;

use super::latency::{is_refusal, Latencies};
use super::many::Tally;
use crate::meter::server_memory;
use crate::record::Record;
use crate::target::Target;

/// Descriptors the load generator needs besides one per idle session: standard
/// streams, the probes' control and data connections, /proc reads, slack.
const SPARE_FILES: u64 = 64;

/// The time a newcomer should be served in beside the idle sessions (issue 12's target).
const TARGET_MS: f64 = 20.0;

/// How many idle sessions an open-files limit leaves room for (`None`: unlimited).
fn room_for_sessions(limit: Option<u64>) -> Option<u64> {
    limit.map(|n| n.saturating_sub(SPARE_FILES))
}

/// `idle`: `openers` threads open `sessions` logged-in sessions, then the server's memory
/// is read, `probes` new clients are timed, and every idle session is sent a NOOP (by
/// the same threads, each to the sessions it opened).
pub(crate) fn idle(t: &Target, sessions: usize, openers: usize, probes: usize) -> Vec<Record> {
    let mut rss = t.record("idle-rss", "ftp-bench");
    rss.unit = "MiB".into();
    let mut pss = t.record("idle-pss", "ftp-bench");
    pss.unit = "MiB".into();
    let mut lat = t.record("idle-latency", "ftp-bench");
    lat.unit = "ms".into();
    let limit = simple_ftp::limits::raise_open_files_limit().now;
    if let Some(room) = room_for_sessions(limit).filter(|&room| room < sessions as u64) {
        for r in [&mut rss, &mut pss, &mut lat] {
            r.note = format!(
                "ftp-bench's open-files limit ({}) leaves room for {room} sessions, not {sessions}: \
                 raise `ulimit -Hn`",
                limit.unwrap_or(0)
            );
        }
        return vec![rss, pss, lat];
    }
    let deadline = t.deadline();
    let openers = openers.clamp(1, sessions.max(1));
    let tally = Tally::default();
    let refused = AtomicU64::new(0);
    let start = Instant::now();
    // Each opener keeps the sessions it opened until every probe is done.
    let mut held: Vec<Vec<Client>> = thread::scope(|s| {
        let handles: Vec<_> = (0..openers)
            .map(|k| {
                let (tally, refused) = (&tally, &refused);
                let share = sessions / openers + usize::from(k < sessions % openers);
                s.spawn(move || {
                    let mut mine = Vec::with_capacity(share);
                    for _ in 0..share {
                        if Instant::now() > deadline {
                            tally.error("deadline reached while opening sessions");
                            break;
                        }
                        match t.session() {
                            Ok(c) => {
                                mine.push(c);
                                tally.done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                if is_refusal(&e) {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                }
                                tally.error(format!("{e:#}"));
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let opened = tally.done.load(Ordering::Relaxed) as usize;
    let open_secs = start.elapsed().as_secs_f64();
    // Let the server settle (forked helpers, lazily touched memory) before reading it.
    thread::sleep(Duration::from_secs(1));
    let mem = server_memory(&t.pids);
    let mut times = Latencies::default();
    let mut probe_error = None;
    for _ in 0..probes {
        let begin = Instant::now();
        let result = (|| -> anyhow::Result<()> {
            let mut c = t.session()?;
            let listing = c.list(if t.dir.is_empty() { None } else { Some(&t.dir) })?;
            ensure!(!listing.is_empty(), "empty listing");
            c.quit()?;
            Ok(())
        })();
        match result {
            Ok(()) => times.push(begin.elapsed().as_secs_f64() * 1000.0),
            Err(e) => {
                probe_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    // Are the idle sessions still there? One NOOP each, until the deadline.
    let noop_start = Instant::now();
    let alive = AtomicU64::new(0);
    thread::scope(|s| {
        for mine in &mut held {
            let alive = &alive;
            s.spawn(move || {
                for c in mine.iter_mut() {
                    if Instant::now() > deadline {
                        break;
                    }
                    if c.noop().is_ok() {
                        alive.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let noop_secs = noop_start.elapsed().as_secs_f64();
    let alive = alive.load(Ordering::Relaxed) as usize;
    drop(held);
    let errors = tally.errors.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    let mut base_note = format!(
        "{opened} of {sessions} sessions open in {open_secs:.1} s, \
         {alive} answered NOOP after the probes (in {noop_secs:.1} s)"
    );
    if errors > 0 {
        let _ = write!(
            base_note,
            ", {errors} failed to open ({refused} refused with 421): {}",
            tally.first_error.lock().clone().unwrap_or_default()
        );
    }
    let all_open = opened == sessions && alive == sessions;
    for r in [&mut rss, &mut pss] {
        r.work = opened as f64;
        r.secs = open_secs;
        r.note.clone_from(&base_note);
    }
    match mem {
        Some((rss_kib, pss_kib, procs)) => {
            rss.value = rss_kib as f64 / 1024.0;
            pss.value = pss_kib as f64 / 1024.0;
            rss.ok = all_open;
            pss.ok = all_open;
            let _ = write!(rss.note, ", {procs} server processes");
            let _ = write!(pss.note, ", {procs} server processes");
        }
        None => {
            rss.note.push_str(", no server PID to measure");
            pss.note.push_str(", no server PID to measure");
        }
    }
    lat.work = times.len() as f64;
    lat.secs = times.total_secs();
    if let (Some(worst), Some(median)) = (times.worst(), times.median()) {
        lat.value = worst;
        lat.note = format!(
            "worst of {} new clients (connect + login + LIST + QUIT), median {median:.1} ms, \
             {} past {TARGET_MS} ms",
            times.len(),
            times.past(TARGET_MS),
        );
    }
    lat.ok = times.len() == probes && all_open;
    let mut also = Vec::new();
    if let Some(e) = probe_error {
        also.push(format!("a probe failed: {e}"));
    }
    if !all_open {
        also.push(base_note);
    }
    for text in also {
        if !lat.note.is_empty() {
            lat.note.push_str("; ");
        }
        lat.note.push_str(&text);
    }
    vec![rss, pss, lat]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::check::check_bytes;

    #[test]
    fn the_open_files_limit_leaves_room_for_all_but_the_spare_ones() {
        assert_eq!(room_for_sessions(Some(20_000)), Some(20_000 - SPARE_FILES));
        assert_eq!(room_for_sessions(Some(10)), Some(0));
        assert_eq!(room_for_sessions(None), None);
    }

    #[test]
    fn idle_sessions_are_held_measured_and_all_answer_noop_afterwards() {
        let server = crate::workloads::test_server::TestServer::start(4);
        let records = idle(&server.target, 60, 6, 3);
        let [rss, pss, lat] = records.as_slice() else {
            panic!("three records: {records:?}");
        };
        for r in [rss, pss, lat] {
            assert!(r.ok, "{r:?}");
        }
        assert_eq!(rss.work, 60.0);
        assert!(
            rss.note.contains("60 of 60 sessions open") && rss.note.contains("60 answered NOOP"),
            "{rss:?}"
        );
        // This test process is the "server" measured: it has some memory.
        assert!(rss.value > 1.0 && pss.value > 0.0, "{rss:?} {pss:?}");
        assert_eq!(lat.work, 3.0);
        assert!(
            lat.value > 0.0 && lat.note.starts_with("worst of 3 new clients"),
            "{lat:?}"
        );
        // And the server serves the same bytes once the idle sessions are gone.
        let mut c = server.target.session().expect("session");
        let mut bytes = Vec::new();
        c.get_into("pub/small.bin", &mut bytes, |_| {})
            .expect("RETR");
        let small = &server.small;
        check_bytes(&bytes, small.size, small.sha256.as_deref()).expect("same bytes");
    }

    #[test]
    fn sessions_past_the_server_s_limit_are_reported_as_refused() {
        let server = crate::workloads::test_server::TestServer::start_with(2, 5);
        let records = idle(&server.target, 8, 2, 1);
        for r in &records {
            assert!(!r.ok, "{r:?}");
        }
        assert!(
            records[0].note.contains("5 of 8 sessions open")
                && records[0]
                    .note
                    .contains("3 failed to open (3 refused with 421)"),
            "{:?}",
            records[0]
        );
    }
}
