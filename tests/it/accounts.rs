//! Accounts, permissions, anonymous modes and login hygiene (RFC 2577).

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{hash_password, require, Ftp, TestServer};

/// `ftp-server hash-password` for `password`, checked to be an Argon2id hash.
fn hash(password: &str) -> String {
    let hash = hash_password(password);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}

/// A server with three accounts and the given extra arguments.
fn server_with_users(extra: &[&str]) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("alice")).expect("mkdir");
    fs::write(root.join("top.txt"), "top").expect("write");
    fs::write(root.join("alice/mine.txt"), "alice's").expect("write");
    let users = dir.path().join("users.toml");
    fs::write(
        &users,
        format!(
            "[[user]]\nname = \"alice\"\npassword = \"{}\"\nhome = \"/alice\"\n\
             permissions = [\"read\", \"write\"]\n\n\
             [[user]]\nname = \"bob\"\npassword = \"{}\"\n\n\
             [[user]]\nname = \"carol\"\npassword = \"{}\"\n\
             permissions = [\"read\", \"write\", \"delete\"]\n",
            hash("alice-pw"),
            hash("bob-pw"),
            hash("carol-pw")
        ),
    )
    .expect("write users");
    let users = users.to_string_lossy().into_owned();
    let mut args = vec!["--users", users.as_str()];
    if !extra.contains(&"--failed-login-delay") {
        args.extend_from_slice(&["--failed-login-delay", "0.2"]);
    }
    args.extend_from_slice(extra);
    TestServer::start_in(dir, root, &args)
}

fn login_as(server: &TestServer, user: &str, password: &str) -> Ftp {
    let mut ftp = Ftp::connect(server.addr);
    ftp.expect(&format!("USER {user}"), 331);
    ftp.expect(&format!("PASS {password}"), 230);
    ftp.expect("TYPE I", 200);
    ftp
}

#[test]
fn each_permission_is_enforced_and_users_stay_in_their_home() {
    let server = server_with_users(&["--anonymous", "off"]);
    let root = server.root().to_path_buf();

    // alice: read and write, home /alice.
    let mut alice = login_as(&server, "alice", "alice-pw");
    assert!(alice.expect("PWD", 257).text.starts_with("\"/\""));
    assert_eq!(alice.retr("mine.txt"), b"alice's");
    alice.stor("new.txt", b"from alice");
    assert_eq!(
        fs::read(root.join("alice/new.txt")).expect("read"),
        b"from alice"
    );
    alice.expect("MKD sub", 257);
    alice.expect("DELE new.txt", 550);
    alice.expect("RMD sub", 550);
    alice.expect("RNFR new.txt", 550);
    // The server root is out of reach.
    alice.expect("CWD ..", 250);
    assert!(alice.expect("PWD", 257).text.starts_with("\"/\""));
    let _data = alice.epsv();
    alice.expect("RETR ../top.txt", 550);
    alice.expect("SIZE /top.txt", 550);
    assert!(!alice.listing("NLST").contains("top.txt"));

    // bob: read only, home /.
    let mut bob = login_as(&server, "bob", "bob-pw");
    assert_eq!(bob.retr("top.txt"), b"top");
    assert_eq!(bob.retr("alice/mine.txt"), b"alice's");
    for (line, what) in [
        ("STOR x.txt", "write"),
        ("APPE top.txt", "write"),
        ("MKD d", "write"),
        ("DELE top.txt", "delete"),
        ("RMD alice", "delete"),
        ("RNFR top.txt", "delete"),
    ] {
        let _data = bob.epsv();
        let r = bob.cmd(line);
        assert_eq!(r.code, 550, "{line} needs {what}: {r:?}");
    }
    let facts = bob.listing("MLSD");
    let top = facts
        .lines()
        .find(|l| l.ends_with("; top.txt"))
        .expect("top.txt listed");
    assert!(
        top.contains(";perm=r;"),
        "a read-only user may only read: {top}"
    );

    // carol: everything.
    let mut carol = login_as(&server, "carol", "carol-pw");
    carol.stor("c.txt", b"c");
    carol.expect("RNFR c.txt", 350);
    carol.expect("RNTO d.txt", 250);
    carol.expect("DELE d.txt", 250);
    carol.expect("RMD alice/sub", 250);
    assert_eq!(fs::read(root.join("top.txt")).expect("read"), b"top");
}

