//! The commands standard clients use beyond the basics: file management, resume,
//! append, ABOR, STAT, MLSD/MLST and HASH.

use std::fs;
use std::io::{Read, Write};

use crate::common::{assert_same, names_in, pattern, sha256, Ftp, TestServer};

#[test]
fn mkd_rmd_dele_and_rename() {
    let server = TestServer::start(&[]);
    let mut ftp = server.login();
    let r = ftp.expect("MKD new dir", 257);
    assert!(r.text.starts_with("\"/new dir\""), "{r:?}");
    ftp.expect("MKD new dir", 550);
    ftp.expect("XMKD new dir/inner", 257);
    ftp.expect("RMD new dir", 550); // not empty
    ftp.expect("XRMD new dir/inner", 250);
    ftp.stor("new dir/f.txt", b"content");
    ftp.expect("DELE new dir", 550); // a directory
    ftp.expect("RNFR new dir/f.txt", 350);
    ftp.expect("RNTO g.txt", 250);
    assert_eq!(
        fs::read(server.root().join("g.txt")).expect("read"),
        b"content"
    );
    ftp.expect("RNFR missing", 550);
    ftp.expect("RNTO x", 503);
    ftp.expect("RNFR g.txt", 350);
    ftp.expect("NOOP", 200);
    ftp.expect("RNTO h.txt", 503); // RNTO must follow RNFR at once
    ftp.expect("RNFR new dir", 350);
    ftp.expect("RNTO renamed dir", 250);
    ftp.expect("RMD renamed dir", 250);
    ftp.expect("DELE g.txt", 250);
    ftp.expect("DELE g.txt", 550);
    ftp.expect("RMD /", 550);
    ftp.expect("MKD .simple-ftp-part.x", 553);
    assert!(names_in(server.root()).is_empty());
}

#[test]
fn rest_resumes_downloads_and_uploads() {
    let server = TestServer::start(&[]);
    let whole = pattern(3 << 20, 21);
    fs::write(server.root().join("f.bin"), &whole).expect("write");
    let mut ftp = server.login();

    ftp.expect("REST 1000000", 350);
    let mut data = ftp.epsv();
    let started = ftp.expect("RETR f.bin", 150);
    assert!(
        started.text.contains("(2145728 bytes from 1000000)"),
        "{started:?}"
    );
    let mut tail = Vec::new();
    data.read_to_end(&mut tail).expect("read");
    assert_eq!(ftp.reply().code, 226);
    assert_same(&tail, &whole[1_000_000..], "RETR after REST");
    // A listing in between clears a pending REST.
    ftp.expect("REST 5", 350);
    ftp.listing("NLST");
    assert_same(&ftp.retr("f.bin"), &whole, "RETR after REST and NLST");
    // REST applies to one transfer only.
    assert_same(&ftp.retr("f.bin"), &whole, "RETR after that");
    ftp.expect("REST 99999999", 350);
    let _data = ftp.epsv();
    ftp.expect("RETR f.bin", 554);

    // Upload resume: keep the first part already there, send the rest.
    fs::write(server.root().join("up.bin"), &whole[..1_234_567]).expect("write");
    ftp.expect("REST 1234567", 350);
    ftp.stor("up.bin", &whole[1_234_567..]);
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &whole,
        "STOR after REST",
    );
    ftp.expect("REST 5", 350);
    let _data = ftp.epsv();
    ftp.expect("STOR nothing-here.bin", 554);
}

#[test]
fn appe_appends_and_creates() {
    let server = TestServer::start(&[]);
    let mut ftp = server.login();
    let mut data = ftp.epsv();
    ftp.expect("APPE log.txt", 150);
    data.write_all(b"one\n").expect("write");
    drop(data);
    assert_eq!(ftp.reply().code, 226);
    let mut data = ftp.epsv();
    ftp.expect("APPE log.txt", 150);
    data.write_all(b"two\n").expect("write");
    drop(data);
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(
        fs::read(server.root().join("log.txt")).expect("read"),
        b"one\ntwo\n"
    );
}

#[test]
fn abor_stops_a_download_in_progress() {
    let server = TestServer::start(&[]);
    fs::write(server.root().join("big.bin"), pattern(64 << 20, 5)).expect("write");
    let mut ftp = server.login();
    ftp.expect("ABOR", 225);
    let mut data = ftp.epsv();
    ftp.expect("RETR big.bin", 150);
    let mut some = vec![0u8; 1 << 20];
    data.read_exact(&mut some).expect("first MiB");
    // Telnet IP and Synch, then ABOR, as RFC 959 clients send it.
    ftp.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    // Keep reading so the server reaches its next look at the control connection.
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
    assert!(
        some.len() + rest.len() < 64 << 20,
        "the transfer was cut short"
    );
    assert_eq!(ftp.reply().code, 426);
    assert_eq!(ftp.reply().code, 226);
    ftp.expect("NOOP", 200);
    assert_eq!(ftp.retr("big.bin").len(), 64 << 20);
}

