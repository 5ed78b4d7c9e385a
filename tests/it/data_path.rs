//! The data path against real clients' habits: the order and the writes of the
//! replies around a transfer, passive ports that are never connected to, and the
//! end of TLS data connections (issue 11).

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{assert_same, have, pattern, require, run_peer, TestServer};

/// aria2 reads the `150`, then waits for the `226` with a fresh read: a `226` that
/// came in the same write as the `150` was never seen, and every file of 64 KiB or
/// less took aria2's 60 s timeout (issue 11, item 5). With `--timeout=20` a lost
/// `226` fails the download instead of only slowing it down.
#[test]
fn aria2_downloads_small_files_without_waiting_for_a_lost_226() {
    if !require(have("aria2c", &["--version"]), "aria2c") {
        return;
    }
    let server = TestServer::start(&[]);
    let files = [
        ("one.bin", pattern(1 << 10, 51)),
        ("sixty-four.bin", pattern(64 << 10, 52)),
    ];
    for (name, bytes) in &files {
        fs::write(server.root().join(name), bytes).expect("write");
    }
    let out = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in &files {
        let mut aria = Command::new("aria2c");
        aria.args([
            "--timeout=20",
            "--max-tries=1",
            "--allow-overwrite=true",
            "--console-log-level=warn",
            "--summary-interval=0",
            "--dir",
        ])
        .arg(out.path())
        .args(["--out", name])
        .arg(format!("ftp://{}/{name}", server.addr));
        let started = Instant::now();
        let run = run_peer(aria);
        let took = started.elapsed();
        assert!(
            run.status.success(),
            "aria2c {name}: {}{}\nserver log:\n{}",
            run.stdout,
            run.stderr,
            server.log()
        );
        assert_same(&fs::read(out.path().join(name)).expect("read"), bytes, name);
        // Generous: a lost 226 costs aria2 its whole timeout (20 s here).
        assert!(
            took < Duration::from_secs(15),
            "aria2c {name} took {took:?}"
        );
    }
}
