//! The FTP client binary: command-line arguments, terminal handling, exit code.
//!
//! The REPL itself lives in `simple_ftp::client::repl`; this file only decides how
//! lines come in and how results go out. On a terminal: a prompt with line editing
//! and history (rustyline) and a progress bar with rate and ETA (indicatif). Piped:
//! no prompt and no progress, one result line per command on stdout, errors on
//! stderr. The exit status is 0 when every command succeeded and 1 otherwise.
//! Ctrl-C during a transfer stops the transfer and returns to the prompt.

use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rustyline::error::ReadlineError;
use simple_ftp::client::repl::{
    Flow, Input, Repl, TlsSettings, Ui, ANONYMOUS_PASSWORD, ANONYMOUS_USER,
};
use simple_ftp::client::Progress;

/// Command-line arguments of `ftp-client`.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Interactive FTP client: OPEN <port>, GET <file>, PUT <file>, CLOSE, QUIT (HELP lists more)"
)]
struct Args {
    /// Local directory that GET writes into and PUT reads from (created if missing).
    #[arg(long, default_value = "client")]
    dir: PathBuf,
    /// User name for OPEN.
    #[arg(long, default_value = ANONYMOUS_USER)]
    user: String,
    /// Password for OPEN (default: "anonymous@" for anonymous; for other users it is
    /// asked for without echo on a terminal).
    #[arg(long)]
    password: Option<String>,
    /// Secure every OPEN with AUTH TLS (explicit FTPS); `OPEN ... tls` does it for one.
    #[arg(long)]
    tls: bool,
    /// Trust the certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Accept any server certificate (insecure: anyone in the middle can read along).
    #[arg(long, conflicts_with = "ca_file")]
    insecure: bool,
    /// Seconds to wait for a connection, a reply or data before giving up.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ftp-client: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the REPL until QUIT or end of input; true when every command succeeded.
fn run(args: Args) -> Result<bool> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create local directory {}", args.dir.display()))?;
    let password = match args.password {
        Some(p) => Some(p),
        None if args.user == ANONYMOUS_USER => Some(ANONYMOUS_PASSWORD.to_owned()),
        None => None,
    };
    let timeout = Duration::from_secs(args.timeout);
    let mut repl = Repl::new(args.dir, args.user, password, timeout);
    repl.set_tls(TlsSettings {
        always: args.tls,
        ca_file: args.ca_file,
        insecure: args.insecure,
    });
    // Ctrl-C during a transfer stops that transfer (ABOR, no partial file left) and
    // the REPL goes on; at any other time it exits, as it always would.
    let interrupt = repl.interrupt();
    ctrlc::set_handler(move || {
        if !interrupt.request() {
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    if io::stdin().is_terminal() {
        let mut ui = TerminalUi {
            bar: None,
            show_progress: io::stderr().is_terminal(),
        };
        interactive(&mut repl, &mut ui)?;
    } else {
        piped(&mut repl, &mut PipedUi)?;
    }
    Ok(repl.failures() == 0)
}

/// Lines from a line editor with history. Ctrl-C clears the line; Ctrl-D quits.
fn interactive(repl: &mut Repl, ui: &mut TerminalUi) -> Result<()> {
    let mut editor = rustyline::DefaultEditor::new().context("cannot set up line editing")?;
    println!(
        "simple-ftp client; local directory {}. HELP lists the commands.",
        repl.dir().display()
    );
    loop {
        match editor.readline(&repl.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    // History is a convenience; failing to record a line is not an error.
                    let _ = editor.add_history_entry(line.as_str());
                }
                if repl.run_line(&line, ui) == Flow::Quit {
                    return Ok(());
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read from the terminal"),
        }
    }
    repl.run(Input::Quit, ui);
    Ok(())
}

/// Lines from a pipe or file, silently. End of input is QUIT.
fn piped(repl: &mut Repl, ui: &mut PipedUi) -> Result<()> {
    let mut stdin = io::stdin().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = stdin
            .read_until(b'\n', &mut buf)
            .context("cannot read standard input")?;
        if n == 0 {
            break;
        }
        if repl.run_line(&String::from_utf8_lossy(&buf), ui) == Flow::Quit {
            return Ok(());
        }
    }
    repl.run(Input::Quit, ui);
    Ok(())
}

/// Plain lines: results on stdout, errors on stderr, no progress.
struct PipedUi;

impl Ui for PipedUi {
    fn result(&mut self, line: &str) {
        println!("{line}");
    }

    fn error(&mut self, message: &str) {
        eprintln!("error: {message}");
    }
}

/// Results and errors as lines, transfers as a progress bar on stderr.
struct TerminalUi {
    bar: Option<ProgressBar>,
    show_progress: bool,
}

const BAR_TEMPLATE: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";
const SPINNER_TEMPLATE: &str = "{msg} {spinner} {bytes} {bytes_per_sec}";

impl TerminalUi {
    fn new_bar(name: &str, total: Option<u64>) -> ProgressBar {
        let (bar, template) = match total {
            Some(len) => (ProgressBar::new(len), BAR_TEMPLATE),
            None => (ProgressBar::new_spinner(), SPINNER_TEMPLATE),
        };
        // The templates are constants; a bad one would only lose the styling.
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(name.to_owned());
        bar
    }
}

impl Ui for TerminalUi {
    fn result(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    fn error(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("error: {message}")),
            None => eprintln!("error: {message}"),
        }
    }

    fn progress(&mut self, name: &str, progress: Progress) {
        if !self.show_progress {
            return;
        }
        let bar = self
            .bar
            .get_or_insert_with(|| TerminalUi::new_bar(name, progress.total));
        bar.set_position(progress.done);
    }

    fn progress_end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn ask_password(&mut self, prompt: &str) -> Option<String> {
        rpassword::prompt_password(prompt).ok()
    }
}
