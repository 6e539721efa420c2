//! Cloud discovery: `tandem inventory` runs as a child process against a real EC2 API
//! (moto server on loopback) and a local Resource Manager stand-in
//! (`support/arm_server.py`, also loopback). Discovered addresses are only compared,
//! never connected to.

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use serde_json::{json, Value};

use super::{json_of, nodes_by_name, write_site};

use crate::support::arm::ArmServer;
use crate::support::moto::{self, Moto};

const SITE_TAG: (&str, &str) = ("tandem-site", "prod");

fn aws_dc(name: &str, endpoint: &str, regions: &[&str], page_size: u32) -> String {
    format!(
        "[datacenters.{name}]\nprovider = \"aws\"\n[datacenters.{name}.aws]\n\
         regions = {regions:?}\nendpoint = \"{endpoint}\"\npage_size = {page_size}\n\
         tags = {{ tandem-site = \"prod\" }}\n\n"
    )
}

/// A datacenter that is a site's only one, and therefore its primary.
fn only(datacenter: String) -> String {
    datacenter.replacen("\n[datacenters.", "\nprimary = true\n[datacenters.", 1)
}

fn azure_dc(name: &str, server: &ArmServer, groups: &[&str]) -> String {
    format!(
        "[datacenters.{name}]\nprovider = \"azure\"\nprimary = true\n[datacenters.{name}.azure]\n\
         subscription = \"{sub}\"\nresource_groups = {groups:?}\nendpoint = \"{ep}\"\n\
         login_endpoint = \"{ep}\"\ntags = {{ tandem-site = \"prod\" }}\n\n",
        sub = crate::support::arm::SUBSCRIPTION,
        ep = server.endpoint(),
    )
}

/// Runs the tandem binary with only test credentials (moto's, and `azure_env`).
async fn tandem(site: &Path, args: &[&str], azure_env: &[(&str, &str)]) -> Output {
    let env: Vec<(&str, &str)> = moto::CHILD_ENV.iter().chain(azure_env).copied().collect();
    super::tandem(site, args, &env).await
}

#[tokio::test]
async fn aws_lists_tagged_running_instances_through_pages_and_regions() {
    let moto = Moto::start();
    let east = moto.client("us-east-1");
    let subnet = moto::subnet(&east, "10.77.0.0/24").await;
    let mut expected = Vec::new();
    for i in 0..12 {
        let (name, ip) = (format!("fe-aws-{i:02}"), format!("10.77.0.{}", 10 + i));
        let tags = [SITE_TAG, ("Name", &name), ("tandem-role", "frontend")];
        moto::launch(&east, &subnet, Some(&ip), &tags, 1).await;
        expected.push((name, "aws-useast1".to_string(), "frontend".to_string(), ip));
    }
    // Excluded: another site's instances, untagged ones, stopped ones.
    moto::launch(
        &east,
        &subnet,
        None,
        &[("tandem-site", "staging"), ("tandem-role", "frontend")],
        2,
    )
    .await;
    moto::launch(&east, &subnet, None, &[], 2).await;
    let stopped = moto::launch(
        &east,
        &subnet,
        None,
        &[SITE_TAG, ("tandem-role", "store")],
        2,
    )
    .await;
    moto::stop(&east, &stopped).await;
    // Listed but not a node: no role tag.
    let roleless = moto::launch(&east, &subnet, Some("10.77.0.99"), &[SITE_TAG], 1).await;
    // A second region, listed concurrently.
    let west = moto.client("us-west-2");
    let west_subnet = moto::subnet(&west, "10.78.0.0/24").await;
    let tags = [SITE_TAG, ("Name", "store-aws-0"), ("tandem-role", "store")];
    moto::launch(&west, &west_subnet, Some("10.78.0.5"), &tags, 1).await;
    expected.push((
        "store-aws-0".into(),
        "aws-useast1".into(),
        "store".into(),
        "10.78.0.5".into(),
    ));
    expected.sort();

    // Precondition: the emulator pages at 5, so 12 instances need several pages.
    let first = east
        .describe_instances()
        .max_results(5)
        .send()
        .await
        .unwrap();
    assert!(
        first.next_token().is_some(),
        "moto must page DescribeInstances"
    );

    let site = tempfile::tempdir().unwrap();
    write_site(
        site.path(),
        &only(aws_dc(
            "aws-useast1",
            &moto.endpoint(),
            &["us-east-1", "us-west-2"],
            5,
        )),
    );
    let output = tandem(site.path(), &["--format", "json", "inventory"], &[]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json_of(&output);
    assert_eq!(nodes_by_name(&report), expected);
    let node = &report["nodes"][0];
    assert_eq!(node["state"], "running");
    assert_eq!(node["facts"]["provider"], "aws");
    assert_eq!(node["facts"]["region"], "us-east-1");
    assert!(node["facts"]["instance_id"]
        .as_str()
        .unwrap()
        .starts_with("i-"));
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["id"], roleless[0].as_str());
    assert_eq!(skipped[0]["reason"], "no `tandem-role` tag");

    // The text table shows the same nodes with their addresses and state.
    let text = tandem(site.path(), &["inventory"], &[]).await;
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("13 nodes"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("fe-aws-03 "))
        .expect("fe-aws-03 row");
    assert!(
        line.contains("10.77.0.13") && line.contains("running") && line.contains("frontend"),
        "{line}"
    );
}

