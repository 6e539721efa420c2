//! The Azure provider: the documented Resource Manager REST calls (virtual machines with
//! their instance view, network interfaces, public IPs; `nextLink` paging; a pinned
//! `api-version`) against a configurable base URL, with tokens from `token`. The frozen
//! `azure_mgmt_compute` crate is not used, and neither is `azure_identity`: it adds
//! reqwest and 37 more crates on top of the same TLS stack, and its bearer policy
//! refuses the plain-http loopback server the tests use. Tag and power-state filters apply client side (the VM list
//! API has no tag filter).

mod http;
mod model;
mod token;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use async_trait::async_trait;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::machine::{judge, AddressSource, Machine, Naming};
use super::{
    AzureSettings, DatacenterSpec, Discovered, InventoryError, Provider, ProviderConfig,
    ProviderKind,
};
use crate::node::DatacenterName;
use http::{status_error, HttpClient, Outgoing};
use model::{Nic, PublicIp, Vm};
use token::{TokenError, TokenSource};

pub const DEFAULT_MANAGEMENT: &str = "https://management.azure.com";
const COMPUTE_API: &str = "2024-07-01";
const NETWORK_API: &str = "2024-05-01";
/// Pages followed per list, a bound against a server that links to itself forever.
const MAX_PAGES: usize = 10_000;

/// Lists Azure virtual machines; stateless, the settings come with each datacenter.
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureProvider;

#[async_trait]
impl Provider for AzureProvider {
    async fn discover(&self, datacenter: &DatacenterSpec) -> Result<Discovered, InventoryError> {
        let ProviderConfig::Azure(settings) = &datacenter.provider else {
            return Err(InventoryError::Settings {
                datacenter: datacenter.name.clone(),
                message: "not an azure datacenter".to_string(),
            });
        };
        let naming = Naming {
            role_tag: settings.role_tag.clone(),
            name_tag: settings.name_tag.clone(),
            address: AddressSource::parse(&datacenter.name, &settings.address)?,
        };
        let arm = Arm::new(&datacenter.name, settings)?;
        let mut machines = Vec::new();
        for group in &settings.resource_groups {
            machines.extend(arm.group(group, &naming.address).await?);
        }
        let (nodes, skipped) = judge(&datacenter.name, &naming, machines);
        Ok(Discovered { nodes, skipped })
    }
}

/// One datacenter's Resource Manager session.
struct Arm<'a> {
    datacenter: &'a DatacenterName,
    settings: &'a AzureSettings,
    base: String,
    http: HttpClient,
    tokens: TokenSource,
}

