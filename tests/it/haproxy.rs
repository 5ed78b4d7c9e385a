//! Two of our servers behind a real HAProxy (TCP mode, `send-proxy-v2`) on loopback,
//! sharing one root: HAProxy maps the control port to both (roundrobin) and each
//! instance's passive port range to that instance; both announce the front's address
//! in PASV (`--pasv-address 127.0.0.1`). curl, lftp and our `ftp-client` go through
//! it from the client addresses 127.0.0.2 and 127.0.0.3 (and 127.0.0.1): a file
//! uploaded through one instance is downloaded through the other byte-exact,
//! `--max-per-ip` counts the real clients (per instance), and PORT/EPRT to anyone but
//! the real client is refused while an active transfer to it works.
//!
//! The instances listen on 127.0.0.10 and 127.0.0.11 so that their passive ports
//! and the front's, the same numbers, do not collide.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{
    assert_same, have, pattern, require, run_client_command, run_peer, version_line, Ftp, PeerRun,
    TestServer, WAIT,
};
use crate::proxy_protocol::connect_from;

/// Where Debian puts haproxy (/usr/sbin may not be on a test's PATH).
fn haproxy_path() -> Option<PathBuf> {
    if have("haproxy", &["-v"]) {
        return Some(PathBuf::from("haproxy"));
    }
    let sbin = PathBuf::from("/usr/sbin/haproxy");
    sbin.exists().then_some(sbin)
}

/// Ports in a row that are free on the front's and both instances' addresses now.
fn free_range(len: u16, taken: &[u16]) -> u16 {
    let seed = u64::from(std::process::id()) ^ Instant::now().elapsed().as_nanos() as u64;
    let mut base = 20_000 + (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as u16 % 20_000;
    'search: for _ in 0..500 {
        base = 20_000 + (base.wrapping_add(97) % 40_000);
        for port in base..base + len {
            if taken.contains(&port) {
                continue 'search;
            }
            for ip in [[127, 0, 0, 1], [127, 0, 0, 10], [127, 0, 0, 11]] {
                if TcpListener::bind(SocketAddr::from((ip, port))).is_err() {
                    continue 'search;
                }
            }
        }
        return base;
    }
    panic!("no free port range found");
}

