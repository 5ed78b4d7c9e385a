//! MFMT (draft-somers-ftp-mfxx): a client sets a file's modification time, MDTM, MLST,
//! MLSD and the file system then show it; the refusals (bad time 501, missing file or
//! not a plain file 550, no write permission 550, a link out 550, no login 530); and
//! lftp's `mirror -R`, which sends MFMT when FEAT lists it, keeps the local files' times.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{
    assert_same_tree, have, local_dir, require, run_peer, version_line, write_sample_tree, Ftp,
    PeerRun, TestServer,
};

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn mfmt_sets_the_time_that_mdtm_mlst_and_the_file_system_show() {
    let server = TestServer::start(&[]);
    let root = server.root();
    fs::create_dir(root.join("sub dir")).expect("mkdir");
    let mut ftp = server.login();
    let feat = ftp.expect("FEAT", 211);
    assert!(feat.text.lines().any(|l| l.trim() == "MFMT"), "{feat:?}");
    ftp.stor("sub dir/a file.txt", b"contents");

    // 2001-02-03T04:05:06Z
    let r = ftp.expect("MFMT 20010203040506 sub dir/a file.txt", 213);
    assert_eq!(r.text, "Modify=20010203040506; sub dir/a file.txt");
    assert_eq!(mtime(&root.join("sub dir/a file.txt")), at(981_173_106));
    let r = ftp.expect("MDTM sub dir/a file.txt", 213);
    assert_eq!(r.text, "20010203040506");
    let r = ftp.expect("MLST /sub dir/a file.txt", 250);
    assert!(r.text.contains(";modify=20010203040506;"), "{r:?}");
    let listing = ftp.listing("MLSD sub dir");
    assert!(listing.contains(";modify=20010203040506;"), "{listing}");
    // The contents are untouched.
    assert_eq!(ftp.retr("sub dir/a file.txt"), b"contents");

    // Relative to the current directory, with a fraction of a second; before 1970.
    ftp.expect("CWD sub dir", 250);
    let r = ftp.expect("MFMT 20010203040506.250 a file.txt", 213);
    assert_eq!(r.text, "Modify=20010203040506; a file.txt");
    let want = at(981_173_106) + Duration::from_millis(250);
    assert_eq!(mtime(&root.join("sub dir/a file.txt")), want);
    let r = ftp.expect("MFMT 19691231235958 a file.txt", 213);
    assert_eq!(r.text, "Modify=19691231235958; a file.txt");
    assert_eq!(
        mtime(&root.join("sub dir/a file.txt")),
        UNIX_EPOCH - Duration::from_secs(2)
    );
    assert_eq!(ftp.expect("MDTM a file.txt", 213).text, "19691231235958");

    // Through a symlink that stays inside the root: the target's time.
    std::os::unix::fs::symlink("sub dir/a file.txt", root.join("alias")).expect("symlink");
    ftp.expect("MFMT 20300405060708 /alias", 213);
    assert_eq!(mtime(&root.join("sub dir/a file.txt")), at(1_901_599_628));
    ftp.expect("QUIT", 221);
}

#[test]
fn mfmt_refuses_bad_times_missing_files_directories_and_links_out() {
    let server = TestServer::start(&[]);
    let root = server.root();
    let outside = server.dir.path().join("outside.txt");
    fs::write(&outside, "outside").expect("write");
    set_mtime(&outside, at(1_000_000_000));
    std::os::unix::fs::symlink(&outside, root.join("out")).expect("symlink");
    fs::write(root.join("f.txt"), "f").expect("write");
    set_mtime(&root.join("f.txt"), at(1_500_000_000));
    fs::create_dir(root.join("dir")).expect("mkdir");
    let dir_before = mtime(&root.join("dir"));

    // Not logged in: 530, nothing changed.
    let mut ftp = Ftp::connect(server.addr);
    ftp.expect("MFMT 20010203040506 f.txt", 530);
    ftp.login();
    for bad in [
        "MFMT 2001020304050 f.txt",
        "MFMT 20011302040506 f.txt",
        "MFMT 20010230040506 f.txt",
        "MFMT 20010203250506 f.txt",
        "MFMT 2001-02-03 f.txt",
        "MFMT 20010203040506",
        "MFMT",
    ] {
        ftp.expect(bad, 501);
    }
    ftp.expect("MFMT 20010203040506 missing.txt", 550);
    ftp.expect("MFMT 20010203040506 nodir/f.txt", 550);
    let r = ftp.expect("MFMT 20010203040506 dir", 550);
    assert!(r.text.contains("Not a plain file"), "{r:?}");
    ftp.expect("MFMT 20010203040506 /", 550);
    ftp.expect("MFMT 20010203040506 out", 550);
    ftp.expect("MFMT 20010203040506 ../outside.txt", 550);
    assert_eq!(mtime(&root.join("f.txt")), at(1_500_000_000));
    assert_eq!(mtime(&root.join("dir")), dir_before);
    assert_eq!(mtime(&outside), at(1_000_000_000));
    assert_eq!(fs::read(&outside).expect("read"), b"outside");
    // The session goes on.
    assert_eq!(ftp.expect("MDTM f.txt", 213).text, "20170714024000");
    ftp.expect("QUIT", 221);
}

