//! The only way client text becomes a file-system path: resolution inside the root.
//!
//! A client names files relative to its current directory or from `/`, which is the
//! server root. [`VirtualPath`] is the normalized, client-visible form (`/a/b`): `..`
//! never climbs above `/` (it is resolved lexically, as a chroot would), NUL is
//! refused. [`Root::resolve`] turns it into a [`Resolved`] directory entry: a handle
//! of the directory that holds it, opened below the root's handle, and the entry's
//! name in it. Every file-system action then goes through that handle (`openat`,
//! `mkdirat`, `unlinkat`, `renameat` with the name), never through a path looked up
//! again by name, so a directory swapped for a symlink to outside between the check
//! and the action cannot lead the action out of the root.
//!
//! Directories are opened with one `openat2` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`)
//! when no symlink is on the way. Otherwise, and on kernels without `openat2`, the
//! path is walked one directory handle at a time (`openat` with `O_NOFOLLOW`), as
//! cap-std does: a symlink met on the way is read with `readlinkat` and its target
//! resolved in the same walk, `..` pops back to the handle it came from and never
//! above the root, and a target that leads out of the root is refused. Symlinks that
//! stay inside the root are followed, absolute ones too when they name a place below
//! the root's own path (`RESOLVE_BENEATH` alone would refuse every absolute symlink,
//! and users make them). Storage and lock functions take only [`Resolved`] (or the
//! [`Directory`] and [`EntryKey`] made from it), so no unchecked name reaches them.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, Metadata};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Names starting with this prefix are our in-progress uploads: hidden from listings
/// and refused as client paths, so nobody reads or clobbers a partial upload.
pub const TEMP_PREFIX: &str = ".simple-ftp-part.";

/// Why a client path was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The path contains a NUL byte (reply 501).
    #[error("path contains a NUL byte")]
    Nul,
    /// The path names one of the server's in-progress upload files (reply 553).
    #[error("file name not allowed")]
    Reserved,
    /// A symlink on the way leads outside the root (reply 550).
    #[error("permission denied")]
    Outside,
    /// A directory on the way does not exist or cannot be read (reply 550).
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A normalized client-visible path: starts with `/`, no `.`/`..`/empty components,
/// no trailing slash (except the root itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualPath(String);

impl VirtualPath {
    /// The root, `/`.
    pub fn root() -> VirtualPath {
        VirtualPath("/".to_owned())
    }

    /// Resolves `arg` against `self` (the current directory), lexically.
    ///
    /// # Errors
    /// [`PathError::Nul`] for a NUL byte, [`PathError::Reserved`] for a temporary-file name.
    pub fn join(&self, arg: &str) -> Result<VirtualPath, PathError> {
        if arg.contains('\0') {
            return Err(PathError::Nul);
        }
        let mut parts: Vec<&str> = if arg.starts_with('/') {
            Vec::new()
        } else {
            self.components().collect()
        };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name if name.starts_with(TEMP_PREFIX) => return Err(PathError::Reserved),
                name => parts.push(name),
            }
        }
        Ok(VirtualPath(format!("/{}", parts.join("/"))))
    }

    /// The components, outermost first; none for the root.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The path as the client sees it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The last component; `None` for the root.
    pub fn leaf(&self) -> Option<&str> {
        self.components().last()
    }
}

