//! Moving file bytes to and from sockets without copying them through user space.
//!
//! Linux moves bytes from a file to a socket with sendfile(2), and from a socket to a
//! file through a pipe with splice(2). `std::io::copy` uses neither between a file and
//! a socket (it falls back to an 8 KiB buffer), so [`Pump`] calls them through rustix's
//! safe wrappers. Where the kernel refuses (a file system without splice support, say),
//! the same calls fall back to a read/write loop over one reusable buffer.
//!
//! Each call moves at most `max` bytes, so callers can look at the control connection
//! (for ABOR) or report progress between calls. Errors say which side failed: the
//! network (the peer went away, a timeout) or the local file (a full disk).

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;

use std::ops::{Deref, DerefMut};

use rustix::io::Errno;
use rustix::pipe::SpliceFlags;
use rustls::{ConnectionCommon, SideData};

use crate::tls::Stream;

/// Which side of a copy failed.
#[derive(Debug)]
pub enum CopyError {
    /// The socket: the peer closed or reset the connection, or it stalled too long.
    Net(io::Error),
    /// The local file: a read or write error, such as a full disk.
    File(io::Error),
}

/// The size of the pipe between socket and file, and of the fallback buffer.
const PIPE_SIZE: usize = 1 << 20;

/// Reusable state for zero-copy transfers: a pipe for splice and a fallback buffer,
/// both created on first use. One per session or client; not shared between threads.
#[derive(Debug, Default)]
pub struct Pump {
    pipe: Option<(OwnedFd, OwnedFd)>,
    buf: Vec<u8>,
    no_sendfile: bool,
    no_splice: bool,
}

fn errno_error(e: Errno) -> io::Error {
    if e == Errno::AGAIN {
        io::Error::new(io::ErrorKind::TimedOut, "the transfer stalled")
    } else {
        io::Error::from(e)
    }
}

/// A socket timeout: std reports it as `WouldBlock` (EAGAIN) or `TimedOut`.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Errors that mean "this kind of file or socket does not support the call".
fn unsupported(e: Errno) -> bool {
    e == Errno::INVAL || e == Errno::NOSYS || e == Errno::OPNOTSUPP
}

impl Pump {
    /// A pump with nothing allocated yet.
    pub fn new() -> Pump {
        Pump::default()
    }

