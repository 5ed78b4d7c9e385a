//! One control connection: read a line, parse it into a [`Command`], one `match`, reply.
//!
//! Handlers return `Result<Reply, Failure>`; [`Failure::reply`] is the one place where
//! an error becomes a reply. Transfers send their `150` themselves, then the final
//! reply comes back the same way as any other.
//!
//! Reading a command waits at most the idle timeout; the read is also woken when the
//! server shuts down (the acceptor's sweep shuts down our reading half), and then the
//! session says `421` and ends. During a transfer the control connection is only looked
//! at between chunks, without waiting: an ABOR stops the transfer, any other command
//! waits its turn until the transfer is over. A chunk ends after 8 MiB or when the data
//! connection has blocked for a short tick, so an ABOR is seen even from a client that
//! stopped reading or sending data to send it.

use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io::{self, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::digest::digest_between;

use super::accounts::Perms;
use super::data::{self, DataPlan};
use super::listing::{
    entry_line, has_wildcards, listable, Facts, Listing, Pattern, LISTING_CHUNK, SORTED_MAX,
};
use super::park::Parker;
use super::{ConnToken, NotRegistered, Shared};
use crate::locks::FileGuard;
use crate::path::{
    is_fit_for_new_name, EntryKey, PathError, Resolved, Root, VirtualPath, TEMP_PREFIX,
};
use crate::protocol::{
    read_line, read_line_within, Command, EpsvArg, Line, LineState, Reply, ReplyCode, TransferType,
    MAX_LINE,
};
use crate::time::Utc;
use crate::tls::{self, ServerStream};
use crate::transfer::{is_timeout, CopyError, Pump};
use rustix::io::Errno;

/// Bytes moved between two looks at the control connection during a transfer.
const CHUNK: usize = 8 << 20;

/// How long one read or write on a data connection may block before the session
/// looks at the control connection again. A client that sends ABOR often stops
/// reading (or sending) data until ABOR is answered, so a transfer cannot wait for the
/// data connection alone. Stalls still end the transfer after the data timeout.
const TICK: Duration = Duration::from_millis(200);

/// Commands a client may send ahead during a transfer; the ones past it are not
/// kept, only counted, and each gets a `500` after the queued ones are answered.
const MAX_QUEUED: usize = 32;

/// How long a worker waits for a session's next command before it parks the
/// session, right after serving one: clients that send commands one after another (a
/// reply, then the next command) keep their worker, even when the machine is so busy
/// that they take a while to answer (parking and waking again costs two thread
/// hand-overs and the epoll calls, about a third more CPU per small transfer when it
/// happens after every command, measured with ftp-bench retr-small).
const LINGER: Duration = Duration::from_millis(100);

/// How long a worker waits before parking a session it has served nothing for yet
/// (just greeted, or woken by bytes that made no command): short, so connections that
/// say nothing hold the pool for little time.
const LINGER_QUIET: Duration = Duration::from_millis(10);

/// How long one command line may take to arrive, from its first byte to its end.
const LINE_TIME: Duration = Duration::from_secs(30);

/// Over-long command lines in a row after which the connection is closed.
const MAX_LONG_LINES: u32 = 3;

/// The control connection's read buffer: command lines are short, and longer ones
/// (up to `MAX_LINE`) are read in pieces, so a small buffer keeps idle sessions cheap.
const CONTROL_BUFFER: usize = 1024;

/// Starts a session on a connection the acceptor admitted for `ip`: registers it,
/// greets, and serves it as [`resume`] does.
pub(super) fn start<'s>(stream: TcpStream, ip: IpAddr, shared: &'s Shared, parker: &Parker<'s>) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        shared.release(ip);
        return; // the peer is already gone
    };
    let token = match shared.register(&stream, ip) {
        Ok(token) => token,
        Err(why) => {
            let text = match why {
                NotRegistered::Stopping => "Server shutting down",
                NotRegistered::Io(e) => {
                    log::warn!("{peer}: refused: cannot serve another session: {e}");
                    "Server out of resources, try again later"
                }
            };
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let reply = Reply::new(ReplyCode::ServiceNotAvailable, text);
            let _ = stream.write_all(reply.to_wire().as_bytes());
            shared.release(ip);
            return;
        }
    };
    // Clients send ABOR (or Telnet Synch) as TCP urgent data: Python's ftplib sends
    // `ABOR\r\n` with MSG_OOB, which makes the `\n` urgent. Keep urgent bytes in the
    // stream, or that line never ends (RFC 959 §4.1.3; vsftpd does the same).
    let setup = rustix::net::sockopt::set_socket_oobinline(&stream, true)
        .map_err(io::Error::from)
        .and_then(|()| stream.set_nodelay(true))
        .and_then(|()| stream.set_read_timeout(Some(shared.config.idle_timeout)))
        .and_then(|()| stream.set_write_timeout(Some(shared.config.idle_timeout)));
    if let Err(e) = setup {
        log::warn!("{peer}: cannot set up the session: {e}");
        return;
    }
    let now = Instant::now();
    let mut session = Box::new(Session {
        connected: now,
        last_command: now,
        line_started: None,
        long_lines: 0,
        shared,
        token,
        control: BufReader::with_capacity(CONTROL_BUFFER, ServerStream::plain(stream)),
        peer,
        local,
        session_tls: None,
        pbsz: false,
        prot_private: false,
        line: Vec::with_capacity(256),
        line_state: LineState::default(),
        queued: VecDeque::new(),
        overflow: 0,
        abort_seen: false,
        login: Login::None,
        root: shared.root.clone(),
        perms: Perms::default(),
        failures: 0,
        close_after_reply: false,
        cwd: VirtualPath::root(),
        data: None,
        pasv_expired: false,
        ending_data: None,
        kept_listener: None,
        control_timeout: shared.config.idle_timeout,
        epsv_all: false,
        transfer_type: TransferType::Ascii,
        rest: 0,
        rename_from: None,
        facts: Facts::default(),
        hash: HashAlgo::Sha256,
        pump: Pump::new(),
    });
    log::info!("{peer}: session start");
    let greeting = Reply::new(ReplyCode::ServiceReady, "simple-ftp ready");
    if session.send(&greeting).is_err() {
        session.finish(End::Lost);
        return;
    }
    resume(session, parker);
}

/// Serves a session on this worker until it goes quiet, when it is parked (see
/// [`super::park`]), or ends.
pub(super) fn resume<'s>(mut session: Box<Session<'s>>, parker: &Parker<'s>) {
    match session.serve() {
        Outcome::Park => {
            if let Err(session) = parker.park(session) {
                session.shut_down();
            }
        }
        Outcome::End(end) => session.finish(end),
    }
}

/// What waiting for the next command line found.
enum Next {
    /// A complete line is in `Session::line`.
    Line,
    /// A line passed the bound (the rest of it is dropped as it comes).
    TooLong,
    /// Nothing within the linger: park the session.
    Quiet,
    /// The session is over.
    End(End),
}

/// What serving a session came to.
enum Outcome {
    /// No command is there: the session waits parked.
    Park,
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
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Login {
    None,
    /// USER was given; `anonymous` says whether PASS will let them in.
    User {
        name: String,
        anonymous: bool,
    },
    In(String),
}

/// The digest HASH computes (draft-bryan-ftpext-hash), chosen with `OPTS HASH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashAlgo {
    Sha256,
    Sha512,
}

impl HashAlgo {
    const ALL: [HashAlgo; 2] = [HashAlgo::Sha256, HashAlgo::Sha512];

    fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "SHA-256",
            HashAlgo::Sha512 => "SHA-512",
        }
    }
}

/// A line read from the control connection during a transfer, to handle after it.
#[derive(Debug)]
enum Queued {
    Line(Vec<u8>),
    TooLong,
}

/// What a look at the control connection during a transfer found.
enum Poll {
    Nothing,
    Abort,
    Closed,
}

/// How STOR, APPE and REST+STOR start the new version of a file.
#[derive(Debug, Clone, Copy)]
enum Store {
    /// From nothing (STOR).
    Replace,
    /// From the whole current file (APPE).
    Append,
    /// From the first `n` bytes of the current file (REST n, then STOR).
    At(u64),
}

/// What went wrong handling a command. Each kind is documented by the reply it earns.
#[derive(Debug)]
enum Failure {
    /// 530: the command needs a login.
    NotLoggedIn,
    /// 501 (NUL), 553 (reserved name), 550 (outside the root, or no such directory).
    Path(PathError),
    /// A file-system action failed: 550 when the file is missing or not accessible,
    /// 452 when the disk is full, 451 otherwise.
    Fs(io::Error),
    /// 450: another transfer holds the file for longer than the lock wait.
    Busy,
    /// 425: the data connection could not be opened, or none was set up.
    NoData(String),
    /// 426: the data connection failed during the transfer.
    Transfer(io::Error),
    /// 426: the client sent ABOR during the transfer (the ABOR itself then gets 226).
    Aborted,
    /// An explicit reply (a refusal that fits no kind above).
    Reply(Reply),
    /// The control connection failed: nothing can be sent, the session ends.
    Control(io::Error),
}

impl From<PathError> for Failure {
    fn from(e: PathError) -> Failure {
        Failure::Path(e)
    }
}

impl From<CopyError> for Failure {
    fn from(e: CopyError) -> Failure {
        match e {
            CopyError::Net(e) => Failure::Transfer(e),
            CopyError::File(e) => Failure::Fs(e),
        }
    }
}

impl Failure {
    fn refuse(code: ReplyCode, text: impl Into<String>) -> Failure {
        Failure::Reply(Reply::new(code, text))
    }

    /// The one place where an error becomes a reply.
    fn reply(self) -> Reply {
        use ReplyCode::*;
        match self {
            Failure::NotLoggedIn => Reply::new(NotLoggedIn, "Please log in with USER and PASS"),
            Failure::Path(PathError::Nul) => Reply::new(BadArguments, "Path contains a NUL byte"),
            Failure::Path(PathError::Reserved) => {
                Reply::new(NameNotAllowed, "File name not allowed")
            }
            Failure::Path(PathError::Outside) => Reply::new(FileUnavailable, "Permission denied"),
            Failure::Path(PathError::Io(e)) | Failure::Fs(e) => fs_reply(&e),
            Failure::Busy => Reply::new(
                FileBusy,
                "File busy: another transfer is using it, try again",
            ),
            Failure::NoData(why) => Reply::new(CantOpenDataConnection, why),
            Failure::Transfer(e) => Reply::new(
                TransferAborted,
                format!("Connection closed; transfer aborted: {}", plain(&e)),
            ),
            Failure::Aborted => Reply::new(TransferAborted, "Transfer aborted by ABOR"),
            Failure::Reply(reply) => reply,
            Failure::Control(e) => Reply::new(ServiceNotAvailable, plain(&e)),
        }
    }
}

