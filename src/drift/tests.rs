//! Reports built by hand: exit codes and their precedence, escaping, the CSP hashes,
//! JUnit counts, and (ignored, run by hand) the size and time of a 10,000-node report.

use std::collections::BTreeMap;

use super::report::*;
use super::{html, junit, text, Format};
use crate::plan::Diff;

fn finding(resource: &str, status: Status) -> Finding {
    Finding {
        resource: resource.into(),
        status,
        reason: None,
        attributes: Vec::new(),
        diff: None,
        since: None,
        seen: None,
        acknowledged: None,
    }
}

fn node(name: &str, dc: &str, status: Status, resources: Vec<Finding>) -> NodeReport {
    NodeReport {
        node: name.into(),
        datacenter: dc.into(),
        role: "frontend".into(),
        status,
        assessed: !status.is_unassessed(),
        reason: status.is_unassessed().then(|| "connection refused".into()),
        applied: None,
        resources,
    }
}

/// `nodes` nodes over two datacenters with `resources` each; every `drift_every`-th
/// resource drifted with a small diff.
pub(super) fn synthetic(nodes: usize, resources: usize, drift_every: usize) -> Report {
    let mut out = Vec::with_capacity(nodes);
    let mut k = 0;
    for n in 0..nodes {
        let dc = if n % 2 == 0 {
            "azure-westus"
        } else {
            "aws-useast1"
        };
        let mut rs = Vec::with_capacity(resources);
        for r in 0..resources {
            k += 1;
            let mut f = finding(&format!("file:/etc/app/conf-{r}.toml"), Status::InSync);
            if k % drift_every == 0 {
                f.status = Status::Drifted;
                f.attributes.push(AttributeDiff {
                    attribute: "content".into(),
                    desired: None,
                    actual: None,
                });
                f.diff = Some(Diff::Text {
                    unified: format!("--- a\n+++ a\n@@ -1 +1 @@\n-workers = {r}\n+workers = 8\n"),
                });
            }
            rs.push(f);
        }
        let status = if rs.iter().any(|f| f.status == Status::Drifted) {
            Status::Drifted
        } else {
            Status::InSync
        };
        out.push(node(&format!("node-{n:05}"), dc, status, rs));
    }
    report(out)
}

fn report(nodes: Vec<NodeReport>) -> Report {
    let mut r = Report {
        schema_version: SCHEMA_VERSION,
        tandem_version: "test",
        generated_at: "2026-12-01T00:00:00Z".into(),
        site: "payments".into(),
        commit: Some("abc".into()),
        dirty: false,
        selector: None,
        coverage: Coverage::default(),
        summary: Summary::default(),
        result: Outcome {
            passed: false,
            exit_code: 1,
            reasons: Vec::new(),
        },
        nodes,
        parity: Vec::new(),
    };
    r.coverage = Coverage {
        expected: r.nodes.len(),
        assessed: r.nodes.iter().filter(|n| n.assessed).count(),
        not_assessed: r.nodes.iter().filter(|n| !n.assessed).count(),
        datacenters: ["aws-useast1", "azure-westus"]
            .iter()
            .map(|dc| DatacenterCoverage {
                name: dc.to_string(),
                discovered: true,
                error: None,
                expected: 0,
                assessed: 0,
            })
            .collect(),
    };
    r.conclude();
    r
}

#[test]
fn exit_codes_and_their_precedence() {
    let clean = report(vec![node(
        "a",
        "azure-westus",
        Status::InSync,
        vec![finding("file:/x", Status::InSync)],
    )]);
    assert_eq!((clean.result.exit_code, clean.result.passed), (0, true));
    // Pending is reported apart from drift: it does not fail.
    let pending = report(vec![node(
        "a",
        "azure-westus",
        Status::Pending,
        vec![finding("file:/x", Status::Pending)],
    )]);
    assert_eq!(pending.result.exit_code, 0);
    assert_eq!(pending.summary.pending, 1);
    let drifted = report(vec![node(
        "a",
        "azure-westus",
        Status::Drifted,
        vec![finding("file:/x", Status::Missing)],
    )]);
    assert_eq!(drifted.result.exit_code, 2);
    // Not assessed wins over drift.
    let mut both = drifted.nodes.clone();
    both.push(node(
        "b",
        "aws-useast1",
        Status::Unreachable,
        vec![finding("file:/x", Status::Unreachable)],
    ));
    let both = report(both);
    assert_eq!(both.result.exit_code, 4);
    assert_eq!(both.result.reasons[0], "1 of 2 nodes were not assessed");
    // Acknowledged drift does not fail; a parity break does.
    let mut acked = drifted.clone();
    acked.nodes[0].resources[0].acknowledged = Some(Ack {
        by: "a".into(),
        reason: "b".into(),
        until: "c".into(),
    });
    acked.conclude();
    assert_eq!((acked.result.exit_code, acked.summary.acknowledged), (0, 1));
    acked.parity.push(ParityBreak {
        role: "frontend".into(),
        fact: "kernel_release".into(),
        datacenters: ["aws-useast1".into(), "azure-westus".into()],
        values: BTreeMap::new(),
    });
    acked.conclude();
    assert_eq!(acked.result.exit_code, 2);
    // A datacenter not discovered, or nothing assessed, is never a clean report.
    let mut undiscovered = clean.clone();
    undiscovered.coverage.datacenters[0].discovered = false;
    undiscovered.coverage.datacenters[0].error = Some("discovery failed".into());
    undiscovered.conclude();
    assert_eq!(undiscovered.result.exit_code, 4);
    assert!(undiscovered.result.reasons[0].contains("`aws-useast1` was not discovered"));
    let none = report(vec![node("a", "azure-westus", Status::HostKey, vec![])]);
    assert_eq!(none.result.exit_code, 4);
    assert!(none
        .result
        .reasons
        .contains(&"no node was assessed".to_string()));
}

