//! `ftp-bench`: a load generator for any FTP server, and the tabulator of its results.
//!
//! Each workload subcommand drives the server at `--host`:`--port` with our library
//! [`Client`] (or with curl, for figures that do not depend on our client), checks what
//! it moved, and prints ONE tab-separated line per result on stdout (see [`Record`]):
//!
//! ```text
//! label round workload client value unit work secs server_cpu_s client_cpu_s ok note
//! ```
//!
//! `server_cpu_s` is the CPU time (user + system) that the server's process tree spent
//! during the workload: `--pid` names the server's processes, and every process below
//! them counts too (vsftpd and proftpd fork per session), including children that
//! ended and were reaped meanwhile (their time moves into the parent's `cutime`).
//! On a 2-core machine the load generator competes with the server, so CPU per unit
//! of work is the steadier figure beside throughput.
//!
//! Every workload is bounded: each operation by `--timeout`, the whole workload by
//! `--deadline` (sessions stop starting new work past it and report what they did),
//! and a watchdog ends the process if a workload overstays even that.
//!
//! `table` reads the lines of many runs and prints the Markdown comparison table
//! that `bench/compare.sh` shows. `mkfile` and `limits` prepare input files and
//! measure what the machine allows (page-cache reads, a raw loopback copy).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::{Args, Parser, Subcommand};
use sha2::{Digest, Sha256};
use simple_ftp::client::Client;
use simple_ftp::digest::{self, hex, sha256_hex};
use simple_ftp::transfer::Pump;

/// Load generator for FTP servers; one TSV result line per measurement.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Download one large file with our client (into a file under --local), MiB/s.
    RetrLarge {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        expect: Expected,
    },
    /// Upload one large local file with our client, MiB/s.
    StorLarge {
        #[command(flatten)]
        target: Target,
        /// The local file to upload.
        #[arg(long)]
        local_file: PathBuf,
        /// Its SHA-256, hex (checked on the server's copy when --served-dir is given).
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Download one large file with curl into /dev/null (or a file under --local), MiB/s.
    CurlRetr {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        expect: Expected,
        /// Write the download into a file under --local (and check its SHA-256), as
        /// our client does, instead of into /dev/null.
        #[arg(long)]
        to_file: bool,
        /// The curl program.
        #[arg(long, default_value = "curl")]
        curl: PathBuf,
    },
    /// Upload one large local file with curl, MiB/s.
    CurlStor {
        #[command(flatten)]
        target: Target,
        /// The local file to upload.
        #[arg(long)]
        local_file: PathBuf,
        /// Its SHA-256, hex (checked on the server's copy when --served-dir is given).
        #[arg(long)]
        sha256: Option<String>,
        /// The curl program.
        #[arg(long, default_value = "curl")]
        curl: PathBuf,
    },
    /// Concurrent sessions each downloading one small file many times, transfers/s.
    RetrSmall {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        expect: Expected,
        #[command(flatten)]
        many: Many,
    },
    /// Concurrent sessions each uploading a small file many times (new names), transfers/s.
    StorSmall {
        #[command(flatten)]
        target: Target,
        /// The local file to upload.
        #[arg(long)]
        local_file: PathBuf,
        #[command(flatten)]
        many: Many,
    },
    /// Concurrent clients each doing connect + login + QUIT many times, sessions/s.
    Churn {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        many: Many,
    },
    /// Many logged-in idle sessions: the server's memory, and how fast a new client is served.
    Idle {
        #[command(flatten)]
        target: Target,
        /// Idle sessions to hold open.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Threads that open them.
        #[arg(long, default_value_t = 32)]
        openers: usize,
        /// New clients (connect + login + LIST) timed while the sessions are open.
        #[arg(long, default_value_t = 5)]
        probes: usize,
    },
    /// Write a file of pseudo-random bytes and print its SHA-256.
    Mkfile {
        /// Where to write it.
        path: PathBuf,
        /// Its length in bytes.
        size: u64,
    },
    /// The machine's limits: page-cache read rate and raw loopback copies of a file.
    Limits {
        /// A large file (on tmpfs, so it is in the page cache) to read and send.
        #[arg(long)]
        file: PathBuf,
        /// A tmpfs directory for the copy that lands in a file.
        #[arg(long)]
        scratch: PathBuf,
        /// Round number, for the table.
        #[arg(long, default_value_t = 0)]
        round: u32,
    },
    /// Read result lines (files, or stdin when none) and print the Markdown table.
    Table {
        /// Result files (TSV lines as the workloads print them).
        files: Vec<PathBuf>,
        /// The label of our server: the ratio column compares it with the best other.
        #[arg(long, default_value = "ours")]
        ours: String,
    },
}

/// Which server to drive, and how.
#[derive(Debug, Clone, Args)]
struct Target {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long)]
    port: u16,
    /// User name.
    #[arg(long, default_value = "anonymous")]
    user: String,
    /// Password.
    #[arg(long, default_value = "anonymous@")]
    pass: String,
    /// Remote directory (as the client sees it) holding the files, where uploads go.
    #[arg(long, default_value = "")]
    dir: String,
    /// Local path of that same directory, when the server runs here: uploads are then
    /// checked (SHA-256) and removed through it.
    #[arg(long)]
    served_dir: Option<PathBuf>,
    /// Local scratch directory for downloads (tmpfs keeps the disk out of the figures).
    #[arg(long, default_value = "/dev/shm")]
    local: PathBuf,
    /// Name of the server in the results.
    #[arg(long, default_value = "server")]
    label: String,
    /// Round number, in the results.
    #[arg(long, default_value_t = 0)]
    round: u32,
    /// PIDs of the server's processes (comma-separated or repeated); their process
    /// trees are measured for CPU time and memory.
    #[arg(long = "pid", value_delimiter = ',')]
    pids: Vec<u32>,
    /// Seconds any one operation may take.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Seconds the whole workload may take.
    #[arg(long, default_value_t = 120)]
    deadline: u64,
}

/// The remote file a download workload fetches and what it must contain.
#[derive(Debug, Clone, Args)]
struct Expected {
    /// Remote file name, inside --dir.
    #[arg(long)]
    file: String,
    /// Its length in bytes.
    #[arg(long)]
    size: u64,
    /// Its SHA-256, hex.
    #[arg(long)]
    sha256: Option<String>,
}

/// How many concurrent sessions, and how many operations each.
#[derive(Debug, Clone, Copy, Args)]
struct Many {
    /// Concurrent sessions (clients).
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Operations per session.
    #[arg(long, default_value_t = 100)]
    count: usize,
}