/// A running HAProxy in the foreground, stopped by its PID on drop.
struct Front {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two instances and the front.
struct Setup {
    front: Front,
    servers: [TestServer; 2],
    root: PathBuf,
    /// Holds the shared root.
    _shared: tempfile::TempDir,
}

/// Passive ports per instance.
const RANGE: u16 = 4;

/// The HAProxy configuration of the README's recipe, for a front on 127.0.0.1.
fn haproxy_config(front_port: u16, instances: &[(SocketAddr, u16)]) -> String {
    let mut cfg = format!(
        "global\n    maxconn 256\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    \
         timeout server 60s\n\n\
         frontend ftp_control\n    bind 127.0.0.1:{front_port}\n    default_backend ftp_servers\n\n\
         backend ftp_servers\n    balance roundrobin\n"
    );
    for (n, (addr, _)) in instances.iter().enumerate() {
        cfg.push_str(&format!("    server ftp{n} {addr} send-proxy-v2\n"));
    }
    for (n, (addr, first)) in instances.iter().enumerate() {
        let last = first + RANGE - 1;
        // No port on the server line: the connection goes to the port it came to.
        cfg.push_str(&format!(
            "\nfrontend ftp{n}_passive\n    bind 127.0.0.1:{first}-{last}\n    \
             default_backend ftp{n}_passive\n\n\
             backend ftp{n}_passive\n    server ftp{n} {} send-proxy-v2\n",
            addr.ip()
        ));
    }
    cfg
}

/// Starts two instances on one root and HAProxy in front of them, with `extra`
/// flags for both instances; `None` (skipped) when haproxy is missing.
fn setup(extra: &[&str]) -> Option<Setup> {
    let haproxy = haproxy_path();
    if !require(haproxy.is_some(), "haproxy (apt-get install haproxy)") {
        return None;
    }
    let haproxy = haproxy?;
    eprintln!("peer: {}", version_line(haproxy.to_str()?, &["-v"]));
    let shared = tempfile::tempdir().expect("tempdir");
    let root = shared.path().join("root");
    fs::create_dir_all(&root).expect("mkdir root");
    let first = free_range(RANGE, &[]);
    let second = free_range(RANGE, &(first..first + RANGE).collect::<Vec<_>>());
    let start = |ip: &str, pasv: u16| {
        let dir = tempfile::tempdir().expect("tempdir");
        let range = format!("{pasv}-{}", pasv + RANGE - 1);
        let args = [
            &[
                "--bind",
                ip,
                "--pasv-ports",
                &range,
                "--pasv-address",
                "127.0.0.1",
                "--proxy-protocol",
                "required",
                "--trusted-proxies",
                "127.0.0.1",
            ][..],
            extra,
        ]
        .concat();
        TestServer::start_in(dir, root.clone(), &args)
    };
    let servers = [start("127.0.0.10", first), start("127.0.0.11", second)];
    let front_port = crate::common::free_port();
    let cfg = haproxy_config(
        front_port,
        &[(servers[0].addr, first), (servers[1].addr, second)],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = dir.path().join("haproxy.cfg");
    fs::write(&cfg_path, &cfg).expect("write haproxy.cfg");
    let log = fs::File::create(dir.path().join("haproxy.log")).expect("log");
    let child = Command::new(&haproxy)
        .arg("-f")
        .arg(&cfg_path)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start haproxy");
    let mut front = Front {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], front_port)),
        _dir: dir,
    };
    // Ready once the front answers with a greeting (the probe's session is 127.0.0.9's).
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = front.child.try_wait().expect("try_wait") {
            let log = fs::read_to_string(front._dir.path().join("haproxy.log")).unwrap_or_default();
            panic!("haproxy exited: {status}\n{cfg}\n{log}");
        }
        if let Ok(mut probe) = try_connect_from(Ipv4Addr::new(127, 0, 0, 9), front.addr) {
            let mut byte = [0u8; 1];
            if matches!(probe.read(&mut byte), Ok(1)) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "haproxy did not come up:\n{cfg}");
        thread::sleep(Duration::from_millis(50));
    }
    Some(Setup {
        front,
        servers,
        root,
        _shared: shared,
    })
}

/// A connection from `from` to `to`, or the error.
fn try_connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&to.into(), WAIT)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT))?;
    Ok(stream)
}

impl Setup {
    /// Which instances' logs mention `needle`.
    fn logged(&self, needle: &str) -> Vec<usize> {
        (0..2)
            .filter(|&n| self.servers[n].log().contains(needle))
            .collect()
    }

    fn logs(&self) -> String {
        format!(
            "--- ftp0:\n{}\n--- ftp1:\n{}",
            self.servers[0].log(),
            self.servers[1].log()
        )
    }
}

#[track_caller]
fn assert_ok(run: &PeerRun, what: &str, setup: &Setup) {
    assert!(
        run.status.success(),
        "{what} failed: {run:?}\n{}",
        setup.logs()
    );
}

/// curl from `from`: `args` then the URL of `path` at the front.
fn curl(setup: &Setup, from: &str, args: &[&str], path: &str) -> PeerRun {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60", "--interface", from])
        .args(args)
        .arg(format!(
            "ftp://127.0.0.1:{}/{path}",
            setup.front.addr.port()
        ));
    run_peer(cmd)
}

/// lftp from `from`, in `local`, running `commands` in one session to the front.
fn lftp(setup: &Setup, from: &str, local: &Path, commands: &str) -> PeerRun {
    let script = format!(
        "set net:socket-bind-ipv4 {from}; set ftp:passive-mode on; set net:max-retries 1; \
         set net:timeout 20; set cmd:fail-exit yes; set ftp:ssl-allow no; set xfer:clobber on; \
         open -u anonymous,lftp@ -p {} 127.0.0.1; lcd {}; {commands}",
        setup.front.addr.port(),
        local.display()
    );
    let home = local.join(".lftp-home");
    fs::create_dir_all(&home).expect("mkdir home");
    let mut cmd = Command::new("lftp");
    cmd.arg("-c").arg(script).env("HOME", &home);
    run_peer(cmd)
}

