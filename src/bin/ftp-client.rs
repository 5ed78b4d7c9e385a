//! The FTP client binary.
fn main() {}
