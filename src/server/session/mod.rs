//! One client's session: its story from the greeting to the last reply.
//!
//! A session is a value that moves: a worker serves it while commands keep coming
//! ([`resume`]), the parker holds it while it waits for the next one
//! ([`super::park`]), and any worker may take it up again. What it holds lives in
//! rooms of its own:
//! - [`control`]: the control connection, the line being read, deadlines, the lines
//!   sent during a transfer, ABOR, and the one place replies go out;
//! - [`data`]: the data channel: the PASV/PORT plan, the kept listener, PROT/TLS,
//!   opening and closing data connections, and the one place a `150` goes out;
//! - [`login`]: USER, PASS, AUTH TLS and REIN: who the session is;
//! - [`files`]: the commands that read or change files (RETR, STOR, DELE, ...);
//! - [`listings`]: LIST, NLST, MLSD, MLST and STAT;
//! - [`transfer`]: a transfer under way, moved a slice at a time, so that a worker
//!   can put it down when other sessions wait;
//! - [`commands`]: every command in one `match`, and the small ones;
//! - [`failure`]: what can go wrong, and the one map from a failure to its reply;
//! - [`observe`]: what the session tells the outside: metrics, the transfer log, its
//!   log lines' context.
//!
//! Handlers return `Result<Reply, Failure>`; transfers send their `150` through the
//! data channel, then the final reply comes back the same way as any other.

mod commands;
mod control;
mod data;
mod failure;
mod files;
mod listings;
mod login;
mod observe;
mod transfer;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::commands::{Answer, HashAlgo};
use self::control::{Control, Earlier, Next};
use self::data::DataChannel;
use self::listings::Facts;
use self::login::Login;
use self::transfer::Ran;
use super::accounts::Perms;
use super::hooks::Upload;
use super::metrics::{SessionResult, TlsChannel};
use super::pool::Turn;
use super::proxy::{self, Header};
use super::{Admitted, ConnToken, Entry, Shared};
use crate::path::VirtualPath;
use crate::protocol::{Reply, ReplyCode, TransferType};
use crate::storage::{Backend, Place};
use crate::tls::ServerStream;
use crate::transfer::Pump;

/// How long a worker waits for a session's next command before it parks the
/// session, right after serving one (not when other work waits in the queue): clients that send commands one after another (a
/// reply, then the next command) keep their worker, even when the machine is so busy
/// that they take a while to answer (parking and waking again costs two thread
/// hand-overs and the epoll calls, about a third more CPU per small transfer when it
/// happens after every command, measured with ftp-bench retr-small).
const LINGER: Duration = Duration::from_millis(100);

/// How long a worker waits before parking a session it has served nothing for yet
/// (just greeted, or woken by bytes that made no command): short, so connections that
/// say nothing hold the pool for little time.
const LINGER_QUIET: Duration = Duration::from_millis(10);

/// A client's session.
pub(super) struct Session<'s> {
    shared: &'s Shared,
    /// The session's place in the registry; dropping it frees its admission.
    token: ConnToken<'s>,
    peer: SocketAddr,
    control: Control,
    data: DataChannel<'s>,
    login: Login,
    /// What the session sees as `/`: the server's storage, or the user's home in it.
    storage: Arc<dyn Backend>,
    perms: Perms,
    /// Failed PASS commands so far.
    failures: u32,
    /// Close the connection once the current reply is sent.
    close_after_reply: bool,
    cwd: VirtualPath,
    /// Recorded for STAT; bytes are never rewritten in either type.
    transfer_type: TransferType,
    /// The offset given by REST, used by the next RETR or STOR.
    rest: u64,
    /// The path given by RNFR, used by the next RNTO.
    rename_from: Option<Box<dyn Place>>,
    /// The facts MLSD and MLST show (OPTS MLST).
    facts: Facts,
    /// The digest HASH computes (OPTS HASH).
    hash: HashAlgo,
    pump: Pump,
    /// The transfer under way, between two of its slices.
    transfer: Option<transfer::Transfer<'s>>,
    /// An upload just put in place, for the upload hook once its reply went out.
    uploaded: Option<Upload>,
    /// The greeting waits for the TLS handshake (implicit FTPS).
    greeting_due: bool,
    /// The parker's epoll set holds the control connection (from an earlier parking).
    pub(super) watched: bool,
    /// What the metrics and the transfer log keep of the session.
    observed: observe::Observed,
}

