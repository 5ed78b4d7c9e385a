//! Listings (issue 11): NLST names entries by the path it was given, wildcards in the
//! last component of LIST/NLST/STAT, names with control characters never listed, the
//! real mode bits in LIST and MLSD, and memory that does not grow with the directory
//! while several large listings stream at once (every name still listed once). tnftp's
//! `mget` and ncftp's `ls -l`, which found the first and the mode bits, are in
//! tnftp.rs and ncftp.rs.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::thread;

use crate::common::{Ftp, TestServer};

/// `a.txt`, `b.txt`, `c.bin` at the top and `sub/a.txt`, `sub/c.bin` with other bytes.
fn sample_tree(server: &TestServer) {
    let root = server.root();
    fs::write(root.join("a.txt"), b"top a").expect("write");
    fs::write(root.join("b.txt"), b"top b").expect("write");
    fs::write(root.join("c.bin"), b"top c").expect("write");
    fs::create_dir(root.join("sub")).expect("mkdir");
    fs::write(root.join("sub/a.txt"), b"sub a").expect("write");
    fs::write(root.join("sub/c.bin"), b"sub c").expect("write");
}

/// The last field of each `ls -l` line: the name.
fn ls_names(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.rsplit(' ').next().unwrap_or(""))
        .collect()
}

#[test]
fn nlst_of_a_path_names_entries_by_that_path() {
    let server = TestServer::start(&[]);
    sample_tree(&server);
    let mut ftp = server.login();
    assert_eq!(ftp.listing("NLST sub/a.txt"), "sub/a.txt\r\n");
    assert_eq!(ftp.listing("NLST sub"), "sub/a.txt\r\nsub/c.bin\r\n");
    assert_eq!(ftp.listing("NLST sub/"), "sub/a.txt\r\nsub/c.bin\r\n");
    assert_eq!(ftp.listing("NLST /sub"), "/sub/a.txt\r\n/sub/c.bin\r\n");
    // No path (or `.`): bare names, as before.
    assert_eq!(ftp.listing("NLST"), "a.txt\r\nb.txt\r\nc.bin\r\nsub\r\n");
    assert_eq!(ftp.listing("NLST ."), "a.txt\r\nb.txt\r\nc.bin\r\nsub\r\n");
    // What NLST names is what RETR fetches: the files in sub/, not the top ones.
    for name in ftp.listing("NLST sub").lines() {
        let want = fs::read(server.root().join(name)).expect("read");
        assert_eq!(ftp.retr(name), want, "RETR {name}");
        assert!(want.starts_with(b"sub "), "{name}");
    }
    // LIST lines keep the bare name, as vsftpd's do.
    assert_eq!(ls_names(&ftp.listing("LIST sub")), ["a.txt", "c.bin"]);
    assert_eq!(ls_names(&ftp.listing("LIST sub/a.txt")), ["a.txt"]);
}

#[test]
fn wildcards_select_entries_of_the_last_component() {
    let server = TestServer::start(&[]);
    sample_tree(&server);
    let root = server.root();
    // A name that really has a wildcard in it, and one its pattern would also match.
    fs::write(root.join("x*"), b"star").expect("write");
    fs::write(root.join("x1"), b"one").expect("write");
    fs::write(root.join("file7"), b"7").expect("write");
    let mut ftp = server.login();
    assert_eq!(ftp.listing("NLST *.txt"), "a.txt\r\nb.txt\r\n");
    assert_eq!(ftp.listing("NLST sub/*.txt"), "sub/a.txt\r\n");
    assert_eq!(ftp.listing("NLST /sub/?.bin"), "/sub/c.bin\r\n");
    assert_eq!(ftp.listing("NLST [ab].txt"), "a.txt\r\nb.txt\r\n");
    assert_eq!(ftp.listing("NLST [!a].txt"), "b.txt\r\n");
    assert_eq!(
        ftp.listing("NLST [^a-b]*"),
        "c.bin\r\nfile7\r\nsub\r\nx*\r\nx1\r\n"
    );
    assert_eq!(ftp.listing("NLST file[0-9]"), "file7\r\n");
    // The literal name comes first.
    assert_eq!(ftp.listing("NLST x*"), "x*\r\n");
    assert_eq!(ftp.listing("NLST x?"), "x*\r\nx1\r\n");
    // Options before the pattern are dropped as before.
    assert_eq!(ls_names(&ftp.listing("LIST -la *.txt")), ["a.txt", "b.txt"]);
    let list = ftp.listing("LIST sub/*");
    assert_eq!(ls_names(&list), ["a.txt", "c.bin"]);
    assert!(list.lines().all(|l| l.starts_with("-rw")), "{list}");
    // STAT lists over the control connection.
    let stat = ftp.expect("STAT *.bin", 213);
    let lines: Vec<&str> = stat.text.lines().collect();
    assert_eq!(lines.len(), 3, "{stat:?}");
    assert!(
        lines[1].starts_with(" -rw") && lines[1].ends_with(" c.bin"),
        "{stat:?}"
    );
    assert_eq!(lines[2], "213 End of status");
    // Nothing matches: 450 before any data connection is used; a missing directory
    // or a missing literal name is 550 as before.
    for line in ["NLST *.none", "LIST sub/z*", "STAT q?"] {
        ftp.epsv_port();
        ftp.expect(line, 450);
    }
    for line in ["NLST nodir/*.txt", "LIST none.txt"] {
        ftp.epsv_port();
        ftp.expect(line, 550);
    }
    // MLSD takes no patterns (RFC 3659 §7.1).
    ftp.epsv_port();
    ftp.expect("MLSD *", 550);
    ftp.expect("NOOP", 200);
}

