//! The storage suite: one set of checks, written once and run against every storage
//! backend through a [`Fixture`] (start a server on a fresh, empty storage of that
//! backend). Every check speaks FTP only, never looks at the storage itself, so it
//! holds for an object store as for the local directory: uploads and downloads
//! byte-exact, resume, listings, renames, directories, per-user homes and permissions,
//! aborted uploads leaving nothing, and 32 concurrent clients.
//!
//! Backends run here: `local` (a real `ftp-server` process on `--root`) and
//! `local_streamed` (an in-process server on the local directory wrapped so that
//! every download is a stream and every upload a writer, the paths an object store
//! takes through the session). A backend joins with one `suite!` line and a fixture.

use std::any::Any;
use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use simple_ftp::server::accounts::Users;
use simple_ftp::storage::local::Local;
use simple_ftp::storage::{
    Backend, Download, Entries, EntryKey, NameFilter, Opened, Place, Sink, Stat, StorageError,
    Upload, VirtualPath,
};
use simple_ftp::{Config, Server, ShutdownHandle};

use crate::common::{hash_password, pattern, sha256, Ftp, TestServer, WAIT};

/// What a backend can do beyond the shared checks.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// RNFR/RNTO of a non-empty directory works (an object store may refuse it).
    pub renames_directories: bool,
    /// APPE and REST+STOR onto an existing file work; without, they get a clear `550`.
    pub appends: bool,
}

/// A server running on a fresh storage of one backend, stopped when dropped.
pub trait Running {
    fn addr(&self) -> SocketAddr;
}

/// How to start a server on a backend.
pub trait Fixture {
    /// A server on a fresh, empty storage; with `users`, a users file (anonymous
    /// logins still read and write everywhere).
    fn start(&self, users: Option<&Path>) -> Box<dyn Running>;
    fn caps(&self) -> Caps;
}

/// Generates one test per check for a backend's fixture.
macro_rules! suite {
    ($backend:ident, $fixture:expr) => {
        mod $backend {
            use super::*;

            #[test]
            fn uploads_and_downloads_are_byte_exact() {
                super::uploads_and_downloads_are_byte_exact(&$fixture);
            }
            #[test]
            fn rest_resumes_a_download() {
                super::rest_resumes_a_download(&$fixture);
            }
            #[test]
            fn listings_show_what_was_stored() {
                super::listings_show_what_was_stored(&$fixture);
            }
            #[test]
            fn renames_move_files() {
                super::renames_move_files(&$fixture);
            }
            #[test]
            fn directories_are_made_entered_and_removed_when_empty() {
                super::directories_are_made_entered_and_removed_when_empty(&$fixture);
            }
            #[test]
            fn homes_and_permissions_hold() {
                super::homes_and_permissions_hold(&$fixture);
            }
            #[test]
            fn an_aborted_upload_leaves_nothing_visible() {
                super::an_aborted_upload_leaves_nothing_visible(&$fixture);
            }
            #[test]
            fn appends_extend_a_file_or_are_refused_clearly() {
                super::appends_extend_a_file_or_are_refused_clearly(&$fixture);
            }
            #[test]
            fn thirty_two_clients_upload_and_download_at_once() {
                super::thirty_two_clients_upload_and_download_at_once(&$fixture);
            }
        }
    };
}

suite!(local, LocalProcess);
suite!(local_streamed, Streamed);

/// The streamed fixture really takes the session's stream paths: RETR and HASH read
/// a stream, STOR writes one (in TLS too, where nothing is zero-copy anyway).
#[test]
fn the_streamed_backend_is_read_and_written_as_streams() {
    let (server, streams) = Streamed.start_counted(None);
    let mut ftp = login(&server);
    let bytes = pattern(3 << 20, 77);
    ftp.stor("s.bin", &bytes);
    assert!(ftp.retr("s.bin") == bytes);
    ftp.expect("REST 1000", 350);
    assert!(ftp.retr("s.bin") == bytes[1000..]);
    let r = ftp.expect("HASH s.bin", 213);
    assert!(r.text.contains(&sha256(&bytes)), "{r:?}");
    assert_eq!(streams.writes.load(Ordering::Relaxed), 1);
    assert_eq!(streams.reads.load(Ordering::Relaxed), 3);
}

