//! Unit tests of the client's reply handling against a small scripted FTP server.

use super::repl::{Flow, Repl, Ui};
use super::*;
use crate::digest::sha256_hex;
use std::collections::HashMap;
use std::io::BufRead;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

const TIMEOUT: Duration = Duration::from_secs(20);

/// How the fake server behaves.
#[derive(Clone, Default)]
struct Behavior {
    /// Answer EPSV with 500, as a server without RFC 2428 does.
    no_epsv: bool,
    /// On RETR, send half the file and then drop both connections.
    drop_mid_retr: bool,
    /// Greet with this line instead of `220 ready`.
    greeting: Option<&'static str>,
    /// Connections to serve before the thread ends.
    connections: usize,
    /// Offer `HASH SHA-256` in FEAT and answer HASH: truthfully, or with a wrong digest.
    hash: Option<HashAnswer>,
    /// Answer NOOP with 502, as aioftp does.
    no_noop: bool,
    /// Answer EPRT with 500, as a server without RFC 2428 does.
    no_eprt: bool,
    /// Take REST (350), then refuse the STOR after it with 550, as a server that
    /// resumes downloads only.
    rest_for_retr_only: bool,
    /// Offer `MLST` in FEAT and answer MLSD with `type` facts.
    mlsd: bool,
    /// Directories of the current directory: listed by NLST and MLSD, refused by
    /// SIZE and RETR with 550.
    dirs: &'static [&'static str],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HashAnswer {
    Truth,
    Lie,
}

/// A scripted in-process FTP server on a port-0 listener, serving `connections`
/// sessions one after another, recording every command line it receives.
struct FakeServer {
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl FakeServer {
    fn start(behavior: Behavior) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let files = Arc::new(Mutex::new(HashMap::new()));
        let (l, f) = (Arc::clone(&log), Arc::clone(&files));
        thread::Builder::new()
            .name("fake-ftp".into())
            .spawn(move || {
                for _ in 0..behavior.connections.max(1) {
                    let Ok((stream, _)) = listener.accept() else {
                        return;
                    };
                    // A session ends on any I/O error; the tests look at the client.
                    let _ = serve(stream, &behavior, &l, &f);
                }
            })
            .expect("spawn");
        FakeServer { port, log, files }
    }

    fn with_file(self, name: &str, bytes: &[u8]) -> FakeServer {
        self.files
            .lock()
            .expect("lock")
            .insert(name.into(), bytes.into());
        self
    }

    fn commands(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }

    fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.files.lock().expect("lock").get(name).cloned()
    }

    fn connect(&self) -> Client {
        let mut c = Client::connect("127.0.0.1", self.port, TIMEOUT).expect("connect");
        c.login("anonymous", "anonymous@").expect("login");
        c.binary().expect("binary");
        c
    }
}

fn serve(
    stream: TcpStream,
    behavior: &Behavior,
    log: &Mutex<Vec<String>>,
    files: &Mutex<HashMap<String, Vec<u8>>>,
) -> io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    writeln!(out, "{}\r", behavior.greeting.unwrap_or("220 ready"))?;
    let mut passive: Option<DataPlan> = None;
    let mut cwd = "/".to_owned();
    let mut renaming: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_owned();
        log.lock().expect("lock").push(line.clone());
        let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
        let reply = match verb {
            "USER" => "331 password please".to_owned(),
            "PASS" => "230 welcome".to_owned(),
            "NOOP" if behavior.no_noop => "502 not implemented".to_owned(),
            "TYPE" | "NOOP" => "200 ok".to_owned(),
            "EPSV" if behavior.no_epsv => "500 what is EPSV".to_owned(),
            "EPSV" | "PASV" => {
                let l = TcpListener::bind("127.0.0.1:0")?;
                let port = l.local_addr()?.port();
                passive = Some(DataPlan::Passive(l));
                if verb == "EPSV" {
                    format!("229 Entering Extended Passive Mode (|||{port}|)")
                } else {
                    format!(
                        "227 Entering Passive Mode (127,0,0,1,{},{}).",
                        port >> 8,
                        port & 0xff
                    )
                }
            }
            "EPRT" | "PORT" if behavior.no_eprt && verb == "EPRT" => "500 what is EPRT".to_owned(),
            "EPRT" | "PORT" => match parse_active(verb, arg) {
                Some(addr) => {
                    passive = Some(DataPlan::Active(addr));
                    "200 ok".to_owned()
                }
                None => "501 bad address".to_owned(),
            },
            "FEAT" if behavior.hash.is_some() || behavior.mlsd => {
                let mut lines = "211-Features:\r\n".to_owned();
                if behavior.hash.is_some() {
                    lines.push_str(" HASH SHA-256*\r\n");
                }
                if behavior.mlsd {
                    lines.push_str(" MLST type*;size*;\r\n");
                }
                lines + "211 End"
            }
            "HASH" if behavior.hash.is_some() => match files.lock().expect("lock").get(arg) {
                Some(bytes) => {
                    let mut digest = sha256_hex(bytes);
                    if behavior.hash == Some(HashAnswer::Lie) {
                        digest = digest.replace(|c: char| c != '0', "0");
                    }
                    format!("213 SHA-256 0-{} {digest} {arg}", bytes.len())
                }
                None => "550 no such file".to_owned(),
            },
            "SIZE" if behavior.dirs.contains(&arg) => "550 not a plain file".to_owned(),
            "SIZE" => match files.lock().expect("lock").get(arg) {
                Some(bytes) => format!("213 {}", bytes.len()),
                None => "550 no such file".to_owned(),
            },
            "RETR" => {
                let bytes = files.lock().expect("lock").get(arg).cloned();
                let (Some(bytes), Some(l)) = (bytes, passive.take()) else {
                    writeln!(out, "550 no such file\r")?;
                    continue;
                };
                writeln!(out, "150 here it comes ({} bytes)\r", bytes.len())?;
                let mut data = l.open()?;
                if behavior.drop_mid_retr {
                    data.write_all(&bytes[..bytes.len() / 2])?;
                    return Ok(());
                }
                // A client that closes the data connection early gets 426, as from a
                // real server.
                let sent = data.write_all(&bytes);
                drop(data);
                match sent {
                    Ok(()) => "226 done".to_owned(),
                    Err(_) => "426 connection closed; transfer aborted".to_owned(),
                }
            }
            "REST" if behavior.rest_for_retr_only => "350 restarting".to_owned(),
            "STOR"
                if behavior.rest_for_retr_only && commands_before(log, 1).starts_with("REST") =>
            {
                "550 no REST for STOR here".to_owned()
            }
            "STOR" => {
                let Some(l) = passive.take() else {
                    writeln!(out, "425 no data connection\r")?;
                    continue;
                };
                writeln!(out, "150 send it\r")?;
                let mut data = l.open()?;
                let mut bytes = Vec::new();
                data.read_to_end(&mut bytes)?;
                files.lock().expect("lock").insert(arg.into(), bytes);
                "226 stored".to_owned()
            }
            "APPE" => {
                let Some(l) = passive.take() else {
                    writeln!(out, "425 no data connection\r")?;
                    continue;
                };
                writeln!(out, "150 send the rest\r")?;
                let mut data = l.open()?;
                let mut bytes = Vec::new();
                data.read_to_end(&mut bytes)?;
                let mut files = files.lock().expect("lock");
                files
                    .entry(arg.into())
                    .or_default()
                    .extend_from_slice(&bytes);
                "226 appended".to_owned()
            }
            "NLST" | "LIST" | "MLSD" if verb != "MLSD" || behavior.mlsd => {
                let Some(l) = passive.take() else {
                    writeln!(out, "425 no data connection\r")?;
                    continue;
                };
                writeln!(out, "150 listing\r")?;
                let mut data = l.open()?;
                let mut entries: Vec<(String, String)> = files
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|(n, b)| (n.clone(), format!("type=file;size={};", b.len())))
                    .chain(
                        behavior
                            .dirs
                            .iter()
                            .map(|d| (d.to_string(), "type=dir;".into())),
                    )
                    .collect();
                entries.sort();
                if verb == "MLSD" {
                    write!(data, "type=cdir; {cwd}\r\ntype=pdir; ..\r\n")?;
                }
                for (name, facts) in entries {
                    if verb == "MLSD" {
                        write!(data, "{facts} {name}\r\n")?;
                    } else {
                        write!(data, "{name}\r\n")?;
                    }
                }
                drop(data);
                "226 listed".to_owned()
            }
            "PWD" => format!(
                "257 \"{}\" is the current directory",
                cwd.replace('"', "\"\"")
            ),
            "CWD" => match arg {
                "missing" => "550 no such directory".to_owned(),
                "/" => {
                    cwd = "/".to_owned();
                    "250 ok".to_owned()
                }
                _ => {
                    cwd = format!("{}/{arg}", cwd.trim_end_matches('/'));
                    "250 ok".to_owned()
                }
            },
            "CDUP" => {
                cwd = match cwd.rsplit_once('/') {
                    Some(("", _)) | None => "/".to_owned(),
                    Some((parent, _)) => parent.to_owned(),
                };
                "200 ok".to_owned()
            }
            "MKD" => format!("257 \"{arg}\" created"),
            "RMD" | "DELE" if files.lock().expect("lock").remove(arg).is_some() => {
                "250 removed".to_owned()
            }
            "RMD" | "DELE" => "550 no such file".to_owned(),
            "RNFR" if files.lock().expect("lock").contains_key(arg) => {
                renaming = Some(arg.to_owned());
                "350 and the new name?".to_owned()
            }
            "RNFR" => "550 no such file".to_owned(),
            "RNTO" => match renaming.take() {
                Some(from) => {
                    let mut files = files.lock().expect("lock");
                    if let Some(bytes) = files.remove(&from) {
                        files.insert(arg.to_owned(), bytes);
                    }
                    "250 renamed".to_owned()
                }
                None => "503 RNFR first".to_owned(),
            },
            "ABOR" => "226 ABOR done".to_owned(),
            "QUIT" => {
                writeln!(out, "221 bye\r")?;
                return Ok(());
            }
            _ => "502 not here".to_owned(),
        };
        writeln!(out, "{reply}\r")?;
    }
}

