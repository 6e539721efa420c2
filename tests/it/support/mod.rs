//! Shared test support: the local fleet, fixture sites, running the binary.
pub mod arm;
#[cfg(feature = "aws")]
pub mod moto;
