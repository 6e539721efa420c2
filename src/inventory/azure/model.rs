//! Resource Manager's JSON, as much of it as discovery reads: virtual machines with
//! their instance view, network interfaces and public IP addresses. Unknown fields are
//! ignored (ARM adds them freely); missing optional ones are `None`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Vm {
    pub name: String,
    pub location: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: VmProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmProperties {
    pub vm_id: Option<String>,
    pub hardware_profile: Option<HardwareProfile>,
    pub network_profile: Option<NetworkProfile>,
    pub instance_view: Option<InstanceView>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    pub vm_size: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    #[serde(default)]
    pub network_interfaces: Vec<NicRef>,
}

#[derive(Debug, Deserialize)]
pub struct NicRef {
    pub id: String,
    #[serde(default)]
    pub properties: Option<Primary>,
}

#[derive(Debug, Deserialize)]
pub struct Primary {
    #[serde(default)]
    pub primary: bool,
}

#[derive(Debug, Deserialize)]
pub struct InstanceView {
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Deserialize)]
pub struct Status {
    pub code: String,
}

impl Vm {
    /// `running`, `stopped`, `deallocated`, …; `unknown` without an instance view.
    pub fn power_state(&self) -> String {
        self.properties
            .instance_view
            .as_ref()
            .and_then(|view| {
                view.statuses
                    .iter()
                    .find_map(|s| s.code.strip_prefix("PowerState/"))
            })
            .unwrap_or("unknown")
            .to_string()
    }

    pub fn primary_nic(&self) -> Option<&str> {
        let nics = &self.properties.network_profile.as_ref()?.network_interfaces;
        nics.iter()
            .find(|n| n.properties.as_ref().is_some_and(|p| p.primary))
            .or_else(|| nics.first())
            .map(|n| n.id.as_str())
    }
}

#[derive(Debug, Deserialize)]
pub struct Nic {
    pub id: String,
    #[serde(default)]
    pub properties: NicProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicProperties {
    #[serde(default)]
    pub ip_configurations: Vec<IpConfig>,
}

#[derive(Debug, Deserialize)]
pub struct IpConfig {
    #[serde(default)]
    pub properties: IpConfigProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfigProperties {
    #[serde(default)]
    pub primary: bool,
    #[serde(rename = "privateIPAddress")]
    pub private_ip_address: Option<String>,
    #[serde(rename = "publicIPAddress")]
    pub public_ip_address: Option<ResourceRef>,
}

#[derive(Debug, Deserialize)]
pub struct ResourceRef {
    pub id: String,
}

impl Nic {
    pub fn primary_config(&self) -> Option<&IpConfig> {
        let configs = &self.properties.ip_configurations;
        configs
            .iter()
            .find(|c| c.properties.primary)
            .or_else(|| configs.first())
    }
}

#[derive(Debug, Deserialize)]
pub struct PublicIp {
    pub id: String,
    #[serde(default)]
    pub properties: PublicIpProperties,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpProperties {
    pub ip_address: Option<String>,
}
