//! Failover: `tandem promote` and `tandem status`, the failover epoch and its guard,
//! fence-pending nodes, and the DNS records that follow the primary.
//!
//! Who is primary lives in git (`primary = true` on one datacenter of `site.toml`),
//! with a failover epoch that only grows. A promote compiles the site as if `primary`
//! had moved ([`promoted_site`]): the old primary's nodes gain the standby overlay and
//! are converged and verified first ([`promote`], demote step), then the target's nodes
//! lose it (promote step), so there is never a moment with two writable primaries. Every
//! apply writes the node's epoch to the node, and [`guard`] refuses any run whose
//! checkout is older than an epoch a node carries. Old-primary nodes that could not be
//! demoted are fence pending in the store and demoted first by the next run
//! (`run::fence`). `route53` flips the failover records, `site_file` commits the new
//! primary and epoch, `status` reports all of it.

pub mod checks;
/// The epoch guard lives below `apply`, which calls it (see `crate::epoch`).
pub use crate::epoch as guard;
pub mod execute;
pub mod promote;
pub mod route53;
pub mod site_file;
pub mod status;

use crate::manifest::Site;
use crate::node::DatacenterName;

/// `site` as it reads after promoting `target`: `target` primary, every other
/// datacenter standby, the epoch one higher. Compiling it gives every node the catalog
/// it must hold once the promote is done.
pub fn promoted_site(site: &Site, target: &DatacenterName) -> Site {
    let mut promoted = site.clone();
    for dc in &mut promoted.datacenters {
        dc.primary = &dc.name == target;
    }
    promoted.epoch = site.epoch.saturating_add(1);
    promoted
}

/// The primary datacenter of `site` (loading checks there is exactly one).
pub fn primary_of(site: &Site) -> Option<&DatacenterName> {
    site.datacenters
        .iter()
        .find(|dc| dc.primary)
        .map(|dc| &dc.name)
}

/// `options` with what each apply of `site` (read from `source`) records on its node
/// (see `crate::fact::applied`): the epoch and the primary datacenter (the node's side
/// follows from it). The epoch guard compares with that same epoch.
pub fn with_applied(
    mut options: crate::apply::ApplyOptions,
    site: &Site,
    source: &crate::manifest::source::SiteSource,
) -> crate::apply::ApplyOptions {
    options.applied = crate::fact::applied::AppliedContext {
        run: None,
        commit: source.commit.as_ref().map(|c| {
            if source.dirty {
                format!("{c}+dirty")
            } else {
                c.clone()
            }
        }),
        epoch: site.epoch,
        primary: primary_of(site).cloned(),
    };
    options
}
