//! simple-ftp: a small, fast, safe FTP server and client.
//!
//! How the pieces fit:
//! - [`protocol`] turns wire text into a [`protocol::Command`] and formats [`protocol::Reply`]s.
//! - [`path`] is the only way client text becomes a file-system path inside the server root.
//! - [`locks`] is the per-file lock table that keeps concurrent uploads and downloads apart.
//! - [`time`] formats file times for MDTM and LIST.
//! - [`digest`] computes SHA-2 digests as hex (HASH, transfer checks).
//! - [`limits`] raises the process's open-files limit for the binaries.
//! - [`server`] is the server: an acceptor thread hands each connection over a crossbeam
//!   channel to a fixed pool of worker threads, each running one session at a time.
//! - [`client`] is the blocking FTP client ([`client::Client`]) and the logic of the
//!   `ftp-client` REPL on top of it ([`client::repl`]).

pub mod client;
pub mod digest;
pub mod error;
pub mod limits;
pub mod locks;
pub mod path;
pub mod protocol;
pub mod server;
pub mod time;
pub mod tls;
pub mod transfer;

pub use error::{Error, Result};
