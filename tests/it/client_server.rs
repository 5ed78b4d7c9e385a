//! Our `ftp-client` binary against our `ftp-server`: the lab's own check (OPEN, GET,
//! PUT, CLOSE, OPEN a second server, GET, QUIT) byte for byte with a file of more
//! than 50 MiB, the failure cases with their exit codes, and a server that vanishes
//! in the middle of a session.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::common::{
    assert_files_in, hidden_names_in, lab_sample_files, names_in, pattern, run_client_script,
    write_files, TestServer, WAIT,
};

#[test]
fn lab_check_moves_files_byte_exact_between_two_servers() {
    let first = TestServer::start(&[]);
    let second = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    let downloads = lab_sample_files("down-", (50 << 20) + 3);
    let uploads = lab_sample_files("up-", (50 << 20) + 5);
    write_files(first.root(), &downloads);
    write_files(client.path(), &uploads);
    fs::write(second.root().join("other.txt"), "from the second server\n").expect("write");

    let mut script = format!("OPEN {}\n", first.addr.port());
    for (name, _) in &downloads {
        script += &format!("GET {name}\n");
    }
    for (name, _) in &uploads {
        script += &format!("PUT {name}\n");
    }
    script += &format!("CLOSE\nOPEN {}\nGET other.txt\nQUIT\n", second.addr.port());
    let run = run_client_script(client.path(), &script);

    assert_eq!(run.code(), 0, "{run:?}");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_files_in(client.path(), &downloads);
    assert_files_in(first.root(), &uploads);
    assert_eq!(
        fs::read_to_string(client.path().join("other.txt")).expect("read"),
        "from the second server\n"
    );
    assert!(hidden_names_in(client.path()).is_empty());
    let line = format!("GET down-big.bin: {} bytes in ", (50 << 20) + 3);
    assert!(run.stdout.contains(&line), "{}", run.stdout);
    // Our server offers HASH, so every transfer was checked against its SHA-256.
    let transfers = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("GET ") || l.starts_with("PUT "));
    for transfer in transfers {
        assert!(transfer.ends_with(", SHA-256 verified"), "{transfer}");
    }
}

#[test]
fn failures_are_reported_and_the_session_goes_on() {
    let server = TestServer::start(&[]);
    let client = tempfile::tempdir().expect("tempdir");
    fs::write(server.root().join("ok.txt"), "ok\n").expect("write");
    fs::write(client.path().join("keep.txt"), "good local copy\n").expect("write");
    let script = format!(
        "get ok.txt\nopen {}\nget missing.txt\nget keep.txt\nput absent.txt\nget ../x\n\
         put /etc/hostname\nget ok.txt\nclose\nquit\n",
        server.addr.port()
    );
    let run = run_client_script(client.path(), &script);

    assert_eq!(run.code(), 1, "{run:?}");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 6, "{}", run.stderr);
    assert!(errors[0].contains("not connected"), "{}", errors[0]);
    assert!(errors[1].contains("GET missing.txt"), "{}", errors[1]);
    assert!(errors[2].contains("GET keep.txt"), "{}", errors[2]);
    assert!(errors[3].contains("absent.txt"), "{}", errors[3]);
    assert!(errors[4].contains("would leave the local directory"));
    assert!(errors[5].contains("would leave the local directory"));
    assert!(!client.path().join("missing.txt").exists());
    assert_eq!(
        fs::read_to_string(client.path().join("keep.txt")).expect("read"),
        "good local copy\n"
    );
    assert_eq!(fs::read(client.path().join("ok.txt")).expect("ok"), b"ok\n");
    assert!(hidden_names_in(client.path()).is_empty());
    assert!(!server.root().join("absent.txt").exists());
    assert!(!server.root().join("hostname").exists());
}

#[test]
fn server_gone_mid_session_leaves_the_client_usable() {
    let doomed = TestServer::start(&[]);
    let spare = TestServer::start(&[]);
    fs::write(doomed.root().join("a.txt"), "a").expect("write");
    fs::write(spare.root().join("b.txt"), "b").expect("write");
    let client = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftp-client"))
        .arg("--dir")
        .arg(client.path())
        .args(["--timeout", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ftp-client");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));

    writeln!(stdin, "OPEN {}", doomed.addr.port()).expect("write");
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    assert!(line.contains("connected"), "{line}");
    drop(doomed); // kills the server process and waits for it

    writeln!(
        stdin,
        "GET a.txt\nGET a.txt\nOPEN {}\nGET b.txt\nQUIT",
        spare.addr.port()
    )
    .expect("write");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    assert!(errors[0].contains("disconnected"), "{}", errors[0]);
    assert!(errors[1].contains("not connected"), "{}", errors[1]);
    assert!(!client.path().join("a.txt").exists());
    assert_eq!(fs::read(client.path().join("b.txt")).expect("b"), b"b");
    assert!(hidden_names_in(client.path()).is_empty());
}

#[test]
fn an_interrupted_transfer_leaves_nothing_behind_on_either_side() {
    use simple_ftp::client::{Client, ClientError, Interrupt};
    let server = TestServer::start(&[]);
    fs::write(server.root().join("old.bin"), b"old version").expect("write");
    fs::write(server.root().join("big.bin"), pattern(32 << 20, 3)).expect("write");
    let local_dir = tempfile::tempdir().expect("tempdir");
    let mut client = Client::connect("127.0.0.1", server.addr.port(), WAIT).expect("connect");
    client.login("anonymous", "x@").expect("login");
    client.binary().expect("binary");
    let interrupt = Interrupt::new();
    client.set_interrupt(std::sync::Arc::clone(&interrupt));

    let local = local_dir.path().join("big.bin");
    let err = client
        .get("big.bin", &local, |_| {
            interrupt.request();
        })
        .expect_err("interrupted");
    assert!(matches!(err, ClientError::Interrupted), "{err}");
    assert!(names_in(local_dir.path()).is_empty());

    let upload = local_dir.path().join("up.bin");
    fs::write(&upload, pattern(16 << 20, 4)).expect("write");
    let err = client
        .put(&upload, "old.bin", |p| {
            if p.done > 0 {
                interrupt.request();
            }
        })
        .expect_err("interrupted");
    assert!(matches!(err, ClientError::Interrupted), "{err}");
    // The server kept the old version: the upload's end was not taken for its end.
    assert_eq!(names_in(server.root()), ["big.bin", "old.bin"]);
    assert_eq!(
        fs::read(server.root().join("old.bin")).expect("read"),
        b"old version"
    );
    // And the session goes on.
    let got = client.get("old.bin", &local, |_| {}).expect("get");
    assert!(got.verified);
    client.quit().expect("quit");
}