/// How long a transfer has gone without moving a byte, against the data timeout,
/// and how many bytes it moved since the control connection was last looked at.
struct Stall {
    since: Instant,
    limit: Duration,
    unlooked: usize,
}

impl Stall {
    fn new(limit: Duration) -> Stall {
        Stall {
            since: Instant::now(),
            limit,
            unlooked: 0,
        }
    }

    /// Records `n` bytes moved; returns whether [`CHUNK`] bytes have moved since the
    /// last time it said so, which is when the control connection is looked at.
    fn progress(&mut self, n: usize) -> bool {
        self.since = Instant::now();
        self.unlooked += n;
        if self.unlooked < CHUNK {
            return false;
        }
        self.unlooked = 0;
        true
    }

    /// After a tick without progress: an error once the data timeout has passed.
    fn check(&self) -> Result<(), Failure> {
        if self.since.elapsed() >= self.limit {
            return Err(Failure::Transfer(io::Error::new(
                io::ErrorKind::TimedOut,
                "the transfer stalled",
            )));
        }
        Ok(())
    }
}

/// The reply for a failed file-system action. It says what failed in the client's
/// terms: never the error's own text, which can hold a host path (an error from
/// making a temporary file names it) or an `os error N`; the details go to the log
/// ([`Session::log_failure`]).
fn fs_reply(e: &io::Error) -> Reply {
    use io::ErrorKind as K;
    use ReplyCode::*;
    if e.raw_os_error() == Some(Errno::NAMETOOLONG.raw_os_error()) {
        return Reply::new(NameNotAllowed, "File name too long");
    }
    match e.kind() {
        K::NotFound | K::NotADirectory => Reply::new(FileUnavailable, "No such file or directory"),
        K::PermissionDenied => Reply::new(FileUnavailable, "Permission denied"),
        K::IsADirectory => Reply::new(FileUnavailable, "Is a directory"),
        K::AlreadyExists => Reply::new(FileUnavailable, "File exists"),
        K::DirectoryNotEmpty => Reply::new(FileUnavailable, "Directory not empty"),
        K::InvalidInput => Reply::new(FileUnavailable, format!("Not possible: {}", plain(e))),
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => Reply::new(
            InsufficientStorage,
            format!("Insufficient storage space: {}", plain(e)),
        ),
        _ => Reply::new(LocalError, format!("Local error: {}", plain(e))),
    }
}

/// What went wrong, in words a client may see: the system's text for an OS error
/// without its `(os error N)` tail, else only the kind of error (the error's own
/// text is for the log: it may name a host path).
fn plain(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.kind().to_string();
    };
    let text = io::Error::from_raw_os_error(code).to_string();
    match text.strip_suffix(&format!(" (os error {code})")) {
        Some(words) => words.to_owned(),
        None => text,
    }
}

pub(super) struct Session<'s> {
    /// When the connection was accepted: the login deadline counts from here.
    connected: Instant,
    /// When the last complete command line arrived: the idle deadline counts from
    /// here, so bytes that never make a line stretch nothing.
    last_command: Instant,
    /// When the line now being read began (its first bytes arrived).
    line_started: Option<Instant>,
    /// Over-long command lines in a row.
    long_lines: u32,
    shared: &'s Shared,
    token: ConnToken<'s>,
    /// The control connection: plain, or TLS after AUTH TLS.
    control: BufReader<ServerStream>,
    peer: SocketAddr,
    local: SocketAddr,
    /// The TLS configuration of this session's data connections, once AUTH TLS
    /// succeeded: it shares the control connection's own session cache, so data
    /// connections can resume only that session.
    session_tls: Option<Arc<rustls::ServerConfig>>,
    /// PBSZ was given (RFC 4217 §8: before PROT).
    pbsz: bool,
    /// PROT P: data connections in TLS.
    prot_private: bool,
    /// The command line being read; it survives a transfer that reads part of a line.
    line: Vec<u8>,
    line_state: LineState,
    /// Lines the client sent during a transfer, handled after it.
    queued: VecDeque<Queued>,
    /// Lines sent during transfers past [`MAX_QUEUED`]: they come after every queued
    /// line, so a count keeps their order and the memory bounded.
    overflow: usize,
    /// An ABOR stopped the last transfer: after its 426, the ABOR gets its 226.
    abort_seen: bool,
    login: Login,
    /// What the session sees as `/`: the server root, or the user's home inside it.
    root: Root,
    perms: Perms,
    /// Failed PASS commands so far.
    failures: u32,
    /// Close the connection once the current reply is sent.
    close_after_reply: bool,
    cwd: VirtualPath,
    /// The data connection set up by the last PASV/EPSV/PORT/EPRT, used by the next
    /// transfer and dropped by any transfer command, successful or not.
    data: Option<DataPlan>,
    /// The last PASV/EPSV's listener was closed unused after the data timeout: the
    /// next transfer's `425` says so.
    pasv_expired: bool,
    /// A TLS data connection whose close_notify went out: drained (the client's own
    /// close_notify) only after the transfer's reply, so the reply never waits for it.
    ending_data: Option<TcpStream>,
    /// The passive listener of the last transfer, which may serve the next PASV/EPSV.
    kept_listener: Option<data::Passive>,
    /// The read timeout set on the control connection now (set only when it changes).
    control_timeout: Duration,
    /// After `EPSV ALL`, only EPSV may set up data connections (RFC 2428 §4).
    epsv_all: bool,
    /// Recorded for STAT; bytes are never rewritten in either type.
    transfer_type: TransferType,
    /// The offset given by REST, used by the next RETR or STOR.
    rest: u64,
    /// The path given by RNFR, used by the next RNTO.
    rename_from: Option<Resolved>,
    facts: Facts,
    hash: HashAlgo,
    pump: Pump,
}

impl<'s> Session<'s> {
    /// Serves commands while they come: lines queued during a transfer first, then
    /// what the connection brings within [`LINGER`] ([`LINGER_QUIET`] before the first). Returns [`Outcome::Park`] when
    /// none is there, with nothing buffered that would be left waiting.
    fn serve(&mut self) -> Outcome {
        let mut linger = LINGER_QUIET;
        loop {
            let parsed = match self.queued.pop_front() {
                Some(Queued::Line(line)) => Some(Command::parse(&line)),
                Some(Queued::TooLong) => None,
                None if self.overflow > 0 => {
                    self.overflow -= 1;
                    let reply = Reply::new(
                        ReplyCode::SyntaxError,
                        "Too many commands sent during a transfer",
                    );
                    if self.send(&reply).is_err() {
                        return Outcome::End(End::Lost);
                    }
                    continue;
                }
                None => match self.next_line(linger) {
                    Next::Line => Some(Command::parse(&self.line)),
                    Next::TooLong => None,
                    Next::Quiet => return Outcome::Park,
                    Next::End(end) => return Outcome::End(end),
                },
            };
            let mut quit = false;
            let reply = match parsed {
                None => Reply::new(ReplyCode::SyntaxError, "Command line too long"),
                Some(Err(e)) => {
                    log::debug!("{}: refused command: {e}", self.peer);
                    e.reply()
                }
                Some(Ok(Command::Auth(mechanism))) => {
                    log::debug!("{}: AUTH {mechanism}", self.peer);
                    match self.auth(&mechanism) {
                        Ok(None) => continue, // in TLS now; the 234 went out before
                        Ok(Some(reply)) => reply,
                        Err(end) => return Outcome::End(end),
                    }
                }
                Some(Ok(cmd)) => {
                    self.log_command(&cmd);
                    quit = cmd == Command::Quit;
                    let verb = cmd.verb();
                    match self.handle(cmd) {
                        Ok(reply) => reply,
                        Err(Failure::Control(_)) => return Outcome::End(End::Lost),
                        Err(failure) => {
                            self.log_failure(verb, &failure);
                            failure.reply()
                        }
                    }
                }
            };
            if self.send(&reply).is_err() {
                return Outcome::End(End::Lost);
            }
            self.drain_ended_data();
            if std::mem::take(&mut self.abort_seen) {
                let reply = Reply::new(ReplyCode::TransferComplete, "ABOR successful");
                if self.send(&reply).is_err() {
                    return Outcome::End(End::Lost);
                }
            }
            if quit {
                return Outcome::End(End::Quit);
            }
            if self.close_after_reply {
                return Outcome::End(End::LoginFailures);
            }
            if self.long_lines >= MAX_LONG_LINES {
                self.say_closing("Too many over-long command lines, closing");
                return Outcome::End(End::LongLines);
            }
            linger = LINGER;
        }
    }

    /// Reads the next command line, waiting at most `linger` for it (and never past
    /// a deadline): [`Next::Quiet`] when none came, which parks the session. At most
    /// one read per wait: a peer that sends a line a byte at a time keeps no worker,
    /// and its bytes stretch no deadline. While a passive listener is open its
    /// deadline counts too, and it is closed when it passes (a listener nobody
    /// connected to must not hold a port, least of all one of a shared range).
    fn next_line(&mut self, linger: Duration) -> Next {
        let linger_end = Instant::now() + linger;
        loop {
            if self.shared.stopping() {
                self.say_closing("Server shutting down");
                return Next::End(End::Shutdown);
            }
            let now = Instant::now();
            if let Some((end, text)) = self.deadline_passed(now) {
                self.say_closing(text);
                return Next::End(end);
            }
            self.close_expired_listeners();
            let wait = linger_end
                .min(self.deadline())
                .saturating_duration_since(now);
            let buffered = !self.control.buffer().is_empty() || self.tls_holds_plaintext();
            if wait.is_zero() && !buffered {
                return Next::Quiet;
            }
            self.set_read_timeout(wait.max(Duration::from_millis(1)));
            let read = read_line_within(
                &mut self.control,
                &mut self.line,
                &mut self.line_state,
                MAX_LINE,
                1,
            );
            if self.line_state.in_line() {
                self.line_started.get_or_insert(now);
            }
            if self.shared.stopping() {
                // The shutdown sweep ends reads too: this is not the client leaving.
                self.say_closing("Server shutting down");
                return Next::End(End::Shutdown);
            }
            match read {
                Ok(Line::Pending) => {}
                Ok(Line::Complete) => {
                    self.line_started = None;
                    self.last_command = Instant::now();
                    self.long_lines = 0;
                    return Next::Line;
                }
                Ok(Line::TooLong) => {
                    if !self.line_state.in_line() {
                        self.line_started = None;
                    }
                    self.last_command = Instant::now();
                    self.long_lines += 1;
                    return Next::TooLong;
                }
                Ok(Line::Eof) => return Next::End(End::ClientClosed),
                Err(e) if is_timeout(&e) => {
                    if !self.tls_holds_plaintext() {
                        return Next::Quiet;
                    }
                }
                Err(_) => return Next::End(End::Lost),
            }
        }
    }

