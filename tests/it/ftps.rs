//! Explicit FTPS (RFC 4217): curl, Python's ftplib, lftp and our client over TLS,
//! byte-exact; the refusals that keep strangers out.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use crate::common::{
    assert_same, have, pattern, python, require, run_client_command, run_peer, Ftp, TestServer,
    WAIT,
};

/// A server with a fresh self-signed certificate for localhost and 127.0.0.1;
/// returns it and the certificate's path (the CA file clients trust).
fn tls_server(extra: &[&str]) -> (TestServer, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    fs::write(&cert, certified.cert.pem()).expect("write cert");
    fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let root = dir.path().join("root");
    fs::create_dir_all(&root).expect("mkdir");
    let (cert_s, key_s) = (cert.to_string_lossy(), key.to_string_lossy());
    let mut args = vec!["--tls-cert", &cert_s, "--tls-key", &key_s];
    args.extend_from_slice(extra);
    let server = TestServer::start_in(dir, root, &args);
    (server, cert)
}

#[test]
fn curl_transfers_over_tls_byte_exact() {
    if !require(have("curl", &["--version"]), "curl") {
        return;
    }
    let (server, ca) = tls_server(&["--require-tls"]);
    let original = pattern(3 << 20, 31);
    fs::write(server.root().join("down.bin"), &original).expect("write");
    let work = server.dir.path();
    let url = format!("ftp://{}/", server.addr);
    let curl = |args: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "--ssl-reqd", "--cacert"])
            .arg(&ca)
            .args(args);
        let run = run_peer(cmd);
        assert!(run.status.success(), "curl {args:?}: {}", run.stderr);
        run.stdout
    };
    let got = work.join("got.bin");
    curl(&[&format!("{url}down.bin"), "-o", &got.to_string_lossy()]);
    assert_same(&fs::read(&got).expect("read"), &original, "curl download");
    curl(&["-T", &got.to_string_lossy(), &format!("{url}up.bin")]);
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &original,
        "curl upload",
    );
    let names = curl(&["--list-only", &url]);
    assert_eq!(names.lines().collect::<Vec<_>>(), ["down.bin", "up.bin"]);
    // Plain FTP is refused on this server.
    let mut plain = Command::new("curl");
    plain
        .args(["-sS", "--max-time", "60"])
        .arg(format!("{url}down.bin"));
    assert!(!run_peer(plain).status.success(), "a plain login must fail");
}

/// Python: `Reusing`, the usual ftplib subclass whose data connections resume the
/// control connection's TLS session (stock ftplib never resumes).
macro_rules! reusing_ftp_tls {
    () => {
        r#"
class Reusing(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
"#
    };
}

/// ftplib with the data connections resuming the control connection's session
/// ([`reusing_ftp_tls`]), and stock ftplib.
const FTPLIB_TLS: &str = concat!(
    r#"
import ftplib, io, ssl, sys, time
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
"#,
    reusing_ftp_tls!(),
    r#"
cls = Reusing if mode == "reuse" else ftplib.FTP_TLS
ftp = cls(context=ssl.create_default_context(cafile=ca))
ftp.connect("127.0.0.1", port, timeout=60)
ftp.login()
ftp.prot_p()
# Quiet past the worker's linger: the TLS session is parked and comes back.
time.sleep(0.3)
payload = bytes(range(256)) * 8192
try:
    ftp.storbinary("STOR py.bin", io.BytesIO(payload))
except (ftplib.Error, OSError):
    # Refused after the handshake: the server's verdict is the next reply.
    try:
        ftp.getresp()
    except ftplib.error_perm as e:
        print("refused", str(e)[:3])
    sys.exit(0)
for _ in range(3):
    time.sleep(0.1)
    got = io.BytesIO()
    ftp.retrbinary("RETR py.bin", got.write)
    assert got.getvalue() == payload
assert got.getvalue() == payload
assert "py.bin" in ftp.nlst()
ftp.quit()
print("ok")
"#
);

fn ftplib_tls(server: &TestServer, ca: &std::path::Path, mode: &str) -> String {
    let port = server.addr.port().to_string();
    let run = python(FTPLIB_TLS, &[port.as_ref(), ca.as_os_str(), mode.as_ref()]);
    assert!(
        run.status.success(),
        "ftplib: {}\nserver log:\n{}",
        run.stderr,
        server.log()
    );
    run.stdout.trim().to_owned()
}

#[test]
fn python_ftplib_over_tls_with_and_without_session_reuse() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&["--require-tls"]);
    assert_eq!(ftplib_tls(&server, &ca, "reuse"), "ok");
    let expected: Vec<u8> = (0..=255u8).cycle().take(256 * 8192).collect();
    assert_same(
        &fs::read(server.root().join("py.bin")).expect("read"),
        &expected,
        "ftplib upload",
    );
    // Stock ftplib does not resume: refused by default...
    assert_eq!(ftplib_tls(&server, &ca, "stock"), "refused 522");
    // ...and served when the server is told to accept that.
    let (lenient, ca) = tls_server(&["--require-tls", "--tls-without-resumption"]);
    assert_eq!(ftplib_tls(&lenient, &ca, "stock"), "ok");
}