#[test]
fn html_escapes_everything_and_allows_only_its_own_style_and_script() {
    let mut f = finding("file:/srv/<script>alert('x')</script>&\"", Status::Drifted);
    f.reason = Some("<img src=x onerror=alert(1)>".into());
    f.diff = Some(Diff::Text {
        unified: "-</pre><script>bad()</script>\n+ok\n".into(),
    });
    let mut r = report(vec![node("n<1>", "azure-westus", Status::Drifted, vec![f])]);
    r.site = "<b>site</b>".into();
    let page = html::render(&r);
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("<b>site"), "{page}");
    assert!(page.contains("file:/srv/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
    assert!(page.contains("n&lt;1&gt;"));
    // The CSP allows exactly the page's style and script, by hash; nothing is fetched.
    let csp = html::csp();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    for (open, close) in [("<style>", "</style>"), ("<script>", "</script>")] {
        let start = page.find(open).unwrap() + open.len();
        let end = start + page[start..].find(close).unwrap();
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(&page.as_bytes()[start..end]));
        assert!(
            csp.contains(&format!("'sha256-{hash}'")),
            "{open} not allowed by {csp}"
        );
    }
}

#[test]
fn junit_counts_and_text_lists_only_what_is_not_in_sync() {
    let mut acked = finding("file:/acked", Status::Drifted);
    acked.acknowledged = Some(Ack {
        by: "me".into(),
        reason: "why".into(),
        until: "2030-01-01T00:00:00Z".into(),
    });
    let r = report(vec![
        node(
            "a",
            "azure-westus",
            Status::Drifted,
            vec![
                finding("file:/ok", Status::InSync),
                finding("file:/d", Status::Drifted),
                finding("file:/m", Status::Missing),
                finding("file:/p", Status::Pending),
                finding("exec:x", Status::NotChecked),
                acked,
            ],
        ),
        node(
            "b",
            "aws-useast1",
            Status::Unreachable,
            vec![finding("file:/ok", Status::Unreachable)],
        ),
    ]);
    let xml = junit::render(&r);
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 7, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
    assert_eq!(xml.matches("<error").count(), 1, "{xml}");
    assert_eq!(xml.matches("<skipped").count(), 2, "{xml}");
    let t = text::render(&r, false);
    assert!(t.contains("  drifted file:/d\n"), "{t}");
    assert!(
        t.contains("acknowledged by me until 2030-01-01T00:00:00Z: why"),
        "{t}"
    );
    assert!(!t.contains("file:/ok"), "{t}");
    assert!(
        t.contains("b (aws-useast1, role frontend): unreachable: connection refused"),
        "{t}"
    );
    assert!(text::render(&r, true).contains("in_sync file:/ok"));
    assert!(Format::Json
        .render(&r)
        .contains("\"schema_version\": \"1.0.0\""));
}

/// Read-only by construction: no drift source names the apply executor, the apply run,
/// the apply script or the rollout.
#[test]
fn drift_code_cannot_reach_apply() {
    for (name, source) in [
        ("mod.rs", include_str!("mod.rs")),
        ("probe.rs", include_str!("probe.rs")),
        ("assess.rs", include_str!("assess.rs")),
        ("parity.rs", include_str!("parity.rs")),
        ("report.rs", include_str!("report.rs")),
        ("text.rs", include_str!("text.rs")),
        ("html.rs", include_str!("html.rs")),
        ("junit.rs", include_str!("junit.rs")),
        ("../cli/drift.rs", include_str!("../cli/drift.rs")),
    ] {
        for forbidden in [
            "crate::apply",
            "run::apply",
            "apply::",
            "rollout",
            "write_shell",
        ] {
            assert!(!source.contains(forbidden), "{name} mentions `{forbidden}`");
        }
    }
}

#[test]
fn resources_by_datacenter_count_statuses() {
    let r = synthetic(4, 10, 10);
    let counts = r.resources_by_datacenter();
    assert_eq!(counts[&("azure-westus".to_string(), Status::Drifted)], 2);
    assert_eq!(counts[&("aws-useast1".to_string(), Status::InSync)], 18);
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `cargo test --lib drift::tests::synthetic_fleet_report -- --ignored --nocapture`
#[test]
#[ignore]
fn synthetic_fleet_report() {
    let before = peak_kib();
    let t = std::time::Instant::now();
    let mut r = synthetic(10_000, 50, 100);
    r.conclude();
    let built = t.elapsed();
    assert_eq!(r.summary.drifted, 5_000);
    for (name, format) in [
        ("text", Format::Text { verbose: false }),
        ("json", Format::Json),
        ("html", Format::Html),
        ("junit", Format::Junit),
    ] {
        let t = std::time::Instant::now();
        let out = format.render(&r);
        eprintln!(
            "{name}: {:.2?}, {:.1} MiB, peak RSS now {} MiB",
            t.elapsed(),
            out.len() as f64 / 1048576.0,
            peak_kib() / 1024
        );
    }
    eprintln!(
        "report of 10,000 nodes x 50 resources (1% drifted) built in {built:.2?}; peak RSS {} MiB (before {} MiB)",
        peak_kib() / 1024,
        before / 1024
    );
}
