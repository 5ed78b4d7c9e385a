//! Our `ftp-client` binary against a third-party server, pyftpdlib: the lab's
//! session (OPEN, GET, PUT, LS, CLOSE, OPEN another server, QUIT) with byte-exact
//! comparisons, and every failure case with its exit code.
//!
//! Skips with a printed reason when pyftpdlib is not installed; fails under `CI=true`.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::common::{
    assert_files_in, hidden_names_in, lab_sample_files, run_client_command, run_client_script,
    write_files, PyftpdlibServer,
};

/// A server directory and a client directory in one temporary directory.
struct Dirs {
    tmp: tempfile::TempDir,
    server: PathBuf,
    client: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tempfile::tempdir().expect("tempdir");
        let server = tmp.path().join("server");
        let client = tmp.path().join("client");
        fs::create_dir(&server).expect("mkdir server");
        fs::create_dir(&client).expect("mkdir client");
        Dirs {
            tmp,
            server,
            client,
        }
    }
}

#[test]
fn lab_session_moves_files_byte_exact_and_opens_a_second_server() {
    let dirs = Dirs::new();
    let second_root = dirs.tmp.path().join("second");
    fs::create_dir(&second_root).expect("mkdir");
    let Some(server) = PyftpdlibServer::start_or_skip(&dirs.server) else {
        return;
    };
    let second = PyftpdlibServer::start(&second_root);
    let downloads = lab_sample_files("down-", 5 << 20);
    let uploads = lab_sample_files("up-", (5 << 20) + 17);
    write_files(&dirs.server, &downloads);
    write_files(&dirs.client, &uploads);
    fs::write(second_root.join("from-second.txt"), "second server\n").expect("write");

    let mut script = format!("OPEN {}\n", server.port);
    for (name, _) in &downloads {
        script += &format!("GET {name}\n");
    }
    for (name, _) in &uploads {
        script += &format!("PUT {name}\n");
    }
    script += &format!(
        "LS\nCLOSE\nOPEN 127.0.0.1 {}\nGET from-second.txt\nQUIT\n",
        second.port
    );
    let run = run_client_script(&dirs.client, &script);

    assert_eq!(run.code(), 0, "{run:?}");
    assert_files_in(&dirs.client, &downloads);
    assert_files_in(&dirs.server, &uploads);
    assert_eq!(
        fs::read_to_string(dirs.client.join("from-second.txt")).expect("read"),
        "second server\n"
    );
    assert!(
        hidden_names_in(&dirs.client).is_empty(),
        "{:?}",
        hidden_names_in(&dirs.client)
    );
    for (name, bytes) in downloads.iter().chain(&uploads) {
        let verb = if name.starts_with("down-") {
            "GET"
        } else {
            "PUT"
        };
        let line = format!("{verb} {name}: {} bytes in ", bytes.len());
        assert!(run.stdout.contains(&line), "no {line:?} in {}", run.stdout);
    }
    assert!(run.stdout.contains("down-big.bin"), "LS lists the files");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn lower_case_commands_work() {
    let dirs = Dirs::new();
    let Some(server) = PyftpdlibServer::start_or_skip(&dirs.server) else {
        return;
    };
    fs::write(dirs.server.join("a.txt"), "remote a\n").expect("write");
    fs::write(dirs.client.join("b.txt"), "local b\n").expect("write");
    let script = format!(
        "open {}\nget a.txt\nput b.txt\nls\ndir\nlls\nstatus\nclose\nquit\n",
        server.port
    );
    let run = run_client_script(&dirs.client, &script);
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        fs::read(dirs.client.join("a.txt")).expect("a"),
        b"remote a\n"
    );
    assert_eq!(
        fs::read(dirs.server.join("b.txt")).expect("b"),
        b"local b\n"
    );
}

#[test]
fn names_with_spaces_work_bare_and_quoted() {
    let dirs = Dirs::new();
    let Some(server) = PyftpdlibServer::start_or_skip(&dirs.server) else {
        return;
    };
    fs::write(dirs.server.join("my file.txt"), "spaced\n").expect("write");
    fs::write(dirs.client.join("up load.txt"), "up\n").expect("write");
    let script = format!(
        "OPEN {}\nGET my file.txt\nPUT \"up load.txt\"\nQUIT\n",
        server.port
    );
    let run = run_client_script(&dirs.client, &script);
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        fs::read(dirs.client.join("my file.txt")).expect("get"),
        b"spaced\n"
    );
    assert_eq!(
        fs::read(dirs.server.join("up load.txt")).expect("put"),
        b"up\n"
    );
}