#[test]
fn lftp_over_tls_byte_exact() {
    if !require(have("lftp", &["--version"]), "lftp") {
        return;
    }
    let (server, ca) = tls_server(&["--require-tls"]);
    let original = pattern(2 << 20, 32);
    fs::write(server.root().join("l.bin"), &original).expect("write");
    let work = server.dir.path();
    let script = format!(
        "set ssl:ca-file {}; \
         set ftp:ssl-force true; set ftp:ssl-protect-data true; \
         set ftp:ssl-allow-anonymous true; set net:max-retries 1; set net:timeout 20; \
         open -p {} 127.0.0.1; get l.bin -o {}/lget.bin; put {}/lget.bin -o lput.bin",
        ca.display(),
        server.addr.port(),
        work.display(),
        work.display()
    );
    let mut lftp = Command::new("lftp");
    lftp.arg("-c").arg(&script);
    let run = run_peer(lftp);
    assert!(
        run.status.success(),
        "lftp: {}\nserver log:\n{}",
        run.stderr,
        server.log()
    );
    assert_same(
        &fs::read(work.join("lget.bin")).expect("read"),
        &original,
        "lftp get",
    );
    assert_same(
        &fs::read(server.root().join("lput.bin")).expect("read"),
        &original,
        "lftp put",
    );
}

#[test]
fn our_client_over_tls_checks_the_certificate() {
    let (server, ca) = tls_server(&["--require-tls"]);
    let original = pattern(4 << 20, 33);
    fs::write(server.root().join("c.bin"), &original).expect("write");
    let local = tempfile::tempdir().expect("tempdir");
    fs::write(local.path().join("up.bin"), &original).expect("write");
    let client = |args: &[&str], script: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
        cmd.arg("--dir").arg(local.path()).args(args);
        run_client_command(cmd, script)
    };
    let port = server.addr.port();
    let ca_s = ca.to_string_lossy();
    let run = client(
        &["--ca-file", &ca_s],
        &format!("OPEN {port} tls\nGET c.bin\nPUT up.bin\nQUIT\n"),
    );
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("GET c.bin: 4194304 bytes"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("SHA-256 verified"), "{}", run.stdout);
    assert_same(
        &fs::read(local.path().join("c.bin")).expect("read"),
        &original,
        "GET",
    );
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &original,
        "PUT",
    );
    // --tls makes every OPEN secure; without our CA the certificate is refused...
    let run = client(&["--tls"], &format!("OPEN {port}\nQUIT\n"));
    assert!(!run.status.success());
    assert!(run.stderr.contains("certificate"), "{}", run.stderr);
    // ...unless the user explicitly accepts any certificate.
    let run = client(
        &["--tls", "--insecure"],
        &format!("OPEN {port}\nLS\nQUIT\n"),
    );
    assert!(run.status.success(), "{}", run.stderr);
    // A plain OPEN to a TLS-only server is refused at login.
    let run = client(&[], &format!("OPEN {port}\nQUIT\n"));
    assert!(run.stderr.contains("530"), "{}", run.stderr);
}

#[test]
fn require_tls_refuses_plain_logins_and_clear_data() {
    let (server, _ca) = tls_server(&["--require-tls"]);
    let mut ftp = Ftp::connect(server.addr);
    let feat = ftp.expect("FEAT", 211);
    assert!(
        feat.text.contains(" AUTH TLS") && feat.text.contains(" PROT"),
        "{feat:?}"
    );
    ftp.expect("USER anonymous", 530);
    ftp.expect("PBSZ 0", 503);
    ftp.expect("PROT P", 503);
    ftp.expect("AUTH KERBEROS", 504);
    // Without a certificate the server does not offer TLS at all.
    let plain = TestServer::start(&[]);
    let mut ftp = Ftp::connect(plain.addr);
    ftp.expect("AUTH TLS", 502);
    assert!(!ftp.expect("FEAT", 211).text.contains("AUTH"));
}

