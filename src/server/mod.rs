//! The server: bind, then ask the address, then run; the acceptor loop and shutdown.
//!
//! [`Server::bind`] opens the listening socket and the root. [`Server::run`] starts a
//! fixed pool of worker threads ([`pool`]) and the parker ([`park`]), then runs the
//! acceptor on the calling thread: each accepted connection goes over a crossbeam
//! channel to the pool, unless `--max-connections` sessions are open (parked ones
//! count), when the acceptor answers `421` at once and closes, so a client never waits
//! without an answer. A worker serves a session while it has work; a session waiting
//! for its next command is parked, and comes back over the same channel when its
//! connection has something to read or a deadline passed.
//!
//! Behind a load balancer (`proxy`, `--proxy-protocol`), a connection from a trusted
//! proxy is counted in the total by the acceptor and handed over as it is: the worker
//! reads its PROXY header, and the client it names is the session's peer from then on
//! (its `--max-per-ip` count, its PORT targets, its data connections, its log lines).
//!
//! Shutdown follows ownership. [`ShutdownHandle::shutdown`] sets a flag, connects once to
//! the listener to wake `accept()`, and shuts down the reading half of every control
//! connection: idle sessions wake up, see the flag and say `421`, while a session in the
//! middle of a transfer finishes it first; the parker tells every parked session `421`
//! and ends. The acceptor and the parker drop their senders, the workers drain and exit, and `run` waits for them up to the grace period. Past it, every
//! remaining connection is shut down in both directions, which makes the blocked
//! transfers fail and clean up (an unfinished upload removes its temporary file).
//!
//! [`ReloadHandle::replace`] swaps the settings that may change while the server runs
//! ([`Reloadable`]: accounts, anonymous access, limits, grace, the TLS certificate);
//! open sessions keep what they were given.
//! Beside them, when asked for: the metrics' HTTP thread ([`metrics`], `--metrics`),
//! which answers until the run ends (so `/healthz` says `503` through the grace
//! period), and the transfer log's writer ([`xferlog`], `--xferlog`), which writes the
//! lines sessions hand it and finishes after the last session.

pub mod accounts;
pub mod hooks;
mod listing;
pub mod logging;
mod metrics;
mod park;
mod pool;
mod proxy;
mod reload;
mod session;
mod xferlog;

pub use self::proxy::{Cidr, CidrError, ProxyMode};
pub use self::reload::{ReloadError, ReloadHandle, Reloadable};

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use self::accounts::{Anonymous, Users};
use self::hooks::{HookStats, Hooks};
use self::metrics::{Metrics, SessionResult};
use self::xferlog::Xferlog;
use crate::error::{Error, Result};
use crate::locks::LockTable;
use crate::protocol::{Reply, ReplyCode};
use crate::storage::local::Local;
use crate::storage::Backend;

