//! The FTP wire protocol: commands, replies and bounded line I/O, side by side.
//!
//! Every command line a peer sends becomes a [`Command`] in exactly one function,
//! [`Command::parse`]; every reply we send is a [`Reply`] formatted by its `Display`
//! implementation. Reply codes are named by [`ReplyCode`], never written as bare
//! numbers elsewhere. The client half reads replies with [`Reply::read_from`].
//!
//! References: RFC 959 (base protocol, §4.1 commands, §4.2 replies), RFC 2389
//! (FEAT/OPTS), RFC 2428 (EPSV/EPRT), RFC 3659 (SIZE/MDTM), RFC 2640 (UTF-8),
//! draft-somers-ftp-mfxx (MFMT).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::time::Utc;

/// Longest command line we accept, in bytes, including the line ending.
///
/// Longer lines get [`ReplyCode::SyntaxError`] and are discarded as they arrive,
/// never buffered whole (RFC 959 sets no limit; 8 KiB leaves room for any path).
pub const MAX_LINE: usize = 8 * 1024;

/// A three-digit FTP reply code (RFC 959 §4.2.1), named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyCode {
    /// 150: file status okay; about to open the data connection.
    FileStatusOk,
    /// 200: command okay.
    CommandOk,
    /// 202: command not implemented, superfluous at this site.
    Superfluous,
    /// 211: system status, or the FEAT list.
    SystemStatus,
    /// 213: file status (SIZE, MDTM).
    FileStatus,
    /// 214: help message.
    HelpMessage,
    /// 215: NAME system type.
    SystemType,
    /// 220: service ready for new user (the greeting).
    ServiceReady,
    /// 221: service closing control connection (QUIT).
    ClosingControl,
    /// 225: data connection open; no transfer in progress (ABOR with nothing to abort).
    NoTransfer,
    /// 226: closing data connection; requested file action successful.
    TransferComplete,
    /// 227: entering passive mode (h1,h2,h3,h4,p1,p2).
    PassiveMode,
    /// 229: entering extended passive mode (|||port|).
    ExtendedPassiveMode,
    /// 230: user logged in, proceed.
    LoggedIn,
    /// 234: security data exchange complete; the TLS handshake follows (RFC 4217 §4).
    SecurityExchange,
    /// 250: requested file action okay, completed.
    FileActionOk,
    /// 257: "PATHNAME" created / current directory.
    PathName,
    /// 331: user name okay, need password.
    NeedPassword,
    /// 350: requested file action pending further information (REST, RNFR).
    PendingFurtherInfo,
    /// 421: service not available, closing control connection.
    ServiceNotAvailable,
    /// 425: can't open data connection.
    CantOpenDataConnection,
    /// 426: connection closed; transfer aborted.
    TransferAborted,
    /// 450: requested file action not taken; file unavailable (busy).
    FileBusy,
    /// 451: requested action aborted: local error in processing.
    LocalError,
    /// 452: requested action not taken: insufficient storage space.
    InsufficientStorage,
    /// 500: syntax error, command unrecognized (or line too long).
    SyntaxError,
    /// 501: syntax error in parameters or arguments.
    BadArguments,
    /// 502: command not implemented.
    NotImplemented,
    /// 503: bad sequence of commands.
    BadSequence,
    /// 504: command not implemented for that parameter.
    ParameterNotImplemented,
    /// 522: network protocol not supported (RFC 2428).
    ProtocolNotSupported,
    /// 521: the data connection cannot be opened with this PROT setting (RFC 4217 §9).
    ProtectionRequired,
    /// 530: not logged in.
    NotLoggedIn,
    /// 533: command protection level denied for policy reasons (RFC 2228; CCC here).
    ProtectionDenied,
    /// 534: request denied for policy reasons (RFC 2228; a plain login where TLS is required).
    PolicyDenied,
    /// 536: requested PROT level not supported (RFC 2228).
    ProtLevelNotSupported,
    /// 550: requested action not taken; file unavailable (not found, no access).
    FileUnavailable,
    /// 553: requested action not taken; file name not allowed.
    NameNotAllowed,
    /// 554: requested action not taken: invalid REST parameter (RFC 3659 §5.4).
    InvalidRestart,
}

impl ReplyCode {
    /// The numeric code as sent on the wire.
    pub fn number(self) -> u16 {
        use ReplyCode::*;
        match self {
            FileStatusOk => 150,
            CommandOk => 200,
            Superfluous => 202,
            SystemStatus => 211,
            FileStatus => 213,
            HelpMessage => 214,
            SystemType => 215,
            ServiceReady => 220,
            ClosingControl => 221,
            NoTransfer => 225,
            TransferComplete => 226,
            PassiveMode => 227,
            ExtendedPassiveMode => 229,
            LoggedIn => 230,
            SecurityExchange => 234,
            FileActionOk => 250,
            PathName => 257,
            NeedPassword => 331,
            PendingFurtherInfo => 350,
            ServiceNotAvailable => 421,
            CantOpenDataConnection => 425,
            TransferAborted => 426,
            FileBusy => 450,
            LocalError => 451,
            InsufficientStorage => 452,
            SyntaxError => 500,
            BadArguments => 501,
            NotImplemented => 502,
            BadSequence => 503,
            ParameterNotImplemented => 504,
            ProtocolNotSupported => 522,
            ProtectionRequired => 521,
            NotLoggedIn => 530,
            ProtectionDenied => 533,
            PolicyDenied => 534,
            ProtLevelNotSupported => 536,
            FileUnavailable => 550,
            NameNotAllowed => 553,
            InvalidRestart => 554,
        }
    }
}

/// A reply to send: a code and one or more lines of text.
///
/// `Display` writes the RFC 959 §4.2 form without the final CRLF: `NNN text`, or for
/// several lines `NNN-first`, the middle lines, then `NNN last`, joined by CRLF.
/// Middle lines are indented by one space so that none can be mistaken for the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code.
    pub code: ReplyCode,
    /// The text lines; never empty, and no line contains CR or LF.
    lines: Vec<String>,
}