// ---------------------------------------------------------------------------------
// The checks.

fn login(server: &dyn Running) -> Ftp {
    let mut ftp = Ftp::connect(server.addr());
    ftp.login();
    ftp
}

fn login_as(server: &dyn Running, user: &str, password: &str) -> Ftp {
    let mut ftp = Ftp::connect(server.addr());
    ftp.expect(&format!("USER {user}"), 331);
    ftp.expect(&format!("PASS {password}"), 230);
    ftp.expect("TYPE I", 200);
    ftp
}

/// The names NLST gives for `dir`, sorted (empty when the listing is refused as
/// empty or missing).
fn names(ftp: &mut Ftp, dir: &str) -> Vec<String> {
    let mut data = ftp.epsv();
    let r = ftp.cmd(&format!("NLST {dir}"));
    if r.code != 150 {
        return Vec::new();
    }
    let mut text = String::new();
    data.read_to_string(&mut text).expect("read listing");
    ftp.expect_reply(226);
    let mut names: Vec<String> = text
        .lines()
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_owned())
        .collect();
    names.sort();
    names
}

fn uploads_and_downloads_are_byte_exact(fixture: &dyn Fixture) {
    let server = fixture.start(None);
    let mut ftp = login(&*server);
    let hashes = ftp.cmd("FEAT").text.contains("HASH");
    for (i, len) in [0, 1, (1 << 20) + 7, 20 << 20].into_iter().enumerate() {
        let name = format!("file-{len}.bin");
        let bytes = pattern(len, 100 + i as u64);
        ftp.stor(&name, &bytes);
        let back = ftp.retr(&name);
        assert!(back == bytes, "{name}: {} bytes came back", back.len());
        let size = ftp.expect(&format!("SIZE {name}"), 213);
        assert_eq!(size.text, len.to_string());
        if hashes {
            let r = ftp.expect(&format!("HASH {name}"), 213);
            assert!(r.text.contains(&sha256(&bytes)), "{r:?}");
        }
    }
    // A second upload replaces the first whole.
    ftp.stor("file-1.bin", b"replaced");
    assert_eq!(ftp.retr("file-1.bin"), b"replaced");
    let _data = ftp.epsv();
    ftp.expect("RETR missing.bin", 550);
}

fn rest_resumes_a_download(fixture: &dyn Fixture) {
    let server = fixture.start(None);
    let mut ftp = login(&*server);
    let bytes = pattern((1 << 20) + 7, 7);
    ftp.stor("big.bin", &bytes);
    for offset in [1usize, 65_536, 1 << 20, bytes.len()] {
        ftp.expect(&format!("REST {offset}"), 350);
        let tail = ftp.retr("big.bin");
        assert!(
            tail == bytes[offset..],
            "from {offset}: {} bytes",
            tail.len()
        );
    }
    let past = bytes.len() + 1;
    let _data = ftp.epsv();
    ftp.expect(&format!("REST {past}"), 350);
    ftp.expect("RETR big.bin", 554);
}

