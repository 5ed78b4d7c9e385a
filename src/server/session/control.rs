//! The control connection: the line being read, its deadlines, the lines a client
//! sends during a transfer, ABOR, and the one place replies go out.
//!
//! Reading a command waits at most a short linger ([`Control::next_line`]): a session
//! with nothing to read is parked, so one read per wait and deadlines that count from
//! complete lines (not bytes) keep a trickling peer from holding a worker or stretching
//! its time. During a transfer the connection is only looked at between chunks,
//! without waiting ([`Control::check_abort`]): an ABOR stops the transfer, any other
//! command waits its turn in a bounded queue.

use std::collections::VecDeque;
use std::io::{self, BufReader, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::failure::Failure;
use super::End;
use crate::protocol::{
    read_line, read_line_within, Command, Line, LineState, Reply, ReplyCode, MAX_LINE,
};
use crate::server::metrics::Replies;
use crate::server::Config;
use crate::tls::{self, ServerStream};
use crate::transfer::is_timeout;

/// Commands a client may send ahead during a transfer; the ones past it are not
/// kept, only counted, and each gets a `500` after the queued ones are answered.
const MAX_QUEUED: usize = 32;

/// How long one command line may take to arrive, from its first byte to its end.
const LINE_TIME: Duration = Duration::from_secs(30);

/// The longest one read waits while a worker lingers for a session's next command:
/// between two, the worker looks whether other work waits for it.
const LINGER_STEP: Duration = Duration::from_millis(10);

/// Over-long command lines in a row after which the connection is closed.
const MAX_LONG_LINES: u32 = 3;

/// The control connection's read buffer: command lines are short, and longer ones
/// (up to `MAX_LINE`) are read in pieces, so a small buffer keeps idle sessions cheap.
const CONTROL_BUFFER: usize = 1024;

/// What waiting for the next command line found.
pub(super) enum Next {
    /// A complete line is in [`Control::line`].
    Line,
    /// A line passed the bound (the rest of it is dropped as it comes).
    TooLong,
    /// Nothing within the wait: park the session.
    Quiet,
    /// The session is over (the `421`, if any, went out).
    End(End),
}

/// A line that came before the one now being read, to answer first.
pub(super) enum Earlier {
    /// A line read during a transfer.
    Line(Vec<u8>),
    /// A line read during a transfer that passed the bound.
    TooLong,
    /// A line past the queue's bound: it gets a `500`.
    Dropped,
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

/// The control connection of a session and what reading it keeps.
pub(super) struct Control {
    /// Plain, or TLS after AUTH TLS.
    stream: BufReader<ServerStream>,
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
    /// When the connection was accepted: the login deadline counts from here.
    connected: Instant,
    /// When the last complete command line arrived: the idle deadline counts from
    /// here, so bytes that never make a line stretch nothing.
    last_command: Instant,
    /// When the line now being read began (its first bytes arrived).
    line_started: Option<Instant>,
    /// Over-long command lines in a row.
    long_lines: u32,
    /// The read timeout set on the socket now (set only when it changes).
    timeout: Duration,
    /// When the TLS handshake under way (after AUTH TLS) must be over.
    handshake_until: Option<Instant>,
    /// Counts the replies sent, for the metrics.
    replies: Replies,
}

impl Control {
    /// The control connection on `stream`, whose read timeout is `timeout`; `replies`
    /// counts what it sends.
    pub(super) fn new(stream: TcpStream, timeout: Duration, replies: Replies) -> Control {
        let now = Instant::now();
        Control {
            stream: BufReader::with_capacity(CONTROL_BUFFER, ServerStream::plain(stream)),
            line: Vec::with_capacity(256),
            line_state: LineState::default(),
            queued: VecDeque::new(),
            overflow: 0,
            abort_seen: false,
            connected: now,
            last_command: now,
            line_started: None,
            long_lines: 0,
            timeout,
            handshake_until: None,
            replies,
        }
    }

    /// The complete line [`Control::next_line`] read.
    pub(super) fn line(&self) -> &[u8] {
        &self.line
    }

    /// When the connection was accepted.
    pub(super) fn connected(&self) -> Instant {
        self.connected
    }

    /// Sends one reply.
    pub(super) fn send(&mut self, reply: &Reply) -> io::Result<()> {
        self.write(&reply.to_wire())
    }

    /// Writes whole CRLF-ended reply lines: the one place replies go out.
    pub(super) fn write(&mut self, text: &str) -> io::Result<()> {
        let control = self.stream.get_mut();
        control.write_all(text.as_bytes())?;
        self.replies.count(text);
        control.flush()
    }

    /// Says `421` with `text` (the session ends after it); a failure to say it changes
    /// nothing.
    pub(super) fn say_closing(&mut self, text: &str) {
        // Nothing can be said inside a TLS handshake.
        if self.handshake_until.is_none() {
            let _ = self.send(&Reply::new(ReplyCode::ServiceNotAvailable, text));
        }
    }

    /// The next line that came before any new one: lines queued during a transfer,
    /// then one [`Earlier::Dropped`] per line past the queue's bound.
    pub(super) fn earlier(&mut self) -> Option<Earlier> {
        match self.queued.pop_front() {
            Some(Queued::Line(line)) => Some(Earlier::Line(line)),
            Some(Queued::TooLong) => Some(Earlier::TooLong),
            None if self.overflow > 0 => {
                self.overflow -= 1;
                Some(Earlier::Dropped)
            }
            None => None,
        }
    }

    /// Whether an ABOR stopped the last transfer (and so gets its own `226` after the
    /// transfer's `426`); asking clears it.
    pub(super) fn take_abort(&mut self) -> bool {
        std::mem::take(&mut self.abort_seen)
    }

    /// Counts the idle time from now: a transfer just ended.
    pub(super) fn touch(&mut self) {
        self.last_command = Instant::now();
    }

    /// Whether so many over-long lines came in a row that the connection is to close.
    pub(super) fn too_many_long_lines(&self) -> bool {
        self.long_lines >= MAX_LONG_LINES
    }

    /// The deadlines that end the session, each with why and what the client is told:
    /// the login timeout from the connection until a login, the time a line may take
    /// from its first byte, and the idle timeout from the last command.
    pub(super) fn ending_deadlines(
        &self,
        logged_in: bool,
        config: &Config,
    ) -> impl Iterator<Item = (Instant, End, &'static str)> {
        let login = (!logged_in).then(|| {
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
        let handshake = self
            .handshake_until
            .map(|at| (at, End::Handshake, "TLS handshake not finished in time"));
        login.into_iter().chain(line).chain([idle]).chain(handshake)
    }

    /// Reads the next command line, waiting at most until `until` for it (and never
    /// past a deadline that ends the session), in reads of at most [`LINGER_STEP`]:
    /// [`Next::Quiet`] when none came, or as soon as `give_way` says other work waits
    /// for the worker. A peer that sends a line a byte at a time keeps no worker past
    /// `until`, and its bytes stretch no deadline. `stopping` says whether the server
    /// shuts down (then the session says `421` and ends).
    pub(super) fn next_line(
        &mut self,
        until: Instant,
        logged_in: bool,
        config: &Config,
        stopping: impl Fn() -> bool,
        give_way: impl Fn() -> bool,
    ) -> Next {
        // A worker that others wait for does not linger: one read, and the session is
        // parked when no command is there. At least that one read, even with no time to
        // wait: a session handed back because its connection is readable must read it,
        // or it would only be parked again, and again.
        let until = if give_way() { Instant::now() } else { until };
        let mut looked = false;
        loop {
            if stopping() {
                self.say_closing("Server shutting down");
                return Next::End(End::Shutdown);
            }
            let now = Instant::now();
            let ending = self.ending_deadlines(logged_in, config);
            let mut first_end = None;
            for (at, end, text) in ending {
                if now >= at {
                    self.say_closing(text);
                    return Next::End(end);
                }
                first_end = Some(first_end.map_or(at, |t: Instant| t.min(at)));
            }
            let wait = first_end
                .map_or(until, |at| until.min(at))
                .saturating_duration_since(now);
            let buffered = !self.stream.buffer().is_empty() || self.holds_plaintext();
            if wait.is_zero() && !buffered && looked {
                return Next::Quiet;
            }
            looked = true;
            self.set_read_timeout(wait.clamp(Duration::from_millis(1), LINGER_STEP));
            let read = read_line_within(
                &mut self.stream,
                &mut self.line,
                &mut self.line_state,
                MAX_LINE,
                1,
            );
            if self.line_state.in_line() {
                self.line_started.get_or_insert(now);
            }
            if stopping() {
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
                    // Lingering goes on a step at a time while no other work waits.
                    let lingering = Instant::now() < until && !give_way();
                    if !lingering && !self.holds_plaintext() {
                        return Next::Quiet;
                    }
                }
                Err(_) => return Next::End(End::Lost),
            }
        }
    }

    /// Between chunks of a transfer: stop on ABOR or a vanished client.
    pub(super) fn check_abort(&mut self) -> Result<(), Failure> {
        match self.poll() {
            Poll::Nothing => Ok(()),
            Poll::Abort => {
                self.abort_seen = true;
                Err(Failure::Aborted)
            }
            Poll::Closed => Err(Failure::Transfer(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client closed the control connection",
            ))),
        }
    }

    /// Looks at the connection without waiting: an ABOR or a closed connection is
    /// reported, other complete lines are queued for later.
    fn poll(&mut self) -> Poll {
        if !self.may_have_input() {
            return Poll::Nothing;
        }
        let tcp = self.stream.get_ref().tcp();
        if tcp.and_then(|t| t.set_nonblocking(true)).is_err() {
            return Poll::Nothing;
        }
        let mut found = Poll::Nothing;
        loop {
            match read_line(
                &mut self.stream,
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
        if let Ok(tcp) = self.stream.get_ref().tcp() {
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

    /// Whether the connection may have something to read, found out with one peek
    /// that does not wait (the common answer is no). In TLS, bytes may wait inside
    /// the TLS layer, so the answer there is always maybe.
    fn may_have_input(&self) -> bool {
        if !self.stream.buffer().is_empty() || self.in_tls() {
            return true;
        }
        let Ok(tcp) = self.stream.get_ref().tcp() else {
            return true;
        };
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        !matches!(
            rustix::net::recv(tcp, &mut [0u8; 1][..], flags),
            Err(rustix::io::Errno::AGAIN)
        )
    }

    /// Sets the socket's read timeout, rounded up to whole milliseconds (at least
    /// one), with no system call when it is the one already set: waits for a command
    /// set it before nearly every read.
    pub(super) fn set_read_timeout(&mut self, timeout: Duration) {
        let millis = timeout.as_nanos().div_ceil(1_000_000).max(1);
        let timeout = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        if timeout == self.timeout {
            return;
        }
        if let Ok(tcp) = self.stream.get_ref().tcp() {
            if tcp.set_read_timeout(Some(timeout)).is_ok() {
                self.timeout = timeout;
            }
        }
    }

    /// Whether the connection is in TLS.
    pub(super) fn in_tls(&self) -> bool {
        self.stream.get_ref().is_tls()
    }

    /// Whether bytes were read past the line just handled (AUTH TLS refuses them:
    /// they were sent in the clear before the handshake).
    pub(super) fn has_read_ahead(&self) -> bool {
        !self.stream.buffer().is_empty()
    }

    /// Whether plaintext waits inside the TLS layer: such a session is never parked,
    /// since nothing would arrive on the socket to wake it.
    pub(super) fn holds_plaintext(&mut self) -> bool {
        self.stream.get_mut().holds_plaintext()
    }

    /// Makes the connection TLS with `conn` (AUTH TLS); the handshake is moved on by
    /// [`Control::handshake`] and must be over by `until`.
    pub(super) fn begin_tls(
        &mut self,
        conn: rustls::ServerConnection,
        until: Instant,
    ) -> io::Result<()> {
        self.stream.get_mut().begin_upgrade(conn)?;
        // A session waiting for its next command must not be held by a peer that
        // sends a record a byte at a time.
        self.stream.get_mut().set_single_reads(true);
        self.handshake_until = Some(until);
        Ok(())
    }

    /// When the TLS handshake under way must be over, if one is.
    pub(super) fn handshake_until(&self) -> Option<Instant> {
        self.handshake_until
    }

    /// Moves the TLS handshake on, a read of at most `wait`; returns whether it is
    /// over.
    ///
    /// # Errors
    /// When it failed: the connection is unusable.
    pub(super) fn handshake(&mut self, wait: Duration) -> io::Result<bool> {
        self.set_read_timeout(wait);
        let done = self.stream.get_mut().handshake_step()?;
        if done {
            self.handshake_until = None;
        }
        Ok(done)
    }

    /// The socket, which the parker watches.
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.stream.get_ref().tcp().ok().map(AsFd::as_fd)
    }

    /// At the session's end, in TLS: close_notify after the last reply (`221` or
    /// `421`) or in answer to the client's (RFC 8446 §6.1), then a short wait for what
    /// the client still sends, so that closing does not reset the connection.
    pub(super) fn end(self, wait: Duration) {
        if !self.in_tls() {
            return;
        }
        let stream = self.stream.into_inner();
        if let Ok(tcp) = stream.tcp() {
            let _ = tcp.set_write_timeout(Some(wait));
            let _ = tcp.set_read_timeout(Some(wait));
        }
        if let Ok(Some(tcp)) = stream.end() {
            tls::drain(&tcp, 4);
        }
    }
}