#[test]
fn haproxy_in_front_of_two_instances_on_one_root_with_curl_lftp_and_our_client() {
    let Some(setup) = setup(&[]) else {
        return;
    };
    let peers = require(have("curl", &["--version"]), "curl")
        && require(have("lftp", &["--version"]), "lftp (apt-get install lftp)");
    if !peers {
        return;
    }
    let local = tempfile::tempdir().expect("tempdir");
    let local = local.path();
    let up = pattern(1_500_000, 141);
    fs::write(local.join("curl-up.bin"), &up).expect("write");

    // curl from 127.0.0.2 uploads through one instance ...
    let run = curl(
        &setup,
        "127.0.0.2",
        &["-T", local.join("curl-up.bin").to_str().expect("utf-8")],
        "curl-up.bin",
    );
    assert_ok(&run, "curl upload", &setup);
    let stored_by = setup.logged("127.0.0.2:");
    assert_eq!(
        stored_by.len(),
        1,
        "one instance served 127.0.0.2: {stored_by:?}"
    );
    assert_same(
        &fs::read(setup.root.join("curl-up.bin")).expect("stored"),
        &up,
        "stored by curl",
    );

    // ... and lftp from 127.0.0.3 downloads it, one session after another until the
    // other instance served one (roundrobin: the next one).
    let other = 1 - stored_by[0];
    let mut through_other = false;
    for n in 0..4 {
        let out = format!("lftp-down-{n}.bin");
        let run = lftp(
            &setup,
            "127.0.0.3",
            local,
            &format!("get curl-up.bin -o {out}"),
        );
        assert_ok(&run, "lftp download", &setup);
        assert_same(
            &fs::read(local.join(&out)).expect("downloaded"),
            &up,
            "lftp's download",
        );
        if setup.servers[other].log().contains("127.0.0.3:") {
            through_other = true;
            break;
        }
    }
    assert!(
        through_other,
        "no download through the other instance\n{}",
        setup.logs()
    );
    // Every log line names the real clients, never the proxy's address as a client.
    for n in 0..2 {
        let log = setup.servers[n].log();
        assert!(
            log.contains("(through the proxy 127.0.0.1:"),
            "ftp{n} saw no proxied session:\n{log}"
        );
    }

    // lftp uploads from 127.0.0.3, curl downloads from 127.0.0.2, over PASV too.
    let up2 = pattern(700_000, 142);
    fs::write(local.join("lftp-up.bin"), &up2).expect("write");
    let run = lftp(
        &setup,
        "127.0.0.3",
        local,
        "set ftp:prefer-epsv no; put lftp-up.bin",
    );
    assert_ok(&run, "lftp upload", &setup);
    for n in 0..2 {
        let out = local.join(format!("curl-down-{n}.bin"));
        let run = curl(
            &setup,
            "127.0.0.2",
            &["--disable-epsv", "-o", out.to_str().expect("utf-8")],
            "lftp-up.bin",
        );
        assert_ok(&run, "curl download", &setup);
        assert_same(
            &fs::read(&out).expect("downloaded"),
            &up2,
            "curl's download",
        );
    }

    // Our client through the front, twice: a PUT and a GET, each time through the
    // next instance, both byte-exact.
    let ours = local.join("ours");
    fs::create_dir_all(&ours).expect("mkdir");
    let up3 = pattern(900_000, 143);
    fs::write(ours.join("ours.bin"), &up3).expect("write");
    let port = setup.front.addr.port();
    let script = format!(
        "OPEN 127.0.0.1 {port}\nPUT ours.bin\nCLOSE\nOPEN 127.0.0.1 {port}\nGET curl-up.bin\nGET lftp-up.bin\nQUIT\n"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftp-client"));
    cmd.arg("--dir").arg(&ours).arg("--timeout").arg("60");
    let run = run_client_command(cmd, &script);
    assert_eq!(run.code(), 0, "ftp-client: {run:?}\n{}", setup.logs());
    assert_same(
        &fs::read(setup.root.join("ours.bin")).expect("stored"),
        &up3,
        "our PUT",
    );
    assert_same(
        &fs::read(ours.join("curl-up.bin")).expect("got"),
        &up,
        "our GET",
    );
    assert_same(
        &fs::read(ours.join("lftp-up.bin")).expect("got"),
        &up2,
        "our GET",
    );
    // Nothing half-written is left in the shared root.
    let mut names: Vec<String> = fs::read_dir(&setup.root)
        .expect("read root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["curl-up.bin", "lftp-up.bin", "ours.bin"]);
}

/// A control connection through the front from `from`.
fn session_from(setup: &Setup, from: Ipv4Addr) -> Ftp {
    Ftp::on(connect_from(from, setup.front.addr))
}

#[test]
fn haproxy_max_per_ip_counts_real_clients_and_bounces_are_refused() {
    let Some(setup) = setup(&["--max-per-ip", "1"]) else {
        return;
    };
    // Four sessions at once from 127.0.0.2, dealt to the two instances in turn: one
    // on each is served, the second on each is the same client again and refused.
    let two = Ipv4Addr::new(127, 0, 0, 2);
    let sessions: Vec<Ftp> = (0..4).map(|_| session_from(&setup, two)).collect();
    let mut codes: Vec<u16> = sessions.iter().map(|s| s.greeting.code).collect();
    codes.sort_unstable();
    assert_eq!(codes, [220, 220, 421, 421], "{}", setup.logs());
    for s in sessions.iter().filter(|s| s.greeting.code == 421) {
        assert!(s.greeting.text.contains("your address"), "{:?}", s.greeting);
    }
    // Meanwhile 127.0.0.3 is served on both instances.
    let three = Ipv4Addr::new(127, 0, 0, 3);
    let mut others: Vec<Ftp> = (0..2).map(|_| session_from(&setup, three)).collect();
    for ftp in &mut others {
        ftp.login();
    }
    assert_eq!(setup.logged("127.0.0.3:").len(), 2, "{}", setup.logs());

    // Bounce: the session of 127.0.0.3 may name only 127.0.0.3 in PORT/EPRT; not the
    // proxy (the server's TCP peer), not another client.
    let ftp = &mut others[0];
    ftp.expect("PORT 127,0,0,1,156,64", 504);
    ftp.expect("PORT 127,0,0,2,156,64", 504);
    ftp.expect("EPRT |1|127.0.0.1|40000|", 504);
    ftp.expect("EPRT |1|198.51.100.9|40000|", 504);
    // To the real client, an active transfer works (the server connects to it
    // directly, not through the front).
    let content = pattern(200_000, 144);
    fs::write(setup.root.join("active.bin"), &content).expect("write");
    let listener = TcpListener::bind((three, 0)).expect("listen");
    let port = listener.local_addr().expect("addr").port();
    ftp.expect(&format!("EPRT |1|127.0.0.3|{port}|"), 200);
    ftp.send_raw(b"RETR active.bin\r\n");
    let (mut data, _) = listener.accept().expect("the server's data connection");
    data.set_read_timeout(Some(WAIT)).expect("timeout");
    ftp.expect_reply(150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).expect("read");
    drop(data);
    ftp.expect_reply(226);
    assert_same(&got, &content, "the active download");
    // After the sessions of 127.0.0.2 end, it is served again.
    drop(sessions);
    crate::common::eventually("127.0.0.2 to be served again", || {
        let mut ftp = session_from(&setup, two);
        let ok = ftp.greeting.code == 220;
        let _ = ftp.try_send_raw(b"QUIT\r\n");
        ok
    });
}
