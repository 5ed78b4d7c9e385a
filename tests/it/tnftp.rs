//! tnftp (NetBSD's ftp, Debian's `tnftp`) against our server, scripted on its stdin:
//! get, put, mkdir, rename, rmdir, delete, a refused get; its auto-fetch forms
//! (`-o file URL` and `-u URL file`); and the commands that glob on the server:
//! `mget` and `mdelete` (NLST of a pattern), `ls` with a pattern (LIST of a pattern) and
//! `mget` of a path in a subdirectory, which must fetch that file and not the root's
//! file of the same name (NLST answers with the path as given, as vsftpd does).
//!
//! tnftp exits 0 after a script whatever its commands did, so the tests check the
//! replies it prints (`-v`) and the files on both sides, byte for byte.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{
    assert_same, have, local_dir, names_in, pattern, require, run_peer, version_line, PeerRun,
    TestServer,
};

fn tnftp_or_skip() -> bool {
    // tnftp has no option that prints a version and exits 0: look it up on the PATH,
    // and let Debian's package version name it.
    let on_path = have("sh", &["-c", "command -v tnftp"]);
    let ok = require(on_path, "tnftp (apt-get install tnftp)");
    if ok {
        eprintln!(
            "peer: tnftp {}",
            version_line("dpkg-query", &["-W", "-f=${Version}", "tnftp"])
        );
    }
    ok
}

/// Runs tnftp in `local` with `commands` (one a line) after an anonymous login and
/// `binary`; `-i` answers its mget/mdelete prompts, `-v` prints every reply.
fn tnftp(server: &TestServer, local: &Path, commands: &str) -> PeerRun {
    let script = format!(
        "open {} {}\nuser anonymous tnftp@\nbinary\n{commands}\nbye\n",
        server.addr.ip(),
        server.addr.port()
    );
    let path = server.dir.path().join("tnftp-script");
    fs::write(&path, script).expect("write script");
    // run_peer gives its program no stdin, and tnftp reads its commands there: a shell
    // redirects it from the script and becomes tnftp (exec), so the deadline and the
    // kill apply to tnftp itself.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec tnftp -n -i -v < \"$0\"")
        .arg(&path)
        .current_dir(local)
        .env("HOME", tnftp_home(server));
    run_peer(cmd)
}

/// tnftp for an auto-fetch run (URLs as arguments), with the empty HOME.
fn tnftp_auto(server: &TestServer) -> Command {
    let mut cmd = Command::new("tnftp");
    cmd.env("HOME", tnftp_home(server));
    cmd
}

/// An empty HOME, so no `.netrc` or `.editrc` of the user takes part.
fn tnftp_home(server: &TestServer) -> PathBuf {
    let home = server.dir.path().join("tnftp-home");
    fs::create_dir_all(&home).expect("mkdir home");
    home
}

/// Asserts that tnftp printed each reply line (from its start) in `lines`.
#[track_caller]
fn assert_replies(run: &PeerRun, server: &TestServer, lines: &[&str]) {
    for want in lines {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(want)),
            "tnftp printed no {want:?}: {run:?}\nserver log:\n{}",
            server.log()
        );
    }
}

