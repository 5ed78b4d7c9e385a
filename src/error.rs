//! The library's error type.

use std::io;

/// Errors from starting or running the server and from the client library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server root could not be opened or created.
    #[error("cannot use {path} as the server root: {source}")]
    Root {
        /// The directory given.
        path: std::path::PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address given.
        addr: std::net::SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
    /// Implicit FTPS was asked for without a TLS certificate.
    #[error("an implicit FTPS port needs a TLS certificate and key")]
    ImplicitTlsWithoutCertificate,
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
    /// The metrics' HTTP listener (`--metrics`) could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsBind {
        /// The address given.
        addr: std::net::SocketAddr,
        /// What went wrong.
        source: io::Error,
    },
    /// The metrics could not be registered (a name or label the registry refuses).
    #[error("cannot set up the metrics: {0}")]
    Metrics(String),
    /// The transfer log (`--xferlog`) could not be opened.
    #[error("cannot open the transfer log {path}: {source}")]
    Xferlog {
        /// The file given.
        path: std::path::PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
