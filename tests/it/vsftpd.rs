//! Our `ftp-client` binary against vsftpd (Debian's package): the lab's session (OPEN,
//! LS, GET, PUT, CLOSE, OPEN again, QUIT) byte-exact, and vsftpd's refusals reported
//! while the session goes on. (The same against pyftpdlib is `client_pyftpdlib.rs`.)
//!
//! The test starts vsftpd itself, as root, on a free loopback port with a generated
//! configuration that allows anonymous upload, in the foreground (`background=NO`), and
//! stops it by its PID. vsftpd refuses a writable anonymous root, so uploads go to a
//! world-writable `pub/` inside it, and the client names files `pub/<name>` (kept in
//! `pub/` of its local directory too).
//!
//! Not root: skipped with a printed reason. Root without vsftpd: skipped locally; under
//! `CI=true` a failure when the package could be installed (`.ci/run` installs it).

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{
    assert_files_in, free_port, hidden_names_in, in_ci, lab_sample_files, run_client_script,
    write_files, WAIT,
};

/// A vsftpd process on 127.0.0.1, stopped (by its PID) when dropped.
struct Vsftpd {
    _process: Stop,
    port: u16,
    /// Holds the configuration, the anonymous root, the log and the client's directory.
    dir: tempfile::TempDir,
}

/// A child process, killed (through `Child::kill`, by its own PID) and reaped on drop.
struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        // vsftpd's session processes end when their clients disconnect.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Vsftpd {
    /// Starts vsftpd, or says why not and returns `None`.
    fn start_or_skip() -> Option<Vsftpd> {
        if !is_root() {
            eprintln!("skipped: vsftpd must be started as root, and this test is not root");
            return None;
        }
        if !Path::new("/usr/sbin/vsftpd").exists() {
            assert!(
                !(in_ci() && apt_installable("vsftpd")),
                "vsftpd is required when CI=true (apt-get install vsftpd)"
            );
            eprintln!("skipped: vsftpd is not installed (apt-get install vsftpd)");
            return None;
        }
        let version = Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}", "vsftpd"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        eprintln!("peer: vsftpd {version}");
        Some(Vsftpd::start())
    }

    fn start() -> Vsftpd {
        let dir = tempfile::tempdir().expect("tempdir");
        let anon = dir.path().join("anon");
        let empty = dir.path().join("empty");
        fs::create_dir_all(anon.join("pub")).expect("mkdir");
        fs::create_dir(&empty).expect("mkdir");
        fs::create_dir(dir.path().join("client")).expect("mkdir");
        fs::create_dir(dir.path().join("client/pub")).expect("mkdir");
        // The anonymous root must not be writable (vsftpd refuses to chroot into it);
        // uploads go into pub/.
        let mode = |path: &Path, mode| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod")
        };
        mode(&anon, 0o755);
        mode(&empty, 0o755);
        mode(&anon.join("pub"), 0o777);
        // The port comes from a listener on port 0, closed just before vsftpd binds it;
        // if someone takes it in between, vsftpd exits and we try another.
        let log = dir.path().join("vsftpd.log");
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("vsftpd.conf");
            fs::write(&conf, config(port, &anon, &empty, &log)).expect("write config");
            let mut process = Stop(
                Command::new("/usr/sbin/vsftpd")
                    .arg(&conf)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start vsftpd"),
            );
            if wait_ready(&mut process.0, port, &log) {
                return Vsftpd {
                    _process: process,
                    port,
                    dir,
                };
            }
        }
        panic!("vsftpd did not start on any of five ports");
    }

    fn pub_dir(&self) -> PathBuf {
        self.dir.path().join("anon/pub")
    }

    fn client_dir(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("vsftpd.log")).unwrap_or_default()
    }
}

