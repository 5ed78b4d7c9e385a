//! The server a workload drives and how: the flags every workload shares (address,
//! credentials, directories, the server's PIDs, time bounds), and the logged-in
//! sessions, remote names and blank records that follow from them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use simple_ftp::Client;

use crate::record::Record;

/// Which server to drive, and how.
#[derive(Debug, Clone, Args)]
pub(crate) struct Target {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Server port.
    #[arg(long)]
    pub(crate) port: u16,
    /// User name.
    #[arg(long, default_value = "anonymous")]
    pub(crate) user: String,
    /// Password.
    #[arg(long, default_value = "anonymous@")]
    pub(crate) pass: String,
    /// Remote directory (as the client sees it) holding the files, where uploads go.
    #[arg(long, default_value = "")]
    pub(crate) dir: String,
    /// Local path of that same directory, when the server runs here: uploads are then
    /// checked (SHA-256) and removed through it.
    #[arg(long)]
    pub(crate) served_dir: Option<PathBuf>,
    /// Local scratch directory for downloads (tmpfs keeps the disk out of the figures).
    #[arg(long, default_value = "/dev/shm")]
    pub(crate) local: PathBuf,
    /// Name of the server in the results.
    #[arg(long, default_value = "server")]
    pub(crate) label: String,
    /// Round number, in the results.
    #[arg(long, default_value_t = 0)]
    pub(crate) round: u32,
    /// PIDs of the server's processes (comma-separated or repeated); their process
    /// trees are measured for CPU time and memory.
    #[arg(long = "pid", value_delimiter = ',')]
    pub(crate) pids: Vec<u32>,
    /// Seconds any one operation may take.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
    /// Seconds the whole workload may take.
    #[arg(long, default_value_t = 120)]
    pub(crate) deadline: u64,
}

/// The remote file a download workload fetches and what it must contain.
#[derive(Debug, Clone, Args)]
pub(crate) struct Expected {
    /// Remote file name, inside --dir.
    #[arg(long)]
    pub(crate) file: String,
    /// Its length in bytes.
    #[arg(long)]
    pub(crate) size: u64,
    /// Its SHA-256, hex.
    #[arg(long)]
    pub(crate) sha256: Option<String>,
}

/// The local file a large-upload workload sends and what the server's copy must contain.
#[derive(Debug, Clone, Args)]
pub(crate) struct Upload {
    /// The local file to upload.
    #[arg(long)]
    pub(crate) local_file: PathBuf,
    /// Its SHA-256, hex (checked on the server's copy when --served-dir is given).
    #[arg(long)]
    pub(crate) sha256: Option<String>,
}

/// How many concurrent sessions, and how many operations each.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Many {
    /// Concurrent sessions (clients).
    #[arg(long, default_value_t = 32)]
    pub(crate) sessions: usize,
    /// Operations per session.
    #[arg(long, default_value_t = 100)]
    pub(crate) count: usize,
}

impl Target {
    pub(crate) fn op_timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.deadline.max(1))
    }

    /// A failed record of this target, to be filled in.
    pub(crate) fn record(&self, workload: &str, client: &str) -> Record {
        Record::blank(&self.label, self.round, workload, client)
    }

    /// `dir/name` as the server sees it.
    pub(crate) fn remote(&self, name: &str) -> String {
        if self.dir.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.dir.trim_end_matches('/'))
        }
    }

    /// A connected, logged-in client in binary mode, verification off (the workloads
    /// check what they moved themselves).
    pub(crate) fn session(&self) -> anyhow::Result<Client> {
        let mut c = Client::connect(&self.host, self.port, self.op_timeout())?;
        c.login(&self.user, &self.pass)?;
        c.binary()?;
        c.set_verify(false);
        Ok(c)
    }

    pub(crate) fn url(&self, name: &str) -> String {
        format!("ftp://{}:{}/{}", self.host, self.port, self.remote(name))
    }

    /// A name for an upload that no earlier round used (some servers refuse to
    /// overwrite anonymous uploads).
    pub(crate) fn upload_name(&self, what: &str) -> String {
        format!(
            "{what}-{}-r{}-{}",
            self.label.replace(['/', ' '], "_"),
            self.round,
            std::process::id()
        )
    }
}
