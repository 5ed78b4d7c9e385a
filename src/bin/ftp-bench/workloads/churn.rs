//! Session churn: concurrent clients, each connecting, logging in and quitting again
//! and again; the rate is sessions per second, the cost of a session's start and end.

use simple_ftp::Client;

use super::many::{concurrent, Tally};
use crate::record::Record;
use crate::target::{Many, Target};

/// `churn`: every client connects, logs in and quits `count` times.
pub(crate) fn churn(t: &Target, many: Many) -> Record {
    let mut r = t.record("churn", "ftp-bench");
    r.unit = "sessions/s".into();
    let tally = Tally::default();
    let late = concurrent(
        t,
        many,
        &tally,
        &mut r,
        |_| Ok(None),
        |_, _, _| {
            let mut c = Client::connect(&t.host, t.port, t.op_timeout())?;
            c.login(&t.user, &t.pass)?;
            c.quit()?;
            Ok(())
        },
    );
    tally.conclude(&mut r, many.sessions * many.count, late);
    if r.ok {
        r.note
            .push_str(", each login and QUIT answered as expected");
    }
    r
}
