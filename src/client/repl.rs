//! The `ftp-client` REPL: what a typed line means, and what the command loop does.
//!
//! [`parse_input`] turns one line into an [`Input`] with no I/O at all (it is the
//! REPL's own language, separate from the wire [`crate::protocol::Command`]s). A
//! [`Repl`] holds the loop's state, an `Option<Client>`, and runs inputs against it:
//! no failure ends the loop, a command that needs a connection says "not connected"
//! without one, and a connection lost in the middle of a command is dropped so the
//! next `OPEN` starts afresh. Everything the user sees goes through the [`Ui`] trait,
//! which the binary implements for a terminal (prompt, progress bar) or a pipe
//! (plain lines).

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::many::BatchEvent;
use super::{Client, ClientError, Interrupt, Progress, Resumed};

/// Host that `OPEN <port>` connects to.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// User name for anonymous login.
pub const ANONYMOUS_USER: &str = "anonymous";
/// Password sent with anonymous login (RFC 1635 asks for something mail-like).
pub const ANONYMOUS_PASSWORD: &str = "anonymous@";

/// The command list `HELP` prints.
pub const HELP: &str = "\
commands (case-insensitive):
  OPEN <port>            connect to 127.0.0.1:<port> and log in
  OPEN <host> <port>     connect to <host>:<port> (also <host>:<port>, [v6addr]:<port>)
  GET <file>             download <file> into the local directory
  PUT <file>             upload <file> from the local directory
  REGET <file>           continue a partial download (REST + RETR), then verify it whole
  REPUT <file>           continue a partial upload (REST + STOR, or APPE), then verify it
  MGET <pattern>...      download the remote files matching *, ? or [...] (current directory)
  MPUT <pattern>...      upload the local files matching the patterns
  LS [path], DIR [path]  list a directory on the server (the current one without path)
  CD <dir>, CDUP, PWD    change or show the server's current directory
  LCD <dir>, LPWD        change or show the local directory (inside the starting one)
  LLS                    list the local directory
  MKDIR <dir>            create a directory on the server
  RMDIR <dir>            remove an empty directory on the server
  DELETE <file>          delete a file on the server
  RENAME <from> <to>     rename on the server (quote a name with spaces)
  SIZE <file>            the size of a file on the server
  STATUS                 show the connection
  PASSIVE [on|off]       passive data connections (the default), or active: EPRT/PORT
  USER <name> [password] log in as <name> on the next OPEN
  CLOSE                  close the connection
  QUIT                   close the connection and exit
  HELP                   this list
file names are the rest of the line (spaces allowed); quotes are accepted";

/// One line of REPL input, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A blank line or a `#` comment: nothing to do.
    Empty,
    /// `OPEN`: connect and log in.
    Open {
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// TCP port, never 0.
        port: u16,
        /// `OPEN ... tls`: secure the connection with AUTH TLS.
        tls: bool,
    },
    /// `GET <file>`: download into the local directory.
    Get(FileName),
    /// `PUT <file>`: upload from the local directory.
    Put(FileName),
    /// `REGET <file>`: continue a partial download.
    Reget(FileName),
    /// `REPUT <file>`: continue a partial upload.
    Reput(FileName),
    /// `MGET <pattern>...`: download every matching file of the remote directory.
    Mget(Vec<String>),
    /// `MPUT <pattern>...`: upload every matching file of the local directory.
    Mput(Vec<String>),
    /// `LS [path]` / `DIR [path]`: the server's listing.
    Ls(Option<String>),
    /// `LLS`: the local directory's listing.
    Lls,
    /// `CD <dir>`: change the server's current directory.
    Cd(String),
    /// `CDUP`: to the parent of the server's current directory.
    Cdup,
    /// `PWD`: show the server's current directory.
    Pwd,
    /// `LCD <dir>`: change the local directory, within the starting one.
    Lcd(String),
    /// `LPWD`: show the local directory.
    Lpwd,
    /// `MKDIR <dir>`: create a remote directory.
    Mkdir(String),
    /// `RMDIR <dir>`: remove an empty remote directory.
    Rmdir(String),
    /// `DELETE <file>`: delete a remote file.
    Delete(String),
    /// `RENAME <from> <to>`: rename a remote file or directory.
    Rename {
        /// The current name.
        from: String,
        /// The new name.
        to: String,
    },
    /// `SIZE <file>`: the size of a remote file.
    Size(String),
    /// `STATUS`: connected to whom.
    Status,
    /// `PASSIVE on|off`: passive or active data connections; `None` toggles.
    Passive(Option<bool>),
    /// `USER <name> [password]`: credentials for the next `OPEN`.
    User {
        /// The user name.
        name: String,
        /// The password, when given on the line.
        password: Option<String>,
    },
    /// `CLOSE`: close the connection, keep running.
    Close,
    /// `QUIT`: close the connection and exit.
    Quit,
    /// `HELP`: list the commands.
    Help,
}

/// A file name from a `GET`/`PUT` line, checked to stay inside the local directory:
/// relative, without `..`, not naming a directory. The same text names the remote file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    /// Checks `name` (already unquoted).
    ///
    /// # Errors
    /// [`InputError::OutsideLocalDir`] for an absolute name or one with `..`;
    /// [`InputError::BadName`] for an empty name, a NUL byte, or a directory name.
    pub fn new(name: &str) -> Result<FileName, InputError> {
        if name.is_empty() {
            return Err(InputError::BadName(name.to_owned(), "empty name"));
        }
        if name.contains('\0') {
            return Err(InputError::BadName(name.to_owned(), "NUL in name"));
        }
        let mut normal = 0;
        for part in Path::new(name).components() {
            match part {
                Component::Normal(_) => normal += 1,
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(InputError::OutsideLocalDir(name.to_owned()))
                }
            }
        }
        if normal == 0 || name.ends_with('/') || name.ends_with("/.") {
            return Err(InputError::BadName(name.to_owned(), "names a directory"));
        }
        Ok(FileName(name.to_owned()))
    }

    /// The name as typed (and as sent to the server).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the file lives in the local directory `dir`.
    pub fn local_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.0)
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The first word is not a command.
    #[error("unknown command {0:?} (HELP lists the commands)")]
    Unknown(String),
    /// The command's arguments do not fit it.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// A port that is not a number from 1 to 65535.
    #[error("bad port {0:?} (1-65535)")]
    BadPort(String),
    /// A quote opened and not closed.
    #[error("unterminated quote in {0:?}")]
    Quote(String),
    /// A local name that would leave the local directory.
    #[error("refusing {0:?}: the name would leave the local directory")]
    OutsideLocalDir(String),
    /// A name that cannot be a file name.
    #[error("bad file name {0:?}: {1}")]
    BadName(String, &'static str),
    /// A URL that is not `ftp://[user[:password]@]host[:port]/path`, or does not fit
    /// its use.
    #[error("bad URL {0:?}: {1}")]
    Url(String, &'static str),
}

const OPEN_USAGE: &str = "OPEN <port> | OPEN <host> <port> | OPEN <host>:<port>, then tls for FTPS";

/// Parses one line of REPL input. Commands are case-insensitive; for `GET`, `PUT`
/// and `LS` the rest of the line is the name, so names may contain spaces, and may
/// be wrapped in `"` or `'`.
///
/// # Errors
/// An [`InputError`] saying what is wrong with the line.
pub fn parse_input(line: &str) -> Result<Input, InputError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Input::Empty);
    }
    let (verb, rest) = match line.split_once(char::is_whitespace) {
        Some((verb, rest)) => (verb, rest.trim()),
        None => (line, ""),
    };
    let no_args = |input: Input, usage: &'static str| {
        if rest.is_empty() {
            Ok(input)
        } else {
            Err(InputError::Usage(usage))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "OPEN" => parse_open(rest),
        "GET" => Ok(Input::Get(FileName::new(&file_arg(rest, "GET <file>")?)?)),
        "PUT" => Ok(Input::Put(FileName::new(&file_arg(rest, "PUT <file>")?)?)),
        "LS" | "DIR" => Ok(Input::Ls(if rest.is_empty() {
            None
        } else {
            Some(unquote(rest)?)
        })),
        "LLS" => no_args(Input::Lls, "LLS"),
        "CD" | "CWD" => Ok(Input::Cd(remote_arg(rest, "CD <dir>")?)),
        "CDUP" => no_args(Input::Cdup, "CDUP"),
        "PWD" => no_args(Input::Pwd, "PWD"),
        "LCD" => Ok(Input::Lcd(remote_arg(rest, "LCD <dir>")?)),
        "LPWD" => no_args(Input::Lpwd, "LPWD"),
        "MKDIR" | "MKD" => Ok(Input::Mkdir(remote_arg(rest, "MKDIR <dir>")?)),
        "RMDIR" | "RMD" => Ok(Input::Rmdir(remote_arg(rest, "RMDIR <dir>")?)),
        "DELETE" | "DEL" | "RM" => Ok(Input::Delete(remote_arg(rest, "DELETE <file>")?)),
        "RENAME" | "MV" => match words(rest)?.as_slice() {
            [from, to] => Ok(Input::Rename {
                from: from.clone(),
                to: to.clone(),
            }),
            _ => Err(InputError::Usage(RENAME_USAGE)),
        },
        "SIZE" => Ok(Input::Size(remote_arg(rest, "SIZE <file>")?)),
        "REGET" => Ok(Input::Reget(FileName::new(&file_arg(
            rest,
            "REGET <file>",
        )?)?)),
        "REPUT" => Ok(Input::Reput(FileName::new(&file_arg(
            rest,
            "REPUT <file>",
        )?)?)),
        "MGET" => Ok(Input::Mget(patterns(rest, "MGET <pattern>...")?)),
        "MPUT" => Ok(Input::Mput(patterns(rest, "MPUT <pattern>...")?)),
        "STATUS" => no_args(Input::Status, "STATUS"),
        "PASSIVE" | "PASV" => match rest.to_ascii_lowercase().as_str() {
            "" => Ok(Input::Passive(None)),
            "on" => Ok(Input::Passive(Some(true))),
            "off" => Ok(Input::Passive(Some(false))),
            _ => Err(InputError::Usage("PASSIVE [on|off]")),
        },
        "CLOSE" => no_args(Input::Close, "CLOSE"),
        "QUIT" | "EXIT" | "BYE" => no_args(Input::Quit, "QUIT"),
        "HELP" | "?" => Ok(Input::Help),
        "USER" => {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(name), password, None) => Ok(Input::User {
                    name: name.to_owned(),
                    password: password.map(str::to_owned),
                }),
                _ => Err(InputError::Usage("USER <name> [password]")),
            }
        }
        _ => Err(InputError::Unknown(verb.to_owned())),
    }
}

