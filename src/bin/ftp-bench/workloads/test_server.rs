//! Our server, in this process on a loopback port 0, for the workloads' own tests: it
//! serves a fresh temporary directory holding `pub/small.bin`, and stops (and is
//! waited for) when dropped.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use simple_ftp::{Config, Server, ShutdownHandle};
use tempfile::TempDir;

use crate::target::{Expected, Target};
use crate::tools::mkfile;

pub(crate) struct TestServer {
    pub(crate) target: Target,
    pub(crate) small: Expected,
    stop: ShutdownHandle,
    run: Option<JoinHandle<()>>,
    _root: TempDir,
}

impl TestServer {
    /// Starts the server with `workers` workers.
    pub(crate) fn start(workers: usize) -> TestServer {
        TestServer::start_with(workers, Config::default().max_connections)
    }

    /// Starts the server with `workers` workers and room for `max_connections` sessions.
    pub(crate) fn start_with(workers: usize, max_connections: usize) -> TestServer {
        let root = tempfile::tempdir().expect("temporary root");
        fs::create_dir(root.path().join("pub")).expect("pub/");
        let sha = mkfile(&root.path().join("pub/small.bin"), 4096).expect("small.bin");
        let config = Config {
            root: root.path().to_path_buf(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers,
            max_connections,
            ..Config::default()
        };
        let server = Server::bind(config).expect("bind");
        let port = server.local_addr().port();
        let stop = server.shutdown_handle();
        let run = thread::spawn(move || {
            server.run().expect("server run");
        });
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            user: "anonymous".into(),
            pass: "anonymous@".into(),
            dir: "pub".into(),
            served_dir: Some(root.path().join("pub")),
            local: PathBuf::from(root.path()),
            label: "ours".into(),
            round: 1,
            pids: vec![std::process::id()],
            timeout: 30,
            deadline: 120,
        };
        let small = Expected {
            file: "small.bin".into(),
            size: 4096,
            sha256: Some(sha),
        };
        TestServer {
            target,
            small,
            stop,
            run: Some(run),
            _root: root,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(run) = self.run.take() {
            // Bounded: idle sessions are told 421 at once, and nothing transfers here.
            let (tx, rx) = std::sync::mpsc::channel();
            thread::spawn(move || {
                let _ = tx.send(run.join().is_ok());
            });
            let joined = rx.recv_timeout(Duration::from_secs(60));
            if !thread::panicking() {
                assert_eq!(joined, Ok(true), "the server did not stop cleanly");
            }
        }
    }
}
