//! The commands that read or change files and directories: RETR, STOR, APPE, STOU,
//! HASH, SIZE, MDTM, MFMT, CWD, DELE, MKD, RMD, RNFR and RNTO.
//!
//! Every path is normalized here (the session's current directory joined with the
//! client's text) and handed to the session's storage backend ([`crate::storage`]),
//! which keeps it inside the root. Every file a transfer reads or replaces is held in
//! the lock table, and an upload becomes visible only when complete: the backend's
//! [`Upload`] is committed (on the local backend, a part file beside the target
//! renamed over it).

use std::fs::File;
use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::commands::{quote, HashAlgo, Step};
use super::data::{self, DataPlan, Opening};
use super::failure::{Failure, Refusal};
use super::login::Login;
use super::transfer::{transfer_complete, Job, CHUNK};
use super::Session;
use crate::digest::digest_between;
use crate::locks::FileGuard;
use crate::path::{is_fit_for_new_name, EntryKey, VirtualPath};
use crate::protocol::{Reply, ReplyCode, TimeVal};
use crate::server::hooks::Upload as UploadFacts;
use crate::server::metrics::LockMode;
use crate::storage::{Download, Opened, Place, Stat, StorageError, Upload};
use crate::time::Utc;
use crate::transfer::CopyError;

/// Files up to this size are sent at once when the data connection is already there.
const QUICK_MAX: u64 = 64 << 10;

/// How STOR, APPE and REST+STOR start the new version of a file.
#[derive(Debug, Clone, Copy)]
pub(super) enum Store {
    /// From nothing (STOR).
    Replace,
    /// From the whole current file (APPE).
    Append,
    /// From the first `n` bytes of the current file (REST n, then STOR).
    At(u64),
}

/// How [`Session::quick_send`] went.
enum Quick {
    /// The whole file went out and the data connection is closed.
    Done,
    /// Part went out (or none); the rest goes through the ordinary transfer loop on
    /// this connection, blocking again.
    Started(TcpStream),
    /// Not for this transfer: the ordinary way from the start.
    No,
}

impl<'s> Session<'s> {
    /// The path `arg` names from the current directory.
    pub(super) fn path(&self, arg: &str) -> Result<VirtualPath, Failure> {
        Ok(self.cwd.join(arg)?)
    }

    /// Looks up the path `arg` names, once, for a command that acts on it.
    fn locate(&self, arg: &str) -> Result<Box<dyn Place>, Failure> {
        Ok(self.storage.locate(&self.path(arg)?)?)
    }

    /// Looks up the path a new file or directory is to get: a name with a control
    /// character is refused (`553`), since listings would send it verbatim.
    fn locate_new(&self, arg: &str) -> Result<Box<dyn Place>, Failure> {
        let path = self.path(arg)?;
        if !path.leaf().is_none_or(is_fit_for_new_name) {
            return Err(Refusal::ControlCharName.into());
        }
        Ok(self.storage.locate(&path)?)
    }

    /// The path `name` gives, checked to be a plain file (following a symlink that
    /// stays inside the root).
    pub(super) fn plain_file(&self, name: &str) -> Result<(VirtualPath, Stat), Failure> {
        let path = self.path(name)?;
        let stat = self.storage.stat(&path)?;
        if !stat.is_file() {
            return Err(Refusal::NotAFile.into());
        }
        Ok((path, stat))
    }

    /// Opens the plain file `name` for reading from `offset` and takes its read lock.
    /// The file is opened before the lock is taken: a reader that waits for an upload
    /// of the same name reads the version it asked for, whole (uploads replace a file
    /// whole when complete).
    fn open_plain(
        &self,
        name: &str,
        offset: u64,
    ) -> Result<(VirtualPath, Download, Stat, FileGuard<'s>), Failure> {
        let path = self.path(name)?;
        let Opened {
            download,
            stat,
            key,
        } = self.storage.open_read(&path, offset)?;
        let guard = self.read_lock(&key)?;
        if !stat.is_file() {
            return Err(Refusal::NotAFile.into());
        }
        Ok((path, download, stat, guard))
    }

