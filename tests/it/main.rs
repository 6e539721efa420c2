//! The integration tests: one binary, one module per area. End-to-end modules use the
//! local fleet of real SSH hosts (`support::fleet`) and need root.

mod accounts;
#[cfg(all(feature = "aws", feature = "azure"))]
mod cloud;
mod converge;
mod drift;
mod e2e;
mod fleet;
mod fleet_safety;
mod inventory;
mod layering;
mod names;
mod node_faults;
mod packages;
mod pipeline;
mod promote;
mod rollout;
mod runs;
mod safety;
mod secrets;
mod serve;
mod serve_pages;
mod site;
mod snapshots;
mod support;
mod transport;