fn listings_show_what_was_stored(fixture: &dyn Fixture) {
    let server = fixture.start(None);
    let mut ftp = login(&*server);
    ftp.stor("a.txt", b"12345");
    ftp.expect("MKD sub", 257);
    ftp.stor("sub/b.bin", &pattern(1000, 3));

    assert_eq!(names(&mut ftp, "/"), ["a.txt", "sub"]);
    assert_eq!(names(&mut ftp, "sub"), ["b.bin"]);

    let list = ftp.listing("LIST");
    let line = list.lines().find(|l| l.ends_with(" a.txt")).expect("a.txt");
    assert!(line.starts_with('-') && line.contains(" 5 "), "{line}");
    let line = list.lines().find(|l| l.ends_with(" sub")).expect("sub");
    assert!(line.starts_with('d'), "{line}");

    let mlsd = ftp.listing("MLSD");
    let facts = mlsd
        .lines()
        .find(|l| l.ends_with("; a.txt"))
        .expect("a.txt");
    assert!(
        facts.contains("type=file;") && facts.contains("size=5;"),
        "{facts}"
    );
    assert!(facts.contains("modify="), "{facts}");
    let facts = mlsd.lines().find(|l| l.ends_with("; sub")).expect("sub");
    assert!(facts.contains("type=dir;"), "{facts}");

    let mlst = ftp.expect("MLST sub/b.bin", 250);
    assert!(
        mlst.text.contains("type=file;") && mlst.text.contains("size=1000;"),
        "{mlst:?}"
    );
    assert!(mlst.text.contains("/sub/b.bin"), "{mlst:?}");
    assert_eq!(ftp.expect("SIZE sub/b.bin", 213).text, "1000");
    let mdtm = ftp.expect("MDTM a.txt", 213).text;
    assert!(
        mdtm.len() == 14 && mdtm.bytes().all(|b| b.is_ascii_digit()),
        "{mdtm}"
    );
    // Within a day of now (clocks of a store and the test may differ a little).
    let year: u32 = mdtm[..4].parse().expect("year");
    assert!(year >= 2024, "{mdtm}");
    ftp.expect("SIZE sub", 550);
    ftp.expect("MDTM missing", 550);
    let stat = ftp.expect("STAT sub", 213);
    assert!(stat.text.contains(" b.bin"), "{stat:?}");
    // A pattern lists what matches, only that.
    assert_eq!(
        ftp.listing("NLST *.txt").lines().collect::<Vec<_>>(),
        ["a.txt"]
    );
}

fn renames_move_files(fixture: &dyn Fixture) {
    let server = fixture.start(None);
    let mut ftp = login(&*server);
    let bytes = pattern(300_000, 9);
    ftp.stor("from.bin", &bytes);
    ftp.stor("other.txt", b"other");
    ftp.expect("MKD dir", 257);
    ftp.expect("RNFR from.bin", 350);
    ftp.expect("RNTO to.bin", 250);
    assert!(ftp.retr("to.bin") == bytes);
    ftp.expect("SIZE from.bin", 550);
    // Into a directory, and over an existing file.
    ftp.expect("RNFR to.bin", 350);
    ftp.expect("RNTO dir/moved.bin", 250);
    assert!(ftp.retr("dir/moved.bin") == bytes);
    ftp.expect("RNFR other.txt", 350);
    ftp.expect("RNTO dir/moved.bin", 250);
    assert_eq!(ftp.retr("dir/moved.bin"), b"other");
    assert_eq!(names(&mut ftp, "/"), ["dir"]);
    ftp.expect("RNFR missing", 550);
    ftp.expect("RNTO anything", 503);
    if fixture.caps().renames_directories {
        ftp.expect("RNFR dir", 350);
        ftp.expect("RNTO renamed", 250);
        assert_eq!(ftp.retr("renamed/moved.bin"), b"other");
    }
}

fn directories_are_made_entered_and_removed_when_empty(fixture: &dyn Fixture) {
    let server = fixture.start(None);
    let mut ftp = login(&*server);
    ftp.expect("MKD d", 257);
    ftp.expect("MKD d", 550);
    ftp.expect("MKD d/e", 257);
    ftp.expect("CWD d", 250);
    assert!(ftp.expect("PWD", 257).text.starts_with("\"/d\""));
    ftp.stor("f.txt", b"in d");
    ftp.expect("CWD e", 250);
    assert!(ftp.expect("PWD", 257).text.starts_with("\"/d/e\""));
    ftp.expect("CDUP", 250);
    ftp.expect("CDUP", 250);
    assert_eq!(ftp.retr("d/f.txt"), b"in d");
    ftp.expect("CWD d/f.txt", 550);
    ftp.expect("CWD missing", 550);
    ftp.expect("RMD d", 550); // not empty
    ftp.expect("RMD d/e", 250);
    ftp.expect("DELE d/f.txt", 250);
    ftp.expect("DELE d/f.txt", 550);
    ftp.expect("RMD d", 250);
    ftp.expect("CWD d", 550);
    ftp.expect("RMD d", 550);
    assert!(names(&mut ftp, "/").is_empty());
}