/// Everything the server can be configured with. [`Config::default`] is the lab's setup:
/// `./server` on 127.0.0.1:2121.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory served as `/` (created if missing), unless [`Config::storage`]
    /// gives another backend.
    pub root: PathBuf,
    /// The storage served as `/` instead of the local directory [`Config::root`]
    /// (another backend, made before the server; see [`crate::storage`]). `None`:
    /// the local directory.
    pub storage: Option<Arc<dyn Backend>>,
    /// The address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// How many worker threads run commands and transfers at once; a session waiting
    /// for its next command holds none.
    pub workers: usize,
    /// Open sessions past which a newcomer gets `421`.
    pub max_connections: usize,
    /// A connection that has not logged in this long after connecting gets `421` and is
    /// closed, whatever it sent meanwhile.
    pub login_timeout: Duration,
    /// A session that sends no complete command for this long gets `421` and is closed.
    pub idle_timeout: Duration,
    /// How long a data connection may take to arrive, and how long a transfer may
    /// stall (no byte moving) before it is aborted.
    pub data_timeout: Duration,
    /// How long a transfer waits for a file that another transfer holds before `450`.
    pub lock_wait: Duration,
    /// On shutdown, how long running transfers may take to finish.
    pub grace: Duration,
    /// Ports for passive data connections; `None` lets the system choose.
    pub pasv_ports: Option<RangeInclusive<u16>>,
    /// The IPv4 address announced in PASV replies (for NAT); default: the control
    /// connection's local address.
    pub pasv_address: Option<Ipv4Addr>,
    /// The accounts that may log in with a password.
    pub users: Users,
    /// Whether `anonymous` may log in, and to do what.
    pub anonymous: Anonymous,
    /// Sessions one client address may have open at once; 0 for no limit.
    pub max_per_ip: usize,
    /// The pause after a failed PASS, which slows down password guessing.
    pub failed_login_delay: Duration,
    /// Failed PASS commands after which the connection is closed.
    pub max_login_failures: u32,
    /// The TLS configuration for AUTH TLS (explicit FTPS), if the server has a
    /// certificate.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Refuse logins on plain control connections and clear data connections.
    pub require_tls: bool,
    /// Passive listeners the server may have open at once (each a descriptor, held
    /// while a session waits for its data connection or keeps its port for the next
    /// transfer); a PASV/EPSV past it gets `425`. 0 for no limit.
    pub max_passive_listeners: usize,
    /// A second port, on the same address, where TLS starts at the first byte
    /// (implicit FTPS, the `ftps://` of curl, lftp and FileZilla); 0 picks a free one.
    /// Needs [`Config::tls`].
    pub implicit_tls_port: Option<u16>,
    /// Accept TLS data connections that do not resume the control connection's
    /// session (for clients such as Python's ftplib, which never resume). Off by
    /// default: resumption proves the data connection comes from the same client.
    pub tls_without_resumption: bool,
    /// A line of shell (`sh -c`) run after every successful STOR, APPE and STOU, with
    /// the upload's facts in `FTP_*` environment variables (see [`hooks`]).
    pub on_upload: Option<String>,
    /// How many upload hooks run at once.
    pub hook_workers: usize,
    /// How long an upload hook may run before its process group is killed.
    pub hook_timeout: Duration,
    /// Where to serve the metrics over HTTP (`/metrics` in the Prometheus text format,
    /// `/healthz`); `None` serves none (they are counted all the same).
    pub metrics: Option<SocketAddr>,
    /// The transfer log to append a line to per file transfer (wu-ftpd's xferlog
    /// format); `None` writes none.
    pub xferlog: Option<PathBuf>,
    /// Whether connections start with a PROXY protocol header naming the real client
    /// (see [`ProxyMode`]); believed only from [`Config::trusted_proxies`].
    pub proxy_protocol: ProxyMode,
    /// The addresses whose PROXY headers are believed (the load balancers).
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            root: PathBuf::from("server"),
            storage: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 2121)),
            workers: 64,
            max_connections: 10_000,
            login_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(30),
            lock_wait: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            pasv_ports: None,
            pasv_address: None,
            users: Users::default(),
            anonymous: Anonymous::Write,
            max_per_ip: 0,
            failed_login_delay: Duration::from_secs(1),
            max_login_failures: 3,
            tls: None,
            require_tls: false,
            implicit_tls_port: None,
            max_passive_listeners: 0,
            tls_without_resumption: false,
            on_upload: None,
            hook_workers: 2,
            hook_timeout: Duration::from_secs(60),
            metrics: None,
            xferlog: None,
            proxy_protocol: ProxyMode::Off,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What the workers share: configuration, root, lock table and the shutdown state.
#[derive(Debug)]
struct Shared {
    /// The configuration as the server started. Its reloadable parts are read from
    /// `live` instead (its `users` is emptied at start, so a stale read finds nobody).
    config: Config,
    /// The settings a reload replaces: accounts, anonymous access, limits, grace, TLS.
    live: reload::Live,
    /// Where the files live: `/` of every session without a home of its own.
    storage: Arc<dyn Backend>,
    locks: LockTable,
    /// Set once shutdown begins: no new sessions, idle ones get `421`.
    stopping: AtomicBool,
    /// Set when the grace period is over: waits for data connections give up.
    forced: AtomicBool,
    /// Every open control connection (and its data connection during a transfer), so
    /// shutdown can wake or cut them.
    conns: Mutex<Connections>,
    /// Rotates through the passive port range.
    next_pasv: AtomicU64,
    /// Passive listeners open now (see [`Config::max_passive_listeners`]).
    passive_listeners: Arc<AtomicUsize>,
    /// Sessions handed to the pool and not yet finished, in all and per address.
    admission: Mutex<Admission>,
    /// HASH commands that may run at once.
    hash_slots: Slots,
    /// Workers reading a PROXY header now (see the session's start).
    header_reads: AtomicUsize,
    /// Written to wake the parker: a session handed over, or shutdown.
    park_wake: OwnedFd,
    /// The upload hooks' threads and queue, when `--on-upload` is set.
    hooks: Option<Hooks>,
    /// What the upload hooks did (all zero without them).
    hook_stats: Arc<HookStats>,
    /// What the server counts, served by `--metrics`.
    metrics: Metrics,
    /// Where finished transfers are written (`--xferlog`).
    xferlog: Option<Xferlog>,
}

