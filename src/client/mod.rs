//! The blocking FTP client: connect, log in, move files, list, quit.
//!
//! A [`Client`] owns one control connection. Every step is "send a [`Command`], then
//! read the reply and expect these codes": one private `send`, one private `expect`,
//! and a reply outside the expected set comes back as
//! [`ClientError::UnexpectedReply`] with the server's code and text. Replies are read
//! with [`Reply::read_from`], the same parser the rest of the crate uses.
//!
//! Data connections are passive by default (RFC 2428 EPSV, falling back to RFC 959
//! PASV; a server that refuses EPSV once is asked with PASV from then on), or active
//! after [`Client::set_passive`]`(false)`: a listener on the control connection's own
//! address, named with EPRT (PORT where refused), taking only a connection from the
//! server's address. Transfers move
//! between a [`File`] and the data [`TcpStream`] with the kernel's zero-copy calls
//! (see [`crate::transfer`]). Progress is reported through a callback with byte
//! counts: this module never draws on a terminal.
//!
//! When the server offers `HASH` with SHA-256 (draft-bryan-ftpext-hash), every GET
//! and PUT is verified afterwards: the server's digest of its file must equal ours,
//! or the transfer is an error ([`ClientError::Mismatch`]) and a download is not kept.
//! The check reads the file again after the transfer, so a file that another client
//! replaces in between is reported as a mismatch too: turn verification off with
//! [`Client::set_verify`] for files that change under you.
//!
//! Downloads land in a temporary file next to their target and are renamed over it
//! only once the server confirmed the whole transfer: a failed [`Client::get`] leaves
//! no file behind and never replaces a good local copy with a partial one.
//!
//! After the control connection is lost (dropped, timed out, garbled, or closed by
//! a `421` reply) the client is no longer usable: [`Client::is_usable`] says so and
//! every further call fails with [`ClientError::Dropped`] at once.

pub mod many;
pub mod repl;

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use crate::digest::{hex, sha256_file};
use crate::protocol::{
    parse_host_port, Command, EpsvArg, ReceivedReply, Reply, ReplyCode, ReplyError, TransferType,
};
use crate::tls::{self, ClientStream};
use crate::transfer::{CopyError, Pump};

/// The timeout [`Client::connect`] callers use unless they have a reason to differ:
/// how long to wait for a connection, for a reply, or for data to move.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes moved between two progress reports.
const PROGRESS_STEP: usize = 1 << 20;

/// Longest listing we accept: a server cannot make us buffer without bound.
const MAX_LISTING: u64 = 64 << 20;

/// How many `1xx` replies may come before the `220` greeting (RFC 959 §4.2: `120`).
const MAX_PRELIMINARY_GREETINGS: usize = 8;

/// Prefix of the temporary files downloads are written to before the rename.
const DOWNLOAD_PREFIX: &str = ".simple-ftp-get.";

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No TCP connection could be made, to the server or to the data port it offered.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried (`host:port`).
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The server said no: its reply was not one this step allows.
    #[error("server replied {code} {text}")]
    UnexpectedReply {
        /// The reply code, e.g. `550`.
        code: u16,
        /// The reply text, lines joined by newlines.
        text: String,
    },
    /// The connection broke: closed by the server, reset, or failed during a transfer.
    #[error("connection dropped: {0}")]
    Dropped(io::Error),
    /// The server or the network stayed silent for longer than the timeout.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// A local file could not be opened, read, written or renamed.
    #[error("local file {}: {source}", path.display())]
    LocalFile {
        /// The local path involved.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The server sent something that is not valid FTP.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An argument that cannot be sent, such as a file name containing a line break.
    #[error("{0}")]
    InvalidArgument(String),
    /// The TLS handshake failed: an untrusted or mismatched certificate, or a server
    /// that broke off.
    #[error("TLS: {0}")]
    Tls(io::Error),
    /// The transfer was stopped through its [`Interrupt`] (Ctrl-C); the server was sent
    /// ABOR and a download left nothing behind.
    #[error("interrupted")]
    Interrupted,
    /// The transfer completed, but the server's SHA-256 of its file differs from ours.
    #[error("{path}: SHA-256 differs after the transfer (local {local}, server {remote})")]
    Mismatch {
        /// The remote file name.
        path: String,
        /// Our digest, hex.
        local: String,
        /// The server's digest, hex.
        remote: String,
    },
}

impl ClientError {
    /// The server's reply code, when the error is the server saying no.
    pub fn reply_code(&self) -> Option<u16> {
        match self {
            ClientError::UnexpectedReply { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How far a transfer has come; passed to the progress callback of [`Client::get`]
/// and [`Client::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes moved so far.
    pub done: u64,
    /// Bytes expected in all, when known (from the server's `150` reply, or the local file's length).
    pub total: Option<u64>,
}

/// Lets another thread (a Ctrl-C handler, say) stop the transfer in progress.
///
/// The transfer notices between chunks of a megabyte, sends ABOR, closes its data
/// connection and fails with [`ClientError::Interrupted`].
#[derive(Debug, Default)]
pub struct Interrupt {
    requested: AtomicBool,
    transferring: AtomicBool,
}

impl Interrupt {
    /// A new handle, to share between the client and whoever may interrupt it.
    pub fn new() -> Arc<Interrupt> {
        Arc::new(Interrupt::default())
    }

    /// Asks the running transfer to stop. Returns false when no transfer is running
    /// (then nothing happens: a Ctrl-C handler may exit instead).
    pub fn request(&self) -> bool {
        if self.transferring.load(Ordering::SeqCst) {
            self.requested.store(true, Ordering::SeqCst);
            true
        } else {
            false
        }
    }
}

/// Marks a transfer as running for as long as it lives.
struct Running<'a>(&'a Interrupt);

impl<'a> Running<'a> {
    fn start(interrupt: &'a Interrupt) -> Running<'a> {
        interrupt.requested.store(false, Ordering::SeqCst);
        interrupt.transferring.store(true, Ordering::SeqCst);
        Running(interrupt)
    }

    fn stop_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.transferring.store(false, Ordering::SeqCst);
    }
}

/// What a finished [`Client::get`] or [`Client::put`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transferred {
    /// Bytes moved.
    pub bytes: u64,
    /// Whether the server's SHA-256 of the file was checked against ours (and matched).
    pub verified: bool,
}

/// A data connection on its way: made (passive), or a listener the server will
/// connect to once the transfer command is sent (active).
enum DataSetup {
    Connected(TcpStream),
    Listening(TcpListener),
}

/// What a finished [`Client::reget`] or [`Client::reput`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Where the transfer started: the length of the partial file.
    pub from: u64,
    /// Bytes moved this time, and whether the whole file was verified.
    pub done: Transferred,
}