/// Whether `name` may be given to a new file or directory: no control characters
/// (bytes below 0x20 and 0x7f). A CR or LF in a name would end a line of a listing
/// early and let an uploader forge entries there; names that already exist are not
/// judged by this.
pub fn is_fit_for_new_name(name: &str) -> bool {
    !name.bytes().any(|b| b < 0x20 || b == 0x7f)
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the lock table keys a directory entry by: the host path of the entry with every
/// directory on the way canonical (symlinks inside the root resolved), so two names for
/// one entry through symlinked directories share one lock. Only a key: nothing is ever
/// opened by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey(PathBuf);

impl EntryKey {
    /// A key made by a storage backend of its own (an object store's bucket and key):
    /// every name of one entry must give the same key.
    pub fn new(key: impl Into<PathBuf>) -> EntryKey {
        EntryKey(key.into())
    }

    /// The path the key is made of.
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

/// A directory entry checked to lie inside the root: the handle of the directory that
/// holds it and its name there (`.` for the root itself).
///
/// The name is not followed: a dangling symlink stays a dangling symlink, and renaming
/// over it replaces the link, never its target. The methods that follow a last symlink
/// ([`Resolved::metadata`], [`Resolved::open_read`], [`Resolved::open_dir`]) resolve it
/// again from the root's handle and refuse it when it leads out.
#[derive(Debug, Clone)]
pub struct Resolved {
    virt: VirtualPath,
    root: Root,
    parent: Arc<OwnedFd>,
    name: OsString,
    key: EntryKey,
}

/// A directory opened below the root, to list it and look at its entries.
#[derive(Debug)]
pub struct Directory {
    virt: VirtualPath,
    root: Root,
    fd: OwnedFd,
}

/// The names in a [`Directory`], in the order the file system gives them, without `.`
/// and `..`.
pub struct Names(rustix::fs::Dir);

/// An upload in progress: a hidden file made in the target's directory handle, removed
/// when dropped unless [`PartFile::persist`] renamed it over the target.
#[derive(Debug)]
pub struct PartFile {
    dir: Arc<OwnedFd>,
    name: OsString,
    file: File,
    kept: bool,
}

/// How a file is opened to be read. `O_NONBLOCK` keeps a FIFO from blocking the open
/// (the caller then refuses it as not a plain file) and changes nothing for a
/// regular file.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

/// How a directory on the way is opened: a handle to resolve names against, nothing more.
const DIR: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// How an entry is opened only to `fstat` it; a symlink gives the link itself.
const ENTRY: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Symlinks one resolution follows at most, as the kernel's own limit (`ELOOP` past it).
const MAX_LINKS: usize = 40;

/// The mode of uploaded files (before the umask).
const FILE_MODE: u32 = 0o644;

impl Resolved {
    /// The client-visible path.
    pub fn virtual_path(&self) -> &VirtualPath {
        &self.virt
    }

    /// The entry's key in the lock table.
    pub fn lock_key(&self) -> &EntryKey {
        &self.key
    }

    /// The entry's own metadata (a symlink is not followed).
    ///
    /// # Errors
    /// When the entry is missing or cannot be looked at.
    pub fn symlink_metadata(&self) -> io::Result<Metadata> {
        metadata_at(&self.parent, &self.name)
    }

    /// The metadata of what the entry names, following a last symlink that stays inside
    /// the root.
    ///
    /// # Errors
    /// [`PathError::Outside`] for a symlink that leads out, [`PathError::Io`] when the
    /// entry (or the link's target) is missing.
    pub fn metadata(&self) -> Result<Metadata, PathError> {
        let meta = self.symlink_metadata()?;
        if !meta.file_type().is_symlink() {
            return Ok(meta);
        }
        let (dir, name) = self.followed()?;
        Ok(metadata_at(&dir, &name)?)
    }

    /// Opens the file for reading, following a last symlink that stays inside the root.
    ///
    /// # Errors
    /// [`PathError::Outside`] for a symlink that leads out, [`PathError::Io`] when the
    /// file cannot be opened.
    pub fn open_read(&self) -> Result<File, PathError> {
        match rustix::fs::openat(
            &*self.parent,
            &*self.name,
            READ | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::LOOP) => {
                let (dir, name) = self.followed()?;
                let fd = rustix::fs::openat(&*dir, &*name, READ | OFlags::NOFOLLOW, Mode::empty())
                    .map_err(io::Error::from)?;
                Ok(File::from(fd))
            }
            Err(e) => Err(io::Error::from(e).into()),
        }
    }

    /// Opens the directory the entry names (following a last symlink that stays inside
    /// the root), to list it.
    ///
    /// # Errors
    /// [`PathError::Outside`] for a symlink that leads out, [`PathError::Io`] when it is
    /// missing or not a directory.
    pub fn open_dir(&self) -> Result<Directory, PathError> {
        let fd = match rustix::fs::openat(
            &*self.parent,
            &*self.name,
            DIR | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // O_PATH | O_NOFOLLOW | O_DIRECTORY on a symlink fails with ENOTDIR.
            Err(Errno::NOTDIR | Errno::LOOP)
                if self.symlink_metadata()?.file_type().is_symlink() =>
            {
                let (dir, name) = self.followed()?;
                rustix::fs::openat(&*dir, &*name, DIR | OFlags::NOFOLLOW, Mode::empty())
                    .map_err(io::Error::from)?
            }
            Err(e) => return Err(io::Error::from(e).into()),
        };
        Ok(Directory {
            virt: self.virt.clone(),
            root: self.root.clone(),
            fd,
        })
    }

    /// Makes the directory (MKD); the mode is 0777 before the umask, as `mkdir(1)`.
    ///
    /// # Errors
    /// When the name exists or the directory cannot be made.
    pub fn create_dir(&self) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(
            &*self.parent,
            &*self.name,
            Mode::from_raw_mode(0o777),
        )?)
    }

    /// Removes the entry, which is not a directory (a symlink itself, not its target).
    ///
    /// # Errors
    /// When it is missing, a directory or cannot be removed.
    pub fn remove_file(&self) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &*self.parent,
            &*self.name,
            AtFlags::empty(),
        )?)
    }

    /// Removes the entry, an empty directory.
    ///
    /// # Errors
    /// When it is missing, not a directory, not empty or cannot be removed.
    pub fn remove_dir(&self) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &*self.parent,
            &*self.name,
            AtFlags::REMOVEDIR,
        )?)
    }

    /// Renames the entry to `to` (replacing what is there, as `rename(2)`).
    ///
    /// # Errors
    /// When the entry is missing or the rename fails.
    pub fn rename_to(&self, to: &Resolved) -> io::Result<()> {
        Ok(rustix::fs::renameat(
            &*self.parent,
            &*self.name,
            &*to.parent,
            &*to.name,
        )?)
    }

    /// Makes the entry an empty file of our mode, only if the name is free
    /// (`O_CREAT | O_EXCL`): the name STOU picks is reserved by this.
    ///
    /// # Errors
    /// `AlreadyExists` when the name is taken; others when the file cannot be made.
    pub fn create_new(&self) -> io::Result<()> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(
            &*self.parent,
            &*self.name,
            flags,
            Mode::from_raw_mode(FILE_MODE),
        )?;
        Ok(())
    }

    /// Makes a hidden temporary file beside the entry, in the same directory handle, for
    /// an upload that replaces the entry when complete ([`PartFile::persist`]).
    ///
    /// # Errors
    /// When no file can be made there.
    pub fn create_part(&self) -> io::Result<PartFile> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut tries = 0;
        loop {
            let name = OsString::from(format!("{TEMP_PREFIX}{:016x}", random()));
            match rustix::fs::openat(&*self.parent, &*name, flags, Mode::from_raw_mode(FILE_MODE)) {
                Ok(fd) => {
                    return Ok(PartFile {
                        dir: Arc::clone(&self.parent),
                        name,
                        file: File::from(fd),
                        kept: false,
                    })
                }
                Err(Errno::EXIST) if tries < 16 => tries += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sets the modification time of the plain file the entry names (MFMT), following a
    /// last symlink that stays inside the root. The time is set on the opened file
    /// (`futimens`), so the file whose type was checked is the one changed, whatever
    /// is renamed meanwhile; its access time is left as it is. Returns the file's
    /// metadata afterwards (the file system may have truncated the time to its range
    /// or precision), or `None`, changing nothing, when the entry is not a plain file.
    ///
    /// # Errors
    /// [`PathError::Outside`] for a symlink that leads out, [`PathError::Io`] when the
    /// file is missing or its time cannot be set (not its owner, a read-only file
    /// system).
    pub fn set_modified(&self, time: SystemTime) -> Result<Option<Metadata>, PathError> {
        let file = self.open_read()?;
        if !file.metadata()?.is_file() {
            return Ok(None);
        }
        file.set_modified(time)?;
        Ok(Some(file.metadata()?))
    }

    /// The entry's path on the host: the root's directory joined with the virtual
    /// path. For programs outside the server (upload hooks), never opened by the
    /// server itself, and never shown to clients.
    pub fn host_path(&self) -> PathBuf {
        let mut path = self.root.dir.to_path_buf();
        path.extend(self.virt.components());
        path
    }

    /// The directory handle and name this entry leads to when a last symlink is followed.
    fn followed(&self) -> Result<(Arc<OwnedFd>, OsString), PathError> {
        let parts = self.virt.components().map(OsString::from).collect();
        let (stack, last) = self.root.walk(parts, true)?;
        Ok(self.root.entry(stack, last).0)
    }
}

impl PartFile {
    /// The file being written.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file being written.
    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// Renames the complete file over `target` in one step: readers see the old version
    /// or this one, never a mix.
    ///
    /// # Errors
    /// When the rename fails (the file is then removed).
    pub fn persist(mut self, target: &Resolved) -> io::Result<()> {
        rustix::fs::renameat(&*self.dir, &*self.name, &*target.parent, &*target.name)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = rustix::fs::unlinkat(&*self.dir, &*self.name, AtFlags::empty());
        }
    }
}