impl metrics::Source for Shared {
    fn page(&self) -> std::result::Result<String, metrics::MetricsError> {
        let connected = self.conns.lock().open.len();
        self.metrics.sync_hooks(&self.hook_stats.counts());
        self.metrics.render(connected)
    }

    fn accepting(&self) -> bool {
        !self.stopping()
    }
}

/// A fixed number of slots for work that costs CPU in proportion to what a client
/// asks (HASH of a large file): more of it at once than there are cores only makes
/// every one of them slower.
#[derive(Debug)]
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl Slots {
    /// About one slot per core.
    fn per_core() -> Slots {
        Slots {
            used: Mutex::new(0),
            freed: Condvar::new(),
            max: thread::available_parallelism().map_or(2, std::num::NonZero::get),
        }
    }

    /// A slot, held until the guard drops, waiting up to `wait` for one to be free;
    /// `None` when none was.
    fn take(&self, wait: Duration) -> Option<SlotGuard<'_>> {
        let deadline = Instant::now() + wait;
        let mut used = self.used.lock();
        while *used >= self.max {
            if self.freed.wait_until(&mut used, deadline).timed_out() && *used >= self.max {
                return None;
            }
        }
        *used += 1;
        Some(SlotGuard(self))
    }
}

/// A taken slot of [`Slots`].
struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.used.lock() -= 1;
        self.0.freed.notify_one();
    }
}

/// How the acceptor counted a connection in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admitted {
    /// In the total and under this client address.
    Client(IpAddr),
    /// From the trusted proxy at this address: in the total only, its PROXY header
    /// (and so its client) still to be read, on a worker.
    Proxied(IpAddr),
}

/// Open sessions (running or queued), counted to refuse the ones past the limits.
#[derive(Debug, Default)]
struct Admission {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why the acceptor turned a connection away.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Busy,
    PerIp,
}

#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    open: HashMap<u64, Registered>,
}

