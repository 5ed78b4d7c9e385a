//! `--proxy-protocol` and `--trusted-proxies` with hand-written PROXY headers (v1 and
//! v2) from test sockets: the server takes the header's client as the peer (STAT,
//! `--max-per-ip`, PORT/EPRT targets, the passive data connection's check, the log,
//! the transfer log), drops untrusted peers when a header is required, closes a
//! malformed, truncated or late header without a reply, serves other clients
//! while one is late, and hands the implicit FTPS port's TLS handshake over whole.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};

use crate::common::{eventually, pattern, Ftp, TestServer, WAIT};

/// A connection to `to` from the loopback address `from`.
pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((from, 0)).into())
        .expect("bind the client address");
    socket.connect_timeout(&to.into(), WAIT).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.set_write_timeout(Some(WAIT)).expect("timeout");
    stream
}

/// A version 1 header for a TCP connection from `client` to `server`.
pub fn v1(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        server.ip(),
        client.port(),
        server.port()
    )
    .into_bytes()
}

/// A version 2 `PROXY` header (IPv4, TCP) from `client` to `server`, with one TLV.
pub fn v2(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let (IpAddr::V4(c), IpAddr::V4(s)) = (client.ip(), server.ip()) else {
        panic!("IPv4 only here");
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12 + 5]);
    h.extend_from_slice(&c.octets());
    h.extend_from_slice(&s.octets());
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&server.port().to_be_bytes());
    h.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // ALPN "h2", skipped
    h
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("addr")
}

/// A control connection from 127.0.0.1 that starts with `header`.
fn proxied(server: &TestServer, header: &[u8]) -> Ftp {
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    stream.write_all(header).expect("send the header");
    Ftp::on(stream)
}