impl Directory {
    /// The client-visible path of the directory.
    pub fn virtual_path(&self) -> &VirtualPath {
        &self.virt
    }

    /// The directory's own metadata.
    ///
    /// # Errors
    /// When `fstat` fails.
    pub fn metadata(&self) -> io::Result<Metadata> {
        metadata_at(&self.fd, OsStr::new("."))
    }

    /// Reads the names in the directory from its handle.
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub fn names(&self) -> io::Result<Names> {
        // Dir::read_from would reopen with the handle's own flags, and an O_PATH
        // descriptor cannot be read: the directory is opened for reading here.
        let fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Names(rustix::fs::Dir::new(fd)?))
    }

    /// The metadata of the entry `name` (a symlink is not followed).
    ///
    /// # Errors
    /// When the entry is missing or cannot be looked at.
    pub fn symlink_metadata(&self, name: &OsStr) -> io::Result<Metadata> {
        metadata_at(&self.fd, name)
    }

    /// The metadata of what the entry `name` names: a symlink is followed when it stays
    /// inside the root.
    ///
    /// # Errors
    /// [`PathError::Outside`] for a symlink that leads out, [`PathError::Io`] when the
    /// entry or its target is missing.
    pub fn metadata_of(&self, name: &OsStr) -> Result<Metadata, PathError> {
        let meta = metadata_at(&self.fd, name)?;
        if !meta.file_type().is_symlink() {
            return Ok(meta);
        }
        let mut parts: VecDeque<OsString> = self.virt.components().map(OsString::from).collect();
        parts.push_back(name.to_owned());
        let (stack, last) = self.root.walk(parts, true)?;
        let ((dir, name), _) = self.root.entry(stack, last);
        Ok(metadata_at(&dir, &name)?)
    }
}

impl Iterator for Names {
    type Item = io::Result<OsString>;

    fn next(&mut self) -> Option<io::Result<OsString>> {
        loop {
            let entry = match self.0.read()? {
                Ok(entry) => entry,
                Err(e) => return Some(Err(e.into())),
            };
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                return Some(Ok(OsString::from_vec(name.to_vec())));
            }
        }
    }
}

/// The metadata of `name` in the directory `dir`, not following a symlink: the entry is
/// opened `O_PATH` (nothing is read, a FIFO does not block) and `fstat`ed, which gives
/// std's [`Metadata`] the listing code formats.
fn metadata_at(dir: &OwnedFd, name: &OsStr) -> io::Result<Metadata> {
    let fd = rustix::fs::openat(dir, name, ENTRY, Mode::empty())?;
    File::from(fd).metadata()
}

/// A random number for names that must not be guessed or collide (upload temporary
/// files, STOU's names): std's hasher keys are random per process and differ per call.
pub(crate) fn random() -> u64 {
    RandomState::new().build_hasher().finish()
}

/// The server root: a canonical directory that every client path stays inside.
#[derive(Debug, Clone)]
pub struct Root {
    dir: Arc<Path>,
    /// The root directory, opened (`O_PATH`): every resolution starts here.
    fd: Arc<OwnedFd>,
}

/// Cleared when the kernel has no `openat2` (before Linux 5.6) or a sandbox forbids it.
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// Directories walked into, outermost first, each with its name in the one before it
/// (the root's handle is below the first).
type Stack = Vec<(OwnedFd, OsString)>;

