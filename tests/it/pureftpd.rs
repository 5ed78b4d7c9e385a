//! Our `ftp-client` binary against pure-ftpd (Debian's package), piped and byte-exact
//! (issue 15): moving around and changing the server's files (CD, CDUP, PWD, LCD, LS,
//! MKDIR, RMDIR, DELETE, RENAME, SIZE), many files at once (MGET, MPUT with each kind
//! of wildcard, over a directory that holds subdirectories), and resuming (REGET of
//! a partial local file, REPUT of a partial remote one).
//!
//! The test starts pure-ftpd itself, as root, in the foreground on a free loopback
//! port, and stops it by its PID. It logs in as a virtual user of a PureDB made for
//! the test (`pure-pw mkdb`), whose home, where it is chrooted, is inside the test's
//! temporary directory and owned by the uid the user maps to (65534, `nobody`), so
//! it may upload, append, rename and delete there. pure-ftpd's own anonymous user
//! cannot serve here: its root is always the `ftp` user's home, and it may not
//! overwrite or append.
//!
//! pure-ftpd conflicts with vsftpd as a Debian package, so `.ci/run` unpacks it
//! (`dpkg -x`) into `/var/cache/simple-ftp-bench` (or `$SIMPLE_FTP_PEERS`), the folder
//! `bench/compare.sh` uses; an installed `/usr/sbin/pure-ftpd` does too. Not root:
//! skipped with a printed reason. Root without pure-ftpd: skipped, or under `CI=true`
//! a failure.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{
    free_port, hidden_names_in, names_in, pattern, require, run_client_command, version_line,
    ClientRun, WAIT,
};

/// The uid and gid the virtual user's files belong to: `nobody`, which PureDB
/// accepts (it refuses 0) and which owns nothing else the test could harm.
const USER_ID: u32 = 65534;

/// The virtual user and its password.
const USER: &str = "tester";
const PASSWORD: &str = "secret";

/// The SHA-512 crypt(3) hash of [`PASSWORD`] (`crypt.crypt("secret",
/// "$6$rounds=1000$simpleftp$")`), which pure-ftpd checks with crypt(3). `pure-pw
/// useradd` would hash with argon2 at a cost of seconds of CPU per login.
const PASSWORD_HASH: &str = "$6$rounds=1000$simpleftp$pT9kEmx7spe.acIkP.MG15IBry3yf.\
                             PCuCeLz66VWu68jMhnZl1WjjZlE1DcHCJiFKl2c7OcVZXNCr5U0ZhrR0";

/// Where `.ci/run` unpacks pure-ftpd unless `SIMPLE_FTP_PEERS` says otherwise.
const PEERS_DEFAULT: &str = "/var/cache/simple-ftp-bench";

/// A child process, killed (through `Child::kill`, by its own PID) and reaped on drop.
struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        // pure-ftpd's session processes end when their clients disconnect.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pure-ftpd process on 127.0.0.1 with one virtual user, stopped when dropped.
struct PureFtpd {
    _process: Stop,
    port: u16,
    /// Holds the user database, the user's home, the logs and the client's directory.
    dir: tempfile::TempDir,
}

/// pure-ftpd's server and `pure-pw`, from the unpacked package or an installed one.
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let mut prefixes: Vec<PathBuf> = std::env::var_os("SIMPLE_FTP_PEERS")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    prefixes.push(PathBuf::from(PEERS_DEFAULT));
    prefixes.push(PathBuf::from("/"));
    prefixes.into_iter().find_map(|prefix| {
        let server = prefix.join("usr/sbin/pure-ftpd");
        let pw = prefix.join("usr/bin/pure-pw");
        (server.is_file() && pw.is_file()).then_some((server, pw))
    })
}

