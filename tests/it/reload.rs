//! SIGHUP reloads the users file, the TLS certificate and the config file's reloadable
//! keys while open sessions go on; a file that fails to load keeps the settings in
//! force, and the log says which file and why (issue 13, item 4).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use simple_ftp::client::Client;

use crate::common::{assert_same, eventually, hash_password, pattern, Ftp, TestServer, WAIT};

/// How a reload ended: the log line that says so.
#[derive(Debug)]
enum Outcome {
    Reloaded(String),
    Failed(String),
}

/// The log lines that end a reload, in order.
fn reload_lines(server: &TestServer) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| l.contains(" reloaded: ") || l.contains(" reload failed"))
        .map(str::to_owned)
        .collect()
}

/// Sends SIGHUP and waits (generously) for the log line that ends the reload.
fn sighup(server: &TestServer) -> Outcome {
    let before = reload_lines(server).len();
    server.signal("HUP");
    eventually("the reload's log line", || {
        reload_lines(server).len() > before
    });
    let line = reload_lines(server).swap_remove(before);
    if line.contains(" reloaded: ") {
        Outcome::Reloaded(line)
    } else {
        Outcome::Failed(line)
    }
}

#[track_caller]
fn reloaded(server: &TestServer) -> String {
    match sighup(server) {
        Outcome::Reloaded(line) => line,
        Outcome::Failed(line) => panic!("the reload failed: {line}\n{}", server.log()),
    }
}

#[track_caller]
fn failed(server: &TestServer) -> String {
    match sighup(server) {
        Outcome::Failed(line) => line,
        Outcome::Reloaded(line) => panic!("a reload that should fail did not: {line}"),
    }
}

/// A users file with one account per `(name, password, permissions)`.
fn write_users(path: &Path, users: &[(&str, &str, &str)]) {
    let text: String = users
        .iter()
        .map(|(name, password, perms)| {
            format!(
                "[[user]]\nname = \"{name}\"\npassword = \"{}\"\npermissions = {perms}\n\n",
                hash_password(password)
            )
        })
        .collect();
    // Whole, then renamed over: the server never reads half a file.
    let part = path.with_extension("part");
    fs::write(&part, text).expect("write users");
    fs::rename(&part, path).expect("rename users");
}

/// A reply to USER and PASS: the code of the PASS reply.
fn pass_code(addr: SocketAddr, user: &str, password: &str) -> u16 {
    let mut ftp = Ftp::connect(addr);
    assert_eq!(ftp.greeting.code, 220, "{:?}", ftp.greeting);
    ftp.expect(&format!("USER {user}"), 331);
    ftp.cmd(&format!("PASS {password}")).code
}

fn login_as(addr: SocketAddr, user: &str, password: &str) -> Ftp {
    let mut ftp = Ftp::connect(addr);
    ftp.expect(&format!("USER {user}"), 331);
    ftp.expect(&format!("PASS {password}"), 230);
    ftp.expect("TYPE I", 200);
    ftp
}