    /// The deadlines that end the session, each with why and what the client is told:
    /// the login timeout from the connection until a login, the time a line may take
    /// from its first byte, and the idle timeout from the last command.
    fn ending_deadlines(&self) -> impl Iterator<Item = (Instant, End, &'static str)> {
        let config = &self.shared.config;
        let login = (!matches!(self.login, Login::In(_))).then(|| {
            let at = self.connected + config.login_timeout;
            (at, End::LoginTimeout, "Login timeout, closing")
        });
        let line = self.line_started.map(|started| {
            let text = "Command line not finished in time, closing";
            (started + LINE_TIME, End::SlowLine, text)
        });
        let idle = (
            self.last_command + config.idle_timeout,
            End::Idle,
            "Idle timeout, closing",
        );
        login.into_iter().chain(line).chain([idle])
    }

    /// The session's next deadline: the first of those that end it, or that of an open
    /// passive listener.
    pub(super) fn deadline(&self) -> Instant {
        let ending = self.ending_deadlines().map(|(at, _, _)| at);
        ending
            .chain(self.listener_deadline())
            .min()
            .unwrap_or(self.last_command + self.shared.config.idle_timeout)
    }

    /// Which deadline that ends the session has passed, and what the client is told.
    fn deadline_passed(&self, now: Instant) -> Option<(End, &'static str)> {
        self.ending_deadlines()
            .find(|(at, _, _)| now >= *at)
            .map(|(_, end, text)| (end, text))
    }

    /// Says `421` with `text` (the session ends after it); a failure to say it changes
    /// nothing.
    fn say_closing(&mut self, text: &str) {
        let _ = self.send(&Reply::new(ReplyCode::ServiceNotAvailable, text));
    }

    /// Whether plaintext waits inside the TLS layer: such a session is never parked,
    /// since nothing would arrive on the socket to wake it.
    fn tls_holds_plaintext(&mut self) -> bool {
        self.control.get_mut().holds_plaintext()
    }

    /// The registry's id of the session, its key in the parker.
    pub(super) fn id(&self) -> u64 {
        self.token.id()
    }

