//! What can go wrong handling a command, and the one place where that becomes a reply.
//!
//! Handlers return `Result<Reply, Failure>`. A [`Failure`] is a kind, never a reply
//! code picked at the call site: [`Failure::reply`] maps every kind (and every
//! [`Refusal`]) to its code and text. Replies never carry a host path or an
//! `os error N`: the system's own words go to the log ([`Failure::log`]).

use std::io;
use std::net::SocketAddr;

use rustix::io::Errno;

use crate::path::PathError;
use crate::protocol::{Reply, ReplyCode};
use crate::storage::StorageError;
use crate::transfer::CopyError;

/// What went wrong handling a command. Each kind is documented by the reply it earns.
#[derive(Debug)]
pub(super) enum Failure {
    /// 530: the command needs a login.
    NotLoggedIn,
    /// 501 (NUL), 553 (reserved name), 550 (outside the root, or no such directory).
    Path(PathError),
    /// A file-system action failed: 550 when the file is missing or not accessible,
    /// 452 when the disk is full, 451 otherwise.
    Fs(io::Error),
    /// The storage backend refused or failed: each [`StorageError`] kind has its
    /// reply (550 for most; an I/O error as [`Failure::Fs`]).
    Storage(StorageError),
    /// 450: another transfer holds the file for longer than the lock wait.
    Busy,
    /// 425: the data connection could not be opened, or none was set up.
    NoData(NoData),
    /// 426: the data connection failed during the transfer.
    Transfer(io::Error),
    /// 426: the client sent ABOR during the transfer (the ABOR itself then gets 226).
    Aborted,
    /// A refusal of what the command asks (see [`Refusal`]).
    Refused(Refusal),
    /// The control connection failed: nothing can be sent, the session ends.
    Control(io::Error),
}

/// Why a transfer has no data connection (all `425`).
#[derive(Debug)]
pub(super) enum NoData {
    /// No PASV, EPSV, PORT or EPRT came before the transfer.
    NotSetUp,
    /// The passive listener waited this many seconds for a connection, then closed.
    Expired(u64),
    /// No passive port could be opened.
    Listen(io::Error),
    /// The server has as many passive ports open as it may.
    TooManyListeners,
    /// The connection was not made (active: connect failed; passive: none came).
    Connect(io::Error),
    /// TLS could not start on the data connection.
    TlsStart(rustls::Error),
    /// The data connection's TLS handshake failed.
    Handshake(io::Error),
}

/// A command refused for what it asks, each with its reply.
#[derive(Debug)]
pub(super) enum Refusal {
    // Logins and TLS.
    /// 530: `--require-tls` and USER on a plain control connection.
    TlsFirst,
    /// 530: a wrong name or password (the same reply for both, RFC 2577 §5).
    LoginIncorrect,
    /// 530: the user's home cannot be opened or made.
    HomeUnavailable,
    /// 503: PASS with no USER before it.
    PassBeforeUser,
    /// 503: AUTH reached the command handler (the serve loop answers it itself).
    AuthOutOfPlace,
    /// 502: AUTH on a server without a certificate.
    TlsUnconfigured,
    /// 504: AUTH with a mechanism other than TLS.
    AuthMechanism(String),
    /// 503: AUTH TLS on a connection in TLS already.
    AlreadyInTls,
    /// 451: the session's TLS configuration could not be made.
    TlsUnavailable,
    /// 503: PBSZ before AUTH TLS.
    PbszBeforeAuth,
    /// 503: PROT before PBSZ.
    ProtBeforePbsz,
    /// 534: PROT C under `--require-tls`.
    ClearData,
    /// 536: a protection level other than C and P.
    ProtLevel(char),
    /// 533: CCC (the control connection stays encrypted).
    Ccc,
    /// 502: REIN in TLS (it would mean leaving TLS).
    ReinInTls,
    /// 522: a PROT P data connection that did not resume the control's TLS session.
    TlsNotResumed,
    /// 521: a clear data connection under `--require-tls`.
    ProtectionRequired,
    // Options and other commands.
    /// 504: OPTS UTF8 OFF.
    Utf8Off,
    /// 501: OPTS HASH with an unknown algorithm.
    UnknownHash,
    /// 501: OPTS of an unknown option.
    UnknownOption,
    /// 504: a SITE command other than HELP.
    Site(String),
    /// 550: the user's permissions do not allow the command.
    Denied,
    // Data connections.
    /// 503: PASV, PORT or EPRT after EPSV ALL.
    EpsvAllOnly,
    /// 425: PASV on an IPv6 control connection.
    PasvNeedsIpv4,
    /// 522: EPSV for the other network protocol; carries ours (1 or 2).
    EpsvProtocol(u8),
    /// 504: PORT/EPRT to another address or a privileged port (RFC 2577 §3).
    ThirdParty,
    // Files and directories.
    /// 550: the path names something other than a plain file.
    NotAFile,
    /// 550: the path names something other than a directory.
    NotADirectory,
    /// 550: an upload onto a directory.
    IsADirectory,
    /// 550: DELE of a directory.
    DeleteDirectory,
    /// 550: RMD of the root.
    RemoveRoot,
    /// 550: RNFR or RNTO of the root.
    RenameRoot,
    /// 553: a new name with a control character.
    ControlCharName,
    /// 550: MLST of a name with a control character.
    NameHidden,
    /// 554: REST past the end of the file (its length, when known).
    RestPastEnd { offset: u64, len: Option<u64> },
    /// 553: STOU found no free name.
    NoUniqueName,
    /// 503: RNTO without RNFR right before it.
    RntoBeforeRnfr,
    /// 450: a listing's pattern matched nothing.
    NoMatch,
    /// 501: MLSD of something other than a directory.
    MlsdNeedsDirectory,
    /// 450: every HASH slot stayed busy for the lock wait.
    HashBusy,
}

