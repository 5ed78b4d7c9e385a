//! The config file (`--config FILE`, `check-config FILE`) and the one place where the
//! file, the command line and the defaults become the settings the server runs with.
//!
//! The file is TOML; its keys are the long flags of [`Args`] without `--`, spelled
//! exactly so (`max-per-ip = 8`; `max_per_ip` is an unknown key, with a hint), and
//! the few keys that are no flag ([`FILE_ONLY_KEYS`]: the object store's credentials,
//! which a command line would show in `ps`). Booleans
//! are the switches, a flag that may be repeated would take an array. Relative paths
//! are taken from the working directory, as on the command line.
//!
//! Precedence: a flag given on the command line, then the file, then the default.
//! "Given" is what clap saw on the command line ([`ValueSource::CommandLine`]), not a
//! comparison with the default, so `--port 2121` beats a file's `port = 21`. A flag on
//! the command line also sets aside the file's keys it conflicts with (`-v` beats the
//! file's `quiet = true`), and PORT given positionally beats the file's `port`.
//!
//! The file is checked in two passes, both before anything starts. serde reads it into
//! [`Args`], the struct clap fills, which finds unknown keys, wrong types and values a
//! type refuses, each at its line. Then the file's keys are turned back into flags and
//! parsed by clap with the command line, so every value passes the very checks the same
//! flag passes on the command line and clap's rules between flags (`requires`,
//! `conflicts_with`) hold across the two; an error is still reported at the key's line.
//!
//! [`ConfigFile::load`] and [`Settings::combine`] read nothing but the file and keep the
//! command line they were given, so a reload can run them again and compare;
//! [`Settings::server_config`] is the step that opens the files the settings name.
//!
//! A reload (SIGHUP) takes the keys of [`RELOADABLE`] anew and keeps every other key
//! at the value the server started with ([`Settings::reload`]): those are what the
//! server was built around (its socket, its root, its workers) or what every session
//! reads at every wait (the timeouts), fixed for the server's life.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use simple_ftp::server::accounts::{Anonymous, Users};
use simple_ftp::server::Config;
use simple_ftp::storage::s3::client::S3Settings;
use simple_ftp::storage::s3::S3Location;
use thiserror::Error;
use toml::Spanned;

use crate::args::{
    AnonymousArg, Args, LogFormat, ProxyProtocolArg, Secret, DEFAULT_PORT, FILE_ONLY_KEYS,
};

/// What is wrong with a config file or with the settings as a whole; each names the
/// key, and the file and line it was read from.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The file is not TOML (or has a key twice).
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What the TOML parser said.
        message: String,
    },
    /// A key that is not a long flag of `ftp-server`.
    #[error("{}:{line}: unknown key `{key}`{hint}", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The key as written.
        key: String,
        /// A suggestion, starting with `; ` (or empty).
        hint: String,
    },
    /// A value of the wrong type, or one its flag refuses.
    #[error("{setting}: {message}")]
    Invalid {
        /// The key and where its value came from.
        setting: Setting,
        /// What is wrong with the value.
        message: String,
    },
    /// Two settings that cannot be used together.
    #[error("{second}: cannot be used with {} (from {})", first.key, first.origin)]
    Conflict {
        /// The one set first.
        first: Setting,
        /// The one that conflicts with it.
        second: Setting,
    },
    /// A setting that needs others that are not set.
    #[error("{setting}: needs {} as well", needed.join(" and "))]
    Missing {
        /// The setting that needs them.
        setting: Setting,
        /// The keys it needs.
        needed: Vec<String>,
    },
    /// Any other refusal of the settings as a whole.
    #[error("{}: {message}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// What clap said.
        message: String,
    },
    /// The settings cannot be written as TOML (a path that is not UTF-8).
    #[error("cannot write the settings as TOML: {0}")]
    Unprintable(String),
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A flag on the command line.
    CommandLine,
    /// A key of the config file.
    File {
        /// The file.
        path: PathBuf,
        /// The key's line, from 1.
        line: usize,
    },
    /// Neither: the default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::CommandLine => write!(f, "the command line"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Default => write!(f, "the defaults"),
        }
    }
}

/// A key and where its value came from, as error messages show it: `--workers` (the
/// command line), `server.toml:4: workers` (the file), `workers` (the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key (the long flag without `--`).
    pub key: String,
    /// Where its value came from.
    pub origin: Origin,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::CommandLine => write!(f, "--{}", self.key),
            Origin::File { path, line } => write!(f, "{}:{line}: {}", path.display(), self.key),
            Origin::Default => write!(f, "{}", self.key),
        }
    }
}

/// The command line as clap read it: the values, which of them were given, and the
/// words themselves (parsed again with a file's keys in front).
#[derive(Debug, Clone)]
pub struct CommandLine {
    args: Args,
    matches: ArgMatches,
    words: Vec<OsString>,
}

impl CommandLine {
    /// Reads the process's command line; on a usage error clap prints it and exits 2.
    pub fn from_env() -> CommandLine {
        CommandLine::parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Reads `words` (the program name first).
    ///
    /// # Errors
    /// clap's error for a command line it refuses (or `--help`, `--version`).
    pub fn parse_from<I, T>(words: I) -> Result<CommandLine, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let words: Vec<OsString> = words.into_iter().map(Into::into).collect();
        let matches = Args::command().try_get_matches_from(&words)?;
        let args = Args::from_arg_matches(&matches)?;
        Ok(CommandLine {
            args,
            matches,
            words,
        })
    }

    /// The values (defaults for flags not given).
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Whether the flag with clap id `id` was given on the command line.
    fn given(&self, id: &str) -> bool {
        self.matches.value_source(id) == Some(ValueSource::CommandLine)
    }

    /// Whether the command line sets the value of `arg`: the flag itself, or for
    /// `port` the positional PORT.
    fn sets(&self, arg: &clap::Arg) -> bool {
        let id = arg.get_id().as_str();
        self.given(id) || (id == "port" && self.given("port_arg"))
    }

    /// Whether the command line sets aside the file's value for `arg`: it sets the
    /// value itself, or gives a flag that conflicts with it.
    fn overrides(&self, cmd: &clap::Command, arg: &clap::Arg) -> bool {
        self.sets(arg)
            || cmd.get_arguments().any(|other| {
                self.given(other.get_id().as_str())
                    && (conflicts(cmd, arg, other) || conflicts(cmd, other, arg))
            })
    }
}

/// The flag whose long name is `key`.
fn flag<'c>(cmd: &'c clap::Command, key: &str) -> Option<&'c clap::Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(key))
}

/// Whether clap has `a` declared as conflicting with `b`.
fn conflicts(cmd: &clap::Command, a: &clap::Arg, b: &clap::Arg) -> bool {
    cmd.get_arg_conflicts_with(a)
        .iter()
        .any(|c| c.get_id() == b.get_id())
}

/// Every key a config file may have, in the order of `--help`: the long flags but
/// `--config`, `--help` and `--version`.
pub fn keys() -> Vec<String> {
    Args::command()
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .filter(|long| !matches!(*long, "config" | "help" | "version"))
        .map(str::to_owned)
        .collect()
}

