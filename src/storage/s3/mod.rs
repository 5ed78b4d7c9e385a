//! The S3 backend: the served files as objects in a bucket of an S3-compatible store
//! (AWS S3, Garage, MinIO, Ceph RGW ...), under a key prefix.
//!
//! How FTP maps onto objects, honestly rather than pretending a file system:
//! - A file `/a/b.txt` is the object `PREFIX` + `a/b.txt`. Keys are made only from a
//!   [`VirtualPath`] (normalized by the session: no `..`, no empty or `.` segment), and
//!   [`client::check_key`] refuses anything else, so no key leaves the prefix.
//! - A directory `/a` is the common prefix `PREFIX` + `a/`: it exists when an object
//!   lies under it, or its marker object `a/` (empty) does. MKD writes the marker; RMD
//!   removes it only when nothing else is under the prefix.
//! - STOR buffers the data connection in parts of [`PART`] bytes: an upload that ends
//!   within the first part is one PUT; a longer one is a multipart upload, a part
//!   sent as each fills, completed only when the whole file arrived. So an upload is
//!   visible only when complete, and dropping it uncommitted (a lost connection, ABOR)
//!   aborts the multipart upload: no object, no parts left behind. Memory stays one
//!   part per upload.
//! - RETR is one GET, streamed (a ranged GET from the offset after REST): its reply's
//!   headers give the size, entity tag and time the `150` and the stat need, and its
//!   body is one version of the object, whole. Other requests are made only when the
//!   GET fails: a key with no object may be a directory, an offset at or past the end
//!   is refused (`416`) and a HeadObject gives the size the session answers with.
//! - LIST, NLST, MLSD come from ListObjectsV2 with delimiter `/`, page after page
//!   (continuation tokens), so a directory of any size lists whole; SIZE, MDTM and
//!   MLST from HeadObject.
//! - RNFR/RNTO of a file is a copy, then a delete of the source (not atomic: for a
//!   moment both names exist; a failed delete leaves both, and says so). Of an empty
//!   directory, its marker moves; a non-empty directory is refused, since it would be a
//!   copy of every object under it.
//! - APPE and REST+STOR are refused (objects cannot be appended to or written in the
//!   middle); MFMT is refused (a store keeps its own modification times).
//!
//! What is shared and what is not: the objects are the same for every server on the
//! bucket, but the lock table that keeps a download from seeing an upload's half is
//! per server instance. Across instances, S3 itself gives whole objects (a reader sees
//! the old version or the new one: one GET reads one version).
//!
//! Writes the store fails as busy (`503` Slow Down) or broken (`500`, a reset
//! connection) are tried again by the client (`client.rs`), so a busy store slows an
//! upload rather than failing it.

pub mod client;
mod connect;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use self::client::{ObjectInfo, ObjectReader, S3Client, S3Error, S3Settings};
use super::{
    Backend, Download, Entries, Entry, EntryKey, Kind, NameFilter, Opened, Place, Sink, Stat,
    StorageError, Upload, VirtualPath,
};
use crate::path::TEMP_PREFIX;

/// The size of an upload's parts, and so the memory one upload holds.
pub const PART: usize = 8 << 20;

/// Past this many parts of [`PART`], parts grow to [`BIG_PART`] (S3 allows 10,000).
const PARTS_BEFORE_BIG: u16 = 2000;

/// The later parts of a very large upload: 2000 × 8 MiB + 8000 × 64 MiB ≈ 516 GiB in all.
const BIG_PART: usize = 64 << 20;

/// S3's bound on the parts of one upload.
const MAX_PARTS: u16 = 10_000;

/// Why APPE and REST+STOR are refused, as the client reads it.
const NO_APPEND: &str =
    "objects cannot be appended to or written in the middle; upload the whole file with STOR";

/// Where the backend's objects are: `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, empty or ending with `/`.
    pub prefix: String,
}