/// Whether this test runs as root (`/proc/self` belongs to the process's user).
fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl PureFtpd {
    /// Starts pure-ftpd, or says why not and returns `None`.
    fn start_or_skip() -> Option<PureFtpd> {
        if !is_root() {
            eprintln!("skipped: pure-ftpd must be started as root, and this test is not root");
            return None;
        }
        let Some((server, pure_pw)) = binaries() else {
            require(
                false,
                &format!(
                    "pure-ftpd (.ci/run unpacks Debian's package into {PEERS_DEFAULT}, \
                     or set SIMPLE_FTP_PEERS)"
                ),
            );
            return None;
        };
        eprintln!(
            "peer: {}",
            version_line(&server.to_string_lossy(), &["--help"])
        );
        Some(PureFtpd::start(&server, &pure_pw))
    }

    fn start(server: &Path, pure_pw: &Path) -> PureFtpd {
        let dir = tempfile::tempdir().expect("tempdir");
        // pure-ftpd enters the home as root, then serves it as the user: the way
        // there must be open to others.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let home = dir.path().join("home");
        fs::create_dir(&home).expect("mkdir home");
        chown_tree(&home);
        fs::create_dir(dir.path().join("client")).expect("mkdir client");
        // `/./` ends the part of the home the user is chrooted into.
        let passwd = dir.path().join("pureftpd.passwd");
        fs::write(
            &passwd,
            format!(
                "{USER}:{PASSWORD_HASH}:{USER_ID}:{USER_ID}::{}/./::::::::::::\n",
                home.display()
            ),
        )
        .expect("write passwd");
        let pdb = dir.path().join("pureftpd.pdb");
        let made = Command::new(pure_pw)
            .arg("mkdb")
            .arg(&pdb)
            .arg("-f")
            .arg(&passwd)
            .stdin(Stdio::null())
            .output()
            .expect("run pure-pw");
        assert!(made.status.success(), "pure-pw mkdb: {made:?}");
        let output = dir.path().join("pure-ftpd.log");
        // The port comes from a listener on port 0, closed just before pure-ftpd
        // binds it; if someone takes it in between, pure-ftpd exits and we try another.
        for _ in 0..5 {
            let port = free_port();
            let log = fs::File::create(&output).expect("log");
            let mut process = Stop(
                Command::new(server)
                    .arg("-S")
                    .arg(format!("127.0.0.1,{port}"))
                    .arg("-l")
                    .arg(format!("puredb:{}", pdb.display()))
                    // No anonymous login, everyone chrooted, no DNS, no syslog;
                    // transfers logged to a file the failure messages show.
                    .args(["-E", "-A", "-H", "-f", "none", "-O"])
                    .arg(format!(
                        "w3c:{}",
                        dir.path().join("transfers.log").display()
                    ))
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(log.try_clone().expect("log")))
                    .stderr(Stdio::from(log))
                    .spawn()
                    .expect("start pure-ftpd"),
            );
            if wait_ready(&mut process.0, port) {
                return PureFtpd {
                    _process: process,
                    port,
                    dir,
                };
            }
        }
        panic!(
            "pure-ftpd did not start on any of five ports: {}",
            fs::read_to_string(&output).unwrap_or_default()
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The user's home: `/` in the FTP session.
    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn client_dir(&self) -> PathBuf {
        self.path("client")
    }

    /// Writes `bytes` as `name` (relative to the home), owned by the user.
    fn place(&self, name: &str, bytes: &[u8]) {
        let path = self.home().join(name);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, bytes).expect("write");
        chown_tree(&self.home());
    }

    /// What pure-ftpd wrote to stderr and its transfer log, for failure messages.
    fn log(&self) -> String {
        let read = |name| fs::read_to_string(self.path(name)).unwrap_or_default();
        format!(
            "pure-ftpd output:\n{}\ntransfers:\n{}",
            read("pure-ftpd.log"),
            read("transfers.log")
        )
    }

    /// Runs our client, logged in as the virtual user, with `script` on its stdin.
    fn run_client(&self, script: &str) -> ClientRun {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
        cmd.arg("--dir").arg(self.client_dir()).args([
            "--user",
            USER,
            "--password",
            PASSWORD,
            "--timeout",
            "60",
        ]);
        run_client_command(cmd, &format!("OPEN 127.0.0.1 {}\n{script}", self.port))
    }
}

/// Makes `path` and everything under it the virtual user's (files the test wrote as
/// root would be read-only to it).
fn chown_tree(path: &Path) {
    std::os::unix::fs::chown(path, Some(USER_ID), Some(USER_ID)).expect("chown");
    if fs::symlink_metadata(path).expect("metadata").is_dir() {
        for entry in fs::read_dir(path).expect("read_dir") {
            chown_tree(&entry.expect("entry").path());
        }
    }
}

/// Waits until pure-ftpd on `port` greets with 220; false when it exited first (its
/// port was taken).
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            stream.set_read_timeout(Some(WAIT)).expect("timeout");
            let mut line = String::new();
            if BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("220") {
                return true;
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("pure-ftpd did not greet within {WAIT:?}");
}

