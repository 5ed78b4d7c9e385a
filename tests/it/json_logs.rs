//! `--log-format json`: every line a real server writes is one JSON object with its
//! time, level, event and message, and session lines carry the peer and the user.

use serde_json::Value;

use crate::common::{assert_same, eventually, pattern, Ftp, TestServer};

/// Every line of the log, parsed; panics on a line that is not a JSON object.
fn parsed(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert!(v.is_object(), "{l:?}");
            v
        })
        .collect()
}

fn events<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

#[test]
fn every_line_of_a_real_session_is_a_json_object_with_its_fields() {
    let server = TestServer::start(&["--log-format", "json", "--failed-login-delay", "0"]);
    let data = pattern(5_000, 9);
    let mut ftp = server.login();
    ftp.stor("j.bin", &data);
    assert_same(&ftp.retr("j.bin"), &data, "j.bin");
    ftp.expect("RETR missing.bin", 550);
    ftp.expect("QUIT", 221);
    let mut bad = Ftp::connect(server.addr);
    bad.expect("USER bob", 331);
    bad.expect("PASS wrong", 530);
    bad.expect("QUIT", 221);
    eventually("two session ends in the log", || {
        server.log().matches("\"session_end\"").count() == 2
    });

    let lines = parsed(&server.log());
    for l in &lines {
        let time = l["time"].as_str().expect("time");
        // 2026-06-04T00:58:54.123Z
        assert!(
            time.len() == 24 && time.ends_with('Z') && &time[10..11] == "T",
            "{l}"
        );
        let level = l["level"].as_str().expect("level");
        assert!(
            ["error", "warn", "info", "debug", "trace"].contains(&level),
            "{l}"
        );
        assert!(l["event"].is_string() && l["message"].is_string(), "{l}");
    }
    // The server's own lines (before any session) have no peer.
    assert!(lines.iter().any(|l| l["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("serving "))
        && l.get("peer").is_none()));

    let starts = events(&lines, "session_start");
    assert_eq!(starts.len(), 2);
    let ours = starts[0]["peer"].as_str().expect("peer").to_owned();
    let theirs = starts[1]["peer"].as_str().expect("peer").to_owned();
    assert_ne!(ours, theirs);
    assert!(ours.starts_with("127.0.0.1:"), "{ours}");
    assert_eq!(starts[0]["message"], "session start");

    let mine: Vec<&Value> = lines
        .iter()
        .filter(|l| l["peer"] == ours.as_str())
        .collect();
    let login = mine
        .iter()
        .position(|l| l["event"] == "login")
        .expect("a login line");
    assert_eq!(mine[login]["user"], "anonymous");
    assert_eq!(mine[login]["fields"]["result"], "success");
    // Before the login no user, from it on the user.
    assert!(mine[..login].iter().all(|l| l.get("user").is_none()));
    assert!(mine[login..].iter().all(|l| l["user"] == "anonymous"));

    let transfers: Vec<(String, String, u64, String)> = events(&lines, "transfer")
        .iter()
        .map(|l| {
            let f = &l["fields"];
            assert!(f["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{l}");
            (
                f["command"].as_str().expect("command").to_owned(),
                f["path"].as_str().expect("path").to_owned(),
                f["bytes"].as_u64().expect("bytes"),
                f["result"].as_str().expect("result").to_owned(),
            )
        })
        .collect();
    let want = |c: &str| {
        (
            c.to_owned(),
            "/j.bin".to_owned(),
            5_000,
            "complete".to_owned(),
        )
    };
    assert_eq!(transfers, [want("STOR"), want("RETR")]);

    // -v: each command is a line of its own, the password never shown.
    let commands: Vec<&str> = mine
        .iter()
        .filter(|l| l["event"] == "command")
        .filter_map(|l| l["fields"]["command"].as_str())
        .collect();
    assert_eq!(
        commands,
        ["USER", "PASS", "TYPE", "EPSV", "STOR", "EPSV", "RETR", "RETR", "QUIT"]
    );
    assert!(
        !server.log().contains("test@"),
        "the password is in the log"
    );

    // (The first session's end may be logged after the second's: the client goes on
    // as soon as it has the 221.)
    let ends = events(&lines, "session_end");
    let end = ends
        .iter()
        .find(|l| l["peer"] == ours.as_str())
        .expect("our session's end");
    assert_eq!(end["user"], "anonymous");
    assert_eq!(end["fields"]["reason"], "quit");

    // The failed login names who tried, and the session has no user.
    let failed: Vec<&Value> = events(&lines, "login")
        .into_iter()
        .filter(|l| l["fields"]["result"] == "failure")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["peer"], theirs.as_str());
    assert_eq!(failed[0]["fields"]["name"], "bob");
    assert_eq!(failed[0]["level"], "warn");
    assert!(lines
        .iter()
        .filter(|l| l["peer"] == theirs.as_str())
        .all(|l| l.get("user").is_none()));
}
