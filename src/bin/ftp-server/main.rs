//! `ftp-server`: serves a directory over FTP.
//!
//! This file only wires things: the command line and the config file ([`config`]) into
//! a [`simple_ftp::server::Config`], a logger to stderr, Ctrl-C / SIGTERM into the
//! server's shutdown handle, SIGHUP into a reload ([`reload`]), and errors into a
//! message and an exit code. `completions` and `man` print what [`manual`] makes.

mod args;
mod config;
mod manual;
mod reload;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use signal_hook::consts::{SIGHUP, SIGTERM};
use simple_ftp::server::accounts::{hash_password, Anonymous};
use simple_ftp::server::{logging, ReloadHandle, Server, ShutdownHandle};
use simple_ftp::time::Utc;

use crate::args::{LogFormat, Tool};
use crate::config::{CommandLine, ConfigFile, Origin, Settings};
use crate::reload::Reloader;

/// Log lines on stderr: time, level, message; or, with `--log-format json`, one
/// JSON object per line (see [`logging::json_line`]).
struct StderrLogger(LogFormat);

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let now = SystemTime::now();
            let line = match self.0 {
                LogFormat::Human => format!(
                    "{} {:<5} {}\n",
                    Utc::from_system_time(now).iso(),
                    record.level(),
                    record.args()
                ),
                LogFormat::Json => logging::json_line(record, now),
            };
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

/// Descriptors a busy session may hold at once besides its control connection and
/// passive listener: the copy of its control connection kept for shutdown while it is
/// on a worker, a data connection and its copy, a file, an upload's temporary file and
/// a directory handle.
const FILES_PER_WORKER: u64 = 7;

/// The descriptors left for sessions and passive listeners, at most, that go to
/// listeners when sessions are short of room: a session waiting for its next command
/// holds one (its control connection), and a listener one, so an attacker who opens
/// sessions that all send PASV cannot starve the others of descriptors.
const LISTENER_SHARE: u64 = 4;

/// Raises the open-files limit; returns how many sessions it allows, at most `wanted`
/// (with a warning when that is fewer and `warn`), and how many passive listeners may
/// be open at once (0: no limit).
pub(crate) fn open_files(workers: usize, wanted: usize, warn: bool) -> (usize, usize) {
    let limit = simple_ftp::limits::raise_open_files_limit();
    if limit.now != limit.before {
        log::debug!(
            "open files limit raised from {} to {}",
            shown(limit.before),
            shown(limit.now)
        );
    }
    let Some(now) = limit.now else {
        return (wanted, 0);
    };
    let busy = (workers as u64).saturating_mul(FILES_PER_WORKER) + 64;
    let room = now.saturating_sub(busy);
    let wanted_files = u64::try_from(wanted).unwrap_or(u64::MAX);
    let sessions = wanted_files.min(room - room / LISTENER_SHARE).max(1);
    let listeners = usize::try_from(room.saturating_sub(sessions))
        .unwrap_or(usize::MAX)
        .max(1);
    let allowed = usize::try_from(sessions).unwrap_or(usize::MAX);
    if allowed < wanted {
        if !warn {
            return (allowed, listeners);
        }
        log::warn!(
            "the open files limit ({now}) allows about {allowed} sessions with {workers} \
             workers: --max-connections lowered from {wanted} to {allowed} (raise `ulimit -Hn`)"
        );
    }
    (allowed.min(wanted), listeners)
}

