//! A transfer under way (RETR, STOR, APPE, STOU, LIST, NLST, MLSD): a value the
//! session keeps between slices of it, so that a worker can put it down when other
//! sessions wait for a worker, and any worker can take it up again.
//!
//! A slice moves data until [`CHUNK`] bytes have gone or [`SLICE`] has passed, or until
//! a read or write on the data connection has blocked for a [`TICK`]; then the control
//! connection is looked at (ABOR, a vanished client) and, when sessions wait in the
//! pool's queue, the session goes to the back of it ([`Ran::Yielded`]). So when every
//! worker is in a long transfer, a ready command waits about one slice, not one
//! transfer. The data still moves with blocking, zero-copy calls: a slice is many of
//! them. Waiting for the client's passive data connection is sliced the same way. A
//! storage backend without files (see [`crate::storage`]) is read and written as a
//! stream instead, through a buffer, in the same slices.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::commands::Step;
use super::data::{self, Awaiting, Opening, Securing};
use super::failure::Failure;
use super::listings::Lines;
use super::Session;
use crate::locks::FileGuard;
use crate::path::VirtualPath;
use crate::protocol::{Reply, ReplyCode};
use crate::server::pool::Turn;
use crate::storage::{Place, Sink, Upload};
use crate::tls::ServerStream;
use crate::transfer::{is_timeout, CopyError};

/// The buffer of a download a backend streams (see [`Job::SendStream`]).
const STREAM_BUFFER: usize = 256 << 10;

/// Bytes moved at most in one slice of a transfer.
pub(super) const CHUNK: usize = 8 << 20;

/// How long one slice of a transfer lasts at most, when its data keeps moving.
const SLICE: Duration = Duration::from_millis(200);

/// How long one read or write on a data connection may block before the slice ends.
/// A client that sends ABOR often stops reading (or sending) data until ABOR is
/// answered, so a transfer cannot wait for the data connection alone. Stalls still end
/// the transfer after the data timeout.
const TICK: Duration = Duration::from_millis(200);

/// A transfer under way.
pub(super) struct Transfer<'s> {
    link: Link,
    job: Job,
    stall: Stall,
    started: Instant,
    /// The file (or directory) it is about, for the log.
    path: VirtualPath,
    /// The file's lock, held to the end (listings hold none).
    _guard: Option<FileGuard<'s>>,
}

/// The transfer's data connection.
enum Link {
    /// The client has yet to make it.
    Awaiting(Awaiting),
    /// Its TLS handshake is under way.
    Securing(Securing),
    Open(ServerStream),
    /// Only while the link changes from one state to the next.
    Changing,
}

/// What a transfer moves.
pub(super) enum Job {
    /// RETR: `file` from `offset` up to `end` (its size when the transfer began);
    /// `start` is where it began.
    Send {
        file: File,
        offset: u64,
        end: u64,
        start: u64,
    },
    /// RETR from a backend that streams: `reader` gives the bytes from `start` on;
    /// `buf[pos..filled]` were read and are yet to go, `offset` bytes of the file
    /// went (counted from its start).
    SendStream {
        reader: Box<dyn Read + Send>,
        buf: Box<[u8]>,
        pos: usize,
        filled: usize,
        offset: u64,
        end: u64,
        start: u64,
    },
    /// STOR, APPE, STOU: the upload goes into `upload`, which replaces `target` only
    /// when it is committed, complete. `reserved`: STOU made `target` (empty) to hold
    /// its name, and a failed upload removes it.
    Receive {
        upload: Box<dyn Upload>,
        target: Box<dyn Place>,
        verb: &'static str,
        received: u64,
        reserved: bool,
    },
    /// LIST, NLST, MLSD: `lines`, a chunk at a time; `sent` bytes of `chunk` went.
    List {
        lines: Lines,
        chunk: String,
        sent: usize,
        more: bool,
    },
}

impl Job {
    /// RETR of `file` from `start`, of which the bytes up to `offset` went already.
    pub(super) fn send(file: File, start: u64, offset: u64, end: u64) -> Job {
        Job::Send {
            file,
            offset,
            end,
            start,
        }
    }

    /// RETR of a stream that starts at `start` of a file of `end` bytes.
    pub(super) fn send_stream(reader: Box<dyn Read + Send>, start: u64, end: u64) -> Job {
        Job::SendStream {
            reader,
            buf: vec![0; STREAM_BUFFER].into_boxed_slice(),
            pos: 0,
            filled: 0,
            offset: start,
            end,
            start,
        }
    }

    pub(super) fn receive(
        upload: Box<dyn Upload>,
        target: Box<dyn Place>,
        verb: &'static str,
        reserved: bool,
    ) -> Job {
        Job::Receive {
            upload,
            target,
            verb,
            received: 0,
            reserved,
        }
    }

