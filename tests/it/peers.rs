//! curl against our server: download (EPSV and active EPRT), upload, listings, resume
//! of both downloads and uploads with `-C -`, `-I` (SIZE and MDTM), directories made
//! on the way (`--ftp-create-dirs`) and quoted commands (`-Q`). Byte-exact throughout.
//!
//! Python's ftplib, lftp and basic-ftp have files of their own; IPv6 is in `ipv6.rs`.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::common::{
    assert_same, have, pattern, require, run_peer, version_line, PeerRun, TestServer,
};

/// Whether curl is there; prints its version for the test log.
fn curl_or_skip() -> bool {
    let ok = require(have("curl", &["--version"]), "curl");
    if ok {
        eprintln!("peer: {}", version_line("curl", &["--version"]));
    }
    ok
}

/// Runs curl with `-sS` and a time limit, then the given arguments.
fn curl(args: &[&str]) -> PeerRun {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "120"]).args(args);
    run_peer(cmd)
}

#[track_caller]
fn assert_ok(run: &PeerRun, server: &TestServer) {
    assert!(
        run.status.success(),
        "curl failed: {run:?}\nserver log:\n{}",
        server.log()
    );
}

#[test]
fn curl_downloads_uploads_and_lists_byte_exact() {
    if !curl_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let original = pattern(5 << 20, 11);
    fs::write(server.root().join("down.bin"), &original).expect("write");
    let work = server.dir.path();
    let url = format!("ftp://{}/", server.addr);

    for (name, extra) in [
        ("epsv.bin", vec![]),
        ("active.bin", vec!["--ftp-port", "127.0.0.1"]),
    ] {
        let out = work.join(name);
        let status = Command::new("curl")
            .args(["-sS", "--max-time", "60"])
            .args(&extra)
            .arg(format!("{url}down.bin"))
            .arg("-o")
            .arg(&out)
            .status()
            .expect("curl");
        assert!(status.success(), "curl download {extra:?}");
        assert_same(&fs::read(&out).expect("read"), &original, name);
    }

    let upload = pattern(3 << 20, 12);
    let local = work.join("up.bin");
    fs::write(&local, &upload).expect("write");
    let status = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-T"])
        .arg(&local)
        .arg(&url)
        .status()
        .expect("curl");
    assert!(status.success(), "curl upload");
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &upload,
        "upload",
    );

    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--list-only"])
        .arg(&url)
        .stderr(Stdio::inherit())
        .output()
        .expect("curl");
    assert!(out.status.success());
    let names = String::from_utf8(out.stdout).expect("utf8");
    // curl lists in ASCII mode and turns CRLF into the local line ending.
    assert_eq!(names.lines().collect::<Vec<_>>(), ["down.bin", "up.bin"]);

    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .arg(format!("{url}missing.txt"))
        .output()
        .expect("curl");
    assert_eq!(out.status.code(), Some(78), "curl: remote file not found");
}

#[test]
fn curl_resumes_a_partial_download_with_continue_at() {
    if !curl_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let whole = pattern((3 << 20) + 7, 41);
    fs::write(server.root().join("resume.bin"), &whole).expect("write");
    let local = server.dir.path().join("resume.bin");
    let url = format!("ftp://{}/resume.bin", server.addr);

    // A download that stopped after 1,000,003 bytes: `-C -` asks SIZE of the local
    // file's length and sends REST before RETR.
    fs::write(&local, &whole[..1_000_003]).expect("write part");
    let run = curl(&["-C", "-", "-o", local.to_str().expect("utf8"), &url]);
    assert_ok(&run, &server);
    assert_same(&fs::read(&local).expect("read"), &whole, "resumed download");
    assert!(server.log().contains(": REST 1000003"), "{}", server.log());

    // Resuming a file that is already complete downloads nothing and succeeds.
    let run = curl(&["-C", "-", "-o", local.to_str().expect("utf8"), &url]);
    assert_ok(&run, &server);
    assert_same(&fs::read(&local).expect("read"), &whole, "complete file");

    // An explicit offset past the end is refused by the server (554), not mangled.
    let run = curl(&["-C", "99999999", "-o", "/dev/null", &url]);
    assert!(!run.status.success(), "{run:?}");
    assert_same(&fs::read(&local).expect("read"), &whole, "untouched");
}

