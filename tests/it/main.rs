//! Integration tests: one binary, one file per theme.
