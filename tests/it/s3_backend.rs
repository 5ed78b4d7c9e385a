//! The S3 backend behind a real `ftp-server` on a real Garage: curl and lftp move
//! files byte-exact and list them, small RETRs share one store connection and are
//! one GET each, writes the store refuses as busy are sent again (and a store that
//! stays busy fails the upload, leaving nothing), a directory of 10,000 objects lists
//! whole, a cut upload leaves neither an object nor a multipart upload, a listing the
//! store stops answering midway ends `451` (not `226`), and wrong credentials stop
//! the server at start with a clear error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use simple_ftp::storage::s3::client::S3Error;

use crate::common::{assert_same, eventually, have, pattern, require, run_peer, Ftp, TestServer};
use crate::garage::{CountingRelay, Garage, Seen};

/// A server on `garage`'s bucket under `prefix`.
fn server_on(garage: &Garage, prefix: &str) -> TestServer {
    let config = garage.server_config(prefix, "");
    TestServer::start(&["--config", &config.to_string_lossy()])
}

#[test]
fn curl_and_lftp_upload_download_and_list_through_s3() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let server = server_on(&garage, "peers");
    let local = server.dir.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    // Past one part, so the upload is a multipart one.
    let big = pattern(9 * 1024 * 1024 + 13, 1);
    std::fs::write(local.join("big.bin"), &big).expect("write");
    let base = format!("ftp://{}", server.addr);
    if require(have("curl", &["--version"]), "curl") {
        let mut put = Command::new("curl");
        put.args(["-sS", "--ftp-create-dirs", "-T"])
            .arg(local.join("big.bin"))
            .arg(format!("{base}/c/big.bin"));
        let run = run_peer(put);
        assert!(run.status.success(), "curl -T: {run:?}\n{}", server.log());
        let mut get = Command::new("curl");
        get.args(["-sS", "-o"])
            .arg(local.join("back.bin"))
            .arg(format!("{base}/c/big.bin"));
        let run = run_peer(get);
        assert!(run.status.success(), "curl get: {run:?}");
        assert_same(
            &std::fs::read(local.join("back.bin")).expect("read"),
            &big,
            "curl download",
        );
        let mut list = Command::new("curl");
        list.args(["-sS", "--list-only"]).arg(format!("{base}/c/"));
        let run = run_peer(list);
        assert_eq!(run.stdout.trim(), "big.bin", "{run:?}");
        // The object is really in the bucket, whole, under the prefix.
        let info = garage.client().head("peers/c/big.bin").expect("head");
        assert_eq!(info.map(|i| i.size), Some(big.len() as u64));
    }
    if require(have("lftp", &["--version"]), "lftp (apt-get install lftp)") {
        let small = pattern(70_000, 2);
        std::fs::write(local.join("small.bin"), &small).expect("write");
        let script = format!(
            "set ftp:passive-mode on; set net:max-retries 1; set net:timeout 20; \
             set cmd:fail-exit yes; set ftp:ssl-allow no; set xfer:clobber on; \
             open -u anonymous,lftp@ -p {} {}; lcd {}; mkdir l; cd l; put small.bin; \
             put big.bin; get small.bin -o small.back; get big.bin -o big.back; cls -1",
            server.addr.port(),
            server.addr.ip(),
            local.display()
        );
        let mut cmd = Command::new("lftp");
        cmd.arg("-c").arg(script).env("HOME", server.dir.path());
        let run = run_peer(cmd);
        assert!(run.status.success(), "lftp: {run:?}\n{}", server.log());
        assert_same(
            &std::fs::read(local.join("small.back")).expect("read"),
            &small,
            "lftp small",
        );
        assert_same(
            &std::fs::read(local.join("big.back")).expect("read"),
            &big,
            "lftp big",
        );
        let mut listed: Vec<&str> = run.stdout.lines().map(str::trim).collect();
        listed.sort_unstable();
        assert_eq!(listed, ["big.bin", "small.bin"], "{run:?}");
    }
}

#[test]
fn a_directory_of_ten_thousand_objects_lists_whole() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    const N: usize = 10_000;
    put_many(&garage, "many/d", N);
    let server = server_on(&garage, "many");
    let mut ftp = server.login();
    let text = ftp.listing("NLST d");
    let mut names: Vec<&str> = text.lines().map(|l| l.trim_start_matches("d/")).collect();
    names.sort_unstable();
    let want: Vec<String> = (0..N).map(|i| format!("f{i:05}")).collect();
    assert_eq!(names.len(), N);
    assert!(names.iter().zip(&want).all(|(a, b)| a == b));
    let mlsd = ftp.listing("MLSD d");
    assert_eq!(mlsd.lines().filter(|l| l.contains("type=file")).count(), N);
}