/// One `key = value` of a config file.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: String,
    line: usize,
    value: toml::Value,
}

/// A config file read and checked on its own: every key is a setting and every value
/// has its type.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    path: PathBuf,
    /// In the order of the file.
    entries: Vec<Entry>,
}

impl ConfigFile {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, else those of
    /// [`ConfigFile::parse`].
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Checks `text`, read from `path` (which errors name).
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] for text that is not TOML, [`ConfigError::UnknownKey`]
    /// for a key that is no flag, [`ConfigError::Invalid`] for a value of the wrong
    /// type or one its type refuses (a port above 65535, an address that is none).
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let syntax = |e: toml::de::Error| {
            let span = e.span().unwrap_or(0..0);
            let mut message = e.message().to_owned();
            if message == "duplicate key" {
                if let Some(key) = text.get(span.clone()) {
                    message = format!("duplicate key `{key}`");
                }
            }
            ConfigError::Syntax {
                path: path.to_owned(),
                line: line_of(text, span.start),
                message,
            }
        };
        let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
            toml::from_str(text).map_err(syntax)?;
        // Each entry with the bytes from its key to the end of its value, in the
        // file's order, so the first problem reported is the first one.
        let mut spanned: Vec<(Range<usize>, Entry)> = table
            .into_iter()
            .map(|(key, value)| {
                let (k, v) = (key.span(), value.span());
                // A table's span starts at its `[`, before its key.
                let span = k.start.min(v.start)..k.end.max(v.end);
                let entry = Entry {
                    line: line_of(text, k.start),
                    key: key.into_inner(),
                    value: value.into_inner(),
                };
                (span, entry)
            })
            .collect();
        spanned.sort_by_key(|(span, _)| span.start);
        let mut known = keys();
        known.extend(FILE_ONLY_KEYS.iter().map(|k| (*k).to_owned()));
        if let Some((_, entry)) = spanned.iter().find(|(_, e)| !known.contains(&e.key)) {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                line: entry.line,
                key: entry.key.clone(),
                hint: hint(&entry.key, &known),
            });
        }
        // The types, and the values a type refuses, at the line of their key.
        if let Err(e) = toml::from_str::<Args>(text) {
            let at = e.span().map(|span| span.start);
            let entry = at.and_then(|at| spanned.iter().find(|(span, _)| span.contains(&at)));
            return Err(match entry {
                Some((_, entry)) => ConfigError::Invalid {
                    setting: file_setting(path, entry),
                    message: plain_types(e.message()),
                },
                None => syntax(e),
            });
        }
        Ok(ConfigFile {
            path: path.to_owned(),
            entries: spanned.into_iter().map(|(_, entry)| entry).collect(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A hint for an unknown key: the key with dashes, or why `config` is not one.
fn hint(key: &str, known: &[String]) -> String {
    let dashed = key.replace('_', "-");
    if key == "config" {
        "; a config file cannot name another".to_owned()
    } else if dashed != key && known.contains(&dashed) {
        format!("; did you mean `{dashed}`? (keys are spelled as the long flags)")
    } else {
        "; the keys are the long flags of `ftp-server --help` without `--`".to_owned()
    }
}

/// serde's names of Rust types, in words for someone writing a config file.
fn plain_types(message: &str) -> String {
    const WORDS: [(&str, &str); 6] = [
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected an integer from 0 to 4294967295"),
        ("expected u64", "expected an integer, 0 or more"),
        ("expected usize", "expected an integer, 0 or more"),
        ("expected f64", "expected a number"),
        ("expected a borrowed string", "expected a string"),
    ];
    WORDS
        .iter()
        .find_map(|(rust, plain)| {
            message
                .strip_suffix(rust)
                .map(|head| format!("{head}{plain}"))
        })
        .unwrap_or_else(|| message.to_owned())
}

/// The flags that say what `value` says for `key`: `--key=value`; a boolean is the
/// bare switch (or nothing), an array repeats the flag.
fn flag_words(key: &str, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let word = |text: String| Ok(vec![OsString::from(format!("--{key}={text}"))]);
    match value {
        toml::Value::Boolean(true) => Ok(vec![OsString::from(format!("--{key}"))]),
        toml::Value::Boolean(false) => Ok(Vec::new()),
        toml::Value::String(s) => word(s.clone()),
        toml::Value::Integer(i) => word(i.to_string()),
        toml::Value::Float(x) => word(x.to_string()),
        toml::Value::Datetime(d) => word(d.to_string()),
        toml::Value::Array(items) => {
            let mut words = Vec::new();
            for item in items {
                if matches!(item, toml::Value::Array(_)) {
                    return Err("an array of arrays is not a value".to_owned());
                }
                words.extend(flag_words(key, item)?);
            }
            Ok(words)
        }
        toml::Value::Table(_) => Err("a table is not a value".to_owned()),
    }
}

/// The settings the server runs with: every key's value, after the command line, the
/// file and the defaults, and where each came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Every value; `port`, `anonymous` and `max-per-ip` resolved (their defaults
    /// depend on other settings), the positional PORT folded into `port`.
    args: Args,
    origins: BTreeMap<String, Origin>,
}

impl Settings {
    /// Combines the command line with a config file, if any.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a value its flag refuses (from the file; the
    /// command line was checked by [`CommandLine::parse_from`]) or a setting out of
    /// range, [`ConfigError::Conflict`] and [`ConfigError::Missing`] when clap's rules
    /// between flags do not hold, [`ConfigError::Refused`] for anything else clap
    /// refuses.
    pub fn combine(cli: &CommandLine, file: Option<&ConfigFile>) -> Result<Settings, ConfigError> {
        let cmd = Args::command();
        let path = file.map_or_else(PathBuf::new, |f| f.path.clone());
        let mut words: Vec<OsString> = cli.words.iter().take(1).cloned().collect();
        let mut used: Vec<&Entry> = Vec::new();
        for entry in file.iter().flat_map(|f| &f.entries) {
            let Some(arg) = flag(&cmd, &entry.key) else {
                continue; // ConfigFile::parse refused it already
            };
            if cli.overrides(&cmd, arg) {
                continue;
            }
            let flags =
                flag_words(&entry.key, &entry.value).map_err(|message| ConfigError::Invalid {
                    setting: file_setting(&path, entry),
                    message,
                })?;
            words.extend(flags);
            used.push(entry);
        }
        words.extend(cli.words.iter().skip(1).cloned());

        let origin = |key: &str| -> Origin {
            if flag(&cmd, key).is_some_and(|arg| cli.sets(arg)) {
                Origin::CommandLine
            } else if let Some(entry) = used.iter().find(|entry| entry.key == key) {
                Origin::File {
                    path: path.clone(),
                    line: entry.line,
                }
            } else {
                Origin::Default
            }
        };
        let setting = |key: &str| Setting {
            key: key.to_owned(),
            origin: origin(key),
        };

        let matches = cmd
            .clone()
            .try_get_matches_from(&words)
            .map_err(|e| explain(&e, &path, &used, &setting))?;
        let mut args = Args::from_arg_matches(&matches).map_err(|e| ConfigError::Refused {
            path: path.clone(),
            message: first_line(&e),
        })?;

        // The keys that are no flag (secrets) come from the file as they are; their
        // type was checked by ConfigFile::parse.
        for entry in file.iter().flat_map(|f| &f.entries) {
            let toml::Value::String(value) = &entry.value else {
                continue;
            };
            let secret = Some(Secret(value.clone()));
            match entry.key.as_str() {
                "s3-access-key-id" => args.s3_access_key_id = secret,
                "s3-secret-access-key" => args.s3_secret_access_key = secret,
                "s3-session-token" => args.s3_session_token = secret,
                _ => {}
            }
        }
        let loopback = args.bind.is_loopback();
        args.port = Some(args.port.or(args.port_arg).unwrap_or(DEFAULT_PORT));
        args.port_arg = None;
        args.anonymous.get_or_insert(if loopback {
            AnonymousArg::Write
        } else {
            AnonymousArg::Read
        });
        args.max_per_ip.get_or_insert(if loopback { 0 } else { 16 });
        if args.workers == 0 {
            return Err(ConfigError::Invalid {
                setting: setting("workers"),
                message: "must be at least 1".to_owned(),
            });
        }
        if !(0.0..=60.0).contains(&args.failed_login_delay) {
            return Err(ConfigError::Invalid {
                setting: setting("failed-login-delay"),
                message: "must be between 0 and 60 seconds".to_owned(),
            });
        }
        let at_least_one = |key: &str, value: u64, what: &str| match value {
            0 => Err(ConfigError::Invalid {
                setting: setting(key),
                message: format!("must be at least 1{what}"),
            }),
            _ => Ok(()),
        };
        at_least_one("hook-workers", args.hook_workers as u64, "")?;
        at_least_one("hook-timeout", args.hook_timeout, " second")?;
        if args
            .on_upload
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(ConfigError::Invalid {
                setting: setting("on-upload"),
                message: "needs a command".to_owned(),
            });
        }
        if args.proxy_protocol != ProxyProtocolArg::Off && args.trusted_proxies.is_empty() {
            return Err(ConfigError::Missing {
                setting: setting("proxy-protocol"),
                needed: vec!["trusted-proxies".to_owned()],
            });
        }
        let origins = keys()
            .into_iter()
            .map(|key| {
                let origin = origin(&key);
                (key, origin)
            })
            .collect();
        Ok(Settings { args, origins })
    }

    /// Every value.
    pub fn args(&self) -> &Args {
        &self.args
    }

    /// Where the value of `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }

    fn setting(&self, key: &str) -> Setting {
        Setting {
            key: key.to_owned(),
            origin: self.origin(key),
        }
    }

    /// The form of log lines the settings ask for.
    pub fn log_format(&self) -> LogFormat {
        self.args.log_format
    }

    /// The log level the settings ask for.
    pub fn log_level(&self) -> log::LevelFilter {
        if self.args.quiet {
            log::LevelFilter::Warn
        } else if self.args.verbose {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        }
    }

    /// The library's configuration: the root checked, the users file and the TLS
    /// certificate loaded. Nothing is opened for listening, nothing is created.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `root` when it is not a directory and cannot
    /// become one, `users` when the users file does not load, `tls-cert` or `tls-key`
    /// when the certificate or key does not.
    pub fn server_config(&self) -> Result<Config, ConfigError> {
        let args = &self.args;
        check_root(&args.root).map_err(|message| ConfigError::Invalid {
            setting: self.setting("root"),
            message,
        })?;
        let users = match &args.users {
            Some(path) => Users::load(path).map_err(|e| ConfigError::Invalid {
                setting: self.setting("users"),
                message: e.to_string(),
            })?,
            None => Users::default(),
        };
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                Some(simple_ftp::tls::server_config(cert, key).map_err(|e| {
                    let key_at_fault = matches!(
                        &e,
                        simple_ftp::tls::TlsError::Pem { path, .. } if path == key
                    );
                    // rustls's refusal (a key that is not the certificate's) names
                    // neither file: say which two were read.
                    let message = match &e {
                        simple_ftp::tls::TlsError::Config(_) => {
                            format!("{} with the key {}: {e}", cert.display(), key.display())
                        }
                        _ => e.to_string(),
                    };
                    ConfigError::Invalid {
                        setting: self.setting(if key_at_fault { "tls-key" } else { "tls-cert" }),
                        message,
                    }
                })?)
            }
            _ => None,
        };
        let anonymous = match args.anonymous {
            Some(AnonymousArg::Off) => Anonymous::Off,
            Some(AnonymousArg::Read) => Anonymous::Read,
            Some(AnonymousArg::Write) | None => Anonymous::Write,
        };
        Ok(Config {
            root: args.root.clone(),
            // The local directory; other backends are given here once they exist.
            storage: None,
            bind: SocketAddr::new(args.bind, args.port.unwrap_or(DEFAULT_PORT)),
            workers: args.workers,
            max_connections: args.max_connections.max(1),
            login_timeout: Duration::from_secs(args.login_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
            data_timeout: Duration::from_secs(args.data_timeout.max(1)),
            lock_wait: Duration::from_secs(args.lock_wait),
            grace: Duration::from_secs(args.grace),
            pasv_ports: args.pasv_ports.clone(),
            // A literal address; a host name is resolved once, at start
            // (`Settings::pasv_address`), not at every reload.
            pasv_address: args.pasv_address.as_deref().and_then(|a| a.parse().ok()),
            users,
            anonymous,
            max_per_ip: args.max_per_ip.unwrap_or(0),
            failed_login_delay: Duration::from_secs_f64(args.failed_login_delay),
            max_login_failures: args.max_login_failures.max(1),
            tls,
            require_tls: args.require_tls,
            tls_without_resumption: args.tls_without_resumption,
            implicit_tls_port: args.implicit_tls_port,
            on_upload: args.on_upload.clone(),
            hook_workers: args.hook_workers,
            hook_timeout: Duration::from_secs(args.hook_timeout),
            // Set from the open-files limit when the server starts.
            max_passive_listeners: 0,
            metrics: args.metrics,
            xferlog: args.xferlog.clone(),
            proxy_protocol: args.proxy_protocol.into(),
            trusted_proxies: args.trusted_proxies.clone(),
        })
    }

    /// The object store's settings when `storage` names one (`None`: the local
    /// directory): each from its key, else from the usual AWS variable `env` gives
    /// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or
    /// AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL), else the default
    /// (region us-east-1, AWS S3's endpoint for the region). Nothing is contacted.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `storage` when no credentials are found, or
    /// `s3-endpoint` for an endpoint that is not an http(s) URL.
    pub fn s3(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<(S3Settings, S3Location)>, ConfigError> {
        let args = &self.args;
        let Some(url) = &args.storage else {
            return Ok(None);
        };
        let location = S3Location::parse(url).map_err(|message| ConfigError::Invalid {
            setting: self.setting("storage"),
            message,
        })?;
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let from = |key: &Option<Secret>, var: &str| {
            key.as_ref().map(|s| s.0.clone()).or_else(|| env(var))
        };
        let (Some(access_key_id), Some(secret_access_key)) = (
            from(&args.s3_access_key_id, "AWS_ACCESS_KEY_ID"),
            from(&args.s3_secret_access_key, "AWS_SECRET_ACCESS_KEY"),
        ) else {
            return Err(ConfigError::Invalid {
                setting: self.setting("storage"),
                message: "no credentials: set s3-access-key-id and s3-secret-access-key in \
                          the config file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    .to_owned(),
            });
        };
        let region = args
            .s3_region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = args
            .s3_endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let settings = S3Settings {
            endpoint,
            region,
            bucket: location.bucket.clone(),
            access_key_id,
            secret_access_key,
            session_token: from(&args.s3_session_token, "AWS_SESSION_TOKEN"),
            timeout: Duration::from_secs(args.s3_timeout.max(1)),
        };
        // The client checks the endpoint and the bucket's name without a request.
        simple_ftp::storage::s3::client::S3Client::new(&settings).map_err(|e| {
            ConfigError::Invalid {
                setting: self.setting(if args.s3_endpoint.is_some() {
                    "s3-endpoint"
                } else {
                    "storage"
                }),
                message: e.to_string(),
            }
        })?;
        Ok(Some((settings, location)))
    }

    /// The address PASV replies announce (`--pasv-address`): the address given, or
    /// the IPv4 address its host name resolves to now.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `pasv-address` when the name does not resolve,
    /// or resolves to no IPv4 address.
    pub fn pasv_address(&self) -> Result<Option<std::net::Ipv4Addr>, ConfigError> {
        use std::net::{IpAddr, ToSocketAddrs};
        let Some(text) = &self.args.pasv_address else {
            return Ok(None);
        };
        if let Ok(ip) = text.parse() {
            return Ok(Some(ip));
        }
        let invalid = |message: String| ConfigError::Invalid {
            setting: self.setting("pasv-address"),
            message,
        };
        let found = (text.as_str(), 0)
            .to_socket_addrs()
            .map_err(|e| invalid(format!("cannot resolve {text}: {e}")))?;
        found
            .into_iter()
            .find_map(|a| match a.ip() {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            })
            .map(Some)
            .ok_or_else(|| {
                invalid(format!(
                    "{text} has no IPv4 address, which PASV replies need"
                ))
            })
    }

    /// The settings as a config file: every key, in the order of `--help`, as
    /// `key = value`; a key without a value (an optional file, no port range) as a
    /// comment saying so.
    ///
    /// # Errors
    /// [`ConfigError::Unprintable`] for a path that is not UTF-8.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let table = toml::Table::try_from(&self.args)
            .map_err(|e| ConfigError::Unprintable(e.to_string()))?;
        let mut out = String::from(
            "# ftp-server settings: the command line over the config file over the defaults\n",
        );
        for key in keys() {
            match table.get(&key) {
                Some(value) => out.push_str(&format!("{key} = {value}\n")),
                None => out.push_str(&format!("# {key}: not set\n")),
            }
        }
        Ok(out)
    }
}

