//! TLS for FTP (explicit FTPS, RFC 4217) with rustls, for both programs.
//!
//! A [`Stream`] is a TCP connection that is either plain or wrapped in TLS; control
//! connections start plain and are upgraded in place after `AUTH TLS`, data
//! connections are wrapped as they open when `PROT P` is in force. Blocking sockets
//! with timeouts drive the handshakes, as they drive everything else here.
//!
//! [`server_config`] reads a PEM certificate chain and key; [`client_config`] trusts
//! the system's roots, a given CA file, or (explicitly) anything.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, DigitallySignedStruct, ServerConfig,
    ServerConnection, SideData, SignatureScheme, StreamOwned,
};

/// A TCP connection, plain or in TLS.
pub struct Stream<C> {
    inner: Inner<C>,
    /// In TLS, a read reads the socket at most once (see [`Stream::set_single_reads`]).
    single_reads: bool,
}

enum Inner<C> {
    Plain(TcpStream),
    Tls(Box<StreamOwned<C, TcpStream>>),
    /// Only while an upgrade is under way, or after it failed.
    Broken,
}

/// A server's side of a connection.
pub type ServerStream = Stream<ServerConnection>;
/// A client's side of a connection.
pub type ClientStream = Stream<ClientConnection>;

impl<C> fmt::Debug for Stream<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.inner {
            Inner::Plain(_) => "Stream::Plain",
            Inner::Tls(_) => "Stream::Tls",
            Inner::Broken => "Stream::Broken",
        })
    }
}

fn broken() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the TLS handshake failed earlier",
    )
}

