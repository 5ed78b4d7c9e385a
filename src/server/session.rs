//! One control connection: read a line, parse it into a [`Command`], one `match`, reply.
//!
//! Handlers return `Result<Reply, Failure>`; [`Failure::reply`] is the one place where
//! an error becomes a reply. Transfers send their `150` themselves, then the final
//! reply comes back the same way as any other.
//!
//! Reading a command waits at most the idle timeout; the read is also woken when the
//! server shuts down (the acceptor's sweep shuts down our reading half), and then the
//! session says `421` and ends. A transfer in progress does not read the control
//! connection, so it finishes first.

use std::fs::{self, File, Metadata};
use std::io::{self, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use super::data::{self, DataPlan};
use super::{ConnToken, Shared};
use crate::path::{PathError, Resolved, VirtualPath, TEMP_PREFIX};
use crate::protocol::{
    read_line, Command, EpsvArg, Line, LineState, Reply, ReplyCode, TransferType, MAX_LINE,
};
use crate::time::{ls_date, Utc};

/// Runs one session on `stream` to its end.
pub(super) fn run(stream: TcpStream, shared: &Shared) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return; // the peer is already gone
    };
    let Some(token) = shared.register(&stream) else {
        let mut stream = stream;
        let reply = Reply::new(ReplyCode::ServiceNotAvailable, "Server shutting down");
        let _ = stream.write_all(reply.to_wire().as_bytes());
        return;
    };
    let setup = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(shared.config.idle_timeout)))
        .and_then(|()| stream.set_write_timeout(Some(shared.config.idle_timeout)))
        .and_then(|()| stream.try_clone());
    let reader = match setup {
        Ok(reader) => BufReader::new(reader),
        Err(e) => {
            log::warn!("{peer}: cannot set up the session: {e}");
            return;
        }
    };
    let mut session = Session {
        shared,
        token,
        reader,
        writer: stream,
        peer,
        local,
        login: Login::None,
        cwd: VirtualPath::root(),
        data: None,
        epsv_all: false,
        transfer_type: TransferType::Ascii,
    };
    let started = Instant::now();
    log::info!("{peer}: session start");
    let end = session.serve();
    log::info!(
        "{peer}: session end ({end}) after {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Why a session ended, for the log.
#[derive(Debug, Clone, Copy)]
enum End {
    Quit,
    ClientClosed,
    Idle,
    Shutdown,
    Lost,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            End::Quit => "quit",
            End::ClientClosed => "client closed the connection",
            End::Idle => "idle timeout",
            End::Shutdown => "server shutdown",
            End::Lost => "connection lost",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Login {
    None,
    /// USER was given; `anonymous` says whether PASS will let them in.
    User {
        name: String,
        anonymous: bool,
    },
    In(String),
}

/// What went wrong handling a command. Each kind is documented by the reply it earns.
#[derive(Debug)]
enum Failure {
    /// 530: the command needs a login.
    NotLoggedIn,
    /// 501 (NUL), 553 (reserved name), 550 (outside the root, or no such directory).
    Path(PathError),
    /// A file-system action failed: 550 when the file is missing or not accessible,
    /// 452 when the disk is full, 451 otherwise.
    Fs(io::Error),
    /// 450: another transfer holds the file for longer than the lock wait.
    Busy,
    /// 425: the data connection could not be opened, or none was set up.
    NoData(String),
    /// 426: the data connection failed during the transfer.
    Transfer(io::Error),
    /// An explicit reply (a refusal that fits no kind above).
    Reply(Reply),
    /// The control connection failed: nothing can be sent, the session ends.
    Control(io::Error),
}

impl From<PathError> for Failure {
    fn from(e: PathError) -> Failure {
        Failure::Path(e)
    }
}

impl Failure {
    fn refuse(code: ReplyCode, text: impl Into<String>) -> Failure {
        Failure::Reply(Reply::new(code, text))
    }

    /// The one place where an error becomes a reply.
    fn reply(self) -> Reply {
        use ReplyCode::*;
        match self {
            Failure::NotLoggedIn => Reply::new(NotLoggedIn, "Please log in with USER and PASS"),
            Failure::Path(PathError::Nul) => Reply::new(BadArguments, "Path contains a NUL byte"),
            Failure::Path(PathError::Reserved) => {
                Reply::new(NameNotAllowed, "File name not allowed")
            }
            Failure::Path(PathError::Outside) => Reply::new(FileUnavailable, "Permission denied"),
            Failure::Path(PathError::Io(e)) | Failure::Fs(e) => fs_reply(&e),
            Failure::Busy => Reply::new(
                FileBusy,
                "File busy: another transfer is using it, try again",
            ),
            Failure::NoData(why) => Reply::new(CantOpenDataConnection, why),
            Failure::Transfer(e) => Reply::new(
                TransferAborted,
                format!("Connection closed; transfer aborted: {e}"),
            ),
            Failure::Reply(reply) => reply,
            Failure::Control(e) => Reply::new(ServiceNotAvailable, e.to_string()),
        }
    }
}

/// The reply for a failed file-system action.
fn fs_reply(e: &io::Error) -> Reply {
    use ReplyCode::*;
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            Reply::new(FileUnavailable, "No such file or directory")
        }
        io::ErrorKind::PermissionDenied => Reply::new(FileUnavailable, "Permission denied"),
        io::ErrorKind::IsADirectory => Reply::new(FileUnavailable, "Is a directory"),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge => {
            Reply::new(
                InsufficientStorage,
                format!("Insufficient storage space: {e}"),
            )
        }
        _ => Reply::new(LocalError, format!("Local error: {e}")),
    }
}