#[test]
fn commands_sent_before_the_handshake_are_never_executed() {
    let (server, _ca) = tls_server(&[]);
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("greeting");
    // The injection: plain commands after AUTH TLS, in the same packet.
    stream
        .write_all(b"AUTH TLS\r\nUSER anonymous\r\nPASS x\r\nMKD injected\r\n")
        .expect("write");
    line.clear();
    reader.read_line(&mut line).expect("reply");
    assert!(line.starts_with("234"), "{line:?}");
    line.clear();
    let n = reader.read_line(&mut line).unwrap_or(0);
    assert_eq!(n, 0, "the server closes instead: {line:?}");
    assert!(!server.root().join("injected").exists());
    assert!(server
        .log()
        .contains("commands sent before the TLS handshake"));
}

/// Python: a proper control connection, then a stranger's fresh TLS session on the
/// data port. The server must refuse it (522) and send nothing.
const HIJACK: &str = r#"
import ftplib, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ftp = ftplib.FTP_TLS(context=ctx)
ftp.connect("127.0.0.1", port, timeout=60)
ftp.login()
ftp.prot_p()
ftp.voidcmd("TYPE I")
host, dport = ftp.makepasv()
raw = socket.create_connection(("127.0.0.1", dport), timeout=60)
ftp.putcmd("RETR secret.txt")
print(ftp.getresp()[:3])
got = b""
try:
    stranger = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname="127.0.0.1")
    got = stranger.recv(1000)
except (ssl.SSLError, OSError):
    pass
print(len(got))
try:
    ftp.getresp()
except ftplib.error_perm as e:
    print(str(e)[:3])
"#;

#[test]
fn a_data_connection_from_another_tls_session_is_refused() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&[]);
    fs::write(server.root().join("secret.txt"), "the secret").expect("write");
    let port = server.addr.port().to_string();
    let run = python(HIJACK, &[port.as_ref(), ca.as_os_str()]);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["150", "0", "522"],
        "{}",
        run.stderr
    );
    assert!(server
        .log()
        .contains("did not resume the control TLS session"));
}

#[test]
fn ccc_is_refused_and_prot_levels_are_checked() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&[]);
    let script = r#"
import ftplib, ssl, sys
ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=sys.argv[2]))
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=60)
ftp.auth()
for cmd in ["CCC", "PROT P", "PBSZ 0", "PROT S", "PROT E", "PROT C", "PROT P"]:
    try:
        print(ftp.sendcmd(cmd)[:3])
    except ftplib.error_perm as e:
        print(str(e)[:3])
"#;
    let port = server.addr.port().to_string();
    let run = python(script, &[port.as_ref(), ca.as_os_str()]);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["533", "503", "200", "536", "536", "200", "200"],
        "{}",
        run.stderr
    );
}

/// A second client in the clear, served while the first waits: how long its login,
/// NLST and RETR of `small.bin` took (seconds) and how many bytes it got.
macro_rules! second_client {
    () => {
        r#"
def second_client(port):
    started = time.monotonic()
    other = ftplib.FTP()
    other.connect("127.0.0.1", port, timeout=60)
    other.login()
    names = other.nlst()
    got = bytearray()
    other.retrbinary("RETR small.bin", got.extend)
    other.quit()
    return "%d %d %.2f" % (len(names), len(got), time.monotonic() - started)
"#
    };
}