/// The `220` a session starts with.
fn greeting() -> Reply {
    Reply::new(ReplyCode::ServiceReady, "simple-ftp ready")
}

/// What serving a session came to.
enum Outcome {
    /// No command is there: the session waits parked.
    Park,
    /// A transfer is under way and other sessions wait for a worker: the session goes
    /// to the back of the queue.
    Yield,
    /// The session is over.
    End(End),
}

/// Why a session ended, for the log.
#[derive(Debug, Clone, Copy)]
enum End {
    Quit,
    ClientClosed,
    Idle,
    LoginTimeout,
    SlowLine,
    LongLines,
    Shutdown,
    Lost,
    LoginFailures,
    Handshake,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            End::Quit => "quit",
            End::ClientClosed => "client closed the connection",
            End::Idle => "idle timeout",
            End::LoginTimeout => "no login in time",
            End::SlowLine => "a command line not finished in time",
            End::LongLines => "too many over-long command lines",
            End::Shutdown => "server shutdown",
            End::Lost => "connection lost",
            End::LoginFailures => "too many failed logins",
            End::Handshake => "TLS handshake not finished in time",
        })
    }
}

/// Starts a session on a connection the acceptor admitted: reads its PROXY header
/// when it comes from a trusted proxy (see [`client`]), registers it, greets (on the
/// implicit FTPS port, once its TLS handshake is over), and serves it as [`resume`]
/// does.
pub(super) fn start<'s>(
    stream: TcpStream,
    admitted: Admitted,
    entry: Entry,
    shared: &'s Shared,
    turn: &Turn<'_, 's>,
) {
    let (Ok(real_peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        shared.release_admitted(admitted);
        return; // the peer is already gone
    };
    let Some(peer) = client(&stream, real_peer, admitted, entry, shared) else {
        return;
    };
    let ip = peer.ip().to_canonical();
    let Some(token) = shared.register(ip) else {
        let mut stream = stream;
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        shared.metrics.session(SessionResult::ShuttingDown);
        let reply = Reply::new(ReplyCode::ServiceNotAvailable, "Server shutting down");
        let _ = stream.write_all(reply.to_wire().as_bytes());
        shared.release(ip);
        return;
    };
    // Clients send ABOR (or Telnet Synch) as TCP urgent data: Python's ftplib sends
    // `ABOR\r\n` with MSG_OOB, which makes the `\n` urgent. Keep urgent bytes in the
    // stream, or that line never ends (RFC 959 §4.1.3; vsftpd does the same).
    let timeout = shared.config.idle_timeout;
    let setup = rustix::net::sockopt::set_socket_oobinline(&stream, true)
        .map_err(io::Error::from)
        .and_then(|()| stream.set_nodelay(true))
        .and_then(|()| stream.set_read_timeout(Some(timeout)))
        .and_then(|()| stream.set_write_timeout(Some(timeout)));
    if let Err(e) = setup {
        log::warn!("{peer}: cannot set up the session: {e}");
        return;
    }
    let mut session = Box::new(Session {
        shared,
        token,
        peer,
        control: Control::new(stream, timeout, shared.metrics.replies()),
        data: DataChannel::new(shared, peer, local),
        login: Login::None,
        storage: Arc::clone(&shared.storage),
        perms: Perms::default(),
        failures: 0,
        close_after_reply: false,
        cwd: VirtualPath::root(),
        transfer_type: TransferType::Ascii,
        rest: 0,
        rename_from: None,
        facts: Facts::default(),
        hash: HashAlgo::Sha256,
        pump: Pump::new(),
        transfer: None,
        greeting_due: false,
        watched: false,
        uploaded: None,
        observed: observe::Observed::default(),
    });
    shared.metrics.session(SessionResult::Accepted);
    let _context = session.log_context();
    if peer == real_peer {
        log::info!(event = "session_start"; "{peer}: session start");
    } else {
        log::info!(event = "session_start"; "{peer}: session start (through the proxy {real_peer})");
    }
    if entry == Entry::ImplicitTls {
        if let Err(end) = session.implicit_tls() {
            session.finish(end);
            return;
        }
    } else if session.control.send(&greeting()).is_err() {
        session.finish(End::Lost);
        return;
    }
    resume(session, turn);
}

/// The client of a connection: its TCP peer, or for one from a trusted proxy, the
/// client its PROXY header names, then counted under `--max-per-ip` (refused with
/// `421` past it). `None` when the connection is over: its header was refused (closed
/// without a reply) or its client has too many sessions.
///
/// The header is read here, on a worker, not by the acceptor, which must never wait
/// on one connection. A worker waits at most [`proxy::HEADER_TIMEOUT`] for it, and
/// only for trusted proxies, which send it with the connection; and at most half the
/// workers wait for headers at once (a connection past that is closed), so a trusted
/// but hostile or broken proxy that opens connections and stays silent can delay the
/// others by a few seconds, not stop them.
fn client(
    stream: &TcpStream,
    real_peer: SocketAddr,
    admitted: Admitted,
    entry: Entry,
    shared: &Shared,
) -> Option<SocketAddr> {
    let Admitted::Proxied(proxy_ip) = admitted else {
        return Some(real_peer);
    };
    let expect = shared.header_expected(proxy_ip)?;
    let read = {
        let slot = HeaderRead::take(shared);
        match slot {
            Some(_) => proxy::read_header(stream, expect),
            None => Err(proxy::HeaderError::Io(io::Error::new(
                io::ErrorKind::WouldBlock,
                "too many PROXY headers being read at once",
            ))),
        }
    };
    let peer = match read {
        Ok(Some(Header::Proxied { source, .. })) => {
            SocketAddr::new(source.ip().to_canonical(), source.port())
        }
        Ok(Some(Header::Local) | None) => real_peer,
        Err(e) => {
            log::warn!(event = "refused"; "{real_peer}: closed: {e}");
            shared.metrics.session(SessionResult::ProxyHeader);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            shared.release_admitted(admitted);
            return None;
        }
    };
    if let Err(why) = shared.admit_client(peer.ip().to_canonical()) {
        shared.release_admitted(admitted);
        if let Ok(stream) = stream.try_clone() {
            super::refuse(stream, peer, why, entry, &shared.metrics);
        }
        return None;
    }
    Some(peer)
}

/// One of the workers reading a PROXY header now; at most half of them may.
struct HeaderRead<'a>(&'a Shared);