/// The names at the end of the `ls -l` style lines tnftp printed.
fn listed_names(stdout: &str) -> Vec<String> {
    let mut names: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with('-') || l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

#[test]
fn tnftp_gets_puts_renames_and_manages_directories() {
    if !tnftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let root = server.root();
    let local = local_dir(&server);
    let down = pattern((2 << 20) + 5, 71);
    fs::write(root.join("down.bin"), &down).expect("write");
    let up = pattern(700_001, 72);
    fs::write(local.join("up.bin"), &up).expect("write");
    let kept = pattern(1_000, 73);
    fs::write(root.join("doomed.bin"), &kept).expect("write");

    let run = tnftp(
        &server,
        &local,
        "get down.bin\nput up.bin\nmkdir made\nrename up.bin made/moved.bin\n\
         mkdir gone\nrmdir gone\ndelete doomed.bin\nget missing.bin",
    );
    assert!(run.status.success(), "{run:?}");
    assert_same(
        &fs::read(local.join("down.bin")).expect("read"),
        &down,
        "get",
    );
    assert_same(
        &fs::read(root.join("made/moved.bin")).expect("read"),
        &up,
        "put, then rename",
    );
    assert_replies(
        &run,
        &server,
        &[
            &format!("226 Transfer complete, {} bytes", down.len()),
            &format!("226 Transfer complete, {} bytes", up.len()),
            "257 \"/made\" created",
            "350 ",
            "250 Rename successful",
            "257 \"/gone\" created",
            "250 Directory removed",
            "250 File deleted",
            "550 ",
            "221 ",
        ],
    );
    assert_eq!(names_in(root), ["down.bin", "made"]);
    assert_eq!(names_in(&local), ["down.bin", "up.bin"], "no missing.bin");

    // Auto-fetch: `-o file URL` downloads, `-u URL file` uploads, and a missing
    // file fails the run (exit status 1).
    let url = format!("ftp://{}", server.addr);
    let mut cmd = tnftp_auto(&server);
    cmd.arg("-o")
        .arg(local.join("fetched.bin"))
        .arg(format!("{url}/down.bin"));
    let run = run_peer(cmd);
    assert!(run.status.success(), "{run:?}");
    assert_same(
        &fs::read(local.join("fetched.bin")).expect("read"),
        &down,
        "auto-fetch",
    );
    let mut cmd = tnftp_auto(&server);
    cmd.arg("-u")
        .arg(format!("{url}/made/"))
        .arg("up.bin")
        .current_dir(&local);
    let run = run_peer(cmd);
    assert!(run.status.success(), "{run:?}");
    assert_same(
        &fs::read(root.join("made/up.bin")).expect("read"),
        &up,
        "auto-upload",
    );
    let mut cmd = tnftp_auto(&server);
    cmd.arg("-o")
        .arg(local.join("missing.bin"))
        .arg(format!("{url}/missing.bin"));
    let run = run_peer(cmd);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(!local.join("missing.bin").exists());
}

/// Issue 11, item 3: `NLST sub/a.txt` answered `a.txt`, so `mget sub/a.txt` fetched
/// the root's `a.txt` instead, without an error.
#[test]
fn tnftp_mget_of_a_path_fetches_that_file_not_the_roots() {
    if !tnftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let root = server.root();
    fs::create_dir(root.join("sub")).expect("mkdir");
    fs::write(root.join("a.txt"), "the root's a.txt\n").expect("write");
    fs::write(root.join("sub/a.txt"), "sub's a.txt, longer\n").expect("write");
    let local = local_dir(&server);
    // mget saves each name as the server gives it: sub/a.txt goes into local sub/.
    fs::create_dir(local.join("sub")).expect("mkdir");

    let run = tnftp(&server, &local, "mget sub/a.txt");
    assert!(run.status.success(), "{run:?}");
    assert_replies(&run, &server, &["226 Transfer complete, 20 bytes"]);
    assert_eq!(
        fs::read_to_string(local.join("sub/a.txt")).ok().as_deref(),
        Some("sub's a.txt, longer\n"),
        "{run:?}"
    );
    assert_eq!(names_in(&local), ["sub"], "the root's a.txt was fetched");
}

/// Issue 11, item 4: NLST and LIST of a pattern got `550`, so tnftp's `mget`,
/// `mdelete` and `ls` with a pattern did nothing.
#[test]
fn tnftp_mget_mdelete_and_ls_expand_patterns() {
    if !tnftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let root = server.root();
    fs::create_dir(root.join("sub")).expect("mkdir");
    let a = pattern(70_000, 74);
    let b = pattern(1_234, 75);
    fs::write(root.join("sub/a.txt"), &a).expect("write");
    fs::write(root.join("sub/b.txt"), &b).expect("write");
    fs::write(root.join("sub/c.bin"), "not a .txt\n").expect("write");
    fs::create_dir(root.join("del")).expect("mkdir");
    for name in ["x.tmp", "y.tmp", "keep.txt"] {
        fs::write(root.join("del").join(name), name).expect("write");
    }
    for name in ["one.txt", "two.txt", "three.bin"] {
        fs::write(root.join(name), name).expect("write");
    }
    let local = local_dir(&server);
    fs::create_dir(local.join("sub")).expect("mkdir");

    let run = tnftp(&server, &local, "mget sub/*.txt\nmdelete del/*.tmp");
    assert!(run.status.success(), "{run:?}");
    assert_eq!(names_in(&local.join("sub")), ["a.txt", "b.txt"], "{run:?}");
    assert_same(&fs::read(local.join("sub/a.txt")).expect("read"), &a, "a");
    assert_same(&fs::read(local.join("sub/b.txt")).expect("read"), &b, "b");
    assert_eq!(names_in(&local), ["sub"]);
    assert_eq!(names_in(&root.join("del")), ["keep.txt"], "{run:?}");
    assert_eq!(
        run.stdout.matches("250 File deleted").count(),
        2,
        "two DELE: {run:?}"
    );

    // `ls` sends LIST with the pattern: `*`, `?` and `[...]` in the last component.
    for (arg, want) in [
        ("*.txt", vec!["one.txt", "two.txt"]),
        ("t?o.*", vec!["two.txt"]),
        ("[ot]*.txt", vec!["one.txt", "two.txt"]),
        ("sub/[ab].txt", vec!["a.txt", "b.txt"]),
    ] {
        let run = tnftp(&server, &local, &format!("ls {arg}"));
        assert!(run.status.success(), "{run:?}");
        let names: Vec<String> = listed_names(&run.stdout)
            .into_iter()
            .map(|n| n.rsplit('/').next().unwrap_or(&n).to_owned())
            .collect();
        assert_eq!(names, want, "ls {arg}: {run:?}");
    }
}