#[test]
fn names_with_control_characters_are_never_listed() {
    let server = TestServer::start(&[]);
    let root = server.root();
    fs::write(root.join("ok.txt"), b"fine").expect("write");
    let forged = [
        "evil\r\n-rw-r--r--   1 ftp      ftp             0 Jan  1 00:00 fake",
        "bare\rcr",
        "bare\nlf",
        "tab\tname",
    ];
    for name in forged {
        fs::write(root.join(name), b"x").expect("write a forged name on disk");
    }
    fs::create_dir(root.join("dir\r\nfake")).expect("mkdir");
    let mut ftp = server.login();
    let clean = |text: &str, what: &str| {
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 1, "{what}: {text:?}");
        assert!(
            lines.iter().all(|l| !l.contains(['\r', '\n', '\t'])),
            "{what}: {text:?}"
        );
        assert!(lines[0].ends_with("ok.txt"), "{what}: {text:?}");
    };
    clean(&ftp.listing("LIST"), "LIST");
    clean(&ftp.listing("NLST"), "NLST");
    clean(&ftp.listing("MLSD"), "MLSD");
    clean(&ftp.listing("NLST *"), "NLST *");
    clean(&ftp.listing("LIST -la *"), "LIST *");
    let stat = ftp.expect("STAT .", 213);
    assert_eq!(stat.text.lines().count(), 3, "{stat:?}");
    assert!(
        !stat.text.contains("fake") && stat.text.contains("ok.txt"),
        "{stat:?}"
    );
    // The session is in step: the next command gets its own reply.
    ftp.expect("NOOP", 200);
}

#[test]
fn listings_show_the_real_mode_bits() {
    let server = TestServer::start(&[]);
    let root = server.root();
    let modes = [("pub.txt", 0o644), ("secret.txt", 0o600), ("run.sh", 0o755)];
    for (name, mode) in modes {
        fs::write(root.join(name), b"x").expect("write");
        fs::set_permissions(root.join(name), fs::Permissions::from_mode(mode)).expect("chmod");
    }
    for (name, mode) in [("open", 0o755), ("shared", 0o1777)] {
        fs::create_dir(root.join(name)).expect("mkdir");
        fs::set_permissions(root.join(name), fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let mut ftp = server.login();
    let list = ftp.listing("LIST");
    let want = [
        ("open", "drwxr-xr-x"),
        ("pub.txt", "-rw-r--r--"),
        ("run.sh", "-rwxr-xr-x"),
        ("secret.txt", "-rw-------"),
        ("shared", "drwxrwxrwt"),
    ];
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), want.len(), "{list}");
    for (line, (name, bits)) in lines.iter().zip(want) {
        assert!(line.starts_with(&format!("{bits} ")), "{list}");
        assert!(line.ends_with(&format!(" {name}")), "{list}");
    }
    let mlsd = ftp.listing("MLSD");
    for (name, mode) in [
        ("pub.txt", "0644"),
        ("secret.txt", "0600"),
        ("shared", "1777"),
    ] {
        let line = mlsd
            .lines()
            .find(|l| l.ends_with(&format!("; {name}")))
            .unwrap_or_else(|| panic!("{name} in {mlsd}"));
        assert!(line.contains(&format!(";UNIX.mode={mode};")), "{line}");
    }
}