impl Reply {
    /// A single-line reply. CR and LF in `text` are replaced so one reply stays one line.
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![sanitize(text.into())],
        }
    }

    /// A multi-line reply: `first` and `last` carry the code, `middle` lines are indented.
    pub fn multi(code: ReplyCode, first: &str, middle: &[String], last: &str) -> Reply {
        let mut lines = Vec::with_capacity(middle.len() + 2);
        lines.push(sanitize(first.to_owned()));
        lines.extend(middle.iter().map(|l| format!(" {}", sanitize(l.clone()))));
        lines.push(sanitize(last.to_owned()));
        Reply { code, lines }
    }

    /// The text lines of the reply (without codes).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The formatted reply with its final CRLF, ready to write to the control connection.
    pub fn to_wire(&self) -> String {
        format!("{self}\r\n")
    }
}

fn sanitize(text: String) -> String {
    if text.contains(['\r', '\n']) {
        text.replace(['\r', '\n'], " ")
    } else {
        text
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code.number();
        let last = self.lines.len() - 1;
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                f.write_str("\r\n")?;
            }
            if i == 0 && last > 0 {
                write!(f, "{code}-{line}")?;
            } else if i == last {
                write!(f, "{code} {line}")?;
            } else {
                f.write_str(line)?;
            }
        }
        Ok(())
    }
}

/// What [`read_line`] found on the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line is in the buffer, without its CRLF or LF.
    Complete,
    /// The line passed the bound. Said as soon as it does, not at its end: the rest of
    /// it is thrown away by the calls that follow, as it arrives.
    TooLong,
    /// The peer closed the connection (any partial line is dropped).
    Eof,
    /// [`read_line_within`] read what it was allowed to and no line ended yet; the
    /// bytes so far are kept for the next call.
    Pending,
}

/// Reads one line into `buf` (cleared first unless a previous call stopped mid-line),
/// accepting CRLF or a bare LF. A line longer than `max` is reported as
/// [`Line::TooLong`] once, as soon as it passes `max`, and the rest of it is discarded
/// by the next calls without being kept.
///
/// A read timeout surfaces as an `io::Error` of kind `WouldBlock` or `TimedOut`; the
/// bytes read so far stay in `buf` and `state` remembers it, so the next call
/// continues the same line. Callers keep `buf` and `state` across calls for that reason.
///
/// # Errors
/// Any I/O error from the reader, including read timeouts (see above).
pub fn read_line<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    state: &mut LineState,
    max: usize,
) -> io::Result<Line> {
    state.start(buf);
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (used, found) = take_line(available, buf, state, max);
        reader.consume(used);
        if let Some(line) = found {
            return Ok(line);
        }
    }
}

/// As [`read_line`], but it reads from the connection at most `reads` times (bytes
/// already buffered cost none), and then answers [`Line::Pending`] if no line ended:
/// a peer that sends a line a byte at a time cannot keep the caller reading.
///
/// # Errors
/// As [`read_line`].
pub fn read_line_within<R: Read>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    state: &mut LineState,
    max: usize,
    mut reads: usize,
) -> io::Result<Line> {
    state.start(buf);
    loop {
        if reader.buffer().is_empty() {
            if reads == 0 {
                return Ok(Line::Pending);
            }
            reads -= 1;
        }
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (used, found) = take_line(available, buf, state, max);
        reader.consume(used);
        if let Some(line) = found {
            return Ok(line);
        }
    }
}

/// Takes what `available` holds of the current line into `buf`: how many bytes were
/// used, and what was found if the line ended (or passed `max`, or the input did).
fn take_line(
    available: &[u8],
    buf: &mut Vec<u8>,
    state: &mut LineState,
    max: usize,
) -> (usize, Option<Line>) {
    if available.is_empty() {
        state.partial = false;
        state.overflow = false;
        return (0, Some(Line::Eof));
    }
    let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
        Some(i) => (&available[..i], Some(i + 1)),
        None => (available, None),
    };
    let used = found.unwrap_or(available.len());
    if state.overflow {
        // The rest of a line already reported too long: dropped as it comes.
        if found.is_some() {
            state.partial = false;
            state.overflow = false;
            buf.clear();
        }
        return (used, None);
    }
    state.partial = true;
    if buf.len() + chunk.len() >= max {
        buf.clear();
        state.overflow = found.is_none();
        state.partial = found.is_none();
        return (used, Some(Line::TooLong));
    }
    buf.extend_from_slice(chunk);
    if found.is_none() {
        return (used, None);
    }
    state.partial = false;
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    (used, Some(Line::Complete))
}

/// The state [`read_line`] keeps between calls interrupted by a read timeout.
#[derive(Debug, Default, Clone, Copy)]
pub struct LineState {
    /// A line has begun and not ended.
    partial: bool,
    /// The line begun was reported too long; the rest of it is being discarded.
    overflow: bool,
}

impl LineState {
    /// Clears `buf` for a new line unless one is under way.
    fn start(&self, buf: &mut Vec<u8>) {
        if !self.partial {
            buf.clear();
        }
    }

    /// Whether a line has begun and not ended (bytes of it are kept, or being dropped).
    pub fn in_line(&self) -> bool {
        self.partial
    }
}

/// Representation type (TYPE, RFC 959 §3.1.1). Bytes are never rewritten either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    /// TYPE A: accepted for compatibility; transfers stay byte-exact.
    Ascii,
    /// TYPE I (or L 8): binary.
    Image,
}

