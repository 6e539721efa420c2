//! What stops a promote before it changes anything (a standby node with drift, one that
//! fails its health check), what a dry run leaves (only the plan's run record), and the
//! Route53 failover records flipped through the SDK against moto on loopback.
//!
//! What moto can prove: the SDK request tandem builds is accepted as one
//! `ChangeResourceRecordSets` call (one change id comes back) holding an UPSERT per
//! record, the records read back afterwards with their `Failover` roles swapped and
//! their values, TTL and set identifiers kept, and nothing but loopback was reached.
//! What it cannot: moto answers `INSYNC` at once and never resolves names or evaluates
//! failover routing or health checks, so how fast real resolvers follow is not tested.

use super::{git, host_state, hosts, promote_site, read_only};

const PROMOTE: [&str; 5] = ["promote", "aws-useast1", "--reason", "drill", "--yes"];

#[test]
fn drift_or_a_failed_health_check_blocks_and_a_dry_run_changes_nothing() {
    let sf = promote_site(
        "promote-checks",
        "azure-westus:frontend:1,aws-useast1:frontend:1",
    );
    let fleet = &sf.fleet;
    let aws = hosts(fleet, "aws-useast1", "frontend")[0];
    let states = || -> Vec<String> {
        fleet
            .nodes()
            .iter()
            .map(|n| host_state(fleet, n.name.as_str()))
            .collect()
    };

    // Drift on the standby: refused, naming the node and the resource.
    fleet.exec_ok(aws, "echo '# hand edit' >> /etc/txserver/txserver.toml");
    let before = states();
    let refused = sf.tandem(&PROMOTE);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains(&format!("target node `{aws}`"))
            && refused.stderr.contains("not in sync")
            && refused.stderr.contains("file:/etc/txserver/txserver.toml"),
        "{refused}"
    );
    assert_eq!(before, states(), "a refused promote changed a host");
    sf.tandem(&["apply", "--on", aws]).expect_code(0);

    // In sync but unhealthy: nginx stopped answering (its processes are stopped, not
    // gone, so systemd still reports it active and the probe reads it in sync).
    let nginx = "$(cat /run/nginx.pid) $(pgrep -P $(cat /run/nginx.pid))";
    fleet.exec_ok(aws, &format!("kill -STOP {nginx}"));
    let before = states();
    let refused = sf.tandem(&PROMOTE);
    fleet.exec_ok(aws, &format!("kill -CONT {nginx}"));
    refused.expect_code(1);
    assert!(
        refused.stderr.contains(&format!("target node `{aws}`"))
            && refused.stderr.contains("health check failed"),
        "{refused}"
    );
    assert_eq!(before, states(), "a refused promote changed a host");

    // A dry run: the plan with diffs, then nothing: hosts, git and history untouched
    // but for the plan's own run record.
    let head = git(sf.site(), &["rev-parse", "HEAD"]);
    let history = sf.site().join(".tandem/history.sqlite");
    let count = |sql: &str| -> i64 {
        let db = rusqlite::Connection::open(&history).unwrap();
        db.query_row(sql, [], |r| r.get(0)).unwrap()
    };
    let runs_before = count("SELECT COUNT(*) FROM runs");
    let before = states();
    let dry = sf.tandem(&["promote", "aws-useast1", "--reason", "drill", "--dry-run"]);
    dry.expect_code(0);
    assert!(
        dry.stdout.contains("step 1, demote")
            && dry.stdout.contains("+read_only = true")
            && dry.stdout.contains("step 2, promote")
            && dry.stdout.contains("+read_only = false")
            && dry.stdout.contains("dry run: nothing was changed"),
        "{dry}"
    );
    assert_eq!(before, states(), "a dry run changed a host");
    assert_eq!(git(sf.site(), &["rev-parse", "HEAD"]), head);
    assert_eq!(git(sf.site(), &["status", "--porcelain"]), "");
    assert_eq!(count("SELECT COUNT(*) FROM runs"), runs_before + 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM runs WHERE id = (SELECT MAX(id) FROM runs) AND kind = 'plan'"),
        1
    );
    assert_eq!(count("SELECT COUNT(*) FROM failovers"), 0);

    // Without `--yes` and without a terminal: refused before anything changes.
    let unconfirmed = sf.tandem(&["promote", "aws-useast1", "--reason", "drill"]);
    unconfirmed.expect_code(1);
    assert!(unconfirmed.stderr.contains("pass `--yes`"), "{unconfirmed}");
    assert_eq!(before, states());
    assert!(read_only(fleet, aws));
}