#[test]
fn listings_larger_than_a_chunk_are_complete_in_every_form() {
    // More entries than are sorted (1,024) and more bytes than one chunk (64 KiB).
    const FILES: usize = 3_000;
    let server = TestServer::start(&[]);
    let dir = server.root().join("many");
    fs::create_dir(&dir).expect("mkdir");
    let names: HashSet<String> = (0..FILES)
        .map(|i| format!("entry {i:05} {}", "m".repeat(40)))
        .collect();
    for name in &names {
        fs::File::create(dir.join(name)).expect("create");
    }
    let mut ftp = server.login();
    let check = |what: &str, listed: Vec<String>| {
        let unique: HashSet<String> = listed.iter().cloned().collect();
        assert_eq!(listed.len(), FILES, "{what}: one line per entry");
        assert_eq!(unique, names, "{what}: every name once");
    };
    let nlst = ftp.listing("NLST many");
    check(
        "NLST",
        nlst.lines()
            .map(|l| l.strip_prefix("many/").expect("many/ prefix").to_owned())
            .collect(),
    );
    let list = ftp.listing("LIST many");
    check(
        "LIST",
        list.lines()
            .map(|l| l[l.find(" entry ").expect("name") + 1..].to_owned())
            .collect(),
    );
    let mlsd = ftp.listing("MLSD many");
    check(
        "MLSD",
        mlsd.lines()
            .map(|l| l.split_once("; ").expect("facts; name").1.to_owned())
            .collect(),
    );
    let stat = ftp.expect("STAT many", 213);
    let lines: Vec<&str> = stat.text.lines().collect();
    assert_eq!(lines.last(), Some(&"213 End of status"));
    check(
        "STAT",
        lines[1..lines.len() - 1]
            .iter()
            .map(|l| l[l.find(" entry ").expect("name") + 1..].to_owned())
            .collect(),
    );
    ftp.expect("NOOP", 200);
}

/// The server's peak resident memory so far (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

#[test]
fn concurrent_listings_of_a_large_directory_stream_in_bounded_memory() {
    const FILES: usize = 40_000;
    const LISTINGS: usize = 8;
    let server = TestServer::start(&[]);
    let big = server.root().join("big");
    fs::create_dir(&big).expect("mkdir");
    // Long names make every entry count: the old code held each listing whole
    // (some 20 MiB here, per listing).
    let names: Vec<String> = (0..FILES)
        .map(|i| format!("{i:06}-{}", "n".repeat(120)))
        .collect();
    for name in &names {
        fs::File::create(big.join(name)).expect("create");
    }
    // Warm up (worker threads, allocator arenas) with one small listing each.
    let mut ftps: Vec<Ftp> = (0..LISTINGS).map(|_| server.login()).collect();
    for ftp in &mut ftps {
        assert_eq!(ftp.listing("NLST"), "big\r\n");
    }
    let before = peak_kib(server.pid());
    // Every client starts its MLSD and reads nothing until all have their 150: the
    // listings are in progress at once, each blocked on a full data connection.
    let barrier = Arc::new(Barrier::new(LISTINGS));
    let readers: Vec<_> = ftps
        .into_iter()
        .map(|mut ftp| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut data = ftp.epsv();
                ftp.expect("MLSD big", 150);
                barrier.wait();
                thread::sleep(std::time::Duration::from_millis(500));
                let mut text = String::new();
                data.read_to_string(&mut text).expect("read listing");
                ftp.expect_reply(226);
                text
            })
        })
        .collect();
    let texts: Vec<String> = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();
    let grown_mib = peak_kib(server.pid()).saturating_sub(before) / 1024;
    eprintln!("peak memory grew by {grown_mib} MiB during {LISTINGS} listings");
    for text in &texts {
        let mut seen = HashSet::with_capacity(FILES);
        for line in text.split_terminator("\r\n") {
            let (_, name) = line.split_once("; ").expect("facts; name");
            assert!(seen.insert(name), "{name} listed twice");
        }
        assert_eq!(seen.len(), FILES, "every name once");
        assert!(names.iter().all(|n| seen.contains(n.as_str())));
    }
    // Streamed: about 3 MiB in all here; built whole (the old code): about 170 MiB.
    assert!(
        grown_mib < 48,
        "peak memory grew by {grown_mib} MiB during {LISTINGS} listings"
    );
}
