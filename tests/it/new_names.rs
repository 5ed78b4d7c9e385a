//! Names the server gives new files: STOU's unique names (RFC 959; RFC 1123 §4.1.2.9),
//! and new names with control characters refused (issue 11 item 9).

use std::fs;
use std::io::{Read, Write};

use crate::common::{have, names_in, python, require, TestServer};

#[test]
fn new_names_with_control_characters_are_refused() {
    let server = TestServer::start(&[]);
    // One existing name with a CR (made locally): it stays readable and removable.
    fs::write(server.root().join("old\rname"), b"old").expect("write");
    let mut ftp = server.login();
    for bad in ["a\rb", "tab\there", "bell\x07", "del\x7f", "esc\x1b[1m"] {
        for verb in ["STOR", "APPE"] {
            let _data = ftp.epsv();
            ftp.expect(&format!("{verb} {bad}"), 553);
        }
        ftp.expect(&format!("MKD {bad}"), 553);
        fs::write(server.root().join("plain"), b"p").expect("write");
        ftp.expect("RNFR plain", 350);
        ftp.expect(&format!("RNTO {bad}"), 553);
        // A good directory name does not make a bad leaf good.
        ftp.expect(&format!("MKD dir{}", bad.len()), 257);
        ftp.expect(&format!("MKD dir{}/{bad}", bad.len()), 553);
    }
    let _data = ftp.epsv();
    ftp.expect("STOU a\rb", 553);
    let mut names = names_in(server.root());
    names.retain(|n| !n.starts_with("dir"));
    assert_eq!(names, ["old\rname", "plain"]);
    assert_eq!(ftp.retr("old\rname"), b"old");
    ftp.expect("DELE old\rname", 250);
    // Names with other characters are fine.
    ftp.stor("ünï cödé ✓", b"fine");
    assert_eq!(
        fs::read(server.root().join("ünï cödé ✓")).expect("read"),
        b"fine"
    );
}

#[test]
fn stou_stores_under_a_fresh_name_and_says_which() {
    let server = TestServer::start(&[]);
    fs::create_dir(server.root().join("sub")).expect("mkdir");
    fs::write(server.root().join("sub/report"), b"taken").expect("write");
    let mut ftp = server.login();
    ftp.expect("CWD sub", 250);
    let mut stored = Vec::new();
    for (arg, bytes) in [
        ("STOU", &b"first"[..]),
        ("STOU", b"second"),
        ("STOU report", b"third"),
        ("STOU report", b"fourth"),
    ] {
        let mut data = ftp.epsv();
        let r = ftp.expect(arg, 150);
        let name = r
            .text
            .strip_prefix("FILE: ")
            .unwrap_or_else(|| panic!("{arg}: {r:?}"))
            .to_owned();
        data.write_all(bytes).expect("write");
        drop(data);
        ftp.expect_reply(226);
        stored.push((name, bytes));
    }
    assert_eq!(stored[2].0, "report.1");
    assert_eq!(stored[3].0, "report.2");
    assert_ne!(stored[0].0, stored[1].0);
    for (name, bytes) in &stored {
        assert_eq!(
            fs::read(server.root().join("sub").join(name)).expect("read"),
            *bytes,
            "{name}"
        );
    }
    assert_eq!(
        fs::read(server.root().join("sub/report")).expect("read"),
        b"taken",
        "STOU never replaces a file"
    );
    // A failed upload leaves no file behind: the reserved name goes too.
    let before = names_in(&server.root().join("sub"));
    ftp.expect("STOU", 425);
    assert_eq!(names_in(&server.root().join("sub")), before);
    let mut data = ftp.epsv();
    let r = ftp.expect("STOU", 150);
    ftp.send_raw(b"ABOR\r\n");
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
    let end = ftp.reply();
    assert!(matches!(end.code, 426 | 226), "{r:?} then {end:?}");
    if end.code == 426 {
        ftp.expect_reply(226);
        assert_eq!(names_in(&server.root().join("sub")), before);
    }
    ftp.expect("HELP", 214);
}

const FTPLIB_STOU: &str = r#"
import ftplib, io, sys

class Recording(ftplib.FTP):
    """Keeps every reply, to read the 150 that names the file."""
    seen = []
    def getresp(self):
        resp = super().getresp()
        self.seen.append(resp)
        return resp

ftp = Recording()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=60)
ftp.login()
ftp.voidcmd("TYPE I")
conn, _ = ftp.ntransfercmd("STOU")
conn.sendall(b"from ftplib")
conn.close()
assert ftp.voidresp().startswith("226")
mark = [r for r in ftp.seen if r.startswith("150 ")][-1]
assert mark.startswith("150 FILE: "), mark
name = mark[len("150 FILE: "):]
out = io.BytesIO()
ftp.retrbinary("RETR " + name, out.write)
assert out.getvalue() == b"from ftplib", out.getvalue()
assert name in ftp.nlst()
ftp.quit()
print(name)
"#;

#[test]
fn ftplib_stores_with_stou() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let server = TestServer::start(&[]);
    let run = python(FTPLIB_STOU, &[server.addr.port().to_string()]);
    assert_eq!(run.code(), 0, "{}{}", run.stdout, run.stderr);
    let name = run.stdout.trim();
    assert_eq!(
        fs::read(server.root().join(name)).expect("read"),
        b"from ftplib"
    );
}
