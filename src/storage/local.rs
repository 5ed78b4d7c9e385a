//! The local directory as storage: the default backend.
//!
//! A thin layer over [`crate::path`], which keeps the confinement: every path is
//! resolved below the root's directory handle (`openat2` with `RESOLVE_BENEATH`, or the
//! walk) and acted on through handles. Downloads are the opened `File` (the transfer
//! sends it with sendfile, from whatever offset); uploads are the hidden part file
//! beside the target (the transfer splices into it), renamed over the target on commit
//! and removed when dropped. A [`Place`] is a resolved entry (its directory's handle
//! and its name), so a command resolves its path once, as before the storage layer,
//! and the local data path makes the same system calls as before it.

use std::any::Any;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::{
    Backend, Download, Entries, EntryKey, NameFilter, Opened, Place, Sink, Stat, StorageError,
    Upload, VirtualPath,
};
use crate::path::{PartFile, PathError, Resolved, Root, TEMP_PREFIX};

/// A directory on this machine, served as `/`.
#[derive(Debug, Clone)]
pub struct Local {
    root: Root,
}

impl Local {
    /// Opens `dir` as the root, creating it if missing.
    ///
    /// # Errors
    /// When it cannot be made, canonicalized or opened, or is not a directory.
    pub fn new(dir: &Path) -> io::Result<Local> {
        Ok(Local {
            root: Root::new(dir)?,
        })
    }

    /// The canonical directory served.
    pub fn dir(&self) -> &Path {
        self.root.dir()
    }

    fn resolve(&self, path: &VirtualPath) -> Result<Resolved, StorageError> {
        Ok(self.root.resolve_virtual(path.clone())?)
    }
}

impl From<PathError> for StorageError {
    fn from(e: PathError) -> StorageError {
        match e {
            PathError::Outside => StorageError::Outside,
            PathError::Io(e) => e.into(),
            // The session normalizes paths before they reach storage; only a bug
            // could bring these here.
            PathError::Nul | PathError::Reserved => {
                StorageError::Io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
            }
        }
    }
}

/// A local upload: the part file and the entry it replaces.
struct LocalUpload {
    part: PartFile,
    target: Resolved,
}

impl Upload for LocalUpload {
    fn sink(&mut self) -> Sink<'_> {
        Sink::File(self.part.file())
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        let LocalUpload { part, target } = *self;
        Ok(part.persist(&target)?)
    }
}

/// A path of the local backend, resolved: the handle of its directory and its name.
struct LocalPlace {
    resolved: Resolved,
}

impl Backend for Local {
    fn below(&self, home: &VirtualPath) -> Result<Arc<dyn Backend>, StorageError> {
        Ok(Arc::new(Local {
            root: self.root.below(home)?,
        }))
    }

    fn locate(&self, path: &VirtualPath) -> Result<Box<dyn Place>, StorageError> {
        Ok(Box::new(LocalPlace {
            resolved: self.resolve(path)?,
        }))
    }

    /// One `openat2` when no symlink is on the way, else the checked resolution; the
    /// offset is the transfer's to apply (sendfile from it).
    fn open_read(&self, path: &VirtualPath, _offset: u64) -> Result<Opened, StorageError> {
        let (key, file) = match self.root.open_direct_virtual(path) {
            Some(opened) => opened,
            None => {
                let resolved = self.resolve(path)?;
                let file = resolved.open_read()?;
                (resolved.lock_key().clone(), file)
            }
        };
        let stat = Stat::from_metadata(&file.metadata()?);
        Ok(Opened {
            download: Download::File(file),
            stat,
            key,
        })
    }

    /// Names as the directory gives them, without our part files and without names
    /// `wanted` refuses (before their entry is looked at); a symlink shows what it
    /// points to when that stays inside the root, and is left out otherwise.
    fn list(&self, dir: &VirtualPath, wanted: Option<NameFilter>) -> Result<Entries, StorageError> {
        let dir = self.resolve(dir)?.open_dir()?;
        let names = dir.names()?;
        Ok(Box::new(names.filter_map(move |entry| {
            let entry = entry.ok()?;
            let name = entry.to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) || wanted.as_ref().is_some_and(|w| !w(&name)) {
                return None;
            }
            let meta = dir.metadata_of(&entry).ok()?;
            Some(Ok((name, Stat::from_metadata(&meta))))
        })))
    }

    /// The root's directory joined with the path (nothing is resolved: for programs
    /// outside the server).
    fn location(&self, path: &VirtualPath) -> PathBuf {
        let mut host = self.root.dir().to_path_buf();
        host.extend(path.components());
        host
    }
}

