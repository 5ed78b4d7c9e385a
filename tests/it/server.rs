//! The server's protocol behaviour, driven over a raw control connection.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use crate::common::{assert_same, eventually, names_in, pattern, Ftp, TestServer, WAIT};

#[test]
fn greeting_login_and_basic_commands() {
    let server = TestServer::start(&[]);
    let mut ftp = Ftp::connect(server.addr);
    assert_eq!(ftp.greeting.code, 220);
    ftp.expect("SYST", 215);
    ftp.expect("PWD", 530);
    ftp.expect("PASS x", 503);
    ftp.expect("user ANONYMOUS", 331);
    ftp.expect("pass a@b", 230);
    let r = ftp.expect("PWD", 257);
    assert!(r.text.starts_with("\"/\""), "{r:?}");
    ftp.expect("TYPE A", 200);
    ftp.expect("type i", 200);
    ftp.expect("TYPE E", 504);
    ftp.expect("MODE S", 200);
    ftp.expect("MODE B", 504);
    ftp.expect("STRU F", 200);
    ftp.expect("NOOP", 200);
    ftp.expect("OPTS UTF8 ON", 200);
    ftp.expect("ALLO 100", 202);
    ftp.expect("FROB", 500);
    ftp.expect("ACCT x", 502);
    ftp.expect("RETR", 501);
    let help = ftp.expect("HELP", 214);
    assert!(
        help.text.contains("RETR") && help.text.contains("EPSV"),
        "{help:?}"
    );
    ftp.expect("QUIT", 221);
    assert!(ftp.try_reply().is_none(), "server closes after QUIT");
}

#[test]
fn feat_lists_the_extensions() {
    let server = TestServer::start(&[]);
    let mut ftp = Ftp::connect(server.addr);
    let r = ftp.expect("FEAT", 211);
    let features: Vec<&str> = r.text.lines().map(str::trim).collect();
    for f in ["EPRT", "EPSV", "MDTM", "PASV", "SIZE", "UTF8"] {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
}

#[test]
fn unknown_user_cannot_log_in() {
    let server = TestServer::start(&[]);
    let mut ftp = Ftp::connect(server.addr);
    ftp.expect("USER root", 331);
    ftp.expect("PASS toor", 530);
    ftp.expect("RETR x", 530);
}

#[test]
fn retr_and_stor_are_byte_exact_over_every_data_mode() {
    let server = TestServer::start(&[]);
    let all_bytes: Vec<u8> = (0..=255u8).cycle().take(256 * 40).collect();
    fs::write(server.root().join("all.bin"), &all_bytes).expect("write");
    let mut ftp = server.login();

    // EPSV
    assert_same(&ftp.retr("all.bin"), &all_bytes, "EPSV");
    // PASV
    let mut data = ftp.pasv();
    ftp.expect("RETR all.bin", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).expect("read");
    assert_eq!(ftp.reply().code, 226);
    assert_same(&got, &all_bytes, "PASV");
    // EPRT and PORT: the server connects to us.
    for verb in ["EPRT", "PORT"] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let arg = if verb == "EPRT" {
            format!("EPRT |1|127.0.0.1|{port}|")
        } else {
            format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff)
        };
        ftp.expect(&arg, 200);
        ftp.expect("RETR all.bin", 150);
        let (mut data, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        data.read_to_end(&mut got).expect("read");
        assert_eq!(ftp.reply().code, 226);
        assert_same(&got, &all_bytes, verb);
    }

    for (name, bytes) in [
        ("empty", Vec::new()),
        ("small.txt", b"hello\r\nworld\n".to_vec()),
        ("big.bin", pattern(3 << 20, 7)),
    ] {
        ftp.stor(name, &bytes);
        assert_same(
            &fs::read(server.root().join(name)).expect("read"),
            &bytes,
            name,
        );
        assert_same(&ftp.retr(name), &bytes, name);
        let size = ftp.expect(&format!("SIZE {name}"), 213);
        assert_eq!(size.text, bytes.len().to_string());
    }
}

