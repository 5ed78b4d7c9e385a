//! The command line of `ftp-server`, which is also the shape of its config file.
//!
//! [`Args`] is read by clap from the command line and by serde from a config file.
//! Both take a field's name in kebab case (`max_per_ip` is `--max-per-ip` and the key
//! `max-per-ip`), so a flag cannot exist without its key, and the key has the flag's
//! type. Fields that are not settings (the subcommand, the positional PORT, `--config`
//! itself) are skipped by serde.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use simple_ftp::server::{Cidr, Config, ProxyMode};

/// A small, fast, safe FTP server.
#[derive(Debug, Clone, PartialEq, Parser, Serialize, Deserialize)]
#[command(name = "ftp-server", version)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Args {
    #[command(subcommand)]
    #[serde(skip)]
    pub command: Option<Tool>,
    /// Port to listen on (0 picks a free one).
    #[arg(value_name = "PORT")]
    #[serde(skip)]
    pub port_arg: Option<u16>,
    /// TOML file of settings: its keys are these long flags without `--`; a flag given
    /// here overrides the file.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Port to listen on (0 picks a free one); overrides the positional PORT [default: 2121].
    #[arg(long, short)]
    pub port: Option<u16>,
    /// Directory to serve as `/` (created if missing).
    #[arg(long, short, default_value = "server")]
    pub root: PathBuf,
    /// Address to listen on.
    #[arg(long, short, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Worker threads: how many commands and transfers run at once (sessions waiting
    /// for their next command hold none).
    #[arg(long, short, default_value_t = Config::default().workers)]
    pub workers: usize,
    /// Open sessions past which a newcomer gets 421 (lowered, with a warning, to what
    /// the open-files limit allows).
    #[arg(long, default_value_t = Config::default().max_connections)]
    pub max_connections: usize,
    /// Seconds a connection has to log in before it is closed with 421.
    #[arg(long, default_value_t = Config::default().login_timeout.as_secs())]
    pub login_timeout: u64,
    /// Seconds without a command before a session is closed with 421.
    #[arg(long, default_value_t = Config::default().idle_timeout.as_secs())]
    pub idle_timeout: u64,
    /// Seconds a data connection may take to arrive or a transfer may stall.
    #[arg(long, default_value_t = Config::default().data_timeout.as_secs())]
    pub data_timeout: u64,
    /// Seconds a transfer waits for a file another transfer holds before 450.
    #[arg(long, default_value_t = Config::default().lock_wait.as_secs())]
    pub lock_wait: u64,
    /// Seconds running transfers may take to finish on shutdown.
    #[arg(long, default_value_t = Config::default().grace.as_secs())]
    pub grace: u64,
    /// Port range for passive data connections, e.g. 50000-50100.
    #[arg(long, value_parser = parse_range)]
    #[serde(with = "port_range")]
    pub pasv_ports: Option<RangeInclusive<u16>>,
    /// IPv4 address announced in PASV replies (behind NAT or a load balancer), or a
    /// host name, resolved to its IPv4 address once when the server starts.
    #[arg(long, value_name = "ADDR|HOST", value_parser = parse_pasv_address)]
    pub pasv_address: Option<String>,
    /// Serve files from an S3-compatible object store instead of --root:
    /// `s3://BUCKET/PREFIX`. Credentials come from the config file's
    /// `s3-access-key-id` and `s3-secret-access-key` keys, else AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (never from a flag, which `ps` would show).
    #[arg(long, value_name = "URL", value_parser = parse_storage)]
    pub storage: Option<String>,
    /// The object store's endpoint URL [default: AWS_ENDPOINT_URL_S3 or
    /// AWS_ENDPOINT_URL, else AWS S3's for the region].
    #[arg(long, value_name = "URL", requires = "storage")]
    pub s3_endpoint: Option<String>,
    /// The region requests are signed for [default: AWS_REGION or AWS_DEFAULT_REGION,
    /// else us-east-1].
    #[arg(long, value_name = "REGION", requires = "storage")]
    pub s3_region: Option<String>,
    /// Seconds an object-store request may take to connect, and each of its reads and
    /// writes may wait.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub s3_timeout: u64,
    /// The object store's access key id (config file only).
    #[arg(skip)]
    #[serde(skip_serializing)]
    pub s3_access_key_id: Option<Secret>,
    /// The object store's secret access key (config file only).
    #[arg(skip)]
    #[serde(skip_serializing)]
    pub s3_secret_access_key: Option<Secret>,
    /// A session token for temporary credentials (config file only).
    #[arg(skip)]
    #[serde(skip_serializing)]
    pub s3_session_token: Option<Secret>,
    /// TOML file of accounts (name, argon2 password hash, home, permissions).
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Anonymous access [default: write when bound to a loopback address, else read].
    #[arg(long, value_enum)]
    pub anonymous: Option<AnonymousArg>,
    /// Sessions one client address may have at once, 0 for no limit [default: no limit
    /// on a loopback address, else 16].
    #[arg(long)]
    pub max_per_ip: Option<usize>,
    /// Seconds to pause after a failed password.
    #[arg(long, default_value_t = Config::default().failed_login_delay.as_secs_f64())]
    pub failed_login_delay: f64,
    /// Failed passwords after which the connection is closed.
    #[arg(long, default_value_t = Config::default().max_login_failures)]
    pub max_login_failures: u32,
    /// PEM certificate chain for AUTH TLS (explicit FTPS).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse logins on plain control connections and clear data connections.
    #[arg(long, requires = "tls_cert")]
    pub require_tls: bool,
    /// Accept TLS data connections that do not resume the control connection's TLS
    /// session (Python's ftplib never resumes); weaker against data-port hijacking.
    #[arg(long, requires = "tls_cert")]
    pub tls_without_resumption: bool,
    /// A second port, on the --bind address, for implicit FTPS (TLS from the first
    /// byte: the ftps:// of curl, lftp and FileZilla); 0 picks a free one.
    #[arg(long, value_name = "PORT", requires = "tls_cert")]
    pub implicit_tls_port: Option<u16>,
    /// A line of shell run (`sh -c`) after every successful STOR, APPE and STOU, with
    /// FTP_USER, FTP_PATH, FTP_FILE, FTP_SIZE, FTP_CLIENT and FTP_ACTION set.
    #[arg(long, value_name = "CMD")]
    pub on_upload: Option<String>,
    /// Upload hooks that run at once.
    #[arg(long, default_value_t = Config::default().hook_workers)]
    pub hook_workers: usize,
    /// Seconds an upload hook may run before its process group is killed.
    #[arg(long, default_value_t = Config::default().hook_timeout.as_secs())]
    pub hook_timeout: u64,
    /// Serve metrics over HTTP on ADDR:PORT: Prometheus text at /metrics, and /healthz
    /// (200 while accepting, 503 while shutting down).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Append a line per file transfer to FILE, in the xferlog format of wu-ftpd,
    /// vsftpd and ProFTPD.
    #[arg(long, value_name = "FILE")]
    pub xferlog: Option<PathBuf>,
    /// Whether connections start with a PROXY protocol header (v1 or v2) naming the
    /// real client: off; optional (read from --trusted-proxies when they send one,
    /// other addresses served as they are); required (only --trusted-proxies are
    /// served, each connection with a header).
    #[arg(long, value_enum, default_value_t = ProxyProtocolArg::Off)]
    pub proxy_protocol: ProxyProtocolArg,
    /// Addresses whose PROXY headers are believed (the load balancers), as CIDR
    /// blocks or single addresses, comma-separated: 10.0.0.0/8,192.0.2.7.
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    #[serde(with = "cidr_list")]
    pub trusted_proxies: Vec<Cidr>,
    /// How log lines on stderr look: for people, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log warnings and errors only.
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log every command too (passwords are never logged).
    #[arg(long, short)]
    pub verbose: bool,
}

