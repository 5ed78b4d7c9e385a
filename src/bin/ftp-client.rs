//! The FTP client binary: command-line arguments, terminal handling, exit code.
//!
//! The REPL itself lives in `simple_ftp::client::repl`; this file only decides how
//! lines come in and how results go out. On a terminal: a prompt with line editing
//! and history (rustyline) and a progress bar with rate and ETA (indicatif). Piped:
//! no prompt and no progress, one result line per command on stdout, errors on
//! stderr. The exit status is 0 when every command succeeded and 1 otherwise.
//! Ctrl-C during a transfer stops the transfer and returns to the prompt.
//!
//! One-line use runs the same REPL on lines from elsewhere: an `ftp://` URL becomes
//! OPEN, CD, GET (or PUT for `-u`), QUIT; `-c` splits its argument at `;`; `-f` reads
//! a file. Credentials come from the URL, `--user`, or `.netrc`, in that order.

use std::io::{self, BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};
use simple_ftp::client::repl::{
    complete, human_bytes, parse_netrc, split_commands, BatchPosition, Flow, FtpUrl, Input, Repl,
    TlsSettings, Ui, ANONYMOUS_PASSWORD, ANONYMOUS_USER,
};
use simple_ftp::client::Progress;
use std::cell::RefCell;
use std::rc::Rc;

/// Command-line arguments of `ftp-client`.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Interactive FTP client: OPEN <port>, GET <file>, PUT <file>, CLOSE, QUIT (HELP lists more); or one line: ftp-client ftp://host/dir/file"
)]
struct Args {
    /// `ftp://[user[:password]@]host[:port]/path/file` to download and exit; with
    /// `-u`, the local files to upload.
    #[arg(value_name = "URL | FILE")]
    targets: Vec<String>,
    /// Upload the FILEs into this `ftp://host[:port]/dir/` and exit.
    #[arg(short = 'u', long = "upload", value_name = "URL")]
    upload: Option<String>,
    /// Run these commands, separated by `;`, instead of reading standard input.
    #[arg(short = 'c', long = "commands", value_name = "CMDS", conflicts_with_all = ["file", "upload"])]
    commands: Option<String>,
    /// Run the commands in this file, one a line, instead of reading standard input.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "upload"
    )]
    file: Option<PathBuf>,
    /// End at the first command that fails (piped input, -c and -f).
    #[arg(long)]
    stop_on_error: bool,
    /// Read credentials from this file instead of ~/.netrc.
    #[arg(long, value_name = "FILE")]
    netrc_file: Option<PathBuf>,
    /// Local directory that GET writes into and PUT reads from (created if missing),
    /// also for a URL and the files of -u.
    #[arg(long, default_value = "client")]
    dir: PathBuf,
    /// User name for OPEN (default: from the URL, else ~/.netrc, else anonymous).
    #[arg(long)]
    user: Option<String>,
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
    /// Active data connections: the server connects to us (EPRT/PORT), for servers
    /// and networks that need it; `PASSIVE on` switches back.
    #[arg(long)]
    active: bool,
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

/// Where the lines come from.
enum Source {
    /// The terminal: line editing, prompt, progress.
    Terminal,
    /// A pipe or file on standard input.
    Stdin,
    /// Lines from `-c` or `-f`.
    Lines(Vec<String>),
    /// What a URL asks for; ends at the first failure.
    Url(Vec<Input>),
}

/// Runs the REPL until QUIT or end of input; true when every command succeeded.
fn run(args: Args) -> Result<bool> {
    let (url, source) = source(&args)?;
    let dir = args.dir.clone();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create local directory {}", dir.display()))?;
    let url_user = url.as_ref().and_then(|u| u.user.clone());
    let chosen = url_user.clone().or(args.user.clone());
    let user = chosen.clone().unwrap_or_else(|| ANONYMOUS_USER.to_owned());
    let password = match (url.as_ref().and_then(|u| u.password.clone()), args.password) {
        (Some(p), _) if url_user.is_some() => Some(p),
        (_, Some(p)) => Some(p),
        _ if user == ANONYMOUS_USER => Some(ANONYMOUS_PASSWORD.to_owned()),
        _ => None,
    };
    let timeout = Duration::from_secs(args.timeout);
    let mut repl = Repl::new(dir, user, password, timeout);
    repl.set_passive(!args.active);
    if chosen.is_none() {
        if let Some(entries) = read_netrc(args.netrc_file.as_deref())? {
            repl.use_netrc(entries);
        }
    }
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
    let stop = args.stop_on_error;
    match source {
        Source::Terminal => {
            let mut ui = TerminalUi {
                bar: None,
                show_progress: io::stderr().is_terminal(),
            };
            interactive(&mut repl, &mut ui)?;
        }
        Source::Stdin => piped(&mut repl, &mut PipedUi, stop)?,
        Source::Lines(lines) => {
            let mut lines = lines.into_iter().map(Ok);
            run_lines(&mut repl, &mut PipedUi, stop, || lines.next().transpose())?;
        }
        Source::Url(inputs) => {
            let mut ui = one_line_ui();
            for input in inputs {
                let before = repl.failures();
                if repl.run(input, &mut *ui) == Flow::Quit {
                    break;
                }
                if repl.failures() > before {
                    repl.run(Input::Quit, &mut *ui);
                    break;
                }
            }
        }
    }
    Ok(repl.failures() == 0)
}

