//! Slow trickles: many connections that each send a command line that never ends, a
//! few bytes at a time and never a line end, held open while newcomers are timed (a
//! LIST, or a small RETR checked byte for byte). A server that gives each connection
//! a thread until its line is complete runs out of threads here, and its newcomers
//! wait or are refused; one that parks quiet connections serves them at once.
//!
//! The trickling connections are driven by a few threads, each sending to its share
//! of them in turn every `--every-ms` and reading what the server says back without
//! waiting (a `500` for a line past its cap, a `421` when the line took too long, the
//! connection's end). A connection the server closed is opened again, as an attacker
//! would, so the pressure stays while the newcomers are timed. The workload stops by
//! itself after its newcomers (or at the deadline), and talks only to loopback: the
//! target must resolve to a loopback address.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Args;

use super::check::check_bytes;
use super::latency::{is_refusal, Latencies};
use crate::meter::Meter;
use crate::record::Record;
use crate::target::{Expected, Target};

/// The latency a newcomer should stay under beside the trickles (issue 12's target).
const TARGET_MS: f64 = 100.0;

/// How the trickling connections behave, and how many newcomers are timed.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Plan {
    /// Trickling connections to hold open.
    #[arg(long, default_value_t = 1000)]
    pub(crate) connections: usize,
    /// Threads that open and drive them.
    #[arg(long, default_value_t = 8)]
    pub(crate) threads: usize,
    /// Bytes each connection sends at a time (never a line end).
    #[arg(long, default_value_t = 4)]
    pub(crate) chunk: usize,
    /// Milliseconds between two sends of one connection.
    #[arg(long, default_value_t = 1000)]
    pub(crate) every_ms: u64,
    /// Milliseconds of trickling before the first newcomer.
    #[arg(long, default_value_t = 2000)]
    pub(crate) warmup_ms: u64,
    /// Newcomers timed, alternately connect + login + LIST + QUIT and connect + login +
    /// RETR of the small file + QUIT.
    #[arg(long, default_value_t = 40)]
    pub(crate) probes: usize,
    /// Milliseconds between two newcomers.
    #[arg(long, default_value_t = 250)]
    pub(crate) gap_ms: u64,
}

/// The start of every never-ending line; letters follow.
const LINE_HEAD: &[u8] = b"NOOP ";

/// `n` bytes of the never-ending command line, from byte `at` on: [`LINE_HEAD`] and
/// then the alphabet over and over, never a CR or LF.
fn line_bytes(at: u64, n: usize) -> Vec<u8> {
    (at..at + n as u64)
        .map(|i| match usize::try_from(i) {
            Ok(i) if i < LINE_HEAD.len() => LINE_HEAD[i],
            _ => b'a' + ((i - LINE_HEAD.len() as u64) % 26) as u8,
        })
        .collect()
}

/// The codes of the complete final reply lines (`NNN text`) at the start of `buf`,
/// and how many bytes those lines and the lines before them take; the lines of a
/// multi-line reply (`NNN-text`, or text not starting with a code) are passed over.
fn final_codes(buf: &[u8]) -> (Vec<u16>, usize) {
    let mut codes = Vec::new();
    let mut used = 0;
    while let Some(end) = buf[used..].iter().position(|&b| b == b'\n') {
        let line = &buf[used..used + end];
        if line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit) && line[3] == b' ' {
            let code = line[..3]
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
            codes.push(code);
        }
        used += end + 1;
    }
    (codes, used)
}

/// The target's loopback address: the workload refuses to trickle anywhere else.
fn loopback_addr(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(a) => Ok(*a),
        None => bail!("trickle talks only to loopback, and {host} is not a loopback address"),
    }
}

/// What the trickling connections met, counted across their threads.
#[derive(Default)]
struct Counts {
    /// Connections opened and greeted `220`, reconnections included.
    opened: AtomicU64,
    /// Openings answered `421` (the server full).
    refused: AtomicU64,
    /// Openings that failed otherwise (connect error, another greeting, no greeting).
    failed: AtomicU64,
    first_error: parking_lot::Mutex<Option<String>>,
    /// Connections the server ended (closed or reset).
    closed: AtomicU64,
    /// Replies read on trickling connections: `500` (line too long), `421`, others.
    said_500: AtomicU64,
    said_421: AtomicU64,
    said_other: AtomicU64,
    /// Bytes of never-ending lines sent.
    bytes: AtomicU64,
}

