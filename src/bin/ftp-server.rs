//! The FTP server binary.
fn main() {}
