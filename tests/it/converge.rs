//! Integration tests: converge.