impl Default for Args {
    /// Every setting at its default: what an empty command line gives.
    fn default() -> Args {
        // An empty command line has nothing that can fail to parse; the unit tests run
        // this, so a definition that broke it would not get past them.
        Args::try_parse_from(["ftp-server"]).expect("an empty command line parses")
    }
}

/// The port the server listens on when neither `--port`, PORT nor the file says.
pub const DEFAULT_PORT: u16 = 2121;

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Tool {
    /// Prints an argon2 hash of a password for the users file (the password is read
    /// from the terminal without echo, or from standard input).
    HashPassword,
    /// Checks a config file (with the other flags given) and prints the effective
    /// settings as TOML, itself a valid config file; exits 1 on the first error.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Prints a completion script for a shell, made from these definitions, e.g.
    /// `ftp-server completions bash > /usr/share/bash-completion/completions/ftp-server`.
    Completions {
        /// The shell the script is for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the manual page (roff), made from these definitions, e.g.
    /// `ftp-server man > /usr/local/share/man/man1/ftp-server.1`.
    Man,
}

/// `--log-format` and the `log-format` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Time, level, message.
    Human,
    /// One JSON object per line: time, level, peer, user, event, message, fields.
    Json,
}

/// `--proxy-protocol` and the `proxy-protocol` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolArg {
    /// No PROXY headers: every connection's peer is its TCP peer.
    Off,
    /// Trusted proxies may send a header; other addresses are served as they are.
    Optional,
    /// Only trusted proxies are served, and each connection starts with a header.
    Required,
}

