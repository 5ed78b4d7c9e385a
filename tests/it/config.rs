//! `--config FILE` and `check-config FILE` on the real binary: a server started from a
//! config file serves its root on its port, the command line beats the file, a bad
//! file stops the server before it opens anything, and `check-config` prints settings
//! that read back as the same settings (issue 13, item 1).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{eventually, run_peer, Ftp, PeerRun};

/// The annotated example shipped with the sources.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/ftp-server.toml");

/// An `ftp-server` started with exactly the given arguments, killed (by its PID) on drop.
struct Started {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Started {
    /// Starts `ftp-server args...` in `cwd`, logging to `cwd/server.log`, and reads its
    /// `listening on` line.
    fn start(cwd: &Path, args: &[&str]) -> Started {
        let log = cwd.join("server.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(File::create(&log).expect("log file")))
            .spawn()
            .expect("start ftp-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("no listening line but {line:?}; log:\n{log}");
        };
        let addr = addr.parse().expect("address");
        Started { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ftp-server args...` in `cwd` to its end (bounded), with its output.
fn run_to_end(cwd: &Path, args: &[&str]) -> PeerRun {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-server"));
    cmd.args(args).current_dir(cwd);
    run_peer(cmd)
}

/// A TOML basic string holding `path`.
fn quoted(path: &Path) -> String {
    toml::Value::String(path.to_str().expect("UTF-8 path").to_owned()).to_string()
}

/// Logs in and returns the names `NLST` lists and the bytes of `name`.
fn names_and_file(addr: SocketAddr, name: &str) -> (Vec<String>, Vec<u8>) {
    let mut ftp = Ftp::connect(addr);
    ftp.login();
    let mut names: Vec<String> = ftp.listing("NLST").lines().map(str::to_owned).collect();
    names.sort();
    let bytes = ftp.retr(name);
    ftp.expect("QUIT", 221);
    (names, bytes)
}

#[test]
fn a_server_started_with_a_config_file_serves_its_root_on_its_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("from-file");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::write(
        root.join("hello.txt"),
        b"served from the config file's root\n",
    )
    .expect("write");
    let config = dir.path().join("ftp-server.toml");
    std::fs::write(
        &config,
        format!(
            "# port 0: a free one, where the default would be 2121\nport = 0\n\
             root = {}\nworkers = 2\nverbose = true\n",
            quoted(&root)
        ),
    )
    .expect("write config");
    let server = Started::start(dir.path(), &["--config", config.to_str().expect("utf8")]);
    assert_ne!(server.addr.port(), 2121, "the file's port 0 was not used");
    assert!(server.addr.ip().is_loopback());

    let (names, bytes) = names_and_file(server.addr, "hello.txt");
    assert_eq!(names, ["hello.txt"]);
    assert_eq!(bytes, b"served from the config file's root\n");
    // The file's `verbose = true` logs every command (the password masked).
    eventually("the PASS line in the verbose log", || {
        server.log().contains("PASS ****")
    });
    assert!(server.log().contains("settings from"), "{}", server.log());
}

#[test]
fn the_command_line_overrides_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (from_file, from_flag) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&from_file).expect("mkdir");
    std::fs::create_dir(&from_flag).expect("mkdir");
    std::fs::write(from_file.join("file.txt"), b"file").expect("write");
    std::fs::write(from_flag.join("flag.txt"), b"flag").expect("write");
    let config = dir.path().join("ftp-server.toml");
    // An address this machine does not have: the server could not listen on it.
    std::fs::write(
        &config,
        format!(
            "bind = \"192.0.2.1\"\nport = 2121\nroot = {}\nanonymous = \"off\"\n",
            quoted(&from_file)
        ),
    )
    .expect("write config");
    let server = Started::start(
        dir.path(),
        &[
            "--config",
            config.to_str().expect("utf8"),
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--root",
            from_flag.to_str().expect("utf8"),
        ],
    );
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(server.addr.port(), 2121);
    // The file's `anonymous = "off"` still holds: the anonymous login is refused.
    let mut ftp = Ftp::connect(server.addr);
    assert_eq!(ftp.greeting.code, 220);
    ftp.expect("USER anonymous", 331);
    assert_eq!(ftp.cmd("PASS test@").code, 530);
    drop(ftp);
    drop(server);

    // And with anonymous access given back on the command line, the flag's root is served.
    let server = Started::start(
        dir.path(),
        &[
            "--config",
            config.to_str().expect("utf8"),
            "--bind=127.0.0.1",
            "--port=0",
            "--anonymous=read",
            "--root",
            from_flag.to_str().expect("utf8"),
        ],
    );
    let (names, bytes) = names_and_file(server.addr, "flag.txt");
    assert_eq!(names, ["flag.txt"]);
    assert_eq!(bytes, b"flag");
}

#[test]
fn without_a_config_file_the_server_still_serves_server_in_its_directory() {
    // The quick start's `ftp-server` with no arguments, but on a free port.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Started::start(dir.path(), &["--port", "0"]);
    let served = dir.path().join("server");
    assert!(served.is_dir(), "./server was not made");
    std::fs::write(served.join("lab.txt"), b"lab").expect("write");
    let (names, bytes) = names_and_file(server.addr, "lab.txt");
    assert_eq!(names, ["lab.txt"]);
    assert_eq!(bytes, b"lab");

    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").expect("write");
    let run = run_to_end(dir.path(), &["check-config", "empty.toml"]);
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(run.stdout.contains("\nport = 2121\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains("\nroot = \"server\"\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("\nbind = \"127.0.0.1\"\n"),
        "{}",
        run.stdout
    );
}

/// Runs the server on a config file that it must refuse: exit status 1, nothing on
/// stdout (no `listening on`), `want` in the message, and the root it names never
/// made (the root is made before the listener is opened, so neither was).
#[track_caller]
fn refused_before_listening(body: &str, want: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("never-made");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!("root = {}\nport = 0\n{body}", quoted(&root)),
    )
    .expect("write config");
    let run = run_to_end(dir.path(), &["--config", "bad.toml"]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert_eq!(run.stdout, "", "the server started: {run:?}");
    assert!(
        run.stderr.contains(want),
        "stderr {:?} does not say {want:?}",
        run.stderr
    );
    assert!(
        !root.exists(),
        "the root was made: the server got as far as binding"
    );
}

#[test]
fn an_unknown_key_stops_the_server_before_it_listens() {
    refused_before_listening(
        "max_per_ip = 8\n",
        "ftp-server: bad.toml:3: unknown key `max_per_ip`; did you mean `max-per-ip`?",
    );
}

#[test]
fn a_value_of_the_wrong_type_stops_the_server_before_it_listens() {
    refused_before_listening(
        "workers = 4\nidle-timeout = \"300\"\n",
        "bad.toml:4: idle-timeout: invalid type: string \"300\", expected an integer",
    );
}

#[test]
fn a_bad_value_stops_the_server_before_it_listens() {
    // A key given twice (`port` is on line 2 already).
    refused_before_listening("grace = 5\nport = 21\n", "bad.toml:4: duplicate key `port`");
    refused_before_listening(
        "bind = \"localhost\"\n",
        "bad.toml:3: bind: invalid IP address syntax",
    );
    refused_before_listening("workers = 0\n", "bad.toml:3: workers: must be at least 1");
    refused_before_listening(
        "require-tls = true\n",
        "bad.toml:3: require-tls: needs tls-cert and tls-key as well",
    );
}

#[test]
fn a_port_out_of_range_or_a_root_that_cannot_be_made_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ftp.toml");
    std::fs::write(&config, "root = \"srv\"\nport = 70000\n").expect("write");
    let run = run_to_end(dir.path(), &["--config", "ftp.toml"]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains(
            "ftp.toml:2: port: invalid value: integer `70000`, expected an integer from 0 to 65535"
        ),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("srv").exists());

    // A root below a plain file cannot be made a directory.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"not a directory").expect("write");
    std::fs::write(
        &config,
        format!("port = 0\n\nroot = {}\n", quoted(&plain.join("srv"))),
    )
    .expect("write");
    for args in [&["--config", "ftp.toml"][..], &["check-config", "ftp.toml"]] {
        let run = run_to_end(dir.path(), args);
        assert_eq!(run.code(), 1, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(
            run.stderr.contains("ftp.toml:3: root: "),
            "{args:?}: {}",
            run.stderr
        );
    }
    // A missing config file is an error of its own.
    let run = run_to_end(dir.path(), &["--config", "missing.toml"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr.contains("cannot read missing.toml: "),
        "{}",
        run.stderr
    );
}

#[test]
fn check_config_prints_settings_that_read_back_as_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("in.toml");
    std::fs::write(
        &config,
        "port = 2200\nroot = \"/srv/ftp files\"\nworkers = 3\npasv-ports = \"50000-50099\"\n\
         pasv-address = \"203.0.113.9\"\nanonymous = \"off\"\nfailed-login-delay = 2\n\
         verbose = true\nbind = \"0.0.0.0\"\n",
    )
    .expect("write");
    let first = run_to_end(dir.path(), &["check-config", "in.toml"]);
    assert_eq!(first.code(), 0, "{first:?}");
    let table: toml::Table = toml::from_str(&first.stdout).expect("the output is TOML");
    let int = |key: &str| table.get(key).and_then(toml::Value::as_integer);
    let text = |key: &str| table.get(key).and_then(toml::Value::as_str);
    assert_eq!(int("port"), Some(2200));
    assert_eq!(int("workers"), Some(3));
    assert_eq!(int("grace"), Some(30), "a default");
    assert_eq!(int("max-per-ip"), Some(16), "the default off loopback");
    assert_eq!(text("root"), Some("/srv/ftp files"));
    assert_eq!(text("pasv-ports"), Some("50000-50099"));
    assert_eq!(text("pasv-address"), Some("203.0.113.9"));
    assert_eq!(text("anonymous"), Some("off"));
    assert_eq!(
        table
            .get("failed-login-delay")
            .and_then(toml::Value::as_float),
        Some(2.0)
    );
    assert_eq!(
        table.get("verbose").and_then(toml::Value::as_bool),
        Some(true)
    );
    assert!(!table.contains_key("users"));
    assert!(
        first.stdout.contains("\n# users: not set\n"),
        "{}",
        first.stdout
    );

    std::fs::write(dir.path().join("out.toml"), &first.stdout).expect("write");
    let second = run_to_end(dir.path(), &["check-config", "out.toml"]);
    assert_eq!(second.code(), 0, "{second:?}");
    assert_eq!(second.stdout, first.stdout);

    // Flags given with check-config override the file, as when running.
    let over = run_to_end(
        dir.path(),
        &["--port", "2121", "-q", "check-config", "in.toml"],
    );
    assert_eq!(over.code(), 0, "{over:?}");
    assert!(over.stdout.contains("\nport = 2121\n"), "{}", over.stdout);
    assert!(over.stdout.contains("\nquiet = true\n"), "{}", over.stdout);
    assert!(
        over.stdout.contains("\nverbose = false\n"),
        "{}",
        over.stdout
    );
}

#[test]
fn check_config_prints_the_error_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.toml"), "port = 21\nworker = 2\n").expect("write");
    let run = run_to_end(dir.path(), &["check-config", "bad.toml"]);
    assert_eq!(run.code(), 1, "{run:?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("bad.toml:2: unknown key `worker`"),
        "{}",
        run.stderr
    );
    // The file is given once: as check-config's argument.
    let run = run_to_end(
        dir.path(),
        &["--config", "bad.toml", "check-config", "bad.toml"],
    );
    assert_eq!(run.code(), 1, "{run:?}");
    assert!(run.stderr.contains("leave out --config"), "{}", run.stderr);
}

#[test]
fn the_example_config_is_accepted_and_at_the_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = run_to_end(dir.path(), &["check-config", EXAMPLE]);
    assert_eq!(example.code(), 0, "{example:?}");
    std::fs::write(dir.path().join("empty.toml"), "").expect("write");
    let defaults = run_to_end(dir.path(), &["check-config", "empty.toml"]);
    assert_eq!(defaults.code(), 0, "{defaults:?}");
    assert_eq!(example.stdout, defaults.stdout);
    // Every key the binary prints is in the example, set or as a `#key = ...` line.
    let text = std::fs::read_to_string(EXAMPLE).expect("read the example");
    for line in defaults.stdout.lines().skip(1) {
        let key = line
            .split_once(" = ")
            .map(|(key, _)| key)
            .or_else(|| line.strip_prefix("# ")?.strip_suffix(": not set"))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        assert!(
            text.lines().any(
                |l| l.starts_with(&format!("{key} = ")) || l.starts_with(&format!("#{key} = "))
            ),
            "{key} is not in the example"
        );
    }
}
