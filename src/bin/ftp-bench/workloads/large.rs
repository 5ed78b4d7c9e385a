//! Large transfers: one big file downloaded and uploaded, once with our client and
//! once with curl, so the rate says what the server does and not what our client does.
//! Downloads land in a file under `--local` (or, for curl, optionally in /dev/null),
//! uploads are checked on the server's side; the rate is MiB/s.

use std::fs;
use std::path::Path;
use std::process::{Command as Process, Stdio};

use anyhow::{ensure, Context};

use super::check::{check_file, check_upload, finish, remove_upload};
use crate::meter::Meter;
use crate::record::Record;
use crate::target::{Expected, Target};

/// `retr-large`: our client downloads the file into `--local`, then checks it.
pub(crate) fn retr_large(t: &Target, e: &Expected) -> Record {
    let mut r = t.record("retr-large", "ftp-bench");
    r.unit = "MiB/s".into();
    let local = t
        .local
        .join(format!("ftp-bench-dl-{}.bin", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut c = t.session()?;
        let meter = Meter::start(&t.pids);
        let moved = c.get(&t.remote(&e.file), &local, |_| {})?;
        meter.stop_rate(&mut r, moved.bytes);
        let _ = c.quit();
        check_file(&local, e.size, e.sha256.as_deref())?;
        Ok(())
    })();
    let _ = fs::remove_file(&local);
    finish(r, result)
}

/// `stor-large`: our client uploads the local file under a new name, then checks the
/// server's copy.
pub(crate) fn stor_large(t: &Target, local: &Path, sha: Option<&str>) -> anyhow::Result<Record> {
    let mut r = t.record("stor-large", "ftp-bench");
    r.unit = "MiB/s".into();
    let size = fs::metadata(local)
        .with_context(|| format!("{}", local.display()))?
        .len();
    let name = t.upload_name("big-up");
    let result = (|| -> anyhow::Result<()> {
        let mut c = t.session()?;
        let meter = Meter::start(&t.pids);
        let moved = c.put(local, &t.remote(&name), |_| {})?;
        meter.stop_rate(&mut r, moved.bytes);
        check_upload(t, &mut c, &name, size, sha)?;
        let _ = c.quit();
        Ok(())
    })();
    remove_upload(t, &name);
    Ok(finish(r, result))
}

/// `curl-retr`: curl downloads the file into /dev/null (its size checked) or, with
/// `to_file`, into `--local` (checked as ours is).
pub(crate) fn curl_retr(t: &Target, e: &Expected, curl: &Path, to_file: bool) -> Record {
    let mut r = t.record("retr-large", if to_file { "curl>file" } else { "curl" });
    r.unit = "MiB/s".into();
    let local = t
        .local
        .join(format!("ftp-bench-curl-{}.bin", std::process::id()));
    let out_path = if to_file {
        local.to_string_lossy().into_owned()
    } else {
        "/dev/null".to_owned()
    };
    let result = (|| -> anyhow::Result<()> {
        let meter = Meter::start(&t.pids);
        let out = run_curl(
            curl,
            t,
            &["-o", &out_path, "-w", "%{size_download}", &t.url(&e.file)],
        )?;
        let got: u64 = out.trim().parse().context("curl's size_download")?;
        meter.stop_rate(&mut r, got);
        ensure!(got == e.size, "curl got {got} bytes, expected {}", e.size);
        if to_file {
            check_file(&local, e.size, e.sha256.as_deref())?;
        } else {
            r.note = "size checked".into();
        }
        Ok(())
    })();
    if to_file {
        let _ = fs::remove_file(&local);
    }
    finish(r, result)
}

/// `curl-stor`: curl uploads the local file under a new name; our client then checks
/// the server's copy.
pub(crate) fn curl_stor(
    t: &Target,
    local: &Path,
    sha: Option<&str>,
    curl: &Path,
) -> anyhow::Result<Record> {
    let mut r = t.record("stor-large", "curl");
    r.unit = "MiB/s".into();
    let size = fs::metadata(local)
        .with_context(|| format!("{}", local.display()))?
        .len();
    let name = t.upload_name("big-curl");
    let local_text = local.to_string_lossy().into_owned();
    let result = (|| -> anyhow::Result<()> {
        let meter = Meter::start(&t.pids);
        let out = run_curl(
            curl,
            t,
            &["-T", &local_text, "-w", "%{size_upload}", &t.url(&name)],
        )?;
        let sent: u64 = out.trim().parse().context("curl's size_upload")?;
        meter.stop_rate(&mut r, sent);
        let mut c = t.session()?;
        check_upload(t, &mut c, &name, size, sha)?;
        let _ = c.quit();
        Ok(())
    })();
    remove_upload(t, &name);
    Ok(finish(r, result))
}

/// Runs curl in passive mode with the target's credentials, bounded by its deadline;
/// returns what it printed (its `-w` figures).
fn run_curl(curl: &Path, t: &Target, args: &[&str]) -> anyhow::Result<String> {
    let out = Process::new(curl)
        .args(["-s", "-S", "--ftp-pasv", "--max-time"])
        .arg((t.deadline.max(1)).to_string())
        .arg("-u")
        .arg(format!("{}:{}", t.user, t.pass))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", curl.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "curl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(text)
}