/// Asserts the server closes `stream` without sending a byte.
fn closed_without_reply(mut stream: TcpStream, what: &str) {
    let mut got = Vec::new();
    // A reset (the server closed with our bytes unread) is a close too.
    let _ = stream.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "{what}: expected no reply, got {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// The client STAT names.
fn stat_client(ftp: &mut Ftp) -> String {
    let r = ftp.expect("STAT", 211);
    r.text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Connected from "))
        .unwrap_or_else(|| panic!("no client in {r:?}"))
        .to_owned()
}

const REQUIRED: [&str; 4] = [
    "--proxy-protocol",
    "required",
    "--trusted-proxies",
    "127.0.0.1",
];

#[test]
fn a_v1_header_names_the_client_and_max_per_ip_counts_it() {
    let server = TestServer::start(&[&REQUIRED[..], &["--max-per-ip", "1"]].concat());
    let claimed = addr("192.0.2.7:40000");
    let mut first = proxied(&server, &v1(claimed, server.addr));
    first.login();
    assert_eq!(stat_client(&mut first), "192.0.2.7");

    // The same client again (through the same proxy): past --max-per-ip.
    let again = proxied(&server, &v1(addr("192.0.2.7:40001"), server.addr));
    assert_eq!(again.greeting.code, 421, "{:?}", again.greeting);
    assert!(
        again.greeting.text.contains("your address"),
        "{:?}",
        again.greeting
    );

    // Another client through the same proxy is its own count.
    let mut other = proxied(&server, &v1(addr("198.51.100.9:5000"), server.addr));
    other.login();
    assert_eq!(stat_client(&mut other), "198.51.100.9");

    // The first client's session ends: its count goes with it.
    first.expect("QUIT", 221);
    drop(first);
    eventually("the client's count to be released", || {
        let next = proxied(&server, &v1(addr("192.0.2.7:40002"), server.addr));
        next.greeting.code == 220
    });
    let log = server.log();
    assert!(
        log.contains("192.0.2.7:40000: session start (through the proxy 127.0.0.1:"),
        "{log}"
    );
}

#[test]
fn a_v2_header_names_the_client_and_only_its_address_takes_port_and_eprt() {
    let server = TestServer::start(&REQUIRED);
    let mut ftp = proxied(&server, &v2(addr("192.0.2.7:40000"), server.addr));
    ftp.login();
    assert_eq!(stat_client(&mut ftp), "192.0.2.7");
    ftp.expect("PORT 192,0,2,7,156,64", 200);
    ftp.expect("EPRT |1|192.0.2.7|40001|", 200);
    // The proxy's own address, the real TCP peer, is someone else: a bounce.
    ftp.expect("PORT 127,0,0,1,156,64", 504);
    ftp.expect("EPRT |1|127.0.0.1|40001|", 504);
    ftp.expect("EPRT |1|198.51.100.9|40001|", 504);
}

#[test]
fn a_passive_data_connection_through_the_proxy_is_checked_against_its_header() {
    let logs = tempfile::tempdir().expect("tempdir");
    let xferlog = logs.path().join("xferlog");
    let xferlog_arg = xferlog.to_str().expect("utf-8");
    let server = TestServer::start(&[&REQUIRED[..], &["--xferlog", xferlog_arg]].concat());
    let content = pattern(300_000, 14);
    std::fs::write(server.root().join("f.bin"), &content).expect("write");
    let client = addr("127.0.0.2:40000");
    let mut ftp = proxied(&server, &v1(client, server.addr));
    ftp.login();

    let port = ftp.epsv_port();
    let data_addr = SocketAddr::new(server.addr.ip(), port);
    // A data connection whose header names another client is dropped; one without a
    // header is not believed either; the one naming the control's client is taken.
    let mut stranger = connect_from(Ipv4Addr::LOCALHOST, data_addr);
    stranger
        .write_all(&v2(addr("127.0.0.3:40001"), data_addr))
        .expect("send");
    let mut right = connect_from(Ipv4Addr::LOCALHOST, data_addr);
    right
        .write_all(&v2(addr("127.0.0.2:40002"), data_addr))
        .expect("send");
    ftp.expect("RETR f.bin", 150);
    let mut got = Vec::new();
    right.read_to_end(&mut got).expect("read data");
    drop(right);
    ftp.expect_reply(226);
    assert_eq!(got.len(), content.len());
    assert!(got == content, "downloaded bytes differ");
    closed_without_reply(stranger, "the other client's data connection");
    let log = server.log();
    assert!(log.contains("refused: expected 127.0.0.2"), "{log}");

    // An upload the same way; the transfer log names the real client.
    let upload = pattern(70_000, 15);
    let port = ftp.epsv_port();
    let data_addr = SocketAddr::new(server.addr.ip(), port);
    let mut data = connect_from(Ipv4Addr::LOCALHOST, data_addr);
    data.write_all(&v1(addr("127.0.0.2:40003"), data_addr))
        .expect("send");
    ftp.expect("STOR up.bin", 150);
    data.write_all(&upload).expect("upload");
    drop(data);
    ftp.expect_reply(226);
    let stored = std::fs::read(server.root().join("up.bin")).expect("stored");
    assert!(stored == upload, "uploaded bytes differ");
    ftp.expect("QUIT", 221);
    eventually("two transfer log lines", || {
        std::fs::read_to_string(&xferlog).is_ok_and(|t| t.lines().count() == 2)
    });
    let lines = std::fs::read_to_string(&xferlog).expect("xferlog");
    for line in lines.lines() {
        assert!(line.contains(" 127.0.0.2 "), "{line}");
    }
}

#[test]
fn required_drops_an_untrusted_peer_at_once() {
    let server = TestServer::start(&[
        "--proxy-protocol",
        "required",
        "--trusted-proxies",
        "127.0.0.2",
    ]);
    // From 127.0.0.1, which is not trusted: even a header is no ticket in.
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    stream
        .write_all(&v1(addr("192.0.2.7:40000"), server.addr))
        .expect("send");
    closed_without_reply(stream, "an untrusted peer");
    // The trusted address is served.
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 2), server.addr);
    stream
        .write_all(&v1(addr("192.0.2.7:40000"), server.addr))
        .expect("send");
    let mut ftp = Ftp::on(stream);
    ftp.login();
    assert_eq!(stat_client(&mut ftp), "192.0.2.7");
    let log = server.log();
    assert!(log.contains("not a trusted proxy"), "{log}");
}

#[test]
fn malformed_and_truncated_headers_close_without_a_reply() {
    let server = TestServer::start(&REQUIRED);
    let mut bad_v2 = v2(addr("192.0.2.7:40000"), server.addr);
    bad_v2[12] = 0x31; // version 3
    let mut overlong_tlv = v2(addr("192.0.2.7:40000"), server.addr);
    overlong_tlv[15] = 12 + 4; // the TLV now runs past the header
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(200, b'x');
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "a v1 header with one field",
            b"PROXY TCP4 192.0.2.7\r\n".to_vec(),
        ),
        (
            "a v1 header of another protocol",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
        ),
        ("a v1 header past 107 bytes", long),
        ("a v2 header of version 3", bad_v2),
        ("a v2 header with a TLV too long", overlong_tlv),
        ("FTP without a header", b"USER anonymous\r\n".to_vec()),
    ];
    for (what, bytes) in cases {
        let mut stream = connect_from(Ipv4Addr::LOCALHOST, server.addr);
        stream.write_all(&bytes).expect("send");
        closed_without_reply(stream, what);
    }
    // Half a header, then the client's end: closed at once, not at the bound.
    let whole = v2(addr("192.0.2.7:40000"), server.addr);
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    stream.write_all(&whole[..20]).expect("send");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    closed_without_reply(stream, "a truncated header");
    let log = server.log();
    assert!(
        log.contains("connection closed inside the PROXY header"),
        "{log}"
    );
    assert!(log.contains("no PROXY header"), "{log}");
}

