//! Integration tests: transport.
