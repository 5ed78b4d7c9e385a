//! Parked sessions: the ones waiting for their next command, held by one thread.
//!
//! A worker serves a session while commands keep coming; when none is there (no
//! complete line buffered and none arriving within a short linger) it hands the
//! session to the parker and takes other work. The parker watches every parked control
//! connection with one epoll set, and hands a session back to the pool when its
//! connection has something to read (a line, more of one, or its end) or when one of
//! its deadlines passes (login, idle, an unfinished line); the worker that takes it
//! then reads, or says `421`. So the pool bounds work in progress, not clients: a
//! thousand silent connections cost a thousand entries here, not a thousand threads.
//!
//! epoll comes from rustix, which the project already links for its other system
//! calls, rather than from a crate such as `mio` or `polling`: one thread, one set,
//! level of abstraction of the rest of the code, no other dependency. Connections are
//! registered one-shot, so a session is handed back at most once per parking.
//!
//! Deadlines sit in a min-heap with the session's id and parking number; an entry
//! whose session has left (or was parked again since) is skipped when it comes up.
//! On shutdown the parker tells every parked session `421` at once and ends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use rustix::event::epoll;

use super::pool::Work;
use super::session::Session;
use super::Shared;

/// The id of the wake-up descriptor in the epoll set (session ids start at 0 and are
/// far from it).
const WAKE: u64 = u64::MAX;

/// Events taken from the kernel per wait.
const EVENTS: usize = 256;

/// How workers hand sessions to the parker.
pub(super) struct Parker<'s> {
    tx: Sender<Handover<'s>>,
    /// Whether the parker still takes sessions; it says no, under this lock, before it
    /// empties its channel for the last time, so nothing sent is left behind.
    open: Mutex<bool>,
    shared: &'s Shared,
}

/// A session handed to the parker.
pub(super) enum Handover<'s> {
    /// To wait for its next command.
    Park(Box<Session<'s>>),
    /// To go to the back of the pool's queue (its transfer gives way to others).
    Requeue(Box<Session<'s>>),
}

impl<'s> Parker<'s> {
    /// The parker's side of the channel, for [`run`].
    pub(super) fn new(shared: &'s Shared) -> (Parker<'s>, Receiver<Handover<'s>>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let open = Mutex::new(true);
        (Parker { tx, open, shared }, rx)
    }

    /// Parks `session`; gives it back when the parker has ended (shutdown).
    pub(super) fn park(&self, session: Box<Session<'s>>) -> Result<(), Box<Session<'s>>> {
        self.hand_over(Handover::Park(session))
    }

    /// Puts `session` at the back of the pool's queue; gives it back when the parker
    /// has ended (then the worker goes on with it).
    pub(super) fn requeue(&self, session: Box<Session<'s>>) -> Result<(), Box<Session<'s>>> {
        self.hand_over(Handover::Requeue(session))
    }

    /// Whether the parker still takes sessions.
    pub(super) fn is_open(&self) -> bool {
        *self.open.lock()
    }

    fn hand_over(&self, handover: Handover<'s>) -> Result<(), Box<Session<'s>>> {
        let open = self.open.lock();
        let refused = |h: Handover<'s>| match h {
            Handover::Park(s) | Handover::Requeue(s) => s,
        };
        if !*open {
            return Err(refused(handover));
        }
        self.tx
            .send(handover)
            .map_err(|e| refused(e.into_inner()))?;
        drop(open);
        self.shared.wake_parker();
        Ok(())
    }

    /// Says no to every later hand-over (the parker is ending).
    fn close(&self) {
        *self.open.lock() = false;
    }
}

/// A parked session and the parking it is in.
struct Parked<'s> {
    session: Box<Session<'s>>,
    parking: u64,
}

/// Runs the parker until shutdown: sessions come in on `rx`, and go back to the pool
/// on `work` when they have something to do.
pub(super) fn run<'s>(
    shared: &'s Shared,
    parker: &Parker<'s>,
    rx: &Receiver<Handover<'s>>,
    work: &Sender<Work<'s>>,
) {
    serve(shared, rx, work);
    // Shutdown (or a broken epoll set): nothing more comes in, and what came is
    // settled: parked sessions were told (see `serve`), queued ones go on.
    parker.close();
    while let Ok(handover) = rx.try_recv() {
        match handover {
            Handover::Park(session) => session.shut_down(),
            Handover::Requeue(session) => requeue(session, work),
        }
    }
}

/// Puts a session whose transfer gave way at the back of the pool's queue.
fn requeue<'s>(session: Box<Session<'s>>, work: &Sender<Work<'s>>) {
    if let Err(e) = work.send(Work::Resume(session)) {
        // The pool is gone: only at shutdown.
        if let Work::Resume(session) = e.into_inner() {
            session.shut_down();
        }
    }
}