/// Waits until vsftpd on `port` greets with 220; false when it exited first (its
/// port was taken).
fn wait_ready(child: &mut Child, port: u16, log: &Path) -> bool {
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
    panic!(
        "vsftpd did not greet within {WAIT:?}: {}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// The configuration PEERS.md describes: anonymous login with upload, in the foreground.
fn config(port: u16, anon: &Path, empty: &Path, log: &Path) -> String {
    format!(
        "listen=YES\n\
         listen_ipv6=NO\n\
         listen_address=127.0.0.1\n\
         listen_port={port}\n\
         background=NO\n\
         anonymous_enable=YES\n\
         local_enable=NO\n\
         no_anon_password=YES\n\
         anon_root={anon}\n\
         write_enable=YES\n\
         anon_upload_enable=YES\n\
         anon_mkdir_write_enable=YES\n\
         anon_other_write_enable=YES\n\
         anon_world_readable_only=NO\n\
         anon_umask=022\n\
         seccomp_sandbox=NO\n\
         isolate=NO\n\
         isolate_network=NO\n\
         secure_chroot_dir={empty}\n\
         connect_from_port_20=NO\n\
         dirmessage_enable=NO\n\
         syslog_enable=NO\n\
         xferlog_enable=YES\n\
         log_ftp_protocol=YES\n\
         vsftpd_log_file={log}\n",
        anon = anon.display(),
        empty = empty.display(),
        log = log.display(),
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Whether apt knows a candidate version of `package`.
fn apt_installable(package: &str) -> bool {
    Command::new("apt-cache")
        .args(["policy", package])
        .output()
        .is_ok_and(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            text.contains("Candidate:") && !text.contains("Candidate: (none)")
        })
}

/// `name` prefixed with `pub/`, as the client and vsftpd both see it.
fn in_pub(files: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(name, bytes)| (format!("pub/{name}"), bytes.clone()))
        .collect()
}

#[test]
fn our_client_moves_files_byte_exact_with_vsftpd() {
    let Some(server) = Vsftpd::start_or_skip() else {
        return;
    };
    let client = server.client_dir();
    let downloads = lab_sample_files("down-", 5 << 20);
    let uploads = lab_sample_files("up-", (5 << 20) + 17);
    write_files(&server.pub_dir(), &downloads);
    write_files(&client.join("pub"), &uploads);

    let mut script = format!("OPEN {}\nLS\nLS pub\n", server.port);
    for (name, _) in &downloads {
        script += &format!("GET pub/{name}\n");
    }
    for (name, _) in &uploads {
        script += &format!("PUT pub/{name}\n");
    }
    script += &format!(
        "CLOSE\nOPEN 127.0.0.1 {}\nLS pub\nCLOSE\nQUIT\n",
        server.port
    );
    let run = run_client_script(&client, &script);

    assert_eq!(run.code(), 0, "{run:?}\nvsftpd log:\n{}", server.log());
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_files_in(&client, &in_pub(&downloads));
    assert_files_in(&server.pub_dir(), &uploads);
    assert!(hidden_names_in(&client.join("pub")).is_empty());
    for (name, bytes) in &downloads {
        let line = format!("GET pub/{name}: {} bytes in ", bytes.len());
        assert!(run.stdout.contains(&line), "no {line:?} in {}", run.stdout);
    }
    for (name, bytes) in &uploads {
        let line = format!("PUT pub/{name}: {} bytes in ", bytes.len());
        assert!(run.stdout.contains(&line), "no {line:?} in {}", run.stdout);
    }
    // The first LS shows the root (just pub/); the LS after the second OPEN shows what
    // the uploads left in pub/, with vsftpd's sizes.
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('d') && l.ends_with(" pub")),
        "{}",
        run.stdout
    );
    let after = run
        .stdout
        .rsplit_once("connected as anonymous")
        .map(|(_, rest)| rest)
        .unwrap_or("");
    for (name, bytes) in downloads.iter().chain(&uploads) {
        assert!(
            after
                .lines()
                .any(|l| l.ends_with(&format!(" {name}"))
                    && l.contains(&format!(" {} ", bytes.len()))),
            "{name} not listed after the second OPEN: {after}"
        );
    }
    let log = server.log();
    assert!(
        log.contains("OK UPLOAD") && log.contains("OK DOWNLOAD"),
        "{log}"
    );
}