/// The patterns of `MGET`/`MPUT`: one or more words, each naming files of the
/// current directory only.
fn patterns(rest: &str, usage: &'static str) -> Result<Vec<String>, InputError> {
    let patterns = words(rest)?;
    if patterns.is_empty() || patterns.iter().any(String::is_empty) {
        return Err(InputError::Usage(usage));
    }
    if let Some(p) = patterns
        .iter()
        .find(|p| p.contains('/') || p.contains('\0'))
    {
        return Err(InputError::BadName(
            p.clone(),
            "patterns match names in the current directory (CD or LCD there first)",
        ));
    }
    Ok(patterns)
}

const RENAME_USAGE: &str = "RENAME <from> <to> (quote a name with spaces)";

/// A remote name (or a local directory for `LCD`): the rest of the line, unquoted,
/// not empty and without NUL.
fn remote_arg(rest: &str, usage: &'static str) -> Result<String, InputError> {
    let name = file_arg(rest, usage)?;
    if name.is_empty() {
        return Err(InputError::Usage(usage));
    }
    if name.contains('\0') {
        return Err(InputError::BadName(name, "NUL in name"));
    }
    Ok(name)
}

/// Splits `text` into words at white space; a word wrapped in `"` or `'` may hold
/// spaces (and the other quote). Used where a line takes more than one name.
fn words(text: &str) -> Result<Vec<String>, InputError> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let (word, after) = match quote {
            Some(q) => {
                let inner = &rest[1..];
                let end = inner
                    .find(q)
                    .ok_or_else(|| InputError::Quote(text.to_owned()))?;
                let after = &inner[end + 1..];
                if !after.is_empty() && !after.starts_with(char::is_whitespace) {
                    return Err(InputError::Quote(text.to_owned()));
                }
                (&inner[..end], after)
            }
            None => rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len())),
        };
        out.push(word.to_owned());
        rest = after.trim_start();
    }
    Ok(out)
}

fn file_arg(rest: &str, usage: &'static str) -> Result<String, InputError> {
    if rest.is_empty() {
        return Err(InputError::Usage(usage));
    }
    unquote(rest)
}

/// Strips one pair of matching `"` or `'` around `text`.
fn unquote(text: &str) -> Result<String, InputError> {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote) {
            return match inner.strip_suffix(quote) {
                Some(name) => Ok(name.to_owned()),
                None => Err(InputError::Quote(text.to_owned())),
            };
        }
    }
    Ok(text.to_owned())
}

fn parse_open(rest: &str) -> Result<Input, InputError> {
    let mut words: Vec<&str> = rest.split_whitespace().collect();
    let tls = words.last().is_some_and(|w| w.eq_ignore_ascii_case("tls"));
    if tls {
        words.pop();
    }
    let (host, port) = match words.as_slice() {
        [one] if one.bytes().all(|b| b.is_ascii_digit()) => (DEFAULT_HOST, *one),
        [one] => split_host_port(one).ok_or(InputError::Usage(OPEN_USAGE))?,
        [host, port] => (*host, *port),
        _ => return Err(InputError::Usage(OPEN_USAGE)),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(InputError::Usage(OPEN_USAGE));
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 => p,
        _ => return Err(InputError::BadPort(port.to_owned())),
    };
    Ok(Input::Open {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// `host:port` or `[v6addr]:port`; a bare IPv6 address has no port to split off.
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if text.starts_with('[') {
        let (host, port) = text.split_once("]:")?;
        return Some((&host[1..], port));
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Some((host, port)),
        _ => None,
    }
}

/// An `ftp://[user[:password]@]host[:port]/path` URL (RFC 1738 §3.2), its parts
/// percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpUrl {
    /// The user name, when the URL gives one.
    pub user: Option<String>,
    /// The password, when the URL gives one.
    pub password: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// The port (21 when the URL names none).
    pub port: u16,
    /// The directories of the path, in order (empty for the login directory).
    pub dirs: Vec<String>,
    /// The last part of the path: a file name, or empty when the URL ends in `/`.
    pub file: String,
}

impl FtpUrl {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`InputError::Url`] for anything that is not such a URL.
    pub fn parse(text: &str) -> Result<FtpUrl, InputError> {
        let bad = |why: &'static str| InputError::Url(text.to_owned(), why);
        let rest = text
            .strip_prefix("ftp://")
            .or_else(|| text.strip_prefix("FTP://"))
            .ok_or(bad("it does not start with ftp://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((name, pw)) => (Some(percent_decode(name)?), Some(percent_decode(pw)?)),
                None => (Some(percent_decode(u)?), None),
            },
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or(bad("unclosed ["))?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or(bad("bad port"))?)),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 21,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad("bad port")),
            },
        };
        let mut parts = path
            .split('/')
            .map(percent_decode)
            .collect::<Result<Vec<String>, _>>()?;
        let file = parts.pop().unwrap_or_default();
        if parts.iter().any(String::is_empty) {
            return Err(bad("an empty directory name in the path"));
        }
        if let Some(name) = parts
            .iter()
            .chain([&file])
            .find(|p| p.contains(['\0', '\r', '\n']))
        {
            return Err(InputError::BadName(
                name.clone(),
                "control character in name",
            ));
        }
        Ok(FtpUrl {
            user,
            password,
            host: host.to_owned(),
            port,
            dirs: parts,
            file,
        })
    }

    /// The REPL lines that do what the URL asks: connect, go to its directory, then
    /// GET its file, or PUT each of `uploads` there (the URL then names a directory).
    ///
    /// # Errors
    /// [`InputError::Url`] when a download URL names no file or an upload URL names
    /// one; the errors of [`FileName::new`] for the file names.
    pub fn inputs(&self, uploads: &[String]) -> Result<Vec<Input>, InputError> {
        let mut inputs = vec![Input::Open {
            host: self.host.clone(),
            port: self.port,
            tls: false,
        }];
        if !self.dirs.is_empty() {
            inputs.push(Input::Cd(self.dirs.join("/")));
        }
        let url = || format!("ftp://{}:{}/", self.host, self.port);
        if uploads.is_empty() {
            if self.file.is_empty() {
                return Err(InputError::Url(url(), "it names a directory, not a file"));
            }
            inputs.push(Input::Get(FileName::new(&self.file)?));
        } else {
            if !self.file.is_empty() {
                return Err(InputError::Url(
                    url(),
                    "uploads go to a directory: end the URL with /",
                ));
            }
            for name in uploads {
                inputs.push(Input::Put(FileName::new(name)?));
            }
        }
        inputs.push(Input::Quit);
        Ok(inputs)
    }
}

