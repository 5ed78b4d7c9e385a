//! Data connections: passive listeners (PASV/EPSV) and active connects (PORT/EPRT).
//!
//! A passive listener is bound on the control connection's local address, in the
//! configured port range if there is one, and accepts only a connection from the
//! control connection's peer IP: anyone else who finds the port is dropped. Active
//! connections go only to the client's own IP and a port >= 1024, which rules out the
//! FTP bounce attack (RFC 2577 §3); the session checks that before it plans one.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::Shared;

/// How the next transfer's data connection will be made.
#[derive(Debug)]
pub(super) enum DataPlan {
    /// We listen; the client connects (PASV/EPSV).
    Passive(TcpListener),
    /// We connect to the client (PORT/EPRT).
    Active(SocketAddr),
}

/// Passive ports when no range is configured: every unprivileged port.
const DEFAULT_PASV: RangeInclusive<u16> = 1024..=65535;

/// Ports one PASV tries in the default range before it lets the system choose.
const DEFAULT_PROBES: u64 = 32;

/// Binds a passive listener on `ip`, on a port of the configured range (or of every
/// unprivileged port), in a scrambled order.
///
/// The port is chosen here rather than with `bind(port 0)`: with tens of thousands
/// of TIME-WAIT connections from earlier transfers, the kernel's own search for a
/// free ephemeral port took milliseconds per PASV (80% of the server's time in a
/// small-file benchmark). Binding a given port checks only that port, and std's
/// SO_REUSEADDR lets a port with only TIME-WAIT connections be bound again. The
/// scrambled order also keeps the next passive port from being guessed.
pub(super) fn listen(ip: IpAddr, shared: &Shared) -> io::Result<TcpListener> {
    let configured = shared.config.pasv_ports.clone();
    let range = configured.clone().unwrap_or(DEFAULT_PASV);
    let (lo, hi) = (u64::from(*range.start()), u64::from(*range.end()));
    let span = hi.saturating_sub(lo) + 1;
    let probes = match configured {
        Some(_) => span,
        None => DEFAULT_PROBES.min(span),
    };
    let mut last_err = io::Error::new(io::ErrorKind::AddrInUse, "passive port range exhausted");
    for _ in 0..probes {
        let n = shared.next_pasv.fetch_add(1, Ordering::Relaxed);
        // Fibonacci hashing scrambles the counter over the range.
        let index = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        let port = u16::try_from(lo + index % span).unwrap_or(0);
        match TcpListener::bind((ip, port)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_err = e,
        }
    }
    match configured {
        Some(_) => Err(last_err),
        None => TcpListener::bind((ip, 0)),
    }
}

/// Opens the data connection for `plan` to the client at `peer_ip`, within the
/// configured data timeout. The caller sets the timeouts its transfer needs.
pub(super) fn connect(plan: DataPlan, peer_ip: IpAddr, shared: &Shared) -> io::Result<TcpStream> {
    let timeout = shared.config.data_timeout;
    match plan {
        DataPlan::Passive(listener) => accept_from(&listener, peer_ip, timeout, shared),
        DataPlan::Active(addr) => TcpStream::connect_timeout(&addr, timeout),
    }
}

/// Accepts the first connection from `peer_ip`, waiting at most `timeout`.
///
/// std has no accept with a timeout, so the listener is non-blocking and polled. A
/// client normally connects before it sends RETR/STOR, so the first poll usually finds
/// the connection waiting; the back-off only matters for slow clients.
fn accept_from(
    listener: &TcpListener,
    peer_ip: IpAddr,
    timeout: Duration,
    shared: &Shared,
) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        match listener.accept() {
            Ok((stream, from)) if from.ip().to_canonical() == peer_ip.to_canonical() => {
                // On Linux an accepted socket does not inherit the listener's
                // non-blocking mode; elsewhere it may.
                #[cfg(not(target_os = "linux"))]
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Ok((_, from)) => {
                log::warn!("data connection from {from} refused: expected {peer_ip}");
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline || shared.forced.load(Ordering::SeqCst) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no data connection arrived in time",
                    ));
                }
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
