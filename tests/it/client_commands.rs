//! Our `ftp-client` binary's everyday commands (issue 15) against our server, piped and
//! byte-exact: moving around (CD, CDUP, PWD, LCD, LPWD, LS of the current directory),
//! changing the server's files (MKDIR, RMDIR, DELETE, RENAME, SIZE), each refusal
//! reported with its reply while the session goes on; MGET and MPUT, also over a
//! directory that holds subdirectories (with MLSD and without); REGET and REPUT,
//! and what a resumed file that differs from the other side's leaves behind.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{
    have, hidden_names_in, names_in, pattern, require, run_client_script, sha256, Ftp,
    PyftpdlibServer, TestServer,
};

#[test]
fn moving_around_and_changing_files_on_our_server() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    navigation_session(server.addr.port(), server.root(), client.path());
}

#[test]
fn moving_around_and_changing_files_on_pyftpdlib() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(server) = PyftpdlibServer::start_or_skip(root.path()) else {
        return;
    };
    let client = tempfile::tempdir().expect("tempdir");
    navigation_session(server.port, root.path(), client.path());
}

#[test]
fn many_files_on_our_server() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    many_files_session(server.addr.port(), server.root(), client.path());
}

#[test]
fn many_files_on_pyftpdlib() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(server) = PyftpdlibServer::start_or_skip(root.path()) else {
        return;
    };
    let client = tempfile::tempdir().expect("tempdir");
    many_files_session(server.port, root.path(), client.path());
}

/// MGET and MPUT with each kind of wildcard, byte-exact, with a summary line, a
/// pattern that matches nothing, and no debris on either side.
fn many_files_session(port: u16, server_root: &Path, client: &Path) {
    let remote: Vec<(String, Vec<u8>)> = [
        ("a1.txt", pattern(10, 1)),
        ("a2.txt", pattern(2 << 20, 2)),
        ("b.txt", Vec::new()),
        ("c d.log", pattern(4097, 3)),
        ("skip.bin", pattern(5, 4)),
    ]
    .into_iter()
    .map(|(n, b)| (n.to_owned(), b))
    .collect();
    for (name, bytes) in &remote {
        fs::write(server_root.join(name), bytes).expect("write");
    }
    fs::create_dir(server_root.join("up")).expect("mkdir");
    let local = [
        ("x1.dat", pattern(3, 5)),
        ("x2.dat", pattern(1 << 20, 6)),
        ("y.dat", pattern(7, 7)),
    ];
    fs::create_dir(client.join("out")).expect("mkdir");
    for (name, bytes) in &local {
        fs::write(client.join("out").join(name), bytes).expect("write");
    }
    let script = format!(
        "OPEN {port}\nMGET a?.txt [b]*\nMGET \"c *\"\nMGET *.none\nCD up\nLCD out\n\
         MPUT x*.dat [!x]*\nMPUT z*\nQUIT\n"
    );
    let run = run_client_script(client, &script);

    assert_eq!(run.code(), 1, "{run:?}");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        errors,
        [
            "error: MGET *.none: no file matches",
            "error: MGET: 0 files, 0 B, 1 failure",
            "error: MPUT z*: no file matches",
            "error: MPUT: 0 files, 0 B, 1 failure",
        ],
        "{}",
        run.stderr
    );
    let out = &run.stdout;
    for line in [
        "MGET: 3 files, 2.0 MiB, 0 failures",
        "MGET: 1 file, 4.0 KiB, 0 failures",
        "MPUT: 3 files, 1.0 MiB, 0 failures",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
    for name in ["a1.txt", "a2.txt", "b.txt", "c d.log"] {
        assert!(out.contains(&format!("GET {name}: ")), "{out}");
    }
    for (name, bytes) in &remote[..4] {
        assert_eq!(&fs::read(client.join(name)).expect("mget"), bytes, "{name}");
    }
    assert!(!client.join("skip.bin").exists());
    for (name, bytes) in &local {
        assert_eq!(
            &fs::read(server_root.join("up").join(name)).expect("mput"),
            bytes,
            "{name}"
        );
    }
    assert!(hidden_names_in(client).is_empty());
    assert!(hidden_names_in(&server_root.join("up")).is_empty());
}