#[test]
fn get_of_missing_file_creates_no_local_file_and_leaves_an_existing_one_untouched() {
    let dirs = Dirs::new();
    let Some(server) = PyftpdlibServer::start_or_skip(&dirs.server) else {
        return;
    };
    fs::write(dirs.client.join("keep.txt"), "good local copy\n").expect("write");
    fs::write(dirs.server.join("ok.txt"), "fine\n").expect("write");
    let script = format!(
        "OPEN {}\nGET missing.txt\nGET keep.txt\nGET ok.txt\nQUIT\n",
        server.port
    );
    let run = run_client_script(&dirs.client, &script);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(!dirs.client.join("missing.txt").exists());
    assert_eq!(
        fs::read_to_string(dirs.client.join("keep.txt")).expect("read"),
        "good local copy\n"
    );
    assert!(run.stderr.contains("GET missing.txt"), "{}", run.stderr);
    assert!(run.stderr.contains("550"), "{}", run.stderr);
    // The session went on after the failures.
    assert_eq!(fs::read(dirs.client.join("ok.txt")).expect("ok"), b"fine\n");
    assert!(
        hidden_names_in(&dirs.client).is_empty(),
        "{:?}",
        hidden_names_in(&dirs.client)
    );
}

#[test]
fn put_of_missing_local_file_fails_and_the_session_goes_on() {
    let dirs = Dirs::new();
    let Some(server) = PyftpdlibServer::start_or_skip(&dirs.server) else {
        return;
    };
    fs::write(dirs.client.join("there.txt"), "x").expect("write");
    let script = format!(
        "OPEN {}\nPUT nothere.txt\nPUT there.txt\nQUIT\n",
        server.port
    );
    let run = run_client_script(&dirs.client, &script);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("nothere.txt"), "{}", run.stderr);
    assert!(!dirs.server.join("nothere.txt").exists());
    assert_eq!(fs::read(dirs.server.join("there.txt")).expect("put"), b"x");
}

#[test]
fn names_that_leave_the_local_directory_are_refused() {
    let dirs = Dirs::new();
    let Some(server) = PyftpdlibServer::start_or_skip(&dirs.server) else {
        return;
    };
    fs::write(dirs.server.join("x"), "remote x").expect("write");
    let script = format!("OPEN {}\nGET ../x\nPUT /etc/hostname\nQUIT\n", server.port);
    let run = run_client_script(&dirs.client, &script);
    assert_eq!(run.code(), 1, "{run:?}");
    assert_eq!(
        run.stderr
            .matches("would leave the local directory")
            .count(),
        2,
        "{}",
        run.stderr
    );
    assert!(!dirs.tmp.path().join("x").exists());
    assert!(!dirs.server.join("hostname").exists());
}

#[test]
fn commands_before_open_say_not_connected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = run_client_script(tmp.path(), "GET a\nput b\nLS\nCLOSE\nQUIT\n");
    assert_eq!(run.code(), 1, "{run:?}");
    assert_eq!(
        run.stderr.matches("not connected").count(),
        4,
        "{}",
        run.stderr
    );
}

#[test]
fn open_of_a_closed_port_fails_and_the_client_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let run = run_client_script(tmp.path(), &format!("OPEN {port}\nHELP\nQUIT\n"));
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert!(
        run.stdout.contains("OPEN <port>"),
        "HELP still ran: {}",
        run.stdout
    );
}

#[test]
fn end_of_input_is_quit_and_success_exits_zero() {
    let dirs = Dirs::new();
    let Some(server) = PyftpdlibServer::start_or_skip(&dirs.server) else {
        return;
    };
    fs::write(dirs.server.join("a"), "a").expect("write");
    let run = run_client_script(&dirs.client, &format!("OPEN {}\nGET a\n", server.port));
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(run.stdout.contains("QUIT: disconnected"), "{}", run.stdout);
}

#[test]
fn default_local_directory_is_created_in_the_working_directory() {
    let dirs = Dirs::new();
    let Some(server) = PyftpdlibServer::start_or_skip(&dirs.server) else {
        return;
    };
    fs::write(dirs.server.join("a"), "a").expect("write");
    let cwd = dirs.tmp.path().join("cwd");
    fs::create_dir(&cwd).expect("mkdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
    cmd.current_dir(&cwd);
    let run = run_client_command(cmd, &format!("OPEN {}\nGET a\nQUIT\n", server.port));
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(fs::read(cwd.join("client/a")).expect("client/a"), b"a");
}
