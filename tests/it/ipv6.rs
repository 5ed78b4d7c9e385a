//! IPv6 loopback (`[::1]`): our server started with `--bind ::1`, reached by curl and
//! Python's ftplib over EPSV (passive) and EPRT (active), both directions, and by our
//! own client with both `OPEN ::1 <port>` and `OPEN [::1]:<port>`. Our client has no
//! active mode, so its transfers are EPSV only.
//!
//! A machine without `::1` skips these tests with a printed reason (that is the
//! machine, not a missing install, so CI skips too).

use std::fs;
use std::process::Command;

use crate::common::{
    assert_same, have, hidden_names_in, ipv6_loopback_available, pattern, python, require,
    run_client_script, run_peer, version_line, PeerRun, TestServer,
};

/// Starts our server on `::1`, or says why not.
fn server_on_ipv6_or_skip() -> Option<TestServer> {
    if !ipv6_loopback_available() {
        eprintln!("skipped: the IPv6 loopback address ::1 is not available here");
        return None;
    }
    let server = TestServer::start(&["--bind", "::1"]);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    Some(server)
}

fn curl(args: &[&str]) -> PeerRun {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-g", "--max-time", "120"]).args(args);
    run_peer(cmd)
}

#[test]
fn curl_over_ipv6_uses_epsv_and_eprt_both_ways() {
    if !require(have("curl", &["--version"]), "curl") {
        return;
    }
    eprintln!("peer: {}", version_line("curl", &["--version"]));
    let Some(server) = server_on_ipv6_or_skip() else {
        return;
    };
    let down = pattern((2 << 20) + 1, 81);
    fs::write(server.root().join("down.bin"), &down).expect("write");
    let up = pattern((2 << 20) + 3, 82);
    let local = server.dir.path().join("up.bin");
    fs::write(&local, &up).expect("write");
    let base = format!("ftp://[::1]:{}/", server.addr.port());

    // Passive (EPSV), then active (EPRT |2|::1|port|).
    for (mode, extra) in [("epsv", &[][..]), ("eprt", &["--ftp-port", "::1"][..])] {
        let out = server.dir.path().join(format!("{mode}.bin"));
        let mut args = extra.to_vec();
        let target = format!("{base}down.bin");
        args.extend(["-o", out.to_str().expect("utf8"), &target]);
        let run = curl(&args);
        assert!(run.status.success(), "{run:?}\n{}", server.log());
        assert_same(&fs::read(&out).expect("read"), &down, mode);

        let mut args = extra.to_vec();
        let target = format!("{base}{mode}-up.bin");
        args.extend(["-T", local.to_str().expect("utf8"), &target]);
        let run = curl(&args);
        assert!(run.status.success(), "{run:?}\n{}", server.log());
        assert_same(
            &fs::read(server.root().join(format!("{mode}-up.bin"))).expect("read"),
            &up,
            mode,
        );
    }
    let run = curl(&["--list-only", &base]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        ["down.bin", "eprt-up.bin", "epsv-up.bin"]
    );
    let log = server.log();
    assert!(log.contains(": EPSV"), "{log}");
    assert!(log.contains(": EPRT |2|::1|"), "{log}");
    assert!(!log.contains(": PASV") && !log.contains(": PORT "), "{log}");
}

/// Runs with: the port, the server's root. Prints `ok` at the end.
const FTPLIB_SCRIPT: &str = r#"
import ftplib, io, os, socket, sys
port, root = int(sys.argv[1]), sys.argv[2]
ftp = ftplib.FTP()
ftp.connect("::1", port, timeout=60)
assert ftp.af == socket.AF_INET6
ftp.login()
data = open(os.path.join(root, "down.bin"), "rb").read()
up = bytes(range(256)) * 5000

def fetch(name):
    out = io.BytesIO()
    ftp.retrbinary("RETR " + name, out.write)
    return out.getvalue()

