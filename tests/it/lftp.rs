//! lftp against our server: get, put, resume both ways (`get -c` is REST+RETR, `put -c`
//! is SIZE then REST+STOR), ls/cls (LIST and MLSD), mkdir/mv/rm/rmdir, `mirror` of a
//! directory tree both ways (and `mirror -R --delete` to bring a changed tree over), and
//! `pget -n 4`, which splits a download over several sessions with REST.
//!
//! Every run sets passive mode, one retry and a 20 s network timeout, so a failure
//! ends the run instead of hanging it; `cmd:fail-exit` makes any failed command fail
//! the run. lftp gets its own HOME so no user settings or caches take part.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{
    assert_same, assert_same_tree, have, local_dir, pattern, require, run_peer, version_line,
    write_sample_tree, PeerRun, TestServer,
};

fn lftp_or_skip() -> bool {
    let ok = require(have("lftp", &["--version"]), "lftp (apt-get install lftp)");
    if ok {
        eprintln!("peer: {}", version_line("lftp", &["--version"]));
    }
    ok
}

/// Runs `commands` in one lftp session to our server, with `lcd local` first.
fn lftp(server: &TestServer, local: &Path, commands: &str) -> PeerRun {
    let script = format!(
        "set ftp:passive-mode on; set net:max-retries 1; set net:timeout 20; \
         set net:reconnect-interval-base 1; set cmd:fail-exit yes; set ftp:ssl-allow no; \
         set xfer:clobber on; \
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

#[track_caller]
fn assert_ok(run: &PeerRun, server: &TestServer) {
    assert!(
        run.status.success(),
        "lftp failed: {run:?}\nserver log:\n{}",
        server.log()
    );
}

#[test]
fn lftp_gets_puts_resumes_lists_and_manages_files() {
    if !lftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let root = server.root();
    let local = local_dir(&server);
    let down = pattern((5 << 20) + 3, 61);
    fs::write(root.join("down.bin"), &down).expect("write");
    fs::write(root.join("partial-down.bin"), &down).expect("write");
    fs::write(local.join("partial-down.bin"), &down[..1_000_001]).expect("write");
    let up = pattern((4 << 20) + 9, 62);
    fs::write(local.join("up.bin"), &up).expect("write");
    fs::write(local.join("partial-up.bin"), &up).expect("write");
    fs::write(root.join("partial-up.bin"), &up[..2_000_002]).expect("write");
    fs::create_dir(root.join("sub")).expect("mkdir");

    let run = lftp(
        &server,
        &local,
        "get down.bin; put up.bin; get -c partial-down.bin; put -c partial-up.bin; \
         mkdir -p made/inner; mv up.bin made/inner/moved.bin; put up.bin -o gone.bin; \
         rm gone.bin; rmdir sub",
    );
    assert_ok(&run, &server);
    assert_same(
        &fs::read(local.join("down.bin")).expect("read"),
        &down,
        "get",
    );
    assert_same(
        &fs::read(root.join("made/inner/moved.bin")).expect("read"),
        &up,
        "put, then mv",
    );
    assert_same(
        &fs::read(local.join("partial-down.bin")).expect("read"),
        &down,
        "get -c",
    );
    assert_same(
        &fs::read(root.join("partial-up.bin")).expect("read"),
        &up,
        "put -c",
    );
    assert!(!root.join("gone.bin").exists() && !root.join("sub").exists());
    let log = server.log();
    for line in [": REST 1000001", ": REST 2000002", ": STOR partial-up.bin"] {
        assert!(log.contains(line), "no {line:?} in the server log:\n{log}");
    }

    // ls is LIST (long lines); cls uses MLSD and prints names only.
    let run = lftp(&server, &local, "ls");
    assert_ok(&run, &server);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(lines[0].starts_with('-') && lines[0].ends_with(" down.bin"));
    assert!(
        lines[0].contains(&format!(" {} ", down.len())),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with('d') && lines[1].ends_with(" made"));
    assert!(lines[2].ends_with(" partial-down.bin") && lines[3].ends_with(" partial-up.bin"));
    let run = lftp(&server, &local, "cls -1 made/inner");
    assert_ok(&run, &server);
    assert_eq!(run.stdout.trim_end(), "made/inner/moved.bin");

    // A failing command fails the run (and says why).
    let run = lftp(&server, &local, "get missing.bin");
    assert!(!run.status.success(), "{run:?}");
    assert!(run.stderr.contains("550"), "{}", run.stderr);
    assert!(!local.join("missing.bin").exists());
}

#[test]
fn lftp_mirrors_a_tree_down_and_up() {
    if !lftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let root = server.root();
    let local = local_dir(&server);
    write_sample_tree(&root.join("tree"), 63);
    let src = local.join("src");
    write_sample_tree(&src, 64);

    // Server to local (MLSD to walk the tree, RETR each file).
    let run = lftp(&server, &local, "mirror tree down");
    assert_ok(&run, &server);
    assert_same_tree(&local.join("down"), &root.join("tree"));

    // Local to server (MKD, STOR).
    let run = lftp(&server, &local, "mirror -R src up");
    assert_ok(&run, &server);
    assert_same_tree(&root.join("up"), &src);

    // Change the local tree, then bring the server's copy up to date: a changed file
    // is sent again, a removed file and directory are deleted (DELE, RMD).
    fs::write(src.join("top.txt"), "changed, and longer than before\n").expect("write");
    fs::remove_file(src.join("a/b/deep.bin")).expect("rm");
    fs::remove_dir(src.join("a/empty dir")).expect("rmdir");
    fs::write(src.join("a/new.bin"), pattern(70_000, 65)).expect("write");
    let run = lftp(&server, &local, "mirror -R --delete src up");
    assert_ok(&run, &server);
    assert_same_tree(&root.join("up"), &src);
    let log = server.log();
    assert!(log.contains(": DELE /up/a/b/deep.bin"), "{log}");
    assert!(log.contains(": RMD /up/a/empty dir"), "{log}");
}

#[test]
fn lftp_pget_splits_a_download_with_rest() {
    if !lftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let local = local_dir(&server);
    let whole = pattern((8 << 20) + 13, 66);
    fs::write(server.root().join("p.bin"), &whole).expect("write");
    // lftp gives up splitting when its first connection reaches the end of its part
    // before the others have started; on loopback that happens at once. Capping each
    // connection's rate (1 MiB/s, so the run takes about 2 s) keeps the split.
    let run = lftp(
        &server,
        &local,
        "set net:limit-rate 1048576; pget -n 4 p.bin -o p.bin",
    );
    assert_ok(&run, &server);
    assert_same(
        &fs::read(local.join("p.bin")).expect("read"),
        &whole,
        "pget",
    );
    assert!(
        !local.join("p.bin.lftp-pget-status").exists(),
        "pget left its status file"
    );
    // Some part came over its own session, starting with REST at its offset.
    let log = server.log();
    let rests: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split(": REST ").nth(1))
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    assert!(!rests.is_empty(), "pget sent no REST:\n{log}");
    assert!(rests.iter().all(|&n| n < whole.len() as u64), "{rests:?}");
    let sessions = log.matches(": session start").count();
    assert!(sessions > 1, "pget used one session:\n{log}");
}
