//! The metrics' HTTP side: one thread of ours that answers `/metrics` and `/healthz`,
//! one connection at a time (see the parent module for why not a crate).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::MetricsError;

/// How long a client has to send its request head, and then to take the answer.
pub(crate) const REQUEST_TIME: Duration = Duration::from_secs(2);

/// The largest request head read (a scrape's is a few hundred bytes).
pub(crate) const MAX_REQUEST: usize = 8 * 1024;

/// How often the HTTP thread looks whether the server has ended, when no client comes.
const LOOK: Duration = Duration::from_millis(200);

/// What the HTTP thread needs to know of the server.
pub(crate) trait Source {
    /// The page for `/metrics`.
    fn page(&self) -> Result<String, MetricsError>;
    /// Whether the server still accepts connections (`/healthz` says `200`).
    fn accepting(&self) -> bool;
}

/// Serves `/metrics` and `/healthz` on `listener`, one connection at a time, until
/// `done` is set.
pub(crate) fn serve(listener: &TcpListener, source: &dyn Source, done: &AtomicBool) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("metrics: cannot serve: {e}");
        return;
    }
    let timeout = Timespec::try_from(LOOK).unwrap_or(Timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    });
    while !done.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => {
                log::error!("metrics: the listener failed: {e}; no more scrapes");
                return;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, source) {
                    log::debug!("metrics: {peer}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                // Out of descriptors, or a connection reset before accept.
                log::warn!("metrics: accept failed: {e}");
                std::thread::sleep(LOOK);
            }
        }
    }
}

/// A response: status line, content type, body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
        }
    }
}

/// Reads one request on `stream` and answers it, then closes.
fn answer(stream: TcpStream, source: &dyn Source) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(REQUEST_TIME))?;
    let deadline = Instant::now() + REQUEST_TIME;
    let head = match read_head(&stream, deadline)? {
        Some(head) => head,
        None => {
            let response = Response::text("431 Request Header Fields Too Large", "too large");
            return respond(stream, &response, true);
        }
    };
    let (response, with_body) = route(&head, source);
    respond(stream, &response, with_body)
}

/// Reads a request head (up to the blank line) within `deadline`; `None` when it is
/// longer than [`MAX_REQUEST`].
fn read_head(mut stream: &TcpStream, deadline: Instant) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        if head.len() >= MAX_REQUEST {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not sent in time",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let want = buf.len().min(MAX_REQUEST - head.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before the end of the request head",
                ))
            }
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The response to the request `head`, and whether it has a body (not for HEAD).
fn route(head: &str, source: &dyn Source) -> (Response, bool) {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let with_body = method != "HEAD";
    if method != "GET" && method != "HEAD" {
        let mut r = Response::text("405 Method Not Allowed", "only GET and HEAD");
        if method.is_empty() {
            r = Response::text("400 Bad Request", "bad request");
        }
        return (r, true);
    }
    let response = match path {
        "/metrics" => match source.page() {
            Ok(body) => Response {
                status: "200 OK",
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body,
            },
            Err(e) => {
                log::error!("metrics: cannot encode: {e}");
                Response::text("500 Internal Server Error", "cannot encode the metrics")
            }
        },
        "/healthz" if source.accepting() => Response::text("200 OK", "ok"),
        "/healthz" => Response::text("503 Service Unavailable", "shutting down"),
        _ => Response::text("404 Not Found", "not found: try /metrics or /healthz"),
    };
    (response, with_body)
}

/// Writes `response` and closes the connection.
fn respond(mut stream: TcpStream, response: &Response, with_body: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    if with_body {
        out.push_str(&response.body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()?;
    // The request head was read whole, so closing does not reset the connection.
    stream.shutdown(std::net::Shutdown::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(bool);

    impl Source for Fixed {
        fn page(&self) -> Result<String, MetricsError> {
            Ok("x 1\n".to_owned())
        }
        fn accepting(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn routes() {
        let status = |head: &str, up: bool| route(head, &Fixed(up)).0.status;
        assert_eq!(status("GET /metrics HTTP/1.1\r\n\r\n", true), "200 OK");
        assert_eq!(status("GET /metrics?x=1 HTTP/1.1\r\n\r\n", true), "200 OK");
        assert_eq!(status("HEAD /healthz HTTP/1.0\r\n\r\n", true), "200 OK");
        assert_eq!(
            status("GET /healthz HTTP/1.1\r\n\r\n", false),
            "503 Service Unavailable"
        );
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n", true), "404 Not Found");
        assert_eq!(
            status("POST /metrics HTTP/1.1\r\n\r\n", true),
            "405 Method Not Allowed"
        );
        assert_eq!(status("\r\n\r\n", true), "400 Bad Request");
        assert!(!route("HEAD /metrics HTTP/1.1\r\n\r\n", &Fixed(true)).1);
    }
}