#[test]
fn unknown_users_and_wrong_passwords_get_the_same_reply_after_a_pause() {
    let server = server_with_users(&[]);
    let mut replies = Vec::new();
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-pw")] {
        let mut ftp = Ftp::connect(server.addr);
        let user_reply = ftp.expect(&format!("USER {user}"), 331);
        let started = Instant::now();
        let pass_reply = ftp.expect(&format!("PASS {password}"), 530);
        assert!(started.elapsed() >= Duration::from_millis(200), "no pause");
        replies.push((user_reply.text, pass_reply.text));
    }
    assert_eq!(
        replies[0], replies[1],
        "replies must not tell which names exist"
    );
}

#[test]
fn password_guessing_is_cut_off_after_three_failures() {
    let server = server_with_users(&["--max-login-failures", "3"]);
    let mut ftp = Ftp::connect(server.addr);
    let started = Instant::now();
    for _ in 0..3 {
        ftp.expect("USER alice", 331);
        ftp.expect("PASS guess", 530);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "each failure pauses"
    );
    assert!(ftp.try_reply().is_none(), "the connection is closed");
    // A good password on a new connection still works.
    login_as(&server, "alice", "alice-pw").expect("NOOP", 200);
}

#[test]
fn passwords_never_reach_the_log() {
    let server = server_with_users(&[]);
    login_as(&server, "alice", "alice-pw").expect("QUIT", 221);
    let mut ftp = Ftp::connect(server.addr);
    ftp.expect("USER bob", 331);
    ftp.expect("PASS Sekr1t-Guess", 530);
    drop(ftp);
    let log = server.log();
    assert!(log.contains("logged in as alice"), "{log}");
    assert!(log.contains("PASS ****"), "{log}");
    assert!(
        !log.contains("alice-pw") && !log.contains("Sekr1t-Guess"),
        "{log}"
    );
}

#[test]
fn anonymous_access_is_a_setting() {
    // The default on a loopback address: read and write, and the log says so.
    let lab = TestServer::start(&[]);
    lab.login().stor("a.txt", b"a");
    assert!(lab
        .log()
        .contains("anonymous access: read and write (the default"));

    let read_only = TestServer::start(&["--anonymous", "read"]);
    fs::write(read_only.root().join("r.txt"), "r").expect("write");
    let mut ftp = read_only.login();
    assert_eq!(ftp.retr("r.txt"), b"r");
    let _data = ftp.epsv();
    ftp.expect("STOR w.txt", 550);
    ftp.expect("DELE r.txt", 550);
    assert!(!read_only.root().join("w.txt").exists());

    let off = TestServer::start(&["--anonymous", "off"]);
    let mut ftp = Ftp::connect(off.addr);
    ftp.expect("USER anonymous", 331);
    ftp.expect("PASS x@", 530);
}

#[test]
fn max_per_ip_refuses_the_sessions_past_it() {
    let server = TestServer::start(&["--max-per-ip", "2"]);
    let _a = server.login();
    let _b = server.login();
    let c = Ftp::connect(server.addr);
    assert_eq!(c.greeting.code, 421);
    assert!(
        c.greeting.text.contains("from your address"),
        "{:?}",
        c.greeting
    );
    drop(_a);
    server.login_when_free().expect("NOOP", 200);
}

#[test]
fn a_bad_users_file_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.toml");
    fs::write(&users, "[[user]]\nname = \"x\"\npassword = \"plaintext\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
        .args(["--port", "0", "--root"])
        .arg(dir.path().join("root"))
        .arg("--users")
        .arg(&users)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("users.toml") && err.contains("argon2"),
        "{err}"
    );
    assert!(!Path::new(&dir.path().join("root")).exists() || out.stdout.is_empty());
}

/// The server's resident memory in KiB (VmRSS in /proc/<pid>/status), or `None` where
/// there is no /proc.
fn rss_kib(server: &TestServer) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `connections` connections one after the other, each with `rounds` failed logins as
/// `user`; every PASS must get exactly `530 Login incorrect`.
fn fail_logins(addr: SocketAddr, user: &str, password: &str, connections: usize, rounds: usize) {
    for _ in 0..connections {
        let mut ftp = Ftp::connect(addr);
        assert_eq!(ftp.greeting.code, 220, "{:?}", ftp.greeting);
        for _ in 0..rounds {
            ftp.expect(&format!("USER {user}"), 331);
            let reply = ftp.expect(&format!("PASS {password}"), 530);
            assert_eq!(reply.text, "Login incorrect");
        }
        ftp.expect("QUIT", 221);
    }
}

