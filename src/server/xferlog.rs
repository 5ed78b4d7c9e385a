//! The transfer log (`--xferlog FILE`): one line per file transfer that ended, complete
//! or not, in the wu-ftpd `xferlog(5)` format that vsftpd and ProFTPD write, so the
//! tools that read theirs (webalizer, AWStats, xferstats) read ours.
//!
//! A line, fields separated by single spaces:
//!
//! ```text
//! Tue Jun  3 09:05:01 2025 1 127.0.0.1 52428800 /pub/big_file.iso b _ o a lftp@ ftp 0 * c
//! ```
//!
//! current-time (`%a %b %e %H:%M:%S %Y`, in UTC as vsftpd writes it by default), the
//! transfer's time in whole seconds (at least 1, as vsftpd), the client's address, the
//! bytes moved, the file's path as the client sees it (the session's root is `/`),
//! `a`/`b` for TYPE A or I, `_` (no special action), `o` (download) or `i` (upload),
//! the access mode and user: `a` and the password an anonymous user gave as its ID
//! (`*` when none), or `r` and the account's name, then `ftp 0 *` (service, no RFC 931
//! authentication, no authenticated user id) and `c` (complete) or `i` (incomplete).
//! Whitespace and control characters in the path and the user become `_`, as ProFTPD
//! writes them (vsftpd turns spaces into `_` too), so a line always has its fields.
//!
//! Lines go to one writer thread over a bounded channel: a transfer never waits for
//! the disk. When the writer falls behind by [`BACKLOG`] lines (a disk that stalls),
//! further lines are dropped and counted (`ftp_xferlog_lines_total{result="dropped"}`)
//! rather than held; a failed write is counted too. The file is opened once, for
//! appending, when the server starts; `logrotate` with `copytruncate` rotates it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::metrics::{Direction, Metrics, XferlogLine};
use crate::time::Utc;

/// Lines the writer may be behind before new ones are dropped.
pub(crate) const BACKLOG: usize = 10_000;

/// Bytes of lines written with one system call at most, when many wait.
const BATCH: usize = 64 * 1024;

/// The longest user field written (an anonymous ID is whatever the client sent).
const MAX_USER: usize = 64;

/// Who moved the file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who<'a> {
    /// An anonymous login, with the ID string (password) it gave.
    Anonymous(&'a str),
    /// An account, by name.
    Account(&'a str),
}

/// One transfer, as the log tells it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    /// When it ended.
    pub(crate) ended: SystemTime,
    /// How long it took.
    pub(crate) took: Duration,
    /// The client's address.
    pub(crate) remote: IpAddr,
    /// Bytes moved.
    pub(crate) bytes: u64,
    /// The file, as the client sees it.
    pub(crate) path: &'a str,
    /// TYPE A was in force.
    pub(crate) ascii: bool,
    pub(crate) direction: Direction,
    pub(crate) who: Who<'a>,
    /// All of it moved.
    pub(crate) complete: bool,
}

impl Entry<'_> {
    /// The line, without its newline.
    pub(crate) fn line(&self) -> String {
        let (mode, user) = match self.who {
            Who::Anonymous(id) => ('a', id),
            Who::Account(name) => ('r', name),
        };
        let mut user = field(user);
        if user.chars().count() > MAX_USER {
            user = user.chars().take(MAX_USER).collect();
        }
        if user.is_empty() {
            user.push('*');
        }
        format!(
            "{} {} {} {} {} {} _ {} {mode} {user} ftp 0 * {}",
            xferlog_date(self.ended),
            self.took.as_secs().max(1),
            self.remote.to_canonical(),
            self.bytes,
            field(self.path),
            if self.ascii { 'a' } else { 'b' },
            match self.direction {
                Direction::Download => 'o',
                Direction::Upload => 'i',
            },
            if self.complete { 'c' } else { 'i' },
        )
    }
}

/// `text` with each whitespace or control character replaced by `_`.
fn field(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// `Tue Jun  3 09:05:01 2025` (C's `ctime` form, which xferlog(5) names), in UTC.
fn xferlog_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let u = Utc::from_system_time(t);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        // 1970-01-01 was a Thursday.
        DAYS[(days % 7) as usize],
        MONTHS[(u.month as usize).saturating_sub(1) % 12],
        u.day,
        u.hour,
        u.minute,
        u.second,
        u.year
    )
}

/// The sessions' side of the transfer log: hands lines to the writer.
#[derive(Debug)]
pub(crate) struct Xferlog {
    tx: Sender<String>,
    /// Lines dropped so far (the first and every thousandth are logged).
    dropped: AtomicU64,
}

/// The writer's side: the file and the lines to write to it.
#[derive(Debug)]
pub(crate) struct Writer {
    file: File,
    rx: Receiver<String>,
}

