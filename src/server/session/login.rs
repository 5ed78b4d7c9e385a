//! Who the session is: USER and PASS, AUTH TLS, and REIN.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use super::failure::{Failure, Refusal};
use super::{End, Session};
use crate::path::VirtualPath;
use crate::protocol::{Reply, ReplyCode, TransferType};
use crate::server::accounts::Perms;
use crate::storage::{Backend, StorageError};
use crate::tls;

use super::commands::HashAlgo;
use super::listings::Facts;

/// How far the login has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Login {
    None,
    /// USER was given; `anonymous` says whether PASS will let them in.
    User {
        name: String,
        anonymous: bool,
    },
    In(String),
}

impl Session<'_> {
    /// USER: the name PASS will check.
    pub(super) fn user(&mut self, name: String) -> Result<Reply, Failure> {
        if self.shared.config.require_tls && !self.control.in_tls() {
            return Err(Refusal::TlsFirst.into());
        }
        let anonymous = ["anonymous", "ftp"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&name));
        self.login = Login::User { name, anonymous };
        Ok(Reply::new(
            ReplyCode::NeedPassword,
            "Please specify the password",
        ))
    }

    /// PASS: checks the password of the name USER gave (anonymous logins take any).
    pub(super) fn pass(&mut self, password: &str) -> Result<Reply, Failure> {
        let (name, anonymous) = match std::mem::replace(&mut self.login, Login::None) {
            Login::User { name, anonymous } => (name, anonymous),
            Login::None => return Err(Refusal::PassBeforeUser.into()),
            Login::In(name) => {
                self.login = Login::In(name);
                return Ok(Reply::new(ReplyCode::LoggedIn, "Already logged in"));
            }
        };
        // The accounts in force now; a reload after this login does not change what it
        // granted.
        let config = self.shared.live();
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
            self.note_failed_login(&name, anonymous);
            std::thread::sleep(config.failed_login_delay);
            if self.failures >= config.max_login_failures {
                self.close_after_reply = true;
            }
            return Err(Refusal::LoginIncorrect.into());
        };
        self.storage = self.home_root(&home).map_err(|e| {
            log::error!("{}: home {home} of {name:?} is unusable: {e}", self.peer);
            self.shared.metrics.login(anonymous, false);
            Failure::from(Refusal::HomeUnavailable)
        })?;
        self.perms = perms;
        self.cwd = VirtualPath::root();
        self.failures = 0;
        self.note_login(&name, anonymous, password);
        self.login = Login::In(name);
        Ok(Reply::new(ReplyCode::LoggedIn, "Login successful"))
    }

    /// The root of a session whose user lives in `home` (inside the server root, made
    /// there if missing).
    fn home_root(&self, home: &VirtualPath) -> Result<Arc<dyn Backend>, StorageError> {
        let server = &self.shared.storage;
        if home.is_root() {
            return Ok(Arc::clone(server));
        }
        server.below(home)
    }

    /// AUTH TLS (RFC 4217 §4): `234`, then the handshake on the control connection
    /// begins (the serve loop moves it on). `Ok(None)` when it began; `Ok(Some(reply))`
    /// to refuse; `Err` when the session must end.
    pub(super) fn auth(&mut self, mechanism: &str) -> Result<Option<Reply>, End> {
        // The certificate in force now; the session keeps the copies made from it
        // below for its control and data connections, whatever a reload brings later.
        let live = self.shared.live();
        let Some(base) = &live.tls else {
            return Ok(Some(Refusal::TlsUnconfigured.reply()));
        };
        if !["TLS", "TLS-C", "SSL"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mechanism))
        {
            return Ok(Some(Refusal::AuthMechanism(mechanism.to_owned()).reply()));
        }
        if self.control.in_tls() {
            return Ok(Some(Refusal::AlreadyInTls.reply()));
        }
        let (config, data_config) = match tls::per_session(base) {
            Ok(configs) => configs,
            Err(e) => {
                log::error!("{}: cannot set up TLS: {e}", self.peer);
                return Ok(Some(Refusal::TlsUnavailable.reply()));
            }
        };
        let reply = Reply::new(
            ReplyCode::SecurityExchange,
            "AUTH TLS successful; start the handshake",
        );
        if self.control.send(&reply).is_err() {
            return Err(End::Lost);
        }
        // Anything already read past AUTH TLS was sent in the clear before the
        // handshake; treating it as commands after it would let an attacker inject
        // them (the STARTTLS injection flaw). Such a client is not to be trusted.
        if self.control.has_read_ahead() {
            log::warn!(
                "{}: commands sent before the TLS handshake: closing",
                self.peer
            );
            return Err(End::Lost);
        }
        self.begin_tls(config)?;
        // A login made in the clear does not carry over (RFC 4217 §4).
        self.login = Login::None;
        self.data.start_tls(data_config);
        Ok(None)
    }

    /// A session on the implicit FTPS port: TLS from the first byte, its data
    /// connections protected unless the client asks for PROT C (RFC 4217 leaves
    /// implicit FTPS out; this is what clients of `ftps://` expect). The greeting goes
    /// out once the handshake is over.
    pub(super) fn implicit_tls(&mut self) -> Result<(), End> {
        let live = self.shared.live();
        let Some(base) = &live.tls else {
            return Err(End::Lost); // the server refuses to start this way
        };
        let (config, data_config) = tls::per_session(base).map_err(|e| {
            log::error!("{}: cannot set up TLS: {e}", self.peer);
            End::Lost
        })?;
        self.begin_tls(config)?;
        self.data.start_implicit_tls(data_config);
        self.greeting_due = true;
        Ok(())
    }

    /// Begins the control connection's TLS handshake with the session's own `config`
    /// (AUTH TLS and implicit FTPS). The handshake has the data timeout, not the
    /// (long) idle timeout; the serve loop moves it on, and parks the session while
    /// the client is slow to answer.
    fn begin_tls(&mut self, config: Arc<rustls::ServerConfig>) -> Result<(), End> {
        let started = rustls::ServerConnection::new(config)
            .map_err(io::Error::other)
            .and_then(|conn| {
                let until = Instant::now() + self.shared.config.data_timeout;
                self.control.begin_tls(conn, until)
            });
        started.map_err(|e| {
            log::error!("{}: cannot start TLS: {e}", self.peer);
            End::Lost
        })
    }

    /// REIN (RFC 959 §4.1.1): the session as it was just after the connection was
    /// made: no login, the root, the default type, no restart offset, no pending
    /// rename and no data connection, options back to their defaults. On a control
    /// connection in TLS it is refused with `502`: going back to the state after
    /// connecting would mean leaving TLS, which RFC 4217 §11 leaves to the server and
    /// which this server does not do (CCC is refused for the same reason).
    pub(super) fn rein(&mut self) -> Result<Reply, Failure> {
        if self.control.in_tls() {
            return Err(Refusal::ReinInTls.into());
        }
        self.login = Login::None;
        self.storage = Arc::clone(&self.shared.storage);
        self.perms = Perms::default();
        self.cwd = VirtualPath::root();
        self.transfer_type = TransferType::Ascii;
        self.rest = 0;
        self.rename_from = None;
        self.data.reset();
        self.facts = Facts::default();
        self.hash = HashAlgo::Sha256;
        Ok(Reply::new(
            ReplyCode::ServiceReady,
            "Session reset; log in again",
        ))
    }
}