impl From<PathError> for Failure {
    fn from(e: PathError) -> Failure {
        Failure::Path(e)
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Failure {
        Failure::Storage(e)
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

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::Refused(r)
    }
}

impl Failure {
    /// The one place where a failure becomes a reply.
    pub(super) fn reply(self) -> Reply {
        use ReplyCode::*;
        match self {
            Failure::NotLoggedIn => Reply::new(NotLoggedIn, "Please log in with USER and PASS"),
            Failure::Path(PathError::Nul) => Reply::new(BadArguments, "Path contains a NUL byte"),
            Failure::Path(PathError::Reserved) => {
                Reply::new(NameNotAllowed, "File name not allowed")
            }
            Failure::Path(PathError::Outside) => Reply::new(FileUnavailable, "Permission denied"),
            Failure::Path(PathError::Io(e)) | Failure::Fs(e) => fs_reply(&e),
            Failure::Storage(e) => storage_reply(e),
            Failure::Busy => Reply::new(
                FileBusy,
                "File busy: another transfer is using it, try again",
            ),
            Failure::NoData(why) => Reply::new(CantOpenDataConnection, why.text()),
            Failure::Transfer(e) => Reply::new(
                TransferAborted,
                format!("Connection closed; transfer aborted: {}", plain(&e)),
            ),
            Failure::Aborted => Reply::new(TransferAborted, "Transfer aborted by ABOR"),
            Failure::Refused(refusal) => refusal.reply(),
            Failure::Control(e) => Reply::new(ServiceNotAvailable, plain(&e)),
        }
    }

    /// Logs the details of a failure that its reply leaves out: the system's own
    /// error text, which may name host paths. Refusals the reply says all of go to
    /// the debug log only.
    pub(super) fn log(&self, peer: SocketAddr, verb: &str) {
        match self {
            Failure::Fs(e)
            | Failure::Path(PathError::Io(e))
            | Failure::Storage(StorageError::Io(e)) => {
                let level = match e.kind() {
                    io::ErrorKind::NotFound
                    | io::ErrorKind::NotADirectory
                    | io::ErrorKind::AlreadyExists
                    | io::ErrorKind::DirectoryNotEmpty
                    | io::ErrorKind::IsADirectory => log::Level::Debug,
                    _ => log::Level::Warn,
                };
                log::log!(level, "{peer}: {verb} failed: {e}");
            }
            Failure::Storage(e) => log::debug!("{peer}: {verb} failed: {e}"),
            Failure::Transfer(e) => log::info!("{peer}: {verb} aborted: {e}"),
            Failure::NoData(why) => log::info!("{peer}: {verb}: {}", why.detail()),
            _ => log::debug!("{peer}: {verb} refused"),
        }
    }
}

impl NoData {
    /// What the client is told.
    fn text(&self) -> String {
        match self {
            NoData::NotSetUp => "Use PASV, EPSV, PORT or EPRT first".into(),
            NoData::Expired(secs) => format!(
                "Passive port closed: no data connection came within {secs} s; \
                 send PASV or EPSV again"
            ),
            NoData::Listen(e) => format!("Cannot open a passive port: {}", plain(e)),
            NoData::TooManyListeners => "Too many passive ports open; try again later".into(),
            NoData::Connect(e) => format!("Cannot open data connection: {}", plain(e)),
            NoData::TlsStart(_) => "Cannot start TLS on the data connection".into(),
            NoData::Handshake(e) => {
                format!("TLS handshake on the data connection failed: {}", plain(e))
            }
        }
    }

