//! Test helpers: a real `ftp-server` process on port 0 in its own temporary root, and
//! a small, independent FTP control-connection driver that checks replies by number.

#![allow(dead_code)] // each test file uses a different part of this module

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Generous bound for anything a test waits for: these machines are shared and slow.
pub const WAIT: Duration = Duration::from_secs(30);

/// An `ftp-server` process serving a temporary directory, killed on drop.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    /// The implicit FTPS address, when started with `--implicit-tls-port`.
    pub implicit: Option<SocketAddr>,
    /// Holds the temporary directory (root and log) alive.
    pub dir: tempfile::TempDir,
    root: PathBuf,
    log: PathBuf,
}

impl TestServer {
    /// Starts a server on 127.0.0.1 port 0 with a fresh, empty root.
    pub fn start(extra: &[&str]) -> TestServer {
        let (dir, root) = fresh_root();
        TestServer::start_in(dir, root, extra)
    }

    /// Starts a server on `root` (inside `dir`, which also holds the log).
    pub fn start_in(dir: tempfile::TempDir, root: PathBuf, extra: &[&str]) -> TestServer {
        let cmd = Command::new(env!("CARGO_BIN_EXE_ftp-server"));
        TestServer::spawn(cmd, dir, root, extra)
    }

    /// Starts a server with a fresh, empty root through `sh -c script`, where the
    /// script ends with `exec "$0" "$@"` (to set limits or signal dispositions first).
    pub fn start_wrapped(script: &str, extra: &[&str]) -> TestServer {
        let (dir, root) = fresh_root();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_ftp-server"));
        TestServer::spawn(cmd, dir, root, extra)
    }

    fn spawn(
        mut cmd: Command,
        dir: tempfile::TempDir,
        root: PathBuf,
        extra: &[&str],
    ) -> TestServer {
        let log = dir.path().join("server.log");
        let log_file = File::create(&log).expect("log file");
        let mut child = cmd
            .arg("--port")
            .arg("0")
            .arg("--root")
            .arg(&root)
            .arg("-v")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // A file, not a pipe: a pipe nobody reads would fill and stall the server.
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start ftp-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        // With an implicit FTPS port, its address comes on the next line.
        let implicit = extra.contains(&"--implicit-tls-port").then(|| {
            let mut line = String::new();
            stdout
                .read_line(&mut line)
                .expect("read the implicit FTPS line");
            line.trim()
                .strip_prefix("implicit FTPS on ")
                .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
                .parse()
                .expect("address")
        });
        TestServer {
            child,
            addr,
            implicit,
            dir,
            root,
            log,
        }
    }

    /// The directory served as `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`INT`, `TERM`) to the server process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the server to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Connects until a worker is free (the greeting is 220, not 421), then logs in.
    pub fn login_when_free(&self) -> Ftp {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut ftp = Ftp::connect(self.addr);
            if ftp.greeting.code == 220 {
                ftp.login();
                return ftp;
            }
            assert!(Instant::now() < deadline, "no worker became free");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connects and logs in anonymously.
    pub fn login(&self) -> Ftp {
        let mut ftp = Ftp::connect(self.addr);
        ftp.login();
        ftp
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary directory with an empty `root/` in it (the directory also takes the
/// server's log).
fn fresh_root() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir root");
    (dir, root)
}

/// A reply as read by the test driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    pub code: u16,
    pub text: String,
}

/// A bare-hands FTP control connection, independent of the library's client.
pub struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub greeting: Resp,
}

impl Ftp {
    /// Connects and reads the greeting (whatever its code).
    pub fn connect(addr: SocketAddr) -> Ftp {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        Ftp::on(stream)
    }

    /// Reads the greeting (whatever its code) on a connection made by the caller
    /// (from a chosen address, or after a PROXY header).
    pub fn on(stream: TcpStream) -> Ftp {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream.set_write_timeout(Some(WAIT)).expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut ftp = Ftp {
            reader: BufReader::new(stream),
            writer,
            greeting: Resp {
                code: 0,
                text: String::new(),
            },
        };
        ftp.greeting = ftp.reply();
        ftp
    }

    pub fn login(&mut self) {
        assert_eq!(self.greeting.code, 220, "{:?}", self.greeting);
        self.expect("USER anonymous", 331);
        self.expect("PASS test@", 230);
        self.expect("TYPE I", 200);
    }

