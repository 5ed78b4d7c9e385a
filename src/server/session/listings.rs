//! LIST, NLST, MLSD, MLST and STAT of a path: what a listing lists (found before its
//! first reply, so a refusal comes before the `150`), and the listing streamed in
//! chunks to the data connection, or to the control connection for STAT. The format
//! of an entry is the listing module's ([`crate::server::listing`]).

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use super::commands::Step;
use super::failure::{Failure, Refusal};
use super::files::mark;
use super::transfer::Job;
use super::Session;
use crate::path::VirtualPath;
use crate::protocol::{Reply, ReplyCode};
use crate::server::accounts::Perms;
use crate::server::listing::{
    entry_line, has_wildcards, listable, Pattern, LISTING_CHUNK, SORTED_MAX,
};
pub(super) use crate::server::listing::{Facts, Listing};
use crate::storage::{Entries, NameFilter, StorageError};

/// What a listing command lists, found before its first reply.
struct Target {
    /// The entries of a directory (all, or those a pattern matched), opened before
    /// the first reply so that a directory that cannot be read is refused before it;
    /// or the one entry that is not a directory, under the name to show.
    entries: Entries,
    /// What NLST puts before each name of a directory listed by a path (`sub/`);
    /// empty for bare names.
    prefix: String,
}

/// The lines of a listing, made a chunk at a time, so the memory a listing takes does
/// not grow with the directory. A directory of up to [`SORTED_MAX`] entries is listed
/// sorted by name, a larger one in its own order (see the listing module). Entries
/// whose name (or the NLST prefix) has a control character are left out. A listing
/// the storage cannot read to its end fails: before the `150` when that shows in
/// the sorted batch, with `451` after it (never a short listing called complete).
pub(super) struct Lines {
    entries: Entries,
    kind: Listing,
    prefix: String,
    /// What goes before each line (a space inside a STAT reply).
    indent: &'static str,
    facts: Facts,
    perms: Perms,
    now: SystemTime,
    peer: SocketAddr,
}

impl Lines {
    /// The lines of `target`, its first [`SORTED_MAX`] entries (and one) read now.
    ///
    /// # Errors
    /// The storage's, when those entries cannot be read.
    fn new(
        session: &Session<'_>,
        target: Target,
        kind: Listing,
        indent: &'static str,
    ) -> Result<Lines, StorageError> {
        let Target {
            mut entries,
            prefix,
        } = target;
        let first = entries
            .by_ref()
            .take(SORTED_MAX + 1)
            .collect::<Result<Vec<_>, _>>();
        let mut first = first?;
        if first.len() <= SORTED_MAX {
            first.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(Lines {
            entries: Box::new(first.into_iter().map(Ok).chain(entries)),
            kind,
            prefix,
            indent,
            facts: session.facts,
            perms: session.perms,
            now: SystemTime::now(),
            peer: session.peer,
        })
    }

    /// The command that lists, for the log.
    pub(super) fn verb(&self) -> &'static str {
        match self.kind {
            Listing::Long => "LIST",
            Listing::Names => "NLST",
            Listing::Facts => "MLSD",
        }
    }

    /// Adds lines to `chunk` until it holds about [`LISTING_CHUNK`] bytes; returns
    /// whether entries are left.
    ///
    /// # Errors
    /// When the storage cannot go on with the listing: a local error (`451`) whatever
    /// its kind, since part of the listing may have gone and the reply must say that
    /// it is not all (a `550 No such file` after the `150` would say the wrong thing).
    pub(super) fn fill(&mut self, chunk: &mut String) -> Result<bool, Failure> {
        while chunk.len() < LISTING_CHUNK {
            let (name, stat) = match self.entries.next() {
                None => return Ok(false),
                Some(Ok(entry)) => entry,
                Some(Err(e)) => {
                    return Err(Failure::Fs(io::Error::other(format!(
                        "the listing was cut short: {e}"
                    ))))
                }
            };
            if !listable(&self.prefix) || !listable(&name) {
                log::debug!(
                    "{}: not listed, a control character in {:?}",
                    self.peer,
                    format!("{}{name}", self.prefix)
                );
                continue;
            }
            chunk.push_str(self.indent);
            let (kind, facts, perms, now) = (self.kind, self.facts, self.perms, self.now);
            entry_line(chunk, kind, &self.prefix, &name, &stat, facts, perms, now);
        }
        Ok(true)
    }
}

