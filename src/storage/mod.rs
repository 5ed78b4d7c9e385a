//! Where the server's files live.

pub mod s3;
