//! Many files at once: `MGET`/`MPUT` patterns with `*`, `?` and `[...]`.
//!
//! Remote names come from `NLST` of the server's current directory and are matched
//! here, not by the server: servers differ on wildcards in `NLST` (ours expands them,
//! others take them literally), and a name the server sends is checked before it
//! becomes a local path. Each file then goes through [`Client::get`] or
//! [`Client::put`], so it is verified as those are, and a failed download leaves
//! nothing behind. A lost connection or an [`super::Interrupt`] (Ctrl-C) ends the
//! batch; any other failure is counted and the next file follows.

use std::path::{Component, Path};

use super::{Client, ClientError, Progress, Result, Transferred};

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

/// What a batch transfer did.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every file tried, in order, with what came of it.
    pub files: Vec<(String, Result<Transferred>)>,
    /// The patterns that matched no name.
    pub unmatched: Vec<String>,
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
    /// The names in the server's current directory (`NLST`) that match any of
    /// `patterns`, in the server's order, each once; and the patterns that matched
    /// nothing.
    ///
    /// # Errors
    /// As [`Client::nlst`].
    pub fn remote_matches(&mut self, patterns: &[String]) -> Result<(Vec<String>, Vec<String>)> {
        let names = self.nlst(None)?;
        Ok(select(&names, patterns))
    }

    /// Downloads every remote file of the current directory that matches one of
    /// `patterns` into the local directory `dir` (MGET). A name that would leave
    /// `dir` (absolute, or with `..`) is refused as that file's failure.
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
        (names, unmatched): (Vec<String>, Vec<String>),
        mut event: impl FnMut(BatchEvent<'_>),
        mut transfer: impl FnMut(&mut Client, &str, &mut dyn FnMut(Progress)) -> Result<Transferred>,
    ) -> Batch {
        let mut batch = Batch {
            unmatched,
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

/// The regular files in `dir` that match any of `patterns`, sorted; and the patterns
/// that matched nothing.
///
/// # Errors
/// [`ClientError::LocalFile`] when `dir` cannot be read.
pub fn local_matches(dir: &Path, patterns: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let dir_err = |source| ClientError::LocalFile {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let entry = entry.map_err(dir_err)?;
        // Symbolic links are followed, as PUT follows them; directories are left out.
        let is_file = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
        // A name that is not UTF-8 cannot be sent as typed; it is left out too.
        if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(select(&names, patterns))
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
    fn names_that_leave_the_directory_are_caught() {
        for bad in ["../x", "/etc/passwd", "a/../../x", "..", "", ".", "a\0b"] {
            assert!(!stays_inside(bad), "{bad:?}");
        }
        for good in ["a", "sub/a", "./a", "..a", "a..b"] {
            assert!(stays_inside(good), "{good:?}");
        }
    }
}
