//! Shared test support: the local fleet, fixture sites, running the binary.

pub mod apt;
#[cfg(feature = "azure")]
pub mod arm;
pub mod fleet;
#[cfg(feature = "aws")]
pub mod moto;
pub mod resources;
pub mod site;
pub mod sshd;
pub mod wait;
