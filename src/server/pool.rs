//! The fixed pool of worker threads, fed over a crossbeam channel by the acceptor (new
//! connections) and by the parker (sessions with something to do).
//!
//! A worker takes one piece of [`Work`] at a time and serves that session until it
//! goes quiet (then it is parked, see [`super::park`]) or ends, or until its transfer
//! gives way to work waiting in the queue (then it goes to the back of the queue,
//! through the parker; see the session's transfer module). The receivers are
//! clones of one another (no mutex around a receiver), and when the acceptor and the
//! parker have dropped their senders, `rx.iter()` ends after the queued work is done:
//! that is the whole shutdown protocol of the pool. The workers are scoped threads, so
//! a session can borrow what the server shares and still move between threads.

use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::thread::{self, Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::park::Parker;
use super::session::{self, Session};
use super::{Admitted, Entry, Shared};
use crate::error::{Error, Result};

/// What a worker is given to do.
pub(super) enum Work<'s> {
    /// A connection just accepted, how it was counted in (under its client's
    /// address, or from a trusted proxy whose header is still to be read), and the
    /// listener it came in on.
    New(TcpStream, Admitted, Entry),
    /// A parked session whose connection has something to read, or whose deadline
    /// passed; or a session whose transfer gave way to others.
    Resume(Box<Session<'s>>),
}

/// What a worker lends the session it serves: the parker, and a look at the queue.
pub(super) struct Turn<'a, 's> {
    pub(super) parker: &'a Parker<'s>,
    queue: &'a Receiver<Work<'s>>,
}

impl Turn<'_, '_> {
    /// Whether other work waits for a worker (and a session that yields to it can go
    /// to the back of the queue: not once the parker has ended).
    pub(super) fn others_waiting(&self) -> bool {
        !self.queue.is_empty() && self.parker.is_open()
    }
}

/// Worker stacks: sessions use little stack (no recursion, buffers on the heap), and
/// a small stack keeps thousands of idle sessions cheap.
const WORKER_STACK: usize = 256 * 1024;

/// Running workers.
pub(super) struct Pool<'scope> {
    workers: Vec<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope> Pool<'scope> {
    /// Starts `n` named workers (`worker-0`, ...) that do the work from `rx`.
    pub(super) fn start<'env, 's: 'scope>(
        scope: &'scope Scope<'scope, 'env>,
        n: usize,
        rx: &Receiver<Work<'s>>,
        shared: &'s Shared,
        parker: &'scope Parker<'s>,
    ) -> Result<Pool<'scope>> {
        let mut workers = Vec::with_capacity(n);
        shared.metrics.set_workers(n.max(1));
        for i in 0..n.max(1) {
            let rx = rx.clone();
            let handle = thread::Builder::new()
                .name(format!("worker-{i}"))
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, move || {
                    let turn = Turn { parker, queue: &rx };
                    for work in rx.iter() {
                        let _busy = shared.metrics.worker_busy();
                        // A bug in a session must not shrink the pool: contain it.
                        let run = AssertUnwindSafe(|| match work {
                            Work::New(stream, admitted, entry) => {
                                session::start(stream, admitted, entry, shared, &turn)
                            }
                            Work::Resume(session) => session::resume(session, &turn),
                        });
                        if panic::catch_unwind(run).is_err() {
                            log::error!("a session panicked; the worker goes on");
                        }
                    }
                })
                .map_err(Error::Thread)?;
            workers.push(handle);
        }
        Ok(Pool { workers })
    }

    /// Waits for every worker to finish. At `deadline`, when some are still running,
    /// calls `cut` once (which makes the remaining sessions fail fast and says how many
    /// there were) and waits a little longer. Returns what `cut` said, or 0.
    ///
    /// Workers with no session are still running at the deadline too (with a grace of
    /// 0 they have not yet seen the channel close), so only `cut` can tell sessions.
    pub(super) fn join_until(self, deadline: Instant, cut: impl FnOnce() -> usize) -> usize {
        const POLL: Duration = Duration::from_millis(20);
        const AFTER_CUT: Duration = Duration::from_secs(5);
        while Instant::now() < deadline && self.workers.iter().any(|w| !w.is_finished()) {
            thread::sleep(POLL);
        }
        let mut cut_off = 0;
        if self.workers.iter().any(|w| !w.is_finished()) {
            cut_off = cut();
            let until = Instant::now() + AFTER_CUT;
            while Instant::now() < until && self.workers.iter().any(|w| !w.is_finished()) {
                thread::sleep(POLL);
            }
        }
        for worker in self.workers {
            if worker.is_finished() && worker.join().is_err() {
                log::error!("a worker panicked");
            }
        }
        cut_off
    }
}
