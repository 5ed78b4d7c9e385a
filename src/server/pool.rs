//! The fixed pool of worker threads, fed by the acceptor over a crossbeam channel.
//!
//! Each worker takes one connection at a time from the channel and runs its session to
//! the end. The receivers are clones of one another (no mutex around a receiver), and
//! when the acceptor drops the sender, `rx.iter()` ends after the queued connections
//! are served: that is the whole shutdown protocol of the pool.

use std::net::{IpAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::{session, Shared};
use crate::error::{Error, Result};

/// Worker stacks: sessions use little stack (no recursion, buffers on the heap), and
/// a small stack keeps thousands of idle sessions cheap.
const WORKER_STACK: usize = 256 * 1024;

/// Running workers.
pub(super) struct Pool {
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `n` named workers (`worker-0`, ...) that serve connections from `rx`.
    pub(super) fn start(
        n: usize,
        rx: Receiver<(TcpStream, IpAddr)>,
        shared: Arc<Shared>,
    ) -> Result<Pool> {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let rx = rx.clone();
            let shared = Arc::clone(&shared);
            let handle = thread::Builder::new()
                .name(format!("worker-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || {
                    for (stream, ip) in rx.iter() {
                        // A bug in a session must not shrink the pool: contain it.
                        let run = AssertUnwindSafe(|| session::run(stream, &shared));
                        if panic::catch_unwind(run).is_err() {
                            log::error!("a session panicked; the worker goes on");
                        }
                        shared.release(ip);
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
