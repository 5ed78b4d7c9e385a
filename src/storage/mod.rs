//! Where the served files live: the storage layer the session reads and writes through.
//!
//! The session speaks FTP; a [`Backend`] keeps the files. Every path a backend is given
//! is a [`VirtualPath`], already normalized by the session (`/a/b`, no `..`, no NUL, no
//! name of our in-progress uploads): what it means is the backend's business. The
//! local directory ([`local::Local`], the default) resolves it below its root with
//! directory handles (see [`crate::path`]); an object store maps it to a key.
//!
//! Why trait objects (`Arc<dyn Backend>`, and a [`Place`] per command) rather than an
//! enum of backends: another backend plugs in from its own module (and a test wraps
//! one) without the session knowing it. A command looks its path up once
//! ([`Backend::locate`]) and acts on the [`Place`] found: on the local backend that
//! keeps every action on the directory handle the lookup found, as before the layer
//! (a lookup per action would let a directory swapped for a symlink meanwhile make
//! the later steps fail, and cost a lookup each). The session keeps what is the
//! same on every backend: permissions, the lock table (keyed by [`Place::key`], per
//! server instance), REST and APPE bookkeeping, listings' format.
//!
//! Two things keep the local data path as fast as before:
//! - [`Backend::open_read`] gives a [`Download`]: a `File` (the transfer sends it with
//!   sendfile) or a stream (`Read`) for stores that have no file;
//! - [`Place::create_upload`] gives an [`Upload`] whose [`Sink`] is a `File` (the
//!   transfer splices into it) or a `Write`; it becomes visible only by
//!   [`Upload::commit`], and dropping it uncommitted leaves nothing (the local part
//!   file is removed; a multipart upload would be aborted).
//!
//! Failures are [`StorageError`] kinds, which the session's failure map turns into
//! replies; a backend that cannot do something (APPE on an object store) says
//! [`StorageError::Unsupported`] with its reason, and the client gets a clear `550`.

pub mod local;
pub mod s3;

use std::any::Any;
use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

pub use crate::path::{EntryKey, VirtualPath};

/// What can go wrong in storage, each kind with the reply the session gives it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// 550 "No such file or directory": the path (or a directory on its way) is missing.
    #[error("no such file or directory")]
    NotFound,
    /// 550 "No such file or directory": a component on the way is not a directory.
    #[error("not a directory")]
    NotADirectory,
    /// 550 "Is a directory".
    #[error("is a directory")]
    IsADirectory,
    /// 550 "Directory not empty" (RMD, or a rename onto one).
    #[error("directory not empty")]
    NotEmpty,
    /// 550 "File exists" (MKD of an existing name; STOU tries the next name).
    #[error("file exists")]
    Exists,
    /// 550 "Permission denied": a symlink (or the like) would lead outside the root.
    #[error("outside the root")]
    Outside,
    /// 550 "Not supported by this server's storage: ...": the backend cannot do this
    /// (APPE or REST+STOR on an object store, say); the reason is shown to the client.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Anything else, as the system said it: 550 for permissions, 452 for a full disk,
    /// 553 for a name too long, 451 otherwise. Its text goes to the log only.
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for StorageError {
    /// The kinds the session answers in their own words; the rest stays an I/O error.
    fn from(e: io::Error) -> StorageError {
        use io::ErrorKind as K;
        match e.kind() {
            K::NotFound => StorageError::NotFound,
            K::NotADirectory => StorageError::NotADirectory,
            K::IsADirectory => StorageError::IsADirectory,
            K::DirectoryNotEmpty => StorageError::NotEmpty,
            K::AlreadyExists => StorageError::Exists,
            _ => StorageError::Io(e),
        }
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plain file.
    File,
    /// A directory.
    Dir,
    /// Only from [`Place::stat_entry`] (or a dangling link): every other look
    /// follows a symlink that stays inside the root.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
}

/// What a listing, SIZE, MDTM or MLST shows of an entry, from any backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// What the entry is.
    pub kind: Kind,
    /// Bytes (of a file; what the backend says for others).
    pub size: u64,
    /// The modification time, when the backend has one.
    pub modified: Option<SystemTime>,
    /// The twelve permission bits, when the backend has them; listings show
    /// [`Stat::mode_or_default`] otherwise.
    pub mode: Option<u32>,
    /// Hard links (1 where the backend has no such thing).
    pub nlink: u64,
    /// A pair that tells this entry from every other (device and inode), when the
    /// backend has one: MLSD's `unique` fact.
    pub unique: Option<(u64, u64)>,
}

impl Stat {
    /// Whether this is a plain file.
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// The mode bits, or for a backend without them (object stores) a fixed mode:
    /// `rwxr-xr-x` for a directory, `rw-r--r--` for anything else, as an upload gets
    /// on the local backend with the usual umask.
    pub fn mode_or_default(&self) -> u32 {
        self.mode
            .unwrap_or(if self.is_dir() { 0o755 } else { 0o644 })
    }

