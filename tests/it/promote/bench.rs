//! The promote benchmark of issue 12 (ignored by default: 24 systemd hosts): time from
//! `tandem promote --yes` to both datacenters converged and verified, on 10 + 10 front
//! ends and 2 + 2 stores, split into demote, promote and DNS as tandem reports them
//! (`--format json`), next to the wall time of the whole command. Run with
//! `cargo test --test it promote::bench -- --ignored --nocapture`.

use super::promote_site;

#[test]
#[ignore = "benchmark: 24 systemd hosts"]
fn promote_time_on_ten_and_ten_front_ends_and_two_and_two_stores() {
    let sf = promote_site(
        "promote-bench",
        "azure-westus:frontend:10,aws-useast1:frontend:10,azure-westus:store:2,aws-useast1:store:2",
    );
    let run = sf.tandem_within(
        &[
            "--format",
            "json",
            "promote",
            "aws-useast1",
            "--reason",
            "bench",
            "--yes",
        ],
        std::time::Duration::from_secs(600),
    );
    run.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let t = &report["timings"];
    eprintln!(
        "promote bench (debug build): command {:.1}s; tandem total {:.1}s: demote {:.1}s, promote {:.1}s, dns {:.1}s",
        run.elapsed.as_secs_f64(),
        t["total_s"].as_f64().unwrap_or_default(),
        t["demote_s"].as_f64().unwrap_or_default(),
        t["promote_s"].as_f64().unwrap_or_default(),
        t["dns_s"].as_f64().unwrap_or_default(),
    );
    sf.tandem(&["plan"]).expect_code(0);
}