/// ftplib with data connections that resume the control connection's TLS session,
/// driven by hand: `case` picks what the client does (issue 11, FTPS data path).
const TLS_DATA_PATH: &str = concat!(
    r#"
import ftplib, socket, ssl, sys, time
port, ca, case = int(sys.argv[1]), sys.argv[2], sys.argv[3]
"#,
    reusing_ftp_tls!(),
    second_client!(),
    r#"
ftp = Reusing(context=ssl.create_default_context(cafile=ca))
ftp.connect("127.0.0.1", port, timeout=60)
ftp.login()
ftp.prot_p()
ftp.voidcmd("TYPE I")
if case == "reply-first":
    # Each download's 226 is read before the data connection is closed.
    started = time.monotonic()
    for _ in range(3):
        conn = ftp.transfercmd("RETR small.bin")
        got = b""
        while chunk := conn.recv(65536):
            got += chunk
        print(ftp.voidresp()[:3], len(got))
        conn.close()
    print("took", time.monotonic() - started)
    ftp.quit()
elif case == "abort":
    # The client stops reading a large download and sends ABOR.
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(65536)
    started = time.monotonic()
    ftp.putcmd("ABOR")
    for _ in range(2):
        try:
            print(ftp.getline()[:3])
        except ftplib.Error as e:
            print(str(e)[:3])
    print("took", time.monotonic() - started)
    conn.close()
elif case == "stall-data":
    # The data connection is made but its TLS handshake waits while a second client,
    # in the clear, is served by the server's only worker; then the handshake goes on.
    host, dport = ftp.makepasv()
    raw = socket.create_connection((host, dport), timeout=60)
    ftp.putcmd("RETR small.bin")
    print(ftp.getresp()[:3])
    print("other", second_client(port))
    conn = ftp.context.wrap_socket(raw, server_hostname=ftp.host, session=ftp.sock.session)
    got = b""
    while chunk := conn.recv(65536):
        got += chunk
    conn.close()
    print(ftp.voidresp()[:3], len(got))
    ftp.quit()
elif case == "quit":
    # After 221 the server's close_notify must come: unwrap() waits for it.
    ftp.sock.settimeout(20)
    print(ftp.voidcmd("QUIT")[:3])
    ftp.sock.unwrap()
    print("close_notify")
elif case == "unwrap":
    # The client's own close_notify, without QUIT, is answered with the server's.
    ftp.sock.settimeout(20)
    ftp.sock.unwrap()
    print("close_notify")
"#
);

fn tls_data_path(server: &TestServer, ca: &std::path::Path, case: &str) -> Vec<String> {
    let port = server.addr.port().to_string();
    let run = python(
        TLS_DATA_PATH,
        &[port.as_ref(), ca.as_os_str(), case.as_ref()],
    );
    assert!(
        run.status.success(),
        "ftplib {case}: {}\nserver log:\n{}",
        run.stderr,
        server.log()
    );
    run.stdout.lines().map(str::to_owned).collect()
}

/// The seconds a script printed as `took N`.
fn took(lines: &[String]) -> f64 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("took "))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in {lines:?}"))
}

/// The 226 of a PROT P download waited for the client's close_notify, so a client
/// that reads the reply before it closes the data connection waited the data timeout
/// for each file (issue 11).
#[test]
fn a_tls_download_is_answered_before_the_client_closes_its_data_connection() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&["--data-timeout", "5"]);
    fs::write(server.root().join("small.bin"), pattern(10_000, 61)).expect("write");
    let lines = tls_data_path(&server, &ca, "reply-first");
    assert_eq!(
        lines[..3],
        ["226 10000", "226 10000", "226 10000"],
        "{lines:?}"
    );
    // Three times the data timeout is what waiting for each close would take.
    assert!(took(&lines) < 12.0, "{lines:?}");
}

/// ABOR during a PROT P download the client stopped reading was seen only when the
/// transfer stalled out, three data timeouts later (issue 11).
#[test]
fn abor_stops_a_tls_download_the_client_stopped_reading() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&[]);
    fs::write(server.root().join("big.bin"), pattern(64 << 20, 62)).expect("write");
    let lines = tls_data_path(&server, &ca, "abort");
    assert_eq!(lines[..2], ["426", "226"], "{lines:?}");
    // The data timeout is 30 s; a stall would take that long at least.
    assert!(took(&lines) < 20.0, "{lines:?}");
}

/// The TLS control connection ends with close_notify after 221, and answers the
/// client's close_notify with its own (RFC 8446 §6.1).
#[test]
fn the_tls_control_connection_sends_close_notify_after_221() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&[]);
    let lines = tls_data_path(&server, &ca, "quit");
    assert_eq!(lines, ["221", "close_notify"]);
    let lines = tls_data_path(&server, &ca, "unwrap");
    assert_eq!(lines, ["close_notify"]);
}

