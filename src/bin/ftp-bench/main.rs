//! `ftp-bench`: a load generator for any FTP server, and the tabulator of its results.
//!
//! Each workload subcommand drives the server at `--host`:`--port` with our library
//! [`Client`](simple_ftp::Client) (or with curl, for figures that do not depend
//! on our client), checks what it moved, and prints ONE tab-separated line per result on
//! stdout (see `record::Record`):
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
//!
//! The pieces: this file is the command line, the dispatch and the watchdog.
//! - `target`: which server a workload drives (the common flags) and its sessions.
//! - `workloads`: the workloads, one file per family (large transfers, small transfers,
//!   session churn, idle sessions, slow trickles), and what they share (the
//!   concurrent-sessions harness, the checks of what was moved, newcomer latencies).
//! - `meter`: wall-clock and CPU time of a measured part, and the server's memory, from /proc.
//! - `record`: the result line that every command prints and `table` reads back.
//! - `table`: the Markdown table: medians over rounds and the ratios to the best other server.
//! - `tools`: the commands that drive no server: `mkfile` and `limits`.

mod meter;
mod record;
mod table;
mod target;
mod tools;
mod workloads;

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{ensure, Context};
use clap::{Parser, Subcommand};

use record::Record;
use target::{Expected, Many, Target, Upload};
use workloads::{churn, idle, large, s3direct, small, trickle};

/// Load generator for FTP servers; one TSV result line per measurement.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    #[command(flatten)]
    Workload(Box<Workload>),
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

/// The commands that drive a server.
#[derive(Debug, Subcommand)]
enum Workload {
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
        #[command(flatten)]
        upload: Upload,
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
        #[command(flatten)]
        upload: Upload,
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
        /// New clients (connect + login + LIST + QUIT) timed while the sessions are open.
        #[arg(long, default_value_t = 5)]
        probes: usize,
    },
    /// The object store itself, without FTP: one large object PUT and GET, then many
    /// small ones by concurrent clients, straight to its S3 API at --host:--port (the
    /// baseline of the S3 backend's figures; keys from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY).
    S3Direct {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        direct: s3direct::Direct,
        #[command(flatten)]
        many: Many,
    },
    /// Connections trickling a never-ending command line while newcomers are timed
    /// (LIST and a small RETR, checked): worst and median latency, newcomers refused.
    Trickle {
        #[command(flatten)]
        target: Target,
        /// The small file the RETR newcomers download.
        #[command(flatten)]
        expect: Expected,
        #[command(flatten)]
        plan: trickle::Plan,
    },
}

fn main() {
    let cli = Cli::parse();
    // The idle workload holds thousands of sessions, a socket each.
    simple_ftp::limits::raise_open_files_limit();
    if let Err(e) = run(cli.cmd) {
        eprintln!("ftp-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Mkfile { path, size } => {
            let digest = tools::mkfile(&path, size)?;
            println!("{digest}");
            Ok(())
        }
        Cmd::Limits {
            file,
            scratch,
            round,
        } => {
            for record in tools::limits(&file, &scratch, round)? {
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
            print!("{}", table::table(&records, &ours));
            Ok(())
        }
        Cmd::Workload(workload) => run_bounded(*workload),
    }
}

/// Runs a workload on its own thread; past the deadline (plus a grace period for the
/// workload's own checks) prints a failed record and ends the process.
fn run_bounded(cmd: Workload) -> anyhow::Result<()> {
    let target = match &cmd {
        Workload::RetrLarge { target, .. }
        | Workload::StorLarge { target, .. }
        | Workload::CurlRetr { target, .. }
        | Workload::CurlStor { target, .. }
        | Workload::RetrSmall { target, .. }
        | Workload::StorSmall { target, .. }
        | Workload::Churn { target, .. }
        | Workload::Idle { target, .. }
        | Workload::Trickle { target, .. }
        | Workload::S3Direct { target, .. } => target.clone(),
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
fn record_names(cmd: &Workload) -> &'static [(&'static str, &'static str)] {
    match cmd {
        Workload::RetrLarge { .. } => &[("retr-large", "ftp-bench")],
        Workload::CurlRetr { to_file: true, .. } => &[("retr-large", "curl>file")],
        Workload::CurlRetr { .. } => &[("retr-large", "curl")],
        Workload::StorLarge { .. } => &[("stor-large", "ftp-bench")],
        Workload::CurlStor { .. } => &[("stor-large", "curl")],
        Workload::RetrSmall { .. } => &[("retr-small", "ftp-bench")],
        Workload::StorSmall { .. } => &[("stor-small", "ftp-bench")],
        Workload::Churn { .. } => &[("churn", "ftp-bench")],
        Workload::Idle { .. } => &[
            ("idle-rss", "ftp-bench"),
            ("idle-pss", "ftp-bench"),
            ("idle-latency", "ftp-bench"),
        ],
        Workload::S3Direct { .. } => &[
            ("stor-large", "ftp-bench"),
            ("retr-large", "ftp-bench"),
            ("stor-small", "ftp-bench"),
            ("retr-small", "ftp-bench"),
        ],
        Workload::Trickle { .. } => &[
            ("trickle-list", "ftp-bench"),
            ("trickle-list-median", "ftp-bench"),
            ("trickle-retr", "ftp-bench"),
            ("trickle-retr-median", "ftp-bench"),
            ("trickle-refused", "ftp-bench"),
        ],
    }
}

fn workload(cmd: Workload) -> anyhow::Result<Vec<Record>> {
    match cmd {
        Workload::RetrLarge { target, expect } => Ok(vec![large::retr_large(&target, &expect)]),
        Workload::StorLarge { target, upload } => Ok(vec![large::stor_large(
            &target,
            &upload.local_file,
            upload.sha256.as_deref(),
        )?]),
        Workload::CurlRetr {
            target,
            expect,
            curl,
            to_file,
        } => Ok(vec![large::curl_retr(&target, &expect, &curl, to_file)]),
        Workload::CurlStor {
            target,
            upload,
            curl,
        } => Ok(vec![large::curl_stor(
            &target,
            &upload.local_file,
            upload.sha256.as_deref(),
            &curl,
        )?]),
        Workload::RetrSmall {
            target,
            expect,
            many,
        } => Ok(vec![small::retr_small(&target, &expect, many)]),
        Workload::StorSmall {
            target,
            local_file,
            many,
        } => Ok(vec![small::stor_small(&target, &local_file, many)?]),
        Workload::Churn { target, many } => Ok(vec![churn::churn(&target, many)]),
        Workload::Idle {
            target,
            sessions,
            openers,
            probes,
        } => Ok(idle::idle(&target, sessions, openers, probes)),
        Workload::Trickle {
            target,
            expect,
            plan,
        } => trickle::trickle(&target, &expect, &plan),
        Workload::S3Direct {
            target,
            direct,
            many,
        } => s3direct::s3_direct(&target, &direct, many),
    }
}
