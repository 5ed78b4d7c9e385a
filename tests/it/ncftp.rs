//! NcFTP's tools against our server: `ncftpget` of one file and of a wildcard in a
//! subdirectory (`'/sub/*.txt'`, NLST of a pattern), `ncftpput` (also into a directory
//! it makes with `-m`), `ncftpls -l` (LIST) and the interactive `ncftp`'s `ls -l`
//! (MLSD), whose permission columns must show each file's real mode bits.
//!
//! Each run has a 20 s network timeout (`-t 20`) and its own empty HOME, so no user
//! bookmarks or preferences take part; `-V` turns off the progress meters.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::{
    assert_same, have, local_dir, names_in, pattern, require, run_peer, version_line, PeerRun,
    TestServer,
};

fn ncftp_or_skip() -> bool {
    // ncftpget's -v prints its usage and exits 2: look for the programs on the PATH,
    // and let Debian's package version name them.
    let on_path = have(
        "sh",
        &[
            "-c",
            "command -v ncftp && command -v ncftpget && command -v ncftpput",
        ],
    );
    let ok = require(on_path, "ncftp (apt-get install ncftp)");
    if ok {
        eprintln!(
            "peer: ncftp {}",
            version_line("dpkg-query", &["-W", "-f=${Version}", "ncftp"])
        );
    }
    ok
}

/// One of the NcFTP programs, with the server's port, a timeout, no progress meter
/// and an empty HOME.
fn ncftp_tool(server: &TestServer, prog: &str) -> Command {
    let home = server.dir.path().join("ncftp-home");
    fs::create_dir_all(&home).expect("mkdir home");
    let mut cmd = Command::new(prog);
    cmd.env("HOME", home)
        .arg("-P")
        .arg(server.addr.port().to_string())
        .args(["-t", "20"]);
    if prog != "ncftpls" {
        cmd.arg("-V");
    }
    cmd
}

/// `ncftpget 127.0.0.1 local remote`.
fn ncftpget(server: &TestServer, local: &Path, remote: &str) -> PeerRun {
    let mut cmd = ncftp_tool(server, "ncftpget");
    cmd.arg(server.addr.ip().to_string()).arg(local).arg(remote);
    run_peer(cmd)
}

/// `ncftpput [flags] 127.0.0.1 remote_dir file`.
fn ncftpput(server: &TestServer, flags: &[&str], remote_dir: &str, file: &Path) -> PeerRun {
    let mut cmd = ncftp_tool(server, "ncftpput");
    cmd.args(flags)
        .arg(server.addr.ip().to_string())
        .arg(remote_dir)
        .arg(file);
    run_peer(cmd)
}

#[track_caller]
fn assert_ok(run: &PeerRun, server: &TestServer) {
    assert!(
        run.status.success(),
        "ncftp failed: {run:?}\nserver log:\n{}",
        server.log()
    );
}

