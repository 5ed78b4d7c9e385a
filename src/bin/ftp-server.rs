//! `ftp-server`: serves a directory over FTP.
//!
//! This file only wires things: command-line arguments into a [`Config`], a logger to
//! stderr, Ctrl-C / SIGTERM into the server's shutdown handle, and errors into a message
//! and an exit code.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use simple_ftp::server::accounts::{hash_password, Anonymous, Users};
use simple_ftp::server::{Config, Server};
use simple_ftp::time::Utc;

/// A small, fast, safe FTP server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Tool>,
    /// Port to listen on (0 picks a free one).
    #[arg(value_name = "PORT")]
    port_arg: Option<u16>,
    /// Port to listen on (0 picks a free one); overrides the positional PORT.
    #[arg(long, short)]
    port: Option<u16>,
    /// Directory to serve as `/` (created if missing).
    #[arg(long, short, default_value = "server")]
    root: PathBuf,
    /// Address to listen on.
    #[arg(long, short, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Worker threads: how many commands and transfers run at once (sessions waiting
    /// for their next command hold none).
    #[arg(long, short, default_value_t = Config::default().workers)]
    workers: usize,
    /// Open sessions past which a newcomer gets 421 (lowered, with a warning, to what
    /// the open-files limit allows).
    #[arg(long, default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// Seconds a connection has to log in before it is closed with 421.
    #[arg(long, default_value_t = Config::default().login_timeout.as_secs())]
    login_timeout: u64,
    /// Seconds without a command before a session is closed with 421.
    #[arg(long, default_value_t = Config::default().idle_timeout.as_secs())]
    idle_timeout: u64,
    /// Seconds a data connection may take to arrive or a transfer may stall.
    #[arg(long, default_value_t = Config::default().data_timeout.as_secs())]
    data_timeout: u64,
    /// Seconds a transfer waits for a file another transfer holds before 450.
    #[arg(long, default_value_t = Config::default().lock_wait.as_secs())]
    lock_wait: u64,
    /// Seconds running transfers may take to finish on shutdown.
    #[arg(long, default_value_t = Config::default().grace.as_secs())]
    grace: u64,
    /// Port range for passive data connections, e.g. 50000-50100.
    #[arg(long, value_parser = parse_range)]
    pasv_ports: Option<RangeInclusive<u16>>,
    /// IPv4 address announced in PASV replies (behind NAT).
    #[arg(long)]
    pasv_address: Option<Ipv4Addr>,
    /// TOML file of accounts (name, argon2 password hash, home, permissions).
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Anonymous access [default: write when bound to a loopback address, else read].
    #[arg(long, value_enum)]
    anonymous: Option<AnonymousArg>,
    /// Sessions one client address may have at once, 0 for no limit [default: no limit
    /// on a loopback address, else 16].
    #[arg(long)]
    max_per_ip: Option<usize>,
    /// Seconds to pause after a failed password.
    #[arg(long, default_value_t = Config::default().failed_login_delay.as_secs_f64())]
    failed_login_delay: f64,
    /// Failed passwords after which the connection is closed.
    #[arg(long, default_value_t = Config::default().max_login_failures)]
    max_login_failures: u32,
    /// PEM certificate chain for AUTH TLS (explicit FTPS).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse logins on plain control connections and clear data connections.
    #[arg(long, requires = "tls_cert")]
    require_tls: bool,
    /// Accept TLS data connections that do not resume the control connection's TLS
    /// session (Python's ftplib never resumes); weaker against data-port hijacking.
    #[arg(long, requires = "tls_cert")]
    tls_without_resumption: bool,
    /// A line of shell run (`sh -c`) after every successful STOR, APPE and STOU, with
    /// FTP_USER, FTP_PATH, FTP_FILE, FTP_SIZE, FTP_CLIENT and FTP_ACTION set.
    #[arg(long, value_name = "CMD")]
    on_upload: Option<String>,
    /// Upload hooks that run at once.
    #[arg(long, default_value_t = Config::default().hook_workers)]
    hook_workers: usize,
    /// Seconds an upload hook may run before its process group is killed.
    #[arg(long, default_value_t = Config::default().hook_timeout.as_secs())]
    hook_timeout: u64,
    /// Log warnings and errors only.
    #[arg(long, short, conflicts_with = "verbose")]
    quiet: bool,
    /// Log every command too (passwords are never logged).
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Prints an argon2 hash of a password for the users file (the password is read
    /// from the terminal without echo, or from standard input).
    HashPassword,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AnonymousArg {
    Off,
    Read,
    Write,
}

fn parse_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = text
        .split_once('-')
        .ok_or_else(|| "expected MIN-MAX".to_owned())?;
    let lo: u16 = lo.trim().parse().map_err(|e| format!("{lo}: {e}"))?;
    let hi: u16 = hi.trim().parse().map_err(|e| format!("{hi}: {e}"))?;
    if lo == 0 || lo > hi {
        return Err("expected 1 <= MIN <= MAX".to_owned());
    }
    Ok(lo..=hi)
}

/// Log lines on stderr: time, level, message.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let now = Utc::from_system_time(SystemTime::now()).iso();
            let line = format!("{now} {:<5} {}\n", record.level(), record.args());
            // A closed stderr must not stop the server.
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ftp-server: {e:#}");
        std::process::exit(1);
    }
}

/// Descriptors a busy session may hold at once: its control connection and the copy
/// kept for shutdown, a passive listener, a data connection and its copy, a file and
/// an upload's temporary file.
const FILES_PER_WORKER: u64 = 7;

