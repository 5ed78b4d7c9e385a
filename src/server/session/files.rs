//! The commands that read or change files and directories: RETR, STOR, APPE, STOU,
//! HASH, SIZE, MDTM, MFMT, CWD, DELE, MKD, RMD, RNFR and RNTO.
//!
//! Every path goes through the session's [`Root`] (directory handles, nothing outside
//! the root), every file a transfer reads or replaces is held in the lock table, and
//! an upload is built beside its target and renamed over it only when complete.

use std::fs::{File, Metadata};
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
use crate::path::{is_fit_for_new_name, EntryKey, PartFile, PathError, Resolved, VirtualPath};
use crate::protocol::{Reply, ReplyCode, TimeVal};
use crate::server::hooks::Upload;
use crate::server::metrics::LockMode;
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
    pub(super) fn resolve(&self, arg: &str) -> Result<Resolved, Failure> {
        Ok(self.root.resolve(&self.cwd, arg)?)
    }

    /// Resolves the name a new file or directory is to get: one with a control
    /// character is refused (`553`), since listings would send it verbatim.
    fn resolve_new(&self, arg: &str) -> Result<Resolved, Failure> {
        let path = self.resolve(arg)?;
        if !path.virtual_path().leaf().is_none_or(is_fit_for_new_name) {
            return Err(Refusal::ControlCharName.into());
        }
        Ok(path)
    }

    /// Resolves `name` and checks that it is a plain file (following a symlink that
    /// stays inside the root).
    pub(super) fn plain_file(&self, name: &str) -> Result<(Resolved, Metadata), Failure> {
        let path = self.resolve(name)?;
        let meta = path.metadata()?;
        if !meta.is_file() {
            return Err(Refusal::NotAFile.into());
        }
        Ok((path, meta))
    }

    /// Opens the plain file `name` for reading and takes its read lock: one `openat2`
    /// when no symlink is on the way, else the checked resolution. The file is opened
    /// before the lock is taken: a reader that waits for an upload of the same name
    /// reads the version it asked for, whole (uploads replace a file by renaming a
    /// complete one over it).
    fn open_plain(
        &self,
        name: &str,
    ) -> Result<(VirtualPath, File, Metadata, FileGuard<'s>), Failure> {
        let (path, key, file) = match self.root.open_direct(&self.cwd, name)? {
            Some(opened) => opened,
            None => {
                let path = self.resolve(name)?;
                let file = path.open_read()?;
                (path.virtual_path().clone(), path.lock_key().clone(), file)
            }
        };
        let guard = self.read_lock(&key)?;
        let meta = file.metadata().map_err(Failure::Fs)?;
        if !meta.is_file() {
            return Err(Refusal::NotAFile.into());
        }
        Ok((path, file, meta, guard))
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
        let path = self.resolve(dir)?;
        let meta = path.metadata()?;
        if !meta.is_dir() {
            return Err(Refusal::NotADirectory.into());
        }
        self.cwd = path.virtual_path().clone();
        Ok(Reply::new(
            ReplyCode::FileActionOk,
            format!("Directory changed to {}", self.cwd),
        ))
    }

    pub(super) fn retr(&mut self, name: &str) -> Result<Step, Failure> {
        let mut plan = self.data.take_plan();
        let mut offset = std::mem::take(&mut self.rest);
        let (path, file, meta, guard) = self.open_plain(name)?;
        let end = meta.len();
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

    /// STOR, APPE and REST+STOR: the new version is built in a hidden temporary file
    /// beside the target (starting from part of the current file when resuming or
    /// appending) and renamed over the target only when the upload is complete.
    /// Readers see the old version or the new one, never a mix.
    pub(super) fn store(&mut self, name: &str, how: Store) -> Result<Step, Failure> {
        let path = self.resolve_new(name)?;
        let shown = path.virtual_path().to_string();
        self.store_at(path, how, &mark(&shown), false)
    }

    /// STOU (RFC 959; RFC 1123 §4.1.2.9): stores under a name the server picks, free
    /// in the current directory (or beside `base`, when the client suggests one), as
    /// STOR does. The name is reserved at once with an empty file made only if the
    /// name is free (`O_CREAT | O_EXCL`), then the complete upload replaces it; a failed
    /// upload removes it. The `150 FILE: name` reply is the form vsftpd and ProFTPD
    /// send, which clients parse for the name.
    pub(super) fn stou(&mut self, base: Option<&str>) -> Result<Step, Failure> {
        const TRIES: u32 = 100;
        let mut reserved = None;
        for n in 0..TRIES {
            let name = match base {
                Some(base) if n == 0 => base.to_owned(),
                Some(base) => format!("{base}.{n}"),
                None => format!("ftp{:08x}", crate::path::random() as u32),
            };
            let path = self.resolve_new(&name)?;
            match path.create_new() {
                Ok(()) => {
                    reserved = Some((name, path));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Failure::Fs(e)),
            }
        }
        let Some((name, path)) = reserved else {
            return Err(Refusal::NoUniqueName.into());
        };
        let reply = Reply::new(ReplyCode::FileStatusOk, format!("FILE: {name}"));
        self.store_at(path, Store::Replace, &reply, true)
    }

    /// Starts receiving an upload into `path` (see [`Session::store`]); `mark` is the
    /// `150`. `reserved`: STOU made `path` to hold the name, and a failure removes it.
    fn store_at(
        &mut self,
        path: Resolved,
        how: Store,
        mark: &Reply,
        reserved: bool,
    ) -> Result<Step, Failure> {
        let started = self.start_store(&path, how, mark);
        if started.is_err() && reserved {
            let _ = path.remove_file();
        }
        let (opening, part, guard) = started?;
        let verb = match how {
            _ if reserved => "STOU",
            Store::Append => "APPE",
            _ => "STOR",
        };
        let shown = path.virtual_path().clone();
        let job = Job::receive(part, path, verb, reserved);
        self.begin(opening, job, shown, Some(guard))
    }

    /// An upload (`verb`: STOR, APPE or STOU) was put in place as `target`: keeps its
    /// facts for the upload hook, which gets them once the `226` went out
    /// ([`Session::hand_over_upload`]). Called under the file's write lock, so the size
    /// is the one the upload left.
    pub(super) fn uploaded(&mut self, verb: &'static str, target: &Resolved) {
        if self.shared.hooks.is_none() {
            return;
        }
        let Login::In(user) = &self.login else {
            return; // uploads need a login
        };
        let size = match target.symlink_metadata() {
            Ok(meta) => meta.len(),
            Err(e) => {
                // Nothing to run a hook on; said, and counted with the dropped ones.
                self.shared
                    .hook_stats
                    .dropped
                    .fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "{}: upload hook for {verb} {} dropped: {e}",
                    self.peer,
                    target.virtual_path()
                );
                return;
            }
        };
        self.uploaded = Some(Upload {
            action: verb,
            user: user.clone(),
            path: target.virtual_path().to_string(),
            file: target.host_path(),
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

    /// Takes the write lock on `path`, makes the new version's temporary file (with
    /// the part of the current file that APPE or REST keeps), says `mark` and starts
    /// opening the data connection.
    fn start_store(
        &mut self,
        path: &Resolved,
        how: Store,
        mark: &Reply,
    ) -> Result<(Opening, PartFile, FileGuard<'s>), Failure> {
        let plan = self.data.take_plan();
        let guard = self.write_lock(path.lock_key())?;
        // Under the write lock: the size an APPE or REST keeps cannot change now.
        let current = match path.metadata() {
            Ok(meta) if meta.is_dir() => return Err(Refusal::IsADirectory.into()),
            Ok(meta) => Some(meta.len()),
            Err(PathError::Io(e)) if e.kind() == io::ErrorKind::NotFound => None,
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
        // Made in the target's directory handle; dropping `part` on any error removes it.
        let mut part = path.create_part().map_err(Failure::Fs)?;
        if keep > 0 {
            // File to file: std::io::copy uses copy_file_range here.
            let current = path.open_read()?;
            io::copy(&mut current.take(keep), part.file_mut()).map_err(Failure::Fs)?;
        }
        let opening = self.data.open(plan, &mut self.control, mark, &self.token)?;
        Ok((opening, part, guard))
    }

    /// HASH: the file's digest. Hashing costs CPU in proportion to the file (seconds
    /// for gigabytes), so it takes one of a few slots (about one per core; a HASH that
    /// finds none free within the lock wait gets `450`) and looks at the control
    /// connection after every [`CHUNK`], so ABOR stops it as it stops a transfer.
    pub(super) fn hash(&mut self, name: &str) -> Result<Reply, Failure> {
        let Some(_slot) = self.shared.hash_slots.take(self.shared.config.lock_wait) else {
            return Err(Refusal::HashBusy.into());
        };
        let (_, file, _, _guard) = self.open_plain(name)?;
        let (len, digest) = match self.hash {
            HashAlgo::Sha256 => self.digest::<sha2::Sha256>(&file)?,
            HashAlgo::Sha512 => self.digest::<sha2::Sha512>(&file)?,
        };
        Ok(Reply::new(
            ReplyCode::FileStatus,
            format!("{} 0-{len} {digest} {name}", self.hash.name()),
        ))
    }

    /// The digest `D` of `file`, read to its end, with a look for ABOR between chunks.
    fn digest<D: sha2::Digest>(&mut self, file: &File) -> Result<(u64, String), Failure> {
        digest_between::<D, Failure>(file, CHUNK as u64, Failure::Fs, || {
            if self.shared.forced.load(Ordering::SeqCst) {
                return Err(Failure::Transfer(io::ErrorKind::ConnectionAborted.into()));
            }
            self.check_abort()
        })
    }

    /// MFMT (draft-somers-ftp-mfxx §3): sets the modification time of the plain file
    /// `name` (following a symlink that stays inside the root) on the opened file, and
    /// says the time the file now has, as the file system keeps it. No lock is taken:
    /// the time goes to the version the name names at that moment (clients send MFMT
    /// after the upload's `226`).
    pub(super) fn mfmt(&self, time: &TimeVal, name: &str) -> Result<Reply, Failure> {
        let path = self.resolve(name)?;
        let meta = path
            .set_modified(time.to_system_time())?
            .ok_or(Refusal::NotAFile)?;
        let now = Utc::from_system_time(meta.modified().map_err(Failure::Fs)?).mdtm();
        log::info!("{}: MFMT {} {now}", self.peer, path.virtual_path());
        Ok(Reply::new(
            ReplyCode::FileStatus,
            format!("Modify={now}; {name}"),
        ))
    }

    pub(super) fn dele(&self, name: &str) -> Result<Reply, Failure> {
        let path = self.resolve(name)?;
        let meta = path.symlink_metadata().map_err(Failure::Fs)?;
        if meta.is_dir() {
            return Err(Refusal::DeleteDirectory.into());
        }
        let _guard = self.write_lock(path.lock_key())?;
        path.remove_file().map_err(Failure::Fs)?;
        log::info!("{}: DELE {}", self.peer, path.virtual_path());
        Ok(Reply::new(ReplyCode::FileActionOk, "File deleted"))
    }

    pub(super) fn mkd(&self, name: &str) -> Result<Reply, Failure> {
        let path = self.resolve_new(name)?;
        path.create_dir().map_err(Failure::Fs)?;
        log::info!("{}: MKD {}", self.peer, path.virtual_path());
        Ok(Reply::new(
            ReplyCode::PathName,
            format!("{} created", quote(path.virtual_path().as_str())),
        ))
    }

    pub(super) fn rmd(&self, name: &str) -> Result<Reply, Failure> {
        let path = self.resolve(name)?;
        if path.virtual_path().is_root() {
            return Err(Refusal::RemoveRoot.into());
        }
        let meta = path.symlink_metadata().map_err(Failure::Fs)?;
        if !meta.is_dir() {
            return Err(Refusal::NotADirectory.into());
        }
        path.remove_dir().map_err(Failure::Fs)?;
        log::info!("{}: RMD {}", self.peer, path.virtual_path());
        Ok(Reply::new(ReplyCode::FileActionOk, "Directory removed"))
    }

    /// RNFR: remembers an existing name for the RNTO that must come next.
    pub(super) fn rnfr(&mut self, name: &str) -> Result<Reply, Failure> {
        let path = self.resolve(name)?;
        path.symlink_metadata().map_err(Failure::Fs)?;
        self.rename_from = Some(path);
        Ok(Reply::new(ReplyCode::PendingFurtherInfo, "Ready for RNTO"))
    }

    pub(super) fn rnto(&self, from: Resolved, name: &str) -> Result<Reply, Failure> {
        let to = self.resolve_new(name)?;
        if from.virtual_path().is_root() || to.virtual_path().is_root() {
            return Err(Refusal::RenameRoot.into());
        }
        // Both names are locked, in a fixed order so two renames never deadlock.
        let (first, second) = if from.lock_key() <= to.lock_key() {
            (from.lock_key(), to.lock_key())
        } else {
            (to.lock_key(), from.lock_key())
        };
        let _a = self.write_lock(first)?;
        let _b = (first != second)
            .then(|| self.write_lock(second))
            .transpose()?;
        from.rename_to(&to).map_err(Failure::Fs)?;
        log::info!(
            "{}: rename {} to {}",
            self.peer,
            from.virtual_path(),
            to.virtual_path()
        );
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