/// curl over one TLS session downloads three small files under PROT P, byte-exact,
/// without a data timeout's wait for any of them (issue 11).
#[test]
fn curl_downloads_small_files_over_tls_without_waiting() {
    if !require(have("curl", &["--version"]), "curl") {
        return;
    }
    let (server, ca) = tls_server(&["--require-tls", "--data-timeout", "5"]);
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                format!("s{i}.bin"),
                pattern(5_000 + i * 1000, 70 + i as u64),
            )
        })
        .collect();
    for (name, bytes) in &files {
        fs::write(server.root().join(name), bytes).expect("write");
    }
    let work = server.dir.path();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "--ssl-reqd", "--cacert"])
        .arg(&ca);
    for (name, _) in &files {
        cmd.arg("-o")
            .arg(work.join(name))
            .arg(format!("ftp://{}/{name}", server.addr));
    }
    let started = std::time::Instant::now();
    let run = run_peer(cmd);
    let took = started.elapsed();
    assert!(
        run.status.success(),
        "curl: {}\n{}",
        run.stderr,
        server.log()
    );
    for (name, bytes) in &files {
        assert_same(&fs::read(work.join(name)).expect("read"), bytes, name);
    }
    // Three times the data timeout is what waiting for each close would take.
    assert!(took < std::time::Duration::from_secs(12), "took {took:?}");
}

/// The seconds a second client took, from a line `other NAMES BYTES SECONDS`, after
/// checking what it got.
fn second_client_took(lines: &[String], bytes: usize) -> f64 {
    let line = lines
        .iter()
        .find_map(|l| l.strip_prefix("other "))
        .unwrap_or_else(|| panic!("no second client in {lines:?}"));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[..2], ["1", &bytes.to_string()], "{lines:?}");
    fields[2].parse().expect("seconds")
}

/// A data connection under PROT P whose TLS handshake stalls holds no worker: with
/// one worker, a second client is served meanwhile; then the handshake goes on and
/// the download arrives whole (issue 12).
#[test]
fn a_stalled_data_handshake_holds_no_worker() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&["--workers", "1", "--data-timeout", "120"]);
    fs::write(server.root().join("small.bin"), pattern(10_000, 63)).expect("write");
    let lines = tls_data_path(&server, &ca, "stall-data");
    assert_eq!(lines[0], "150", "{lines:?}");
    assert_eq!(lines[2], "226 10000", "{lines:?}");
    // Waiting for the stalled handshake to time out would take 120 s.
    let took = second_client_took(&lines, 10_000);
    assert!(took < 20.0, "{lines:?}");
}

/// A client that sends AUTH TLS and then stalls its handshake holds no worker: with
/// one worker, a second client is served meanwhile; then the handshake goes on and the
/// first client logs in over TLS. One that never finishes is closed after the data
/// timeout (issue 12).
#[test]
fn a_stalled_control_handshake_holds_no_worker() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&["--workers", "1", "--data-timeout", "5"]);
    fs::write(server.root().join("small.bin"), pattern(10_000, 64)).expect("write");
    let script = concat!(
        r#"
import ftplib, socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
"#,
        second_client!(),
        r#"
def auth(sock):
    f = sock.makefile("rb")
    print(f.readline()[:3].decode())
    sock.sendall(b"AUTH TLS\r\n")
    print(f.readline()[:3].decode())
# Stalls its handshake, then finishes it and logs in.
late = socket.create_connection(("127.0.0.1", port), timeout=60)
auth(late)
# Never finishes its handshake.
never = socket.create_connection(("127.0.0.1", port), timeout=60)
auth(never)
print("other", second_client(port))
tls = ssl.create_default_context(cafile=ca).wrap_socket(late, server_hostname="127.0.0.1")
f = tls.makefile("rb")
tls.sendall(b"USER anonymous\r\n")
print(f.readline()[:3].decode())
tls.sendall(b"PASS x\r\n")
print(f.readline()[:3].decode())
# The server closes the one that never finished, after the data timeout.
started = time.monotonic()
print("closed", never.recv(100) == b"", "%.1f" % (time.monotonic() - started))
"#
    );
    let port = server.addr.port().to_string();
    let run = python(script, &[port.as_ref(), ca.as_os_str()]);
    let lines: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
    assert!(run.status.success(), "{}\n{}", run.stderr, server.log());
    assert_eq!(lines[..4], ["220", "234", "220", "234"], "{lines:?}");
    let took = second_client_took(&lines, 10_000);
    assert!(took < 20.0, "{lines:?}");
    assert_eq!(lines[5..7], ["331", "230"], "{lines:?}");
    assert!(lines[7].starts_with("closed True"), "{lines:?}");
    assert!(server.log().contains("TLS handshake not finished in time"));
}

