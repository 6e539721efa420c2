//! Shared test support: the local fleet, fixture sites, running the binary.
#[cfg(feature = "azure")]
pub mod arm;
#[cfg(feature = "aws")]
pub mod moto;