/// Small RETRs of one session through the S3 backend share the store connection:
/// each is a GET, and its connection goes back to the pool
/// (it was closed after every download). Counted at a relay in front of Garage:
/// twenty RETRs, at most 2 connections (the pool lets one go after 15 s idle).
#[test]
fn small_retrs_of_a_session_reuse_one_store_connection() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let relay = CountingRelay::to(&garage);
    let body = pattern(4096, 5);
    garage
        .client()
        .put("relay/pub/small.bin", &body)
        .expect("put");
    let config = garage.server_config_via(&relay.endpoint, "relay", "");
    let server = TestServer::start(&["--config", &config.to_string_lossy()]);
    let mut ftp = server.login();
    for _ in 0..20 {
        assert_same(&ftp.retr("pub/small.bin"), &body, "RETR");
    }
    assert!(
        relay.connections() <= 2,
        "{} store connections for 20 RETRs\n{}",
        relay.connections(),
        server.log()
    );
}

/// A server on `garage`'s bucket under `prefix`, reaching the store through `relay`.
fn server_via(garage: &Garage, relay: &CountingRelay, prefix: &str) -> TestServer {
    let config = garage.server_config_via(&relay.endpoint, prefix, "");
    TestServer::start(&["--config", &config.to_string_lossy()])
}

/// The requests of `kind` for `key` that reached the relay: (all, refused by it).
fn tries(relay: &CountingRelay, kind: &str, key: &str) -> (usize, usize) {
    let of: Vec<Seen> = relay
        .requests()
        .into_iter()
        .filter(|r| r.kind() == kind && r.key() == key)
        .collect();
    (of.len(), of.iter().filter(|r| r.refused).count())
}

/// An object's bytes, read straight from the store.
fn object(garage: &Garage, key: &str) -> Vec<u8> {
    let mut reader = garage.client().get(key, 0, None).expect("get");
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).expect("read object");
    bytes
}

/// Whether the store has no object at `key`.
fn absent(garage: &Garage, key: &str) -> bool {
    garage.client().head(key).expect("head").is_none()
}

/// A RETR is one request to the store: a GET, whose reply gives the size the `150`
/// names (it was a HeadObject, then a GET); after REST, one ranged GET. Counted at a
/// relay. The error paths answer as before: a directory (a marker, or only objects
/// under it) and a missing name `550`, REST at the end an empty download, past it `554`.
#[test]
fn a_small_retr_is_one_get_and_a_resumed_one_a_ranged_get() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let relay = CountingRelay::to(&garage);
    let body = pattern(4096, 6);
    let client = garage.client();
    client.put("one/pub/small.bin", &body).expect("put");
    client.put("one/pub/marked/", b"").expect("put marker");
    client.put("one/pub/implied/x", b"x").expect("put");
    let server = server_via(&garage, &relay, "one");
    let mut ftp = server.login();
    let before = relay.requests().len();
    for _ in 0..5 {
        let mut data = ftp.epsv();
        let r = ftp.expect("RETR pub/small.bin", 150);
        assert!(r.text.contains("(4096 bytes)"), "{r:?}");
        let mut got = Vec::new();
        data.read_to_end(&mut got).expect("read data");
        drop(data);
        ftp.expect_reply(226);
        assert_same(&got, &body, "RETR");
    }
    ftp.expect("REST 1000", 350);
    assert_same(
        &ftp.retr("pub/small.bin"),
        &body[1000..],
        "REST 1000 + RETR",
    );
    let seen: Vec<(&str, String, Option<String>)> = relay.requests()[before..]
        .iter()
        .map(|r| {
            (
                r.kind(),
                r.key().to_owned(),
                r.header("range").map(str::to_owned),
            )
        })
        .collect();
    let get = |range: Option<&str>| {
        (
            "GetObject",
            "one/pub/small.bin".to_owned(),
            range.map(str::to_owned),
        )
    };
    let mut want = vec![get(None); 5];
    want.push(get(Some("bytes=1000-")));
    assert_eq!(seen, want, "{}", server.log());

    ftp.expect("REST 4096", 350);
    assert!(ftp.retr("pub/small.bin").is_empty(), "REST at the end");
    let _data = ftp.epsv();
    ftp.expect("REST 4097", 350);
    ftp.expect("RETR pub/small.bin", 554);
    for name in ["pub/marked", "pub/implied", "pub/missing", "/"] {
        let _data = ftp.epsv();
        ftp.expect(&format!("RETR {name}"), 550);
    }
    ftp.expect("SIZE pub/small.bin", 213);
}

