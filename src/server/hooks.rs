//! Upload hooks (`--on-upload CMD`): a line of shell run after every successful upload.
//!
//! A session that has put an upload in place (STOR, APPE, STOU) and sent its `226`
//! hands the facts over to a small pool of hook threads (`--hook-workers`) through a
//! bounded queue ([`QUEUE`]): handing over never waits, so a hook can never delay a
//! reply, and when the queue is full the upload's hook is dropped (logged and counted)
//! rather than held. Each hook runs as `sh -c CMD` in a process group of its own, with
//! the facts in environment variables ([`Upload::env`]), stdin from `/dev/null`, and
//! stdout and stderr on one pipe whose first lines go to the server's log. A hook that
//! outlives `--hook-timeout` has its whole process group killed.
//!
//! What the hooks did is counted in [`HookStats`] (run, failed, timed out, dropped),
//! which the server keeps whether or not a hook is configured.
//!
//! Shutdown: once the sessions are over (or cut off at the end of the grace period),
//! the queue is closed and the hook threads work through what is queued until the
//! same deadline the sessions had; a hook still running then is killed (counted as
//! timed out), and the ones still queued are logged and counted as dropped. So
//! stopping never takes longer than `--grace`, and every upload's hook either ran or
//! is named in the log as not run.

use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, Signal};

/// Uploads whose hooks may wait for a free hook thread; past that, a hook is dropped.
pub const QUEUE: usize = 256;

/// Bytes of a hook's output kept for the log; the rest is read and counted only.
const OUTPUT_KEPT: usize = 8 * 1024;

/// Lines of a hook's output that go to the log, each cut at [`LINE_KEPT`] bytes.
const LINES_LOGGED: usize = 20;

/// The longest line of a hook's output the log shows whole.
const LINE_KEPT: usize = 300;

/// How long a hook thread waits on the output pipe before it looks at the process
/// and the clock again.
const TICK: Duration = Duration::from_millis(100);

/// The facts of one upload that a hook gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// `STOR`, `APPE` or `STOU`.
    pub action: &'static str,
    /// The name the session logged in with.
    pub user: String,
    /// The file's path as the client sees it (`/dir/name`).
    pub path: String,
    /// The file's path on the host, absolute: the root's directory joined with
    /// [`Upload::path`].
    pub file: PathBuf,
    /// The file's size once in place (for APPE, the whole file's).
    pub size: u64,
    /// The client's IP address.
    pub client: IpAddr,
}

impl Upload {
    /// The environment variables the hook gets. `FTP_SHA256` is not among them: no
    /// upload's digest is computed on the way, and the hook can compute it itself.
    pub fn env(&self) -> [(&'static str, std::ffi::OsString); 6] {
        [
            ("FTP_ACTION", self.action.into()),
            ("FTP_USER", self.user.clone().into()),
            ("FTP_PATH", self.path.clone().into()),
            ("FTP_FILE", self.file.clone().into_os_string()),
            ("FTP_SIZE", self.size.to_string().into()),
            ("FTP_CLIENT", self.client.to_string().into()),
        ]
    }

    /// The hook, for the log: `upload hook for STOR /a/b.txt by alice`.
    fn describe(&self) -> String {
        format!(
            "upload hook for {} {} by {}",
            self.action, self.path, self.user
        )
    }
}

/// What the upload hooks did since the server started, for the log and for metrics.
/// Every hook handed over ends in exactly one of: run (and then perhaps failed or
/// timed out), or dropped.
#[derive(Debug, Default)]
pub struct HookStats {
    /// Hooks started (a process was asked for).
    pub run: AtomicU64,
    /// Hooks that could not start, or ended with a non-zero status or by a signal
    /// (timeouts not included).
    pub failed: AtomicU64,
    /// Hooks killed at `--hook-timeout`, or at the end of the shutdown's grace period.
    pub timed_out: AtomicU64,
    /// Hooks never started: the queue was full, or shutdown came first.
    pub dropped: AtomicU64,
}

/// A plain copy of [`HookStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookCounts {
    /// See [`HookStats::run`].
    pub run: u64,
    /// See [`HookStats::failed`].
    pub failed: u64,
    /// See [`HookStats::timed_out`].
    pub timed_out: u64,
    /// See [`HookStats::dropped`].
    pub dropped: u64,
}