impl<'a> Arm<'a> {
    fn new(
        datacenter: &'a DatacenterName,
        settings: &'a AzureSettings,
    ) -> Result<Self, InventoryError> {
        let base = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| DEFAULT_MANAGEMENT.to_string())
            .trim_end_matches('/')
            .to_string();
        let http = HttpClient::new().map_err(|err| discovery(datacenter, err.to_string()))?;
        let tokens =
            TokenSource::new(settings, &base).map_err(|err| InventoryError::Credentials {
                datacenter: datacenter.clone(),
                provider: ProviderKind::Azure,
                reason: err.to_string(),
            })?;
        Ok(Arm {
            datacenter,
            settings,
            base,
            http,
            tokens,
        })
    }

    /// The wanted machines of one resource group.
    async fn group(
        &self,
        group: &str,
        address: &AddressSource,
    ) -> Result<Vec<Machine>, InventoryError> {
        let scope = format!(
            "{}/subscriptions/{}/resourceGroups/{}",
            self.base, self.settings.subscription, group
        );
        let vms: Vec<Vm> = self
            .list(&format!(
                "{scope}/providers/Microsoft.Compute/virtualMachines?api-version={COMPUTE_API}&$expand=instanceView"
            ))
            .await?;
        let wanted: Vec<Vm> = vms
            .into_iter()
            .filter(|vm| {
                self.settings
                    .tags
                    .iter()
                    .all(|(k, v)| vm.tags.get(k) == Some(v))
                    && self.settings.states.iter().any(|s| *s == vm.power_state())
            })
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut nics: BTreeMap<String, Nic> = self
            .list::<Nic>(&format!(
                "{scope}/providers/Microsoft.Network/networkInterfaces?api-version={NETWORK_API}"
            ))
            .await?
            .into_iter()
            .map(|nic| (nic.id.to_lowercase(), nic))
            .collect();
        // A VM's NIC may live in another resource group: fetch those one by one.
        for vm in &wanted {
            if let Some(id) = vm.primary_nic() {
                if let Entry::Vacant(slot) = nics.entry(id.to_lowercase()) {
                    let url = format!("{}{id}?api-version={NETWORK_API}", self.base);
                    slot.insert(self.get(&url).await?);
                }
            }
        }
        let public_ips: BTreeMap<String, String> = if *address == AddressSource::Public {
            self.list::<PublicIp>(&format!(
                "{scope}/providers/Microsoft.Network/publicIPAddresses?api-version={NETWORK_API}"
            ))
            .await?
            .into_iter()
            .filter_map(|ip| Some((ip.id.to_lowercase(), ip.properties.ip_address?)))
            .collect()
        } else {
            BTreeMap::new()
        };
        Ok(wanted
            .into_iter()
            .map(|vm| self.machine(group, vm, &nics, &public_ips))
            .collect())
    }

    fn machine(
        &self,
        group: &str,
        vm: Vm,
        nics: &BTreeMap<String, Nic>,
        public_ips: &BTreeMap<String, String>,
    ) -> Machine {
        let config = vm
            .primary_nic()
            .and_then(|id| nics.get(&id.to_lowercase()))
            .and_then(Nic::primary_config);
        let private_ip = config.and_then(|c| c.properties.private_ip_address.clone());
        let public_ip = config
            .and_then(|c| c.properties.public_ip_address.as_ref())
            .and_then(|r| public_ips.get(&r.id.to_lowercase()).cloned());
        let mut facts = BTreeMap::from([
            ("provider".to_string(), "azure".to_string()),
            (
                "subscription".to_string(),
                self.settings.subscription.clone(),
            ),
            ("resource_group".to_string(), group.to_string()),
            ("state".to_string(), vm.power_state()),
        ]);
        if let Some(location) = &vm.location {
            facts.insert("region".to_string(), location.clone());
        }
        if let Some(vm_id) = &vm.properties.vm_id {
            facts.insert("instance_id".to_string(), vm_id.clone());
        }
        if let Some(size) = vm
            .properties
            .hardware_profile
            .as_ref()
            .and_then(|h| h.vm_size.clone())
        {
            facts.insert("instance_type".to_string(), size);
        }
        Machine {
            id: vm.name,
            tags: vm.tags,
            private_ip,
            public_ip,
            facts,
        }
    }

    /// Every item of a paged list, following `nextLink` on the same host only.
    async fn list<T: DeserializeOwned>(&self, first: &str) -> Result<Vec<T>, InventoryError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page<T> {
            #[serde(default = "Vec::new")]
            value: Vec<T>,
            next_link: Option<String>,
        }
        let mut items = Vec::new();
        let mut url = first.to_string();
        for _ in 0..MAX_PAGES {
            let page: Page<T> = self.get(&url).await?;
            items.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                // The bearer token goes to Resource Manager and nowhere else.
                Some(next) if next.starts_with(&format!("{}/", self.base)) => url = next,
                Some(next) => {
                    return Err(discovery(
                        self.datacenter,
                        format!("`nextLink` leaves the management endpoint: `{next}`"),
                    ))
                }
                None => return Ok(items),
            }
        }
        Err(discovery(
            self.datacenter,
            format!("more than {MAX_PAGES} pages at `{first}`"),
        ))
    }

    /// One GET with a bearer token; a 401 gets one fresh token and one more try.
    async fn get<T: DeserializeOwned>(&self, url: &str) -> Result<T, InventoryError> {
        for fresh in [false, true] {
            if fresh {
                self.tokens.invalidate().await;
            }
            let token = self
                .tokens
                .token(&self.http)
                .await
                .map_err(|err| self.token_error(err))?;
            let outgoing = Outgoing {
                method: Method::GET,
                url: url.to_string(),
                headers: vec![
                    ("authorization", format!("Bearer {token}")),
                    ("accept", "application/json".to_string()),
                ],
                body: Bytes::new(),
            };
            let response = self
                .http
                .send(&outgoing)
                .await
                .map_err(|err| discovery(self.datacenter, err.to_string()))?;
            if response.status == StatusCode::UNAUTHORIZED && !fresh {
                continue;
            }
            if !response.status.is_success() {
                return Err(discovery(self.datacenter, arm_error(url, &response)));
            }
            return serde_json::from_slice(&response.body).map_err(|err| {
                discovery(
                    self.datacenter,
                    format!("`{url}`: unexpected response: {err}"),
                )
            });
        }
        Err(discovery(
            self.datacenter,
            format!("`{url}`: token refused twice"),
        ))
    }

    fn token_error(&self, err: TokenError) -> InventoryError {
        InventoryError::Credentials {
            datacenter: self.datacenter.clone(),
            provider: ProviderKind::Azure,
            reason: err.to_string(),
        }
    }
}

/// ARM's error body (`{"error": {"code", "message"}}`), or the raw status.
fn arm_error(url: &str, response: &http::Response) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Body>(&response.body) {
        Ok(body) => format!(
            "`{url}` answered {}: {}: {}",
            response.status.as_u16(),
            body.error.code,
            body.error.message
        ),
        Err(_) => status_error(url, response).to_string(),
    }
}

fn discovery(datacenter: &DatacenterName, reason: String) -> InventoryError {
    InventoryError::Discovery {
        datacenter: datacenter.clone(),
        provider: ProviderKind::Azure,
        reason,
    }
}