#[cfg(feature = "aws")]
mod route53 {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet,
        ResourceRecordSetFailover, RrType,
    };

    use std::time::Duration;

    use super::super::commit_all;
    use super::*;
    use crate::support::moto::{free_port, Moto, CHILD_ENV};

    fn client(moto: &Moto) -> aws_sdk_route53::Client {
        let config = aws_sdk_route53::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(aws_sdk_route53::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        aws_sdk_route53::Client::from_conf(config)
    }

    fn record(set: &str, role: ResourceRecordSetFailover, ip: &str) -> Change {
        Change::builder()
            .action(ChangeAction::Create)
            .resource_record_set(
                ResourceRecordSet::builder()
                    .name("payments.example.com.")
                    .r#type(RrType::A)
                    .set_identifier(set)
                    .failover(role)
                    .ttl(60)
                    .resource_records(ResourceRecord::builder().value(ip).build().unwrap())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    /// Set identifier to (failover role, value) as Route53 lists them.
    async fn roles(client: &aws_sdk_route53::Client, zone: &str) -> Vec<(String, String, String)> {
        let listed = client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        let mut out: Vec<_> = listed
            .resource_record_sets()
            .iter()
            .filter(|r| r.set_identifier().is_some())
            .map(|r| {
                (
                    r.set_identifier().unwrap_or_default().to_string(),
                    r.failover()
                        .map(|f| f.as_str().to_string())
                        .unwrap_or_default(),
                    r.resource_records()
                        .first()
                        .map(|v| v.value().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_failover_records_swap_in_one_batch_and_a_dns_failure_leaves_the_nodes_promoted() {
        let moto = Moto::start();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let client = client(&moto);
        let zone = rt.block_on(async {
            let zone = client
                .create_hosted_zone()
                .name("example.com.")
                .caller_reference("tandem-test")
                .send()
                .await
                .unwrap();
            let id = zone
                .hosted_zone()
                .unwrap()
                .id()
                .trim_start_matches("/hostedzone/")
                .to_string();
            let batch = ChangeBatch::builder()
                .changes(record(
                    "azure",
                    ResourceRecordSetFailover::Primary,
                    "10.0.0.1",
                ))
                .changes(record(
                    "aws",
                    ResourceRecordSetFailover::Secondary,
                    "10.0.0.2",
                ))
                .build()
                .unwrap();
            client
                .change_resource_record_sets()
                .hosted_zone_id(&id)
                .change_batch(batch)
                .send()
                .await
                .unwrap();
            id
        });

        let sf = promote_site(
            "promote-dns",
            "azure-westus:frontend:1,aws-useast1:frontend:1",
        );
        let fleet = &sf.fleet;
        let site_toml = sf.site().join("manifests/site.toml");
        let mut text = std::fs::read_to_string(&site_toml).unwrap();
        text.push_str(&format!(
            "\n[failover.route53]\nhosted_zone_id = \"{zone}\"\nrecord_name = \"payments.example.com.\"\n\
             set_identifiers = {{ azure-westus = \"azure\", aws-useast1 = \"aws\" }}\nendpoint = \"{}\"\n",
            moto.endpoint()
        ));
        std::fs::write(&site_toml, text).unwrap();
        commit_all(&sf, "route53 records");

        let run = sf.tandem_env(&PROMOTE, CHILD_ENV, Duration::from_secs(180));
        run.expect_code(0);
        assert!(
            run.stdout
                .contains("route53: failover records flipped in one batch, change `"),
            "{run}"
        );
        assert_eq!(
            rt.block_on(roles(&client, &zone)),
            vec![
                (
                    "aws".to_string(),
                    "PRIMARY".to_string(),
                    "10.0.0.2".to_string()
                ),
                (
                    "azure".to_string(),
                    "SECONDARY".to_string(),
                    "10.0.0.1".to_string()
                ),
            ]
        );

        // Back to azure with the Route53 API unreachable: reported, nodes promoted.
        let dead = format!("http://127.0.0.1:{}", free_port());
        sf.edit_site("manifests/site.toml", &moto.endpoint(), &dead);
        commit_all(&sf, "route53 down");
        let back = ["promote", "azure-westus", "--reason", "back", "--yes"];
        let run = sf.tandem_env(&back, CHILD_ENV, Duration::from_secs(180));
        run.expect_code(3);
        assert!(
            run.stdout
                .contains("route53 FAILED, the nodes stay promoted"),
            "{run}"
        );
        let az = hosts(fleet, "azure-westus", "frontend")[0];
        let aws = hosts(fleet, "aws-useast1", "frontend")[0];
        assert!(!read_only(fleet, az), "{run}");
        assert!(read_only(fleet, aws), "{run}");
        // The records were left as the first promote set them.
        assert_eq!(rt.block_on(roles(&client, &zone))[0].1, "PRIMARY");
        let status = sf.tandem(&["status"]);
        assert!(
            status
                .stdout
                .contains("primary `azure-westus`, failover epoch 2"),
            "{status}"
        );
    }
}