impl HookStats {
    /// The counts now.
    pub fn counts(&self) -> HookCounts {
        HookCounts {
            run: self.run.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the hook threads share.
#[derive(Debug)]
struct Inner {
    command: String,
    timeout: Duration,
    stats: Arc<HookStats>,
    /// Set at shutdown: no hook runs past it.
    stop_at: Mutex<Option<Instant>>,
}

/// The pool of hook threads and its queue.
#[derive(Debug)]
pub struct Hooks {
    inner: Arc<Inner>,
    /// `None` once shutdown closed the queue.
    tx: Mutex<Option<Sender<Upload>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Hooks {
    /// Starts `workers` hook threads (at least one) that run `command` for each upload
    /// handed over, at most `timeout` each, with room for `queue` uploads waiting.
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub fn start(
        command: String,
        workers: usize,
        timeout: Duration,
        queue: usize,
        stats: Arc<HookStats>,
    ) -> io::Result<Hooks> {
        let (tx, rx) = crossbeam_channel::bounded(queue.max(1));
        let inner = Arc::new(Inner {
            command,
            timeout,
            stats,
            stop_at: Mutex::new(None),
        });
        let mut threads = Vec::new();
        for n in 0..workers.max(1) {
            let (inner, rx) = (Arc::clone(&inner), rx.clone());
            let thread = thread::Builder::new()
                .name(format!("hook-{n}"))
                .spawn(move || work(&inner, &rx));
            match thread {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    // The threads already started end once the sender is gone.
                    drop(tx);
                    return Err(e);
                }
            }
        }
        Ok(Hooks {
            inner,
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        })
    }

    /// Hands an upload's facts over without waiting: queued for the next free hook
    /// thread, or dropped (logged and counted) when the queue is full or closed.
    pub fn submit(&self, upload: Upload) {
        let sent = match &*self.tx.lock() {
            Some(tx) => tx.try_send(upload),
            None => Err(TrySendError::Disconnected(upload)),
        };
        let (upload, why) = match sent {
            Ok(()) => return,
            Err(TrySendError::Full(upload)) => (upload, "the hook queue is full"),
            Err(TrySendError::Disconnected(upload)) => (upload, "the server is stopping"),
        };
        HookStats::add(&self.inner.stats.dropped);
        log::warn!("{} dropped: {why}", upload.describe());
    }

    /// Closes the queue and waits for the hook threads: queued hooks still run until
    /// `deadline`; then a running hook is killed and the queued ones are dropped.
    pub fn finish(&self, deadline: Instant) {
        *self.inner.stop_at.lock() = Some(deadline);
        drop(self.tx.lock().take());
        let threads = std::mem::take(&mut *self.threads.lock());
        for thread in threads {
            // A hook thread that panicked has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

/// A hook thread: runs the hooks of the uploads that come, until the queue closes.
fn work(inner: &Inner, rx: &Receiver<Upload>) {
    for upload in rx.iter() {
        let stop_at = *inner.stop_at.lock();
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            HookStats::add(&inner.stats.dropped);
            log::warn!("{} dropped: the grace period is over", upload.describe());
            continue;
        }
        run(inner, &upload);
    }
}

/// How one hook ended.
enum Ended {
    Exited(ExitStatus),
    TimedOut { shutdown: bool },
    Lost(io::Error),
}

/// Runs the hook for `upload` to its end (or its timeout), logs how it went and its
/// first lines of output, and counts it.
fn run(inner: &Inner, upload: &Upload) {
    HookStats::add(&inner.stats.run);
    let what = upload.describe();
    let started = Instant::now();
    let (child, output) = match spawn(&inner.command, upload) {
        Ok(spawned) => spawned,
        Err(e) => {
            HookStats::add(&inner.stats.failed);
            log::warn!("{what}: cannot start sh: {e}");
            return;
        }
    };
    let (ended, output) = supervise(inner, child, output, started + inner.timeout);
    let secs = started.elapsed().as_secs_f64();
    for line in output.lines() {
        log::info!("{what}: {line}");
    }
    match ended {
        Ended::Exited(status) if status.success() => {
            log::info!("{what}: done in {secs:.2} s");
        }
        Ended::Exited(status) => {
            HookStats::add(&inner.stats.failed);
            let how = match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(signal)) => format!("killed by signal {signal}"),
                (None, None) => status.to_string(),
            };
            log::warn!("{what}: failed after {secs:.2} s: {how}");
        }
        Ended::TimedOut { shutdown } => {
            HookStats::add(&inner.stats.timed_out);
            let why = if shutdown {
                "the grace period of the shutdown is over".to_owned()
            } else {
                format!("timed out after {} s", inner.timeout.as_secs_f64())
            };
            log::warn!("{what}: {why}: its process group was killed");
        }
        Ended::Lost(e) => {
            HookStats::add(&inner.stats.failed);
            log::warn!("{what}: lost track of the hook after {secs:.2} s: {e}");
        }
    }
}

/// Starts `sh -c command` in a process group of its own, with the upload's facts in
/// its environment, stdin from `/dev/null`, stdout and stderr into one pipe whose
/// reading end comes back with the child.
fn spawn(command: &str, upload: &Upload) -> io::Result<(Child, OwnedFd)> {
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let writer_too = writer.try_clone()?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .envs(upload.env())
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer_too))
        .process_group(0);
    let child = cmd.spawn()?;
    // Our copies of the writing end go with the command: the pipe ends when the
    // hook (and whatever it started) has closed it.
    drop(cmd);
    Ok((child, reader))
}

/// Waits for `child` until `limit` (or the shutdown's deadline, when that comes
/// first), reading its output meanwhile; kills its process group when time is up.
fn supervise(inner: &Inner, mut child: Child, reader: OwnedFd, limit: Instant) -> (Ended, Output) {
    let mut output = Output::default();
    let mut reader = Some(reader);
    let ended = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ended::Exited(status),
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                break Ended::Lost(e);
            }
        }
        let stop_at = *inner.stop_at.lock();
        let shutdown = stop_at.is_some_and(|at| at < limit);
        let until = stop_at.map_or(limit, |at| at.min(limit));
        let now = Instant::now();
        if now >= until {
            kill_group(&mut child);
            break Ended::TimedOut { shutdown };
        }
        let wait = (until - now).min(TICK);
        match &reader {
            Some(fd) => {
                if output.read_from(fd, wait) == Read::End {
                    reader = None; // the end of the output; the process may go on
                }
            }
            // Output over: only the process is left to watch, a little more often.
            None => thread::sleep(wait.min(TICK / 5)),
        }
    };
    // Whatever the hook wrote just before it ended, without waiting for more (a
    // process it left behind may hold the pipe open).
    if let Some(fd) = &reader {
        while output.has_more_room() && output.read_from(fd, Duration::ZERO) == Read::Data {}
    }
    (ended, output)
}