#[test]
fn commands_sent_during_a_transfer_are_answered_after_it() {
    let server = TestServer::start(&[]);
    let whole = pattern(24 << 20, 6);
    fs::write(server.root().join("big.bin"), &whole).expect("write");
    let mut ftp = server.login();
    let mut data = ftp.epsv();
    ftp.expect("RETR big.bin", 150);
    ftp.send_raw(b"NOOP\r\nPWD\r\n");
    let mut got = Vec::new();
    data.read_to_end(&mut got).expect("read");
    assert_same(&got, &whole, "download");
    assert_eq!(ftp.reply().code, 226);
    assert_eq!(ftp.reply().code, 200);
    assert_eq!(ftp.reply().code, 257);
}

#[test]
fn commands_past_the_queue_limit_during_a_transfer_get_500_in_order() {
    let server = TestServer::start(&[]);
    let whole = pattern(24 << 20, 7);
    fs::write(server.root().join("big.bin"), &whole).expect("write");
    let mut ftp = server.login();
    let mut data = ftp.epsv();
    ftp.expect("RETR big.bin", 150);
    // 40 commands in one write, before any data is read: the session sees them all
    // at its next look at the control connection, in the middle of the transfer.
    ftp.send_raw("NOOP\r\n".repeat(40).as_bytes());
    let mut got = Vec::new();
    data.read_to_end(&mut got).expect("read");
    assert_same(&got, &whole, "download");
    assert_eq!(ftp.reply().code, 226);
    for i in 0..32 {
        assert_eq!(ftp.reply().code, 200, "queued command {i}");
    }
    for i in 32..40 {
        let r = ftp.reply();
        assert_eq!(r.code, 500, "command {i} past the limit: {r:?}");
    }
    ftp.expect("NOOP", 200);
}

#[test]
fn mlsd_and_mlst_give_rfc_3659_facts() {
    let server = TestServer::start(&[]);
    fs::create_dir(server.root().join("sub")).expect("mkdir");
    fs::write(server.root().join("a file.txt"), "12345").expect("write");
    let mut ftp = server.login();
    let feat = ftp.expect("FEAT", 211);
    assert!(
        feat.text
            .contains(" MLST type*;size*;modify*;perm*;unique*;"),
        "{feat:?}"
    );
    let text = ftp.listing("MLSD");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("type=file;size=5;modify="), "{text}");
    assert!(lines[0].ends_with("; a file.txt"), "{text}");
    assert!(lines[0].contains(";perm=adfrw;unique="), "{text}");
    assert!(lines[1].starts_with("type=dir;size="), "{text}");
    assert!(lines[1].ends_with("; sub"), "{text}");

    let r = ftp.expect("MLST a file.txt", 250);
    let fact_lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(fact_lines.len(), 3, "{r:?}");
    assert!(fact_lines[1].starts_with(" type=file;size=5;"), "{r:?}");
    assert!(fact_lines[1].ends_with("; /a file.txt"), "{r:?}");

    ftp.expect("OPTS MLST size;type;", 200);
    let dir_size = fs::metadata(server.root().join("sub")).expect("meta").len();
    assert_eq!(
        ftp.listing("MLSD"),
        format!("type=file;size=5; a file.txt\r\ntype=dir;size={dir_size}; sub\r\n")
    );
    let _data = ftp.epsv();
    ftp.expect("MLSD a file.txt", 501);
    ftp.expect("MLST missing", 550);
}

#[test]
fn hash_gives_the_sha256_of_a_file() {
    let server = TestServer::start(&[]);
    let bytes = pattern(1 << 20, 8);
    fs::write(server.root().join("h.bin"), &bytes).expect("write");
    let mut ftp = server.login();
    let feat = ftp.expect("FEAT", 211);
    assert!(feat.text.contains(" HASH SHA-256*;SHA-512"), "{feat:?}");
    let r = ftp.expect("HASH h.bin", 213);
    assert_eq!(
        r.text,
        format!("SHA-256 0-{} {} h.bin", bytes.len(), sha256(&bytes))
    );
    ftp.expect("OPTS HASH SHA-512", 200);
    let r = ftp.expect("HASH h.bin", 213);
    assert!(
        r.text.starts_with("SHA-512 0-1048576 ") && r.text.len() > 128,
        "{r:?}"
    );
    ftp.expect("OPTS HASH MD4", 501);
    ftp.expect("HASH missing", 550);
}

#[test]
fn stat_and_site_help() {
    let server = TestServer::start(&[]);
    fs::write(server.root().join("s.txt"), "x").expect("write");
    let mut ftp = server.login();
    let r = ftp.expect("STAT", 211);
    assert!(
        r.text.contains("Logged in as anonymous") && r.text.contains("TYPE: I"),
        "{r:?}"
    );
    let r = ftp.expect("STAT /", 213);
    assert!(r.text.lines().any(|l| l.ends_with(" s.txt")), "{r:?}");
    ftp.expect("SITE HELP", 214);
    ftp.expect("SITE CHMOD 777 s.txt", 504);
    let mut before = Ftp::connect(server.addr);
    before.expect("STAT", 530);
}

