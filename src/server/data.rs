//! Data connections: passive listeners (PASV/EPSV) and active connects (PORT/EPRT).
//!
//! A passive listener is bound on the control connection's local address, in the
//! configured port range if there is one, and accepts only a connection from the
//! control connection's peer IP: anyone else who finds the port is dropped. Active
//! connections go only to the client's own IP and a port >= 1024, which rules out the
//! FTP bounce attack (RFC 2577 §3); the session checks that before it plans one.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
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

/// Binds a passive listener on `ip`, inside the configured port range if any.
pub(super) fn listen(ip: IpAddr, shared: &Shared) -> io::Result<TcpListener> {
    let Some(range) = shared.config.pasv_ports.clone() else {
        return TcpListener::bind((ip, 0));
    };
    let (lo, hi) = (u64::from(*range.start()), u64::from(*range.end()));
    let span = hi.saturating_sub(lo) + 1;
    // Start where the last session left off, so concurrent sessions do not all probe
    // the same busy ports first.
    let start = shared.next_pasv.fetch_add(1, Ordering::Relaxed);
    let mut last_err = io::Error::new(io::ErrorKind::AddrInUse, "passive port range exhausted");
    for i in 0..span {
        let port = u16::try_from(lo + (start + i) % span).unwrap_or(0);
        match TcpListener::bind((ip, port)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// Opens the data connection for `plan` to the client at `peer_ip`, within the
/// configured data timeout, and sets its stall timeouts.
pub(super) fn connect(plan: DataPlan, peer_ip: IpAddr, shared: &Shared) -> io::Result<TcpStream> {
    let timeout = shared.config.data_timeout;
    let stream = match plan {
        DataPlan::Passive(listener) => accept_from(&listener, peer_ip, timeout, shared)?,
        DataPlan::Active(addr) => TcpStream::connect_timeout(&addr, timeout)?,
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
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
