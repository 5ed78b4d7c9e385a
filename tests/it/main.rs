//! Integration tests: one binary, one file per theme.

mod common;

mod client_pyftpdlib;