    /// The command the transfer answers, for the log.
    fn verb(&self) -> &'static str {
        match self {
            Job::Send { .. } | Job::SendStream { .. } => "RETR",
            Job::Receive { verb, .. } => verb,
            Job::List { lines, .. } => lines.verb(),
        }
    }

    pub(super) fn list(lines: Lines) -> Job {
        Job::List {
            lines,
            chunk: String::new(),
            sent: 0,
            more: true,
        }
    }
}

/// How running a transfer went.
pub(super) enum Ran {
    /// Other sessions wait: this one goes to the back of the queue, the transfer with it.
    Yielded,
    /// The transfer of the command `verb` is over; its reply.
    Ended(&'static str, Result<Reply, Failure>),
}

/// How long a transfer has gone without moving a byte, against the data timeout,
/// and how much it moved since the control connection was last looked at.
struct Stall {
    since: Instant,
    limit: Duration,
    unlooked: usize,
    looked: Instant,
}

impl Stall {
    fn new(limit: Duration) -> Stall {
        let now = Instant::now();
        Stall {
            since: now,
            limit,
            unlooked: 0,
            looked: now,
        }
    }

    /// Records `n` bytes moved; returns whether the slice is over: [`CHUNK`] bytes
    /// moved or [`SLICE`] passed since the last time it said so.
    fn progress(&mut self, n: usize) -> bool {
        self.since = Instant::now();
        self.unlooked += n;
        if self.unlooked < CHUNK && self.since.duration_since(self.looked) < SLICE {
            return false;
        }
        self.unlooked = 0;
        self.looked = self.since;
        true
    }

    /// After a tick without progress (which ends the slice): an error once the data
    /// timeout has passed.
    fn check(&mut self) -> Result<(), Failure> {
        self.looked = Instant::now();
        if self.since.elapsed() >= self.limit {
            return Err(Failure::Transfer(io::Error::new(
                io::ErrorKind::TimedOut,
                "the transfer stalled",
            )));
        }
        Ok(())
    }
}

/// Gives the data connection the timeouts of a slice: reads for uploads, writes
/// otherwise, block at most a [`TICK`].
/// One write of `bytes` to the data connection of a buffered transfer (a stream
/// download, a listing): how many bytes moved, and whether the slice goes on (the
/// slice's budget is not spent and the write did not stall). A stall past its limit,
/// a zero-length write and any other error fail the transfer.
fn write_some(
    stream: &mut ServerStream,
    bytes: &[u8],
    stall: &mut Stall,
) -> Result<(usize, bool), Failure> {
    match stream.write(bytes) {
        Ok(0) => Err(Failure::Transfer(io::ErrorKind::WriteZero.into())),
        Ok(n) => Ok((n, !stall.progress(n))),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok((0, true)),
        // Within the stall's limit: the slice ends, so the control connection gets
        // its look.
        Err(e) if is_timeout(&e) => stall.check().map(|()| (0, false)),
        Err(e) => Err(Failure::Transfer(e)),
    }
}

fn prepare(stream: &ServerStream, job: &Job) -> Result<(), Failure> {
    let tcp = stream.tcp().map_err(Failure::Transfer)?;
    match job {
        Job::Receive { .. } => tcp.set_read_timeout(Some(TICK)),
        Job::Send { .. } | Job::SendStream { .. } | Job::List { .. } => {
            tcp.set_write_timeout(Some(TICK))
        }
    }
    .map_err(Failure::Transfer)
}

impl<'s> Session<'s> {
    /// Starts the transfer `job` on the data connection `opening` (its `150` went out);
    /// the serve loop runs it.
    pub(super) fn begin(
        &mut self,
        opening: Opening,
        job: Job,
        path: VirtualPath,
        guard: Option<FileGuard<'s>>,
    ) -> Result<Step, Failure> {
        let link = match opening {
            Opening::Open(stream) => {
                if let Err(failure) = prepare(&stream, &job) {
                    let _ = self.close_data(stream);
                    return Err(failure);
                }
                Link::Open(stream)
            }
            Opening::Awaiting(awaiting) => Link::Awaiting(awaiting),
            Opening::Securing(securing) => Link::Securing(securing),
        };
        self.transfer = Some(Transfer {
            link,
            job,
            stall: Stall::new(self.shared.config.data_timeout),
            started: Instant::now(),
            path,
            _guard: guard,
        });
        Ok(Step::Transfer)
    }