/// A parsed FTP command. Arguments are validated per verb by [`Command::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// USER name.
    User(String),
    /// PASS password (may be empty).
    Pass(String),
    /// SYST.
    Syst,
    /// FEAT (RFC 2389).
    Feat,
    /// OPTS option (RFC 2389); the whole argument, e.g. `UTF8 ON`.
    Opts(String),
    /// TYPE A | I | L 8.
    Type(TransferType),
    /// MODE S (other modes are refused by the parser).
    Mode,
    /// STRU F (other structures are refused by the parser).
    Stru,
    /// PWD (also XPWD).
    Pwd,
    /// CWD path (also XCWD).
    Cwd(String),
    /// CDUP (also XCUP).
    Cdup,
    /// PASV.
    Pasv,
    /// EPSV [1|2|ALL] (RFC 2428 §3).
    Epsv(EpsvArg),
    /// PORT h1,h2,h3,h4,p1,p2.
    Port(SocketAddr),
    /// EPRT |proto|addr|port| (RFC 2428 §2).
    Eprt(SocketAddr),
    /// RETR path.
    Retr(String),
    /// STOR path.
    Stor(String),
    /// APPE path: append to the file (create it if missing).
    Appe(String),
    /// STOU [name]: store under a unique name the server picks (RFC 959 §4.1.3); some
    /// clients suggest a name to start from.
    Stou(Option<String>),
    /// REST offset: the next RETR or STOR starts at this byte (RFC 3659 §5).
    Rest(u64),
    /// DELE path.
    Dele(String),
    /// MKD path (also XMKD).
    Mkd(String),
    /// RMD path (also XRMD).
    Rmd(String),
    /// RNFR path: the file to rename.
    Rnfr(String),
    /// RNTO path: its new name.
    Rnto(String),
    /// ABOR: abort the transfer in progress.
    Abor,
    /// STAT [path]: server status, or a listing over the control connection.
    Stat(Option<String>),
    /// SITE subcommand; only `SITE HELP` is supported.
    Site(String),
    /// MLST [path]: facts about one entry, on the control connection (RFC 3659 §7).
    Mlst(Option<String>),
    /// MLSD [path]: facts about a directory's entries, on a data connection.
    Mlsd(Option<String>),
    /// HASH path: a digest of the file (draft-bryan-ftpext-hash).
    Hash(String),
    /// AUTH mechanism: `TLS` starts explicit FTPS (RFC 4217 §4).
    Auth(String),
    /// PBSZ size: the protection buffer size, always 0 with TLS (RFC 4217 §8).
    Pbsz(u64),
    /// PROT level: `C` (clear) or `P` (private) data connections (RFC 4217 §9).
    Prot(char),
    /// CCC: back to a clear control connection (refused here).
    Ccc,
    /// SIZE path (RFC 3659 §4).
    Size(String),
    /// MDTM path (RFC 3659 §3).
    Mdtm(String),
    /// MFMT time path: set the file's modification time (draft-somers-ftp-mfxx §3).
    Mfmt {
        /// The new modification time, UTC.
        time: TimeVal,
        /// The file, verbatim (spaces allowed).
        path: String,
    },
    /// LIST [options] [path]; `ls`-style options such as `-la` are dropped.
    List(Option<String>),
    /// NLST [options] [path].
    Nlst(Option<String>),
    /// NOOP.
    Noop,
    /// HELP [topic].
    Help(Option<String>),
    /// ALLO (superfluous: storage is not preallocated).
    Allo,
    /// REIN (RFC 959 §4.1.1): back to the state just after the connection was made.
    Rein,
    /// QUIT.
    Quit,
}

/// The argument of EPSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: use the control connection's protocol.
    Any,
    /// `1` (IPv4) or `2` (IPv6): the network protocol the client asks for.
    Protocol(u8),
    /// `ALL`: from now on only EPSV may set up data connections.
    All,
}

/// Why a command line could not be parsed; each kind maps to one reply code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The verb is not an FTP command we know (500).
    #[error("unknown command {0}")]
    Unknown(String),
    /// The verb is a known FTP command that this server does not implement (502).
    #[error("command {0} not implemented")]
    NotImplemented(String),
    /// The arguments do not fit the verb (501).
    #[error("{0}")]
    BadArguments(String),
    /// A supported verb with a parameter value we do not support (504).
    #[error("{0}")]
    UnsupportedParameter(String),
    /// EPRT with a network protocol we do not support (522, RFC 2428 §2); the text
    /// names the ones we do, in parentheses.
    #[error("{0}")]
    ProtocolNotSupported(String),
}

impl ParseError {
    /// The reply this error earns.
    pub fn reply(&self) -> Reply {
        let code = match self {
            ParseError::Unknown(_) => ReplyCode::SyntaxError,
            ParseError::NotImplemented(_) => ReplyCode::NotImplemented,
            ParseError::BadArguments(_) => ReplyCode::BadArguments,
            ParseError::UnsupportedParameter(_) => ReplyCode::ParameterNotImplemented,
            ParseError::ProtocolNotSupported(_) => ReplyCode::ProtocolNotSupported,
        };
        Reply::new(code, self.to_string())
    }
}

/// Verbs from RFC 959 and its extensions that we recognize but do not implement.
const NOT_IMPLEMENTED: &[&str] = &[
    "ACCT", "SMNT", "STOU", "LANG", "HOST", "RANG", "ADAT", "MIC", "CONF", "ENC",
];