/// Kills the hook's process group (the hook and everything it started), then reaps
/// the hook.
fn kill_group(child: &mut Child) {
    // The group was made for this child (`process_group(0)`), so its id is the
    // child's. It may be gone already: nothing to kill then.
    let _ = rustix::process::kill_process_group(Pid::from_child(child), Signal::KILL);
    let _ = child.wait();
}

/// What one look at the output pipe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Bytes, now read.
    Data,
    /// Nothing within the wait.
    Idle,
    /// The end of the output (or a pipe that failed).
    End,
}

/// A hook's output: the first [`OUTPUT_KEPT`] bytes, and a count of the rest.
#[derive(Debug, Default)]
struct Output {
    kept: Vec<u8>,
    skipped: u64,
}

impl Output {
    /// Waits up to `wait` for output on `fd` and reads what is there (one read, which
    /// does not block once `poll` said the pipe is readable).
    fn read_from(&mut self, fd: &OwnedFd, wait: Duration) -> Read {
        use rustix::io::Errno;
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let timeout = rustix::event::Timespec::try_from(wait).ok();
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(Errno::INTR) => return Read::Idle,
            Ok(_) => {}
            Err(_) => return Read::End,
        }
        let mut buf = [0u8; 4096];
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => Read::End,
            Ok(n) => {
                let room = OUTPUT_KEPT.saturating_sub(self.kept.len()).min(n);
                self.kept.extend_from_slice(&buf[..room]);
                self.skipped += (n - room) as u64;
                Read::Data
            }
            Err(Errno::INTR | Errno::AGAIN) => Read::Idle,
            Err(_) => Read::End,
        }
    }

    /// Whether more output would still be kept.
    fn has_more_room(&self) -> bool {
        self.kept.len() < OUTPUT_KEPT
    }

    /// The lines for the log: the first [`LINES_LOGGED`], each cut at [`LINE_KEPT`]
    /// bytes (with control characters shown escaped), and a last line saying how much
    /// was left out.
    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.kept);
        let all: Vec<&str> = text.lines().collect();
        let mut lines: Vec<String> = all
            .iter()
            .take(LINES_LOGGED)
            .map(|line| {
                let mut shown = String::new();
                for c in line.chars() {
                    if shown.len() >= LINE_KEPT {
                        shown.push_str(" [...]");
                        break;
                    }
                    if c.is_control() {
                        let _ = write!(shown, "{}", c.escape_default());
                    } else {
                        shown.push(c);
                    }
                }
                shown
            })
            .collect();
        let more_lines = all.len().saturating_sub(LINES_LOGGED);
        if more_lines > 0 || self.skipped > 0 {
            let mut note = String::from("(output cut:");
            if more_lines > 0 {
                let _ = write!(note, " {more_lines} more lines");
            }
            if self.skipped > 0 {
                let _ = write!(note, " {} more bytes", self.skipped);
            }
            note.push_str(" not logged)");
            lines.push(note);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn upload(name: &str) -> Upload {
        Upload {
            action: "STOR",
            user: "anonymous".into(),
            path: format!("/{name}"),
            file: PathBuf::from("/nonexistent").join(name),
            size: 5,
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// Polls `f` for up to 30 s.
    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_full_queue_drops_hooks_and_counts_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = dir.path().join("gate");
        // The one hook thread waits for the gate; the queue holds one more upload.
        let command = format!(
            "while [ ! -e '{}' ]; do sleep 0.05; done; echo \"$FTP_PATH\" >> '{}'",
            gate.display(),
            dir.path().join("ran").display()
        );
        let stats = Arc::new(HookStats::default());
        let hooks = Hooks::start(command, 1, Duration::from_secs(60), 1, Arc::clone(&stats))
            .expect("start");
        hooks.submit(upload("first"));
        // The first is taken by the thread, which then waits at the gate.
        assert!(eventually(|| stats.counts().run == 1));
        hooks.submit(upload("second"));
        hooks.submit(upload("third"));
        hooks.submit(upload("fourth"));
        assert_eq!(stats.counts().dropped, 2);
        std::fs::write(&gate, "").expect("open the gate");
        hooks.finish(Instant::now() + Duration::from_secs(60));
        let ran = std::fs::read_to_string(dir.path().join("ran")).expect("ran");
        assert_eq!(ran, "/first\n/second\n");
        assert_eq!(
            stats.counts(),
            HookCounts {
                run: 2,
                failed: 0,
                timed_out: 0,
                dropped: 2
            }
        );
        // After finish, a hook handed over is dropped.
        hooks.submit(upload("late"));
        assert_eq!(stats.counts().dropped, 3);
    }

    #[test]
    fn shutdown_kills_the_running_hook_and_drops_the_queued_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        // The hook starts a child of its own that would outlive it: the kill takes the
        // whole process group.
        let command = format!("sleep 300 & echo $! > '{}'; wait", pid_file.display());
        let stats = Arc::new(HookStats::default());
        let hooks = Hooks::start(command, 1, Duration::from_secs(300), 8, Arc::clone(&stats))
            .expect("start");
        hooks.submit(upload("running"));
        hooks.submit(upload("queued"));
        assert!(eventually(
            || std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim().parse::<i32>().is_ok())
        ));
        let started = Instant::now();
        hooks.finish(Instant::now() + Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(
            stats.counts(),
            HookCounts {
                run: 1,
                failed: 0,
                timed_out: 1,
                dropped: 1
            }
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("a pid");
        // The sleep the hook started is gone too (a zombie until init reaps it, so
        // look at its state rather than whether the pid exists).
        assert!(eventually(|| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.contains(") Z "))
        }));
    }

    #[test]
    fn output_is_cut_to_its_first_lines() {
        let mut output = Output::default();
        let text: String = (0..30).map(|n| format!("line {n}\n")).collect();
        output.kept = text.into_bytes();
        output.kept.extend_from_slice(&[b'x'; 400]);
        output.kept.extend_from_slice(b"\n\x1b[31mred\n");
        output.skipped = 7;
        let lines = output.lines();
        assert_eq!(lines.len(), LINES_LOGGED + 1);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[19], "line 19");
        assert_eq!(
            lines[20],
            "(output cut: 12 more lines 7 more bytes not logged)"
        );
        let mut long = Output {
            kept: vec![b'y'; 400],
            skipped: 0,
        };
        long.kept.extend_from_slice(b"\n\x1b[31mred");
        let lines = long.lines();
        assert_eq!(lines[0].len(), LINE_KEPT + " [...]".len());
        assert_eq!(lines[1], "\\u{1b}[31mred");
    }
}