/// Descriptors a session waiting for its next command holds: its control connection,
/// the copy kept for shutdown, and perhaps a passive listener.
const FILES_PER_SESSION: u64 = 3;

/// Raises the open-files limit; returns how many sessions it allows, at most `wanted`
/// (with a warning when that is fewer).
fn open_files(workers: usize, wanted: usize) -> usize {
    let limit = simple_ftp::limits::raise_open_files_limit();
    if limit.now != limit.before {
        log::debug!(
            "open files limit raised from {} to {}",
            shown(limit.before),
            shown(limit.now)
        );
    }
    let Some(now) = limit.now else {
        return wanted;
    };
    let busy = (workers as u64).saturating_mul(FILES_PER_WORKER) + 64;
    let allowed = usize::try_from(now.saturating_sub(busy) / FILES_PER_SESSION)
        .unwrap_or(usize::MAX)
        .max(1);
    if allowed < wanted {
        log::warn!(
            "the open files limit ({now}) allows about {allowed} sessions with {workers} \
             workers: --max-connections lowered from {wanted} to {allowed} (raise `ulimit -Hn`)"
        );
        return allowed;
    }
    wanted
}

fn shown(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Tool::HashPassword) = args.command {
        return print_password_hash();
    }
    let level = if args.quiet {
        log::LevelFilter::Warn
    } else if args.verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    log::set_logger(&StderrLogger)
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    log::set_max_level(level);

    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let max_connections = open_files(args.workers, args.max_connections.max(1));
    let port = args.port.or(args.port_arg).unwrap_or(2121);
    let loopback = args.bind.is_loopback();
    let anonymous = match args.anonymous {
        Some(AnonymousArg::Off) => Anonymous::Off,
        Some(AnonymousArg::Read) => Anonymous::Read,
        Some(AnonymousArg::Write) => Anonymous::Write,
        None if loopback => Anonymous::Write,
        None => Anonymous::Read,
    };
    let users = match &args.users {
        Some(path) => Users::load(path)?,
        None => Users::default(),
    };
    log::info!(
        "anonymous access: {}{}; {} accounts",
        match anonymous {
            Anonymous::Off => "off",
            Anonymous::Read => "read-only",
            Anonymous::Write => "read and write",
        },
        if args.anonymous.is_none() {
            if loopback {
                " (the default on a loopback address)"
            } else {
                " (the default off loopback; --anonymous to change)"
            }
        } else {
            ""
        },
        users.len()
    );
    if let Some((sets, bytes)) = users.check_memory() {
        // Tests read this line for the size of the pool.
        log::info!(
            "password checks: {sets} at a time, {} KiB of argon2 memory each, allocated once",
            bytes / 1024
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(simple_ftp::tls::server_config(cert, key)?),
        _ => None,
    };
    if tls.is_some() {
        log::info!(
            "TLS: AUTH TLS offered{}",
            if args.require_tls {
                ", and required for logins and data"
            } else {
                ""
            }
        );
    }
    if args.hook_workers == 0 {
        bail!("--hook-workers must be at least 1");
    }
    if args.hook_timeout == 0 {
        bail!("--hook-timeout must be at least 1 second");
    }
    if args
        .on_upload
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        bail!("--on-upload needs a command");
    }
    if !(0.0..=60.0).contains(&args.failed_login_delay) {
        bail!("--failed-login-delay must be between 0 and 60 seconds");
    }
    let config = Config {
        root: args.root,
        bind: SocketAddr::new(args.bind, port),
        workers: args.workers,
        max_connections,
        login_timeout: Duration::from_secs(args.login_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        data_timeout: Duration::from_secs(args.data_timeout.max(1)),
        lock_wait: Duration::from_secs(args.lock_wait),
        grace: Duration::from_secs(args.grace),
        pasv_ports: args.pasv_ports,
        pasv_address: args.pasv_address,
        users,
        anonymous,
        max_per_ip: args.max_per_ip.unwrap_or(if loopback { 0 } else { 16 }),
        failed_login_delay: Duration::from_secs_f64(args.failed_login_delay),
        max_login_failures: args.max_login_failures.max(1),
        tls,
        require_tls: args.require_tls,
        tls_without_resumption: args.tls_without_resumption,
        on_upload: args.on_upload,
        hook_workers: args.hook_workers,
        hook_timeout: Duration::from_secs(args.hook_timeout),
    };
    let grace = config.grace;
    let server = Server::bind(config)?;

    let handle = server.shutdown_handle();
    let signals = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if signals.fetch_add(1, Ordering::SeqCst) == 0 {
            log::info!(
                "shutting down: running transfers have {} s to finish (signal again to stop now)",
                grace.as_secs()
            );
            handle.shutdown();
        } else {
            log::warn!("second signal: stopping now");
            std::process::exit(130);
        }
    })
    .context("cannot install the signal handler")?;

    // Scripts and tests read the port from this line, so it goes to stdout, flushed.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", server.local_addr())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;

    let report = server.run()?;
    if report.cut_off > 0 {
        log::warn!(
            "{} sessions were cut off at the end of the grace period",
            report.cut_off
        );
    }
    log::info!("stopped");
    Ok(())
}

/// `ftp-server hash-password`: reads a password and prints its argon2 hash.
fn print_password_hash() -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("an empty password is not allowed");
    }
    let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    println!("{hash}");
    Ok(())
}