    /// Runs the transfer `t`, slice after slice, until it ends, or until other
    /// sessions wait for a worker between two slices (then it goes back to the session).
    pub(super) fn run_transfer(&mut self, mut t: Transfer<'s>, turn: &Turn<'_, 's>) -> Ran {
        let verb = t.job.verb();
        loop {
            match self.slice(&mut t) {
                Ok(false) if turn.others_waiting() => {
                    self.transfer = Some(t);
                    return Ran::Yielded;
                }
                Ok(false) => {}
                Ok(true) => {
                    let ended = self.complete(t);
                    // Idle time counts from the end of the last transfer.
                    self.control.touch();
                    return Ran::Ended(verb, ended);
                }
                Err(failure) => {
                    let (path, bytes, started) = t.progress();
                    self.transfer_failed(verb, path, bytes, started, &failure);
                    self.abandon(t);
                    self.control.touch();
                    return Ran::Ended(verb, Err(failure));
                }
            }
        }
    }

    /// The link a transfer has once its data connection came: open (ready for
    /// slices of data, its stall counted from now) or securing.
    fn linked(&mut self, opening: Opening, job: &Job, stall: &mut Stall) -> Result<Link, Failure> {
        Ok(match opening {
            Opening::Open(stream) => {
                prepare(&stream, job)?;
                *stall = Stall::new(self.shared.config.data_timeout);
                Link::Open(stream)
            }
            Opening::Securing(securing) => Link::Securing(securing),
            Opening::Awaiting(awaiting) => Link::Awaiting(awaiting),
        })
    }

    /// One slice of `t`; returns whether the data is all moved.
    fn slice(&mut self, t: &mut Transfer<'s>) -> Result<bool, Failure> {
        let Transfer {
            link, job, stall, ..
        } = t;
        let stream = match link {
            Link::Open(stream) => stream,
            Link::Changing => return Err(Failure::Aborted),
            Link::Awaiting(awaiting) => {
                match self.data.await_open(awaiting, TICK, &self.token)? {
                    Some(opening) => *link = self.linked(opening, job, stall)?,
                    None => self.check_abort()?,
                }
                return Ok(false);
            }
            Link::Securing(securing) => {
                if self.data.secure_step(securing, TICK)? {
                    if let Link::Securing(Securing { stream, .. }) =
                        std::mem::replace(link, Link::Changing)
                    {
                        *link = self.linked(Opening::Open(stream), job, stall)?;
                    }
                } else {
                    self.check_abort()?;
                }
                return Ok(false);
            }
        };
        match job {
            Job::Send {
                file, offset, end, ..
            } => {
                while *offset < *end {
                    let max = usize::try_from(*end - *offset).map_or(CHUNK, |l| l.min(CHUNK));
                    match self.pump.file_to_stream(file, offset, stream, max) {
                        Ok(0) => return Ok(true), // the file shrank meanwhile
                        Ok(n) if !stall.progress(n) => continue,
                        Ok(_) => {}
                        Err(CopyError::Net(e)) if is_timeout(&e) => stall.check()?,
                        Err(e) => return Err(e.into()),
                    }
                    if *offset < *end {
                        self.check_abort()?;
                    }
                    return Ok(*offset >= *end);
                }
                Ok(true)
            }
            Job::SendStream {
                reader,
                buf,
                pos,
                filled,
                offset,
                end,
                ..
            } => {
                loop {
                    if *pos == *filled {
                        if *offset >= *end {
                            return Ok(true);
                        }
                        let want =
                            usize::try_from(*end - *offset).map_or(buf.len(), |l| l.min(buf.len()));
                        let n = loop {
                            match reader.read(&mut buf[..want]) {
                                Ok(n) => break n,
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => return Err(Failure::Fs(e)),
                            }
                        };
                        if n == 0 {
                            return Ok(true); // the file shrank meanwhile
                        }
                        (*pos, *filled) = (0, n);
                    }
                    let (n, go_on) = write_some(stream, &buf[*pos..*filled], stall)?;
                    *pos += n;
                    *offset += n as u64;
                    if go_on {
                        continue;
                    }
                    break;
                }
                if *offset < *end || *pos < *filled {
                    self.check_abort()?;
                    return Ok(false);
                }
                Ok(true)
            }
            Job::Receive {
                upload, received, ..
            } => {
                loop {
                    let moved = match upload.sink() {
                        Sink::File(file) => self.pump.stream_to_file(stream, file, CHUNK),
                        Sink::Stream(mut to) => self.pump.reader_to_writer(stream, &mut to, CHUNK),
                    };
                    match moved {
                        Ok(0) => return Ok(true),
                        Ok(n) => {
                            *received += n as u64;
                            if !stall.progress(n) {
                                continue;
                            }
                        }
                        Err(CopyError::Net(e)) if is_timeout(&e) => stall.check()?,
                        Err(e) => return Err(e.into()),
                    }
                    break;
                }
                self.check_abort()?;
                Ok(false)
            }
            Job::List {
                lines,
                chunk,
                sent,
                more,
            } => {
                loop {
                    if *sent == chunk.len() {
                        chunk.clear();
                        *sent = 0;
                        if !*more {
                            return Ok(true);
                        }
                        *more = lines.fill(chunk)?;
                        continue;
                    }
                    let (n, go_on) = write_some(stream, &chunk.as_bytes()[*sent..], stall)?;
                    *sent += n;
                    if go_on {
                        continue;
                    }
                    break;
                }
                self.check_abort()?;
                Ok(false)
            }
        }
    }