#[test]
fn transfer_without_data_setup_gets_425_and_missing_files_550() {
    let server = TestServer::start(&[]);
    fs::write(server.root().join("a"), "a").expect("write");
    let mut ftp = server.login();
    ftp.expect("RETR a", 425);
    let _data = ftp.epsv();
    ftp.expect("RETR missing.txt", 550);
    ftp.expect("SIZE missing.txt", 550);
    ftp.expect("MDTM missing.txt", 550);
    ftp.expect("CWD missing", 550);
    ftp.expect("CWD a", 550);
    // The failed RETR dropped the data plan: a transfer needs a new one.
    ftp.expect("RETR a", 425);
}

#[test]
fn directories_cwd_and_relative_and_absolute_paths() {
    let server = TestServer::start(&[]);
    fs::create_dir_all(server.root().join("sub/deeper")).expect("mkdir");
    fs::write(server.root().join("sub/deeper/f.txt"), "deep").expect("write");
    let mut ftp = server.login();
    ftp.expect("CWD sub", 250);
    assert!(ftp.expect("PWD", 257).text.starts_with("\"/sub\""));
    assert_eq!(ftp.retr("deeper/f.txt"), b"deep");
    assert_eq!(ftp.retr("/sub/deeper/f.txt"), b"deep");
    ftp.stor("deeper/new.txt", b"new");
    ftp.stor("/top.txt", b"top");
    assert_eq!(
        fs::read(server.root().join("sub/deeper/new.txt")).expect("r"),
        b"new"
    );
    assert_eq!(fs::read(server.root().join("top.txt")).expect("r"), b"top");
    ftp.expect("CDUP", 250);
    assert!(ftp.expect("PWD", 257).text.starts_with("\"/\""));
    ftp.expect("CDUP", 250);
    assert!(
        ftp.expect("PWD", 257).text.starts_with("\"/\""),
        "CDUP stops at /"
    );
    ftp.expect("STOR /nodir/x", 550);
    ftp.expect("STOR sub", 550);
}

#[test]
fn mdtm_reports_the_modification_time() {
    let server = TestServer::start(&[]);
    let path = server.root().join("t.txt");
    fs::write(&path, "t").expect("write");
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
    let mut ftp = server.login();
    let r = ftp.expect("MDTM t.txt", 213);
    assert_eq!(r.text, "20231114221320");
}

#[test]
fn listings_show_files_and_directories_but_no_temporary_uploads() {
    let server = TestServer::start(&[]);
    fs::create_dir(server.root().join("dir")).expect("mkdir");
    fs::write(server.root().join("file one.txt"), "12345").expect("write");
    fs::write(server.root().join(".simple-ftp-part.abc"), "partial").expect("write");
    let mut ftp = server.login();
    let list = ftp.listing("LIST");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].starts_with('d') && lines[0].ends_with(" dir"),
        "{list}"
    );
    assert!(
        lines[1].starts_with("-rw") && lines[1].ends_with(" file one.txt"),
        "{list}"
    );
    assert!(lines[1].contains(" 5 "), "size column: {list}");
    assert!(list.contains("\r\n"), "listing lines end in CRLF");
    assert_eq!(ftp.listing("NLST"), "dir\r\nfile one.txt\r\n");
    assert_eq!(ftp.listing("LIST -la"), list);
    let one = ftp.listing("LIST file one.txt");
    assert!(one.trim_end().ends_with(" file one.txt") && one.lines().count() == 1);
    ftp.expect("RETR .simple-ftp-part.abc", 553);
    ftp.expect("STOR .simple-ftp-part.abc", 553);
}

#[test]
fn a_long_line_is_refused_and_the_session_goes_on() {
    let server = TestServer::start(&[]);
    let mut ftp = server.login();
    let mut line = vec![b'A'; 1 << 20];
    line.extend_from_slice(b"\r\n");
    ftp.send_raw(&line);
    assert_eq!(ftp.reply().code, 500);
    ftp.expect("NOOP", 200);
    ftp.send_raw(b"\xff\xfe\x00garbage\r\n");
    assert!([500, 501].contains(&ftp.reply().code));
    ftp.send_raw(b"RETR a\x00b\r\n");
    assert_eq!(ftp.reply().code, 501);
    ftp.send_raw(b"noop\n");
    assert_eq!(ftp.reply().code, 200, "bare LF ends a command");
}