fn homes_and_permissions_hold(fixture: &dyn Fixture) {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.toml");
    fs::write(
        &users,
        format!(
            "[[user]]\nname = \"alice\"\npassword = \"{}\"\nhome = \"/homes/alice\"\n\
             permissions = [\"read\", \"write\", \"delete\"]\n\n\
             [[user]]\nname = \"reader\"\npassword = \"{}\"\n",
            hash_password("alice-pw"),
            hash_password("reader-pw"),
        ),
    )
    .expect("write users");
    let server = fixture.start(Some(&users));
    let mut anonymous = login(&*server);
    anonymous.stor("top.txt", b"top");

    let mut alice = login_as(&*server, "alice", "alice-pw");
    assert!(alice.expect("PWD", 257).text.starts_with("\"/\""));
    alice.stor("mine.txt", b"alice's");
    alice.expect("CWD ..", 250);
    assert!(alice.expect("PWD", 257).text.starts_with("\"/\""));
    assert_eq!(names(&mut alice, "/"), ["mine.txt"]);
    alice.expect("SIZE top.txt", 550);
    alice.expect("SIZE ../top.txt", 550);
    // What alice stored is in her home, as the server root sees it.
    assert_eq!(anonymous.retr("homes/alice/mine.txt"), b"alice's");

    let mut reader = login_as(&*server, "reader", "reader-pw");
    assert_eq!(reader.retr("top.txt"), b"top");
    assert_eq!(reader.retr("homes/alice/mine.txt"), b"alice's");
    reader.expect("STOR refused.txt", 550);
    reader.expect("MKD refused", 550);
    reader.expect("DELE top.txt", 550);
    reader.expect("RNFR top.txt", 550);
    assert_eq!(names(&mut anonymous, "/"), ["homes", "top.txt"]);
}

/// Sends `len` bytes of an upload of `name`, then ends it without completing it:
/// `reset` drops the data connection with a reset, else ABOR goes on the control
/// connection while the data connection stays open.
fn cut_upload(ftp: &mut Ftp, name: &str, len: usize, reset: bool) {
    let mut data = ftp.epsv();
    ftp.expect(&format!("STOR {name}"), 150);
    data.write_all(&pattern(len, 5)).expect("write data");
    if reset {
        socket2::SockRef::from(&data)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(data);
        let r = ftp.reply();
        assert!(r.code == 426 || r.code == 451, "{r:?}");
    } else {
        ftp.send_raw(b"ABOR\r\n");
        let r = ftp.reply();
        assert!(r.code == 426 || r.code == 226, "{r:?}");
        if r.code == 426 {
            ftp.expect_reply(226);
        }
        drop(data);
    }
}

fn an_aborted_upload_leaves_nothing_visible(fixture: &dyn Fixture) {
    let server = fixture.start(None);
    let mut ftp = login(&*server);
    cut_upload(&mut ftp, "reset.bin", 3 << 20, true);
    cut_upload(&mut ftp, "aborted.bin", 3 << 20, false);
    // A cut-short replacement keeps the old version whole.
    ftp.stor("kept.txt", b"the old version");
    cut_upload(&mut ftp, "kept.txt", 2 << 20, true);
    ftp.expect("NOOP", 200);
    assert_eq!(names(&mut ftp, "/"), ["kept.txt"]);
    ftp.expect("SIZE reset.bin", 550);
    ftp.expect("SIZE aborted.bin", 550);
    assert_eq!(ftp.retr("kept.txt"), b"the old version");
    let mlsd = ftp.listing("MLSD");
    assert_eq!(mlsd.lines().count(), 1, "{mlsd}");
}

