//! Data connections: passive listeners (PASV/EPSV) and active connects (PORT/EPRT).
//!
//! A passive listener is bound on the control connection's local address, in the
//! configured port range if there is one, and accepts only a connection from the
//! control connection's peer IP: anyone else who finds the port is dropped. Active
//! connections go only to the client's own IP and a port >= 1024, which rules out the
//! FTP bounce attack (RFC 2577 §3); the session checks that before it plans one.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::SocketFlags;

use super::Shared;

/// How the next transfer's data connection will be made.
#[derive(Debug)]
pub(super) enum DataPlan {
    /// We listen; the client connects (PASV/EPSV).
    Passive(Passive),
    /// We connect to the client (PORT/EPRT).
    Active(SocketAddr),
}

/// A passive listener, non-blocking, how many transfers it has served, and since when
/// it has waited unused.
///
/// A listener nobody uses is closed once it has waited the data timeout (the session
/// asks [`Passive::deadline`] while it waits for a command): with a configured port
/// range, sessions that sent PASV and then only idled would otherwise hold every port
/// of it, and every other transfer would get `425` (issue 11).
///
/// With the default port range a session keeps its listener after a transfer that
/// used it and answers the next PASV/EPSV with the same port: a listening socket
/// costs five system calls to open and one to close, a fifth of the server's work
/// for a small file. Connections waiting on a kept listener are dropped when the
/// next PASV/EPSV reuses it, so a transfer only takes a connection made after its
/// PASV/EPSV reply; a listener whose transfer failed before taking its connection
/// is closed, never kept (see [`Passive::reusable`]).
#[derive(Debug)]
pub(super) struct Passive {
    listener: TcpListener,
    ip: IpAddr,
    port: u16,
    uses: u32,
    since: Instant,
}

/// Transfers one kept listener serves before the next PASV/EPSV opens a new one on
/// another port: each transfer leaves a TIME-WAIT connection to the port, and a
/// client's search for a free local port to reach it gets slower as they add up.
const MAX_USES: u32 = 64;

impl Passive {
    /// The port the client is told to connect to.
    pub(super) fn port(&self) -> u16 {
        self.port
    }

    /// Whether the next PASV/EPSV on `ip` may answer with this listener.
    pub(super) fn reusable(&self, ip: IpAddr, shared: &Shared) -> bool {
        self.ip == ip && self.uses < MAX_USES && keepable(shared)
    }

    /// When this listener, unused since it was opened or last served, is to be closed.
    pub(super) fn deadline(&self, shared: &Shared) -> Instant {
        self.since + shared.config.data_timeout
    }

    /// Starts the listener's wait afresh: a PASV/EPSV handed it out again, or a
    /// transfer just used it.
    pub(super) fn restart(mut self) -> Passive {
        self.since = Instant::now();
        self
    }

