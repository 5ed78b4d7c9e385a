//! simple-ftp: a small, fast, safe FTP server and client.
//!
//! The public API is short: a [`Server`], built from a [`Config`] and stopped through its
//! [`ShutdownHandle`]; a blocking [`Client`], whose failures are [`ClientError`]s; and the
//! library's [`Error`], which starting or running the server returns. Their modules hold
//! the rest of each half ([`server::accounts`] for users and passwords, [`client::repl`]
//! for the logic of the `ftp-client` REPL).
//!
//! How the pieces fit, every module in one line:
//! - [`server`] is the server: an acceptor thread hands each connection over a crossbeam
//!   channel to a fixed pool of worker threads, which run its session.
//! - [`client`] is the blocking FTP client and the logic of the `ftp-client` REPL on top of it.
//! - [`protocol`] turns wire text into a `Command` and formats `Reply`s; bounded line reads.
//! - [`storage`] is where the served files live: the [`storage::Backend`] trait the
//!   session reads and writes through, and the local directory ([`storage::local`]).
//! - [`path`] is the only way client text becomes a file-system path inside the server root.
//! - `locks` is the per-file lock table that keeps concurrent uploads and downloads apart.
//! - [`tls`] is explicit FTPS (RFC 4217): plain-or-TLS streams and the rustls configurations.
//! - [`transfer`] moves file bytes to and from sockets with sendfile and splice.
//! - [`digest`] computes SHA-2 digests as hex (HASH, the client's checks).
//! - [`time`] formats file times for MDTM and LIST.
//! - [`limits`] raises the process's open-files limit for the binaries.
//! - `error` is the library's [`Error`] and [`Result`].
//!
//! [`tls`], [`transfer`], [`digest`], [`time`] and [`limits`] are public as the building
//! blocks the binaries share, not as an API of their own: `ftp-server` loads its
//! certificate with [`tls::server_config`], stamps its log with [`time`] and raises its
//! limit with [`limits`]; `ftp-bench` measures the machine's raw loopback copy with the
//! [`transfer::Pump`] our transfers use (so the table's "ours / raw copy" compares the
//! same kernel path with and without FTP) and checks what it moved with the [`digest`]
//! functions behind `HASH`; the integration tests drive [`tls`] streams and hash with
//! [`digest`] too.

pub mod client;
pub mod digest;
mod error;
pub mod limits;
mod locks;
pub mod server;
pub mod storage;
pub mod time;
pub mod tls;
pub mod transfer;

// `path` and `protocol` are the server's and the client's own machinery, not API. They
// stay `pub` only while a few of their methods have no caller (`EntryKey::as_path`,
// `Directory::virtual_path`, `Directory::metadata`, `Directory::symlink_metadata`,
// `Reply::lines`): private, those would be dead code. Once those are used or gone, these
// two lines lose their `pub`.
pub mod path;
pub mod protocol;

pub use client::{Client, ClientError};
pub use error::{Error, Result};
pub use server::{Config, Server, ShutdownHandle};