/// What the end of the grace period can reach of a session: a copy of its data
/// connection during a transfer. Its control connection needs no copy: a parked
/// session is told `421` by the parker, and one on a worker sees the shutdown flag
/// within its linger (every wait for a command, or for a TLS handshake, is that short),
/// so an idle session costs one descriptor.
///
/// Each session has its own slot, shared by the registry and the session's
/// [`ConnToken`]: a transfer sets and clears it twice per transfer, and through one
/// lock for every session those writes queued up behind each other under load (a
/// futex wait and wake each, measured as the most frequent wait of small uploads).
/// The registry's lock is now taken only when a session comes and goes.
type Registered = Arc<Mutex<Option<TcpStream>>>;

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Wakes the parker's wait (it reads the count and looks at what changed).
    fn wake_parker(&self) {
        let _ = rustix::io::write(&self.park_wake, &1u64.to_ne_bytes());
    }

    /// The reloadable settings in force now.
    fn live(&self) -> Arc<Reloadable> {
        self.live.get()
    }

    /// Counts a new session from `ip` in, unless that would pass `--max-connections`
    /// sessions in all or the per-address limit.
    fn admit(&self, ip: IpAddr) -> std::result::Result<(), Refusal> {
        let live = self.live();
        let mut adm = self.admission.lock();
        if adm.total >= live.max_connections.max(1) {
            return Err(Refusal::Busy);
        }
        let max_per_ip = live.max_per_ip;
        let mine = adm.per_ip.entry(ip).or_insert(0);
        if max_per_ip > 0 && *mine >= max_per_ip {
            return Err(Refusal::PerIp);
        }
        *mine += 1;
        adm.total += 1;
        Ok(())
    }

    /// Counts a new connection from a trusted proxy in, unless that would pass
    /// `--max-connections`: its client, and so its per-address count, is known only
    /// once its header is read ([`Shared::admit_client`]).
    fn admit_proxied(&self) -> std::result::Result<(), Refusal> {
        let live = self.live();
        let mut adm = self.admission.lock();
        if adm.total >= live.max_connections.max(1) {
            return Err(Refusal::Busy);
        }
        adm.total += 1;
        Ok(())
    }

    /// Counts the client `ip` that a proxied connection's header named, unless it has
    /// `--max-per-ip` sessions already. The connection was counted in the total by
    /// [`Shared::admit_proxied`]; on refusal it stays counted there, for
    /// [`Shared::release_admitted`] to take out.
    fn admit_client(&self, ip: IpAddr) -> std::result::Result<(), Refusal> {
        let max_per_ip = self.live().max_per_ip;
        let mut adm = self.admission.lock();
        let mine = adm.per_ip.entry(ip).or_insert(0);
        if max_per_ip > 0 && *mine >= max_per_ip {
            if *mine == 0 {
                adm.per_ip.remove(&ip);
            }
            return Err(Refusal::PerIp);
        }
        *mine += 1;
        Ok(())
    }

    /// Counts a finished session from `ip` out.
    fn release(&self, ip: IpAddr) {
        let mut adm = self.admission.lock();
        adm.total = adm.total.saturating_sub(1);
        if let Some(n) = adm.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                adm.per_ip.remove(&ip);
            }
        }
    }

    /// Counts out a connection that never became a session, as it was counted in.
    fn release_admitted(&self, admitted: Admitted) {
        match admitted {
            Admitted::Client(ip) => self.release(ip),
            Admitted::Proxied(_) => {
                let mut adm = self.admission.lock();
                adm.total = adm.total.saturating_sub(1);
            }
        }
    }

    /// How a connection from `ip` is to be taken in under `--proxy-protocol`:
    /// `None` when it is to be dropped (`required`, and `ip` is not trusted).
    fn arrival(&self, ip: IpAddr) -> Option<Admitted> {
        let config = &self.config;
        let trusted = || proxy::is_trusted(&config.trusted_proxies, ip);
        match config.proxy_protocol {
            ProxyMode::Off => Some(Admitted::Client(ip)),
            _ if trusted() => Some(Admitted::Proxied(ip)),
            ProxyMode::Optional => Some(Admitted::Client(ip)),
            ProxyMode::Required => None,
        }
    }

    /// What to expect of a connection from the trusted proxy at `ip`, or `None` when
    /// no header is to be read from it (PROXY protocol off, or `ip` not trusted).
    fn header_expected(&self, ip: IpAddr) -> Option<proxy::Expect> {
        let config = &self.config;
        match config.proxy_protocol {
            ProxyMode::Off => None,
            _ if !proxy::is_trusted(&config.trusted_proxies, ip) => None,
            ProxyMode::Optional => Some(proxy::Expect::MaybeHeader),
            ProxyMode::Required => Some(proxy::Expect::Header),
        }
    }

    /// Registers a session. Refused (`None`) when shutdown has already begun.
    fn register(&self, ip: IpAddr) -> Option<ConnToken<'_>> {
        let mut conns = self.conns.lock();
        if self.stopping() {
            return None;
        }
        let id = conns.next_id;
        conns.next_id += 1;
        let data = Registered::default();
        conns.open.insert(id, Arc::clone(&data));
        Some(ConnToken {
            shared: self,
            id,
            ip,
            data,
        })
    }

    /// At the end of the grace period: cuts the data connection of every transfer
    /// still running, which makes it fail and clean up.
    fn cut_transfers(&self) {
        let conns = self.conns.lock();
        for slot in conns.open.values() {
            // Errors mean the connection is already gone, which is what we want.
            if let Some(data) = &*slot.lock() {
                let _ = data.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A registered control connection; deregisters (and counts its session out of the
/// admission counts) on drop.
struct ConnToken<'s> {
    shared: &'s Shared,
    id: u64,
    ip: IpAddr,
    /// This session's slot in the registry.
    data: Registered,
}

impl ConnToken<'_> {
    /// Records the data connection in use, so a forced shutdown can cut it.
    fn set_data(&self, data: Option<&TcpStream>) {
        let clone = data.and_then(|d| d.try_clone().ok());
        let old = std::mem::replace(&mut *self.data.lock(), clone);
        // Closed after the lock is let go.
        drop(old);
    }
}

impl ConnToken<'_> {
    /// The registry's id of the session, unique in this server's run.
    fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for ConnToken<'_> {
    fn drop(&mut self) {
        self.shared.conns.lock().open.remove(&self.id);
        self.shared.release(self.ip);
    }
}

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    /// The implicit FTPS listener, if there is one, and its address.
    implicit: Option<(TcpListener, SocketAddr)>,
    shared: Arc<Shared>,
    /// The metrics' HTTP listener and its address (`--metrics`).
    metrics: Option<(TcpListener, SocketAddr)>,
    /// The transfer log's writer (`--xferlog`), started by `run`.
    xferlog: Option<xferlog::Writer>,
}

