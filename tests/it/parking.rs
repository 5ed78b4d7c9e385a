//! Quiet sessions wait parked, outside the worker pool (issue 12): silent, trickling
//! and idle connections lock nobody out, and their bytes stretch no deadline.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// The test holds a thousand sockets: raise its own open-files limit as the server
/// raises its own.
fn enough_descriptors() {
    let _ = simple_ftp::limits::raise_open_files_limit();
}

#[test]
fn a_thousand_silent_connections_lock_no_newcomer_out() {
    enough_descriptors();
    let server = TestServer::start(&[]);
    let bytes = pattern(100_000, 3);
    fs::write(server.root().join("file.bin"), &bytes).expect("write");
    let silent: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    // Every one of them is greeted: none waits for a worker.
    for mut conn in silent.iter().take(1000).step_by(97) {
        conn.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut greeting = [0u8; 4];
        conn.read_exact(&mut greeting).expect("greeting");
        assert_eq!(&greeting, b"220 ");
    }
    let mut ftp = server.login();
    let listing = ftp.listing("NLST");
    assert_eq!(listing, "file.bin\r\n");
    assert_eq!(ftp.retr("file.bin"), bytes);
    ftp.expect("QUIT", 221);
    drop(silent);
}

#[test]
fn idle_logged_in_sessions_all_still_answer() {
    enough_descriptors();
    let server = TestServer::start(&["--workers", "4"]);
    let mut sessions: Vec<Ftp> = (0..300).map(|_| server.login()).collect();
    for ftp in &mut sessions {
        ftp.expect("NOOP", 200);
    }
    // Parked between each round: every one answers again.
    for ftp in &mut sessions {
        ftp.expect("PWD", 257);
    }
}

#[test]
fn trickling_lines_hold_no_worker_while_newcomers_transfer() {
    enough_descriptors();
    let server = TestServer::start(&["--workers", "2"]);
    let bytes = pattern(50_000, 9);
    fs::write(server.root().join("f.bin"), &bytes).expect("write");
    let mut tricklers: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut served = 0;
    while Instant::now() < deadline {
        for conn in &mut tricklers {
            let _ = conn.write_all(b"N");
        }
        let mut ftp = server.login();
        assert_eq!(ftp.retr("f.bin"), bytes);
        ftp.expect("QUIT", 221);
        served += 1;
    }
    assert!(served >= 1);
}

#[test]
fn a_line_past_the_cap_is_answered_before_it_ends() {
    let server = TestServer::start(&[]);
    let mut ftp = server.login();
    // 1 MiB with no line end: the answer must come without one.
    let sender = {
        let mut conn = TcpStream::connect(server.addr).expect("connect");
        conn.set_read_timeout(Some(WAIT)).expect("timeout");
        let greeting = b"220 simple-ftp ready\r\n";
        let mut got = vec![0u8; greeting.len()];
        conn.read_exact(&mut got).expect("greeting");
        assert_eq!(got, greeting);
        conn
    };
    let mut writer = sender.try_clone().expect("clone");
    let sending = thread::spawn(move || {
        let chunk = vec![b'A'; 64 << 10];
        for _ in 0..16 {
            if writer.write_all(&chunk).is_err() {
                break; // closed by the server: also an answer
            }
        }
    });
    let mut reader = sender;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n") {
        match reader.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            _ => break,
        }
    }
    let _ = sending.join();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert!(reply.starts_with("500 "), "{reply:?}");
    // Other sessions are not affected.
    ftp.expect("NOOP", 200);
}

