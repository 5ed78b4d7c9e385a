//! The only way client text becomes a file-system path: resolution inside the root.
//!
//! A client names files relative to its current directory or from `/`, which is the
//! server root. [`VirtualPath`] is the normalized, client-visible form (`/a/b`);
//! [`Root::resolve`] turns it into a [`Resolved`] path on disk after checking that it
//! stays inside the root: `..` never climbs above `/` (it is resolved lexically, as a
//! chroot would), NUL is refused, and a symlink that leads outside is refused. Storage
//! and lock functions take only [`Resolved`], so no unchecked name reaches them.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};
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
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path checked to lie inside the root: its client-visible form and its place on disk.
///
/// `real` has every directory canonicalized, so two names for one directory entry
/// (through symlinked directories) give the same `real` path, which makes it the right
/// key for the lock table. The last component is not followed: a dangling symlink stays
/// a dangling symlink, and renaming over it replaces the link, never its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    virt: VirtualPath,
    real: PathBuf,
}

impl Resolved {
    /// The client-visible path.
    pub fn virtual_path(&self) -> &VirtualPath {
        &self.virt
    }

    /// The path on disk.
    pub fn real(&self) -> &Path {
        &self.real
    }

    /// Opens the file for reading (following a last symlink, which resolution has
    /// checked), as [`Root::open_direct`] does.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open_read(&self) -> io::Result<File> {
        Ok(File::from(rustix::fs::open(
            &self.real,
            READ,
            Mode::empty(),
        )?))
    }
}

/// How a file is opened to be read. `O_NONBLOCK` keeps a FIFO from blocking the open
/// (the caller then refuses it as not a plain file) and changes nothing for a
/// regular file.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

/// The server root: a canonical directory that every client path stays inside.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    /// The root directory, opened (`O_PATH`) for [`Root::open_direct`].
    fd: Arc<OwnedFd>,
}

/// Cleared when the kernel has no `openat2` (before Linux 5.6) or a sandbox forbids it.
static OPENAT2: AtomicBool = AtomicBool::new(true);

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
        let fd = rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            dir,
            fd: Arc::new(fd),
        })
    }

    /// Opens the file `arg` names (relative to `cwd`) for reading in one system call,
    /// when no symlink lies on its way: `openat2` below the root directory, refusing
    /// every symlink and any way out of the root, checks what [`Root::resolve`]
    /// checks with one `lstat` per component. `None` when that does not apply (a
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
    ) -> Result<Option<(Resolved, File)>, PathError> {
        let virt = cwd.join(arg)?;
        let Some(relative) = virt.as_str().strip_prefix('/').filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        if !OPENAT2.load(Ordering::Relaxed) {
            return Ok(None);
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
                // With no symlink on the way, this is the path `resolve` gives.
                let real = self.dir.join(relative);
                Ok(Some((Resolved { virt, real }, File::from(fd))))
            }
            Err(Errno::NOSYS | Errno::PERM) => {
                OPENAT2.store(false, Ordering::Relaxed);
                Ok(None)
            }
            Err(_) => Ok(None),
        }
    }

    /// The canonical root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Resolves client text `arg` relative to `cwd` into a checked path inside the root.
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
        let mut parts: Vec<&str> = virt.components().collect();
        let Some(last) = parts.pop() else {
            return Ok(Resolved {
                real: self.dir.clone(),
                virt,
            });
        };
        let parent = self.directory(&parts)?;
        let real = parent.join(last);
        if let Ok(meta) = real.symlink_metadata() {
            if meta.file_type().is_symlink() {
                if let Ok(target) = real.canonicalize() {
                    if !target.starts_with(&self.dir) {
                        return Err(PathError::Outside);
                    }
                }
            }
        }
        Ok(Resolved { virt, real })
    }
}

impl Root {
    /// The real, canonical directory `parts` name below the root.
    ///
    /// The root is canonical already, so only the components below it are looked at:
    /// one `lstat` each, where `canonicalize` would read every component of the whole
    /// absolute path. A symlink on the way is resolved by the file system and must
    /// land inside the root.
    fn directory(&self, parts: &[&str]) -> Result<PathBuf, PathError> {
        let mut dir = self.dir.clone();
        for part in parts {
            dir.push(part);
            let meta = dir.symlink_metadata()?;
            if meta.file_type().is_symlink() {
                dir = dir.canonicalize()?;
                if !dir.starts_with(&self.dir) {
                    return Err(PathError::Outside);
                }
                if !dir.is_dir() {
                    return Err(io::Error::from(io::ErrorKind::NotADirectory).into());
                }
            } else if !meta.is_dir() {
                return Err(io::Error::from(io::ErrorKind::NotADirectory).into());
            }
        }
        Ok(dir)
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
        let (resolved, mut file) = root
            .open_direct(&sub, "file.txt")
            .expect("name ok")
            .expect("a plain path opens directly");
        assert_eq!(resolved, root.resolve(&sub, "file.txt").expect("resolve"));
        assert_eq!(resolved.virtual_path().as_str(), "/sub/file.txt");
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
                assert!(r.real().starts_with(root.dir()), "{attack} from {cwd}");
                assert!(
                    r.real() == root.dir()
                        || r.real() == root.dir().join("secret.txt")
                        || r.real() == root.dir().join("sub")
                        || r.real().starts_with(root.dir().join("sub")),
                    "{attack}: {}",
                    r.real().display()
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
        assert_eq!(r.real(), root.dir().join("sub/file.txt"));
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
                Ok(r) => assert!(r.real().starts_with(root.dir()), "{name}"),
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
        assert_eq!(inside.real(), root.dir().join("sub/file.txt"));
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
                prop_assert!(resolved.real().starts_with(root.dir()), "{arg:?} -> {:?}", resolved.real());
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
            if let Ok(Some((resolved, mut file))) = root.open_direct(&cwd, &arg) {
                prop_assert!(resolved.real().starts_with(root.dir()), "{arg:?} -> {:?}", resolved.real());
                let slow = root.resolve(&cwd, &arg).expect("the usual way agrees");
                prop_assert_eq!(&slow, &resolved);
                let mut text = String::new();
                if std::io::Read::read_to_string(&mut file, &mut text).is_ok() {
                    prop_assert!(text != "sentinel", "{arg:?} read the file outside");
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