/// How the fake server's next data connection is made.
enum DataPlan {
    /// It accepts on this listener (after EPSV or PASV).
    Passive(TcpListener),
    /// It connects to the client here (after EPRT or PORT).
    Active(SocketAddr),
}

impl DataPlan {
    fn open(self) -> io::Result<TcpStream> {
        match self {
            DataPlan::Passive(l) => l.accept().map(|(s, _)| s),
            DataPlan::Active(addr) => TcpStream::connect_timeout(&addr, TIMEOUT),
        }
    }
}

/// The address of `EPRT |1|a.b.c.d|port|` or `PORT a,b,c,d,p1,p2`.
fn parse_active(verb: &str, arg: &str) -> Option<SocketAddr> {
    if verb == "PORT" {
        return crate::protocol::parse_host_port(arg);
    }
    let parts: Vec<&str> = arg.split('|').collect();
    match parts.as_slice() {
        ["", "1" | "2", host, port, ""] => {
            Some(SocketAddr::new(host.parse().ok()?, port.parse().ok()?))
        }
        _ => None,
    }
}

/// The command `back` lines before the one just logged.
fn commands_before(log: &Mutex<Vec<String>>, back: usize) -> String {
    let log = log.lock().expect("lock");
    log.len()
        .checked_sub(back + 1)
        .and_then(|i| log.get(i).cloned())
        .unwrap_or_default()
}

fn all_bytes() -> Vec<u8> {
    (0..=255u8).cycle().take(300_000).collect()
}

#[test]
fn get_streams_the_file_and_reports_progress() {
    let server = FakeServer::start(Behavior::default()).with_file("a.bin", &all_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    let mut seen = Vec::new();
    let local = dir.path().join("a.bin");
    let n = client.get("a.bin", &local, |p| seen.push(p)).expect("get");
    assert_eq!(n.bytes, 300_000);
    assert_eq!(std::fs::read(&local).expect("read"), all_bytes());
    assert_eq!(
        seen.first(),
        Some(&Progress {
            done: 0,
            total: Some(300_000)
        })
    );
    assert_eq!(seen.last().map(|p| p.done), Some(300_000));
    client.quit().expect("quit");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        1,
        "no temporary file is left"
    );
}