/// A blocking FTP client on one control connection.
#[derive(Debug)]
pub struct Client {
    control: BufReader<ClientStream>,
    /// After [`Client::secure`]: the TLS settings data connections use too.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    peer: SocketAddr,
    timeout: Duration,
    greeting: String,
    /// False once the server refused EPSV; PASV is used from then on.
    epsv: bool,
    /// False after [`Client::set_passive`]`(false)`: the server connects to us.
    passive: bool,
    /// False once the server refused EPRT; PORT is used from then on.
    eprt: bool,
    /// False once the control connection is lost or out of step.
    usable: bool,
    /// Whether transfers are verified with HASH when the server offers it.
    verify: bool,
    /// Whether the server computes SHA-256 with HASH; found out on first use.
    server_sha256: Option<bool>,
    /// The server's FEAT lines, trimmed; asked on first use (empty without FEAT).
    features: Option<Vec<String>>,
    pump: Pump,
    interrupt: Arc<Interrupt>,
}

impl Client {
    /// Connects to `host`:`port` and reads the server's `220` greeting.
    ///
    /// Every address `host` resolves to is tried in turn. `timeout` bounds the
    /// connection attempt and, later, every wait for a reply or for data.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when no address accepts a connection (or `host` does
    /// not resolve); [`ClientError::UnexpectedReply`] when the greeting is not `220`
    /// (a busy server says `421`); [`ClientError::Dropped`],
    /// [`ClientError::Timeout`] or [`ClientError::Protocol`] when no good greeting
    /// arrives.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Client> {
        let shown = host_port(host, port);
        let connect_err = |source| ClientError::Connect {
            addr: shown.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(connect_err)?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
        let mut stream = None;
        for addr in addrs {
            match connect_with_timeouts(addr, timeout) {
                Ok(s) => {
                    stream = Some((s, addr));
                    break;
                }
                Err(e) => last = e,
            }
        }
        let (stream, peer) = stream.ok_or_else(|| connect_err(last))?;
        // Commands are single small writes; do not let Nagle hold them back.
        stream.set_nodelay(true).map_err(connect_err)?;
        let mut client = Client {
            control: BufReader::new(ClientStream::plain(stream)),
            tls: None,
            peer,
            timeout,
            greeting: String::new(),
            epsv: true,
            passive: true,
            eprt: true,
            usable: true,
            verify: true,
            server_sha256: None,
            features: None,
            pump: Pump::new(),
            interrupt: Interrupt::new(),
        };
        for _ in 0..MAX_PRELIMINARY_GREETINGS {
            let reply = client.read_reply()?;
            if is_preliminary(&reply) {
                continue;
            }
            if reply.code != ReplyCode::ServiceReady.number() {
                return Err(unexpected(reply));
            }
            client.greeting = reply.text();
            return Ok(client);
        }
        Err(ClientError::Protocol("no 220 greeting".into()))
    }

    /// Switches to explicit FTPS (RFC 4217): `AUTH TLS`, the handshake (checking the
    /// server's certificate for `host` as `config` says), then `PBSZ 0` and `PROT P`
    /// so data connections are in TLS too. Call it before [`Client::login`].
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server does not offer TLS;
    /// [`ClientError::Tls`] when the handshake fails (an untrusted certificate).
    pub fn secure(&mut self, config: Arc<ClientConfig>, host: &str) -> Result<()> {
        self.check_usable()?;
        let name = tls::server_name(host).map_err(ClientError::Tls)?;
        self.send(&Command::Auth("TLS".into()))?;
        self.expect(&[ReplyCode::SecurityExchange])?;
        if !self.control.buffer().is_empty() {
            self.usable = false;
            return Err(ClientError::Protocol(
                "data after the AUTH TLS reply".into(),
            ));
        }
        let conn = ClientConnection::new(Arc::clone(&config), name.clone())
            .map_err(|e| ClientError::Tls(io::Error::other(e)))?;
        if let Err(e) = self.control.get_mut().upgrade(conn) {
            self.usable = false;
            return Err(ClientError::Tls(e));
        }
        self.tls = Some((config, name));
        self.send(&Command::Pbsz(0))?;
        self.expect(&[ReplyCode::CommandOk])?;
        self.send(&Command::Prot('P'))?;
        self.expect(&[ReplyCode::CommandOk])?;
        Ok(())
    }

    /// Whether the control connection is in TLS.
    pub fn is_secure(&self) -> bool {
        self.control.get_ref().is_tls()
    }

    /// Logs in with `USER` and, when the server asks for one, `PASS`.
    ///
    /// Anonymous login is `login("anonymous", "anonymous@")`.
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server refuses the user or password
    /// (usually `530`); connection errors as for every call.
    pub fn login(&mut self, user: &str, password: &str) -> Result<()> {
        self.check_usable()?;
        self.send(&Command::User(user.to_owned()))?;
        let reply = self.expect(&[ReplyCode::LoggedIn, ReplyCode::NeedPassword])?;
        if reply.code == ReplyCode::NeedPassword.number() {
            self.send(&Command::Pass(password.to_owned()))?;
            // RFC 959 §5.4 lists 202 among PASS's success replies.
            self.expect(&[ReplyCode::LoggedIn, ReplyCode::Superfluous])?;
        }
        Ok(())
    }

    /// Switches to binary transfers (`TYPE I`), so files arrive byte for byte.
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server refuses; connection errors.
    pub fn binary(&mut self) -> Result<()> {
        self.check_usable()?;
        self.send(&Command::Type(TransferType::Image))?;
        self.expect(&[ReplyCode::CommandOk])?;
        Ok(())
    }

    /// The size in bytes of the remote file `path` (RFC 3659 `SIZE`).
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the file does not exist or the server
    /// lacks `SIZE`; [`ClientError::Protocol`] when the reply holds no number.
    pub fn size(&mut self, path: &str) -> Result<u64> {
        self.check_usable()?;
        self.send(&Command::Size(path.to_owned()))?;
        let reply = self.expect(&[ReplyCode::FileStatus])?;
        let text = reply.text();
        text.trim()
            .parse()
            .map_err(|_| ClientError::Protocol(format!("SIZE reply is not a number: {text:?}")))
    }

    /// The server's current directory (`PWD`, RFC 959 §4.1.3; the name is read from
    /// the quoted path of the `257` reply, with `""` inside it meaning one `"`).
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server refuses;
    /// [`ClientError::Protocol`] when the reply holds no quoted path.
    pub fn pwd(&mut self) -> Result<String> {
        self.check_usable()?;
        self.send(&Command::Pwd)?;
        let reply = self.expect(&[ReplyCode::PathName])?;
        let text = reply.text();
        parse_257_path(&text)
            .ok_or_else(|| ClientError::Protocol(format!("PWD reply holds no path: {text:?}")))
    }