    /// The control connection's socket, which the parker watches.
    pub(super) fn control_fd(&self) -> Option<BorrowedFd<'_>> {
        self.control.get_ref().tcp().ok().map(AsFd::as_fd)
    }

    /// Ends a session at shutdown: `421`, then the end of the control connection.
    pub(super) fn shut_down(mut self: Box<Self>) {
        self.say_closing("Server shutting down");
        self.finish(End::Shutdown);
    }

    /// Logs the session's end and closes its control connection (in TLS with a
    /// close_notify, see [`Session::end_control`]).
    fn finish(self: Box<Self>, end: End) {
        log::info!(
            "{}: session end ({end}) after {:.1} s",
            self.peer,
            self.connected.elapsed().as_secs_f64()
        );
        if !matches!(end, End::Lost) {
            self.end_control();
        }
    }

    /// The earliest deadline of the session's passive listeners, if it has any.
    fn listener_deadline(&self) -> Option<Instant> {
        let planned = match &self.data {
            Some(DataPlan::Passive(p)) => Some(p.deadline(self.shared)),
            _ => None,
        };
        let kept = self.kept_listener.as_ref().map(|p| p.deadline(self.shared));
        match (planned, kept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes the passive listeners whose deadline has passed.
    fn close_expired_listeners(&mut self) {
        let now = Instant::now();
        if let Some(DataPlan::Passive(p)) = &self.data {
            if p.deadline(self.shared) <= now {
                log::debug!(
                    "{}: passive port {} closed: no data connection came in time",
                    self.peer,
                    p.port()
                );
                self.data = None;
                self.pasv_expired = true;
            }
        }
        if self
            .kept_listener
            .as_ref()
            .is_some_and(|p| p.deadline(self.shared) <= now)
        {
            self.kept_listener = None;
        }
    }

    /// Keeps the listener a transfer used, to serve the next PASV/EPSV, when the
    /// session may keep one (see [`data::keepable`]); else it is closed now.
    fn keep_listener(&mut self, listener: Option<data::Passive>) {
        self.kept_listener = listener
            .filter(|_| data::keepable(self.shared))
            .map(data::Passive::restart);
    }

    /// At the session's end, in TLS: close_notify after the last reply (`221` or
    /// `421`) or in answer to the client's (RFC 8446 §6.1), then a short wait for what
    /// the client still sends, so that closing does not reset the connection.
    fn end_control(self) {
        if !self.in_tls() {
            return;
        }
        let stream = self.control.into_inner();
        if let Ok(tcp) = stream.tcp() {
            let _ = tcp.set_write_timeout(Some(data::CLOSE_WAIT));
            let _ = tcp.set_read_timeout(Some(data::CLOSE_WAIT));
        }
        if let Ok(Some(tcp)) = stream.end() {
            tls::drain(&tcp, 4);
        }
    }

    fn log_command(&self, cmd: &Command) {
        if log::log_enabled!(log::Level::Debug) {
            match cmd {
                Command::Pass(_) => log::debug!("{}: PASS ****", self.peer),
                cmd => log::debug!("{}: {cmd}", self.peer),
            }
        }
    }

    /// Logs the details of a failure that its reply leaves out: the system's own
    /// error text, which may name host paths. Refusals the reply says all of go to
    /// the debug log only.
    fn log_failure(&self, verb: &str, failure: &Failure) {
        match failure {
            Failure::Fs(e) | Failure::Path(PathError::Io(e)) => {
                let level = match e.kind() {
                    io::ErrorKind::NotFound
                    | io::ErrorKind::NotADirectory
                    | io::ErrorKind::AlreadyExists
                    | io::ErrorKind::DirectoryNotEmpty
                    | io::ErrorKind::IsADirectory => log::Level::Debug,
                    _ => log::Level::Warn,
                };
                log::log!(level, "{}: {verb} failed: {e}", self.peer);
            }
            Failure::Transfer(e) => log::info!("{}: {verb} aborted: {e}", self.peer),
            Failure::NoData(why) => log::info!("{}: {verb}: {why}", self.peer),
            _ => log::debug!("{}: {verb} refused", self.peer),
        }
    }

    fn send(&mut self, reply: &Reply) -> io::Result<()> {
        self.write_control(&reply.to_wire())
    }

    /// Writes whole CRLF-ended reply lines to the control connection: the one place
    /// replies go out.
    fn write_control(&mut self, text: &str) -> io::Result<()> {
        let control = self.control.get_mut();
        control.write_all(text.as_bytes())?;
        control.flush()
    }

    fn handle(&mut self, cmd: Command) -> Result<Reply, Failure> {
        use ReplyCode::*;
        let needs_login = !matches!(
            cmd,
            Command::User(_)
                | Command::Pass(_)
                | Command::Quit
                | Command::Rein
                | Command::Feat
                | Command::Syst
                | Command::Help(_)
                | Command::Noop
                | Command::Opts(_)
                | Command::Abor
                | Command::Auth(_)
                | Command::Pbsz(_)
                | Command::Prot(_)
                | Command::Ccc
        );
        if needs_login && !matches!(self.login, Login::In(_)) {
            return Err(Failure::NotLoggedIn);
        }
        let allowed = match &cmd {
            Command::Retr(_)
            | Command::Size(_)
            | Command::Mdtm(_)
            | Command::Hash(_)
            | Command::List(_)
            | Command::Nlst(_)
            | Command::Mlsd(_)
            | Command::Mlst(_)
            | Command::Stat(Some(_)) => self.perms.read,
            Command::Stor(_)
            | Command::Appe(_)
            | Command::Stou(_)
            | Command::Mkd(_)
            | Command::Rnto(_) => self.perms.write,
            Command::Dele(_) | Command::Rmd(_) | Command::Rnfr(_) => self.perms.delete,
            _ => true,
        };
        if !allowed {
            self.data = None;
            return Err(Failure::refuse(FileUnavailable, "Permission denied"));
        }
        // RNTO must come right after RNFR (RFC 959 §4.1.3).
        let rename_from = self.rename_from.take();
        Ok(match cmd {
            Command::User(_) if self.shared.config.require_tls && !self.in_tls() => {
                return Err(Failure::refuse(
                    NotLoggedIn,
                    "This server requires TLS: send AUTH TLS first",
                ));
            }
            Command::User(name) => {
                let anonymous = ["anonymous", "ftp"]
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&name));
                self.login = Login::User { name, anonymous };
                Reply::new(NeedPassword, "Please specify the password")
            }
            Command::Pass(password) => self.pass(&password)?,
            Command::Syst => Reply::new(SystemType, "UNIX Type: L8"),
            Command::Feat => self.feat(),
            Command::Opts(opt) => self.opts(&opt)?,
            Command::Type(t) => {
                self.transfer_type = t;
                Reply::new(CommandOk, format!("Type set to {}", type_name(t)))
            }
            Command::Mode => Reply::new(CommandOk, "Mode set to S"),
            Command::Stru => Reply::new(CommandOk, "Structure set to F"),
            Command::Allo => Reply::new(Superfluous, "ALLO not needed"),
            Command::Noop => Reply::new(CommandOk, "NOOP ok"),
            Command::Help(_) => help(),
            Command::Site(sub) if sub.trim().eq_ignore_ascii_case("HELP") => {
                Reply::new(HelpMessage, "SITE commands: HELP")
            }
            Command::Site(sub) => {
                let name = sub.split_whitespace().next().unwrap_or("").to_uppercase();
                return Err(Failure::refuse(
                    ParameterNotImplemented,
                    format!("SITE {name} not supported; SITE HELP lists what is"),
                ));
            }
            Command::Quit => Reply::new(ClosingControl, "Goodbye"),
            Command::Rein => self.rein()?,
            Command::Abor => Reply::new(NoTransfer, "No transfer to abort"),
            Command::Pwd => Reply::new(
                PathName,
                format!("{} is the current directory", quote(self.cwd.as_str())),
            ),
            Command::Cwd(dir) => self.cwd(&dir)?,
            Command::Cdup => self.cwd("..")?,
            Command::Pasv => self.pasv()?,
            Command::Epsv(arg) => self.epsv(arg)?,
            Command::Port(addr) | Command::Eprt(addr) => self.active(addr)?,
            Command::Size(name) => {
                let (_, meta) = self.plain_file(&name)?;
                Reply::new(FileStatus, meta.len().to_string())
            }
            Command::Mdtm(name) => {
                let (_, meta) = self.plain_file(&name)?;
                let modified = meta.modified().map_err(Failure::Fs)?;
                Reply::new(FileStatus, Utc::from_system_time(modified).mdtm())
            }
            Command::Rest(offset) => {
                self.rest = offset;
                Reply::new(
                    PendingFurtherInfo,
                    format!("Restarting at {offset}; send RETR or STOR"),
                )
            }
            Command::Retr(name) => self.retr(&name)?,
            Command::Stor(name) => {
                let how = match std::mem::take(&mut self.rest) {
                    0 => Store::Replace,
                    n => Store::At(n),
                };
                self.store(&name, how)?
            }
            Command::Appe(name) => {
                self.rest = 0;
                self.store(&name, Store::Append)?
            }
            Command::Stou(base) => {
                self.rest = 0;
                self.stou(base.as_deref())?
            }
            Command::List(arg) => self.list(arg.as_deref(), Listing::Long)?,
            Command::Nlst(arg) => self.list(arg.as_deref(), Listing::Names)?,
            Command::Mlsd(arg) => self.list(arg.as_deref(), Listing::Facts)?,
            Command::Mlst(arg) => self.mlst(arg.as_deref())?,
            Command::Stat(arg) => self.stat(arg.as_deref())?,
            Command::Hash(name) => self.hash(&name)?,
            Command::Dele(name) => self.dele(&name)?,
            Command::Mkd(name) => self.mkd(&name)?,
            Command::Rmd(name) => self.rmd(&name)?,
            Command::Rnfr(name) => {
                let path = self.resolve(&name)?;
                path.symlink_metadata().map_err(Failure::Fs)?;
                self.rename_from = Some(path);
                Reply::new(PendingFurtherInfo, "Ready for RNTO")
            }
            // The serve loop answers AUTH itself: its reply must go out before the
            // handshake.
            Command::Auth(_) => return Err(Failure::refuse(BadSequence, "AUTH out of place")),
            Command::Pbsz(_) if !self.in_tls() => {
                return Err(Failure::refuse(BadSequence, "PBSZ needs AUTH TLS first"));
            }
            Command::Pbsz(_) => {
                self.pbsz = true;
                Reply::new(CommandOk, "PBSZ=0")
            }
            Command::Prot(_) if !self.pbsz => {
                return Err(Failure::refuse(BadSequence, "PROT needs PBSZ first"));
            }
            Command::Prot('P') => {
                self.prot_private = true;
                Reply::new(CommandOk, "Protection level set to P")
            }
            Command::Prot('C') if self.shared.config.require_tls => {
                return Err(Failure::refuse(
                    PolicyDenied,
                    "Clear data connections are not allowed on this server",
                ));
            }
            Command::Prot('C') => {
                self.prot_private = false;
                Reply::new(CommandOk, "Protection level set to C")
            }
            Command::Prot(level) => {
                return Err(Failure::refuse(
                    ProtLevelNotSupported,
                    format!("PROT {level} not supported; use P or C"),
                ));
            }
            Command::Ccc => {
                return Err(Failure::refuse(
                    ProtectionDenied,
                    "CCC not allowed: the control connection stays encrypted",
                ));
            }
            Command::Rnto(name) => {
                let from =
                    rename_from.ok_or_else(|| Failure::refuse(BadSequence, "Send RNFR first"))?;
                self.rnto(from, &name)?
            }
        })
    }

    /// Sets the control connection's read timeout, rounded up to a tenth of a second
    /// (at least that), with no system call when it is the one already set: waits for
    /// a command set it before nearly every read.
    fn set_read_timeout(&mut self, timeout: Duration) {
        // Whole milliseconds, so a wait that is nearly the same as the last one costs
        // no system call.
        let millis = timeout.as_nanos().div_ceil(1_000_000).max(1);
        let timeout = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        if timeout == self.control_timeout {
            return;
        }
        if let Ok(tcp) = self.control.get_ref().tcp() {
            if tcp.set_read_timeout(Some(timeout)).is_ok() {
                self.control_timeout = timeout;
            }
        }
    }

    fn in_tls(&self) -> bool {
        self.control.get_ref().is_tls()
    }

    /// AUTH TLS (RFC 4217 §4): `234`, then the handshake on the control connection.
    /// `Ok(None)` when the connection is in TLS now; `Ok(Some(reply))` to refuse;
    /// `Err` when the session must end.
    fn auth(&mut self, mechanism: &str) -> Result<Option<Reply>, End> {
        use ReplyCode::*;
        let Some(base) = &self.shared.config.tls else {
            return Ok(Some(Reply::new(
                NotImplemented,
                "TLS is not configured on this server",
            )));
        };
        if !["TLS", "TLS-C", "SSL"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mechanism))
        {
            return Ok(Some(Reply::new(
                ParameterNotImplemented,
                format!("AUTH {mechanism} not supported; use AUTH TLS"),
            )));
        }
        if self.in_tls() {
            return Ok(Some(Reply::new(BadSequence, "Already in TLS")));
        }
        let (config, data_config) = match tls::per_session(base) {
            Ok(configs) => configs,
            Err(e) => {
                log::error!("{}: cannot set up TLS: {e}", self.peer);
                return Ok(Some(Reply::new(LocalError, "TLS is unavailable")));
            }
        };
        let reply = Reply::new(SecurityExchange, "AUTH TLS successful; start the handshake");
        if self.send(&reply).is_err() {
            return Err(End::Lost);
        }
        // Anything already read past AUTH TLS was sent in the clear before the
        // handshake; treating it as commands after it would let an attacker inject
        // them (the STARTTLS injection flaw). Such a client is not to be trusted.
        if !self.control.buffer().is_empty() {
            log::warn!(
                "{}: commands sent before the TLS handshake: closing",
                self.peer
            );
            return Err(End::Lost);
        }
        let conn = match rustls::ServerConnection::new(Arc::clone(&config)) {
            Ok(conn) => conn,
            Err(e) => {
                log::error!("{}: cannot start TLS: {e}", self.peer);
                return Err(End::Lost);
            }
        };
        // The handshake gets the data timeout, not the (long) idle timeout.
        self.set_read_timeout(self.shared.config.data_timeout);
        if let Err(e) = self.control.get_mut().upgrade(conn) {
            log::warn!("{}: TLS handshake failed: {e}", self.peer);
            return Err(End::Lost);
        }
        // A session waiting for its next command must not be held by a peer that
        // sends a record a byte at a time.
        self.control.get_mut().set_single_reads(true);
        log::info!("{}: control connection in TLS", self.peer);
        // A login made in the clear does not carry over (RFC 4217 §4).
        self.login = Login::None;
        self.session_tls = Some(data_config);
        self.pbsz = false;
        self.prot_private = false;
        Ok(None)
    }

    /// REIN (RFC 959 §4.1.1): the session as it was just after the connection was
    /// made: no login, the root, the default type, no restart offset, no pending
    /// rename and no data connection, options back to their defaults. On a control
    /// connection in TLS it is refused with `502`: going back to the state after
    /// connecting would mean leaving TLS, which RFC 4217 §11 leaves to the server and
    /// which this server does not do (CCC is refused for the same reason).
    fn rein(&mut self) -> Result<Reply, Failure> {
        if self.in_tls() {
            return Err(Failure::refuse(
                ReplyCode::NotImplemented,
                "REIN not allowed in TLS: the control connection stays encrypted",
            ));
        }
        self.login = Login::None;
        self.root = self.shared.root.clone();
        self.perms = Perms::default();
        self.cwd = VirtualPath::root();
        self.transfer_type = TransferType::Ascii;
        self.rest = 0;
        self.rename_from = None;
        self.data = None;
        self.pasv_expired = false;
        self.kept_listener = None;
        self.epsv_all = false;
        self.facts = Facts::default();
        self.hash = HashAlgo::Sha256;
        Ok(Reply::new(
            ReplyCode::ServiceReady,
            "Session reset; log in again",
        ))
    }

    fn pass(&mut self, password: &str) -> Result<Reply, Failure> {
        use ReplyCode::*;
        let (name, anonymous) = match std::mem::replace(&mut self.login, Login::None) {
            Login::User { name, anonymous } => (name, anonymous),
            Login::None => return Err(Failure::refuse(BadSequence, "Login with USER first")),
            Login::In(name) => {
                self.login = Login::In(name);
                return Ok(Reply::new(LoggedIn, "Already logged in"));
            }
        };
        let config = &self.shared.config;
        let granted = if anonymous {
            config.anonymous.perms().map(|p| (VirtualPath::root(), p))
        } else {
            config
                .users
                .check(&name, password)
                .map(|u| (u.home.clone(), u.perms))
        };
        let Some((home, perms)) = granted else {
            // The same reply for every failure, so it does not tell which names exist
            // (RFC 2577 §5); the pause slows guessing down.
            self.failures += 1;
            log::warn!("{}: failed login as {name:?}", self.peer);
            std::thread::sleep(config.failed_login_delay);
            if self.failures >= config.max_login_failures {
                self.close_after_reply = true;
            }
            return Err(Failure::refuse(NotLoggedIn, "Login incorrect"));
        };
        self.root = self.home_root(&home).map_err(|e| {
            log::error!("{}: home {home} of {name:?} is unusable: {e}", self.peer);
            Failure::refuse(NotLoggedIn, "Home directory unavailable")
        })?;
        self.perms = perms;
        self.cwd = VirtualPath::root();
        self.failures = 0;
        log::info!("{}: logged in as {name}", self.peer);
        self.login = Login::In(name);
        Ok(Reply::new(LoggedIn, "Login successful"))
    }

    /// The root of a session whose user lives in `home` (inside the server root, made
    /// there if missing).
    fn home_root(&self, home: &VirtualPath) -> Result<Root, PathError> {
        let server = &self.shared.root;
        if home.is_root() {
            return Ok(server.clone());
        }
        server.below(home)
    }

    fn feat(&self) -> Reply {
        let hashes: Vec<String> = HashAlgo::ALL
            .iter()
            .map(|h| format!("{}{}", h.name(), if *h == self.hash { "*" } else { "" }))
            .collect();
        let mut lines = vec![
            "EPRT".to_owned(),
            "EPSV".to_owned(),
            format!("HASH {}", hashes.join(";")),
            "MDTM".to_owned(),
            self.facts.feature(),
            "PASV".to_owned(),
            "REST STREAM".to_owned(),
            "SIZE".to_owned(),
            "TVFS".to_owned(),
            "UTF8".to_owned(),
        ];
        if self.shared.config.tls.is_some() {
            lines.extend(["AUTH TLS", "PBSZ", "PROT"].map(str::to_owned));
            lines.sort();
        }
        Reply::multi(ReplyCode::SystemStatus, "Features:", &lines, "End")
    }

    fn opts(&mut self, opt: &str) -> Result<Reply, Failure> {
        use ReplyCode::*;
        let (name, value) = match opt.trim().split_once(' ') {
            Some((name, value)) => (name, Some(value.trim())),
            None => (opt.trim(), None),
        };
        if name.eq_ignore_ascii_case("UTF8") {
            return match value {
                None => Ok(Reply::new(CommandOk, "Always in UTF8 mode")),
                Some(on) if on.eq_ignore_ascii_case("ON") => {
                    Ok(Reply::new(CommandOk, "Always in UTF8 mode"))
                }
                Some(_) => Err(Failure::refuse(
                    ParameterNotImplemented,
                    "UTF8 cannot be turned off",
                )),
            };
        }
        if name.eq_ignore_ascii_case("MLST") {
            self.facts = Facts::select(value.unwrap_or(""));
            return Ok(Reply::new(
                CommandOk,
                format!("MLST OPTS {}", self.facts.names()),
            ));
        }
        if name.eq_ignore_ascii_case("HASH") {
            if let Some(value) = value {
                self.hash = HashAlgo::ALL
                    .into_iter()
                    .find(|h| h.name().eq_ignore_ascii_case(value))
                    .ok_or_else(|| Failure::refuse(BadArguments, "Unknown algorithm"))?;
            }
            return Ok(Reply::new(CommandOk, self.hash.name()));
        }
        Err(Failure::refuse(BadArguments, "Option not understood"))
    }

    fn resolve(&self, arg: &str) -> Result<Resolved, Failure> {
        Ok(self.root.resolve(&self.cwd, arg)?)
    }

    /// Resolves the name a new file or directory is to get: one with a control
    /// character is refused (`553`), since listings would send it verbatim.
    fn resolve_new(&self, arg: &str) -> Result<Resolved, Failure> {
        let path = self.resolve(arg)?;
        if !path.virtual_path().leaf().is_none_or(is_fit_for_new_name) {
            return Err(Failure::refuse(
                ReplyCode::NameNotAllowed,
                "File name not allowed: it has a control character",
            ));
        }
        Ok(path)
    }

    /// Resolves `name` and checks that it is a plain file (following a symlink that
    /// stays inside the root).
    fn plain_file(&self, name: &str) -> Result<(Resolved, Metadata), Failure> {
        let path = self.resolve(name)?;
        let meta = path.metadata()?;
        if !meta.is_file() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Not a plain file",
            ));
        }
        Ok((path, meta))
    }

    /// Opens the plain file `name` for reading and takes its read lock: one `openat2`
    /// when no symlink is on the way, else the checked resolution. The file is opened
    /// before the lock is taken: a reader that waits for an upload of the same name
    /// reads the version it asked for, whole (uploads replace a file by renaming a
    /// complete one over it).
    fn open_plain(
        &self,
        name: &str,
    ) -> Result<(VirtualPath, File, Metadata, FileGuard<'s>), Failure> {
        let (path, key, file) = match self.root.open_direct(&self.cwd, name)? {
            Some(opened) => opened,
            None => {
                let path = self.resolve(name)?;
                let file = path.open_read()?;
                (path.virtual_path().clone(), path.lock_key().clone(), file)
            }
        };
        let guard = self.read_lock(&key)?;
        let meta = file.metadata().map_err(Failure::Fs)?;
        if !meta.is_file() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Not a plain file",
            ));
        }
        Ok((path, file, meta, guard))
    }

    fn read_lock(&self, key: &EntryKey) -> Result<FileGuard<'s>, Failure> {
        let wait = self.shared.config.lock_wait;
        self.shared.locks.read(key, wait).ok_or(Failure::Busy)
    }

    fn write_lock(&self, key: &EntryKey) -> Result<FileGuard<'s>, Failure> {
        let wait = self.shared.config.lock_wait;
        self.shared.locks.write(key, wait).ok_or(Failure::Busy)
    }

    fn cwd(&mut self, dir: &str) -> Result<Reply, Failure> {
        let path = self.resolve(dir)?;
        let meta = path.metadata()?;
        if !meta.is_dir() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Not a directory",
            ));
        }
        self.cwd = path.virtual_path().clone();
        Ok(Reply::new(
            ReplyCode::FileActionOk,
            format!("Directory changed to {}", self.cwd),
        ))
    }

    fn pasv(&mut self) -> Result<Reply, Failure> {
        if self.epsv_all {
            return Err(Failure::refuse(
                ReplyCode::BadSequence,
                "Only EPSV after EPSV ALL",
            ));
        }
        let IpAddr::V4(local) = self.local.ip().to_canonical() else {
            return Err(Failure::refuse(
                ReplyCode::CantOpenDataConnection,
                "PASV needs IPv4; use EPSV",
            ));
        };
        let port = self.listen(IpAddr::V4(local))?;
        let [a, b, c, d] = self.shared.config.pasv_address.unwrap_or(local).octets();
        let (p1, p2) = (port >> 8, port & 0xff);
        Ok(Reply::new(
            ReplyCode::PassiveMode,
            format!("Entering Passive Mode ({a},{b},{c},{d},{p1},{p2})."),
        ))
    }

    fn epsv(&mut self, arg: EpsvArg) -> Result<Reply, Failure> {
        let local = self.local.ip().to_canonical();
        let ours = if local.is_ipv4() { 1 } else { 2 };
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                return Ok(Reply::new(ReplyCode::CommandOk, "EPSV ALL ok"));
            }
            EpsvArg::Protocol(p) if p != ours => {
                return Err(Failure::refuse(
                    ReplyCode::ProtocolNotSupported,
                    format!("Network protocol not supported, use ({ours})"),
                ));
            }
            EpsvArg::Protocol(_) | EpsvArg::Any => {}
        }
        let port = self.listen(local)?;
        Ok(Reply::new(
            ReplyCode::ExtendedPassiveMode,
            format!("Entering Extended Passive Mode (|||{port}|)"),
        ))
    }

    /// Sets up a passive listener for the next transfer, the one kept from the last
    /// transfer when it may serve again (emptied of waiting connections), else a new
    /// one; returns its port.
    fn listen(&mut self, ip: IpAddr) -> Result<u16, Failure> {
        // A new PASV replaces the plan of an earlier one.
        let kept = match self.data.take() {
            Some(DataPlan::Passive(p)) => Some(p),
            _ => self.kept_listener.take(),
        };
        let reused = kept
            .filter(|p| p.reusable(ip, self.shared))
            .and_then(|p| p.drain().ok().map(|()| p.restart()));
        self.pasv_expired = false;
        let passive = match reused {
            Some(p) => p,
            None => data::listen(ip, self.shared)
                .map_err(|e| Failure::NoData(format!("Cannot open a passive port: {e}")))?,
        };
        let port = passive.port();
        self.data = Some(DataPlan::Passive(passive));
        Ok(port)
    }

    fn active(&mut self, addr: SocketAddr) -> Result<Reply, Failure> {
        if self.epsv_all {
            return Err(Failure::refuse(
                ReplyCode::BadSequence,
                "Only EPSV after EPSV ALL",
            ));
        }
        // RFC 2577 §3: no connections to third parties or to privileged ports.
        if addr.ip().to_canonical() != self.peer.ip().to_canonical() || addr.port() < 1024 {
            return Err(Failure::refuse(
                ReplyCode::ParameterNotImplemented,
                "Data connections go only to your own address and a port >= 1024",
            ));
        }
        self.data = Some(DataPlan::Active(addr));
        self.pasv_expired = false;
        Ok(Reply::new(
            ReplyCode::CommandOk,
            "Active data connection set up",
        ))
    }

    /// Sends 150 and opens the data connection planned by the last PASV/PORT, in
    /// TLS under PROT P.
    fn open_data(&mut self, plan: Option<DataPlan>, mark: Reply) -> Result<ServerStream, Failure> {
        let expired = std::mem::take(&mut self.pasv_expired);
        let plan = plan.ok_or_else(|| match expired {
            true => Failure::NoData(format!(
                "Passive port closed: no data connection came within {} s; send PASV or EPSV again",
                self.shared.config.data_timeout.as_secs()
            )),
            false => Failure::NoData("Use PASV, EPSV, PORT or EPRT first".into()),
        })?;
        if self.shared.config.require_tls && !self.prot_private {
            return Err(Failure::refuse(
                ReplyCode::ProtectionRequired,
                "Data connections must be protected: send PBSZ 0 and PROT P",
            ));
        }
        self.send(&mark).map_err(Failure::Control)?;
        let (tcp, listener) = data::connect(plan, self.peer.ip(), self.shared)
            .map_err(|e| Failure::NoData(format!("Cannot open data connection: {e}")))?;
        self.keep_listener(listener);
        self.start_data(tcp)
    }

    /// Registers a data connection (so a forced shutdown can cut it) and secures it
    /// under PROT P; a failure unregisters it.
    fn start_data(&self, tcp: TcpStream) -> Result<ServerStream, Failure> {
        self.token.set_data(Some(&tcp));
        let stream = self.secure_data(tcp);
        if stream.is_err() {
            self.token.set_data(None);
        }
        stream
    }

    /// The data connection as the transfer uses it: plain, or in TLS under PROT P,
    /// where it must resume the control connection's TLS session.
    fn secure_data(&self, tcp: TcpStream) -> Result<ServerStream, Failure> {
        let tls = match (&self.session_tls, self.prot_private) {
            (Some(config), true) => Arc::clone(config),
            _ => return Ok(ServerStream::plain(tcp)),
        };
        let timeout = Some(self.shared.config.data_timeout);
        tcp.set_read_timeout(timeout)
            .and_then(|()| tcp.set_write_timeout(timeout))
            .map_err(Failure::Transfer)?;
        let conn = rustls::ServerConnection::new(tls)
            .map_err(|e| Failure::NoData(format!("Cannot start TLS: {e}")))?;
        let stream = ServerStream::tls(tcp, conn).map_err(|e| {
            Failure::NoData(format!("TLS handshake on the data connection failed: {e}"))
        })?;
        // Only the client on this control connection holds this session's tickets.
        let resumed = stream.tls_conn().is_some_and(tls::resumed);
        if !resumed && !self.shared.config.tls_without_resumption {
            log::warn!(
                "{}: data connection did not resume the control TLS session: refused",
                self.peer
            );
            return Err(Failure::refuse(
                ReplyCode::ProtocolNotSupported,
                "The data connection must resume the control connection's TLS session",
            ));
        }
        Ok(stream)
    }

    /// Ends a data connection: in TLS with a close_notify, so the client can tell
    /// the end of the data from a cut. The client's own close_notify is not waited
    /// for here: a client may read the transfer's reply before it closes the data
    /// connection, and each file then waited the data timeout (issue 11). It is
    /// drained after the reply ([`Session::drain_ended_data`]).
    fn close_data(&mut self, stream: ServerStream) -> Result<(), Failure> {
        self.token.set_data(None);
        self.ending_data = stream.end().map_err(Failure::Transfer)?;
        Ok(())
    }

    /// After a transfer's reply: reads what the client still sends on the ended TLS
    /// data connection (its close_notify) until it closes, for at most
    /// [`data::CLOSE_WAIT`], then closes it. Closing with the client's close_notify
    /// unread would reset the connection, and a reset can make the client's kernel
    /// drop data it has not read yet.
    fn drain_ended_data(&mut self) {
        let Some(tcp) = self.ending_data.take() else {
            return;
        };
        if tcp.set_read_timeout(Some(data::CLOSE_WAIT)).is_ok() {
            tls::drain(&tcp, 64);
        }
    }

    /// Looks at the control connection without waiting: an ABOR or a closed
    /// connection is reported, other complete lines are queued for later.
    fn poll_control(&mut self) -> Poll {
        if !self.control_may_have_input() {
            return Poll::Nothing;
        }
        let tcp = self.control.get_ref().tcp();
        if tcp.and_then(|t| t.set_nonblocking(true)).is_err() {
            return Poll::Nothing;
        }
        let mut found = Poll::Nothing;
        loop {
            match read_line(
                &mut self.control,
                &mut self.line,
                &mut self.line_state,
                MAX_LINE,
            ) {
                Ok(Line::Complete) => {
                    if Command::parse(&self.line) == Ok(Command::Abor) {
                        found = Poll::Abort;
                        break;
                    }
                    self.queue(Queued::Line(self.line.clone()));
                }
                Ok(Line::TooLong) => self.queue(Queued::TooLong),
                Ok(Line::Eof) => {
                    found = Poll::Closed;
                    break;
                }
                // Nothing more for now; a partial line is kept.
                Ok(Line::Pending) | Err(_) => break,
            }
        }
        if let Ok(tcp) = self.control.get_ref().tcp() {
            let _ = tcp.set_nonblocking(false);
        }
        found
    }

    /// Keeps a line read during a transfer for later, or only counts it once the
    /// queue is full (and from then on, so that the replies stay in order).
    fn queue(&mut self, line: Queued) {
        if self.overflow == 0 && self.queued.len() < MAX_QUEUED {
            self.queued.push_back(line);
        } else {
            self.overflow += 1;
        }
    }

    /// Whether the control connection may have something to read, found out with one
    /// peek that does not wait (the common answer is no). In TLS, bytes may wait
    /// inside the TLS layer, so the answer there is always maybe.
    fn control_may_have_input(&self) -> bool {
        if !self.control.buffer().is_empty() || self.in_tls() {
            return true;
        }
        let Ok(tcp) = self.control.get_ref().tcp() else {
            return true;
        };
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        !matches!(
            rustix::net::recv(tcp, &mut [0u8; 1][..], flags),
            Err(rustix::io::Errno::AGAIN)
        )
    }

    /// Between chunks of a transfer: stop on ABOR or a vanished client.
    fn check_abort(&mut self) -> Result<(), Failure> {
        match self.poll_control() {
            Poll::Nothing => Ok(()),
            Poll::Abort => {
                self.abort_seen = true;
                Err(Failure::Aborted)
            }
            Poll::Closed if self.shared.stopping() => Ok(()), // our own sweep
            Poll::Closed => Err(Failure::Transfer(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client closed the control connection",
            ))),
        }
    }

    fn retr(&mut self, name: &str) -> Result<Reply, Failure> {
        let mut plan = self.data.take();
        let mut offset = std::mem::take(&mut self.rest);
        let (path, file, meta, _guard) = self.open_plain(name)?;
        if offset > meta.len() {
            return Err(Failure::refuse(
                ReplyCode::InvalidRestart,
                format!(
                    "REST {offset} is past the end of the file ({} bytes)",
                    meta.len()
                ),
            ));
        }
        let shown = &path;
        let what = match offset {
            0 => format!("{shown} ({} bytes)", meta.len()),
            _ => format!("{shown} ({} bytes from {offset})", meta.len() - offset),
        };
        let started = Instant::now();
        let start = offset;
        let mut stream = match self.quick_send(&mut plan, &file, &mut offset, meta.len(), &what)? {
            Quick::Done => {
                self.log_transfer("RETR", shown, offset - start, started);
                return Ok(transfer_complete(offset - start));
            }
            Quick::Started(tcp) => self.start_data(tcp)?,
            Quick::No => self.open_data(plan, mark(&what))?,
        };
        let result = self.send_file(&file, &mut offset, meta.len(), &mut stream);
        if let (Ok(()), Some(tcp)) = (&result, stream.as_plain()) {
            // As on the quick path: the 226 comes after the client's close, or a
            // short wait.
            let _ = data::await_close(tcp, data::CLOSE_WAIT);
        }
        let closed = self.close_data(stream);
        result.and(closed)?;
        self.log_transfer("RETR", shown, offset - start, started);
        Ok(transfer_complete(offset - start))
    }

    /// Sends a small file at once when the client has already made its plain, passive
    /// data connection, as clients do before they send RETR: nothing waits, so there
    /// is no timeout to set, and the connection is not registered for the shutdown
    /// sweep. The `150` still goes out in a write of its own before the data: clients
    /// such as aria2 read the `150`, then wait for the `226` with a fresh read, and a
    /// `226` that came in the same segment was already consumed (issue 11: aria2 waited
    /// 60 s per small file). When the socket's buffer fills first, the rest goes the
    /// ordinary way ([`Quick::Started`]).
    fn quick_send(
        &mut self,
        plan: &mut Option<DataPlan>,
        file: &File,
        offset: &mut u64,
        end: u64,
        what: &str,
    ) -> Result<Quick, Failure> {
        let plain_data = !self.prot_private && !self.shared.config.require_tls;
        if !plain_data || end.saturating_sub(*offset) > QUICK_MAX {
            return Ok(Quick::No);
        }
        let Some(DataPlan::Passive(passive)) = plan.as_mut() else {
            return Ok(Quick::No);
        };
        let tcp = match passive.take_waiting(self.peer.ip(), true) {
            Ok(Some(tcp)) => tcp,
            Ok(None) => return Ok(Quick::No),
            Err(e) => return Err(Failure::NoData(format!("Cannot open data connection: {e}"))),
        };
        if let Some(DataPlan::Passive(passive)) = plan.take() {
            self.keep_listener(Some(passive));
        }
        self.send(&mark(what)).map_err(Failure::Control)?;
        while *offset < end {
            let max = usize::try_from(end - *offset).unwrap_or(usize::MAX);
            match self.pump.file_to_socket(file, offset, &tcp, max) {
                Ok(0) => break, // the file shrank meanwhile
                Ok(_) => {}
                Err(CopyError::Net(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    tcp.set_nonblocking(false).map_err(Failure::Transfer)?;
                    return Ok(Quick::Started(tcp));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Closed before the 226 goes out: the client sees the end of the data first.
        // The connection is gone if this fails; the client saw all there was.
        let _ = data::await_close(&tcp, data::CLOSE_WAIT);
        Ok(Quick::Done)
    }

    /// Sends `file` from `*offset` up to `end` (its size when the transfer began: no
    /// extra call just to find the end of the file).
    fn send_file(
        &mut self,
        file: &File,
        offset: &mut u64,
        end: u64,
        stream: &mut ServerStream,
    ) -> Result<(), Failure> {
        stream
            .tcp()
            .and_then(|tcp| tcp.set_write_timeout(Some(TICK)))
            .map_err(Failure::Transfer)?;
        let mut stall = Stall::new(self.shared.config.data_timeout);
        while *offset < end {
            let max = usize::try_from(end - *offset).map_or(CHUNK, |left| left.min(CHUNK));
            match self.pump.file_to_stream(file, offset, stream, max) {
                Ok(0) => return Ok(()), // the file shrank meanwhile
                Ok(n) => {
                    if !stall.progress(n) {
                        continue;
                    }
                }
                Err(CopyError::Net(e)) if is_timeout(&e) => stall.check()?,
                Err(e) => return Err(e.into()),
            }
            if *offset < end {
                self.check_abort()?;
            }
        }
        Ok(())
    }

    /// STOR, APPE and REST+STOR: the new version is built in a hidden temporary file
    /// beside the target (starting from part of the current file when resuming or
    /// appending) and renamed over the target only when the upload is complete.
    /// Readers see the old version or the new one, never a mix.
    fn store(&mut self, name: &str, how: Store) -> Result<Reply, Failure> {
        let path = self.resolve_new(name)?;
        let shown = path.virtual_path().to_string();
        self.store_at(&path, how, mark(&shown))
    }

    /// STOU (RFC 959; RFC 1123 §4.1.2.9): stores under a name the server picks, free
    /// in the current directory (or beside `base`, when the client suggests one), as
    /// STOR does. The name is reserved at once with an empty file made only if the
    /// name is free (`O_CREAT | O_EXCL`), then the complete upload replaces it; a failed
    /// upload removes it. The `150 FILE: name` reply is the form vsftpd and ProFTPD
    /// send, which clients parse for the name.
    fn stou(&mut self, base: Option<&str>) -> Result<Reply, Failure> {
        const TRIES: u32 = 100;
        let mut reserved = None;
        for n in 0..TRIES {
            let name = match base {
                Some(base) if n == 0 => base.to_owned(),
                Some(base) => format!("{base}.{n}"),
                None => format!("ftp{:08x}", crate::path::random() as u32),
            };
            let path = self.resolve_new(&name)?;
            match path.create_new() {
                Ok(()) => {
                    reserved = Some((name, path));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Failure::Fs(e)),
            }
        }
        let Some((name, path)) = reserved else {
            return Err(Failure::refuse(
                ReplyCode::NameNotAllowed,
                "No unique file name is free",
            ));
        };
        let reply = Reply::new(ReplyCode::FileStatusOk, format!("FILE: {name}"));
        self.store_at(&path, Store::Replace, reply)
            .inspect_err(|_| {
                let _ = path.remove_file();
            })
    }

    /// Receives an upload into `path` (see [`Session::store`]); `mark` is the `150`.
    fn store_at(&mut self, path: &Resolved, how: Store, mark: Reply) -> Result<Reply, Failure> {
        let plan = self.data.take();
        let _guard = self.write_lock(path.lock_key())?;
        // Under the write lock: the size an APPE or REST keeps cannot change now.
        let current = match path.metadata() {
            Ok(meta) if meta.is_dir() => {
                return Err(Failure::refuse(
                    ReplyCode::FileUnavailable,
                    "Is a directory",
                ));
            }
            Ok(meta) => Some(meta.len()),
            Err(PathError::Io(e)) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let keep = match (how, current) {
            (Store::Replace, _) | (Store::Append, None) => 0,
            (Store::Append, Some(len)) => len,
            (Store::At(n), Some(len)) if n <= len => n,
            (Store::At(n), _) => {
                return Err(Failure::refuse(
                    ReplyCode::InvalidRestart,
                    format!("REST {n} is past the end of the file"),
                ))
            }
        };
        // Made in the target's directory handle; dropping `part` on any error removes it.
        let mut part = path.create_part().map_err(Failure::Fs)?;
        if keep > 0 {
            // File to file: std::io::copy uses copy_file_range here.
            let current = path.open_read()?;
            io::copy(&mut current.take(keep), part.file_mut()).map_err(Failure::Fs)?;
        }
        let shown = path.virtual_path();
        let mut stream = self.open_data(plan, mark)?;
        let started = Instant::now();
        let result = self.receive_file(&mut stream, part.file());
        // The upload's fate does not depend on our close_notify reaching the client.
        let _ = self.close_data(stream);
        let n = result?;
        // After the grace period the server shuts our data connection down, and the
        // read sees an end of file: that upload is cut short, not complete.
        if self.shared.forced.load(Ordering::SeqCst) {
            log::warn!(
                "{}: STOR {shown}: cut off by shutdown, upload discarded",
                self.peer
            );
            return Err(Failure::Transfer(io::ErrorKind::ConnectionAborted.into()));
        }
        // A client that went away (or sent ABOR) right as the data ended did not finish
        // its upload: the end of the data connection was not the end of the file.
        // Best effort: it looks without waiting.
        self.check_abort().inspect_err(|_| {
            log::warn!(
                "{}: STOR {shown}: client gone or aborted, upload discarded",
                self.peer
            );
        })?;
        part.persist(path).map_err(Failure::Fs)?;
        let verb = match how {
            Store::Append => "APPE",
            _ => "STOR",
        };
        self.log_transfer(verb, shown, n, started);
        Ok(transfer_complete(n))
    }

    fn receive_file(&mut self, stream: &mut ServerStream, file: &File) -> Result<u64, Failure> {
        stream
            .tcp()
            .and_then(|tcp| tcp.set_read_timeout(Some(TICK)))
            .map_err(Failure::Transfer)?;
        let mut stall = Stall::new(self.shared.config.data_timeout);
        let mut total = 0u64;
        loop {
            match self.pump.stream_to_file(stream, file, CHUNK) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    total += n as u64;
                    if !stall.progress(n) {
                        continue;
                    }
                }
                Err(CopyError::Net(e)) if is_timeout(&e) => stall.check()?,
                Err(e) => return Err(e.into()),
            }
            self.check_abort()?;
        }
    }

    fn list(&mut self, arg: Option<&str>, kind: Listing) -> Result<Reply, Failure> {
        let plan = self.data.take();
        // A restart offset is for the next RETR or STOR only (RFC 3659 §5.3).
        self.rest = 0;
        // Everything that can be refused is found before the 150.
        let target = self.listing_target(arg, kind)?;
        let mut stream = self.open_data(plan, mark("directory listing"))?;
        // In TLS the handshake set the data timeout already.
        let timeout = Some(self.shared.config.data_timeout);
        let result = stream
            .as_plain()
            .map_or(Ok(()), |tcp| tcp.set_write_timeout(timeout))
            .map_err(Failure::Transfer)
            .and_then(|()| self.listing(target, kind, "", &mut Sink::Data(&mut stream)));
        let closed = self.close_data(stream);
        result.and(closed)?;
        Ok(Reply::new(ReplyCode::TransferComplete, "Directory send OK"))
    }

    /// What `arg` asks a listing command to list (see [`Target`]). A path that exists
    /// is taken literally, even when it has wildcard characters; otherwise wildcards
    /// in its last component select entries of the directory before it, except for
    /// MLSD, which takes no patterns (RFC 3659 §7.1). A pattern that matches nothing
    /// is `450` (RFC 959 lists it for LIST and NLST; ProFTPD answers so).
    fn listing_target(&self, arg: Option<&str>, kind: Listing) -> Result<Target, Failure> {
        let given = arg.unwrap_or("");
        let literal = self
            .resolve(if given.is_empty() { "." } else { given })
            .and_then(|path| match path.metadata() {
                Ok(meta) => Ok((path, meta)),
                Err(e) => Err(Failure::Path(e)),
            });
        let (dir_text, last) = match given.rsplit_once('/') {
            Some(("", last)) => ("/", last),
            Some((dir, last)) => (dir, last),
            None => (".", given),
        };
        let (path, meta) = match literal {
            Ok(found) => found,
            Err(e) if kind == Listing::Facts || !has_wildcards(last) => return Err(e),
            Err(e) => {
                let Ok(dir) = self.resolve(dir_text) else {
                    return Err(e);
                };
                let pattern = Pattern::new(last);
                let mut entries = read_entries(&dir, Some(&pattern))?.peekable();
                if entries.peek().is_none() {
                    return Err(Failure::refuse(ReplyCode::FileBusy, "No files found"));
                }
                // NLST names what matched by the path as given (`sub/a.txt` for
                // `sub/*.txt`), so that a client fetching those names fetches these files.
                let prefix = match given.rsplit_once('/') {
                    Some((dir, _)) if kind == Listing::Names => format!("{dir}/"),
                    _ => String::new(),
                };
                return Ok(Target {
                    what: Selection::Entries(Box::new(entries)),
                    prefix,
                });
            }
        };
        if meta.is_dir() {
            // NLST of a directory names its entries `dir/name`, as vsftpd and ProFTPD
            // do (tnftp's `mget sub/a.txt` fetched the root's `a.txt` from a bare name); with
            // no path, or `.`, the names are bare.
            let base = given.trim_end_matches('/');
            let prefix = match base {
                _ if kind != Listing::Names || given.is_empty() || base == "." => String::new(),
                "" => "/".to_owned(),
                base => format!("{base}/"),
            };
            let entries = read_entries(&path, None)?;
            return Ok(Target {
                what: Selection::Entries(Box::new(entries)),
                prefix,
            });
        }
        if kind == Listing::Facts {
            return Err(Failure::refuse(
                ReplyCode::BadArguments,
                "MLSD needs a directory",
            ));
        }
        let name = match kind {
            Listing::Names => given.to_owned(),
            _ => path
                .virtual_path()
                .components()
                .last()
                .unwrap_or("/")
                .to_owned(),
        };
        Ok(Target {
            what: Selection::One(name, meta),
            prefix: String::new(),
        })
    }

    /// Sends the listing of `target` as `kind` asks, each line after `indent`, to
    /// `sink` in chunks of about [`LISTING_CHUNK`] bytes, looking for ABOR between
    /// chunks: the memory it takes does not grow with the directory. A directory of
    /// up to [`SORTED_MAX`] entries is listed sorted by name, a larger one in its own
    /// order (see the listing module). Entries whose name (or the NLST prefix) has a
    /// control character are left out.
    fn listing(
        &mut self,
        target: Target,
        kind: Listing,
        indent: &str,
        sink: &mut Sink<'_>,
    ) -> Result<(), Failure> {
        let (facts, perms, peer, now) = (self.facts, self.perms, self.peer, SystemTime::now());
        let Target { what, prefix } = target;
        let mut chunk = String::with_capacity(LISTING_CHUNK + 1024);
        let add = |chunk: &mut String, name: &str, meta: &Metadata| {
            if !listable(&prefix) || !listable(name) {
                log::debug!(
                    "{peer}: not listed, a control character in {:?}",
                    format!("{prefix}{name}")
                );
                return;
            }
            chunk.push_str(indent);
            entry_line(chunk, kind, &prefix, name, meta, facts, perms, now);
        };
        let mut entries = match what {
            Selection::One(name, meta) => {
                add(&mut chunk, &name, &meta);
                return self.emit(sink, &chunk);
            }
            Selection::Entries(entries) => entries,
        };
        let mut first: Vec<_> = entries.by_ref().take(SORTED_MAX + 1).collect();
        if first.len() <= SORTED_MAX {
            first.sort_by(|a, b| a.0.cmp(&b.0));
        }
        for (name, meta) in first.into_iter().chain(entries) {
            add(&mut chunk, &name, &meta);
            if chunk.len() >= LISTING_CHUNK {
                self.emit(sink, &chunk)?;
                chunk.clear();
                // Not inside a STAT reply: nothing may come between its lines.
                if matches!(sink, Sink::Data(_)) {
                    self.check_abort()?;
                }
            }
        }
        if chunk.is_empty() {
            Ok(())
        } else {
            self.emit(sink, &chunk)
        }
    }

    /// Sends one chunk of a listing.
    fn emit(&mut self, sink: &mut Sink<'_>, chunk: &str) -> Result<(), Failure> {
        match sink {
            Sink::Data(stream) => stream
                .write_all(chunk.as_bytes())
                .map_err(Failure::Transfer),
            Sink::Control => self.write_control(chunk).map_err(Failure::Control),
        }
    }

    fn mlst(&self, arg: Option<&str>) -> Result<Reply, Failure> {
        let path = self.resolve(arg.unwrap_or("."))?;
        let meta = path.metadata()?;
        let shown = path.virtual_path().as_str();
        if !listable(shown) {
            log::debug!(
                "{}: MLST of {shown:?} refused: a control character",
                self.peer
            );
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Name not shown: it has a control character",
            ));
        }
        let facts = self.facts.line(shown, &meta, self.perms);
        Ok(Reply::multi(
            ReplyCode::FileActionOk,
            &format!("Listing {shown}"),
            &[facts],
            "End",
        ))
    }

    fn stat(&mut self, arg: Option<&str>) -> Result<Reply, Failure> {
        let Some(arg) = arg else {
            let user = match &self.login {
                Login::In(name) => name.as_str(),
                _ => "nobody",
            };
            let data = match &self.data {
                Some(DataPlan::Passive(_)) => "Passive data connection ready",
                Some(DataPlan::Active(_)) => "Active data connection set up",
                None => "No data connection",
            };
            let lines = [
                format!("Connected from {}", self.peer.ip()),
                format!("Logged in as {user}"),
                format!("TYPE: {}", type_name(self.transfer_type)),
                data.to_owned(),
            ];
            return Ok(Reply::multi(
                ReplyCode::SystemStatus,
                "simple-ftp status:",
                &lines,
                "End of status",
            ));
        };
        let target = self.listing_target(Some(arg), Listing::Long)?;
        let shown: String = self
            .cwd
            .join(arg)?
            .as_str()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        // The lines go out as they are made, between the first line of the reply and
        // its last (returned as usual), so a large directory is not held whole.
        let code = ReplyCode::FileStatus.number();
        self.write_control(&format!("{code}-Status of {shown}:\r\n"))
            .map_err(Failure::Control)?;
        self.listing(target, Listing::Long, " ", &mut Sink::Control)?;
        Ok(Reply::new(ReplyCode::FileStatus, "End of status"))
    }

    /// HASH: the file's digest. Hashing costs CPU in proportion to the file (seconds
    /// for gigabytes), so it takes one of a few slots (about one per core; a HASH that
    /// finds none free within the lock wait gets `450`) and looks at the control
    /// connection after every [`CHUNK`], so ABOR stops it as it stops a transfer.
    fn hash(&mut self, name: &str) -> Result<Reply, Failure> {
        let Some(_slot) = self.shared.hash_slots.take(self.shared.config.lock_wait) else {
            return Err(Failure::refuse(
                ReplyCode::FileBusy,
                "Too many checksums being computed, try again later",
            ));
        };
        let (_, file, _, _guard) = self.open_plain(name)?;
        let (len, digest) = match self.hash {
            HashAlgo::Sha256 => self.digest::<sha2::Sha256>(&file)?,
            HashAlgo::Sha512 => self.digest::<sha2::Sha512>(&file)?,
        };
        Ok(Reply::new(
            ReplyCode::FileStatus,
            format!("{} 0-{len} {digest} {name}", self.hash.name()),
        ))
    }

    /// The digest `D` of `file`, read to its end, with a look for ABOR between chunks.
    fn digest<D: sha2::Digest>(&mut self, file: &File) -> Result<(u64, String), Failure> {
        digest_between::<D, Failure>(file, CHUNK as u64, Failure::Fs, || {
            if self.shared.forced.load(Ordering::SeqCst) {
                return Err(Failure::Transfer(io::ErrorKind::ConnectionAborted.into()));
            }
            self.check_abort()
        })
    }

    fn dele(&self, name: &str) -> Result<Reply, Failure> {
        let path = self.resolve(name)?;
        let meta = path.symlink_metadata().map_err(Failure::Fs)?;
        if meta.is_dir() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Is a directory; use RMD",
            ));
        }
        let _guard = self.write_lock(path.lock_key())?;
        path.remove_file().map_err(Failure::Fs)?;
        log::info!("{}: DELE {}", self.peer, path.virtual_path());
        Ok(Reply::new(ReplyCode::FileActionOk, "File deleted"))
    }

    fn mkd(&self, name: &str) -> Result<Reply, Failure> {
        let path = self.resolve_new(name)?;
        path.create_dir().map_err(Failure::Fs)?;
        log::info!("{}: MKD {}", self.peer, path.virtual_path());
        Ok(Reply::new(
            ReplyCode::PathName,
            format!("{} created", quote(path.virtual_path().as_str())),
        ))
    }

    fn rmd(&self, name: &str) -> Result<Reply, Failure> {
        let path = self.resolve(name)?;
        if path.virtual_path().is_root() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Cannot remove the root",
            ));
        }
        let meta = path.symlink_metadata().map_err(Failure::Fs)?;
        if !meta.is_dir() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Not a directory",
            ));
        }
        path.remove_dir().map_err(Failure::Fs)?;
        log::info!("{}: RMD {}", self.peer, path.virtual_path());
        Ok(Reply::new(ReplyCode::FileActionOk, "Directory removed"))
    }

    fn rnto(&self, from: Resolved, name: &str) -> Result<Reply, Failure> {
        let to = self.resolve_new(name)?;
        if from.virtual_path().is_root() || to.virtual_path().is_root() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Cannot rename the root",
            ));
        }
        // Both names are locked, in a fixed order so two renames never deadlock.
        let (first, second) = if from.lock_key() <= to.lock_key() {
            (from.lock_key(), to.lock_key())
        } else {
            (to.lock_key(), from.lock_key())
        };
        let _a = self.write_lock(first)?;
        let _b = (first != second)
            .then(|| self.write_lock(second))
            .transpose()?;
        from.rename_to(&to).map_err(Failure::Fs)?;
        log::info!(
            "{}: rename {} to {}",
            self.peer,
            from.virtual_path(),
            to.virtual_path()
        );
        Ok(Reply::new(ReplyCode::FileActionOk, "Rename successful"))
    }

    fn log_transfer(&self, verb: &str, path: &VirtualPath, bytes: u64, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        log::info!("{}: {verb} {path} {bytes} bytes in {secs:.3} s", self.peer);
    }
}

