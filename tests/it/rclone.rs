//! rclone's FTP backend against our server: a tree copied up and back down (nested and
//! empty directories, an empty file, spaces and UTF-8 names), compared byte for byte
//! by the test and by `rclone check --download` (which also has to notice a changed
//! file), `lsf -R` against the tree, `moveto` (RNFR/RNTO), `delete` and `rmdirs`,
//! `mkdir` and `rmdir`.
//!
//! The remote is made on the fly (`:ftp,host=...,pass=<obscured>:`) and rclone reads an
//! empty config file in the test's directory, never the user's. One try per operation
//! and 20 s network timeouts, so a failure ends the run instead of retrying it.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{
    assert_same_tree, have, require, run_peer, tree_contents, version_line, write_sample_tree,
    PeerRun, TestServer,
};

fn rclone_or_skip() -> bool {
    let ok = require(
        have("rclone", &["version"]),
        "rclone (apt-get install rclone)",
    );
    if ok {
        eprintln!("peer: {}", version_line("rclone", &["version"]));
    }
    ok
}

/// rclone with a config file and cache of its own, and the on-the-fly remote that
/// logs in to our server anonymously.
struct Rclone<'a> {
    server: &'a TestServer,
    remote: String,
}

impl<'a> Rclone<'a> {
    fn new(server: &'a TestServer) -> Rclone<'a> {
        let mut rclone = Rclone {
            server,
            remote: String::new(),
        };
        // The backend takes the password only in rclone's obscured form.
        let run = rclone.run(&["obscure", "rclone@"]);
        assert!(run.status.success(), "rclone obscure: {run:?}");
        rclone.remote = format!(
            ":ftp,host={},port={},user=anonymous,pass={}:",
            server.addr.ip(),
            server.addr.port(),
            run.stdout.trim()
        );
        rclone
    }

    /// `remote:path` on our server.
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.remote)
    }

    fn run(&self, args: &[&str]) -> PeerRun {
        let dir = self.server.dir.path();
        let config = dir.join("rclone.conf");
        if !config.exists() {
            fs::write(&config, "").expect("write rclone.conf");
        }
        let mut cmd = Command::new("rclone");
        cmd.arg("--config")
            .arg(&config)
            .arg("--cache-dir")
            .arg(dir.join("rclone-cache"))
            .args([
                "--contimeout",
                "20s",
                "--timeout",
                "20s",
                "--retries",
                "1",
                "--low-level-retries",
                "1",
            ])
            .args(args)
            .env("HOME", dir);
        run_peer(cmd)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> PeerRun {
        let run = self.run(args);
        assert!(
            run.status.success(),
            "rclone {args:?} failed: {run:?}\nserver log:\n{}",
            self.server.log()
        );
        run
    }
}

/// What `rclone lsf -R` prints for `dir`: every path, directories with a `/`, sorted.
fn lsf_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = tree_contents(dir)
        .into_iter()
        .map(|(name, bytes)| match bytes {
            Some(_) => name,
            None => format!("{name}/"),
        })
        .collect();
    names.sort();
    names
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn rclone_copies_checks_lists_and_removes_a_tree() {
    if !rclone_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let root = server.root();
    let src = server.dir.path().join("src");
    write_sample_tree(&src, 93);
    let rclone = Rclone::new(&server);
    let s = |p: &Path| p.to_str().expect("utf8").to_owned();

    // Up: MKD and STOR for every directory and file, empty ones too.
    rclone.ok(&[
        "copy",
        "--create-empty-src-dirs",
        &s(&src),
        &rclone.at("up"),
    ]);
    assert_same_tree(&root.join("up"), &src);

    // lsf -R lists what is there (MLSD).
    let run = rclone.ok(&["lsf", "-R", &rclone.at("up")]);
    assert_eq!(sorted_lines(&run.stdout), lsf_of(&src));

    // check --download reads every file back and compares the bytes; `--combined -`
    // prints `= name` for each file that matches, `* name` for each that differs.
    let run = rclone.ok(&[
        "check",
        "--download",
        "--combined",
        "-",
        &s(&src),
        &rclone.at("up"),
    ]);
    assert!(run.stderr.contains("0 differences found"), "{run:?}");
    let files = tree_contents(&src).into_iter().filter(|(_, b)| b.is_some());
    let mut want: Vec<String> = files.map(|(name, _)| format!("= {name}")).collect();
    want.sort();
    assert_eq!(sorted_lines(&run.stdout), want);

    // Down: the tree comes back whole.
    let down = server.dir.path().join("down");
    rclone.ok(&[
        "copy",
        "--create-empty-src-dirs",
        &rclone.at("up"),
        &s(&down),
    ]);
    assert_same_tree(&down, &src);

    // One changed byte (same size, same time) is found by check --download.
    let top = root.join("up/top.txt");
    let mut bytes = fs::read(&top).expect("read");
    bytes[0] ^= 0x20;
    let modified = fs::metadata(&top)
        .and_then(|m| m.modified())
        .expect("mtime");
    fs::write(&top, &bytes).expect("write");
    fs::File::options()
        .write(true)
        .open(&top)
        .and_then(|f| f.set_modified(modified))
        .expect("set mtime");
    let run = rclone.run(&[
        "check",
        "--download",
        "--combined",
        "-",
        &s(&src),
        &rclone.at("up"),
    ]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("1 differences found"), "{run:?}");
    let differ: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("= "))
        .collect();
    assert_eq!(differ, ["* top.txt"], "{run:?}");

    // moveto on the same remote is a rename (RNFR/RNTO), not a copy.
    rclone.ok(&[
        "moveto",
        &rclone.at("up/top.txt"),
        &rclone.at("up/moved.txt"),
    ]);
    assert_eq!(fs::read(root.join("up/moved.txt")).expect("read"), bytes);
    assert!(!top.exists());
    let log = server.log();
    assert!(
        log.contains(": RNFR /up/top.txt") || log.contains(": RNFR up/top.txt"),
        "{log}"
    );

    // delete removes the files below a path and keeps its directories; rmdirs then
    // removes the empty directories, the path itself included.
    rclone.ok(&["delete", &rclone.at("up/a")]);
    let left = tree_contents(&root.join("up/a"));
    assert!(left.iter().all(|(_, bytes)| bytes.is_none()), "{left:?}");
    assert!(root.join("up/a/b").is_dir());
    rclone.ok(&["rmdirs", &rclone.at("up/a")]);
    assert!(!root.join("up/a").exists());
    assert!(root.join("up/with space/file name.txt").is_file());

    // mkdir makes the parents too; rmdir removes only the empty leaf.
    rclone.ok(&["mkdir", &rclone.at("made/inner")]);
    assert!(root.join("made/inner").is_dir());
    rclone.ok(&["rmdir", &rclone.at("made/inner")]);
    assert!(root.join("made").is_dir() && !root.join("made/inner").exists());
    // rmdir of a directory that is not empty fails and removes nothing.
    let run = rclone.run(&["rmdir", &rclone.at("up")]);
    assert!(!run.status.success(), "{run:?}");
    assert!(root.join("up/moved.txt").is_file());
}