/// Implicit FTPS (`--implicit-tls-port`): curl's `ftps://` downloads, uploads and lists
/// byte-exact over TLS from the first byte, data protected by default.
#[test]
fn curl_over_implicit_ftps_byte_exact() {
    if !require(have("curl", &["--version"]), "curl") {
        return;
    }
    let (server, ca) = tls_server(&["--implicit-tls-port", "0"]);
    let implicit = server.implicit.expect("implicit FTPS address");
    let original = pattern(3 << 20, 71);
    fs::write(server.root().join("down.bin"), &original).expect("write");
    let work = server.dir.path();
    let url = format!("ftps://127.0.0.1:{}/", implicit.port());
    let curl = |args: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "--cacert"])
            .arg(&ca)
            .args(args);
        let run = run_peer(cmd);
        assert!(
            run.status.success(),
            "curl {args:?}: {}\nserver log:\n{}",
            run.stderr,
            server.log()
        );
        run.stdout
    };
    let got = work.join("got.bin");
    curl(&[&format!("{url}down.bin"), "-o", &got.to_string_lossy()]);
    assert_same(
        &fs::read(&got).expect("read"),
        &original,
        "curl ftps:// download",
    );
    curl(&["-T", &got.to_string_lossy(), &format!("{url}up.bin")]);
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &original,
        "curl ftps:// upload",
    );
    let listing = curl(&["-l", &url]);
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["down.bin", "up.bin"]);
    // Protected by default: the data connections were TLS (none failed to resume).
    assert!(!server.log().contains("did not resume"), "{}", server.log());
}

/// lftp's `ftps://` over implicit FTPS: get and put byte-exact.
#[test]
fn lftp_over_implicit_ftps_byte_exact() {
    if !require(have("lftp", &["--version"]), "lftp") {
        return;
    }
    let (server, ca) = tls_server(&["--implicit-tls-port", "0"]);
    let implicit = server.implicit.expect("implicit FTPS address");
    let original = pattern(2 << 20, 72);
    fs::write(server.root().join("l.bin"), &original).expect("write");
    let work = server.dir.path();
    let script = format!(
        "set ssl:ca-file {}; set ftp:ssl-allow-anonymous true; \
         set net:max-retries 1; set net:timeout 20; \
         open ftps://127.0.0.1:{}; get l.bin -o {}/lget.bin; put {}/lget.bin -o lput.bin",
        ca.display(),
        implicit.port(),
        work.display(),
        work.display()
    );
    let mut lftp = Command::new("lftp");
    lftp.arg("-c").arg(&script);
    let run = run_peer(lftp);
    assert!(
        run.status.success(),
        "lftp: {}\nserver log:\n{}",
        run.stderr,
        server.log()
    );
    assert_same(
        &fs::read(work.join("lget.bin")).expect("read"),
        &original,
        "lftp ftps:// get",
    );
    assert_same(
        &fs::read(server.root().join("lput.bin")).expect("read"),
        &original,
        "lftp ftps:// put",
    );
}

/// On the implicit FTPS port the greeting comes inside TLS, AUTH TLS is out of place,
/// and a client that speaks in the clear gets nothing it could read as FTP; the
/// explicit port goes on serving in the clear.
#[test]
fn the_implicit_port_speaks_only_tls() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let (server, ca) = tls_server(&["--implicit-tls-port", "0"]);
    let implicit = server.implicit.expect("implicit FTPS address");
    let script = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
tls = ssl.create_default_context(cafile=ca).wrap_socket(
    socket.create_connection(("127.0.0.1", port), timeout=30), server_hostname="127.0.0.1")
f = tls.makefile("rb")
def cmd(line):
    tls.sendall(line.encode() + b"\r\n")
    return f.readline()[:3].decode()
print(f.readline()[:3].decode())
print(cmd("AUTH TLS"), cmd("USER anonymous"), cmd("PASS x"), cmd("PBSZ 0"), cmd("PROT P"), cmd("QUIT"))
plain = socket.create_connection(("127.0.0.1", port), timeout=30)
plain.sendall(b"USER anonymous\r\n")
got = b""
while True:
    try:
        chunk = plain.recv(4096)
    except ConnectionResetError:
        break
    if not chunk:
        break
    got += chunk
print("plain", got[:3] not in (b"220", b"331"))
"#;
    let port = implicit.port().to_string();
    let run = python(script, &[port.as_ref(), ca.as_os_str()]);
    assert!(run.status.success(), "{}\n{}", run.stderr, server.log());
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["220", "503 331 230 200 200 221", "plain True"],
        "{}",
        server.log()
    );
    let mut ftp = Ftp::connect(server.addr);
    assert_eq!(ftp.greeting.code, 220);
    ftp.expect("QUIT", 221);
}
