//! SHA-2 digests as lower-case hex: what the server's HASH answers, what the client
//! checks a transfer against, and what the benchmark checks what it moved with.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::Digest;

/// How much of a file one read takes while it is hashed: std's own copy buffer is
/// 8 KiB, which is 131,072 reads for 1 GiB.
const READ_SIZE: usize = 1 << 20;

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The digest `D` of everything `from` yields, and how many bytes that was.
///
/// # Errors
/// When reading fails.
pub fn digest_of<D: Digest>(from: impl Read) -> io::Result<(u64, String)> {
    digest_between::<D, io::Error>(from, u64::MAX, |e| e, || Ok(()))
}

/// As [`digest_of`], calling `between` after every `step` bytes read (the server's
/// HASH looks for ABOR there); an error from it, or from reading (made an `E` by
/// `read_error`), stops the digest.
///
/// # Errors
/// What `between` returns, or a read error.
pub fn digest_between<D: Digest, E>(
    mut from: impl Read,
    step: u64,
    read_error: impl Fn(io::Error) -> E,
    mut between: impl FnMut() -> Result<(), E>,
) -> Result<(u64, String), E> {
    let mut hasher = D::new();
    let mut buf = vec![0u8; READ_SIZE];
    let (mut len, mut unlooked) = (0u64, 0u64);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
        unlooked += n as u64;
        if unlooked >= step {
            unlooked = 0;
            between()?;
        }
    }
    Ok((len, hex(&hasher.finalize())))
}

/// The SHA-256 of the file at `path`, hex.
///
/// # Errors
/// When the file cannot be opened or read.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    digest_of::<sha2::Sha256>(File::open(path)?).map(|(_, digest)| digest)
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_published_test_vectors() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (len, digest) = digest_of::<sha2::Sha512>(&b"abc"[..]).expect("digest");
        assert_eq!(len, 3);
        assert!(digest.starts_with("ddaf35a193617aba"), "{digest}");
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }

    #[test]
    fn a_file_digest_reads_the_whole_file_past_one_read() {
        let bytes: Vec<u8> = (0..READ_SIZE * 2 + 7).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().expect("temp");
        io::Write::write_all(&mut file, &bytes).expect("write");
        assert_eq!(
            sha256_file(file.path()).expect("digest"),
            sha256_hex(&bytes)
        );
    }
}