#[test]
fn put_sends_the_file_and_the_server_gets_every_byte() {
    let server = FakeServer::start(Behavior::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("up.bin");
    std::fs::write(&local, all_bytes()).expect("write");
    let mut client = server.connect();
    let mut last = None;
    let n = client
        .put(&local, "up.bin", |p| last = Some(p))
        .expect("put");
    assert_eq!(n.bytes, 300_000);
    assert_eq!(
        last,
        Some(Progress {
            done: 300_000,
            total: Some(300_000)
        })
    );
    client.quit().expect("quit");
    assert_eq!(server.file("up.bin"), Some(all_bytes()));
}

#[test]
fn put_of_missing_local_file_is_a_local_error_and_sends_nothing() {
    let server = FakeServer::start(Behavior::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    let err = client
        .put(&dir.path().join("nope"), "nope", |_| {})
        .expect_err("must fail");
    assert!(matches!(err, ClientError::LocalFile { .. }), "{err}");
    assert!(client.is_usable());
    client.quit().expect("quit");
    assert!(!server.commands().iter().any(|c| c.starts_with("STOR")));
}

#[test]
fn get_of_missing_file_leaves_no_local_file_and_keeps_an_existing_one() {
    let server = FakeServer::start(Behavior::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    let fresh = dir.path().join("missing.txt");
    let err = client.get("missing.txt", &fresh, |_| {}).expect_err("550");
    assert_eq!(err.reply_code(), Some(550), "{err}");
    assert!(!fresh.exists());
    let kept = dir.path().join("kept.txt");
    std::fs::write(&kept, "good copy").expect("write");
    let err = client.get("kept.txt", &kept, |_| {}).expect_err("550");
    assert!(matches!(
        err,
        ClientError::UnexpectedReply { code: 550, .. }
    ));
    assert_eq!(std::fs::read_to_string(&kept).expect("read"), "good copy");
    assert!(
        client.is_usable(),
        "a refusal does not break the connection"
    );
    client.quit().expect("quit");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
}

#[test]
fn dropped_connection_mid_get_removes_the_partial_file() {
    let behavior = Behavior {
        drop_mid_retr: true,
        ..Behavior::default()
    };
    let server = FakeServer::start(behavior).with_file("big", &all_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("big");
    std::fs::write(&local, "old copy").expect("write");
    let mut client = server.connect();
    let err = client.get("big", &local, |_| {}).expect_err("dropped");
    assert!(matches!(err, ClientError::Dropped(_)), "{err}");
    assert!(!client.is_usable());
    assert_eq!(std::fs::read_to_string(&local).expect("read"), "old copy");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    let again = client.noop().expect_err("unusable");
    assert!(matches!(again, ClientError::Dropped(_)));
}

#[test]
fn server_without_epsv_gets_pasv_and_is_remembered() {
    let behavior = Behavior {
        no_epsv: true,
        ..Behavior::default()
    };
    let server = FakeServer::start(behavior).with_file("f", b"one");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    client
        .get("f", &dir.path().join("f"), |_| {})
        .expect("first");
    assert!(!client.uses_epsv());
    assert_eq!(client.nlst(None).expect("nlst"), vec!["f".to_owned()]);
    client.quit().expect("quit");
    let epsv = server.commands().iter().filter(|c| *c == "EPSV").count();
    let pasv = server.commands().iter().filter(|c| *c == "PASV").count();
    assert_eq!((epsv, pasv), (1, 2));
}

#[test]
fn busy_greeting_is_the_server_saying_no() {
    let behavior = Behavior {
        greeting: Some("421 Too many connections"),
        ..Behavior::default()
    };
    let server = FakeServer::start(behavior);
    let err = Client::connect("127.0.0.1", server.port, TIMEOUT).expect_err("421");
    assert_eq!(err.reply_code(), Some(421), "{err}");
}

#[test]
fn multi_line_greeting_is_read_whole() {
    let behavior = Behavior {
        greeting: Some("220-Welcome\r\n to the test\r\n220 ready"),
        ..Behavior::default()
    };
    let server = FakeServer::start(behavior);
    let mut client = server.connect();
    assert_eq!(client.greeting(), "Welcome\n to the test\nready");
    client
        .noop()
        .expect("still in step after the multi-line reply");
    client.quit().expect("quit");
}

#[test]
fn closed_port_is_could_not_connect() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let err = Client::connect("127.0.0.1", port, TIMEOUT).expect_err("refused");
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

#[test]
fn silent_server_is_a_timeout() {
    // The kernel completes the handshake from the backlog; nobody ever greets.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let err = Client::connect("127.0.0.1", port, Duration::from_millis(300)).expect_err("silent");
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    drop(listener);
}

#[test]
fn line_breaks_in_names_are_never_sent() {
    let server = FakeServer::start(Behavior::default());
    let mut client = server.connect();
    let err = client.size("a\r\nDELE b").expect_err("refused");
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    client.quit().expect("quit");
    assert!(!server.commands().iter().any(|c| c.starts_with("DELE")));
}

#[test]
fn epsv_and_pasv_replies_parse() {
    assert_eq!(
        parse_epsv_reply("Entering Extended Passive Mode (|||6446|)"),
        Some(6446)
    );
    assert_eq!(parse_epsv_reply("ok (!!!21!)"), Some(21));
    assert_eq!(parse_epsv_reply("(|||0|)"), None);
    assert_eq!(parse_epsv_reply("(||1.2.3.4|21|)"), None);
    assert_eq!(parse_epsv_reply("no parens |||21|"), None);
    assert_eq!(
        parse_pasv_reply("Entering Passive Mode (127,0,0,1,200,10)."),
        Some(200 * 256 + 10)
    );
    assert_eq!(
        parse_pasv_reply("Entering Passive Mode 10,0,0,1,4,1"),
        Some(1025)
    );
    assert_eq!(parse_pasv_reply("=127, 0, 0, 1, 4, 1"), Some(1025));
    assert_eq!(parse_pasv_reply("Entering Passive Mode (1,2,3)"), None);
}

/// Records what the REPL shows.
#[derive(Default)]
struct Recorder {
    results: Vec<String>,
    errors: Vec<String>,
}

impl Ui for Recorder {
    fn result(&mut self, line: &str) {
        self.results.push(line.to_owned());
    }
    fn error(&mut self, message: &str) {
        self.errors.push(message.to_owned());
    }
}

#[test]
fn repl_commands_before_open_say_not_connected_and_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    for line in ["GET a", "PUT a", "LS", "CLOSE"] {
        assert_eq!(repl.run_line(line, &mut ui), Flow::Continue);
    }
    assert_eq!(ui.errors.len(), 4);
    assert!(
        ui.errors.iter().all(|e| e.contains("not connected")),
        "{:?}",
        ui.errors
    );
    assert_eq!(repl.run_line("HELP", &mut ui), Flow::Continue);
    assert_eq!(repl.run_line("STATUS", &mut ui), Flow::Continue);
    assert_eq!(repl.run_line("quit", &mut ui), Flow::Quit);
    assert_eq!(repl.failures(), 4);
}

#[test]
fn status_works_against_a_server_without_noop() {
    let server = FakeServer::start(Behavior {
        no_noop: true,
        ..Behavior::default()
    });
    let mut client = server.connect();
    client
        .noop()
        .expect("a 502 to NOOP still proves the server answers");
    assert!(client.is_usable());
}

#[test]
fn get_into_a_missing_local_directory_names_it_not_a_temporary_file() {
    let server = FakeServer::start(Behavior::default()).with_file("sub/b.bin", b"bytes");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    let target = dir.path().join("sub/b.bin");
    let err = client
        .get("sub/b.bin", &target, |_| {})
        .expect_err("no local sub/");
    let text = err.to_string();
    assert!(text.contains("no local directory"), "{text}");
    assert!(!text.contains(DOWNLOAD_PREFIX), "{text}");
    assert!(!target.exists());
    // Nothing was asked of the server, and the client goes on.
    assert!(!server.commands().iter().any(|c| c.starts_with("RETR")));
    assert!(client.is_usable());
}

#[test]
fn repl_refuses_names_outside_the_local_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    repl.run_line("GET ../x", &mut ui);
    repl.run_line("PUT /etc/passwd", &mut ui);
    assert_eq!(repl.failures(), 2);
    assert!(ui
        .errors
        .iter()
        .all(|e| e.contains("would leave the local directory")));
}

#[test]
fn repl_survives_a_failed_open() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    assert_eq!(
        repl.run_line(&format!("OPEN {port}"), &mut ui),
        Flow::Continue
    );
    assert!(!repl.is_connected());
    assert!(ui.errors[0].contains("cannot connect"), "{:?}", ui.errors);
}

#[test]
fn repl_after_a_drop_mid_get_is_not_connected_and_can_open_again() {
    let behavior = Behavior {
        drop_mid_retr: true,
        connections: 1,
        ..Behavior::default()
    };
    let dropping = FakeServer::start(behavior).with_file("big", &all_bytes());
    let good = FakeServer::start(Behavior::default()).with_file("small", b"hello");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    repl.run_line(&format!("OPEN {}", dropping.port), &mut ui);
    repl.run_line("GET big", &mut ui);
    assert!(!repl.is_connected());
    assert!(ui.errors[0].contains("disconnected"), "{:?}", ui.errors);
    assert!(!dir.path().join("big").exists());
    repl.run_line("GET big", &mut ui);
    assert!(ui.errors[1].contains("not connected"), "{:?}", ui.errors);
    repl.run_line(&format!("OPEN {}", good.port), &mut ui);
    repl.run_line("GET small", &mut ui);
    assert_eq!(
        std::fs::read(dir.path().join("small")).expect("read"),
        b"hello"
    );
    assert_eq!(repl.failures(), 2);
}

#[test]
fn repl_open_while_connected_closes_the_old_connection_first() {
    let first = FakeServer::start(Behavior::default());
    let second = FakeServer::start(Behavior::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    repl.run_line(&format!("OPEN {}", first.port), &mut ui);
    repl.run_line(&format!("OPEN 127.0.0.1:{}", second.port), &mut ui);
    assert!(ui.errors.is_empty(), "{:?}", ui.errors);
    assert!(
        ui.results
            .iter()
            .any(|l| l.contains("closed the connection")),
        "{:?}",
        ui.results
    );
    assert_eq!(first.commands().last().map(String::as_str), Some("QUIT"));
    assert_eq!(repl.run_line("CLOSE", &mut ui), Flow::Continue);
    assert_eq!(second.commands().last().map(String::as_str), Some("QUIT"));
    assert_eq!(repl.failures(), 0);
}

#[test]
fn repl_user_changes_the_next_login() {
    let server = FakeServer::start(Behavior::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    repl.run_line("USER bob pw", &mut ui);
    repl.run_line(&format!("OPEN {}", server.port), &mut ui);
    repl.run_line("QUIT", &mut ui);
    let cmds = server.commands();
    assert_eq!(cmds[..2], ["USER bob".to_owned(), "PASS pw".to_owned()]);
}

#[test]
fn transfers_are_verified_when_the_server_offers_hash() {
    let server = FakeServer::start(Behavior {
        hash: Some(HashAnswer::Truth),
        ..Behavior::default()
    })
    .with_file("a.bin", &all_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    let local = dir.path().join("a.bin");
    let got = client.get("a.bin", &local, |_| {}).expect("get");
    assert_eq!(
        got,
        Transferred {
            bytes: 300_000,
            verified: true
        }
    );
    let sent = client.put(&local, "b.bin", |_| {}).expect("put");
    assert!(sent.verified);
    client.quit().expect("quit");
    let hashes: Vec<String> = server
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("HASH") || c.starts_with("FEAT"))
        .collect();
    assert_eq!(
        hashes,
        ["FEAT", "HASH a.bin", "HASH b.bin"],
        "FEAT is asked once"
    );
}

#[test]
fn a_download_that_differs_from_the_servers_hash_is_not_kept() {
    let server = FakeServer::start(Behavior {
        hash: Some(HashAnswer::Lie),
        ..Behavior::default()
    })
    .with_file("a.bin", &all_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("a.bin");
    std::fs::write(&local, b"my good copy").expect("write");
    let mut client = server.connect();
    let err = client.get("a.bin", &local, |_| {}).expect_err("mismatch");
    assert!(matches!(err, ClientError::Mismatch { .. }), "{err}");
    assert_eq!(std::fs::read(&local).expect("read"), b"my good copy");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    let err = client.put(&local, "up.bin", |_| {}).expect_err("mismatch");
    assert!(matches!(err, ClientError::Mismatch { .. }), "{err}");
    // Verification off: the same transfer is accepted, unverified.
    client.set_verify(false);
    let got = client.get("a.bin", &local, |_| {}).expect("get");
    assert_eq!(
        got,
        Transferred {
            bytes: 300_000,
            verified: false
        }
    );
    assert_eq!(std::fs::read(&local).expect("read"), all_bytes());
}

#[test]
fn an_interrupted_download_sends_abor_leaves_nothing_and_the_client_goes_on() {
    let big: Vec<u8> = (0..=255u8).cycle().take(8 << 20).collect();
    let server = FakeServer::start(Behavior::default()).with_file("big.bin", &big);
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("big.bin");
    std::fs::write(&local, b"keep me").expect("write");
    let mut client = server.connect();
    let interrupt = Interrupt::new();
    client.set_interrupt(Arc::clone(&interrupt));
    // Ctrl-C as the transfer starts: the callback runs while it is in progress.
    let err = client
        .get("big.bin", &local, |_| {
            assert!(interrupt.request(), "a transfer is running");
        })
        .expect_err("interrupted");
    assert!(matches!(err, ClientError::Interrupted), "{err}");
    assert_eq!(std::fs::read(&local).expect("read"), b"keep me");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        1,
        "no temp file"
    );
    assert!(!interrupt.request(), "no transfer is running now");
    // The control connection is in step: the next transfer works.
    client.noop().expect("noop");
    let small = dir.path().join("small.bin");
    let server_file = server.file("big.bin").expect("file");
    assert_eq!(server_file.len(), 8 << 20);
    client.put(&local, "small.bin", |_| {}).expect("put");
    assert!(server.commands().contains(&"ABOR".to_owned()));
    drop(small);
}

#[test]
fn an_interrupted_upload_sends_abor_before_closing_the_data_connection() {
    let server = FakeServer::start(Behavior::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("up.bin");
    std::fs::write(&local, vec![7u8; 4 << 20]).expect("write");
    let mut client = server.connect();
    let interrupt = Interrupt::new();
    client.set_interrupt(Arc::clone(&interrupt));
    let err = client
        .put(&local, "up.bin", |_| {
            interrupt.request();
        })
        .expect_err("interrupted");
    assert!(matches!(err, ClientError::Interrupted), "{err}");
    client.noop().expect("the connection is still in step");
    let commands = server.commands();
    let stor = commands
        .iter()
        .position(|c| c == "STOR up.bin")
        .expect("STOR");
    assert_eq!(commands.get(stor + 1).map(String::as_str), Some("ABOR"));
}

#[test]
fn get_into_a_writer_receives_every_byte_and_is_verified_by_hash() {
    let server = FakeServer::start(Behavior {
        hash: Some(HashAnswer::Truth),
        ..Behavior::default()
    })
    .with_file("a.bin", &all_bytes());
    let mut client = server.connect();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let got = client
        .get_into("a.bin", &mut out, |p| seen.push(p))
        .expect("get_into");
    assert_eq!(
        got,
        Transferred {
            bytes: 300_000,
            verified: true
        }
    );
    assert_eq!(sha256_hex(&out), sha256_hex(&all_bytes()));
    assert_eq!(seen.last().map(|p| p.done), Some(300_000));
    // A missing file is the server saying no, and the session goes on.
    let err = client
        .get_into("missing.bin", &mut Vec::new(), |_| {})
        .expect_err("missing");
    assert_eq!(err.reply_code(), Some(550), "{err}");
    client.set_verify(false);
    let mut again = Vec::new();
    let got = client.get_into("a.bin", &mut again, |_| {}).expect("again");
    assert!(!got.verified);
    assert_eq!(again, all_bytes());
    client.quit().expect("quit");
    let hashes: Vec<String> = server
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("HASH"))
        .collect();
    assert_eq!(
        hashes,
        ["HASH a.bin"],
        "verified once, while verification was on"
    );
}

#[test]
fn get_into_a_writer_that_differs_from_the_servers_hash_is_a_mismatch() {
    let server = FakeServer::start(Behavior {
        hash: Some(HashAnswer::Lie),
        ..Behavior::default()
    })
    .with_file("a.bin", &all_bytes());
    let mut client = server.connect();
    let err = client
        .get_into("a.bin", &mut Vec::new(), |_| {})
        .expect_err("mismatch");
    assert!(matches!(err, ClientError::Mismatch { .. }), "{err}");
}

/// A writer that accepts `room` bytes and then fails, as a full disk would.
struct Full {
    room: usize,
}

impl std::io::Write for Full {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("no space left"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn get_into_a_failing_writer_is_a_local_error() {
    let server = FakeServer::start(Behavior::default()).with_file("a.bin", &all_bytes());
    let mut client = server.connect();
    let err = client
        .get_into("a.bin", &mut Full { room: 1000 }, |_| {})
        .expect_err("writer fails");
    assert!(
        matches!(&err, ClientError::LocalFile { path, .. } if path.as_os_str() == "(output)"),
        "{err}"
    );
}

#[test]
fn a_data_connection_carries_the_timeout_and_gives_up_after_it() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let wait = Duration::from_millis(300);
    let stream = connect_with_timeouts(addr, wait).expect("connect");
    assert_eq!(stream.read_timeout().expect("read timeout"), Some(wait));
    assert_eq!(stream.write_timeout().expect("write timeout"), Some(wait));

    // A listener whose queue is full drops new SYNs, as a silent firewall does: the
    // connect gives up after the timeout instead of the kernel's minutes of retries.
    let fd = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::STREAM,
        None,
    )
    .expect("socket");
    rustix::net::bind(&fd, &std::net::SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    rustix::net::listen(&fd, 0).expect("listen");
    let full = std::net::TcpListener::from(fd);
    let addr = full.local_addr().expect("addr");
    let started = std::time::Instant::now();
    let mut kept = Vec::new();
    let timed_out = (0..8).find_map(|_| match connect_with_timeouts(addr, wait) {
        Ok(s) => {
            kept.push(s);
            None
        }
        Err(e) => Some(e),
    });
    let e = timed_out.expect("a connect past the full queue fails");
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up after {:?}",
        started.elapsed()
    );
}

#[test]
fn directory_commands_send_their_verbs_and_read_their_replies() {
    let server = FakeServer::start(Behavior::default())
        .with_file("a.txt", b"a")
        .with_file("old", b"")
        .with_file("gone.txt", b"x");
    let mut client = server.connect();
    assert_eq!(client.pwd().expect("pwd"), "/");
    client.cwd("sub").expect("cwd");
    client.cwd("say \"hi\"").expect("cwd");
    assert_eq!(client.pwd().expect("pwd"), "/sub/say \"hi\"");
    client.cdup().expect("cdup");
    assert_eq!(client.pwd().expect("pwd"), "/sub");
    let err = client.cwd("missing").expect_err("550");
    assert_eq!(err.reply_code(), Some(550), "{err}");
    assert_eq!(client.mkdir("new").expect("mkd"), "new");
    client.rmdir("old").expect("rmd");
    client.delete("gone.txt").expect("dele");
    assert_eq!(
        client.delete("gone.txt").expect_err("550").reply_code(),
        Some(550)
    );
    client.rename("a.txt", "b.txt").expect("rename");
    assert_eq!(
        client
            .rename("a.txt", "c.txt")
            .expect_err("550")
            .reply_code(),
        Some(550)
    );
    assert!(client.is_usable(), "refusals keep the session");
    client.quit().expect("quit");
    assert_eq!(server.file("b.txt"), Some(b"a".to_vec()));
    assert!(server.file("gone.txt").is_none());
    let sent: Vec<String> = server.commands().into_iter().skip(3).collect();
    assert_eq!(
        sent,
        [
            "PWD",
            "CWD sub",
            "CWD say \"hi\"",
            "PWD",
            "CDUP",
            "PWD",
            "CWD missing",
            "MKD new",
            "RMD old",
            "DELE gone.txt",
            "DELE gone.txt",
            "RNFR a.txt",
            "RNTO b.txt",
            "RNFR a.txt",
            "QUIT"
        ]
    );
}

#[test]
fn parse_257_reads_quoted_paths() {
    assert_eq!(parse_257_path("\"/a\" is current"), Some("/a".into()));
    assert_eq!(
        parse_257_path("\"/say \"\"hi\"\"\" ok"),
        Some("/say \"hi\"".into())
    );
    assert_eq!(parse_257_path("MKD done"), None);
    assert_eq!(parse_257_path("\"/open"), None);
}

#[test]
fn repl_user_anonymous_needs_no_password_and_the_prompt_shows_the_directory() {
    let server = FakeServer::start(Behavior::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::new(dir.path().to_owned(), "bob".into(), None, TIMEOUT);
    let mut ui = Recorder::default();
    assert_eq!(repl.prompt(), "ftp> ");
    repl.run_line("USER anonymous", &mut ui);
    // A Ui that was asked for a password would have answered None (an empty PASS).
    repl.run_line(&format!("OPEN {}", server.port), &mut ui);
    assert_eq!(repl.prompt(), format!("ftp 127.0.0.1:{}:/> ", server.port));
    repl.run_line("CD sub", &mut ui);
    assert_eq!(
        repl.prompt(),
        format!("ftp 127.0.0.1:{}:/sub> ", server.port)
    );
    repl.run_line("QUIT", &mut ui);
    assert!(ui.errors.is_empty(), "{:?}", ui.errors);
    let cmds = server.commands();
    assert_eq!(
        cmds[..2],
        ["USER anonymous".to_owned(), "PASS anonymous@".to_owned()]
    );
    assert!(
        ui.results.contains(&"CD: /sub".to_owned()),
        "{:?}",
        ui.results
    );
}

#[test]
fn repl_lcd_stays_inside_the_starting_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("sub/deeper")).expect("mkdir");
    std::fs::write(dir.path().join("file"), b"x").expect("write");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    repl.run_line("LCD sub", &mut ui);
    repl.run_line("LCD deeper", &mut ui);
    assert_eq!(repl.dir(), dir.path().join("sub/deeper"));
    repl.run_line("LCD ../..", &mut ui);
    assert_eq!(repl.dir(), dir.path());
    assert_eq!(repl.failures(), 0, "{:?}", ui.errors);
    for bad in ["..", "/tmp", "sub/../..", "file", "missing"] {
        repl.run_line(&format!("LCD {bad}"), &mut ui);
        assert_eq!(repl.dir(), dir.path(), "{bad}");
    }
    assert_eq!(repl.failures(), 5);
    assert!(
        ui.errors[0].contains("would leave the local directory"),
        "{:?}",
        ui.errors
    );
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/", dir.path().join("out")).expect("symlink");
        repl.run_line("LCD out", &mut ui);
        assert_eq!(repl.dir(), dir.path());
        assert!(
            ui.errors[5].contains("would leave the local directory"),
            "{:?}",
            ui.errors
        );
    }
}

#[test]
fn mget_refuses_server_names_that_leave_the_local_directory_and_fetches_the_rest() {
    let server = FakeServer::start(Behavior {
        hash: Some(HashAnswer::Truth),
        ..Behavior::default()
    })
    .with_file("a.txt", b"alpha")
    .with_file("b.txt", &all_bytes())
    .with_file("c.bin", b"not matched")
    .with_file("../up.txt", b"evil")
    .with_file("/tmp/abs.txt", b"evil");
    let top = tempfile::tempdir().expect("tempdir");
    let dir = top.path().join("local");
    std::fs::create_dir(&dir).expect("mkdir");
    let mut client = server.connect();
    let mut events = Vec::new();
    let patterns = ["*.txt".to_owned(), ".*".to_owned(), "*.zip".to_owned()];
    let batch = client
        .get_matching(&patterns, &dir, |e| {
            if let super::many::BatchEvent::Done { name, result } = e {
                events.push((name.to_owned(), result.is_ok()));
            }
        })
        .expect("listing");
    // The fake server's NLST lists every key; the two that leave are refused
    // (`*` matches the `/` in a name the server sends, and `.*` a leading `..`).
    assert_eq!(
        events,
        [
            ("../up.txt".to_owned(), false),
            ("/tmp/abs.txt".to_owned(), false),
            ("a.txt".to_owned(), true),
            ("b.txt".to_owned(), true)
        ]
    );
    assert_eq!(batch.unmatched, ["*.zip"]);
    assert_eq!((batch.succeeded(), batch.failures()), (2, 3));
    assert_eq!(batch.bytes(), 5 + 300_000);
    let refused = batch.files[0].1.as_ref().expect_err("refused").to_string();
    assert!(
        refused.contains("would leave the local directory"),
        "{refused}"
    );
    assert_eq!(std::fs::read(dir.join("a.txt")).expect("a"), b"alpha");
    assert_eq!(std::fs::read(dir.join("b.txt")).expect("b"), all_bytes());
    let mut names: Vec<String> = std::fs::read_dir(top.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["local"], "nothing outside the local directory");
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        2,
        "no debris"
    );
    assert!(!server
        .commands()
        .iter()
        .any(|c| c.contains("up.txt") && c.starts_with("RETR")));
    client.quit().expect("quit");
}