/// CD, CDUP, PWD, LCD, LPWD, MKDIR, RMDIR, DELETE, RENAME, SIZE and LS of the
/// current directory in one session, with one refusal (RMDIR of a full directory).
fn navigation_session(port: u16, server_root: &Path, client: &Path) {
    let data = pattern(100_003, 15);
    fs::create_dir(client.join("local sub")).expect("mkdir");
    fs::write(client.join("local sub/up.bin"), &data).expect("write");
    fs::write(server_root.join("top.txt"), "top\n").expect("write");

    let script = format!(
        "OPEN {port}\nPWD\nMKDIR sub\nCD sub\nPWD\nLCD local sub\nLPWD\nPUT up.bin\nSIZE up.bin\n\
         RENAME up.bin \"new name.bin\"\nLS\nLCD ..\nGET new name.bin\nCDUP\nGET top.txt\n\
         RMDIR sub\nDELETE sub/new name.bin\nRMDIR sub\nDELETE top.txt\nQUIT\n"
    );
    let run = run_client_script(client, &script);

    // The one failure: RMDIR of a directory that still holds a file.
    assert_eq!(run.code(), 1, "{run:?}");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(
        errors[0].contains("RMDIR sub") && errors[0].contains("550"),
        "{}",
        errors[0]
    );
    let out = &run.stdout;
    for line in [
        "PWD: /",
        "MKDIR: created /sub",
        "CD: /sub",
        "PWD: /sub",
        &format!("SIZE up.bin: {} bytes", data.len()),
        "RENAME: up.bin -> new name.bin",
        "CDUP: /",
        "DELETE: deleted sub/new name.bin",
        "RMDIR: removed sub",
        "DELETE: deleted top.txt",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.ends_with("new name.bin") && l.contains(&data.len().to_string())),
        "the LS of /sub lists the renamed file:\n{out}"
    );
    let lpwd = client.join("local sub").display().to_string();
    assert!(out.contains(&format!("LPWD: {lpwd}")), "{out}");
    // GET after `LCD ..` and `CD sub` lands in the starting directory, byte-exact.
    assert_eq!(fs::read(client.join("new name.bin")).expect("get"), data);
    assert_eq!(fs::read(client.join("top.txt")).expect("get"), b"top\n");
    assert!(
        names_in(server_root).is_empty(),
        "{:?}",
        names_in(server_root)
    );
    assert!(hidden_names_in(client).is_empty());
}

#[test]
fn refusals_name_the_reply_and_the_session_goes_on() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    fs::write(server.root().join("a.txt"), "a").expect("write");
    let script = format!(
        "OPEN {}\nCD missing\nDELETE missing.txt\nRENAME missing.txt b.txt\nSIZE missing.txt\n\
         MKDIR a.txt\nRMDIR missing\nLCD ..\nCD ..\nPWD\nGET a.txt\n",
        server.addr.port()
    );
    let run = run_client_script(client.path(), &script);
    assert_eq!(run.code(), 1, "{run:?}");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 7, "{}", run.stderr);
    for (error, what) in errors.iter().zip([
        "CD missing",
        "DELETE missing.txt",
        "RENAME missing.txt",
        "SIZE missing.txt",
        "MKDIR a.txt",
        "RMDIR missing",
        "would leave the local directory",
    ]) {
        assert!(error.contains(what), "{error} lacks {what}");
    }
    assert!(
        errors[..6].iter().all(|e| e.contains("server replied 5")),
        "{errors:?}"
    );
    // `CD ..` at the top stays at the top (the server's root is its `/`).
    assert!(run.stdout.lines().any(|l| l == "PWD: /"), "{}", run.stdout);
    assert_eq!(fs::read(client.path().join("a.txt")).expect("get"), b"a");
}

#[test]
fn user_anonymous_then_open_asks_no_password() {
    // Issue 15 item 7: `USER anonymous` then OPEN logged in as a user without a
    // password, where `--user anonymous` sent the anonymous one.
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ftp-client"));
    cmd.arg("--dir")
        .arg(client.path())
        .args(["--user", "bob", "--timeout", "60"]);
    let script = format!("USER anonymous\nOPEN {}\nPWD\nQUIT\n", server.addr.port());
    let run = crate::common::run_client_command(cmd, &script);
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(
        run.stdout.contains("connected as anonymous"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("PWD: /"), "{}", run.stdout);
}

#[test]
fn reget_and_reput_resume_byte_exact_on_our_server() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    resume_session(server.addr.port(), server.root(), client.path(), true);
}

#[test]
fn reget_and_reput_resume_byte_exact_on_pyftpdlib() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(server) = PyftpdlibServer::start_or_skip(root.path()) else {
        return;
    };
    let client = tempfile::tempdir().expect("tempdir");
    resume_session(server.port, root.path(), client.path(), false);
}

