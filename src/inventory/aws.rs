//! The AWS provider: EC2 DescribeInstances through the SDK's paginator, filtered
//! server-side by the site's tags and the wanted instance states, one task per region.
//! Credentials come from the SDK's standard chain (environment, profile, web identity,
//! instance role); `endpoint` points the SDK elsewhere (tests use a local moto server).
//! An SDK error becomes one line of cause (a service error's code and message, or the
//! chain of causes, each once), which holds no credential.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, Instance};

use super::machine::{judge, AddressSource, Machine, Naming};
use super::ProviderKind;
use super::{AwsSettings, DatacenterSpec, Discovered, InventoryError, Provider, ProviderConfig};
use crate::node::DatacenterName;

/// Lists EC2 instances; stateless, the settings come with each datacenter.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsProvider;

#[async_trait]
impl Provider for AwsProvider {
    async fn discover(&self, datacenter: &DatacenterSpec) -> Result<Discovered, InventoryError> {
        let ProviderConfig::Aws(settings) = &datacenter.provider else {
            return Err(InventoryError::Settings {
                datacenter: datacenter.name.clone(),
                message: "not an aws datacenter".to_string(),
            });
        };
        discover(&datacenter.name, settings).await
    }
}

async fn discover(
    datacenter: &DatacenterName,
    settings: &AwsSettings,
) -> Result<Discovered, InventoryError> {
    let naming = Naming {
        role_tag: settings.role_tag.clone(),
        name_tag: settings.name_tag.clone(),
        address: AddressSource::parse(datacenter, &settings.address)?,
    };
    if settings.regions.is_empty() {
        return Err(settings_error(datacenter, "`regions` is empty".to_string()));
    }
    if !(5..=1000).contains(&settings.page_size) {
        return Err(settings_error(
            datacenter,
            format!(
                "`page_size` {} is not between 5 and 1000",
                settings.page_size
            ),
        ));
    }
    let handles: Vec<_> = settings
        .regions
        .iter()
        .map(|region| {
            let region = region.clone();
            let settings = settings.clone();
            let datacenter = datacenter.clone();
            tokio::spawn(async move { list_region(&datacenter, &settings, &region).await })
        })
        .collect();
    let mut machines = Vec::new();
    for handle in handles {
        let listed = handle
            .await
            .map_err(|err| discovery_error(datacenter, format!("region task failed: {err}")))??;
        machines.extend(listed);
    }
    let (nodes, skipped) = judge(datacenter, &naming, machines);
    Ok(Discovered { nodes, skipped })
}

async fn list_region(
    datacenter: &DatacenterName,
    settings: &AwsSettings,
    region: &str,
) -> Result<Vec<Machine>, InventoryError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(90))
                .build(),
        );
    if let Some(endpoint) = &settings.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    let config = loader.load().await;
    let client = aws_sdk_ec2::Client::new(&config);

    let mut filters: Vec<Filter> = settings
        .tags
        .iter()
        .map(|(key, value)| {
            Filter::builder()
                .name(format!("tag:{key}"))
                .values(value)
                .build()
        })
        .collect();
    filters.push(
        Filter::builder()
            .name("instance-state-name")
            .set_values(Some(settings.states.clone()))
            .build(),
    );
    let mut pages = client
        .describe_instances()
        .set_filters(Some(filters))
        .into_paginator()
        .page_size(settings.page_size)
        .send();
    let mut machines = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| {
            discovery_error(
                datacenter,
                format!("region `{region}`: {}", sdk_cause(&err)),
            )
        })?;
        for reservation in page.reservations() {
            machines.extend(reservation.instances().iter().map(|i| machine(region, i)));
        }
    }
    Ok(machines)
}

fn machine(region: &str, instance: &Instance) -> Machine {
    let id = instance.instance_id().unwrap_or_default().to_string();
    let tags: BTreeMap<String, String> = instance
        .tags()
        .iter()
        .filter_map(|tag| Some((tag.key()?.to_string(), tag.value()?.to_string())))
        .collect();
    let mut facts = BTreeMap::from([
        ("provider".to_string(), "aws".to_string()),
        ("region".to_string(), region.to_string()),
        ("instance_id".to_string(), id.clone()),
    ]);
    let state = instance
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string());
    let optional = [
        ("state", state),
        (
            "instance_type",
            instance.instance_type().map(|t| t.as_str().to_string()),
        ),
        (
            "availability_zone",
            instance
                .placement()
                .and_then(|p| p.availability_zone())
                .map(str::to_string),
        ),
        ("vpc_id", instance.vpc_id().map(str::to_string)),
        ("subnet_id", instance.subnet_id().map(str::to_string)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            facts.insert(key.to_string(), value);
        }
    }
    Machine {
        id,
        tags,
        private_ip: instance.private_ip_address().map(str::to_string),
        public_ip: instance.public_ip_address().map(str::to_string),
        facts,
    }
}

/// An SDK error in one line. Not `DisplayErrorContext`, which appends the error's whole
/// Debug structure: a service error's code and message, or else each cause of the
/// chain once (a link that already shows the next one's text stands for both).
pub(crate) fn sdk_cause<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    if let Some(service) = err.as_service_error() {
        let code = service.code().unwrap_or("service error");
        return match service.message() {
            Some(message) => one_line(&format!("{code}: {message}")),
            None => code.to_string(),
        };
    }
    let mut causes: Vec<String> = Vec::new();
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = link {
        let text = one_line(&current.to_string());
        if !text.is_empty() && !causes.last().is_some_and(|last| last.contains(&text)) {
            causes.push(text);
        }
        link = current.source();
    }
    causes.join(": ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn discovery_error(datacenter: &DatacenterName, reason: String) -> InventoryError {
    InventoryError::Discovery {
        datacenter: datacenter.clone(),
        provider: ProviderKind::Aws,
        reason,
    }
}

fn settings_error(datacenter: &DatacenterName, message: String) -> InventoryError {
    InventoryError::Settings {
        datacenter: datacenter.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesError;

    use super::*;

    #[test]
    fn a_service_error_is_its_code_and_message() {
        let meta = ErrorMetadata::builder()
            .code("AuthFailure")
            .message("AWS was not able to validate\nthe provided access credentials")
            .build();
        let err = SdkError::service_error(DescribeInstancesError::generic(meta), ());
        assert_eq!(
            sdk_cause(&err),
            "AuthFailure: AWS was not able to validate the provided access credentials"
        );
    }

    #[test]
    fn a_connection_failure_is_its_chain_of_causes_on_one_line() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err: SdkError<DescribeInstancesError, ()> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        let cause = sdk_cause(&err);
        assert_eq!(cause, "dispatch failure: io error: refused");
        assert!(!cause.contains('{') && !cause.contains('\n'), "{cause}");
    }
}