impl Place for LocalPlace {
    fn path(&self) -> &VirtualPath {
        self.resolved.virtual_path()
    }

    fn key(&self) -> &EntryKey {
        self.resolved.lock_key()
    }

    fn stat(&self) -> Result<Stat, StorageError> {
        Ok(Stat::from_metadata(&self.resolved.metadata()?))
    }

    fn stat_entry(&self) -> Result<Stat, StorageError> {
        Ok(Stat::from_metadata(&self.resolved.symlink_metadata()?))
    }

    /// The part file is made in the target's directory handle; the kept bytes are
    /// copied file to file (`copy_file_range`).
    fn create_upload(&self, keep: u64) -> Result<Box<dyn Upload>, StorageError> {
        let target = &self.resolved;
        // Dropping `part` on any error below removes it.
        let mut part = target.create_part()?;
        if keep > 0 {
            let current = target.open_read()?;
            io::copy(&mut current.take(keep), part.file_mut())?;
        }
        Ok(Box::new(LocalUpload {
            part,
            target: target.clone(),
        }))
    }

    fn create_new(&self) -> Result<(), StorageError> {
        Ok(self.resolved.create_new()?)
    }

    fn create_dir(&self) -> Result<(), StorageError> {
        Ok(self.resolved.create_dir()?)
    }

    fn remove_dir(&self) -> Result<(), StorageError> {
        Ok(self.resolved.remove_dir()?)
    }

    fn remove_file(&self) -> Result<(), StorageError> {
        Ok(self.resolved.remove_file()?)
    }

    fn rename_to(&self, to: &dyn Place) -> Result<(), StorageError> {
        let Some(to) = to.as_any().downcast_ref::<LocalPlace>() else {
            return Err(StorageError::Unsupported(
                "a rename from one storage to another".into(),
            ));
        };
        Ok(self.resolved.rename_to(&to.resolved)?)
    }

    fn set_modified(&self, time: SystemTime) -> Result<Option<Stat>, StorageError> {
        let meta = self.resolved.set_modified(time)?;
        Ok(meta.as_ref().map(Stat::from_metadata))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use super::super::Kind;
    use super::*;

    fn virt(path: &str) -> VirtualPath {
        VirtualPath::root().join(path).expect("path")
    }

    fn place(local: &Local, path: &str) -> Box<dyn Place> {
        local.locate(&virt(path)).expect("locate")
    }

    fn fixture() -> (tempfile::TempDir, Local) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("root");
        fs::create_dir_all(dir.join("sub/full")).expect("mkdir");
        fs::write(dir.join("sub/full/f.txt"), "in full").expect("write");
        fs::write(dir.join("file.txt"), "12345").expect("write");
        fs::write(tmp.path().join("secret"), "outside").expect("write");
        std::os::unix::fs::symlink(tmp.path().join("secret"), dir.join("out")).expect("link");
        let local = Local::new(&dir).expect("local");
        (tmp, local)
    }

    #[test]
    fn file_system_errors_become_their_kinds() {
        let (_tmp, local) = fixture();
        let err = |r: Result<(), StorageError>| r.expect_err("an error");
        assert!(matches!(
            local.stat(&virt("missing")),
            Err(StorageError::NotFound)
        ));
        assert!(matches!(
            local.stat(&virt("nodir/x")),
            Err(StorageError::NotFound)
        ));
        assert!(matches!(
            local.stat(&virt("file.txt/x")),
            Err(StorageError::NotADirectory)
        ));
        assert!(matches!(
            err(place(&local, "sub/full").remove_dir()),
            StorageError::NotEmpty
        ));
        assert!(matches!(
            err(place(&local, "sub").create_dir()),
            StorageError::Exists
        ));
        assert!(matches!(
            err(place(&local, "file.txt").create_new()),
            StorageError::Exists
        ));
        assert!(matches!(
            err(place(&local, "sub").remove_file()),
            StorageError::IsADirectory | StorageError::Io(_)
        ));
        assert!(matches!(
            local.stat(&virt("out")),
            Err(StorageError::Outside)
        ));
        assert!(matches!(
            local.open_read(&virt("out"), 0),
            Err(StorageError::Outside)
        ));
        assert!(matches!(
            local.list(&virt("file.txt"), None),
            Err(StorageError::NotADirectory)
        ));
    }