    /// Takes a connection the client at `peer_ip` has already made, without waiting:
    /// `None` when none is waiting yet. Connections from other addresses are dropped.
    /// The connection comes back non-blocking when asked, else blocking.
    pub(super) fn take_waiting(
        &mut self,
        peer_ip: IpAddr,
        nonblocking: bool,
    ) -> io::Result<Option<TcpStream>> {
        let flags = if nonblocking {
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC
        } else {
            SocketFlags::CLOEXEC
        };
        loop {
            match rustix::net::acceptfrom_with(&self.listener, flags) {
                Ok((fd, from)) => {
                    let from = from.and_then(|a| SocketAddr::try_from(a).ok());
                    match from {
                        Some(from) if from.ip().to_canonical() == peer_ip.to_canonical() => {
                            self.uses += 1;
                            return Ok(Some(TcpStream::from(fd)));
                        }
                        _ => {
                            log::warn!("data connection from {from:?} refused: expected {peer_ip}")
                        }
                    }
                }
                Err(Errno::AGAIN) => return Ok(None),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Accepts the first connection from `peer_ip`, blocking, waiting at most
    /// `timeout`. A client normally connects before it sends RETR/STOR, so the first
    /// look usually finds the connection waiting; otherwise `poll` waits for it, a
    /// tick at a time so that a forced shutdown is noticed.
    fn accept(
        &mut self,
        peer_ip: IpAddr,
        timeout: Duration,
        shared: &Shared,
    ) -> io::Result<TcpStream> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(stream) = self.take_waiting(peer_ip, false)? {
                return Ok(stream);
            }
            let now = Instant::now();
            if now >= deadline || shared.forced.load(Ordering::SeqCst) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no data connection arrived in time",
                ));
            }
            self.wait_for_connection((deadline - now).min(ACCEPT_TICK))?;
        }
    }

    /// Waits at most `wait` for a connection to be waiting; returns whether one is.
    ///
    /// Asking with `poll` first matters: an `accept` that finds nothing still
    /// allocates and frees a socket and a file in the kernel, ten times the cost.
    fn wait_for_connection(&self, wait: Duration) -> io::Result<bool> {
        wait_for(&self.listener, PollFlags::IN, wait)
    }

    /// Drops every connection already waiting, so that the next transfer takes only
    /// one made after the reply that names the port.
    pub(super) fn drain(&self) -> io::Result<()> {
        if !self.wait_for_connection(Duration::ZERO)? {
            return Ok(());
        }
        loop {
            match self.listener.accept() {
                Ok((_, from)) => log::debug!("stale data connection from {from} dropped"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether a session may keep its listener between transfers: only without a
/// configured range, whose ports the sessions share and need back.
pub(super) fn keepable(shared: &Shared) -> bool {
    shared.config.pasv_ports.is_none()
}

/// Passive ports when no range is configured: every unprivileged port.
const DEFAULT_PASV: RangeInclusive<u16> = 1024..=65535;

/// Ports one PASV tries in the default range before it lets the system choose.
const DEFAULT_PROBES: u64 = 32;

/// Binds a non-blocking passive listener on `ip`, on a port of the configured range
/// (or of every unprivileged port), in a scrambled order.
///
/// The port is chosen here rather than with `bind(port 0)`: with tens of thousands
/// of TIME-WAIT connections from earlier transfers, the kernel's own search for a
/// free ephemeral port took milliseconds per PASV (80% of the server's time in a
/// small-file benchmark). Binding a given port checks only that port, and std's
/// SO_REUSEADDR lets a port with only TIME-WAIT connections be bound again. The
/// scrambled order also keeps the next passive port from being guessed.
pub(super) fn listen(ip: IpAddr, shared: &Shared) -> io::Result<Passive> {
    let configured = shared.config.pasv_ports.clone();
    let range = configured.clone().unwrap_or(DEFAULT_PASV);
    let (lo, hi) = (u64::from(*range.start()), u64::from(*range.end()));
    let span = hi.saturating_sub(lo) + 1;
    let probes = match configured {
        Some(_) => span,
        None => DEFAULT_PROBES.min(span),
    };
    let mut last_err = io::Error::new(io::ErrorKind::AddrInUse, "passive port range exhausted");
    for _ in 0..probes {
        let n = shared.next_pasv.fetch_add(1, Ordering::Relaxed);
        // Fibonacci hashing scrambles the counter over the range.
        let index = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        let port = u16::try_from(lo + index % span).unwrap_or(0);
        if port == 0 {
            continue;
        }
        match TcpListener::bind((ip, port)) {
            Ok(listener) => return passive(listener, ip, Some(port)),
            Err(e) => last_err = e,
        }
    }
    match configured {
        Some(_) => Err(last_err),
        None => passive(TcpListener::bind((ip, 0))?, ip, None),
    }
}

fn passive(listener: TcpListener, ip: IpAddr, port: Option<u16>) -> io::Result<Passive> {
    listener.set_nonblocking(true)?;
    let port = match port {
        Some(p) => p,
        None => listener.local_addr()?.port(),
    };
    Ok(Passive {
        listener,
        ip,
        port,
        uses: 0,
        since: Instant::now(),
    })
}

/// Opens the data connection for `plan` to the client at `peer_ip`, within the
/// configured data timeout. The caller sets the timeouts its transfer needs. A
/// passive listener comes back with the connection: it may serve the next transfer.
pub(super) fn connect(
    plan: DataPlan,
    peer_ip: IpAddr,
    shared: &Shared,
) -> io::Result<(TcpStream, Option<Passive>)> {
    let timeout = shared.config.data_timeout;
    match plan {
        DataPlan::Passive(mut passive) => {
            let stream = passive.accept(peer_ip, timeout, shared)?;
            Ok((stream, Some(passive)))
        }
        DataPlan::Active(addr) => Ok((TcpStream::connect_timeout(&addr, timeout)?, None)),
    }
}

/// How long a plain download waits for the client to close the data connection
/// before the `226` goes out (see [`await_close`]).
pub(super) const CLOSE_WAIT: Duration = Duration::from_millis(250);

/// Ends a download's data connection from our side (the client reads the end of the
/// data), then waits at most `wait` for the client to close its side.
///
/// A client closes once it has read the whole file, and it reads the data only after
/// it read the `150`. aria2 (and clients like it) reads every reply that has arrived
/// at once, then waits for the control connection to become readable again before it
/// looks for the `226`: a `226` sent while it was still waking up for the `150` is
/// read with it and never seen, and the download waits out aria2's timeout (issue 11).
/// A small file is sent faster than such a client wakes up, so the `226` waits for
/// the client's close, or for `wait` when a client reads the reply first.
///
/// # Errors
/// When the connection cannot be shut down (it is gone already).
pub(super) fn await_close(tcp: &TcpStream, wait: Duration) -> io::Result<()> {
    tcp.shutdown(std::net::Shutdown::Write)?;
    wait_for(tcp, PollFlags::IN | PollFlags::RDHUP, wait).map(|_| ())
}

/// Waits at most `wait` for one of `events` on `fd`; returns whether it came (an
/// interrupted wait says yes: the caller looks again).
fn wait_for(fd: impl AsFd, events: PollFlags, wait: Duration) -> io::Result<bool> {
    let mut fds = [PollFd::new(&fd, events)];
    let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    });
    match poll(&mut fds, Some(&timeout)) {
        Ok(n) => Ok(n > 0),
        Err(Errno::INTR) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// How long one wait for a data connection lasts before the shutdown flag and the
/// deadline are looked at again.
const ACCEPT_TICK: Duration = Duration::from_millis(200);
