//! Cloud inventory end to end (issue #5's acceptance): the example site's two
//! datacenters are discovered through a real EC2 API (moto on loopback) and the local
//! Resource Manager server, with no inventory file, and converged over real SSH onto a
//! local fleet whose hosts carry exactly the addresses the clouds report. Decoys the
//! clouds also list (untagged, stopped, another site's) get addresses inside the
//! fleet's /24 that no host has; each decoy address is also put on the loopback
//! interface with listeners on ports 22 and 80, so a connection attempt to one would
//! be seen, not merely time out.
//!
//! The stand-in node variables the demo inventory normally carries have no file to live
//! in here; the test's private copy of the site sets them at the role level instead
//! (taken from `scripts/demo-inventory`, the one place that defines them), so the
//! production manifests stay untouched.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::arm::{self, ArmServer};
use crate::support::moto::{self, Moto};
use crate::support::site::{repo_root, run_bounded, Run, SiteFleet};

const LAYOUT: &str =
    "azure-westus:frontend:1,aws-useast1:frontend:1,azure-westus:store:1,aws-useast1:store:1";
/// The example site's discovery settings (manifests/site.toml).
const SITE_TAG: &str = "payments";
const RESOURCE_GROUP: &str = "payments-prod-westus";

/// A machine a cloud lists that must not become a node.
struct Decoy {
    name: &'static str,
    address: String,
}

/// Runs `tandem ARGS` on the site with cloud discovery only: no inventory file, the
/// test credentials of both servers, nothing of the machine's own cloud environment.
fn tandem(sf: &SiteFleet, args: &[&str], timeout: Duration) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") || key.starts_with("AZURE_") || key.starts_with("TANDEM_") {
            command.env_remove(key);
        }
    }
    command
        .env("HOME", sf.site())
        .env("TANDEM_SITE", sf.site())
        .env("TANDEM_USER", "root")
        .env("TANDEM_KNOWN_HOSTS", sf.fleet.known_hosts_path())
        .env("TANDEM_IDENTITY", sf.fleet.key_path())
        .env(
            "TANDEM_AGE_IDENTITY",
            sf.site().join("manifests/DEMO-ONLY-age-identity.txt"),
        )
        .envs(moto::CHILD_ENV.iter().copied())
        .envs(ArmServer::child_env());
    run_bounded(command, args, timeout)
}

/// The stand-in variables per role, as `scripts/demo-inventory` writes them for the
/// fleet (every node of a role gets the same ones, which this checks).
fn standin_vars_by_role(sf: &SiteFleet) -> BTreeMap<String, toml::Table> {
    let output = Command::new(repo_root().join("scripts/demo-inventory"))
        .arg(sf.fleet.inventory_path())
        .output()
        .expect("cannot run scripts/demo-inventory");
    assert!(output.status.success(), "scripts/demo-inventory failed");
    let doc: toml::Table = String::from_utf8_lossy(&output.stdout).parse().unwrap();
    let mut by_role: BTreeMap<String, toml::Table> = BTreeMap::new();
    for node in doc["node"].as_array().unwrap() {
        let role = node["role"].as_str().unwrap().to_string();
        let vars = node
            .get("vars")
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default();
        if let Some(seen) = by_role.get(&role) {
            assert_eq!(seen, &vars, "demo vars differ within role `{role}`");
        }
        by_role.insert(role, vars);
    }
    by_role
}

/// Puts the stand-in variables into the role files of the test's copy of the site
/// (overriding the role's own values of the same name).
fn set_role_vars(sf: &SiteFleet) {
    for (role, vars) in standin_vars_by_role(sf) {
        let path = sf.site().join(format!("manifests/roles/{role}.toml"));
        let mut doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let table = doc
            .entry("vars")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .unwrap();
        table.extend(vars);
        std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    }
}

/// Points the copy's datacenters at the two local servers (and nothing else).
fn point_site_at(sf: &SiteFleet, aws_endpoint: &str, arm: &ArmServer) {
    sf.edit_site(
        "manifests/site.toml",
        "subscription = \"3f2a9c1e-5b7d-4e8a-9c0f-1d2e3f4a5b6c\"",
        &format!(
            "subscription = \"{}\"\nendpoint = \"{ep}\"\nlogin_endpoint = \"{ep}\"",
            arm::SUBSCRIPTION,
            ep = arm.endpoint()
        ),
    );
    sf.edit_site(
        "manifests/site.toml",
        "regions = [\"us-east-1\"]",
        &format!("regions = [\"us-east-1\"]\nendpoint = \"{aws_endpoint}\""),
    );
}

/// The fleet's `/24` prefix (`10.213.7`) from a host address.
fn net_of(address: &str) -> String {
    address
        .rsplit_once('.')
        .expect("an IPv4 address")
        .0
        .to_string()
}

