//! The data channel: how the next transfer's data connection is made (PASV/EPSV
//! listeners, PORT/EPRT connects), its protection (PBSZ/PROT, TLS), and opening,
//! securing and closing it, with the one place that sends a transfer's `150`.
//!
//! A passive listener is bound on the control connection's local address, in the
//! configured port range if there is one, and accepts only a connection from the
//! control connection's peer IP: anyone else who finds the port is dropped. Behind a
//! trusted proxy (`--proxy-protocol`) that peer is the client the control
//! connection's PROXY header named, and a data connection relayed by the proxy must
//! name the same client in its own header. Active
//! connections go only to the client's own IP and a port >= 1024, which rules out the
//! FTP bounce attack (RFC 2577 §3).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::SocketFlags;

use super::control::Control;
use super::failure::{Failure, NoData, Refusal};
use crate::protocol::{EpsvArg, Reply, ReplyCode};
use crate::server::metrics::TlsChannel;
use crate::server::proxy::{self, Header};
use crate::server::{ConnToken, Shared};
use crate::tls::{self, ServerStream};

/// A session's data channel: the plan for the next transfer's data connection, the
/// listener kept from the last one, and the protection its connections get.
pub(super) struct DataChannel<'s> {
    shared: &'s Shared,
    /// The control connection's peer: data connections go to it or come from it.
    peer: SocketAddr,
    /// The control connection's local address: passive listeners are bound on it.
    local: SocketAddr,
    /// The data connection set up by the last PASV/EPSV/PORT/EPRT, used by the next
    /// transfer and dropped by any transfer command, successful or not.
    plan: Option<DataPlan>,
    /// The last PASV/EPSV's listener was closed unused after the data timeout: the
    /// next transfer's `425` says so.
    expired: bool,
    /// The passive listener of the last transfer, which may serve the next PASV/EPSV.
    kept: Option<Passive>,
    /// A TLS data connection whose close_notify went out: drained (the client's own
    /// close_notify) only after the transfer's reply, so the reply never waits for it.
    ending: Option<TcpStream>,
    /// The TLS configuration of data connections, once AUTH TLS succeeded: it shares
    /// the control connection's own session cache, so data connections can resume
    /// only that session.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// PBSZ was given (RFC 4217 §8: before PROT).
    pbsz: bool,
    /// PROT P: data connections in TLS.
    private: bool,
    /// After `EPSV ALL`, only EPSV may set up data connections (RFC 2428 §4).
    epsv_all: bool,
}

impl<'s> DataChannel<'s> {
    /// The data channel of a control connection between `local` and `peer`.
    pub(super) fn new(shared: &'s Shared, peer: SocketAddr, local: SocketAddr) -> Self {
        DataChannel {
            shared,
            peer,
            local,
            plan: None,
            expired: false,
            kept: None,
            ending: None,
            tls: None,
            pbsz: false,
            private: false,
            epsv_all: false,
        }
    }

    /// Back to the state after connecting (REIN): no plan, no listener, EPSV ALL off.
    /// Protection stays: REIN is refused in TLS.
    pub(super) fn reset(&mut self) {
        self.plan = None;
        self.expired = false;
        self.kept = None;
        self.epsv_all = false;
    }

    /// The control connection went into TLS with `config` for its data connections:
    /// protection starts over (PBSZ, then PROT).
    pub(super) fn start_tls(&mut self, config: Arc<rustls::ServerConfig>) {
        self.tls = Some(config);
        self.pbsz = false;
        self.private = false;
    }

    /// The control connection is in TLS from its first byte (implicit FTPS) with
    /// `config` for its data connections, which are protected from the start.
    pub(super) fn start_implicit_tls(&mut self, config: Arc<rustls::ServerConfig>) {
        self.tls = Some(config);
        self.pbsz = true;
        self.private = true;
    }

    /// PBSZ (RFC 4217 §8): only `0` makes sense on a stream.
    pub(super) fn pbsz(&mut self) -> Result<Reply, Failure> {
        if self.tls.is_none() {
            return Err(Refusal::PbszBeforeAuth.into());
        }
        self.pbsz = true;
        Ok(Reply::new(ReplyCode::CommandOk, "PBSZ=0"))
    }