fn shown(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

fn run() -> anyhow::Result<()> {
    let cli = CommandLine::from_env();
    let file = match &cli.args().command {
        Some(Tool::HashPassword) => return print_password_hash(),
        Some(Tool::Completions { shell }) => {
            let mut stdout = std::io::stdout();
            return manual::completions(*shell, &mut stdout)
                .and_then(|()| stdout.flush())
                .context("cannot write to stdout");
        }
        Some(Tool::Man) => {
            let mut stdout = std::io::stdout();
            return manual::man_page(&mut stdout)
                .and_then(|()| stdout.flush())
                .context("cannot write to stdout");
        }
        Some(Tool::CheckConfig { file }) => {
            if cli.args().config.is_some() {
                bail!("check-config reads the file it is given: leave out --config");
            }
            return check_config(&cli, file);
        }
        None => match &cli.args().config {
            Some(path) => Some(ConfigFile::load(path)?),
            None => None,
        },
    };
    let settings = Settings::combine(&cli, file.as_ref())?;
    static HUMAN: StderrLogger = StderrLogger(LogFormat::Human);
    static JSON: StderrLogger = StderrLogger(LogFormat::Json);
    let logger = match settings.log_format() {
        LogFormat::Human => &HUMAN,
        LogFormat::Json => &JSON,
    };
    log::set_logger(logger).map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    log::set_max_level(settings.log_level());
    if let Some(file) = &file {
        log::info!("settings from {}", file.path().display());
    }

    let mut config = settings.server_config()?;
    if let Some((s3, location)) = settings.s3(&|name| std::env::var(name).ok())? {
        // The bucket is checked now: wrong credentials or an unreachable store stop
        // the start with a clear error, not every session later.
        let backend = simple_ftp::storage::s3::S3::connect(&s3, &location)
            .with_context(|| format!("cannot use {location} at {}", s3.endpoint))?;
        log::info!("storage: {location} at {} ({})", s3.endpoint, s3.region);
        config.storage = Some(std::sync::Arc::new(backend));
    }
    config.pasv_address = settings.pasv_address()?;
    if let (Some(name), Some(ip)) = (&settings.args().pasv_address, config.pasv_address) {
        if name.parse::<std::net::Ipv4Addr>().is_err() {
            log::info!("PASV replies announce {ip} ({name})");
        }
    }
    (config.max_connections, config.max_passive_listeners) =
        open_files(config.workers, config.max_connections, true);
    log::info!(
        "anonymous access: {}{}; {} accounts",
        match config.anonymous {
            Anonymous::Off => "off",
            Anonymous::Read => "read-only",
            Anonymous::Write => "read and write",
        },
        if settings.origin("anonymous") == Origin::Default {
            if config.bind.ip().is_loopback() {
                " (the default on a loopback address)"
            } else {
                " (the default off loopback; --anonymous to change)"
            }
        } else {
            ""
        },
        config.users.len()
    );
    if let Some((sets, bytes)) = config.users.check_memory() {
        // Tests read this line for the size of the pool.
        log::info!(
            "password checks: {sets} at a time, {} KiB of argon2 memory each, allocated once",
            bytes / 1024
        );
    }
    if config.tls.is_some() {
        log::info!(
            "TLS: AUTH TLS offered{}",
            if config.require_tls {
                ", and required for logins and data"
            } else {
                ""
            }
        );
    }
    let workers = config.workers;
    let server = Server::bind(config)?;
    let reloader = Reloader::new(cli, settings, server.reload_handle(), workers);
    handle_signals(server.shutdown_handle(), server.reload_handle(), reloader)?;

    // Scripts and tests read the port from this line, so it goes to stdout, flushed.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", server.local_addr())
        .and_then(|()| match server.implicit_tls_addr() {
            Some(addr) => writeln!(stdout, "implicit FTPS on {addr}"),
            None => Ok(()),
        })
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

/// Stops the server on the first SIGINT or SIGTERM, exits at once on the second.
struct Stopper {
    shutdown: ShutdownHandle,
    reload: ReloadHandle,
    signals: AtomicUsize,
}

impl Stopper {
    fn stop(&self) {
        if self.signals.fetch_add(1, Ordering::SeqCst) == 0 {
            log::info!(
                "shutting down: running transfers have {} s to finish (signal again to stop now)",
                self.reload.current().grace.as_secs()
            );
            self.shutdown.shutdown();
        } else {
            log::warn!("second signal: stopping now");
            std::process::exit(130);
        }
    }
}

/// Ctrl-C (SIGINT) through `ctrlc`, as ever; SIGTERM and SIGHUP through one thread of
/// `signal-hook` that waits for them and acts outside the signal handler (a reload
/// reads files and allocates, which no signal handler may do).
///
/// Why two crates: `ctrlc` runs one handler for every signal it takes, so it cannot
/// tell SIGHUP (reload) from SIGTERM (stop), and with its `termination` feature it
/// would take SIGHUP too (signal-hook chains to a handler installed before it, so a
/// SIGHUP would still stop the server). So `ctrlc` keeps SIGINT only, and
/// signal-hook, the well-kept crate for this, takes the two it can tell apart.
/// rustix offers no way to install a handler without `unsafe`, which this crate
/// forbids; signal-hook's iterator keeps its unsafe inside.
fn handle_signals(
    shutdown: ShutdownHandle,
    reload: ReloadHandle,
    mut reloader: Reloader,
) -> anyhow::Result<()> {
    let stopper = Arc::new(Stopper {
        shutdown,
        reload,
        signals: AtomicUsize::new(0),
    });
    let on_int = Arc::clone(&stopper);
    ctrlc::set_handler(move || on_int.stop()).context("cannot install the signal handler")?;
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM])
        .context("cannot install the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    reloader.reload();
                } else {
                    stopper.stop();
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// `ftp-server check-config FILE`: checks the file with the rest of the command line,
/// loads what it names (users, certificate) as the server would, and prints the
/// effective settings; binds nothing.
fn check_config(cli: &CommandLine, path: &Path) -> anyhow::Result<()> {
    let file = ConfigFile::load(path)?;
    let settings = Settings::combine(cli, Some(&file))?;
    settings.server_config()?;
    settings.s3(&|name| std::env::var(name).ok())?;
    settings.pasv_address()?;
    let mut stdout = std::io::stdout();
    stdout
        .write_all(settings.to_toml()?.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
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
