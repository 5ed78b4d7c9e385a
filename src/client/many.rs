//! Many files at once: `MGET`/`MPUT` patterns with `*`, `?` and `[...]`.
//!
//! Remote names come from a listing of the server's current directory and are matched
//! here, not by the server: servers differ on wildcards in `NLST` (ours expands them,
//! others take them literally), and a name the server sends is checked before it
//! becomes a local path. Only plain files are fetched: where the server offers MLSD
//! (RFC 3659 §7), its `type` facts say which names are files; elsewhere the names
//! come from `NLST`, which cannot tell, and each matching name is asked its `SIZE`
//! first, which servers refuse with `550` for a directory. Names that are not files
//! are left out, and counted, rather than failing their GETs. Each file then goes through [`Client::get`] or
//! [`Client::put`], so it is verified as those are, and a failed download leaves
//! nothing behind. A lost connection or an [`super::Interrupt`] (Ctrl-C) ends the
//! batch; any other failure is counted and the next file follows.

use std::collections::HashMap;
use std::path::{Component, Path};

use super::{Client, ClientError, Progress, Result, Transferred};
use crate::protocol::{Command, ReplyCode};

/// What a batch transfer tells its callback as it goes.
#[derive(Debug)]
pub enum BatchEvent<'a> {
    /// File `index` (from 0) of `count` has moved `progress.done` bytes.
    Progress {
        /// The file's name.
        name: &'a str,
        /// Which file of the batch this is, from 0.
        index: usize,
        /// How many files the batch holds.
        count: usize,
        /// The file's own progress.
        progress: Progress,
    },
    /// A file is done, well or not.
    Done {
        /// The file's name.
        name: &'a str,
        /// What came of it.
        result: &'a Result<Transferred>,
    },
}

/// The names a batch's patterns chose.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Matches {
    /// The files to move, in the listing's order, each once.
    pub names: Vec<String>,
    /// The patterns that matched no file.
    pub unmatched: Vec<String>,
    /// Names that matched but are not plain files (directories, mostly): left out.
    pub left_out: Vec<String>,
}

/// What a listing says one of its names is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A plain file.
    File,
    /// A directory, or anything else that is not a plain file.
    NotFile,
    /// The listing does not say (NLST, or a type MLSD leaves open such as a link).
    Unknown,
}

/// What a batch transfer did.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every file tried, in order, with what came of it.
    pub files: Vec<(String, Result<Transferred>)>,
    /// The patterns that matched no file.
    pub unmatched: Vec<String>,
    /// Names that matched but are not plain files, left out (not failures).
    pub left_out: Vec<String>,
    /// Names that matched but were not tried: the connection was lost, or the batch
    /// was interrupted, before them.
    pub skipped: Vec<String>,
}

impl Batch {
    /// Files that arrived whole.
    pub fn succeeded(&self) -> usize {
        self.files.iter().filter(|(_, r)| r.is_ok()).count()
    }

    /// Bytes moved by the files that arrived whole.
    pub fn bytes(&self) -> u64 {
        self.files
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|t| t.bytes)
            .sum()
    }

    /// Whether the files still to come are not to be tried: the connection is gone,
    /// or the last file was interrupted (Ctrl-C stops the batch, not only one file).
    fn ended(&self, client: &Client) -> bool {
        let interrupted = matches!(self.files.last(), Some((_, Err(ClientError::Interrupted))));
        interrupted || !client.is_usable()
    }

    /// Failed files, patterns that matched nothing, and files not tried.
    pub fn failures(&self) -> usize {
        self.files.len() - self.succeeded() + self.unmatched.len() + self.skipped.len()
    }
}

impl Client {
    /// The plain files in the server's current directory that match any of
    /// `patterns`, in the server's order, each once; the patterns that matched no
    /// file; and the matching names that are not files.
    ///
    /// The listing is MLSD where the server offers it (its `type` facts tell files
    /// from directories), else NLST, and then each matching name is asked its SIZE:
    /// a `550` means it is not a plain file. A name that would leave the local
    /// directory is not asked (its GET refuses it).
    ///
    /// # Errors
    /// As [`Client::nlst`]; connection errors during the SIZE questions.
    pub fn remote_matches(&mut self, patterns: &[String]) -> Result<Matches> {
        let entries = self.remote_entries()?;
        let names: Vec<String> = entries.iter().map(|(n, _)| n.clone()).collect();
        let kinds: HashMap<&str, Kind> = entries.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        let (chosen, _) = select(&names, patterns);
        let mut files = Vec::new();
        let mut left_out = Vec::new();
        for name in chosen {
            let kind = match kinds.get(name.as_str()) {
                Some(Kind::Unknown) | None if stays_inside(&name) => self.kind_by_size(&name)?,
                Some(kind) => *kind,
                None => Kind::Unknown,
            };
            if kind == Kind::NotFile {
                left_out.push(name);
            } else {
                files.push(name);
            }
        }
        // A pattern that matched only directories matched no file.
        let (names, unmatched) = select(&files, patterns);
        Ok(Matches {
            names,
            unmatched,
            left_out,
        })
    }