    /// PROT C or P (RFC 4217 §9).
    pub(super) fn prot(&mut self, level: char) -> Result<Reply, Failure> {
        if !self.pbsz {
            return Err(Refusal::ProtBeforePbsz.into());
        }
        match level {
            'P' => self.private = true,
            'C' if self.shared.config.require_tls => return Err(Refusal::ClearData.into()),
            'C' => self.private = false,
            level => return Err(Refusal::ProtLevel(level).into()),
        }
        Ok(Reply::new(
            ReplyCode::CommandOk,
            format!("Protection level set to {level}"),
        ))
    }

    /// What STAT says of the data connection.
    pub(super) fn status(&self) -> &'static str {
        match &self.plan {
            Some(DataPlan::Passive(_)) => "Passive data connection ready",
            Some(DataPlan::Active(_)) => "Active data connection set up",
            None => "No data connection",
        }
    }

    /// Takes the plan for a transfer: every transfer command uses it up, whatever
    /// becomes of the transfer.
    pub(super) fn take_plan(&mut self) -> Option<DataPlan> {
        self.plan.take()
    }

    /// PASV: a listener on our IPv4 address, told as `h1,h2,h3,h4,p1,p2`.
    pub(super) fn pasv(&mut self) -> Result<Reply, Failure> {
        if self.epsv_all {
            return Err(Refusal::EpsvAllOnly.into());
        }
        let IpAddr::V4(local) = self.local.ip().to_canonical() else {
            return Err(Refusal::PasvNeedsIpv4.into());
        };
        let port = self.listen(IpAddr::V4(local))?;
        let [a, b, c, d] = self.shared.config.pasv_address.unwrap_or(local).octets();
        let (p1, p2) = (port >> 8, port & 0xff);
        Ok(Reply::new(
            ReplyCode::PassiveMode,
            format!("Entering Passive Mode ({a},{b},{c},{d},{p1},{p2})."),
        ))
    }

    /// EPSV (RFC 2428): a listener on our address, told as a port only.
    pub(super) fn epsv(&mut self, arg: EpsvArg) -> Result<Reply, Failure> {
        let local = self.local.ip().to_canonical();
        let ours = if local.is_ipv4() { 1 } else { 2 };
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                return Ok(Reply::new(ReplyCode::CommandOk, "EPSV ALL ok"));
            }
            EpsvArg::Protocol(p) if p != ours => return Err(Refusal::EpsvProtocol(ours).into()),
            EpsvArg::Protocol(_) | EpsvArg::Any => {}
        }
        let port = self.listen(local)?;
        Ok(Reply::new(
            ReplyCode::ExtendedPassiveMode,
            format!("Entering Extended Passive Mode (|||{port}|)"),
        ))
    }

    /// PORT/EPRT: the next transfer connects to `addr`, which must be the client's
    /// own address and an unprivileged port (RFC 2577 §3: no third parties).
    pub(super) fn active(&mut self, addr: SocketAddr) -> Result<Reply, Failure> {
        if self.epsv_all {
            return Err(Refusal::EpsvAllOnly.into());
        }
        if addr.ip().to_canonical() != self.peer.ip().to_canonical() || addr.port() < 1024 {
            return Err(Refusal::ThirdParty.into());
        }
        self.plan = Some(DataPlan::Active(addr));
        self.expired = false;
        Ok(Reply::new(
            ReplyCode::CommandOk,
            "Active data connection set up",
        ))
    }

    /// Sets up a passive listener for the next transfer, the one kept from the last
    /// transfer when it may serve again (emptied of waiting connections), else a new
    /// one; returns its port.
    fn listen(&mut self, ip: IpAddr) -> Result<u16, Failure> {
        // A new PASV replaces the plan of an earlier one.
        let kept = match self.plan.take() {
            Some(DataPlan::Passive(p)) => Some(p),
            _ => self.kept.take(),
        };
        let reused = kept
            .filter(|p| p.reusable(ip, self.shared))
            .and_then(|p| p.drain().ok().map(|()| p.restart()));
        self.expired = false;
        let passive = match reused {
            Some(p) => p,
            None => {
                let counted =
                    Counted::take(self.shared).ok_or(Failure::NoData(NoData::TooManyListeners))?;
                listen(ip, self.shared, counted).map_err(|e| Failure::NoData(NoData::Listen(e)))?
            }
        };
        let port = passive.port();
        self.plan = Some(DataPlan::Passive(passive));
        Ok(port)
    }

    /// The earliest deadline of the passive listeners, if there is one.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let planned = match &self.plan {
            Some(DataPlan::Passive(p)) => Some(p.deadline(self.shared)),
            _ => None,
        };
        let kept = self.kept.as_ref().map(|p| p.deadline(self.shared));
        match (planned, kept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes the passive listeners whose deadline has passed: a listener nobody
    /// connected to must not hold a port, least of all one of a shared range.
    pub(super) fn close_expired(&mut self) {
        let now = Instant::now();
        if let Some(DataPlan::Passive(p)) = &self.plan {
            if p.deadline(self.shared) <= now {
                log::debug!(
                    "{}: passive port {} closed: no data connection came in time",
                    self.peer,
                    p.port()
                );
                self.plan = None;
                self.expired = true;
            }
        }
        if self
            .kept
            .as_ref()
            .is_some_and(|p| p.deadline(self.shared) <= now)
        {
            self.kept = None;
        }
    }

    /// Keeps the listener a transfer used, to serve the next PASV/EPSV, when the
    /// session may keep one (see [`keepable`]); else it is closed now.
    fn keep_listener(&mut self, listener: Option<Passive>) {
        self.kept = listener
            .filter(|_| keepable(self.shared))
            .map(Passive::restart);
    }

    /// Whether data connections go in the clear.
    fn clear(&self) -> bool {
        !self.private && !self.shared.config.require_tls
    }

    /// Says `mark` (the transfer's `150`) and starts opening the data connection
    /// `plan` makes: a connection the client already made, or an active connect, is
    /// [`Opening::Open`] at once (registered with `token`, so a forced shutdown can
    /// cut it), or [`Opening::Securing`] under PROT P; a passive connection still to come is
    /// [`Opening::Awaiting`], which [`DataChannel::await_open`] waits for a step at a
    /// time, so a worker is not held for the whole data timeout by a client that
    /// never connects.
    pub(super) fn open(
        &mut self,
        plan: Option<DataPlan>,
        control: &mut Control,
        mark: &Reply,
        token: &ConnToken<'_>,
    ) -> Result<Opening, Failure> {
        let expired = std::mem::take(&mut self.expired);
        let plan = plan.ok_or_else(|| match expired {
            true => Failure::NoData(NoData::Expired(self.shared.config.data_timeout.as_secs())),
            false => Failure::NoData(NoData::NotSetUp),
        })?;
        if self.shared.config.require_tls && !self.private {
            return Err(Refusal::ProtectionRequired.into());
        }
        announce(control, mark)?;
        let timeout = self.shared.config.data_timeout;
        match plan {
            DataPlan::Passive(mut passive) => {
                let waiting = passive
                    .take_waiting(self.shared, self.peer.ip(), false)
                    .map_err(|e| Failure::NoData(NoData::Connect(e)))?;
                match waiting {
                    Some(tcp) => {
                        self.keep_listener(Some(passive));
                        self.start(tcp, token)
                    }
                    None => Ok(Opening::Awaiting(Awaiting {
                        passive: Slot(Some(passive)),
                        until: Instant::now() + timeout,
                    })),
                }
            }
            DataPlan::Active(addr) => {
                let tcp = TcpStream::connect_timeout(&addr, timeout)
                    .map_err(|e| Failure::NoData(NoData::Connect(e)))?;
                self.start(tcp, token)
            }
        }
    }

    /// Waits at most `step` for the passive connection `awaiting` is for: `Ok(None)`
    /// when it has not come yet and there is time left; the connection, started as
    /// [`DataChannel::open`] starts it, when it came; `425` when the data timeout
    /// passed (or a forced shutdown came) without it.
    pub(super) fn await_open(
        &mut self,
        awaiting: &mut Awaiting,
        step: Duration,
        token: &ConnToken<'_>,
    ) -> Result<Option<Opening>, Failure> {
        let gone = |e| Failure::NoData(NoData::Connect(e));
        let now = Instant::now();
        let waited_out = now >= awaiting.until || self.shared.forced.load(Ordering::SeqCst);
        if !waited_out {
            let wait = (awaiting.until - now).min(step);
            awaiting.passive.wait_for_connection(wait).map_err(gone)?;
        }
        match awaiting
            .passive
            .take_waiting(self.shared, self.peer.ip(), false)
            .map_err(gone)?
        {
            Some(tcp) => {
                let passive = awaiting.passive.take();
                self.keep_listener(passive);
                self.start(tcp, token).map(Some)
            }
            None if waited_out => Err(gone(io::Error::new(
                io::ErrorKind::TimedOut,
                "no data connection arrived in time",
            ))),
            None => Ok(None),
        }
    }

    /// For a transfer on a clear data connection: when the client has already made
    /// the passive connection of `plan` (as clients do before they send RETR), says
    /// `mark` and returns that connection, non-blocking; nothing waits. `None` leaves
    /// `plan` for [`DataChannel::open`].
    pub(super) fn open_waiting(
        &mut self,
        plan: &mut Option<DataPlan>,
        control: &mut Control,
        mark: &Reply,
    ) -> Result<Option<TcpStream>, Failure> {
        if !self.clear() {
            return Ok(None);
        }
        let Some(DataPlan::Passive(passive)) = plan.as_mut() else {
            return Ok(None);
        };
        let tcp = match passive.take_waiting(self.shared, self.peer.ip(), true) {
            Ok(Some(tcp)) => tcp,
            Ok(None) => return Ok(None),
            Err(e) => return Err(Failure::NoData(NoData::Connect(e))),
        };
        if let Some(DataPlan::Passive(passive)) = plan.take() {
            self.keep_listener(Some(passive));
        }
        announce(control, mark)?;
        Ok(Some(tcp))
    }

    /// Registers a data connection with `token` (so a forced shutdown can cut it): a
    /// plain one is [`Opening::Open`]; under PROT P its TLS handshake begins, and
    /// [`DataChannel::secure_step`] moves it on a read at a time
    /// ([`Opening::Securing`]). A failure unregisters it.
    pub(super) fn start(&self, tcp: TcpStream, token: &ConnToken<'_>) -> Result<Opening, Failure> {
        let tls = match (&self.tls, self.private) {
            (Some(config), true) => Arc::clone(config),
            _ => {
                token.set_data(Some(&tcp));
                return Ok(Opening::Open(ServerStream::plain(tcp)));
            }
        };
        let write_timeout = Some(self.shared.config.data_timeout);
        tcp.set_write_timeout(write_timeout)
            .map_err(Failure::Transfer)?;
        let conn =
            rustls::ServerConnection::new(tls).map_err(|e| Failure::NoData(NoData::TlsStart(e)))?;
        token.set_data(Some(&tcp));
        let mut stream = ServerStream::plain(tcp);
        if let Err(e) = stream.begin_upgrade(conn) {
            token.set_data(None);
            return Err(Failure::NoData(NoData::Handshake(e)));
        }
        Ok(Opening::Securing(Securing {
            stream,
            until: Instant::now() + self.shared.config.data_timeout,
        }))
    }

    /// Moves the TLS handshake of a data connection on, a read of at most `step`;
    /// returns whether it is over. The connection must resume the control
    /// connection's TLS session (only the client on it holds this session's tickets).
    pub(super) fn secure_step(
        &self,
        securing: &mut Securing,
        step: Duration,
    ) -> Result<bool, Failure> {
        let handshake = |e| Failure::NoData(NoData::Handshake(e));
        let now = Instant::now();
        if now >= securing.until {
            self.shared.metrics.tls_handshake(TlsChannel::Data, false);
            return Err(handshake(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake was not finished in time",
            )));
        }
        let wait = step.min(securing.until - now).max(Duration::from_millis(1));
        let tcp = securing.stream.tcp().map_err(handshake)?;
        tcp.set_read_timeout(Some(wait)).map_err(handshake)?;
        let stepped = securing.stream.handshake_step();
        if !matches!(stepped, Ok(false)) {
            let metrics = &self.shared.metrics;
            metrics.tls_handshake(TlsChannel::Data, stepped.is_ok());
        }
        if !stepped.map_err(handshake)? {
            return Ok(false);
        }
        let resumed = securing.stream.tls_conn().is_some_and(tls::resumed);
        if !resumed && !self.shared.config.tls_without_resumption {
            log::warn!(
                "{}: data connection did not resume the control TLS session: refused",
                self.peer
            );
            return Err(Refusal::TlsNotResumed.into());
        }
        Ok(true)
    }

    /// Ends a data connection: in TLS with a close_notify, so the client can tell
    /// the end of the data from a cut. The client's own close_notify is not waited
    /// for here: a client may read the transfer's reply before it closes the data
    /// connection, and each file then waited the data timeout (issue 11). It is
    /// drained after the reply ([`DataChannel::drain_ended`]).
    pub(super) fn close(
        &mut self,
        stream: ServerStream,
        token: &ConnToken<'_>,
    ) -> Result<(), Failure> {
        token.set_data(None);
        self.ending = stream.end().map_err(Failure::Transfer)?;
        Ok(())
    }

    /// After a transfer's reply: reads what the client still sends on the ended TLS
    /// data connection (its close_notify) until it closes, for at most
    /// [`CLOSE_WAIT`], then closes it. Closing with the client's close_notify unread
    /// would reset the connection, and a reset can make the client's kernel drop data
    /// it has not read yet.
    pub(super) fn drain_ended(&mut self) {
        let Some(tcp) = self.ending.take() else {
            return;
        };
        if tcp.set_read_timeout(Some(CLOSE_WAIT)).is_ok() {
            tls::drain(&tcp, 64);
        }
    }
}