    /// The stat of a local file system entry.
    pub fn from_metadata(meta: &Metadata) -> Stat {
        let t = meta.file_type();
        let kind = if t.is_dir() {
            Kind::Dir
        } else if t.is_symlink() {
            Kind::Symlink
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_block_device() {
            Kind::BlockDevice
        } else if t.is_char_device() {
            Kind::CharDevice
        } else {
            Kind::File
        };
        Stat {
            kind,
            size: meta.len(),
            modified: meta.modified().ok(),
            mode: Some(meta.permissions().mode() & 0o7777),
            nlink: meta.nlink(),
            unique: Some((meta.dev(), meta.ino())),
        }
    }
}

/// A file opened to be downloaded (RETR, HASH).
pub enum Download {
    /// The whole file: the transfer reads it from the offset itself (sendfile).
    File(File),
    /// The bytes from the offset asked for to the end, as a stream.
    Stream(Box<dyn Read + Send>),
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Download::File(file) => f.debug_tuple("File").field(file).finish(),
            Download::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// What [`Backend::open_read`] gives.
#[derive(Debug)]
pub struct Opened {
    /// How to read it.
    pub download: Download,
    /// The entry opened (its size is the whole file's, whatever the offset).
    pub stat: Stat,
    /// Its key in the lock table.
    pub key: EntryKey,
}

/// Where an upload's bytes go.
pub enum Sink<'a> {
    /// A file the transfer writes at its end (splice from the socket).
    File(&'a File),
    /// A writer, which keeps its memory bounded.
    Stream(&'a mut (dyn Write + Send)),
}

/// An upload in progress: invisible until [`Upload::commit`]; dropped uncommitted, it
/// leaves nothing behind.
pub trait Upload: Send {
    /// Where the next bytes go.
    fn sink(&mut self) -> Sink<'_>;

    /// Makes the complete upload visible under its name, in one step: readers see
    /// the old version or this one, never a mix.
    ///
    /// # Errors
    /// When it cannot be put in place (nothing is left behind then).
    fn commit(self: Box<Self>) -> Result<(), StorageError>;
}

/// One entry of a listing: a name and its stat, or why the listing cannot go on.
pub type Entry = Result<(String, Stat), StorageError>;

/// The entries of a directory: names (without our in-progress uploads) and stats, as
/// they are read. An `Err` says the listing cannot be completed (an object store's
/// later page kept failing): what came before it is not the whole directory, so the
/// session fails the listing rather than call it complete. Nothing follows an `Err`.
/// A backend that skips entries it cannot look at (the local one) never yields one.
pub type Entries = Box<dyn Iterator<Item = Entry> + Send>;

/// Which names a listing wants (a wildcard pattern); the backend may skip looking at
/// the others.
pub type NameFilter = Box<dyn Fn(&str) -> bool + Send>;

/// A place files live. Every method takes paths the session normalized; none follows
/// a path out of the backend's root.
pub trait Backend: Send + Sync + fmt::Debug {
    /// The backend of a user's home: `home` below this one (made if missing) as `/`.
    ///
    /// # Errors
    /// When it cannot be made or opened, or would lie outside.
    fn below(&self, home: &VirtualPath) -> Result<Arc<dyn Backend>, StorageError>;

    /// Looks `path` up once, for a command that acts on it (see [`Place`]). The entry
    /// need not exist (STOR, MKD); the directories on its way must.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for a missing directory on the way,
    /// [`StorageError::Outside`] for a way out of the root.
    fn locate(&self, path: &VirtualPath) -> Result<Box<dyn Place>, StorageError>;

    /// Opens what `path` names to read it from `offset` (see [`Download`]), in as few
    /// steps as the backend can (RETR of small files is most of a busy server's
    /// work). The caller checks that it is a plain file and that `offset` is not past
    /// its end; a backend that streams may refuse an offset past the end itself.
    ///
    /// # Errors
    /// When it cannot be opened.
    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<Opened, StorageError>;

    /// The entries of the directory `dir`, streamed (never read whole first); entries
    /// that cannot be looked at, and symlinks that lead outside, are left out. A
    /// listing that cannot be read to its end yields an `Err` last (see [`Entries`]).
    ///
    /// # Errors
    /// When the directory cannot be opened.
    fn list(&self, dir: &VirtualPath, wanted: Option<NameFilter>) -> Result<Entries, StorageError>;

    /// Where `path` is, for programs and logs outside the protocol (upload hooks'
    /// `FTP_FILE`, the start-up line): a host path, or a URL such as
    /// `s3://bucket/key`. Never shown to clients.
    fn location(&self, path: &VirtualPath) -> PathBuf;

    /// What `path` names, following a last symlink that stays inside.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when missing; others as they come.
    fn stat(&self, path: &VirtualPath) -> Result<Stat, StorageError> {
        self.locate(path)?.stat()
    }
}

/// A path looked up once by [`Backend::locate`]: a command's actions on it all act on
/// what was found then. On the local backend that is the handle of the directory
/// holding the entry, so a directory swapped for a symlink between the lookup and an
/// action cannot lead the action elsewhere, and a command needs one lookup however
/// many steps it takes (lock key, size, upload, rename). On an object store it is
/// the key.
pub trait Place: Send + Sync {
    /// The path as the client sees it.
    fn path(&self) -> &VirtualPath;

    /// The key the lock table holds the entry under: the same for every name of one
    /// entry, where the backend can tell (local: the canonical path).
    fn key(&self) -> &EntryKey;

    /// What the entry names, following a last symlink that stays inside.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when missing; others as they come.
    fn stat(&self) -> Result<Stat, StorageError>;

    /// The entry itself (a symlink is not followed).
    ///
    /// # Errors
    /// As [`Place::stat`].
    fn stat_entry(&self) -> Result<Stat, StorageError>;

    /// Starts an upload that will replace the entry, beginning with the first `keep`
    /// bytes of the current file (APPE, REST+STOR; 0 for STOR). The caller holds the
    /// write lock and has checked `keep` against the current size.
    ///
    /// # Errors
    /// When it cannot be started; [`StorageError::Unsupported`] for a `keep` the
    /// backend cannot do.
    fn create_upload(&self, keep: u64) -> Result<Box<dyn Upload>, StorageError>;

    /// Makes the entry an empty file only if the name is free (STOU reserves its
    /// name so).
    ///
    /// # Errors
    /// [`StorageError::Exists`] when the name is taken.
    fn create_new(&self) -> Result<(), StorageError>;

    /// Makes the entry a directory (MKD).
    ///
    /// # Errors
    /// [`StorageError::Exists`] when the name is taken.
    fn create_dir(&self) -> Result<(), StorageError>;

    /// Removes the entry, an empty directory (RMD).
    ///
    /// # Errors
    /// [`StorageError::NotEmpty`] when it has entries.
    fn remove_dir(&self) -> Result<(), StorageError>;

    /// Removes the entry, which is not a directory (DELE; a symlink itself).
    ///
    /// # Errors
    /// When it is missing or cannot be removed.
    fn remove_file(&self) -> Result<(), StorageError>;

    /// Renames the entry to `to` (a place of the same backend), replacing a file
    /// there (RNFR, RNTO).
    ///
    /// # Errors
    /// When it fails; a backend may refuse directories ([`StorageError::Unsupported`]).
    fn rename_to(&self, to: &dyn Place) -> Result<(), StorageError>;

    /// Sets the modification time of the plain file the entry names (MFMT); its stat
    /// afterwards, or `None`, changing nothing, when it is not a plain file.
    ///
    /// # Errors
    /// When it cannot be set ([`StorageError::Unsupported`] allowed).
    fn set_modified(&self, time: SystemTime) -> Result<Option<Stat>, StorageError>;

    /// The place as [`Any`], so that [`Place::rename_to`] finds its backend's own
    /// type in `to`.
    fn as_any(&self) -> &dyn Any;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_their_kinds() {
        use io::ErrorKind as K;
        let kind = |k: K| StorageError::from(io::Error::from(k));
        assert!(matches!(kind(K::NotFound), StorageError::NotFound));
        assert!(matches!(
            kind(K::NotADirectory),
            StorageError::NotADirectory
        ));
        assert!(matches!(kind(K::IsADirectory), StorageError::IsADirectory));
        assert!(matches!(kind(K::DirectoryNotEmpty), StorageError::NotEmpty));
        assert!(matches!(kind(K::AlreadyExists), StorageError::Exists));
        assert!(matches!(
            kind(K::PermissionDenied),
            StorageError::Io(e) if e.kind() == K::PermissionDenied
        ));
        assert!(matches!(
            kind(K::StorageFull),
            StorageError::Io(e) if e.kind() == K::StorageFull
        ));
    }

    #[test]
    fn a_stat_without_mode_shows_a_fixed_one() {
        let mut stat = Stat {
            kind: Kind::File,
            size: 3,
            modified: None,
            mode: None,
            nlink: 1,
            unique: None,
        };
        assert_eq!(stat.mode_or_default(), 0o644);
        stat.kind = Kind::Dir;
        assert_eq!(stat.mode_or_default(), 0o755);
        stat.mode = Some(0o700);
        assert_eq!(stat.mode_or_default(), 0o700);
    }
}
