//! The server's limits and its shutdown: a full pool, idle sessions, lock waits, signals.

use std::fs;
use std::io::{Read, Write};
use std::time::Instant;

use crate::common::{assert_same, eventually, names_in, pattern, Ftp, TestServer, WAIT};

#[test]
fn a_full_server_answers_421_at_once_and_serves_again_when_a_session_ends() {
    let server = TestServer::start(&["--workers", "2", "--max-connections", "2"]);
    let mut a = server.login();
    let _b = server.login();
    let started = Instant::now();
    let c = Ftp::connect(server.addr);
    assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
    assert!(started.elapsed() < WAIT);
    a.expect("QUIT", 221);
    drop(a);
    server.login_when_free().expect("NOOP", 200);
}

#[test]
fn an_idle_session_gets_421_and_frees_its_worker() {
    let server = TestServer::start(&["--workers", "1", "--idle-timeout", "1"]);
    let mut idle = server.login();
    let r = idle.reply();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(idle.try_reply().is_none(), "closed after 421");
    let mut next = server.login_when_free();
    next.expect("NOOP", 200);
}

#[test]
fn a_passive_port_nobody_connects_to_gives_425() {
    let server = TestServer::start(&["--data-timeout", "1"]);
    fs::write(server.root().join("f"), "x").expect("write");
    let mut ftp = server.login();
    ftp.expect("EPSV", 229);
    ftp.expect("RETR f", 150);
    assert_eq!(ftp.reply().code, 425);
    ftp.expect("NOOP", 200);
}

#[test]
fn an_upload_waits_for_a_download_of_the_same_file_then_gets_450() {
    let server = TestServer::start(&["--lock-wait", "1"]);
    let original = pattern(32 << 20, 3);
    fs::write(server.root().join("shared.bin"), &original).expect("write");
    let mut reader = server.login();
    let mut data = reader.epsv();
    reader.expect("RETR shared.bin", 150);
    // The download now holds the read lock: it cannot finish before we read.
    let mut first = vec![0u8; 1024];
    data.read_exact(&mut first).expect("first bytes");

    let mut writer = server.login();
    let _wdata = writer.epsv();
    writer.expect("STOR shared.bin", 450);
    // Another name is not affected.
    writer.stor("other.bin", b"independent");

    let mut rest = Vec::new();
    data.read_to_end(&mut rest).expect("rest");
    assert_eq!(reader.reply().code, 226);
    first.extend_from_slice(&rest);
    assert_same(&first, &original, "the download is the untouched file");
    writer.stor("shared.bin", b"new version");
    assert_eq!(reader.retr("shared.bin"), b"new version");
}

#[test]
fn sigint_lets_running_transfers_finish_and_exits_0() {
    let mut server = TestServer::start(&[]);
    let big = pattern(24 << 20, 5);
    fs::write(server.root().join("big.bin"), &big).expect("write");
    let upload = pattern(8 << 20, 6);

    let mut idle = server.login();
    let mut down = server.login();
    let mut ddata = down.epsv();
    down.expect("RETR big.bin", 150);
    let mut got = vec![0u8; 4096];
    ddata.read_exact(&mut got).expect("first bytes");

    let mut up = server.login();
    let mut udata = up.epsv();
    up.expect("STOR up.bin", 150);
    udata.write_all(&upload[..1 << 20]).expect("first part");

    server.signal("INT");
    assert_eq!(idle.reply().code, 421, "idle sessions are told");

    // Both transfers go on to the end, byte-exact.
    udata.write_all(&upload[1 << 20..]).expect("rest of upload");
    drop(udata);
    let mut rest = Vec::new();
    ddata.read_to_end(&mut rest).expect("rest of download");
    got.extend_from_slice(&rest);
    assert_same(&got, &big, "download");
    assert_eq!(down.reply().code, 226);
    assert_eq!(up.reply().code, 226);
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &upload,
        "upload",
    );

    // New connections are no longer served.
    let status = server.wait_exit(WAIT).expect("server exits");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(names_in(server.root()), ["big.bin", "up.bin"]);
}

#[test]
fn after_the_grace_period_a_stalled_upload_is_cut_off_and_cleaned_up() {
    let mut server = TestServer::start(&["--grace", "1"]);
    fs::write(server.root().join("keep.bin"), b"old").expect("write");
    let mut up = server.login();
    let mut udata = up.epsv();
    up.expect("STOR keep.bin", 150);
    udata.write_all(&pattern(1 << 20, 9)).expect("part");
    eventually("the temporary file", || names_in(server.root()).len() == 2);
    server.signal("TERM");
    // The client never finishes; the server cuts it off after the grace period.
    let status = server.wait_exit(WAIT).expect("server exits");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(names_in(server.root()), ["keep.bin"]);
    let kept = fs::read(server.root().join("keep.bin")).expect("read");
    assert!(
        kept == b"old",
        "keep.bin was replaced ({} bytes)",
        kept.len()
    );
}

/// The soft and hard "Max open files" limits of a running process, from /proc.
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let mut words = line["Max open files".len()..].split_whitespace();
    let soft = words.next().expect("soft").to_owned();
    let hard = words.next().expect("hard").to_owned();
    (soft, hard)
}

/// A shell's soft limit of open files is often 1,024; the server raises it to the hard
/// limit, and lowers --max-connections (saying so) when even that is short of what its
/// workers and sessions may need.
#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let server = TestServer::start_wrapped(
        "ulimit -Sn 64 && ulimit -Hn 300 && exec \"$0\" \"$@\"",
        &["--workers", "64"],
    );
    assert_eq!(
        open_files_limits(server.pid()),
        ("300".to_owned(), "300".to_owned())
    );
    let log = server.log();
    assert!(
        log.contains("open files limit raised from 64 to 300"),
        "{log}"
    );
    assert!(
        log.contains("the open files limit (300) allows about 1 sessions with 64 workers"),
        "{log}"
    );
    // And it serves.
    server.login().expect("NOOP", 200);
}

/// With `--grace 0` and no session at all, the log claimed that 64 sessions (the
/// workers, not one of them busy) were cut off (issue 11).
#[test]
fn a_shutdown_with_no_sessions_cuts_none_off() {
    let mut server = TestServer::start(&["--grace", "0"]);
    server.login().expect("QUIT", 221);
    server.signal("TERM");
    let status = server.wait_exit(WAIT).expect("server exits");
    assert!(status.success(), "exit status {status:?}");
    let log = server.log();
    assert!(!log.contains("cut off"), "{log}");
}