impl From<ProxyProtocolArg> for ProxyMode {
    fn from(arg: ProxyProtocolArg) -> ProxyMode {
        match arg {
            ProxyProtocolArg::Off => ProxyMode::Off,
            ProxyProtocolArg::Optional => ProxyMode::Optional,
            ProxyProtocolArg::Required => ProxyMode::Required,
        }
    }
}

/// Checks `--pasv-address` (and the `pasv-address` key): an IPv4 address, or
/// something that can be a host name (resolved when the server starts). PASV replies
/// carry IPv4 only, so an IPv6 address is refused here.
pub fn parse_pasv_address(text: &str) -> Result<String, String> {
    if text.parse::<Ipv4Addr>().is_ok() {
        return Ok(text.to_owned());
    }
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err("PASV replies carry an IPv4 address; an IPv6 client uses EPSV".to_owned());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err("expected an IPv4 address or a host name".to_owned());
    }
    Ok(text.to_owned())
}

/// The trusted proxies in TOML: an array of strings (`["10.0.0.0/8", "192.0.2.7"]`),
/// or one string of them comma-separated, as on the command line.
mod cidr_list {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use simple_ftp::server::Cidr;

    pub fn serialize<S: Serializer>(list: &[Cidr], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(list.iter().map(ToString::to_string))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        Many(Vec<String>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Cidr>, D::Error> {
        let words = match Form::deserialize(deserializer)? {
            Form::One(text) => text.split(',').map(str::to_owned).collect(),
            Form::Many(list) => list,
        };
        words
            .iter()
            .map(|w| {
                w.parse()
                    .map_err(|e| de::Error::custom(format!("{w:?}: {e}")))
            })
            .collect()
    }
}

/// `--anonymous` and the `anonymous` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnonymousArg {
    Off,
    Read,
    Write,
}

/// Parses `MIN-MAX` (`--pasv-ports`, and the `pasv-ports` key through [`port_range`]).
pub fn parse_range(text: &str) -> Result<RangeInclusive<u16>, String> {
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

/// The keys a config file may have that are no flag: secrets, which a command line
/// would show to every user of the machine (`ps`).
pub const FILE_ONLY_KEYS: [&str; 3] = [
    "s3-access-key-id",
    "s3-secret-access-key",
    "s3-session-token",
];

/// A secret from the config file: never printed (`Debug` shows `<hidden>`, and
/// check-config leaves it out).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Checks `--storage` (and the `storage` key): an `s3://BUCKET/PREFIX` URL.
pub fn parse_storage(text: &str) -> Result<String, String> {
    simple_ftp::storage::s3::S3Location::parse(text).map(|_| text.to_owned())
}

/// A port range in TOML: the string `"MIN-MAX"`, as on the command line.
mod port_range {
    use std::ops::RangeInclusive;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        range: &Option<RangeInclusive<u16>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match range {
            Some(range) => serializer.serialize_str(&format!("{}-{}", range.start(), range.end())),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<RangeInclusive<u16>>, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_range(&text)
            .map(Some)
            .map_err(|e| de::Error::custom(format!("{text:?}: {e}")))
    }
}
