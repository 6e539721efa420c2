//! `tandem drift`: audit reports of the fleet against git and of the two clouds against
//! each other. Read-only: nothing here can reach apply.

pub mod probe;