/// `fail_logins` on `threads` threads at once, the names and passwords taken in turn.
fn fail_logins_in_parallel(
    addr: SocketAddr,
    guesses: &[(&str, &str)],
    threads: usize,
    connections: usize,
    rounds: usize,
) {
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (user, password) = guesses[i % guesses.len()];
            let (user, password) = (user.to_owned(), password.to_owned());
            thread::spawn(move || fail_logins(addr, &user, &password, connections, rounds))
        })
        .collect();
    for worker in workers {
        worker.join().expect("a guessing thread failed");
    }
}

const MIB: u64 = 1024;

#[test]
fn failed_logins_without_a_users_file_leave_memory_flat() {
    // Issue 11: each failure ran argon2 on a dummy hash, 19 MiB a time, and glibc kept
    // the freed blocks; 700 failures took 9.4 GiB.
    let server = TestServer::start(&[
        "--workers",
        "8",
        "--failed-login-delay",
        "0",
        "--max-login-failures",
        "100000",
    ]);
    if !require(rss_kib(&server).is_some(), "/proc/<pid>/status") {
        return;
    }
    let guesses = [("bob", "x"), ("root", "toor"), ("alice", "")];
    // Every worker serves a session first (all at once), so their stacks and arenas
    // are counted.
    let warm: Vec<Ftp> = (0..8)
        .map(|_| {
            let mut ftp = Ftp::connect(server.addr);
            ftp.expect("USER bob", 331);
            ftp.expect("PASS x", 530);
            ftp
        })
        .collect();
    drop(warm);
    fail_logins_in_parallel(server.addr, &guesses, 8, 1, 10);
    let settled = rss_kib(&server).expect("rss");
    fail_logins_in_parallel(server.addr, &guesses, 8, 5, 250);
    let after = rss_kib(&server).expect("rss");
    eprintln!("RSS after 80 failed logins: {settled} KiB, after 10,080: {after} KiB");
    assert!(
        after <= settled + 4 * MIB,
        "10,000 failed logins grew RSS from {settled} KiB to {after} KiB"
    );
    assert!(
        !server.log().contains("password checks:"),
        "no argon2 memory"
    );
    server.login().expect("NOOP", 200);
}

#[test]
fn failed_logins_with_users_stay_within_the_pool_and_a_real_login_gets_through() {
    let server = server_with_users(&[
        "--workers",
        "32",
        "--failed-login-delay",
        "0",
        "--max-login-failures",
        "1000",
    ]);
    if !require(rss_kib(&server).is_some(), "/proc/<pid>/status") {
        return;
    }
    let log = server.log();
    let pool_kib: u64 = log
        .lines()
        .find_map(|l| {
            let (sets, rest) = l
                .split_once("password checks: ")?
                .1
                .split_once(" at a time, ")?;
            let each = rest.split_once(" KiB")?.0;
            Some(sets.parse::<u64>().ok()? * each.parse::<u64>().ok()?)
        })
        .unwrap_or_else(|| panic!("no pool size in the log: {log}"));
    let start = rss_kib(&server).expect("rss");
    // Wrong passwords of real names and names without an account, mixed.
    let guesses = [("alice", "guess"), ("mallory", "alice-pw"), ("bob", "")];
    fail_logins_in_parallel(server.addr, &guesses, 6, 1, 1);
    let settled = rss_kib(&server).expect("rss");

    let done = Arc::new(AtomicBool::new(false));
    let attack = {
        let (addr, done) = (server.addr, Arc::clone(&done));
        thread::spawn(move || {
            fail_logins_in_parallel(addr, &guesses, 24, 3, 4);
            done.store(true, Ordering::SeqCst);
        })
    };
    // A legitimate login in the middle of 288 failed ones.
    thread::sleep(Duration::from_millis(200));
    let mut alice = login_as(&server, "alice", "alice-pw");
    assert_eq!(alice.retr("mine.txt"), b"alice's");
    let during = !done.load(Ordering::SeqCst);
    attack.join().expect("the guessing threads failed");
    let after = rss_kib(&server).expect("rss");
    eprintln!(
        "pool {pool_kib} KiB; RSS at start {start} KiB, after 6 failures {settled} KiB, \
         after 294: {after} KiB; alice logged in during the attack: {during}"
    );
    assert!(
        after <= start + pool_kib + 4 * MIB,
        "RSS grew from {start} KiB to {after} KiB with a pool of {pool_kib} KiB"
    );
    assert!(
        after <= settled + 4 * MIB,
        "294 failed logins grew RSS from {settled} KiB to {after} KiB"
    );
}