impl Root {
    /// Opens `dir` as the root, creating it if it is missing.
    ///
    /// # Errors
    /// When the directory cannot be created, canonicalized or opened (a path that
    /// is not a directory is refused).
    pub fn new(dir: &Path) -> io::Result<Root> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        // O_DIRECTORY refuses anything but a directory (ENOTDIR).
        let fd = rustix::fs::open(&dir, DIR, Mode::empty())?;
        Ok(Root {
            dir: dir.into(),
            fd: Arc::new(fd),
        })
    }

    /// The directory `home` names below this root, made if missing, as a root of its own
    /// (a user's home). Each level is made with `mkdirat` in the handle of the one above,
    /// so a symlink on the way can lead neither the making nor the new root outside.
    ///
    /// # Errors
    /// [`PathError::Outside`] when a symlink on the way leads out, [`PathError::Io`] when
    /// a level cannot be made or opened.
    pub fn below(&self, home: &VirtualPath) -> Result<Root, PathError> {
        let parts: Vec<&str> = home.components().collect();
        for depth in 0..parts.len() {
            let (parent, _) = self.directory(&parts[..depth])?;
            match rustix::fs::mkdirat(&*parent, parts[depth], Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        let (fd, dir) = self.directory(&parts)?;
        Ok(Root {
            dir: dir.into(),
            fd,
        })
    }

    /// Opens the file `arg` names (relative to `cwd`) for reading in one system call,
    /// when no symlink lies on its way: `openat2` below the root's handle, refusing
    /// every symlink and any way out of the root. `None` when that does not apply (a
    /// symlink on the way, a missing file, an old kernel): the caller resolves and
    /// opens the usual way, which also names the error. A FIFO does not block the
    /// open (`O_NONBLOCK`, which changes nothing for a regular file).
    ///
    /// # Errors
    /// [`PathError::Nul`] / [`PathError::Reserved`] for refused names.
    pub fn open_direct(
        &self,
        cwd: &VirtualPath,
        arg: &str,
    ) -> Result<Option<(VirtualPath, EntryKey, File)>, PathError> {
        let virt = cwd.join(arg)?;
        Ok(self
            .open_direct_virtual(&virt)
            .map(|(key, file)| (virt, key, file)))
    }

    /// [`Root::open_direct`] of an already normalized virtual path: the file's lock key
    /// and the file, or `None` when the usual way must be taken.
    pub fn open_direct_virtual(&self, virt: &VirtualPath) -> Option<(EntryKey, File)> {
        let relative = virt.as_str().strip_prefix('/').filter(|r| !r.is_empty())?;
        if !OPENAT2.load(Ordering::Relaxed) {
            return None;
        }
        let opened = rustix::fs::openat2(
            &*self.fd,
            relative,
            READ,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        );
        match opened {
            Ok(fd) => {
                // With no symlink on the way, the path below the root is canonical.
                let key = EntryKey(self.dir.join(relative));
                Some((key, File::from(fd)))
            }
            Err(Errno::NOSYS | Errno::PERM) => {
                OPENAT2.store(false, Ordering::Relaxed);
                None
            }
            Err(_) => None,
        }
    }

    /// The canonical root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Resolves client text `arg` relative to `cwd` into a checked entry inside the root.
    ///
    /// # Errors
    /// [`PathError::Nul`] / [`PathError::Reserved`] for refused names,
    /// [`PathError::Io`] when a directory on the way does not exist,
    /// [`PathError::Outside`] when a symlink leads out of the root.
    pub fn resolve(&self, cwd: &VirtualPath, arg: &str) -> Result<Resolved, PathError> {
        let virt = cwd.join(arg)?;
        self.resolve_virtual(virt)
    }

    /// Resolves an already normalized virtual path (see [`Root::resolve`]).
    ///
    /// # Errors
    /// As [`Root::resolve`], except for name checks already done by [`VirtualPath::join`].
    pub fn resolve_virtual(&self, virt: VirtualPath) -> Result<Resolved, PathError> {
        let parts: Vec<&str> = virt.components().collect();
        let Some((last, dirs)) = parts.split_last() else {
            return Ok(Resolved {
                root: self.clone(),
                parent: Arc::clone(&self.fd),
                name: OsString::from("."),
                key: EntryKey(self.dir.to_path_buf()),
                virt,
            });
        };
        let (parent, dir) = self.directory(dirs)?;
        let name = OsString::from(*last);
        // A last symlink is not followed here, but one that leads out is refused as
        // before: nobody should think STOR or DELE on it touches the outside file. The
        // actions themselves never rely on this check (they act on the handle).
        if rustix::fs::readlinkat(&*parent, &*name, Vec::new()).is_ok() {
            let parts = virt.components().map(OsString::from).collect();
            // A dangling link is no reason to refuse: only one that leads out is.
            if let Err(PathError::Outside) = self.walk(parts, true) {
                return Err(PathError::Outside);
            }
        }
        Ok(Resolved {
            key: EntryKey(dir.join(&name)),
            root: self.clone(),
            parent,
            name,
            virt,
        })
    }

    /// The directory `parts` name below the root, as a handle, with its canonical path.
    ///
    /// One `openat2` when no symlink is on the way; a walk otherwise (and when the
    /// kernel has no `openat2`), which also gives the canonical path for the lock key.
    fn directory(&self, parts: &[&str]) -> Result<(Arc<OwnedFd>, PathBuf), PathError> {
        if parts.is_empty() {
            return Ok((Arc::clone(&self.fd), self.dir.to_path_buf()));
        }
        if OPENAT2.load(Ordering::Relaxed) {
            let relative = parts.join("/");
            let opened = rustix::fs::openat2(
                &*self.fd,
                &*relative,
                DIR,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            );
            match opened {
                Ok(fd) => return Ok((Arc::new(fd), self.dir.join(relative))),
                Err(Errno::NOSYS | Errno::PERM) => OPENAT2.store(false, Ordering::Relaxed),
                // A symlink on the way (ELOOP), or a rename during the lookup (EAGAIN).
                Err(Errno::LOOP | Errno::AGAIN | Errno::XDEV) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        self.walk_directory(parts.iter().map(OsString::from).collect())
    }

    /// [`Root::directory`] by the walk alone.
    fn walk_directory(
        &self,
        parts: VecDeque<OsString>,
    ) -> Result<(Arc<OwnedFd>, PathBuf), PathError> {
        let (mut stack, last) = self.walk(parts, true)?;
        if let Some(name) = last {
            let top = stack.last().map_or(&*self.fd, |(fd, _)| fd);
            // The walk saw no symlink here; if one was put there since, O_NOFOLLOW with
            // O_DIRECTORY fails (ENOTDIR) rather than follow it.
            let fd = rustix::fs::openat(top, &*name, DIR | OFlags::NOFOLLOW, Mode::empty())
                .map_err(io::Error::from)?;
            stack.push((fd, name));
        }
        let dir = self.place(&stack);
        let fd = stack
            .pop()
            .map_or_else(|| Arc::clone(&self.fd), |(fd, _)| Arc::new(fd));
        Ok((fd, dir))
    }

    /// The canonical path of the top of `stack`.
    fn place(&self, stack: &Stack) -> PathBuf {
        let mut dir = self.dir.to_path_buf();
        for (_, name) in stack {
            dir.push(name);
        }
        dir
    }

    /// The entry a walk ended at: the handle of its directory and its name, and the
    /// entry's lock key. A walk that ended at a directory it entered (a path ending in
    /// a symlink's `..`) gives that directory as the entry; the root is `.` in itself.
    fn entry(
        &self,
        mut stack: Stack,
        last: Option<OsString>,
    ) -> ((Arc<OwnedFd>, OsString), EntryKey) {
        let name = match last {
            Some(name) => name,
            None => match stack.pop() {
                Some((_, name)) => name,
                None => OsString::from("."),
            },
        };
        let dir = self.place(&stack);
        let key = EntryKey(if name == "." { dir } else { dir.join(&name) });
        let fd = stack
            .pop()
            .map_or_else(|| Arc::clone(&self.fd), |(fd, _)| Arc::new(fd));
        ((fd, name), key)
    }

    /// Walks `parts` from the root's handle one directory at a time, never following a
    /// symlink by name: each directory is opened `O_NOFOLLOW` in the one before it; a
    /// symlink is read (`readlinkat`) and its target's components take its place in the
    /// walk. `..` (only symlink targets have it: client paths are normalized) goes back
    /// to the directory the walk came from, and is refused at the root; an absolute
    /// target is followed only when it names a place below the root's own path, and
    /// starts again from the root's handle.
    ///
    /// Gives the directories entered and the last name (the entry, which need not
    /// exist, and which is followed too when it is a symlink and `follow_last` says so);
    /// `None` when the path ends at a directory entered (`.`/`..` last).
    fn walk(
        &self,
        mut parts: VecDeque<OsString>,
        follow_last: bool,
    ) -> Result<(Stack, Option<OsString>), PathError> {
        let mut stack: Stack = Vec::new();
        let mut links = 0;
        while let Some(name) = parts.pop_front() {
            match name.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    if stack.pop().is_none() {
                        return Err(PathError::Outside);
                    }
                    continue;
                }
                _ => {}
            }
            let last = parts.is_empty();
            if last && !follow_last {
                return Ok((stack, Some(name)));
            }
            let at = stack.last().map_or(&*self.fd, |(fd, _)| fd);
            if !last {
                match rustix::fs::openat(at, &*name, DIR | OFlags::NOFOLLOW, Mode::empty()) {
                    Ok(fd) => {
                        stack.push((fd, name));
                        continue;
                    }
                    // A symlink (or not a directory at all: readlinkat tells).
                    Err(Errno::NOTDIR | Errno::LOOP) => {}
                    Err(e) => return Err(io::Error::from(e).into()),
                }
            }
            let target = match rustix::fs::readlinkat(at, &*name, Vec::new()) {
                Ok(target) => target.into_bytes(),
                // Not a symlink: the entry (or a file where a directory should be).
                Err(Errno::INVAL) if last => return Ok((stack, Some(name))),
                Err(Errno::INVAL) => return Err(io::Error::from(Errno::NOTDIR).into()),
                Err(Errno::NOENT) if last => return Ok((stack, Some(name))),
                Err(e) => return Err(io::Error::from(e).into()),
            };
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from(Errno::LOOP).into());
            }
            let relative = if target.starts_with(b"/") {
                let inside = Path::new(OsStr::from_bytes(&target))
                    .strip_prefix(&*self.dir)
                    .map_err(|_| PathError::Outside)?;
                stack.clear();
                inside.as_os_str().as_bytes().to_vec()
            } else {
                target
            };
            for part in relative.split(|b| *b == b'/').rev() {
                parts.push_front(OsString::from_vec(part.to_vec()));
            }
        }
        Ok((stack, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root_with_sentinel() -> (tempfile::TempDir, Root, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("secret.txt");
        fs::write(&outside, "sentinel").expect("write");
        let dir = tmp.path().join("root");
        fs::create_dir_all(dir.join("sub/deeper")).expect("mkdir");
        fs::write(dir.join("sub/file.txt"), "inside").expect("write");
        let root = Root::new(&dir).expect("root");
        (tmp, root, outside)
    }

    #[test]
    fn direct_opens_take_plain_paths_and_leave_symlinks_to_resolve() {
        let (tmp, root, outside) = root_with_sentinel();
        let dir = root.dir().to_path_buf();
        let sub = VirtualPath::root().join("sub").expect("join");
        let (virt, key, mut file) = root
            .open_direct(&sub, "file.txt")
            .expect("name ok")
            .expect("a plain path opens directly");
        let resolved = root.resolve(&sub, "file.txt").expect("resolve");
        assert_eq!(&key, resolved.lock_key());
        assert_eq!(&virt, resolved.virtual_path());
        assert_eq!(virt.as_str(), "/sub/file.txt");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).expect("read");
        assert_eq!(text, "inside");
        // Missing files, the root itself and anything through a symlink (inside the
        // root or not) are left to the usual way.
        std::os::unix::fs::symlink(&outside, dir.join("out")).expect("symlink");
        std::os::unix::fs::symlink(dir.join("sub"), dir.join("alias")).expect("symlink");
        for arg in [
            "missing.txt",
            "/",
            "/out",
            "/alias/file.txt",
            "../../secret.txt",
        ] {
            assert!(
                root.open_direct(&VirtualPath::root(), arg)
                    .expect("name ok")
                    .is_none(),
                "{arg}"
            );
        }
        assert!(matches!(
            root.open_direct(&VirtualPath::root(), "a\0b"),
            Err(PathError::Nul)
        ));
        assert!(matches!(
            root.open_direct(&VirtualPath::root(), &format!("{TEMP_PREFIX}x")),
            Err(PathError::Reserved)
        ));
        drop(tmp);
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        let (_tmp, root, _) = root_with_sentinel();
        let sub = VirtualPath::root().join("sub").expect("join");
        let corpus = [
            "..",
            "../..",
            "../../secret.txt",
            "../secret.txt",
            "/../secret.txt",
            "sub/../../../../secret.txt",
            "./../.././secret.txt",
            "//..//..//secret.txt",
            "/..",
        ];
        for attack in corpus {
            for cwd in [VirtualPath::root(), sub.clone()] {
                let r = root.resolve(&cwd, attack).expect(attack);
                assert!(
                    r.lock_key().as_path().starts_with(root.dir()),
                    "{attack} from {cwd}"
                );
                assert!(
                    r.lock_key().as_path() == root.dir()
                        || r.lock_key().as_path() == root.dir().join("secret.txt")
                        || r.lock_key().as_path() == root.dir().join("sub")
                        || r.lock_key().as_path().starts_with(root.dir().join("sub")),
                    "{attack}: {}",
                    r.lock_key().as_path().display()
                );
            }
        }
    }

    #[test]
    fn absolute_paths_are_inside_the_root() {
        let (_tmp, root, _) = root_with_sentinel();
        let sub = VirtualPath::root().join("sub/deeper").expect("join");
        let r = root.resolve(&sub, "/etc/passwd");
        // /etc does not exist inside the root: the parent lookup fails, nothing escapes.
        assert!(matches!(r, Err(PathError::Io(_))));
        let r = root.resolve(&sub, "/sub/file.txt").expect("resolve");
        assert_eq!(r.lock_key().as_path(), root.dir().join("sub/file.txt"));
        assert_eq!(r.virtual_path().as_str(), "/sub/file.txt");
    }

    #[test]
    fn backslashes_and_encoded_forms_are_plain_names() {
        let (_tmp, root, _) = root_with_sentinel();
        for name in [
            "..\\..\\secret.txt",
            "%2e%2e/secret.txt",
            "..%2fsecret.txt",
            "\u{2025}/x",
        ] {
            match root.resolve(&VirtualPath::root(), name) {
                Ok(r) => assert!(r.lock_key().as_path().starts_with(root.dir()), "{name}"),
                Err(PathError::Io(_)) => {}
                Err(e) => panic!("{name}: unexpected {e}"),
            }
        }
    }

    #[test]
    fn nul_and_temporary_names_are_refused() {
        let (_tmp, root, _) = root_with_sentinel();
        let cwd = VirtualPath::root();
        assert!(matches!(root.resolve(&cwd, "a\0b"), Err(PathError::Nul)));
        let temp = format!("sub/{TEMP_PREFIX}123");
        assert!(matches!(
            root.resolve(&cwd, &temp),
            Err(PathError::Reserved)
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_leading_outside_are_refused() {
        let (tmp, root, outside) = root_with_sentinel();
        std::os::unix::fs::symlink(&outside, root.dir().join("link")).expect("symlink");
        std::os::unix::fs::symlink(tmp.path(), root.dir().join("dirlink")).expect("symlink");
        std::os::unix::fs::symlink(root.dir().join("sub"), root.dir().join("inlink"))
            .expect("symlink");
        let cwd = VirtualPath::root();
        assert!(matches!(
            root.resolve(&cwd, "link"),
            Err(PathError::Outside)
        ));
        assert!(matches!(
            root.resolve(&cwd, "dirlink"),
            Err(PathError::Outside)
        ));
        assert!(matches!(
            root.resolve(&cwd, "dirlink/secret.txt"),
            Err(PathError::Outside)
        ));
        let inside = root.resolve(&cwd, "inlink/file.txt").expect("inside link");
        assert_eq!(inside.lock_key().as_path(), root.dir().join("sub/file.txt"));
    }

    /// Walks `path` from the root the way a resolution without `openat2` does, following
    /// a last symlink: the entry's lock key and, when it is a readable file, its text.
    fn walk_to(root: &Root, path: &str) -> Result<(PathBuf, Option<String>), PathError> {
        let parts = path.split('/').map(OsString::from).collect();
        let (stack, last) = root.walk(parts, true)?;
        let ((dir, name), key) = root.entry(stack, last);
        let text = rustix::fs::openat(&*dir, &*name, READ | OFlags::NOFOLLOW, Mode::empty())
            .ok()
            .and_then(|fd| std::io::read_to_string(File::from(fd)).ok());
        Ok((key.0, text))
    }

    #[test]
    fn the_walk_follows_symlinks_that_stay_inside_and_refuses_the_others() {
        let (tmp, root, outside) = root_with_sentinel();
        let dir = root.dir().to_path_buf();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, dir.join(name)).expect("symlink");
        };
        link(Path::new("sub"), "rel");
        link(&dir.join("sub"), "abs");
        link(Path::new("rel"), "chain");
        link(Path::new("sub/deeper/.."), "up");
        link(Path::new("sub/.."), "toroot");
        link(Path::new("sub/file.txt"), "lastlink");
        link(Path::new(".."), "out");
        link(tmp.path(), "absout");
        link(&dir.join("../root/.."), "sneaky");
        link(&outside, "lastout");
        link(Path::new("loop"), "loop");
        // A sibling whose name starts with the root's: not inside.
        fs::create_dir(tmp.path().join("root2")).expect("mkdir");
        fs::write(tmp.path().join("root2/secret.txt"), "sentinel").expect("write");
        link(&tmp.path().join("root2"), "prefix");

        let file = dir.join("sub/file.txt");
        for path in [
            "rel/file.txt",
            "abs/file.txt",
            "chain/file.txt",
            "up/file.txt",
            "lastlink",
            "sub/file.txt",
        ] {
            let (key, text) = walk_to(&root, path).expect(path);
            assert_eq!(key, file, "{path}");
            assert_eq!(text.as_deref(), Some("inside"), "{path}");
        }
        let (key, text) = walk_to(&root, "toroot").expect("toroot");
        assert_eq!((key, text), (dir.clone(), None));
        let (key, text) = walk_to(&root, "sub/missing").expect("a missing last name");
        assert_eq!((key, text), (dir.join("sub/missing"), None));
        for path in [
            "out/secret.txt",
            "absout/secret.txt",
            "sneaky/secret.txt",
            "lastout",
            "prefix/secret.txt",
            "rel/../out/secret.txt",
        ] {
            assert!(
                matches!(walk_to(&root, path), Err(PathError::Outside)),
                "{path}"
            );
        }
        for (path, errno) in [
            ("loop/x", Errno::LOOP),
            ("sub/file.txt/x", Errno::NOTDIR),
            ("missing/x", Errno::NOENT),
        ] {
            match walk_to(&root, path) {
                Err(PathError::Io(e)) => {
                    assert_eq!(e.raw_os_error(), Some(errno.raw_os_error()), "{path}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        // The directories on the way, by the walk alone, as resolution gives them.
        let parts = ["abs", "deeper"].map(OsString::from).into();
        let (fd, key) = root.walk_directory(parts).expect("walk");
        assert_eq!(key, dir.join("sub/deeper"));
        let meta = metadata_at(&fd, OsStr::new(".")).expect("stat");
        let want = fs::metadata(dir.join("sub/deeper")).expect("stat");
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&meta),
            std::os::unix::fs::MetadataExt::ino(&want)
        );
    }

    #[test]
    fn entries_act_through_their_directory_handle() {
        let (_tmp, root, _) = root_with_sentinel();
        let cwd = VirtualPath::root().join("sub").expect("sub");
        let made = root.resolve(&cwd, "made").expect("resolve");
        made.create_dir().expect("mkdir");
        assert!(root.dir().join("sub/made").is_dir());
        made.remove_dir().expect("rmdir");
        let target = root.resolve(&cwd, "up.txt").expect("resolve");
        let mut part = target.create_part().expect("part");
        std::io::Write::write_all(part.file_mut(), b"uploaded").expect("write");
        let hidden: Vec<_> = fs::read_dir(root.dir().join("sub"))
            .expect("read_dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert_eq!(hidden.len(), 1, "the part file is made beside the target");
        part.persist(&target).expect("persist");
        assert_eq!(
            fs::read_to_string(root.dir().join("sub/up.txt")).expect("read"),
            "uploaded"
        );
        // A part dropped before persist is removed.
        drop(target.create_part().expect("part"));
        let renamed = root.resolve(&cwd, "renamed.txt").expect("resolve");
        target.rename_to(&renamed).expect("rename");
        assert!(target.create_new().is_ok(), "the old name is free again");
        assert_eq!(
            renamed.create_new().map_err(|e| e.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
        target.remove_file().expect("unlink");
        renamed.remove_file().expect("unlink");
        let mut names: Vec<String> = root
            .resolve(&VirtualPath::root(), "sub")
            .expect("resolve")
            .open_dir()
            .expect("open_dir")
            .names()
            .expect("names")
            .map(|n| n.expect("name").to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["deeper", "file.txt"]);
    }

    #[test]
    fn modification_times_are_set_on_plain_files_inside_the_root_only() {
        use std::time::{Duration, UNIX_EPOCH};
        let (tmp, root, outside) = root_with_sentinel();
        let cwd = VirtualPath::root();
        let when = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let file = root.resolve(&cwd, "sub/file.txt").expect("resolve");
        let meta = file.set_modified(when).expect("set").expect("a plain file");
        assert_eq!(meta.modified().expect("mtime"), when);
        let seen = fs::metadata(root.dir().join("sub/file.txt")).expect("metadata");
        assert_eq!(seen.modified().expect("mtime"), when);
        assert_eq!(file.host_path(), root.dir().join("sub/file.txt"));
        // Through a symlink that stays inside: the target's time.
        std::os::unix::fs::symlink("sub/file.txt", root.dir().join("alias")).expect("symlink");
        let later = when + Duration::from_secs(3600);
        let alias = root.resolve(&cwd, "alias").expect("resolve");
        assert!(alias.set_modified(later).expect("set").is_some());
        let seen = fs::metadata(root.dir().join("sub/file.txt")).expect("metadata");
        assert_eq!(seen.modified().expect("mtime"), later);
        // A directory is left alone; a link out is refused; a missing file is an error.
        let dir = root.resolve(&cwd, "sub").expect("resolve");
        let before = fs::metadata(root.dir().join("sub")).expect("metadata");
        assert!(dir.set_modified(when).expect("no error").is_none());
        let after = fs::metadata(root.dir().join("sub")).expect("metadata");
        assert_eq!(before.modified().ok(), after.modified().ok());
        std::os::unix::fs::symlink(&outside, root.dir().join("out")).expect("symlink");
        assert!(matches!(root.resolve(&cwd, "out"), Err(PathError::Outside)));
        let outside_before = fs::metadata(&outside).expect("metadata").modified().ok();
        let missing = root.resolve(&cwd, "missing.txt").expect("resolve");
        assert!(matches!(
            missing.set_modified(when),
            Err(PathError::Io(e)) if e.kind() == io::ErrorKind::NotFound
        ));
        assert_eq!(
            fs::metadata(&outside).expect("metadata").modified().ok(),
            outside_before
        );
        drop(tmp);
    }

    #[test]
    fn homes_are_made_below_the_root_and_never_through_a_link_out() {
        let (tmp, root, _) = root_with_sentinel();
        std::os::unix::fs::symlink(tmp.path(), root.dir().join("out")).expect("symlink");
        std::os::unix::fs::symlink("sub", root.dir().join("alias")).expect("symlink");
        let home = VirtualPath::root().join("alias/alice/docs").expect("home");
        let below = root.below(&home).expect("home");
        assert_eq!(below.dir(), root.dir().join("sub/alice/docs"));
        assert!(root.dir().join("sub/alice/docs").is_dir());
        let escape = VirtualPath::root().join("out/made").expect("home");
        assert!(matches!(root.below(&escape), Err(PathError::Outside)));
        assert!(!tmp.path().join("made").exists());
    }

    /// A directory `d` inside the root and a symlink `swap` to a directory outside trade
    /// places (rename exchange) as fast as a thread can, while this thread reads, writes,
    /// lists, renames and deletes in `d`: nothing outside is read, listed or touched.
    #[test]
    fn a_directory_swapped_for_a_symlink_never_leads_out() {
        use rustix::fs::RenameFlags;
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("outside");
        fs::create_dir(&out).expect("mkdir");
        for name in ["f.txt", "victim", "r1", "only-outside"] {
            fs::write(out.join(name), "sentinel").expect("write");
        }
        let dir = tmp.path().join("root");
        fs::create_dir_all(dir.join("d")).expect("mkdir");
        fs::write(dir.join("d/f.txt"), "inside").expect("write");
        std::os::unix::fs::symlink(&out, dir.join("swap")).expect("symlink");
        let root = Root::new(&dir).expect("root");
        let stop = AtomicBool::new(false);
        /// Stops the swapping thread however this one leaves the scope (a failed
        /// assertion too), so the scope's join cannot wait for ever.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let cwd = VirtualPath::root();
        let mut done = [0u32; 5];
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        dir.join("d"),
                        rustix::fs::CWD,
                        dir.join("swap"),
                        RenameFlags::EXCHANGE,
                    )
                    .expect("exchange");
                }
            });
            let _stop = Stop(&stop);
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_secs(2) {
                if let Ok(text) = root
                    .resolve(&cwd, "d/f.txt")
                    .and_then(|r| r.open_read())
                    .map(|f| std::io::read_to_string(f).expect("read"))
                {
                    assert_eq!(text, "inside");
                    done[0] += 1;
                }
                if let Ok(target) = root.resolve(&cwd, "d/new") {
                    if let Ok(mut part) = target.create_part() {
                        std::io::Write::write_all(part.file_mut(), b"new").expect("write");
                        done[1] += u32::from(part.persist(&target).is_ok());
                    }
                }
                if let Ok(victim) = root.resolve(&cwd, "d/victim") {
                    let _ = victim.create_new();
                    done[2] += u32::from(victim.remove_file().is_ok());
                }
                if let Ok(made) = root.resolve(&cwd, "d/m") {
                    if made.create_dir().is_ok() {
                        done[3] += u32::from(made.remove_dir().is_ok());
                    }
                }
                if let (Ok(r1), Ok(r2)) = (root.resolve(&cwd, "d/r1"), root.resolve(&cwd, "d/r2")) {
                    let _ = r1.create_new();
                    let _ = r1.rename_to(&r2);
                    let _ = r2.remove_file();
                }
                if let Ok(listed) = root.resolve(&cwd, "d").and_then(|d| d.open_dir()) {
                    for name in listed.names().expect("names") {
                        let name = name.expect("name");
                        assert_ne!(name, "only-outside", "listed the outside directory");
                        let _ = listed.metadata_of(&name);
                    }
                    done[4] += 1;
                }
            }
        });
        assert!(done.iter().all(|n| *n > 0), "the race ran: {done:?}");
        let mut names: Vec<String> = fs::read_dir(&out)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["f.txt", "only-outside", "r1", "victim"]);
        for name in names {
            assert_eq!(
                fs::read_to_string(out.join(&name)).expect("read"),
                "sentinel"
            );
        }
    }

    #[test]
    fn virtual_paths_normalize() {
        let cwd = VirtualPath::root().join("a/b").expect("join");
        assert_eq!(cwd.as_str(), "/a/b");
        assert_eq!(cwd.join("..").expect("j").as_str(), "/a");
        assert_eq!(cwd.join("../../..").expect("j").as_str(), "/");
        assert_eq!(cwd.join("./c//d/").expect("j").as_str(), "/a/b/c/d");
        assert_eq!(cwd.join("/x").expect("j").as_str(), "/x");
        assert!(VirtualPath::root().is_root());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Paths built from the pieces attacks are made of, and arbitrary text.
    fn hostile_path() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just(String::new()),
            Just("sub".to_owned()),
            Just("link".to_owned()),
            Just("secret.txt".to_owned()),
            Just("..\\..".to_owned()),
            Just("%2e%2e".to_owned()),
            "[a-z]{1,3}",
            any::<String>(),
        ];
        (any::<bool>(), proptest::collection::vec(part, 0..8)).prop_map(|(abs, parts)| {
            let joined = parts.join("/");
            if abs {
                format!("/{joined}")
            } else {
                joined
            }
        })
    }

    /// A temporary directory holding `secret.txt` ("sentinel", outside the root) and
    /// the root `root`, with `sub/`, `secret.txt` and `sub/secret.txt` (inside) and a
    /// symlink `link` to the temporary directory; and the working directory, `/sub`
    /// or `/`. The directory is removed when the first value drops.
    fn fixture(from_sub: bool) -> (tempfile::TempDir, Root, VirtualPath) {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("secret.txt"), "sentinel").expect("write");
        let dir = tmp.path().join("root");
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("secret.txt"), "inside").expect("write");
        std::fs::write(dir.join("sub/secret.txt"), "inside too").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink(tmp.path(), dir.join("link")).expect("symlink");
        let root = Root::new(&dir).expect("root");
        let cwd = if from_sub {
            VirtualPath::root().join("sub").expect("sub")
        } else {
            VirtualPath::root()
        };
        (tmp, root, cwd)
    }

    proptest! {
        #[test]
        fn resolution_stays_inside_the_root(arg in hostile_path(), from_sub in any::<bool>()) {
            let (_tmp, root, cwd) = fixture(from_sub);
            if let Ok(resolved) = root.resolve(&cwd, &arg) {
                prop_assert!(resolved.lock_key().as_path().starts_with(root.dir()), "{arg:?} -> {:?}", resolved.lock_key().as_path());
                let v = resolved.virtual_path().as_str();
                prop_assert!(v.starts_with('/'));
                prop_assert!(!v.split('/').any(|c| c == ".." || c == "."));
            }
        }

        #[test]
        fn direct_opens_stay_inside_the_root_and_agree_with_resolve(
            arg in hostile_path(),
            from_sub in any::<bool>(),
        ) {
            let (_tmp, root, cwd) = fixture(from_sub);
            if let Ok(Some((virt, key, mut file))) = root.open_direct(&cwd, &arg) {
                prop_assert!(key.as_path().starts_with(root.dir()), "{arg:?} -> {key:?}");
                let slow = root.resolve(&cwd, &arg).expect("the usual way agrees");
                prop_assert_eq!(slow.lock_key(), &key);
                prop_assert_eq!(slow.virtual_path(), &virt);
                let mut text = String::new();
                if std::io::Read::read_to_string(&mut file, &mut text).is_ok() {
                    prop_assert!(text != "sentinel", "{arg:?} read the file outside");
                }
            }
        }

        #[test]
        fn the_walk_stays_inside_and_agrees_with_the_kernel(
            arg in hostile_path(),
            from_sub in any::<bool>(),
        ) {
            let (_tmp, root, cwd) = fixture(from_sub);
            if let Ok(virt) = cwd.join(&arg) {
                let parts: Vec<&str> = virt.components().collect();
                let walked = root.walk_directory(parts.iter().map(OsString::from).collect());
                if let Ok((_, key)) = &walked {
                    prop_assert!(key.starts_with(root.dir()), "{arg:?} -> {key:?}");
                }
                let relative = parts.join("/");
                let kernel = rustix::fs::openat2(
                    &*root.fd,
                    if relative.is_empty() { "." } else { &relative },
                    DIR,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                );
                if let Ok(fd) = kernel {
                    let (walked_fd, key) = walked.expect("the walk opens what openat2 opens");
                    prop_assert_eq!(key, root.dir().join(&relative));
                    let ino = |fd: &OwnedFd| {
                        metadata_at(fd, OsStr::new(".")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok()
                    };
                    prop_assert_eq!(ino(&fd), ino(&walked_fd));
                }
            }
        }

        #[test]
        fn joining_is_idempotent(arg in hostile_path()) {
            if let Ok(v) = VirtualPath::root().join(&arg) {
                prop_assert_eq!(VirtualPath::root().join(v.as_str()).ok(), Some(v));
            }
        }
    }
}