    #[test]
    fn stats_show_kind_size_mode_and_identity() {
        let (tmp, local) = fixture();
        let file = local.stat(&virt("file.txt")).expect("stat");
        assert_eq!((file.kind, file.size), (Kind::File, 5));
        assert!(file.mode.is_some() && file.unique.is_some() && file.modified.is_some());
        assert!(local.stat(&virt("sub")).expect("stat").is_dir());
        std::os::unix::fs::symlink("file.txt", tmp.path().join("root/alias")).expect("link");
        assert!(local.stat(&virt("alias")).expect("stat").is_file());
        assert_eq!(
            place(&local, "alias").stat_entry().expect("stat").kind,
            Kind::Symlink
        );
        assert_eq!(
            place(&local, "alias").key(),
            place(&local, "sub/../alias").key()
        );
    }

    #[test]
    fn uploads_appear_only_when_committed_and_keep_what_they_are_asked_to() {
        let (tmp, local) = fixture();
        let root = tmp.path().join("root");
        let mut upload = place(&local, "new.txt").create_upload(0).expect("upload");
        match upload.sink() {
            Sink::File(mut file) => file.write_all(b"fresh").expect("write"),
            Sink::Stream(_) => panic!("the local backend writes a file"),
        }
        assert!(!root.join("new.txt").exists(), "invisible before commit");
        upload.commit().expect("commit");
        assert_eq!(fs::read(root.join("new.txt")).expect("read"), b"fresh");

        let dropped = place(&local, "gone.txt").create_upload(0).expect("upload");
        drop(dropped);
        assert!(!root.join("gone.txt").exists());

        let mut resumed = place(&local, "file.txt").create_upload(3).expect("upload");
        if let Sink::File(mut file) = resumed.sink() {
            file.write_all(b"ab").expect("write");
        }
        resumed.commit().expect("commit");
        assert_eq!(fs::read(root.join("file.txt")).expect("read"), b"123ab");

        // Part files are never listed, and nothing of the dropped upload is left.
        let _open = place(&local, "half.txt").create_upload(0).expect("upload");
        let mut names: Vec<String> = local
            .list(&VirtualPath::root(), None)
            .expect("list")
            .map(|entry| entry.expect("entry").0)
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["file.txt", "new.txt", "sub"],
            "the link out is left out"
        );
        let wanted: NameFilter = Box::new(|name: &str| name.ends_with(".txt"));
        let matched = local
            .list(&VirtualPath::root(), Some(wanted))
            .expect("list");
        assert_eq!(matched.count(), 2);
    }

    #[test]
    fn downloads_are_files_and_homes_are_backends_below() {
        let (tmp, local) = fixture();
        let opened = local.open_read(&virt("file.txt"), 2).expect("open");
        assert_eq!(opened.stat.size, 5);
        let Download::File(file) = opened.download else {
            panic!("the local backend gives a file");
        };
        assert_eq!(io::read_to_string(file).expect("read"), "12345");
        let home = local.below(&virt("homes/alice")).expect("home");
        assert!(tmp.path().join("root/homes/alice").is_dir());
        home.locate(&virt("docs"))
            .expect("locate")
            .create_dir()
            .expect("mkdir");
        assert!(tmp.path().join("root/homes/alice/docs").is_dir());
        assert_eq!(
            home.location(&virt("docs/a.txt")),
            local.dir().join("homes/alice/docs/a.txt")
        );
        assert!(matches!(
            local.below(&virt("out/x")),
            Err(StorageError::Outside | StorageError::NotADirectory)
        ));
    }
}
