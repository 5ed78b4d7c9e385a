//! Directory listings: `ls -l` lines for LIST and STAT, names for NLST, and
//! machine-readable facts for MLSD/MLST (RFC 3659 §7), one line per entry.
//!
//! The session streams a listing: it reads the directory an entry at a time and
//! formats lines into a chunk of about [`LISTING_CHUNK`] bytes that goes out before
//! the next is made, so a listing's memory does not grow with the directory. Sorting
//! needs every name at once, so only a directory of up to [`SORTED_MAX`] entries
//! (nearly every directory people look at, and what peers' `ls`-style listings
//! look like) is listed sorted by name, after reading it whole; a larger one comes in
//! the directory's own order, as `ls -f` shows it. Clients that show a large listing
//! to people sort it themselves.
//!
//! Entries come as [`Stat`]s from any storage backend, so every listing looks the
//! same whichever holds the files; a backend without mode bits (an object store)
//! shows a fixed `rwxr-xr-x` for directories and `rw-r--r--` for files
//! ([`Stat::mode_or_default`]), in `ls` lines and in the `UNIX.mode` fact alike, and
//! one without an identity leaves the `unique` fact out.
//!
//! A name with a control character is never listed ([`listable`]): a CR or LF in a
//! name would end the line early and let the rest of the name pose as another entry
//! (or, in STAT and MLST, as another reply line).

use std::fmt::Write as _;
use std::time::SystemTime;

use super::accounts::Perms;
use crate::storage::{Kind, Stat};
use crate::time::{ls_date, Utc};

mod glob;

pub(super) use glob::{has_wildcards, Pattern};

/// A listing goes out in chunks of about this many bytes (one line more at most).
pub(super) const LISTING_CHUNK: usize = 64 << 10;

/// Directories of up to this many entries are listed sorted by name: a bounded
/// batch (some 200 KiB with its metadata) held while it is sorted.
pub(super) const SORTED_MAX: usize = 1024;

/// What a listing command sends for each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    /// LIST and STAT: `ls -l` lines.
    Long,
    /// NLST: names.
    Names,
    /// MLSD: facts and names.
    Facts,
}

/// Whether `name` may appear in a listing: no control characters (C0, DEL, C1).
pub(super) fn listable(name: &str) -> bool {
    !name.chars().any(char::is_control)
}

/// Appends the line for one entry as `kind` asks, with CRLF; `prefix` goes before
/// the name in NLST (LIST lines show the bare name, as vsftpd's do).
#[allow(clippy::too_many_arguments)]
pub(super) fn entry_line(
    out: &mut String,
    kind: Listing,
    prefix: &str,
    name: &str,
    meta: &Stat,
    facts: Facts,
    perms: Perms,
    now: SystemTime,
) {
    match kind {
        Listing::Long => ls_line(out, name, meta, now),
        Listing::Names => {
            out.push_str(prefix);
            out.push_str(name);
            out.push_str("\r\n");
        }
        Listing::Facts => {
            out.push_str(&facts.line(name, meta, perms));
            out.push_str("\r\n");
        }
    }
}

/// One `ls -l` style line, with CRLF: the file type and all twelve mode bits as
/// `ls` shows them (`drwxr-xr-x`, `-rwsr-x--T`).
pub(super) fn ls_line(out: &mut String, name: &str, meta: &Stat, now: SystemTime) {
    let date = ls_date(meta.modified.unwrap_or(now), now);
    let _ = write!(
        out,
        "{}{} {:>3} ftp      ftp      {:>12} {date} {name}\r\n",
        type_letter(meta.kind),
        mode_letters(meta.mode_or_default()),
        meta.nlink,
        meta.size
    );
}

/// The first letter of an `ls -l` line.
fn type_letter(kind: Kind) -> char {
    match kind {
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Fifo => 'p',
        Kind::Socket => 's',
        Kind::BlockDevice => 'b',
        Kind::CharDevice => 'c',
        Kind::File => '-',
    }
}

/// `rwxr-xr-x` for 0o755; set-user-ID, set-group-ID and sticky bits take the place
/// of the execute letter as `s`/`S` and `t`/`T`, as in `ls`.
fn mode_letters(mode: u32) -> String {
    let mut letters = String::with_capacity(9);
    for (shift, special, on, off) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        letters.push(if bits & 4 != 0 { 'r' } else { '-' });
        letters.push(if bits & 2 != 0 { 'w' } else { '-' });
        letters.push(match (bits & 1 != 0, mode & special != 0) {
            (true, false) => 'x',
            (false, false) => '-',
            (true, true) => on,
            (false, true) => off,
        });
    }
    letters
}

/// The MLST facts a client asked for (`OPTS MLST`), all of them by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts(u8);

/// The facts we know, in the order they are listed (RFC 3659 §7.5). `UNIX.mode` is
/// the mode bits in octal, as ProFTPD and pure-ftpd send it: clients that list with
/// MLSD (ncftp's `ls -l`) show permissions from it, and without it guess them from
/// the `perm` fact.
const FACTS: [&str; 6] = ["type", "size", "modify", "perm", "unique", "UNIX.mode"];

impl Default for Facts {
    fn default() -> Facts {
        Facts(0b11_1111)
    }
}

impl Facts {
    /// Selects the known facts named in `list` (`type;size;`), ignoring unknown
    /// ones as RFC 3659 §7.9 asks.
    pub(super) fn select(list: &str) -> Facts {
        let mut bits = 0;
        for name in list.split(';').map(str::trim) {
            if let Some(i) = FACTS.iter().position(|f| f.eq_ignore_ascii_case(name)) {
                bits |= 1 << i;
            }
        }
        Facts(bits)
    }

    fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    /// The selected facts as `OPTS MLST` confirms them: `type;size;`.
    pub(super) fn names(self) -> String {
        FACTS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.has(*i))
            .map(|(_, f)| format!("{f};"))
            .collect()
    }

    /// The FEAT line: every fact, the selected ones starred.
    pub(super) fn feature(self) -> String {
        let facts: String = FACTS
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{f}{};", if self.has(i) { "*" } else { "" }))
            .collect();
        format!("MLST {facts}")
    }

    /// `type=file;size=5;...; ` followed by `name` (no line ending).
    pub(super) fn line(self, name: &str, meta: &Stat, perms: Perms) -> String {
        let mut out = String::with_capacity(96 + name.len());
        for (i, fact) in FACTS.iter().enumerate() {
            if !self.has(i) {
                continue;
            }
            let _ = match *fact {
                "type" => write!(out, "type={};", if meta.is_dir() { "dir" } else { "file" }),
                "size" => write!(out, "size={};", meta.size),
                "modify" => match meta.modified {
                    Some(t) => write!(out, "modify={};", Utc::from_system_time(t).mdtm()),
                    None => Ok(()),
                },
                "perm" => write!(out, "perm={};", perm_fact(meta, perms)),
                "unique" => match meta.unique {
                    Some((dev, ino)) => write!(out, "unique={dev:x}U{ino:x};"),
                    None => Ok(()),
                },
                _ => write!(out, "UNIX.mode={:04o};", meta.mode_or_default() & 0o7777),
            };
        }
        out.push(' ');
        out.push_str(name);
        out
    }
}

/// The `perm` fact (RFC 3659 §7.5.5): what this session may do with the entry.
fn perm_fact(meta: &Stat, perms: Perms) -> String {
    let rename = perms.write && perms.delete;
    let letters: &[(bool, char)] = if meta.is_dir() {
        &[
            (perms.write, 'c'),
            (perms.delete, 'd'),
            (true, 'e'),
            (rename, 'f'),
            (perms.read, 'l'),
            (perms.write, 'm'),
            (perms.delete, 'p'),
        ]
    } else {
        &[
            (perms.write, 'a'),
            (perms.delete, 'd'),
            (rename, 'f'),
            (perms.read, 'r'),
            (perms.write, 'w'),
        ]
    };
    letters
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn facts_select_and_format() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("a b.txt");
        std::fs::write(&file, "12345").expect("write");
        let meta = Stat::from_metadata(&std::fs::metadata(&file).expect("meta"));
        let line = Facts::default().line("a b.txt", &meta, Perms::ALL);
        assert!(line.starts_with("type=file;size=5;modify="), "{line}");
        assert!(line.contains(";perm=adfrw;unique="), "{line}");
        assert!(line.ends_with("; a b.txt"), "{line}");

        let some = Facts::select("size;TYPE;bogus;");
        assert_eq!(some.names(), "type;size;");
        assert_eq!(some.line("x", &meta, Perms::READ), "type=file;size=5; x");
        assert_eq!(
            some.feature(),
            "MLST type*;size*;modify;perm;unique;UNIX.mode;"
        );
        let dir = Stat::from_metadata(&std::fs::metadata(tmp.path()).expect("meta"));
        assert_eq!(
            Facts::select("type;perm").line("d", &dir, Perms::READ),
            "type=dir;perm=el; d"
        );
        assert_eq!(
            Facts::select("perm").line("f", &meta, Perms::READ),
            "perm=r; f"
        );
        assert_eq!(
            Facts::select("perm").line("f", &meta, Perms::ALL),
            "perm=adfrw; f"
        );
    }

    #[test]
    fn ls_lines_look_like_ls() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        std::fs::write(&file, "abc").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let meta = Stat::from_metadata(&std::fs::metadata(&file).expect("meta"));
        let mut out = String::new();
        ls_line(&mut out, "f", &meta, SystemTime::now());
        assert!(out.starts_with("-rw-r----- "), "{out}");
        assert!(out.contains(" 3 ") && out.ends_with(" f\r\n"), "{out}");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let dir_meta = Stat::from_metadata(&std::fs::metadata(tmp.path()).expect("meta"));
        let mut out = String::new();
        ls_line(&mut out, "d", &dir_meta, SystemTime::now());
        assert!(out.starts_with("drwxr-xr-x "), "{out}");
    }

    #[test]
    fn mode_letters_show_special_bits_as_ls() {
        assert_eq!(mode_letters(0o644), "rw-r--r--");
        assert_eq!(mode_letters(0o755), "rwxr-xr-x");
        assert_eq!(mode_letters(0o4755), "rwsr-xr-x");
        assert_eq!(mode_letters(0o2745), "rwxr-Sr-x");
        assert_eq!(mode_letters(0o1777), "rwxrwxrwt");
        assert_eq!(mode_letters(0o1770), "rwxrwx--T");
        assert_eq!(mode_letters(0), "---------");
    }

    #[test]
    fn unix_mode_fact_is_octal() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        std::fs::write(&file, "abc").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let meta = Stat::from_metadata(&std::fs::metadata(&file).expect("meta"));
        assert_eq!(
            Facts::select("type;UNIX.mode").line("f", &meta, Perms::READ),
            "type=file;UNIX.mode=0640; f"
        );
        assert!(Facts::default()
            .line("f", &meta, Perms::READ)
            .ends_with(";UNIX.mode=0640; f"));
    }

    #[test]
    fn control_characters_are_not_listable() {
        assert!(listable("a b.txt"));
        assert!(listable("ünï"));
        for bad in [
            "evil\r\n-rw fake",
            "a\nb",
            "a\rb",
            "tab\t",
            "del\x7f",
            "c1\u{85}",
        ] {
            assert!(!listable(bad), "{bad:?}");
        }
    }
}