/// One result line.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    /// The server's name (`machine` for the machine's limits).
    label: String,
    round: u32,
    /// `retr-large`, `stor-small`, `churn`, `idle-rss`, ...
    workload: String,
    /// What drove it: `ftp-bench`, `curl`, ...
    client: String,
    /// The figure itself, in `unit`.
    value: f64,
    unit: String,
    /// Units of work done: bytes, transfers or sessions (CPU per unit is server_cpu / work).
    work: f64,
    /// Wall-clock seconds of the measured part.
    secs: f64,
    /// Server CPU seconds (user + system, whole process tree) during the measured part.
    server_cpu: Option<f64>,
    /// CPU seconds of the load generator (and its children, e.g. curl).
    client_cpu: f64,
    /// Whether everything moved was checked and right, and every operation succeeded.
    ok: bool,
    note: String,
}

const COLUMNS: usize = 12;

impl Record {
    fn tsv(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        let cpu = self
            .server_cpu
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.3}"));
        format!(
            "{}\t{}\t{}\t{}\t{:.3}\t{}\t{}\t{:.3}\t{}\t{:.3}\t{}\t{}",
            clean(&self.label),
            self.round,
            clean(&self.workload),
            clean(&self.client),
            self.value,
            clean(&self.unit),
            self.work,
            self.secs,
            cpu,
            self.client_cpu,
            if self.ok { "ok" } else { "FAIL" },
            clean(&self.note),
        )
    }

    fn parse(line: &str) -> Option<Record> {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != COLUMNS {
            return None;
        }
        Some(Record {
            label: f[0].to_owned(),
            round: f[1].parse().ok()?,
            workload: f[2].to_owned(),
            client: f[3].to_owned(),
            value: f[4].parse().ok()?,
            unit: f[5].to_owned(),
            work: f[6].parse().ok()?,
            secs: f[7].parse().ok()?,
            server_cpu: f[8].parse().ok(),
            client_cpu: f[9].parse().ok()?,
            ok: f[10] == "ok",
            note: f[11].to_owned(),
        })
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    let cli = Cli::parse();
    // The idle workload holds a thousand sessions, a socket each.
    simple_ftp::limits::raise_open_files_limit();
    if let Err(e) = run(cli.cmd) {
        eprintln!("ftp-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Mkfile { path, size } => {
            let digest = mkfile(&path, size)?;
            println!("{digest}");
            Ok(())
        }
        Cmd::Limits {
            file,
            scratch,
            round,
        } => {
            for record in limits(&file, &scratch, round)? {
                println!("{}", record.tsv());
            }
            Ok(())
        }
        Cmd::Table { files, ours } => {
            let mut text = String::new();
            if files.is_empty() {
                io::stdin().read_to_string(&mut text)?;
            }
            for f in &files {
                text.push_str(&fs::read_to_string(f).with_context(|| format!("{}", f.display()))?);
            }
            let records: Vec<Record> = text.lines().filter_map(Record::parse).collect();
            ensure!(!records.is_empty(), "no result lines in the input");
            print!("{}", table(&records, &ours));
            Ok(())
        }
        workload => run_bounded(workload),
    }
}

/// Runs a workload on its own thread; past the deadline (plus a grace period for the
/// workload's own checks) prints a failed record and ends the process.
fn run_bounded(cmd: Cmd) -> anyhow::Result<()> {
    let target = match &cmd {
        Cmd::RetrLarge { target, .. }
        | Cmd::StorLarge { target, .. }
        | Cmd::CurlRetr { target, .. }
        | Cmd::CurlStor { target, .. }
        | Cmd::RetrSmall { target, .. }
        | Cmd::StorSmall { target, .. }
        | Cmd::Churn { target, .. }
        | Cmd::Idle { target, .. } => target.clone(),
        Cmd::Mkfile { .. } | Cmd::Limits { .. } | Cmd::Table { .. } => {
            bail!("not a workload")
        }
    };
    let names = record_names(&cmd);
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("workload".into())
        .spawn(move || {
            let _ = tx.send(workload(cmd));
        })
        .context("cannot start the workload thread")?;
    let bound = Duration::from_secs(target.deadline + target.timeout + 30);
    match rx.recv_timeout(bound) {
        Ok(records) => {
            for r in records? {
                println!("{}", r.tsv());
            }
            Ok(())
        }
        Err(_) => {
            for (workload, client) in names {
                let mut r = target.record(workload, client);
                r.note = format!("watchdog: no result after {} s", bound.as_secs());
                println!("{}", r.tsv());
            }
            io::stdout().flush()?;
            // The workload thread may be stuck in a system call: leave without it.
            std::process::exit(2);
        }
    }
}

/// The (workload, client) names of the records a workload prints, as its table rows
/// know them.
fn record_names(cmd: &Cmd) -> &'static [(&'static str, &'static str)] {
    match cmd {
        Cmd::RetrLarge { .. } => &[("retr-large", "ftp-bench")],
        Cmd::CurlRetr { to_file: true, .. } => &[("retr-large", "curl>file")],
        Cmd::CurlRetr { .. } => &[("retr-large", "curl")],
        Cmd::StorLarge { .. } => &[("stor-large", "ftp-bench")],
        Cmd::CurlStor { .. } => &[("stor-large", "curl")],
        Cmd::RetrSmall { .. } => &[("retr-small", "ftp-bench")],
        Cmd::StorSmall { .. } => &[("stor-small", "ftp-bench")],
        Cmd::Churn { .. } => &[("churn", "ftp-bench")],
        Cmd::Idle { .. } => &[
            ("idle-rss", "ftp-bench"),
            ("idle-pss", "ftp-bench"),
            ("idle-latency", "ftp-bench"),
        ],
        Cmd::Mkfile { .. } | Cmd::Limits { .. } | Cmd::Table { .. } => &[],
    }
}

fn workload(cmd: Cmd) -> anyhow::Result<Vec<Record>> {
    match cmd {
        Cmd::RetrLarge { target, expect } => Ok(vec![retr_large(&target, &expect)]),
        Cmd::StorLarge {
            target,
            local_file,
            sha256,
        } => Ok(vec![stor_large(&target, &local_file, sha256.as_deref())?]),
        Cmd::CurlRetr {
            target,
            expect,
            curl,
            to_file,
        } => Ok(vec![curl_retr(&target, &expect, &curl, to_file)]),
        Cmd::CurlStor {
            target,
            local_file,
            sha256,
            curl,
        } => Ok(vec![curl_stor(
            &target,
            &local_file,
            sha256.as_deref(),
            &curl,
        )?]),
        Cmd::RetrSmall {
            target,
            expect,
            many,
        } => Ok(vec![retr_small(&target, &expect, many)]),
        Cmd::StorSmall {
            target,
            local_file,
            many,
        } => Ok(vec![stor_small(&target, &local_file, many)?]),
        Cmd::Churn { target, many } => Ok(vec![churn(&target, many)]),
        Cmd::Idle {
            target,
            sessions,
            openers,
            probes,
        } => Ok(idle(&target, sessions, openers, probes)),
        Cmd::Mkfile { .. } | Cmd::Limits { .. } | Cmd::Table { .. } => bail!("not a workload"),
    }
}