#[test]
fn paths_never_leave_the_root() {
    let outer = tempfile::tempdir().expect("tempdir");
    let root = outer.path().join("root");
    fs::create_dir_all(root.join("sub")).expect("mkdir");
    fs::write(outer.path().join("secret.txt"), "SENTINEL").expect("write");
    std::os::unix::fs::symlink(outer.path().join("secret.txt"), root.join("link"))
        .expect("symlink");
    std::os::unix::fs::symlink(outer.path(), root.join("dirlink")).expect("symlink");
    let server = TestServer::start_in(outer, root, &[]);
    let outside = server.dir.path().to_path_buf();
    let mut ftp = server.login();
    for attack in [
        "../secret.txt",
        "../../secret.txt",
        "/../secret.txt",
        "sub/../../secret.txt",
        "..\\secret.txt",
        "//../secret.txt",
        "%2e%2e/secret.txt",
        "link",
        "dirlink/secret.txt",
    ] {
        for verb in ["RETR", "SIZE", "MDTM"] {
            let mut data = (verb == "RETR").then(|| ftp.epsv());
            let r = ftp.cmd(&format!("{verb} {attack}"));
            assert_eq!(r.code, 550, "{verb} {attack}: {r:?}");
            if let Some(d) = data.as_mut() {
                let mut got = Vec::new();
                let _ = d.read_to_end(&mut got);
                assert!(got.is_empty(), "{verb} {attack} sent data");
            }
        }
        let r = ftp.cmd(&format!("CWD {attack}"));
        assert_eq!(r.code, 550, "CWD {attack}");
    }
    // Writes land inside the root whatever the path says, or not at all.
    ftp.stor("../escaped.txt", b"x");
    assert!(server.root().join("escaped.txt").exists());
    assert!(!outside.join("escaped.txt").exists());
    ftp.expect("STOR dirlink/escaped2.txt", 550);
    assert!(!outside.join("escaped2.txt").exists());
    ftp.expect("CWD ..", 250);
    assert!(ftp.expect("PWD", 257).text.starts_with("\"/\""));
    assert_eq!(
        fs::read_to_string(outside.join("secret.txt")).expect("sentinel"),
        "SENTINEL"
    );
}

#[test]
fn active_mode_only_to_the_client_itself_and_unprivileged_ports() {
    let server = TestServer::start(&[]);
    let mut ftp = server.login();
    ftp.expect("PORT 10,0,0,1,200,10", 504);
    ftp.expect("EPRT |1|192.0.2.7|5000|", 504);
    ftp.expect("PORT 127,0,0,1,0,21", 504);
    ftp.expect("EPRT |1|127.0.0.1|80|", 504);
    ftp.expect("EPRT |2|::1|5000|", 504);
    ftp.expect("EPSV 2", 522);
    ftp.expect("EPSV ALL", 200);
    ftp.expect("PASV", 503);
    ftp.expect("EPRT |1|127.0.0.1|5000|", 503);
    let _data = ftp.epsv();
}

#[test]
fn a_data_connection_from_another_address_is_refused() {
    let server = TestServer::start(&["--data-timeout", "2"]);
    fs::write(server.root().join("f"), "private").expect("write");
    let mut ftp = server.login();
    let port = ftp.epsv_port();
    // Connect from 127.0.0.2, a different loopback address than the control connection.
    let thief =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let src: std::net::SocketAddr = "127.0.0.2:0".parse().expect("addr");
    thief.bind(&src.into()).expect("bind 127.0.0.2");
    let target = std::net::SocketAddr::new(server.addr.ip(), port);
    thief
        .connect_timeout(&target.into(), WAIT)
        .expect("connect");
    let mut thief = TcpStream::from(thief);
    thief.set_read_timeout(Some(WAIT)).expect("timeout");
    ftp.expect("RETR f", 150);
    assert_eq!(ftp.reply().code, 425, "only the client may connect");
    let mut got = Vec::new();
    let _ = thief.read_to_end(&mut got);
    assert!(got.is_empty(), "a stranger received data");
}