/// Opens (or creates, mode 0600 as vsftpd does) `path` for appending.
///
/// # Errors
/// When the file cannot be opened.
pub(crate) fn open(path: &Path) -> io::Result<(Xferlog, Writer)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let (tx, rx) = crossbeam_channel::bounded(BACKLOG);
    let log = Xferlog {
        tx,
        dropped: AtomicU64::new(0),
    };
    Ok((log, Writer { file, rx }))
}

impl Xferlog {
    /// Hands `entry` to the writer without waiting; a line the writer has no room for
    /// is dropped and counted.
    pub(crate) fn record(&self, entry: &Entry<'_>, metrics: &Metrics) {
        let mut line = entry.line();
        line.push('\n');
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                metrics.xferlog_line(XferlogLine::Dropped);
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n % 1000 == 0 {
                    log::warn!(
                        "transfer log: {} lines dropped so far (the writer is {BACKLOG} \
                         lines behind)",
                        n + 1
                    );
                }
            }
        }
    }

    /// A sender the server keeps until its run ends, to tell the writer to finish.
    pub(crate) fn closer(&self) -> Sender<String> {
        self.tx.clone()
    }
}

impl Writer {
    /// Writes lines as they come, until `stop` says so (an empty line, sent when the
    /// server's run ends) and the lines before it are written.
    pub(crate) fn run(mut self, metrics: &Metrics) {
        let mut failures = 0u64;
        let mut batch = String::with_capacity(BATCH);
        while let Ok(line) = self.rx.recv() {
            let mut stop = line.is_empty();
            let mut lines = u64::from(!stop);
            batch.push_str(&line);
            while batch.len() < BATCH && !stop {
                match self.rx.try_recv() {
                    Ok(more) if more.is_empty() => stop = true,
                    Ok(more) => {
                        batch.push_str(&more);
                        lines += 1;
                    }
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                let written = self.file.write_all(batch.as_bytes());
                let what = match &written {
                    Ok(()) => XferlogLine::Written,
                    Err(_) => XferlogLine::Failed,
                };
                for _ in 0..lines {
                    metrics.xferlog_line(what);
                }
                if let Err(e) = written {
                    if failures % 1000 == 0 {
                        log::warn!("transfer log: cannot write: {e}");
                    }
                    failures += 1;
                }
                batch.clear();
            }
            if stop {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates_are_in_the_ctime_form() {
        assert_eq!(xferlog_date(at(0)), "Thu Jan  1 00:00:00 1970");
        // 2025-06-03 09:05:01 UTC, a Tuesday.
        assert_eq!(xferlog_date(at(1_748_941_501)), "Tue Jun  3 09:05:01 2025");
        // 2024-02-29 23:59:59 UTC, a Thursday.
        assert_eq!(xferlog_date(at(1_709_251_199)), "Thu Feb 29 23:59:59 2024");
    }

    #[test]
    fn a_line_has_every_field_and_no_space_inside_one() {
        let entry = Entry {
            ended: at(1_748_941_501),
            took: Duration::from_millis(20),
            remote: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bytes: 1234,
            path: "/pub/a file\twith\nspaces.txt",
            ascii: false,
            direction: Direction::Download,
            who: Who::Anonymous("lftp@"),
            complete: true,
        };
        assert_eq!(
            entry.line(),
            "Tue Jun  3 09:05:01 2025 1 127.0.0.1 1234 /pub/a_file_with_spaces.txt b _ o a lftp@ \
             ftp 0 * c"
        );
        let upload = Entry {
            took: Duration::from_secs(75),
            ascii: true,
            direction: Direction::Upload,
            who: Who::Account("alice"),
            complete: false,
            ..entry
        };
        assert!(upload
            .line()
            .ends_with(" 75 127.0.0.1 1234 /pub/a_file_with_spaces.txt a _ i r alice ftp 0 * i"));
        let nobody = Entry {
            who: Who::Anonymous(""),
            ..entry
        };
        assert!(nobody.line().contains(" o a * ftp 0 * c"));
        // After the date (which has a double space for days below 10), 14 fields.
        assert_eq!(
            entry.line().split(' ').filter(|f| !f.is_empty()).count(),
            18
        );
    }

    #[test]
    fn the_writer_appends_every_line_before_it_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("xferlog");
        std::fs::write(&path, "earlier line\n").expect("write");
        let metrics = Metrics::new().expect("metrics");
        let (log, writer) = open(&path).expect("open");
        let entry = Entry {
            ended: at(0),
            took: Duration::ZERO,
            remote: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bytes: 1,
            path: "/a",
            ascii: false,
            direction: Direction::Upload,
            who: Who::Account("bob"),
            complete: true,
        };
        for _ in 0..100 {
            log.record(&entry, &metrics);
        }
        let closer = log.closer();
        closer.send(String::new()).expect("stop");
        writer.run(&metrics);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 101);
        assert!(text.starts_with("earlier line\n"));
        assert!(text.ends_with(" /a b _ i r bob ftp 0 * c\n"));
        let page = metrics.render(0).expect("render");
        assert!(
            page.contains("ftp_xferlog_lines_total{result=\"written\"} 100"),
            "{page}"
        );
    }
}