#[test]
fn curl_resumes_a_partial_upload_with_continue_at() {
    if !curl_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let whole = pattern((3 << 20) + 11, 42);
    let local = server.dir.path().join("whole.bin");
    fs::write(&local, &whole).expect("write");
    // An upload that stopped after 1,234,567 bytes.
    fs::write(server.root().join("up.bin"), &whole[..1_234_567]).expect("write part");
    let url = format!("ftp://{}/up.bin", server.addr);
    let run = curl(&["-C", "-", "-T", local.to_str().expect("utf8"), &url]);
    assert_ok(&run, &server);
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &whole,
        "resumed upload",
    );
    // curl asks SIZE, skips that much of the local file and appends the rest.
    let log = server.log();
    assert!(
        log.contains(": SIZE up.bin") && log.contains(": APPE up.bin"),
        "{log}"
    );
    let appended = format!("APPE /up.bin {} bytes", whole.len() - 1_234_567);
    assert!(log.contains(&appended), "{log}");

    // Resuming an upload that is not there yet starts it from the beginning.
    let url = format!("ftp://{}/fresh.bin", server.addr);
    let run = curl(&["-C", "-", "-T", local.to_str().expect("utf8"), &url]);
    assert_ok(&run, &server);
    assert_same(
        &fs::read(server.root().join("fresh.bin")).expect("read"),
        &whole,
        "upload resumed from nothing",
    );
}

#[test]
fn curl_lists_directories_and_heads_size_and_date() {
    if !curl_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let sub = server.root().join("sub dir");
    fs::create_dir_all(sub.join("inner")).expect("mkdir");
    let bytes = pattern(123_456, 43);
    fs::write(sub.join("f.bin"), &bytes).expect("write");
    // 2021-03-04 05:06:07 UTC, so the date curl shows can be checked exactly.
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_834_367);
    fs::File::options()
        .write(true)
        .open(sub.join("f.bin"))
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
    let base = format!("ftp://{}/sub%20dir/", server.addr);

    // LIST: ls -l style lines, a file and a directory.
    let run = curl(&[&base]);
    assert_ok(&run, &server);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines[0].starts_with('-') && lines[0].contains(" 123456 ") && lines[0].ends_with(" f.bin"),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with('d') && lines[1].ends_with(" inner"),
        "{}",
        run.stdout
    );
    // NLST: names only.
    let run = curl(&["--list-only", &base]);
    assert_ok(&run, &server);
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), ["f.bin", "inner"]);
    // -I: SIZE and MDTM, shown as headers, without a download.
    let run = curl(&["-I", &format!("{base}f.bin")]);
    assert_ok(&run, &server);
    assert!(
        run.stdout.contains("Content-Length: 123456"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Last-Modified: Thu, 04 Mar 2021 05:06:07 GMT"),
        "{}",
        run.stdout
    );
    // Each of curl's ways to reach a nested file downloads the same bytes.
    for method in ["multicwd", "singlecwd", "nocwd"] {
        let run_out = server.dir.path().join(format!("{method}.bin"));
        let run = curl(&[
            "--ftp-method",
            method,
            "-o",
            run_out.to_str().expect("utf8"),
            &format!("{base}f.bin"),
        ]);
        assert_ok(&run, &server);
        assert_same(&fs::read(&run_out).expect("read"), &bytes, method);
    }
}

#[test]
fn curl_creates_directories_on_upload_and_runs_quoted_commands() {
    if !curl_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let bytes = pattern(200_000, 44);
    let local = server.dir.path().join("local.bin");
    fs::write(&local, &bytes).expect("write");
    let url = format!("ftp://{}/", server.addr);

    // --ftp-create-dirs: MKD and CWD for each missing directory, then STOR.
    let run = curl(&[
        "--ftp-create-dirs",
        "-T",
        local.to_str().expect("utf8"),
        &format!("{url}new/deeper/put.bin"),
    ]);
    assert_ok(&run, &server);
    assert_same(
        &fs::read(server.root().join("new/deeper/put.bin")).expect("read"),
        &bytes,
        "upload into new directories",
    );

    // -Q: commands before the transfer; a leading '-' runs one after it.
    fs::write(server.root().join("gone.txt"), "x").expect("write");
    let run = curl(&[
        "-Q",
        "MKD made",
        "-Q",
        "RNFR new/deeper/put.bin",
        "-Q",
        "RNTO made/moved.bin",
        "-Q",
        "-DELE gone.txt",
        "--list-only",
        &url,
    ]);
    assert_ok(&run, &server);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["gone.txt", "made", "new"],
        "the listing ran between the commands"
    );
    assert!(!server.root().join("gone.txt").exists());
    assert!(!server.root().join("new/deeper/put.bin").exists());
    assert_same(
        &fs::read(server.root().join("made/moved.bin")).expect("read"),
        &bytes,
        "renamed file",
    );
    // A quoted command the server refuses fails the whole run (curl exit 21).
    let run = curl(&["-Q", "RMD no-such-dir", &url]);
    assert_eq!(run.status.code(), Some(21), "{run:?}");
}