/// Whether an upload error came from the disk (the client is not to blame).
fn is_storage_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    ) || e.kind() == io::ErrorKind::PermissionDenied
        || e.raw_os_error() == Some(5) // EIO
}

enum Flow {
    Continue,
    Close,
}

struct Session<'s> {
    shared: &'s Shared,
    token: ConnToken<'s>,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    login: Login,
    cwd: VirtualPath,
    /// The data connection set up by the last PASV/EPSV/PORT/EPRT, used by the next
    /// transfer and dropped by any transfer command, successful or not.
    data: Option<DataPlan>,
    /// After `EPSV ALL`, only EPSV may set up data connections (RFC 2428 §4).
    epsv_all: bool,
    /// Recorded for STAT and logs; bytes are never rewritten in either type.
    transfer_type: TransferType,
}

impl Session<'_> {
    fn serve(&mut self) -> End {
        if self
            .send(&Reply::new(ReplyCode::ServiceReady, "simple-ftp ready"))
            .is_err()
        {
            return End::Lost;
        }
        let mut line = Vec::with_capacity(256);
        let mut state = LineState::default();
        loop {
            let read = read_line(&mut self.reader, &mut line, &mut state, MAX_LINE);
            if self.shared.stopping() {
                let reply = Reply::new(ReplyCode::ServiceNotAvailable, "Server shutting down");
                let _ = self.send(&reply);
                return End::Shutdown;
            }
            match read {
                Ok(Line::Complete) => {}
                Ok(Line::TooLong) => {
                    let reply = Reply::new(ReplyCode::SyntaxError, "Command line too long");
                    if self.send(&reply).is_err() {
                        return End::Lost;
                    }
                    continue;
                }
                Ok(Line::Eof) => return End::ClientClosed,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let reply = Reply::new(ReplyCode::ServiceNotAvailable, "Idle timeout, closing");
                    let _ = self.send(&reply);
                    return End::Idle;
                }
                Err(_) => return End::Lost,
            }
            let (reply, flow) = match Command::parse(&line) {
                Ok(cmd) => {
                    self.log_command(&cmd);
                    let quit = cmd == Command::Quit;
                    match self.handle(cmd) {
                        Ok(reply) if quit => (reply, Flow::Close),
                        Ok(reply) => (reply, Flow::Continue),
                        Err(Failure::Control(_)) => return End::Lost,
                        Err(failure) => (failure.reply(), Flow::Continue),
                    }
                }
                Err(e) => (e.reply(), Flow::Continue),
            };
            if self.send(&reply).is_err() {
                return End::Lost;
            }
            if let Flow::Close = flow {
                return End::Quit;
            }
        }
    }

    fn log_command(&self, cmd: &Command) {
        if log::log_enabled!(log::Level::Debug) {
            match cmd {
                Command::Pass(_) => log::debug!("{}: PASS ****", self.peer),
                cmd => log::debug!("{}: {cmd}", self.peer),
            }
        }
    }

    fn send(&mut self, reply: &Reply) -> io::Result<()> {
        self.writer.write_all(reply.to_wire().as_bytes())
    }

    fn handle(&mut self, cmd: Command) -> Result<Reply, Failure> {
        use ReplyCode::*;
        let needs_login = !matches!(
            cmd,
            Command::User(_)
                | Command::Pass(_)
                | Command::Quit
                | Command::Feat
                | Command::Syst
                | Command::Help(_)
                | Command::Noop
                | Command::Opts(_)
        );
        if needs_login && !matches!(self.login, Login::In(_)) {
            return Err(Failure::NotLoggedIn);
        }
        Ok(match cmd {
            Command::User(name) => {
                let anonymous = ["anonymous", "ftp"]
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&name));
                self.login = Login::User { name, anonymous };
                Reply::new(NeedPassword, "Please specify the password")
            }
            Command::Pass(_) => self.pass()?,
            Command::Syst => Reply::new(SystemType, "UNIX Type: L8"),
            Command::Feat => feat(),
            Command::Opts(opt) => opts(&opt)?,
            Command::Type(t) => {
                self.transfer_type = t;
                let name = match t {
                    TransferType::Ascii => "A",
                    TransferType::Image => "I",
                };
                Reply::new(CommandOk, format!("Type set to {name}"))
            }
            Command::Mode => Reply::new(CommandOk, "Mode set to S"),
            Command::Stru => Reply::new(CommandOk, "Structure set to F"),
            Command::Allo => Reply::new(Superfluous, "ALLO not needed"),
            Command::Noop => Reply::new(CommandOk, "NOOP ok"),
            Command::Help(_) => help(),
            Command::Quit => Reply::new(ClosingControl, "Goodbye"),
            Command::Pwd => Reply::new(
                PathName,
                format!("{} is the current directory", quote(self.cwd.as_str())),
            ),
            Command::Cwd(dir) => self.cwd(&dir)?,
            Command::Cdup => self.cwd("..")?,
            Command::Pasv => self.pasv()?,
            Command::Epsv(arg) => self.epsv(arg)?,
            Command::Port(addr) | Command::Eprt(addr) => self.active(addr)?,
            Command::Size(name) => {
                let (_, meta) = self.plain_file(&name)?;
                Reply::new(FileStatus, meta.len().to_string())
            }
            Command::Mdtm(name) => {
                let (_, meta) = self.plain_file(&name)?;
                let modified = meta.modified().map_err(Failure::Fs)?;
                Reply::new(FileStatus, Utc::from_system_time(modified).mdtm())
            }
            Command::Retr(name) => self.retr(&name)?,
            Command::Stor(name) => self.stor(&name)?,
            Command::List(arg) => self.list(arg.as_deref(), true)?,
            Command::Nlst(arg) => self.list(arg.as_deref(), false)?,
        })
    }

    fn pass(&mut self) -> Result<Reply, Failure> {
        use ReplyCode::*;
        match std::mem::replace(&mut self.login, Login::None) {
            Login::User {
                name,
                anonymous: true,
            } => {
                log::info!("{}: logged in as {name}", self.peer);
                self.login = Login::In(name);
                Ok(Reply::new(LoggedIn, "Login successful"))
            }
            Login::User { name, .. } => {
                log::warn!("{}: failed login as {name:?}", self.peer);
                Err(Failure::refuse(NotLoggedIn, "Login incorrect"))
            }
            Login::None => Err(Failure::refuse(BadSequence, "Login with USER first")),
            Login::In(name) => {
                self.login = Login::In(name);
                Ok(Reply::new(LoggedIn, "Already logged in"))
            }
        }
    }

    fn resolve(&self, arg: &str) -> Result<Resolved, Failure> {
        Ok(self.shared.root.resolve(&self.cwd, arg)?)
    }

    /// Resolves `name` and checks that it is a plain file (following a symlink that
    /// stays inside the root).
    fn plain_file(&self, name: &str) -> Result<(Resolved, Metadata), Failure> {
        let path = self.resolve(name)?;
        let meta = fs::metadata(path.real()).map_err(Failure::Fs)?;
        if !meta.is_file() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Not a plain file",
            ));
        }
        Ok((path, meta))
    }

    fn cwd(&mut self, dir: &str) -> Result<Reply, Failure> {
        let path = self.resolve(dir)?;
        let meta = fs::metadata(path.real()).map_err(Failure::Fs)?;
        if !meta.is_dir() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Not a directory",
            ));
        }
        self.cwd = path.virtual_path().clone();
        Ok(Reply::new(
            ReplyCode::FileActionOk,
            format!("Directory changed to {}", self.cwd),
        ))
    }

    fn pasv(&mut self) -> Result<Reply, Failure> {
        if self.epsv_all {
            return Err(Failure::refuse(
                ReplyCode::BadSequence,
                "Only EPSV after EPSV ALL",
            ));
        }
        let IpAddr::V4(local) = self.local.ip().to_canonical() else {
            return Err(Failure::refuse(
                ReplyCode::CantOpenDataConnection,
                "PASV needs IPv4; use EPSV",
            ));
        };
        let port = self.listen(IpAddr::V4(local))?;
        let [a, b, c, d] = self.shared.config.pasv_address.unwrap_or(local).octets();
        let (p1, p2) = (port >> 8, port & 0xff);
        Ok(Reply::new(
            ReplyCode::PassiveMode,
            format!("Entering Passive Mode ({a},{b},{c},{d},{p1},{p2})."),
        ))
    }

    fn epsv(&mut self, arg: EpsvArg) -> Result<Reply, Failure> {
        let local = self.local.ip().to_canonical();
        let ours = if local.is_ipv4() { 1 } else { 2 };
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                return Ok(Reply::new(ReplyCode::CommandOk, "EPSV ALL ok"));
            }
            EpsvArg::Protocol(p) if p != ours => {
                return Err(Failure::refuse(
                    ReplyCode::ProtocolNotSupported,
                    format!("Network protocol not supported, use ({ours})"),
                ));
            }
            EpsvArg::Protocol(_) | EpsvArg::Any => {}
        }
        let port = self.listen(local)?;
        Ok(Reply::new(
            ReplyCode::ExtendedPassiveMode,
            format!("Entering Extended Passive Mode (|||{port}|)"),
        ))
    }

    /// Opens a passive listener for the next transfer; returns its port.
    fn listen(&mut self, ip: IpAddr) -> Result<u16, Failure> {
        self.data = None; // a new PASV replaces the old listener
        let listener = data::listen(ip, self.shared)
            .and_then(|l| l.local_addr().map(|a| (l, a.port())))
            .map_err(|e| Failure::NoData(format!("Cannot open a passive port: {e}")))?;
        self.data = Some(DataPlan::Passive(listener.0));
        Ok(listener.1)
    }

    fn active(&mut self, addr: SocketAddr) -> Result<Reply, Failure> {
        if self.epsv_all {
            return Err(Failure::refuse(
                ReplyCode::BadSequence,
                "Only EPSV after EPSV ALL",
            ));
        }
        // RFC 2577 §3: no connections to third parties or to privileged ports.
        if addr.ip().to_canonical() != self.peer.ip().to_canonical() || addr.port() < 1024 {
            return Err(Failure::refuse(
                ReplyCode::ParameterNotImplemented,
                "Data connections go only to your own address and a port >= 1024",
            ));
        }
        self.data = Some(DataPlan::Active(addr));
        Ok(Reply::new(
            ReplyCode::CommandOk,
            "Active data connection set up",
        ))
    }

    /// Sends 150 and opens the data connection planned by the last PASV/PORT.
    fn open_data(&mut self, plan: Option<DataPlan>, what: &str) -> Result<TcpStream, Failure> {
        let plan =
            plan.ok_or_else(|| Failure::NoData("Use PASV, EPSV, PORT or EPRT first".into()))?;
        self.send(&Reply::new(
            ReplyCode::FileStatusOk,
            format!("Opening data connection for {what}"),
        ))
        .map_err(Failure::Control)?;
        let stream = data::connect(plan, self.peer.ip(), self.shared)
            .map_err(|e| Failure::NoData(format!("Cannot open data connection: {e}")))?;
        self.token.set_data(Some(&stream));
        Ok(stream)
    }

    fn close_data(&self, stream: TcpStream) {
        self.token.set_data(None);
        drop(stream);
    }

    fn retr(&mut self, name: &str) -> Result<Reply, Failure> {
        let plan = self.data.take();
        let path = self.resolve(name)?;
        let _guard = self
            .shared
            .locks
            .read(&path, self.shared.config.lock_wait)
            .ok_or(Failure::Busy)?;
        let mut file = File::open(path.real()).map_err(Failure::Fs)?;
        let meta = file.metadata().map_err(Failure::Fs)?;
        if !meta.is_file() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Not a plain file",
            ));
        }
        let shown = path.virtual_path();
        let mut stream = self.open_data(plan, &format!("{shown} ({} bytes)", meta.len()))?;
        let started = Instant::now();
        // File -> TcpStream: std::io::copy uses sendfile here, keep it unwrapped.
        let result = io::copy(&mut file, &mut stream);
        self.close_data(stream);
        let n = result.map_err(Failure::Transfer)?;
        self.log_transfer("RETR", shown, n, started);
        Ok(Reply::new(
            ReplyCode::TransferComplete,
            format!("Transfer complete, {n} bytes"),
        ))
    }

    fn stor(&mut self, name: &str) -> Result<Reply, Failure> {
        let plan = self.data.take();
        let path = self.resolve(name)?;
        if path.real().is_dir() {
            return Err(Failure::refuse(
                ReplyCode::FileUnavailable,
                "Is a directory",
            ));
        }
        let _guard = self
            .shared
            .locks
            .write(&path, self.shared.config.lock_wait)
            .ok_or(Failure::Busy)?;
        let dir = path.real().parent().unwrap_or(self.shared.root.dir());
        // The upload goes to a hidden temporary file beside the target, renamed over it
        // only when complete. Dropping `part` on any error removes it.
        let mut part = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(Failure::Fs)?;
        let shown = path.virtual_path();
        let mut stream = self.open_data(plan, &shown.to_string())?;
        let started = Instant::now();
        let result = io::copy(&mut stream, part.as_file_mut());
        self.close_data(stream);
        let n = match result {
            Ok(n) => n,
            Err(e) if is_storage_error(&e) => return Err(Failure::Fs(e)),
            Err(e) => return Err(Failure::Transfer(e)),
        };
        // After the grace period the server shuts our data connection down, and the
        // read sees an end of file: that upload is cut short, not complete.
        if self.shared.forced.load(Ordering::SeqCst) {
            log::warn!(
                "{}: STOR {shown}: cut off by shutdown, upload discarded",
                self.peer
            );
            return Err(Failure::Transfer(io::ErrorKind::ConnectionAborted.into()));
        }
        if self.client_vanished() {
            log::warn!("{}: STOR {shown}: client gone, upload discarded", self.peer);
            return Err(Failure::Transfer(io::ErrorKind::ConnectionAborted.into()));
        }
        part.persist(path.real())
            .map_err(|e| Failure::Fs(e.error))?;
        self.log_transfer("STOR", shown, n, started);
        Ok(Reply::new(
            ReplyCode::TransferComplete,
            format!("Transfer complete, {n} bytes"),
        ))
    }

    /// Whether the client closed the control connection, which means an upload that
    /// just ended was cut short by a client that went away, not finished. Best effort:
    /// a peek that does not wait. During shutdown our own sweep closed the reading
    /// half, so then the answer is always no.
    fn client_vanished(&self) -> bool {
        if self.shared.stopping() || !self.reader.buffer().is_empty() {
            return false;
        }
        if self.writer.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let closed = matches!(self.writer.peek(&mut byte), Ok(0));
        let _ = self.writer.set_nonblocking(false);
        closed
    }

    fn list(&mut self, arg: Option<&str>, long: bool) -> Result<Reply, Failure> {
        let plan = self.data.take();
        let path = self.resolve(arg.unwrap_or("."))?;
        let meta = fs::metadata(path.real()).map_err(Failure::Fs)?;
        let now = SystemTime::now();
        let mut text = String::new();
        if meta.is_dir() {
            let mut entries = Vec::new();
            for entry in fs::read_dir(path.real()).map_err(Failure::Fs)? {
                let Ok(entry) = entry else { continue };
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                if let Some(meta) = self.listed_meta(&path, &name) {
                    entries.push((name, meta));
                }
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, meta) in &entries {
                push_entry(&mut text, name, meta, long, now);
            }
        } else {
            let name = path
                .virtual_path()
                .components()
                .last()
                .unwrap_or("/")
                .to_owned();
            push_entry(&mut text, &name, &meta, long, now);
        }
        let mut stream = self.open_data(plan, "directory listing")?;
        let result = stream.write_all(text.as_bytes());
        self.close_data(stream);
        result.map_err(Failure::Transfer)?;
        Ok(Reply::new(ReplyCode::TransferComplete, "Directory send OK"))
    }

    /// The metadata to list for `name` in `dir`: a symlink shows what it points to,
    /// and one that leads outside the root (or nowhere) is not listed at all.
    fn listed_meta(&self, dir: &Resolved, name: &str) -> Option<Metadata> {
        let real = dir.real().join(name);
        let meta = fs::symlink_metadata(&real).ok()?;
        if !meta.file_type().is_symlink() {
            return Some(meta);
        }
        let child = dir.virtual_path().join(name).ok()?;
        let resolved = self.shared.root.resolve_virtual(child).ok()?;
        fs::metadata(resolved.real()).ok()
    }

    fn log_transfer(&self, verb: &str, path: &VirtualPath, bytes: u64, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        log::info!("{}: {verb} {path} {bytes} bytes in {secs:.3} s", self.peer);
    }
}