/// The keys a reload takes anew; every other key takes a restart. `tls-cert` and
/// `tls-key` may name other files, but TLS cannot be turned on or off.
pub const RELOADABLE: [&str; 11] = [
    "max-connections",
    "grace",
    "users",
    "anonymous",
    "max-per-ip",
    "failed-login-delay",
    "max-login-failures",
    "tls-cert",
    "tls-key",
    "quiet",
    "verbose",
];

/// What a reload makes of the settings read anew: see [`Settings::reload`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reload {
    /// The settings to run with from now on.
    pub settings: Settings,
    /// Keys whose new value takes a restart, each with where that value came from;
    /// they keep the value in force.
    pub kept: Vec<Setting>,
    /// Reloadable keys whose value changed, as `key = new (was old)`.
    pub changed: Vec<String>,
}

impl Settings {
    /// Every set key's value as TOML (keys without a value are absent).
    fn table(&self) -> Result<toml::Table, ConfigError> {
        toml::Table::try_from(&self.args).map_err(|e| ConfigError::Unprintable(e.to_string()))
    }

    /// The settings a running server moves to when `new` was read for a reload: the
    /// keys of [`RELOADABLE`] from `new`, every other key as it is in `self`. A key
    /// kept so is listed in [`Reload::kept`]; so are `tls-cert` and `tls-key` when
    /// `new` would turn TLS on or off.
    ///
    /// # Errors
    /// [`ConfigError::Unprintable`] for a path that is not UTF-8.
    pub fn reload(&self, new: Settings) -> Result<Reload, ConfigError> {
        let (old_table, new_table) = (self.table()?, new.table()?);
        let tls_on_off = self.args.tls_cert.is_some() != new.args.tls_cert.is_some();
        let (mut kept, mut changed) = (Vec::new(), Vec::new());
        let mut table = new_table.clone();
        let mut origins = new.origins.clone();
        for key in keys() {
            let (old, value) = (old_table.get(&key), new_table.get(&key));
            let tls = tls_on_off && (key == "tls-cert" || key == "tls-key");
            if old == value && !tls {
                continue;
            }
            if RELOADABLE.contains(&key.as_str()) && !tls {
                let shown =
                    |v: Option<&toml::Value>| v.map_or("not set".to_owned(), |v| v.to_string());
                changed.push(format!("{key} = {} (was {})", shown(value), shown(old)));
                continue;
            }
            if old != value {
                kept.push(new.setting(&key));
            }
            match old {
                Some(old) => table.insert(key.clone(), old.clone()),
                None => table.remove(&key),
            };
            origins.insert(key.clone(), self.origin(&key));
        }
        let args: Args = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Unprintable(e.to_string()))?;
        Ok(Reload {
            settings: Settings { args, origins },
            kept,
            changed,
        })
    }
}