/// Stops a running server from another thread (a signal handler, a test).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
    /// Where the acceptors listen, so that a connection wakes each of them.
    wake_addrs: Vec<SocketAddr>,
}

/// How a server run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// Sessions still running when the grace period ended, and cut off.
    pub cut_off: usize,
}

impl Server {
    /// Opens the root (creating it if missing; or takes [`Config::storage`]) and binds
    /// the listening socket.
    ///
    /// # Errors
    /// [`Error::Root`] when the root cannot be created or opened, [`Error::Bind`] when
    /// the address cannot be bound, [`Error::MetricsBind`] when the metrics' address
    /// cannot, [`Error::Xferlog`] when the transfer log cannot be opened.
    pub fn bind(mut config: Config) -> Result<Server> {
        let storage = match &config.storage {
            Some(storage) => Arc::clone(storage),
            None => Arc::new(Local::new(&config.root).map_err(|source| Error::Root {
                path: config.root.clone(),
                source,
            })?) as Arc<dyn Backend>,
        };
        let bind = config.bind;
        let listener =
            TcpListener::bind(bind).map_err(|source| Error::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr: bind, source })?;
        let implicit = match config.implicit_tls_port {
            None => None,
            Some(_) if config.tls.is_none() => return Err(Error::ImplicitTlsWithoutCertificate),
            Some(port) => {
                let at = SocketAddr::new(bind.ip(), port);
                let listener =
                    TcpListener::bind(at).map_err(|source| Error::Bind { addr: at, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| Error::Bind { addr: at, source })?;
                Some((listener, local))
            }
        };
        let park_wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| Error::Thread(e.into()))?;
        let metrics = Metrics::new().map_err(|e| Error::Metrics(e.to_string()))?;
        let metrics_listener = match config.metrics {
            Some(at) => {
                let bound = |source| Error::MetricsBind { addr: at, source };
                let listener = TcpListener::bind(at).map_err(bound)?;
                let addr = listener.local_addr().map_err(bound)?;
                // Tests and scripts read the port (for `--metrics 127.0.0.1:0`) from this line.
                log::info!("metrics on http://{addr}/metrics (and /healthz)");
                Some((listener, addr))
            }
            None => None,
        };
        let (xferlog, writer) = match &config.xferlog {
            Some(path) => {
                let failed = |source| Error::Xferlog {
                    path: path.clone(),
                    source,
                };
                let (log, writer) = xferlog::open(path).map_err(failed)?;
                (Some(log), Some(writer))
            }
            None => (None, None),
        };
        let hook_stats = Arc::new(HookStats::default());
        let hooks = match &config.on_upload {
            Some(command) => Some(
                Hooks::start(
                    command.clone(),
                    config.hook_workers,
                    config.hook_timeout,
                    hooks::QUEUE,
                    Arc::clone(&hook_stats),
                )
                .map_err(Error::Thread)?,
            ),
            None => None,
        };
        let live = reload::Live::new(Reloadable::of(&config));
        // Held by `live` now; the copy in `config` would only keep the argon2 memory
        // of the first users file alive after a reload.
        config.users = Users::default();
        let shared = Arc::new(Shared {
            park_wake,
            hooks,
            hook_stats,
            metrics,
            xferlog,
            config,
            live,
            storage,
            locks: LockTable::new(),
            hash_slots: Slots::per_core(),
            header_reads: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            conns: Mutex::new(Connections::default()),
            // Where the scrambled order of passive ports starts differs from run to run.
            next_pasv: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos().into())
                    ^ u64::from(std::process::id()),
            ),
            admission: Mutex::new(Admission::default()),
            passive_listeners: Arc::new(AtomicUsize::new(0)),
        });
        Ok(Server {
            listener,
            addr,
            implicit,
            shared,
            metrics: metrics_listener,
            xferlog: writer,
        })
    }

    /// The address the metrics are served on (`--metrics`; the real port when bound
    /// to port 0), if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The implicit FTPS address (with the real port when bound to port 0), if the
    /// server has one.
    pub fn implicit_tls_addr(&self) -> Option<SocketAddr> {
        self.implicit.as_ref().map(|(_, addr)| *addr)
    }

    /// The storage being served (its [`Backend::location`] of `/` says where).
    pub fn storage(&self) -> &Arc<dyn Backend> {
        &self.shared.storage
    }

    /// What the upload hooks did so far; the counts go on changing while the server
    /// runs (all zero when no hook is configured).
    pub fn hook_stats(&self) -> Arc<HookStats> {
        Arc::clone(&self.shared.hook_stats)
    }

    /// A handle that stops this server when asked.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let ports =
            std::iter::once(self.addr.port()).chain(self.implicit_tls_addr().map(|a| a.port()));
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
            wake_addrs: ports.map(|port| SocketAddr::new(ip, port)).collect(),
        }
    }

    /// A handle that replaces this server's reloadable settings while it runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until shut down, then waits for running transfers up to the grace period.
    ///
    /// # Errors
    /// [`Error::Thread`] when the worker threads cannot be started.
    pub fn run(mut self) -> Result<RunReport> {
        let writer = self.start_xferlog()?;
        let shared: &Shared = &self.shared;
        let (parker, parked) = park::Parker::new(shared);
        let metrics_done = AtomicBool::new(false);
        let report = thread::scope(|scope| {
            // Whichever way this closure ends, the metrics thread ends with it.
            let _metrics_done = SetOnDrop(&metrics_done);
            if let Some((listener, _)) = &self.metrics {
                let done = &metrics_done;
                thread::Builder::new()
                    .name("metrics".into())
                    .spawn_scoped(scope, move || metrics::serve(listener, shared, done))
                    .map_err(Error::Thread)?;
            }
            let config = &shared.config;
            let (tx, rx) = crossbeam_channel::unbounded::<pool::Work<'_>>();
            let pool = pool::Pool::start(scope, config.workers, &rx, shared, &parker)?;
            drop(rx);
            let to_pool = tx.clone();
            let parker = &parker;
            thread::Builder::new()
                .name("parker".into())
                .spawn_scoped(scope, move || park::run(shared, parker, &parked, &to_pool))
                .map_err(Error::Thread)?;
            log::info!(
                "serving {} on {} with {} workers, at most {} sessions",
                shared
                    .storage
                    .location(&crate::path::VirtualPath::root())
                    .display(),
                self.addr,
                config.workers,
                shared.live().max_connections
            );
            if let Some(command) = &config.on_upload {
                log::info!(
                    "upload hook: `{command}`, {} at a time, {} s each at most",
                    config.hook_workers.max(1),
                    config.hook_timeout.as_secs_f64()
                );
            }
            if let Some((implicit, at)) = &self.implicit {
                let tx = tx.clone();
                log::info!("implicit FTPS on {at}");
                thread::Builder::new()
                    .name("acceptor-tls".into())
                    .spawn_scoped(scope, move || {
                        accept_loop(shared, implicit, &tx, Entry::ImplicitTls)
                    })
                    .map_err(Error::Thread)?;
            }
            accept_loop(shared, &self.listener, &tx, Entry::Plain);
            drop(tx);
            shared.wake_parker();
            let deadline = Instant::now() + shared.live().grace;
            let cut_off = pool.join_until(deadline, || {
                let open = shared.conns.lock().open.len();
                if open > 0 {
                    log::warn!("grace period over: cutting off the remaining sessions");
                }
                shared.forced.store(true, Ordering::SeqCst);
                shared.cut_transfers();
                open
            });
            // The sessions are over: queued upload hooks run until the same deadline.
            if let Some(hooks) = &shared.hooks {
                hooks.finish(deadline);
                let counts = shared.hook_stats.counts();
                log::info!(
                    "upload hooks: {} run, {} failed, {} timed out, {} dropped",
                    counts.run,
                    counts.failed,
                    counts.timed_out,
                    counts.dropped
                );
            }
            Ok(RunReport { cut_off })
        });
        self.stop_xferlog(writer);
        report
    }

    /// Starts the transfer log's writer, if there is one: a thread of its own, not
    /// one of the run's scope, so that a disk that hangs cannot hold the end of the run.
    fn start_xferlog(&mut self) -> Result<Option<thread::JoinHandle<()>>> {
        let Some(writer) = self.xferlog.take() else {
            return Ok(None);
        };
        let shared = Arc::clone(&self.shared);
        thread::Builder::new()
            .name("xferlog".into())
            .spawn(move || writer.run(&shared.metrics))
            .map(Some)
            .map_err(Error::Thread)
    }

    /// Tells the transfer log's writer to finish once the lines before are written,
    /// and waits for it a few seconds at most.
    fn stop_xferlog(&self, writer: Option<thread::JoinHandle<()>>) {
        const WAIT: Duration = Duration::from_secs(5);
        let (Some(writer), Some(log)) = (writer, &self.shared.xferlog) else {
            return;
        };
        // An empty line is the writer's sign to stop.
        let _ = log.closer().send_timeout(String::new(), WAIT);
        let until = Instant::now() + WAIT;
        while !writer.is_finished() && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        if writer.is_finished() {
            let _ = writer.join();
        } else {
            log::warn!(
                "the transfer log's writer did not finish in time: its last lines may be lost"
            );
        }
    }
}

