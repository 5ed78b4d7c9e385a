//! Small transfers: concurrent sessions, each downloading one small file many times
//! (into memory) or uploading one many times under new names; the rate is transfers
//! per second, and the server's CPU per transfer is the figure the table compares.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{ensure, Context};
use simple_ftp::digest::sha256_hex;

use super::check::check_bytes;
use super::many::{concurrent, Tally};
use crate::record::Record;
use crate::target::{Expected, Many, Target};

/// `retr-small`: every session downloads the file `count` times, each checked.
pub(crate) fn retr_small(t: &Target, e: &Expected, many: Many) -> Record {
    let mut r = t.record("retr-small", "ftp-bench");
    r.unit = "transfers/s".into();
    let tally = Tally::default();
    let remote = t.remote(&e.file);
    // Downloads go into memory: the load generator shares the machine's cores with
    // the server, and a file created, renamed and read back per download would make
    // it the heavier of the two.
    let late = concurrent(
        t,
        many,
        &tally,
        &mut r,
        |_| Ok(Some(t.session()?)),
        |_, _, client| {
            let c = client.as_mut().context("no session")?;
            let mut bytes = Vec::with_capacity(usize::try_from(e.size).unwrap_or(0));
            c.get_into(&remote, &mut bytes, |_| {})?;
            check_bytes(&bytes, e.size, e.sha256.as_deref())
        },
    );
    tally.conclude(&mut r, many.sessions * many.count, late);
    if r.ok {
        r.note
            .push_str(", each download's size and SHA-256 checked");
    }
    r
}

/// `stor-small`: every session uploads the local file `count` times under new names;
/// afterwards each upload is checked (and, with `--served-dir`, removed).
pub(crate) fn stor_small(t: &Target, local: &Path, many: Many) -> anyhow::Result<Record> {
    let mut r = t.record("stor-small", "ftp-bench");
    r.unit = "transfers/s".into();
    let bytes = fs::read(local).with_context(|| format!("{}", local.display()))?;
    let sha = sha256_hex(&bytes);
    let tally = Tally::default();
    let base = t.upload_name("small-up");
    let name = |session: usize, i: usize| format!("{base}-{session}-{i}");
    let late = concurrent(
        t,
        many,
        &tally,
        &mut r,
        |_| Ok(Some(t.session()?)),
        |session, i, client| {
            let c = client.as_mut().context("no session")?;
            c.put(local, &t.remote(&name(session, i)), |_| {})?;
            Ok(())
        },
    );
    tally.conclude(&mut r, many.sessions * many.count, late);
    // Check every upload that succeeded, through the server's directory when we have
    // it (size and SHA-256), else by SIZE on a fresh session.
    let check = (|| -> anyhow::Result<&'static str> {
        let mut checker = match t.served_dir {
            Some(_) => None,
            None => Some(t.session()?),
        };
        let mut checked = 0u64;
        for session in 0..many.sessions {
            for i in 0..many.count {
                let n = name(session, i);
                match (&t.served_dir, checker.as_mut()) {
                    (Some(dir), _) => {
                        let path = dir.join(&n);
                        match fs::read(&path) {
                            Ok(got) => {
                                ensure!(sha256_hex(&got) == sha, "{n}: content differs");
                                checked += 1;
                            }
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e).context(n),
                        }
                    }
                    (None, Some(c)) => {
                        if let Ok(size) = c.size(&t.remote(&n)) {
                            ensure!(size == bytes.len() as u64, "{n}: {size} bytes");
                            checked += 1;
                        }
                    }
                    (None, None) => {}
                }
            }
        }
        let done = tally.done.load(Ordering::Relaxed);
        ensure!(
            checked >= done,
            "{done} uploads reported done, {checked} found"
        );
        if let Some(c) = checker {
            let _ = c.quit();
        }
        Ok(if t.served_dir.is_some() {
            "each upload's size and SHA-256 checked"
        } else {
            "each upload's SIZE checked"
        })
    })();
    if let Some(dir) = &t.served_dir {
        for session in 0..many.sessions {
            for i in 0..many.count {
                let _ = fs::remove_file(dir.join(name(session, i)));
            }
        }
    }
    match check {
        Ok(how) if r.ok => {
            let _ = write!(r.note, ", {how}");
        }
        Ok(_) => {}
        Err(e) => {
            r.ok = false;
            let _ = write!(r.note, ", check failed: {e:#}");
        }
    }
    Ok(r)
}
