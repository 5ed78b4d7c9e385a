//! The data path against real clients' habits: the order and the writes of the
//! replies around a transfer, passive ports that are never connected to, and the
//! end of TLS data connections (issue 11).

use std::fs;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{assert_same, free_port, have, pattern, require, run_peer, TestServer, WAIT};

/// aria2 reads every reply that has arrived, then waits for the `226` only when the
/// control connection becomes readable again: a `226` read together with the `150`
/// is never seen. The quick path wrote them in one write, so every file of 64 KiB or
/// less waited out aria2's 60 s timeout (issue 11, item 5); a `226` sent while aria2
/// was still waking up for the `150` did the same. With `--timeout=20` a lost `226`
/// costs 20 s.
#[test]
fn aria2_downloads_small_files_without_waiting_for_a_lost_226() {
    if !require(have("aria2c", &["--version"]), "aria2c") {
        return;
    }
    let server = TestServer::start(&[]);
    let files = [
        ("one.bin", pattern(1 << 10, 51)),
        ("sixty-four.bin", pattern(64 << 10, 52)),
        ("past-the-quick-path.bin", pattern((64 << 10) + 1, 54)),
    ];
    for (name, bytes) in &files {
        fs::write(server.root().join(name), bytes).expect("write");
    }
    let out = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in &files {
        let mut aria = Command::new("aria2c");
        aria.args([
            "--timeout=20",
            "--max-tries=1",
            "--allow-overwrite=true",
            "--console-log-level=warn",
            "--summary-interval=0",
            "--dir",
        ])
        .arg(out.path())
        .args(["--out", name])
        .arg(format!("ftp://{}/{name}", server.addr));
        let started = Instant::now();
        let run = run_peer(aria);
        let took = started.elapsed();
        assert!(
            run.status.success(),
            "aria2c {name}: {}{}\nserver log:\n{}",
            run.stdout,
            run.stderr,
            server.log()
        );
        assert_same(&fs::read(out.path().join(name)).expect("read"), bytes, name);
        // Generous: a lost 226 costs aria2 its whole timeout (20 s here).
        assert!(
            took < Duration::from_secs(15),
            "aria2c {name} took {took:?}"
        );
    }
}

/// Sessions that sent EPSV (or PASV) and then only idled held the ports of a
/// `--pasv-ports` range for as long as they stayed, NOOP keeping them; every other
/// transfer got `425` (issue 11, item 6). An unused listener is closed after the
/// data timeout, and one a transfer used is not kept when the ports are shared.
#[test]
fn idle_sessions_do_not_hold_the_passive_range() {
    let port = free_port();
    let range = format!("{port}-{port}");
    let server = TestServer::start(&["--pasv-ports", &range, "--data-timeout", "2"]);
    let original = pattern(100 << 10, 53);
    fs::write(server.root().join("f.bin"), &original).expect("write");
    // A transfer's listener goes back to the range as soon as the transfer ends.
    let mut first = server.login();
    first.expect("TYPE I", 200);
    assert_same(&first.retr("f.bin"), &original, "first download");
    let mut other = server.login();
    other.expect("TYPE I", 200);
    assert_same(&other.retr("f.bin"), &original, "second session's download");
    // An EPSV nobody connects to holds the only port...
    assert_eq!(first.epsv_port(), port);
    other.expect("EPSV", 425);
    // ...until the data timeout closes it, NOOPs or not.
    let deadline = Instant::now() + WAIT;
    loop {
        thread::sleep(Duration::from_millis(500));
        first.expect("NOOP", 200);
        let r = other.cmd("EPSV");
        if r.code == 229 {
            assert!(r.text.contains(&format!("|||{port}|")), "{r:?}");
            break;
        }
        assert_eq!(r.code, 425, "{r:?}");
        assert!(Instant::now() < deadline, "the idle session kept the port");
    }
    assert_same(
        &other.retr_on(port, "f.bin"),
        &original,
        "download on the freed port",
    );
    // The idle session's next transfer is told why it has no data connection.
    let r = first.expect("RETR f.bin", 425);
    assert!(r.text.contains("Passive port closed"), "{r:?}");
    first.expect("NOOP", 200);
}

/// A TLS write whose socket write timeout passes keeps what rustls queued and takes
/// nothing of the new buffer: the session's transfer loop writes again after each
/// tick, and the client must get every byte once, in order (issue 11, FTPS).
#[test]
fn tls_writes_that_time_out_lose_and_repeat_nothing() {
    use simple_ftp::tls::{self, ClientStream, ServerStream};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    fs::write(&cert, certified.cert.pem()).expect("write cert");
    fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let server_config = tls::server_config(&cert, &key).expect("server config");
    let client_config = tls::client_config(Some(&cert), false).expect("client config");
    let payload = pattern(6 << 20, 55);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let sent = payload.clone();
    let writer = thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        tcp.set_read_timeout(Some(WAIT)).expect("timeout");
        tcp.set_write_timeout(Some(WAIT)).expect("timeout");
        let conn = rustls::ServerConnection::new(server_config).expect("conn");
        let mut stream = ServerStream::tls(tcp, conn).expect("handshake");
        let tcp = stream.tcp().expect("tcp");
        // Small buffers, so the writes block while the client does not read.
        rustix::net::sockopt::set_socket_send_buffer_size(tcp, 16 << 10).expect("sndbuf");
        tcp.set_write_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let (mut at, mut timeouts, mut longest) = (0, 0, Duration::ZERO);
        let deadline = Instant::now() + WAIT;
        while at < sent.len() {
            assert!(Instant::now() < deadline, "the writes made no progress");
            let end = (at + (256 << 10)).min(sent.len());
            let started = Instant::now();
            let wrote = stream.write(&sent[at..end]);
            longest = longest.max(started.elapsed());
            match wrote {
                Ok(n) => at += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    timeouts += 1;
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        tcp_finish(stream);
        (timeouts, longest)
    });
    let tcp = TcpStream::connect(addr).expect("connect");
    rustix::net::sockopt::set_socket_recv_buffer_size(&tcp, 16 << 10).expect("rcvbuf");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    tcp.set_write_timeout(Some(WAIT)).expect("timeout");
    let name = tls::server_name("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(client_config, name).expect("conn");
    let mut stream = ClientStream::tls(tcp, conn).expect("handshake");
    // Not reading for a while makes the server's writes time out.
    thread::sleep(Duration::from_millis(500));
    let mut got = Vec::new();
    stream.read_to_end(&mut got).expect("read");
    drop(stream);
    let (timeouts, longest) = writer.join().expect("writer");
    assert!(timeouts > 0, "no write timed out: the test proves nothing");
    // A blocked write gives up after its write timeout (20 ms); rustls's own write
    // went on to read, for the whole read timeout (30 s here). Generous.
    assert!(
        longest < Duration::from_secs(10),
        "a write took {longest:?}"
    );
    assert_same(&got, &payload, "bytes through timed-out TLS writes");
}

/// Flushes what is queued, with the timeout the test set, then ends the stream.
fn tcp_finish(mut stream: simple_ftp::tls::ServerStream) {
    use std::io::Write;
    let deadline = Instant::now() + WAIT;
    while let Err(e) = stream.flush() {
        assert!(Instant::now() < deadline, "flush: {e}");
    }
    if let Ok(tcp) = stream.tcp() {
        tcp.set_write_timeout(Some(WAIT)).expect("timeout");
    }
    stream.finish().expect("finish");
}