    /// The names in the current directory with what the listing says they are:
    /// MLSD where the server offers it (and does not refuse it), else NLST.
    fn remote_entries(&mut self) -> Result<Vec<(String, Kind)>> {
        if self.offers_mlsd()? {
            match self.fetch_listing(Command::Mlsd(None)) {
                Ok(bytes) => return Ok(parse_mlsd(&String::from_utf8_lossy(&bytes))),
                // A server that names MLST in FEAT but refuses MLSD here: NLST.
                Err(ClientError::UnexpectedReply { .. }) if self.is_usable() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self
            .nlst(None)?
            .into_iter()
            // Some servers (pure-ftpd) list `.` and `..`; neither is a file.
            .filter(|n| n != "." && n != "..")
            .map(|n| (n, Kind::Unknown))
            .collect())
    }

    /// Whether `name` is a plain file, as its SIZE (RFC 3659 §4) says: a size, a
    /// file; `550`, not one; any other refusal (a server without SIZE), unknown, so
    /// its GET decides. RFC 3659 §4.2 lets a server refuse SIZE with `550` for a file
    /// it cannot size in the current TYPE; in TYPE I, which the client uses, the
    /// servers tested (ours, pyftpdlib, vsftpd, pure-ftpd) answer for every file and
    /// refuse directories.
    fn kind_by_size(&mut self, name: &str) -> Result<Kind> {
        match self.size(name) {
            Ok(_) => Ok(Kind::File),
            Err(ClientError::UnexpectedReply { code, .. })
                if code == ReplyCode::FileUnavailable.number() =>
            {
                Ok(Kind::NotFile)
            }
            Err(ClientError::UnexpectedReply { .. } | ClientError::Protocol(_))
                if self.is_usable() =>
            {
                Ok(Kind::Unknown)
            }
            Err(e) => Err(e),
        }
    }

    /// Downloads every remote file of the current directory that matches one of
    /// `patterns` into the local directory `dir` (MGET). Matching names that are not
    /// plain files (see [`Client::remote_matches`]) are left out; a name that would
    /// leave `dir` (absolute, or with `..`) is refused as that file's failure.
    ///
    /// # Errors
    /// Only when the listing itself fails; each file's outcome is in the [`Batch`].
    pub fn get_matching(
        &mut self,
        patterns: &[String],
        dir: &Path,
        event: impl FnMut(BatchEvent<'_>),
    ) -> Result<Batch> {
        let matches = self.remote_matches(patterns)?;
        Ok(self.each_file(matches, event, |client, name, progress| {
            if stays_inside(name) {
                client.get(name, &dir.join(name), progress)
            } else {
                Err(ClientError::InvalidArgument(format!(
                    "refusing {name:?} from the server: the name would leave the local directory"
                )))
            }
        }))
    }

    /// Uploads every regular file of the local directory `dir` that matches one of
    /// `patterns` to the server's current directory under the same name (MPUT).
    /// Matching names that are not regular files (directories) are left out.
    ///
    /// # Errors
    /// [`ClientError::LocalFile`] when `dir` cannot be read; each file's outcome is
    /// in the [`Batch`].
    pub fn put_matching(
        &mut self,
        patterns: &[String],
        dir: &Path,
        event: impl FnMut(BatchEvent<'_>),
    ) -> Result<Batch> {
        let matches = local_matches(dir, patterns)?;
        Ok(self.each_file(matches, event, |client, name, progress| {
            client.put(&dir.join(name), name, progress)
        }))
    }

    /// Runs `transfer` on each of `names` in turn, telling `event` how each goes,
    /// until the batch [ends](Batch::ended); the names after that are skipped.
    fn each_file(
        &mut self,
        matches: Matches,
        mut event: impl FnMut(BatchEvent<'_>),
        mut transfer: impl FnMut(&mut Client, &str, &mut dyn FnMut(Progress)) -> Result<Transferred>,
    ) -> Batch {
        let Matches {
            names,
            unmatched,
            left_out,
        } = matches;
        let mut batch = Batch {
            unmatched,
            left_out,
            ..Batch::default()
        };
        let count = names.len();
        for (index, name) in names.into_iter().enumerate() {
            if batch.ended(self) {
                batch.skipped.push(name);
                continue;
            }
            let result = transfer(self, &name, &mut |progress| {
                event(BatchEvent::Progress {
                    name: &name,
                    index,
                    count,
                    progress,
                })
            });
            event(BatchEvent::Done {
                name: &name,
                result: &result,
            });
            batch.files.push((name, result));
        }
        batch
    }
}

/// The regular files in `dir` that match any of `patterns`, sorted; the patterns
/// that matched no file; and the matching names that are not regular files.
///
/// # Errors
/// [`ClientError::LocalFile`] when `dir` cannot be read.
pub fn local_matches(dir: &Path, patterns: &[String]) -> Result<Matches> {
    let dir_err = |source| ClientError::LocalFile {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        // A name that is not UTF-8 cannot be sent as typed; it is left out.
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // Symbolic links are followed, as PUT follows them.
        if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            files.push(name);
        } else {
            others.push(name);
        }
    }
    files.sort();
    others.sort();
    let (names, unmatched) = select(&files, patterns);
    let (left_out, _) = select(&others, patterns);
    Ok(Matches {
        names,
        unmatched,
        left_out,
    })
}

/// The entries of an MLSD listing (RFC 3659 §7.2): one `fact=value;...; name` per
/// line, the facts ending at the first space. The `type` fact says what each is;
/// the entries for the directory itself and its parent (`cdir`, `pdir`) are dropped.
fn parse_mlsd(text: &str) -> Vec<(String, Kind)> {
    text.lines()
        .filter_map(|line| {
            let (facts, name) = line.trim_end_matches('\r').split_once(' ')?;
            let kind = facts
                .split(';')
                .filter_map(|fact| fact.split_once('='))
                .find(|(fact, _)| fact.eq_ignore_ascii_case("type"))
                .map(|(_, value)| value.to_ascii_lowercase());
            let kind = match kind.as_deref() {
                Some("cdir" | "pdir") => return None,
                Some("file") => Kind::File,
                Some("dir") => Kind::NotFile,
                // No type, or one such as `OS.unix=slink`: its SIZE will tell.
                _ => Kind::Unknown,
            };
            (!name.is_empty()).then(|| (name.to_owned(), kind))
        })
        .collect()
}

/// The `names` matching any pattern, each once and in order, and the unmatched patterns.
fn select(names: &[String], patterns: &[String]) -> (Vec<String>, Vec<String>) {
    let chosen: Vec<String> = names
        .iter()
        .filter(|n| patterns.iter().any(|p| wildcard_match(p, n)))
        .fold(Vec::new(), |mut acc, n| {
            if !acc.contains(n) {
                acc.push(n.clone());
            }
            acc
        });
    let unmatched = patterns
        .iter()
        .filter(|p| !names.iter().any(|n| wildcard_match(p, n)))
        .cloned()
        .collect();
    (chosen, unmatched)
}

/// Whether `name` is a relative path that stays inside the directory it is joined
/// to: no root, no `..`, at least one ordinary part.
fn stays_inside(name: &str) -> bool {
    let mut normal = 0;
    for part in Path::new(name).components() {
        match part {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    normal > 0 && !name.contains('\0')
}

/// Shell-style matching of a whole name: `*` any run of characters, `?` one
/// character, `[abc]`, `[a-z]` and `[!a-z]` (or `[^a-z]`) one of a set; a `\` makes
/// the next character literal. As in the shell, a leading `.` is matched only by a
/// pattern that starts with one, so `*` leaves hidden files alone.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    // Iterative, with backtracking to the last `*` only: linear in practice, and no
    // pattern can make it recurse deeply.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match_class(&p[pi..], n[ni]),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(2),
            Some(c) => (*c == n[ni]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class at the start of `p` (which starts with `[`):
/// `Some(length)` of the class when `c` is in it. An unclosed `[` is a plain `[`.
fn match_class(p: &[char], c: char) -> Option<usize> {
    let start = if matches!(p.get(1), Some('!' | '^')) {
        2
    } else {
        1
    };
    // A `]` right at the start belongs to the set, as in the shell.
    let Some(close) = p.iter().skip(start + 1).position(|x| *x == ']') else {
        return (c == '[').then_some(1);
    };
    let end = start + 1 + close;
    let set = &p[start..end];
    let mut found = false;
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == '-' {
            found |= set[i] <= c && c <= set[i + 2];
            i += 3;
        } else {
            found |= set[i] == c;
            i += 1;
        }
    }
    (found != (start == 2)).then_some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_in_the_shell() {
        let yes = [
            ("*.txt", "a.txt"),
            ("*", "a"),
            ("a*b*c", "aXXbYYc"),
            ("?.bin", "x.bin"),
            ("[abc].txt", "b.txt"),
            ("[a-c]*", "c-file"),
            ("[!a-c]*", "d"),
            ("[^a]", "b"),
            ("[]]", "]"),
            ("[", "["),
            ("a[", "a["),
            ("\\*", "*"),
            ("*.*", "x.y.z"),
            (".*", ".hidden"),
            ("report 2026*", "report 2026 final.pdf"),
            ("***", "abc"),
        ];
        for (p, n) in yes {
            assert!(wildcard_match(p, n), "{p} should match {n}");
        }
        let no = [
            ("*.txt", "a.txt.bak"),
            ("?", "ab"),
            ("?", ""),
            ("[abc]", "d"),
            ("[!a-c]", "b"),
            ("\\*", "a"),
            ("*", ".hidden"),
            ("?hidden", ".hidden"),
            ("a*b", "acb c"),
            ("é?", "é"),
        ];
        for (p, n) in no {
            assert!(!wildcard_match(p, n), "{p} should not match {n}");
        }
        // Backtracking stays linear in practice.
        let long = "a".repeat(5000);
        assert!(!wildcard_match("*a*a*a*a*a*b", &long));
    }

    #[test]
    fn names_are_chosen_once_in_order_and_unmatched_patterns_named() {
        let names: Vec<String> = ["a.txt", "b.bin", "c.txt"].map(String::from).to_vec();
        let patterns: Vec<String> = ["*.txt", "a*", "*.zip"].map(String::from).to_vec();
        let (chosen, unmatched) = select(&names, &patterns);
        assert_eq!(chosen, ["a.txt", "c.txt"]);
        assert_eq!(unmatched, ["*.zip"]);
    }

    #[test]
    fn mlsd_lines_parse_into_names_and_what_they_are() {
        let text = "type=cdir;perm=el; /pub\r\ntype=pdir; ..\r\n\
                    Type=File;Size=3; a b.txt\r\ntype=dir;modify=20260101000000; sub\r\n\
                    type=OS.unix=slink:/x; link\r\nsize=4; untyped\r\n no facts\r\n\r\n";
        let got = parse_mlsd(text);
        let want = [
            ("a b.txt", Kind::File),
            ("sub", Kind::NotFile),
            ("link", Kind::Unknown),
            ("untyped", Kind::Unknown),
            ("no facts", Kind::Unknown),
        ]
        .map(|(n, k)| (n.to_owned(), k));
        assert_eq!(got, want);
    }

    #[test]
    fn local_directories_that_match_are_left_out_not_unmatched() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.log"), b"a").expect("write");
        std::fs::create_dir(dir.path().join("b.log")).expect("mkdir");
        std::fs::create_dir(dir.path().join("only-dir")).expect("mkdir");
        let patterns = ["*.log", "only*"].map(String::from);
        let got = local_matches(dir.path(), &patterns).expect("matches");
        assert_eq!(
            got,
            Matches {
                names: vec!["a.log".into()],
                unmatched: vec!["only*".into()],
                left_out: vec!["b.log".into(), "only-dir".into()],
            }
        );
    }

    #[test]
    fn names_that_leave_the_directory_are_caught() {
        for bad in ["../x", "/etc/passwd", "a/../../x", "..", "", ".", "a\0b"] {
            assert!(!stays_inside(bad), "{bad:?}");
        }
        for good in ["a", "sub/a", "./a", "..a", "a..b"] {
            assert!(stays_inside(good), "{good:?}");
        }
    }
}
