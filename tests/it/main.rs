//! Integration tests: one binary, one file per theme.

mod accounts;
mod aria2;
mod bad_input;
mod basic_ftp;
mod client_commands;
mod client_oneline;
mod client_pyftpdlib;
mod client_server;
mod commands;
mod common;
mod config; // --config FILE and check-config: precedence, errors at their line, the example
mod data_path;
mod escape_race;
mod fairness;
mod faults;
mod ftplib;
mod ftps;
mod garage; // a real Garage node (S3-compatible store) per test, for the S3 backend
mod hardening;
// Two instances on one root behind a real HAProxy (send-proxy-v2): curl, lftp and our
// client from two addresses, byte-exact across instances, --max-per-ip, no bounce.
mod haproxy;
mod hooks;
mod ipv6;
// --log-format json: every line of a real session's log is a JSON object with its fields.
mod json_logs;
mod lftp;
mod lifecycle;
mod listings;
mod load;
// --metrics: the Prometheus page counts real sessions' work, /healthz, promtool, Prometheus.
mod metrics;
mod mfmt;
mod ncftp;
mod new_names;
mod packaging; // the systemd unit (systemd-analyze verify), shell completions, the man page
mod parking;
mod peers;
// --proxy-protocol with hand-written v1/v2 headers: the header's client is the peer
// everywhere (STAT, --max-per-ip, PORT, data connections, logs); bad headers closed.
mod proxy_protocol;
mod pureftpd;
mod rclone;
mod reload; // SIGHUP: users, certificate and config keys anew while sessions go on
            // The S3 backend's object-store client against Garage: every request, byte-exact.
mod s3_client;
// The S3 backend under ftp-server on Garage: curl, lftp, 10,000 objects, cut uploads.
mod s3_backend;
mod server;
// One suite of storage checks run against every backend (local, local streamed).
mod storage_suite;
mod stress;
mod tnftp;
mod vsftpd;
mod wget;
// --xferlog: a line per file transfer in the xferlog format, counted by webalizer.
mod xferlog;
