//! Checks of what a workload moved: a file's or a buffer's size and SHA-256, an
//! upload as the server holds it; and [`finish`], which turns a check's result into
//! the record's verdict.

use std::fs;
use std::path::Path;

use anyhow::{ensure, Context};
use simple_ftp::digest::{self, sha256_hex};
use simple_ftp::Client;

use crate::record::Record;
use crate::target::Target;

pub(crate) fn finish(mut r: Record, result: anyhow::Result<()>) -> Record {
    match result {
        Ok(()) => {
            r.ok = true;
            if r.note.is_empty() {
                r.note = "size and SHA-256 checked".into();
            }
        }
        Err(e) => {
            r.ok = false;
            r.note = format!("{e:#}");
        }
    }
    r
}

/// Checks a local file's size and, when given, its SHA-256.
pub(crate) fn check_file(path: &Path, size: u64, sha: Option<&str>) -> anyhow::Result<()> {
    let got = fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len();
    ensure!(
        got == size,
        "{}: {got} bytes, expected {size}",
        path.display()
    );
    if let Some(want) = sha {
        let have = sha256_file(path)?;
        ensure!(
            have.eq_ignore_ascii_case(want),
            "{}: SHA-256 {have}, expected {want}",
            path.display()
        );
    }
    Ok(())
}

/// Checks a download held in memory: its length, and its SHA-256 when known.
pub(crate) fn check_bytes(bytes: &[u8], size: u64, sha: Option<&str>) -> anyhow::Result<()> {
    ensure!(
        bytes.len() as u64 == size,
        "{} bytes, expected {size}",
        bytes.len()
    );
    if let Some(want) = sha {
        let have = sha256_hex(bytes);
        ensure!(
            have.eq_ignore_ascii_case(want),
            "SHA-256 {have}, expected {want}"
        );
    }
    Ok(())
}

/// Checks an upload: SIZE through the server, and SHA-256 of the server's copy when
/// its directory is reachable here.
pub(crate) fn check_upload(
    t: &Target,
    c: &mut Client,
    name: &str,
    size: u64,
    sha: Option<&str>,
) -> anyhow::Result<()> {
    let got = c.size(&t.remote(name))?;
    ensure!(got == size, "the server holds {got} bytes, expected {size}");
    if let (Some(dir), Some(_)) = (&t.served_dir, sha) {
        check_file(&dir.join(name), size, sha)?;
    }
    Ok(())
}

pub(crate) fn remove_upload(t: &Target, name: &str) {
    if let Some(dir) = &t.served_dir {
        let _ = fs::remove_file(dir.join(name));
    }
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    digest::sha256_file(path).with_context(|| format!("{}", path.display()))
}
