//! A converged fleet reads all in sync (exit 0) without changing anything, one command
//! per node; then facts no resource pins (the OS release, a managed package's installed
//! version) differ on the standby datacenter: parity breaks naming role, fact and
//! datacenters, while what the standby overlay declares is not reported.

use super::{
    connection_ends, drift_json, files_state, sshd_journal, sshd_journal_after, verbose_sshd,
};
use crate::support::site::SiteFleet;

const HOSTS: [&str; 2] = ["frontend-azure-1", "frontend-aws-1"];

#[test]
fn converged_fleet_is_in_sync_and_untouched_then_standby_facts_break_parity() {
    let sf = SiteFleet::up(
        "drift-insync",
        "azure-westus:frontend:1,aws-useast1:frontend:1",
    );
    let fleet = &sf.fleet;
    sf.tandem(&["apply"]).expect_code(0);
    for host in HOSTS {
        verbose_sshd(fleet, host);
    }
    // The managed files, from a first report.
    let (_, first) = drift_json(&sf, &[]);
    let files: Vec<String> = first["nodes"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            r["resource"]
                .as_str()?
                .strip_prefix("file:")
                .map(str::to_string)
        })
        .collect();
    assert!(files.len() >= 5, "{files:?}");
    let before: Vec<String> = HOSTS
        .iter()
        .map(|h| files_state(fleet, h, &files))
        .collect();
    let ends: Vec<usize> = HOSTS
        .iter()
        .map(|h| connection_ends(&sshd_journal(fleet, h)))
        .collect();
    let commands: Vec<usize> = HOSTS
        .iter()
        .map(|h| {
            sshd_journal(fleet, h)
                .matches("Starting session: command")
                .count()
        })
        .collect();

    let (run, report) = drift_json(&sf, &[]);
    run.expect_code(0);
    assert_eq!(report["result"]["passed"], true, "{run}");
    assert_eq!(report["coverage"]["expected"], 2);
    assert_eq!(report["coverage"]["assessed"], 2);
    assert_eq!(report["coverage"]["not_assessed"], 0);
    assert_eq!(report["summary"]["drifted"], 0);
    assert!(report["summary"]["in_sync"].as_u64().unwrap() > 10, "{run}");
    assert!(super::not_in_sync(&report).is_empty(), "{run}");
    assert_eq!(report["parity"].as_array().unwrap().len(), 0, "{run}");
    assert!(report["tandem_version"].is_string() && report["generated_at"].is_string());
    for (i, host) in HOSTS.iter().enumerate() {
        // Read-only: every managed file byte-identical, mtime, mode and owner unchanged.
        assert_eq!(files_state(fleet, host, &files), before[i], "{host}");
        // One connection and one command.
        let journal = sshd_journal_after(fleet, host, ends[i]);
        assert_eq!(
            journal.matches("Starting session: command").count() - commands[i],
            1,
            "{host}: drift should run exactly one command\n{journal}"
        );
    }

    // Text: the summary first, nothing listed when all is in sync.
    let text = sf.tandem(&["drift"]);
    text.expect_code(0);
    assert!(
        text.stdout.starts_with("drift report: site `payments`"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("coverage: 2 nodes expected, 2 assessed, 0 not assessed"),
        "{text}"
    );
    assert!(text.stdout.contains("result: PASS (exit 0)"), "{text}");
    assert!(!text.stdout.contains("frontend-aws-1 ("), "{text}");
    let verbose = sf.tandem(&["drift", "--verbose"]);
    assert!(
        verbose
            .stdout
            .contains("in_sync file:/etc/nginx/nginx.conf"),
        "{verbose}"
    );

    // The standby's OS release and installed nginx version differ from the primary's.
    fleet.exec_ok(
        "frontend-aws-1",
        "sed -i 's/^VERSION_ID=.*/VERSION_ID=\"99\"/' /etc/os-release \
         && sed -i '/^Package: nginx$/,/^$/ s/^Version: .*/Version: 9.9.9-drift/' /var/lib/dpkg/status \
         && dpkg-query -W -f='${Version}' nginx",
    );
    let (run, report) = drift_json(&sf, &[]);
    run.expect_code(2);
    let breaks: Vec<(String, String, String, String)> = report["parity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["role"].as_str().unwrap().to_string(),
                p["fact"].as_str().unwrap().to_string(),
                p["datacenters"][0].as_str().unwrap().to_string(),
                p["datacenters"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let dcs = ("aws-useast1".to_string(), "azure-westus".to_string());
    assert_eq!(
        breaks,
        [
            (
                "frontend".into(),
                "os_release".into(),
                dcs.0.clone(),
                dcs.1.clone()
            ),
            (
                "frontend".into(),
                "package:nginx".into(),
                dcs.0.clone(),
                dcs.1.clone()
            ),
        ],
        "{run}"
    );
    let nginx = &report["parity"][1]["values"];
    assert_eq!(nginx["aws-useast1"][0], "9.9.9-drift");
    assert_ne!(nginx["azure-westus"][0], "9.9.9-drift");
    // Every resource still reads in sync: parity is not drift, and the overlay's
    // declared difference (dashboard.toml) is no parity break.
    assert!(super::not_in_sync(&report).is_empty(), "{run}");
    assert!(
        !run.stdout
            .contains("\"fact\": \"resource:file:/etc/dashboard"),
        "{run}"
    );
    assert_eq!(report["summary"]["parity_breaks"], 2);
    let text = sf.tandem(&["drift"]);
    text.expect_code(2);
    assert!(
        text.stdout.contains(
            "role frontend, package:nginx: aws-useast1 has [9.9.9-drift], azure-westus has ["
        ),
        "{text}"
    );
}
