//! Integration tests: one binary, one file per theme.

mod accounts;
mod aria2;
mod bad_input;
mod basic_ftp;
mod client_pyftpdlib;
mod client_server;
mod commands;
mod common;
mod faults;
mod ftplib;
mod ftps;
mod ipv6;
mod lftp;
mod lifecycle;
mod load;
mod ncftp;
mod peers;
mod rclone;
mod server;
mod stress;
mod tnftp;
mod vsftpd;
mod wget;
