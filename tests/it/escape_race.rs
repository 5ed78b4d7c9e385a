//! A local process that swaps a directory of the root with a symlink to a directory
//! outside (rename exchange, in a loop) while clients work in it: nothing outside is
//! read, written, listed or removed, and the commands still succeed inside whenever
//! they meet the directory (issue 11 item 2).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{names_in, pattern, Ftp, TestServer};

/// How long the swap runs: long enough for thousands of swaps and hundreds of commands.
const RACE: Duration = Duration::from_secs(4);

/// How much longer a client goes on when some kind of command has not yet succeeded
/// (the swapper runs that long too).
const LAST_CHANCE: Duration = Duration::from_secs(40);

/// A command that moves data over EPSV: the bytes received, or `None` when the server
/// refused it (or the transfer did not end in `226`).
fn transfer(ftp: &mut Ftp, line: &str, upload: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut data = ftp.epsv();
    let r = ftp.cmd(line);
    if r.code != 150 {
        return None;
    }
    let mut got = Vec::new();
    match upload {
        Some(bytes) => {
            data.write_all(bytes).expect("write data");
            drop(data);
        }
        None => {
            data.read_to_end(&mut got).expect("read data");
        }
    }
    (ftp.reply().code == 226).then_some(got)
}

/// One client's commands on `d/...`, until `deadline` and until every kind succeeded
/// at least once (or [`LAST_CHANCE`] more passed): how many of each kind succeeded:
/// RETR, STOR, DELE, RNFR+RNTO, MKD, LIST and NLST. A kind that needs several steps
/// to land inside between swaps (STOR, then RNFR and RNTO) may succeed only a few
/// times in the race on a busy machine, so the race goes on until it has.
fn work(ftp: &mut Ftp, me: usize, inside: &[u8], deadline: Instant) -> [u32; 6] {
    let mut done = [0u32; 6];
    let mut i = 0;
    let last = deadline + LAST_CHANCE;
    loop {
        let now = Instant::now();
        if now >= last || (now >= deadline && done.iter().all(|n| *n > 0)) {
            break;
        }
        i += 1;
        if let Some(got) = transfer(ftp, "RETR d/f.bin", None) {
            assert!(
                got == inside,
                "RETR sent {} bytes not of the file inside",
                got.len()
            );
            done[0] += 1;
        }
        let name = format!("d/up-{me}-{i}");
        if transfer(ftp, &format!("STOR {name}"), Some(b"uploaded")).is_some() {
            done[1] += 1;
        }
        let victim = format!("d/victim-{me}");
        if transfer(ftp, &format!("STOR {victim}"), Some(b"victim")).is_some()
            && ftp.cmd(&format!("DELE {victim}")).code == 250
        {
            done[2] += 1;
        }
        if ftp.cmd(&format!("RNFR {name}")).code == 350
            && ftp.cmd(&format!("RNTO d/moved-{me}-{i}")).code == 250
        {
            done[3] += 1;
        }
        if ftp.cmd(&format!("MKD d/made-{me}-{i}")).code == 257 {
            done[4] += 1;
        }
        for listing in ["LIST d", "NLST d"] {
            if let Some(text) = transfer(ftp, listing, None) {
                let text = String::from_utf8_lossy(&text);
                assert!(
                    !text.contains("only-outside"),
                    "{listing} listed outside: {text}"
                );
                done[5] += 1;
            }
        }
    }
    done
}

/// Every file in `dir` with its bytes, sorted by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    names_in(dir)
        .into_iter()
        .map(|n| {
            let bytes = fs::read(dir.join(&n)).expect("read");
            (n, bytes)
        })
        .collect()
}

#[test]
fn a_directory_swapped_for_a_symlink_never_leads_a_client_out() {
    let outer = tempfile::tempdir().expect("tempdir");
    let outside = outer.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    let sentinel = pattern(1000, 11);
    // The names the clients use, outside too: what the server must never touch.
    let mut names = vec!["f.bin".to_owned(), "only-outside".to_owned()];
    for me in 0..2 {
        names.push(format!("victim-{me}"));
        names.push(format!("up-{me}-1"));
    }
    for name in &names {
        fs::write(outside.join(name), &sentinel).expect("write");
    }
    let before = snapshot(&outside);
    let root = outer.path().join("root");
    fs::create_dir_all(root.join("d")).expect("mkdir");
    let inside = pattern(1000, 12);
    fs::write(root.join("d/f.bin"), &inside).expect("write");
    std::os::unix::fs::symlink(&outside, root.join("swap")).expect("symlink");
    let server = TestServer::start_in(outer, root.clone(), &[]);

    let stop = AtomicBool::new(false);
    let swaps = std::thread::scope(|s| {
        let swapper = s.spawn(|| {
            let mut swaps = 0u64;
            // Bounded by the flag and by time, whatever happens to the clients.
            let limit = Instant::now() + RACE + LAST_CHANCE + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < limit {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    root.join("d"),
                    rustix::fs::CWD,
                    root.join("swap"),
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("rename exchange");
                swaps += 1;
            }
            swaps
        });
        let deadline = Instant::now() + RACE;
        let clients: Vec<_> = (0..2)
            .map(|me| {
                let (server, inside) = (&server, &inside);
                s.spawn(move || work(&mut server.login(), me, inside, deadline))
            })
            .collect();
        let done: Vec<_> = clients.into_iter().map(|c| c.join()).collect();
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().expect("swapper");
        for result in done {
            let done = result.unwrap_or_else(|e| std::panic::resume_unwind(e));
            // The figures the README quotes: RETR, STOR, DELE, RNTO, MKD, listings.
            eprintln!("succeeded inside during the swaps: {done:?}");
            assert!(done.iter().all(|n| *n > 0), "the race ran: {done:?}");
        }
        swaps
    });
    eprintln!("{swaps} swaps");
    assert!(swaps > 100, "only {swaps} swaps");
    assert_eq!(snapshot(&outside), before, "something outside changed");
}