/// What a listing command lists, found before its first reply.
struct Target {
    what: Selection,
    /// What NLST puts before each name of a directory listed by a path (`sub/`);
    /// empty for bare names.
    prefix: String,
}

enum Selection {
    /// The entries of a directory (all, or those a pattern matched), opened before
    /// the first reply so that a directory that cannot be read is refused before it.
    Entries(Box<dyn Iterator<Item = (String, Metadata)>>),
    /// One entry that is not a directory, under the name to show.
    One(String, Metadata),
}

/// Where a listing goes: the data connection, or the control connection (STAT).
enum Sink<'a> {
    Data(&'a mut ServerStream),
    Control,
}

/// The entries of `dir`, in the directory's own order, as they are read: without our
/// temporary files, without names `wanted` does not match, and without symlinks that
/// lead outside the root (or nowhere); a symlink shows what it points to. Entries
/// that cannot be read are left out. This is the one place a listing reads a
/// directory.
///
/// # Errors
/// When the directory cannot be opened.
fn read_entries(
    dir: &Resolved,
    wanted: Option<&Pattern>,
) -> Result<impl Iterator<Item = (String, Metadata)>, PathError> {
    let dir = dir.open_dir()?;
    let names = dir.names()?;
    let wanted = wanted.cloned();
    Ok(names.filter_map(move |entry| {
        let entry = entry.ok()?;
        let name = entry.to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) || wanted.as_ref().is_some_and(|p| !p.matches(&name)) {
            return None;
        }
        // A symlink shows what it points to, when that stays inside the root.
        let meta = dir.metadata_of(&entry).ok()?;
        Some((name, meta))
    }))
}

