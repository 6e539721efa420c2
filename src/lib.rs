//! tandem keeps a fleet of Linux VMs in two clouds identical to what a site repository
//! declares. The data flows one way through these modules: `manifest` (TOML on disk) and
//! `template` produce a `catalog` per `node`; `inventory` finds the nodes; `transport`
//! reaches them; `resource` turns catalog entries plus facts read from a node into
//! changes; `plan` and `apply` show and carry them out.

pub mod apply;
pub mod catalog;
pub mod cli;
pub mod datacenter;
pub mod drift;
pub mod epoch;
pub mod exit;
pub mod fact;
pub mod failover;
pub mod html;
pub mod inventory;
pub mod lock;
pub mod manifest;
pub mod node;
pub mod node_state;
pub mod outcome;
pub mod path;
pub mod plan;
pub mod resource;
pub mod rollout;
pub mod run;
pub mod secret;
pub mod selector;
pub mod serve;
pub mod state_dir;
pub mod store;
pub mod template;
pub mod transport;