impl<C, S> Stream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// A plain stream.
    pub fn plain(tcp: TcpStream) -> Stream<C> {
        Stream {
            inner: Inner::Plain(tcp),
            single_reads: false,
        }
    }

    /// Wraps `tcp` in TLS with `conn` and completes the handshake.
    ///
    /// # Errors
    /// When the handshake fails or times out (the socket's timeouts apply).
    pub fn tls(tcp: TcpStream, conn: C) -> io::Result<Stream<C>> {
        // A plain stream always upgrades, so only the handshake can fail here.
        let mut stream = Stream::plain(tcp);
        stream.upgrade(conn)?;
        Ok(stream)
    }

    /// Upgrades a plain stream to TLS in place (after `AUTH TLS`).
    ///
    /// # Errors
    /// When the stream is already in TLS, or the handshake fails; after a failed
    /// handshake the stream is unusable.
    pub fn upgrade(&mut self, conn: C) -> io::Result<()> {
        self.begin_upgrade(conn)?;
        let Inner::Tls(tls) = &mut self.inner else {
            return Err(broken());
        };
        let (conn, tcp) = (&mut tls.conn, &mut tls.sock);
        if let Err(e) = handshake(conn, tcp) {
            self.inner = Inner::Broken;
            return Err(e);
        }
        Ok(())
    }

    /// Starts TLS on a plain stream in place without waiting for the handshake, which
    /// [`Stream::handshake_step`] then drives a read at a time: a server that must
    /// not give a whole thread to a peer that stalls its handshake uses this.
    ///
    /// # Errors
    /// When the stream is already in TLS.
    pub fn begin_upgrade(&mut self, conn: C) -> io::Result<()> {
        let tcp = match std::mem::replace(&mut self.inner, Inner::Broken) {
            Inner::Plain(tcp) => tcp,
            other => {
                self.inner = other;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the connection is already in TLS",
                ));
            }
        };
        self.inner = Inner::Tls(Box::new(StreamOwned::new(conn, tcp)));
        Ok(())
    }

    /// Whether a TLS handshake is under way (begun with [`Stream::begin_upgrade`]).
    pub fn is_handshaking(&self) -> bool {
        matches!(&self.inner, Inner::Tls(tls) if tls.conn.is_handshaking())
    }

    /// Moves a handshake begun with [`Stream::begin_upgrade`] on: sends what it has
    /// queued, reads the socket at most once (a read that times out or would block
    /// reads nothing), and sends its answer. Returns whether the handshake is over
    /// (then what it left queued, a TLS 1.3 server's tickets, went out too).
    ///
    /// # Errors
    /// When the peer closed, sent something that is not a handshake, or the socket
    /// failed; the stream is unusable then.
    pub fn handshake_step(&mut self) -> io::Result<bool> {
        let Inner::Tls(tls) = &mut self.inner else {
            return Ok(true);
        };
        let (conn, tcp) = (&mut tls.conn, &mut tls.sock);
        send_queued(conn, tcp)?;
        if conn.is_handshaking() && conn.wants_read() {
            match conn.read_tls(tcp) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {
                    let processed = conn.process_new_packets();
                    // An alert about bad input goes out before the error is reported.
                    let _ = send_queued(conn, tcp);
                    processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        send_queued(conn, tcp)?;
        Ok(!conn.is_handshaking())
    }

    /// Makes every read in TLS read the socket at most once: when that brings no whole
    /// record, the read fails with `WouldBlock` (the bytes stay inside rustls for the
    /// next read). rustls's own reads go on reading until a record is complete, so a
    /// peer that sends a record a byte at a time, each byte within the read timeout,
    /// would keep the reader forever. The server's control connection reads this way.
    pub fn set_single_reads(&mut self, on: bool) {
        self.single_reads = on;
    }

    /// Whether decrypted bytes wait inside the TLS layer, which a read would return
    /// without touching the socket.
    pub fn holds_plaintext(&mut self) -> bool {
        match &mut self.inner {
            Inner::Tls(tls) => tls
                .conn
                .process_new_packets()
                .is_ok_and(|state| state.plaintext_bytes_to_read() > 0),
            _ => false,
        }
    }

    /// The TCP connection underneath, for socket options.
    ///
    /// # Errors
    /// When a failed upgrade left nothing underneath.
    pub fn tcp(&self) -> io::Result<&TcpStream> {
        match &self.inner {
            Inner::Plain(tcp) => Ok(tcp),
            Inner::Tls(tls) => Ok(tls.get_ref()),
            Inner::Broken => Err(broken()),
        }
    }

    /// The TCP connection when the stream is plain (for zero-copy transfers).
    pub fn as_plain(&self) -> Option<&TcpStream> {
        match &self.inner {
            Inner::Plain(tcp) => Some(tcp),
            _ => None,
        }
    }

    /// Whether the stream is in TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// The TLS connection's state, when in TLS.
    pub fn tls_conn(&self) -> Option<&C> {
        match &self.inner {
            Inner::Tls(tls) => Some(&tls.conn),
            _ => None,
        }
    }

    /// Ends the stream cleanly. In TLS a close_notify alert goes first, so the peer
    /// can tell the end of the data from a cut connection; then our sending side
    /// closes and whatever the peer still sends (its own close_notify) is read and
    /// dropped until it closes too, because closing a socket with unread bytes
    /// makes the kernel reset the connection instead of ending it.
    ///
    /// # Errors
    /// When the alert cannot be sent.
    pub fn finish(self) -> io::Result<()> {
        if let Some(tcp) = self.end()? {
            drain(&tcp, 64);
        }
        Ok(())
    }

    /// Sends close_notify and shuts our sending side down, without waiting for the
    /// peer's close_notify (RFC 8446 §6.1 allows that): the TCP connection comes back,
    /// for the caller to drain (see [`drain`]) when it no longer needs to wait. A plain
    /// stream is only closed.
    ///
    /// # Errors
    /// When the alert cannot be sent (the socket's write timeout applies).
    pub fn end(self) -> io::Result<Option<TcpStream>> {
        match self.inner {
            Inner::Tls(mut tls) => {
                tls.conn.send_close_notify();
                send_queued(&mut tls.conn, &mut tls.sock)?;
                let (_, tcp) = tls.into_parts();
                tcp.shutdown(std::net::Shutdown::Write)?;
                Ok(Some(tcp))
            }
            _ => Ok(None),
        }
    }
}

/// Reads and drops what the peer still sends until it closes, at most `reads` reads
/// (each bounded by the socket's read timeout), so that closing the socket then does
/// not reset the connection over unread bytes.
pub fn drain(mut tcp: &TcpStream, reads: usize) {
    let mut sink = [0u8; 4096];
    for _ in 0..reads {
        match tcp.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Sends the TLS records rustls has queued, without reading anything; stops with the
/// socket's error (its write timeout passing, say) with the rest still queued.
fn send_queued<C, S>(conn: &mut C, tcp: &mut TcpStream) -> io::Result<()>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    while conn.wants_write() {
        match conn.write_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads plaintext with at most one read of the socket (see
/// [`Stream::set_single_reads`]).
fn read_once<C, S>(conn: &mut C, tcp: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    match conn.reader().read(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        done => return done,
    }
    // Replies the peer waits for (a key update, say) go out before anything is read.
    send_queued(conn, tcp)?;
    conn.read_tls(tcp)?;
    let processed = conn.process_new_packets();
    // An alert about bad input goes out before the error is reported.
    let _ = send_queued(conn, tcp);
    processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    match conn.reader().read(buf) {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "no whole TLS record yet",
        )),
        done => done,
    }
}

/// Runs a handshake to the end on a blocking socket.
fn handshake<C, S>(conn: &mut C, tcp: &mut TcpStream) -> io::Result<()>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    while conn.is_handshaking() {
        conn.complete_io(tcp)?;
    }
    // Send whatever the handshake left queued (a TLS 1.3 server's tickets).
    while conn.wants_write() {
        conn.write_tls(tcp)?;
    }
    Ok(())
}

impl<C, S> Read for Stream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.read(buf),
            Inner::Tls(tls) if self.single_reads => read_once(&mut tls.conn, &mut tls.sock, buf),
            Inner::Tls(tls) => tls.read(buf),
            Inner::Broken => Err(broken()),
        }
    }
}

