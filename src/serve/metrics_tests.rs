use std::collections::BTreeMap;

use super::*;

/// The exposition's samples: `name{label="v",...}` (labels sorted) to value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_string(),
        };
        assert!(
            out.insert(key, value.parse().expect("value")).is_none(),
            "{line}"
        );
    }
    out
}

fn run(kind: &'static str, result: &str, seconds: f64, deployed: &[(&str, &str)]) -> RunFinished {
    RunFinished {
        kind,
        result: result.into(),
        seconds,
        nodes_by_outcome: vec![("changed".into(), 3), ("failed".into(), 1)],
        deployed: deployed
            .iter()
            .map(|(d, c)| (d.to_string(), c.to_string()))
            .collect(),
    }
}

const A: &str = "0123456789abcdef0123456789abcdef01234567";
const B: &str = "89abcdef0123456789abcdef0123456789abcdef";

#[test]
fn counts_deliveries_runs_nodes_and_durations() {
    let metrics = Metrics::new();
    metrics.delivery(Receiver::Github, DeliveryResult::Accepted);
    metrics.delivery(Receiver::Github, DeliveryResult::Accepted);
    metrics.delivery(Receiver::Github, DeliveryResult::Unauthorized);
    metrics.delivery(Receiver::Generic, DeliveryResult::TooLarge);
    metrics.run_finished(&run("apply", "succeeded", 3.0, &[("dc1", A)]));
    metrics.run_finished(&run("apply", "failed", 100.0, &[]));
    metrics.run_finished(&run("plan", "pending", 0.5, &[]));

    let text = metrics.encode();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no `{k}` in\n{text}"));
    assert_eq!(
        get(r#"tandem_webhook_deliveries_total{receiver="github",result="accepted"}"#),
        2.0
    );
    assert_eq!(
        get(r#"tandem_webhook_deliveries_total{receiver="github",result="unauthorized"}"#),
        1.0
    );
    assert_eq!(
        get(r#"tandem_webhook_deliveries_total{receiver="generic",result="too_large"}"#),
        1.0
    );
    assert_eq!(
        get(r#"tandem_runs_total{kind="apply",result="succeeded"}"#),
        1.0
    );
    assert_eq!(
        get(r#"tandem_runs_total{kind="apply",result="failed"}"#),
        1.0
    );
    assert_eq!(
        get(r#"tandem_runs_total{kind="plan",result="pending"}"#),
        1.0
    );
    assert_eq!(get(r#"tandem_nodes_total{outcome="changed"}"#), 9.0);
    assert_eq!(get(r#"tandem_nodes_total{outcome="failed"}"#), 3.0);
    assert_eq!(
        get(r#"tandem_run_duration_seconds_count{kind="apply"}"#),
        2.0
    );
    assert_eq!(
        get(r#"tandem_run_duration_seconds_sum{kind="apply"}"#),
        103.0
    );
    assert_eq!(
        get(r#"tandem_run_duration_seconds_bucket{kind="apply",le="4.0"}"#),
        1.0
    );
    assert_eq!(
        get(r#"tandem_run_duration_seconds_bucket{kind="apply",le="+Inf"}"#),
        2.0
    );
    assert_eq!(
        get(&format!(
            r#"tandem_deployed_commit{{commit="{A}",datacenter="dc1"}}"#
        )),
        1.0
    );
}

#[test]
fn a_datacenter_shows_only_its_current_commit() {
    let metrics = Metrics::new();
    metrics.run_finished(&run("apply", "succeeded", 1.0, &[("dc1", A), ("dc2", A)]));
    metrics.run_finished(&run("apply", "succeeded", 1.0, &[("dc1", B)]));
    let s = samples(&metrics.encode());
    let deployed: Vec<&String> = s
        .keys()
        .filter(|k| k.starts_with("tandem_deployed_commit"))
        .collect();
    assert_eq!(
        deployed,
        [
            &format!(r#"tandem_deployed_commit{{commit="{A}",datacenter="dc2"}}"#),
            &format!(r#"tandem_deployed_commit{{commit="{B}",datacenter="dc1"}}"#),
        ]
    );
}

#[test]
fn unknown_words_and_bad_names_never_become_labels() {
    let metrics = Metrics::new();
    let mut finished = run(
        "apply",
        "x\"} 1\nevil",
        1.0,
        &[
            ("dc1", "not-hex-at-all-but-forty-characters-long"),
            ("bad dc", A),
        ],
    );
    finished.nodes_by_outcome = vec![("<script>".into(), 2)];
    metrics.run_finished(&finished);
    let text = metrics.encode();
    assert!(
        !text.contains("evil") && !text.contains("<script>"),
        "{text}"
    );
    assert!(!text.contains("tandem_deployed_commit{"), "{text}");
    let s = samples(&text);
    assert_eq!(s[r#"tandem_runs_total{kind="apply",result="other"}"#], 1.0);
    assert_eq!(s[r#"tandem_nodes_total{outcome="other"}"#], 2.0);
}
