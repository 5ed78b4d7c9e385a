//! Integration tests: one binary, one file per theme.

mod accounts;
mod bad_input;
mod basic_ftp;
mod client_pyftpdlib;
mod client_server;
mod commands;
mod common;
mod data_path;
mod faults;
mod ftplib;
mod ftps;
mod ipv6;
mod lftp;
mod lifecycle;
mod load;
mod peers;
mod server;
mod stress;
mod vsftpd;