fn appends_extend_a_file_or_are_refused_clearly(fixture: &dyn Fixture) {
    let server = fixture.start(None);
    let mut ftp = login(&*server);
    ftp.stor("log.txt", b"first ");
    // APPE of a new name makes the file on every backend.
    let mut data = ftp.epsv();
    ftp.expect("APPE new.txt", 150);
    data.write_all(b"new").expect("write");
    drop(data);
    ftp.expect_reply(226);
    assert_eq!(ftp.retr("new.txt"), b"new");

    let mut data = ftp.epsv();
    let r = ftp.cmd("APPE log.txt");
    if fixture.caps().appends {
        assert_eq!(r.code, 150, "{r:?}");
        data.write_all(b"second").expect("write");
        drop(data);
        ftp.expect_reply(226);
        assert_eq!(ftp.retr("log.txt"), b"first second");
        let mut data = ftp.epsv();
        ftp.expect("REST 6", 350);
        ftp.expect("STOR log.txt", 150);
        data.write_all(b"again").expect("write");
        drop(data);
        ftp.expect_reply(226);
        assert_eq!(ftp.retr("log.txt"), b"first again");
    } else {
        assert_eq!(r.code, 550, "{r:?}");
        assert!(r.text.contains("Not supported"), "{r:?}");
        drop(data);
        let _data = ftp.epsv();
        ftp.expect("REST 6", 350);
        let r = ftp.expect("STOR log.txt", 550);
        assert!(r.text.contains("Not supported"), "{r:?}");
        assert_eq!(ftp.retr("log.txt"), b"first ");
    }
    let _data = ftp.epsv();
    ftp.expect("REST 100", 350);
    ftp.expect("STOR log.txt", 554); // past the end, on every backend
    assert_eq!(names(&mut ftp, "/"), ["log.txt", "new.txt"]);
}

fn thirty_two_clients_upload_and_download_at_once(fixture: &dyn Fixture) {
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 3;
    let server = fixture.start(None);
    let addr = server.addr();
    let shared_versions: Vec<Vec<u8>> = (0..4)
        .map(|v| pattern(200_000 + v, 900 + v as u64))
        .collect();
    {
        let mut ftp = login(&*server);
        ftp.stor("shared.bin", &shared_versions[0]);
    }
    let wanted: HashSet<String> = shared_versions.iter().map(|v| sha256(v)).collect();
    thread::scope(|s| {
        let mut handles = Vec::new();
        for c in 0..CLIENTS {
            let (versions, wanted) = (&shared_versions, &wanted);
            handles.push(s.spawn(move || {
                let mut ftp = Ftp::connect(addr);
                ftp.login();
                for round in 0..ROUNDS {
                    let mine = pattern(50_000 + c * 1_000 + round, (c * 10 + round) as u64);
                    let name = format!("client-{c}.bin");
                    ftp.stor(&name, &mine);
                    assert!(ftp.retr(&name) == mine, "client {c} round {round}");
                    if c % 4 == 0 {
                        // Writers of the shared file; a busy lock (450) is an answer too.
                        let version = &versions[(c / 4 + round) % versions.len()];
                        let mut data = ftp.epsv();
                        let r = ftp.cmd("STOR shared.bin");
                        if r.code == 150 {
                            data.write_all(version).expect("write");
                            drop(data);
                            ftp.expect_reply(226);
                        } else {
                            assert_eq!(r.code, 450, "{r:?}");
                        }
                    } else {
                        let mut data = ftp.epsv();
                        let r = ftp.cmd("RETR shared.bin");
                        if r.code == 150 {
                            let mut got = Vec::new();
                            data.read_to_end(&mut got).expect("read");
                            drop(data);
                            ftp.expect_reply(226);
                            assert!(wanted.contains(&sha256(&got)), "a mixed shared.bin");
                        } else {
                            assert_eq!(r.code, 450, "{r:?}");
                        }
                    }
                }
                ftp.expect("QUIT", 221);
            }));
        }
        for h in handles {
            h.join().expect("client thread");
        }
    });
    let mut ftp = login(&*server);
    for c in 0..CLIENTS {
        let last = ROUNDS - 1;
        let mine = pattern(50_000 + c * 1_000 + last, (c * 10 + last) as u64);
        assert!(ftp.retr(&format!("client-{c}.bin")) == mine, "client {c}");
    }
    assert!(wanted.contains(&sha256(&ftp.retr("shared.bin"))));
    let listed = names(&mut ftp, "/");
    assert_eq!(listed.len(), CLIENTS + 1, "{listed:?}");
}