#[test]
fn repl_mput_sends_matching_local_files_and_sums_up() {
    let server = FakeServer::start(Behavior::default());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("one.log"), b"1").expect("write");
    std::fs::write(dir.path().join("two.log"), b"22").expect("write");
    std::fs::write(dir.path().join(".hidden.log"), b"h").expect("write");
    std::fs::create_dir(dir.path().join("dir.log")).expect("mkdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    repl.run_line(&format!("OPEN {}", server.port), &mut ui);
    repl.run_line("MPUT *.log", &mut ui);
    assert!(ui.errors.is_empty(), "{:?}", ui.errors);
    assert_eq!(
        ui.results.last().map(String::as_str),
        Some("MPUT: 2 files, 3 B, 0 failures, 1 directory left out")
    );
    assert_eq!(server.file("one.log"), Some(b"1".to_vec()));
    assert_eq!(server.file("two.log"), Some(b"22".to_vec()));
    assert_eq!(server.file(".hidden.log"), None);
    repl.run_line("MPUT *.none", &mut ui);
    assert_eq!(repl.failures(), 1);
    assert_eq!(
        ui.errors,
        [
            "MPUT *.none: no file matches".to_owned(),
            "MPUT: 0 files, 0 B, 1 failure".to_owned()
        ]
    );
}

