//! GNU Wget against our server: one file by URL, a missing file (exit status 8, the
//! server's refusal), and a recursive download (`-r -np`) of a directory tree, which
//! walks it with CWD and LIST, parsing the `ls -l` style lines, and fetches each file
//! with RETR. Byte-exact, and the tree's shape with it (nested and empty directories,
//! spaces and UTF-8 names).

use std::fs;
use std::process::Command;

use crate::common::{
    assert_same, assert_same_tree, have, names_in, pattern, require, run_peer, version_line,
    write_sample_tree, PeerRun, TestServer,
};

fn wget_or_skip() -> bool {
    let ok = require(have("wget", &["--version"]), "wget (apt-get install wget)");
    if ok {
        eprintln!("peer: {}", version_line("wget", &["--version"]));
    }
    ok
}

/// Runs wget quietly with one try, a 20 s network timeout and no user settings
/// (`--no-config`), then `args`.
fn wget(server: &TestServer, args: &[&str]) -> PeerRun {
    let mut cmd = Command::new("wget");
    cmd.args(["--no-config", "-q", "-t", "1", "-T", "20"])
        .args(args)
        .env("HOME", server.dir.path());
    run_peer(cmd)
}

#[track_caller]
fn assert_ok(run: &PeerRun, server: &TestServer) {
    assert!(
        run.status.success(),
        "wget failed: {run:?}\nserver log:\n{}",
        server.log()
    );
}

#[test]
fn wget_downloads_a_file_and_reports_a_missing_one() {
    if !wget_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let bytes = pattern((4 << 20) + 17, 91);
    fs::write(server.root().join("down.bin"), &bytes).expect("write");
    let local = server.dir.path().join("local");
    fs::create_dir(&local).expect("mkdir");
    let out = local.join("down.bin");
    let url = format!("ftp://{}", server.addr);

    let run = wget(
        &server,
        &[
            "-O",
            out.to_str().expect("utf8"),
            &format!("{url}/down.bin"),
        ],
    );
    assert_ok(&run, &server);
    assert_same(&fs::read(&out).expect("read"), &bytes, "wget");
    assert!(
        server
            .log()
            .contains(&format!("RETR /down.bin {} bytes", bytes.len())),
        "{}",
        server.log()
    );

    // A missing file: exit status 8 (the server answered with an error), no file.
    let run = wget(
        &server,
        &[
            "-P",
            local.to_str().expect("utf8"),
            &format!("{url}/missing.bin"),
        ],
    );
    assert_eq!(run.status.code(), Some(8), "{run:?}");
    assert_eq!(names_in(&local), ["down.bin"]);
}

#[test]
fn wget_downloads_a_tree_recursively_with_list() {
    if !wget_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let tree = server.root().join("tree");
    write_sample_tree(&tree, 92);
    // Outside the tree: -np must not climb to it.
    fs::write(server.root().join("beside.txt"), "not in the tree\n").expect("write");
    let local = server.dir.path().join("local");
    fs::create_dir(&local).expect("mkdir");

    // -nH: no host:port directory; UTF-8 names kept as they are (nocontrol).
    let run = wget(
        &server,
        &[
            "-r",
            "-np",
            "-nH",
            "--restrict-file-names=nocontrol",
            "-P",
            local.to_str().expect("utf8"),
            &format!("ftp://{}/tree/", server.addr),
        ],
    );
    assert_ok(&run, &server);
    // wget removes its `.listing` files after use, so the trees match exactly.
    assert_same_tree(&local.join("tree"), &tree);
    assert_eq!(names_in(&local), ["tree"]);
    let log = server.log();
    assert!(log.contains(": LIST"), "{log}");
    assert!(log.contains(": CWD /tree/a/b"), "{log}");
}