#[test]
fn a_slow_header_is_closed_after_the_bound_while_others_are_served() {
    let server = TestServer::start(&REQUIRED);
    let mut slow = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    slow.write_all(b"PROXY TCP4 192.0.2.").expect("send");
    // Meanwhile the acceptor and the other workers serve others.
    for n in 0..3u16 {
        let mut ftp = proxied(
            &server,
            &v1(addr(&format!("198.51.100.{}:4000", n + 1)), server.addr),
        );
        ftp.login();
        assert_eq!(stat_client(&mut ftp), format!("198.51.100.{}", n + 1));
        ftp.expect("QUIT", 221);
    }
    // The slow one's bytes never stretch its bound (5 s): it is closed, no reply.
    let _ = slow.write_all(b"7");
    closed_without_reply(slow, "a header not finished in time");
    let log = server.log();
    assert!(log.contains("PROXY header not received in time"), "{log}");
}

#[test]
fn optional_reads_a_header_only_from_trusted_addresses() {
    let server = TestServer::start(&[
        "--proxy-protocol",
        "optional",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    // Trusted, with a header: its client.
    let mut ftp = proxied(&server, &v1(addr("192.0.2.7:40000"), server.addr));
    ftp.login();
    assert_eq!(stat_client(&mut ftp), "192.0.2.7");
    // Trusted, without one (a client that waits for the greeting): served as is.
    let mut direct = Ftp::on(connect_from(Ipv4Addr::LOCALHOST, server.addr));
    direct.login();
    assert_eq!(stat_client(&mut direct), "127.0.0.1");
    // Untrusted, with a header: the header is not read as one but as an FTP line.
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 5), server.addr);
    stream
        .write_all(&v1(addr("192.0.2.7:40000"), server.addr))
        .expect("send");
    let mut liar = Ftp::on(stream);
    assert_eq!(liar.greeting.code, 220, "{:?}", liar.greeting);
    let refused = liar.reply();
    assert_eq!(refused.code / 100, 5, "{refused:?}");
    liar.login();
    assert_eq!(stat_client(&mut liar), "127.0.0.5");
}

#[test]
fn the_bytes_after_a_header_reach_the_session_whole() {
    // The header's bytes are read and not one more: a command sent in the same
    // segment as the header is the session's first line.
    let server = TestServer::start(&REQUIRED);
    let mut stream = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    let mut bytes = v2(addr("192.0.2.7:40000"), server.addr);
    bytes.extend_from_slice(b"NOOP\r\n");
    stream.write_all(&bytes).expect("send");
    let mut ftp = Ftp::on(stream);
    assert_eq!(ftp.greeting.code, 220);
    ftp.expect_reply(200);
    ftp.login();
    assert_eq!(stat_client(&mut ftp), "192.0.2.7");
}

#[test]
fn the_implicit_ftps_port_reads_the_header_then_the_tls_handshake() {
    if !crate::common::require(crate::common::have("python3", &["--version"]), "python3") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).expect("mkdir");
    let (cert_s, key_s) = (cert.to_string_lossy(), key.to_string_lossy());
    let args = [
        &REQUIRED[..],
        &[
            "--tls-cert",
            &cert_s,
            "--tls-key",
            &key_s,
            "--implicit-tls-port",
            "0",
        ],
    ]
    .concat();
    let server = TestServer::start_in(dir, root, &args);
    let implicit = server.implicit.expect("implicit FTPS address");
    let header: String = v2(addr("192.0.2.7:40000"), implicit)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // The header and the ClientHello go out back to back; the server must take
    // exactly the header's bytes and leave the handshake's to TLS.
    let script = r#"
import socket, ssl, sys
port, ca, header = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
raw = socket.create_connection(("127.0.0.1", port), timeout=30)
raw.sendall(header)
tls = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname="127.0.0.1")
f = tls.makefile("rb")
def cmd(line):
    tls.sendall(line.encode() + b"\r\n")
    first = f.readline().decode()
    text = first
    while first[3:4] == "-":
        first = f.readline().decode()
        text += first
    return text
print(f.readline()[:3].decode())
print(cmd("USER anonymous")[:3], cmd("PASS x")[:3])
stat = cmd("STAT")
print([l.strip() for l in stat.splitlines() if "Connected from" in l][0])
"#;
    let port = implicit.port().to_string();
    let run = crate::common::python(script, &[port.as_ref(), cert.as_os_str(), header.as_ref()]);
    assert!(run.status.success(), "{}\n{}", run.stderr, server.log());
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["220", "331 230", "Connected from 192.0.2.7"],
        "{}",
        server.log()
    );
}