#[test]
fn our_client_reports_vsftpd_refusals_and_goes_on() {
    let Some(server) = Vsftpd::start_or_skip() else {
        return;
    };
    let client = server.client_dir();
    fs::write(server.pub_dir().join("there.txt"), "from vsftpd\n").expect("write");
    fs::write(client.join("root.txt"), "not allowed at the root\n").expect("write");
    fs::write(client.join("pub/keep.txt"), "good local copy\n").expect("write");
    let script = format!(
        "OPEN {}\nPUT root.txt\nGET pub/missing.txt\nGET pub/keep.txt\nGET pub/there.txt\nQUIT\n",
        server.port
    );
    let run = run_client_script(&client, &script);

    assert_eq!(run.code(), 1, "{run:?}");
    // vsftpd: 553 for an upload into the read-only root, 550 for a missing file.
    assert!(
        run.stderr.contains("PUT root.txt") && run.stderr.contains("553"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("GET pub/missing.txt") && run.stderr.contains("550"),
        "{}",
        run.stderr
    );
    assert!(!server.dir.path().join("anon/root.txt").exists());
    assert!(!client.join("pub/missing.txt").exists());
    // A failed GET never clobbers a good local copy.
    assert_eq!(
        fs::read_to_string(client.join("pub/keep.txt")).expect("read"),
        "good local copy\n"
    );
    // The session went on after the failures.
    assert_eq!(
        fs::read_to_string(client.join("pub/there.txt")).expect("read"),
        "from vsftpd\n"
    );
    assert!(hidden_names_in(&client.join("pub")).is_empty());
}

/// Issue 15: `--active` (EPRT/PORT to our own address), moving around, MGET, MPUT,
/// REGET and the server-file commands against vsftpd, byte-exact.
#[test]
fn our_clients_everyday_commands_work_with_vsftpd_in_active_mode() {
    let Some(server) = Vsftpd::start_or_skip() else {
        return;
    };
    let part = crate::common::pattern((2 << 20) + 9, 51);
    fs::write(server.pub_dir().join("down1.txt"), "one\n").expect("write");
    fs::write(server.pub_dir().join("down2.txt"), "two\n").expect("write");
    fs::write(server.pub_dir().join("part.bin"), &part).expect("write");
    let local = server.client_dir().join("pub");
    let (up1, up2) = (
        crate::common::pattern(70_001, 52),
        crate::common::pattern(3, 53),
    );
    fs::write(local.join("up1.dat"), &up1).expect("write");
    fs::write(local.join("up2.dat"), &up2).expect("write");
    fs::write(local.join("part.bin"), &part[..1 << 20]).expect("write");
    let script = format!(
        "OPEN {}\nCD pub\nPWD\nLCD pub\nMGET down?.txt\nREGET part.bin\nMKDIR d\nCD d\n\
         MPUT up*.dat\nCDUP\nRENAME d/up1.dat d/moved.dat\nSIZE d/moved.dat\nDELETE d/up2.dat\nQUIT\n",
        server.port
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
    cmd.arg("--dir")
        .arg(server.client_dir())
        .args(["--active", "--timeout", "60"]);
    let run = crate::common::run_client_command(cmd, &script);
    assert_eq!(run.code(), 0, "{run:?}\n{}", server.log());
    let out = &run.stdout;
    for line in [
        "PWD: /pub",
        "MGET: 2 files, 8 B, 0 failures",
        "MPUT: 2 files, 68.4 KiB, 0 failures",
        "SIZE d/moved.dat: 70001 bytes",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
    assert!(out.contains("resumed at 1048576 bytes"), "{out}");
    assert_eq!(fs::read(local.join("down1.txt")).expect("down1"), b"one\n");
    assert_eq!(fs::read(local.join("down2.txt")).expect("down2"), b"two\n");
    assert_eq!(fs::read(local.join("part.bin")).expect("part"), part);
    let d = server.pub_dir().join("d");
    assert_eq!(fs::read(d.join("moved.dat")).expect("moved"), up1);
    assert!(!d.join("up2.dat").exists());
    assert!(hidden_names_in(&local).is_empty());
    // Every data connection was active: vsftpd logged EPRT or PORT, never PASV/EPSV.
    let log = server.log();
    assert!(log.contains("\"EPRT |1|127.0.0.1|"), "{log}");
    assert!(!log.contains("\"EPSV") && !log.contains("\"PASV"), "{log}");
}