/// REGET and REPUT of files cut at 1 MiB, a file already whole, and (where the server
/// offers HASH) a partial file whose first part differs: said, and not kept.
fn resume_session(port: u16, server_root: &Path, client: &Path, has_hash: bool) {
    let down = pattern((3 << 20) + 7, 31);
    let up = pattern((2 << 20) + 3, 32);
    fs::write(server_root.join("down.bin"), &down).expect("write");
    fs::write(client.join("down.bin"), &down[..1 << 20]).expect("write");
    fs::write(client.join("up.bin"), &up).expect("write");
    fs::write(server_root.join("up.bin"), &up[..1 << 20]).expect("write");
    fs::write(server_root.join("whole.txt"), "whole\n").expect("write");
    fs::write(client.join("whole.txt"), "whole\n").expect("write");
    let script =
        format!("OPEN {port}\nREGET down.bin\nREPUT up.bin\nREGET whole.txt\nREGET fresh.bin\n");
    fs::write(server_root.join("fresh.bin"), b"fresh").expect("write");
    let run = run_client_script(client, &script);
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(fs::read(client.join("down.bin")).expect("down"), down);
    assert_eq!(fs::read(server_root.join("up.bin")).expect("up"), up);
    assert_eq!(fs::read(client.join("fresh.bin")).expect("fresh"), b"fresh");
    let out = &run.stdout;
    let moved = format!("REGET down.bin: {} bytes in ", down.len() - (1 << 20));
    assert!(out.contains(&moved), "{out}");
    assert!(out.contains("resumed at 1048576 bytes"), "{out}");
    assert!(out.contains("REGET whole.txt: 0 bytes"), "{out}");
    let verified = out
        .lines()
        .filter(|l| l.ends_with("SHA-256 verified"))
        .count();
    assert_eq!(verified, if has_hash { 4 } else { 0 }, "{out}");
}

/// Issue 15 item 4: a partial file whose first part is not the other side's. After
/// the rest has moved, the whole-file HASH check differs; the error says so, with
/// both digests, and neither side keeps the wrong file: REGET removes the local
/// file, REPUT deletes the remote one. GET and PUT then bring both back whole.
#[test]
fn a_resumed_file_that_differs_is_said_and_not_kept_on_our_server() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    let client = client.path();
    let port = server.addr.port();
    let down = pattern((3 << 20) + 7, 33);
    let up = pattern((2 << 20) + 3, 34);
    fs::write(server.root().join("down.bin"), &down).expect("write");
    fs::write(client.join("up.bin"), &up).expect("write");
    fs::write(client.join("other.txt"), "untouched\n").expect("write");
    let mut wrong = down[..1 << 20].to_vec();
    wrong[10] ^= 0xff;
    fs::write(client.join("down.bin"), &wrong).expect("write");
    let mut wrong_up = up[..1 << 20].to_vec();
    wrong_up[10] ^= 0xff;
    fs::write(server.root().join("up.bin"), &wrong_up).expect("write");
    // What each side held after the rest moved: the wrong first part, then the rest.
    let resumed_down = [&wrong[..], &down[1 << 20..]].concat();
    let resumed_up = [&wrong_up[..], &up[1 << 20..]].concat();

    let run = run_client_script(
        client,
        &format!("OPEN {port}\nREGET down.bin\nREPUT up.bin\nQUIT\n"),
    );
    assert_eq!(run.code(), 1, "{run:?}");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        errors,
        [
            format!(
                "error: REGET down.bin: down.bin (the local file was removed: GET it again): \
                 SHA-256 differs after the transfer (local {}, server {})",
                sha256(&resumed_down),
                sha256(&down)
            ),
            format!(
                "error: REPUT up.bin: up.bin (the remote file was deleted: PUT it again): \
                 SHA-256 differs after the transfer (local {}, server {})",
                sha256(&up),
                sha256(&resumed_up)
            ),
        ],
        "{}",
        run.stderr
    );
    // Nothing wrong is kept, on either side, and nothing else is touched.
    assert!(!client.join("down.bin").exists());
    assert!(!server.root().join("up.bin").exists());
    assert_eq!(fs::read(client.join("up.bin")).expect("up"), up);
    assert_eq!(
        fs::read(server.root().join("down.bin")).expect("down"),
        down
    );
    assert_eq!(
        fs::read(client.join("other.txt")).expect("other"),
        b"untouched\n"
    );
    assert!(hidden_names_in(client).is_empty());
    assert!(hidden_names_in(server.root()).is_empty());

    // As the messages say: GET and PUT again, and both files are whole and verified.
    let run = run_client_script(
        client,
        &format!("OPEN {port}\nGET down.bin\nPUT up.bin\nQUIT\n"),
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let verified = run
        .stdout
        .lines()
        .filter(|l| l.ends_with("SHA-256 verified"))
        .count();
    assert_eq!(verified, 2, "{}", run.stdout);
    assert_eq!(fs::read(client.join("down.bin")).expect("down"), down);
    assert_eq!(fs::read(server.root().join("up.bin")).expect("up"), up);
}

