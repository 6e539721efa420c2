//! Shared test support: the local fleet, fixture sites, running the binary.

pub mod fleet;
pub mod site;
pub mod sshd;
#[cfg(feature = "azure")]
pub mod arm;
#[cfg(feature = "aws")]
pub mod moto;