impl Command {
    /// Parses one command line (without its line ending).
    ///
    /// Verbs are case-insensitive; the argument is everything after the first space,
    /// kept verbatim (file names may contain spaces). Invalid UTF-8 is refused
    /// (RFC 2640 makes UTF-8 the path encoding), as is NUL anywhere on the line.
    ///
    /// # Errors
    /// A [`ParseError`] naming what is wrong, which maps to a 500, 501, 502 or 504 reply.
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let line = strip_telnet(line);
        let line = std::str::from_utf8(&line)
            .map_err(|_| ParseError::BadArguments("command line is not valid UTF-8".into()))?;
        if line.contains('\0') {
            return Err(ParseError::BadArguments(
                "command line contains a NUL byte".into(),
            ));
        }
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb, Some(arg)),
            None => (line, None),
        };
        if verb.is_empty() || verb.len() > 4 || !verb.bytes().all(|b| b.is_ascii_alphabetic()) {
            let shown: String = verb.chars().take(16).collect();
            return Err(ParseError::Unknown(shown));
        }
        let verb = verb.to_ascii_uppercase();
        let cmd = match verb.as_str() {
            "USER" => Command::User(required(arg, "USER needs a user name")?),
            "PASS" => Command::Pass(arg.unwrap_or("").to_owned()),
            "SYST" => no_arg(arg, Command::Syst)?,
            "FEAT" => no_arg(arg, Command::Feat)?,
            "OPTS" => Command::Opts(required(arg, "OPTS needs an option")?),
            "TYPE" => Command::Type(parse_type(arg)?),
            "MODE" => parse_single_letter(arg, 'S', "MODE", Command::Mode)?,
            "STRU" => parse_single_letter(arg, 'F', "STRU", Command::Stru)?,
            "PWD" | "XPWD" => no_arg(arg, Command::Pwd)?,
            "CWD" | "XCWD" => Command::Cwd(required(arg, "CWD needs a directory")?),
            "CDUP" | "XCUP" => no_arg(arg, Command::Cdup)?,
            "PASV" => no_arg(arg, Command::Pasv)?,
            "EPSV" => Command::Epsv(parse_epsv(arg)?),
            "PORT" => Command::Port(parse_port(arg)?),
            "EPRT" => Command::Eprt(parse_eprt(arg)?),
            "RETR" => Command::Retr(required(arg, "RETR needs a file name")?),
            "STOR" => Command::Stor(required(arg, "STOR needs a file name")?),
            "APPE" => Command::Appe(required(arg, "APPE needs a file name")?),
            "STOU" => Command::Stou(optional(arg)),
            "REST" => Command::Rest(parse_rest(arg)?),
            "DELE" => Command::Dele(required(arg, "DELE needs a file name")?),
            "MKD" | "XMKD" => Command::Mkd(required(arg, "MKD needs a directory name")?),
            "RMD" | "XRMD" => Command::Rmd(required(arg, "RMD needs a directory name")?),
            "RNFR" => Command::Rnfr(required(arg, "RNFR needs a file name")?),
            "RNTO" => Command::Rnto(required(arg, "RNTO needs a file name")?),
            "ABOR" => no_arg(arg, Command::Abor)?,
            "STAT" => Command::Stat(optional(arg)),
            "SITE" => Command::Site(required(arg, "SITE needs a subcommand")?),
            "MLST" => Command::Mlst(optional(arg)),
            "MLSD" => Command::Mlsd(optional(arg)),
            "HASH" => Command::Hash(required(arg, "HASH needs a file name")?),
            "AUTH" => Command::Auth(required(arg, "AUTH needs a mechanism")?.trim().to_owned()),
            "PBSZ" => Command::Pbsz(
                arg.map(str::trim)
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| ParseError::BadArguments("PBSZ needs a number".into()))?,
            ),
            "PROT" => Command::Prot(parse_prot(arg)?),
            "CCC" => no_arg(arg, Command::Ccc)?,
            "SIZE" => Command::Size(required(arg, "SIZE needs a file name")?),
            "MDTM" => Command::Mdtm(required(arg, "MDTM needs a file name")?),
            "MFMT" => parse_mfmt(arg)?,
            "LIST" => Command::List(listing_path(arg)),
            "NLST" => Command::Nlst(listing_path(arg)),
            "NOOP" => Command::Noop,
            "HELP" => Command::Help(optional(arg)),
            "ALLO" => Command::Allo,
            "QUIT" => Command::Quit,
            "REIN" => no_arg(arg, Command::Rein)?,
            other if NOT_IMPLEMENTED.contains(&other) => {
                return Err(ParseError::NotImplemented(other.to_owned()))
            }
            other => return Err(ParseError::Unknown(other.to_owned())),
        };
        Ok(cmd)
    }

    /// The verb as sent on the wire, for logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Syst => "SYST",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Type(_) => "TYPE",
            Command::Mode => "MODE",
            Command::Stru => "STRU",
            Command::Pwd => "PWD",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Appe(_) => "APPE",
            Command::Stou(_) => "STOU",
            Command::Rest(_) => "REST",
            Command::Dele(_) => "DELE",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Abor => "ABOR",
            Command::Stat(_) => "STAT",
            Command::Site(_) => "SITE",
            Command::Mlst(_) => "MLST",
            Command::Mlsd(_) => "MLSD",
            Command::Hash(_) => "HASH",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Mfmt { .. } => "MFMT",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Noop => "NOOP",
            Command::Help(_) => "HELP",
            Command::Allo => "ALLO",
            Command::Quit => "QUIT",
            Command::Rein => "REIN",
        }
    }
}

/// Formats a command as its wire line (without CRLF): the inverse of [`Command::parse`].
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.verb();
        match self {
            Command::User(a)
            | Command::Pass(a)
            | Command::Opts(a)
            | Command::Cwd(a)
            | Command::Retr(a)
            | Command::Stor(a)
            | Command::Size(a)
            | Command::Mdtm(a)
            | Command::Appe(a)
            | Command::Dele(a)
            | Command::Mkd(a)
            | Command::Rmd(a)
            | Command::Rnfr(a)
            | Command::Rnto(a)
            | Command::Site(a)
            | Command::Hash(a)
            | Command::Auth(a) => write!(f, "{verb} {a}"),
            Command::Mfmt { time, path } => write!(f, "MFMT {time} {path}"),
            Command::Pbsz(n) => write!(f, "PBSZ {n}"),
            Command::Prot(level) => write!(f, "PROT {level}"),
            Command::Rest(n) => write!(f, "REST {n}"),
            Command::List(a)
            | Command::Nlst(a)
            | Command::Help(a)
            | Command::Stat(a)
            | Command::Mlst(a)
            | Command::Mlsd(a)
            | Command::Stou(a) => match a {
                Some(a) => write!(f, "{verb} {a}"),
                None => f.write_str(verb),
            },
            Command::Type(TransferType::Ascii) => f.write_str("TYPE A"),
            Command::Type(TransferType::Image) => f.write_str("TYPE I"),
            Command::Mode => f.write_str("MODE S"),
            Command::Stru => f.write_str("STRU F"),
            Command::Epsv(EpsvArg::Any) => f.write_str("EPSV"),
            Command::Epsv(EpsvArg::Protocol(p)) => write!(f, "EPSV {p}"),
            Command::Epsv(EpsvArg::All) => f.write_str("EPSV ALL"),
            Command::Port(addr) => match addr {
                SocketAddr::V4(v4) => {
                    let [a, b, c, d] = v4.ip().octets();
                    let (p1, p2) = (v4.port() >> 8, v4.port() & 0xff);
                    write!(f, "PORT {a},{b},{c},{d},{p1},{p2}")
                }
                SocketAddr::V6(_) => write!(f, "EPRT {}", eprt_arg(addr)),
            },
            Command::Eprt(addr) => write!(f, "EPRT {}", eprt_arg(addr)),
            Command::Syst
            | Command::Feat
            | Command::Pwd
            | Command::Cdup
            | Command::Pasv
            | Command::Noop
            | Command::Allo
            | Command::Abor
            | Command::Ccc
            | Command::Rein
            | Command::Quit => f.write_str(verb),
        }
    }
}

