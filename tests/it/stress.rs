//! The design card's stress test: dozens of client threads, each with its own
//! `Client`, against one server with default settings.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use simple_ftp::client::{Client, ClientError};

use crate::common::{names_in, pattern, sha256, TestServer, WAIT};

const CLIENTS: u64 = 48;
/// Rounds per client; `STRESS_ROUNDS` raises it for a soak run (see the README).
fn rounds() -> u64 {
    std::env::var("STRESS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4)
}
/// Sizes from nothing to several MiB.
const SIZES: [usize; 7] = [0, 1, 4096, 65_536, 300_000, 1 << 20, 3 << 20];
/// Files every client reads and some clients rewrite.
const SHARED: [&str; 3] = ["shared-0.bin", "shared-1.bin", "shared-2.bin"];

fn shared_version(file: usize, version: u64) -> Vec<u8> {
    pattern(
        256 * 1024 + file * 1000 + version as usize,
        1000 * file as u64 + version,
    )
}

fn threads_of(pid: u32) -> usize {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn sha256_file(path: &Path) -> String {
    sha256(&fs::read(path).expect("read local file"))
}

#[test]
fn forty_eight_clients_move_files_concurrently_and_every_byte_checks_out() {
    let server = TestServer::start(&[]);
    let mut versions: HashSet<String> = HashSet::new();
    for (i, name) in SHARED.iter().enumerate() {
        let first = shared_version(i, 0);
        fs::write(server.root().join(name), &first).expect("write");
        versions.insert(sha256(&first));
        for c in 0..CLIENTS {
            versions.insert(sha256(&shared_version(i, c + 1)));
        }
    }
    let pid = server.pid();
    let idle_threads = threads_of(pid);
    let transfers = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let verified = AtomicUsize::new(0);
    let busy = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();

    let peak_threads = thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(threads_of(pid));
                thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        let workers: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (server, versions) = (&server, &versions);
                let (transfers, bytes, verified, busy) = (&transfers, &bytes, &verified, &busy);
                s.spawn(move || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let mut client = Client::connect("127.0.0.1", server.addr.port(), WAIT)
                        .unwrap_or_else(|e| panic!("client {c}: connect refused: {e}"));
                    client.login("anonymous", "stress@").expect("login");
                    client.binary().expect("binary");
                    let count = |n: u64, checked: bool| {
                        transfers.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(n, Ordering::Relaxed);
                        if checked {
                            verified.fetch_add(1, Ordering::Relaxed);
                        }
                    };
                    for round in 0..rounds() {
                        // A distinct file: up, down, compare. HASH verifies both ways.
                        let size = SIZES[((c + round) as usize) % SIZES.len()];
                        let bytes_out = pattern(size, c * 100 + round);
                        let name = format!("c{c}-r{round}.bin");
                        let up = dir.path().join("up.bin");
                        fs::write(&up, &bytes_out).expect("write");
                        let sent = client.put(&up, &name, |_| {}).expect("put");
                        assert_eq!(sent.bytes, size as u64);
                        count(sent.bytes, sent.verified);
                        let down = dir.path().join("down.bin");
                        let got = client.get(&name, &down, |_| {}).expect("get");
                        count(got.bytes, got.verified);
                        assert_eq!(sha256_file(&down), sha256(&bytes_out), "{name}");

                        // A shared file: read it, and every third client rewrites one.
                        // Its content may change between RETR and HASH, so the test
                        // checks it against the set of complete versions instead.
                        let shared = SHARED[((c + round) as usize) % SHARED.len()];
                        client.set_verify(false);
                        let local = dir.path().join(shared);
                        match client.get(shared, &local, |_| {}) {
                            Ok(got) => {
                                count(got.bytes, false);
                                assert!(
                                    versions.contains(&sha256_file(&local)),
                                    "{shared}: a download matching no complete version"
                                );
                            }
                            Err(ClientError::UnexpectedReply { code: 450, .. }) => {
                                busy.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("client {c}: GET {shared}: {e}"),
                        }
                        if c % 3 == 0 {
                            let file = SHARED.iter().position(|n| n == &shared).unwrap_or(0);
                            fs::write(&local, shared_version(file, c + 1)).expect("write");
                            match client.put(&local, shared, |_| {}) {
                                Ok(sent) => count(sent.bytes, false),
                                Err(ClientError::UnexpectedReply { code: 450, .. }) => {
                                    busy.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => panic!("client {c}: PUT {shared}: {e}"),
                            }
                        }
                        client.set_verify(true);
                    }
                    client.quit().expect("quit");
                })
            })
            .collect();
        // Every client is joined before a failure is reported, and the sampler is
        // stopped either way: a panicking client must fail the test, not hang it.
        let failed = workers
            .into_iter()
            .map(|w| w.join())
            .filter(Result::is_err)
            .count();
        done.store(true, Ordering::Relaxed);
        let peak = sampler.join().expect("sampler");
        assert_eq!(
            failed, 0,
            "{failed} client threads failed (their panics are above)"
        );
        peak
    });

    let elapsed = started.elapsed();
    let transfers = transfers.into_inner();
    let moved = bytes.into_inner();
    assert!(
        peak_threads <= idle_threads,
        "server threads grew from {idle_threads} to {peak_threads}"
    );
    for (i, name) in SHARED.iter().enumerate() {
        let final_sha = sha256(&fs::read(server.root().join(name)).expect("read"));
        assert!(
            versions.contains(&final_sha),
            "shared file {i} is a complete version"
        );
    }
    let names = names_in(server.root());
    assert_eq!(
        names.len(),
        SHARED.len() + (CLIENTS * rounds()) as usize,
        "no temporary files left: {names:?}"
    );
    eprintln!(
        "stress: {CLIENTS} clients, {transfers} transfers ({} verified by HASH, {} busy), \
         {:.1} MiB in {:.1} s, 0 refused, server threads {idle_threads} idle / {peak_threads} peak",
        verified.into_inner(),
        busy.into_inner(),
        moved as f64 / (1 << 20) as f64,
        elapsed.as_secs_f64()
    );
}
