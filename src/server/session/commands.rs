//! Every command in one `match`: who may send it, and which room serves it. The small
//! commands that need no room of their own (FEAT, OPTS, HELP, SITE, TYPE, ...) are
//! answered here.

use super::failure::{Failure, Refusal};
use super::files::Store;
use super::listings::{Facts, Listing};
use super::login::Login;
use super::{End, Session};
use crate::protocol::{Command, Reply, ReplyCode, TransferType};
use crate::storage::StorageError;
use crate::time::Utc;

/// What answering a command line came to.
pub(super) enum Answer {
    /// The reply to send.
    Reply(Reply),
    /// QUIT's reply, after which the session ends.
    Quit(Reply),
    /// AUTH TLS succeeded: its `234` went out before the handshake, and the
    /// connection is in TLS now.
    InTls,
    /// A transfer is under way; its reply comes when it ends.
    Transfer,
}

/// What handling a command came to.
pub(super) enum Step {
    /// Its reply.
    Reply(Reply),
    /// A transfer is under way (its `150` went out); its reply comes when it ends.
    Transfer,
}

/// The digest HASH computes (draft-bryan-ftpext-hash), chosen with `OPTS HASH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HashAlgo {
    Sha256,
    Sha512,
}

impl HashAlgo {
    const ALL: [HashAlgo; 2] = [HashAlgo::Sha256, HashAlgo::Sha512];

    pub(super) fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "SHA-256",
            HashAlgo::Sha512 => "SHA-512",
        }
    }
}