    /// Changes the server's current directory (`CWD`).
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server refuses (`550` for a missing
    /// directory); connection errors.
    pub fn cwd(&mut self, dir: &str) -> Result<()> {
        self.simple(
            Command::Cwd(dir.to_owned()),
            &[ReplyCode::FileActionOk, ReplyCode::CommandOk],
        )
    }

    /// Goes to the parent of the server's current directory (`CDUP`; RFC 959 allows
    /// `200` or `250` for it).
    ///
    /// # Errors
    /// As [`Client::cwd`].
    pub fn cdup(&mut self) -> Result<()> {
        self.simple(
            Command::Cdup,
            &[ReplyCode::FileActionOk, ReplyCode::CommandOk],
        )
    }

    /// Creates the remote directory `dir` (`MKD`); returns the path the server named
    /// in its `257` reply, or `dir` when it named none.
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server refuses (an existing name,
    /// no permission); connection errors.
    pub fn mkdir(&mut self, dir: &str) -> Result<String> {
        self.check_usable()?;
        self.send(&Command::Mkd(dir.to_owned()))?;
        let reply = self.expect(&[ReplyCode::PathName])?;
        Ok(parse_257_path(&reply.text()).unwrap_or_else(|| dir.to_owned()))
    }

    /// Removes the empty remote directory `dir` (`RMD`).
    ///
    /// # Errors
    /// As [`Client::cwd`].
    pub fn rmdir(&mut self, dir: &str) -> Result<()> {
        self.simple(Command::Rmd(dir.to_owned()), &[ReplyCode::FileActionOk])
    }

    /// Deletes the remote file `path` (`DELE`).
    ///
    /// # Errors
    /// As [`Client::cwd`].
    pub fn delete(&mut self, path: &str) -> Result<()> {
        self.simple(Command::Dele(path.to_owned()), &[ReplyCode::FileActionOk])
    }

    /// Renames the remote `from` to `to` (`RNFR`, then `RNTO` once the server said `350`).
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] for the first refusal, of either step;
    /// connection errors.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        self.simple(
            Command::Rnfr(from.to_owned()),
            &[ReplyCode::PendingFurtherInfo],
        )?;
        self.simple(Command::Rnto(to.to_owned()), &[ReplyCode::FileActionOk])
    }

    /// One command, one reply among `codes`, nothing to read from it.
    fn simple(&mut self, cmd: Command, codes: &[ReplyCode]) -> Result<()> {
        self.check_usable()?;
        self.send(&cmd)?;
        self.expect(codes).map(drop)
    }

    /// Downloads the remote file `remote` to the local path `local`.
    ///
    /// The bytes go to a temporary file in `local`'s directory, which is renamed to
    /// `local` only after the server confirmed the transfer (and, when it offers
    /// HASH, after its SHA-256 matched ours); on any failure it is removed and an
    /// existing `local` stays as it was. `progress` is called as bytes arrive,
    /// starting with zero.
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server refuses (`550` for a missing
    /// file) or aborts the transfer (`426`, `451`); [`ClientError::LocalFile`] when
    /// the temporary file cannot be created or written, or the rename fails;
    /// [`ClientError::Connect`] when the data connection cannot be made;
    /// [`ClientError::Dropped`] / [`ClientError::Timeout`] when a connection fails;
    /// [`ClientError::Mismatch`] when the download differs from the server's file.
    pub fn get<F: FnMut(Progress)>(
        &mut self,
        remote: &str,
        local: &Path,
        mut progress: F,
    ) -> Result<Transferred> {
        self.check_usable()?;
        let local_err = |source| ClientError::LocalFile {
            path: local.to_owned(),
            source,
        };
        let dir = parent_dir(local);
        // Said before anything is asked of the server, and in the user's terms: the
        // temporary file's own error would name a hidden file they never asked for.
        if !dir.is_dir() {
            return Err(local_err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no local directory {}", dir.display()),
            )));
        }
        let temp = download_temp(dir).map_err(|e| local_err(without_path(e)))?;
        let (data, total) = self.start_retr(remote)?;
        let (data, copied) = self.copy(data, total, &mut progress, |pump, data| {
            pump.stream_to_file(data, temp.as_file(), PROGRESS_STEP)
        })?;
        drop(data);
        let bytes = self.finish_transfer(copied, local)?;
        // A download that does not match the server's file is not kept (dropping
        // `temp` removes it).
        let verified = self.verify_against_server(remote, temp.path())?;
        temp.persist(local).map_err(|e| local_err(e.error))?;
        Ok(Transferred { bytes, verified })
    }

    /// Continues downloading `remote` into the partial local file `local` (REGET):
    /// `REST <local length>` and `RETR`, appending what arrives (RFC 3659 §5). A
    /// missing `local` is downloaded whole, as [`Client::get`] does.
    ///
    /// Bytes that arrive before a failure stay, so the next REGET goes on from there.
    /// When the server offers HASH, the whole file is then compared with the server's;
    /// on a mismatch the local file is removed (its first part was not the server's
    /// file either) and the error says so.
    ///
    /// # Errors
    /// As [`Client::get`]; [`ClientError::UnexpectedReply`] when the server refuses
    /// REST; [`ClientError::InvalidArgument`] when the local file is longer than the
    /// remote one.
    pub fn reget<F: FnMut(Progress)>(
        &mut self,
        remote: &str,
        local: &Path,
        mut progress: F,
    ) -> Result<Resumed> {
        self.check_usable()?;
        let local_err = |source| ClientError::LocalFile {
            path: local.to_owned(),
            source,
        };
        let (file, meta) = match open_regular(local, std::fs::OpenOptions::new().write(true)) {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let done = self.get(remote, local, progress)?;
                return Ok(Resumed { from: 0, done });
            }
            Err(e) => return Err(local_err(e)),
        };
        let from = meta.len();
        // SIZE, where the server has it, catches a local file longer than the remote
        // one, and saves a transfer when nothing is missing.
        let size = match self.size(remote) {
            Ok(size) => Some(size),
            Err(ClientError::UnexpectedReply { .. } | ClientError::Protocol(_)) if self.usable => {
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(size) = size {
            if from > size {
                return Err(ClientError::InvalidArgument(format!(
                    "{}: the local file ({from} bytes) is longer than {remote} ({size} bytes); GET it again",
                    local.display()
                )));
            }
        }
        let mut bytes = 0;
        if size != Some(from) {
            (&file).seek(io::SeekFrom::Start(from)).map_err(local_err)?;
            let (data, _) =
                self.start_transfer_from(Command::Retr(remote.to_owned()), Some(from))?;
            let total = size.map(|s| s - from);
            let (data, copied) = self.copy(data, total, &mut progress, |pump, data| {
                pump.stream_to_file(data, &file, PROGRESS_STEP)
            })?;
            drop(data);
            bytes = self.finish_transfer(copied, local)?;
        }
        drop(file);
        let verified = self.verify_resumed(remote, local, |_| {
            let _ = std::fs::remove_file(local);
            "the local file was removed: GET it again"
        })?;
        Ok(Resumed {
            from,
            done: Transferred { bytes, verified },
        })
    }

    /// Continues uploading `local` onto the partial remote file `remote` (REPUT):
    /// the remote length from `SIZE` (none: the whole file), then `REST <length>` and
    /// `STOR`, or `APPE` where the server refuses REST before STOR. When the server
    /// offers HASH, the whole file is then compared; on a mismatch the remote file is
    /// deleted and the error says so.
    ///
    /// # Errors
    /// As [`Client::put`]; [`ClientError::InvalidArgument`] when the remote file is
    /// longer than the local one.
    pub fn reput<F: FnMut(Progress)>(
        &mut self,
        local: &Path,
        remote: &str,
        mut progress: F,
    ) -> Result<Resumed> {
        self.check_usable()?;
        let (file, meta) = open_upload(local)?;
        let from = match self.size(remote) {
            Ok(size) => size,
            Err(ClientError::UnexpectedReply { .. }) => 0,
            Err(e) => return Err(e),
        };
        if from > meta.len() {
            return Err(ClientError::InvalidArgument(format!(
                "{remote} ({from} bytes) is longer than {} ({} bytes); PUT it again",
                local.display(),
                meta.len()
            )));
        }
        let mut bytes = 0;
        if from < meta.len() {
            bytes = self.send_file(&file, meta.len(), local, remote, from, &mut progress)?;
        }
        let verified = self.verify_resumed(remote, local, |client| {
            if client.delete(remote).is_ok() {
                "the remote file was deleted: PUT it again"
            } else {
                "the remote file could not be deleted"
            }
        })?;
        Ok(Resumed {
            from,
            done: Transferred { bytes, verified },
        })
    }

    /// Downloads the remote file `remote` into `out` (memory, standard output, any
    /// writer), with no local file. `progress` is called as bytes arrive, starting
    /// with zero.
    ///
    /// Unlike [`Client::get`], bytes reach `out` as they arrive, so after a failure
    /// `out` may hold the first part of the file. When verification is on, the bytes
    /// are hashed on the way and compared with the server's SHA-256 as in `get`.
    ///
    /// # Errors
    /// As [`Client::get`]; [`ClientError::LocalFile`] (with the path `(output)`)
    /// when `out` fails.
    pub fn get_into<W: Write, F: FnMut(Progress)>(
        &mut self,
        remote: &str,
        out: &mut W,
        mut progress: F,
    ) -> Result<Transferred> {
        self.check_usable()?;
        let (data, total) = self.start_retr(remote)?;
        let mut sink = Hashing {
            out,
            sha: self.verify.then(sha2::Sha256::new),
        };
        let (data, copied) = self.copy(data, total, &mut progress, |pump, data| {
            pump.reader_to_writer(data, &mut sink, PROGRESS_STEP)
        })?;
        drop(data);
        let bytes = self.finish_transfer(copied, Path::new(OUTPUT))?;
        let verified = match sink.sha {
            Some(sha) => self.check_digest(remote, || Ok(hex(&sha.finalize())))?,
            None => false,
        };
        Ok(Transferred { bytes, verified })
    }

    /// Uploads the local file `local` to the remote name `remote`. `progress` is
    /// called as bytes leave, starting with zero.
    ///
    /// # Errors
    /// [`ClientError::LocalFile`] when `local` cannot be opened or is not a regular
    /// file (checked before anything is sent) or cannot be read;
    /// [`ClientError::UnexpectedReply`] when the server refuses or aborts;
    /// [`ClientError::Connect`] when the data connection cannot be made;
    /// [`ClientError::Dropped`] / [`ClientError::Timeout`] when a connection fails;
    /// [`ClientError::Mismatch`] when the server's copy differs from `local`.
    pub fn put<F: FnMut(Progress)>(
        &mut self,
        local: &Path,
        remote: &str,
        mut progress: F,
    ) -> Result<Transferred> {
        self.check_usable()?;
        let (file, meta) = open_upload(local)?;
        let bytes = self.send_file(&file, meta.len(), local, remote, 0, &mut progress)?;
        let verified = self.verify_against_server(remote, local)?;
        Ok(Transferred { bytes, verified })
    }

    /// Uploads `file` (of `len` bytes, opened from `local`) from byte `from` on to
    /// `remote`, as [`Client::start_resumed_upload`] starts it (`STOR` from 0).
    /// Returns the bytes sent.
    fn send_file(
        &mut self,
        file: &File,
        len: u64,
        local: &Path,
        remote: &str,
        from: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<u64> {
        let data = self.start_resumed_upload(remote, from)?;
        let data = self.data_stream(data)?;
        let data = self.secure_data(data)?;
        let mut offset = from;
        let (data, copied) = self.copy(data, Some(len - from), progress, |pump, data| {
            pump.file_to_stream(file, &mut offset, data, PROGRESS_STEP)
        })?;
        // Closing our end is the end-of-file mark the server waits for (RFC 959 §3.4);
        // in TLS a close_notify comes first, so the end cannot be faked by a cut.
        let copied = copied.and_then(|n| data.finish().map(|()| n).map_err(CopyError::Net));
        self.finish_transfer(copied, local)
    }

    /// A transfer's copy loop: `step` moves the next bytes (0 at the end), progress is
    /// reported from zero on, and an [`Interrupt`] stops it with ABOR. Returns the
    /// data connection and the bytes moved, or how the copy failed, for
    /// [`Client::finish_transfer`] to weigh against the server's reply.
    fn copy(
        &mut self,
        mut data: ClientStream,
        total: Option<u64>,
        progress: &mut dyn FnMut(Progress),
        mut step: impl FnMut(&mut Pump, &mut ClientStream) -> Result<usize, CopyError>,
    ) -> Result<(ClientStream, Result<u64, CopyError>)> {
        let interrupt = Arc::clone(&self.interrupt);
        let running = Running::start(&interrupt);
        progress(Progress { done: 0, total });
        let mut done = 0u64;
        loop {
            if running.stop_requested() {
                return Err(self.abort_transfer(data));
            }
            match step(&mut self.pump, &mut data) {
                Ok(0) => return Ok((data, Ok(done))),
                Ok(n) => {
                    done += n as u64;
                    progress(Progress { done, total });
                }
                Err(e) => return Ok((data, Err(e))),
            }
        }
    }

    /// Shares `interrupt` with this client: requesting it stops the transfer in progress.
    pub fn set_interrupt(&mut self, interrupt: Arc<Interrupt>) {
        self.interrupt = interrupt;
    }

    /// Stops a transfer: ABOR first (so the server does not take the end of an upload
    /// for the end of the file), then the data connection goes. The server answers
    /// twice: for the transfer (426, or 226 if it had finished) and for the ABOR
    /// (226 or 225). A server that does not leaves the connection unusable.
    fn abort_transfer(&mut self, data: ClientStream) -> ClientError {
        let sent = self.send(&Command::Abor);
        drop(data);
        if sent.is_ok() {
            for _ in 0..2 {
                match self.read_reply() {
                    Ok(r) if ABORT_ANSWERS.iter().any(|c| c.number() == r.code) => {}
                    _ => {
                        self.usable = false;
                        break;
                    }
                }
            }
        }
        ClientError::Interrupted
    }

    /// Turns verification after each transfer on (the default) or off.
    pub fn set_verify(&mut self, on: bool) {
        self.verify = on;
    }

    /// The server's SHA-256 of the remote file `path`, or `None` when the server
    /// does not offer `HASH` with SHA-256.
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server refuses (a missing file);
    /// [`ClientError::Protocol`] for an unreadable reply; connection errors.
    pub fn remote_sha256(&mut self, path: &str) -> Result<Option<String>> {
        self.check_usable()?;
        if !self.server_offers_sha256()? {
            return Ok(None);
        }
        self.send(&Command::Hash(path.to_owned()))?;
        let reply = self.expect(&[ReplyCode::FileStatus])?;
        let text = reply.text();
        // `SHA-256 0-<size> <hex> <path>`: the digest of the whole file.
        let mut words = text.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(algo), Some(range), Some(hex))
                if algo.eq_ignore_ascii_case("SHA-256")
                    && range.starts_with("0-")
                    && hex.len() == 64
                    && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Ok(Some(hex.to_ascii_lowercase()))
            }
            _ => Err(ClientError::Protocol(format!(
                "unreadable HASH reply {text:?}"
            ))),
        }
    }

    /// The features the server's FEAT reply names (RFC 2389 §3.2), one per line,
    /// trimmed: asked once per connection; empty when the server refuses FEAT.
    ///
    /// # Errors
    /// Connection errors.
    pub fn features(&mut self) -> Result<&[String]> {
        self.check_usable()?;
        if self.features.is_none() {
            self.send(&Command::Feat)?;
            let reply = self.read_reply()?;
            let lines = if reply.code == ReplyCode::SystemStatus.number() {
                // The first line ("211-Features:") and the last ("211 End") say
                // nothing; each line between names one feature.
                let n = reply.lines.len();
                reply
                    .lines
                    .iter()
                    .take(n.saturating_sub(1))
                    .skip(1)
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty())
                    .collect()
            } else {
                Vec::new()
            };
            self.features = Some(lines);
        }
        Ok(self.features.as_deref().unwrap_or_default())
    }

    /// Whether the server offers MLSD: its FEAT names `MLST`, which covers both
    /// commands (RFC 3659 §7.8).
    ///
    /// # Errors
    /// Connection errors.
    pub fn offers_mlsd(&mut self) -> Result<bool> {
        Ok(self.features()?.iter().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case("MLST"))
        }))
    }

    /// Asks FEAT once whether HASH offers SHA-256, and selects it if it is not the
    /// server's default.
    fn server_offers_sha256(&mut self) -> Result<bool> {
        if let Some(known) = self.server_sha256 {
            return Ok(known);
        }
        let algos: Vec<String> = self
            .features()?
            .iter()
            .filter_map(|l| l.strip_prefix("HASH "))
            .flat_map(|list| list.split(';').map(|a| a.trim().to_owned()))
            .collect();
        let offered = if algos.iter().any(|a| a.eq_ignore_ascii_case("SHA-256*")) {
            true
        } else if algos.iter().any(|a| a.eq_ignore_ascii_case("SHA-256")) {
            self.send(&Command::Opts("HASH SHA-256".into()))?;
            self.read_reply()?.code == ReplyCode::CommandOk.number()
        } else {
            false
        };
        self.server_sha256 = Some(offered);
        Ok(offered)
    }

    /// Compares the server's SHA-256 of `remote` with ours of `local`. Returns whether
    /// a comparison was made (the server offers HASH and verification is on).
    fn verify_against_server(&mut self, remote: &str, local: &Path) -> Result<bool> {
        if !self.verify {
            return Ok(false);
        }
        self.check_digest(remote, || {
            sha256_file(local).map_err(|source| ClientError::LocalFile {
                path: local.to_owned(),
                source,
            })
        })
    }

    /// As [`Client::verify_against_server`], after a resumed transfer: on a mismatch
    /// `discard` removes the file that is not whole (the part kept before was not the
    /// other side's either) and says what came of it, and the error tells that.
    fn verify_resumed(
        &mut self,
        remote: &str,
        local: &Path,
        discard: impl FnOnce(&mut Self) -> &'static str,
    ) -> Result<bool> {
        match self.verify_against_server(remote, local) {
            Err(ClientError::Mismatch {
                path,
                local,
                remote,
            }) => {
                let note = discard(self);
                Err(ClientError::Mismatch {
                    path: format!("{path} ({note})"),
                    local,
                    remote,
                })
            }
            other => other,
        }
    }

    /// Compares `ours()`, the SHA-256 of what was moved (computed only when needed),
    /// with the server's digest of `remote`, when the server offers HASH. Returns
    /// whether a comparison was made.
    fn check_digest(
        &mut self,
        remote: &str,
        ours: impl FnOnce() -> Result<String>,
    ) -> Result<bool> {
        let Some(theirs) = self.remote_sha256(remote)? else {
            return Ok(false);
        };
        let ours = ours()?;
        if ours != theirs {
            return Err(ClientError::Mismatch {
                path: remote.to_owned(),
                local: ours,
                remote: theirs,
            });
        }
        Ok(true)
    }

    /// The server's long listing (`LIST`) of `path`, or of the current directory.
    ///
    /// # Errors
    /// [`ClientError::UnexpectedReply`] when the server refuses;
    /// [`ClientError::Protocol`] for a listing over 64 MiB; connection errors.
    pub fn list(&mut self, path: Option<&str>) -> Result<String> {
        let bytes = self.fetch_listing(Command::List(path.map(str::to_owned)))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The names in `path`, or in the current directory (`NLST`).
    ///
    /// # Errors
    /// As [`Client::list`].
    pub fn nlst(&mut self, path: Option<&str>) -> Result<Vec<String>> {
        let bytes = self.fetch_listing(Command::Nlst(path.map(str::to_owned)))?;
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Sends `NOOP`: checks that the server still answers. Any reply but `421`
    /// proves that: a server without NOOP (`500`, `502`) is still there.
    ///
    /// # Errors
    /// Connection errors, or [`ClientError::UnexpectedReply`] for `421` or a reply
    /// that is neither a success nor a refusal of the command.
    pub fn noop(&mut self) -> Result<()> {
        self.check_usable()?;
        self.send(&Command::Noop)?;
        let reply = self.read_reply()?;
        let answers = matches!(reply.code / 100, 2 | 5);
        if !self.usable || !answers {
            return Err(unexpected(reply));
        }
        Ok(())
    }

    /// Says `QUIT`, waits for the server's `221` and closes the connection.
    ///
    /// A client whose connection was already lost just closes.
    ///
    /// # Errors
    /// Connection errors or an unexpected reply; the connection is closed either way.
    pub fn quit(mut self) -> Result<()> {
        if !self.usable {
            return Ok(());
        }
        self.send(&Command::Quit)?;
        self.expect(&[ReplyCode::ClosingControl])?;
        Ok(())
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The text of the server's `220` greeting.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// Whether the control connection is still in working order. Once false, every
    /// call fails with [`ClientError::Dropped`]; connect again.
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    /// Whether data connections are set up with EPSV (false after the server
    /// refused it and the client fell back to PASV).
    pub fn uses_epsv(&self) -> bool {
        self.epsv
    }

    fn check_usable(&self) -> Result<()> {
        if self.usable {
            Ok(())
        } else {
            Err(ClientError::Dropped(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection was lost earlier",
            )))
        }
    }

    /// The one way a command reaches the server.
    fn send(&mut self, cmd: &Command) -> Result<()> {
        let line = cmd.to_string();
        if line.contains(['\r', '\n']) {
            return Err(ClientError::InvalidArgument(format!(
                "{} argument contains a line break",
                cmd.verb()
            )));
        }
        let wire = format!("{line}\r\n");
        let control = self.control.get_mut();
        let result = control
            .write_all(wire.as_bytes())
            .and_then(|()| control.flush());
        result.map_err(|e| self.lost(e, "the server to accept a command"))
    }

    /// Reads one whole reply; a lost, garbled or closing (`421`) connection makes the
    /// client unusable.
    fn read_reply(&mut self) -> Result<ReceivedReply> {
        match Reply::read_from(&mut self.control) {
            Ok(reply) => {
                if reply.code == ReplyCode::ServiceNotAvailable.number() {
                    self.usable = false;
                }
                Ok(reply)
            }
            Err(ReplyError::Io(e)) => Err(self.lost(e, "a reply from the server")),
            Err(ReplyError::Malformed(text)) => {
                self.usable = false;
                Err(ClientError::Protocol(format!("malformed reply {text:?}")))
            }
        }
    }

    /// The one "read the reply, expect these codes" path.
    fn expect(&mut self, codes: &[ReplyCode]) -> Result<ReceivedReply> {
        let reply = self.read_reply()?;
        if codes.iter().any(|c| c.number() == reply.code) {
            Ok(reply)
        } else {
            Err(unexpected(reply))
        }
    }

    /// Expects the `1xx` reply (`125`, `150`) that opens a transfer (RFC 959 §4.2).
    fn expect_preliminary(&mut self) -> Result<ReceivedReply> {
        let reply = self.read_reply()?;
        if is_preliminary(&reply) {
            Ok(reply)
        } else {
            Err(unexpected(reply))
        }
    }

    /// Marks the control connection lost and names the failure.
    fn lost(&mut self, e: io::Error, waiting_for: &'static str) -> ClientError {
        self.usable = false;
        io_error(e, waiting_for)
    }

    /// Reads the transfer's closing reply and decides what the transfer's outcome is.
    ///
    /// The control connection is read in every case, so it stays in step. A local
    /// failure is reported as such; a data connection failure gives way to the
    /// server's own account of it (`426`, `451`) when there is one.
    fn finish_transfer(&mut self, copied: Result<u64, CopyError>, local: &Path) -> Result<u64> {
        let reply = self.expect(&[ReplyCode::TransferComplete, ReplyCode::FileActionOk]);
        match (copied, reply) {
            (Ok(n), Ok(_)) => Ok(n),
            (Err(CopyError::File(source)), _) => Err(ClientError::LocalFile {
                path: local.to_owned(),
                source,
            }),
            (Err(CopyError::Net(_)), Err(e @ ClientError::UnexpectedReply { .. })) => Err(e),
            (Err(CopyError::Net(e)), _) => Err(io_error(e, "the data transfer")),
            (Ok(_), Err(e)) => Err(e),
        }
    }

    /// Opens a passive data connection: EPSV, or PASV when the server lacks EPSV.
    ///
    /// The connection goes to the control connection's peer address in both cases.
    /// The address inside a PASV reply is ignored, as curl does by default: it is
    /// often wrong behind NAT, and trusting it would let a server point us at a
    /// third host.
    fn open_data(&mut self) -> Result<DataSetup> {
        if !self.passive {
            return self.open_active().map(DataSetup::Listening);
        }
        let mut port = None;
        if self.epsv {
            self.send(&Command::Epsv(EpsvArg::Any))?;
            let reply = self.read_reply()?;
            if reply.code == ReplyCode::ExtendedPassiveMode.number() {
                port = Some(parse_epsv_reply(&reply.text()).ok_or_else(|| {
                    ClientError::Protocol(format!("unreadable EPSV reply {:?}", reply.text()))
                })?);
            } else if EPSV_REFUSED.iter().any(|c| c.number() == reply.code) {
                self.epsv = false;
            } else {
                return Err(unexpected(reply));
            }
        }
        let port = match port {
            Some(p) => p,
            None => {
                self.send(&Command::Pasv)?;
                let reply = self.expect(&[ReplyCode::PassiveMode])?;
                parse_pasv_reply(&reply.text()).ok_or_else(|| {
                    ClientError::Protocol(format!("unreadable PASV reply {:?}", reply.text()))
                })?
            }
        };
        let addr = SocketAddr::new(self.peer.ip(), port);
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        connect_with_timeouts(addr, self.timeout)
            .map(DataSetup::Connected)
            .map_err(connect_err)
    }

    /// Starts the upload of the part of `remote` from `from` on: `STOR` when `from` is
    /// 0; else `REST from` and `STOR`, or `APPE` when the server refuses the REST or
    /// the STOR after it (a 5xx: some servers take REST for downloads only). Returns
    /// the data connection once the server's `1xx` came.
    fn start_resumed_upload(&mut self, remote: &str, from: u64) -> Result<DataSetup> {
        let mut append = false;
        loop {
            let data = self.open_data()?;
            let rest_stor = from > 0 && !append;
            let cmd = if from == 0 {
                Command::Stor(remote.to_owned())
            } else if append {
                Command::Appe(remote.to_owned())
            } else {
                self.send(&Command::Rest(from))?;
                let reply = self.read_reply()?;
                if reply.code == ReplyCode::PendingFurtherInfo.number() {
                    Command::Stor(remote.to_owned())
                } else if (500..600).contains(&reply.code) {
                    Command::Appe(remote.to_owned())
                } else {
                    return Err(unexpected(reply));
                }
            };
            let store = matches!(cmd, Command::Stor(_));
            self.send(&cmd)?;
            match self.expect_preliminary() {
                Ok(_) => return Ok(data),
                // The data connection of the refused STOR is dropped; APPE gets its own.
                Err(ClientError::UnexpectedReply { code, .. })
                    if rest_stor && store && (500..600).contains(&code) =>
                {
                    append = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens a data connection, sends `cmd` (RETR, STOR, LIST...), expects the `1xx`
    /// that starts the transfer (returned), and secures the connection when in TLS.
    fn start_transfer(&mut self, cmd: Command) -> Result<(ClientStream, ReceivedReply)> {
        self.start_transfer_from(cmd, None)
    }

    /// As [`Client::start_transfer`], with `REST offset` (when given) between the data
    /// connection and `cmd`, so the REST is the last command before the transfer
    /// (RFC 3659 §5.3).
    fn start_transfer_from(
        &mut self,
        cmd: Command,
        rest: Option<u64>,
    ) -> Result<(ClientStream, ReceivedReply)> {
        let data = self.open_data()?;
        if let Some(offset) = rest {
            self.send(&Command::Rest(offset))?;
            self.expect(&[ReplyCode::PendingFurtherInfo])?;
        }
        self.send(&cmd)?;
        let started = self.expect_preliminary()?;
        let data = self.data_stream(data)?;
        Ok((self.secure_data(data)?, started))
    }

    /// The data connection, once the server's `1xx` said the transfer starts: made
    /// already (passive), or accepted now (active). A server that never connects
    /// answers the transfer itself (`425`); that reply is read to stay in step.
    fn data_stream(&mut self, data: DataSetup) -> Result<TcpStream> {
        match data {
            DataSetup::Connected(tcp) => Ok(tcp),
            DataSetup::Listening(listener) => match self.accept_data(&listener) {
                Ok(tcp) => Ok(tcp),
                Err(e) => {
                    drop(listener);
                    let _ = self.read_reply();
                    Err(e)
                }
            },
        }
    }

    /// Waits up to the timeout for the server to connect to our listener, taking only
    /// a connection from the server's own address (anyone else could otherwise feed
    /// or read the transfer).
    fn accept_data(&self, listener: &TcpListener) -> Result<TcpStream> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let addr = listener
            .local_addr()
            .map_or_else(|_| "the data listener".to_owned(), |a| a.to_string());
        let accept_err = |source| ClientError::Connect {
            addr: addr.clone(),
            source,
        };
        listener.set_nonblocking(true).map_err(accept_err)?;
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match listener.accept() {
                Ok((tcp, from)) if from.ip() == self.peer.ip() => {
                    tcp.set_nonblocking(false).map_err(accept_err)?;
                    tcp.set_read_timeout(Some(self.timeout))
                        .map_err(accept_err)?;
                    tcp.set_write_timeout(Some(self.timeout))
                        .map_err(accept_err)?;
                    return Ok(tcp);
                }
                // Not the server: dropped, and the wait goes on.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Err(ClientError::Timeout(
                            "the server to open the data connection",
                        ));
                    }
                    let mut fds = [PollFd::new(listener, PollFlags::IN)];
                    let wait = Timespec::try_from(deadline - now).unwrap_or(Timespec {
                        tv_sec: 1,
                        tv_nsec: 0,
                    });
                    match poll(&mut fds, Some(&wait)) {
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(accept_err(e.into())),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(accept_err(e)),
            }
        }
    }

    /// Active mode: a listener on the control connection's own local address, named
    /// to the server with EPRT (RFC 2428 §2), or PORT (RFC 959) for an IPv4 address
    /// where the server refuses EPRT; a refusal of EPRT is remembered.
    fn open_active(&mut self) -> Result<TcpListener> {
        let local = self
            .control
            .get_ref()
            .tcp()
            .and_then(TcpStream::local_addr)
            .map_err(|e| self.lost(e, "the control connection's address"))?;
        let listener = TcpListener::bind(SocketAddr::new(local.ip(), 0)).map_err(|source| {
            ClientError::Connect {
                addr: format!("{}:0 (to listen for the data connection)", local.ip()),
                source,
            }
        })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ClientError::Connect {
                addr: local.ip().to_string(),
                source,
            })?;
        if self.eprt || addr.is_ipv6() {
            self.send(&Command::Eprt(addr))?;
            let reply = self.read_reply()?;
            if reply.code == ReplyCode::CommandOk.number() {
                return Ok(listener);
            }
            if addr.is_ipv6() || !EPSV_REFUSED.iter().any(|c| c.number() == reply.code) {
                return Err(unexpected(reply));
            }
            self.eprt = false;
        }
        self.send(&Command::Port(addr))?;
        self.expect(&[ReplyCode::CommandOk])?;
        Ok(listener)
    }

    /// Switches between passive data connections (the default: we connect to the
    /// server) and active ones (the server connects to us: EPRT/PORT), for servers
    /// and networks that need it.
    pub fn set_passive(&mut self, on: bool) {
        self.passive = on;
    }

    /// Whether data connections are passive (see [`Client::set_passive`]).
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// Starts downloading `remote`: the data connection, and the size the `150`
    /// announces. That size is for progress only: most servers say it, which saves a
    /// SIZE round trip per file; without it progress has no total.
    fn start_retr(&mut self, remote: &str) -> Result<(ClientStream, Option<u64>)> {
        let (data, started) = self.start_transfer(Command::Retr(remote.to_owned()))?;
        Ok((data, announced_size(&started.text())))
    }

    /// Wraps a data connection in TLS after [`Client::secure`]. It happens after the
    /// server's `150`, when the server is ready for the handshake; the control
    /// connection's TLS session is resumed, as servers may insist (RFC 4217 §10).
    fn secure_data(&mut self, tcp: TcpStream) -> Result<ClientStream> {
        let Some((config, name)) = &self.tls else {
            return Ok(ClientStream::plain(tcp));
        };
        let conn = ClientConnection::new(Arc::clone(config), name.clone())
            .map_err(|e| ClientError::Tls(io::Error::other(e)))?;
        match ClientStream::tls(tcp, conn) {
            Ok(stream) => Ok(stream),
            Err(e) => {
                // The server answers the failed transfer; read it to stay in step.
                let _ = self.read_reply();
                Err(ClientError::Tls(e))
            }
        }
    }

    fn fetch_listing(&mut self, cmd: Command) -> Result<Vec<u8>> {
        self.check_usable()?;
        let (mut data, _) = self.start_transfer(cmd)?;
        let mut bytes = Vec::new();
        let read = (&mut data)
            .take(MAX_LISTING + 1)
            .read_to_end(&mut bytes)
            .map_err(CopyError::Net)
            .map(|n| n as u64);
        drop(data);
        self.finish_transfer(read, Path::new(""))?;
        if bytes.len() as u64 > MAX_LISTING {
            return Err(ClientError::Protocol("listing longer than 64 MiB".into()));
        }
        Ok(bytes)
    }
}

