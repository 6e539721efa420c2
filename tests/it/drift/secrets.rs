//! A canary secret never leaves the node through a drift report: the secret-bearing
//! keyfile edited by hand reads drifted with line numbers and fingerprints only, a plain
//! file that now holds the secret's value shows it redacted, and neither the four
//! formats nor the run history (findings are digests) hold the value.

use super::{drift_json, finding};
use crate::support::site::SiteFleet;

#[test]
fn no_format_and_no_store_holds_the_secret() {
    let sf = SiteFleet::up("drift-secrets", "azure-westus:store:1,aws-useast1:store:1");
    let fleet = &sf.fleet;
    sf.tandem(&["apply"]).expect_code(0);
    let canary = sf.secret("mongodb_keyfile");
    assert!(
        canary.len() >= 16,
        "the example's keyfile secret is a real canary"
    );
    let host = "store-aws-1";
    fleet.exec_ok(
        host,
        &format!(
            "echo extra >> /etc/mongodb/keyfile && printf '# %s\\n' '{}' >> /etc/mongod.conf",
            canary.trim()
        ),
    );
    let (run, report) = drift_json(&sf, &[]);
    run.expect_code(2);
    let keyfile = finding(&report, host, "file:/etc/mongodb/keyfile");
    assert_eq!(keyfile["status"], "drifted", "{run}");
    assert_eq!(keyfile["diff"]["kind"], "redacted", "{keyfile}");
    assert!(
        !keyfile["diff"]["added_lines"]
            .as_array()
            .unwrap()
            .is_empty()
            || !keyfile["diff"]["removed_lines"]
                .as_array()
                .unwrap()
                .is_empty()
    );
    let conf = finding(&report, host, "file:/etc/mongod.conf");
    assert_eq!(conf["status"], "drifted", "{run}");
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = vec![("json".to_string(), run.all_output())];
    for format in ["text", "html", "junit"] {
        let file = dir.path().join(format!("drift.{format}"));
        let run = sf.tandem(&["drift", "--format", format, "--out", file.to_str().unwrap()]);
        run.expect_code(2);
        outputs.push((
            format.to_string(),
            std::fs::read_to_string(&file).unwrap() + &run.all_output(),
        ));
    }
    let text = &outputs[1].1;
    assert!(text.contains("secret-bearing content: lines"), "{text}");
    assert!(
        text.contains("[secret "),
        "the plain file's diff shows the marker:\n{text}"
    );
    for line in canary.lines().filter(|l| l.len() >= 8) {
        for (format, out) in &outputs {
            assert!(!out.contains(line), "{format} output holds the secret");
        }
        for entry in std::fs::read_dir(sf.site().join(".tandem")).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(line), "{} holds the secret", path.display());
        }
        let state = fleet.exec_ok(host, "cat /var/lib/tandem/applied");
        assert!(
            !state.contains(line),
            "the node state file holds the secret"
        );
    }
}