/// How opening a data connection stands.
pub(super) enum Opening {
    /// The connection is there.
    Open(ServerStream),
    /// The client has yet to make its passive connection.
    Awaiting(Awaiting),
    /// The connection is there, its TLS handshake under way.
    Securing(Securing),
}

/// A data connection whose TLS handshake is under way, and until when it may be.
pub(super) struct Securing {
    pub(super) stream: ServerStream,
    until: Instant,
}

/// A passive data connection the client has yet to make, and until when it may.
pub(super) struct Awaiting {
    passive: Slot,
    until: Instant,
}

/// The listener an [`Awaiting`] waits on; taken (to be kept for the next transfer)
/// once its connection came.
struct Slot(Option<Passive>);

impl Slot {
    fn take(&mut self) -> Option<Passive> {
        self.0.take()
    }

    fn wait_for_connection(&self, wait: Duration) -> io::Result<bool> {
        match &self.0 {
            Some(p) => p.wait_for_connection(wait),
            None => Ok(true),
        }
    }

    fn take_waiting(
        &mut self,
        shared: &Shared,
        peer_ip: IpAddr,
        nonblocking: bool,
    ) -> io::Result<Option<TcpStream>> {
        match &mut self.0 {
            Some(p) => p.take_waiting(shared, peer_ip, nonblocking),
            None => Ok(None),
        }
    }
}

