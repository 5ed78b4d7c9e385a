//! What hostile clients tried: HASH as a CPU hog, replies that leak host paths or
//! system error texts, unknown commands that leave no trace in the log.

use std::fs::{self, File};
use std::thread;

use crate::common::*;

/// A sparse file far too large to hash within any test's patience: a HASH of it is
/// still running when the test acts, whatever the machine's speed.
fn huge_sparse(server: &TestServer, name: &str) {
    File::create(server.root().join(name))
        .and_then(|f| f.set_len(64 << 30))
        .expect("sparse file");
}

#[test]
fn abor_stops_a_hash_of_a_huge_file() {
    let server = TestServer::start(&[]);
    huge_sparse(&server, "huge.bin");
    let mut ftp = server.login();
    ftp.send_raw(b"HASH huge.bin\r\nABOR\r\n");
    let r = ftp.expect_reply(426);
    assert!(r.text.contains("ABOR"), "{r:?}");
    ftp.expect_reply(226);
    // The session goes on, and HASH works again.
    fs::write(server.root().join("small.txt"), "abc").expect("write");
    let r = ftp.expect("HASH small.txt", 213);
    assert!(
        r.text
            .contains(&format!("0-3 {} small.txt", sha256(b"abc"))),
        "{r:?}"
    );
}

#[test]
fn hashes_at_once_are_bounded_by_the_cores() {
    let slots = thread::available_parallelism().map_or(2, |n| n.get());
    let server = TestServer::start(&["--lock-wait", "1"]);
    let mut hashing = Vec::new();
    let mut probe = server.login();
    for i in 0..slots {
        let name = format!("huge{i}.bin");
        huge_sparse(&server, &name);
        let mut ftp = server.login();
        ftp.send_raw(format!("HASH {name}\r\n").as_bytes());
        // A HASH holds the file's read lock while it runs: renaming the file onto
        // itself (which needs the write lock, and changes nothing when it gets it)
        // is refused with 450 once this HASH has its slot.
        eventually(&format!("HASH {name} running"), || {
            probe.expect(&format!("RNFR {name}"), 350);
            probe.cmd(&format!("RNTO {name}")).code == 450
        });
        hashing.push(ftp);
    }
    fs::write(server.root().join("small.txt"), "abc").expect("write");
    let r = probe.expect("HASH small.txt", 450);
    assert!(r.text.contains("try again"), "{r:?}");
    for ftp in &mut hashing {
        ftp.send_raw(b"ABOR\r\n");
    }
    for ftp in &mut hashing {
        ftp.expect_reply(426);
        ftp.expect_reply(226);
    }
    // The slots are free again.
    probe.expect("HASH small.txt", 213);
}

#[test]
fn failed_file_actions_name_no_host_path_and_no_os_error() {
    let server = TestServer::start(&[]);
    let root = server.root().display().to_string();
    let mut ftp = server.login();
    let long = "n".repeat(300);
    let _data = ftp.epsv();
    let r = ftp.expect(&format!("STOR {long}"), 553);
    assert!(r.text.contains("too long"), "{r:?}");
    for r in [
        r,
        ftp.expect(&format!("MKD {long}"), 553),
        ftp.expect(&format!("SIZE {long}"), 553),
        ftp.expect("RETR missing.txt", 550),
    ] {
        assert!(!r.text.contains(&root), "{r:?}");
        assert!(!r.text.contains("os error"), "{r:?}");
    }
    // The details are in the log.
    eventually("the log names the failure", || {
        server.log().contains("STOR failed")
    });
}

#[test]
fn unknown_commands_are_logged() {
    let server = TestServer::start(&[]);
    let mut ftp = server.login();
    ftp.expect("XYZZY plugh", 500);
    eventually("the log names the unknown command", || {
        server.log().contains("XYZZY")
    });
}