    fn read_lock(&self, key: &EntryKey) -> Result<FileGuard<'s>, Failure> {
        let wait = self.shared.config.lock_wait;
        let asked = Instant::now();
        let guard = self.shared.locks.read(key, wait);
        let metrics = &self.shared.metrics;
        metrics.lock_wait(LockMode::Read, asked.elapsed(), guard.is_some());
        guard.ok_or(Failure::Busy)
    }

    fn write_lock(&self, key: &EntryKey) -> Result<FileGuard<'s>, Failure> {
        let wait = self.shared.config.lock_wait;
        let asked = Instant::now();
        let guard = self.shared.locks.write(key, wait);
        let metrics = &self.shared.metrics;
        metrics.lock_wait(LockMode::Write, asked.elapsed(), guard.is_some());
        guard.ok_or(Failure::Busy)
    }

    pub(super) fn cwd(&mut self, dir: &str) -> Result<Reply, Failure> {
        let path = self.path(dir)?;
        if !self.storage.stat(&path)?.is_dir() {
            return Err(Refusal::NotADirectory.into());
        }
        self.cwd = path;
        Ok(Reply::new(
            ReplyCode::FileActionOk,
            format!("Directory changed to {}", self.cwd),
        ))
    }

    pub(super) fn retr(&mut self, name: &str) -> Result<Step, Failure> {
        let mut plan = self.data.take_plan();
        let mut offset = std::mem::take(&mut self.rest);
        let (path, download, stat, guard) = self.open_plain(name, offset)?;
        let end = stat.size;
        if offset > end {
            return Err(Refusal::RestPastEnd {
                offset,
                len: Some(end),
            }
            .into());
        }
        let what = match offset {
            0 => format!("{path} ({end} bytes)"),
            _ => format!("{path} ({} bytes from {offset})", end - offset),
        };
        let started = Instant::now();
        let start = offset;
        let mark = mark(&what);
        let file = match download {
            Download::File(file) => file,
            // A stream has no quick path: it is read as it is sent.
            Download::Stream(reader) => {
                let opening = self
                    .data
                    .open(plan, &mut self.control, &mark, &self.token)?;
                let job = Job::send_stream(reader, offset, end);
                return self.begin(opening, job, path, Some(guard));
            }
        };
        let quick = self.quick_send(&mut plan, &file, &mut offset, end, &mark);
        if let Err(failure) = &quick {
            self.transfer_failed("RETR", &path, offset - start, started, failure);
        }
        let opening = match quick? {
            Quick::Done => {
                self.log_transfer("RETR", &path, offset - start, started);
                return Ok(Step::Reply(transfer_complete(offset - start)));
            }
            Quick::Started(tcp) => self.data.start(tcp, &self.token)?,
            Quick::No => self
                .data
                .open(plan, &mut self.control, &mark, &self.token)?,
        };
        let job = Job::send(file, start, offset, end);
        self.begin(opening, job, path, Some(guard))
    }

    /// Sends a small file at once when the client has already made its plain, passive
    /// data connection, as clients do before they send RETR: nothing waits, so there
    /// is no timeout to set, and the connection is not registered for the cut at
    /// the end of the grace period. The `150` still goes out in a write of its own before the data: clients
    /// such as aria2 read the `150`, then wait for the `226` with a fresh read, and a
    /// `226` that came in the same segment was already consumed (issue 11: aria2 waited
    /// 60 s per small file). When the socket's buffer fills first, the rest goes the
    /// ordinary way ([`Quick::Started`]).
    fn quick_send(
        &mut self,
        plan: &mut Option<DataPlan>,
        file: &File,
        offset: &mut u64,
        end: u64,
        mark: &Reply,
    ) -> Result<Quick, Failure> {
        if end.saturating_sub(*offset) > QUICK_MAX {
            return Ok(Quick::No);
        }
        let Some(tcp) = self.data.open_waiting(plan, &mut self.control, mark)? else {
            return Ok(Quick::No);
        };
        while *offset < end {
            let max = usize::try_from(end - *offset).unwrap_or(usize::MAX);
            match self.pump.file_to_socket(file, offset, &tcp, max) {
                Ok(0) => break, // the file shrank meanwhile
                Ok(_) => {}
                Err(CopyError::Net(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    tcp.set_nonblocking(false).map_err(Failure::Transfer)?;
                    return Ok(Quick::Started(tcp));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Closed before the 226 goes out: the client sees the end of the data first.
        // The connection is gone if this fails; the client saw all there was.
        let _ = data::await_close(&tcp, data::CLOSE_WAIT);
        Ok(Quick::Done)
    }

    /// STOR, APPE and REST+STOR: the new version is built by the backend's upload
    /// (starting from part of the current file when resuming or appending) and made
    /// visible only when the upload is complete. Readers see the old version or the
    /// new one, never a mix.
    pub(super) fn store(&mut self, name: &str, how: Store) -> Result<Step, Failure> {
        let place = self.locate_new(name)?;
        let shown = place.path().to_string();
        self.store_at(place, how, &mark(&shown), false)
    }

    /// STOU (RFC 959; RFC 1123 §4.1.2.9): stores under a name the server picks, free
    /// in the current directory (or beside `base`, when the client suggests one), as
    /// STOR does. The name is reserved at once with an empty file made only if the
    /// name is free (`O_CREAT | O_EXCL` on the local backend), then the complete
    /// upload replaces it; a failed upload removes it. The `150 FILE: name` reply is
    /// the form vsftpd and ProFTPD send, which clients parse for the name.
    pub(super) fn stou(&mut self, base: Option<&str>) -> Result<Step, Failure> {
        const TRIES: u32 = 100;
        let mut reserved = None;
        for n in 0..TRIES {
            let name = match base {
                Some(base) if n == 0 => base.to_owned(),
                Some(base) => format!("{base}.{n}"),
                None => format!("ftp{:08x}", crate::path::random() as u32),
            };
            let place = self.locate_new(&name)?;
            match place.create_new() {
                Ok(()) => {
                    reserved = Some((name, place));
                    break;
                }
                Err(StorageError::Exists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some((name, place)) = reserved else {
            return Err(Refusal::NoUniqueName.into());
        };
        let reply = Reply::new(ReplyCode::FileStatusOk, format!("FILE: {name}"));
        self.store_at(place, Store::Replace, &reply, true)
    }

    /// Starts receiving an upload into `place` (see [`Session::store`]); `mark` is the
    /// `150`. `reserved`: STOU made the file to hold the name, and a failure removes it.
    fn store_at(
        &mut self,
        place: Box<dyn Place>,
        how: Store,
        mark: &Reply,
        reserved: bool,
    ) -> Result<Step, Failure> {
        let started = self.start_store(&*place, how, mark);
        if started.is_err() && reserved {
            let _ = place.remove_file();
        }
        let (opening, upload, guard) = started?;
        let verb = match how {
            _ if reserved => "STOU",
            Store::Append => "APPE",
            _ => "STOR",
        };
        let shown = place.path().clone();
        let job = Job::receive(upload, place, verb, reserved);
        self.begin(opening, job, shown, Some(guard))
    }

    /// An upload (`verb`: STOR, APPE or STOU) was put in place as `target`: keeps its
    /// facts for the upload hook, which gets them once the `226` went out
    /// ([`Session::hand_over_upload`]). Called under the file's write lock, so the size
    /// is the one the upload left.
    pub(super) fn uploaded(&mut self, verb: &'static str, target: &dyn Place) {
        if self.shared.hooks.is_none() {
            return;
        }
        let Login::In(user) = &self.login else {
            return; // uploads need a login
        };
        let path = target.path();
        let size = match target.stat_entry() {
            Ok(stat) => stat.size,
            Err(e) => {
                // Nothing to run a hook on; said, and counted with the dropped ones.
                self.shared
                    .hook_stats
                    .dropped
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!("{}: upload hook for {verb} {path} dropped: {e}", self.peer);
                return;
            }
        };
        self.uploaded = Some(UploadFacts {
            action: verb,
            user: user.clone(),
            path: path.to_string(),
            file: self.storage.location(path),
            size,
            client: self.peer.ip().to_canonical(),
        });
    }

    /// Hands the facts of the upload just answered over to the upload hooks (never
    /// waiting: see [`crate::server::hooks`]).
    pub(super) fn hand_over_upload(&mut self) {
        if let (Some(upload), Some(hooks)) = (self.uploaded.take(), &self.shared.hooks) {
            hooks.submit(upload);
        }
    }

    /// Takes the write lock on `place`, starts the backend's upload (with the part of
    /// the current file that APPE or REST keeps), says `mark` and starts opening the
    /// data connection.
    fn start_store(
        &mut self,
        place: &dyn Place,
        how: Store,
        mark: &Reply,
    ) -> Result<(Opening, Box<dyn Upload>, FileGuard<'s>), Failure> {
        let plan = self.data.take_plan();
        let guard = self.write_lock(place.key())?;
        // Under the write lock: the size an APPE or REST keeps cannot change now.
        let current = match place.stat() {
            Ok(stat) if stat.is_dir() => return Err(Refusal::IsADirectory.into()),
            Ok(stat) => Some(stat.size),
            Err(StorageError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let keep = match (how, current) {
            (Store::Replace, _) | (Store::Append, None) => 0,
            (Store::Append, Some(len)) => len,
            (Store::At(n), Some(len)) if n <= len => n,
            (Store::At(offset), _) => {
                return Err(Refusal::RestPastEnd { offset, len: None }.into());
            }
        };
        // Dropping `upload` on any error below leaves nothing behind.
        let upload = place.create_upload(keep)?;
        let opening = self.data.open(plan, &mut self.control, mark, &self.token)?;
        Ok((opening, upload, guard))
    }

    /// HASH: the file's digest. Hashing costs CPU in proportion to the file (seconds
    /// for gigabytes), so it takes one of a few slots (about one per core; a HASH that
    /// finds none free within the lock wait gets `450`) and looks at the control
    /// connection after every [`CHUNK`], so ABOR stops it as it stops a transfer.
    pub(super) fn hash(&mut self, name: &str) -> Result<Reply, Failure> {
        let Some(_slot) = self.shared.hash_slots.take(self.shared.config.lock_wait) else {
            return Err(Refusal::HashBusy.into());
        };
        let (_, download, _, _guard) = self.open_plain(name, 0)?;
        let (len, digest) = match (download, self.hash) {
            (Download::File(file), HashAlgo::Sha256) => self.digest::<sha2::Sha256>(file)?,
            (Download::File(file), HashAlgo::Sha512) => self.digest::<sha2::Sha512>(file)?,
            (Download::Stream(from), HashAlgo::Sha256) => self.digest::<sha2::Sha256>(from)?,
            (Download::Stream(from), HashAlgo::Sha512) => self.digest::<sha2::Sha512>(from)?,
        };
        Ok(Reply::new(
            ReplyCode::FileStatus,
            format!("{} 0-{len} {digest} {name}", self.hash.name()),
        ))
    }

    /// The digest `D` of `from`, read to its end, with a look for ABOR between chunks.
    fn digest<D: sha2::Digest>(&mut self, from: impl Read) -> Result<(u64, String), Failure> {
        digest_between::<D, Failure>(from, CHUNK as u64, Failure::Fs, || {
            if self.shared.forced.load(Ordering::SeqCst) {
                return Err(Failure::Transfer(io::ErrorKind::ConnectionAborted.into()));
            }
            self.check_abort()
        })
    }

    /// MFMT (draft-somers-ftp-mfxx §3): sets the modification time of the plain file
    /// `name` (following a symlink that stays inside the root) on the opened file, and
    /// says the time the file now has, as the storage keeps it. No lock is taken:
    /// the time goes to the version the name names at that moment (clients send MFMT
    /// after the upload's `226`).
    pub(super) fn mfmt(&self, time: &TimeVal, name: &str) -> Result<Reply, Failure> {
        let place = self.locate(name)?;
        let stat = place
            .set_modified(time.to_system_time())?
            .ok_or(Refusal::NotAFile)?;
        let modified = stat
            .modified
            .ok_or_else(|| StorageError::Unsupported("modification times".into()))?;
        let now = Utc::from_system_time(modified).mdtm();
        log::info!("{}: MFMT {} {now}", self.peer, place.path());
        Ok(Reply::new(
            ReplyCode::FileStatus,
            format!("Modify={now}; {name}"),
        ))
    }

    pub(super) fn dele(&self, name: &str) -> Result<Reply, Failure> {
        let place = self.locate(name)?;
        if place.stat_entry()?.is_dir() {
            return Err(Refusal::DeleteDirectory.into());
        }
        let _guard = self.write_lock(place.key())?;
        place.remove_file()?;
        log::info!("{}: DELE {}", self.peer, place.path());
        Ok(Reply::new(ReplyCode::FileActionOk, "File deleted"))
    }

    pub(super) fn mkd(&self, name: &str) -> Result<Reply, Failure> {
        let place = self.locate_new(name)?;
        place.create_dir()?;
        log::info!("{}: MKD {}", self.peer, place.path());
        Ok(Reply::new(
            ReplyCode::PathName,
            format!("{} created", quote(place.path().as_str())),
        ))
    }

    pub(super) fn rmd(&self, name: &str) -> Result<Reply, Failure> {
        let place = self.locate(name)?;
        if place.path().is_root() {
            return Err(Refusal::RemoveRoot.into());
        }
        if !place.stat_entry()?.is_dir() {
            return Err(Refusal::NotADirectory.into());
        }
        place.remove_dir()?;
        log::info!("{}: RMD {}", self.peer, place.path());
        Ok(Reply::new(ReplyCode::FileActionOk, "Directory removed"))
    }

    /// RNFR: remembers an existing entry for the RNTO that must come next.
    pub(super) fn rnfr(&mut self, name: &str) -> Result<Reply, Failure> {
        let place = self.locate(name)?;
        place.stat_entry()?;
        self.rename_from = Some(place);
        Ok(Reply::new(ReplyCode::PendingFurtherInfo, "Ready for RNTO"))
    }

    pub(super) fn rnto(&self, from: Box<dyn Place>, name: &str) -> Result<Reply, Failure> {
        let to = self.locate_new(name)?;
        if from.path().is_root() || to.path().is_root() {
            return Err(Refusal::RenameRoot.into());
        }
        // Both names are locked, in a fixed order so two renames never deadlock.
        let (first, second) = if from.key() <= to.key() {
            (from.key(), to.key())
        } else {
            (to.key(), from.key())
        };
        let _a = self.write_lock(first)?;
        let _b = (first != second)
            .then(|| self.write_lock(second))
            .transpose()?;
        from.rename_to(&*to)?;
        log::info!("{}: rename {} to {}", self.peer, from.path(), to.path());
        Ok(Reply::new(ReplyCode::FileActionOk, "Rename successful"))
    }
}

/// The `150` that starts a transfer; `what` names the file (and its size).
pub(super) fn mark(what: &str) -> Reply {
    Reply::new(
        ReplyCode::FileStatusOk,
        format!("Opening data connection for {what}"),
    )
}