/// `host:port` as people write it, with an IPv6 address in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What a server may answer for an aborted transfer and for the ABOR itself.
const ABORT_ANSWERS: &[ReplyCode] = &[
    ReplyCode::NoTransfer,
    ReplyCode::TransferComplete,
    ReplyCode::TransferAborted,
    ReplyCode::LocalError,
];

/// EPSV replies that mean "this server does not do EPSV": fall back to PASV.
const EPSV_REFUSED: &[ReplyCode] = &[
    ReplyCode::SyntaxError,
    ReplyCode::BadArguments,
    ReplyCode::NotImplemented,
    ReplyCode::ParameterNotImplemented,
    ReplyCode::ProtocolNotSupported,
];

/// The size a `150` reply announces, as in `Opening ... for name (1234 bytes)`.
fn announced_size(text: &str) -> Option<u64> {
    let before = text.rfind(" bytes)").map(|end| &text[..end])?;
    let start = before.rfind('(')? + 1;
    before[start..].trim().parse().ok()
}

/// The path in a `257` reply: the text between the first `"` and the next lone `"`,
/// with each `""` inside read as one `"` (RFC 959 Appendix II).
fn parse_257_path(text: &str) -> Option<String> {
    let mut chars = text.split_once('"')?.1.chars().peekable();
    let mut path = String::new();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
            } else {
                return Some(path);
            }
        }
        path.push(c);
    }
    None
}