/// Issue 5, found by Python's ftplib: `FTP.abort()` sends `ABOR\r\n` with MSG_OOB,
/// which makes the final `\n` TCP urgent data. Without SO_OOBINLINE the kernel takes
/// that byte out of the stream and the server waits forever for the end of the line.
#[test]
fn abor_sent_as_urgent_data_is_answered() {
    let server = TestServer::start(&[]);
    let mut ftp = server.login();
    ftp.send_urgent(b"ABOR\r\n");
    assert_eq!(ftp.reply().code, 225);
    // Telnet IP, then Synch's data mark as the urgent byte, as RFC 959 §4.1.3 asks.
    ftp.send_raw(b"\xff\xf4");
    ftp.send_urgent(b"\xff\xf2");
    ftp.send_raw(b"ABOR\r\n");
    assert_eq!(ftp.reply().code, 225);
    ftp.expect("NOOP", 200);
}

/// Issue 5, found by Python's ftplib: a client that calls `abort()` from inside its
/// download callback stops reading the data connection until ABOR is answered. The
/// server, blocked writing into the full socket, must still notice the ABOR rather
/// than wait out the data timeout (here longer than the test's reply timeout).
#[test]
fn abor_is_noticed_while_the_client_stops_reading_the_download() {
    let server = TestServer::start(&["--data-timeout", "600"]);
    let whole = pattern(64 << 20, 31);
    fs::write(server.root().join("big.bin"), &whole).expect("write");
    let mut ftp = server.login();
    let mut data = ftp.epsv();
    ftp.expect("RETR big.bin", 150);
    let mut first = vec![0u8; 64 << 10];
    data.read_exact(&mut first).expect("first bytes");
    ftp.send_raw(b"ABOR\r\n");
    assert_eq!(ftp.reply().code, 426);
    assert_eq!(ftp.reply().code, 226);
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
    first.extend_from_slice(&rest);
    assert!(first.len() < whole.len(), "the download was cut short");
    assert_same(&first, &whole[..first.len()], "the bytes before ABOR");
    ftp.expect("NOOP", 200);
    assert_same(&ftp.retr("big.bin"), &whole, "a download after ABOR");
}

/// Issue 5: the same for an upload the client stops sending: the ABOR is noticed,
/// and the partial upload is discarded.
#[test]
fn abor_is_noticed_while_the_client_stops_sending_the_upload() {
    let server = TestServer::start(&["--data-timeout", "600"]);
    let mut ftp = server.login();
    let mut data = ftp.epsv();
    ftp.expect("STOR half.bin", 150);
    data.write_all(&pattern(1 << 20, 32)).expect("send a part");
    ftp.send_raw(b"ABOR\r\n");
    assert_eq!(ftp.reply().code, 426);
    assert_eq!(ftp.reply().code, 226);
    drop(data);
    ftp.expect("NOOP", 200);
    assert!(
        names_in(server.root()).is_empty(),
        "{:?}",
        names_in(server.root())
    );
}

/// REIN (RFC 959 §4.1.1) forgets the login, directory, type, restart offset, rename
/// and data connection, and answers 220; EPRT with an unknown network protocol gets
/// 522 naming the ones we support (RFC 2428 §2). Issue 11.
#[test]
fn rein_resets_the_session_and_eprt_names_its_protocols() {
    let server = TestServer::start(&[]);
    std::fs::create_dir(server.root().join("sub")).expect("mkdir");
    std::fs::write(server.root().join("sub/f"), "x").expect("write");
    let mut ftp = server.login();
    let r = ftp.expect("EPRT |3|::1|5282|", 522);
    assert!(r.text.contains("(1,2)"), "{r:?}");
    ftp.expect("CWD sub", 250);
    ftp.expect("TYPE I", 200);
    ftp.expect("REST 1", 350);
    ftp.expect("RNFR f", 350);
    ftp.expect("EPSV", 229);
    ftp.expect("REIN", 220);
    ftp.expect("PWD", 530);
    ftp.expect("RNTO g", 530);
    ftp.expect("USER anonymous", 331);
    ftp.expect("PASS test@", 230);
    let pwd = ftp.expect("PWD", 257);
    assert!(pwd.text.starts_with("\"/\""), "{pwd:?}");
    ftp.expect("RNTO g", 503);
    ftp.expect("RETR sub/f", 425);
    let stat = ftp.expect("STAT", 211);
    assert!(stat.text.contains("TYPE: A"), "{stat:?}");
    assert!(stat.text.contains("No data connection"), "{stat:?}");
    // The restart offset is gone: the whole file comes back.
    assert_eq!(ftp.retr("sub/f"), b"x");
    assert!(ftp.expect("HELP", 214).text.contains("REIN"));
}