#[test]
fn a_client_that_drops_mid_upload_leaves_the_old_file_intact() {
    let server = TestServer::start(&[]);
    let target = server.root().join("keep.bin");
    fs::write(&target, b"the good version").expect("write");
    let mut ftp = server.login();
    let mut data = ftp.epsv();
    ftp.expect("STOR keep.bin", 150);
    data.write_all(&pattern(1 << 20, 1)).expect("send half");
    // Vanish: control first, then the data connection.
    drop(ftp);
    drop(data);
    // A new session still works and sees the old version; no temporary file remains.
    let mut ftp = server.login();
    eventually("no temporary file left beside keep.bin", || {
        names_in(server.root()) == ["keep.bin"]
    });
    assert_eq!(ftp.retr("keep.bin"), b"the good version");
}

/// A session keeps its passive listener after a transfer that used it; the next
/// EPSV names the same port, and connections left waiting on it are dropped first,
/// so each transfer gets the connection made for it. A transfer that fails before
/// taking its connection closes the listener instead.
#[test]
fn the_passive_listener_serves_the_next_transfer_without_stale_connections() {
    let server = TestServer::start(&[]);
    let first = pattern(70_000, 11);
    let second = pattern(5_000, 12);
    fs::write(server.root().join("first.bin"), &first).expect("write");
    fs::write(server.root().join("second.bin"), &second).expect("write");
    let mut ftp = server.login();

    let port = ftp.epsv_port();
    assert_same(&ftp.retr_on(port, "first.bin"), &first, "first");

    // A stray connection to the kept port before the next EPSV is dropped by it.
    let mut stale = ftp.data_to(port);
    assert_eq!(ftp.epsv_port(), port, "the listener is reused");
    assert_same(&ftp.retr_on(port, "second.bin"), &second, "second");
    let mut byte = [0u8; 1];
    assert!(
        matches!(stale.read(&mut byte), Ok(0) | Err(_)),
        "the stale connection got no data"
    );

    // Uploads reuse it too.
    assert_eq!(ftp.epsv_port(), port);
    let mut data = ftp.data_to(port);
    ftp.expect("STOR up.bin", 150);
    data.write_all(&second).expect("write");
    drop(data);
    ftp.expect_reply(226);
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &second,
        "upload",
    );

    // A transfer that fails before it takes its connection closes the listener: the
    // next EPSV opens another port, and the connection made for the failed one is
    // not handed to a later transfer.
    assert_eq!(ftp.epsv_port(), port);
    let _unused = ftp.data_to(port);
    ftp.expect("RETR missing.bin", 550);
    let next = ftp.epsv_port();
    assert_ne!(next, port, "a listener whose transfer failed is not kept");
    assert_same(&ftp.retr_on(next, "first.bin"), &first, "after a failure");
}

/// With `--pasv-ports` the range is shared by every session, so a session holds a
/// port only until its transfer: each EPSV opens a new listener.
///
/// A new listener may by chance get the port the last one had (other servers on this
/// machine hold ports of the same range, and the server then tries the next ones of its
/// scrambled order, which comes back near a port after about a dozen), so one repeat
/// proves nothing; a kept listener would give the same port every time.
#[test]
fn with_a_configured_port_range_listeners_are_not_kept() {
    let server = TestServer::start(&["--pasv-ports", "40000-40999"]);
    let body = pattern(3_000, 13);
    fs::write(server.root().join("f.bin"), &body).expect("write");
    let mut ftp = server.login();
    let mut ports = Vec::new();
    for i in 0..4 {
        let port = ftp.epsv_port();
        assert!((40000..=40999).contains(&port), "{port}");
        assert_same(&ftp.retr_on(port, "f.bin"), &body, &format!("transfer {i}"));
        ports.push(port);
    }
    ports.dedup();
    assert!(
        ports.len() > 1,
        "a new listener for each transfer: {ports:?}"
    );
}

