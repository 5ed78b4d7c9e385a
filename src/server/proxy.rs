//! The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer in front of the
//! server starts each connection it relays with a header naming the real client, and
//! the server takes that client as the connection's peer.
//!
//! A header is believed only from an address of `--trusted-proxies`: anyone else could
//! claim any address. What happens with the rest follows `--proxy-protocol`
//! ([`ProxyMode`]): `optional` serves an untrusted connection as it is (a header it
//! sends is FTP garbage), `required` drops it at once.
//!
//! The header is read without reading a byte past it: the bytes are peeked, parsed,
//! and exactly the header's length is then read, so the FTP commands or the TLS
//! ClientHello that follow in the same segment stay in the socket for the session. The
//! whole header must arrive within [`HEADER_TIMEOUT`] (bytes do not stretch it), and
//! its size is bounded: 107 bytes for version 1 (the specification's own bound), 16
//! bytes and at most [`V2_MAX_PAYLOAD`] for version 2.
//!
//! The parser ([`parse`]) is a pure function of the bytes seen so far, so it is tested
//! on its own, with a property test that no input makes it panic.
//!
//! Specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>
//! (§2.1 the text header, §2.2 the binary header).

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// How long a connection from a trusted proxy may take to send its whole header. A
/// proxy writes it at once, with the connection; a peer that takes longer is broken
/// or hostile, and it holds a worker meanwhile (see [`super::session`]'s start).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// With `--proxy-protocol optional`, how long a connection from a trusted address may
/// stay silent before it is served without a header. FTP servers speak first, so a
/// client that connects directly waits for the greeting and sends nothing: it gets its
/// greeting this much later. A proxy sends its header at once.
pub const OPTIONAL_WAIT: Duration = Duration::from_secs(1);

/// The longest version 1 header, CRLF included (§2.1).
pub const V1_MAX: usize = 107;

/// The longest version 2 payload (addresses and TLVs) we take. The format allows 65535
/// bytes; addresses take 36 at most (216 for UNIX sockets), and HAProxy's TLVs (ALPN,
/// authority, unique id, TLS facts) fit in far less than this.
pub const V2_MAX_PAYLOAD: usize = 2048;

/// The most bytes a header may take: what is peeked at once.
const MAX_HEADER: usize = 16 + V2_MAX_PAYLOAD;

/// The text header's start (§2.1).
const V1_PREFIX: &[u8] = b"PROXY ";

/// The binary header's signature (§2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// `--proxy-protocol`: whether connections may or must start with a PROXY header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// No header is read from anyone; every connection's peer is its TCP peer.
    #[default]
    Off,
    /// A trusted address may send a header; other addresses are served as they are.
    Optional,
    /// Only trusted addresses are served, and each connection must send a header.
    Required,
}

/// An address block of `--trusted-proxies`: `ADDR/PREFIX`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a `--trusted-proxies` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an IP address before the `/`.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// A prefix length that is not a number up to 32 (IPv4) or 128 (IPv6).
    #[error("{0:?} is not a prefix length (0-32 for IPv4, 0-128 for IPv6)")]
    Prefix(String),
    /// Bits set past the prefix: most likely a typo for the block's first address.
    #[error("{given} has bits set past its prefix; did you mean {meant}?")]
    HostBits {
        /// What was written.
        given: String,
        /// The block it names.
        meant: Cidr,
    },
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(addr.to_owned()))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(CidrError::Prefix(p.to_owned())),
            },
        };
        let cidr = Cidr { addr, prefix };
        let first = cidr.first();
        if first != addr {
            return Err(CidrError::HostBits {
                given: text.to_owned(),
                meant: Cidr {
                    addr: first,
                    prefix,
                },
            });
        }
        Ok(cidr)
    }
}