impl Counts {
    fn open_failed(&self, e: &Opening) {
        match e {
            Opening::Refused => self.refused.fetch_add(1, Ordering::Relaxed),
            Opening::Failed(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
        if let Opening::Failed(text) = e {
            self.first_error.lock().get_or_insert_with(|| text.clone());
        }
    }

    fn replies(&self, codes: &[u16]) {
        for &code in codes {
            let counter = match code {
                500 => &self.said_500,
                421 => &self.said_421,
                _ => &self.said_other,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Why a trickling connection could not be opened.
enum Opening {
    /// The server greeted `421`.
    Refused,
    Failed(String),
}

/// One trickling connection, non-blocking once greeted.
struct Trickler {
    stream: TcpStream,
    /// Bytes of the line sent so far.
    sent: u64,
    /// Reply bytes read and not yet a complete line.
    heard: Vec<u8>,
}

impl Trickler {
    /// Connects and reads the greeting (within `timeout`).
    fn open(addr: SocketAddr, timeout: Duration) -> Result<Trickler, Opening> {
        let failed = |what: &str, e: std::io::Error| Opening::Failed(format!("{what}: {e}"));
        let mut stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| failed("connect", e))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| failed("set a timeout", e))?;
        let mut heard = Vec::new();
        let mut buf = [0u8; 1024];
        let code = loop {
            let n = stream
                .read(&mut buf)
                .map_err(|e| failed("read the greeting", e))?;
            if n == 0 {
                return Err(Opening::Failed("closed before its greeting".into()));
            }
            heard.extend_from_slice(&buf[..n]);
            let (codes, used) = final_codes(&heard);
            heard.drain(..used);
            if let Some(&code) = codes.first() {
                break code;
            }
            if heard.len() > 64 * 1024 {
                return Err(Opening::Failed("a greeting without an end".into()));
            }
        };
        match code {
            220 => {}
            421 => return Err(Opening::Refused),
            other => return Err(Opening::Failed(format!("greeted {other}"))),
        }
        stream
            .set_nonblocking(true)
            .map_err(|e| failed("set non-blocking", e))?;
        // Each send is a few bytes that must leave at once, not wait for an ACK.
        stream
            .set_nodelay(true)
            .map_err(|e| failed("set TCP_NODELAY", e))?;
        Ok(Trickler {
            stream,
            sent: 0,
            heard,
        })
    }

    /// Reads what the server said, then sends the next bytes of the line; `false`
    /// when the server has ended the connection.
    fn tick(&mut self, chunk: usize, counts: &Counts) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.heard.extend_from_slice(&buf[..n]);
                    let (codes, used) = final_codes(&self.heard);
                    self.heard.drain(..used);
                    counts.replies(&codes);
                    if self.heard.len() > 64 * 1024 {
                        self.heard.clear();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        match self.stream.write(&line_bytes(self.sent, chunk)) {
            Ok(n) => {
                self.sent += n as u64;
                counts.bytes.fetch_add(n as u64, Ordering::Relaxed);
                true
            }
            // The socket's buffer is full: the server is not reading; try next time.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => true,
            Err(_) => false,
        }
    }
}

/// What a driving thread shares with the others and the newcomers.
struct Shared<'a> {
    addr: SocketAddr,
    timeout: Duration,
    plan: &'a Plan,
    counts: Counts,
    /// Threads that have opened their share.
    ready: AtomicUsize,
    stop: AtomicBool,
    deadline: Instant,
}

/// One driving thread: opens `share` connections, then trickles into them every
/// `every_ms` (starting `offset` into the period, so the threads' sends spread over
/// it) until told to stop, opening again any that the server ended.
fn drive(s: &Shared<'_>, share: usize, offset: Duration) {
    let mut conns: Vec<Option<Trickler>> = Vec::with_capacity(share);
    for _ in 0..share {
        if Instant::now() > s.deadline || s.stop.load(Ordering::Relaxed) {
            break;
        }
        conns.push(match Trickler::open(s.addr, s.timeout) {
            Ok(c) => {
                s.counts.opened.fetch_add(1, Ordering::Relaxed);
                Some(c)
            }
            Err(e) => {
                s.counts.open_failed(&e);
                None
            }
        });
    }
    s.ready.fetch_add(1, Ordering::SeqCst);
    let every = Duration::from_millis(s.plan.every_ms.max(1));
    let mut next = Instant::now() + offset;
    loop {
        // Sleep in short steps, so a stop is noticed at once.
        loop {
            if s.stop.load(Ordering::Relaxed) || Instant::now() > s.deadline {
                return;
            }
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(20)));
        }
        for slot in &mut conns {
            let alive = match slot.as_mut() {
                Some(c) => c.tick(s.plan.chunk.max(1), &s.counts),
                None => false,
            };
            if !alive {
                if slot.take().is_some() {
                    s.counts.closed.fetch_add(1, Ordering::Relaxed);
                }
                if s.stop.load(Ordering::Relaxed) {
                    return;
                }
                // Open it again: the pressure stays while newcomers are timed.
                match Trickler::open(s.addr, s.timeout) {
                    Ok(c) => {
                        s.counts.opened.fetch_add(1, Ordering::Relaxed);
                        *slot = Some(c);
                    }
                    Err(e) => s.counts.open_failed(&e),
                }
            }
        }
        next += every;
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}

/// What a newcomer does.
#[derive(Clone, Copy, PartialEq)]
enum Newcomer {
    /// connect + login + LIST + QUIT; the listing must name the small file.
    List,
    /// connect + login + RETR of the small file (size and SHA-256 checked) + QUIT.
    Retr,
}

/// How the newcomers fared.
#[derive(Default)]
struct Newcomers {
    list: Latencies,
    retr: Latencies,
    /// Answered `421`.
    refused: usize,
    /// Failed otherwise (an error, a wrong listing or file).
    failed: usize,
    first_error: Option<String>,
    /// The deadline stopped them before all were timed.
    late: bool,
}

fn newcomer(t: &Target, e: &Expected, kind: Newcomer) -> anyhow::Result<()> {
    let mut c = t.session()?;
    match kind {
        Newcomer::List => {
            let listing = c.list(if t.dir.is_empty() { None } else { Some(&t.dir) })?;
            ensure!(
                listing.contains(&e.file),
                "the listing does not name {}",
                e.file
            );
        }
        Newcomer::Retr => {
            let mut bytes = Vec::with_capacity(usize::try_from(e.size).unwrap_or(0));
            c.get_into(&t.remote(&e.file), &mut bytes, |_| {})?;
            check_bytes(&bytes, e.size, e.sha256.as_deref())?;
        }
    }
    c.quit()?;
    Ok(())
}

fn time_newcomers(t: &Target, e: &Expected, plan: &Plan, deadline: Instant) -> Newcomers {
    let mut n = Newcomers::default();
    for i in 0..plan.probes {
        if Instant::now() > deadline {
            n.late = true;
            break;
        }
        if i > 0 {
            thread::sleep(Duration::from_millis(plan.gap_ms));
        }
        let kind = if i % 2 == 0 {
            Newcomer::List
        } else {
            Newcomer::Retr
        };
        let begin = Instant::now();
        match newcomer(t, e, kind) {
            Ok(()) => {
                let ms = begin.elapsed().as_secs_f64() * 1000.0;
                match kind {
                    Newcomer::List => n.list.push(ms),
                    Newcomer::Retr => n.retr.push(ms),
                }
            }
            Err(err) => {
                if is_refusal(&err) {
                    n.refused += 1;
                } else {
                    n.failed += 1;
                }
                n.first_error.get_or_insert(format!("{err:#}"));
            }
        }
    }
    n
}

/// `trickle`: opens `plan.connections` trickling connections, lets them trickle for
/// the warm-up, times the newcomers beside them, then closes them all.
pub(crate) fn trickle(t: &Target, e: &Expected, plan: &Plan) -> anyhow::Result<Vec<Record>> {
    let addr = loopback_addr(&t.host, t.port)?;
    let deadline = t.deadline();
    let threads = plan.threads.clamp(1, plan.connections.max(1));
    let shared = Shared {
        addr,
        timeout: t.op_timeout(),
        plan,
        counts: Counts::default(),
        ready: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        deadline,
    };
    let start = Instant::now();
    let mut open_secs = 0.0;
    let mut initially = 0;
    let mut newcomers = Newcomers::default();
    let mut timed = t.record("trickle", "ftp-bench");
    thread::scope(|scope| {
        let every = Duration::from_millis(plan.every_ms.max(1));
        for k in 0..threads {
            let share = plan.connections / threads + usize::from(k < plan.connections % threads);
            let offset =
                every * u32::try_from(k).unwrap_or(0) / u32::try_from(threads).unwrap_or(1);
            let shared = &shared;
            scope.spawn(move || drive(shared, share, offset));
        }
        while shared.ready.load(Ordering::SeqCst) < threads && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        open_secs = start.elapsed().as_secs_f64();
        initially = shared.counts.opened.load(Ordering::Relaxed);
        let meter = Meter::start(&t.pids);
        thread::sleep(Duration::from_millis(plan.warmup_ms));
        newcomers = time_newcomers(t, e, plan, deadline);
        shared.stop.store(true, Ordering::Relaxed);
        meter.stop(&mut timed);
    });
    Ok(records(
        t,
        plan,
        &shared.counts,
        initially,
        open_secs,
        &newcomers,
        &timed,
    ))
}

/// The workload's records, from what the trickles met and how the newcomers fared;
/// `timed` holds the wall-clock and CPU times of the trickling part.
fn records(
    t: &Target,
    plan: &Plan,
    counts: &Counts,
    initially: u64,
    open_secs: f64,
    n: &Newcomers,
    timed: &Record,
) -> Vec<Record> {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let all_open = initially == plan.connections as u64;
    let mut trickles = format!(
        "{initially} of {} trickling connections open in {open_secs:.1} s, {} bytes every {} ms each, no line end",
        plan.connections, plan.chunk, plan.every_ms
    );
    let (closed, reopened) = (load(&counts.closed), load(&counts.opened) - initially);
    if closed > 0 || reopened > 0 {
        let _ = write!(
            trickles,
            "; the server ended {closed} (said 421 {} times, 500 {} times, other {}), {reopened} opened again",
            load(&counts.said_421),
            load(&counts.said_500),
            load(&counts.said_other)
        );
    }
    let (refused, failed) = (load(&counts.refused), load(&counts.failed));
    if refused > 0 || failed > 0 {
        let _ = write!(
            trickles,
            "; openings refused 421: {refused}, failed: {failed}"
        );
        if let Some(e) = counts.first_error.lock().as_ref() {
            let _ = write!(trickles, " (first: {e})");
        }
    }
    if let Some(cpu) = timed.server_cpu {
        let _ = write!(
            trickles,
            "; server CPU {cpu:.2} s in {:.1} s of trickling",
            timed.secs
        );
    }
    let planned = plan.probes;
    let served = n.list.len() + n.retr.len();
    let ok = all_open && n.refused == 0 && n.failed == 0 && !n.late && served == planned;
    let mut outcome = format!(
        "{served} of {planned} newcomers served, {} refused (421), {} failed",
        n.refused, n.failed
    );
    if n.late {
        outcome.push_str(", deadline reached");
    }
    if let Some(e) = &n.first_error {
        let _ = write!(outcome, ", first: {e}");
    }
    let base = |workload: &str, unit: &str| Record {
        unit: unit.into(),
        secs: timed.secs,
        server_cpu: timed.server_cpu,
        client_cpu: timed.client_cpu,
        ok,
        ..t.record(workload, "ftp-bench")
    };
    let mut out = Vec::new();
    for (lat, what, worst, median) in [
        (
            &n.list,
            "connect + login + LIST + QUIT",
            "trickle-list",
            "trickle-list-median",
        ),
        (
            &n.retr,
            "connect + login + RETR of the small file, checked + QUIT",
            "trickle-retr",
            "trickle-retr-median",
        ),
    ] {
        let summary = format!(
            "{} newcomers ({what}), {} past {TARGET_MS} ms; {outcome}; {trickles}",
            lat.len(),
            lat.past(TARGET_MS)
        );
        for (name, value) in [(worst, lat.worst()), (median, lat.median())] {
            let mut r = base(name, "ms");
            r.work = lat.len() as f64;
            r.value = value.unwrap_or(0.0);
            r.ok = ok && value.is_some();
            r.note = format!(
                "{} of {summary}",
                if name == worst { "worst" } else { "median" }
            );
            out.push(r);
        }
    }
    let mut r = base("trickle-refused", "newcomers");
    r.work = planned as f64;
    r.value = (n.refused + n.failed) as f64;
    r.note = format!("newcomers refused or failed: {outcome}; {trickles}");
    out.push(r);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_never_ends_and_goes_on_across_chunks() {
        let whole = line_bytes(0, 40);
        assert!(whole.starts_with(b"NOOP abcdefghijklmnopqrstuvwxyzabcd"));
        assert!(!whole.contains(&b'\n') && !whole.contains(&b'\r'));
        let pieces: Vec<u8> = (0..10).flat_map(|k| line_bytes(k * 4, 4)).collect();
        assert_eq!(pieces, whole);
        let far = line_bytes(1 << 40, 1000);
        assert!(far.iter().all(u8::is_ascii_lowercase));
    }

    #[test]
    fn final_reply_lines_are_found_and_partial_ones_kept() {
        let (codes, used) = final_codes(b"220-Welcome\r\n 220 here\r\n220 ready\r\n500 Comm");
        assert_eq!(codes, vec![220]);
        assert_eq!(used, b"220-Welcome\r\n 220 here\r\n220 ready\r\n".len());
        let two = b"500 Command line too long\r\n421 Closing\n";
        assert_eq!(final_codes(two), (vec![500, 421], two.len()));
        assert_eq!(final_codes(b"42"), (vec![], 0));
        assert_eq!(final_codes(b"12x ok\r\n"), (vec![], 8));
    }

    #[test]
    fn only_loopback_targets_are_trickled() {
        let a = loopback_addr("127.0.0.1", 2121).expect("loopback");
        assert_eq!(a, SocketAddr::from(([127, 0, 0, 1], 2121)));
        assert!(loopback_addr("::1", 21)
            .expect("IPv6 loopback")
            .ip()
            .is_loopback());
        let e = loopback_addr("192.0.2.7", 21).expect_err("not loopback");
        assert!(e.to_string().contains("only to loopback"), "{e}");
    }

    #[test]
    fn newcomers_beside_trickling_connections_are_timed_and_checked() {
        let server = crate::workloads::test_server::TestServer::start(4);
        let plan = Plan {
            connections: 40,
            threads: 2,
            chunk: 3,
            every_ms: 50,
            warmup_ms: 300,
            probes: 6,
            gap_ms: 20,
        };
        let records = trickle(&server.target, &server.small, &plan).expect("trickle");
        let names: Vec<&str> = records.iter().map(|r| r.workload.as_str()).collect();
        assert_eq!(
            names,
            [
                "trickle-list",
                "trickle-list-median",
                "trickle-retr",
                "trickle-retr-median",
                "trickle-refused"
            ]
        );
        for r in &records {
            assert!(r.ok, "{r:?}");
            assert!(
                r.note.contains("40 of 40 trickling connections open"),
                "{r:?}"
            );
            assert!(r.secs > 0.3, "the trickling part is timed: {r:?}");
        }
        // Three newcomers of each kind, the worst at least the median.
        assert_eq!(records[0].work, 3.0);
        assert_eq!(records[2].work, 3.0);
        assert!(records[0].value >= records[1].value && records[1].value > 0.0);
        assert!(records[2].value >= records[3].value && records[3].value > 0.0);
        assert_eq!(records[4].value, 0.0, "{:?}", records[4]);
        assert!(records[4]
            .note
            .contains("6 of 6 newcomers served, 0 refused (421), 0 failed"));
    }

    #[test]
    fn a_full_server_s_refusals_are_counted_not_hidden() {
        // Room for the trickles only: every newcomer is refused with 421.
        let server = crate::workloads::test_server::TestServer::start_with(2, 10);
        let plan = Plan {
            connections: 10,
            threads: 1,
            chunk: 2,
            every_ms: 50,
            warmup_ms: 100,
            probes: 2,
            gap_ms: 10,
        };
        let records = trickle(&server.target, &server.small, &plan).expect("trickle");
        let refused = records.last().expect("records");
        assert_eq!(refused.workload, "trickle-refused");
        assert_eq!(refused.value, 2.0, "{refused:?}");
        assert!(records.iter().all(|r| !r.ok), "{records:?}");
        assert!(refused.note.contains("2 refused (421)"), "{refused:?}");
    }
}
