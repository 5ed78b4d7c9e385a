//! `--metrics`: the Prometheus page at `/metrics` counts what real sessions did (bytes
//! equal to what moved, commands by verb, logins by result, parked sessions), during
//! and after transfers; `/healthz` says 200, then 503 through the shutdown grace; the
//! HTTP side stays one thread with bounded requests; `promtool check metrics` accepts
//! the page, and a real Prometheus server scrapes it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    assert_same, eventually, free_port, have, pattern, require, Ftp, TestServer, WAIT,
};

/// A server whose metrics are served on a port of their own; returns it and that
/// address (read from the server's log).
fn metrics_server(extra: &[&str]) -> (TestServer, SocketAddr) {
    let mut args = vec!["--metrics", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = TestServer::start(&args);
    let mut found = None;
    eventually("the metrics address in the log", || {
        found = server.log().lines().find_map(|l| {
            let rest = l.split("metrics on http://").nth(1)?;
            rest.split('/').next()?.parse().ok()
        });
        found.is_some()
    });
    let addr = found.expect("metrics address");
    (server, addr)
}

/// One HTTP request; the status code and the body.
fn request(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to metrics");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(head.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"),
    )
}

/// The `/metrics` page.
fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of one series (`name` or `name{labels}` exactly as the page writes it).
#[track_caller]
fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{page}"))
}

fn commands(page: &str, verb: &str) -> f64 {
    value(page, &format!("ftp_commands_total{{command=\"{verb}\"}}"))
}

fn replies(page: &str, class: &str) -> f64 {
    value(page, &format!("ftp_replies_total{{class=\"{class}\"}}"))
}

fn transfers(page: &str, direction: &str, result: &str) -> f64 {
    value(
        page,
        &format!("ftp_transfers_total{{direction=\"{direction}\",result=\"{result}\"}}"),
    )
}

fn bytes(page: &str, direction: &str) -> f64 {
    value(
        page,
        &format!("ftp_transfer_bytes_total{{direction=\"{direction}\"}}"),
    )
}

/// Waits until the page says `series` is `want`.
#[track_caller]
fn eventually_value(addr: SocketAddr, series: &str, want: f64) {
    eventually(&format!("{series} = {want}"), || {
        value(&scrape(addr), series) == want
    });
}