    fn buffer(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = vec![0; PIPE_SIZE];
        }
        &mut self.buf
    }

    /// Sends up to `max` bytes of `file`, starting at `*offset`, to `sock`, and
    /// advances `*offset`. Returns how many bytes were sent: 0 means end of file, and
    /// fewer than `max` may mean the socket's write timeout passed after some went out.
    ///
    /// # Errors
    /// [`CopyError::Net`] when the socket fails or stalls past its write timeout with
    /// nothing sent (a `WouldBlock` or `TimedOut` error: the caller may try again),
    /// [`CopyError::File`] when the file cannot be read.
    pub fn file_to_socket(
        &mut self,
        file: &File,
        offset: &mut u64,
        sock: &TcpStream,
        max: usize,
    ) -> Result<usize, CopyError> {
        if !self.no_sendfile {
            loop {
                match rustix::fs::sendfile(sock, file, Some(offset), max) {
                    Ok(n) => return Ok(n),
                    Err(Errno::INTR) => continue,
                    Err(e) if unsupported(e) => {
                        self.no_sendfile = true;
                        break;
                    }
                    Err(e) if e == Errno::IO => return Err(CopyError::File(e.into())),
                    Err(e) => return Err(CopyError::Net(errno_error(e))),
                }
            }
        }
        self.file_to_writer(file, offset, &mut &*sock, max)
    }

    /// Sends up to `max` bytes of `file` from `*offset` over a data connection:
    /// zero-copy when it is plain, through the buffer when it is in TLS.
    ///
    /// # Errors
    /// As [`Pump::file_to_socket`].
    pub fn file_to_stream<C, S>(
        &mut self,
        file: &File,
        offset: &mut u64,
        stream: &mut Stream<C>,
        max: usize,
    ) -> Result<usize, CopyError>
    where
        C: DerefMut + Deref<Target = ConnectionCommon<S>>,
        S: SideData,
    {
        match stream.as_plain() {
            Some(tcp) => self.file_to_socket(file, offset, tcp, max),
            None => self.file_to_writer(file, offset, stream, max),
        }
    }

    /// Receives up to `max` bytes from a data connection into `file`: zero-copy when
    /// it is plain, through the buffer when it is in TLS.
    ///
    /// # Errors
    /// As [`Pump::socket_to_file`].
    pub fn stream_to_file<C, S>(
        &mut self,
        stream: &mut Stream<C>,
        file: &File,
        max: usize,
    ) -> Result<usize, CopyError>
    where
        C: DerefMut + Deref<Target = ConnectionCommon<S>>,
        S: SideData,
    {
        match stream.as_plain() {
            Some(tcp) => self.socket_to_file(tcp, file, max),
            None => self.reader_to_file(stream, file, max),
        }
    }

    /// As [`Pump::file_to_socket`], through the buffer, to any writer (a TLS stream).
    ///
    /// # Errors
    /// As [`Pump::file_to_socket`].
    pub fn file_to_writer<W: Write>(
        &mut self,
        file: &File,
        offset: &mut u64,
        to: &mut W,
        max: usize,
    ) -> Result<usize, CopyError> {
        let want = max.min(PIPE_SIZE);
        let buf = &mut self.buffer()[..want];
        let n = loop {
            match file.read_at(buf, *offset) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::File(e)),
            }
        };
        // Not write_all: when the socket's write timeout passes after part of the
        // buffer went out, the caller must learn how much did.
        let mut sent = 0;
        while sent < n {
            match to.write(&buf[sent..n]) {
                Ok(0) => return Err(CopyError::Net(io::ErrorKind::WriteZero.into())),
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if sent > 0 && is_timeout(&e) => break,
                Err(e) => return Err(CopyError::Net(e)),
            }
        }
        *offset += sent as u64;
        Ok(sent)
    }

    /// Receives up to `max` bytes from `sock` and writes them to `file` at its
    /// current position. Returns how many bytes moved: 0 means the peer finished.
    ///
    /// # Errors
    /// [`CopyError::Net`] when the socket fails or stalls past its read timeout,
    /// [`CopyError::File`] when the file cannot be written (a full disk, say).
    pub fn socket_to_file(
        &mut self,
        sock: &TcpStream,
        file: &File,
        max: usize,
    ) -> Result<usize, CopyError> {
        if !self.no_splice {
            match self.splice_in(sock, file, max) {
                Err(CopyError::Net(e)) if e.kind() == io::ErrorKind::Unsupported => {
                    self.no_splice = true;
                }
                other => return other,
            }
        }
        self.reader_to_file(&mut &*sock, file, max)
    }

    /// As [`Pump::socket_to_file`], through the buffer, from any reader (a TLS stream).
    ///
    /// # Errors
    /// As [`Pump::socket_to_file`].
    pub fn reader_to_file<R: Read>(
        &mut self,
        from: &mut R,
        file: &File,
        max: usize,
    ) -> Result<usize, CopyError> {
        self.reader_to_writer(from, &mut &*file, max)
    }

    /// Reads what `from` has (at most `max` bytes, one read) through the buffer and
    /// writes all of it to `to`. Returns how many bytes moved: 0 means the peer finished.
    ///
    /// # Errors
    /// [`CopyError::Net`] when reading fails, [`CopyError::File`] when writing does.
    pub fn reader_to_writer<R: Read, W: Write>(
        &mut self,
        from: &mut R,
        to: &mut W,
        max: usize,
    ) -> Result<usize, CopyError> {
        let want = max.min(PIPE_SIZE);
        let buf = &mut self.buffer()[..want];
        let n = loop {
            match from.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Net(e)),
            }
        };
        to.write_all(&buf[..n]).map_err(CopyError::File)?;
        Ok(n)
    }

    /// The pipe for splice, taken out of the pump (made on first use). Whoever takes
    /// it puts it back only while it is empty, so a pipe that may still hold bytes
    /// after a failure is dropped.
    fn take_pipe(&mut self) -> Result<(OwnedFd, OwnedFd), CopyError> {
        if let Some(pipe) = self.pipe.take() {
            return Ok(pipe);
        }
        let (r, w) = rustix::pipe::pipe().map_err(|e| CopyError::File(e.into()))?;
        // A bigger pipe means fewer round trips; the default (64 KiB) still works.
        let _ = rustix::pipe::fcntl_setpipe_size(&w, PIPE_SIZE);
        Ok((r, w))
    }

    /// socket -> pipe -> file. Reports `Unsupported` (as a network error, before any
    /// byte moved) when the socket cannot be spliced, so the caller falls back.
    fn splice_in(&mut self, sock: &TcpStream, file: &File, max: usize) -> Result<usize, CopyError> {
        let (pipe_r, pipe_w) = self.take_pipe()?;
        let flags = SpliceFlags::MOVE | SpliceFlags::MORE;
        let got = loop {
            match rustix::pipe::splice(sock, None, &pipe_w, None, max.min(PIPE_SIZE), flags) {
                Ok(n) => break n,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    // Nothing went into the pipe: keep it.
                    self.pipe = Some((pipe_r, pipe_w));
                    return Err(CopyError::Net(if unsupported(e) {
                        io::ErrorKind::Unsupported.into()
                    } else {
                        errno_error(e)
                    }));
                }
            }
        };
        // A failed write returns without putting the pipe back: it may still hold
        // bytes, so it is dropped.
        let mut left = got;
        while left > 0 {
            match rustix::pipe::splice(&pipe_r, None, file, None, left, SpliceFlags::MOVE) {
                Ok(0) => return Err(CopyError::File(io::ErrorKind::WriteZero.into())),
                Ok(n) => left -= n,
                Err(Errno::INTR) => continue,
                Err(e) if unsupported(e) => {
                    // The file cannot take a splice: copy what is in the pipe by hand,
                    // and use the buffer from now on.
                    self.no_splice = true;
                    drop(pipe_w);
                    return self.drain_pipe(pipe_r, file, left).map(|()| got);
                }
                Err(e) => return Err(CopyError::File(e.into())),
            }
        }
        self.pipe = Some((pipe_r, pipe_w));
        Ok(got)
    }

    /// Copies the `left` bytes still in the pipe to `file` through the buffer; the
    /// pipe's write end is already closed, and the read end is closed here.
    fn drain_pipe(
        &mut self,
        pipe_r: OwnedFd,
        file: &File,
        mut left: usize,
    ) -> Result<(), CopyError> {
        let mut pipe_r = File::from(pipe_r);
        let buf = self.buffer();
        while left > 0 {
            let want = left.min(buf.len());
            pipe_r
                .read_exact(&mut buf[..want])
                .map_err(CopyError::File)?;
            (&*file).write_all(&buf[..want]).map_err(CopyError::File)?;
            left -= want;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Seek;
    use std::net::TcpListener;
    use std::thread;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn file_to_socket_sends_every_byte_from_the_offset() {
        let bytes = data(3 * PIPE_SIZE + 123);
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(&bytes).expect("write");
        let (tx, mut rx) = pair();
        let reader = thread::spawn(move || {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).expect("read");
            got
        });
        let mut pump = Pump::new();
        let mut offset = 1000;
        let mut sent = 0;
        loop {
            let n = pump
                .file_to_socket(&file, &mut offset, &tx, 1 << 20)
                .expect("send");
            if n == 0 {
                break;
            }
            sent += n;
        }
        drop(tx);
        let got = reader.join().expect("reader");
        assert_eq!(sent, bytes.len() - 1000);
        assert!(got == bytes[1000..]);
        assert_eq!(file.stream_position().expect("pos"), bytes.len() as u64);
    }

    #[test]
    fn socket_to_file_receives_every_byte() {
        let bytes = data(5 * PIPE_SIZE + 77);
        let (mut tx, rx) = pair();
        let sent = bytes.clone();
        let writer = thread::spawn(move || tx.write_all(&sent).expect("write"));
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(b"prefix").expect("prefix");
        let mut pump = Pump::new();
        let mut total = 0;
        loop {
            let n = pump.socket_to_file(&rx, &file, 4 << 20).expect("recv");
            if n == 0 {
                break;
            }
            total += n;
        }
        writer.join().expect("writer");
        assert_eq!(total, bytes.len());
        file.rewind().expect("rewind");
        let mut got = Vec::new();
        file.read_to_end(&mut got).expect("read");
        assert!(got[..6] == *b"prefix" && got[6..] == bytes[..]);
    }

    #[test]
    fn the_fallback_paths_move_the_same_bytes() {
        let bytes = data(2 * PIPE_SIZE + 5);
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(&bytes).expect("write");
        let (tx, rx) = pair();
        let out = tempfile::tempfile().expect("tempfile");
        let mut sender = Pump {
            no_sendfile: true,
            ..Pump::default()
        };
        let mut receiver = Pump {
            no_splice: true,
            ..Pump::default()
        };
        let t = thread::spawn(move || {
            let mut offset = 0;
            while sender
                .file_to_socket(&file, &mut offset, &tx, 1 << 20)
                .expect("send")
                > 0
            {}
        });
        while receiver.socket_to_file(&rx, &out, 1 << 20).expect("recv") > 0 {}
        t.join().expect("sender");
        let mut got = Vec::new();
        let mut out = out;
        out.rewind().expect("rewind");
        out.read_to_end(&mut got).expect("read");
        assert!(got == bytes);
    }
}