impl Target {
    fn op_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.deadline.max(1))
    }

    /// A failed record of this target, to be filled in.
    fn record(&self, workload: &str, client: &str) -> Record {
        Record {
            label: self.label.clone(),
            round: self.round,
            workload: workload.to_owned(),
            client: client.to_owned(),
            value: 0.0,
            unit: String::new(),
            work: 0.0,
            secs: 0.0,
            server_cpu: None,
            client_cpu: 0.0,
            ok: false,
            note: String::new(),
        }
    }

    /// `dir/name` as the server sees it.
    fn remote(&self, name: &str) -> String {
        if self.dir.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.dir.trim_end_matches('/'))
        }
    }

    /// A connected, logged-in client in binary mode, verification off (the workloads
    /// check what they moved themselves).
    fn session(&self) -> anyhow::Result<Client> {
        let mut c = Client::connect(&self.host, self.port, self.op_timeout())?;
        c.login(&self.user, &self.pass)?;
        c.binary()?;
        c.set_verify(false);
        Ok(c)
    }

    fn url(&self, name: &str) -> String {
        format!("ftp://{}:{}/{}", self.host, self.port, self.remote(name))
    }

    /// A name for an upload that no earlier round used (some servers refuse to
    /// overwrite anonymous uploads).
    fn upload_name(&self, what: &str) -> String {
        format!(
            "{what}-{}-r{}-{}",
            self.label.replace(['/', ' '], "_"),
            self.round,
            std::process::id()
        )
    }
}

/// Measures CPU time and wall-clock time of one workload's measured part.
struct Meter<'a> {
    pids: &'a [u32],
    server_before: Option<f64>,
    client_before: f64,
    start: Instant,
}

impl<'a> Meter<'a> {
    fn start(pids: &'a [u32]) -> Meter<'a> {
        Meter {
            pids,
            server_before: server_cpu(pids),
            client_before: self_cpu(),
            start: Instant::now(),
        }
    }

    /// Stops the clock for a transfer of `bytes`: the record's rate in MiB/s.
    fn stop_rate(self, record: &mut Record, bytes: u64) {
        self.stop(record);
        record.work = bytes as f64;
        record.value = record.work / MIB / record.secs;
    }

    /// Stops the clock; then waits a moment for ending sessions' processes to be
    /// reaped (their CPU time reaches the parent only then) and reads the CPU times.
    fn stop(self, record: &mut Record) {
        record.secs = self.start.elapsed().as_secs_f64();
        if !self.pids.is_empty() {
            thread::sleep(Duration::from_millis(300));
        }
        record.client_cpu = self_cpu() - self.client_before;
        record.server_cpu = match (self.server_before, server_cpu(self.pids)) {
            (Some(before), Some(after)) => Some(after - before),
            _ => None,
        };
    }
}

fn retr_large(t: &Target, e: &Expected) -> Record {
    let mut r = t.record("retr-large", "ftp-bench");
    r.unit = "MiB/s".into();
    let local = t
        .local
        .join(format!("ftp-bench-dl-{}.bin", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut c = t.session()?;
        let meter = Meter::start(&t.pids);
        let moved = c.get(&t.remote(&e.file), &local, |_| {})?;
        meter.stop_rate(&mut r, moved.bytes);
        let _ = c.quit();
        check_file(&local, e.size, e.sha256.as_deref())?;
        Ok(())
    })();
    let _ = fs::remove_file(&local);
    finish(r, result)
}

fn stor_large(t: &Target, local: &Path, sha: Option<&str>) -> anyhow::Result<Record> {
    let mut r = t.record("stor-large", "ftp-bench");
    r.unit = "MiB/s".into();
    let size = fs::metadata(local)
        .with_context(|| format!("{}", local.display()))?
        .len();
    let name = t.upload_name("big-up");
    let result = (|| -> anyhow::Result<()> {
        let mut c = t.session()?;
        let meter = Meter::start(&t.pids);
        let moved = c.put(local, &t.remote(&name), |_| {})?;
        meter.stop_rate(&mut r, moved.bytes);
        check_upload(t, &mut c, &name, size, sha)?;
        let _ = c.quit();
        Ok(())
    })();
    remove_upload(t, &name);
    Ok(finish(r, result))
}

fn curl_retr(t: &Target, e: &Expected, curl: &Path, to_file: bool) -> Record {
    let mut r = t.record("retr-large", if to_file { "curl>file" } else { "curl" });
    r.unit = "MiB/s".into();
    let local = t
        .local
        .join(format!("ftp-bench-curl-{}.bin", std::process::id()));
    let out_path = if to_file {
        local.to_string_lossy().into_owned()
    } else {
        "/dev/null".to_owned()
    };
    let result = (|| -> anyhow::Result<()> {
        let meter = Meter::start(&t.pids);
        let out = run_curl(
            curl,
            t,
            &["-o", &out_path, "-w", "%{size_download}", &t.url(&e.file)],
        )?;
        let got: u64 = out.trim().parse().context("curl's size_download")?;
        meter.stop_rate(&mut r, got);
        ensure!(got == e.size, "curl got {got} bytes, expected {}", e.size);
        if to_file {
            check_file(&local, e.size, e.sha256.as_deref())?;
        } else {
            r.note = "size checked".into();
        }
        Ok(())
    })();
    if to_file {
        let _ = fs::remove_file(&local);
    }
    finish(r, result)
}

fn curl_stor(t: &Target, local: &Path, sha: Option<&str>, curl: &Path) -> anyhow::Result<Record> {
    let mut r = t.record("stor-large", "curl");
    r.unit = "MiB/s".into();
    let size = fs::metadata(local)
        .with_context(|| format!("{}", local.display()))?
        .len();
    let name = t.upload_name("big-curl");
    let local_text = local.to_string_lossy().into_owned();
    let result = (|| -> anyhow::Result<()> {
        let meter = Meter::start(&t.pids);
        let out = run_curl(
            curl,
            t,
            &["-T", &local_text, "-w", "%{size_upload}", &t.url(&name)],
        )?;
        let sent: u64 = out.trim().parse().context("curl's size_upload")?;
        meter.stop_rate(&mut r, sent);
        let mut c = t.session()?;
        check_upload(t, &mut c, &name, size, sha)?;
        let _ = c.quit();
        Ok(())
    })();
    remove_upload(t, &name);
    Ok(finish(r, result))
}

fn run_curl(curl: &Path, t: &Target, args: &[&str]) -> anyhow::Result<String> {
    let out = Process::new(curl)
        .args(["-s", "-S", "--ftp-pasv", "--max-time"])
        .arg((t.deadline.max(1)).to_string())
        .arg("-u")
        .arg(format!("{}:{}", t.user, t.pass))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", curl.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "curl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(text)
}

/// What the sessions of a concurrent workload did.
#[derive(Default)]
struct Tally {
    done: AtomicU64,
    errors: AtomicU64,
    first_error: parking_lot::Mutex<Option<String>>,
}

impl Tally {
    fn error(&self, e: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock();
        if first.is_none() {
            *first = Some(e.to_string());
        }
    }