/// A `Setting` for a key read from `file`.
fn file_setting(file: &Path, entry: &Entry) -> Setting {
    Setting {
        key: entry.key.clone(),
        origin: Origin::File {
            path: file.to_owned(),
            line: entry.line,
        },
    }
}

/// clap's refusal of the combined words, told in terms of keys and lines.
fn explain(
    e: &clap::Error,
    path: &Path,
    used: &[&Entry],
    setting: &dyn Fn(&str) -> Setting,
) -> ConfigError {
    let named = |kind: ContextKind| -> Vec<String> {
        match e.get(kind) {
            Some(ContextValue::String(s)) => long_name(s).into_iter().collect(),
            Some(ContextValue::Strings(list)) => list.iter().filter_map(|s| long_name(s)).collect(),
            _ => Vec::new(),
        }
    };
    let refused = || ConfigError::Refused {
        path: path.to_owned(),
        message: first_line(e),
    };
    match e.kind() {
        ErrorKind::ArgumentConflict => match (
            named(ContextKind::PriorArg).first(),
            named(ContextKind::InvalidArg).first(),
        ) {
            (Some(a), Some(b)) => {
                let (a, b) = (setting(a), setting(b));
                // The one further down the file is the one in conflict.
                let (first, second) = if line(&a) <= line(&b) { (a, b) } else { (b, a) };
                ConfigError::Conflict { first, second }
            }
            _ => refused(),
        },
        ErrorKind::MissingRequiredArgument => {
            let missing = named(ContextKind::InvalidArg);
            // The command line alone passed, so a key of the file needs them: the one
            // that, on its own, needs one of them.
            let culprit = used.iter().find(|entry| {
                needs_alone(entry)
                    .iter()
                    .any(|needed| missing.contains(needed))
            });
            match culprit {
                Some(entry) => {
                    let mut needed = missing;
                    needed.sort();
                    ConfigError::Missing {
                        setting: setting(&entry.key),
                        needed,
                    }
                }
                None => refused(),
            }
        }
        kind => match named(ContextKind::InvalidArg).first() {
            Some(key) => ConfigError::Invalid {
                setting: setting(key),
                message: match std::error::Error::source(e) {
                    Some(source) => source.to_string(),
                    None if kind == ErrorKind::InvalidValue
                        && matches!(
                            e.get(ContextKind::InvalidValue),
                            Some(ContextValue::String(v)) if v.is_empty()
                        ) =>
                    {
                        "must not be empty".to_owned()
                    }
                    None => first_line(e),
                },
            },
            None => refused(),
        },
    }
}