#[test]
fn a_new_password_is_needed_by_new_logins_while_an_open_session_transfers_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    fs::create_dir_all(&root).expect("mkdir");
    let big = pattern(8 << 20, 41);
    fs::write(root.join("big.bin"), &big).expect("write");
    let users = dir.path().join("users.toml");
    write_users(&users, &[("alice", "old-pw", r#"["read", "write"]"#)]);
    let users_arg = users.to_string_lossy().into_owned();
    let server = TestServer::start_in(
        dir,
        root,
        &["--users", &users_arg, "--failed-login-delay", "0.1"],
    );

    // alice logs in with the old password and starts a download.
    let mut old = login_as(server.addr, "alice", "old-pw");
    let port = old.epsv_port();
    let mut data = old.data_to(port);
    old.expect("RETR big.bin", 150);
    let mut got = vec![0; 64 << 10];
    data.read_exact(&mut got).expect("the first bytes");

    // The new file: another password, and no more write permission.
    write_users(&users, &[("alice", "new-pw", r#"["read"]"#)]);
    let line = reloaded(&server);
    assert!(
        line.contains(&format!("accounts from {users_arg}: 1")),
        "{line}"
    );

    // The download goes on to the end, byte for byte.
    data.read_to_end(&mut got).expect("the rest");
    drop(data);
    old.expect_reply(226);
    assert_same(&got, &big, "the download across the reload");

    // The open session keeps what its login granted: it still writes.
    let up = pattern(300_000, 42);
    old.stor("after.bin", &up);
    assert_same(&old.retr("after.bin"), &up, "upload after the reload");
    old.expect("MKD kept", 257);

    // New logins need the new password and get the new permissions.
    assert_eq!(pass_code(server.addr, "alice", "old-pw"), 530);
    let mut new = login_as(server.addr, "alice", "new-pw");
    assert_same(&new.retr("after.bin"), &up, "download in a new session");
    new.expect("MKD refused", 550);
    assert!(!server.root().join("refused").exists());
}

/// A self-signed certificate for localhost and 127.0.0.1: (certificate PEM, key PEM,
/// certificate DER).
fn certificate() -> (String, String, Vec<u8>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    (
        certified.cert.pem(),
        certified.signing_key.serialize_pem(),
        certified.cert.der().to_vec(),
    )
}

/// Writes `pem` to `path` whole (renamed over the old file).
fn replace_file(path: &Path, pem: &str) {
    let part = path.with_extension("part");
    fs::write(&part, pem).expect("write");
    fs::rename(&part, path).expect("rename");
}

/// The certificate a new `AUTH TLS` handshake presents, in DER: read with rustls,
/// accepting whatever it is.
fn presented_certificate(addr: SocketAddr) -> Vec<u8> {
    let mut tcp = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    tcp.set_write_timeout(Some(WAIT)).expect("timeout");
    let mut reader = BufReader::new(tcp.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("greeting");
    assert!(line.starts_with("220 "), "{line:?}");
    tcp.write_all(b"AUTH TLS\r\n").expect("send");
    line.clear();
    reader.read_line(&mut line).expect("AUTH reply");
    assert!(line.starts_with("234 "), "{line:?}");
    let config = simple_ftp::tls::client_config(None, true).expect("client config");
    let name = simple_ftp::tls::server_name("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(config, name).expect("connection");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake");
    }
    let chain = conn.peer_certificates().expect("a certificate");
    chain[0].as_ref().to_vec()
}

/// Our client over TLS (AUTH TLS, PROT P), trusting only `ca`, logged in anonymously.
fn tls_client(addr: SocketAddr, ca: &Path) -> Result<Client, simple_ftp::ClientError> {
    let mut client = Client::connect("127.0.0.1", addr.port(), Duration::from_secs(60))?;
    let config = simple_ftp::tls::client_config(Some(ca), false).expect("client config");
    client.secure(Arc::clone(&config), "127.0.0.1")?;
    client.login("anonymous", "test@")?;
    client.binary()?;
    Ok(client)
}

fn download(client: &mut Client, name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    client
        .get_into(name, &mut bytes, |_| {})
        .unwrap_or_else(|e| panic!("GET {name}: {e}"));
    bytes
}

#[test]
fn new_handshakes_present_the_new_certificate_while_an_old_tls_session_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    fs::create_dir_all(&root).expect("mkdir");
    let file = pattern(2 << 20, 43);
    fs::write(root.join("a.bin"), &file).expect("write");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (ca_old, ca_new) = (dir.path().join("ca-old.pem"), dir.path().join("ca-new.pem"));
    let (old_pem, old_key, old_der) = certificate();
    let (new_pem, new_key, new_der) = certificate();
    assert_ne!(old_der, new_der);
    replace_file(&cert_path, &old_pem);
    replace_file(&key_path, &old_key);
    fs::write(&ca_old, &old_pem).expect("write");
    fs::write(&ca_new, &new_pem).expect("write");
    let (cert_arg, key_arg) = (
        cert_path.to_string_lossy().into_owned(),
        key_path.to_string_lossy().into_owned(),
    );
    let server = TestServer::start_in(dir, root, &["--tls-cert", &cert_arg, "--tls-key", &key_arg]);
    let ours: PathBuf = server.dir.path().to_owned();

    assert!(presented_certificate(server.addr) == old_der);
    let mut old = tls_client(server.addr, &ca_old).expect("a TLS session before the reload");
    assert_same(
        &download(&mut old, "a.bin"),
        &file,
        "download before the reload",
    );

    replace_file(&cert_path, &new_pem);
    replace_file(&key_path, &new_key);
    let line = reloaded(&server);
    assert!(line.contains("TLS certificate from"), "{line}");

    // A new handshake presents the new certificate: a client that trusts only the old
    // one is refused, one that trusts the new one is let in.
    assert!(
        presented_certificate(server.addr) == new_der,
        "the old certificate after the reload"
    );
    assert!(tls_client(server.addr, &ca_old).is_err());
    let mut new = tls_client(server.addr, &ca_new).expect("a TLS session after the reload");
    assert_same(
        &download(&mut new, "a.bin"),
        &file,
        "download in a new session",
    );

    // The old session keeps its TLS: its new data connections still work (they resume
    // its own TLS session and present the certificate it trusts), both ways.
    assert_same(&download(&mut old, "a.bin"), &file, "old session, download");
    let up = ours.join("up.bin");
    fs::write(&up, pattern(500_000, 44)).expect("write");
    old.put(&up, "up.bin", |_| {}).expect("old session, upload");
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &pattern(500_000, 44),
        "old session, upload",
    );
    old.noop().expect("NOOP in the old session");

    // A key that is not the certificate's (a rotation half done): the reload fails,
    // naming both files, and the certificate in force stays.
    let (_, other_key, _) = certificate();
    replace_file(&key_path, &other_key);
    let line = failed(&server);
    assert!(
        line.contains(&cert_arg) && line.contains(&key_arg),
        "the line names neither file: {line}"
    );
    // A key file that is no PEM at all: named too.
    replace_file(&key_path, "not a key\n");
    let line = failed(&server);
    assert!(line.contains(&key_arg), "{line}");
    assert!(presented_certificate(server.addr) == new_der);
    let mut after = tls_client(server.addr, &ca_new).expect("TLS after failed reloads");
    assert_same(
        &download(&mut after, "a.bin"),
        &file,
        "after failed reloads",
    );
    old.noop().expect("the old session still");
}

#[test]
fn a_broken_users_file_keeps_the_old_logins_and_the_log_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    fs::create_dir_all(&root).expect("mkdir");
    fs::write(root.join("f.txt"), b"kept\n").expect("write");
    let users = dir.path().join("users.toml");
    write_users(&users, &[("bob", "bob-pw", r#"["read"]"#)]);
    let users_arg = users.to_string_lossy().into_owned();
    let server = TestServer::start_in(
        dir,
        root,
        &["--users", &users_arg, "--failed-login-delay", "0.1"],
    );
    let mut open = login_as(server.addr, "bob", "bob-pw");

    // Not an argon2 hash: refused, the file and the reason in one line.
    replace_file(
        &users,
        "[[user]]\nname = \"bob\"\npassword = \"plaintext\"\n",
    );
    let line = failed(&server);
    assert!(
        line.contains(&users_arg) && line.contains("argon2"),
        "the line does not say which file and why: {line}"
    );
    assert_eq!(pass_code(server.addr, "bob", "bob-pw"), 230);
    assert_eq!(pass_code(server.addr, "bob", "plaintext"), 530);

    // Gone: refused too.
    fs::remove_file(&users).expect("remove");
    let line = failed(&server);
    assert!(
        line.contains(&users_arg) && line.contains("cannot read"),
        "{line}"
    );
    assert_eq!(pass_code(server.addr, "bob", "bob-pw"), 230);
    assert_eq!(open.retr("f.txt"), b"kept\n");

    // Mended: the next reload takes it.
    write_users(&users, &[("bob", "mended", r#"["read"]"#)]);
    reloaded(&server);
    assert_eq!(pass_code(server.addr, "bob", "bob-pw"), 530);
    assert_eq!(pass_code(server.addr, "bob", "mended"), 230);
    assert_eq!(open.retr("f.txt"), b"kept\n");
}

#[test]
fn the_config_files_reloadable_keys_take_effect_and_the_others_wait_for_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    fs::create_dir_all(&root).expect("mkdir");
    let config = dir.path().join("ftp.toml");
    replace_file(&config, "max-per-ip = 3\nanonymous = \"write\"\n");
    let config_arg = config.to_string_lossy().into_owned();
    let server = TestServer::start_in(dir, root, &["--config", &config_arg]);
    let mut a = server.login();
    let mut b = server.login();

    replace_file(
        &config,
        "max-per-ip = 1\nanonymous = \"read\"\nworkers = 3\n",
    );
    let line = reloaded(&server);
    assert!(
        line.contains("max-per-ip = 1 (was 3)")
            && line.contains("anonymous = \"read\" (was \"write\")"),
        "{line}"
    );
    let log = server.log();
    assert!(
        log.contains(&format!(
            "reload: {config_arg}:3: workers changed, but it takes a restart"
        )),
        "{log}"
    );

    // Both open sessions go on, with the write permission they logged in with.
    a.stor("a.txt", b"from a");
    b.stor("b.txt", b"from b");
    // A third session from this address is past the new limit.
    let c = Ftp::connect(server.addr);
    assert_eq!(c.greeting.code, 421, "{:?}", c.greeting);
    assert!(
        c.greeting.text.contains("from your address"),
        "{:?}",
        c.greeting
    );
    drop((a, b, c));

    // Once they are gone, one session is let in, anonymous and read-only now.
    let mut d = server.login_when_free();
    assert_eq!(d.retr("a.txt"), b"from a");
    d.expect("MKD refused", 550);
    let e = Ftp::connect(server.addr);
    assert_eq!(e.greeting.code, 421, "{:?}", e.greeting);

    // A bad value: the reload fails at its line, and the limit in force stays.
    replace_file(&config, "anonymous = \"read\"\nmax-per-ip = \"many\"\n");
    let line = failed(&server);
    assert!(
        line.contains(&format!("{config_arg}:2: max-per-ip")),
        "{line}"
    );
    let f = Ftp::connect(server.addr);
    assert_eq!(f.greeting.code, 421, "{:?}", f.greeting);
    d.expect("NOOP", 200);
}
