//! Idle sessions: many logged-in sessions held open at once, then the server's memory
//! (RSS and PSS of its process tree) and the time a new client takes to be served
//! (connect + login + LIST + QUIT, the worst of a few), and whether every idle session
//! still answers afterwards.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::ensure;
use simple_ftp::Client;

use super::many::Tally;
use crate::meter::server_memory;
use crate::record::Record;
use crate::target::Target;

/// `idle`: `openers` threads open `sessions` logged-in sessions, then the server's memory
/// is read, `probes` new clients are timed, and every idle session is sent a NOOP.
pub(crate) fn idle(t: &Target, sessions: usize, openers: usize, probes: usize) -> Vec<Record> {
    let mut rss = t.record("idle-rss", "ftp-bench");
    rss.unit = "MiB".into();
    let mut pss = t.record("idle-pss", "ftp-bench");
    pss.unit = "MiB".into();
    let mut lat = t.record("idle-latency", "ftp-bench");
    lat.unit = "ms".into();
    let deadline = t.deadline();
    let openers = openers.clamp(1, sessions.max(1));
    let tally = Tally::default();
    let start = Instant::now();
    // Each opener holds its share of the sessions until every probe is done.
    let held: parking_lot::Mutex<Vec<Client>> =
        parking_lot::Mutex::new(Vec::with_capacity(sessions));
    thread::scope(|s| {
        for k in 0..openers {
            let (tally, held) = (&tally, &held);
            let share = sessions / openers + usize::from(k < sessions % openers);
            s.spawn(move || {
                for _ in 0..share {
                    if Instant::now() > deadline {
                        tally.error("deadline reached while opening sessions");
                        break;
                    }
                    match t.session() {
                        Ok(c) => {
                            held.lock().push(c);
                            tally.done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tally.error(format!("{e:#}")),
                    }
                }
            });
        }
    });
    let opened = tally.done.load(Ordering::Relaxed) as usize;
    let open_secs = start.elapsed().as_secs_f64();
    // Let the server settle (forked helpers, lazily touched memory) before reading it.
    thread::sleep(Duration::from_secs(1));
    let mem = server_memory(&t.pids);
    let mut times = Vec::new();
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
    // Are the idle sessions still there? One NOOP each.
    let mut alive = 0usize;
    for c in held.lock().iter_mut() {
        if c.noop().is_ok() {
            alive += 1;
        }
    }
    let clients = std::mem::take(&mut *held.lock());
    drop(clients);
    let errors = tally.errors.load(Ordering::Relaxed);
    let base_note = format!(
        "{opened} of {sessions} sessions open in {open_secs:.1} s, {alive} alive after the probes{}",
        if errors > 0 {
            format!(
                ", {errors} failed to open: {}",
                tally.first_error.lock().clone().unwrap_or_default()
            )
        } else {
            String::new()
        }
    );
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
    if !times.is_empty() {
        times.sort_by(f64::total_cmp);
        lat.value = times[times.len() - 1];
        lat.secs = times.iter().sum::<f64>() / 1000.0;
        lat.note = format!(
            "worst of {} new clients (connect + login + LIST + QUIT), median {:.1} ms",
            times.len(),
            times[times.len() / 2]
        );
    }
    lat.ok = times.len() == probes && all_open;
    if let Some(e) = probe_error {
        let _ = write!(lat.note, ", a probe failed: {e}");
    }
    if !all_open {
        let _ = write!(lat.note, "; {base_note}");
    }
    vec![rss, pss, lat]
}
