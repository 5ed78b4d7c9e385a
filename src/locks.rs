//! The per-file lock table that keeps concurrent uploads and downloads of one file apart.
//!
//! Each directory entry (its [`EntryKey`]: the canonical path, the same for every name
//! through symlinked directories) maps to an `Arc<parking_lot::RwLock<()>>`, created on first use.
//! Downloads hold the read lock while they stream; uploads hold the write lock while
//! they receive and rename. Waits are bounded: past the bound the caller gets `None` and
//! replies 450 before any data moves. A guard owns its lock (an `Arc` guard), and when
//! the last user of an entry lets go, the entry is removed, so the table holds only
//! names in use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::lock_api::{ArcRwLockReadGuard, ArcRwLockWriteGuard};
use parking_lot::{Mutex, RawRwLock, RwLock};

use crate::path::EntryKey;

type Entry = Arc<RwLock<()>>;

/// A map from directory entry to its reader-writer lock. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct LockTable {
    entries: Mutex<HashMap<EntryKey, Entry>>,
}

/// A held lock on one path; the table entry is pruned when the last holder drops.
#[must_use = "the lock is released when the guard is dropped"]
pub struct FileGuard<'t> {
    table: &'t LockTable,
    key: EntryKey,
    held: Option<Held>,
}

enum Held {
    #[allow(dead_code)] // held for its Drop, never read
    Read(ArcRwLockReadGuard<RawRwLock, ()>),
    #[allow(dead_code)]
    Write(ArcRwLockWriteGuard<RawRwLock, ()>),
}

impl LockTable {
    /// An empty table.
    pub fn new() -> LockTable {
        LockTable::default()
    }

    /// Takes the read (shared) lock on `path`, waiting at most `wait`.
    /// Returns `None` when a writer held it for the whole wait.
    pub fn read(&self, key: &EntryKey, wait: Duration) -> Option<FileGuard<'_>> {
        self.lock(key, wait, |e, w| {
            RwLock::try_read_arc_for(e, w).map(Held::Read)
        })
    }

    /// Takes the write (exclusive) lock on `path`, waiting at most `wait`.
    /// Returns `None` when readers or a writer held it for the whole wait.
    pub fn write(&self, key: &EntryKey, wait: Duration) -> Option<FileGuard<'_>> {
        self.lock(key, wait, |e, w| {
            RwLock::try_write_arc_for(e, w).map(Held::Write)
        })
    }

    /// How many paths have an entry (held or being waited for). Only the tests ask:
    /// they check that entries are pruned when their last user lets go.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether no path has an entry.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(
        &self,
        key: &EntryKey,
        wait: Duration,
        take: impl FnOnce(&Entry, Duration) -> Option<Held>,
    ) -> Option<FileGuard<'_>> {
        let entry = Arc::clone(self.entries.lock().entry(key.clone()).or_default());
        let mut guard = FileGuard {
            table: self,
            key: key.clone(),
            held: None,
        };
        // The lock is taken outside the table's mutex, so a wait never blocks other names.
        guard.held = take(&entry, wait);
        drop(entry);
        // On failure `guard` drops here and prunes the entry like any other release.
        guard.held.is_some().then_some(guard)
    }
}

impl Drop for FileGuard<'_> {
    fn drop(&mut self) {
        self.held = None;
        let mut entries = self.table.entries.lock();
        // Clones are only made under this mutex, so a count of 1 (the map's own) means
        // nobody holds or waits for this entry and it can go.
        if entries
            .get(&self.key)
            .is_some_and(|e| Arc::strong_count(e) == 1)
        {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::{Root, VirtualPath};
    use std::sync::Barrier;
    use std::thread;

    fn paths() -> (tempfile::TempDir, EntryKey, EntryKey) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = Root::new(tmp.path()).expect("root");
        let a = root.resolve(&VirtualPath::root(), "a").expect("a");
        let b = root.resolve(&VirtualPath::root(), "b").expect("b");
        (tmp, a.lock_key().clone(), b.lock_key().clone())
    }

    #[test]
    fn names_through_symlinked_directories_share_a_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("sub", tmp.path().join("alias")).expect("symlink");
        let root = Root::new(tmp.path()).expect("root");
        let cwd = VirtualPath::root();
        let plain = root.resolve(&cwd, "sub/f").expect("plain");
        let linked = root.resolve(&cwd, "alias/f").expect("linked");
        assert_eq!(plain.lock_key(), linked.lock_key());
        let table = LockTable::new();
        let _w = table.write(plain.lock_key(), SHORT).expect("write");
        assert!(table.read(linked.lock_key(), SHORT).is_none());
    }

    const SHORT: Duration = Duration::from_millis(50);
    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn readers_share_and_writers_exclude() {
        let (_tmp, a, b) = paths();
        let table = LockTable::new();
        let r1 = table.read(&a, SHORT).expect("first reader");
        let r2 = table.read(&a, SHORT).expect("second reader");
        assert!(
            table.write(&a, SHORT).is_none(),
            "writer must wait for readers"
        );
        let other = table.write(&b, SHORT).expect("other names are independent");
        drop((r1, r2, other));
        let w = table.write(&a, SHORT).expect("writer after readers left");
        assert!(
            table.read(&a, SHORT).is_none(),
            "reader must wait for writer"
        );
        drop(w);
    }

    #[test]
    fn table_empties_when_nobody_holds_a_lock() {
        let (_tmp, a, b) = paths();
        let table = LockTable::new();
        {
            let _r = table.read(&a, SHORT).expect("read");
            let _w = table.write(&b, SHORT).expect("write");
            assert_eq!(table.len(), 2);
            assert!(table.write(&a, SHORT).is_none());
            assert_eq!(table.len(), 2, "a failed wait keeps the held entry");
        }
        assert!(table.is_empty());
    }

    #[test]
    fn waiting_writer_gets_the_lock_when_readers_leave() {
        let (_tmp, a, _) = paths();
        let table = LockTable::new();
        let barrier = Barrier::new(2);
        thread::scope(|s| {
            let reader = table.read(&a, SHORT).expect("read");
            let waiter = s.spawn(|| {
                barrier.wait();
                table.write(&a, LONG).is_some()
            });
            barrier.wait();
            thread::sleep(SHORT);
            drop(reader);
            assert!(waiter.join().expect("join"), "writer should get the lock");
        });
        assert!(table.is_empty());
    }

    #[test]
    fn many_threads_leave_an_empty_table() {
        let (_tmp, a, b) = paths();
        let table = LockTable::new();
        thread::scope(|s| {
            for i in 0..16 {
                let (table, a, b) = (&table, &a, &b);
                s.spawn(move || {
                    for _ in 0..200 {
                        let p = if i % 2 == 0 { a } else { b };
                        if i % 3 == 0 {
                            let _g = table.write(p, LONG).expect("write");
                        } else {
                            let _g = table.read(p, LONG).expect("read");
                        }
                    }
                });
            }
        });
        assert!(table.is_empty());
    }
}