impl Cidr {
    /// The block's first address (its address with the bits past the prefix cleared).
    fn first(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether `ip` is in one of the `trusted` blocks.
pub(crate) fn is_trusted(trusted: &[Cidr], ip: IpAddr) -> bool {
    trusted.iter().any(|c| c.contains(ip))
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A relayed TCP connection: the client (`source`) and the address it connected
    /// to at the proxy (`destination`).
    Proxied {
        /// The real client.
        source: SocketAddr,
        /// The proxy's address the client connected to.
        destination: SocketAddr,
    },
    /// No client to take: a connection the proxy made on its own (v2 `LOCAL`, such as
    /// a health check), v1 `UNKNOWN`, or an address family other than IPv4 and IPv6
    /// (UNIX sockets, UDP, unspecified). The TCP peer stays the peer (§2.2).
    Local,
}

/// How the bytes seen so far stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `len` bytes, which the caller consumes.
    Complete {
        /// What it says.
        header: Header,
        /// Its length in bytes; the stream's own bytes follow.
        len: usize,
    },
    /// The start of a header (or of its signature): more bytes are needed.
    Incomplete,
    /// Not a PROXY header: the bytes are the connection's own.
    NotProxy,
}

/// Why a header was refused. Each closes the connection without a reply.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The header breaks the specification.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
    /// A version 1 header with no CRLF within 107 bytes, or a version 2 header
    /// longer than we take.
    #[error("PROXY header too long")]
    TooLong,
    /// `--proxy-protocol required`, and the connection does not start with a header.
    #[error("no PROXY header")]
    Missing,
    /// The peer closed the connection before the header was whole.
    #[error("connection closed inside the PROXY header")]
    Truncated,
    /// The header was not whole within [`HEADER_TIMEOUT`].
    #[error("PROXY header not received in time")]
    TimedOut,
    /// The socket failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
}

/// Parses the start of a connection, `buf` being every byte seen so far.
///
/// # Errors
/// [`HeaderError::Malformed`] or [`HeaderError::TooLong`] when the bytes begin a
/// header that breaks the specification or our bound; only these two.
pub fn parse(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let prefix_of = |sig: &[u8]| sig.starts_with(&buf[..buf.len().min(sig.len())]);
    if buf.starts_with(V1_PREFIX) {
        parse_v1(buf)
    } else if buf.starts_with(&V2_SIGNATURE) {
        parse_v2(buf)
    } else if prefix_of(V1_PREFIX) || prefix_of(&V2_SIGNATURE) {
        Ok(Parsed::Incomplete)
    } else {
        Ok(Parsed::NotProxy)
    }
}

/// The text header (§2.1): `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` or
/// `PROXY UNKNOWN ...\r\n`, single spaces, 107 bytes at most.
fn parse_v1(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        // Anything but printable ASCII before the CRLF is wrong now, whatever follows.
        if window.iter().any(|&b| !(b' '..=b'~').contains(&b)) {
            return Err(HeaderError::Malformed("a byte that is not printable ASCII"));
        }
        return match buf.len() >= V1_MAX {
            true => Err(HeaderError::TooLong),
            false => Ok(Parsed::Incomplete),
        };
    };
    let line = &window[..cr];
    if line.iter().any(|&b| !(b' '..=b'~').contains(&b)) {
        return Err(HeaderError::Malformed("a byte that is not printable ASCII"));
    }
    match window.get(cr + 1) {
        None if buf.len() >= V1_MAX => return Err(HeaderError::TooLong),
        None => return Ok(Parsed::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(HeaderError::Malformed("CR not followed by LF")),
    }
    let len = cr + 2;
    // Printable ASCII, so this is UTF-8.
    let text = std::str::from_utf8(&line[V1_PREFIX.len()..])
        .map_err(|_| HeaderError::Malformed("not text"))?;
    let mut words = text.split(' ');
    let header = match words.next() {
        // §2.1: the rest of an UNKNOWN line is to be ignored.
        Some("UNKNOWN") => Header::Local,
        Some(family @ ("TCP4" | "TCP6")) => {
            let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
                words.next(),
                words.next(),
                words.next(),
                words.next(),
                words.next(),
            ) else {
                return Err(HeaderError::Malformed(
                    "expected four fields after TCP4/TCP6",
                ));
            };
            let v4 = family == "TCP4";
            Header::Proxied {
                source: SocketAddr::new(v1_ip(src, v4)?, v1_port(sport)?),
                destination: SocketAddr::new(v1_ip(dst, v4)?, v1_port(dport)?),
            }
        }
        _ => return Err(HeaderError::Malformed("unknown protocol in a v1 header")),
    };
    Ok(Parsed::Complete { header, len })
}