/// The EPRT argument for `addr`: `|1|a.b.c.d|port|` or `|2|v6addr|port|`.
pub fn eprt_arg(addr: &SocketAddr) -> String {
    let proto = if addr.is_ipv4() { 1 } else { 2 };
    format!("|{proto}|{}|{}|", addr.ip(), addr.port())
}

fn required(arg: Option<&str>, message: &str) -> Result<String, ParseError> {
    match arg {
        Some(a) if !a.is_empty() => Ok(a.to_owned()),
        _ => Err(ParseError::BadArguments(message.to_owned())),
    }
}

/// An optional argument: absent or blank is `None`, otherwise trimmed.
fn optional(arg: Option<&str>) -> Option<String> {
    arg.map(str::trim).filter(|a| !a.is_empty()).map(Into::into)
}

/// `MFMT time-val pathname` (draft-somers-ftp-mfxx §3): the time, one space, then
/// the path verbatim. A time that is not a valid `YYYYMMDDHHMMSS[.sss]` is a 501.
fn parse_mfmt(arg: Option<&str>) -> Result<Command, ParseError> {
    let arg = required(arg, "MFMT needs a time and a file name")?;
    let (time, path) = arg
        .split_once(' ')
        .filter(|(_, path)| !path.is_empty())
        .ok_or_else(|| ParseError::BadArguments("MFMT needs a time and a file name".into()))?;
    let time = TimeVal::parse(time).ok_or_else(|| {
        ParseError::BadArguments("MFMT needs the time as YYYYMMDDHHMMSS (UTC)".into())
    })?;
    Ok(Command::Mfmt {
        time,
        path: path.to_owned(),
    })
}

/// A `time-val` of RFC 3659 §2.3, as MFMT takes it: `YYYYMMDDHHMMSS`, UTC, with an
/// optional fraction of a second (`.` and digits). Only real calendar times parse:
/// month 1-12, a day the month has (29 February in leap years only), hour 0-23,
/// minute and second 0-59 (a leap second cannot be set on a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeVal {
    utc: Utc,
    /// The digits after the `.`, as sent (empty when there was none).
    fraction: String,
}

impl TimeVal {
    /// Parses a `time-val`; `None` when it is not one.
    pub fn parse(text: &str) -> Option<TimeVal> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => {
                if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (whole, fraction)
            }
            None => (text, ""),
        };
        if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let field = |range: std::ops::Range<usize>| whole[range].parse::<u32>().ok();
        let utc = Utc {
            year: i64::from(field(0..4)?),
            month: field(4..6)?,
            day: field(6..8)?,
            hour: field(8..10)?,
            minute: field(10..12)?,
            second: field(12..14)?,
        };
        let valid = (1..=12).contains(&utc.month)
            && utc.day >= 1
            && utc.day <= days_in_month(utc.year, utc.month)
            && utc.hour < 24
            && utc.minute < 60
            && utc.second < 60;
        valid.then(|| TimeVal {
            utc,
            fraction: fraction.to_owned(),
        })
    }

    /// The calendar time, to the second.
    pub fn utc(&self) -> Utc {
        self.utc
    }

    /// The instant it names (the fraction to the nanosecond; further digits dropped).
    pub fn to_system_time(&self) -> SystemTime {
        let u = &self.utc;
        let days = days_from_civil(u.year, u.month, u.day);
        let secs = days * 86_400
            + i64::from(u.hour) * 3600
            + i64::from(u.minute) * 60
            + i64::from(u.second);
        let nanos = format!("{:0<9}", &self.fraction[..self.fraction.len().min(9)])
            .parse::<u32>()
            .unwrap_or(0);
        let whole = Duration::from_secs(secs.unsigned_abs());
        let at = if secs >= 0 {
            UNIX_EPOCH + whole
        } else {
            UNIX_EPOCH - whole
        };
        at + Duration::from_nanos(u64::from(nanos))
    }
}

/// The `time-val` as it was sent: the inverse of [`TimeVal::parse`].
impl fmt::Display for TimeVal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.utc.mdtm())?;
        if !self.fraction.is_empty() {
            write!(f, ".{}", self.fraction)?;
        }
        Ok(())
    }
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil, the inverse of the conversion in [`crate::time`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_rest(arg: Option<&str>) -> Result<u64, ParseError> {
    arg.map(str::trim)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| ParseError::BadArguments("REST needs a byte offset".into()))
}

/// Removes Telnet commands (IAC and the byte after it) from a command line. Clients
/// send `IAC IP IAC DM` before ABOR (RFC 959 §4.1.3); the DM may have been taken out
/// of band, leaving a lone IAC. UTF-8 text never contains 0xFF, so nothing else is lost.
fn strip_telnet(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const IAC: u8 = 0xFF;
    if !line.contains(&IAC) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if b == IAC {
            if bytes.peek().is_some_and(|&next| next >= 0xF0) {
                bytes.next();
            }
        } else {
            out.push(b);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn no_arg(arg: Option<&str>, cmd: Command) -> Result<Command, ParseError> {
    match arg.map(str::trim) {
        None | Some("") => Ok(cmd),
        Some(_) => Err(ParseError::BadArguments(format!(
            "{} takes no argument",
            cmd.verb()
        ))),
    }
}

fn parse_type(arg: Option<&str>) -> Result<TransferType, ParseError> {
    let arg = arg.unwrap_or("").trim().to_ascii_uppercase();
    let mut words = arg.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("A"), None | Some("N"), None) => Ok(TransferType::Ascii),
        (Some("I"), None, None) | (Some("L"), Some("8"), None) => Ok(TransferType::Image),
        (Some("E" | "L" | "A"), _, _) => Err(ParseError::UnsupportedParameter(format!(
            "TYPE {arg} not supported; use TYPE I or TYPE A"
        ))),
        _ => Err(ParseError::BadArguments(format!(
            "bad TYPE argument {arg:?}"
        ))),
    }
}