/// The parker's loop, until shutdown; every parked session is told `421` at its end.
fn serve<'s>(shared: &'s Shared, rx: &Receiver<Handover<'s>>, work: &Sender<Work<'s>>) {
    let epoll = match epoll::create(epoll::CreateFlags::CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("cannot create the parker's epoll set: {e}; quiet sessions end");
            return;
        }
    };
    let wake_flags = epoll::EventFlags::IN;
    if let Err(e) = epoll::add(
        &epoll,
        shared.park_wake.as_fd(),
        epoll::EventData::new_u64(WAKE),
        wake_flags,
    ) {
        log::error!("cannot watch the parker's wake-up: {e}");
        return;
    }
    let mut parked: HashMap<u64, Parked<'s>> = HashMap::new();
    let mut deadlines: BinaryHeap<Reverse<(Instant, u64, u64)>> = BinaryHeap::new();
    let mut next_parking = 0u64;
    let mut events = Vec::with_capacity(EVENTS);
    loop {
        if shared.stopping() {
            break;
        }
        // Sessions handed over since the last round.
        while let Ok(handover) = rx.try_recv() {
            let session = match handover {
                Handover::Park(session) => session,
                Handover::Requeue(session) => {
                    requeue(session, work);
                    continue;
                }
            };
            next_parking += 1;
            admit(&epoll, session, next_parking, &mut parked, &mut deadlines);
        }
        // Deadlines that passed: the session goes back, and its worker says 421.
        let now = Instant::now();
        while let Some(Reverse((when, id, parking))) = deadlines.peek().copied() {
            if when > now {
                break;
            }
            deadlines.pop();
            if parked.get(&id).is_some_and(|p| p.parking == parking) {
                hand_back(&mut parked, id, work);
            }
        }
        shared.metrics.set_parked(parked.len());
        let timeout = deadlines
            .peek()
            .map(|Reverse((when, _, _))| when.saturating_duration_since(Instant::now()))
            .map(|d| rustix::event::Timespec {
                tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                // Rounded up, so the wait does not end just before the deadline.
                tv_nsec: i64::from(d.subsec_nanos().div_ceil(1_000_000) * 1_000_000),
            });
        events.clear();
        match epoll::wait(
            &epoll,
            rustix::buffer::spare_capacity(&mut events),
            timeout.as_ref(),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                log::error!("the parker's wait failed: {e}");
                break;
            }
        }
        for event in &events {
            let id = event.data.u64();
            if id == WAKE {
                let mut count = [0u8; 8];
                let _ = rustix::io::read(&shared.park_wake, &mut count);
            } else {
                hand_back(&mut parked, id, work);
            }
        }
    }
    // Shutdown (or a broken epoll set): every parked session is told and closed.
    for (_, p) in parked.drain() {
        p.session.shut_down();
    }
    shared.metrics.set_parked(0);
}

/// Adds a session to the set, or closes it (`421`) when that fails.
fn admit<'s>(
    epoll: &OwnedFd,
    session: Box<Session<'s>>,
    parking: u64,
    parked: &mut HashMap<u64, Parked<'s>>,
    deadlines: &mut BinaryHeap<Reverse<(Instant, u64, u64)>>,
) {
    let id = session.id();
    let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::ONESHOT;
    let data = epoll::EventData::new_u64(id);
    // A connection parked before stays in the set (one-shot: disarmed once it fired),
    // so parking it again re-arms it with one call instead of an add and a delete.
    let armed = match session.control_fd() {
        Some(fd) if session.watched => match epoll::modify(epoll, fd, data, flags) {
            Err(rustix::io::Errno::NOENT) => epoll::add(epoll, fd, data, flags),
            done => done,
        },
        Some(fd) => epoll::add(epoll, fd, data, flags),
        None => Err(rustix::io::Errno::BADF),
    };
    let mut session = session;
    if let Err(e) = armed {
        // Handing it back would only bring it here again at once: it ends instead.
        log::warn!("cannot park a session: {e}; closing it");
        session.shut_down();
        return;
    }
    session.watched = true;
    deadlines.push(Reverse((session.deadline(), id, parking)));
    parked.insert(id, Parked { session, parking });
}

/// Takes session `id` out of the set and gives it to the pool.
fn hand_back<'s>(parked: &mut HashMap<u64, Parked<'s>>, id: u64, work: &Sender<Work<'s>>) {
    // Its connection stays in the epoll set, disarmed (or still armed, when a deadline
    // brought it back: an event then finds no parked session and is ignored); the set
    // lets go of it when the connection closes.
    let Some(p) = parked.remove(&id) else {
        return;
    };
    if let Err(e) = work.send(Work::Resume(p.session)) {
        // The pool is gone: only at shutdown.
        if let Work::Resume(session) = e.into_inner() {
            session.shut_down();
        }
    }
}