fn vm(name: &str, role: &str, ip: &str) -> Value {
    json!({"name": name, "power": "running", "private_ip": ip,
           "tags": {"tandem-site": "prod", "tandem-role": role, "Name": name}})
}

#[tokio::test]
async fn azure_follows_next_link_filters_tags_and_power_and_waits_out_throttling() {
    let mut stopped = vm("fe-az-stopped", "frontend", "10.77.1.50");
    stopped["power"] = json!("deallocated");
    let mut other_site = vm("fe-az-other", "frontend", "10.77.1.51");
    other_site["tags"]["tandem-site"] = json!("staging");
    let mut nic_elsewhere = vm("store-az-0", "store", "10.77.1.20");
    nic_elsewhere["nic_group"] = json!("network-rg");
    let server = ArmServer::start(json!({
        "page_size": 2,
        "throttle": {"match": "virtualMachines", "times": 1, "retry_after": 1},
        "groups": {
            "web-rg": [vm("fe-az-0", "frontend", "10.77.1.10"), vm("fe-az-1", "frontend", "10.77.1.11"),
                       vm("fe-az-2", "frontend", "10.77.1.12"), stopped, other_site],
            "store-rg": [nic_elsewhere],
        },
    }));
    let site = tempfile::tempdir().unwrap();
    write_site(
        site.path(),
        &azure_dc("azure-westus", &server, &["web-rg", "store-rg"]),
    );
    let output = tandem(
        site.path(),
        &["--format", "json", "inventory"],
        &ArmServer::child_env(),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json_of(&output);
    let dc = "azure-westus".to_string();
    assert_eq!(
        nodes_by_name(&report),
        vec![
            (
                "fe-az-0".into(),
                dc.clone(),
                "frontend".into(),
                "10.77.1.10".into()
            ),
            (
                "fe-az-1".into(),
                dc.clone(),
                "frontend".into(),
                "10.77.1.11".into()
            ),
            (
                "fe-az-2".into(),
                dc.clone(),
                "frontend".into(),
                "10.77.1.12".into()
            ),
            (
                "store-az-0".into(),
                dc.clone(),
                "store".into(),
                "10.77.1.20".into()
            ),
        ]
    );
    assert_eq!(report["nodes"][0]["facts"]["resource_group"], "web-rg");
    assert_eq!(report["nodes"][0]["state"], "running");

    let requests = server.requests();
    let vm_pages: Vec<&Value> = requests
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .contains("web-rg/providers/Microsoft.Compute")
        })
        .collect();
    // One 429, then three pages of two (five VMs) through nextLink.
    assert_eq!(vm_pages[0]["status"], 429);
    let served: Vec<&Value> = vm_pages
        .iter()
        .copied()
        .filter(|r| r["status"] == 200)
        .collect();
    assert_eq!(served.len(), 3, "{vm_pages:?}");
    assert!(served[2]["path"].as_str().unwrap().contains("$skiptoken=4"));
    let waited = served[0]["t"].as_f64().unwrap() - vm_pages[0]["t"].as_f64().unwrap();
    assert!(
        waited >= 1.0,
        "Retry-After: 1 must be honoured, retried after {waited:.2} s"
    );
    let lone_nic = requests.iter().any(|r| {
        r["path"]
            .as_str()
            .unwrap()
            .contains("network-rg/providers/Microsoft.Network/networkInterfaces/store-az-0-nic")
    });
    assert!(
        lone_nic,
        "the NIC in another resource group is fetched by id"
    );
}

#[tokio::test]
async fn azure_refused_token_fails_the_datacenter_without_showing_the_secret() {
    let server = ArmServer::start(
        json!({"refuse_tokens": true, "groups": {"web-rg": [vm("fe-az-0", "frontend", "10.77.1.10")]}}),
    );
    let site = tempfile::tempdir().unwrap();
    write_site(site.path(), &azure_dc("azure-westus", &server, &["web-rg"]));
    let output = tandem(site.path(), &["inventory"], &ArmServer::child_env()).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`azure-westus`") && stderr.contains("invalid_client"),
        "{stderr}"
    );
    let all = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        !all.contains(crate::support::arm::CLIENT_SECRET),
        "secret leaked: {all}"
    );
}

