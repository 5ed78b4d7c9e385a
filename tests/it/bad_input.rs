//! Hostile and broken input over the wire: the server answers with errors, never
//! panics, never touches anything outside the root, and keeps serving everyone.

use std::fs;

use crate::common::{names_in, pattern, Ftp, TestServer};

/// Sends `garbage` then `NOOP`, and checks every reply before the NOOP's is an error.
/// Returns how many lines the server answered.
fn garbage_then_noop(ftp: &mut Ftp, garbage: &[u8]) -> usize {
    let mut bytes = garbage.to_vec();
    bytes.extend_from_slice(b"\r\nNOOP\r\n");
    ftp.send_raw(&bytes);
    let mut answered = 0;
    loop {
        let r = ftp.reply();
        if r.code == 200 && r.text == "NOOP ok" {
            return answered;
        }
        assert!(
            (500..=553).contains(&r.code) || r.code == 421,
            "garbage got a success reply: {r:?}"
        );
        assert_ne!(r.code, 421, "the session was closed");
        answered += 1;
    }
}

#[test]
fn random_binary_garbage_gets_errors_and_the_session_goes_on() {
    let server = TestServer::start(&[]);
    let mut before = Ftp::connect(server.addr);
    let mut after = server.login();
    let mut lines = 0;
    for seed in 0..8 {
        // Random bytes, with line breaks sprinkled in so many "commands" arrive.
        let mut garbage = pattern(16 * 1024, seed);
        for (i, b) in garbage.iter_mut().enumerate() {
            if i % 97 == 0 {
                *b = b'\n';
            }
        }
        lines += garbage_then_noop(&mut before, &garbage);
        lines += garbage_then_noop(&mut after, &garbage);
    }
    assert!(lines > 1000, "only {lines} garbage lines were answered");
    eprintln!("bad input: {lines} lines of random bytes answered with errors");
    // Still logged out, still logged in, and other clients are served.
    before.expect("PWD", 530);
    after.expect("PWD", 257);
    let mut other = server.login();
    other.stor("ok.txt", b"still serving");
    assert_eq!(other.retr("ok.txt"), b"still serving");
    assert_eq!(fs::read_dir(server.root()).expect("dir").count(), 1);
}

#[test]
fn malformed_arguments_get_501_504_or_522() {
    let server = TestServer::start(&[]);
    let mut ftp = server.login();
    for (line, code) in [
        ("PORT 1,2,3,4,5", 501),
        ("PORT 300,0,0,1,4,1", 501),
        ("PORT a,b,c,d,e,f", 501),
        ("EPRT", 501),
        ("EPRT |1|not-an-ip|2000|", 501),
        // RFC 2428 §2: an unsupported network protocol is 522 (issue 11).
        ("EPRT |9|127.0.0.1|2000|", 522),
        ("EPSV x", 501),
        ("TYPE", 501),
        ("TYPE Q", 501),
        ("MODE", 501),
        ("CWD", 501),
        ("STOR", 501),
        ("SIZE", 501),
        ("USER", 501),
        ("OPTS", 501),
        ("OPTS FOO", 501),
        ("OPTS UTF8 OFF", 504),
        ("SYST now", 501),
    ] {
        let r = ftp.cmd(line);
        assert_eq!(r.code, code, "{line}: {r:?}");
    }
    ftp.expect("NOOP", 200);
}

#[test]
fn commands_before_login_get_530_and_touch_nothing() {
    let server = TestServer::start(&[]);
    fs::write(server.root().join("f.txt"), "f").expect("write");
    let mut ftp = Ftp::connect(server.addr);
    for line in [
        "RETR f.txt",
        "STOR g.txt",
        "LIST",
        "NLST",
        "CWD /",
        "CDUP",
        "PWD",
        "SIZE f.txt",
        "MDTM f.txt",
        "PASV",
        "EPSV",
        "PORT 127,0,0,1,200,1",
        "EPRT |1|127.0.0.1|5000|",
        "TYPE I",
    ] {
        assert_eq!(ftp.cmd(line).code, 530, "{line}");
    }
    assert_eq!(fs::read_dir(server.root()).expect("dir").count(), 1);
    // These work before login, as clients expect.
    ftp.expect("FEAT", 211);
    ftp.expect("SYST", 215);
    ftp.expect("NOOP", 200);
    ftp.expect("HELP", 214);
}

#[test]
fn listings_and_uploads_with_hostile_paths_stay_inside_the_root() {
    let outer = tempfile::tempdir().expect("tempdir");
    let root = outer.path().join("root");
    fs::create_dir_all(root.join("sub")).expect("mkdir");
    fs::write(outer.path().join("secret.txt"), "SENTINEL").expect("write");
    std::os::unix::fs::symlink(outer.path(), root.join("dirlink")).expect("symlink");
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), root.join("link"))
        .expect("symlink");
    let server = TestServer::start_in(outer, root, &[]);
    let outside = server.dir.path().to_path_buf();
    let mut ftp = server.login();
    for listing in ["LIST", "NLST"] {
        for attack in ["..", "../..", "/..", "sub/../..", "//..//"] {
            let text = ftp.listing(&format!("{listing} {attack}"));
            assert!(!text.contains("secret.txt"), "{listing} {attack}: {text}");
            assert!(
                text.contains("sub"),
                "{listing} {attack} lists the root: {text}"
            );
            // The symlinks that lead out are not listed at all.
            assert!(
                !text.contains("dirlink") && !text.contains("link"),
                "{text}"
            );
        }
        for attack in ["dirlink", "dirlink/", "link", "../root", "/etc"] {
            let _data = ftp.epsv();
            let r = ftp.cmd(&format!("{listing} {attack}"));
            assert_eq!(r.code, 550, "{listing} {attack}: {r:?}");
        }
    }
    for attack in ["link", "dirlink/new.txt", "/etc/passwd", "../../../tmp/x"] {
        let _data = ftp.epsv();
        let r = ftp.cmd(&format!("STOR {attack}"));
        assert_eq!(r.code, 550, "STOR {attack}: {r:?}");
    }
    assert_eq!(names_in(&outside), ["root", "secret.txt", "server.log"]);
    assert_eq!(
        fs::read_to_string(outside.join("secret.txt")).expect("sentinel"),
        "SENTINEL"
    );
}