/// One line of a listing: `ls -l` style, or the bare name.
fn push_entry(text: &mut String, name: &str, meta: &Metadata, long: bool, now: SystemTime) {
    use std::fmt::Write as _;
    if long {
        let kind = if meta.is_dir() { 'd' } else { '-' };
        let mode = meta.permissions().mode();
        let mut perms = String::with_capacity(9);
        for shift in [6, 3, 0] {
            let bits = (mode >> shift) & 7;
            perms.push(if bits & 4 != 0 { 'r' } else { '-' });
            perms.push(if bits & 2 != 0 { 'w' } else { '-' });
            perms.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        let date = meta
            .modified()
            .map_or_else(|_| ls_date(now, now), |t| ls_date(t, now));
        let _ = write!(
            text,
            "{kind}{perms} {:>3} ftp      ftp      {:>12} {date} {name}\r\n",
            meta.nlink(),
            meta.len()
        );
    } else {
        text.push_str(name);
        text.push_str("\r\n");
    }
}

/// A path in double quotes, with quotes inside doubled (RFC 959 Appendix II).
fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

/// Everything we implement beyond RFC 959, one feature per line (RFC 2389).
const FEATURES: &[&str] = &["EPRT", "EPSV", "MDTM", "PASV", "SIZE", "TVFS", "UTF8"];

fn feat() -> Reply {
    let lines: Vec<String> = FEATURES.iter().map(|f| (*f).to_owned()).collect();
    Reply::multi(ReplyCode::SystemStatus, "Features:", &lines, "End")
}

fn opts(opt: &str) -> Result<Reply, Failure> {
    let mut words = opt.split_whitespace();
    let name = words.next().unwrap_or("");
    if name.eq_ignore_ascii_case("UTF8") {
        return match words.next() {
            None => Ok(Reply::new(ReplyCode::CommandOk, "Always in UTF8 mode")),
            Some(on) if on.eq_ignore_ascii_case("ON") => {
                Ok(Reply::new(ReplyCode::CommandOk, "Always in UTF8 mode"))
            }
            Some(_) => Err(Failure::refuse(
                ReplyCode::ParameterNotImplemented,
                "UTF8 cannot be turned off",
            )),
        };
    }
    Err(Failure::refuse(
        ReplyCode::BadArguments,
        "Option not understood",
    ))
}

fn help() -> Reply {
    let lines = [
        "ALLO CDUP CWD  EPRT EPSV FEAT HELP LIST MDTM MODE NLST NOOP OPTS PASS",
        "PASV PORT PWD  QUIT RETR SIZE STOR STRU SYST TYPE USER XCUP XCWD XPWD",
    ];
    let middle: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    Reply::multi(
        ReplyCode::HelpMessage,
        "The following commands are recognized.",
        &middle,
        "Help OK",
    )
}