    /// Fills in the record's work, rate and verdict; `planned` operations were asked for.
    fn conclude(&self, r: &mut Record, planned: usize, late: bool) {
        let done = self.done.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        r.work = done as f64;
        r.value = if r.secs > 0.0 { r.work / r.secs } else { 0.0 };
        r.ok = errors == 0 && done > 0;
        let mut note = format!("{done} of {planned} done");
        if late {
            note.push_str(", deadline reached");
        }
        if errors > 0 {
            let _ = write!(note, ", {errors} errors");
            if let Some(first) = self.first_error.lock().as_ref() {
                let _ = write!(note, ", first: {first}");
            }
        }
        r.note = note;
    }
}

/// Runs `sessions` threads that each first call `setup` (untimed), then wait for all
/// the others, then call `op(i)` for i in 0..count until the deadline; returns whether
/// the deadline stopped any session.
fn concurrent<S, Op>(
    t: &Target,
    many: Many,
    tally: &Tally,
    r: &mut Record,
    setup: S,
    op: Op,
) -> bool
where
    S: Fn(usize) -> anyhow::Result<Option<Client>> + Sync,
    Op: Fn(usize, usize, &mut Option<Client>) -> anyhow::Result<()> + Sync,
{
    let deadline = t.deadline();
    let late = AtomicBool::new(false);
    // Sessions set up, then the meter starts (reading /proc takes a while with a
    // forking server), then all go at once; the clock stops when the last one ends.
    let ready = Barrier::new(many.sessions + 1);
    let go = Barrier::new(many.sessions + 1);
    let done_barrier = Barrier::new(many.sessions + 1);
    let mut meter = None;
    thread::scope(|s| {
        for session in 0..many.sessions {
            let (setup, op, ready, go, done_barrier, late) =
                (&setup, &op, &ready, &go, &done_barrier, &late);
            s.spawn(move || {
                let mut client = match setup(session) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tally.error(e);
                        None
                    }
                };
                ready.wait();
                go.wait();
                if let Some(client) = client.as_mut() {
                    for i in 0..many.count {
                        if Instant::now() > deadline {
                            late.store(true, Ordering::Relaxed);
                            break;
                        }
                        match op(session, i, client) {
                            Ok(()) => {
                                tally.done.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                tally.error(format!("{e:#}"));
                                if client.as_ref().is_some_and(|c| !c.is_usable()) {
                                    break;
                                }
                            }
                        }
                    }
                }
                done_barrier.wait();
                if let Some(Some(c)) = client {
                    let _ = c.quit();
                }
            });
        }
        ready.wait();
        meter = Some(Meter::start(&t.pids));
        go.wait();
        done_barrier.wait();
        if let Some(m) = meter.take() {
            m.stop(r);
        }
    });
    late.load(Ordering::Relaxed)
}

fn retr_small(t: &Target, e: &Expected, many: Many) -> Record {
    let mut r = t.record("retr-small", "ftp-bench");
    r.unit = "transfers/s".into();
    let tally = Tally::default();
    let remote = t.remote(&e.file);
    // Downloads go into memory: the load generator shares the machine's cores with
    // the server, and a file created, renamed and read back per download would make
    // it the heavier of the two.
    let late = concurrent(
        t,
        many,
        &tally,
        &mut r,
        |_| Ok(Some(t.session()?)),
        |_, _, client| {
            let c = client.as_mut().context("no session")?;
            let mut bytes = Vec::with_capacity(usize::try_from(e.size).unwrap_or(0));
            c.get_into(&remote, &mut bytes, |_| {})?;
            check_bytes(&bytes, e.size, e.sha256.as_deref())
        },
    );
    tally.conclude(&mut r, many.sessions * many.count, late);
    if r.ok {
        r.note
            .push_str(", each download's size and SHA-256 checked");
    }
    r
}

fn stor_small(t: &Target, local: &Path, many: Many) -> anyhow::Result<Record> {
    let mut r = t.record("stor-small", "ftp-bench");
    r.unit = "transfers/s".into();
    let bytes = fs::read(local).with_context(|| format!("{}", local.display()))?;
    let sha = sha256_hex(&bytes);
    let tally = Tally::default();
    let base = t.upload_name("small-up");
    let name = |session: usize, i: usize| format!("{base}-{session}-{i}");
    let late = concurrent(
        t,
        many,
        &tally,
        &mut r,
        |_| Ok(Some(t.session()?)),
        |session, i, client| {
            let c = client.as_mut().context("no session")?;
            c.put(local, &t.remote(&name(session, i)), |_| {})?;
            Ok(())
        },
    );
    tally.conclude(&mut r, many.sessions * many.count, late);
    // Check every upload that succeeded, through the server's directory when we have
    // it (size and SHA-256), else by SIZE on a fresh session.
    let check = (|| -> anyhow::Result<&'static str> {
        let mut checker = match t.served_dir {
            Some(_) => None,
            None => Some(t.session()?),
        };
        let mut checked = 0u64;
        for session in 0..many.sessions {
            for i in 0..many.count {
                let n = name(session, i);
                match (&t.served_dir, checker.as_mut()) {
                    (Some(dir), _) => {
                        let path = dir.join(&n);
                        match fs::read(&path) {
                            Ok(got) => {
                                ensure!(sha256_hex(&got) == sha, "{n}: content differs");
                                checked += 1;
                            }
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e).context(n),
                        }
                    }
                    (None, Some(c)) => {
                        if let Ok(size) = c.size(&t.remote(&n)) {
                            ensure!(size == bytes.len() as u64, "{n}: {size} bytes");
                            checked += 1;
                        }
                    }
                    (None, None) => {}
                }
            }
        }
        let done = tally.done.load(Ordering::Relaxed);
        ensure!(
            checked >= done,
            "{done} uploads reported done, {checked} found"
        );
        if let Some(c) = checker {
            let _ = c.quit();
        }
        Ok(if t.served_dir.is_some() {
            "each upload's size and SHA-256 checked"
        } else {
            "each upload's SIZE checked"
        })
    })();
    if let Some(dir) = &t.served_dir {
        for session in 0..many.sessions {
            for i in 0..many.count {
                let _ = fs::remove_file(dir.join(name(session, i)));
            }
        }
    }
    match check {
        Ok(how) if r.ok => {
            let _ = write!(r.note, ", {how}");
        }
        Ok(_) => {}
        Err(e) => {
            r.ok = false;
            let _ = write!(r.note, ", check failed: {e:#}");
        }
    }
    Ok(r)
}