/// The SHA-256 of a local file, hex.
/// The path [`ClientError::LocalFile`] names when the writer of
/// [`Client::get_into`] fails.
const OUTPUT: &str = "(output)";

/// A writer that hashes what passes through it, when asked to.
struct Hashing<'w, W> {
    out: &'w mut W,
    sha: Option<sha2::Sha256>,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(sha) = self.sha.as_mut() {
            sha.update(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Turns an I/O error on a connection into a timeout or a dropped connection.
fn io_error(e: io::Error, waiting_for: &'static str) -> ClientError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout(waiting_for),
        io::ErrorKind::UnexpectedEof => ClientError::Dropped(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed by the server",
        )),
        _ => ClientError::Dropped(e),
    }
}

fn unexpected(reply: ReceivedReply) -> ClientError {
    ClientError::UnexpectedReply {
        code: reply.code,
        text: reply.text(),
    }
}

fn is_preliminary(reply: &ReceivedReply) -> bool {
    (100..200).contains(&reply.code)
}

/// Connects to `addr` within `timeout`, and leaves that timeout on the connection's
/// reads and writes.
///
/// On Linux a blocking `connect` gives up after the socket's send timeout, so the
/// timeouts are set first and the connect waits itself: four system calls, where
/// [`TcpStream::connect_timeout`] (non-blocking connect, `poll`, back to blocking) and
/// the timeouts after it take eight, for every connection.
fn connect_with_timeouts(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    #[cfg(target_os = "linux")]
    {
        use rustix::net::sockopt::{set_socket_timeout, Timeout};
        use rustix::net::{AddressFamily, SocketFlags, SocketType};
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::INET,
            SocketAddr::V6(_) => AddressFamily::INET6,
        };
        let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
        // A zero timeout would mean "wait forever" to the kernel.
        let timeout = timeout.max(Duration::from_millis(1));
        set_socket_timeout(&fd, Timeout::Send, Some(timeout))?;
        set_socket_timeout(&fd, Timeout::Recv, Some(timeout))?;
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => Ok(TcpStream::from(fd)),
            // The send timeout passed with the connection still under way.
            Err(rustix::io::Errno::INPROGRESS | rustix::io::Errno::AGAIN) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            )),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(stream)
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `e` without the path that `tempfile` adds to its errors: the hidden temporary
/// file's name means nothing to the user, whose message names the target.
fn without_path(e: io::Error) -> io::Error {
    let code = e.raw_os_error().or_else(|| {
        let inner = e.get_ref()?.source()?.downcast_ref::<io::Error>()?;
        inner.raw_os_error()
    });
    match code {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::from(e.kind()),
    }
}

