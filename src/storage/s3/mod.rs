//! The S3 backend: files as objects in an S3-compatible store.

pub mod client;
