//! Python's ftplib (the standard library's FTP client) against our server, command by
//! command: login, PWD, CWD/CDUP, TYPE, SIZE, MDTM, MLSD, LIST, NLST, PASV, EPSV, PORT,
//! RETR, STOR, REST with RETR and with STOR, APPE, DELE, RNFR/RNTO, MKD/RMD, ABOR during
//! a download, FEAT, STAT and the error replies ftplib turns into exceptions.
//!
//! The Python script asserts each reply; this side prepares the files and checks the
//! server's directory byte for byte afterwards. IPv6 (EPSV and EPRT) is in `ipv6.rs`.

use std::fs;
use std::time::{Duration, SystemTime};

use crate::common::{
    assert_same, have, names_in, pattern, python, require, version_line, TestServer,
};

/// Runs with: port, the server's root directory, a local scratch directory.
/// Prints `ok` at the end; any failed check raises and exits non-zero.
const SCRIPT: &str = r#"
import ftplib, io, os, socket, sys, time

port, root, local = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def disk(name):
    with open(os.path.join(root, name), "rb") as f:
        return f.read()

def fetch(ftp, cmd, rest=None):
    out = io.BytesIO()
    ftp.retrbinary(cmd, out.write, blocksize=65536, rest=rest)
    return out.getvalue()

def refused(code, fn, *args):
    try:
        fn(*args)
    except ftplib.error_perm as e:
        assert str(e).startswith(code), (code, str(e))
        return
    except ftplib.error_temp as e:
        assert str(e).startswith(code), (code, str(e))
        return
    raise AssertionError("no %s from %r %r" % (code, fn, args))

ftp = ftplib.FTP()
greeting = ftp.connect("127.0.0.1", port, timeout=60)
assert greeting.startswith("220"), greeting
assert ftp.login().startswith("230")
feat = ftp.sendcmd("FEAT")
for want in ("EPSV", "EPRT", "MDTM", "SIZE", "REST STREAM", "UTF8", "MLST "):
    assert ("\n " + want) in feat, (want, feat)
assert ftp.sendcmd("SYST").startswith("215")

# PWD, CWD, CDUP, and a UTF-8 directory name (RFC 2640).
assert ftp.pwd() == "/"
assert ftp.cwd("dir").startswith("250")
assert ftp.pwd() == "/dir"
ftp.cwd("sub ünï")
assert ftp.pwd() == "/dir/sub ünï", ftp.pwd()
assert ftp.sendcmd("CDUP").startswith("250")
assert ftp.pwd() == "/dir"
ftp.cwd("/")
refused("550", ftp.cwd, "no-such-dir")
refused("550", ftp.cwd, "data.bin")

# TYPE: both accepted; bytes are never rewritten in either.
assert ftp.sendcmd("TYPE A").startswith("200")
lines = []
ftp.retrlines("RETR dir/text.txt", lines.append)
assert lines == ["line one", "line two", "", "last"], lines
assert ftp.sendcmd("TYPE I").startswith("200")
assert fetch(ftp, "RETR dir/text.txt") == disk("dir/text.txt")

# SIZE and MDTM.
data = disk("data.bin")
assert ftp.size("data.bin") == len(data)
mdtm = ftp.voidcmd("MDTM data.bin")
assert mdtm == "213 20210304050607", mdtm
refused("550", ftp.size, "missing.bin")
refused("550", ftp.size, "dir")

# MLSD: RFC 3659 facts, checked against the file system.
facts = dict(ftp.mlsd("/"))
assert set(facts) == {"data.bin", "dir", "large"}, facts
f = facts["data.bin"]
assert f["type"] == "file" and int(f["size"]) == len(data), f
assert f["modify"] == "20210304050607", f
assert "r" in f["perm"] and "w" in f["perm"] and f["unique"], f
assert facts["dir"]["type"] == "dir", facts
resp = ftp.sendcmd("MLST data.bin")
assert resp.startswith("250-") and "size=%d;" % len(data) in resp, resp
# Asking for fewer facts sends OPTS MLST first.
assert dict(ftp.mlsd("dir", facts=["type"])) == {
    "sub ünï": {"type": "dir"}, "text.txt": {"type": "file"}}

# LIST and NLST.
listing = []
ftp.retrlines("LIST", listing.append)
assert len(listing) == 3, listing
assert listing[0].startswith("-") and listing[0].endswith(" data.bin"), listing
assert (" %d " % len(data)) in listing[0], listing
assert listing[1].startswith("d") and listing[1].endswith(" dir"), listing
assert listing[2].endswith(" large"), listing
assert ftp.nlst() == ["data.bin", "dir", "large"], ftp.nlst()
# NLST of a path names the entries by that path (issue 11), as vsftpd does.
assert ftp.nlst("dir") == ["dir/sub ünï", "dir/text.txt"], ftp.nlst("dir")
listing = []
ftp.retrlines("LIST -la dir", listing.append)
assert [l.rsplit(" ", 1)[-1] for l in listing] == ["ünï", "text.txt"], listing

# RETR over each kind of data connection: PASV (ftplib's IPv4 default), EPSV (what
# it uses on IPv6; its `af` picks it), PORT (active mode).
assert fetch(ftp, "RETR data.bin") == data
ftp.af = socket.AF_INET6
assert fetch(ftp, "RETR data.bin") == data
ftp.af = socket.AF_INET
resp = ftp.sendcmd("EPSV")
assert resp.startswith("229 ") and "(|||" in resp, resp
assert ftp.sendcmd("PASV").startswith("227 ")
ftp.set_pasv(False)
assert fetch(ftp, "RETR data.bin") == data
ftp.set_pasv(True)
refused("550", fetch, ftp, "RETR missing.bin")