/// Opens the local file an upload sends, refusing anything but a regular file, before
/// anything is asked of the server.
fn open_upload(local: &Path) -> Result<(File, std::fs::Metadata)> {
    open_regular(local, std::fs::OpenOptions::new().read(true)).map_err(|source| {
        ClientError::LocalFile {
            path: local.to_owned(),
            source,
        }
    })
}

/// Opens `local` with `options`, refusing anything but a regular file.
fn open_regular(
    local: &Path,
    options: &std::fs::OpenOptions,
) -> io::Result<(File, std::fs::Metadata)> {
    let file = options.open(local)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, meta))
}

/// The temporary file a download is written to, in `dir` beside its target.
fn download_temp(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(DOWNLOAD_PREFIX);
    // The renamed file should get the usual permissions (0666 less the umask), not
    // the owner-only mode temporary files are created with.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// The port in an EPSV reply: `... (|||port|)` with any delimiter (RFC 2428 §3).
fn parse_epsv_reply(text: &str) -> Option<u16> {
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    let delim = inner.chars().next()?;
    let fields: Vec<&str> = inner.split(delim).collect();
    let ["", "", "", port, ""] = fields.as_slice() else {
        return None;
    };
    port.parse().ok().filter(|&p| p != 0)
}

/// The port in a PASV reply: the first `h1,h2,h3,h4,p1,p2` in the text (RFC 959
/// §4.1.2; servers differ on parentheses around it).
fn parse_pasv_reply(text: &str) -> Option<u16> {
    text.split(|c: char| !(c.is_ascii_digit() || c == ',' || c == ' '))
        .filter_map(parse_host_port)
        .map(|addr| addr.port())
        .find(|&p| p != 0)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod size_tests {
    use super::announced_size;

    #[test]
    fn sizes_are_read_from_150_replies() {
        let ours = "Opening data connection for /a (1234 bytes)";
        let vsftpd = "Opening BINARY mode data connection for a.bin (99 bytes).";
        assert_eq!(announced_size(ours), Some(1234));
        assert_eq!(announced_size(vsftpd), Some(99));
        assert_eq!(
            announced_size("File status okay. About to open data connection."),
            None
        );
        assert_eq!(announced_size("for (x) (many bytes)"), None);
    }
}
