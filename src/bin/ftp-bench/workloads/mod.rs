//! The workloads: each drives the server of a [`Target`](crate::target::Target), checks
//! everything it moved (sizes and SHA-256, or the replies it expects), stops at the
//! target's deadline, and returns its [`Record`](crate::record::Record)s, failed ones
//! included: a workload reports what went wrong rather than ending the run.
//!
//! One file per family of workloads; `many` is the harness of the workloads that run
//! many sessions at once, `check` the checks of what was moved, `latency` the figures
//! of the newcomers timed beside idle or trickling connections.

pub(crate) mod churn;
pub(crate) mod idle;
pub(crate) mod large;
pub(crate) mod s3direct;
pub(crate) mod small;
pub(crate) mod trickle;

mod check;
mod latency;
mod many;
#[cfg(test)]
pub(crate) mod test_server;