/// A store that answers `503 Slow Down` to a few writes, as a single busy Garage node
/// does, slows an upload down but does not fail it: the backend sends each write
/// again after a short wait. The relay answers the first N requests of a kind itself,
/// then passes them on; exactly N + 1 reach it, and what is stored is byte-exact.
#[test]
fn writes_the_store_refuses_as_busy_are_sent_again() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let relay = CountingRelay::to(&garage);
    let server = server_via(&garage, &relay, "busy");
    let mut ftp = server.login();

    // One PUT (less than a part), refused twice.
    relay.slow_down("PutObject", 2);
    let small = pattern(100_000, 8);
    ftp.stor("small.bin", &small);
    assert_same(&object(&garage, "busy/small.bin"), &small, "single PUT");
    assert_eq!(tries(&relay, "PutObject", "busy/small.bin"), (3, 2));

    // A multipart upload: its start, one of its two parts and its end, refused once each.
    for kind in [
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
    ] {
        relay.slow_down(kind, 1);
    }
    let big = pattern((9 << 20) + 5, 9);
    ftp.stor("big.bin", &big);
    assert_same(&object(&garage, "busy/big.bin"), &big, "multipart upload");
    assert_eq!(
        tries(&relay, "CreateMultipartUpload", "busy/big.bin"),
        (2, 1)
    );
    assert_eq!(tries(&relay, "UploadPart", "busy/big.bin"), (3, 1));
    assert_eq!(
        tries(&relay, "CompleteMultipartUpload", "busy/big.bin"),
        (2, 1)
    );
    assert!(garage
        .client()
        .list_multipart("busy/")
        .expect("list")
        .is_empty());

    // MKD's marker, a rename's copy and delete, a DELE.
    relay.slow_down("PutObject", 1);
    ftp.expect("MKD d", 257);
    assert_eq!(tries(&relay, "PutObject", "busy/d/"), (2, 1));
    relay.slow_down("CopyObject", 1);
    relay.slow_down("DeleteObject", 1);
    ftp.expect("RNFR small.bin", 350);
    ftp.expect("RNTO d/moved.bin", 250);
    assert_eq!(tries(&relay, "CopyObject", "busy/d/moved.bin"), (2, 1));
    assert_eq!(tries(&relay, "DeleteObject", "busy/small.bin"), (2, 1));
    assert_same(&object(&garage, "busy/d/moved.bin"), &small, "renamed");
    assert!(absent(&garage, "busy/small.bin"));
    relay.slow_down("DeleteObject", 2);
    ftp.expect("DELE d/moved.bin", 250);
    assert_eq!(tries(&relay, "DeleteObject", "busy/d/moved.bin"), (3, 2));
    assert!(absent(&garage, "busy/d/moved.bin"));
}

/// A store that answers `503` to every write fails the STOR with an error reply after
/// the few retries (1 + 3 attempts reach the relay), rather than hang, and leaves
/// nothing: no object, and a multipart upload whose part never went in is aborted.
#[test]
fn a_store_that_stays_busy_fails_the_upload_and_leaves_nothing() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let relay = CountingRelay::to(&garage);
    let server = server_via(&garage, &relay, "stuck");
    let mut ftp = server.login();

    relay.slow_down("PutObject", usize::MAX);
    let mut data = ftp.epsv();
    ftp.expect("STOR small.bin", 150);
    data.write_all(&pattern(100_000, 3)).expect("write");
    drop(data);
    let r = ftp.reply();
    assert!((400..600).contains(&r.code), "{r:?}\n{}", server.log());
    assert_eq!(tries(&relay, "PutObject", "stuck/small.bin"), (4, 4));
    assert!(absent(&garage, "stuck/small.bin"));

    relay.slow_down("UploadPart", usize::MAX);
    let mut data = ftp.epsv();
    ftp.expect("STOR big.bin", 150);
    // The server stops reading when the first part fails: what is not taken is moot.
    let _ = data.write_all(&pattern((9 << 20) + 5, 4));
    drop(data);
    let r = ftp.reply();
    assert!((400..600).contains(&r.code), "{r:?}\n{}", server.log());
    assert_eq!(tries(&relay, "UploadPart", "stuck/big.bin"), (4, 4));
    let client = garage.client();
    eventually("the multipart upload aborted", || {
        client.list_multipart("stuck/").expect("list").is_empty()
    });
    assert!(client.head("stuck/big.bin").expect("head").is_none());
    ftp.expect("SIZE big.bin", 550);
    ftp.expect("NOOP", 200);
}

