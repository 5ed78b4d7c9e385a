//! The settings a running server takes anew without a restart (`ftp-server` on SIGHUP).
//!
//! [`Reloadable`] is the part of [`Config`] that may change while sessions are open:
//! the accounts, anonymous access, the session limits, the login hygiene, the grace
//! period and the TLS certificate. The server keeps it behind one swappable handle,
//! `parking_lot::RwLock<Arc<Reloadable>>`: a reader takes the read lock only to clone
//! the `Arc` (a few nanoseconds, never held across I/O), then works on a snapshot that
//! cannot change under it. [`ReloadHandle::replace`] swaps in a new one under the
//! write lock. (The `arc-swap` crate would make the read lock-free; a lock taken per
//! login and per accepted connection is not worth a dependency.)
//!
//! What a swap changes, and what it leaves alone:
//! - a new login is checked against the new accounts; a session that logged in keeps
//!   the home and permissions it got then;
//! - a new `AUTH TLS` handshake presents the new certificate; a session already in TLS
//!   keeps its TLS configuration, for its control connection and its data connections
//!   (each session has copies of its own, made at `AUTH TLS`);
//! - the acceptor applies the new limits to the next connection; sessions already open
//!   are never closed for a lower limit.
//!
//! The rest of [`Config`] (addresses, root, workers, timeouts, passive ports, TLS
//! policy) is fixed for the server's life.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use super::accounts::{Anonymous, Users};
use super::{Config, Shared};

/// The settings a running server can replace: see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Reloadable {
    /// The accounts that may log in with a password.
    pub users: Users,
    /// Whether `anonymous` may log in, and to do what.
    pub anonymous: Anonymous,
    /// Open sessions past which a newcomer gets `421`.
    pub max_connections: usize,
    /// Sessions one client address may have open at once; 0 for no limit.
    pub max_per_ip: usize,
    /// The pause after a failed PASS.
    pub failed_login_delay: Duration,
    /// Failed PASS commands after which the connection is closed.
    pub max_login_failures: u32,
    /// On shutdown, how long running transfers may take to finish.
    pub grace: Duration,
    /// The TLS configuration for AUTH TLS. Whether there is one is fixed for the
    /// server's life (FEAT says so to every client); the certificate may change.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Reloadable {
    /// The reloadable part of `config`.
    pub fn of(config: &Config) -> Reloadable {
        Reloadable {
            users: config.users.clone(),
            anonymous: config.anonymous,
            max_connections: config.max_connections,
            max_per_ip: config.max_per_ip,
            failed_login_delay: config.failed_login_delay,
            max_login_failures: config.max_login_failures,
            grace: config.grace,
            tls: config.tls.clone(),
        }
    }
}

/// Why a [`ReloadHandle::replace`] was refused; the settings in force stay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The new settings turn TLS on or off, which takes a restart: clients were told
    /// at connection (FEAT) whether `AUTH TLS` is offered.
    #[error("TLS cannot be turned {} without a restart", if *.on { "on" } else { "off" })]
    TlsOnOff {
        /// Whether the new settings would turn it on.
        on: bool,
    },
}

/// Where the server keeps its [`Reloadable`] settings.
#[derive(Debug)]
pub(super) struct Live(RwLock<Arc<Reloadable>>);

impl Live {
    pub(super) fn new(settings: Reloadable) -> Live {
        Live(RwLock::new(Arc::new(settings)))
    }

    /// The settings in force now, as a snapshot that does not change.
    pub(super) fn get(&self) -> Arc<Reloadable> {
        Arc::clone(&self.0.read())
    }

    fn replace(&self, settings: Reloadable) -> Result<(), ReloadError> {
        let mut current = self.0.write();
        if current.tls.is_some() != settings.tls.is_some() {
            return Err(ReloadError::TlsOnOff {
                on: settings.tls.is_some(),
            });
        }
        *current = Arc::new(settings);
        Ok(())
    }
}

/// Replaces a running server's [`Reloadable`] settings from another thread (a signal
/// handler, a test). Get one from [`Server::reload_handle`](super::Server::reload_handle).
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    pub(super) shared: Arc<Shared>,
}

impl ReloadHandle {
    /// The settings in force now.
    pub fn current(&self) -> Arc<Reloadable> {
        self.shared.live.get()
    }

    /// Puts `settings` in force for what comes next: new logins, new handshakes, new
    /// connections, the next shutdown. Open sessions go on as they are.
    ///
    /// # Errors
    /// [`ReloadError::TlsOnOff`] when `settings` would turn TLS on or off; then the
    /// settings in force stay.
    pub fn replace(&self, settings: Reloadable) -> Result<(), ReloadError> {
        self.shared.live.replace(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_config() -> Arc<rustls::ServerConfig> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, certified.cert.pem()).expect("write");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write");
        crate::tls::server_config(&cert, &key).expect("server config")
    }

    #[test]
    fn a_snapshot_keeps_its_values_after_a_replace() {
        let live = Live::new(Reloadable::of(&Config::default()));
        let before = live.get();
        let mut next = Reloadable::of(&Config::default());
        next.max_per_ip = 3;
        next.anonymous = Anonymous::Off;
        live.replace(next).expect("replace");
        assert_eq!(before.max_per_ip, 0);
        assert_eq!(before.anonymous, Anonymous::Write);
        let after = live.get();
        assert_eq!(after.max_per_ip, 3);
        assert_eq!(after.anonymous, Anonymous::Off);
    }

    #[test]
    fn tls_can_change_its_certificate_but_not_be_turned_on_or_off() {
        let plain = Live::new(Reloadable::of(&Config::default()));
        let mut with_tls = Reloadable::of(&Config::default());
        with_tls.tls = Some(tls_config());
        assert_eq!(
            plain.replace(with_tls.clone()),
            Err(ReloadError::TlsOnOff { on: true })
        );
        assert!(plain.get().tls.is_none());

        let secure = Live::new(with_tls.clone());
        let first = secure.get().tls.clone().expect("tls");
        let mut other = with_tls;
        other.tls = Some(tls_config());
        secure.replace(other).expect("a new certificate");
        let second = secure.get().tls.clone().expect("tls");
        assert!(!Arc::ptr_eq(&first, &second));
        let off = Reloadable::of(&Config::default());
        assert_eq!(
            secure.replace(off).map_err(|e| e.to_string()),
            Err("TLS cannot be turned off without a restart".to_owned())
        );
        assert!(secure.get().tls.is_some());
    }
}
