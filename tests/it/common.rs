//! Helpers shared by the integration tests: driving the `ftp-client` binary with a
//! piped script, and running pyftpdlib as a third-party server.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one client run may take before the test gives up on it. Generous: the
/// machines are small and shared. No test asserts on timing.
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

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// `len` reproducible pseudo-random bytes (xorshift), different for each `seed`.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
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
    /// Whether `python3` can import pyftpdlib here.
    pub fn available() -> bool {
        Command::new("python3")
            .args(["-c", "import pyftpdlib"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Starts pyftpdlib on `root`, or returns `None` after printing why it cannot
    /// when pyftpdlib is not installed. Under `CI=true` a missing pyftpdlib fails
    /// the test instead: CI installs it, so its absence is a broken setup.
    pub fn start_or_skip(root: &Path) -> Option<PyftpdlibServer> {
        if !PyftpdlibServer::available() {
            let reason = "pyftpdlib is not importable by python3 (pip install pyftpdlib)";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{reason}");
            }
            eprintln!("skipping: {reason}");
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
