//! What a session tells the outside about itself: the metrics of its logins and
//! transfers ([`crate::server::metrics`]), the transfer log
//! ([`crate::server::xferlog`]), its log lines, and the log context its worker
//! serves it in ([`crate::server::logging`]). The other rooms call these small
//! methods; none of them knows how the numbers are kept or written.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::failure::Failure;
use super::login::Login;
use super::{End, Session};
use crate::path::VirtualPath;
use crate::protocol::TransferType;
use crate::server::logging::{self, Entered};
use crate::server::metrics::{Direction, Held, TlsChannel, TransferResult};
use crate::server::xferlog::{Entry, Who};

/// What the session keeps for its observers.
#[derive(Default)]
pub(super) struct Observed {
    /// Its place in the logged-in gauge, while it is logged in.
    logged_in: Option<Held>,
    /// The ID (password) an anonymous login gave, for the transfer log.
    anonymous_id: Option<String>,
}

impl End {
    /// Its label in `ftp_sessions_ended_total` (one of `metrics::END_REASONS`).
    fn label(self) -> &'static str {
        match self {
            End::Quit => "quit",
            End::ClientClosed => "client_closed",
            End::Idle => "idle_timeout",
            End::LoginTimeout => "login_timeout",
            End::SlowLine => "slow_line",
            End::LongLines => "long_lines",
            End::Shutdown => "shutdown",
            End::Lost => "lost",
            End::LoginFailures => "login_failures",
            End::Handshake => "tls_handshake",
        }
    }
}

/// The direction of a file transfer's command; `None` for listings.
fn direction(verb: &str) -> Option<Direction> {
    match verb {
        "RETR" => Some(Direction::Download),
        "STOR" | "APPE" | "STOU" => Some(Direction::Upload),
        _ => None,
    }
}

impl Session<'_> {
    /// The log context for serving this session on the current thread.
    pub(super) fn log_context(&self) -> Entered {
        logging::enter(self.peer, self.user_name())
    }

    /// The user the session is logged in as.
    fn user_name(&self) -> Option<&str> {
        match &self.login {
            Login::In(name) => Some(name),
            _ => None,
        }
    }

    /// PASS let `name` in (`password` is an anonymous login's ID): counted, and
    /// logged.
    pub(super) fn note_login(&mut self, name: &str, anonymous: bool, password: &str) {
        let metrics = &self.shared.metrics;
        metrics.login(anonymous, true);
        self.observed
            .logged_in
            .get_or_insert_with(|| metrics.logged_in());
        self.observed.anonymous_id = anonymous.then(|| password.to_owned());
        logging::set_user(Some(name));
        log::info!(
            event = "login", result = "success", user = name;
            "{}: logged in as {name}",
            self.peer
        );
    }

    /// PASS did not let `name` in: counted, and logged.
    pub(super) fn note_failed_login(&self, name: &str, anonymous: bool) {
        self.shared.metrics.login(anonymous, false);
        log::warn!(
            event = "login", result = "failure", name = name;
            "{}: failed login as {name:?}",
            self.peer
        );
    }

    /// Counts a TLS handshake on `channel`.
    pub(super) fn note_tls_handshake(&self, channel: TlsChannel, success: bool) {
        self.shared.metrics.tls_handshake(channel, success);
    }

    /// After a command: a session that is no longer logged in (REIN, AUTH TLS) leaves
    /// the logged-in gauge and its log context loses the user.
    pub(super) fn note_login_state(&mut self) {
        if self.user_name().is_none() && self.observed.logged_in.take().is_some() {
            self.observed.anonymous_id = None;
            logging::set_user(None);
        }
    }

    /// Counts a command line.
    pub(super) fn note_command(&self, line: &[u8]) {
        self.shared.metrics.command(line);
    }

    /// The session's end, counted and logged.
    pub(super) fn note_end(&self, end: End) {
        self.shared.metrics.session_ended(end.label());
        let secs = self.control.connected().elapsed().as_secs_f64();
        log::info!(
            event = "session_end", reason = end.label(), seconds = secs;
            "{}: session end ({end}) after {secs:.1} s",
            self.peer
        );
    }

    /// A transfer of `bytes` from or to `path` that `verb` began at `started` is
    /// complete: logged, counted, and written to the transfer log.
    pub(super) fn log_transfer(
        &self,
        verb: &str,
        path: &VirtualPath,
        bytes: u64,
        started: Instant,
    ) {
        let secs = started.elapsed().as_secs_f64();
        log::info!(
            event = "transfer", command = verb, path = path.as_str(), bytes = bytes,
            seconds = secs, result = "complete";
            "{}: {verb} {path} {bytes} bytes in {secs:.3} s",
            self.peer
        );
        self.transfer_ended(verb, path, bytes, started, TransferResult::Complete);
    }

    /// A transfer that `verb` began at `started` failed (`failure`) after `bytes`
    /// moved: logged, counted, and written to the transfer log as incomplete.
    pub(super) fn transfer_failed(
        &self,
        verb: &str,
        path: &VirtualPath,
        bytes: u64,
        started: Instant,
        failure: &Failure,
    ) {
        if direction(verb).is_none() {
            return;
        }
        let result = match failure {
            Failure::Aborted => TransferResult::Aborted,
            _ => TransferResult::Failed,
        };
        let (label, word) = match result {
            TransferResult::Aborted => ("aborted", "aborted"),
            _ => ("failed", "failed"),
        };
        let secs = started.elapsed().as_secs_f64();
        log::info!(
            event = "transfer", command = verb, path = path.as_str(), bytes = bytes,
            seconds = secs, result = label;
            "{}: {verb} {path} {word} after {bytes} bytes in {secs:.3} s",
            self.peer
        );
        self.transfer_ended(verb, path, bytes, started, result);
    }

    fn transfer_ended(
        &self,
        verb: &str,
        path: &VirtualPath,
        bytes: u64,
        started: Instant,
        result: TransferResult,
    ) {
        let Some(direction) = direction(verb) else {
            return;
        };
        let took = started.elapsed();
        let shared = self.shared;
        shared.metrics.transfer(direction, result, bytes, took);
        let Some(xferlog) = &shared.xferlog else {
            return;
        };
        let who = match (&self.login, &self.observed.anonymous_id) {
            (_, Some(id)) => Who::Anonymous(id),
            (Login::In(name), None) => Who::Account(name),
            _ => Who::Account(""),
        };
        let entry = Entry {
            ended: SystemTime::now(),
            took,
            remote: peer_ip(self.peer),
            bytes,
            path: path.as_str(),
            ascii: self.transfer_type == TransferType::Ascii,
            direction,
            who,
            complete: result == TransferResult::Complete,
        };
        xferlog.record(&entry, &shared.metrics);
    }
}

fn peer_ip(peer: SocketAddr) -> std::net::IpAddr {
    peer.ip().to_canonical()
}