    /// What the log is told: the errors' own words.
    fn detail(&self) -> String {
        match self {
            NoData::Listen(e) | NoData::Connect(e) | NoData::Handshake(e) => {
                format!("{}: {e}", self.text())
            }
            NoData::TlsStart(e) => format!("{}: {e}", self.text()),
            _ => self.text(),
        }
    }
}

impl Refusal {
    /// The reply each refusal earns.
    pub(super) fn reply(&self) -> Reply {
        use ReplyCode::*;
        let (code, text): (ReplyCode, String) = match self {
            Refusal::TlsFirst => (
                NotLoggedIn,
                "This server requires TLS: send AUTH TLS first".into(),
            ),
            Refusal::LoginIncorrect => (NotLoggedIn, "Login incorrect".into()),
            Refusal::HomeUnavailable => (NotLoggedIn, "Home directory unavailable".into()),
            Refusal::PassBeforeUser => (BadSequence, "Login with USER first".into()),
            Refusal::AuthOutOfPlace => (BadSequence, "AUTH out of place".into()),
            Refusal::TlsUnconfigured => (
                NotImplemented,
                "TLS is not configured on this server".into(),
            ),
            Refusal::AuthMechanism(m) => (
                ParameterNotImplemented,
                format!("AUTH {m} not supported; use AUTH TLS"),
            ),
            Refusal::AlreadyInTls => (BadSequence, "Already in TLS".into()),
            Refusal::TlsUnavailable => (LocalError, "TLS is unavailable".into()),
            Refusal::PbszBeforeAuth => (BadSequence, "PBSZ needs AUTH TLS first".into()),
            Refusal::ProtBeforePbsz => (BadSequence, "PROT needs PBSZ first".into()),
            Refusal::ClearData => (
                PolicyDenied,
                "Clear data connections are not allowed on this server".into(),
            ),
            Refusal::ProtLevel(level) => (
                ProtLevelNotSupported,
                format!("PROT {level} not supported; use P or C"),
            ),
            Refusal::Ccc => (
                ProtectionDenied,
                "CCC not allowed: the control connection stays encrypted".into(),
            ),
            Refusal::ReinInTls => (
                NotImplemented,
                "REIN not allowed in TLS: the control connection stays encrypted".into(),
            ),
            Refusal::TlsNotResumed => (
                ProtocolNotSupported,
                "The data connection must resume the control connection's TLS session".into(),
            ),
            Refusal::ProtectionRequired => (
                ProtectionRequired,
                "Data connections must be protected: send PBSZ 0 and PROT P".into(),
            ),
            Refusal::Utf8Off => (ParameterNotImplemented, "UTF8 cannot be turned off".into()),
            Refusal::UnknownHash => (BadArguments, "Unknown algorithm".into()),
            Refusal::UnknownOption => (BadArguments, "Option not understood".into()),
            Refusal::Site(name) => (
                ParameterNotImplemented,
                format!("SITE {name} not supported; SITE HELP lists what is"),
            ),
            Refusal::Denied => (FileUnavailable, "Permission denied".into()),
            Refusal::EpsvAllOnly => (BadSequence, "Only EPSV after EPSV ALL".into()),
            Refusal::PasvNeedsIpv4 => (CantOpenDataConnection, "PASV needs IPv4; use EPSV".into()),
            Refusal::EpsvProtocol(ours) => (
                ProtocolNotSupported,
                format!("Network protocol not supported, use ({ours})"),
            ),
            Refusal::ThirdParty => (
                ParameterNotImplemented,
                "Data connections go only to your own address and a port >= 1024".into(),
            ),
            Refusal::NotAFile => (FileUnavailable, "Not a plain file".into()),
            Refusal::NotADirectory => (FileUnavailable, "Not a directory".into()),
            Refusal::IsADirectory => (FileUnavailable, "Is a directory".into()),
            Refusal::DeleteDirectory => (FileUnavailable, "Is a directory; use RMD".into()),
            Refusal::RemoveRoot => (FileUnavailable, "Cannot remove the root".into()),
            Refusal::RenameRoot => (FileUnavailable, "Cannot rename the root".into()),
            Refusal::ControlCharName => (
                NameNotAllowed,
                "File name not allowed: it has a control character".into(),
            ),
            Refusal::NameHidden => (
                FileUnavailable,
                "Name not shown: it has a control character".into(),
            ),
            Refusal::RestPastEnd {
                offset,
                len: Some(len),
            } => (
                InvalidRestart,
                format!("REST {offset} is past the end of the file ({len} bytes)"),
            ),
            Refusal::RestPastEnd { offset, len: None } => (
                InvalidRestart,
                format!("REST {offset} is past the end of the file"),
            ),
            Refusal::NoUniqueName => (NameNotAllowed, "No unique file name is free".into()),
            Refusal::RntoBeforeRnfr => (BadSequence, "Send RNFR first".into()),
            Refusal::NoMatch => (FileBusy, "No files found".into()),
            Refusal::MlsdNeedsDirectory => (BadArguments, "MLSD needs a directory".into()),
            Refusal::HashBusy => (
                FileBusy,
                "Too many checksums being computed, try again later".into(),
            ),
        };
        Reply::new(code, text)
    }
}

/// The reply for what a storage backend said: the kinds in the words a local file
/// system's errors have always had here, whichever backend it was.
fn storage_reply(e: StorageError) -> Reply {
    use ReplyCode::*;
    match e {
        StorageError::NotFound | StorageError::NotADirectory => {
            Reply::new(FileUnavailable, "No such file or directory")
        }
        StorageError::IsADirectory => Reply::new(FileUnavailable, "Is a directory"),
        StorageError::NotEmpty => Reply::new(FileUnavailable, "Directory not empty"),
        StorageError::Exists => Reply::new(FileUnavailable, "File exists"),
        StorageError::Outside => Reply::new(FileUnavailable, "Permission denied"),
        StorageError::Unsupported(why) => Reply::new(
            FileUnavailable,
            format!("Not supported by this server's storage: {why}"),
        ),
        StorageError::Io(e) => fs_reply(&e),
    }
}

/// The reply for a failed file-system action. It says what failed in the client's
/// terms: never the error's own text, which can hold a host path (an error from
/// making a temporary file names it) or an `os error N`; the details go to the log
/// ([`Failure::log`]).
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
pub(super) fn plain(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.kind().to_string();
    };
    let text = io::Error::from_raw_os_error(code).to_string();
    match text.strip_suffix(&format!(" (os error {code})")) {
        Some(words) => words.to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_no_os_error_numbers() {
        let refused = io::Error::from_raw_os_error(Errno::CONNREFUSED.raw_os_error());
        let reply = Failure::NoData(NoData::Connect(refused)).reply().to_wire();
        assert!(reply.starts_with("425 "), "{reply}");
        assert!(!reply.contains("os error"), "{reply}");
        assert!(reply.contains("Connection refused"), "{reply}");
    }

    #[test]
    fn storage_errors_have_their_replies() {
        let cases = [
            (StorageError::NotFound, "550 No such file or directory"),
            (StorageError::NotADirectory, "550 No such file or directory"),
            (StorageError::IsADirectory, "550 Is a directory"),
            (StorageError::NotEmpty, "550 Directory not empty"),
            (StorageError::Exists, "550 File exists"),
            (StorageError::Outside, "550 Permission denied"),
            (
                StorageError::Unsupported("APPE".into()),
                "550 Not supported by this server's storage: APPE",
            ),
            (
                StorageError::Io(io::ErrorKind::StorageFull.into()),
                "452 Insufficient storage space",
            ),
            (
                StorageError::Io(io::Error::from_raw_os_error(Errno::ACCESS.raw_os_error())),
                "550 Permission denied",
            ),
        ];
        for (error, want) in cases {
            let wire = Failure::from(error).reply().to_wire();
            assert!(wire.starts_with(want), "{wire}");
            assert!(!wire.contains("os error"), "{wire}");
        }
    }

    #[test]
    fn every_refusal_has_its_code() {
        let cases = [
            (Refusal::Denied, 550),
            (Refusal::TlsFirst, 530),
            (Refusal::RntoBeforeRnfr, 503),
            (Refusal::NoMatch, 450),
            (
                Refusal::RestPastEnd {
                    offset: 9,
                    len: Some(3),
                },
                554,
            ),
            (Refusal::ControlCharName, 553),
            (Refusal::EpsvProtocol(1), 522),
        ];
        for (refusal, code) in cases {
            let wire = Failure::from(refusal).reply().to_wire();
            assert!(wire.starts_with(&format!("{code} ")), "{wire}");
        }
    }
}