    /// Reads one whole reply (multi-line replies end at `NNN `).
    pub fn reply(&mut self) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read reply");
        assert!(line.len() >= 4, "short reply line {line:?}");
        let code: u16 = line[..3].parse().expect("reply code");
        let mut text = line[4..].trim_end().to_owned();
        if line.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let mut next = String::new();
                let n = self.reader.read_line(&mut next).expect("read reply");
                assert!(n > 0, "connection closed inside a multi-line reply");
                text.push('\n');
                text.push_str(next.trim_end());
                if next.starts_with(&end) {
                    break;
                }
            }
        }
        Resp { code, text }
    }

    /// Reads a reply, or `None` when the server closed the connection.
    pub fn try_reply(&mut self) -> Option<Resp> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(Resp {
                code: line.get(..3)?.parse().ok()?,
                text: line.get(4..).unwrap_or("").trim_end().to_owned(),
            }),
        }
    }

    /// Sends raw bytes on the control connection.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Sends raw bytes; `false` when the connection is gone.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).is_ok()
    }

    /// A reply if one has begun to arrive (waiting up to 50 ms for it), else `None`.
    pub fn poll_reply(&mut self) -> Option<Resp> {
        let short = Some(Duration::from_millis(50));
        self.reader
            .get_ref()
            .set_read_timeout(short)
            .expect("timeout");
        let ready = matches!(self.reader.fill_buf(), Ok(b) if !b.is_empty());
        self.reader
            .get_ref()
            .set_read_timeout(Some(WAIT))
            .expect("timeout");
        ready.then(|| self.reply())
    }

    /// Sends `bytes` as TCP urgent data (MSG_OOB: the last byte is the urgent one),
    /// as clients send ABOR and Telnet Synch.
    pub fn send_urgent(&mut self, bytes: &[u8]) {
        let sent = socket2::SockRef::from(&self.writer)
            .send_out_of_band(bytes)
            .expect("send urgent data");
        assert_eq!(sent, bytes.len(), "short urgent send");
    }

    /// Sends a command line and returns the reply.
    pub fn cmd(&mut self, line: &str) -> Resp {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends a command and asserts the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Resp {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line} -> {r:?}");
        r
    }

    /// Reads a reply and asserts its code.
    pub fn expect_reply(&mut self, code: u16) -> Resp {
        let r = self.reply();
        assert_eq!(r.code, code, "{r:?}");
        r
    }

    /// EPSV, then connects to the announced port.
    pub fn epsv(&mut self) -> TcpStream {
        let port = self.epsv_port();
        self.data_to(port)
    }

    /// EPSV; returns the port the `229` reply names, without connecting.
    pub fn epsv_port(&mut self) -> u16 {
        let r = self.expect("EPSV", 229);
        r.text
            .split('|')
            .nth(3)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad 229 reply {r:?}"))
    }

    /// Opens a data connection to `port` on the server's address.
    pub fn data_to(&self, port: u16) -> TcpStream {
        data_stream(SocketAddr::new(
            self.writer.peer_addr().expect("peer").ip(),
            port,
        ))
    }

    /// PASV, then connects to the announced address.
    pub fn pasv(&mut self) -> TcpStream {
        let r = self.expect("PASV", 227);
        let start = r.text.find('(').expect("(") + 1;
        let end = r.text.find(')').expect(")");
        let n: Vec<u16> = r.text[start..end]
            .split(',')
            .map(|x| x.trim().parse().expect("number"))
            .collect();
        let ip = std::net::Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
        data_stream(SocketAddr::from((ip, n[4] << 8 | n[5])))
    }

    /// Downloads `name` over EPSV; asserts 150 then 226.
    pub fn retr(&mut self, name: &str) -> Vec<u8> {
        let port = self.epsv_port();
        self.retr_on(port, name)
    }

    /// Downloads `name` over a data connection to `port`, set up by an earlier EPSV;
    /// asserts 150 then 226.
    pub fn retr_on(&mut self, port: u16, name: &str) -> Vec<u8> {
        let mut data = self.data_to(port);
        self.expect(&format!("RETR {name}"), 150);
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).expect("read data");
        // As clients do: closed before the 226 is read (the server waits a moment
        // for that close).
        drop(data);
        let done = self.reply();
        assert_eq!(done.code, 226, "RETR {name} -> {done:?}");
        bytes
    }

    /// Uploads `bytes` as `name` over EPSV; asserts 150 then 226.
    pub fn stor(&mut self, name: &str, bytes: &[u8]) {
        let mut data = self.epsv();
        self.expect(&format!("STOR {name}"), 150);
        data.write_all(bytes).expect("write data");
        drop(data);
        let done = self.reply();
        assert_eq!(done.code, 226, "STOR {name} -> {done:?}");
    }

    /// Runs a listing command (`LIST`, `NLST ...`) over EPSV and returns its text.
    pub fn listing(&mut self, line: &str) -> String {
        let mut data = self.epsv();
        self.expect(line, 150);
        let mut text = String::new();
        data.read_to_string(&mut text).expect("read listing");
        let done = self.reply();
        assert_eq!(done.code, 226, "{line} -> {done:?}");
        text
    }
}

