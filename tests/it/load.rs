//! Many clients at once: same-file contention, shutdown under load, no leaks.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use crate::common::{assert_same, eventually, names_in, pattern, sha256, TestServer, WAIT};

/// One complete version of the contended file, told apart by its seed.
fn version(seed: u64) -> Vec<u8> {
    pattern(512 * 1024 + seed as usize, seed)
}

#[test]
fn concurrent_writers_and_readers_of_one_file_never_see_a_torn_version() {
    const WRITERS: u64 = 4;
    const UPLOADS: u64 = 8;
    const READERS: usize = 6;
    const DOWNLOADS: usize = 12;
    let server = TestServer::start(&["--lock-wait", "2"]);
    fs::write(server.root().join("shared.bin"), version(0)).expect("write");
    let mut versions: HashSet<String> = HashSet::from([sha256(&version(0))]);
    for w in 1..=WRITERS {
        for i in 0..UPLOADS {
            versions.insert(sha256(&version(w * 100 + i)));
        }
    }
    let busy = AtomicUsize::new(0);
    let downloads = AtomicUsize::new(0);
    thread::scope(|s| {
        for w in 1..=WRITERS {
            let (server, busy) = (&server, &busy);
            s.spawn(move || {
                let mut ftp = server.login();
                for i in 0..UPLOADS {
                    let mut data = ftp.epsv();
                    let r = ftp.cmd("STOR shared.bin");
                    if r.code == 450 {
                        busy.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    assert_eq!(r.code, 150, "{r:?}");
                    data.write_all(&version(w * 100 + i)).expect("upload");
                    drop(data);
                    assert_eq!(ftp.reply().code, 226);
                }
            });
        }
        for _ in 0..READERS {
            let (server, busy, versions, downloads) = (&server, &busy, &versions, &downloads);
            s.spawn(move || {
                let mut ftp = server.login();
                for _ in 0..DOWNLOADS {
                    let mut data = ftp.epsv();
                    let r = ftp.cmd("RETR shared.bin");
                    if r.code == 450 {
                        busy.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    assert_eq!(r.code, 150, "{r:?}");
                    let mut got = Vec::new();
                    data.read_to_end(&mut got).expect("download");
                    assert_eq!(ftp.reply().code, 226);
                    assert!(
                        versions.contains(&sha256(&got)),
                        "a download of {} bytes matches no complete version",
                        got.len()
                    );
                    downloads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let last = fs::read(server.root().join("shared.bin")).expect("read");
    assert!(
        versions.contains(&sha256(&last)),
        "final file is a complete version"
    );
    assert_eq!(
        names_in(server.root()),
        ["shared.bin"],
        "no temporary file left"
    );
    assert!(
        downloads.load(Ordering::Relaxed) > 0,
        "some downloads completed"
    );
    eprintln!(
        "contention: {} downloads checked, {} busy replies",
        downloads.load(Ordering::Relaxed),
        busy.load(Ordering::Relaxed)
    );
}

#[test]
fn sigint_with_sixteen_transfers_in_flight_finishes_them_all() {
    const SIZE: usize = 8 << 20;
    let mut server = TestServer::start(&[]);
    for i in 0..8u64 {
        fs::write(server.root().join(format!("down{i}.bin")), pattern(SIZE, i)).expect("write");
    }
    let in_flight = Barrier::new(17);
    let signalled = Barrier::new(17);
    thread::scope(|s| {
        for i in 0..16u64 {
            let (server, in_flight, signalled) = (&server, &in_flight, &signalled);
            s.spawn(move || {
                let mut ftp = server.login();
                let mut data = ftp.epsv();
                if i < 8 {
                    ftp.expect(&format!("RETR down{i}.bin"), 150);
                    let mut got = vec![0u8; 1 << 20];
                    data.read_exact(&mut got).expect("first MiB");
                    in_flight.wait();
                    signalled.wait();
                    data.read_to_end(&mut got).expect("rest");
                    assert_eq!(ftp.reply().code, 226);
                    assert_same(&got, &pattern(SIZE, i), "download");
                } else {
                    let bytes = pattern(SIZE, 100 + i);
                    ftp.expect(&format!("STOR up{i}.bin"), 150);
                    data.write_all(&bytes[..1 << 20]).expect("first MiB");
                    in_flight.wait();
                    signalled.wait();
                    data.write_all(&bytes[1 << 20..]).expect("rest");
                    drop(data);
                    assert_eq!(ftp.reply().code, 226);
                }
            });
        }
        in_flight.wait();
        server.signal("INT");
        signalled.wait();
    });
    let status = server.wait_exit(WAIT).expect("server exits");
    assert!(status.success(), "{status:?}");
    for i in 8..16u64 {
        let got = fs::read(server.root().join(format!("up{i}.bin"))).expect("read");
        assert_same(&got, &pattern(SIZE, 100 + i), "upload");
    }
    assert_eq!(names_in(server.root()).len(), 16, "no temporary files");
}

/// Open descriptors and threads of a process, from /proc.
fn fds_and_threads(pid: u32) -> (usize, usize) {
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (fds, threads)
}

#[test]
fn descriptors_and_threads_return_to_idle_after_a_storm() {
    if !std::path::Path::new("/proc/self/fd").exists() {
        assert!(!crate::common::in_ci(), "/proc is required when CI=true");
        eprintln!("skipped: no /proc");
        return;
    }
    let server = TestServer::start(&[]);
    fs::write(server.root().join("f.bin"), pattern(256 * 1024, 1)).expect("write");
    server.login().expect("QUIT", 221);
    let pid = server.pid();
    eventually("an idle server", || fds_and_threads(pid).0 > 0);
    thread::sleep(Duration::from_millis(200));
    let (idle_fds, idle_threads) = fds_and_threads(pid);

    let done = AtomicBool::new(false);
    let max_threads = thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut max = 0;
            while !done.load(Ordering::Relaxed) {
                max = max.max(fds_and_threads(pid).1);
                thread::sleep(Duration::from_millis(10));
            }
            max
        });
        let clients: Vec<_> = (0..32u64)
            .map(|c| {
                let server = &server;
                s.spawn(move || {
                    let mut ftp = server.login();
                    for i in 0..10u64 {
                        match (c + i) % 4 {
                            0 => ftp.stor(&format!("c{c}.bin"), &pattern(64 * 1024, c)),
                            1 => assert_eq!(ftp.retr("f.bin").len(), 256 * 1024),
                            2 => {
                                let _data = ftp.epsv();
                                ftp.expect("RETR missing", 550);
                            }
                            _ => {
                                // Abandon a download halfway.
                                let mut data = ftp.epsv();
                                ftp.expect("RETR f.bin", 150);
                                let mut some = [0u8; 1024];
                                data.read_exact(&mut some).expect("some");
                                drop(data);
                                let r = ftp.reply();
                                assert!(r.code == 226 || r.code == 426, "{r:?}");
                            }
                        }
                    }
                    // Half the clients quit politely, half just hang up.
                    if c % 2 == 0 {
                        ftp.expect("QUIT", 221);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client");
        }
        done.store(true, Ordering::Relaxed);
        sampler.join().expect("sampler")
    });
    assert!(
        max_threads <= idle_threads,
        "threads grew from {idle_threads} to {max_threads}: no thread per session or transfer"
    );
    eventually("descriptors back to the idle level", || {
        fds_and_threads(pid).0 <= idle_fds
    });
    eprintln!("leaks: idle {idle_fds} fds / {idle_threads} threads; peak threads {max_threads}");
}