impl<C, S> Write for Stream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// In TLS: the records of earlier writes go out first; when the socket's write
    /// timeout passes before they do, the error comes back with nothing of `buf`
    /// taken, and the records stay queued in rustls (a record half sent goes on where
    /// it stopped), so a caller that tries again loses and repeats nothing. Then `buf`
    /// (as much as rustls queues) is encrypted and sent as far as the socket takes it.
    ///
    /// Not rustls's own `Stream::write`: when a write blocks, its `complete_io` goes
    /// on to read from the socket, and on a data connection nothing comes, so every
    /// blocked write waited the read timeout (the data timeout) instead of the write
    /// timeout, and ABOR was seen only after three of them (issue 11).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.write(buf),
            Inner::Tls(tls) => {
                send_queued(&mut tls.conn, &mut tls.sock)?;
                let n = tls.conn.writer().write(buf)?;
                // `n` bytes are taken whatever happens now: a timeout or an error
                // shows on the next call.
                let _ = send_queued(&mut tls.conn, &mut tls.sock);
                Ok(n)
            }
            Inner::Broken => Err(broken()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.flush(),
            Inner::Tls(tls) => {
                tls.conn.writer().flush()?;
                send_queued(&mut tls.conn, &mut tls.sock)
            }
            Inner::Broken => Err(broken()),
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{}: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the configuration (a key that does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Every certificate in a PEM file (perhaps none).
///
/// # Errors
/// [`TlsError::Pem`] when the file cannot be read or a certificate in it cannot be
/// decoded.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_owned(),
        problem: e.to_string(),
    };
    CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<_, _>>()
        .map_err(pem)
}

/// A server configuration from a PEM certificate chain and a PEM private key.
///
/// # Errors
/// [`TlsError::Pem`] when a file cannot be read or has no certificate or key;
/// [`TlsError::Config`] when they do not fit together.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |path: &Path, problem: String| TlsError::Pem {
        path: path.to_owned(),
        problem,
    };
    let certs = load_certs(cert)?;
    if certs.is_empty() {
        return Err(pem(cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// The TLS configurations of one control connection and its data connections:
/// copies of `base` sharing a session cache and a ticket key of their own. With its
/// own cache and key, a control connection's sessions can be resumed only by data
/// connections that hold its tickets: a stranger who finds the passive port cannot
/// (RFC 4217 §10). The tickets are stateless, so one can open many data connections
/// (Python's ftplib offers the same one every time). Each data connection issues
/// one ticket of its own: curl offers the ticket its last connection received and
/// uses a TLS 1.3 ticket only once, so without it curl's second PROT P transfer in
/// one session made a full handshake and was refused.
///
/// # Errors
/// When no ticket key can be made (the system's random source failed).
pub fn per_session(
    base: &ServerConfig,
) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), TlsError> {
    let mut control = base.clone();
    control.session_storage = rustls::server::ServerSessionMemoryCache::new(32);
    control.ticketer = ring::Ticketer::new()?;
    let mut data = control.clone();
    data.send_tls13_tickets = 1;
    Ok((Arc::new(control), Arc::new(data)))
}

/// Whether a server-side connection resumed an earlier session.
pub fn resumed(conn: &ServerConnection) -> bool {
    conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

/// A client configuration: trusting the certificates in `ca_file`, or the system's
/// roots; or, with `insecure`, any certificate at all.
///
/// # Errors
/// [`TlsError::Pem`] when the CA file cannot be read or no root can be found.
pub fn client_config(
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                roots.add_parsable_certificates(load_certs(path)?);
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        if roots.is_empty() {
            return Err(TlsError::Pem {
                path: ca_file.map_or_else(|| PathBuf::from("(system roots)"), Path::to_owned),
                problem: "no usable CA certificate".into(),
            });
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The server name to check a certificate against: a DNS name or an IP address.
///
/// # Errors
/// When `host` is neither.
pub fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// `--insecure`: accepts any certificate, but still checks that the handshake's
/// signatures are made with the certificate's key.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
