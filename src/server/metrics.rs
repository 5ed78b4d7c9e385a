//! The server's numbers for a monitoring system, and the small HTTP server that
//! serves them (`--metrics ADDR:PORT`): Prometheus text at `/metrics`, and `/healthz`
//! (`200` while the server accepts connections, `503` once it shuts down).
//!
//! [`Metrics`] is owned by the server's shared state and always counts, served or not
//! (an atomic add per event). The session code calls its small methods with our own
//! kinds ([`Direction`], [`TransferResult`], ...); no Prometheus type leaves this
//! module. Every label has a fixed set of values, all made at start (so each series
//! exists from the first scrape, at 0): a command's label is its verb when the verb
//! is one the server knows, else `other`; a user name or a path is never a label.
//!
//! The registry and the text encoding come from the `prometheus` crate (TiKV's): its
//! encoder writes the Prometheus text format 0.0.4, which every Prometheus server and
//! `promtool check metrics` read as it is. (`prometheus-client` writes only
//! OpenMetrics text, whose counters are named without `_total` in their `# TYPE`
//! line: `promtool check metrics` of Debian 12 rejects every such counter.)
//!
//! The HTTP side is one thread of ours, not a crate: a scrape is one `GET` a few
//! times a minute, and the crates that serve HTTP without an async runtime
//! (`tiny_http`) start a thread per connection with no bound and no timeout, which a
//! few slow clients could grow without limit. Here one thread takes one connection
//! at a time: the request head must arrive within [`http::REQUEST_TIME`] and fit in
//! [`http::MAX_REQUEST`] bytes, the answer (`Connection: close`) must be taken within the
//! same time, and the thread ends when the server does.

mod http;

use std::collections::HashMap;
use std::time::Duration;

pub(crate) use self::http::{serve, Source};
use super::hooks::HookCounts;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The commands the `ftp_commands_total` label names; any other verb is `other`.
/// The aliases (`XPWD`, ...) count as the command they stand for.
const COMMANDS: [&str; 44] = [
    "ABOR", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT", "HASH",
    "HELP", "LIST", "MDTM", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP", "OPTS", "PASS", "PASV",
    "PBSZ", "PORT", "PROT", "PWD", "QUIT", "REIN", "REST", "RETR", "RMD", "RNFR", "RNTO", "SITE",
    "SIZE", "STAT", "STOR", "STOU", "STRU", "SYST", "TYPE", "USER",
];

/// Verbs that are other names of a command (RFC 775's `X` commands).
const ALIASES: [(&str, &str); 5] = [
    ("XCUP", "CDUP"),
    ("XCWD", "CWD"),
    ("XMKD", "MKD"),
    ("XPWD", "PWD"),
    ("XRMD", "RMD"),
];

/// Why a session ended, as `ftp_sessions_ended_total` labels it.
pub(crate) const END_REASONS: [&str; 10] = [
    "quit",
    "client_closed",
    "idle_timeout",
    "login_timeout",
    "slow_line",
    "long_lines",
    "shutdown",
    "lost",
    "login_failures",
    "tls_handshake",
];

/// The upper bounds of the transfer-duration buckets, in seconds: from a small file
/// on loopback to a large one over a slow link.
const TRANSFER_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0,
];

/// The upper bounds of the lock-wait buckets, in seconds (the wait is bounded by
/// `--lock-wait`, 10 s by default).
const LOCK_BUCKETS: [f64; 8] = [0.0001, 0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0];

/// What became of a connection the acceptor took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionResult {
    /// It became a session (greeted with `220`).
    Accepted,
    /// `421`: `--max-connections` sessions were open.
    TooMany,
    /// `421`: its address had `--max-per-ip` sessions open.
    TooManyPerIp,
    /// `421`: the server was shutting down.
    ShuttingDown,
    /// Dropped without a reply: not from a trusted proxy, under
    /// `--proxy-protocol required`.
    Untrusted,
    /// Closed without a reply: its PROXY header was malformed, missing, truncated or
    /// late.
    ProxyHeader,
}