// ---------------------------------------------------------------------------------
// The backends.

/// `ftp-server --root DIR` in a process of its own.
struct LocalProcess;

impl Running for TestServer {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Fixture for LocalProcess {
    fn start(&self, users: Option<&Path>) -> Box<dyn Running> {
        let Some(users) = users else {
            return Box::new(TestServer::start(&["--workers", "16"]));
        };
        let users = users.to_string_lossy().into_owned();
        Box::new(TestServer::start(&[
            "--workers",
            "16",
            "--users",
            &users,
            "--failed-login-delay",
            "0.1",
        ]))
    }

    fn caps(&self) -> Caps {
        Caps {
            renames_directories: true,
            appends: true,
        }
    }
}

/// The local directory, wrapped so that the session sees a streaming backend:
/// downloads are readers (from the offset asked), uploads are writers through a
/// bounded buffer, committed by the local part file's rename; an upload that would
/// keep part of the current file (APPE, REST+STOR) is refused as an object store
/// refuses it. The server runs in this process, on [`Config::storage`].
struct Streamed;

#[derive(Debug)]
struct StreamingBackend(Arc<dyn Backend>, Arc<Streams>);

/// How many streams a [`StreamingBackend`] (and the homes below it) gave out.
#[derive(Debug, Default)]
struct Streams {
    reads: AtomicUsize,
    writes: AtomicUsize,
}

/// A writer over the local part file; committing flushes it first.
struct StreamingUpload {
    inner: Box<dyn Upload>,
    writer: std::io::BufWriter<fs::File>,
}

impl Upload for StreamingUpload {
    fn sink(&mut self) -> Sink<'_> {
        Sink::Stream(&mut self.writer)
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        let StreamingUpload { inner, mut writer } = *self;
        writer.flush().map_err(StorageError::Io)?;
        drop(writer);
        inner.commit()
    }
}

impl Backend for StreamingBackend {
    fn below(&self, home: &VirtualPath) -> Result<Arc<dyn Backend>, StorageError> {
        let below = self.0.below(home)?;
        Ok(Arc::new(StreamingBackend(below, Arc::clone(&self.1))))
    }
    fn locate(&self, path: &VirtualPath) -> Result<Box<dyn Place>, StorageError> {
        let inner = self.0.locate(path)?;
        Ok(Box::new(StreamingPlace(inner, Arc::clone(&self.1))))
    }
    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<Opened, StorageError> {
        let Opened {
            download,
            stat,
            key,
        } = self.0.open_read(path, offset)?;
        let download = match download {
            Download::File(mut file) => {
                // A directory cannot seek to a byte offset; the session refuses it
                // as not a file anyway.
                if stat.is_file() {
                    file.seek(SeekFrom::Start(offset))
                        .map_err(StorageError::Io)?;
                }
                self.1.reads.fetch_add(1, Ordering::Relaxed);
                Download::Stream(Box::new(file))
            }
            stream => stream,
        };
        Ok(Opened {
            download,
            stat,
            key,
        })
    }
    fn list(&self, dir: &VirtualPath, wanted: Option<NameFilter>) -> Result<Entries, StorageError> {
        self.0.list(dir, wanted)
    }
    fn location(&self, path: &VirtualPath) -> PathBuf {
        self.0.location(path)
    }
}

