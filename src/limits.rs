//! The process's open-files limit, raised to what the system allows.
//!
//! Every session holds a few descriptors (its control connection, a passive listener,
//! a data connection and a file during a transfer), and a shell's default soft limit
//! is often 1,024: too few for a server with a thousand workers, or for a load
//! generator holding a thousand sessions. The hard limit is what an unprivileged
//! process may raise it to, so the binaries raise it at start, as nginx's
//! `worker_rlimit_nofile` or Go's runtime do.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The most descriptors asked for when the hard limit is unlimited: the kernel's
/// default `fs.nr_open`, above which `setrlimit` fails.
const UNLIMITED_CAP: u64 = 1 << 20;

/// The open-files limit before and after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process started with (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
}

/// Raises the soft limit on open files to the hard limit (or to 2^20 when that is
/// unlimited). A limit that cannot be raised is left as it was.
pub fn raise_open_files_limit() -> OpenFiles {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    let target = limit.maximum.unwrap_or(UNLIMITED_CAP);
    if before.is_some_and(|soft| soft < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return OpenFiles {
                before,
                now: Some(target),
            };
        }
    }
    OpenFiles {
        before,
        now: before,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let got = raise_open_files_limit();
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(got.now, limit.current);
        let hard = limit.maximum.unwrap_or(UNLIMITED_CAP);
        // Raised to the hard limit, or it was already there (or above the cap).
        assert!(
            limit
                .current
                .is_none_or(|soft| soft >= hard.min(UNLIMITED_CAP)),
            "{got:?} {limit:?}"
        );
        // A second call changes nothing.
        assert_eq!(raise_open_files_limit().now, got.now);
    }
}