impl SessionResult {
    const ALL: [SessionResult; 6] = [
        SessionResult::Accepted,
        SessionResult::TooMany,
        SessionResult::TooManyPerIp,
        SessionResult::ShuttingDown,
        SessionResult::Untrusted,
        SessionResult::ProxyHeader,
    ];

    fn label(self) -> &'static str {
        match self {
            SessionResult::Accepted => "accepted",
            SessionResult::TooMany => "too_many",
            SessionResult::TooManyPerIp => "too_many_per_ip",
            SessionResult::ShuttingDown => "shutting_down",
            SessionResult::Untrusted => "untrusted",
            SessionResult::ProxyHeader => "proxy_header",
        }
    }
}

/// Which way a file moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// RETR: from the server to the client.
    Download,
    /// STOR, APPE, STOU: from the client to the server.
    Upload,
}

impl Direction {
    const ALL: [Direction; 2] = [Direction::Download, Direction::Upload];

    fn label(self) -> &'static str {
        match self {
            Direction::Download => "download",
            Direction::Upload => "upload",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransferResult {
    /// All of it moved (`226`).
    Complete,
    /// It failed after its `150` (`425`, `426`, `451`, ...).
    Failed,
    /// The client stopped it with ABOR.
    Aborted,
}

impl TransferResult {
    const ALL: [TransferResult; 3] = [
        TransferResult::Complete,
        TransferResult::Failed,
        TransferResult::Aborted,
    ];

    fn label(self) -> &'static str {
        match self {
            TransferResult::Complete => "complete",
            TransferResult::Failed => "failed",
            TransferResult::Aborted => "aborted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which lock of a file was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Shared: a download or a HASH.
    Read,
    /// Exclusive: an upload, DELE, a rename.
    Write,
}

impl LockMode {
    const ALL: [LockMode; 2] = [LockMode::Read, LockMode::Write];

    fn label(self) -> &'static str {
        match self {
            LockMode::Read => "read",
            LockMode::Write => "write",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which connection a TLS handshake was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsChannel {
    /// The control connection, after AUTH TLS.
    Control,
    /// A data connection under PROT P.
    Data,
}

impl TlsChannel {
    const ALL: [TlsChannel; 2] = [TlsChannel::Control, TlsChannel::Data];

    fn label(self) -> &'static str {
        match self {
            TlsChannel::Control => "control",
            TlsChannel::Data => "data",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What became of a line for the transfer log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XferlogLine {
    /// Written to the file.
    Written,
    /// Left out: the writer was that far behind (a slow disk), and the transfer did not wait.
    Dropped,
    /// The write failed (a full disk, for one).
    Failed,
}

impl XferlogLine {
    const ALL: [XferlogLine; 3] = [
        XferlogLine::Written,
        XferlogLine::Dropped,
        XferlogLine::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            XferlogLine::Written => "written",
            XferlogLine::Dropped => "dropped",
            XferlogLine::Failed => "failed",
        }
    }
}

/// Counts the replies a control connection sends, by class (`1xx` to `5xx`). Cheap to
/// clone: each clone counts into the same series.
#[derive(Clone)]
pub(crate) struct Replies {
    by_class: [IntCounter; 5],
}

impl Replies {
    /// Counts the reply that `text` (whole CRLF-ended lines, as written to the
    /// connection) ends, if it ends one: a reply is counted at its last line, the one
    /// whose code is followed by a space (RFC 959 §4.2), so a multi-line reply written
    /// in pieces counts once.
    pub(crate) fn count(&self, text: &str) {
        let last = text
            .trim_end_matches(['\r', '\n'])
            .rsplit('\n')
            .next()
            .unwrap_or("");
        let bytes = last.as_bytes();
        let is_final = bytes.len() >= 3
            && bytes[..3].iter().all(u8::is_ascii_digit)
            && bytes.get(3).is_none_or(|&b| b == b' ');
        if !is_final {
            return;
        }
        if let Some(counter) = usize::from(bytes[0] - b'0')
            .checked_sub(1)
            .and_then(|class| self.by_class.get(class))
        {
            counter.inc();
        }
    }
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Replies")
    }
}

/// A held place in a gauge: the gauge is one higher while it lives.
pub(crate) struct Held(IntGauge);

impl Held {
    fn new(gauge: &IntGauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every metric of the server, registered in one registry.
pub(crate) struct Metrics {
    registry: Registry,
    connected: IntGauge,
    logged_in: IntGauge,
    parked: IntGauge,
    workers: IntGauge,
    workers_busy: IntGauge,
    sessions: Vec<(SessionResult, IntCounter)>,
    ended: HashMap<&'static str, IntCounter>,
    /// `[anonymous, account]` x `[success, failure]`.
    logins: [[IntCounter; 2]; 2],
    commands: HashMap<&'static str, IntCounter>,
    other_commands: IntCounter,
    replies: Replies,
    /// Per direction, per result.
    transfers: [[IntCounter; 3]; 2],
    bytes: [IntCounter; 2],
    durations: [Histogram; 2],
    lock_waits: [Histogram; 2],
    lock_timeouts: [IntCounter; 2],
    /// Per channel: `[success, failure]`.
    handshakes: [[IntCounter; 2]; 2],
    xferlog: Vec<(XferlogLine, IntCounter)>,
    /// `[run, failed, timed_out, dropped]`, as the hooks' own counts say.
    hooks: [IntCounter; 4],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// A registry error (it can only come from a metric name or label set of ours,
/// which the tests check).
pub(crate) type MetricsError = prometheus::Error;

impl Metrics {
    /// Registers every metric, at 0.
    ///
    /// # Errors
    /// When a name or a label is not valid for Prometheus (a mistake in this module).
    pub(crate) fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| -> Result<IntGauge, MetricsError> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, MetricsError>(c)
        };
        let histograms = |name: &str, help: &str, label: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            let h = HistogramVec::new(opts, &[label])?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, MetricsError>(h)
        };

        let connected = gauge(
            "ftp_sessions_connected",
            "Control connections open now (logged in or not, parked or served).",
        )?;
        let logged_in = gauge("ftp_sessions_logged_in", "Sessions logged in now.")?;
        let parked = gauge(
            "ftp_sessions_parked",
            "Sessions waiting for their next command now, held by the parker (no worker).",
        )?;
        let workers = gauge("ftp_workers", "Worker threads in the pool (--workers).")?;
        let workers_busy = gauge(
            "ftp_workers_busy",
            "Worker threads serving a session now (a command, a transfer, or the short \
             wait for a next command before parking).",
        )?;

        let sessions_vec = counters(
            "ftp_sessions_total",
            "Connections the server took, by what became of them: accepted as a session, \
             or refused with 421 (too_many, too_many_per_ip, shutting_down), or closed \
             without a reply under --proxy-protocol (untrusted, proxy_header).",
            &["result"],
        )?;
        let sessions = SessionResult::ALL
            .iter()
            .map(|r| (*r, sessions_vec.with_label_values(&[r.label()])))
            .collect();
        let ended_vec = counters(
            "ftp_sessions_ended_total",
            "Sessions that ended, by why.",
            &["reason"],
        )?;
        let ended = END_REASONS
            .iter()
            .map(|r| (*r, ended_vec.with_label_values(&[*r])))
            .collect();

        let logins_vec = counters(
            "ftp_logins_total",
            "PASS commands that checked a login, by kind (anonymous or account) and result.",
            &["kind", "result"],
        )?;
        let login = |kind: &str, result: &str| logins_vec.with_label_values(&[kind, result]);
        let logins = [
            [login("anonymous", "success"), login("anonymous", "failure")],
            [login("account", "success"), login("account", "failure")],
        ];

        let commands_vec = counters(
            "ftp_commands_total",
            "Command lines received, by command (verbs the server does not know: other).",
            &["command"],
        )?;
        let commands = COMMANDS
            .iter()
            .map(|c| (*c, commands_vec.with_label_values(&[*c])))
            .collect();
        let other_commands = commands_vec.with_label_values(&["other"]);

        let replies_vec = counters(
            "ftp_replies_total",
            "Replies sent on control connections, by class (1xx to 5xx).",
            &["class"],
        )?;
        let class = |c: &str| replies_vec.with_label_values(&[c]);
        let replies = Replies {
            by_class: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
        };

        let transfers_vec = counters(
            "ftp_transfers_total",
            "File transfers that ended after their 150, by direction and result (listings \
             are not counted here).",
            &["direction", "result"],
        )?;
        let transfers = Direction::ALL.map(|d| {
            TransferResult::ALL.map(|r| transfers_vec.with_label_values(&[d.label(), r.label()]))
        });
        let bytes_vec = counters(
            "ftp_transfer_bytes_total",
            "File bytes moved by transfers (complete or not), by direction, counted when \
             each transfer ends.",
            &["direction"],
        )?;
        let bytes = Direction::ALL.map(|d| bytes_vec.with_label_values(&[d.label()]));
        let durations_vec = histograms(
            "ftp_transfer_duration_seconds",
            "How long complete file transfers took, from their 150 to their end, by direction.",
            "direction",
            &TRANSFER_BUCKETS,
        )?;
        let durations = Direction::ALL.map(|d| durations_vec.with_label_values(&[d.label()]));

        let lock_vec = histograms(
            "ftp_lock_wait_seconds",
            "How long taking a file's lock took (shared for downloads, exclusive for \
             uploads, deletes and renames), by mode; timed-out waits included.",
            "mode",
            &LOCK_BUCKETS,
        )?;
        let lock_waits = LockMode::ALL.map(|m| lock_vec.with_label_values(&[m.label()]));
        let timeouts_vec = counters(
            "ftp_lock_timeouts_total",
            "Lock waits that gave up after --lock-wait (the client got 450), by mode.",
            &["mode"],
        )?;
        let lock_timeouts = LockMode::ALL.map(|m| timeouts_vec.with_label_values(&[m.label()]));

        let tls_vec = counters(
            "ftp_tls_handshakes_total",
            "TLS handshakes, by connection (control after AUTH TLS, data under PROT P) and \
             result.",
            &["channel", "result"],
        )?;
        let handshakes = TlsChannel::ALL
            .map(|c| ["success", "failure"].map(|r| tls_vec.with_label_values(&[c.label(), r])));

        let xferlog_vec = counters(
            "ftp_xferlog_lines_total",
            "Lines for the transfer log (--xferlog), by what became of them.",
            &["result"],
        )?;
        let xferlog = XferlogLine::ALL
            .iter()
            .map(|r| (*r, xferlog_vec.with_label_values(&[r.label()])))
            .collect();

        let hooks_vec = counters(
            "ftp_upload_hooks_total",
            "Upload hooks (--on-upload), by what became of them: run (started), of those \
             failed or timed_out, or dropped (never started: the queue was full, or shutdown).",
            &["result"],
        )?;
        let hooks =
            ["run", "failed", "timed_out", "dropped"].map(|r| hooks_vec.with_label_values(&[r]));

        Ok(Metrics {
            registry,
            connected,
            logged_in,
            parked,
            workers,
            workers_busy,
            sessions,
            ended,
            logins,
            commands,
            other_commands,
            replies,
            transfers,
            bytes,
            durations,
            lock_waits,
            lock_timeouts,
            handshakes,
            xferlog,
            hooks,
        })
    }

    /// Counts a connection the acceptor took, and what became of it.
    pub(crate) fn session(&self, result: SessionResult) {
        if let Some((_, c)) = self.sessions.iter().find(|(r, _)| *r == result) {
            c.inc();
        }
    }

    /// Counts a session's end; `reason` is one of [`END_REASONS`].
    pub(crate) fn session_ended(&self, reason: &str) {
        if let Some(c) = self.ended.get(reason) {
            c.inc();
        }
    }

    /// Counts a checked login.
    pub(crate) fn login(&self, anonymous: bool, success: bool) {
        self.logins[usize::from(!anonymous)][usize::from(!success)].inc();
    }

    /// A place in the logged-in gauge, held while the session is logged in.
    pub(crate) fn logged_in(&self) -> Held {
        Held::new(&self.logged_in)
    }

    /// A place in the busy-workers gauge, held while a worker serves a session.
    pub(crate) fn worker_busy(&self) -> Held {
        Held::new(&self.workers_busy)
    }

    /// The pool's size.
    pub(crate) fn set_workers(&self, n: usize) {
        self.workers.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// How many sessions are parked now.
    pub(crate) fn set_parked(&self, n: usize) {
        self.parked.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a command line by its verb, as the client wrote it (any case; an alias
    /// counts as its command; a verb the server does not know counts as `other`).
    pub(crate) fn command(&self, line: &[u8]) {
        let verb = line
            .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
            .next()
            .unwrap_or(&[]);
        let mut upper = [0u8; 4];
        let counter = upper
            .get_mut(..verb.len())
            .and_then(|buf| {
                buf.copy_from_slice(verb);
                buf.make_ascii_uppercase();
                std::str::from_utf8(buf).ok()
            })
            .map(|v| {
                ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == v)
                    .map_or(v, |(_, to)| *to)
            })
            .and_then(|v| self.commands.get(v))
            .unwrap_or(&self.other_commands);
        counter.inc();
    }

    /// A handle that counts replies, for a control connection.
    pub(crate) fn replies(&self) -> Replies {
        self.replies.clone()
    }

    /// Counts a file transfer that ended: `bytes` moved in `took` (the duration is
    /// recorded for complete ones).
    pub(crate) fn transfer(
        &self,
        direction: Direction,
        result: TransferResult,
        bytes: u64,
        took: Duration,
    ) {
        let d = direction.index();
        self.transfers[d][result.index()].inc();
        self.bytes[d].inc_by(bytes);
        if result == TransferResult::Complete {
            self.durations[d].observe(took.as_secs_f64());
        }
    }

    /// Records a wait for a file's lock: how long it took, and whether it got the lock.
    pub(crate) fn lock_wait(&self, mode: LockMode, waited: Duration, got: bool) {
        self.lock_waits[mode.index()].observe(waited.as_secs_f64());
        if !got {
            self.lock_timeouts[mode.index()].inc();
        }
    }

    /// Counts a TLS handshake.
    pub(crate) fn tls_handshake(&self, channel: TlsChannel, success: bool) {
        self.handshakes[channel.index()][usize::from(!success)].inc();
    }

    /// Counts a line for the transfer log.
    pub(crate) fn xferlog_line(&self, what: XferlogLine) {
        if let Some((_, c)) = self.xferlog.iter().find(|(r, _)| *r == what) {
            c.inc();
        }
    }

    /// Brings the upload hooks' counters up to `counts` (the hooks keep their own,
    /// which only grow).
    pub(crate) fn sync_hooks(&self, counts: &HookCounts) {
        let now = [counts.run, counts.failed, counts.timed_out, counts.dropped];
        for (counter, now) in self.hooks.iter().zip(now) {
            counter.inc_by(now.saturating_sub(counter.get()));
        }
    }

    /// The page `/metrics` serves, with `connected` control connections open now.
    ///
    /// # Errors
    /// When the encoder refuses a metric family (a mistake in this module).
    pub(crate) fn render(&self, connected: usize) -> Result<String, MetricsError> {
        self.connected
            .set(i64::try_from(connected).unwrap_or(i64::MAX));
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(page: &str, series: &str) -> Option<f64> {
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_series_is_there_from_the_start() {
        let m = Metrics::new().expect("metrics");
        let page = m.render(0).expect("render");
        assert_eq!(value(&page, "ftp_sessions_connected"), Some(0.0));
        assert_eq!(
            value(&page, r#"ftp_commands_total{command="RETR"}"#),
            Some(0.0)
        );
        assert_eq!(
            value(&page, r#"ftp_commands_total{command="other"}"#),
            Some(0.0)
        );
        assert_eq!(
            value(
                &page,
                r#"ftp_transfers_total{direction="upload",result="aborted"}"#
            ),
            Some(0.0)
        );
        assert_eq!(value(&page, r#"ftp_replies_total{class="5xx"}"#), Some(0.0));
        assert_eq!(
            value(
                &page,
                r#"ftp_sessions_ended_total{reason="login_failures"}"#
            ),
            Some(0.0)
        );
    }

    #[test]
    fn commands_count_by_known_verb_and_the_rest_as_other() {
        let m = Metrics::new().expect("metrics");
        for line in [
            &b"retr a b"[..],
            b"RETR",
            b"xpwd",
            b"PWD",
            b"FOO x",
            b"ACCT",
            b"\xff\xfe",
            b"",
        ] {
            m.command(line);
        }
        let page = m.render(0).expect("render");
        assert_eq!(
            value(&page, r#"ftp_commands_total{command="RETR"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(&page, r#"ftp_commands_total{command="PWD"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(&page, r#"ftp_commands_total{command="other"}"#),
            Some(4.0)
        );
    }

    #[test]
    fn a_reply_counts_once_at_its_last_line() {
        let m = Metrics::new().expect("metrics");
        let r = m.replies();
        r.count("220 ready\r\n");
        r.count("211-Features:\r\n EPSV\r\n");
        r.count(" MDTM\r\n");
        r.count("211 End\r\n");
        r.count("550 no\r\n");
        r.count("200\r\n");
        let page = m.render(0).expect("render");
        assert_eq!(value(&page, r#"ftp_replies_total{class="2xx"}"#), Some(3.0));
        assert_eq!(value(&page, r#"ftp_replies_total{class="5xx"}"#), Some(1.0));
        assert_eq!(value(&page, r#"ftp_replies_total{class="1xx"}"#), Some(0.0));
    }

    #[test]
    fn transfers_count_bytes_and_time_complete_ones() {
        let m = Metrics::new().expect("metrics");
        let took = Duration::from_millis(20);
        m.transfer(Direction::Upload, TransferResult::Complete, 100, took);
        m.transfer(Direction::Upload, TransferResult::Aborted, 7, took);
        m.transfer(Direction::Download, TransferResult::Complete, 5, took);
        let page = m.render(3).expect("render");
        let bytes = |d: &str| {
            value(
                &page,
                &format!(r#"ftp_transfer_bytes_total{{direction="{d}"}}"#),
            )
        };
        assert_eq!(bytes("upload"), Some(107.0));
        assert_eq!(bytes("download"), Some(5.0));
        assert_eq!(
            value(
                &page,
                r#"ftp_transfer_duration_seconds_count{direction="upload"}"#
            ),
            Some(1.0)
        );
        assert_eq!(value(&page, "ftp_sessions_connected"), Some(3.0));
    }

    #[test]
    fn hook_counts_follow_the_hooks_own() {
        let m = Metrics::new().expect("metrics");
        let mut counts = HookCounts {
            run: 3,
            failed: 1,
            timed_out: 0,
            dropped: 2,
        };
        m.sync_hooks(&counts);
        counts.run = 5;
        m.sync_hooks(&counts);
        m.sync_hooks(&counts);
        let page = m.render(0).expect("render");
        let hooks = |r: &str| value(&page, &format!("ftp_upload_hooks_total{{result=\"{r}\"}}"));
        assert_eq!(hooks("run"), Some(5.0));
        assert_eq!(hooks("failed"), Some(1.0));
        assert_eq!(hooks("dropped"), Some(2.0));
    }

    #[test]
    fn held_gauges_go_back_down() {
        let m = Metrics::new().expect("metrics");
        let a = m.logged_in();
        let b = m.logged_in();
        drop(a);
        assert_eq!(
            value(&m.render(0).expect("render"), "ftp_sessions_logged_in"),
            Some(1.0)
        );
        drop(b);
        assert_eq!(
            value(&m.render(0).expect("render"), "ftp_sessions_logged_in"),
            Some(0.0)
        );
    }
}