/// A small file whose data connection is already there goes out at once, with its
/// 150 and 226 after the data; a client that connects only after the 150 (or a file
/// too big to send at once) gets the 150 first, as always. Every byte arrives in each
/// case.
#[test]
fn small_files_go_out_at_once_and_late_connections_still_get_150_first() {
    let server = TestServer::start(&[]);
    let small = pattern(4_096, 21);
    let edge = pattern(64 * 1024, 22);
    let large = pattern(3 * 1024 * 1024 + 5, 23);
    fs::write(server.root().join("small.bin"), &small).expect("write");
    fs::write(server.root().join("edge.bin"), &edge).expect("write");
    fs::write(server.root().join("large.bin"), &large).expect("write");
    let mut ftp = server.login();
    for (name, want) in [
        ("small.bin", &small),
        ("edge.bin", &edge),
        ("large.bin", &large),
    ] {
        // Connected before RETR, as clients do: the 150 names the size either way.
        let mut data = ftp.epsv();
        let mark = ftp.expect(&format!("RETR {name}"), 150);
        assert!(
            mark.text.contains(&format!("({} bytes)", want.len())),
            "{mark:?}"
        );
        let mut got = Vec::new();
        data.read_to_end(&mut got).expect("read");
        assert_same(&got, want, name);
        let done = ftp.expect_reply(226);
        assert!(
            done.text.contains(&format!("{} bytes", want.len())),
            "{done:?}"
        );

        // Connecting only after the 150: the server must not wait for the connection
        // before it says 150.
        let port = ftp.epsv_port();
        ftp.expect(&format!("RETR {name}"), 150);
        let mut data = ftp.data_to(port);
        let mut got = Vec::new();
        data.read_to_end(&mut got).expect("read");
        assert_same(&got, want, name);
        ftp.expect_reply(226);
    }
    // The session goes on in step.
    ftp.expect("NOOP", 200);
    // A missing file is still a plain 550, with no 150 before it.
    let _data = ftp.epsv();
    ftp.expect("RETR missing.bin", 550);
    ftp.expect("NOOP", 200);
}

/// A kept listener serves 64 transfers; the next PASV/EPSV opens a new port, so
/// TIME-WAIT connections to one port do not pile up without end.
#[test]
fn a_kept_listener_is_replaced_after_64_transfers() {
    let server = TestServer::start(&[]);
    let body = pattern(100, 31);
    fs::write(server.root().join("f.bin"), &body).expect("write");
    let mut ftp = server.login();
    let first = ftp.epsv_port();
    assert_same(&ftp.retr_on(first, "f.bin"), &body, "transfer 1");
    for n in 2..=64 {
        let port = ftp.epsv_port();
        assert_eq!(port, first, "transfer {n} reuses the listener");
        assert_same(&ftp.retr_on(port, "f.bin"), &body, "transfer");
    }
    let fresh = ftp.epsv_port();
    assert_ne!(fresh, first, "a new port after 64 transfers");
    assert_same(&ftp.retr_on(fresh, "f.bin"), &body, "transfer 65");
}

/// A FIFO in the served tree is refused as not a plain file, whether it is reached
/// directly or through a symlink (the two ways the server opens a download); opening
/// it must not block the session.
#[test]
fn a_fifo_is_refused_without_blocking_the_session() {
    let server = TestServer::start(&[]);
    let fifo = server.root().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo failed");
    std::os::unix::fs::symlink("pipe", server.root().join("via")).expect("symlink");
    let mut ftp = server.login();
    for name in ["pipe", "via"] {
        let _data = ftp.epsv();
        let r = ftp.expect(&format!("RETR {name}"), 550);
        assert!(r.text.contains("Not a plain file"), "{r:?}");
    }
    ftp.expect("NOOP", 200);
}
