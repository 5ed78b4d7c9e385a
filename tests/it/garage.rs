//! A real Garage (an S3-compatible object store) for the S3 backend's tests: one node
//! on loopback per test, from a config in its own temporary directory (sqlite
//! metadata, replication factor 1, free ports, a fresh RPC secret), with a layout
//! applied, one bucket and one key allowed on it. Stopped by its PID on drop. A
//! [`CountingRelay`] in front of it counts the connections and requests a client
//! makes, and can answer some requests `503 Slow Down` as a busy store does.
//!
//! The binary is looked for where `.ci/run` builds it
//! (`$SIMPLE_FTP_PEERS/garage/bin/garage`, default `/var/cache/simple-ftp-bench`),
//! then on the PATH. Without it, [`Garage::start_or_skip`] prints why and the test
//! skips; under `CI=true` it fails.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use simple_ftp::storage::s3::client::{S3Client, S3Settings};

use crate::common::{free_port, require, WAIT};

/// The region the node's S3 API answers to.
pub const REGION: &str = "garage";

/// A running Garage node with one bucket and a key that may read, write and own it.
pub struct Garage {
    child: Child,
    /// Holds the node's config, metadata, data and log.
    pub dir: tempfile::TempDir,
    config: PathBuf,
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    /// The bucket made for the test.
    pub bucket: String,
    /// The key's id and secret.
    pub key_id: String,
    pub secret: String,
}

/// Where the Garage binary is, if anywhere.
pub fn garage_binary() -> Option<PathBuf> {
    let peers =
        std::env::var("SIMPLE_FTP_PEERS").unwrap_or_else(|_| "/var/cache/simple-ftp-bench".into());
    let cached = Path::new(&peers).join("garage/bin/garage");
    if cached.is_file() {
        return Some(cached);
    }
    crate::common::have("garage", &["--version"]).then(|| PathBuf::from("garage"))
}