/// An address of a v1 header, of the family it names.
fn v1_ip(text: &str, v4: bool) -> Result<IpAddr, HeaderError> {
    let bad = || HeaderError::Malformed("bad address in a v1 header");
    if v4 {
        text.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| bad())
    } else {
        text.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| bad())
    }
}

/// A port of a v1 header: decimal digits, no sign, no leading zero (§2.1).
fn v1_port(text: &str) -> Result<u16, HeaderError> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(HeaderError::Malformed("bad port in a v1 header"));
    }
    text.parse()
        .map_err(|_| HeaderError::Malformed("bad port in a v1 header"))
}

/// The binary header (§2.2): the signature, version and command, family and
/// transport, the payload's length, then addresses and TLVs.
fn parse_v2(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(Parsed::Incomplete);
    };
    let (ver_cmd, fam) = (fixed[12], fixed[13]);
    if ver_cmd >> 4 != 2 {
        return Err(HeaderError::Malformed("version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(HeaderError::Malformed("unknown command")),
    };
    let (family, transport) = (fam >> 4, fam & 0x0f);
    if family > 3 || transport > 2 {
        return Err(HeaderError::Malformed(
            "unknown address family or transport",
        ));
    }
    let payload_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if payload_len > V2_MAX_PAYLOAD {
        return Err(HeaderError::TooLong);
    }
    let len = 16 + payload_len;
    let Some(payload) = buf.get(16..len) else {
        return Ok(Parsed::Incomplete);
    };
    // §2.2: a LOCAL connection's address block is to be discarded, whatever it holds.
    if local {
        return Ok(Parsed::Complete {
            header: Header::Local,
            len,
        });
    }
    let addresses = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0, // AF_UNSPEC: no addresses, the payload is TLVs
    };
    let (block, tlvs) = match (payload.get(..addresses), payload.get(addresses..)) {
        (Some(block), Some(tlvs)) => (block, tlvs),
        _ => {
            return Err(HeaderError::Malformed(
                "address block shorter than its family",
            ))
        }
    };
    check_tlvs(tlvs)?;
    let header = match (family, transport) {
        (1, 1) => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[at],
                    block[at + 1],
                    block[at + 2],
                    block[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            Header::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (2, 1) => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
            Header::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        // UNIX sockets, UDP, or unspecified: no TCP client to take (§2.2 lets the
        // receiver use the real connection's addresses).
        _ => Header::Local,
    };
    Ok(Parsed::Complete { header, len })
}

/// Walks the TLVs after the addresses: each a type byte, a big-endian length and that
/// many bytes, which must end exactly where the payload ends. Their contents are not
/// used.
fn check_tlvs(mut rest: &[u8]) -> Result<(), HeaderError> {
    while !rest.is_empty() {
        let Some(&[_, hi, lo]) = rest.get(..3) else {
            return Err(HeaderError::Malformed("truncated TLV"));
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        rest = rest
            .get(end..)
            .ok_or(HeaderError::Malformed("TLV longer than the header"))?;
    }
    Ok(())
}

/// What the reader expects of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A header must come.
    Header,
    /// A header may come; a connection silent for [`OPTIONAL_WAIT`], or whose first
    /// bytes are not a header's, has none.
    MaybeHeader,
}

/// Reads the PROXY header at the start of `stream`, consuming exactly its bytes and
/// nothing after them, within [`HEADER_TIMEOUT`] from now. `Ok(None)` when there is
/// none and none was required. The stream's read timeout is left changed: the caller
/// sets its own.
///
/// Bytes are peeked until they make a whole header: a peek of a partial header
/// returns at once, so between peeks the reader waits for the peer's close (or a
/// short step) rather than spinning.
///
/// # Errors
/// A [`HeaderError`] for a malformed, over-long, missing (when required), truncated
/// or late header, or a socket error.
pub(crate) fn read_header(
    stream: &TcpStream,
    expect: Expect,
) -> Result<Option<Header>, HeaderError> {
    /// How long to wait between peeks of a partial header.
    const STEP: Duration = Duration::from_millis(10);
    let start = Instant::now();
    let until = start + HEADER_TIMEOUT;
    let quiet_until = start + OPTIONAL_WAIT.min(HEADER_TIMEOUT);
    let mut buf = vec![0u8; MAX_HEADER];
    let mut seen = 0;
    loop {
        let now = Instant::now();
        let limit = match (expect, seen) {
            (Expect::MaybeHeader, 0) => quiet_until,
            _ => until,
        };
        if now >= limit {
            return match (expect, seen) {
                (Expect::MaybeHeader, 0) => Ok(None),
                _ => Err(HeaderError::TimedOut),
            };
        }
        let wait = (limit - now).max(Duration::from_millis(1));
        if seen == 0 {
            stream.set_read_timeout(Some(wait))?;
            // Blocks (up to `wait`) until the first bytes come.
        } else if peer_closed(stream, STEP.min(wait))? {
            // The bytes there are all there will be.
            let n = peek(stream, &mut buf)?.unwrap_or(seen);
            return match parse(&buf[..n])? {
                Parsed::Complete { header, len } => consume(stream, len, header),
                Parsed::NotProxy if expect == Expect::MaybeHeader => Ok(None),
                Parsed::NotProxy => Err(HeaderError::Missing),
                Parsed::Incomplete => Err(HeaderError::Truncated),
            };
        }
        let n = match peek(stream, &mut buf)? {
            None => continue,
            Some(0) if seen == 0 && expect == Expect::MaybeHeader => return Ok(None),
            Some(0) => return Err(HeaderError::Truncated),
            Some(n) => n,
        };
        match parse(&buf[..n])? {
            Parsed::Complete { header, len } => return consume(stream, len, header),
            Parsed::NotProxy if expect == Expect::MaybeHeader => return Ok(None),
            Parsed::NotProxy => return Err(HeaderError::Missing),
            Parsed::Incomplete => seen = n,
        }
    }
}

/// Peeks at what is waiting on `stream`: `None` when the read timed out or was
/// interrupted (the caller looks at its deadline again).
fn peek(stream: &TcpStream, buf: &mut [u8]) -> Result<Option<usize>, HeaderError> {
    match stream.peek(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Waits at most `wait` for the peer to close its side; returns whether it did.
fn peer_closed(stream: &TcpStream, wait: Duration) -> Result<bool, HeaderError> {
    let mut fds = [PollFd::new(stream, PollFlags::RDHUP)];
    let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 10_000_000,
    });
    match poll(&mut fds, Some(&timeout)) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(!fds[0].revents().is_empty()),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(io::Error::from(e).into()),
    }
}