fn churn(t: &Target, many: Many) -> Record {
    let mut r = t.record("churn", "ftp-bench");
    r.unit = "sessions/s".into();
    let tally = Tally::default();
    let late = concurrent(
        t,
        many,
        &tally,
        &mut r,
        |_| Ok(None),
        |_, _, _| {
            let mut c = Client::connect(&t.host, t.port, t.op_timeout())?;
            c.login(&t.user, &t.pass)?;
            c.quit()?;
            Ok(())
        },
    );
    tally.conclude(&mut r, many.sessions * many.count, late);
    if r.ok {
        r.note
            .push_str(", each login and QUIT answered as expected");
    }
    r
}

fn idle(t: &Target, sessions: usize, openers: usize, probes: usize) -> Vec<Record> {
    let mut rss = t.record("idle-rss", "ftp-bench");
    rss.unit = "MiB".into();
    let mut pss = t.record("idle-pss", "ftp-bench");
    pss.unit = "MiB".into();
    let mut lat = t.record("idle-latency", "ftp-bench");
    lat.unit = "ms".into();
    let deadline = t.deadline();
    let openers = openers.clamp(1, sessions.max(1));
    let tally = Tally::default();
    let start = Instant::now();
    // Each opener holds its share of the sessions until every probe is done.
    let held: parking_lot::Mutex<Vec<Client>> =
        parking_lot::Mutex::new(Vec::with_capacity(sessions));
    thread::scope(|s| {
        for k in 0..openers {
            let (tally, held) = (&tally, &held);
            let share = sessions / openers + usize::from(k < sessions % openers);
            s.spawn(move || {
                for _ in 0..share {
                    if Instant::now() > deadline {
                        tally.error("deadline reached while opening sessions");
                        break;
                    }
                    match t.session() {
                        Ok(c) => {
                            held.lock().push(c);
                            tally.done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tally.error(format!("{e:#}")),
                    }
                }
            });
        }
    });
    let opened = tally.done.load(Ordering::Relaxed) as usize;
    let open_secs = start.elapsed().as_secs_f64();
    // Let the server settle (forked helpers, lazily touched memory) before reading it.
    thread::sleep(Duration::from_secs(1));
    let mem = server_memory(&t.pids);
    let mut times = Vec::new();
    let mut probe_error = None;
    for _ in 0..probes {
        let begin = Instant::now();
        let result = (|| -> anyhow::Result<()> {
            let mut c = t.session()?;
            let listing = c.list(if t.dir.is_empty() { None } else { Some(&t.dir) })?;
            ensure!(!listing.is_empty(), "empty listing");
            c.quit()?;
            Ok(())
        })();
        match result {
            Ok(()) => times.push(begin.elapsed().as_secs_f64() * 1000.0),
            Err(e) => {
                probe_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    // Are the idle sessions still there? One NOOP each.
    let mut alive = 0usize;
    for c in held.lock().iter_mut() {
        if c.noop().is_ok() {
            alive += 1;
        }
    }
    let clients = std::mem::take(&mut *held.lock());
    drop(clients);
    let errors = tally.errors.load(Ordering::Relaxed);
    let base_note = format!(
        "{opened} of {sessions} sessions open in {open_secs:.1} s, {alive} alive after the probes{}",
        if errors > 0 {
            format!(
                ", {errors} failed to open: {}",
                tally.first_error.lock().clone().unwrap_or_default()
            )
        } else {
            String::new()
        }
    );
    let all_open = opened == sessions && alive == sessions;
    for r in [&mut rss, &mut pss] {
        r.work = opened as f64;
        r.secs = open_secs;
        r.note.clone_from(&base_note);
    }
    match mem {
        Some((rss_kib, pss_kib, procs)) => {
            rss.value = rss_kib as f64 / 1024.0;
            pss.value = pss_kib as f64 / 1024.0;
            rss.ok = all_open;
            pss.ok = all_open;
            let _ = write!(rss.note, ", {procs} server processes");
            let _ = write!(pss.note, ", {procs} server processes");
        }
        None => {
            rss.note.push_str(", no server PID to measure");
            pss.note.push_str(", no server PID to measure");
        }
    }
    lat.work = times.len() as f64;
    if !times.is_empty() {
        times.sort_by(f64::total_cmp);
        lat.value = times[times.len() - 1];
        lat.secs = times.iter().sum::<f64>() / 1000.0;
        lat.note = format!(
            "worst of {} new clients (connect + login + LIST + QUIT), median {:.1} ms",
            times.len(),
            times[times.len() / 2]
        );
    }
    lat.ok = times.len() == probes && all_open;
    if let Some(e) = probe_error {
        let _ = write!(lat.note, ", a probe failed: {e}");
    }
    if !all_open {
        let _ = write!(lat.note, "; {base_note}");
    }
    vec![rss, pss, lat]
}

fn finish(mut r: Record, result: anyhow::Result<()>) -> Record {
    match result {
        Ok(()) => {
            r.ok = true;
            if r.note.is_empty() {
                r.note = "size and SHA-256 checked".into();
            }
        }
        Err(e) => {
            r.ok = false;
            r.note = format!("{e:#}");
        }
    }
    r
}

/// Checks a local file's size and, when given, its SHA-256.
fn check_file(path: &Path, size: u64, sha: Option<&str>) -> anyhow::Result<()> {
    let got = fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len();
    ensure!(
        got == size,
        "{}: {got} bytes, expected {size}",
        path.display()
    );
    if let Some(want) = sha {
        let have = sha256_file(path)?;
        ensure!(
            have.eq_ignore_ascii_case(want),
            "{}: SHA-256 {have}, expected {want}",
            path.display()
        );
    }
    Ok(())
}

/// Checks a download held in memory: its length, and its SHA-256 when known.
fn check_bytes(bytes: &[u8], size: u64, sha: Option<&str>) -> anyhow::Result<()> {
    ensure!(
        bytes.len() as u64 == size,
        "{} bytes, expected {size}",
        bytes.len()
    );
    if let Some(want) = sha {
        let have = sha256_hex(bytes);
        ensure!(
            have.eq_ignore_ascii_case(want),
            "SHA-256 {have}, expected {want}"
        );
    }
    Ok(())
}

/// Checks an upload: SIZE through the server, and SHA-256 of the server's copy when
/// its directory is reachable here.
fn check_upload(
    t: &Target,
    c: &mut Client,
    name: &str,
    size: u64,
    sha: Option<&str>,
) -> anyhow::Result<()> {
    let got = c.size(&t.remote(name))?;
    ensure!(got == size, "the server holds {got} bytes, expected {size}");
    if let (Some(dir), Some(_)) = (&t.served_dir, sha) {
        check_file(&dir.join(name), size, sha)?;
    }
    Ok(())
}

fn remove_upload(t: &Target, name: &str) {
    if let Some(dir) = &t.served_dir {
        let _ = fs::remove_file(dir.join(name));
    }
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    digest::sha256_file(path).with_context(|| format!("{}", path.display()))
}

/// Writes `size` pseudo-random bytes (xorshift, fixed seed) to `path`; returns their SHA-256.
fn mkfile(path: &Path, size: u64) -> anyhow::Result<String> {
    let mut out =
        io::BufWriter::new(File::create(path).with_context(|| format!("{}", path.display()))?);
    let mut hasher = Sha256::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = state.to_le_bytes();
            word.copy_from_slice(&b[..word.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..n]);
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hex(&hasher.finalize()))
}

/// The machine's limits: reading a tmpfs file into a buffer, and a raw loopback copy
/// of it (sendfile into a socket; the receiver reads into a buffer, or splices into
/// a tmpfs file as an upload must).
fn limits(file: &Path, scratch: &Path, round: u32) -> anyhow::Result<Vec<Record>> {
    let len = fs::metadata(file)
        .with_context(|| format!("{}", file.display()))?
        .len();
    let base = |workload: &str, client: &str| Record {
        label: "machine".into(),
        round,
        workload: workload.into(),
        client: client.into(),
        value: 0.0,
        unit: "MiB/s".into(),
        work: len as f64,
        secs: 0.0,
        server_cpu: None,
        client_cpu: 0.0,
        ok: false,
        note: String::new(),
    };

    let mut read = base("page-cache-read", "read 1 MiB");
    let cpu = self_cpu();
    let start = Instant::now();
    let mut f = File::open(file)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    read.secs = start.elapsed().as_secs_f64();
    read.client_cpu = self_cpu() - cpu;
    read.value = got as f64 / MIB / read.secs;
    read.ok = got == len;
    read.note = "read(2) of a tmpfs file into a 1 MiB buffer".into();

    let mut to_buf = base("raw-copy", "sendfile->read");
    let (secs, cpu, moved) = raw_copy(file, None)?;
    to_buf.secs = secs;
    to_buf.client_cpu = cpu;
    to_buf.value = moved as f64 / MIB / secs;
    to_buf.ok = moved == len;
    to_buf.note =
        "sendfile(2) into a loopback socket; the receiver reads into a 1 MiB buffer".into();

    let landing = scratch.join(format!("ftp-bench-raw-{}.bin", std::process::id()));
    let mut to_file = base("raw-copy-to-file", "sendfile->splice");
    let result = raw_copy(file, Some(&landing));
    let _ = fs::remove_file(&landing);
    let (secs, cpu, moved) = result?;
    to_file.secs = secs;
    to_file.client_cpu = cpu;
    to_file.value = moved as f64 / MIB / secs;
    to_file.ok = moved == len;
    to_file.note =
        "sendfile(2) into a loopback socket; the receiver splices into a tmpfs file".into();
    Ok(vec![read, to_buf, to_file])
}

/// Sends `file` over a loopback connection with sendfile; the receiver reads into a
/// buffer or, with `landing`, splices into that file. Returns seconds, CPU seconds of
/// both ends and bytes received.
fn raw_copy(file: &Path, landing: Option<&Path>) -> anyhow::Result<(f64, f64, u64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let source = File::open(file)?;
    let sender = thread::spawn(move || -> io::Result<u64> {
        let (sock, _) = listener.accept()?;
        let mut pump = Pump::new();
        let mut offset = 0u64;
        loop {
            match pump.file_to_socket(&source, &mut offset, &sock, 16 << 20) {
                Ok(0) => return Ok(offset),
                Ok(_) => {}
                Err(e) => return Err(io::Error::other(format!("{e:?}"))),
            }
        }
    });
    let cpu = self_cpu();
    let start = Instant::now();
    let mut sock = TcpStream::connect(addr)?;
    let mut got = 0u64;
    match landing {
        None => {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = sock.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
        }
        Some(path) => {
            let out = File::create(path)?;
            let mut pump = Pump::new();
            loop {
                match pump.socket_to_file(&sock, &out, 1 << 20) {
                    Ok(0) => break,
                    Ok(n) => got += n as u64,
                    Err(e) => bail!("raw copy into a file: {e:?}"),
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    ensure!(sent == got, "sent {sent} bytes, received {got}");
    Ok((secs, self_cpu() - cpu, got))
}

/// Clock ticks per second in /proc's CPU times (USER_HZ: 100 on every Linux port
/// whose ABI we run on; the kernel converts its own HZ to it).
const USER_HZ: f64 = 100.0;

/// Fields of /proc/<pid>/stat after the command name: (ppid, user+system time of the
/// process and of its reaped children, in ticks).
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(u32, u64)> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    let ppid = f.get(1)?.parse().ok()?;
    let mut ticks = 0u64;
    for i in 11..=14 {
        ticks += f.get(i)?.parse::<u64>().ok()?;
    }
    Some((ppid, ticks))
}

/// The PIDs of `roots` and of every process below them.
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, _)) = proc_stat(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = Vec::new();
    let mut todo: Vec<u32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if tree.contains(&pid) {
            continue;
        }
        tree.push(pid);
        if let Some(kids) = children.get(&pid) {
            todo.extend(kids);
        }
    }
    tree
}

/// CPU seconds of the server's process trees (including reaped children), or `None`
/// without PIDs or when none of them is alive.
fn server_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    let mut ticks = 0u64;
    let mut seen = false;
    for pid in process_tree(pids) {
        if let Some((_, t)) = proc_stat(pid) {
            ticks += t;
            seen = true;
        }
    }
    seen.then(|| ticks as f64 / USER_HZ)
}

/// CPU seconds of this process, its threads and its reaped children (curl).
fn self_cpu() -> f64 {
    proc_stat(std::process::id()).map_or(0.0, |(_, t)| t as f64 / USER_HZ)
}

/// Resident memory of the server's process trees: (RSS KiB, PSS KiB, processes).
/// RSS counts pages shared between forked processes once per process; PSS divides
/// them among the sharers.
fn server_memory(pids: &[u32]) -> Option<(u64, u64, usize)> {
    if pids.is_empty() {
        return None;
    }
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (mut rss, mut pss, mut procs) = (0, 0, 0);
    for pid in process_tree(pids) {
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        procs += 1;
        rss += field(&status, "VmRSS:");
        if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            pss += field(&rollup, "Pss:");
        }
    }
    (procs > 0).then_some((rss, pss, procs))
}

/// One row of the table: which results, how to show them, and which way is better.
struct Row {
    title: &'static str,
    workload: &'static str,
    client: &'static str,
    kind: RowKind,
}

#[derive(Clone, Copy, PartialEq)]
enum RowKind {
    /// The figure itself; `higher` says whether more is better.
    Value { higher: bool },
    /// Server CPU per unit of work of the same results: CPU seconds / work * `per`.
    CpuPer { per: f64 },
}

const ROWS: &[Row] = &[
    Row {
        title: "large RETR, our client into a tmpfs file (MiB/s)",
        workload: "retr-large",
        client: "ftp-bench",
        kind: RowKind::Value { higher: true },
    },
    Row {
        title: "… server CPU (s per GiB)",
        workload: "retr-large",
        client: "ftp-bench",
        kind: RowKind::CpuPer { per: 1024.0 * MIB },
    },
    Row {
        title: "large RETR, curl into /dev/null (MiB/s)",
        workload: "retr-large",
        client: "curl",
        kind: RowKind::Value { higher: true },
    },
    Row {
        title: "… server CPU (s per GiB)",
        workload: "retr-large",
        client: "curl",
        kind: RowKind::CpuPer { per: 1024.0 * MIB },
    },
    Row {
        title: "large RETR, curl into a tmpfs file (MiB/s)",
        workload: "retr-large",
        client: "curl>file",
        kind: RowKind::Value { higher: true },
    },
    Row {
        title: "large STOR, our client (MiB/s)",
        workload: "stor-large",
        client: "ftp-bench",
        kind: RowKind::Value { higher: true },
    },
    Row {
        title: "… server CPU (s per GiB)",
        workload: "stor-large",
        client: "ftp-bench",
        kind: RowKind::CpuPer { per: 1024.0 * MIB },
    },
    Row {
        title: "large STOR, curl (MiB/s)",
        workload: "stor-large",
        client: "curl",
        kind: RowKind::Value { higher: true },
    },
    Row {
        title: "… server CPU (s per GiB)",
        workload: "stor-large",
        client: "curl",
        kind: RowKind::CpuPer { per: 1024.0 * MIB },
    },
    Row {
        title: "small RETR, concurrent sessions (transfers/s)",
        workload: "retr-small",
        client: "ftp-bench",
        kind: RowKind::Value { higher: true },
    },
    Row {
        title: "… server CPU (µs per transfer)",
        workload: "retr-small",
        client: "ftp-bench",
        kind: RowKind::CpuPer { per: 1e6 },
    },
    Row {
        title: "small STOR, concurrent sessions (transfers/s)",
        workload: "stor-small",
        client: "ftp-bench",
        kind: RowKind::Value { higher: true },
    },
    Row {
        title: "… server CPU (µs per transfer)",
        workload: "stor-small",
        client: "ftp-bench",
        kind: RowKind::CpuPer { per: 1e6 },
    },
    Row {
        title: "session churn, concurrent clients (sessions/s)",
        workload: "churn",
        client: "ftp-bench",
        kind: RowKind::Value { higher: true },
    },
    Row {
        title: "… server CPU (µs per session)",
        workload: "churn",
        client: "ftp-bench",
        kind: RowKind::CpuPer { per: 1e6 },
    },
    Row {
        title: "idle sessions: server RSS (MiB)",
        workload: "idle-rss",
        client: "ftp-bench",
        kind: RowKind::Value { higher: false },
    },
    Row {
        title: "idle sessions: server PSS (MiB)",
        workload: "idle-pss",
        client: "ftp-bench",
        kind: RowKind::Value { higher: false },
    },
    Row {
        title: "idle sessions: new client served in (ms, worst)",
        workload: "idle-latency",
        client: "ftp-bench",
        kind: RowKind::Value { higher: false },
    },
];

/// The machine's figures shown under the servers' rows.
const LIMIT_ROWS: &[(&str, &str, &str)] = &[
    (
        "loadavg",
        "/proc/loadavg",
        "load average (1 min) as each round began: other work on the machine",
    ),
    (
        "time-wait",
        "ss",
        "TCP sockets in TIME-WAIT as each round began",
    ),
    (
        "loopback-tcp",
        "iperf3",
        "loopback TCP, iperf3 one stream (MiB/s)",
    ),
    (
        "page-cache-read",
        "read 1 MiB",
        "page-cache read of a tmpfs file (MiB/s)",
    ),
    (
        "raw-copy",
        "sendfile->read",
        "raw loopback copy: sendfile → socket → read into a buffer (MiB/s)",
    ),
    (
        "raw-copy-to-file",
        "sendfile->splice",
        "raw loopback copy into a tmpfs file: sendfile → socket → splice (MiB/s)",
    ),
];

/// Median, min and max.
fn stats(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((median, v[0], v[n - 1]))
}

/// A number with about three significant digits.
fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn cell(s: Option<(f64, f64, f64)>, failed: usize, rounds: usize) -> String {
    let mut text = match s {
        Some((med, lo, hi)) if rounds > 1 => format!("{} ({}–{})", num(med), num(lo), num(hi)),
        Some((med, _, _)) => num(med),
        None => "–".to_owned(),
    };
    if failed > 0 {
        let _ = write!(text, " ✗{failed}");
    }
    text
}

/// The Markdown comparison table: one column per server (in the order they first
/// appear, ours first), the median and min–max over rounds, and the ratio of ours
/// to the best other server.
fn table(records: &[Record], ours: &str) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for r in records {
        if r.label != "machine" && !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
    }
    if let Some(i) = labels.iter().position(|l| *l == ours) {
        let l = labels.remove(i);
        labels.insert(0, l);
    }
    // (label, workload, client) -> its results
    let mut by: BTreeMap<(&str, &str, &str), Vec<&Record>> = BTreeMap::new();
    for r in records {
        by.entry((&r.label, &r.workload, &r.client))
            .or_default()
            .push(r);
    }
    let raw = records
        .iter()
        .filter(|r| r.label == "machine" && r.workload == "raw-copy" && r.ok)
        .map(|r| r.value)
        .collect::<Vec<_>>();
    let raw_median = stats(&raw).map(|s| s.0);

    let mut out = String::new();
    let _ = write!(out, "| figure |");
    for l in &labels {
        let _ = write!(out, " {l} |");
    }
    let _ = writeln!(out, " ours / best other | ours / raw copy |");
    let _ = write!(out, "|---|");
    for _ in &labels {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out, "---:|---:|");

    for row in ROWS {
        if !labels
            .iter()
            .any(|l| by.contains_key(&(*l, row.workload, row.client)))
        {
            continue;
        }
        let mut medians: Vec<(&str, f64)> = Vec::new();
        let _ = write!(out, "| {} |", row.title);
        for l in &labels {
            let results = by.get(&(*l, row.workload, row.client));
            let results: &[&Record] = results.map_or(&[], Vec::as_slice);
            let good: Vec<&Record> = results.iter().copied().filter(|r| r.ok).collect();
            let failed = results.len() - good.len();
            let values: Vec<f64> = good
                .iter()
                .filter_map(|r| match row.kind {
                    RowKind::Value { .. } => Some(r.value),
                    RowKind::CpuPer { per } => {
                        let cpu = r.server_cpu?;
                        (r.work > 0.0).then(|| cpu / r.work * per)
                    }
                })
                .collect();
            let s = stats(&values);
            if let Some((med, _, _)) = s {
                medians.push((l, med));
            }
            let _ = write!(out, " {} |", cell(s, failed, results.len()));
        }
        let higher = match row.kind {
            RowKind::Value { higher } => higher,
            RowKind::CpuPer { .. } => false,
        };
        let our = medians.iter().find(|(l, _)| *l == ours).map(|m| m.1);
        let best = medians
            .iter()
            .filter(|(l, _)| *l != ours)
            .copied()
            .reduce(|a, b| {
                let better = if higher { b.1 > a.1 } else { b.1 < a.1 };
                if better {
                    b
                } else {
                    a
                }
            });
        match (our, best) {
            (Some(o), Some((name, b))) if b > 0.0 => {
                let _ = write!(out, " {:.2}× ({name}) |", o / b);
            }
            _ => {
                let _ = write!(out, " – |");
            }
        }
        let is_large = matches!(row.workload, "retr-large" | "stor-large")
            && matches!(row.kind, RowKind::Value { .. });
        match (our, raw_median) {
            (Some(o), Some(raw)) if is_large && raw > 0.0 => {
                let _ = writeln!(out, " {:.0}% |", 100.0 * o / raw);
            }
            _ => {
                let _ = writeln!(out, " |");
            }
        }
    }
    for (workload, client, title) in LIMIT_ROWS {
        let values: Vec<f64> = records
            .iter()
            .filter(|r| {
                r.label == "machine" && r.workload == *workload && r.client == *client && r.ok
            })
            .map(|r| r.value)
            .collect();
        let Some(s) = stats(&values) else {
            continue;
        };
        let _ = write!(out, "| machine: {title} |");
        let _ = write!(out, " {} |", cell(Some(s), 0, values.len()));
        for _ in 1..labels.len() {
            let _ = write!(out, " |");
        }
        let _ = writeln!(out, " | |");
    }
    // Every failure, also one no row shows (a workload that crashed before it could
    // name its row).
    let mut failures = records.iter().filter(|r| !r.ok).peekable();
    if failures.peek().is_some() {
        let _ = writeln!(
            out,
            "\nFailed or incomplete rounds (✗, left out of the figures):"
        );
        for r in failures {
            let _ = writeln!(
                out,
                "- {} {} {} round {}: {}",
                r.label, r.workload, r.client, r.round, r.note
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(label: &str, round: u32, workload: &str, value: f64, cpu: f64, work: f64) -> Record {
        Record {
            label: label.into(),
            round,
            workload: workload.into(),
            client: "ftp-bench".into(),
            value,
            unit: "transfers/s".into(),
            work,
            secs: 1.0,
            server_cpu: Some(cpu),
            client_cpu: 0.5,
            ok: true,
            note: "fine\tnote".into(),
        }
    }

    #[test]
    fn a_record_survives_its_tsv_line_with_tabs_in_the_note_flattened() {
        let r = rec("ours", 2, "churn", 1234.5, 0.25, 1600.0);
        let line = r.tsv();
        assert_eq!(line.split('\t').count(), COLUMNS);
        let back = Record::parse(&line).expect("parse");
        assert_eq!(back.note, "fine note");
        assert_eq!(back.value, 1234.5);
        assert_eq!(back.server_cpu, Some(0.25));
        assert_eq!(back.work, 1600.0);
        assert!(back.ok);
    }

    #[test]
    fn a_line_without_server_cpu_parses_as_none() {
        let mut r = rec("x", 0, "churn", 1.0, 0.0, 1.0);
        r.server_cpu = None;
        let back = Record::parse(&r.tsv()).expect("parse");
        assert_eq!(back.server_cpu, None);
        assert!(Record::parse("not\ta record").is_none());
    }

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5 0 0";
        assert_eq!(parse_stat(line), Some((7, 11 + 22 + 33 + 44)));
    }

    #[test]
    fn stats_give_median_min_and_max() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(stats(&[]), None);
    }

    #[test]
    fn the_table_puts_ours_first_and_compares_with_the_best_other() {
        let mut records = Vec::new();
        for round in 0..3 {
            records.push(rec(
                "peer-a",
                round,
                "retr-small",
                1000.0 + f64::from(round),
                0.2,
                1000.0,
            ));
            records.push(rec("ours", round, "retr-small", 3000.0, 0.05, 1000.0));
            records.push(rec("peer-b", round, "retr-small", 2000.0, 0.1, 1000.0));
        }
        let t = table(&records, "ours");
        let header = t.lines().next().expect("header");
        assert!(
            header.starts_with("| figure | ours | peer-a | peer-b |"),
            "{header}"
        );
        let row = t
            .lines()
            .find(|l| l.starts_with("| small RETR"))
            .expect("row");
        assert!(row.contains("1.50× (peer-b)"), "{row}");
        let cpu = t
            .lines()
            .find(|l| l.starts_with("| … server CPU (µs per transfer)"))
            .expect("cpu row");
        // 0.05 s over 1000 transfers is 50 µs; the best other is peer-b's 100 µs.
        assert!(cpu.contains("| 50.0 (50.0–50.0) |"), "{cpu}");
        assert!(cpu.contains("0.50× (peer-b)"), "{cpu}");
    }

    #[test]
    fn failed_rounds_are_marked_and_left_out() {
        let mut bad = rec("ours", 1, "churn", 5.0, 0.1, 10.0);
        bad.ok = false;
        bad.note = "refused".into();
        let records = vec![rec("ours", 0, "churn", 100.0, 0.1, 100.0), bad];
        let t = table(&records, "ours");
        assert!(
            t.contains("| 100 (100–100) ✗1 |") || t.contains("| 100 ✗1 |"),
            "{t}"
        );
        assert!(t.contains("ours churn ftp-bench round 1: refused"), "{t}");
        assert_eq!(t.matches("refused").count(), 1, "listed once: {t}");
    }

    #[test]
    fn a_failure_no_row_shows_is_still_listed() {
        let mut crashed = rec("peer", 2, "curl-retr", 0.0, 0.0, 0.0);
        crashed.ok = false;
        crashed.note = "ftp-bench curl-retr exited with an error".into();
        let records = vec![rec("ours", 0, "churn", 100.0, 0.1, 100.0), crashed];
        let t = table(&records, "ours");
        assert!(
            t.contains("- peer curl-retr ftp-bench round 2: ftp-bench curl-retr exited"),
            "{t}"
        );
    }
}