fn parse_single_letter(
    arg: Option<&str>,
    supported: char,
    verb: &str,
    cmd: Command,
) -> Result<Command, ParseError> {
    let arg = arg.unwrap_or("").trim();
    let mut chars = arg.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.eq_ignore_ascii_case(&supported) => Ok(cmd),
        (Some(_), None) => Err(ParseError::UnsupportedParameter(format!(
            "{verb} {arg} not supported; only {verb} {supported}"
        ))),
        _ => Err(ParseError::BadArguments(format!("{verb} needs one letter"))),
    }
}

fn parse_prot(arg: Option<&str>) -> Result<char, ParseError> {
    let arg = arg.unwrap_or("").trim();
    let mut chars = arg.chars();
    match (chars.next().map(|c| c.to_ascii_uppercase()), chars.next()) {
        (Some(c @ ('C' | 'S' | 'E' | 'P')), None) => Ok(c),
        _ => Err(ParseError::BadArguments("PROT needs C, S, E or P".into())),
    }
}

fn parse_epsv(arg: Option<&str>) -> Result<EpsvArg, ParseError> {
    match arg.map(str::trim) {
        None | Some("") => Ok(EpsvArg::Any),
        Some(a) if a.eq_ignore_ascii_case("ALL") => Ok(EpsvArg::All),
        Some(a) => a
            .parse::<u8>()
            .map(EpsvArg::Protocol)
            .map_err(|_| ParseError::BadArguments(format!("bad EPSV argument {a:?}"))),
    }
}