/// `n` random bytes as lower-case hex, from the kernel.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Garage {
    /// Starts a node, or returns `None` (with the reason printed) when Garage is not
    /// installed; under `CI=true` a missing Garage fails the test.
    pub fn start_or_skip() -> Option<Garage> {
        let bin = garage_binary();
        if !require(bin.is_some(), "garage (built by .ci/run)") {
            return None;
        }
        Some(Garage::start(&bin.expect("checked")))
    }

    fn start(bin: &Path) -> Garage {
        let dir = tempfile::tempdir().expect("tempdir");
        let rpc = free_port();
        let s3 = free_port();
        let config = dir.path().join("garage.toml");
        let text = format!(
            "metadata_dir = \"{meta}\"\n\
             data_dir = \"{data}\"\n\
             db_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\n\
             s3_region = \"{REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n",
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
            secret = random_hex(32),
        );
        std::fs::write(&config, text).expect("write garage.toml");
        // Garage refuses a secret in a file others can read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
                .expect("chmod garage.toml");
        }
        let log = File::create(dir.path().join("garage.log")).expect("log");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start garage");
        let mut garage = Garage {
            child,
            dir,
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "ftp".to_owned(),
            key_id: format!("GK{}", random_hex(12)),
            secret: random_hex(32),
        };
        garage.set_up(bin);
        garage
    }

    /// Layout, key, bucket, permission: what the quick start does by hand.
    fn set_up(&mut self, bin: &Path) {
        // The node's id, once its RPC answers.
        let id = self.retry(bin, &["node", "id", "-q"]);
        let id = id.trim().split('@').next().unwrap_or("").to_owned();
        assert!(!id.is_empty(), "garage node id printed no id");
        self.retry(bin, &["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        self.retry(bin, &["layout", "apply", "--version", "1"]);
        self.retry(
            bin,
            &[
                "key",
                "import",
                "--yes",
                "-n",
                "ftp-tests",
                &self.key_id.clone(),
                &self.secret.clone(),
            ],
        );
        self.retry(bin, &["bucket", "create", &self.bucket.clone()]);
        let (bucket, key) = (self.bucket.clone(), self.key_id.clone());
        self.cli(
            bin,
            &[
                "bucket", "allow", "--read", "--write", "--owner", &bucket, "--key", &key,
            ],
        );
        // The S3 API answers once the layout is in force everywhere (here: one node).
        let client = self.client();
        let deadline = Instant::now() + WAIT;
        loop {
            match client.check_bucket() {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("garage's S3 API did not come up: {e}\n{}", self.log()),
            }
        }
    }

    /// Runs a `garage` CLI command against this node; panics with its output on failure.
    fn cli(&self, bin: &Path, args: &[&str]) -> String {
        match self.try_cli(bin, args) {
            Ok(out) => out,
            Err(why) => panic!("garage {args:?} failed: {why}\n{}", self.log()),
        }
    }

    fn try_cli(&self, bin: &Path, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(bin);
        cmd.arg("-c").arg(&self.config).args(args);
        let run = crate::common::run_peer(cmd);
        if run.status.success() {
            Ok(run.stdout)
        } else {
            Err(format!("{}{}", run.stdout, run.stderr))
        }
    }

    /// Runs a CLI command until it succeeds (the node is still starting), up to `WAIT`.
    fn retry(&self, bin: &Path, args: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.try_cli(bin, args) {
                Ok(out) => return out,
                Err(why) if Instant::now() >= deadline => {
                    panic!("garage {args:?} kept failing: {why}\n{}", self.log())
                }
                Err(_) => thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Stops the node now (by its PID, as on drop), for tests of a store that goes
    /// away under the server.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the node logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// The settings of a client of the test bucket.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint.clone(),
            region: REGION.to_owned(),
            bucket: self.bucket.clone(),
            access_key_id: self.key_id.clone(),
            secret_access_key: self.secret.clone(),
            session_token: None,
            timeout: WAIT,
        }
    }

    /// A client of the test bucket.
    pub fn client(&self) -> S3Client {
        S3Client::new(&self.settings()).expect("s3 client")
    }

    /// A config file for `ftp-server` on this bucket under `prefix` (credentials as
    /// config keys, never on a command line), returned with its path.
    pub fn server_config(&self, prefix: &str, extra: &str) -> PathBuf {
        self.server_config_via(&self.endpoint, prefix, extra)
    }

    /// As [`Garage::server_config`], with the S3 API reached at `endpoint` (a
    /// [`CountingRelay`]'s).
    pub fn server_config_via(&self, endpoint: &str, prefix: &str, extra: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("ftp-server-{}.toml", random_hex(4)));
        let text = format!(
            "storage = \"s3://{bucket}/{prefix}\"\n\
             s3-endpoint = \"{endpoint}\"\n\
             s3-region = \"{REGION}\"\n\
             s3-access-key-id = \"{key}\"\n\
             s3-secret-access-key = \"{secret}\"\n\
             {extra}",
            bucket = self.bucket,
            key = self.key_id,
            secret = self.secret,
        );
        std::fs::write(&path, text).expect("write server config");
        path
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay in front of a node's S3 API that sees what a client sends: it counts the
/// connections made through it (does a client keep its connections for the next
/// request?) and reads each HTTP request's head and body, so it can tell which S3
/// requests came ([`CountingRelay::requests`]) and answer some of them itself with
/// `503 Slow Down`, as a busy store does ([`CountingRelay::slow_down`]). What it does
/// not answer passes unchanged (a signature names the relay's address, which is the
/// `Host` the node then sees); replies pass back unchanged.
pub struct CountingRelay {
    /// `http://127.0.0.1:PORT`, the relay's.
    pub endpoint: String,
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

/// What the relay's connections share: the requests seen, the ones to refuse.
#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// For each kind of request, how many more the relay answers `503` itself.
    refuse: Mutex<Vec<(&'static str, usize)>>,
}

/// One request that reached the relay.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `PUT` ...
    pub method: String,
    /// `/BUCKET/KEY`, as sent (percent-encoded).
    pub path: String,
    /// The names of the query's parameters (the signature's among them).
    query: Vec<String>,
    /// The headers, names in lower case.
    headers: Vec<(String, String)>,
    /// Whether the relay answered it `503` itself rather than pass it on.
    pub refused: bool,
}

impl Seen {
    /// The S3 request this is, by S3's name for it (`GetObject`, `PutObject`,
    /// `UploadPart` ...).
    pub fn kind(&self) -> &'static str {
        let q = |name: &str| self.query.iter().any(|n| n == name);
        let copy = self.header("x-amz-copy-source").is_some();
        match self.method.as_str() {
            "GET" if q("uploads") => "ListMultipartUploads",
            "GET" if q("list-type") => "ListObjectsV2",
            "GET" => "GetObject",
            "HEAD" => "HeadObject",
            "PUT" if q("partNumber") && copy => "UploadPartCopy",
            "PUT" if q("partNumber") => "UploadPart",
            "PUT" if copy => "CopyObject",
            "PUT" => "PutObject",
            "POST" if q("uploads") => "CreateMultipartUpload",
            "POST" => "CompleteMultipartUpload",
            "DELETE" if q("uploadId") => "AbortMultipartUpload",
            "DELETE" => "DeleteObject",
            _ => "other",
        }
    }

    /// The object key (the path after the bucket), as sent.
    pub fn key(&self) -> &str {
        self.path
            .trim_start_matches('/')
            .split_once('/')
            .map_or("", |(_, key)| key)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl CountingRelay {
    /// A relay on a free loopback port to `garage`'s S3 API.
    pub fn to(garage: &Garage) -> CountingRelay {
        let upstream: SocketAddr = garage
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("garage's endpoint is an address");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopping, state) = (
            Arc::clone(&accepted),
            Arc::clone(&stop),
            Arc::clone(&shared),
        );
        let acceptor = thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    count.fetch_add(1, Ordering::SeqCst);
                    let Ok(store) = TcpStream::connect_timeout(&upstream, WAIT) else {
                        continue;
                    };
                    // No delays of the relay's own in the way.
                    let _ = client.set_nodelay(true);
                    let _ = store.set_nodelay(true);
                    pipe(&store, &client);
                    let state = Arc::clone(&state);
                    let _ = thread::Builder::new()
                        .name("relay-requests".into())
                        .spawn(move || relay_requests(client, store, &state));
                }
            })
            .expect("spawn relay");
        CountingRelay {
            endpoint: format!("http://{addr}"),
            addr,
            accepted,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The connections made through the relay so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Every request that reached the relay so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("relay state").clone()
    }

    /// The next `n` requests of `kind` (as [`Seen::kind`] names them) are answered
    /// `503 Slow Down` by the relay itself, not passed on; `usize::MAX` for all.
    pub fn slow_down(&self, kind: &'static str, n: usize) {
        let mut refuse = self.shared.refuse.lock().expect("relay state");
        refuse.retain(|(k, _)| *k != kind);
        refuse.push((kind, n));
    }
}

