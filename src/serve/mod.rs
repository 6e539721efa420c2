//! `tandem serve`: the webhook daemon. The build server calls it on every push; it
//! fetches the site repository itself, deploys the deploy branch's head under the site
//! lock, one run at a time, and shows runs, health and metrics over HTTP.
//!
//! [`observe`] is the seam between the parts that do the work (receivers, the run
//! worker) and the parts that report on it (metrics, log): the workers call an
//! [`observe::Observer`], the metrics implement it.

pub mod auth;
pub mod html;
pub mod metrics;
pub mod observe;
pub mod pages;