impl S3Location {
    /// Reads `s3://bucket` or `s3://bucket/some/prefix` (slashes around the prefix are
    /// optional).
    ///
    /// # Errors
    /// A message for a URL of another scheme, without a bucket, or with a prefix that
    /// has empty, `.` or `..` segments or control characters.
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?}: expected s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains(['?', '#']) || bucket.chars().any(char::is_control)
        {
            return Err(format!("{url:?}: no bucket name, or not a usable one"));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            client::check_key(prefix).map_err(|_| {
                format!("{url:?}: the prefix may not have empty, `.` or `..` parts")
            })?;
            format!("{prefix}/")
        };
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix,
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Files as objects under a prefix of one bucket.
#[derive(Debug, Clone)]
pub struct S3 {
    client: Arc<S3Client>,
    bucket: String,
    /// Where `/` is: the configured prefix (and a user's home below it), empty or
    /// ending with `/`.
    base: String,
}

impl S3 {
    /// A backend on `location` of the store `settings` names (its bucket is taken
    /// from `location`). Checks that the bucket answers to these credentials.
    ///
    /// # Errors
    /// [`S3Error::Settings`] for unusable settings; the store's refusal, or
    /// [`S3Error::Transport`] when it cannot be reached.
    pub fn connect(settings: &S3Settings, location: &S3Location) -> Result<S3, S3Error> {
        let mut settings = settings.clone();
        settings.bucket.clone_from(&location.bucket);
        let client = S3Client::new(&settings)?;
        client.check_bucket()?;
        Ok(S3 {
            client: Arc::new(client),
            bucket: location.bucket.clone(),
            base: location.prefix.clone(),
        })
    }

    /// The client this backend uses (for tools and tests that set objects up directly).
    pub fn client(&self) -> &S3Client {
        &self.client
    }

    /// The key of the file `path` names (the base itself for `/`).
    fn key(&self, path: &VirtualPath) -> String {
        let relative = path.as_str().trim_start_matches('/');
        format!("{}{relative}", self.base)
    }

    /// The prefix of the directory `path` names: its objects' keys start with it, and
    /// its marker is this key itself (the base for `/`).
    fn dir_prefix(&self, path: &VirtualPath) -> String {
        if path.is_root() {
            self.base.clone()
        } else {
            format!("{}/", self.key(path))
        }
    }

    /// What is at `path`: a file (its facts), a directory, or nothing.
    fn look(&self, path: &VirtualPath) -> Result<Option<Found>, StorageError> {
        if path.is_root() {
            return Ok(Some(Found::Dir));
        }
        if let Some(info) = self.client.head(&self.key(path)).map_err(storage_error)? {
            return Ok(Some(Found::File(info)));
        }
        Ok(self.is_dir(path)?.then_some(Found::Dir))
    }

    /// Whether `path` (not the root) is a directory: its marker or any object lies
    /// under its prefix. One listing of at most one key.
    fn is_dir(&self, path: &VirtualPath) -> Result<bool, StorageError> {
        let page = self
            .client
            .list_page(&self.dir_prefix(path), Some("/"), None, Some(1))
            .map_err(storage_error)?;
        Ok(!(page.objects.is_empty() && page.prefixes.is_empty()))
    }