/// Puts `n` one-byte objects `PREFIX/f00000`... straight in the bucket (quicker than
/// FTP), by a few threads at once. A `503` is tried again, as S3 clients do: a single
/// Garage node on sqlite answers so when its database is busy ("database is locked").
fn put_many(garage: &Garage, prefix: &str, n: usize) {
    std::thread::scope(|scope| {
        for t in 0..8 {
            let client = garage.client();
            scope.spawn(move || {
                for i in (t..n).step_by(8) {
                    let key = format!("{prefix}/f{i:05}");
                    let mut tries = 0;
                    loop {
                        match client.put(&key, b"x") {
                            Ok(()) => break,
                            Err(S3Error::Unavailable { status: 503, .. }) if tries < 20 => {
                                tries += 1;
                                std::thread::sleep(Duration::from_millis(50 * tries));
                            }
                            Err(e) => panic!("put {key}: {e}"),
                        }
                    }
                }
            });
        }
    });
}

/// A listing whose later page cannot be fetched ends `451`, never `226`: the client
/// is not told that a short listing is whole. Deterministic: before its `150` the
/// server reads the pages its first batch of up to 1,024 entries (sorted) needs, two
/// of 1,000 keys, and the next only once the data connection is open; the store is
/// stopped before the client makes that connection. 3,500 keys: four pages, more
/// than even a server that reads a page ahead fetches before the `150`.
#[test]
fn a_listing_whose_later_page_fails_ends_451_not_226() {
    let Some(mut garage) = Garage::start_or_skip() else {
        return;
    };
    const N: usize = 3_500;
    put_many(&garage, "cutlist/d", N);
    let server = server_on(&garage, "cutlist");
    let mut ftp = server.login();
    let port = ftp.epsv_port();
    ftp.expect("NLST d", 150);
    garage.stop();
    let mut data = ftp.data_to(port);
    let mut text = String::new();
    // The data connection ends either way; what it carried is checked below.
    let _ = data.read_to_string(&mut text);
    drop(data);
    let done = ftp.reply();
    assert_eq!(done.code, 451, "{done:?}\n{}", server.log());
    let names: Vec<&str> = text.lines().collect();
    assert!(names.len() < N, "{} names: a whole listing?", names.len());
    assert!(
        names.iter().all(|n| n
            .strip_prefix("d/f")
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < N)),
        "{text:?}"
    );
    // The session goes on: the next command gets its answer.
    ftp.expect("NOOP", 200);
}

#[test]
fn a_cut_upload_leaves_no_object_and_no_multipart_upload() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let server = server_on(&garage, "cut");
    let mut ftp: Ftp = server.login();
    let mut data: TcpStream = ftp.epsv();
    ftp.expect("STOR cut.bin", 150);
    // Two parts' worth and more: a multipart upload is under way when it is cut.
    data.write_all(&pattern(17 * 1024 * 1024, 4))
        .expect("write");
    let client = garage.client();
    eventually("a multipart upload under way", || {
        !client.list_multipart("cut/").expect("list").is_empty()
    });
    socket2::SockRef::from(&data)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(data);
    let r = ftp.reply();
    assert!(r.code == 426 || r.code == 451, "{r:?}");
    eventually("the multipart upload aborted", || {
        client.list_multipart("cut/").expect("list").is_empty()
    });
    assert!(client.head("cut/cut.bin").expect("head").is_none());
    ftp.expect("SIZE cut.bin", 550);
}

#[test]
fn wrong_credentials_stop_the_server_at_start_with_a_clear_error() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let config = garage.dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "storage = \"s3://{}/x\"\ns3-endpoint = \"{}\"\ns3-region = \"garage\"\n\
             s3-access-key-id = \"{}\"\ns3-secret-access-key = \"{}\"\n",
            garage.bucket,
            garage.endpoint,
            garage.key_id,
            "0".repeat(64)
        ),
    )
    .expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-server"));
    cmd.args(["--port", "0", "--root"])
        .arg(garage.dir.path().join("unused-root"))
        .arg("--config")
        .arg(&config);
    let run = run_peer(cmd);
    assert!(!run.status.success(), "{run:?}");
    assert!(run.stderr.contains("access denied"), "{}", run.stderr);
    assert!(!run.stdout.contains("listening on"), "{run:?}");
}