impl<'a> HeaderRead<'a> {
    fn take(shared: &'a Shared) -> Option<HeaderRead<'a>> {
        let max = (shared.config.workers / 2).max(1);
        shared
            .header_reads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| HeaderRead(shared))
    }
}

impl Drop for HeaderRead<'_> {
    fn drop(&mut self) {
        self.0.header_reads.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves a session on this worker until it goes quiet, when it is parked (see
/// [`super::park`]), until its transfer gives way to sessions waiting for a worker,
/// when it goes to the back of the queue, or until it ends.
pub(super) fn resume<'s>(mut session: Box<Session<'s>>, turn: &Turn<'_, 's>) {
    let _context = session.log_context();
    loop {
        match session.serve(turn) {
            Outcome::Park => {
                if let Err(session) = turn.parker.park(session) {
                    session.shut_down();
                }
            }
            Outcome::Yield => match turn.parker.requeue(session) {
                Ok(()) => {}
                // The parker has ended (shutdown): the transfer goes on here.
                Err(back) => {
                    session = back;
                    continue;
                }
            },
            Outcome::End(end) => session.finish(end),
        }
        return;
    }
}

impl<'s> Session<'s> {
    /// Serves commands while they come: lines queued during a transfer first, then
    /// what the connection brings within [`LINGER`] ([`LINGER_QUIET`] before the
    /// first). Returns [`Outcome::Park`] when none is there, with nothing buffered
    /// that would be left waiting.
    fn serve(&mut self, turn: &Turn<'_, 's>) -> Outcome {
        let mut linger = LINGER_QUIET;
        loop {
            if self.control.handshake_until().is_some() {
                match self.handshake(linger) {
                    Ok(true) if std::mem::take(&mut self.greeting_due) => {
                        if self.control.send(&greeting()).is_err() {
                            return Outcome::End(End::Lost);
                        }
                        continue;
                    }
                    Ok(true) => continue,
                    Ok(false) => return Outcome::Park,
                    Err(end) => return Outcome::End(end),
                }
            }
            if let Some(transfer) = self.transfer.take() {
                let reply = match self.run_transfer(transfer, turn) {
                    Ran::Yielded => return Outcome::Yield,
                    Ran::Ended(_, Ok(reply)) => reply,
                    Ran::Ended(verb, Err(failure)) => match self.refusal(verb, failure) {
                        Some(reply) => reply,
                        None => return Outcome::End(End::Lost),
                    },
                };
                let sent = self.finish_reply(&reply);
                // An upload's hook starts only once its 226 went out.
                self.hand_over_upload();
                if sent.is_err() {
                    return Outcome::End(End::Lost);
                }
                linger = LINGER;
                continue;
            }
            let line = match self.control.earlier() {
                Some(Earlier::Line(line)) => Some(line),
                Some(Earlier::TooLong) => None,
                Some(Earlier::Dropped) => {
                    let text = "Too many commands sent during a transfer";
                    if self.say(&Reply::new(ReplyCode::SyntaxError, text)).is_err() {
                        return Outcome::End(End::Lost);
                    }
                    continue;
                }
                None => match self.next_line(linger, turn) {
                    Next::Line => Some(self.control.line().to_vec()),
                    Next::TooLong => None,
                    Next::Quiet => return Outcome::Park,
                    Next::End(end) => return Outcome::End(end),
                },
            };
            let (reply, quit) = match line {
                None => (
                    Reply::new(ReplyCode::SyntaxError, "Command line too long"),
                    false,
                ),
                Some(line) => {
                    let answer = self.answer(&line);
                    self.note_login_state();
                    match answer {
                        Ok(Answer::Reply(reply)) => (reply, false),
                        Ok(Answer::Quit(reply)) => (reply, true),
                        Ok(Answer::InTls) => continue, // its 234 went out before the handshake
                        Ok(Answer::Transfer) => continue, // the loop runs it
                        Err(end) => return Outcome::End(end),
                    }
                }
            };
            if self.finish_reply(&reply).is_err() {
                return Outcome::End(End::Lost);
            }
            if quit {
                return Outcome::End(End::Quit);
            }
            if self.close_after_reply {
                return Outcome::End(End::LoginFailures);
            }
            if self.control.too_many_long_lines() {
                self.control
                    .say_closing("Too many over-long command lines, closing");
                return Outcome::End(End::LongLines);
            }
            linger = LINGER;
        }
    }

    /// Moves the control connection's TLS handshake on for at most `linger`: `true`
    /// when it is over, `false` when the client is slow to answer (the session is
    /// parked, and the parker hands it back when the client sends more or the
    /// handshake's time is up). A stalled handshake holds no worker.
    fn handshake(&mut self, linger: Duration) -> Result<bool, End> {
        let Some(until) = self.control.handshake_until() else {
            return Ok(true);
        };
        let linger_end = Instant::now() + linger;
        loop {
            if self.stopping() {
                return Err(End::Shutdown);
            }
            let now = Instant::now();
            if now >= until {
                log::info!("{}: TLS handshake not finished in time", self.peer);
                self.note_tls_handshake(TlsChannel::Control, false);
                return Err(End::Handshake);
            }
            let wait = linger_end.min(until).saturating_duration_since(now);
            match self.control.handshake(wait.max(Duration::from_millis(1))) {
                Ok(true) => {
                    log::info!("{}: control connection in TLS", self.peer);
                    self.note_tls_handshake(TlsChannel::Control, true);
                    return Ok(true);
                }
                Ok(false) if Instant::now() >= linger_end => return Ok(false),
                Ok(false) => {}
                Err(e) => {
                    log::warn!("{}: TLS handshake failed: {e}", self.peer);
                    self.note_tls_handshake(TlsChannel::Control, false);
                    return Err(End::Lost);
                }
            }
        }
    }

    /// Sends a command's final reply, lets the data connection it ended go, and after
    /// the `426` of a transfer that ABOR stopped, answers the ABOR itself.
    fn finish_reply(&mut self, reply: &Reply) -> io::Result<()> {
        self.say(reply)?;
        if self.control.take_abort() {
            self.say(&Reply::new(ReplyCode::TransferComplete, "ABOR successful"))?;
        }
        Ok(())
    }

    /// Sends a reply, then lets the data connection a transfer ended go.
    fn say(&mut self, reply: &Reply) -> io::Result<()> {
        self.control.send(reply)?;
        self.data.drain_ended();
        Ok(())
    }

    /// Reads the next command line within `linger` (and never past a deadline),
    /// closing the passive listeners whose time is up on the way.
    fn next_line(&mut self, linger: Duration, turn: &Turn<'_, 's>) -> Next {
        self.data.close_expired();
        let mut until = Instant::now() + linger;
        if let Some(at) = self.data.deadline() {
            until = until.min(at);
        }
        let shared = self.shared;
        let logged_in = self.logged_in();
        self.control.next_line(
            until,
            logged_in,
            &shared.config,
            || shared.stopping(),
            || turn.others_waiting(),
        )
    }

    fn logged_in(&self) -> bool {
        matches!(self.login, Login::In(_))
    }

    /// The session's next deadline, at which the parker hands it back: the first of
    /// those that end it, or that of an open passive listener.
    pub(super) fn deadline(&self) -> Instant {
        let config = &self.shared.config;
        let ending = self.control.ending_deadlines(self.logged_in(), config);
        ending
            .map(|(at, _, _)| at)
            .chain(self.data.deadline())
            .min()
            .unwrap_or_else(|| Instant::now() + config.idle_timeout)
    }

    /// The registry's id of the session, its key in the parker.
    pub(super) fn id(&self) -> u64 {
        self.token.id()
    }

    /// The control connection's socket, which the parker watches.
    pub(super) fn control_fd(&self) -> Option<BorrowedFd<'_>> {
        self.control.fd()
    }

    /// Ends a session at shutdown: `421`, then the end of the control connection.
    pub(super) fn shut_down(mut self: Box<Self>) {
        self.control.say_closing("Server shutting down");
        self.finish(End::Shutdown);
    }

    /// Logs the session's end and closes its control connection (in TLS with a
    /// close_notify, see [`Control::end`]).
    fn finish(self: Box<Self>, end: End) {
        let _context = self.log_context();
        self.note_end(end);
        let handshaking = self.control.handshake_until().is_some();
        if !matches!(end, End::Lost | End::Handshake) && !handshaking {
            self.control.end(data::CLOSE_WAIT);
        }
    }

    /// Whether the server is stopping.
    fn stopping(&self) -> bool {
        self.shared.stopping()
    }

    /// Between chunks of a transfer or a listing: stop on ABOR or a vanished client.
    fn check_abort(&mut self) -> Result<(), failure::Failure> {
        self.control.check_abort()
    }

    /// A transfer's data connection is over: closes it (see [`DataChannel::close`]).
    fn close_data(&mut self, stream: ServerStream) -> Result<(), failure::Failure> {
        self.data.close(stream, &self.token)
    }
}