    /// The parent of `path` must be a directory for a new entry there (as mkdir and
    /// open(O_CREAT) need on a disk).
    fn parent_is_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let parent = parent_of(path);
        match self.look(&parent)? {
            Some(Found::Dir) => Ok(()),
            Some(Found::File(_)) => Err(StorageError::NotADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    /// Whether anything but the marker lies under the directory prefix `prefix`.
    fn has_entries(&self, prefix: &str) -> Result<bool, StorageError> {
        let page = self
            .client
            .list_page(prefix, None, None, Some(2))
            .map_err(storage_error)?;
        Ok(page.objects.iter().any(|o| o.key != prefix) || !page.prefixes.is_empty())
    }
}

/// What [`S3::look`] found.
enum Found {
    File(ObjectInfo),
    Dir,
}

fn parent_of(path: &VirtualPath) -> VirtualPath {
    // Joining ".." to a normalized path only drops its last component.
    path.join("..").unwrap_or_else(|_| VirtualPath::root())
}

/// The stat of an object.
fn file_stat(info: &ObjectInfo) -> Stat {
    Stat {
        kind: Kind::File,
        size: info.size,
        modified: Some(info.modified),
        mode: None,
        nlink: 1,
        unique: None,
    }
}

/// The stat of a directory (a common prefix has no time of its own).
fn dir_stat(modified: Option<SystemTime>) -> Stat {
    Stat {
        kind: Kind::Dir,
        size: 0,
        modified,
        mode: None,
        nlink: 1,
        unique: None,
    }
}

/// The session's kinds for the store's failures: a missing key is a missing file, a
/// refusal a permission error (550), the rest an I/O error (451) whose text is logged.
fn storage_error(e: S3Error) -> StorageError {
    match e {
        S3Error::NotFound => StorageError::NotFound,
        S3Error::Denied { .. } => {
            StorageError::Io(io::Error::new(io::ErrorKind::PermissionDenied, e))
        }
        S3Error::BadKey => StorageError::Io(io::Error::new(io::ErrorKind::InvalidInput, e)),
        other => StorageError::Io(io::Error::other(other)),
    }
}

/// Whether a name found in a listing can be served: one path segment, not `.` or
/// `..`, not our temporary names, no control character (which would break a listing's
/// lines). Keys written by other tools that are not so are left out.
fn servable(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.starts_with(TEMP_PREFIX)
        && crate::path::is_fit_for_new_name(name)
}

impl S3 {
    /// A home is a key prefix below this one; its marker is written when nothing is
    /// there yet, as a local home directory is made.
    fn below_at(&self, home: &VirtualPath) -> Result<Arc<dyn Backend>, StorageError> {
        let base = self.dir_prefix(home);
        if !home.is_root() && self.look(home)?.is_none() {
            self.client.put(&base, b"").map_err(storage_error)?;
        }
        Ok(Arc::new(S3 {
            client: Arc::clone(&self.client),
            bucket: self.bucket.clone(),
            base,
        }))
    }

    fn stat_at(&self, path: &VirtualPath) -> Result<Stat, StorageError> {
        match self.look(path)? {
            Some(Found::File(info)) => Ok(file_stat(&info)),
            Some(Found::Dir) => Ok(dir_stat(None)),
            None => Err(StorageError::NotFound),
        }
    }

    fn stat_entry_at(&self, path: &VirtualPath) -> Result<Stat, StorageError> {
        self.stat_at(path)
    }

    fn lock_key_at(&self, path: &VirtualPath) -> Result<EntryKey, StorageError> {
        Ok(EntryKey::new(format!(
            "s3://{}/{}",
            self.bucket,
            self.key(path)
        )))
    }

    /// A download is one GET (ranged from `offset`), whose reply says what the
    /// object is: the stat comes from its headers, and the body is that version,
    /// whole. (It was a HeadObject, then a GET with `If-Match` on the entity tag the
    /// HEAD found, tried again when an upload replaced the object between the two;
    /// with one request there is no "between", so no such race to guard.) The
    /// session opens a file before it takes its lock, and an upload completing
    /// meanwhile is no mix either: the GET already has its version.
    ///
    /// Only a failed GET costs more requests: a missing key is a directory when a
    /// listing finds one there (answered as today: not a file), and a read from the
    /// end or past it, which the store refuses (`416`), is answered from a HeadObject:
    /// nothing to send at the end, [`Opened::stat`]'s size past it (the session then
    /// refuses the offset).
    fn open_read_at(&self, path: &VirtualPath, offset: u64) -> Result<Opened, StorageError> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let key = self.key(path);
        let lock = self.lock_key_at(path)?;
        let opened = |reader: ObjectReader, lock: EntryKey| Opened {
            stat: file_stat(reader.info()),
            download: Download::Stream(Box::new(reader)),
            key: lock,
        };
        match self.client.get(&key, offset, None) {
            Ok(reader) => return Ok(opened(reader, lock)),
            Err(S3Error::NotFound) if self.is_dir(path)? => return Err(StorageError::IsADirectory),
            Err(S3Error::NotFound) => return Err(StorageError::NotFound),
            Err(S3Error::Refused { status: 416, .. }) if offset > 0 => {}
            Err(e) => return Err(storage_error(e)),
        }
        match self.look(path)? {
            Some(Found::File(info)) if offset >= info.size => Ok(Opened {
                download: Download::Stream(Box::new(io::empty())),
                stat: file_stat(&info),
                key: lock,
            }),
            // Replaced by a longer one since the GET: read that.
            Some(Found::File(_)) => match self.client.get(&key, offset, None) {
                Ok(reader) => Ok(opened(reader, lock)),
                Err(e) => Err(storage_error(e)),
            },
            Some(Found::Dir) => Err(StorageError::IsADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    fn list_at(
        &self,
        dir: &VirtualPath,
        wanted: Option<NameFilter>,
    ) -> Result<Entries, StorageError> {
        let prefix = self.dir_prefix(dir);
        // The first page now, so that a missing directory or a store that does not
        // answer is an error reply rather than an empty listing.
        let first = self
            .client
            .list_page(&prefix, Some("/"), None, None)
            .map_err(storage_error)?;
        if !dir.is_root() && first.objects.is_empty() && first.prefixes.is_empty() {
            return Err(
                match self.client.head(&self.key(dir)).map_err(storage_error)? {
                    Some(_) => StorageError::NotADirectory,
                    None => StorageError::NotFound,
                },
            );
        }
        Ok(Box::new(Listing::new(
            Arc::clone(&self.client),
            prefix,
            first,
            wanted,
        )))
    }

    fn create_upload_at(
        &self,
        path: &VirtualPath,
        keep: u64,
    ) -> Result<Box<dyn Upload>, StorageError> {
        if keep > 0 {
            return Err(StorageError::Unsupported(NO_APPEND.to_owned()));
        }
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        if matches!(self.look(path)?, Some(Found::Dir)) {
            return Err(StorageError::IsADirectory);
        }
        self.parent_is_dir(path)?;
        Ok(Box::new(S3Upload {
            client: Arc::clone(&self.client),
            key: self.key(path),
            buffer: Vec::new(),
            multipart: None,
        }))
    }

    fn create_new_at(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if self.look(path)?.is_some() {
            return Err(StorageError::Exists);
        }
        self.parent_is_dir(path)?;
        self.client.put(&self.key(path), b"").map_err(storage_error)
    }

    fn create_dir_at(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if self.look(path)?.is_some() {
            return Err(StorageError::Exists);
        }
        self.parent_is_dir(path)?;
        self.client
            .put(&self.dir_prefix(path), b"")
            .map_err(storage_error)
    }

    fn remove_dir_at(&self, path: &VirtualPath) -> Result<(), StorageError> {
        match self.look(path)? {
            Some(Found::Dir) if !path.is_root() => {}
            Some(Found::Dir) => return Err(StorageError::Io(io::Error::other("the root"))),
            Some(Found::File(_)) => return Err(StorageError::NotADirectory),
            None => return Err(StorageError::NotFound),
        }
        let prefix = self.dir_prefix(path);
        if self.has_entries(&prefix)? {
            return Err(StorageError::NotEmpty);
        }
        self.client.delete(&prefix).map_err(storage_error)
    }

    fn remove_file_at(&self, path: &VirtualPath) -> Result<(), StorageError> {
        match self.look(path)? {
            Some(Found::File(_)) => self.client.delete(&self.key(path)).map_err(storage_error),
            Some(Found::Dir) => Err(StorageError::IsADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    fn rename_at(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from == to {
            return match self.look(from)? {
                Some(_) => Ok(()),
                None => Err(StorageError::NotFound),
            };
        }
        let found = self.look(from)?.ok_or(StorageError::NotFound)?;
        let target = self.look(to)?;
        self.parent_is_dir(to)?;
        match found {
            Found::File(info) => {
                if matches!(target, Some(Found::Dir)) {
                    return Err(StorageError::IsADirectory);
                }
                let (source, dest) = (self.key(from), self.key(to));
                self.client
                    .copy(&source, &dest, info.size)
                    .map_err(storage_error)?;
                self.client.delete(&source).map_err(|e| {
                    log::warn!("s3: {source:?} was copied to {dest:?} but not deleted: {e}");
                    storage_error(e)
                })
            }
            Found::Dir => {
                if from.is_root() || to.as_str().starts_with(&format!("{}/", from.as_str())) {
                    return Err(StorageError::Io(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a directory cannot move into itself",
                    )));
                }
                let prefix = self.dir_prefix(from);
                if self.has_entries(&prefix)? {
                    return Err(StorageError::Unsupported(
                        "renaming a directory that has files would copy every object in it; \
                         only empty directories are renamed"
                            .to_owned(),
                    ));
                }
                match target {
                    Some(Found::File(_)) => return Err(StorageError::NotADirectory),
                    Some(Found::Dir) if self.has_entries(&self.dir_prefix(to))? => {
                        return Err(StorageError::NotEmpty)
                    }
                    _ => {}
                }
                self.client
                    .put(&self.dir_prefix(to), b"")
                    .map_err(storage_error)?;
                self.client.delete(&prefix).map_err(storage_error)
            }
        }
    }

    fn set_modified_at(
        &self,
        _path: &VirtualPath,
        _time: SystemTime,
    ) -> Result<Option<Stat>, StorageError> {
        Err(StorageError::Unsupported(
            "an object store keeps its own modification times".to_owned(),
        ))
    }

    fn location_at(&self, path: &VirtualPath) -> PathBuf {
        let key = if path.is_root() {
            self.base.clone()
        } else {
            self.key(path)
        };
        PathBuf::from(format!("s3://{}/{key}", self.bucket))
    }
}

impl Backend for S3 {
    /// A home is a key prefix below this one; its marker is written when nothing is
    /// there yet, as a local home directory is made.
    fn below(&self, home: &VirtualPath) -> Result<Arc<dyn Backend>, StorageError> {
        self.below_at(home)
    }

    fn locate(&self, path: &VirtualPath) -> Result<Box<dyn Place>, StorageError> {
        Ok(Box::new(S3Place {
            key: self.lock_key_at(path)?,
            backend: self.clone(),
            path: path.clone(),
        }))
    }

    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<Opened, StorageError> {
        self.open_read_at(path, offset)
    }

    fn list(&self, dir: &VirtualPath, wanted: Option<NameFilter>) -> Result<Entries, StorageError> {
        self.list_at(dir, wanted)
    }

    fn location(&self, path: &VirtualPath) -> PathBuf {
        self.location_at(path)
    }

    fn stat(&self, path: &VirtualPath) -> Result<Stat, StorageError> {
        self.stat_at(path)
    }
}

/// A path of the S3 backend, looked up: an object store has no handles, so a place
/// is its path and lock key, and each action asks the store anew.
struct S3Place {
    backend: S3,
    path: VirtualPath,
    key: EntryKey,
}

impl Place for S3Place {
    fn path(&self) -> &VirtualPath {
        &self.path
    }

    fn key(&self) -> &EntryKey {
        &self.key
    }

    fn stat(&self) -> Result<Stat, StorageError> {
        self.backend.stat_at(&self.path)
    }

    fn stat_entry(&self) -> Result<Stat, StorageError> {
        self.backend.stat_entry_at(&self.path)
    }

    fn create_upload(&self, keep: u64) -> Result<Box<dyn Upload>, StorageError> {
        self.backend.create_upload_at(&self.path, keep)
    }

    fn create_new(&self) -> Result<(), StorageError> {
        self.backend.create_new_at(&self.path)
    }

    fn create_dir(&self) -> Result<(), StorageError> {
        self.backend.create_dir_at(&self.path)
    }

    fn remove_dir(&self) -> Result<(), StorageError> {
        self.backend.remove_dir_at(&self.path)
    }

    fn remove_file(&self) -> Result<(), StorageError> {
        self.backend.remove_file_at(&self.path)
    }

    /// Both places must be of the same bucket and base (one session's backend).
    fn rename_to(&self, to: &dyn Place) -> Result<(), StorageError> {
        match to.as_any().downcast_ref::<S3Place>() {
            Some(to)
                if to.backend.bucket == self.backend.bucket
                    && to.backend.base == self.backend.base =>
            {
                self.backend.rename_at(&self.path, &to.path)
            }
            _ => Err(StorageError::Unsupported(
                "a rename between two storages".to_owned(),
            )),
        }
    }

    fn set_modified(&self, time: SystemTime) -> Result<Option<Stat>, StorageError> {
        self.backend.set_modified_at(&self.path, time)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A directory's entries, a page of ListObjectsV2 at a time: the next page is asked
/// for when the entries of the last one are all taken.
struct Listing {
    client: Arc<S3Client>,
    prefix: String,
    /// The continuation token of the next page, while there is one to ask for.
    next: Option<String>,
    ready: std::collections::VecDeque<(String, Stat)>,
    wanted: Option<NameFilter>,
    /// Entries given so far, for the log of a listing cut short.
    given: u64,
}

impl Listing {
    /// The listing whose first page is `first`.
    fn new(
        client: Arc<S3Client>,
        prefix: String,
        first: client::ListPage,
        wanted: Option<NameFilter>,
    ) -> Listing {
        let mut listing = Listing {
            client,
            prefix,
            next: None,
            ready: std::collections::VecDeque::new(),
            wanted,
            given: 0,
        };
        listing.add_page(first);
        listing
    }

    /// Turns a page into entries and keeps its continuation token.
    fn add_page(&mut self, page: client::ListPage) {
        for info in &page.objects {
            let Some(name) = info.key.strip_prefix(&self.prefix) else {
                continue;
            };
            // The directory's own marker is not an entry of it.
            if name.is_empty() || !servable(name) {
                continue;
            }
            if self.wanted.as_ref().is_some_and(|w| !w(name)) {
                continue;
            }
            self.ready.push_back((name.to_owned(), file_stat(info)));
        }
        for sub in &page.prefixes {
            let Some(name) = sub
                .strip_prefix(&self.prefix)
                .and_then(|n| n.strip_suffix('/'))
            else {
                continue;
            };
            if !servable(name) || self.wanted.as_ref().is_some_and(|w| !w(name)) {
                continue;
            }
            self.ready.push_back((name.to_owned(), dir_stat(None)));
        }
        self.next = page.next;
    }

    /// Fetches the page that `token` starts (the client tries a failed one again a
    /// few times); a store that keeps failing ends the listing with an I/O error (the
    /// session answers it `451`), never early as if complete.
    fn fetch(&mut self, token: &str) -> Result<(), StorageError> {
        match self.client.next_list_page(&self.prefix, Some("/"), token) {
            Ok(page) => {
                self.add_page(page);
                Ok(())
            }
            Err(e) => {
                log::error!(
                    "s3: listing {:?} cut short after {} entries: {e}",
                    self.prefix,
                    self.given
                );
                Err(StorageError::Io(io::Error::other(e)))
            }
        }
    }
}

impl Iterator for Listing {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                self.given += 1;
                return Some(Ok(entry));
            }
            // Taken: after a failure the listing ends (nothing follows an `Err`).
            let token = self.next.take()?;
            if let Err(e) = self.fetch(&token) {
                return Some(Err(e));
            }
        }
    }
}

/// An upload in progress: the part being filled, and the multipart upload once one
/// part was full.
struct S3Upload {
    client: Arc<S3Client>,
    key: String,
    buffer: Vec<u8>,
    multipart: Option<Multipart>,
}

struct Multipart {
    id: String,
    etags: Vec<String>,
}

impl S3Upload {
    /// The size the part being filled is sent at.
    fn part_size(&self) -> usize {
        let sent = self.multipart.as_ref().map_or(0, |m| m.etags.len());
        if sent < usize::from(PARTS_BEFORE_BIG) {
            PART
        } else {
            BIG_PART
        }
    }

    /// Sends the buffer as the next part (starting the multipart upload first).
    fn send_part(&mut self) -> Result<(), S3Error> {
        if self.multipart.is_none() {
            let id = self.client.create_multipart(&self.key)?;
            self.multipart = Some(Multipart {
                id,
                etags: Vec::new(),
            });
        }
        let Some(multipart) = self.multipart.as_mut() else {
            return Err(S3Error::BadReply("no multipart upload".into()));
        };
        let number = u16::try_from(multipart.etags.len() + 1)
            .ok()
            .filter(|n| *n <= MAX_PARTS)
            .ok_or_else(|| S3Error::Refused {
                status: 400,
                code: "EntityTooLarge".into(),
                message: "the file is larger than an upload of 10,000 parts".into(),
            })?;
        let etag = self
            .client
            .upload_part(&self.key, &multipart.id, number, &self.buffer)?;
        multipart.etags.push(etag);
        self.buffer.clear();
        Ok(())
    }
}

impl Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let size = self.part_size();
        if self.buffer.capacity() < size {
            self.buffer.reserve_exact(size - self.buffer.len());
        }
        let room = size - self.buffer.len();
        let n = room.min(buf.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == size {
            self.send_part().map_err(io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for S3Upload {
    fn sink(&mut self) -> Sink<'_> {
        Sink::Stream(self)
    }

    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        let result = match &self.multipart {
            None => self.client.put(&self.key, &self.buffer),
            Some(_) => (|| {
                // The last part may be short (or empty, when the file ended on a part
                // boundary: then the parts sent are all there is).
                if !self.buffer.is_empty() {
                    self.send_part()?;
                }
                let Some(multipart) = self.multipart.as_ref() else {
                    return Err(S3Error::BadReply("no multipart upload".into()));
                };
                self.client
                    .complete_multipart(&self.key, &multipart.id, &multipart.etags)
            })(),
        };
        match result {
            Ok(()) => {
                // Complete: nothing to abort when this is dropped.
                self.multipart = None;
                Ok(())
            }
            Err(e) => Err(storage_error(e)),
        }
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let Some(multipart) = self.multipart.take() {
            if let Err(e) = self.client.abort_multipart(&self.key, &multipart.id) {
                log::warn!(
                    "s3: cannot abort the unfinished upload of {:?} ({}): {e}; \
                     a lifecycle rule (AbortIncompleteMultipartUpload) removes it",
                    self.key,
                    multipart.id
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_with_or_without_a_prefix() {
        let l = S3Location::parse("s3://bucket").expect("bucket");
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bucket", ""));
        let l = S3Location::parse("s3://bucket/a/b/").expect("prefix");
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("bucket", "a/b/"));
        for bad in [
            "bucket/x",
            "s3://",
            "s3:///x",
            "s3://b/a/../c",
            "s3://b/a//c",
            "s3://b/./c",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_from_other_writers_that_cannot_be_served_are_left_out() {
        for bad in ["", ".", "..", "a/b", "x\ny", ".simple-ftp-part.1"] {
            assert!(!servable(bad), "{bad:?}");
        }
        assert!(servable("a b.txt"));
    }
}
