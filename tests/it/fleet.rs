//! Integration tests: fleet.