    /// The end of a transfer whose data all moved: its data connection closed, an
    /// upload put in place, and its reply.
    fn complete(&mut self, t: Transfer<'s>) -> Result<Reply, Failure> {
        let Transfer {
            link,
            job,
            mut stall,
            started,
            path,
            _guard,
        } = t;
        let Link::Open(mut stream) = link else {
            return Err(Failure::Aborted); // a transfer completes only once open
        };
        match job {
            Job::Send { offset, start, .. } | Job::SendStream { offset, start, .. } => {
                if let Some(tcp) = stream.as_plain() {
                    // The 226 comes after the client's close, or a short wait (see
                    // `data::await_close`).
                    let _ = data::await_close(tcp, data::CLOSE_WAIT);
                }
                self.close_data(stream)?;
                self.log_transfer("RETR", &path, offset - start, started);
                Ok(transfer_complete(offset - start))
            }
            Job::List { .. } => {
                // In TLS the last records may still wait to go out.
                let flushed = loop {
                    match stream.flush() {
                        Ok(()) => break Ok(()),
                        Err(e) if is_timeout(&e) => {
                            if let Err(stalled) = stall.check() {
                                break Err(stalled);
                            }
                        }
                        Err(e) => break Err(Failure::Transfer(e)),
                    }
                };
                let closed = self.close_data(stream);
                flushed.and(closed)?;
                Ok(Reply::new(ReplyCode::TransferComplete, "Directory send OK"))
            }
            Job::Receive {
                upload,
                target,
                verb,
                received,
                reserved,
            } => {
                // The upload's fate does not depend on our close_notify reaching the client.
                let _ = self.close_data(stream);
                let kept = self.keep_upload(upload, target.path(), verb);
                if kept.is_err() && reserved {
                    let _ = target.remove_file();
                }
                kept?;
                self.uploaded(verb, &*target);
                self.log_transfer(verb, &path, received, started);
                Ok(transfer_complete(received))
            }
        }
    }

    /// Puts a complete upload in place of `target`, unless the end of its data was
    /// not the end of the file.
    fn keep_upload(
        &mut self,
        upload: Box<dyn Upload>,
        target: &VirtualPath,
        verb: &str,
    ) -> Result<(), Failure> {
        let shown = target;
        // After the grace period the server shuts our data connection down, and the
        // read sees an end of file: that upload is cut short, not complete.
        if self.shared.forced.load(Ordering::SeqCst) {
            log::warn!(
                "{}: {verb} {shown}: cut off by shutdown, upload discarded",
                self.peer
            );
            return Err(Failure::Transfer(io::ErrorKind::ConnectionAborted.into()));
        }
        // A client that went away (or sent ABOR) right as the data ended did not finish
        // its upload: the end of the data connection was not the end of the file.
        // Best effort: it looks without waiting.
        self.check_abort().inspect_err(|_| {
            log::warn!(
                "{}: {verb} {shown}: client gone or aborted, upload discarded",
                self.peer
            );
        })?;
        Ok(upload.commit()?)
    }

    /// The end of a failed transfer: its data connection closed, a partial upload
    /// dropped (and a name STOU reserved for it removed).
    fn abandon(&mut self, t: Transfer<'s>) {
        match t.link {
            Link::Open(stream) => {
                let _ = self.close_data(stream);
            }
            // No TLS to end yet: the connection is only let go.
            Link::Securing(_) => self.token.set_data(None),
            Link::Awaiting(_) | Link::Changing => {}
        }
        if let Job::Receive {
            target,
            reserved: true,
            ..
        } = &t.job
        {
            let _ = target.remove_file();
        }
    }
}

impl Transfer<'_> {
    /// What the transfer is about, the file bytes it moved so far, and when it began.
    fn progress(&self) -> (&VirtualPath, u64, Instant) {
        let bytes = match &self.job {
            Job::Send { offset, start, .. } | Job::SendStream { offset, start, .. } => {
                offset - start
            }
            Job::Receive { received, .. } => *received,
            Job::List { .. } => 0,
        };
        (&self.path, bytes, self.started)
    }
}

pub(super) fn transfer_complete(bytes: u64) -> Reply {
    Reply::new(
        ReplyCode::TransferComplete,
        format!("Transfer complete, {bytes} bytes"),
    )
}