/// Launches the aws-useast1 fleet hosts as tagged instances with their own addresses,
/// and the decoys; returns the decoys.
async fn seed_moto(moto: &Moto, sf: &SiteFleet, net: &str) -> Vec<Decoy> {
    let client = moto.client("us-east-1");
    let subnet = moto::subnet(&client, &format!("{net}.0/24")).await;
    for node in sf.fleet.nodes() {
        if node.datacenter.as_str() != "aws-useast1" {
            continue;
        }
        let tags = [
            ("tandem-site", SITE_TAG),
            ("tandem-role", node.role.as_str()),
            ("Name", node.name.as_str()),
        ];
        moto::launch(&client, &subnet, Some(&node.address), &tags, 1).await;
    }
    let decoys = vec![
        Decoy {
            name: "decoy-untagged",
            address: format!("{net}.201"),
        },
        Decoy {
            name: "decoy-stopped",
            address: format!("{net}.202"),
        },
        Decoy {
            name: "decoy-other-site",
            address: format!("{net}.203"),
        },
    ];
    moto::launch(&client, &subnet, Some(&decoys[0].address), &[], 1).await;
    let stopped = moto::launch(
        &client,
        &subnet,
        Some(&decoys[1].address),
        &[
            ("tandem-site", SITE_TAG),
            ("tandem-role", "frontend"),
            ("Name", decoys[1].name),
        ],
        1,
    )
    .await;
    moto::stop(&client, &stopped).await;
    moto::launch(
        &client,
        &subnet,
        Some(&decoys[2].address),
        &[
            ("tandem-site", "staging"),
            ("tandem-role", "frontend"),
            ("Name", decoys[2].name),
        ],
        1,
    )
    .await;
    decoys
}

fn vm(name: &str, role: &str, ip: &str, power: &str, site: &str) -> Value {
    json!({"name": name, "power": power, "private_ip": ip,
           "tags": {"tandem-site": site, "tandem-role": role, "Name": name}})
}

/// The ARM server with the azure-westus fleet hosts as VMs, plus a deallocated decoy.
fn start_arm(sf: &SiteFleet, decoy: &Decoy) -> ArmServer {
    let mut vms: Vec<Value> = sf
        .fleet
        .nodes()
        .iter()
        .filter(|n| n.datacenter.as_str() == "azure-westus")
        .map(|n| {
            vm(
                n.name.as_str(),
                n.role.as_str(),
                &n.address,
                "running",
                SITE_TAG,
            )
        })
        .collect();
    vms.push(vm(
        decoy.name,
        "frontend",
        &decoy.address,
        "deallocated",
        SITE_TAG,
    ));
    ArmServer::start(json!({ "groups": { RESOURCE_GROUP: vms } }))
}

/// Decoy addresses on `lo` with listeners on the ports tandem would use (SSH, and the
/// HTTP health check): a connection attempt to a decoy lands here. Removed on drop.
struct Tripwire {
    addresses: Vec<String>,
    /// `(address:port, listener)`.
    listeners: Vec<(String, TcpListener)>,
}

impl Tripwire {
    fn set(addresses: &[String]) -> Tripwire {
        let mut wire = Tripwire {
            addresses: Vec::new(),
            listeners: Vec::new(),
        };
        for address in addresses {
            ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"]);
            wire.addresses.push(address.clone());
            for port in [22, 80] {
                let addr: SocketAddr = format!("{address}:{port}").parse().unwrap();
                let listener = TcpListener::bind(addr)
                    .unwrap_or_else(|err| panic!("cannot listen on {addr}: {err}"));
                listener.set_nonblocking(true).unwrap();
                wire.listeners.push((addr.to_string(), listener));
            }
        }
        wire
    }