/// Asserts that each of `lines` is a whole line of `out`.
#[track_caller]
fn assert_lines<S: AsRef<str>>(out: &str, lines: &[S]) {
    for line in lines {
        let line = line.as_ref();
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
}

#[test]
fn our_client_moves_around_and_changes_files_on_pure_ftpd() {
    let Some(server) = PureFtpd::start_or_skip() else {
        return;
    };
    let client = server.client_dir();
    let data = pattern(100_003, 61);
    fs::create_dir(client.join("local sub")).expect("mkdir");
    fs::write(client.join("local sub/up.bin"), &data).expect("write");
    server.place("top.txt", b"top\n");
    let script = "PWD\nMKDIR sub\nCD sub\nPWD\nLCD local sub\nLPWD\nPUT up.bin\nSIZE up.bin\n\
                  RENAME up.bin \"new name.bin\"\nLS\nLCD ..\nGET new name.bin\nCDUP\nPWD\n\
                  GET top.txt\nRMDIR sub\nDELETE sub/new name.bin\nRMDIR sub\nDELETE top.txt\n\
                  CD missing\nPWD\nQUIT\n";
    let run = server.run_client(script);

    // The two refusals: RMDIR of a directory that still holds a file, CD to a
    // directory that is not there; the session went on after each.
    assert_eq!(run.code(), 1, "{run:?}\n{}", server.log());
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(
        errors[0].starts_with("error: RMDIR sub: server replied 550"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("error: CD missing: server replied 550"),
        "{}",
        errors[1]
    );
    let out = &run.stdout;
    assert_lines(
        out,
        &[
            format!("OPEN 127.0.0.1:{}: connected as tester", server.port),
            "PWD: /".into(),
            "MKDIR: created sub".into(),
            "CD: /sub".into(),
            "PWD: /sub".into(),
            format!("LPWD: {}", client.join("local sub").display()),
            format!("SIZE up.bin: {} bytes", data.len()),
            "RENAME: up.bin -> new name.bin".into(),
            "CDUP: /".into(),
            "DELETE: deleted sub/new name.bin".into(),
            "RMDIR: removed sub".into(),
            "DELETE: deleted top.txt".into(),
        ],
    );
    // The PWD after the failed CD: still at the top.
    assert_eq!(out.lines().filter(|l| *l == "PWD: /").count(), 3, "{out}");
    let put = format!("PUT up.bin: {} bytes in ", data.len());
    assert!(out.contains(&put), "{out}");
    // LS of /sub, after the rename: pure-ftpd's long listing names the file with
    // its size.
    assert!(
        out.lines().any(|l| l.starts_with('-')
            && l.ends_with(" new name.bin")
            && l.contains(&format!(" {} ", data.len()))),
        "{out}"
    );
    // GET after `LCD ..` lands in the starting directory, byte-exact.
    assert_eq!(fs::read(client.join("new name.bin")).expect("get"), data);
    assert_eq!(fs::read(client.join("top.txt")).expect("get"), b"top\n");
    assert_eq!(
        fs::read(client.join("local sub/up.bin")).expect("kept"),
        data
    );
    assert!(
        names_in(&server.home()).is_empty(),
        "{:?}",
        names_in(&server.home())
    );
    assert!(hidden_names_in(&client).is_empty());
}

#[test]
fn our_clients_mget_and_mput_match_patterns_on_pure_ftpd() {
    let Some(server) = PureFtpd::start_or_skip() else {
        return;
    };
    let client = server.client_dir();
    let remote: Vec<(&str, Vec<u8>)> = vec![
        ("a1.txt", pattern(10, 1)),
        ("a2.txt", pattern(2 << 20, 2)),
        ("b.txt", Vec::new()),
        ("c d.log", pattern(4097, 3)),
        ("skip.bin", pattern(5, 4)),
        // Inside a subdirectory: `MGET *` must not try to fetch the directory.
        ("a3.txt/inner.txt", pattern(9, 5)),
    ];
    for (name, bytes) in &remote {
        server.place(name, bytes);
    }
    server.place("up/.keep", b"");
    let local = [
        ("x1.dat", pattern(3, 6)),
        ("x2.dat", pattern(1 << 20, 7)),
        ("y.dat", pattern(7, 8)),
    ];
    fs::create_dir(client.join("out")).expect("mkdir");
    for (name, bytes) in &local {
        fs::write(client.join("out").join(name), bytes).expect("write");
    }
    fs::create_dir(client.join("out/zdir")).expect("mkdir");

    // Every pattern matches a file: the run succeeds, and the directories that match
    // (`a3.txt` on the server, `zdir` here) are left out, not failed.
    let run = server
        .run_client("MGET a?.txt [b]*\nMGET \"c *\"\nCD up\nLCD out\nMPUT x*.dat [!x]*\nQUIT\n");
    assert_eq!(run.code(), 0, "{run:?}\n{}", server.log());
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let out = &run.stdout;
    assert_lines(
        out,
        &[
            "MGET: 3 files, 2.0 MiB, 0 failures, 1 directory left out",
            "MGET: 1 file, 4.0 KiB, 0 failures",
            "MPUT: 3 files, 1.0 MiB, 0 failures, 1 directory left out",
        ],
    );
    for (name, bytes) in [&remote[0], &remote[1], &remote[2], &remote[3]] {
        let line = format!("GET {name}: {} bytes in ", bytes.len());
        assert!(out.contains(&line), "no {line:?} in\n{out}");
        assert_eq!(&fs::read(client.join(name)).expect("mget"), bytes, "{name}");
    }
    assert!(!client.join("skip.bin").exists());
    assert!(!client.join("a3.txt").exists());
    for (name, bytes) in &local {
        let line = format!("PUT {name}: {} bytes in ", bytes.len());
        assert!(out.contains(&line), "no {line:?} in\n{out}");
        assert_eq!(
            &fs::read(server.home().join("up").join(name)).expect("mput"),
            bytes,
            "{name}"
        );
    }
    assert!(hidden_names_in(&client).is_empty());
    assert_eq!(
        hidden_names_in(&server.home().join("up")),
        [".keep"],
        "no upload debris"
    );

    // `MGET *` over a directory with a subdirectory fetches the files only; patterns
    // that match nothing, or only a directory, fail and say so.
    fs::remove_dir_all(client.join("out")).expect("rm");
    let run = server.run_client("MGET *\nMGET *.none a3*\nMPUT z*\nQUIT\n");
    assert_eq!(run.code(), 1, "{run:?}\n{}", server.log());
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        errors,
        [
            "error: MGET *.none: no file matches",
            "error: MGET a3*: no file matches",
            "error: MGET: 0 files, 0 B, 2 failures, 1 directory left out",
            "error: MPUT z*: no file matches",
            "error: MPUT: 0 files, 0 B, 1 failure",
        ],
        "{}",
        run.stderr
    );
    assert_lines(
        &run.stdout,
        &["MGET: 5 files, 2.0 MiB, 0 failures, 2 directories left out"],
    );
    for (name, bytes) in &remote[..5] {
        assert_eq!(
            &fs::read(client.join(name)).expect("mget *"),
            bytes,
            "{name}"
        );
    }
    assert!(!client.join("up").exists() && !client.join("a3.txt").exists());
    assert!(hidden_names_in(&client).is_empty());
}

#[test]
fn our_client_resumes_with_reget_and_reput_on_pure_ftpd() {
    let Some(server) = PureFtpd::start_or_skip() else {
        return;
    };
    let client = server.client_dir();
    let down = pattern((3 << 20) + 7, 71);
    let up = pattern((2 << 20) + 3, 72);
    server.place("down.bin", &down);
    fs::write(client.join("down.bin"), &down[..1 << 20]).expect("write");
    fs::write(client.join("up.bin"), &up).expect("write");
    server.place("up.bin", &up[..1 << 20]);
    server.place("whole.txt", b"whole\n");
    fs::write(client.join("whole.txt"), b"whole\n").expect("write");
    server.place("fresh.bin", b"fresh");
    fs::write(client.join("new.bin"), pattern(70_001, 73)).expect("write");
    let run = server.run_client(
        "REGET down.bin\nREPUT up.bin\nREGET whole.txt\nREPUT whole.txt\nREGET fresh.bin\n\
         REPUT new.bin\nSIZE up.bin\nQUIT\n",
    );

    assert_eq!(run.code(), 0, "{run:?}\n{}", server.log());
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let out = &run.stdout;
    // Only the missing part moved, from the length of the partial file on.
    for (verb, name, moved) in [
        ("REGET", "down.bin", down.len() - (1 << 20)),
        ("REPUT", "up.bin", up.len() - (1 << 20)),
    ] {
        let line = format!("{verb} {name}: {moved} bytes in ");
        let found = out.lines().find(|l| l.starts_with(&line));
        assert!(
            found.is_some_and(|l| l.ends_with(", resumed at 1048576 bytes")),
            "no {line:?}... resumed at 1048576 bytes in\n{out}"
        );
    }
    assert!(out.contains("REGET whole.txt: 0 bytes"), "{out}");
    assert!(out.contains("REPUT whole.txt: 0 bytes"), "{out}");
    // A file missing on the other side moves whole.
    assert!(out.contains("REGET fresh.bin: 5 bytes"), "{out}");
    assert!(out.contains("REPUT new.bin: 70001 bytes"), "{out}");
    assert_lines(out, &[&format!("SIZE up.bin: {} bytes", up.len())]);
    // pure-ftpd has no HASH: nothing claims a verification it did not make.
    assert!(!out.contains("verified"), "{out}");
    assert_eq!(fs::read(client.join("down.bin")).expect("down"), down);
    assert_eq!(fs::read(server.home().join("up.bin")).expect("up"), up);
    assert_eq!(fs::read(client.join("fresh.bin")).expect("fresh"), b"fresh");
    assert_eq!(
        fs::read(server.home().join("new.bin")).expect("new"),
        pattern(70_001, 73)
    );
    assert_eq!(
        fs::read(server.home().join("whole.txt")).expect("whole"),
        b"whole\n"
    );
    assert!(hidden_names_in(&client).is_empty());
    assert!(hidden_names_in(&server.home()).is_empty());
}
