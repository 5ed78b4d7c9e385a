//! `s3-direct`: the object store itself, without FTP, as the baseline of the S3
//! backend's figures. The same four workloads as against an FTP server (one large
//! object written and read, many small ones by concurrent clients), made straight to
//! the store with the S3 client the backend uses (`simple_ftp::storage::s3::client`),
//! so the difference to `--storage s3://` is what our server adds. Objects go under
//! `--dir` in the bucket, every read is checked (size and SHA-256), and what it wrote
//! is deleted afterwards. The records name the same workloads as the FTP ones (so
//! they share the table's rows); their note says they are direct S3 requests.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use simple_ftp::digest::sha256_hex;
use simple_ftp::storage::s3::client::{S3Client, S3Settings};

use super::check::{check_bytes, check_file, finish};
use super::many::Tally;
use crate::meter::Meter;
use crate::record::Record;
use crate::target::{Many, Target};

/// Where the store is, beyond `--host`/`--port` (its S3 API, plain HTTP on loopback),
/// and what to move. Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
#[derive(Debug, Clone, Args)]
pub(crate) struct Direct {
    /// The bucket.
    #[arg(long)]
    pub(crate) bucket: String,
    /// The region the signatures name.
    #[arg(long, default_value = "garage")]
    pub(crate) region: String,
    /// The large file to PUT and GET back.
    #[arg(long)]
    pub(crate) large_file: PathBuf,
    /// The small file that concurrent clients PUT and GET many times.
    #[arg(long)]
    pub(crate) small_file: PathBuf,
}

/// The object key of `name` under the target's `--dir` (no leading or doubled slash).
fn object_key(dir: &str, name: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// The client's settings: the endpoint from `--host`/`--port`, the keys from the
/// environment (never from a command line, which other users can read).
fn settings(t: &Target, d: &Direct) -> anyhow::Result<S3Settings> {
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    Ok(S3Settings {
        endpoint: format!("http://{}:{}", t.host, t.port),
        region: d.region.clone(),
        bucket: d.bucket.clone(),
        access_key_id: var("AWS_ACCESS_KEY_ID")?,
        secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
        session_token: None,
        timeout: t.op_timeout(),
    })
}

/// All four records: stor-large, retr-large, stor-small, retr-small.
pub(crate) fn s3_direct(t: &Target, d: &Direct, many: Many) -> anyhow::Result<Vec<Record>> {
    let client = S3Client::new(&settings(t, d)?)?;
    let big = fs::read(&d.large_file).with_context(|| format!("{}", d.large_file.display()))?;
    let small = fs::read(&d.small_file).with_context(|| format!("{}", d.small_file.display()))?;
    let big_key = object_key(&t.dir, &t.upload_name("direct-big"));
    let mut out = Vec::new();

    // One PUT of the whole large object (the body already in memory, as a client
    // holding its data would send it), then one GET of it into a file under --local.
    let mut r = t.record("stor-large", "ftp-bench");
    r.unit = "MiB/s".into();
    let meter = Meter::start(&t.pids);
    let put = client.put(&big_key, &big);
    meter.stop_rate(&mut r, big.len() as u64);
    out.push(direct(finish(r, put.map_err(Into::into)), "one PUT"));

    let mut r = t.record("retr-large", "ftp-bench");
    r.unit = "MiB/s".into();
    let local = t
        .local
        .join(format!("ftp-bench-s3-{}.bin", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let meter = Meter::start(&t.pids);
        let mut reader = client.get(&big_key, 0, None)?;
        let mut file = BufWriter::with_capacity(1 << 20, File::create(&local)?);
        let moved = io::copy(&mut reader, &mut file)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        meter.stop_rate(&mut r, moved);
        check_file(&local, big.len() as u64, Some(&sha256_hex(&big)))
    })();
    let _ = fs::remove_file(&local);
    out.push(direct(finish(r, result), "one GET into a tmpfs file"));
    let _ = client.delete(&big_key);

    // Small objects: the PUTs write new keys, the GETs read one key back, checked.
    let base = t.upload_name("direct-small");
    let key = |session: usize, i: usize| object_key(&t.dir, &format!("{base}-{session}-{i}"));
    let small_sha = sha256_hex(&small);
    let mut r = t.record("stor-small", "ftp-bench");
    r.unit = "transfers/s".into();
    let tally = Tally::default();
    let late = concurrent(t, many, &tally, &mut r, |s, i| {
        client.put(&key(s, i), &small).map_err(Into::into)
    });
    tally.conclude(&mut r, many.sessions * many.count, late);
    out.push(direct(r, "PUTs"));

    let read_key = key(0, 0);
    let mut r = t.record("retr-small", "ftp-bench");
    r.unit = "transfers/s".into();
    let tally = Tally::default();
    let late = concurrent(t, many, &tally, &mut r, |_, _| {
        let mut bytes = Vec::with_capacity(small.len());
        io::copy(&mut client.get(&read_key, 0, None)?, &mut bytes)?;
        check_bytes(&bytes, small.len() as u64, Some(&small_sha))
    });
    tally.conclude(&mut r, many.sessions * many.count, late);
    out.push(direct(r, "GETs, each checked (size and SHA-256)"));

    for s in 0..many.sessions {
        for i in 0..many.count {
            let _ = client.delete(&key(s, i));
        }
    }
    Ok(out)
}

/// Marks a record as the direct store's, whatever its verdict.
fn direct(mut r: Record, what: &str) -> Record {
    r.note = if r.note.is_empty() {
        format!("direct S3 {what}, no FTP")
    } else {
        format!("direct S3 {what}, no FTP; {}", r.note)
    };
    r
}

/// `sessions` threads calling `op(session, i)` for i in 0..count, all started at once
/// and stopped at the deadline; the clock and the meter cover all of them. Returns
/// whether the deadline cut any thread short. (The client is shared: it pools its
/// connections, so concurrent requests each get one, as the backend's do.)
fn concurrent<Op>(t: &Target, many: Many, tally: &Tally, r: &mut Record, op: Op) -> bool
where
    Op: Fn(usize, usize) -> anyhow::Result<()> + Sync,
{
    let deadline = t.deadline();
    let late = AtomicBool::new(false);
    let meter = Meter::start(&t.pids);
    thread::scope(|s| {
        for session in 0..many.sessions {
            let (op, late) = (&op, &late);
            s.spawn(move || {
                for i in 0..many.count {
                    if Instant::now() > deadline {
                        late.store(true, Ordering::Relaxed);
                        break;
                    }
                    match op(session, i) {
                        Ok(()) => {
                            tally.done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tally.error(format!("{e:#}")),
                    }
                }
            });
        }
    });
    meter.stop(r);
    late.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::object_key;

    #[test]
    fn object_keys_sit_under_the_directory_with_single_slashes() {
        assert_eq!(object_key("", "a.bin"), "a.bin");
        assert_eq!(object_key("/", "a.bin"), "a.bin");
        assert_eq!(object_key("bench", "a.bin"), "bench/a.bin");
        assert_eq!(object_key("/bench/", "a.bin"), "bench/a.bin");
        assert_eq!(object_key("a/b", "c"), "a/b/c");
    }
}