#[test]
fn mfmt_needs_write_permission() {
    let server = TestServer::start(&["--anonymous", "read"]);
    let path = server.root().join("f.txt");
    fs::write(&path, "f").expect("write");
    set_mtime(&path, at(1_500_000_000));
    let mut ftp = server.login();
    let r = ftp.expect("MFMT 20010203040506 f.txt", 550);
    assert!(r.text.contains("Permission denied"), "{r:?}");
    assert_eq!(mtime(&path), at(1_500_000_000));
    // Reading still works: MDTM shows the time it kept.
    assert_eq!(ftp.expect("MDTM f.txt", 213).text, "20170714024000");
}

fn lftp_or_skip() -> bool {
    let ok = require(have("lftp", &["--version"]), "lftp (apt-get install lftp)");
    if ok {
        eprintln!("peer: {}", version_line("lftp", &["--version"]));
    }
    ok
}

/// Runs `commands` in one lftp session to our server (as tests/it/lftp.rs does), with
/// lftp's debug output on stderr.
fn lftp(server: &TestServer, local: &Path, commands: &str) -> PeerRun {
    let script = format!(
        "debug 5; set ftp:passive-mode on; set net:max-retries 1; set net:timeout 20; \
         set net:reconnect-interval-base 1; set cmd:fail-exit yes; set ftp:ssl-allow no; \
         open -u anonymous,lftp@ -p {} {}; lcd {}; {commands}",
        server.addr.port(),
        server.addr.ip(),
        local.display()
    );
    let home = server.dir.path().join("lftp-home");
    fs::create_dir_all(&home).expect("mkdir home");
    let mut cmd = Command::new("lftp");
    cmd.arg("-c").arg(script).env("HOME", &home);
    run_peer(cmd)
}

#[test]
fn lftp_mirror_reverse_keeps_the_modification_times() {
    if !lftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let local = local_dir(&server);
    let src = local.join("src");
    write_sample_tree(&src, 71);
    let files = [
        "top.txt",
        "a/all-bytes.bin",
        "a/b/deep.bin",
        "a/b/empty.bin",
        "with space/file name.txt",
        "ünïcode/naïve.txt",
    ];
    // Distinct whole-second times, years apart, none of them now.
    for (i, name) in files.iter().enumerate() {
        set_mtime(&src.join(name), at(1_000_000_000 + i as u64 * 40_000_000));
    }

    let run = lftp(&server, &local, "mirror -R src up");
    assert!(
        run.status.success(),
        "lftp failed: {run:?}\nserver log:\n{}",
        server.log()
    );
    let up = server.root().join("up");
    assert_same_tree(&up, &src);
    for name in files {
        assert_eq!(mtime(&up.join(name)), mtime(&src.join(name)), "{name}");
    }
    // lftp found MFMT in FEAT and used it, once per file, and no SITE UTIME.
    let mfmt = run
        .stderr
        .lines()
        .filter(|l| l.contains("---> MFMT "))
        .count();
    assert_eq!(mfmt, files.len(), "{}", run.stderr);
    assert!(!run.stderr.contains("SITE UTIME"), "{}", run.stderr);
    let log = server.log();
    assert!(log.contains(": MFMT /up/top.txt 20010909014640"), "{log}");
}