# Passive: ftplib uses EPSV on IPv6.
assert fetch("down.bin") == data
ftp.storbinary("STOR passive.bin", io.BytesIO(up))
assert ftp.nlst() == ["down.bin", "passive.bin"], ftp.nlst()
# Active: ftplib uses EPRT |2|::1|port| on IPv6.
ftp.set_pasv(False)
assert fetch("down.bin") == data
ftp.storbinary("STOR active.bin", io.BytesIO(up))
ftp.set_pasv(True)
# RFC 2428: EPSV with the connection's protocol works, another gets 522.
assert ftp.sendcmd("EPSV 2").startswith("229 ")
try:
    ftp.sendcmd("EPSV 1")
    raise AssertionError("EPSV 1 accepted on IPv6")
except ftplib.error_perm as e:
    assert str(e).startswith("522"), e
# PASV cannot name an IPv6 address; EPRT may only name the client's own address.
for cmd in ("PASV", "EPRT |1|127.0.0.1|40000|", "EPRT |2|::2|40000|"):
    try:
        ftp.sendcmd(cmd)
        raise AssertionError(cmd + " accepted")
    except (ftplib.error_temp, ftplib.error_perm):
        pass
assert fetch("active.bin") == up
ftp.quit()
print("ok")
"#;

#[test]
fn ftplib_over_ipv6_uses_epsv_and_eprt_both_ways() {
    if !require(have("python3", &["--version"]), "python3") {
        return;
    }
    let Some(server) = server_on_ipv6_or_skip() else {
        return;
    };
    let down = pattern(1_500_007, 83);
    fs::write(server.root().join("down.bin"), &down).expect("write");
    let port = server.addr.port().to_string();
    let run = python(FTPLIB_SCRIPT, &[port.as_ref(), server.root().as_os_str()]);
    assert!(
        run.status.success() && run.stdout == "ok\n",
        "ftplib: {}\n{}\nserver log:\n{}",
        run.stdout,
        run.stderr,
        server.log()
    );
    let up: Vec<u8> = (0..=255u8).cycle().take(256 * 5000).collect();
    for name in ["passive.bin", "active.bin"] {
        assert_same(
            &fs::read(server.root().join(name)).expect("read"),
            &up,
            name,
        );
    }
    let log = server.log();
    assert!(
        log.contains(": EPSV") && log.contains(": EPRT |2|::1|"),
        "{log}"
    );
}

#[test]
fn our_client_over_ipv6_with_both_open_forms() {
    let Some(server) = server_on_ipv6_or_skip() else {
        return;
    };
    let down = pattern((3 << 20) + 5, 84);
    fs::write(server.root().join("down.bin"), &down).expect("write");
    let client = server.dir.path().join("client");
    fs::create_dir(&client).expect("mkdir");
    let up = pattern((3 << 20) + 7, 85);
    fs::write(client.join("up.bin"), &up).expect("write");
    let port = server.addr.port();
    let script = format!(
        "OPEN ::1 {port}\nGET down.bin\nPUT up.bin\nLS\nCLOSE\n\
         OPEN [::1]:{port}\nGET up.bin\nQUIT\n"
    );
    // The second GET replaces the local up.bin with the server's copy of it.
    let run = run_client_script(&client, &script);
    assert_eq!(run.code(), 0, "{run:?}\nserver log:\n{}", server.log());
    assert_same(
        &fs::read(client.join("down.bin")).expect("read"),
        &down,
        "GET",
    );
    assert_same(
        &fs::read(server.root().join("up.bin")).expect("read"),
        &up,
        "PUT",
    );
    assert_same(
        &fs::read(client.join("up.bin")).expect("read"),
        &up,
        "round trip",
    );
    assert!(hidden_names_in(&client).is_empty());
    assert_eq!(
        run.stdout
            .matches(&format!("OPEN [::1]:{port}: connected"))
            .count(),
        2,
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|l| l.ends_with(" down.bin"))
            && run.stdout.lines().any(|l| l.ends_with(" up.bin")),
        "LS: {}",
        run.stdout
    );
    let log = server.log();
    assert!(log.contains("[::1]:") && log.contains(": EPSV"), "{log}");
}