/// Says a transfer's `150`: the one place it goes out, before the data connection is
/// opened or used, in a write of its own (see [`await_close`] for why that matters).
fn announce(control: &mut Control, mark: &Reply) -> Result<(), Failure> {
    control.send(mark).map_err(Failure::Control)
}

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
    _counted: Counted,
}

/// One of the passive listeners open now, counted against
/// [`crate::server::Config::max_passive_listeners`] while it lives.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Counted {
    /// Counts one more listener in, unless the limit is reached.
    fn take(shared: &Shared) -> Option<Counted> {
        let max = shared.config.max_passive_listeners;
        let open = &shared.passive_listeners;
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (max == 0 || n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| Counted(Arc::clone(open)))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Transfers one kept listener serves before the next PASV/EPSV opens a new one on
/// another port: each transfer leaves a TIME-WAIT connection to the port, and a
/// client's search for a free local port to reach it gets slower as they add up.
const MAX_USES: u32 = 64;

impl Passive {
    /// The port the client is told to connect to.
    fn port(&self) -> u16 {
        self.port
    }

    /// Whether the next PASV/EPSV on `ip` may answer with this listener.
    fn reusable(&self, ip: IpAddr, shared: &Shared) -> bool {
        self.ip == ip && self.uses < MAX_USES && keepable(shared)
    }

    /// When this listener, unused since it was opened or last served, is to be closed.
    fn deadline(&self, shared: &Shared) -> Instant {
        self.since + shared.config.data_timeout
    }

    /// Starts the listener's wait afresh: a PASV/EPSV handed it out again, or a
    /// transfer just used it.
    fn restart(mut self) -> Passive {
        self.since = Instant::now();
        self
    }

    /// Takes a connection the client at `peer_ip` has already made, without waiting:
    /// `None` when none is waiting yet. Connections from other addresses are dropped.
    /// The connection comes back non-blocking when asked, else blocking.
    fn take_waiting(
        &mut self,
        shared: &Shared,
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
                    let tcp = TcpStream::from(fd);
                    let client = from.and_then(|from| data_client(shared, &tcp, from, nonblocking));
                    match client {
                        Some(client) if client.to_canonical() == peer_ip.to_canonical() => {
                            self.uses += 1;
                            return Ok(Some(tcp));
                        }
                        Some(client) => log::warn!(
                            "data connection from {client} (through {from:?}) refused: expected {peer_ip}"
                        ),
                        None => log::warn!(
                            "data connection from {from:?} refused: expected {peer_ip}"
                        ),
                    }
                }
                Err(Errno::AGAIN) => return Ok(None),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
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
    fn drain(&self) -> io::Result<()> {
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

/// The client a data connection from `from` comes from: `from` itself, or, from a
/// trusted proxy under `--proxy-protocol`, the client its PROXY header names (the
/// proxy's own address for a header without one). `None` when its header is refused.
///
/// A proxy relays the data connection as it relays the control connection, header
/// first, so the header is there as soon as the connection is: the read waits only
/// for a proxy that is broken, at most [`proxy::HEADER_TIMEOUT`], on the session's own
/// worker, which was waiting for this connection anyway.
fn data_client(
    shared: &Shared,
    tcp: &TcpStream,
    from: SocketAddr,
    nonblocking: bool,
) -> Option<IpAddr> {
    let Some(expect) = shared.header_expected(from.ip().to_canonical()) else {
        return Some(from.ip());
    };
    let read = (|| {
        if nonblocking {
            tcp.set_nonblocking(false)?;
        }
        let header = proxy::read_header(tcp, expect)?;
        // The session sets its own timeouts on the connection; the header's is undone.
        tcp.set_read_timeout(None)?;
        if nonblocking {
            tcp.set_nonblocking(true)?;
        }
        Ok::<_, proxy::HeaderError>(header)
    })();
    match read {
        Ok(Some(Header::Proxied { source, .. })) => Some(source.ip()),
        Ok(Some(Header::Local) | None) => Some(from.ip()),
        Err(e) => {
            log::warn!("data connection from {from} refused: {e}");
            None
        }
    }
}

/// Whether a session may keep its listener between transfers: only without a
/// configured range, whose ports the sessions share and need back.
fn keepable(shared: &Shared) -> bool {
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
fn listen(ip: IpAddr, shared: &Shared, counted: Counted) -> io::Result<Passive> {
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
            Ok(listener) => return passive(listener, ip, Some(port), counted),
            Err(e) => last_err = e,
        }
    }
    match configured {
        Some(_) => Err(last_err),
        None => passive(TcpListener::bind((ip, 0))?, ip, None, counted),
    }
}

fn passive(
    listener: TcpListener,
    ip: IpAddr,
    port: Option<u16>,
    counted: Counted,
) -> io::Result<Passive> {
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
        _counted: counted,
    })
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