/// Files and a directory with known modes: 0644, 0600 and 0755.
fn write_moded_files(dir: &Path) {
    fs::write(dir.join("public.txt"), "for everyone\n").expect("write");
    fs::write(dir.join("private.bin"), pattern(4_321, 81)).expect("write");
    fs::create_dir(dir.join("inner")).expect("mkdir");
    for (name, mode) in [
        ("public.txt", 0o644),
        ("private.bin", 0o600),
        ("inner", 0o755),
    ] {
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// The permission column and name of each `ls -l` style line, sorted by name.
fn modes_and_names(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('-') || l.starts_with('d'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let mode = words.next()?.to_owned();
            let name = words.last()?.to_owned();
            Some((mode, name))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn want_modes() -> Vec<(String, String)> {
    [
        ("drwxr-xr-x", "inner"),
        ("-rw-------", "private.bin"),
        ("-rw-r--r--", "public.txt"),
    ]
    .iter()
    .map(|(m, n)| (m.to_string(), n.to_string()))
    .collect()
}

#[test]
fn ncftpget_ncftpput_and_ncftpls_move_and_list_files() {
    if !ncftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let root = server.root();
    let local = local_dir(&server);
    let down = pattern((3 << 20) + 1, 82);
    fs::write(root.join("down.bin"), &down).expect("write");
    fs::create_dir(root.join("sub")).expect("mkdir");

    let run = ncftpget(&server, &local, "/down.bin");
    assert_ok(&run, &server);
    assert_same(
        &fs::read(local.join("down.bin")).expect("read"),
        &down,
        "ncftpget",
    );
    // A missing file: exit status 3 (transfer failed), nothing left behind.
    let run = ncftpget(&server, &local, "/missing.bin");
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    assert!(run.stderr.contains("No such file"), "{run:?}");
    assert_eq!(names_in(&local), ["down.bin"]);

    let up = pattern(600_007, 83);
    fs::write(local.join("up.bin"), &up).expect("write");
    assert_ok(
        &ncftpput(&server, &[], "/sub", &local.join("up.bin")),
        &server,
    );
    assert_same(
        &fs::read(root.join("sub/up.bin")).expect("read"),
        &up,
        "ncftpput",
    );
    // -m makes the remote directories first (MKD); without it a missing directory
    // fails the run (exit status 5: cannot change to it).
    let run = ncftpput(&server, &["-m"], "/made/deeper", &local.join("up.bin"));
    assert_ok(&run, &server);
    assert_same(
        &fs::read(root.join("made/deeper/up.bin")).expect("read"),
        &up,
        "ncftpput -m",
    );
    let run = ncftpput(&server, &[], "/nowhere", &local.join("up.bin"));
    assert_eq!(run.status.code(), Some(5), "{run:?}");
    assert!(!root.join("nowhere").exists());

    // ncftpls -l is LIST: the real mode bits, sizes and names.
    write_moded_files(&root.join("sub"));
    fs::remove_file(root.join("sub/up.bin")).expect("rm");
    let mut cmd = ncftp_tool(&server, "ncftpls");
    cmd.arg("-l")
        .arg(format!("ftp://{}/sub/", server.addr.ip()));
    let run = run_peer(cmd);
    assert_ok(&run, &server);
    assert_eq!(modes_and_names(&run.stdout), want_modes(), "{run:?}");
    let private = run
        .stdout
        .lines()
        .find(|l| l.ends_with(" private.bin"))
        .expect("private.bin listed");
    assert!(private.contains(" 4321 "), "{private}");
    let mut cmd = ncftp_tool(&server, "ncftpls");
    cmd.arg("-1")
        .arg(format!("ftp://{}/sub/", server.addr.ip()));
    let run = run_peer(cmd);
    assert_ok(&run, &server);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["inner", "private.bin", "public.txt"]
    );
}

/// Issue 11, item 4: NLST of a pattern got `550`, so ncftpget of `'/sub/*.txt'`
/// fetched nothing.
#[test]
fn ncftpget_fetches_a_wildcard_in_a_subdirectory() {
    if !ncftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    let root = server.root();
    fs::create_dir(root.join("sub")).expect("mkdir");
    let a = pattern(65_536, 84);
    let b = pattern(100_001, 85);
    fs::write(root.join("sub/a.txt"), &a).expect("write");
    fs::write(root.join("sub/b.txt"), &b).expect("write");
    fs::write(root.join("sub/c.bin"), "not a .txt\n").expect("write");
    // Same names in the root, other bytes: they must not be what arrives.
    fs::write(root.join("a.txt"), "the root's a.txt\n").expect("write");
    fs::write(root.join("b.txt"), "the root's b.txt\n").expect("write");
    let local = local_dir(&server);

    let run = ncftpget(&server, &local, "/sub/*.txt");
    assert_ok(&run, &server);
    assert_eq!(names_in(&local), ["a.txt", "b.txt"], "{run:?}");
    assert_same(&fs::read(local.join("a.txt")).expect("read"), &a, "a.txt");
    assert_same(&fs::read(local.join("b.txt")).expect("read"), &b, "b.txt");
}

/// Issue 11, item 12: the interactive ncftp lists with MLSD, and with only the
/// `perm` fact to go on showed `-------rw-` for every file.
#[test]
fn ncftp_ls_l_shows_real_permission_bits() {
    if !ncftp_or_skip() {
        return;
    }
    let server = TestServer::start(&[]);
    write_moded_files(server.root());
    let script = server.dir.path().join("ncftp-script");
    fs::write(
        &script,
        format!(
            "open -u anonymous -p ncftp@ -P {} {}\nls -l\nbye\n",
            server.addr.port(),
            server.addr.ip()
        ),
    )
    .expect("write script");
    let home = server.dir.path().join("ncftp-home");
    fs::create_dir_all(&home).expect("mkdir home");
    // run_peer gives its program no stdin, and ncftp reads its commands there: a shell
    // redirects it from the script and becomes ncftp (exec), so the deadline and the
    // kill apply to ncftp itself.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec ncftp < \"$0\"")
        .arg(&script)
        .env("HOME", home);
    let run = run_peer(cmd);
    assert_ok(&run, &server);
    assert!(server.log().contains(": MLSD"), "{}", server.log());
    assert_eq!(modes_and_names(&run.stdout), want_modes(), "{run:?}");
}