/// A place of the [`StreamingBackend`]: the local one, with uploads made writers.
struct StreamingPlace(Box<dyn Place>, Arc<Streams>);

impl Place for StreamingPlace {
    fn path(&self) -> &VirtualPath {
        self.0.path()
    }
    fn key(&self) -> &EntryKey {
        self.0.key()
    }
    fn stat(&self) -> Result<Stat, StorageError> {
        self.0.stat()
    }
    fn stat_entry(&self) -> Result<Stat, StorageError> {
        self.0.stat_entry()
    }
    fn create_upload(&self, keep: u64) -> Result<Box<dyn Upload>, StorageError> {
        if keep > 0 {
            return Err(StorageError::Unsupported(
                "APPE and REST+STOR onto an existing file".into(),
            ));
        }
        let mut inner = self.0.create_upload(keep)?;
        let Sink::File(file) = inner.sink() else {
            return Ok(inner);
        };
        let mut file = file.try_clone().map_err(StorageError::Io)?;
        file.seek(SeekFrom::End(0)).map_err(StorageError::Io)?;
        self.1.writes.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(StreamingUpload {
            inner,
            writer: std::io::BufWriter::with_capacity(64 << 10, file),
        }))
    }
    fn create_new(&self) -> Result<(), StorageError> {
        self.0.create_new()
    }
    fn create_dir(&self) -> Result<(), StorageError> {
        self.0.create_dir()
    }
    fn remove_dir(&self) -> Result<(), StorageError> {
        self.0.remove_dir()
    }
    fn remove_file(&self) -> Result<(), StorageError> {
        self.0.remove_file()
    }
    fn rename_to(&self, to: &dyn Place) -> Result<(), StorageError> {
        match to.as_any().downcast_ref::<StreamingPlace>() {
            Some(to) => self.0.rename_to(&*to.0),
            None => self.0.rename_to(to),
        }
    }
    fn set_modified(&self, time: SystemTime) -> Result<Option<Stat>, StorageError> {
        self.0.set_modified(time)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A server running in this process, stopped and joined when dropped.
struct InProcess {
    addr: SocketAddr,
    stop: ShutdownHandle,
    thread: Option<thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Running for InProcess {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Streamed {
    /// A server on the streamed local backend, and the count of its streams.
    fn start_counted(&self, users: Option<&Path>) -> (InProcess, Arc<Streams>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = Local::new(&dir.path().join("root")).expect("local storage");
        let streams = Arc::new(Streams::default());
        let mut config = Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage: Some(Arc::new(StreamingBackend(
                Arc::new(local),
                Arc::clone(&streams),
            ))),
            workers: 16,
            data_timeout: WAIT,
            grace: Duration::from_secs(1),
            failed_login_delay: Duration::from_millis(100),
            ..Config::default()
        };
        if let Some(users) = users {
            config.users = Users::load(users).expect("users");
        }
        let server = Server::bind(config).expect("bind");
        let addr = server.local_addr();
        let stop = server.shutdown_handle();
        let thread = thread::Builder::new()
            .name("streamed-server".into())
            .spawn(move || {
                let _ = server.run();
            })
            .expect("server thread");
        // The listener is bound: connections wait in its backlog until run accepts.
        let server = InProcess {
            addr,
            stop,
            thread: Some(thread),
            _dir: dir,
        };
        (server, streams)
    }
}

impl Fixture for Streamed {
    fn start(&self, users: Option<&Path>) -> Box<dyn Running> {
        Box::new(self.start_counted(users).0)
    }

    fn caps(&self) -> Caps {
        Caps {
            renames_directories: true,
            appends: false,
        }
    }
}