/// S3's reply to a client that should slow down.
const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
    <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

/// Reads the client's requests one by one (a client sends the next only once it has
/// the reply to the last) and passes each on, or answers it `503` itself. Ends the
/// store's side when the client closes. A chunked body, which the S3 client does not
/// send, is not followed: the rest of the connection then passes unread.
fn relay_requests(client: TcpStream, mut store: TcpStream, shared: &Shared) {
    let (Ok(from), Ok(mut to_client)) = (client.try_clone(), client.try_clone()) else {
        return;
    };
    let mut from = BufReader::new(from);
    while let Some((head, seen)) = read_head(&mut from) {
        if seen
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            let _ = store.write_all(&head);
            let _ = std::io::copy(&mut from, &mut store);
            break;
        }
        let len: usize = seen
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if from.read_exact(&mut body).is_err() {
            break;
        }
        let refused = {
            let mut refuse = shared.refuse.lock().expect("relay state");
            match refuse.iter_mut().find(|(k, n)| *k == seen.kind() && *n > 0) {
                Some((_, n)) => {
                    // usize::MAX: every one.
                    if *n != usize::MAX {
                        *n -= 1;
                    }
                    true
                }
                None => false,
            }
        };
        let is_head = seen.method == "HEAD";
        shared
            .seen
            .lock()
            .expect("relay state")
            .push(Seen { refused, ..seen });
        let sent = if refused {
            let body = if is_head { "" } else { SLOW_DOWN };
            let reply = format!(
                "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\n\
                 content-length: {}\r\n\r\n{body}",
                SLOW_DOWN.len()
            );
            to_client.write_all(reply.as_bytes())
        } else {
            store.write_all(&head).and_then(|()| store.write_all(&body))
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = store.shutdown(Shutdown::Write);
}

/// Reads one request's head (up to its blank line): its bytes and what it says, or
/// `None` at the end of the connection.
fn read_head(from: &mut BufReader<TcpStream>) -> Option<(Vec<u8>, Seen)> {
    let mut head = Vec::new();
    loop {
        let start = head.len();
        if from.read_until(b'\n', &mut head).ok()? == 0 {
            return None;
        }
        if head[start..] == *b"\r\n" || head[start..] == *b"\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let mut words = lines.next()?.split(' ');
    let method = words.next()?.to_owned();
    let target = words.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map_or(p, |(name, _)| name).to_owned())
        .collect();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let seen = Seen {
        method,
        path: path.to_owned(),
        query,
        headers,
        refused: false,
    };
    Some((head, seen))
}

/// Copies `from` to `to` on a thread of its own until `from` ends, then ends `to`'s
/// sending side. The thread ends with the connection (the client's close, or the
/// node's when it stops).
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let _ = thread::Builder::new()
        .name("relay-pipe".into())
        .spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, WAIT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}
