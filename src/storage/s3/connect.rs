//! The object-store client's plain TCP connections: what ureq's own TCP transport
//! does, plus an acknowledgement sent at once for every read.
//!
//! Why: a store may write a reply's head and its body in two writes on a socket with
//! Nagle's algorithm on (Garage does: hyper sends the head of a GET before its body
//! stream is ready, and Garage does not set `TCP_NODELAY`). The body then waits in
//! the store's kernel until the head is acknowledged. On a kept connection, Linux
//! delays that acknowledgement (the connection is "interactive" once a request
//! followed a reply, so the ACK waits to ride on our next data, which is not coming)
//! for its delayed-ACK timer, 40 ms. Measured on loopback: every small RETR through
//! the S3 backend waited 42 ms between the GET's head and its body, and the
//! acknowledgement that released the body was the only packet in between.
//! `TCP_QUICKACK` after a read sends the acknowledgement then (the option does not
//! stay set: Linux may go back to delaying, so it is set after every read that
//! brought bytes). It costs one `setsockopt` per read, and nothing on the wire
//! that the delayed ACK would not have sent anyway.
//!
//! ureq's TCP transport keeps its socket to itself, so this one is ureq's made
//! again through its transport interface (`ureq::unversioned`, which ureq does not
//! promise to keep from one minor version to the next: `Cargo.lock` pins it). TLS
//! wraps it as it wraps ureq's own (the connector chain in `client.rs`).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, ShutdownHandle,
    Transport,
};

/// Opens the TCP connections of the client, each a [`PromptAck`] transport; a
/// connection an earlier connector of the chain made (a proxy's) passes through.
#[derive(Debug, Default)]
pub(super) struct PromptAckConnector;

impl<In: Transport> Connector<In> for PromptAckConnector {
    type Out = Either<In, PromptAck>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(transport) = chained {
            return Ok(Some(Either::A(transport)));
        }
        let limit = details.timeout.not_zero().map(|t| *t);
        let mut last: Option<io::Error> = None;
        for addr in details.addrs.iter() {
            match connect_one(addr, limit) {
                Ok(stream) => {
                    if details.config.no_delay() {
                        stream.set_nodelay(true)?;
                    }
                    let config = details.config;
                    let transport = PromptAck {
                        stream: Arc::new(stream),
                        buffers: LazyBuffers::new(
                            config.input_buffer_size(),
                            config.output_buffer_size(),
                        ),
                        read_timeout: None,
                        write_timeout: None,
                    };
                    // So that the agent can cut a request short, as with ureq's own.
                    let handle = Arc::downgrade(&transport.stream) as Weak<dyn ShutdownHandle>;
                    (details.register_shutdown)(handle)?;
                    return Ok(Some(Either::B(transport)));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(ureq::Error::Timeout(ureq::Timeout::Connect))
                }
                // The next address may answer (an IPv6 one without a route, say).
                Err(e) => last = Some(e),
            }
        }
        Err(ureq::Error::Io(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::ConnectionRefused, "no address to connect to")
        })))
    }
}

fn connect_one(addr: &SocketAddr, limit: Option<Duration>) -> io::Result<TcpStream> {
    match limit {
        Some(limit) => TcpStream::connect_timeout(addr, limit),
        None => TcpStream::connect(addr),
    }
}

/// A TCP connection that acknowledges what it reads at once (see the module).
pub(super) struct PromptAck {
    /// Shared (weakly) with the agent's shutdown handle; all I/O goes via `&TcpStream`.
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    /// The timeouts set on the socket, so that a syscall is made only for a change.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl fmt::Debug for PromptAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptAck")
            .field("peer", &self.stream.peer_addr().ok())
            .finish()
    }
}

/// The bound of the next read or write, or `None`.
fn bound(timeout: &NextTimeout) -> Option<Duration> {
    timeout.not_zero().map(|t| *t)
}

/// An I/O error of the transport as ureq names it: a timeout by its reason.
fn transport_error(e: io::Error, timeout: &NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ureq::Error::Timeout(timeout.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for PromptAck {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        let limit = bound(&timeout);
        if limit != self.write_timeout {
            self.stream.set_write_timeout(limit)?;
            self.write_timeout = limit;
        }
        let output = &self.buffers.output()[..amount];
        (&*self.stream)
            .write_all(output)
            .map_err(|e| transport_error(e, &timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let limit = bound(&timeout);
        if limit != self.read_timeout {
            self.stream.set_read_timeout(limit)?;
            self.read_timeout = limit;
        }
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&*self.stream).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => break result.map_err(|e| transport_error(e, &timeout))?,
            }
        };
        self.buffers.input_appended(amount);
        if amount > 0 {
            // Not fatal: without it, the reply is only slower.
            if let Err(e) = rustix::net::sockopt::set_tcp_quickack(&*self.stream, true) {
                log::debug!("s3: TCP_QUICKACK: {e}");
            }
        }
        Ok(amount > 0)
    }

    /// Whether a kept connection can be used again: nothing waits to be read, and
    /// the store has not closed it (as ureq's own transport checks).
    fn is_open(&mut self) -> bool {
        let stream = &*self.stream;
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let open = matches!(
            (&*stream).read(&mut byte),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        stream.set_nonblocking(false).is_ok() && open
    }
}