impl Session<'_> {
    /// LIST, NLST and MLSD: the listing goes out on the data connection as a transfer
    /// does (see [`super::transfer`]).
    pub(super) fn list(&mut self, arg: Option<&str>, kind: Listing) -> Result<Step, Failure> {
        let plan = self.data.take_plan();
        // A restart offset is for the next RETR or STOR only (RFC 3659 §5.3).
        self.rest = 0;
        // Everything that can be refused is found before the 150.
        let target = self.listing_target(arg, kind)?;
        let lines = Lines::new(self, target, kind, "")?;
        let mark = mark("directory listing");
        let opening = self
            .data
            .open(plan, &mut self.control, &mark, &self.token)?;
        let path = self.cwd.clone();
        self.begin(opening, Job::list(lines), path, None)
    }

    /// What `arg` asks a listing command to list (see [`Target`]). A path that exists
    /// is taken literally, even when it has wildcard characters; otherwise wildcards
    /// in its last component select entries of the directory before it, except for
    /// MLSD, which takes no patterns (RFC 3659 §7.1). A pattern that matches nothing
    /// is `450` (RFC 959 lists it for LIST and NLST; ProFTPD answers so).
    fn listing_target(&self, arg: Option<&str>, kind: Listing) -> Result<Target, Failure> {
        let given = arg.unwrap_or("");
        let literal = self
            .path(if given.is_empty() { "." } else { given })
            .and_then(|path| match self.storage.stat(&path) {
                Ok(stat) => Ok((path, stat)),
                Err(e) => Err(Failure::from(e)),
            });
        let (dir_text, last) = match given.rsplit_once('/') {
            Some(("", last)) => ("/", last),
            Some((dir, last)) => (dir, last),
            None => (".", given),
        };
        let (path, stat) = match literal {
            Ok(found) => found,
            Err(e) if kind == Listing::Facts || !has_wildcards(last) => return Err(e),
            Err(e) => {
                let Ok(dir) = self.path(dir_text) else {
                    return Err(e);
                };
                let pattern = Pattern::new(last);
                let mut entries = self.read_entries(&dir, Some(pattern))?.peekable();
                match entries.next_if(Result::is_err) {
                    Some(Err(e)) => return Err(e.into()),
                    _ if entries.peek().is_none() => return Err(Refusal::NoMatch.into()),
                    _ => {}
                }
                // NLST names what matched by the path as given (`sub/a.txt` for
                // `sub/*.txt`), so that a client fetching those names fetches these files.
                let prefix = match given.rsplit_once('/') {
                    Some((dir, _)) if kind == Listing::Names => format!("{dir}/"),
                    _ => String::new(),
                };
                return Ok(Target {
                    entries: Box::new(entries),
                    prefix,
                });
            }
        };
        if stat.is_dir() {
            // NLST of a directory names its entries `dir/name`, as vsftpd and ProFTPD
            // do (tnftp's `mget sub/a.txt` fetched the root's `a.txt` from a bare name); with
            // no path, or `.`, the names are bare.
            let base = given.trim_end_matches('/');
            let prefix = match base {
                _ if kind != Listing::Names || given.is_empty() || base == "." => String::new(),
                "" => "/".to_owned(),
                base => format!("{base}/"),
            };
            let entries = self.read_entries(&path, None)?;
            return Ok(Target {
                entries: Box::new(entries),
                prefix,
            });
        }
        if kind == Listing::Facts {
            return Err(Refusal::MlsdNeedsDirectory.into());
        }
        let name = match kind {
            Listing::Names => given.to_owned(),
            _ => path.components().last().unwrap_or("/").to_owned(),
        };
        Ok(Target {
            entries: Box::new(std::iter::once(Ok((name, stat)))),
            prefix: String::new(),
        })
    }

    pub(super) fn mlst(&self, arg: Option<&str>) -> Result<Reply, Failure> {
        let path = self.path(arg.unwrap_or("."))?;
        let stat = self.storage.stat(&path)?;
        let shown = path.as_str();
        if !listable(shown) {
            log::debug!(
                "{}: MLST of {shown:?} refused: a control character",
                self.peer
            );
            return Err(Refusal::NameHidden.into());
        }
        let facts = self.facts.line(shown, &stat, self.perms);
        Ok(Reply::multi(
            ReplyCode::FileActionOk,
            &format!("Listing {shown}"),
            &[facts],
            "End",
        ))
    }

    /// STAT of a path: its listing, in the lines of a `213` reply.
    pub(super) fn stat(&mut self, arg: &str) -> Result<Reply, Failure> {
        let target = self.listing_target(Some(arg), Listing::Long)?;
        let shown: String = self
            .cwd
            .join(arg)?
            .as_str()
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        // The first batch is read before the first line, so a storage that fails
        // at once is an error reply of its own.
        let mut lines = Lines::new(self, target, Listing::Long, " ")?;
        // The lines go out as they are made, between the first line of the reply and
        // its last (returned as usual), so a large directory is not held whole.
        let code = ReplyCode::FileStatus.number();
        self.control
            .write(&format!("{code}-Status of {shown}:\r\n"))
            .map_err(Failure::Control)?;
        let mut chunk = String::with_capacity(LISTING_CHUNK + 1024);
        loop {
            let more = lines.fill(&mut chunk);
            if !chunk.is_empty() {
                self.control.write(&chunk).map_err(Failure::Control)?;
            }
            chunk.clear();
            match more {
                Ok(true) => {}
                Ok(false) => break,
                // The reply began as `213-`: only a `213 ` line ends it (RFC 959
                // §4.2), so it ends so, saying that the lines above are not all.
                Err(failure) => {
                    failure.log(self.peer, "STAT");
                    return Ok(Reply::new(
                        ReplyCode::FileStatus,
                        "End of status, incomplete: the storage failed",
                    ));
                }
            }
        }
        Ok(Reply::new(ReplyCode::FileStatus, "End of status"))
    }
}

impl Session<'_> {
    /// The entries of `dir` from the storage, in its own order, as they are read:
    /// without our temporary files, without names `wanted` does not match, and
    /// without symlinks that lead outside the root (or nowhere); a symlink shows what
    /// it points to. Entries that cannot be read are left out. This is the one place
    /// a listing reads a directory.
    ///
    /// # Errors
    /// When the directory cannot be opened.
    fn read_entries(
        &self,
        dir: &VirtualPath,
        wanted: Option<Pattern>,
    ) -> Result<Entries, StorageError> {
        let wanted = wanted.map(|p| Box::new(move |name: &str| p.matches(name)) as NameFilter);
        self.storage.list(dir, wanted)
    }
}