impl Session<'_> {
    /// Parses and handles one command line; `Err` when the session must end.
    pub(super) fn answer(&mut self, line: &[u8]) -> Result<Answer, End> {
        self.note_command(line);
        let cmd = match Command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                log::debug!("{}: refused command: {e}", self.peer);
                return Ok(Answer::Reply(e.reply()));
            }
        };
        if let Command::Auth(mechanism) = &cmd {
            // Its reply must go out before the handshake: the login room sends it.
            log::debug!("{}: AUTH {mechanism}", self.peer);
            return match self.auth(mechanism)? {
                None => Ok(Answer::InTls),
                Some(reply) => Ok(Answer::Reply(reply)),
            };
        }
        self.log_command(&cmd);
        let quit = cmd == Command::Quit;
        let verb = cmd.verb();
        let reply = match self.handle(cmd) {
            Ok(Step::Reply(reply)) => reply,
            Ok(Step::Transfer) => return Ok(Answer::Transfer),
            Err(failure) => match self.refusal(verb, failure) {
                Some(reply) => reply,
                None => return Err(End::Lost),
            },
        };
        Ok(match quit {
            true => Answer::Quit(reply),
            false => Answer::Reply(reply),
        })
    }

    /// The reply to a failed command (and its log line); `None` when the control
    /// connection failed and the session must end.
    pub(super) fn refusal(&self, verb: &str, failure: Failure) -> Option<Reply> {
        if let Failure::Control(_) = failure {
            return None;
        }
        failure.log(self.peer, verb);
        Some(failure.reply())
    }

    fn log_command(&self, cmd: &Command) {
        if log::log_enabled!(log::Level::Debug) {
            match cmd {
                Command::Pass(_) => {
                    log::debug!(event = "command", command = "PASS"; "{}: PASS ****", self.peer);
                }
                cmd => {
                    let verb = cmd.verb();
                    log::debug!(event = "command", command = verb; "{}: {cmd}", self.peer);
                }
            }
        }
    }

    /// Whether the session's login and permissions allow `cmd`.
    fn allowed(&self, cmd: &Command) -> Result<(), Failure> {
        let needs_login = !matches!(
            cmd,
            Command::User(_)
                | Command::Pass(_)
                | Command::Quit
                | Command::Rein
                | Command::Feat
                | Command::Syst
                | Command::Help(_)
                | Command::Noop
                | Command::Opts(_)
                | Command::Abor
                | Command::Auth(_)
                | Command::Pbsz(_)
                | Command::Prot(_)
                | Command::Ccc
        );
        if needs_login && !matches!(self.login, Login::In(_)) {
            return Err(Failure::NotLoggedIn);
        }
        let allowed = match cmd {
            Command::Retr(_)
            | Command::Size(_)
            | Command::Mdtm(_)
            | Command::Hash(_)
            | Command::List(_)
            | Command::Nlst(_)
            | Command::Mlsd(_)
            | Command::Mlst(_)
            | Command::Stat(Some(_)) => self.perms.read,
            Command::Stor(_)
            | Command::Appe(_)
            | Command::Stou(_)
            | Command::Mkd(_)
            | Command::Rnto(_)
            | Command::Mfmt { .. } => self.perms.write,
            Command::Dele(_) | Command::Rmd(_) | Command::Rnfr(_) => self.perms.delete,
            _ => true,
        };
        match allowed {
            true => Ok(()),
            false => Err(Refusal::Denied.into()),
        }
    }

    fn handle(&mut self, cmd: Command) -> Result<Step, Failure> {
        use ReplyCode::*;
        if let Err(refused) = self.allowed(&cmd) {
            // A refused transfer uses up its data connection too.
            if matches!(refused, Failure::Refused(_)) {
                self.data.take_plan();
            }
            return Err(refused);
        }
        // RNTO must come right after RNFR (RFC 959 §4.1.3).
        let rename_from = self.rename_from.take();
        Ok(Step::Reply(match cmd {
            // Who the session is (the login room).
            Command::User(name) => self.user(name)?,
            Command::Pass(password) => self.pass(&password)?,
            Command::Rein => self.rein()?,
            Command::Auth(_) => return Err(Refusal::AuthOutOfPlace.into()),
            Command::Ccc => return Err(Refusal::Ccc.into()),
            // Data connections (the data channel).
            Command::Pasv => self.data.pasv()?,
            Command::Epsv(arg) => self.data.epsv(arg)?,
            Command::Port(addr) | Command::Eprt(addr) => self.data.active(addr)?,
            Command::Pbsz(_) => self.data.pbsz()?,
            Command::Prot(level) => self.data.prot(level)?,
            // Files (the files room).
            Command::Pwd => Reply::new(
                PathName,
                format!("{} is the current directory", quote(self.cwd.as_str())),
            ),
            Command::Cwd(dir) => self.cwd(&dir)?,
            Command::Cdup => self.cwd("..")?,
            Command::Size(name) => {
                let (_, stat) = self.plain_file(&name)?;
                Reply::new(FileStatus, stat.size.to_string())
            }
            Command::Mdtm(name) => {
                let (_, stat) = self.plain_file(&name)?;
                let modified = stat
                    .modified
                    .ok_or_else(|| StorageError::Unsupported("modification times".into()))?;
                Reply::new(FileStatus, Utc::from_system_time(modified).mdtm())
            }
            Command::Mfmt { time, path } => self.mfmt(&time, &path)?,
            Command::Rest(offset) => {
                self.rest = offset;
                Reply::new(
                    PendingFurtherInfo,
                    format!("Restarting at {offset}; send RETR or STOR"),
                )
            }
            Command::Retr(name) => return self.retr(&name),
            Command::Stor(name) => {
                let how = match std::mem::take(&mut self.rest) {
                    0 => Store::Replace,
                    n => Store::At(n),
                };
                return self.store(&name, how);
            }
            Command::Appe(name) => {
                self.rest = 0;
                return self.store(&name, Store::Append);
            }
            Command::Stou(base) => {
                self.rest = 0;
                return self.stou(base.as_deref());
            }
            Command::Hash(name) => self.hash(&name)?,
            Command::Dele(name) => self.dele(&name)?,
            Command::Mkd(name) => self.mkd(&name)?,
            Command::Rmd(name) => self.rmd(&name)?,
            Command::Rnfr(name) => self.rnfr(&name)?,
            Command::Rnto(name) => {
                let from = rename_from.ok_or(Refusal::RntoBeforeRnfr)?;
                self.rnto(from, &name)?
            }
            // Listings (the listings room).
            Command::List(arg) => return self.list(arg.as_deref(), Listing::Long),
            Command::Nlst(arg) => return self.list(arg.as_deref(), Listing::Names),
            Command::Mlsd(arg) => return self.list(arg.as_deref(), Listing::Facts),
            Command::Mlst(arg) => self.mlst(arg.as_deref())?,
            Command::Stat(None) => self.status(),
            Command::Stat(Some(arg)) => self.stat(&arg)?,
            // The small ones.
            Command::Syst => Reply::new(SystemType, "UNIX Type: L8"),
            Command::Feat => self.feat(),
            Command::Opts(opt) => self.opts(&opt)?,
            Command::Type(t) => {
                self.transfer_type = t;
                Reply::new(CommandOk, format!("Type set to {}", type_name(t)))
            }
            Command::Mode => Reply::new(CommandOk, "Mode set to S"),
            Command::Stru => Reply::new(CommandOk, "Structure set to F"),
            Command::Allo => Reply::new(Superfluous, "ALLO not needed"),
            Command::Noop => Reply::new(CommandOk, "NOOP ok"),
            Command::Help(_) => help(),
            Command::Site(sub) if sub.trim().eq_ignore_ascii_case("HELP") => {
                Reply::new(HelpMessage, "SITE commands: HELP")
            }
            Command::Site(sub) => {
                let name = sub.split_whitespace().next().unwrap_or("").to_uppercase();
                return Err(Refusal::Site(name).into());
            }
            Command::Quit => Reply::new(ClosingControl, "Goodbye"),
            Command::Abor => Reply::new(NoTransfer, "No transfer to abort"),
        }))
    }

    /// STAT without a path: the session's state.
    fn status(&self) -> Reply {
        let user = match &self.login {
            Login::In(name) => name.as_str(),
            _ => "nobody",
        };
        let lines = [
            format!("Connected from {}", self.peer.ip()),
            format!("Logged in as {user}"),
            format!("TYPE: {}", type_name(self.transfer_type)),
            self.data.status().to_owned(),
        ];
        Reply::multi(
            ReplyCode::SystemStatus,
            "simple-ftp status:",
            &lines,
            "End of status",
        )
    }

    fn feat(&self) -> Reply {
        let hashes: Vec<String> = HashAlgo::ALL
            .iter()
            .map(|h| format!("{}{}", h.name(), if *h == self.hash { "*" } else { "" }))
            .collect();
        let mut lines = vec![
            "EPRT".to_owned(),
            "EPSV".to_owned(),
            format!("HASH {}", hashes.join(";")),
            "MDTM".to_owned(),
            "MFMT".to_owned(),
            self.facts.feature(),
            "PASV".to_owned(),
            "REST STREAM".to_owned(),
            "SIZE".to_owned(),
            "TVFS".to_owned(),
            "UTF8".to_owned(),
        ];
        if self.shared.config.tls.is_some() {
            lines.extend(["AUTH TLS", "PBSZ", "PROT"].map(str::to_owned));
            lines.sort();
        }
        Reply::multi(ReplyCode::SystemStatus, "Features:", &lines, "End")
    }

    fn opts(&mut self, opt: &str) -> Result<Reply, Failure> {
        use ReplyCode::*;
        let (name, value) = match opt.trim().split_once(' ') {
            Some((name, value)) => (name, Some(value.trim())),
            None => (opt.trim(), None),
        };
        if name.eq_ignore_ascii_case("UTF8") {
            return match value {
                Some(on) if !on.eq_ignore_ascii_case("ON") => Err(Refusal::Utf8Off.into()),
                _ => Ok(Reply::new(CommandOk, "Always in UTF8 mode")),
            };
        }
        if name.eq_ignore_ascii_case("MLST") {
            self.facts = Facts::select(value.unwrap_or(""));
            return Ok(Reply::new(
                CommandOk,
                format!("MLST OPTS {}", self.facts.names()),
            ));
        }
        if name.eq_ignore_ascii_case("HASH") {
            if let Some(value) = value {
                self.hash = HashAlgo::ALL
                    .into_iter()
                    .find(|h| h.name().eq_ignore_ascii_case(value))
                    .ok_or(Refusal::UnknownHash)?;
            }
            return Ok(Reply::new(CommandOk, self.hash.name()));
        }
        Err(Refusal::UnknownOption.into())
    }
}

fn type_name(t: TransferType) -> &'static str {
    match t {
        TransferType::Ascii => "A",
        TransferType::Image => "I",
    }
}

/// A path in double quotes, with quotes inside doubled (RFC 959 Appendix II).
pub(super) fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

fn help() -> Reply {
    let lines = [
        "ABOR ALLO APPE AUTH CCC  CDUP CWD  DELE EPRT EPSV FEAT HASH HELP LIST",
        "MDTM MFMT MKD  MLSD MLST MODE NLST NOOP OPTS PASS PASV PBSZ PORT PROT",
        "PWD  QUIT REIN REST RETR RMD  RNFR RNTO SITE SIZE STAT STOR STOU STRU",
        "SYST TYPE USER XCUP XCWD XMKD XPWD XRMD",
    ];
    let middle: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    Reply::multi(
        ReplyCode::HelpMessage,
        "The following commands are recognized.",
        &middle,
        "Help OK",
    )
}