fn data_stream(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("data connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_write_timeout(Some(WAIT)).expect("timeout");
    s
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// SHA-256 of `bytes`, hex.
pub use simple_ftp::digest::sha256_hex as sha256;

/// `ftp-server hash-password`, fed `password` on stdin: the hash it prints.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ftp-server hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

/// Whether the test must fail (CI) rather than skip when a tool is missing.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (returns false, with a printed reason) or, under CI, panics.
pub fn require(available: bool, what: &str) -> bool {
    if !available {
        assert!(!in_ci(), "{what} is required when CI=true");
        eprintln!("skipped: {what} is not available");
    }
    available
}

/// Whether a program runs (`prog --version` or the given probe args succeed).
pub fn have(prog: &str, args: &[&str]) -> bool {
    Command::new(prog)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Asserts two byte strings are equal, reporting sizes and digests rather than the bytes.
#[track_caller]
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes (sha256 {}), want {} bytes (sha256 {}); first difference at {first:?}",
            got.len(),
            sha256(got),
            want.len(),
            sha256(want)
        );
    }
}

/// Polls `f` until it returns true; panics after `WAIT`.
#[track_caller]
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// How long one run of the `ftp-client` binary may take before the test gives up on
/// it. Generous: the machines are small and shared. No test asserts on timing.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(180);

/// What one run of the `ftp-client` binary produced.
#[derive(Debug)]
pub struct ClientRun {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl ClientRun {
    /// The exit code (panics when the client was killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("ftp-client died by a signal: {self:?}"))
    }
}

/// Runs `ftp-client --dir <dir>` with `script` on its stdin (piped, so no prompt
/// and no progress output) and waits for it to exit.
pub fn run_client_script(dir: &Path, script: &str) -> ClientRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
    cmd.arg("--dir").arg(dir).arg("--timeout").arg("60");
    run_client_command(cmd, script)
}

/// Runs a prepared `ftp-client` command with `script` on its stdin; kills it and
/// panics if it outlives [`CLIENT_DEADLINE`].
pub fn run_client_command(mut cmd: Command, script: &str) -> ClientRun {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ftp-client");
    let mut stdin = child.stdin.take().expect("client stdin");
    let script = script.to_owned();
    // Written from a thread so a client that stops reading cannot block the test.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(script.as_bytes());
    });
    let stdout = drain(child.stdout.take().expect("client stdout"));
    let stderr = drain(child.stderr.take().expect("client stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ftp-client") {
            break status;
        }
        if start.elapsed() > CLIENT_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ftp-client did not finish within {CLIENT_DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    ClientRun {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Every byte value, 0 to 255, in order.
pub fn all_byte_values() -> Vec<u8> {
    (0..=255u8).collect()
}

/// The few lines of Python that run pyftpdlib on a free loopback port with write
/// permission for anonymous users, and print the port once it listens.
const PYFTPDLIB_SCRIPT: &str = r#"
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
logging.basicConfig(level=logging.WARNING)
authorizer = DummyAuthorizer()
authorizer.add_anonymous(sys.argv[1], perm="elradfmwMT")
FTPHandler.authorizer = authorizer
server = FTPServer(("127.0.0.1", 0), FTPHandler)
print(server.address[1], flush=True)
server.serve_forever()
"#;

/// A pyftpdlib server serving a directory, stopped (by its PID) when dropped.
pub struct PyftpdlibServer {
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
}

impl PyftpdlibServer {
    /// Starts pyftpdlib on `root`, or returns `None` after printing why it cannot
    /// when pyftpdlib is not installed. Under `CI=true` a missing pyftpdlib fails
    /// the test instead: CI installs it, so its absence is a broken setup.
    pub fn start_or_skip(root: &Path) -> Option<PyftpdlibServer> {
        let available = have("python3", &["-c", "import pyftpdlib"]);
        if !require(available, "pyftpdlib (pip install pyftpdlib)") {
            return None;
        }
        Some(PyftpdlibServer::start(root))
    }

    /// Starts pyftpdlib on `root` and waits until it prints its port.
    pub fn start(root: &Path) -> PyftpdlibServer {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(PYFTPDLIB_SCRIPT)
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3");
        let stdout = child.stdout.take().expect("pyftpdlib stdout");
        // The guard owns the child from here, so a failure below still stops it.
        let mut server = PyftpdlibServer { child, port: 0 };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read pyftpdlib's port");
        server.port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("pyftpdlib printed {line:?} instead of a port"));
        server
    }
}

impl Drop for PyftpdlibServer {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID; nothing else is touched.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files of the lab's check, names prefixed by `prefix`: a text file, every byte
/// value, an empty file, and `big_len` pseudo-random bytes.
pub fn lab_sample_files(prefix: &str, big_len: usize) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            format!("{prefix}text.txt"),
            b"hello, ftp\nsecond line\r\nthird\n".to_vec(),
        ),
        (format!("{prefix}all-bytes.bin"), all_byte_values()),
        (format!("{prefix}empty.bin"), Vec::new()),
        (
            format!("{prefix}big.bin"),
            pattern(big_len, prefix.len() as u64 + 1),
        ),
    ]
}