#[tokio::test]
async fn azure_expired_token_is_renewed_once() {
    let server = ArmServer::start(
        json!({"reject_first_token": true, "groups": {"web-rg": [vm("fe-az-0", "frontend", "10.77.1.10")]}}),
    );
    let site = tempfile::tempdir().unwrap();
    write_site(site.path(), &azure_dc("azure-westus", &server, &["web-rg"]));
    let output = tandem(
        site.path(),
        &["--format", "json", "inventory"],
        &ArmServer::child_env(),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(json_of(&output)["nodes"].as_array().unwrap().len(), 1);
    let requests = server.requests();
    let token_posts = requests.iter().filter(|r| r["method"] == "POST").count();
    assert_eq!(token_posts, 2, "{requests:?}");
    assert!(requests.iter().any(|r| r["status"] == 401));
}

#[tokio::test]
async fn a_datacenter_that_is_down_is_reported_and_the_other_is_listed() {
    let server =
        ArmServer::start(json!({"groups": {"web-rg": [vm("fe-az-0", "frontend", "10.77.1.10")]}}));
    let dead = format!("http://127.0.0.1:{}", moto::free_port());
    let site = tempfile::tempdir().unwrap();
    write_site(
        site.path(),
        &format!(
            "{}{}",
            azure_dc("azure-westus", &server, &["web-rg"]),
            aws_dc("aws-useast1", &dead, &["us-east-1"], 1000)
        ),
    );
    let output = tandem(
        site.path(),
        &["--format", "json", "inventory"],
        &ArmServer::child_env(),
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let report = json_of(&output);
    assert_eq!(nodes_by_name(&report)[0].0, "fe-az-0");
    assert_eq!(report["failures"][0]["datacenter"], "aws-useast1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not discovered: `aws-useast1`"), "{stderr}");
    assert!(
        !stderr.contains("testing"),
        "credentials must not show: {stderr}"
    );
}

#[tokio::test]
async fn an_aws_failure_is_one_line_naming_the_datacenter_and_the_cause() {
    let dead = format!("http://127.0.0.1:{}", moto::free_port());
    let site = tempfile::tempdir().unwrap();
    write_site(
        site.path(),
        &only(aws_dc("aws-useast1", &dead, &["us-east-1"], 1000)),
    );
    let output = tandem(site.path(), &["inventory"], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failures: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("discovery failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{stderr}");
    let line = failures[0];
    assert!(
        line.starts_with(
            "error: datacenter `aws-useast1`: aws discovery failed: region `us-east-1`: "
        ),
        "{line}"
    );
    // The cause once, as text: not the SDK's Debug structure after it.
    assert_eq!(line.matches("Connection refused").count(), 1, "{line}");
    assert!(
        !line.contains('{') && !line.contains("DispatchFailure"),
        "{line}"
    );
    assert!(
        !stderr.contains("testing"),
        "credentials must not show: {stderr}"
    );
}

#[tokio::test]
async fn the_cache_saves_a_second_listing_and_refresh_bypasses_it() {
    let server =
        ArmServer::start(json!({"groups": {"web-rg": [vm("fe-az-0", "frontend", "10.77.1.10")]}}));
    let site = tempfile::tempdir().unwrap();
    write_site(site.path(), &azure_dc("azure-westus", &server, &["web-rg"]));
    let env = ArmServer::child_env();
    let first = tandem(site.path(), &["inventory"], &env).await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let after_first = server.requests().len();
    assert!(after_first > 0);
    let second = tandem(site.path(), &["inventory"], &env).await;
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(
        server.requests().len(),
        after_first,
        "the second run must use the cache"
    );
    let refreshed = tandem(site.path(), &["inventory", "--refresh"], &env).await;
    assert_eq!(refreshed.stdout, first.stdout);
    assert!(
        server.requests().len() > after_first,
        "--refresh must list again"
    );
}

/// The closing note's figure: `tandem inventory` over 500 moto instances.
#[tokio::test]
async fn aws_inventory_of_500_instances() {
    let moto = Moto::start();
    let client = moto.client("us-east-1");
    let subnet = moto::subnet(&client, "10.80.0.0/20").await;
    for _ in 0..5 {
        moto::launch(
            &client,
            &subnet,
            None,
            &[SITE_TAG, ("tandem-role", "frontend")],
            100,
        )
        .await;
    }
    let site = tempfile::tempdir().unwrap();
    write_site(
        site.path(),
        &only(aws_dc(
            "aws-useast1",
            &moto.endpoint(),
            &["us-east-1"],
            1000,
        )),
    );
    let started = Instant::now();
    let output = tandem(
        site.path(),
        &["--format", "json", "inventory", "--refresh"],
        &[],
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(json_of(&output)["nodes"].as_array().unwrap().len(), 500);
    eprintln!(
        "tandem inventory, 500 moto instances: {:.2} s",
        elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn azure_managed_identity_gets_its_token_from_the_metadata_service() {
    let server = ArmServer::start(json!({
        "managed_identity": true,
        "groups": {"web-rg": [vm("fe-az-0", "frontend", "10.77.1.10")]},
    }));
    let site = tempfile::tempdir().unwrap();
    let dc = azure_dc("azure-westus", &server, &["web-rg"]);
    let dc = format!(
        "{dc}credentials = \"managed-identity\"\nidentity_endpoint = \"{}\"\n",
        server.endpoint()
    );
    write_site(site.path(), &dc);
    // No service principal in the environment: the identity is the machine's.
    let output = tandem(site.path(), &["--format", "json", "inventory"], &[]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(nodes_by_name(&json_of(&output))[0].3, "10.77.1.10");
    let requests = server.requests();
    assert!(
        requests.iter().all(|r| r["method"] == "GET"),
        "no client-credentials POST: {requests:?}"
    );
    assert!(requests[0]["path"]
        .as_str()
        .unwrap()
        .starts_with("/metadata/identity/oauth2/token?"));
}

/// Tags are written by whoever may tag an instance. A `Name` holding a newline (which
/// `tandem trust` once wrote raw into known_hosts), a role tag that is not a name and a
/// `Name` that reads as an option each skip that machine with the reason; the others
/// are still listed, on AWS and on Azure alike.
#[tokio::test]
async fn machines_with_hostile_tags_are_skipped_with_the_reason_and_the_rest_listed() {
    let moto = Moto::start();
    let east = moto.client("us-east-1");
    let subnet = moto::subnet(&east, "10.77.0.0/24").await;
    for (name, ip) in [("fe-aws-0", "10.77.0.10"), ("fe-aws-1", "10.77.0.11")] {
        let tags = [SITE_TAG, ("Name", name), ("tandem-role", "frontend")];
        moto::launch(&east, &subnet, Some(ip), &tags, 1).await;
    }
    let hostile = [
        ("evil\n10.77.0.99 ssh-ed25519 AAAA", "frontend"),
        ("-oProxyCommand=x", "frontend"),
        ("fine-name", "front end"),
    ];
    let mut hostile_ids = Vec::new();
    for (i, (name, role)) in hostile.iter().enumerate() {
        let ip = format!("10.77.0.{}", 50 + i);
        let tags = [SITE_TAG, ("Name", *name), ("tandem-role", *role)];
        hostile_ids.push(
            moto::launch(&east, &subnet, Some(&ip), &tags, 1)
                .await
                .remove(0),
        );
    }
    let arm = ArmServer::start(json!({"groups": {"web-rg": [
        vm("fe-az-0", "frontend", "10.77.1.10"),
        vm("fe-az-1", "front\nend", "10.77.1.11"),
    ]}}));

    let site = tempfile::tempdir().unwrap();
    write_site(
        site.path(),
        &format!(
            "{}{}",
            azure_dc("azure-westus", &arm, &["web-rg"]),
            aws_dc("aws-useast1", &moto.endpoint(), &["us-east-1"], 1000)
        ),
    );
    let output = tandem(
        site.path(),
        &["--format", "json", "inventory"],
        &ArmServer::child_env(),
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json_of(&output);
    let names: Vec<String> = nodes_by_name(&report).into_iter().map(|n| n.0).collect();
    assert_eq!(names, ["fe-aws-0", "fe-aws-1", "fe-az-0"]);
    let skipped = report["skipped"].as_array().unwrap();
    let reason_of = |id: &str| {
        skipped
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("`{id}` not skipped: {skipped:?}"))["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        reason_of(&hostile_ids[0]),
        "tag `Name`: tag value `evil\\n10.77.0.99 ssh-ed25519 AAAA` holds a control \
         character (`\\n`)"
    );
    assert!(
        reason_of(&hostile_ids[1]).starts_with("`Name` tag: node name `-oProxyCommand=x`"),
        "{skipped:?}"
    );
    assert!(
        reason_of(&hostile_ids[2]).starts_with("`tandem-role` tag: role name `front end`"),
        "{skipped:?}"
    );
    let azure_skip = skipped
        .iter()
        .find(|s| s["datacenter"] == "azure-westus")
        .expect("the Azure machine with a newline in its role is skipped");
    assert!(
        azure_skip["reason"]
            .as_str()
            .unwrap()
            .contains("holds a control character"),
        "{azure_skip}"
    );
    // Nothing of the hostile name reaches the output as a raw line of its own.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.lines().any(|l| l.starts_with("10.77.0.99")),
        "{stdout}"
    );
}