/// Reads the `len` bytes of a header just peeked (they are in the socket already).
fn consume(stream: &TcpStream, len: usize, header: Header) -> Result<Option<Header>, HeaderError> {
    let mut skip = vec![0u8; len];
    let mut reader = stream;
    reader.read_exact(&mut skip)?;
    Ok(Some(header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2(cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(payload.len()).expect("len").to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    fn v4_block() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 7, 127, 0, 0, 1];
        b.extend_from_slice(&40_000u16.to_be_bytes());
        b.extend_from_slice(&21u16.to_be_bytes());
        b
    }

    fn complete(buf: &[u8]) -> (Header, usize) {
        match parse(buf).expect("parses") {
            Parsed::Complete { header, len } => (header, len),
            other => panic!("{other:?}"),
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("addr")
    }

    #[test]
    fn v1_tcp4_names_the_client_and_leaves_what_follows() {
        let buf = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 21\r\nUSER x\r\n";
        let (header, len) = complete(buf);
        assert_eq!(
            header,
            Header::Proxied {
                source: addr("192.0.2.7:40000"),
                destination: addr("127.0.0.1:21")
            }
        );
        assert_eq!(&buf[len..], b"USER x\r\n");
    }

    #[test]
    fn v1_tcp6_and_unknown() {
        let (header, _) = complete(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
        assert_eq!(
            header,
            Header::Proxied {
                source: addr("[2001:db8::1]:65535"),
                destination: addr("[::1]:0")
            }
        );
        assert_eq!(complete(b"PROXY UNKNOWN\r\n"), (Header::Local, 15));
        let (header, _) = complete(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n");
        assert_eq!(header, Header::Local);
    }

    #[test]
    fn v1_refuses_what_the_specification_does_not_allow() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 127.0.0.1 40000\r\n"[..],
            b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 21 9\r\n",
            b"PROXY TCP4  192.0.2.7 127.0.0.1 40000 21\r\n",
            b"PROXY TCP4 ::1 127.0.0.1 40000 21\r\n",
            b"PROXY TCP6 192.0.2.7 ::1 40000 21\r\n",
            b"PROXY TCP4 192.0.2.7 127.0.0.1 65536 21\r\n",
            b"PROXY TCP4 192.0.2.7 127.0.0.1 +4000 21\r\n",
            b"PROXY TCP4 192.0.2.7 127.0.0.1 0400 21\r\n",
            b"PROXY TCP4 192.0.02.7 127.0.0.1 400 21\r\n",
            b"PROXY UDP4 192.0.2.7 127.0.0.1 400 21\r\n",
            b"PROXY TCP4 192.0.2.7 127.0.0.1 400 21\rX",
            b"PROXY TCP4 192.0.2.7\n",
            b"PROXY \xff",
        ] {
            assert!(
                matches!(parse(bad), Err(HeaderError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn v1_is_bounded_at_107_bytes() {
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX, b'x');
        assert!(matches!(parse(&long), Err(HeaderError::TooLong)));
        // 105 bytes and CRLF: the longest allowed.
        let mut longest = b"PROXY UNKNOWN ".to_vec();
        longest.resize(V1_MAX - 2, b'x');
        longest.extend_from_slice(b"\r\n");
        assert_eq!(complete(&longest), (Header::Local, V1_MAX));
        // A CR as the 107th byte with the LF past the bound.
        let mut cr_last = longest[..V1_MAX - 2].to_vec();
        cr_last.push(b'x');
        cr_last.push(b'\r');
        assert!(matches!(parse(&cr_last), Err(HeaderError::TooLong)));
    }

    #[test]
    fn partial_headers_and_signatures_ask_for_more() {
        let full = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 21\r\n";
        for n in 0..full.len() {
            assert_eq!(
                parse(&full[..n]).expect("partial"),
                Parsed::Incomplete,
                "{n}"
            );
        }
        let bin = v2(1, 0x11, &v4_block());
        for n in 0..bin.len() {
            assert_eq!(
                parse(&bin[..n]).expect("partial"),
                Parsed::Incomplete,
                "{n}"
            );
        }
    }

    #[test]
    fn ftp_and_tls_bytes_are_not_headers() {
        assert_eq!(parse(b"USER anonymous\r\n").expect("ok"), Parsed::NotProxy);
        assert_eq!(parse(b"PROX\r\n").expect("ok"), Parsed::NotProxy);
        assert_eq!(
            parse(&[0x16, 0x03, 0x01, 0x02, 0x00]).expect("ok"),
            Parsed::NotProxy
        );
        assert_eq!(parse(b"\r\n\r\nX").expect("ok"), Parsed::NotProxy);
    }

    #[test]
    fn v2_proxy_inet_and_inet6() {
        let mut buf = v2(1, 0x11, &v4_block());
        buf.extend_from_slice(b"\x16\x03\x01");
        let (header, len) = complete(&buf);
        assert_eq!(
            header,
            Header::Proxied {
                source: addr("192.0.2.7:40000"),
                destination: addr("127.0.0.1:21")
            }
        );
        assert_eq!(&buf[len..], b"\x16\x03\x01");

        let mut block = Vec::new();
        block.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().expect("ip").octets());
        block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        block.extend_from_slice(&1234u16.to_be_bytes());
        block.extend_from_slice(&2121u16.to_be_bytes());
        let (header, len) = complete(&v2(1, 0x21, &block));
        assert_eq!(
            header,
            Header::Proxied {
                source: addr("[2001:db8::7]:1234"),
                destination: addr("[::1]:2121")
            }
        );
        assert_eq!(len, 16 + 36);
    }

    #[test]
    fn v2_tlvs_are_skipped_with_their_lengths_checked() {
        let mut payload = v4_block();
        payload.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // ALPN
        payload.extend_from_slice(&[0x04, 0x00, 0x00]); // NOOP, empty
        let (header, len) = complete(&v2(1, 0x11, &payload));
        assert!(matches!(header, Header::Proxied { .. }));
        assert_eq!(len, 16 + payload.len());

        let mut over = v4_block();
        over.extend_from_slice(&[0x01, 0x00, 0x09, b'h']);
        assert!(matches!(
            parse(&v2(1, 0x11, &over)),
            Err(HeaderError::Malformed(_))
        ));
        let mut stub = v4_block();
        stub.extend_from_slice(&[0x01, 0x00]);
        assert!(matches!(
            parse(&v2(1, 0x11, &stub)),
            Err(HeaderError::Malformed(_))
        ));
    }

    #[test]
    fn v2_local_unspec_unix_and_udp_keep_the_real_peer() {
        assert_eq!(complete(&v2(0, 0x00, &[])), (Header::Local, 16));
        // LOCAL with an address block: discarded.
        assert_eq!(complete(&v2(0, 0x11, &v4_block())).0, Header::Local);
        assert_eq!(complete(&v2(1, 0x00, &[])).0, Header::Local);
        assert_eq!(complete(&v2(1, 0x12, &v4_block())).0, Header::Local);
        assert_eq!(complete(&v2(1, 0x31, &[0u8; 216])).0, Header::Local);
    }

    #[test]
    fn v2_refuses_bad_versions_commands_families_and_lengths() {
        let mut bad_version = v2(1, 0x11, &v4_block());
        bad_version[12] = 0x11;
        assert!(matches!(
            parse(&bad_version),
            Err(HeaderError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(2, 0x11, &v4_block())),
            Err(HeaderError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x41, &v4_block())),
            Err(HeaderError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x13, &v4_block())),
            Err(HeaderError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x11, &[0u8; 11])),
            Err(HeaderError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x21, &[0u8; 12])),
            Err(HeaderError::Malformed(_))
        ));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(parse(&huge), Err(HeaderError::TooLong)));
    }

    #[test]
    fn cidr_blocks() {
        let net: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.0.9".parse().expect("ip")));
        assert!(!net.contains("::1".parse().expect("ip")));
        let one: Cidr = "127.0.0.1".parse().expect("cidr");
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(one.contains("127.0.0.1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("203.0.113.5".parse().expect("ip")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains("2001:db8:ffff::1".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::1".parse().expect("ip")));
        assert_eq!(
            "10.0.0.1/8".parse::<Cidr>().map_err(|e| e.to_string()),
            Err("10.0.0.1/8 has bits set past its prefix; did you mean 10.0.0.0/8?".to_owned())
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host/8",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn hostile_bytes_after_a_signature_never_panic(
            v1 in any::<bool>(),
            rest in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut buf = if v1 { V1_PREFIX.to_vec() } else { V2_SIGNATURE.to_vec() };
            buf.extend_from_slice(&rest);
            if let Ok(Parsed::Complete { len, .. }) = parse(&buf) {
                prop_assert!(len <= buf.len());
            }
        }

        #[test]
        fn a_complete_header_is_complete_with_any_bytes_after_it(
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = v2(1, 0x11, &v4_block());
            let header_len = buf.len();
            buf.extend_from_slice(&tail);
            let parsed = parse(&buf);
            let whole = matches!(parsed, Ok(Parsed::Complete { len, .. }) if len == header_len);
            prop_assert!(whole);
        }
    }
}
