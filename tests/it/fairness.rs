//! Long transfers give way (issue 12): when every worker is in a transfer, a ready
//! command waits about one slice of one of them, not the whole transfer; a client that
//! never makes its data connection holds no worker while the server waits for it; and
//! the transfers that gave way go on to their end, byte-exact.

use std::fs;
use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::*;

/// How long the third client may take for all it does, against the transfers' data
/// timeout of 120 s: a session answered only after a transfer ends would take that
/// long. The bound the server keeps is about half a second per command; this is
/// generous for a busy machine.
const ANSWERED_WITHIN: Duration = Duration::from_secs(20);

/// A download larger than the loopback socket buffers can hold, so a client that
/// does not read keeps the transfer under way.
const LARGE: usize = 48 << 20;

fn sha(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// A third client, served while both workers' sessions are in transfers: greeted,
/// logged in, listed and sent a small file, each reply in time.
fn third_client_is_served(server: &TestServer, small: &[u8]) -> Duration {
    let began = Instant::now();
    let mut ftp = Ftp::connect(server.addr);
    ftp.login();
    ftp.expect("NOOP", 200);
    let listing = ftp.listing("NLST small.bin");
    assert_eq!(listing, "small.bin\r\n");
    assert_eq!(ftp.retr("small.bin"), small);
    ftp.expect("QUIT", 221);
    began.elapsed()
}

#[test]
fn two_workers_in_slow_transfers_leave_room_for_a_third_client() {
    let server = TestServer::start(&["--workers", "2", "--data-timeout", "120"]);
    let large = pattern(LARGE, 21);
    let small = pattern(10_000, 22);
    fs::write(server.root().join("large.bin"), &large).expect("write");
    fs::write(server.root().join("small.bin"), &small).expect("write");

    // A download whose client reads nothing for now.
    let mut reader = server.login();
    let mut download = reader.epsv();
    reader.expect("RETR large.bin", 150);
    // An upload whose client sends a part, then pauses.
    let mut writer = server.login();
    let mut upload = writer.epsv();
    writer.expect("STOR up.bin", 150);
    upload.write_all(&large[..1 << 20]).expect("send");

    let took = third_client_is_served(&server, &small);
    assert!(
        took < ANSWERED_WITHIN,
        "the third client took {took:?} while two transfers ran"
    );

    // Both transfers went on where they were, to their end.
    upload.write_all(&large[1 << 20..]).expect("send");
    drop(upload);
    writer.expect_reply(226);
    let mut got = Vec::with_capacity(LARGE);
    download.read_to_end(&mut got).expect("read");
    drop(download);
    reader.expect_reply(226);
    assert_eq!(sha(&got), sha(&large), "the download");
    let stored = fs::read(server.root().join("up.bin")).expect("read upload");
    assert_eq!(sha(&stored), sha(&large), "the upload");
    reader.expect("QUIT", 221);
    writer.expect("QUIT", 221);
}

#[test]
fn a_client_that_never_connects_its_data_holds_no_worker() {
    let server = TestServer::start(&["--workers", "1", "--data-timeout", "120"]);
    let small = pattern(10_000, 23);
    fs::write(server.root().join("small.bin"), &small).expect("write");
    // PASV, RETR, and no data connection (yet).
    let mut late = server.login();
    let port = late.epsv_port();
    late.expect("RETR small.bin", 150);

    let took = third_client_is_served(&server, &small);
    assert!(took < ANSWERED_WITHIN, "a newcomer took {took:?}");

    // The data connection comes at last: the waiting transfer takes it.
    let mut data = late.data_to(port);
    let mut got = Vec::new();
    data.read_to_end(&mut got).expect("read");
    drop(data);
    late.expect_reply(226);
    assert_eq!(got, small);
    late.expect("QUIT", 221);
}

#[test]
fn a_transfer_longer_than_the_idle_timeout_is_not_idleness() {
    let server = TestServer::start(&["--idle-timeout", "2"]);
    let bytes = pattern(LARGE, 24);
    fs::write(server.root().join("large.bin"), &bytes).expect("write");
    let mut ftp = server.login();
    let mut data = ftp.epsv();
    ftp.expect("RETR large.bin", 150);
    // Read slowly, for longer than the idle timeout.
    let began = Instant::now();
    let mut got = Vec::with_capacity(LARGE);
    let mut buf = vec![0u8; 1 << 20];
    while began.elapsed() < Duration::from_secs(4) {
        let n = data.read(&mut buf).expect("read");
        got.extend_from_slice(&buf[..n]);
        thread::sleep(Duration::from_millis(100));
    }
    data.read_to_end(&mut got).expect("read");
    drop(data);
    ftp.expect_reply(226);
    assert_eq!(sha(&got), sha(&bytes));
    // The session is not idle: the transfer just ended.
    ftp.expect("NOOP", 200);
    ftp.expect("QUIT", 221);
}
