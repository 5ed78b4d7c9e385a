//! What the server's log lines carry beside their text: which session a thread
//! serves now (the client's address and, once it logged in, the user), and the JSON
//! form of a line that `ftp-server --log-format json` writes ([`json_line`]).
//!
//! Sessions move between threads (a worker serves one while it has work, then it is
//! parked and any worker takes it up again), so the context goes with the serving,
//! not with the thread: a worker enters it when it takes a session up and leaves it
//! when it puts the session down ([`enter`] returns a guard). A logger (the
//! `ftp-server` binary's JSON format) reads it with [`current`] for every line, so
//! every room's log lines carry the peer and the user without each call naming them,
//! as log4j's mapped diagnostic context does.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::time::Utc;

/// The session a log line was written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The client's address and port.
    pub peer: SocketAddr,
    /// The user it logged in as, once it did.
    pub user: Option<String>,
}

thread_local! {
    static CURRENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// The session this thread serves now, if any.
pub fn current() -> Option<Context> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Restores the context that was there before [`enter`] when dropped.
#[must_use = "the context is left when the guard is dropped"]
pub(crate) struct Entered {
    before: Option<Context>,
}

/// Makes `peer` (and `user`) this thread's context until the guard drops.
pub(crate) fn enter(peer: SocketAddr, user: Option<&str>) -> Entered {
    let context = Context {
        peer,
        user: user.map(str::to_owned),
    };
    let before = CURRENT.with(|c| c.borrow_mut().replace(context));
    Entered { before }
}

/// Changes the user of this thread's context (a login, or REIN).
pub(crate) fn set_user(user: Option<&str>) {
    CURRENT.with(|c| {
        if let Some(context) = c.borrow_mut().as_mut() {
            context.user = user.map(str::to_owned);
        }
    });
}

impl Drop for Entered {
    fn drop(&mut self) {
        let before = self.before.take();
        CURRENT.with(|c| *c.borrow_mut() = before);
    }
}

/// A log record as one JSON object and a newline, for journald, Loki and the like:
/// `time` (UTC, milliseconds), `level`, `event` (what happened: `session_start`,
/// `login`, `transfer`, `session_end`, ...; `message` for lines without one of
/// their own), `message` (the human text, without the peer in front), and, when the
/// line is about a session, `peer` and the `user` it logged in as; `fields` holds
/// the record's other key-values (`bytes`, `path`, `seconds`, ...).
pub fn json_line(record: &log::Record<'_>, now: SystemTime) -> String {
    /// Sorts a record's key-values into the top level and `fields`.
    struct Collect {
        event: Option<String>,
        user: Option<String>,
        fields: Map<String, Value>,
    }
    impl<'kvs> log::kv::VisitSource<'kvs> for Collect {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'kvs>,
            value: log::kv::Value<'kvs>,
        ) -> Result<(), log::kv::Error> {
            match key.as_str() {
                "event" => self.event = Some(value.to_string()),
                "user" => self.user = Some(value.to_string()),
                key => {
                    let json = if let Some(n) = value.to_u64() {
                        Value::from(n)
                    } else if let Some(n) = value.to_i64() {
                        Value::from(n)
                    } else if let Some(b) = value.to_bool() {
                        Value::from(b)
                    } else if let Some(x) = value.to_f64().and_then(serde_json::Number::from_f64) {
                        Value::Number(x)
                    } else {
                        Value::from(value.to_string())
                    };
                    self.fields.insert(key.to_owned(), json);
                }
            }
            Ok(())
        }
    }
    let mut kv = Collect {
        event: None,
        user: None,
        fields: Map::new(),
    };
    // A visitor that never fails: nothing to report.
    let _ = record.key_values().visit(&mut kv);
    let context = current();
    let text = record.args().to_string();
    // Session lines begin with the client's address; it goes in `peer`.
    let (named, message) = match text.split_once(": ") {
        Some((first, rest)) => match first.parse::<SocketAddr>() {
            Ok(peer) => (Some(peer), rest.to_owned()),
            Err(_) => (None, text.clone()),
        },
        None => (None, text.clone()),
    };
    let peer = named.or(context.as_ref().map(|c| c.peer));
    let user = kv.user.or_else(|| context.and_then(|c| c.user));
    let mut line = Map::new();
    line.insert("time".into(), Value::from(iso_millis(now)));
    line.insert(
        "level".into(),
        Value::from(record.level().as_str().to_ascii_lowercase()),
    );
    if let Some(peer) = peer {
        line.insert("peer".into(), Value::from(peer.to_string()));
    }
    if let Some(user) = user {
        line.insert("user".into(), Value::from(user));
    }
    let event = kv.event.unwrap_or_else(|| "message".to_owned());
    line.insert("event".into(), Value::from(event));
    line.insert("message".into(), Value::from(message));
    if !kv.fields.is_empty() {
        line.insert("fields".into(), Value::Object(kv.fields));
    }
    let mut out = Value::Object(line).to_string();
    out.push('\n');
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn iso_millis(t: SystemTime) -> String {
    let millis = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    let iso = Utc::from_system_time(t).iso();
    let seconds = iso.trim_end_matches('Z');
    format!("{seconds}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Value {
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        serde_json::from_str(line).expect("a JSON object")
    }

    #[test]
    fn a_session_line_has_its_peer_user_event_and_fields() {
        let peer: SocketAddr = "[::1]:4242".parse().expect("addr");
        let _context = enter(peer, Some("alice"));
        let kvs: [(&str, log::kv::Value<'_>); 4] = [
            ("event", "transfer".into()),
            ("bytes", 12u64.into()),
            ("seconds", 0.5f64.into()),
            ("path", "/a b".into()),
        ];
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_748_941_501_042);
        let line = json_line(
            &log::Record::builder()
                .args(format_args!("[::1]:4242: RETR /a b 12 bytes in 0.500 s"))
                .level(log::Level::Info)
                .key_values(&kvs)
                .build(),
            now,
        );
        let v = parsed(&line);
        assert_eq!(v["time"], "2025-06-03T09:05:01.042Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["peer"], "[::1]:4242");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["event"], "transfer");
        assert_eq!(v["message"], "RETR /a b 12 bytes in 0.500 s");
        assert_eq!(v["fields"]["bytes"], 12);
        assert_eq!(v["fields"]["seconds"], 0.5);
        assert_eq!(v["fields"]["path"], "/a b");
    }

    #[test]
    fn a_line_outside_sessions_is_a_message() {
        let line = json_line(
            &log::Record::builder()
                .args(format_args!(
                    "serving \"/srv\" on 127.0.0.1:21\nsecond line"
                ))
                .level(log::Level::Warn)
                .build(),
            SystemTime::now(),
        );
        let v = parsed(&line);
        assert_eq!(v["level"], "warn");
        assert_eq!(v["event"], "message");
        assert_eq!(
            v["message"],
            "serving \"/srv\" on 127.0.0.1:21\nsecond line"
        );
        assert!(v.get("peer").is_none() && v.get("user").is_none() && v.get("fields").is_none());
    }

    #[test]
    fn contexts_nest_and_end() {
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2000".parse().expect("addr");
        assert_eq!(current(), None);
        let outer = enter(a, None);
        set_user(Some("alice"));
        assert_eq!(current().and_then(|c| c.user), Some("alice".to_owned()));
        {
            let _inner = enter(b, Some("bob"));
            assert_eq!(current().map(|c| c.peer), Some(b));
        }
        assert_eq!(
            current(),
            Some(Context {
                peer: a,
                user: Some("alice".to_owned())
            })
        );
        drop(outer);
        assert_eq!(current(), None);
    }
}
