//! `[failover.route53]` of `site.toml`: the Route53 failover records that follow the
//! primary, and the flip `promote` makes after its promote step. Each datacenter has one
//! record of the same name and type, told apart by its set identifier; the primary's
//! carries `Failover = PRIMARY`, every other one `SECONDARY`. The flip reads the records
//! (ListResourceRecordSets), and UPSERTs all of them with their roles swapped in ONE
//! `ChangeResourceRecordSets` batch, which Route53 applies atomically: there is no
//! moment with two PRIMARY records or none. The endpoint is configurable the same way
//! as EC2 discovery's (tests point it at moto on loopback).
//!
//! ```toml
//! [failover.route53]
//! hosted_zone_id = "Z0123456789EXAMPLE"
//! record_name = "payments.example.com."
//! record_type = "A"                     # the default
//! set_identifiers = { azure-westus = "payments-azure", aws-useast1 = "payments-aws" }
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::manifest::failover::Route53Settings;

/// What the flip did: the change id Route53 gave the batch and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flipped {
    pub change_id: String,
    pub status: String,
    /// Set identifier to its new role, as sent.
    pub roles: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("route53: {0}")]
    Api(String),
    #[error("route53: no `{kind}` record `{name}` with set identifier `{set}` in zone `{zone}`")]
    NoRecord {
        zone: String,
        name: String,
        kind: String,
        set: String,
    },
    #[error("route53: this tandem was built without the `aws` feature")]
    NotBuilt,
}

/// Makes `primary`'s record PRIMARY and every other datacenter's SECONDARY, in one batch.
#[cfg(not(feature = "aws"))]
pub async fn flip(_settings: &Route53Settings, _primary: &str) -> Result<Flipped, DnsError> {
    Err(DnsError::NotBuilt)
}

/// Makes `primary`'s record PRIMARY and every other datacenter's SECONDARY, in one batch.
#[cfg(feature = "aws")]
pub async fn flip(settings: &Route53Settings, primary: &str) -> Result<Flipped, DnsError> {
    sdk::flip(settings, primary).await
}

#[cfg(feature = "aws")]
mod sdk {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecordSet, ResourceRecordSetFailover, RrType,
    };

    use super::{DnsError, Flipped, Route53Settings};
    use crate::inventory::aws::sdk_cause;

    pub async fn flip(settings: &Route53Settings, primary: &str) -> Result<Flipped, DnsError> {
        // Route53 is global; its API lives in us-east-1.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(20))
                    .operation_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        let client = aws_sdk_route53::Client::new(&loader.load().await);
        let name = settings.fqdn();
        let kind = RrType::from(settings.record_type.as_str());
        let listed = client
            .list_resource_record_sets()
            .hosted_zone_id(&settings.hosted_zone_id)
            .start_record_name(&name)
            .start_record_type(kind.clone())
            .max_items(100)
            .send()
            .await
            .map_err(|err| DnsError::Api(sdk_cause(&err)))?;
        let mut changes = Vec::new();
        let mut roles = BTreeMap::new();
        for (dc, set) in &settings.set_identifiers {
            let found = listed.resource_record_sets().iter().find(|r| {
                r.name().trim_end_matches('.') == name.trim_end_matches('.')
                    && r.r#type() == &kind
                    && r.set_identifier() == Some(set.as_str())
            });
            let Some(record) = found else {
                return Err(DnsError::NoRecord {
                    zone: settings.hosted_zone_id.clone(),
                    name: name.clone(),
                    kind: settings.record_type.clone(),
                    set: set.clone(),
                });
            };
            let role = if dc == primary {
                ResourceRecordSetFailover::Primary
            } else {
                ResourceRecordSetFailover::Secondary
            };
            roles.insert(set.clone(), role.as_str().to_string());
            changes.push(
                Change::builder()
                    .action(ChangeAction::Upsert)
                    .resource_record_set(with_failover(record, role)?)
                    .build()
                    .map_err(|err| DnsError::Api(err.to_string()))?,
            );
        }
        let batch = ChangeBatch::builder()
            .comment(format!("tandem promote: `{primary}` is primary"))
            .set_changes(Some(changes))
            .build()
            .map_err(|err| DnsError::Api(err.to_string()))?;
        let out = client
            .change_resource_record_sets()
            .hosted_zone_id(&settings.hosted_zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|err| DnsError::Api(sdk_cause(&err)))?;
        let info = out.change_info();
        Ok(Flipped {
            change_id: info.map(|i| i.id().to_string()).unwrap_or_default(),
            status: info
                .map(|i| i.status().as_str().to_string())
                .unwrap_or_default(),
            roles,
        })
    }

    /// The record as it is, with `role`: values, TTL, alias and health check kept.
    fn with_failover(
        record: &ResourceRecordSet,
        role: ResourceRecordSetFailover,
    ) -> Result<ResourceRecordSet, DnsError> {
        let mut copy = record.clone();
        copy.failover = Some(role);
        // Round-trip through the builder so the SDK's own checks still apply.
        ResourceRecordSet::builder()
            .name(copy.name())
            .r#type(copy.r#type().clone())
            .set_set_identifier(copy.set_identifier.clone())
            .set_failover(copy.failover.clone())
            .set_ttl(copy.ttl)
            .set_resource_records(copy.resource_records.clone())
            .set_alias_target(copy.alias_target.clone())
            .set_health_check_id(copy.health_check_id.clone())
            .build()
            .map_err(|err| DnsError::Api(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Route53Settings {
        Route53Settings {
            hosted_zone_id: "Z1".into(),
            record_name: "payments.example.com".into(),
            record_type: "A".into(),
            set_identifiers: BTreeMap::from([
                ("azure-westus".into(), "az".into()),
                ("aws-useast1".into(), "aws".into()),
            ]),
            endpoint: None,
            profile: None,
        }
    }

    #[test]
    fn every_datacenter_needs_its_own_set_identifier() {
        let s = settings();
        assert_eq!(s.check(&["azure-westus", "aws-useast1"]), Ok(()));
        assert!(s
            .check(&["azure-westus", "aws-useast1", "gcp"])
            .unwrap_err()
            .contains("`gcp`"));
        assert!(s
            .check(&["azure-westus"])
            .unwrap_err()
            .contains("`aws-useast1`"));
        let mut twice = settings();
        twice
            .set_identifiers
            .insert("aws-useast1".into(), "az".into());
        assert!(twice
            .check(&["azure-westus", "aws-useast1"])
            .unwrap_err()
            .contains("two datacenters"));
        assert_eq!(s.fqdn(), "payments.example.com.");
    }
}
