//! One-line use of our `ftp-client` (issue 15 item 6): a URL downloads a file, `-u`
//! uploads, `-c` and `-f` run commands, `--stop-on-error` ends at the first failure,
//! and credentials come from the URL or a `.netrc` file. Byte-exact, with exit codes.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{
    hash_password, hidden_names_in, names_in, pattern, run_client_command, ClientRun, TestServer,
};

/// `ftp-client --dir <dir> --timeout 60 <args>` with nothing on stdin.
fn client(dir: &Path, args: &[&str]) -> ClientRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
    cmd.arg("--dir")
        .arg(dir)
        .args(["--timeout", "60"])
        .args(args);
    run_client_command(cmd, "")
}

#[test]
fn a_url_downloads_one_file_byte_exact_and_exits() {
    let server = TestServer::start(&[]);
    let data = pattern(3 << 20, 21);
    fs::create_dir(server.root().join("sub dir")).expect("mkdir");
    fs::write(server.root().join("sub dir/a b.bin"), &data).expect("write");
    let local = tempfile::tempdir().expect("tempdir");
    let port = server.addr.port();

    let run = client(
        local.path(),
        &[&format!("ftp://127.0.0.1:{port}/sub%20dir/a%20b.bin")],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(fs::read(local.path().join("a b.bin")).expect("got"), data);
    assert!(run.stdout.contains("SHA-256 verified"), "{}", run.stdout);

    // A missing file: exit 1, nothing left behind, and the command after the
    // failure (the URL's QUIT) still ends the session.
    let run = client(
        local.path(),
        &[&format!("ftp://127.0.0.1:{port}/sub%20dir/missing")],
    );
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("GET missing"), "{}", run.stderr);
    assert_eq!(names_in(local.path()), ["a b.bin"]);
    assert!(hidden_names_in(local.path()).is_empty());

    // A directory that does not exist stops before any GET.
    let run = client(
        local.path(),
        &[&format!("ftp://127.0.0.1:{port}/nowhere/a%20b.bin")],
    );
    assert_eq!(run.code(), 1, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("CD nowhere"), "{}", run.stderr);
}

#[test]
fn upload_puts_every_file_into_the_urls_directory() {
    let server = TestServer::start(&[]);
    fs::create_dir(server.root().join("in")).expect("mkdir");
    let local = tempfile::tempdir().expect("tempdir");
    let (x, y) = (pattern(70_000, 1), pattern(5, 2));
    fs::write(local.path().join("x.bin"), &x).expect("write");
    fs::write(local.path().join("y z.bin"), &y).expect("write");
    let url = format!(
        "ftp://anonymous:me%40here@127.0.0.1:{}/in/",
        server.addr.port()
    );

    let run = client(local.path(), &["-u", &url, "x.bin", "y z.bin"]);
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(fs::read(server.root().join("in/x.bin")).expect("x"), x);
    assert_eq!(fs::read(server.root().join("in/y z.bin")).expect("y"), y);

    let run = client(local.path(), &["-u", &url, "../outside"]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        run.stderr.contains("would leave the local directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn commands_from_an_argument_or_a_file_and_stop_on_error() {
    let server = TestServer::start(&[]);
    fs::write(server.root().join("a.txt"), "a\n").expect("write");
    let local = tempfile::tempdir().expect("tempdir");
    let port = server.addr.port();
    let cmds = format!("OPEN {port}; GET missing.txt; GET a.txt; QUIT");

    let run = client(local.path(), &["-c", &cmds, "--stop-on-error"]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(
        !local.path().join("a.txt").exists(),
        "stopped before GET a.txt"
    );
    assert!(
        run.stdout.contains("QUIT: disconnected"),
        "told the server: {}",
        run.stdout
    );

    let run = client(local.path(), &["-c", &cmds]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert_eq!(fs::read(local.path().join("a.txt")).expect("a"), b"a\n");
    fs::remove_file(local.path().join("a.txt")).expect("rm");

    let script = tempfile::NamedTempFile::new().expect("temp");
    fs::write(
        script.path(),
        format!("OPEN {port}\nGET a.txt\nSIZE a.txt\n"),
    )
    .expect("write");
    let run = client(local.path(), &["-f", &script.path().to_string_lossy()]);
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(run.stdout.contains("SIZE a.txt: 2 bytes"), "{}", run.stdout);
    assert_eq!(fs::read(local.path().join("a.txt")).expect("a"), b"a\n");

    // Piped input stops at the first failure too.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
    cmd.arg("--dir").arg(local.path()).arg("--stop-on-error");
    let run = run_client_command(cmd, &format!("OPEN {port}\nCD missing\nDELETE a.txt\n"));
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(server.root().join("a.txt").exists(), "DELETE was not run");
}

#[test]
fn credentials_come_from_the_url_or_a_netrc_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("alice")).expect("mkdir");
    fs::write(root.join("alice/mine.txt"), "alice's\n").expect("write");
    let users = dir.path().join("users.toml");
    fs::write(
        &users,
        format!(
            "[[user]]\nname = \"alice\"\npassword = \"{}\"\nhome = \"/alice\"\n",
            hash_password("alice-pw")
        ),
    )
    .expect("write users");
    let users = users.to_string_lossy().into_owned();
    let server = TestServer::start_in(dir, root, &["--users", &users, "--anonymous", "off"]);
    let port = server.addr.port();
    let local = tempfile::tempdir().expect("tempdir");

    let run = client(
        local.path(),
        &[&format!("ftp://alice:alice%2Dpw@127.0.0.1:{port}/mine.txt")],
    );
    assert_eq!(run.code(), 0, "{run:?}");
    assert_eq!(
        fs::read(local.path().join("mine.txt")).expect("got"),
        b"alice's\n"
    );
    fs::remove_file(local.path().join("mine.txt")).expect("rm");

    let netrc = tempfile::NamedTempFile::new().expect("temp");
    let netrc_arg = netrc.path().to_string_lossy().into_owned();
    let url = format!("ftp://127.0.0.1:{port}/mine.txt");
    fs::write(
        netrc.path(),
        "machine elsewhere login x password y\ndefault login nobody password x\n\
         machine 127.0.0.1\n  login alice\n  password alice-pw\n",
    )
    .expect("write");
    let run = client(local.path(), &["--netrc-file", &netrc_arg, &url]);
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(run.stdout.contains("connected as alice"), "{}", run.stdout);
    assert_eq!(
        fs::read(local.path().join("mine.txt")).expect("got"),
        b"alice's\n"
    );

    // A wrong password in the file is the server saying no; nothing is written.
    fs::remove_file(local.path().join("mine.txt")).expect("rm");
    fs::write(
        netrc.path(),
        "machine 127.0.0.1 login alice password wrong\n",
    )
    .expect("write");
    let run = client(local.path(), &["--netrc-file", &netrc_arg, &url]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("530"), "{}", run.stderr);
    assert!(names_in(local.path()).is_empty());

    // --user wins over the file.
    let run = client(
        local.path(),
        &[
            "--netrc-file",
            &netrc_arg,
            "--user",
            "alice",
            "--password",
            "alice-pw",
            &url,
        ],
    );
    assert_eq!(run.code(), 0, "{run:?}");
}
