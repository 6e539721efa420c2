//! Resources: what a node should have (`spec`, produced by the catalog compiler) and how
//! to get there from what was read (one module per resource type, added with the probe).

pub mod spec;

pub use spec::*;