/// `%XX` escapes decoded (RFC 3986 §2.1); the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, InputError> {
    let bad = || InputError::Url(text.to_owned(), "a bad % escape");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// One `machine` (or `default`) entry of a `.netrc` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetrcEntry {
    /// The host it is for; `None` for the `default` entry.
    pub machine: Option<String>,
    /// The user name.
    pub login: Option<String>,
    /// The password.
    pub password: Option<String>,
}

/// The entries of a `.netrc` file, as ftp(1) and curl read it: white-space separated
/// `machine NAME`, `default`, `login NAME`, `password WORD` and `account WORD`
/// tokens; `macdef` definitions (up to an empty line) are skipped.
pub fn parse_netrc(text: &str) -> Vec<NetrcEntry> {
    let mut entries: Vec<NetrcEntry> = Vec::new();
    let mut lines = text.lines();
    let mut pending: Vec<String> = Vec::new();
    loop {
        if pending.is_empty() {
            match lines.next() {
                Some(line) => {
                    pending = line.split_whitespace().rev().map(str::to_owned).collect();
                    continue;
                }
                None => break,
            }
        }
        let Some(token) = pending.pop() else { continue };
        let mut value = |pending: &mut Vec<String>| -> Option<String> {
            if pending.is_empty() {
                *pending = lines
                    .by_ref()
                    .map(|l| {
                        l.split_whitespace()
                            .rev()
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    })
                    .find(|w| !w.is_empty())?;
            }
            pending.pop()
        };
        match token.as_str() {
            "machine" => entries.push(NetrcEntry {
                machine: value(&mut pending),
                ..NetrcEntry::default()
            }),
            "default" => entries.push(NetrcEntry::default()),
            "login" => {
                let v = value(&mut pending);
                if let Some(e) = entries.last_mut() {
                    e.login = v;
                }
            }
            "password" => {
                let v = value(&mut pending);
                if let Some(e) = entries.last_mut() {
                    e.password = v;
                }
            }
            "account" => {
                value(&mut pending);
            }
            "macdef" => {
                pending.clear();
                for line in lines.by_ref() {
                    if line.trim().is_empty() {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    entries
}

/// The entry for `host`: its `machine` entry, else the `default` one.
pub fn netrc_for<'a>(entries: &'a [NetrcEntry], host: &str) -> Option<&'a NetrcEntry> {
    entries
        .iter()
        .find(|e| {
            e.machine
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(host))
        })
        .or_else(|| entries.iter().find(|e| e.machine.is_none()))
}

/// Splits a `-c` argument into lines at `;` outside quotes.
pub fn split_commands(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in text.chars() {
        match (c, quote) {
            (';', None) => lines.push(std::mem::take(&mut current)),
            ('"' | '\'', None) => {
                quote = Some(c);
                current.push(c);
            }
            (q, Some(open)) if q == open => {
                quote = None;
                current.push(c);
            }
            _ => current.push(c),
        }
    }
    lines.push(current);
    lines.retain(|l| !l.trim().is_empty());
    lines
}

/// Every command word, for completion.
pub const COMMANDS: &[&str] = &[
    "BYE", "CD", "CDUP", "CLOSE", "DELETE", "DIR", "EXIT", "GET", "HELP", "LCD", "LLS", "LPWD",
    "LS", "MGET", "MKDIR", "MPUT", "OPEN", "PASSIVE", "PUT", "PWD", "QUIT", "REGET", "RENAME",
    "REPUT", "RMDIR", "SIZE", "STATUS", "USER",
];

/// What a command's arguments name, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completes {
    /// One remote name, the rest of the line.
    Remote,
    /// Remote names, one a word.
    RemoteWords,
    /// One local file name, the rest of the line.
    Local,
    /// Local file names, one a word.
    LocalWords,
    /// One local directory, the rest of the line.
    LocalDir,
    /// Nothing to complete.
    Nothing,
}

fn completes(verb: &str) -> Completes {
    match verb.to_ascii_uppercase().as_str() {
        "GET" | "REGET" | "CD" | "CWD" | "DELETE" | "DEL" | "RM" | "SIZE" | "RMDIR" | "RMD"
        | "LS" | "DIR" => Completes::Remote,
        "MGET" | "RENAME" | "MV" => Completes::RemoteWords,
        "PUT" | "REPUT" => Completes::Local,
        "MPUT" => Completes::LocalWords,
        "LCD" => Completes::LocalDir,
        _ => Completes::Nothing,
    }
}

/// Tab completion: where the completed text starts in `line` (up to `pos`), and the
/// candidates. The first word completes to a command; after it, to a remote name
/// (from `remote`, the cached listing of the current directory) or a local one (from
/// `local`, directories ending in `/`), as the command takes. A command whose
/// argument is the rest of the line completes names with spaces as they are; one
/// that takes several words gets such names quoted.
pub fn complete(
    line: &str,
    pos: usize,
    remote: &[String],
    local: &[String],
) -> (usize, Vec<String>) {
    let head = line.get(..pos).unwrap_or(line);
    let trimmed = head.trim_start();
    let lead = head.len() - trimmed.len();
    let Some(space) = trimmed.find(char::is_whitespace) else {
        let word = trimmed.to_ascii_uppercase();
        let lower = trimmed
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase());
        let found = COMMANDS
            .iter()
            .filter(|c| c.starts_with(&word))
            .map(|c| {
                if lower {
                    c.to_ascii_lowercase()
                } else {
                    (*c).to_owned()
                }
            })
            .map(|c| c + " ")
            .collect();
        return (lead, found);
    };
    let verb = &trimmed[..space];
    let after = &trimmed[space..];
    let arg_start = lead + space + (after.len() - after.trim_start().len());
    let kind = completes(verb);
    let (start, pool): (usize, Vec<&String>) = match kind {
        Completes::Nothing => return (pos, Vec::new()),
        Completes::Remote => (arg_start, remote.iter().collect()),
        Completes::RemoteWords => (word_start(head, arg_start), remote.iter().collect()),
        Completes::Local => (
            arg_start,
            local.iter().filter(|n| !n.ends_with('/')).collect(),
        ),
        Completes::LocalWords => (
            word_start(head, arg_start),
            local.iter().filter(|n| !n.ends_with('/')).collect(),
        ),
        Completes::LocalDir => (
            arg_start,
            local.iter().filter(|n| n.ends_with('/')).collect(),
        ),
    };
    let typed = head[start..].trim_start_matches(['"', '\'']);
    let words = matches!(kind, Completes::RemoteWords | Completes::LocalWords);
    let found = pool
        .into_iter()
        .filter(|n| n.starts_with(typed))
        .map(|n| {
            if words && n.contains(char::is_whitespace) {
                format!("\"{n}\"")
            } else {
                n.clone()
            }
        })
        .collect();
    (start, found)
}

/// Where the last word of `head` starts, not before `from`.
fn word_start(head: &str, from: usize) -> usize {
    head[from..]
        .rfind(char::is_whitespace)
        .map_or(from, |i| from + i + 1)
}