#[test]
fn noops_do_not_stretch_the_login_timeout() {
    let server = TestServer::start(&["--login-timeout", "2"]);
    let mut ftp = Ftp::connect(server.addr);
    assert_eq!(ftp.greeting.code, 220);
    let started = Instant::now();
    let closing = loop {
        let r = ftp.cmd("NOOP");
        if r.code != 200 {
            break r;
        }
        assert!(
            started.elapsed() < WAIT,
            "NOOPs kept a connection without a login"
        );
        thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(closing.code, 421, "{closing:?}");
    assert!(closing.text.contains("Login timeout"), "{closing:?}");
    assert!(ftp.try_reply().is_none(), "closed after the 421");
}

#[test]
fn a_trickle_does_not_stretch_the_idle_timeout() {
    let server = TestServer::start(&["--idle-timeout", "2"]);
    let mut ftp = server.login();
    let started = Instant::now();
    // One byte every 250 ms, never a line end.
    let closing = loop {
        ftp.try_send_raw(b"N");
        thread::sleep(Duration::from_millis(250));
        if let Some(r) = ftp.poll_reply() {
            break r;
        }
        assert!(started.elapsed() < WAIT, "a trickle kept the session open");
    };
    assert_eq!(closing.code, 421, "{closing:?}");
    assert!(closing.text.contains("Idle timeout"), "{closing:?}");
}

#[test]
fn max_connections_is_the_point_of_refusal() {
    enough_descriptors();
    let server = TestServer::start(&["--max-connections", "40", "--workers", "2"]);
    let mut sessions: Vec<Ftp> = (0..40)
        .map(|i| {
            let ftp = Ftp::connect(server.addr);
            assert_eq!(ftp.greeting.code, 220, "session {i}: {:?}", ftp.greeting);
            ftp
        })
        .collect();
    let refused = Ftp::connect(server.addr);
    assert_eq!(refused.greeting.code, 421, "{:?}", refused.greeting);
    let mut one = sessions.pop().expect("one");
    one.expect("QUIT", 221);
    drop(one);
    eventually("room for one more", || {
        let ftp = Ftp::connect(server.addr);
        ftp.greeting.code == 220
    });
    for ftp in &mut sessions {
        ftp.expect("NOOP", 200);
    }
}

/// Open descriptors of a process, from /proc.
fn open_descriptors(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A parked session holds one descriptor, its control connection: the copy the
/// shutdown sweep uses is kept only while the session is on a worker, so 10,000 idle
/// sessions fit under a limit of 20,000 (issue 12).
#[test]
fn an_idle_session_holds_one_descriptor() {
    enough_descriptors();
    let server = TestServer::start(&["--workers", "4"]);
    let pid = server.pid();
    let before = open_descriptors(pid);
    let mut sessions: Vec<Ftp> = (0..200).map(|_| server.login()).collect();
    for ftp in &mut sessions {
        ftp.expect("NOOP", 200);
    }
    // Parked once the linger has passed: about one descriptor each.
    let mut held = usize::MAX;
    eventually("the sessions parked", || {
        held = open_descriptors(pid).saturating_sub(before);
        held <= 210
    });
    assert!(held >= 200, "{held} descriptors for 200 sessions");
    for ftp in &mut sessions {
        ftp.expect("PWD", 257);
    }
}

/// Passive listeners are counted against the open-files budget: past their share a
/// PASV/EPSV gets `425` saying why, the sessions go on, and a listener that closes
/// makes room again (issue 12).
#[test]
fn passive_ports_are_bounded_by_the_descriptor_budget() {
    // 200 descriptors, 2 workers: 78 kept for the workers and the server, 92 sessions,
    // 30 listeners.
    let server = TestServer::start_wrapped(
        "ulimit -Sn 200 && ulimit -Hn 200 && exec \"$0\" \"$@\"",
        &["--workers", "2"],
    );
    let log = server.log();
    assert!(log.contains("allows about 92 sessions"), "{log}");
    let mut sessions: Vec<Ftp> = (0..35).map(|_| server.login()).collect();
    let replies: Vec<Resp> = sessions.iter_mut().map(|ftp| ftp.cmd("EPSV")).collect();
    let opened = replies.iter().filter(|r| r.code == 229).count();
    let refused: Vec<&Resp> = replies.iter().filter(|r| r.code == 425).collect();
    assert_eq!((opened, refused.len()), (30, 5), "{replies:?}");
    assert!(
        refused[0].text.contains("Too many passive ports open"),
        "{refused:?}"
    );
    // One session with a listener leaves; a refused one tries again and gets one.
    let first_open = replies
        .iter()
        .position(|r| r.code == 229)
        .expect("an open one");
    let first_refused = replies
        .iter()
        .position(|r| r.code == 425)
        .expect("a refused one");
    sessions[first_open].expect("QUIT", 221);
    eventually("a listener freed", || {
        sessions[first_refused].cmd("EPSV").code == 229
    });
    for (i, ftp) in sessions.iter_mut().enumerate() {
        if i != first_open {
            ftp.expect("NOOP", 200);
        }
    }
}

/// Many sessions woken at once on one worker: each reads its command although others
/// wait for the worker (a worker that others wait for parks a quiet session at once,
/// but only after it read what woke it; before, the sessions went back and forth
/// between the parker and the queue without reading, for as long as others waited).
#[test]
fn sessions_woken_together_on_one_worker_all_get_answered() {
    enough_descriptors();
    let server = TestServer::start(&["--workers", "1"]);
    let mut sessions: Vec<Ftp> = (0..100).map(|_| server.login()).collect();
    // Parked, all of them; then every one sends a command at the same moment.
    thread::sleep(Duration::from_millis(300));
    for round in 0..3 {
        for ftp in &mut sessions {
            ftp.send_raw(b"NOOP\r\n");
        }
        for ftp in &mut sessions {
            assert_eq!(ftp.reply().code, 200, "round {round}");
        }
    }
}