#[test]
fn mget_leaves_out_subdirectories_on_our_server() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    subdirectories_session(server.addr.port(), server.root(), client.path());
    // Our server offers MLSD: its types told the directories, no SIZE was asked, and
    // no directory was sent a RETR.
    let log = server.log();
    assert!(log.contains(": MLSD"), "{log}");
    assert!(!log.contains(": NLST") && !log.contains(": SIZE "), "{log}");
    assert!(!log.contains(": RETR sub"), "{log}");
}

#[test]
fn mget_leaves_out_subdirectories_on_pyftpdlib() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(server) = PyftpdlibServer::start_or_skip(root.path()) else {
        return;
    };
    let client = tempfile::tempdir().expect("tempdir");
    subdirectories_session(server.port, root.path(), client.path());
}

/// Without MLSD (pyftpdlib with MLSD and MLST taken away, as vsftpd has neither),
/// NLST cannot tell directories from files; SIZE tells them apart instead.
#[test]
fn mget_leaves_out_subdirectories_on_a_server_without_mlsd() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(server) = PyftpdlibWithoutMlsd::start_or_skip(root.path()) else {
        return;
    };
    // The premise: FEAT names no MLST, and MLSD is refused.
    let mut ftp = Ftp::connect(std::net::SocketAddr::from(([127, 0, 0, 1], server.port)));
    ftp.login();
    let feat = ftp.expect("FEAT", 211);
    assert!(
        feat.text.contains("SIZE") && !feat.text.contains("MLST"),
        "{feat:?}"
    );
    ftp.expect("MLSD", 500);
    ftp.expect("QUIT", 221);
    let client = tempfile::tempdir().expect("tempdir");
    subdirectories_session(server.port, root.path(), client.path());
}

/// `MGET *` over a directory that holds subdirectories (one with a name that looks
/// like a file's) fetches the files only, byte-exact, and counts the directories it
/// left out; a pattern that matches only directories matches no file.
fn subdirectories_session(port: u16, server_root: &Path, client: &Path) {
    let a = pattern(100, 81);
    let b = pattern((1 << 20) + 1, 82);
    fs::write(server_root.join("a.txt"), &a).expect("write");
    fs::write(server_root.join("b.bin"), &b).expect("write");
    for dir in ["sub", "sub.txt"] {
        fs::create_dir(server_root.join(dir)).expect("mkdir");
        fs::write(server_root.join(dir).join("inner.txt"), "inner\n").expect("write");
    }
    let script = format!("OPEN {port}\nMGET *\nMGET *.txt\nMGET su*\nQUIT\n");
    let run = run_client_script(client, &script);

    assert_eq!(run.code(), 1, "{run:?}");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        errors,
        [
            "error: MGET su*: no file matches",
            "error: MGET: 0 files, 0 B, 1 failure, 2 directories left out",
        ],
        "{}",
        run.stderr
    );
    let out = &run.stdout;
    for line in [
        "MGET: 2 files, 1.0 MiB, 0 failures, 2 directories left out",
        "MGET: 1 file, 100 B, 0 failures, 1 directory left out",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
    assert!(!out.contains("GET sub"), "{out}");
    assert_eq!(fs::read(client.join("a.txt")).expect("a"), a);
    assert_eq!(fs::read(client.join("b.bin")).expect("b"), b);
    assert_eq!(
        names_in(client),
        ["a.txt", "b.bin"],
        "nothing else, no debris"
    );
}

/// The few lines of Python that run pyftpdlib without MLSD and MLST (so FEAT does
/// not offer them, and both get 500), anonymous with write permission, on a free
/// loopback port, printing the port once it listens.
const PYFTPDLIB_WITHOUT_MLSD: &str = r#"
import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
logging.basicConfig(level=logging.WARNING)
class WithoutMlsd(FTPHandler):
    proto_cmds = {k: v for k, v in FTPHandler.proto_cmds.items() if k not in ("MLSD", "MLST")}