/// Where the REPL shows its results, errors and transfer progress.
///
/// The binary implements it twice: for a terminal (with a progress bar) and for a
/// pipe (plain lines, no progress).
pub trait Ui {
    /// A result line of a command that worked (stdout).
    fn result(&mut self, line: &str);
    /// The message of a command that failed (stderr).
    fn error(&mut self, message: &str);
    /// A transfer of `name` has moved `progress.done` bytes. The first call of a
    /// transfer has `done == 0`.
    fn progress(&mut self, _name: &str, _progress: Progress) {}
    /// The current transfer ended, well or not.
    fn progress_end(&mut self) {}
    /// A file of an MGET/MPUT has moved `progress.done` bytes; `file` says where it
    /// stands in the batch. The first call for each file has `done == 0`.
    fn batch_progress(&mut self, _name: &str, _file: BatchPosition, _progress: Progress) {}
    /// Asks for a password without showing it; `None` when there is no one to ask
    /// (piped input), and then the password is empty.
    fn ask_password(&mut self, _prompt: &str) -> Option<String> {
        None
    }
}

/// Where a file stands in an MGET/MPUT, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPosition {
    /// Which file this is, from 0.
    pub index: usize,
    /// How many files the batch moves.
    pub count: usize,
    /// Bytes the earlier files of the batch moved.
    pub bytes_before: u64,
}

/// How `OPEN` secures connections (explicit FTPS).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Every `OPEN` uses TLS, not only `OPEN ... tls`.
    pub always: bool,
    /// Trust this PEM file's certificates instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (an explicit, insecure choice).
    pub insecure: bool,
}

/// Whether the loop goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next line.
    Continue,
    /// Exit.
    Quit,
}

