//! The commands that drive no server: `mkfile` writes the input files (pseudo-random
//! bytes from a fixed seed, so every run moves the same content), and `limits` measures
//! what the machine allows without FTP in the way. Its raw loopback copy moves the bytes
//! with the library's own [`Pump`], the sendfile(2) and splice(2) calls our server's
//! transfers make, so the table's "ours / raw copy" column is the share of that path's
//! rate that our large transfers reach.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use sha2::{Digest, Sha256};
use simple_ftp::digest::hex;
use simple_ftp::transfer::Pump;

use crate::meter::self_cpu;
use crate::record::{Record, MIB};

/// Writes `size` pseudo-random bytes (xorshift, fixed seed) to `path`; returns their SHA-256.
pub(crate) fn mkfile(path: &Path, size: u64) -> anyhow::Result<String> {
    let mut out =
        io::BufWriter::new(File::create(path).with_context(|| format!("{}", path.display()))?);
    let mut hasher = Sha256::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = state.to_le_bytes();
            word.copy_from_slice(&b[..word.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..n]);
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hex(&hasher.finalize()))
}

/// The machine's limits: reading a tmpfs file into a buffer, and a raw loopback copy
/// of it (sendfile into a socket; the receiver reads into a buffer, or splices into
/// a tmpfs file as an upload must).
pub(crate) fn limits(file: &Path, scratch: &Path, round: u32) -> anyhow::Result<Vec<Record>> {
    let len = fs::metadata(file)
        .with_context(|| format!("{}", file.display()))?
        .len();
    let base = |workload: &str, client: &str| Record {
        unit: "MiB/s".into(),
        work: len as f64,
        ..Record::blank("machine", round, workload, client)
    };

    let mut read = base("page-cache-read", "read 1 MiB");
    let cpu = self_cpu();
    let start = Instant::now();
    let mut f = File::open(file)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    read.secs = start.elapsed().as_secs_f64();
    read.client_cpu = self_cpu() - cpu;
    read.value = got as f64 / MIB / read.secs;
    read.ok = got == len;
    read.note = "read(2) of a tmpfs file into a 1 MiB buffer".into();

    // A raw copy into a buffer or, with `landing`, into that file (removed afterwards).
    let copy = |workload: &str, client: &str, landing: Option<&Path>, note: &str| {
        let mut r = base(workload, client);
        let result = raw_copy(file, landing);
        if let Some(landing) = landing {
            let _ = fs::remove_file(landing);
        }
        let (secs, cpu, moved) = result?;
        r.secs = secs;
        r.client_cpu = cpu;
        r.value = moved as f64 / MIB / secs;
        r.ok = moved == len;
        r.note = note.into();
        anyhow::Ok(r)
    };
    let to_buf = copy(
        "raw-copy",
        "sendfile->read",
        None,
        "sendfile(2) into a loopback socket; the receiver reads into a 1 MiB buffer",
    )?;
    let landing = scratch.join(format!("ftp-bench-raw-{}.bin", std::process::id()));
    let to_file = copy(
        "raw-copy-to-file",
        "sendfile->splice",
        Some(&landing),
        "sendfile(2) into a loopback socket; the receiver splices into a tmpfs file",
    )?;
    Ok(vec![read, to_buf, to_file])
}

/// Sends `file` over a loopback connection with sendfile; the receiver reads into a
/// buffer or, with `landing`, splices into that file. Returns seconds, CPU seconds of
/// both ends and bytes received.
fn raw_copy(file: &Path, landing: Option<&Path>) -> anyhow::Result<(f64, f64, u64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let source = File::open(file)?;
    let sender = thread::spawn(move || -> io::Result<u64> {
        let (sock, _) = listener.accept()?;
        let mut pump = Pump::new();
        let mut offset = 0u64;
        loop {
            match pump.file_to_socket(&source, &mut offset, &sock, 16 << 20) {
                Ok(0) => return Ok(offset),
                Ok(_) => {}
                Err(e) => return Err(io::Error::other(format!("{e:?}"))),
            }
        }
    });
    let cpu = self_cpu();
    let start = Instant::now();
    let mut sock = TcpStream::connect(addr)?;
    let mut got = 0u64;
    match landing {
        None => {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = sock.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
        }
        Some(path) => {
            let out = File::create(path)?;
            let mut pump = Pump::new();
            loop {
                match pump.socket_to_file(&sock, &out, 1 << 20) {
                    Ok(0) => break,
                    Ok(n) => got += n as u64,
                    Err(e) => bail!("raw copy into a file: {e:?}"),
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    ensure!(sent == got, "sent {sent} bytes, received {got}");
    Ok((secs, self_cpu() - cpu, got))
}