authorizer = DummyAuthorizer()
authorizer.add_anonymous(sys.argv[1], perm="elradfmwMT")
WithoutMlsd.authorizer = authorizer
server = FTPServer(("127.0.0.1", 0), WithoutMlsd)
print(server.address[1], flush=True)
server.serve_forever()
"#;

/// A pyftpdlib server without MLSD, stopped (by its PID) when dropped.
struct PyftpdlibWithoutMlsd {
    child: Child,
    port: u16,
}

impl PyftpdlibWithoutMlsd {
    fn start_or_skip(root: &Path) -> Option<PyftpdlibWithoutMlsd> {
        let available = have("python3", &["-c", "import pyftpdlib"]);
        if !require(available, "pyftpdlib (pip install pyftpdlib)") {
            return None;
        }
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(PYFTPDLIB_WITHOUT_MLSD)
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3");
        let stdout = child.stdout.take().expect("pyftpdlib stdout");
        // The guard owns the child from here, so a failure below still stops it.
        let mut server = PyftpdlibWithoutMlsd { child, port: 0 };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read pyftpdlib's port");
        server.port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("pyftpdlib printed {line:?} instead of a port"));
        Some(server)
    }
}

impl Drop for PyftpdlibWithoutMlsd {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID; nothing else is touched.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn passive_off_moves_files_through_active_connections_on_our_server() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    let down = pattern((1 << 20) + 1, 41);
    let up = pattern(65_537, 42);
    fs::write(server.root().join("down.bin"), &down).expect("write");
    fs::write(client.path().join("up.bin"), &up).expect("write");
    let script = format!(
        "OPEN {}\nPASSIVE off\nSTATUS\nGET down.bin\nPUT up.bin\nLS\nMGET d*\nPASSIVE\nGET up.bin\nQUIT\n",
        server.addr.port()
    );
    let run = run_client_script(client.path(), &script);
    assert_eq!(run.code(), 0, "{run:?}");
    let out = &run.stdout;
    assert!(out.contains("PASSIVE: off"), "{out}");
    assert!(out.contains("(active)"), "STATUS names the mode: {out}");
    assert!(out.contains("PASSIVE: on"), "{out}");
    assert!(
        out.lines().any(|l| l.ends_with(" up.bin")),
        "LS over an active connection: {out}"
    );
    assert!(out.contains("MGET: 1 file, 1.0 MiB, 0 failures"), "{out}");
    assert_eq!(
        fs::read(client.path().join("down.bin")).expect("down"),
        down
    );
    assert_eq!(fs::read(server.root().join("up.bin")).expect("up"), up);
}

#[test]
fn the_active_flag_makes_every_transfer_active() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    let data = pattern(300_000, 43);
    fs::write(server.root().join("a.bin"), &data).expect("write");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ftp-client"));
    cmd.arg("--dir")
        .arg(client.path())
        .args(["--active", "--timeout", "60"]);
    let run = crate::common::run_client_command(
        cmd,
        &format!("OPEN {}\nSTATUS\nGET a.bin\n", server.addr.port()),
    );
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(run.stdout.contains("(active)"), "{}", run.stdout);
    assert_eq!(fs::read(client.path().join("a.bin")).expect("a"), data);
}

#[test]
fn active_mode_over_ipv6_names_our_address_with_eprt() {
    if !crate::common::ipv6_loopback_available() {
        eprintln!("skipped: the IPv6 loopback address ::1 is not available here");
        return;
    }
    let server = TestServer::start(&["--bind", "::1"]);
    let client = tempfile::tempdir().expect("tempdir");
    let data = pattern(200_001, 44);
    fs::write(server.root().join("v6.bin"), &data).expect("write");
    fs::write(client.path().join("up6.bin"), &data[..1000]).expect("write");
    let script = format!(
        "OPEN [::1]:{}\nPASSIVE off\nGET v6.bin\nPUT up6.bin\nMGET v6*\n",
        server.addr.port()
    );
    let run = run_client_script(client.path(), &script);
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(fs::read(client.path().join("v6.bin")).expect("v6"), data);
    assert_eq!(
        fs::read(server.root().join("up6.bin")).expect("up6"),
        &data[..1000]
    );
}