/// The line of a setting from the file (0 for one from elsewhere).
fn line(setting: &Setting) -> usize {
    match setting.origin {
        Origin::File { line, .. } => line,
        _ => 0,
    }
}

/// The keys `entry` needs when it is the only flag given.
fn needs_alone(entry: &Entry) -> Vec<String> {
    let Ok(flags) = flag_words(&entry.key, &entry.value) else {
        return Vec::new();
    };
    let words = std::iter::once(OsString::from("ftp-server")).chain(flags);
    match Args::command().try_get_matches_from(words) {
        Err(e) if e.kind() == ErrorKind::MissingRequiredArgument => {
            match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::Strings(list)) => {
                    list.iter().filter_map(|s| long_name(s)).collect()
                }
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// `tls-key` from clap's `--tls-key <PEM>`.
fn long_name(shown: &str) -> Option<String> {
    let rest = shown.strip_prefix("--")?;
    let end = rest.find([' ', '=']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// clap's message without its `error: ` and usage lines.
fn first_line(e: &clap::Error) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

/// Whether `root` is a directory or can be made one (the server makes it, with its
/// parents, when it starts); the reason when not.
fn check_root(root: &Path) -> Result<(), String> {
    let mut dir = root;
    loop {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) if dir == root => {
                return Err(format!("{} is not a directory", root.display()));
            }
            Ok(_) => {
                return Err(format!(
                    "cannot make {}: {} is not a directory",
                    root.display(),
                    dir.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => dir = parent,
                // A relative path whose first part is missing: made in the working
                // directory.
                _ => return Ok(()),
            },
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../contrib/ftp-server.toml");

    fn cli(words: &[&str]) -> CommandLine {
        let words = std::iter::once("ftp-server").chain(words.iter().copied());
        CommandLine::parse_from(words).expect("command line")
    }

    fn file(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(Path::new("ftp.toml"), text)
    }

    /// The settings of `text` under the command line `words`.
    fn settings(words: &[&str], text: &str) -> Result<Settings, ConfigError> {
        Settings::combine(&cli(words), Some(&file(text)?))
    }

    #[test]
    fn s3_settings_come_from_keys_then_aws_variables_and_secrets_are_never_printed() {
        let text = "storage = \"s3://bucket/pre/fix\"\ns3-endpoint = \"http://127.0.0.1:3900\"\n\
                    s3-access-key-id = \"GKfile\"\ns3-secret-access-key = \"hush\"\n";
        let s = settings(&[], text).expect("settings");
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("GKenv".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("envhush".to_owned()),
            "AWS_REGION" => Some("eu-west-3".to_owned()),
            _ => None,
        };
        let (s3, location) = s.s3(&env).expect("s3").expect("configured");
        assert_eq!(location.bucket, "bucket");
        assert_eq!(location.prefix, "pre/fix/");
        assert_eq!(s3.access_key_id, "GKfile");
        assert_eq!(s3.secret_access_key, "hush");
        assert_eq!(s3.region, "eu-west-3");
        assert_eq!(s3.endpoint, "http://127.0.0.1:3900");
        let printed = s.to_toml().expect("toml");
        assert!(
            !printed.contains("hush") && !printed.contains("GKfile"),
            "{printed}"
        );
        assert!(!format!("{s:?}").contains("hush"));

        let from_env = settings(&[], "storage = \"s3://b\"\n").expect("settings");
        let (s3, _) = from_env.s3(&env).expect("s3").expect("configured");
        assert_eq!(
            (s3.access_key_id.as_str(), s3.secret_access_key.as_str()),
            ("GKenv", "envhush")
        );
        assert_eq!(s3.endpoint, "https://s3.eu-west-3.amazonaws.com");
        let none = from_env.s3(&|_| None).expect_err("no credentials");
        assert!(none.to_string().contains("no credentials"), "{none}");
        assert!(error("storage = \"/srv/files\"\n").contains("s3://"));
        assert!(error("s3-endpoint = \"http://x\"\n").contains("storage"));
    }

    /// The message of the error `text` gives with an empty command line.
    fn error(text: &str) -> String {
        settings(&[], text).expect_err("an error").to_string()
    }

    fn at_line(line: usize) -> Origin {
        Origin::File {
            path: PathBuf::from("ftp.toml"),
            line,
        }
    }

    #[test]
    fn keys_are_the_long_flags_but_config_help_and_version() {
        let keys = keys();
        assert_eq!(keys.first().map(String::as_str), Some("port"));
        for key in ["root", "max-per-ip", "pasv-ports", "tls-cert", "quiet"] {
            assert!(
                keys.contains(&key.to_owned()),
                "{key} missing from {keys:?}"
            );
        }
        for flag in ["config", "help", "version", "port_arg"] {
            assert!(!keys.contains(&flag.to_owned()), "{flag} is no key");
        }
    }

    #[test]
    fn the_fields_serde_reads_are_exactly_the_keys() {
        // serde names every field it accepts when it meets one it does not.
        let e = toml::from_str::<Args>("no-such-key = 1").expect_err("unknown field");
        let message = e.message();
        let listed = message
            .split_once("expected one of ")
            .map(|(_, list)| list)
            .unwrap_or_else(|| panic!("no field list in {message:?}"));
        let fields: Vec<String> = listed
            .split(", ")
            .map(|f| f.trim_matches('`').to_owned())
            .collect();
        let mut keys = keys();
        keys.extend(FILE_ONLY_KEYS.iter().map(|k| (*k).to_owned()));
        keys.sort();
        let mut fields_sorted = fields.clone();
        fields_sorted.sort();
        assert_eq!(fields_sorted, keys);
    }

    #[test]
    fn an_empty_file_gives_what_no_file_gives() {
        let none = Settings::combine(&cli(&[]), None).expect("defaults");
        let empty = settings(&[], "").expect("empty file");
        assert_eq!(empty, none);
        let args = &none.args;
        assert_eq!(args.port, Some(2121));
        assert_eq!(args.root, PathBuf::from("server"));
        assert_eq!(args.anonymous, Some(AnonymousArg::Write));
        assert_eq!(args.max_per_ip, Some(0));
        assert_eq!(none.origin("port"), Origin::Default);
    }

    #[test]
    fn the_file_gives_its_values_and_their_lines() {
        let s = settings(
            &[],
            "# a comment\nport = 21\nroot = \"/srv/ftp\"\nworkers = 3\n\
             pasv-ports = \"50000-50010\"\nfailed-login-delay = 2\nverbose = true\n",
        )
        .expect("settings");
        assert_eq!(s.args.port, Some(21));
        assert_eq!(s.args.root, PathBuf::from("/srv/ftp"));
        assert_eq!(s.args.workers, 3);
        assert_eq!(s.args.pasv_ports, Some(50000..=50010));
        assert_eq!(s.args.failed_login_delay, 2.0);
        assert!(s.args.verbose);
        assert_eq!(s.log_level(), log::LevelFilter::Debug);
        assert_eq!(s.origin("port"), at_line(2));
        assert_eq!(s.origin("verbose"), at_line(7));
        assert_eq!(s.origin("grace"), Origin::Default);
    }

    #[test]
    fn proxy_protocol_and_trusted_proxies_from_the_file_and_the_command_line() {
        use simple_ftp::server::ProxyMode;
        let s = settings(
            &[],
            "proxy-protocol = \"required\"\ntrusted-proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n",
        )
        .expect("settings");
        let config = s.server_config().expect("config");
        assert_eq!(config.proxy_protocol, ProxyMode::Required);
        let shown: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32"]);
        assert_eq!(s.origin("trusted-proxies"), at_line(2));
        // One comma-separated string, as on the command line.
        let s = settings(
            &[],
            "proxy-protocol = \"optional\"\ntrusted-proxies = \"10.0.0.0/8,::1\"\n",
        )
        .expect("settings");
        assert_eq!(s.args.trusted_proxies.len(), 2);
        let s = settings(
            &[
                "--proxy-protocol",
                "optional",
                "--trusted-proxies",
                "127.0.0.1,::1",
            ],
            "",
        )
        .expect("settings");
        assert_eq!(s.args.trusted_proxies.len(), 2);
        // What check-config prints reads back the same.
        let printed = s.to_toml().expect("toml");
        assert!(
            printed.contains("\ntrusted-proxies = [\"127.0.0.1/32\", \"::1/128\"]\n"),
            "{printed}"
        );
        assert!(
            printed.contains("\nproxy-protocol = \"optional\"\n"),
            "{printed}"
        );
        let again = settings(&[], &printed).expect("printed settings");
        assert_eq!(again.args.trusted_proxies, s.args.trusted_proxies);
    }

    #[test]
    fn proxy_protocol_needs_trusted_proxies_and_bad_blocks_are_refused() {
        assert_eq!(
            error("proxy-protocol = \"required\"\n"),
            "ftp.toml:1: proxy-protocol: needs trusted-proxies as well"
        );
        let e = error("proxy-protocol = \"optional\"\ntrusted-proxies = [\"10.0.0.1/8\"]\n");
        assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
        assert!(e.contains("ftp.toml:2"), "{e}");
    }

    #[test]
    fn pasv_address_takes_an_ipv4_address_or_a_host_name() {
        let s = settings(&[], "pasv-address = \"192.0.2.1\"\n").expect("settings");
        assert_eq!(
            s.pasv_address().expect("address"),
            Some("192.0.2.1".parse().expect("ip"))
        );
        let s = settings(&[], "pasv-address = \"localhost\"\n").expect("settings");
        assert_eq!(
            s.pasv_address().expect("resolves"),
            Some(std::net::Ipv4Addr::LOCALHOST)
        );
        let s = settings(&[], "pasv-address = \"no-such-host.invalid\"\n").expect("settings");
        assert!(s.pasv_address().is_err());
        assert!(error("pasv-address = \"::1\"\n").contains("IPv4"));
        assert!(error("pasv-address = \"a b\"\n").contains("host name"));
    }

    #[test]
    fn a_flag_on_the_command_line_beats_the_file_even_at_its_default() {
        let s = settings(&["--port", "2121"], "port = 21\n").expect("settings");
        assert_eq!(s.args.port, Some(2121));
        assert_eq!(s.origin("port"), Origin::CommandLine);
        let s = settings(&["--root", "server"], "root = \"/srv\"\n").expect("settings");
        assert_eq!(s.args.root, PathBuf::from("server"));
        // Without the flag the file's value holds.
        let s = settings(&[], "port = 21\n").expect("settings");
        assert_eq!(s.args.port, Some(21));
    }

    #[test]
    fn the_positional_port_beats_the_file() {
        let s = settings(&["2000"], "port = 21\n").expect("settings");
        assert_eq!(s.args.port, Some(2000));
        assert_eq!(s.origin("port"), Origin::CommandLine);
        // --port still beats the positional PORT, as before.
        let s = settings(&["2000", "--port", "2001"], "port = 21\n").expect("settings");
        assert_eq!(s.args.port, Some(2001));
    }

    #[test]
    fn a_switch_on_the_command_line_sets_aside_the_keys_it_conflicts_with() {
        let s = settings(&["-q"], "verbose = true\n").expect("settings");
        assert!(s.args.quiet && !s.args.verbose);
        let s = settings(&["-v"], "quiet = true\n").expect("settings");
        assert!(s.args.verbose && !s.args.quiet);
        assert_eq!(s.log_level(), log::LevelFilter::Debug);
    }

    #[test]
    fn anonymous_and_max_per_ip_follow_the_bind_address_unless_set() {
        let s = settings(&[], "bind = \"0.0.0.0\"\n").expect("settings");
        assert_eq!(s.args.anonymous, Some(AnonymousArg::Read));
        assert_eq!(s.args.max_per_ip, Some(16));
        assert_eq!(s.origin("anonymous"), Origin::Default);
        let s = settings(
            &[],
            "bind = \"0.0.0.0\"\nanonymous = \"off\"\nmax-per-ip = 8\n",
        )
        .expect("settings");
        assert_eq!(s.args.anonymous, Some(AnonymousArg::Off));
        assert_eq!(s.args.max_per_ip, Some(8));
        assert_eq!(s.origin("max-per-ip"), at_line(3));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line_and_a_hint() {
        let e = file("port = 21\n\nmax_per_ip = 8\n").expect_err("unknown key");
        assert!(
            matches!(&e, ConfigError::UnknownKey { line: 3, key, .. } if key == "max_per_ip"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "ftp.toml:3: unknown key `max_per_ip`; did you mean `max-per-ip`? \
             (keys are spelled as the long flags)"
        );
        let e = error("port = 21\nworkerz = 2\n");
        assert!(
            e.starts_with("ftp.toml:2: unknown key `workerz`; the keys are"),
            "{e}"
        );
        let e = error("config = \"other.toml\"\n");
        assert!(e.ends_with("a config file cannot name another"), "{e}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_with_its_line() {
        assert_eq!(
            error("root = \"/srv\"\nport = \"21\"\n"),
            "ftp.toml:2: port: invalid type: string \"21\", expected an integer from 0 to 65535"
        );
        assert_eq!(
            error("quiet = 1\n"),
            "ftp.toml:1: quiet: invalid type: integer `1`, expected a boolean"
        );
        assert_eq!(
            error("root = 7\n"),
            "ftp.toml:1: root: invalid type: integer `7`, expected path string"
        );
        let e = error("\n[port]\nx = 1\n");
        assert!(e.starts_with("ftp.toml:2: port: invalid type: map"), "{e}");
    }

    #[test]
    fn a_bad_value_is_named_with_its_line() {
        assert_eq!(
            error("port = 70000\n"),
            "ftp.toml:1: port: invalid value: integer `70000`, expected an integer from 0 to 65535"
        );
        assert_eq!(
            error("workers = -1\n"),
            "ftp.toml:1: workers: invalid value: integer `-1`, expected an integer, 0 or more"
        );
        assert_eq!(
            error("bind = \"1.2.3\"\n"),
            "ftp.toml:1: bind: invalid IP address syntax"
        );
        assert_eq!(
            error("pasv-ports = \"60000-50000\"\n"),
            "ftp.toml:1: pasv-ports: \"60000-50000\": expected 1 <= MIN <= MAX"
        );
        assert_eq!(
            error("anonymous = \"rw\"\n"),
            "ftp.toml:1: anonymous: unknown variant `rw`, expected one of `off`, `read`, `write`"
        );
        // Passes serde, refused by the flag's own parser as on the command line.
        assert_eq!(
            error("port = 1\nroot = \"\"\n"),
            "ftp.toml:2: root: must not be empty"
        );
        // Refused after the merge, at the line still.
        assert_eq!(
            error("\nworkers = 0\n"),
            "ftp.toml:2: workers: must be at least 1"
        );
        assert_eq!(
            error("failed-login-delay = nan\n"),
            "ftp.toml:1: failed-login-delay: must be between 0 and 60 seconds"
        );
        let e = settings(&["--workers", "0"], "").expect_err("workers");
        assert_eq!(e.to_string(), "--workers: must be at least 1");
    }

    #[test]
    fn text_that_is_not_toml_is_refused_at_its_line() {
        assert_eq!(
            file("port = 1\nport = 2\n").expect_err("dup").to_string(),
            "ftp.toml:2: duplicate key `port`"
        );
        let e = file("port = 1\nroot = \n").expect_err("syntax");
        assert!(
            matches!(e, ConfigError::Syntax { line: 2, .. }),
            "{e:?}: {e}"
        );
    }

    #[test]
    fn keys_that_cannot_go_together_are_named_with_their_lines() {
        assert_eq!(
            error("quiet = true\nport = 1\nverbose = true\n"),
            "ftp.toml:3: verbose: cannot be used with quiet (from ftp.toml:1)"
        );
        assert_eq!(
            error("port = 1\nrequire-tls = true\n"),
            "ftp.toml:2: require-tls: needs tls-cert and tls-key as well"
        );
        assert_eq!(
            error("tls-cert = \"cert.pem\"\n"),
            "ftp.toml:1: tls-cert: needs tls-key as well"
        );
        // What the file needs may come from the command line.
        let s = settings(
            &["--tls-cert", "c.pem", "--tls-key", "k.pem"],
            "require-tls = true\n",
        )
        .expect("settings");
        assert!(s.args.require_tls);
        assert_eq!(s.origin("tls-cert"), Origin::CommandLine);
    }

    #[test]
    fn booleans_are_switches_and_arrays_repeat_the_flag() {
        let words = |value: &str| {
            let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .expect("toml")
                .remove("v")
                .expect("v");
            flag_words("key", &value)
        };
        assert_eq!(words("true"), Ok(vec![OsString::from("--key")]));
        assert_eq!(words("false"), Ok(Vec::new()));
        assert_eq!(words("\"a b\""), Ok(vec![OsString::from("--key=a b")]));
        assert_eq!(words("-3"), Ok(vec![OsString::from("--key=-3")]));
        assert_eq!(words("0.5"), Ok(vec![OsString::from("--key=0.5")]));
        assert_eq!(
            words("[1, 2]"),
            Ok(vec![OsString::from("--key=1"), OsString::from("--key=2")])
        );
        assert!(words("[[1]]").is_err());
        assert!(words("{ a = 1 }").is_err());
    }

    #[test]
    fn printed_settings_read_back_as_the_same_settings() {
        let s = settings(
            &["--grace", "5"],
            "port = 0\nroot = \"/tmp/a \\\"quoted\\\" dir\"\nbind = \"::1\"\n\
             pasv-ports = \"50000-50010\"\npasv-address = \"192.0.2.1\"\n\
             users = \"users.toml\"\nanonymous = \"off\"\nfailed-login-delay = 0.25\n\
             tls-cert = \"c.pem\"\ntls-key = \"k.pem\"\nrequire-tls = true\nquiet = true\n",
        )
        .expect("settings");
        let printed = s.to_toml().expect("toml");
        assert!(printed.contains("\ngrace = 5\n"), "{printed}");
        assert!(printed.contains("\nport = 0\n"), "{printed}");
        assert!(printed.contains("\nmax-per-ip = 0\n"), "{printed}");
        let again = settings(&[], &printed).expect("printed settings parse");
        assert_eq!(again.args, s.args);
        assert_eq!(again.to_toml().expect("toml"), printed);
        // Every key is there, set or not.
        for key in keys() {
            assert!(
                printed.contains(&format!("\n{key} = "))
                    || printed.contains(&format!("\n# {key}: not set\n")),
                "{key} missing from {printed}"
            );
        }
    }

    /// The keys of the example: `key = ...` and `#key = ...` lines.
    fn example_keys() -> Vec<(usize, String, bool)> {
        EXAMPLE
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                let (commented, rest) = match line.strip_prefix('#') {
                    Some(rest) if !rest.starts_with(' ') && !rest.is_empty() => (true, rest),
                    Some(_) => return None,
                    None => (false, line),
                };
                let (key, _) = rest.split_once(" = ")?;
                Some((i, key.to_owned(), commented))
            })
            .collect()
    }

    #[test]
    fn the_example_has_every_key_once_each_with_a_comment_line() {
        let found = example_keys();
        let mut names: Vec<String> = found.iter().map(|(_, k, _)| k.clone()).collect();
        // In the order of --help, so the file reads like it.
        assert_eq!(names, keys(), "the example's keys are not the flags");
        names.dedup();
        assert_eq!(names.len(), found.len());
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        for (i, key, _) in &found {
            let above = i.checked_sub(1).map(|j| lines[j]).unwrap_or_default();
            assert!(above.starts_with("# "), "no comment line above {key}");
        }
    }

    #[test]
    fn the_example_is_at_the_defaults() {
        let example = settings(&[], EXAMPLE).expect("the example");
        let defaults = Settings::combine(&cli(&[]), None).expect("defaults");
        assert_eq!(example.args, defaults.args);
        assert_eq!(example.to_toml().ok(), defaults.to_toml().ok());
        // The keys set in it have their line; the commented ones are defaults.
        for (i, key, commented) in example_keys() {
            let want = if commented {
                Origin::Default
            } else {
                at_line(i + 1)
            };
            assert_eq!(example.origin(&key), want, "{key}");
        }
    }

    #[test]
    fn the_examples_commented_values_are_valid_too() {
        let uncommented: String = EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(rest) if !rest.starts_with(' ') && !rest.is_empty() => rest,
                _ => line,
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        let s = settings(&[], &uncommented).expect("every key set");
        assert_eq!(s.args.pasv_ports, Some(50000..=50100));
        assert_eq!(s.args.anonymous, Some(AnonymousArg::Read));
        assert!(s.args.tls_cert.is_some() && s.args.users.is_some());
    }

    #[test]
    fn the_reloadable_keys_are_keys() {
        let keys = keys();
        for key in RELOADABLE {
            assert!(keys.contains(&key.to_owned()), "{key} is no key");
        }
        for fixed in [
            "port",
            "bind",
            "root",
            "workers",
            "idle-timeout",
            "require-tls",
        ] {
            assert!(!RELOADABLE.contains(&fixed), "{fixed}");
        }
    }

    #[test]
    fn the_example_lists_the_reloadable_keys() {
        let listed: Vec<String> = EXAMPLE
            .lines()
            .filter_map(|line| line.strip_prefix("#   "))
            .flat_map(|line| line.split([',', ' ', '.']))
            .filter(|word| keys().iter().any(|k| k == *word))
            .map(str::to_owned)
            .collect();
        let mut want: Vec<String> = RELOADABLE.iter().map(|k| (*k).to_owned()).collect();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        want.sort();
        assert_eq!(listed_sorted, want);
    }

    #[test]
    fn a_reload_takes_the_reloadable_keys_and_keeps_the_others() {
        let old = settings(
            &["--grace", "5"],
            "port = 21
workers = 4
max-per-ip = 3
",
        )
        .expect("old");
        let new = settings(
            &["--grace", "5"],
            "port = 2100
workers = 4
max-per-ip = 1
anonymous = \"off\"
\
             users = \"u.toml\"\nidle-timeout = 9\ngrace = 7\n",
        )
        .expect("new");
        let reload = old.reload(new).expect("reload");
        let args = reload.settings.args();
        // Taken.
        assert_eq!(args.max_per_ip, Some(1));
        assert_eq!(args.anonymous, Some(AnonymousArg::Off));
        assert_eq!(args.users, Some(PathBuf::from("u.toml")));
        assert_eq!(reload.settings.origin("max-per-ip"), at_line(3));
        // Kept, and said so with where the new value came from.
        assert_eq!(args.port, Some(21));
        assert_eq!(args.idle_timeout, 300);
        assert_eq!(reload.settings.origin("port"), at_line(1));
        assert_eq!(reload.settings.origin("idle-timeout"), Origin::Default);
        let kept: Vec<String> = reload.kept.iter().map(ToString::to_string).collect();
        assert_eq!(kept, ["ftp.toml:1: port", "ftp.toml:6: idle-timeout"]);
        // The command line still wins over the file, on a reload too.
        assert_eq!(args.grace, 5);
        assert_eq!(
            reload.changed,
            [
                "users = \"u.toml\" (was not set)",
                "anonymous = \"off\" (was \"write\")",
                "max-per-ip = 1 (was 3)"
            ]
        );
        // Nothing changed: nothing kept, nothing listed.
        let again = reload
            .settings
            .reload(reload.settings.clone())
            .expect("again");
        assert!(again.kept.is_empty() && again.changed.is_empty());
        assert_eq!(again.settings, reload.settings);
    }

    #[test]
    fn a_reload_may_change_the_certificate_but_not_turn_tls_on_or_off() {
        let tls = "tls-cert = \"a.pem\"\ntls-key = \"a.key\"\n";
        let plain = settings(&[], "").expect("plain");
        let reload = plain
            .reload(settings(&[], tls).expect("tls"))
            .expect("reload");
        assert_eq!(reload.settings.args().tls_cert, None);
        let kept: Vec<&str> = reload.kept.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(kept, ["tls-cert", "tls-key"]);

        let secure = settings(&[], tls).expect("tls");
        let other = settings(&[], "tls-cert = \"b.pem\"\ntls-key = \"b.key\"\n").expect("b");
        let reload = secure.reload(other).expect("reload");
        assert_eq!(
            reload.settings.args().tls_cert,
            Some(PathBuf::from("b.pem"))
        );
        assert_eq!(reload.settings.args().tls_key, Some(PathBuf::from("b.key")));
        assert!(reload.kept.is_empty());
        let reload = secure.reload(plain).expect("reload");
        assert_eq!(
            reload.settings.args().tls_cert,
            Some(PathBuf::from("a.pem"))
        );
        assert_eq!(reload.kept.len(), 2);
    }

    #[test]
    fn the_root_must_be_a_directory_or_one_to_make() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"x").expect("write");
        assert!(check_root(dir.path()).is_ok());
        assert!(check_root(&dir.path().join("new/deeper")).is_ok());
        assert!(check_root(Path::new("relative-and-new")).is_ok());
        let e = check_root(&plain).expect_err("a file");
        assert!(e.ends_with("is not a directory"), "{e}");
        let e = check_root(&plain.join("srv")).expect_err("below a file");
        assert!(e.contains("Not a directory"), "{e}");

        let text = format!("port = 0\nroot = {:?}\n", plain.join("srv"));
        let e = settings(&[], &text)
            .expect("settings")
            .server_config()
            .expect_err("root below a file");
        assert!(e.to_string().starts_with("ftp.toml:2: root: "), "{e}");
    }

    #[test]
    fn files_the_settings_name_are_loaded_and_named_when_they_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let missing = dir.path().join("users.toml");
        let text = format!("root = {root:?}\n\nusers = {missing:?}\n");
        let e = settings(&[], &text)
            .expect("settings")
            .server_config()
            .expect_err("no users file");
        assert!(
            e.to_string().starts_with("ftp.toml:3: users: cannot read"),
            "{e}"
        );
        let key = dir.path().join("key.pem");
        let text = format!("root = {root:?}\ntls-cert = {missing:?}\ntls-key = {key:?}\n");
        let e = settings(&[], &text)
            .expect("settings")
            .server_config()
            .expect_err("no certificate");
        assert!(e.to_string().starts_with("ftp.toml:2: tls-cert: "), "{e}");
        // Nothing was made.
        assert!(!root.exists());

        let config = settings(&[], &format!("root = {root:?}\nport = 0\nworkers = 2\n"))
            .expect("settings")
            .server_config()
            .expect("config");
        assert_eq!(config.root, root);
        assert_eq!(config.workers, 2);
        assert_eq!(config.bind.port(), 0);
        assert!(!root.exists());
    }
}