/// Writes each `(name, bytes)` into `dir`.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write sample");
    }
}

/// Asserts that `dir` holds each `(name, bytes)` byte for byte.
#[track_caller]
pub fn assert_files_in(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        let got = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same(&got, bytes, name);
    }
}

/// Hidden names in `dir`: what a download's temporary file would leave behind.
pub fn hidden_names_in(dir: &Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// How long one run of a third-party peer program may take before the test gives up
/// on it and stops it. Generous, like [`CLIENT_DEADLINE`]; no test asserts on timing.
pub const PEER_DEADLINE: Duration = Duration::from_secs(180);

/// What one run of a peer program produced (same shape as an `ftp-client` run).
pub type PeerRun = ClientRun;

/// Runs a third-party program (curl, lftp, python3, node) to its end with nothing on
/// its stdin, collecting its output; kills it (by its PID, through `Child::kill`) and
/// panics if it outlives [`PEER_DEADLINE`].
pub fn run_peer(mut cmd: Command) -> PeerRun {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stdout = drain(child.stdout.take().expect("peer stdout"));
    let stderr = drain(child.stderr.take().expect("peer stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for peer") {
            break status;
        }
        if start.elapsed() > PEER_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {PEER_DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    PeerRun {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Runs `python3 -c script args...` through [`run_peer`], so it is bounded in time.
pub fn python<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> PeerRun {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(script).args(args);
    run_peer(cmd)
}

/// The first line a program prints for `args` (its version), or `"unknown"`.
pub fn version_line(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A local directory beside the server's root (created if need be), for a client's
/// side of the transfers.
pub fn local_dir(server: &TestServer) -> PathBuf {
    let local = server.dir.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir local");
    local
}

/// A port on the loopback address that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Whether this process can listen on the IPv6 loopback address `::1`.
pub fn ipv6_loopback_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// Every regular file under `dir`, as (relative path with `/`, bytes), and every
/// directory (relative path, `None`), sorted: two trees are equal when these are.
pub fn tree_contents(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Option<Vec<u8>>)>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(base)
                .expect("under base")
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                out.push((rel, None));
                walk(base, &path, out);
            } else {
                out.push((rel, Some(std::fs::read(&path).expect("read"))));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Asserts that two directory trees hold the same directories and the same files,
/// byte for byte.
#[track_caller]
pub fn assert_same_tree(got: &Path, want: &Path) {
    let (got_tree, want_tree) = (tree_contents(got), tree_contents(want));
    let names = |t: &[(String, Option<Vec<u8>>)]| -> Vec<String> {
        t.iter().map(|(n, _)| n.clone()).collect()
    };
    assert_eq!(
        names(&got_tree),
        names(&want_tree),
        "{} vs {}",
        got.display(),
        want.display()
    );
    for ((name, got_bytes), (_, want_bytes)) in got_tree.iter().zip(&want_tree) {
        if let (Some(g), Some(w)) = (got_bytes, want_bytes) {
            assert_same(g, w, name);
        }
    }
}

/// A small tree of test files: nested directories, an empty directory, an empty file,
/// binary and text files, a name with a space and a UTF-8 name.
pub fn write_sample_tree(dir: &Path, seed: u64) {
    let files: [(&str, Vec<u8>); 6] = [
        ("top.txt", b"top level\n".to_vec()),
        ("a/all-bytes.bin", all_byte_values()),
        ("a/b/deep.bin", pattern(300_000 + seed as usize, seed)),
        ("a/b/empty.bin", Vec::new()),
        ("with space/file name.txt", b"spaced\r\n".to_vec()),
        ("ünïcode/naïve.txt", "UTF-8 name\n".as_bytes().to_vec()),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
    std::fs::create_dir_all(dir.join("a/empty dir")).expect("mkdir");
}
