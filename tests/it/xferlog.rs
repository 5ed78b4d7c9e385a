//! `--xferlog`: one line per file transfer, complete or not, in the wu-ftpd xferlog(5)
//! format, which a real analyser (Debian's webalizer, `-F ftp`) reads and counts.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{
    assert_same, eventually, hash_password, have, pattern, require, run_peer, Ftp, TestServer,
};

/// A line's fields after the date (`Tue Jun  3 09:05:01 2025` is five of them).
#[derive(Debug, PartialEq, Eq)]
struct Line {
    bytes: u64,
    path: String,
    kind: String,
    direction: String,
    mode: String,
    user: String,
    status: String,
}

fn parse(line: &str) -> Line {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 18, "{line:?}");
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    assert!(DAYS.contains(&f[0]), "{line:?}");
    assert_eq!(f[3].matches(':').count(), 2, "{line:?}");
    assert!(f[4].len() == 4 && f[4].parse::<u32>().is_ok(), "{line:?}");
    assert!(
        f[5].parse::<u64>().is_ok_and(|s| s >= 1),
        "transfer time: {line:?}"
    );
    assert_eq!(f[6], "127.0.0.1", "{line:?}");
    assert_eq!(f[10], "_", "{line:?}");
    assert_eq!(&f[14..17], ["ftp", "0", "*"], "{line:?}");
    Line {
        bytes: f[7].parse().expect("bytes"),
        path: f[8].to_owned(),
        kind: f[9].to_owned(),
        direction: f[11].to_owned(),
        mode: f[12].to_owned(),
        user: f[13].to_owned(),
        status: f[17].to_owned(),
    }
}

fn line(bytes: u64, path: &str, kind: &str, direction: &str, who: &str, status: &str) -> Line {
    let (mode, user) = who.split_once(' ').expect("mode and user");
    Line {
        bytes,
        path: path.to_owned(),
        kind: kind.to_owned(),
        direction: direction.to_owned(),
        mode: mode.to_owned(),
        user: user.to_owned(),
        status: status.to_owned(),
    }
}

/// Sums webalizer's history file (`month year hits files sites kbytes ...` per line):
/// hits, files, sites, kB.
fn webalizer_totals(out: &Path) -> [u64; 4] {
    let text = fs::read_to_string(out.join("webalizer.hist")).expect("webalizer.hist");
    let mut totals = [0u64; 4];
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<u64> = l
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
        assert!(cols.len() >= 6, "{l:?}");
        for (t, c) in totals.iter_mut().zip(&cols[2..6]) {
            *t += c;
        }
    }
    totals
}

#[test]
fn every_transfer_gets_a_line_and_webalizer_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("alice")).expect("mkdir");
    let users = dir.path().join("users.toml");
    fs::write(
        &users,
        format!(
            "[[user]]\nname = \"alice\"\npassword = \"{}\"\nhome = \"/alice\"\n\
             permissions = [\"read\", \"write\"]\n",
            hash_password("alice-pw")
        ),
    )
    .expect("write users");
    let log = dir.path().join("xferlog");
    let (users_arg, log_arg) = (
        users.to_string_lossy().into_owned(),
        log.to_string_lossy().into_owned(),
    );
    let server = TestServer::start_in(dir, root, &["--users", &users_arg, "--xferlog", &log_arg]);

    let a = pattern(10_240, 1);
    let spaced = pattern(2_048, 2);
    let mut ftp = Ftp::connect(server.addr);
    ftp.expect("USER anonymous", 331);
    ftp.expect("PASS tester@example.com", 230);
    ftp.expect("TYPE I", 200);
    ftp.stor("a.bin", &a);
    ftp.stor("with space.bin", &spaced);
    assert_same(&ftp.retr("a.bin"), &a, "a.bin");
    assert_same(&ftp.retr("with space.bin"), &spaced, "with space.bin");
    ftp.expect("TYPE A", 200);
    assert_same(&ftp.retr("a.bin"), &a, "a.bin in TYPE A");
    ftp.expect("TYPE I", 200);
    // Not transfers of files: no line.
    assert!(ftp.listing("LIST").contains("a.bin"));
    ftp.expect("RETR missing.bin", 550);
    // An upload stopped by ABOR after 4096 bytes: an incomplete line.
    let mut up = ftp.epsv();
    ftp.expect("STOR stopped.bin", 150);
    std::io::Write::write_all(&mut up, &a[..4096]).expect("part");
    std::thread::sleep(Duration::from_millis(500));
    ftp.send_raw(b"ABOR\r\n");
    ftp.expect_reply(426);
    ftp.expect_reply(226);
    drop(up);
    ftp.expect("QUIT", 221);

    let mut alice = Ftp::connect(server.addr);
    alice.expect("USER alice", 331);
    alice.expect("PASS alice-pw", 230);
    alice.expect("TYPE I", 200);
    alice.stor("mine.bin", &a[..1024]);
    alice.expect("QUIT", 221);

    eventually("seven lines in the transfer log", || {
        fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 7)
    });
    let text = fs::read_to_string(&log).expect("read xferlog");
    let lines: Vec<Line> = text.lines().map(parse).collect();
    let anon = "a tester@example.com";
    assert_eq!(
        lines,
        [
            line(10_240, "/a.bin", "b", "i", anon, "c"),
            line(2_048, "/with_space.bin", "b", "i", anon, "c"),
            line(10_240, "/a.bin", "b", "o", anon, "c"),
            line(2_048, "/with_space.bin", "b", "o", anon, "c"),
            line(10_240, "/a.bin", "a", "o", anon, "c"),
            line(4_096, "/stopped.bin", "b", "i", anon, "i"),
            line(1_024, "/mine.bin", "b", "i", "r alice", "c"),
        ]
    );

    // (`webalizer -V` prints its version but exits 1: look for the program instead.)
    let available = have("sh", &["-c", "command -v webalizer"]);
    if !require(available, "webalizer (apt-get install webalizer)") {
        return;
    }
    let out = server.dir.path().join("webalizer");
    fs::create_dir_all(&out).expect("mkdir");
    let mut cmd = Command::new("webalizer");
    cmd.args([
        "-F",
        "ftp",
        "-Q",
        "-n",
        "localhost",
        "-c",
        "/dev/null",
        "-o",
    ])
    .arg(&out)
    .arg(&log);
    let run = run_peer(cmd);
    assert!(run.status.success(), "webalizer: {run:?}");
    // Hits: every line; files: the complete ones; one site; 39,936 bytes = 39 kB.
    assert_eq!(webalizer_totals(&out), [7, 6, 1, 39]);
}

#[test]
fn a_transfer_log_that_cannot_be_opened_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_ftp-server"))
        .args([
            "--port",
            "0",
            "--xferlog",
            "/nonexistent-dir/xferlog",
            "--root",
        ])
        .arg(dir.path())
        .output()
        .expect("run ftp-server");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "it must not say it listens");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the transfer log /nonexistent-dir/xferlog"),
        "{err}"
    );
}
