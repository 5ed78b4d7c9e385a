//! Many sessions at once: [`concurrent`] runs one thread per session, sets them all up
//! before the clock starts and lets them go together, and a [`Tally`] counts what they
//! did and keeps the first error for the record's note.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::Instant;

use simple_ftp::Client;

use crate::meter::Meter;
use crate::record::Record;
use crate::target::{Many, Target};

/// What the sessions of a concurrent workload did.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) done: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) first_error: parking_lot::Mutex<Option<String>>,
}

impl Tally {
    pub(crate) fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock();
        if first.is_none() {
            *first = Some(e.to_string());
        }
    }

    /// Fills in the record's work, rate and verdict; `planned` operations were asked for.
    pub(crate) fn conclude(&self, r: &mut Record, planned: usize, late: bool) {
        let done = self.done.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        r.work = done as f64;
        r.value = if r.secs > 0.0 { r.work / r.secs } else { 0.0 };
        r.ok = errors == 0 && done > 0;
        let mut note = format!("{done} of {planned} done");
        if late {
            note.push_str(", deadline reached");
        }
        if errors > 0 {
            let _ = write!(note, ", {errors} errors");
            if let Some(first) = self.first_error.lock().as_ref() {
                let _ = write!(note, ", first: {first}");
            }
        }
        r.note = note;
    }
}

/// Runs `sessions` threads that each first call `setup` (untimed), then wait for all
/// the others, then call `op(i)` for i in 0..count until the deadline; returns whether
/// the deadline stopped any session.
pub(crate) fn concurrent<S, Op>(
    t: &Target,
    many: Many,
    tally: &Tally,
    r: &mut Record,
    setup: S,
    op: Op,
) -> bool
where
    S: Fn(usize) -> anyhow::Result<Option<Client>> + Sync,
    Op: Fn(usize, usize, &mut Option<Client>) -> anyhow::Result<()> + Sync,
{
    let deadline = t.deadline();
    let late = AtomicBool::new(false);
    // Sessions set up, then the meter starts (reading /proc takes a while with a
    // forking server), then all go at once; the clock stops when the last one ends.
    let ready = Barrier::new(many.sessions + 1);
    let go = Barrier::new(many.sessions + 1);
    let done_barrier = Barrier::new(many.sessions + 1);
    let mut meter = None;
    thread::scope(|s| {
        for session in 0..many.sessions {
            let (setup, op, ready, go, done_barrier, late) =
                (&setup, &op, &ready, &go, &done_barrier, &late);
            s.spawn(move || {
                let mut client = match setup(session) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tally.error(e);
                        None
                    }
                };
                ready.wait();
                go.wait();
                if let Some(client) = client.as_mut() {
                    for i in 0..many.count {
                        if Instant::now() > deadline {
                            late.store(true, Ordering::Relaxed);
                            break;
                        }
                        match op(session, i, client) {
                            Ok(()) => {
                                tally.done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                tally.error(format!("{e:#}"));
                                if client.as_ref().is_some_and(|c| !c.is_usable()) {
                                    break;
                                }
                            }
                        }
                    }
                }
                done_barrier.wait();
                if let Some(Some(c)) = client {
                    let _ = c.quit();
                }
            });
        }
        ready.wait();
        meter = Some(Meter::start(&t.pids));
        go.wait();
        done_barrier.wait();
        if let Some(m) = meter.take() {
            m.stop(r);
        }
    });
    late.load(Ordering::Relaxed)
}