/// How a connection came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// On the FTP port: the session starts in the clear (AUTH TLS may follow).
    Plain,
    /// On the implicit FTPS port: TLS from the first byte.
    ImplicitTls,
}

/// Accepts connections on `listener` until shutdown. A connection goes to the pool
/// when fewer than `--max-connections` sessions are open (parked ones count, and those
/// of both listeners) and its address has fewer than `--max-per-ip` (both as in force
/// now);
/// otherwise it is refused: with `421` on the FTP port, by closing it on the implicit
/// FTPS port (a reply in the clear means nothing to a client starting TLS).
fn accept_loop(
    shared: &Shared,
    listener: &TcpListener,
    tx: &crossbeam_channel::Sender<pool::Work<'_>>,
    entry: Entry,
) {
    loop {
        let accepted = listener.accept();
        if shared.stopping() {
            break;
        }
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: keep
                // serving, but do not spin while the condition lasts.
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let ip = peer.ip().to_canonical();
        // The PROXY header, if one is due, is not read here: a proxy that is slow to
        // send it would stop every other connection from being accepted. A worker
        // reads it, within a bound (see the session's start).
        let Some(admitted) = shared.arrival(ip) else {
            log::warn!(event = "refused"; "{peer}: dropped: not a trusted proxy (--proxy-protocol required)");
            shared.metrics.session(SessionResult::Untrusted);
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        };
        let counted = match admitted {
            Admitted::Client(ip) => shared.admit(ip),
            Admitted::Proxied(_) => shared.admit_proxied(),
        };
        if let Err(why) = counted {
            refuse(stream, peer, why, entry, &shared.metrics);
            continue;
        }
        // The channel is unbounded (admission bounds it); it fails only when every
        // worker is gone.
        if let Err(e) = tx.send(pool::Work::New(stream, admitted, entry)) {
            shared.release_admitted(admitted);
            if let pool::Work::New(stream, _, _) = e.into_inner() {
                refuse(stream, peer, Refusal::Busy, entry, &shared.metrics);
            }
        }
    }
}

/// Tells a connection why it is turned away (`421`, in the clear only), and closes it.
fn refuse(mut stream: TcpStream, peer: SocketAddr, why: Refusal, entry: Entry, metrics: &Metrics) {
    let (text, result) = match why {
        Refusal::Busy => (
            "Too many connections, try again later",
            SessionResult::TooMany,
        ),
        Refusal::PerIp => (
            "Too many connections from your address",
            SessionResult::TooManyPerIp,
        ),
    };
    metrics.session(result);
    log::warn!(event = "refused"; "{peer}: refused: {text}");
    if entry == Entry::ImplicitTls {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let reply = Reply::new(ReplyCode::ServiceNotAvailable, text);
    // A fresh socket's send buffer is empty, so this short write does not block; the
    // timeout is a second line of defence.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(reply.to_wire().as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl ShutdownHandle {
    /// Begins a graceful shutdown: stop accepting, `421` to idle sessions, let running
    /// transfers finish. Returns at once; [`Server::run`] returns when it is done.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the acceptors, which then see the flag. If a connect fails the
        // listener is gone already.
        for addr in &self.wake_addrs {
            let _ = TcpStream::connect_timeout(addr, Duration::from_secs(1));
        }
        self.shared.wake_parker();
    }
}