/// Parses `h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2), as found in PORT and in 227 replies.
pub fn parse_host_port(text: &str) -> Option<SocketAddr> {
    let mut nums = [0u8; 6];
    let mut parts = text.trim().split(',');
    for n in &mut nums {
        *n = parts.next()?.trim().parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    let port = u16::from(nums[4]) << 8 | u16::from(nums[5]);
    Some(SocketAddr::new(IpAddr::V4(ip), port))
}

fn parse_port(arg: Option<&str>) -> Result<SocketAddr, ParseError> {
    arg.and_then(parse_host_port)
        .ok_or_else(|| ParseError::BadArguments("PORT needs h1,h2,h3,h4,p1,p2".into()))
}

fn parse_eprt(arg: Option<&str>) -> Result<SocketAddr, ParseError> {
    let bad = || ParseError::BadArguments("EPRT needs |proto|address|port|".into());
    let arg = arg.ok_or_else(bad)?.trim();
    let mut chars = arg.chars();
    let delim = chars.next().ok_or_else(bad)?;
    if !(33..=126).contains(&(delim as u32)) {
        return Err(bad());
    }
    let fields: Vec<&str> = arg[delim.len_utf8()..].split(delim).collect();
    let [proto, addr, port, ""] = fields.as_slice() else {
        return Err(bad());
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let ip = match *proto {
        "1" => IpAddr::V4(addr.parse::<Ipv4Addr>().map_err(|_| bad())?),
        "2" => IpAddr::V6(addr.parse::<Ipv6Addr>().map_err(|_| bad())?),
        _ => {
            return Err(ParseError::ProtocolNotSupported(
                "Network protocol not supported, use (1,2)".into(),
            ))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// Drops `ls`-style options (`-a`, `-la`, ...) that clients put before the path.
fn listing_path(arg: Option<&str>) -> Option<String> {
    let mut rest = arg?.trim_start();
    while rest.starts_with('-') {
        match rest.split_once(' ') {
            Some((_, after)) => rest = after.trim_start(),
            None => rest = "",
        }
    }
    (!rest.is_empty()).then(|| rest.to_owned())
}

/// Why a reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The connection failed or closed before a whole reply arrived.
    #[error("connection lost while reading a reply: {0}")]
    Io(#[from] io::Error),
    /// The peer sent something that is not an FTP reply.
    #[error("malformed reply from server: {0:?}")]
    Malformed(String),
}

/// A reply as read from a server: the numeric code and the text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedReply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, code and separator removed from the first and last.
    pub lines: Vec<String>,
}

impl ReceivedReply {
    /// The text of the reply: its lines joined by newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

impl fmt::Display for ReceivedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

impl Reply {
    /// Reads one whole reply (single or multi-line, RFC 959 §4.2) from a server.
    ///
    /// # Errors
    /// [`ReplyError::Io`] when the connection fails or closes, [`ReplyError::Malformed`]
    /// when a line is not of the form `NNN text` / `NNN-text`, or is too long.
    pub fn read_from<R: BufRead>(reader: &mut R) -> Result<ReceivedReply, ReplyError> {
        let mut buf = Vec::new();
        let mut state = LineState::default();
        let mut next_line = |buf: &mut Vec<u8>| -> Result<String, ReplyError> {
            match read_line(reader, buf, &mut state, MAX_LINE)? {
                Line::Complete => Ok(String::from_utf8_lossy(buf).into_owned()),
                Line::TooLong => Err(ReplyError::Malformed("reply line too long".into())),
                Line::Eof | Line::Pending => {
                    Err(ReplyError::Io(io::ErrorKind::UnexpectedEof.into()))
                }
            }
        };
        let first = next_line(&mut buf)?;
        let (code, sep, text) = split_reply_line(&first)
            .ok_or_else(|| ReplyError::Malformed(first.chars().take(80).collect()))?;
        let mut lines = vec![text.to_owned()];
        if sep == '-' {
            loop {
                let line = next_line(&mut buf)?;
                if let Some((c, ' ', text)) = split_reply_line(&line) {
                    if c == code {
                        lines.push(text.to_owned());
                        break;
                    }
                }
                lines.push(line);
            }
        }
        Ok(ReceivedReply { code, lines })
    }
}

/// Splits `NNN-text` or `NNN text` (or bare `NNN`) into code, separator and text.
fn split_reply_line(line: &str) -> Option<(u16, char, &str)> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = digits.parse().ok()?;
    if !(100..600).contains(&code) {
        return None;
    }
    match line[3..].chars().next() {
        None => Some((code, ' ', "")),
        Some(sep @ (' ' | '-')) => Some((code, sep, &line[4..])),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn parse(s: &str) -> Result<Command, ParseError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn verbs_are_case_insensitive_and_arguments_verbatim() {
        assert_eq!(parse("retr a b.txt"), Ok(Command::Retr("a b.txt".into())));
        assert_eq!(parse("Stor  x"), Ok(Command::Stor(" x".into())));
        assert_eq!(parse("xpwd"), Ok(Command::Pwd));
        assert_eq!(parse("type i"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(parse("TYPE L 8"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(parse("TYPE A N"), Ok(Command::Type(TransferType::Ascii)));
    }

    #[test]
    fn errors_map_to_the_right_reply_codes() {
        let code = |s: &str| parse(s).map_err(|e| e.reply().code.number());
        assert_eq!(code("FOO"), Err(500));
        assert_eq!(code("ACCT x"), Err(502));
        assert_eq!(code("REST abc"), Err(501));
        assert_eq!(code("ABOR now"), Err(501));
        assert_eq!(code("RETR"), Err(501));
        assert_eq!(code("PORT 1,2,3"), Err(501));
        assert_eq!(code("TYPE E"), Err(504));
        assert_eq!(code("MODE B"), Err(504));
        assert_eq!(code("STRU R"), Err(504));
        // RFC 2428 §2: an unsupported network protocol gets 522.
        assert_eq!(code("EPRT |3|x|5|"), Err(522));
        assert_eq!(code("PWD now"), Err(501));
        assert_eq!(code(""), Err(500));
        assert_eq!(code("RE\u{e9}R x"), Err(500));
    }

    #[test]
    fn telnet_interrupt_before_abor_is_ignored() {
        assert_eq!(Command::parse(b"\xff\xf4\xff\xf2ABOR"), Ok(Command::Abor));
        assert_eq!(Command::parse(b"\xff\xf4\xffABOR"), Ok(Command::Abor));
        assert_eq!(Command::parse(b"XMKD new"), Ok(Command::Mkd("new".into())));
    }

    #[test]
    fn invalid_utf8_and_nul_are_refused() {
        assert!(matches!(
            Command::parse(b"RETR \xff\xfe"),
            Err(ParseError::BadArguments(_))
        ));
        assert!(matches!(
            Command::parse(b"RETR a\0b"),
            Err(ParseError::BadArguments(_))
        ));
    }

    #[test]
    fn port_and_eprt_parse_addresses() {
        let v4: SocketAddr = "127.0.0.1:1234".parse().expect("addr");
        assert_eq!(parse("PORT 127,0,0,1,4,210"), Ok(Command::Port(v4)));
        assert_eq!(parse("EPRT |1|127.0.0.1|1234|"), Ok(Command::Eprt(v4)));
        let v6: SocketAddr = "[::1]:2000".parse().expect("addr");
        assert_eq!(parse("EPRT |2|::1|2000|"), Ok(Command::Eprt(v6)));
        assert!(parse("PORT 256,0,0,1,4,210").is_err());
        assert!(parse("EPRT |1|::1|2000|").is_err());
        assert!(parse("EPRT |1|127.0.0.1|99999|").is_err());
    }

    #[test]
    fn display_round_trips_through_parse() {
        let cmds = [
            Command::User("anonymous".into()),
            Command::Retr("dir/a file.bin".into()),
            Command::Port("10.0.0.1:65535".parse().expect("addr")),
            Command::Eprt("[::1]:2000".parse().expect("addr")),
            Command::Epsv(EpsvArg::All),
            Command::Type(TransferType::Image),
            Command::List(Some("sub".into())),
            Command::Nlst(None),
            Command::Quit,
            Command::Rein,
            Command::Rest(1 << 40),
            Command::Appe("a b".into()),
            Command::Stou(None),
            Command::Stou(Some("base name".into())),
            Command::Mlsd(Some("dir".into())),
            Command::Mlst(None),
            Command::Stat(Some("x".into())),
            Command::Rnto("new name".into()),
            Command::Hash("f".into()),
            Command::Abor,
            Command::Auth("TLS".into()),
            Command::Pbsz(0),
            Command::Prot('P'),
            Command::Ccc,
            Command::Mfmt {
                time: TimeVal::parse("20240229235959.5").expect("time"),
                path: "a file.txt".into(),
            },
        ];
        for cmd in cmds {
            assert_eq!(parse(&cmd.to_string()), Ok(cmd.clone()), "{cmd}");
        }
    }

    #[test]
    fn mfmt_takes_a_utc_time_and_a_path_with_spaces() {
        let Ok(Command::Mfmt { time, path }) = parse("mfmt 20260102030405 dir/a b.txt") else {
            panic!("MFMT did not parse");
        };
        assert_eq!(path, "dir/a b.txt");
        assert_eq!(time.to_string(), "20260102030405");
        let secs = time
            .to_system_time()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        // 2026-01-02T03:04:05Z
        assert_eq!(secs, 1_767_323_045);
        assert_eq!(Utc::from_system_time(time.to_system_time()), time.utc());
    }

    #[test]
    fn mfmt_times_convert_both_ways_and_keep_fractions() {
        for text in [
            "19700101000000",
            "19691231235959",
            "20000229120000",
            "21000228000000",
            "99991231235959",
            "16010101000000",
        ] {
            let time = TimeVal::parse(text).expect(text);
            let back = Utc::from_system_time(time.to_system_time()).mdtm();
            assert_eq!(back, text);
        }
        let time = TimeVal::parse("20200101000000.123456789123").expect("fraction");
        assert_eq!(time.to_string(), "20200101000000.123456789123");
        let nanos = time
            .to_system_time()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .subsec_nanos();
        assert_eq!(nanos, 123_456_789);
        let half = TimeVal::parse("19691231235959.5").expect("before 1970");
        let before = UNIX_EPOCH
            .duration_since(half.to_system_time())
            .expect("before 1970");
        assert_eq!(before, Duration::from_millis(500));
    }

    #[test]
    fn mfmt_refuses_what_is_not_a_calendar_time() {
        let code = |s: &str| parse(s).map_err(|e| e.reply().code.number());
        for bad in [
            "MFMT",
            "MFMT 20260102030405",
            "MFMT 20260102030405 ",
            "MFMT 2026010203040 f",
            "MFMT 202601020304051 f",
            "MFMT 2026-01-02T03:04:05 f",
            "MFMT 20261302030405 f",
            "MFMT 20260002030405 f",
            "MFMT 20260100030405 f",
            "MFMT 20260431030405 f",
            "MFMT 20250229030405 f",
            "MFMT 21000229000000 f",
            "MFMT 20260102240405 f",
            "MFMT 20260102036005 f",
            "MFMT 20260102030460 f",
            "MFMT 20260102030405. f",
            "MFMT 20260102030405.x f",
            "MFMT +2026010203040 f",
            "MFMT 2026010203040\u{663} f",
        ] {
            assert_eq!(code(bad), Err(501), "{bad}");
        }
        assert!(TimeVal::parse("20240229000000").is_some());
        assert!(TimeVal::parse("20000229000000").is_some());
    }

    #[test]
    fn list_options_are_dropped() {
        assert_eq!(parse("LIST -la"), Ok(Command::List(None)));
        assert_eq!(parse("LIST -a sub"), Ok(Command::List(Some("sub".into()))));
        assert_eq!(parse("NLST"), Ok(Command::Nlst(None)));
    }

    #[test]
    fn replies_format_single_and_multi_line() {
        let r = Reply::new(ReplyCode::CommandOk, "ok");
        assert_eq!(r.to_wire(), "200 ok\r\n");
        let r = Reply::multi(
            ReplyCode::SystemStatus,
            "Features:",
            &["UTF8".into(), "EPSV".into()],
            "End",
        );
        assert_eq!(
            r.to_wire(),
            "211-Features:\r\n UTF8\r\n EPSV\r\n211 End\r\n"
        );
        let r = Reply::new(ReplyCode::PathName, "evil\r\n200 injected");
        assert_eq!(r.to_wire(), "257 evil  200 injected\r\n");
    }

    #[test]
    fn replies_read_back_what_we_write() {
        let wire = "220 hi\r\n211-Features:\r\n UTF8\r\n211 End\r\n226\r\n";
        let mut r = BufReader::new(Cursor::new(wire));
        let a = Reply::read_from(&mut r).expect("first");
        assert_eq!((a.code, a.lines.clone()), (220, vec!["hi".to_owned()]));
        let b = Reply::read_from(&mut r).expect("second");
        assert_eq!(b.code, 211);
        assert_eq!(b.lines, vec!["Features:", " UTF8", "End"]);
        let c = Reply::read_from(&mut r).expect("third");
        assert_eq!(c.code, 226);
        assert!(matches!(Reply::read_from(&mut r), Err(ReplyError::Io(_))));
    }

    #[test]
    fn long_lines_are_discarded_without_buffering() {
        let mut input = vec![b'A'; 100_000];
        input.extend_from_slice(b"\r\nNOOP\r\nlast");
        let mut reader = BufReader::with_capacity(1024, Cursor::new(input));
        let mut buf = Vec::new();
        let mut st = LineState::default();
        let r = read_line(&mut reader, &mut buf, &mut st, MAX_LINE).expect("read");
        assert_eq!(r, Line::TooLong);
        assert!(buf.capacity() <= MAX_LINE + 1024);
        let r = read_line(&mut reader, &mut buf, &mut st, MAX_LINE).expect("read");
        assert_eq!((r, buf.as_slice()), (Line::Complete, &b"NOOP"[..]));
        let r = read_line(&mut reader, &mut buf, &mut st, MAX_LINE).expect("read");
        assert_eq!(r, Line::Eof);
    }

    #[test]
    fn bare_lf_ends_a_line() {
        let mut reader = BufReader::new(Cursor::new(&b"USER a\nPASS b\r\n"[..]));
        let mut buf = Vec::new();
        let mut st = LineState::default();
        read_line(&mut reader, &mut buf, &mut st, MAX_LINE).expect("read");
        assert_eq!(buf, b"USER a");
        read_line(&mut reader, &mut buf, &mut st, MAX_LINE).expect("read");
        assert_eq!(buf, b"PASS b");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::io::{BufReader, Cursor};

    /// Bytes that look like command lines often enough to reach every parser arm.
    fn command_like() -> impl Strategy<Value = Vec<u8>> {
        let verb = prop_oneof![
            Just("USER"),
            Just("PASS"),
            Just("RETR"),
            Just("STOR"),
            Just("PORT"),
            Just("EPRT"),
            Just("EPSV"),
            Just("TYPE"),
            Just("MODE"),
            Just("STRU"),
            Just("LIST"),
            Just("NLST"),
            Just("CWD"),
            Just("HELP"),
            Just("OPTS"),
            Just("pwd"),
            Just("Quit"),
            Just("SITE"),
            Just("MFMT"),
        ];
        prop_oneof![
            (verb, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(v, arg)| {
                let mut line = v.as_bytes().to_vec();
                line.push(b' ');
                line.extend(arg);
                line
            }),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_display_round_trips(line in command_like()) {
            if let Ok(cmd) = Command::parse(&line) {
                let again = Command::parse(cmd.to_string().as_bytes());
                prop_assert_eq!(again, Ok(cmd));
            }
        }

        #[test]
        fn read_line_never_panics_or_overgrows(
            input in proptest::collection::vec(any::<u8>(), 0..20_000),
            capacity in 1usize..4096,
            max in 1usize..2048,
        ) {
            let mut reader = BufReader::with_capacity(capacity, Cursor::new(input));
            let mut buf = Vec::new();
            let mut state = LineState::default();
            loop {
                match read_line(&mut reader, &mut buf, &mut state, max) {
                    Ok(Line::Complete) => prop_assert!(buf.len() < max && !buf.contains(&b'\n')),
                    Ok(Line::TooLong | Line::Pending) => {}
                    Ok(Line::Eof) => break,
                    Err(e) => prop_assert!(false, "cursor read failed: {e}"),
                }
            }
        }

        #[test]
        fn reply_reader_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut reader = BufReader::new(Cursor::new(input));
            while Reply::read_from(&mut reader).is_ok() {}
        }
    }
}