# STOR and REST: download the tail from an offset; upload the rest of a file.
up = open(os.path.join(local, "up.bin"), "rb").read()
ftp.storbinary("STOR up.bin", io.BytesIO(up))
assert disk("up.bin") == up
assert fetch(ftp, "RETR up.bin", rest=1000001) == up[1000001:]
assert fetch(ftp, "RETR up.bin", rest=str(len(up))) == b""
refused("554", fetch, ftp, "RETR up.bin", len(up) + 1)
with open(os.path.join(root, "resumed.bin"), "wb") as f:
    f.write(up[:777777])
ftp.storbinary("STOR resumed.bin", io.BytesIO(up[777777:]), rest=777777)
assert disk("resumed.bin") == up

# APPE: creates, then appends.
ftp.storbinary("APPE log.txt", io.BytesIO(b"first\n"))
ftp.storbinary("APPE log.txt", io.BytesIO(b"second\n"))
assert disk("log.txt") == b"first\nsecond\n"

# DELE, RNFR/RNTO, MKD/RMD.
assert ftp.mkd("made") == "/made"
assert ftp.mkd("made/inner") == "/made/inner"
refused("550", ftp.mkd, "made")
refused("550", ftp.rmd, "made")
assert ftp.rename("log.txt", "made/renamed.txt").startswith("250")
assert disk("made/renamed.txt") == b"first\nsecond\n"
refused("550", ftp.rename, "log.txt", "x")
assert ftp.delete("made/renamed.txt").startswith("250")
refused("550", ftp.delete, "made/renamed.txt")
assert ftp.rmd("made/inner").startswith("250")
assert ftp.rmd("made").startswith("250")
assert ftp.delete("resumed.bin").startswith("250")

# ABOR from inside the download callback: ftplib sends it as urgent data (MSG_OOB)
# and stops reading the data connection until the reply comes.
got = []
aborted = []
def stop_early(block):
    got.append(block)
    if not aborted:
        aborted.append(ftp.abort())
end = ftp.retrbinary("RETR large/big.bin", stop_early, blocksize=65536)
assert aborted == ["426 Transfer aborted by ABOR"], aborted
assert end.startswith("226"), end
big = disk("large/big.bin")
received = b"".join(got)
assert 0 < len(received) < len(big), len(received)
assert received == big[:len(received)]
# The session goes on, and the next download is whole.
assert ftp.voidcmd("NOOP").startswith("200")
assert fetch(ftp, "RETR large/big.bin") == big
# ABOR with no transfer.
assert ftp.abort().startswith("225")

stat = ftp.sendcmd("STAT")
assert stat.startswith("211-") and "anonymous" in stat, stat
assert ftp.quit().startswith("221")
print("ok")
"#;

#[test]
fn python_ftplib_drives_every_command_byte_exact() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    eprintln!(
        "peer: ftplib of {}",
        version_line("python3", &["--version"])
    );
    let server = TestServer::start(&[]);
    let root = server.root();
    let data = pattern(2_000_003, 51);
    fs::write(root.join("data.bin"), &data).expect("write");
    // 2021-03-04 05:06:07 UTC, for MDTM and MLSD's modify fact.
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_834_367);
    fs::File::options()
        .write(true)
        .open(root.join("data.bin"))
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
    fs::create_dir_all(root.join("dir/sub ünï")).expect("mkdir");
    fs::write(
        root.join("dir/text.txt"),
        "line one\r\nline two\r\n\r\nlast\r\n",
    )
    .expect("write");
    let big = pattern(48 << 20, 52);
    fs::create_dir(root.join("large")).expect("mkdir");
    fs::write(root.join("large/big.bin"), &big).expect("write");
    let local = server.dir.path().join("local");
    fs::create_dir(&local).expect("mkdir");
    let up = pattern(3_000_017, 53);
    fs::write(local.join("up.bin"), &up).expect("write");

    let port = server.addr.port().to_string();
    let run = python(
        SCRIPT,
        &[port.as_ref(), root.as_os_str(), local.as_os_str()],
    );
    assert!(
        run.status.success() && run.stdout == "ok\n",
        "ftplib: {}\n{}\nserver log:\n{}",
        run.stdout,
        run.stderr,
        server.log()
    );
    // What the script left on the server, checked from this side too.
    assert_same(&fs::read(root.join("up.bin")).expect("read"), &up, "up.bin");
    assert_same(
        &fs::read(root.join("data.bin")).expect("read"),
        &data,
        "data.bin",
    );
    assert_same(
        &fs::read(root.join("large/big.bin")).expect("read"),
        &big,
        "big.bin",
    );
    assert_eq!(names_in(root), ["data.bin", "dir", "large", "up.bin"]);
    let log = server.log();
    for verb in [
        ": PASV",
        ": EPSV",
        ": PORT ",
        ": REST 1000001",
        ": REST 777777",
        ": APPE log.txt",
        ": MLSD",
        ": ABOR",
    ] {
        assert!(log.contains(verb), "no {verb:?} in the server log:\n{log}");
    }
}