    /// `address:port` of every decoy listener something connected to so far.
    fn tripped(&self) -> Vec<String> {
        self.listeners
            .iter()
            .filter(|(_, listener)| listener.accept().is_ok())
            .map(|(addr, _)| addr.clone())
            .collect()
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.listeners.clear();
        for address in &self.addresses {
            ip(&["addr", "del", &format!("{address}/32"), "dev", "lo"]);
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run `ip`");
    if !status.success() {
        eprintln!("`ip {}` failed: {status}", args.join(" "));
    }
}

/// `(name, datacenter, role, address)` of every node `inventory --format json` lists.
fn listed(run: &Run) -> Vec<(String, String, String, String)> {
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("inventory json does not parse ({err})\n{run}"));
    let field = |n: &Value, key: &str| n[key].as_str().unwrap_or_default().to_string();
    let mut nodes: Vec<_> = report["nodes"]
        .as_array()
        .expect("a `nodes` array")
        .iter()
        .map(|n| {
            (
                field(n, "name"),
                field(n, "datacenter"),
                field(n, "role"),
                field(n, "address"),
            )
        })
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn discovered_clouds_converge_over_ssh_without_an_inventory_file() {
    let sf = SiteFleet::up("cloud-e2e", LAYOUT);
    let net = net_of(&sf.fleet.nodes()[0].address);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let moto = Moto::start();
    let mut decoys = runtime.block_on(seed_moto(&moto, &sf, &net));
    decoys.push(Decoy {
        name: "decoy-deallocated",
        address: format!("{net}.204"),
    });
    let arm = start_arm(&sf, &decoys[3]);
    let fleet_addresses: Vec<&str> = sf
        .fleet
        .nodes()
        .iter()
        .map(|n| n.address.as_str())
        .collect();
    for decoy in &decoys {
        assert!(!fleet_addresses.contains(&decoy.address.as_str()));
    }
    let tripwire = Tripwire::set(&decoys.iter().map(|d| d.address.clone()).collect::<Vec<_>>());
    // The detector itself: a connection to a decoy is seen (and then consumed).
    let probe: SocketAddr = format!("{}:22", decoys[0].address).parse().unwrap();
    drop(std::net::TcpStream::connect_timeout(&probe, Duration::from_secs(2)).unwrap());
    assert_eq!(tripwire.tripped(), vec![probe.to_string()]);
    set_role_vars(&sf);
    point_site_at(&sf, &moto.endpoint(), &arm);
    let minutes = Duration::from_secs(180);

    // Exactly the fleet, with the roles and datacenters the tags say.
    let inventory = tandem(
        &sf,
        &["--format", "json", "inventory", "--refresh"],
        minutes,
    );
    inventory.expect_code(0);
    let mut want: Vec<_> = sf
        .fleet
        .nodes()
        .iter()
        .map(|n| {
            (
                n.name.to_string(),
                n.datacenter.to_string(),
                n.role.to_string(),
                n.address.clone(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(listed(&inventory), want, "{inventory}");
    for decoy in &decoys {
        assert!(
            !inventory.stdout.contains(decoy.name) && !inventory.stdout.contains(&decoy.address),
            "decoy `{}` is in the inventory\n{inventory}",
            decoy.name
        );
    }

    let plan = tandem(&sf, &["plan"], minutes);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("site: 4 nodes: 0 in sync, 4 with changes"),
        "{plan}"
    );
    let apply = tandem(&sf, &["apply"], minutes);
    apply.expect_code(0);
    assert!(apply.stdout.contains("4 nodes: 4 changed"), "{apply}");
    let again = tandem(&sf, &["plan"], minutes);
    again.expect_code(0);

    // Converged for real: each front end serves its stand-in through nginx, with the
    // standby's read-only flag; names from tags matched host keys by address.
    for node in sf.fleet.nodes() {
        if node.role.as_str() != "frontend" {
            continue;
        }
        let read_only = node.datacenter.as_str() != "azure-westus";
        let config = sf
            .fleet
            .exec_ok(node.name.as_str(), "cat /etc/dashboard/dashboard.toml");
        assert!(
            config
                .lines()
                .any(|l| l == format!("read_only = {read_only}")),
            "{}: {config}",
            node.name
        );
        assert_eq!(
            sf.fleet
                .exec(node.name.as_str(), "systemctl is-active nginx dashboard")
                .stdout,
            b"active\nactive\n",
            "{}",
            node.name
        );
    }
    for run in [&inventory, &plan, &apply, &again] {
        for decoy in &decoys {
            assert!(
                !run.all_output().contains(&decoy.address),
                "decoy address {} appears\n{run}",
                decoy.address
            );
        }
    }
    assert_eq!(
        tripwire.tripped(),
        Vec::<String>::new(),
        "tandem connected to a decoy"
    );

    // AWS down (its endpoint a closed loopback port): Azure is still planned, the run
    // names the failed datacenter and exits 4.
    let closed = format!("http://127.0.0.1:{}", moto::free_port());
    sf.edit_site(
        "manifests/site.toml",
        &format!("endpoint = \"{}\"", moto.endpoint()),
        &format!("endpoint = \"{closed}\""),
    );
    drop(moto);
    let degraded = tandem(&sf, &["plan"], minutes);
    degraded.expect_code(4);
    assert!(
        degraded.stderr.contains("not discovered: `aws-useast1`"),
        "{degraded}"
    );
    for node in sf.fleet.nodes() {
        let shown = degraded.stdout.contains(node.name.as_str());
        assert_eq!(
            shown,
            node.datacenter.as_str() == "azure-westus",
            "`{}` in the degraded plan\n{degraded}",
            node.name
        );
    }
    assert!(
        degraded.stdout.contains("site: 2 nodes: 2 in sync"),
        "{degraded}"
    );
    assert!(
        !degraded.all_output().contains(arm::CLIENT_SECRET)
            && !degraded.all_output().contains("testing"),
        "a credential leaked\n{degraded}"
    );
    assert_eq!(
        tripwire.tripped(),
        Vec::<String>::new(),
        "tandem connected to a decoy"
    );
}
