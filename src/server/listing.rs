//! Directory listings: `ls -l` lines for LIST and STAT, bare names for NLST, and
//! machine-readable facts for MLSD/MLST (RFC 3659 §7).

use std::fmt::Write as _;
use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::SystemTime;

use super::accounts::Perms;
use crate::time::{ls_date, Utc};

/// One `ls -l` style line, with CRLF.
pub(super) fn ls_line(out: &mut String, name: &str, meta: &Metadata, now: SystemTime) {
    let kind = if meta.is_dir() { 'd' } else { '-' };
    let mode = meta.permissions().mode();
    let mut perms = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let date = meta
        .modified()
        .map_or_else(|_| ls_date(now, now), |t| ls_date(t, now));
    let _ = write!(
        out,
        "{kind}{perms} {:>3} ftp      ftp      {:>12} {date} {name}\r\n",
        meta.nlink(),
        meta.len()
    );
}

/// The MLST facts a client asked for (`OPTS MLST`), all of them by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Facts(u8);

/// The facts we know, in the order they are listed (RFC 3659 §7.5).
const FACTS: [&str; 5] = ["type", "size", "modify", "perm", "unique"];

impl Default for Facts {
    fn default() -> Facts {
        Facts(0b1_1111)
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
    pub(super) fn line(self, name: &str, meta: &Metadata, perms: Perms) -> String {
        let mut out = String::with_capacity(96 + name.len());
        for (i, fact) in FACTS.iter().enumerate() {
            if !self.has(i) {
                continue;
            }
            let _ = match *fact {
                "type" => write!(out, "type={};", if meta.is_dir() { "dir" } else { "file" }),
                "size" => write!(out, "size={};", meta.len()),
                "modify" => match meta.modified() {
                    Ok(t) => write!(out, "modify={};", Utc::from_system_time(t).mdtm()),
                    Err(_) => Ok(()),
                },
                "perm" => write!(out, "perm={};", perm_fact(meta, perms)),
                _ => write!(out, "unique={:x}U{:x};", meta.dev(), meta.ino()),
            };
        }
        out.push(' ');
        out.push_str(name);
        out
    }
}

/// The `perm` fact (RFC 3659 §7.5.5): what this session may do with the entry.
fn perm_fact(meta: &Metadata, perms: Perms) -> String {
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
    use super::*;

    #[test]
    fn facts_select_and_format() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("a b.txt");
        std::fs::write(&file, "12345").expect("write");
        let meta = std::fs::metadata(&file).expect("meta");
        let line = Facts::default().line("a b.txt", &meta, Perms::ALL);
        assert!(line.starts_with("type=file;size=5;modify="), "{line}");
        assert!(line.contains(";perm=adfrw;unique="), "{line}");
        assert!(line.ends_with("; a b.txt"), "{line}");

        let some = Facts::select("size;TYPE;bogus;");
        assert_eq!(some.names(), "type;size;");
        assert_eq!(some.line("x", &meta, Perms::READ), "type=file;size=5; x");
        assert_eq!(some.feature(), "MLST type*;size*;modify;perm;unique;");
        let dir = std::fs::metadata(tmp.path()).expect("meta");
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
        let meta = std::fs::metadata(&file).expect("meta");
        let mut out = String::new();
        ls_line(&mut out, "f", &meta, SystemTime::now());
        assert!(out.starts_with("-rw-r----- "), "{out}");
        assert!(out.contains(" 3 ") && out.ends_with(" f\r\n"), "{out}");
    }
}
