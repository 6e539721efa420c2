//! Failover: `tandem promote` and `tandem status`, the failover epoch and its guard,
//! fence-pending nodes, and the DNS records that follow the primary.