/// Why a REPL command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command needs a connection and there is none.
    #[error("not connected (use OPEN <port> first)")]
    NotConnected,
    /// The client library failed; `disconnected` when the connection went with it.
    #[error("{context}: {source}{}", if *.disconnected { " (disconnected; OPEN to connect again)" } else { "" })]
    Client {
        /// The command and its argument, e.g. `GET a.txt`.
        context: String,
        /// What the client library said.
        source: ClientError,
        /// Whether the connection was lost and has been dropped.
        disconnected: bool,
    },
    /// An MGET/MPUT in which some file failed or some pattern matched nothing; the
    /// text is the summary line.
    #[error("{0}")]
    Batch(String),
    /// The TLS settings are unusable (an unreadable CA file, no system roots).
    #[error("{0}")]
    Tls(crate::tls::TlsError),
    /// A line that names something it may not (a local directory outside the
    /// starting one).
    #[error("{0}")]
    Input(InputError),
    /// The local directory could not be read.
    #[error("local directory {}: {source}", path.display())]
    LocalDir {
        /// The local directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

/// The REPL's state: the connection, if any, and the settings for the next `OPEN`.
#[derive(Debug)]
pub struct Repl {
    client: Option<Client>,
    /// The local directory GET writes into and PUT reads from.
    dir: PathBuf,
    /// The starting local directory: `LCD` never leaves it.
    root: PathBuf,
    /// `host:port` of the connection, for the prompt.
    host: String,
    /// The server's current directory as last seen (`None` when PWD failed).
    remote_dir: Option<String>,
    user: String,
    /// `None`: ask through the [`Ui`] at the next `OPEN`.
    password: Option<String>,
    timeout: Duration,
    failures: u64,
    interrupt: Arc<Interrupt>,
    tls: TlsSettings,
    /// Built from `tls` on first use.
    tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Whether data connections are passive (the default) or active.
    passive: bool,
    /// The names in the remote directory, for completion; `None` when they may have
    /// changed since they were listed.
    remote_names: Option<Vec<String>>,
    /// `.netrc` entries, consulted at `OPEN` while no user was chosen.
    netrc: Vec<NetrcEntry>,
    /// The user and password to fall back on for a host `.netrc` does not name.
    netrc_fallback: (String, Option<String>),
}

impl Repl {
    /// A REPL that is not connected, with `dir` as its local directory, logging in
    /// as `user`/`password` on `OPEN` (a `None` password is asked for then), and
    /// `timeout` for every connection.
    pub fn new(dir: PathBuf, user: String, password: Option<String>, timeout: Duration) -> Repl {
        Repl {
            client: None,
            root: dir.clone(),
            dir,
            host: String::new(),
            remote_dir: None,
            user,
            password,
            timeout,
            failures: 0,
            interrupt: Interrupt::new(),
            tls: TlsSettings::default(),
            tls_config: None,
            passive: true,
            remote_names: None,
            netrc: Vec::new(),
            netrc_fallback: (String::new(), None),
        }
    }

    /// Takes the user and password of each `OPEN` from these `.netrc` entries (the
    /// host's, else the default one), until a `USER` command chooses a user. Call it
    /// only when no user was given on the command line.
    pub fn use_netrc(&mut self, entries: Vec<NetrcEntry>) {
        self.netrc = entries;
        self.netrc_fallback = (self.user.clone(), self.password.clone());
    }

    /// Passive data connections (true, the default) or active ones (EPRT/PORT), for
    /// this connection and every later `OPEN`.
    pub fn set_passive(&mut self, on: bool) {
        self.passive = on;
        if let Some(client) = self.client.as_mut() {
            client.set_passive(on);
        }
    }

    /// Sets how `OPEN` secures connections.
    pub fn set_tls(&mut self, settings: TlsSettings) {
        self.tls = settings;
        self.tls_config = None;
    }

    fn tls_config(&mut self) -> Result<Arc<rustls::ClientConfig>, crate::tls::TlsError> {
        if let Some(config) = &self.tls_config {
            return Ok(Arc::clone(config));
        }
        let config = crate::tls::client_config(self.tls.ca_file.as_deref(), self.tls.insecure)?;
        self.tls_config = Some(Arc::clone(&config));
        Ok(config)
    }

    /// The handle that stops the transfer in progress (for a Ctrl-C handler).
    pub fn interrupt(&self) -> Arc<Interrupt> {
        Arc::clone(&self.interrupt)
    }

    /// A REPL that logs in anonymously.
    pub fn anonymous(dir: PathBuf, timeout: Duration) -> Repl {
        Repl::new(
            dir,
            ANONYMOUS_USER.to_owned(),
            Some(ANONYMOUS_PASSWORD.to_owned()),
            timeout,
        )
    }

    /// Parses and runs one line; failures go to `ui.error` and are counted.
    pub fn run_line(&mut self, line: &str, ui: &mut dyn Ui) -> Flow {
        match parse_input(line) {
            Ok(input) => self.run(input, ui),
            Err(e) => {
                self.failures += 1;
                ui.error(&e.to_string());
                Flow::Continue
            }
        }
    }

    /// The names in the server's current directory, for completion: listed (NLST)
    /// after any command that may have changed them, else from the cache. Empty
    /// without a connection or when the listing fails.
    pub fn remote_names(&mut self) -> &[String] {
        if self.remote_names.is_none() && self.client.is_some() {
            let names = self
                .with_client("NLST", |c| c.nlst(None))
                .unwrap_or_default();
            self.remote_names = Some(names);
        }
        self.remote_names.as_deref().unwrap_or(&[])
    }

    /// Runs one input; failures go to `ui.error` and are counted. `QUIT` quits even
    /// when closing the connection fails.
    pub fn run(&mut self, input: Input, ui: &mut dyn Ui) -> Flow {
        let quit = input == Input::Quit;
        // Commands that cannot change the remote directory's names keep the cache.
        let keeps_names = matches!(
            input,
            Input::Empty
                | Input::Help
                | Input::Get(_)
                | Input::Reget(_)
                | Input::Mget(_)
                | Input::Ls(_)
                | Input::Lls
                | Input::Lcd(_)
                | Input::Lpwd
                | Input::Pwd
                | Input::Size(_)
                | Input::Status
                | Input::Passive(_)
                | Input::User { .. }
        );
        if !keeps_names {
            self.remote_names = None;
        }
        match self.execute(input, ui) {
            Ok(flow) => flow,
            Err(e) => {
                self.failures += 1;
                ui.error(&e.to_string());
                if quit {
                    Flow::Quit
                } else {
                    Flow::Continue
                }
            }
        }
    }

    /// Runs one input and returns its outcome without counting it.
    ///
    /// # Errors
    /// [`CommandError::NotConnected`] for a command that needs a connection when
    /// there is none; [`CommandError::Client`] when the client library fails (the
    /// connection is dropped if it was lost); [`CommandError::LocalDir`] when `LLS`
    /// cannot read the local directory.
    pub fn execute(&mut self, input: Input, ui: &mut dyn Ui) -> Result<Flow, CommandError> {
        match input {
            Input::Empty => {}
            Input::Help => HELP.lines().for_each(|l| ui.result(l)),
            Input::Open { host, port, tls } => self.open(&host, port, tls, ui)?,
            Input::Get(name) => self.transfer(Direction::Get, &name, false, ui)?,
            Input::Put(name) => self.transfer(Direction::Put, &name, false, ui)?,
            Input::Reget(name) => self.transfer(Direction::Get, &name, true, ui)?,
            Input::Reput(name) => self.transfer(Direction::Put, &name, true, ui)?,
            Input::Mget(patterns) => self.batch(Direction::Get, &patterns, ui)?,
            Input::Mput(patterns) => self.batch(Direction::Put, &patterns, ui)?,
            Input::Ls(path) => {
                let listing = self.with_client("LS", |c| c.list(path.as_deref()))?;
                listing
                    .lines()
                    .for_each(|l| ui.result(l.trim_end_matches('\r')));
            }
            Input::Lls => self.local_listing(ui)?,
            Input::Cd(dir) => {
                self.with_client(&format!("CD {dir}"), |c| c.cwd(&dir))?;
                self.show_remote_dir("CD", ui);
            }
            Input::Cdup => {
                self.with_client("CDUP", Client::cdup)?;
                self.show_remote_dir("CDUP", ui);
            }
            Input::Pwd => {
                let dir = self.with_client("PWD", Client::pwd)?;
                ui.result(&format!("PWD: {dir}"));
                self.remote_dir = Some(dir);
            }
            Input::Lcd(dir) => {
                self.dir = self.local_subdir(&dir)?;
                ui.result(&format!("LCD: {}", self.dir.display()));
            }
            Input::Lpwd => ui.result(&format!("LPWD: {}", self.dir.display())),
            Input::Mkdir(dir) => {
                let made = self.with_client(&format!("MKDIR {dir}"), |c| c.mkdir(&dir))?;
                ui.result(&format!("MKDIR: created {made}"));
            }
            Input::Rmdir(dir) => {
                self.with_client(&format!("RMDIR {dir}"), |c| c.rmdir(&dir))?;
                ui.result(&format!("RMDIR: removed {dir}"));
            }
            Input::Delete(file) => {
                self.with_client(&format!("DELETE {file}"), |c| c.delete(&file))?;
                ui.result(&format!("DELETE: deleted {file}"));
            }
            Input::Rename { from, to } => {
                self.with_client(&format!("RENAME {from}"), |c| c.rename(&from, &to))?;
                ui.result(&format!("RENAME: {from} -> {to}"));
            }
            Input::Size(file) => {
                let size = self.with_client(&format!("SIZE {file}"), |c| c.size(&file))?;
                ui.result(&format!("SIZE {file}: {size} bytes"));
            }
            Input::Status => self.status(ui)?,
            Input::Passive(on) => {
                let on = on.unwrap_or(!self.passive);
                self.set_passive(on);
                ui.result(if on {
                    "PASSIVE: on (the client connects to the server)"
                } else {
                    "PASSIVE: off (the server connects to the client: EPRT/PORT)"
                });
            }
            Input::User { name, password } => {
                ui.result(&format!("USER: the next OPEN logs in as {name}"));
                // As with --user anonymous: the anonymous password is not asked for.
                let password = match password {
                    None if name.eq_ignore_ascii_case(ANONYMOUS_USER) => {
                        Some(ANONYMOUS_PASSWORD.to_owned())
                    }
                    other => other,
                };
                self.user = name;
                self.password = password;
                self.netrc.clear();
            }
            Input::Close => {
                let client = self.client.take().ok_or(CommandError::NotConnected)?;
                let peer = client.peer_addr();
                close(client, "CLOSE")?;
                ui.result(&format!("CLOSE: disconnected from {peer}"));
            }
            Input::Quit => {
                match self.client.take() {
                    Some(client) => {
                        let peer = client.peer_addr();
                        close(client, "QUIT")?;
                        ui.result(&format!("QUIT: disconnected from {peer}"));
                    }
                    None => ui.result("QUIT"),
                }
                return Ok(Flow::Quit);
            }
        }
        Ok(Flow::Continue)
    }

    /// How many commands failed so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.client.is_some()
    }

    /// The local directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn open(
        &mut self,
        host: &str,
        port: u16,
        tls: bool,
        ui: &mut dyn Ui,
    ) -> Result<(), CommandError> {
        if let Some(old) = self.client.take() {
            let peer = old.peer_addr();
            // The old connection goes whatever happens; a failed QUIT is only noted.
            match old.quit() {
                Ok(()) => ui.result(&format!("OPEN: closed the connection to {peer} first")),
                Err(e) => ui.result(&format!(
                    "OPEN: closed the connection to {peer} first ({e})"
                )),
            }
        }
        let context = format!("OPEN {}", super::host_port(host, port));
        let tls_config = if tls || self.tls.always {
            Some(self.tls_config().map_err(CommandError::Tls)?)
        } else {
            None
        };
        if !self.netrc.is_empty() {
            (self.user, self.password) = match netrc_for(&self.netrc, host) {
                Some(NetrcEntry {
                    login: Some(login),
                    password,
                    ..
                }) => (login.clone(), password.clone()),
                _ => self.netrc_fallback.clone(),
            };
        }
        let password = match &self.password {
            Some(p) => p.clone(),
            None => ui
                .ask_password(&format!("Password for {}: ", self.user))
                .unwrap_or_default(),
        };
        let client = Client::connect(host, port, self.timeout)
            .and_then(|mut c| {
                if let Some(config) = tls_config {
                    c.secure(config, host)?;
                }
                c.login(&self.user, &password)?;
                c.binary()?;
                c.set_interrupt(Arc::clone(&self.interrupt));
                c.set_passive(self.passive);
                Ok(c)
            })
            .map_err(|source| CommandError::Client {
                context: context.clone(),
                source,
                disconnected: false,
            })?;
        ui.result(&format!("{context}: connected as {}", self.user));
        self.client = Some(client);
        self.host = super::host_port(host, port);
        self.remote_dir = None;
        // For the prompt only: a server without PWD is still usable.
        if let Some(c) = self.client.as_mut() {
            self.remote_dir = c.pwd().ok();
        }
        Ok(())
    }

    /// The prompt: `ftp> `, or with a connection `ftp host:port:/dir> `.
    pub fn prompt(&self) -> String {
        if self.client.is_none() {
            return "ftp> ".to_owned();
        }
        match &self.remote_dir {
            Some(dir) => format!("ftp {}:{dir}> ", self.host),
            None => format!("ftp {}> ", self.host),
        }
    }

    /// After a change of directory: asks the server where we are now and says so.
    fn show_remote_dir(&mut self, verb: &str, ui: &mut dyn Ui) {
        self.remote_dir = self.client.as_mut().and_then(|c| c.pwd().ok());
        match &self.remote_dir {
            Some(dir) => ui.result(&format!("{verb}: {dir}")),
            None => ui.result(&format!("{verb}: done")),
        }
    }

    /// The local directory `LCD <dir>` names: relative to the current one, and
    /// inside the starting one (as GET and PUT names are), also after symbolic links.
    fn local_subdir(&self, dir: &str) -> Result<PathBuf, CommandError> {
        let outside = || CommandError::Input(InputError::OutsideLocalDir(dir.to_owned()));
        let mut parts: Vec<std::ffi::OsString> = match self.dir.strip_prefix(&self.root) {
            Ok(sub) => sub.iter().map(ToOwned::to_owned).collect(),
            Err(_) => Vec::new(),
        };
        for part in Path::new(dir).components() {
            match part {
                Component::Normal(p) => parts.push(p.to_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    parts.pop().ok_or_else(outside)?;
                }
                Component::RootDir | Component::Prefix(_) => return Err(outside()),
            }
        }
        let target: PathBuf = parts.iter().fold(self.root.clone(), |p, part| p.join(part));
        let dir_err = |source| CommandError::LocalDir {
            path: target.clone(),
            source,
        };
        let real = target.canonicalize().map_err(dir_err)?;
        let real_root = self
            .root
            .canonicalize()
            .map_err(|source| CommandError::LocalDir {
                path: self.root.clone(),
                source,
            })?;
        if !real.starts_with(&real_root) {
            return Err(outside());
        }
        if !real.is_dir() {
            return Err(dir_err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        Ok(target)
    }

    /// GET/PUT, or REGET/REPUT when `resume`: the transfer line, with where it
    /// resumed.
    fn transfer(
        &mut self,
        direction: Direction,
        name: &FileName,
        resume: bool,
        ui: &mut dyn Ui,
    ) -> Result<(), CommandError> {
        let local = name.local_path(&self.dir);
        let verb = if resume {
            format!("RE{}", direction.verb())
        } else {
            direction.verb().to_owned()
        };
        let start = Instant::now();
        let remote = name.as_str();
        let result = self.with_client(&format!("{verb} {name}"), |client| {
            let progress = |p| ui.progress(remote, p);
            let resumed = |r: Resumed| (Some(r.from), r.done);
            match (direction, resume) {
                (Direction::Get, false) => client.get(remote, &local, progress).map(|d| (None, d)),
                (Direction::Put, false) => client.put(&local, remote, progress).map(|d| (None, d)),
                (Direction::Get, true) => client.reget(remote, &local, progress).map(resumed),
                (Direction::Put, true) => client.reput(&local, remote, progress).map(resumed),
            }
        });
        ui.progress_end();
        let (from, done) = result?;
        let mut line = transfer_line(&verb, remote, done.bytes, start.elapsed());
        if let Some(from) = from {
            line.push_str(&format!(", resumed at {from} bytes"));
        }
        if done.verified {
            line.push_str(", SHA-256 verified");
        }
        ui.result(&line);
        Ok(())
    }

    /// MGET/MPUT: each file as GET/PUT would report it, then a summary line (on
    /// stderr, and the command failed, when any file failed or any pattern matched
    /// nothing).
    fn batch(
        &mut self,
        direction: Direction,
        patterns: &[String],
        ui: &mut dyn Ui,
    ) -> Result<(), CommandError> {
        let verb = direction.verb();
        let batch_verb = format!("M{verb}");
        let dir = self.dir.clone();
        let mut started = Instant::now();
        let mut bytes_before = 0u64;
        let result = self.with_client(&batch_verb, |client| {
            let event = |e: BatchEvent<'_>| match e {
                BatchEvent::Progress {
                    name,
                    index,
                    count,
                    progress,
                } => {
                    if progress.done == 0 {
                        started = Instant::now();
                    }
                    let at = BatchPosition {
                        index,
                        count,
                        bytes_before,
                    };
                    ui.batch_progress(name, at, progress);
                }
                BatchEvent::Done { name, result } => {
                    ui.progress_end();
                    match result {
                        Ok(done) => {
                            bytes_before += done.bytes;
                            let mut line = transfer_line(verb, name, done.bytes, started.elapsed());
                            if done.verified {
                                line.push_str(", SHA-256 verified");
                            }
                            ui.result(&line);
                        }
                        Err(e) => ui.error(&format!("{verb} {name}: {e}")),
                    }
                }
            };
            match direction {
                Direction::Get => client.get_matching(patterns, &dir, event),
                Direction::Put => client.put_matching(patterns, &dir, event),
            }
        });
        ui.progress_end();
        let batch = result?;
        for pattern in &batch.unmatched {
            ui.error(&format!("{batch_verb} {pattern}: no file matches"));
        }
        let failures = batch.failures();
        let mut line = format!(
            "{batch_verb}: {} {}, {}, {failures} {}",
            batch.succeeded(),
            plural(batch.succeeded(), "file", "files"),
            human_bytes(batch.bytes()),
            plural(failures, "failure", "failures"),
        );
        if !batch.left_out.is_empty() {
            let n = batch.left_out.len();
            line.push_str(&format!(
                ", {n} {} left out",
                plural(n, "directory", "directories")
            ));
        }
        if !batch.skipped.is_empty() {
            line.push_str(&format!(
                " ({} not tried: interrupted or disconnected)",
                batch.skipped.len()
            ));
        }
        if failures > 0 {
            return Err(CommandError::Batch(line));
        }
        ui.result(&line);
        Ok(())
    }

    fn status(&mut self, ui: &mut dyn Ui) -> Result<(), CommandError> {
        let dir = self.dir.display().to_string();
        let Some(client) = &self.client else {
            ui.result(&format!("STATUS: not connected; local directory {dir}"));
            return Ok(());
        };
        let peer = client.peer_addr();
        let mode = match (client.is_passive(), client.uses_epsv()) {
            (false, _) => "active",
            (true, true) => "EPSV",
            (true, false) => "PASV",
        };
        // NOOP finds out whether the server is still there.
        self.with_client("STATUS", Client::noop)?;
        ui.result(&format!(
            "STATUS: connected to {peer} as {} ({mode}); local directory {dir}",
            self.user
        ));
        Ok(())
    }

    fn local_listing(&self, ui: &mut dyn Ui) -> Result<(), CommandError> {
        let dir_err = |source| CommandError::LocalDir {
            path: self.dir.clone(),
            source,
        };
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            let mut name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata().map_err(dir_err)?;
            if meta.is_dir() {
                name.push('/');
            }
            entries.push((name, meta.len()));
        }
        entries.sort();
        for (name, len) in entries {
            ui.result(&format!("{len:>12}  {name}"));
        }
        Ok(())
    }

    /// Runs `f` on the connection; a lost connection is dropped and said so.
    fn with_client<T>(
        &mut self,
        context: &str,
        f: impl FnOnce(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, CommandError> {
        let client = self.client.as_mut().ok_or(CommandError::NotConnected)?;
        let result = f(client);
        let disconnected = !client.is_usable();
        if disconnected {
            self.client = None;
        }
        result.map_err(|source| CommandError::Client {
            context: context.to_owned(),
            source,
            disconnected,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Get,
    Put,
}

impl Direction {
    fn verb(self) -> &'static str {
        match self {
            Direction::Get => "GET",
            Direction::Put => "PUT",
        }
    }
}

fn close(client: Client, verb: &str) -> Result<(), CommandError> {
    client.quit().map_err(|source| CommandError::Client {
        context: verb.to_owned(),
        source,
        disconnected: true,
    })
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// A size for people: `999 B`, `1.5 KiB`, `12.0 MiB`, `3.2 GiB` (powers of 1024).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Transfers shorter than this show no rate: connection setup and the clock's
/// granularity would make it mostly noise (`90 bytes in 0.00 s (0.1 MB/s)`).
const SHORTEST_RATED: Duration = Duration::from_millis(50);

/// `GET name: 52428803 bytes in 1.25 s (50.0 MiB, 40.0 MiB/s)`: the exact count
/// first, then the size in human units from 1 KiB on, and a rate only for a transfer
/// long enough to measure.
pub fn transfer_line(verb: &str, name: &str, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let mut notes = Vec::new();
    if bytes >= 1024 {
        notes.push(human_bytes(bytes));
    }
    if elapsed >= SHORTEST_RATED {
        notes.push(format!("{}/s", human_bytes((bytes as f64 / secs) as u64)));
    }
    let mut line = format!("{verb} {name}: {bytes} bytes in {secs:.2} s");
    if !notes.is_empty() {
        line.push_str(&format!(" ({})", notes.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> FileName {
        FileName::new(s).expect("valid name")
    }

    fn open(host: &str, port: u16) -> Input {
        Input::Open {
            host: host.into(),
            port,
            tls: false,
        }
    }

    #[test]
    fn open_takes_a_port_a_host_and_port_or_host_colon_port() {
        assert_eq!(parse_input("OPEN 2121"), Ok(open("127.0.0.1", 2121)));
        assert_eq!(parse_input("open localhost 21"), Ok(open("localhost", 21)));
        assert_eq!(
            parse_input("Open 10.1.2.3:2121"),
            Ok(open("10.1.2.3", 2121))
        );
        assert_eq!(parse_input("OPEN [::1]:2121"), Ok(open("::1", 2121)));
        assert_eq!(parse_input("OPEN ::1 2121"), Ok(open("::1", 2121)));
        assert_eq!(parse_input("OPEN [::1] 2121"), Ok(open("::1", 2121)));
        assert_eq!(parse_input("  OPEN   2121  "), Ok(open("127.0.0.1", 2121)));
        assert_eq!(
            parse_input("open localhost:990 TLS"),
            Ok(Input::Open {
                host: "localhost".into(),
                port: 990,
                tls: true
            })
        );
    }

    #[test]
    fn open_refuses_bad_ports_and_shapes() {
        assert_eq!(parse_input("OPEN 0"), Err(InputError::BadPort("0".into())));
        assert_eq!(
            parse_input("OPEN 70000"),
            Err(InputError::BadPort("70000".into()))
        );
        assert_eq!(
            parse_input("OPEN host x"),
            Err(InputError::BadPort("x".into()))
        );
        assert_eq!(parse_input("OPEN"), Err(InputError::Usage(OPEN_USAGE)));
        assert_eq!(
            parse_input("OPEN a b c"),
            Err(InputError::Usage(OPEN_USAGE))
        );
        assert_eq!(parse_input("OPEN ::1"), Err(InputError::Usage(OPEN_USAGE)));
        assert_eq!(parse_input("OPEN host"), Err(InputError::Usage(OPEN_USAGE)));
    }

    #[test]
    fn get_and_put_take_the_rest_of_the_line_as_the_name() {
        assert_eq!(parse_input("GET a.txt"), Ok(Input::Get(name("a.txt"))));
        assert_eq!(
            parse_input("get my file.txt"),
            Ok(Input::Get(name("my file.txt")))
        );
        assert_eq!(
            parse_input("PuT  spaced  name "),
            Ok(Input::Put(name("spaced  name")))
        );
        assert_eq!(
            parse_input("GET \"quoted name\""),
            Ok(Input::Get(name("quoted name")))
        );
        assert_eq!(parse_input("PUT ' x '"), Ok(Input::Put(name(" x "))));
        assert_eq!(
            parse_input("GET sub/a.txt"),
            Ok(Input::Get(name("sub/a.txt")))
        );
        assert_eq!(
            parse_input("GET \"open"),
            Err(InputError::Quote("\"open".into()))
        );
        assert_eq!(parse_input("GET"), Err(InputError::Usage("GET <file>")));
        assert_eq!(parse_input("PUT   "), Err(InputError::Usage("PUT <file>")));
    }

    /// Whether `line` is refused for a name that cannot be used.
    fn is_bad_name(line: &str) -> bool {
        matches!(parse_input(line), Err(InputError::BadName(_, _)))
    }

    #[test]
    fn names_that_leave_the_local_directory_are_refused() {
        for bad in ["../x", "/etc/x", "a/../../x", "..", "a/.."] {
            assert_eq!(
                parse_input(&format!("GET {bad}")),
                Err(InputError::OutsideLocalDir(bad.into())),
                "{bad}"
            );
            assert_eq!(
                parse_input(&format!("PUT {bad}")),
                Err(InputError::OutsideLocalDir(bad.into())),
                "{bad}"
            );
        }
        let message = parse_input("GET ../x").expect_err("refused").to_string();
        assert!(
            message.contains("would leave the local directory"),
            "{message}"
        );
        assert!(is_bad_name("GET ."));
        assert!(is_bad_name("GET dir/"));
        assert!(is_bad_name("GET a\0b"));
    }

    #[test]
    fn simple_commands_are_case_insensitive_and_take_no_arguments() {
        assert_eq!(parse_input("close"), Ok(Input::Close));
        assert_eq!(parse_input("Quit"), Ok(Input::Quit));
        assert_eq!(parse_input("help"), Ok(Input::Help));
        assert_eq!(parse_input("lls"), Ok(Input::Lls));
        assert_eq!(parse_input("status"), Ok(Input::Status));
        assert_eq!(parse_input("ls"), Ok(Input::Ls(None)));
        assert_eq!(
            parse_input("dir sub dir"),
            Ok(Input::Ls(Some("sub dir".into())))
        );
        assert_eq!(parse_input("CLOSE now"), Err(InputError::Usage("CLOSE")));
        assert_eq!(parse_input(""), Ok(Input::Empty));
        assert_eq!(parse_input("   # a comment"), Ok(Input::Empty));
        assert_eq!(
            parse_input("RETR x"),
            Err(InputError::Unknown("RETR".into()))
        );
    }

    #[test]
    fn moving_around_takes_a_directory_or_nothing() {
        assert_eq!(parse_input("cd sub"), Ok(Input::Cd("sub".into())));
        assert_eq!(parse_input("CD \"a dir\""), Ok(Input::Cd("a dir".into())));
        assert_eq!(parse_input("CD /"), Ok(Input::Cd("/".into())));
        assert_eq!(parse_input("CD"), Err(InputError::Usage("CD <dir>")));
        assert_eq!(parse_input("cdup"), Ok(Input::Cdup));
        assert_eq!(parse_input("CDUP x"), Err(InputError::Usage("CDUP")));
        assert_eq!(parse_input("pwd"), Ok(Input::Pwd));
        assert_eq!(parse_input("Lcd sub dir"), Ok(Input::Lcd("sub dir".into())));
        assert_eq!(parse_input("LCD"), Err(InputError::Usage("LCD <dir>")));
        assert_eq!(parse_input("lpwd"), Ok(Input::Lpwd));
    }

    #[test]
    fn server_file_commands_take_remote_names() {
        assert_eq!(
            parse_input("mkdir new dir"),
            Ok(Input::Mkdir("new dir".into()))
        );
        assert_eq!(parse_input("RMDIR old"), Ok(Input::Rmdir("old".into())));
        assert_eq!(
            parse_input("delete notes.txt"),
            Ok(Input::Delete("notes.txt".into()))
        );
        assert_eq!(parse_input("SIZE 'a b'"), Ok(Input::Size("a b".into())));
        assert_eq!(parse_input("MKDIR"), Err(InputError::Usage("MKDIR <dir>")));
        assert_eq!(
            parse_input("DELETE"),
            Err(InputError::Usage("DELETE <file>"))
        );
        assert!(is_bad_name("DELETE a\0b"));
        let rename = |from: &str, to: &str| {
            Ok(Input::Rename {
                from: from.into(),
                to: to.into(),
            })
        };
        assert_eq!(parse_input("rename a b"), rename("a", "b"));
        assert_eq!(parse_input("RENAME \"a b\" c"), rename("a b", "c"));
        assert_eq!(parse_input("RENAME a  'c d' "), rename("a", "c d"));
        assert_eq!(
            parse_input("RENAME a"),
            Err(InputError::Usage(RENAME_USAGE))
        );
        assert_eq!(
            parse_input("RENAME a b c"),
            Err(InputError::Usage(RENAME_USAGE))
        );
        assert!(matches!(
            parse_input("RENAME \"a b c"),
            Err(InputError::Quote(_))
        ));
    }

    #[test]
    fn mget_and_mput_take_one_or_more_patterns() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_input("mget *.txt"),
            Ok(Input::Mget(words(&["*.txt"])))
        );
        assert_eq!(
            parse_input("MGET a?.bin [xy]* \"my *.doc\""),
            Ok(Input::Mget(words(&["a?.bin", "[xy]*", "my *.doc"])))
        );
        assert_eq!(parse_input("Mput *"), Ok(Input::Mput(words(&["*"]))));
        assert_eq!(
            parse_input("MGET"),
            Err(InputError::Usage("MGET <pattern>..."))
        );
        assert_eq!(
            parse_input("MPUT \"\""),
            Err(InputError::Usage("MPUT <pattern>..."))
        );
        assert!(is_bad_name("MGET sub/*.txt"));
        assert!(is_bad_name("MPUT ../*"));
    }

    #[test]
    fn reget_and_reput_take_a_local_file_name() {
        assert_eq!(
            parse_input("reget big.iso"),
            Ok(Input::Reget(name("big.iso")))
        );
        assert_eq!(parse_input("REPUT \"a b\""), Ok(Input::Reput(name("a b"))));
        assert_eq!(parse_input("REGET"), Err(InputError::Usage("REGET <file>")));
        assert_eq!(
            parse_input("REPUT ../x"),
            Err(InputError::OutsideLocalDir("../x".into()))
        );
    }

    #[test]
    fn passive_takes_on_off_or_nothing() {
        assert_eq!(parse_input("passive off"), Ok(Input::Passive(Some(false))));
        assert_eq!(parse_input("PASSIVE ON"), Ok(Input::Passive(Some(true))));
        assert_eq!(parse_input("passive"), Ok(Input::Passive(None)));
        assert_eq!(
            parse_input("PASSIVE maybe"),
            Err(InputError::Usage("PASSIVE [on|off]"))
        );
    }

    #[test]
    fn completion_offers_commands_then_the_names_each_command_takes() {
        let remote: Vec<String> = ["notes.txt", "new dir", "sub"].map(String::from).to_vec();
        let local: Vec<String> = ["nice.bin", "nest/", "n b.txt"].map(String::from).to_vec();
        let c = |line: &str| complete(line, line.len(), &remote, &local);
        assert_eq!(
            c("RE"),
            (0, vec!["REGET ".into(), "RENAME ".into(), "REPUT ".into()])
        );
        assert_eq!(c("  mk"), (2, vec!["mkdir ".into()]));
        assert_eq!(c("get n"), (4, vec!["notes.txt".into(), "new dir".into()]));
        assert_eq!(c("GET new d"), (4, vec!["new dir".into()]));
        assert_eq!(c("cd  s"), (4, vec!["sub".into()]));
        assert_eq!(c("put n"), (4, vec!["nice.bin".into(), "n b.txt".into()]));
        assert_eq!(c("lcd n"), (4, vec!["nest/".into()]));
        assert_eq!(
            c("mput nice.bin n"),
            (14, vec!["nice.bin".into(), "\"n b.txt\"".into()])
        );
        assert_eq!(c("mget *.txt ne"), (11, vec!["\"new dir\"".into()]));
        assert_eq!(c("rename notes.txt \"ne"), (17, vec!["\"new dir\"".into()]));
        assert_eq!(c("open 21"), (7, vec![]));
        // The cursor's position counts, not the end of the line.
        assert_eq!(
            complete("get su trailing", 6, &remote, &local),
            (4, vec!["sub".into()])
        );
    }

    #[test]
    fn human_sizes_use_powers_of_1024() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(50 << 20), "50.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn ftp_urls_parse_into_their_parts() {
        let url = FtpUrl::parse("ftp://bob:p%40ss@example.org:2121/pub/sub%20dir/a%20b.txt")
            .expect("url");
        assert_eq!(
            url,
            FtpUrl {
                user: Some("bob".into()),
                password: Some("p@ss".into()),
                host: "example.org".into(),
                port: 2121,
                dirs: vec!["pub".into(), "sub dir".into()],
                file: "a b.txt".into(),
            }
        );
        let url = FtpUrl::parse("ftp://[::1]/f").expect("url");
        assert_eq!((url.host.as_str(), url.port, url.user), ("::1", 21, None));
        let url = FtpUrl::parse("ftp://anonymous@h:21/dir/").expect("url");
        assert_eq!(url.user.as_deref(), Some("anonymous"));
        assert_eq!(url.password, None);
        assert_eq!(
            (url.dirs, url.file),
            (vec!["dir".to_owned()], String::new())
        );
        for bad in [
            "http://h/f",
            "ftp:///f",
            "ftp://h:0/f",
            "ftp://h:x/f",
            "ftp://h//f",
            "ftp://h/%zz",
            "ftp://[::1/f",
        ] {
            assert!(
                matches!(FtpUrl::parse(bad), Err(InputError::Url(..))),
                "{bad}"
            );
        }
        assert!(matches!(
            FtpUrl::parse("ftp://h/a%0d%0aDELE%20x"),
            Err(InputError::BadName(..))
        ));
    }

    #[test]
    fn a_url_becomes_open_cd_get_or_put_and_quit() {
        let url = FtpUrl::parse("ftp://h:2121/pub/a.txt").expect("url");
        assert_eq!(
            url.inputs(&[]),
            Ok(vec![
                open("h", 2121),
                Input::Cd("pub".into()),
                Input::Get(name("a.txt")),
                Input::Quit
            ])
        );
        assert!(matches!(
            url.inputs(&["x".into()]),
            Err(InputError::Url(..))
        ));
        let dir = FtpUrl::parse("ftp://h/").expect("url");
        assert_eq!(
            dir.inputs(&["x".into(), "y z".into()]),
            Ok(vec![
                open("h", 21),
                Input::Put(name("x")),
                Input::Put(name("y z")),
                Input::Quit
            ])
        );
        assert!(matches!(dir.inputs(&[]), Err(InputError::Url(..))));
        assert_eq!(
            dir.inputs(&["../x".into()]),
            Err(InputError::OutsideLocalDir("../x".into()))
        );
        let dotdot = FtpUrl::parse("ftp://h/..").expect("url");
        assert_eq!(
            dotdot.inputs(&[]),
            Err(InputError::OutsideLocalDir("..".into()))
        );
    }

    #[test]
    fn netrc_entries_are_found_by_host_or_default() {
        let text = "machine a.example login alice password s3cret\n\
                    macdef init\ncd pub\nls\n\n\
                    machine b.example\n  login bob\n  account x\n  password\n  pw2\n\
                    default login anonymous password me@\n";
        let entries = parse_netrc(text);
        assert_eq!(entries.len(), 3, "{entries:?}");
        let a = netrc_for(&entries, "A.example").expect("a");
        assert_eq!(
            (a.login.as_deref(), a.password.as_deref()),
            (Some("alice"), Some("s3cret"))
        );
        let b = netrc_for(&entries, "b.example").expect("b");
        assert_eq!(
            (b.login.as_deref(), b.password.as_deref()),
            (Some("bob"), Some("pw2"))
        );
        let other = netrc_for(&entries, "c.example").expect("default");
        assert_eq!(other.login.as_deref(), Some("anonymous"));
        assert_eq!(netrc_for(&parse_netrc("machine x login y"), "z"), None);
    }

    #[test]
    fn command_strings_split_at_semicolons_outside_quotes() {
        assert_eq!(
            split_commands("OPEN 2121; GET a.txt;QUIT"),
            ["OPEN 2121", " GET a.txt", "QUIT"]
        );
        assert_eq!(
            split_commands("GET \"a;b\"; PUT 'c;d' ;;"),
            ["GET \"a;b\"", " PUT 'c;d' "]
        );
        assert!(split_commands(" ; ").is_empty());
    }

    #[test]
    fn user_sets_a_name_and_maybe_a_password() {
        assert_eq!(
            parse_input("user bob"),
            Ok(Input::User {
                name: "bob".into(),
                password: None
            })
        );
        assert_eq!(
            parse_input("USER bob s3cret"),
            Ok(Input::User {
                name: "bob".into(),
                password: Some("s3cret".into())
            })
        );
        assert!(parse_input("USER").is_err());
    }

    #[test]
    fn transfer_lines_name_bytes_seconds_and_rate() {
        let line = transfer_line("GET", "a.bin", 2 << 20, Duration::from_secs(2));
        assert_eq!(
            line,
            "GET a.bin: 2097152 bytes in 2.00 s (2.0 MiB, 1.0 MiB/s)"
        );
        let line = transfer_line("PUT", "e", 0, Duration::ZERO);
        assert_eq!(line, "PUT e: 0 bytes in 0.00 s");
        // Too short to measure: no rate (issue 15 item 7).
        let line = transfer_line("GET", "hello.txt", 90, Duration::from_millis(1));
        assert_eq!(line, "GET hello.txt: 90 bytes in 0.00 s");
        let line = transfer_line("GET", "x", 1536, Duration::from_millis(100));
        assert_eq!(line, "GET x: 1536 bytes in 0.10 s (1.5 KiB, 15.0 KiB/s)");
        let line = transfer_line("GET", "y", 100, Duration::from_secs(1));
        assert_eq!(line, "GET y: 100 bytes in 1.00 s (100 B/s)");
    }
}
