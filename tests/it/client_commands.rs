//! Our `ftp-client` binary's everyday commands (issue 15) against our server, piped and
//! byte-exact: moving around (CD, CDUP, PWD, LCD, LPWD, LS of the current directory),
//! changing the server's files (MKDIR, RMDIR, DELETE, RENAME, SIZE), each refusal
//! reported with its reply while the session goes on.

use std::fs;
use std::path::Path;

use crate::common::{
    hidden_names_in, names_in, pattern, run_client_script, PyftpdlibServer, TestServer,
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
    if !has_hash {
        return;
    }
    // A partial file that is not the start of the server's: the whole-file check
    // catches it, and neither side keeps the wrong file.
    let mut wrong = down[..1 << 20].to_vec();
    wrong[10] ^= 0xff;
    fs::write(client.join("down.bin"), &wrong).expect("write");
    let mut wrong_up = up[..1 << 20].to_vec();
    wrong_up[10] ^= 0xff;
    fs::write(server_root.join("up.bin"), &wrong_up).expect("write");
    let run = run_client_script(
        client,
        &format!("OPEN {port}\nREGET down.bin\nREPUT up.bin\n"),
    );
    assert_eq!(run.code(), 1, "{run:?}");
    let errors: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(
        errors[0].contains("SHA-256 differs") && errors[0].contains("removed"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("SHA-256 differs") && errors[1].contains("deleted"),
        "{}",
        errors[1]
    );
    assert!(!client.join("down.bin").exists());
    assert!(!server_root.join("up.bin").exists());
    assert!(hidden_names_in(client).is_empty());
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