#[test]
fn repl_takes_credentials_from_netrc_until_user_chooses() {
    let server = FakeServer::start(Behavior {
        connections: 3,
        ..Behavior::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    repl.use_netrc(super::repl::parse_netrc(
        "machine 127.0.0.1 login bob password pw\nmachine other login x password y\n",
    ));
    let mut ui = Recorder::default();
    repl.run_line(&format!("OPEN {}", server.port), &mut ui);
    repl.run_line("CLOSE", &mut ui);
    repl.run_line("USER carol cpw", &mut ui);
    repl.run_line(&format!("OPEN {}", server.port), &mut ui);
    repl.run_line("QUIT", &mut ui);
    assert!(ui.errors.is_empty(), "{:?}", ui.errors);
    let logins: Vec<String> = server
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("USER") || c.starts_with("PASS"))
        .collect();
    assert_eq!(logins, ["USER bob", "PASS pw", "USER carol", "PASS cpw"]);
}

#[test]
fn reput_appends_where_the_server_refuses_rest_and_verifies_the_whole_file() {
    let server = FakeServer::start(Behavior {
        hash: Some(HashAnswer::Truth),
        ..Behavior::default()
    })
    .with_file("up.bin", &all_bytes()[..100_000]);
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("up.bin");
    std::fs::write(&local, all_bytes()).expect("write");
    let mut client = server.connect();
    let resumed = client.reput(&local, "up.bin", |_| {}).expect("reput");
    assert_eq!(resumed.from, 100_000);
    assert_eq!(
        resumed.done,
        Transferred {
            bytes: 200_000,
            verified: true
        }
    );
    assert_eq!(server.file("up.bin"), Some(all_bytes()));
    let sent = server.commands();
    let rest = sent.iter().position(|c| c == "REST 100000").expect("REST");
    assert_eq!(sent[rest + 1], "APPE up.bin", "{sent:?}");
    client.quit().expect("quit");
}

#[test]
fn reget_refused_by_the_server_keeps_the_partial_file() {
    // The fake server has no REST: REGET fails, and the partial file stays as it was.
    let server = FakeServer::start(Behavior::default()).with_file("a.bin", &all_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("a.bin");
    std::fs::write(&local, &all_bytes()[..1000]).expect("write");
    let mut client = server.connect();
    let err = client.reget("a.bin", &local, |_| {}).expect_err("no REST");
    assert_eq!(err.reply_code(), Some(502), "{err}");
    assert_eq!(std::fs::read(&local).expect("read"), &all_bytes()[..1000]);
    assert!(client.is_usable());
    std::fs::write(&local, all_bytes()).expect("write");
    std::fs::write(dir.path().join("longer"), vec![0u8; 300_001]).expect("write");
    let err = client
        .reget("a.bin", &dir.path().join("longer"), |_| {})
        .expect_err("longer");
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    client.quit().expect("quit");
}

#[test]
fn active_mode_names_our_address_with_eprt_or_port_and_moves_every_byte() {
    for no_eprt in [false, true] {
        let server = FakeServer::start(Behavior {
            no_eprt,
            ..Behavior::default()
        })
        .with_file("a.bin", &all_bytes());
        let dir = tempfile::tempdir().expect("tempdir");
        let mut client = server.connect();
        client.set_passive(false);
        assert!(!client.is_passive());
        let local = dir.path().join("a.bin");
        assert_eq!(
            client.get("a.bin", &local, |_| {}).expect("get").bytes,
            300_000
        );
        assert_eq!(std::fs::read(&local).expect("read"), all_bytes());
        client.put(&local, "b.bin", |_| {}).expect("put");
        assert_eq!(client.nlst(None).expect("nlst"), ["a.bin", "b.bin"]);
        client.quit().expect("quit");
        assert_eq!(server.file("b.bin"), Some(all_bytes()));
        let sent = server.commands();
        let eprt = sent
            .iter()
            .filter(|c| c.starts_with("EPRT |1|127.0.0.1|"))
            .count();
        let port = sent
            .iter()
            .filter(|c| c.starts_with("PORT 127,0,0,1,"))
            .count();
        let passive = sent.iter().filter(|c| *c == "EPSV" || *c == "PASV").count();
        // Without EPRT: asked once, then PORT for each of the three transfers.
        let want = if no_eprt { (1, 3) } else { (3, 0) };
        assert_eq!((eprt, port, passive), (want.0, want.1, 0), "{sent:?}");
    }
}

#[test]
fn active_mode_gives_up_when_the_server_never_connects() {
    // A server that says 150 but never connects: the wait ends at the timeout and
    // the server's own answer is read, so the session stays in step.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut out = stream.try_clone().expect("clone");
        let mut input = BufReader::new(stream);
        writeln!(out, "220 ready\r").expect("write");
        let mut line = String::new();
        while input.read_line(&mut line).is_ok_and(|n| n > 0) {
            let reply = match line.split_whitespace().next().unwrap_or("") {
                "EPRT" => "200 ok",
                "RETR" => "150 coming (never)\r\n425 could not connect",
                "NOOP" => "200 ok",
                _ => "221 bye",
            };
            writeln!(out, "{reply}\r").expect("write");
            line.clear();
        }
    });
    let mut client =
        Client::connect("127.0.0.1", port, Duration::from_millis(500)).expect("connect");
    client.set_passive(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let err = client
        .get("a", &dir.path().join("a"), |_| {})
        .expect_err("no data connection");
    assert!(matches!(err, ClientError::Timeout(_)), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    client.noop().expect("in step");
    client.quit().expect("quit");
    server.join().expect("server thread");
}

#[test]
fn repl_lists_remote_names_for_completion_once_until_something_changes() {
    let server = FakeServer::start(Behavior::default()).with_file("a.txt", b"a");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("b.txt"), b"b").expect("write");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    assert!(
        repl.remote_names().is_empty(),
        "not connected: nothing to list"
    );
    repl.run_line(&format!("OPEN {}", server.port), &mut ui);
    assert_eq!(repl.remote_names(), ["a.txt"]);
    repl.run_line("GET a.txt", &mut ui);
    assert_eq!(repl.remote_names(), ["a.txt"]);
    repl.run_line("PUT b.txt", &mut ui);
    assert_eq!(repl.remote_names(), ["a.txt", "b.txt"]);
    repl.run_line("QUIT", &mut ui);
    assert!(ui.errors.is_empty(), "{:?}", ui.errors);
    let nlst = server.commands().iter().filter(|c| *c == "NLST").count();
    assert_eq!(nlst, 2, "listed after OPEN and after PUT only");
}

#[test]
fn an_interrupt_stops_the_whole_mget_not_only_one_file() {
    let server = FakeServer::start(Behavior::default())
        .with_file("a.bin", &all_bytes())
        .with_file("b.bin", &all_bytes())
        .with_file("c.bin", &all_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    let interrupt = Interrupt::new();
    client.set_interrupt(Arc::clone(&interrupt));
    let batch = client
        .get_matching(&["*.bin".to_owned()], dir.path(), |e| {
            if let super::many::BatchEvent::Progress { index: 1, .. } = e {
                interrupt.request();
            }
        })
        .expect("listing");
    assert_eq!(batch.succeeded(), 1);
    assert!(matches!(batch.files[1].1, Err(ClientError::Interrupted)));
    assert_eq!(batch.skipped, ["c.bin"]);
    assert_eq!(batch.failures(), 2);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.bin"], "no debris of the interrupted file");
    client.noop().expect("still in step");
}

#[test]
fn reput_appends_where_the_server_refuses_stor_after_rest() {
    let server = FakeServer::start(Behavior {
        rest_for_retr_only: true,
        ..Behavior::default()
    })
    .with_file("up.bin", &all_bytes()[..1000]);
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("up.bin");
    std::fs::write(&local, all_bytes()).expect("write");
    let mut client = server.connect();
    let resumed = client.reput(&local, "up.bin", |_| {}).expect("reput");
    assert_eq!((resumed.from, resumed.done.bytes), (1000, 299_000));
    assert_eq!(server.file("up.bin"), Some(all_bytes()));
    let sent: Vec<String> = server
        .commands()
        .into_iter()
        .filter(|c| ["REST", "STOR", "APPE"].iter().any(|v| c.starts_with(v)))
        .collect();
    assert_eq!(sent, ["REST 1000", "STOR up.bin", "APPE up.bin"]);
    client.quit().expect("quit");
}

/// Issue 15: `MGET *` over a directory with subdirectories fetches the files and
/// leaves the directories out. Where FEAT names MLST, MLSD's `type` facts say which
/// names are directories, and no name is asked its SIZE.
#[test]
fn mget_leaves_out_the_directories_mlsd_names() {
    let server = FakeServer::start(Behavior {
        mlsd: true,
        dirs: &["sub", "sub.txt", "zdir"],
        ..Behavior::default()
    })
    .with_file("a.txt", b"alpha")
    .with_file("b.bin", &all_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    let batch = client
        .get_matching(&["*".into(), "z*".into()], dir.path(), |_| {})
        .expect("listing");
    let tried: Vec<&str> = batch.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(tried, ["a.txt", "b.bin"]);
    assert_eq!((batch.succeeded(), batch.failures()), (2, 1));
    assert_eq!(batch.left_out, ["sub", "sub.txt", "zdir"]);
    // `z*` matched only a directory: it matched no file.
    assert_eq!(batch.unmatched, ["z*"]);
    assert_eq!(
        std::fs::read(dir.path().join("a.txt")).expect("a"),
        b"alpha"
    );
    assert_eq!(
        std::fs::read(dir.path().join("b.bin")).expect("b"),
        all_bytes()
    );
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 2);
    let commands = server.commands();
    assert!(commands.iter().any(|c| c == "MLSD"), "{commands:?}");
    assert!(
        !commands
            .iter()
            .any(|c| c == "NLST" || c.starts_with("SIZE") || c == "RETR sub"),
        "{commands:?}"
    );
    client.quit().expect("quit");
}

/// Without MLSD, NLST cannot tell a directory from a file: each matching name is asked
/// its SIZE, and the ones refused with 550 are left out instead of failing a GET.
#[test]
fn mget_without_mlsd_asks_size_and_leaves_out_what_it_refuses() {
    let server = FakeServer::start(Behavior {
        dirs: &["sub", "sub.txt"],
        ..Behavior::default()
    })
    .with_file("a.txt", b"alpha")
    .with_file("c.bin", b"not matched");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = server.connect();
    let batch = client
        .get_matching(&["*.txt".into(), "s*".into()], dir.path(), |_| {})
        .expect("listing");
    let tried: Vec<&str> = batch.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(tried, ["a.txt"]);
    assert_eq!(batch.left_out, ["sub", "sub.txt"]);
    assert_eq!(batch.unmatched, ["s*"]);
    assert_eq!(
        std::fs::read(dir.path().join("a.txt")).expect("a"),
        b"alpha"
    );
    let commands = server.commands();
    let asked: Vec<&str> = commands
        .iter()
        .filter(|c| c.starts_with("SIZE") || c.starts_with("RETR") || *c == "NLST")
        .map(String::as_str)
        .collect();
    // Only the matching names are asked, and only the file is fetched.
    assert_eq!(
        asked,
        [
            "NLST",
            "SIZE a.txt",
            "SIZE sub",
            "SIZE sub.txt",
            "RETR a.txt"
        ]
    );
    client.quit().expect("quit");
}

#[test]
fn repl_mget_counts_the_directories_it_left_out() {
    let server = FakeServer::start(Behavior {
        mlsd: true,
        dirs: &["sub"],
        ..Behavior::default()
    })
    .with_file("a.txt", b"alpha");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut repl = Repl::anonymous(dir.path().to_owned(), TIMEOUT);
    let mut ui = Recorder::default();
    repl.run_line(&format!("OPEN {}", server.port), &mut ui);
    repl.run_line("MGET *", &mut ui);
    assert!(ui.errors.is_empty(), "{:?}", ui.errors);
    assert_eq!(repl.failures(), 0);
    assert_eq!(
        ui.results.last().map(String::as_str),
        Some("MGET: 1 file, 5 B, 0 failures, 1 directory left out")
    );
    repl.run_line("MGET su*", &mut ui);
    assert_eq!(repl.failures(), 1);
    assert_eq!(
        ui.errors,
        [
            "MGET su*: no file matches".to_owned(),
            "MGET: 0 files, 0 B, 1 failure, 1 directory left out".to_owned()
        ]
    );
}
