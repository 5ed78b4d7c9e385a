//! Integration tests: one binary, one file per theme.

mod common;
mod faults;
mod lifecycle;
mod peers;
mod server;