#[test]
fn the_page_counts_what_real_sessions_did() {
    let (server, at) = metrics_server(&["--workers", "4", "--failed-login-delay", "0"]);
    let page = scrape(at);
    assert_eq!(value(&page, "ftp_workers"), 4.0);
    assert_eq!(value(&page, "ftp_sessions_connected"), 0.0);
    assert_eq!(commands(&page, "RETR"), 0.0);

    let data = pattern(300_000, 13);
    let mut ftp = server.login();
    ftp.stor("up.bin", &data);
    assert_same(&ftp.retr("up.bin"), &data, "first download");
    assert_same(&ftp.retr("up.bin"), &data, "second download");
    ftp.expect("RETR missing.bin", 550);
    assert!(ftp.listing("LIST").contains("up.bin"));
    ftp.expect("XPWD", 257);
    ftp.expect("FOO", 500);

    // A failed login, on a connection of its own.
    let mut bad = Ftp::connect(server.addr);
    bad.expect("USER bob", 331);
    bad.expect("PASS wrong", 530);
    bad.expect("QUIT", 221);

    // The first session idles, logged in: it is parked, holding no worker. (The
    // gauges settle a moment after the replies: a worker lets go of a session after
    // its last reply.)
    let mut page = String::new();
    eventually("the second session gone, the first parked", || {
        page = scrape(at);
        value(&page, "ftp_sessions_ended_total{reason=\"quit\"}") == 1.0
            && value(&page, "ftp_sessions_parked") == 1.0
            && value(&page, "ftp_sessions_connected") == 1.0
            && value(&page, "ftp_workers_busy") == 0.0
    });
    assert_eq!(value(&page, "ftp_sessions_logged_in"), 1.0);
    assert_eq!(value(&page, "ftp_sessions_total{result=\"accepted\"}"), 2.0);
    assert_eq!(bytes(&page, "upload"), 300_000.0);
    assert_eq!(bytes(&page, "download"), 600_000.0);
    assert_eq!(transfers(&page, "upload", "complete"), 1.0);
    assert_eq!(transfers(&page, "download", "complete"), 2.0);
    assert_eq!(transfers(&page, "download", "failed"), 0.0);
    assert_eq!(
        value(
            &page,
            "ftp_transfer_duration_seconds_count{direction=\"download\"}"
        ),
        2.0
    );
    for (verb, n) in [
        ("USER", 2.0),
        ("PASS", 2.0),
        ("TYPE", 1.0),
        ("EPSV", 4.0),
        ("STOR", 1.0),
        ("RETR", 3.0),
        ("LIST", 1.0),
        ("PWD", 1.0),
        ("QUIT", 1.0),
        ("other", 1.0),
        ("DELE", 0.0),
    ] {
        assert_eq!(commands(&page, verb), n, "{verb}");
    }
    // 150 for STOR, RETR, RETR, LIST; 220 x2, 230, 200, 229 x4, 226 x4, 257, 221;
    // 331 x2; 550, 500, 530.
    assert_eq!(replies(&page, "1xx"), 4.0);
    assert_eq!(replies(&page, "2xx"), 14.0);
    assert_eq!(replies(&page, "3xx"), 2.0);
    assert_eq!(replies(&page, "4xx"), 0.0);
    assert_eq!(replies(&page, "5xx"), 3.0);
    assert_eq!(
        value(
            &page,
            "ftp_logins_total{kind=\"anonymous\",result=\"success\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "ftp_logins_total{kind=\"account\",result=\"failure\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&page, "ftp_lock_wait_seconds_count{mode=\"read\"}"),
        2.0
    );
    assert_eq!(
        value(&page, "ftp_lock_wait_seconds_count{mode=\"write\"}"),
        1.0
    );

    // During an upload: the worker is busy, and its bytes count when it ends.
    let mut up = ftp.epsv();
    ftp.expect("STOR second.bin", 150);
    up.write_all(&data[..100_000]).expect("first part");
    eventually_value(at, "ftp_workers_busy", 1.0);
    let page = scrape(at);
    assert_eq!(value(&page, "ftp_sessions_parked"), 0.0);
    assert_eq!(transfers(&page, "upload", "complete"), 1.0);
    up.write_all(&data[100_000..]).expect("the rest");
    drop(up);
    ftp.expect_reply(226);
    let page = scrape(at);
    assert_eq!(transfers(&page, "upload", "complete"), 2.0);
    assert_eq!(bytes(&page, "upload"), 600_000.0);

    // An upload stopped by ABOR after 4096 bytes.
    let mut up = ftp.epsv();
    ftp.expect("STOR stopped.bin", 150);
    up.write_all(&data[..4096]).expect("part");
    std::thread::sleep(Duration::from_millis(500));
    ftp.send_raw(b"ABOR\r\n");
    ftp.expect_reply(426);
    ftp.expect_reply(226);
    drop(up);
    let page = scrape(at);
    assert_eq!(transfers(&page, "upload", "aborted"), 1.0);
    assert_eq!(bytes(&page, "upload"), 604_096.0);

    ftp.expect("QUIT", 221);
    eventually_value(at, "ftp_sessions_connected", 0.0);
    eventually_value(at, "ftp_sessions_logged_in", 0.0);
    let page = scrape(at);
    assert_eq!(value(&page, "ftp_sessions_parked"), 0.0);
    assert_eq!(
        value(&page, "ftp_sessions_ended_total{reason=\"quit\"}"),
        2.0
    );
}

#[test]
fn healthz_says_200_then_503_through_the_shutdown_grace() {
    let (mut server, at) = metrics_server(&["--grace", "60"]);
    assert_eq!(get(at, "/healthz"), (200, "ok\n".to_owned()));
    let data = pattern(50_000, 5);
    let mut ftp = server.login();
    let mut up = ftp.epsv();
    ftp.expect("STOR held.bin", 150);
    up.write_all(&data[..1000]).expect("first part");
    eventually_value(at, "ftp_workers_busy", 1.0);

    server.signal("TERM");
    eventually("/healthz to say 503", || get(at, "/healthz").0 == 503);
    // The upload still runs, and the page is still served.
    let page = scrape(at);
    assert_eq!(value(&page, "ftp_sessions_connected"), 1.0);
    assert_eq!(value(&page, "ftp_workers_busy"), 1.0);
    up.write_all(&data[1000..]).expect("the rest");
    drop(up);
    ftp.expect_reply(226);
    let status = server.wait_exit(WAIT).expect("the server exits");
    assert!(status.success(), "{status:?}");
    assert_same(
        &std::fs::read(server.root().join("held.bin")).expect("upload kept"),
        &data,
        "held.bin",
    );
    // The HTTP thread ended with the server.
    assert!(TcpStream::connect_timeout(&at, WAIT).is_err());
}

/// The names of the server's threads (Linux: /proc/PID/task/*/comm).
fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_http_side_is_one_thread_with_bounded_requests() {
    let (server, at) = metrics_server(&["--workers", "2"]);
    scrape(at); // the thread runs
                // The metrics thread starts before the parker and the workers: wait until the
                // server's threads are all there, so the count below compares like with like.
    let started = Instant::now();
    let before = loop {
        let names = thread_names(server.pid());
        let all = ["parker", "worker-0", "worker-1"]
            .iter()
            .all(|t| names.iter().any(|n| n == t));
        if all || started.elapsed() > WAIT {
            break names;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(before.iter().filter(|n| *n == "metrics").count(), 1);
    // Clients that connect and say nothing get no thread of their own, and are
    // dropped after the request time: a scrape behind them is answered.
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect_timeout(&at, WAIT).expect("connect"))
        .collect();
    let page = scrape(at);
    assert_eq!(value(&page, "ftp_workers"), 2.0);
    let now = thread_names(server.pid());
    assert_eq!(now.len(), before.len(), "{before:?} then {now:?}");
    assert_eq!(now.iter().filter(|n| *n == "metrics").count(), 1);
    drop(silent);

    let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    assert_eq!(request(at, &huge).0, 431);
    assert_eq!(get(at, "/").0, 404);
    assert_eq!(request(at, "POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    let (status, body) = request(at, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = get(at, "/metrics?name[]=ftp_workers");
    assert_eq!(status, 200);
    assert_eq!(value(&body, "ftp_workers"), 2.0);
}

/// Where `promtool` or `prometheus` is: on the PATH, or unpacked by `.ci/run` from
/// Debian's `prometheus` package into the peers' folder.
fn prometheus_tool(name: &str) -> Option<PathBuf> {
    if have(name, &["--version"]) {
        return Some(PathBuf::from(name));
    }
    let peers = std::env::var("SIMPLE_FTP_PEERS")
        .unwrap_or_else(|_| "/var/cache/simple-ftp-bench".to_owned());
    let path = PathBuf::from(peers).join("usr/bin").join(name);
    have(path.to_str()?, &["--version"]).then_some(path)
}

/// Some traffic of every kind the page counts: an upload, downloads, a refused
/// command, a failed login.
fn some_traffic(server: &TestServer) {
    let data = pattern(70_000, 3);
    let mut ftp = server.login();
    ftp.stor("t.bin", &data);
    assert_same(&ftp.retr("t.bin"), &data, "t.bin");
    ftp.expect("RETR nothing", 550);
    ftp.expect("QUIT", 221);
    let mut bad = Ftp::connect(server.addr);
    bad.expect("USER someone", 331);
    bad.expect("PASS wrong", 530);
}

#[test]
fn promtool_accepts_the_page() {
    let Some(promtool) = prometheus_tool("promtool") else {
        require(
            false,
            "promtool (Debian's prometheus package; .ci/run unpacks it)",
        );
        return;
    };
    let (server, at) = metrics_server(&["--failed-login-delay", "0"]);
    some_traffic(&server);
    let page = scrape(at);
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{page}"
    );
}

/// A Prometheus server, stopped by its PID when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks the Prometheus at `web` for the instant value of `query`, if it has one.
fn query(web: SocketAddr, query: &str) -> Option<f64> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut stream = TcpStream::connect_timeout(&web, WAIT).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    let head = format!(
        "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body = response.split_once("\r\n\r\n")?.1;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_prometheus_server_scrapes_the_page() {
    let Some(prometheus) = prometheus_tool("prometheus") else {
        require(
            false,
            "prometheus (Debian's prometheus package; .ci/run unpacks it)",
        );
        return;
    };
    let (server, at) = metrics_server(&["--failed-login-delay", "0"]);
    some_traffic(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: ftp\n    static_configs:\n      \
             - targets: ['{at}']\n"
        ),
    )
    .expect("write config");
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let child = Command::new(&prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start prometheus");
    let _prometheus = Prometheus(child);
    let logged = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let mut seen = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        seen = query(web, "sum(ftp_transfer_bytes_total)");
        if seen == Some(140_000.0) && query(web, "up") == Some(1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(seen, Some(140_000.0), "prometheus log:\n{}", logged());
    assert_eq!(
        query(web, "ftp_logins_total{kind=\"account\",result=\"failure\"}"),
        Some(1.0)
    );
    assert_eq!(
        query(web, "ftp_commands_total{command=\"RETR\"}"),
        Some(2.0)
    );
}

#[test]
fn tls_handshakes_count_by_connection_and_result() {
    if !require(have("curl", &["--version"]), "curl") {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let (cert_s, key_s) = (cert.to_string_lossy(), key.to_string_lossy());
    let (server, at) = metrics_server(&["--tls-cert", &cert_s, "--tls-key", &key_s]);
    let data = pattern(20_000, 8);
    std::fs::write(server.root().join("secret.bin"), &data).expect("write");

    // curl with --ssl-reqd: AUTH TLS on the control connection, PROT P for the data.
    let got = server.dir.path().join("got.bin");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "--ssl-reqd", "--cacert"])
        .arg(&cert)
        .arg(format!("ftp://{}/secret.bin", server.addr))
        .arg("-o")
        .arg(&got);
    let run = crate::common::run_peer(cmd);
    assert!(run.status.success(), "curl: {}", run.stderr);
    assert_same(&std::fs::read(&got).expect("read"), &data, "secret.bin");

    // A client that answers AUTH TLS's 234 with something other than a handshake.
    let mut bad = Ftp::connect(server.addr);
    bad.expect("AUTH TLS", 234);
    bad.send_raw(b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        bad.try_reply().is_none(),
        "the server closes the connection"
    );

    let handshakes = |channel: &str, result: &str| {
        format!("ftp_tls_handshakes_total{{channel=\"{channel}\",result=\"{result}\"}}")
    };
    eventually_value(at, &handshakes("control", "failure"), 1.0);
    let page = scrape(at);
    assert_eq!(value(&page, &handshakes("control", "success")), 1.0);
    assert_eq!(value(&page, &handshakes("data", "success")), 1.0);
    assert_eq!(value(&page, &handshakes("data", "failure")), 0.0);
    assert_eq!(bytes(&page, "download"), 20_000.0);
}

#[test]
fn upload_hooks_are_counted_by_result() {
    // One hook that fails, one that succeeds: `exit 3` for names ending in .bad.
    let hook = r#"case "$FTP_PATH" in *.bad) exit 3 ;; esac"#;
    let (server, at) = metrics_server(&["--on-upload", hook, "--hook-timeout", "30"]);
    let mut ftp = server.login();
    ftp.stor("one.bad", b"1");
    ftp.stor("two.ok", b"2");
    ftp.stor("three.bad", b"3");
    ftp.expect("QUIT", 221);
    let hooks = |result: &str| format!("ftp_upload_hooks_total{{result=\"{result}\"}}");
    eventually_value(at, &hooks("run"), 3.0);
    eventually_value(at, &hooks("failed"), 2.0);
    let page = scrape(at);
    assert_eq!(value(&page, &hooks("timed_out")), 0.0);
    assert_eq!(value(&page, &hooks("dropped")), 0.0);
}
