//! Clients nobody here wrote, against our server: curl and Python's ftplib.

use std::fs;
use std::process::{Command, Stdio};

use crate::common::{assert_same, have, pattern, require, TestServer};

#[test]
fn curl_downloads_uploads_and_lists_byte_exact() {
    if !require(have("curl", &["--version"]), "curl") {
        return;
    }
    let server = TestServer::start(&[]);
    let original = pattern(5 << 20, 11);
    fs::write(server.root().join("down.bin"), &original).expect("write");
    let work = server.dir.path();
    let url = format!("ftp://{}/", server.addr);

    for (name, extra) in [
        ("epsv.bin", vec![]),
        ("active.bin", vec!["--ftp-port", "127.0.0.1"]),
    ] {
        let out = work.join(name);
        let status = Command::new("curl")
            .args(["-sS", "--max-time", "60"])
            .args(&extra)
            .arg(format!("{url}down.bin"))
            .arg("-o")
            .arg(&out)
            .status()
            .expect("curl");
        assert!(status.success(), "curl download {extra:?}");
        assert_same(&fs::read(&out).expect("read"), &original, name);
    }

    let upload = pattern(3 << 20, 12);
    let local = work.join("up.bin");
    fs::write(&local, &upload).expect("write");
    let status = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-T"])
        .arg(&local)
        .arg(&url)
        .status()
        .expect("curl");
    assert!(status.success(), "curl upload");
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &upload,
        "upload",
    );

    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--list-only"])
        .arg(&url)
        .stderr(Stdio::inherit())
        .output()
        .expect("curl");
    assert!(out.status.success());
    let names = String::from_utf8(out.stdout).expect("utf8");
    // curl lists in ASCII mode and turns CRLF into the local line ending.
    assert_eq!(names.lines().collect::<Vec<_>>(), ["down.bin", "up.bin"]);

    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .arg(format!("{url}missing.txt"))
        .output()
        .expect("curl");
    assert_eq!(out.status.code(), Some(78), "curl: remote file not found");
}

const FTPLIB_SCRIPT: &str = r#"
import ftplib, io, sys
port = int(sys.argv[1])
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", port, timeout=60)
ftp.login()
assert ftp.pwd() == "/", ftp.pwd()
payload = bytes(range(256)) * 4096
ftp.storbinary("STOR py.bin", io.BytesIO(payload))
assert ftp.size("py.bin") == len(payload)
got = io.BytesIO()
ftp.retrbinary("RETR py.bin", got.write)
assert got.getvalue() == payload
ftp.set_pasv(True)
ftp.sendcmd("TYPE I")
names = ftp.nlst()
assert sorted(names) == ["py.bin", "sub"], names
lines = []
ftp.retrlines("LIST", lines.append)
assert any(l.endswith(" py.bin") and l.startswith("-") for l in lines), lines
assert any(l.endswith(" sub") and l.startswith("d") for l in lines), lines
ftp.cwd("sub")
assert ftp.pwd() == "/sub"
ftp.storbinary("STOR inner.txt", io.BytesIO(b"inner"))
ftp.cwd("..")
got = io.BytesIO()
ftp.retrbinary("RETR sub/inner.txt", got.write)
assert got.getvalue() == b"inner"
assert ftp.sendcmd("MDTM py.bin").startswith("213 ")
try:
    ftp.retrbinary("RETR nope", lambda b: None)
    raise SystemExit("missing file downloaded")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
# Active mode too (PORT).
ftp.set_pasv(False)
got = io.BytesIO()
ftp.retrbinary("RETR py.bin", got.write)
assert got.getvalue() == payload
ftp.quit()
print("ok")
"#;

#[test]
fn python_ftplib_logs_in_lists_downloads_and_uploads() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let server = TestServer::start(&[]);
    fs::create_dir(server.root().join("sub")).expect("mkdir");
    let out = Command::new("python3")
        .arg("-c")
        .arg(FTPLIB_SCRIPT)
        .arg(server.addr.port().to_string())
        .output()
        .expect("python3");
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "ftplib: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let expected: Vec<u8> = (0..=255u8).cycle().take(256 * 4096).collect();
    assert_same(
        &fs::read(server.root().join("py.bin")).expect("read"),
        &expected,
        "py.bin",
    );
    assert_eq!(
        fs::read(server.root().join("sub/inner.txt")).expect("read"),
        b"inner"
    );
}