/// How [`Session::quick_send`] went.
enum Quick {
    /// The whole file went out and the data connection is closed.
    Done,
    /// Part went out (or none); the rest goes through the ordinary transfer loop on
    /// this connection, blocking again.
    Started(TcpStream),
    /// Not for this transfer: the ordinary way from the start.
    No,
}

/// Files up to this size are sent at once when the data connection is already there.
const QUICK_MAX: u64 = 64 << 10;

/// The `150` that starts a transfer; `what` names the file (and its size).
fn mark(what: &str) -> Reply {
    Reply::new(
        ReplyCode::FileStatusOk,
        format!("Opening data connection for {what}"),
    )
}

fn transfer_complete(bytes: u64) -> Reply {
    Reply::new(
        ReplyCode::TransferComplete,
        format!("Transfer complete, {bytes} bytes"),
    )
}

fn type_name(t: TransferType) -> &'static str {
    match t {
        TransferType::Ascii => "A",
        TransferType::Image => "I",
    }
}

/// A path in double quotes, with quotes inside doubled (RFC 959 Appendix II).
fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

fn help() -> Reply {
    let lines = [
        "ABOR ALLO APPE AUTH CCC  CDUP CWD  DELE EPRT EPSV FEAT HASH HELP LIST",
        "MDTM MKD  MLSD MLST MODE NLST NOOP OPTS PASS PASV PBSZ PORT PROT PWD",
        "QUIT REIN REST RETR RMD  RNFR RNTO SITE SIZE STAT STOR STOU STRU SYST",
        "TYPE USER XCUP XCWD XMKD XPWD XRMD",
    ];
    let middle: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    Reply::multi(
        ReplyCode::HelpMessage,
        "The following commands are recognized.",
        &middle,
        "Help OK",
    )
}