/// A URL on a terminal shows its progress bar; piped, plain lines.
fn one_line_ui() -> Box<dyn Ui> {
    if io::stderr().is_terminal() {
        Box::new(TerminalUi {
            bar: None,
            show_progress: true,
        })
    } else {
        Box::new(PipedUi)
    }
}

/// Decides where the lines come from, and the URL if there is one.
fn source(args: &Args) -> Result<(Option<FtpUrl>, Source)> {
    if let Some(url) = &args.upload {
        if args.targets.is_empty() {
            anyhow::bail!("-u {url} needs the local files to upload after it");
        }
        let url = FtpUrl::parse(url)?;
        let inputs = url.inputs(&args.targets)?;
        return Ok((Some(url), Source::Url(inputs)));
    }
    match args.targets.as_slice() {
        [] => {}
        [url] if args.commands.is_none() && args.file.is_none() => {
            let url = FtpUrl::parse(url)?;
            let inputs = url.inputs(&[])?;
            return Ok((Some(url), Source::Url(inputs)));
        }
        _ => anyhow::bail!(
            "one URL to download (or -u URL FILE... to upload), not {:?}",
            args.targets
        ),
    }
    if let Some(commands) = &args.commands {
        return Ok((None, Source::Lines(split_commands(commands))));
    }
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read commands from {}", file.display()))?;
        return Ok((
            None,
            Source::Lines(text.lines().map(str::to_owned).collect()),
        ));
    }
    if io::stdin().is_terminal() {
        Ok((None, Source::Terminal))
    } else {
        Ok((None, Source::Stdin))
    }
}

/// The entries of `--netrc-file`, or of `~/.netrc` when it exists.
fn read_netrc(
    file: Option<&std::path::Path>,
) -> Result<Option<Vec<simple_ftp::client::repl::NetrcEntry>>> {
    let path = match file {
        Some(p) => p.to_owned(),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".netrc"),
            None => return Ok(None),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse_netrc(&text))),
        // Without --netrc-file, a missing ~/.netrc is the usual case.
        Err(e) if file.is_none() && e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// What tab completion draws on: the remote names the REPL listed last, and the
/// local directory (read when Tab is pressed).
#[derive(Default)]
struct Names {
    remote: Vec<String>,
    local_dir: PathBuf,
}

/// The line editor's helper: completion only (commands, remote and local names).
struct FtpHelper(Rc<RefCell<Names>>);

impl Completer for FtpHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let names = self.0.borrow();
        // A local directory that cannot be read just offers no local names.
        let mut local: Vec<String> = std::fs::read_dir(&names.local_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let dir = e.path().is_dir();
                        Some(if dir { name + "/" } else { name })
                    })
                    .collect()
            })
            .unwrap_or_default();
        local.sort();
        Ok(complete(line, pos, &names.remote, &local))
    }
}

impl Hinter for FtpHelper {
    type Hint = String;
}
impl Highlighter for FtpHelper {}
impl Validator for FtpHelper {}
impl Helper for FtpHelper {}

/// Lines from a line editor with history and tab completion. Ctrl-C clears the
/// line; Ctrl-D quits.
fn interactive(repl: &mut Repl, ui: &mut TerminalUi) -> Result<()> {
    let mut editor: Editor<FtpHelper, DefaultHistory> =
        Editor::new().context("cannot set up line editing")?;
    let names = Rc::new(RefCell::new(Names::default()));
    editor.set_helper(Some(FtpHelper(Rc::clone(&names))));
    println!(
        "simple-ftp client; local directory {}. HELP lists the commands.",
        repl.dir().display()
    );
    loop {
        {
            let mut names = names.borrow_mut();
            names.remote = repl.remote_names().to_vec();
            names.local_dir = repl.dir().to_owned();
        }
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
fn piped(repl: &mut Repl, ui: &mut PipedUi, stop_on_error: bool) -> Result<()> {
    let mut stdin = io::stdin().lock();
    let mut buf = Vec::new();
    run_lines(repl, ui, stop_on_error, || {
        buf.clear();
        let n = stdin
            .read_until(b'\n', &mut buf)
            .context("cannot read standard input")?;
        Ok((n > 0).then(|| String::from_utf8_lossy(&buf).into_owned()))
    })
}

/// Runs lines until QUIT, the end (which is QUIT), or with `stop_on_error` the
/// first failure (then QUIT too, so the server is told).
fn run_lines(
    repl: &mut Repl,
    ui: &mut dyn Ui,
    stop_on_error: bool,
    mut next: impl FnMut() -> Result<Option<String>>,
) -> Result<()> {
    while let Some(line) = next()? {
        let before = repl.failures();
        if repl.run_line(&line, ui) == Flow::Quit {
            return Ok(());
        }
        if stop_on_error && repl.failures() > before {
            break;
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

const BAR_TEMPLATE: &str =
    "{prefix}{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";
const SPINNER_TEMPLATE: &str = "{prefix}{msg} {spinner} {bytes} {bytes_per_sec}";

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

    fn batch_progress(&mut self, name: &str, file: BatchPosition, progress: Progress) {
        if !self.show_progress {
            return;
        }
        let bar = self
            .bar
            .get_or_insert_with(|| TerminalUi::new_bar(name, progress.total));
        if progress.done == 0 {
            // Files and bytes of the whole batch, before this file's own bar.
            bar.set_prefix(format!(
                "[file {}/{}, {} before] ",
                file.index + 1,
                file.count,
                human_bytes(file.bytes_before)
            ));
        }
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
