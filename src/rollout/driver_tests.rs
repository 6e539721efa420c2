//! The driver with fake apply closures: threshold math, halts, health checks, pauses.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::rollout::planner::tests::{datacenters, fleet};
use crate::rollout::{plan, BatchSize, HealthCheck, HealthProbe, Order, RolloutPolicy};

fn policy(max_failed: usize) -> RolloutPolicy {
    RolloutPolicy {
        order: Order::StandbyFirst,
        canary: 1,
        batch: BatchSize::Count(6),
        max_failed,
        pause_seconds: 0,
        health: None,
    }
}

/// Applies by looking each node up in `bad`: listed nodes get that outcome, others
/// change. Records the batches it was given.
fn fake_apply(
    bad: Vec<(&'static str, Outcome)>,
    seen: Arc<Mutex<Vec<Vec<String>>>>,
) -> impl FnMut(Vec<Node>) -> std::future::Ready<Vec<(NodeName, Outcome)>> {
    move |nodes: Vec<Node>| {
        seen.lock()
            .unwrap()
            .push(nodes.iter().map(|n| n.name.to_string()).collect());
        let outcomes = nodes
            .into_iter()
            .map(|n| {
                let outcome = bad
                    .iter()
                    .find(|(name, _)| *name == n.name.as_str())
                    .map(|(_, o)| *o)
                    .unwrap_or(Outcome::Changed);
                (n.name, outcome)
            })
            .collect();
        std::future::ready(outcomes)
    }
}

fn no_command(_: Node, _: String, _: Duration) -> std::future::Ready<Result<(), String>> {
    std::future::ready(Err("no transport in this test".into()))
}

// Plan with canary 1 and batches of 6 over 20 nodes: [aws-0], [az-0],
// [aws-1..aws-6], [aws-7..aws-9, az-1..az-3], [az-4..az-9].

#[tokio::test]
async fn a_clean_rollout_applies_every_batch_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let plan = plan(fleet(), &datacenters(), &policy(0)).unwrap();
    let report = run(
        plan,
        &policy(0),
        fake_apply(vec![], seen.clone()),
        no_command,
        |_| {},
    )
    .await;
    assert_eq!(report.halt, None);
    assert_eq!(report.nodes.len(), 20);
    assert!(report.nodes.iter().all(|n| n.outcome == Outcome::Changed));
    assert_eq!(report.exit_status(), Status::Ok);
    let batches = seen.lock().unwrap();
    assert_eq!(batches.len(), 5);
    assert_eq!(batches[0], ["aws-0"]);
    assert_eq!(batches[1], ["az-0"]);
}

#[tokio::test]
async fn a_failed_canary_halts_with_max_failed_zero() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let plan = plan(fleet(), &datacenters(), &policy(0)).unwrap();
    let report = run(
        plan,
        &policy(0),
        fake_apply(vec![("aws-0", Outcome::Failed)], seen.clone()),
        no_command,
        |_| {},
    )
    .await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no batch after the failed canary"
    );
    assert_eq!(
        report.halt,
        Some(Halt::Threshold {
            after_batch: 1,
            failed: 1,
            max_failed: 0
        })
    );
    let not_attempted = report.not_attempted();
    assert_eq!(not_attempted.len(), 19);
    assert!(not_attempted.iter().any(|n| n.as_str() == "az-0"));
    assert_eq!(report.exit_status(), Status::Failed);
    let text = report.to_string();
    assert!(
        text.contains("halted after batch 1: 1 failed nodes exceed max_failed 0"),
        "{text}"
    );
    assert!(
        text.contains("failed, unreachable and host-key nodes count"),
        "{text}"
    );
    assert!(text.contains("not attempted: az-0, aws-1"), "{text}");
}

#[tokio::test]
async fn unreachable_and_host_key_count_but_skipped_does_not() {
    let bad = vec![
        ("aws-1", Outcome::Unreachable),
        ("aws-2", Outcome::Skipped),
        ("aws-7", Outcome::HostKey),
    ];
    let seen = Arc::new(Mutex::new(Vec::new()));
    let plan = plan(fleet(), &datacenters(), &policy(1)).unwrap();
    let report = run(
        plan,
        &policy(1),
        fake_apply(bad, seen.clone()),
        no_command,
        |_| {},
    )
    .await;
    // Batch 3 brings one (unreachable), within max_failed 1; batch 4 brings the second.
    assert_eq!(
        report.halt,
        Some(Halt::Threshold {
            after_batch: 4,
            failed: 2,
            max_failed: 1
        })
    );
    assert_eq!(seen.lock().unwrap().len(), 4);
    let names: BTreeSet<&str> = report.not_attempted().iter().map(|n| n.as_str()).collect();
    let expected: BTreeSet<&str> = ["az-4", "az-5", "az-6", "az-7", "az-8", "az-9"].into();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn reaching_the_threshold_exactly_does_not_halt() {
    let bad = vec![("aws-3", Outcome::Unreachable), ("az-9", Outcome::Failed)];
    let plan = plan(fleet(), &datacenters(), &policy(2)).unwrap();
    let report = run(
        plan,
        &policy(2),
        fake_apply(bad, Default::default()),
        no_command,
        |_| {},
    )
    .await;
    assert_eq!(report.halt, None);
    assert_eq!(report.failed_count(), 2);
    assert!(report.not_attempted().is_empty());
    assert_eq!(report.exit_status(), Status::Failed);
}

#[tokio::test]
async fn failures_in_the_last_batch_fail_the_run_without_a_halt() {
    let bad = vec![("az-8", Outcome::Failed), ("az-9", Outcome::Unreachable)];
    let plan = plan(fleet(), &datacenters(), &policy(0)).unwrap();
    let report = run(
        plan,
        &policy(0),
        fake_apply(bad, Default::default()),
        no_command,
        |_| {},
    )
    .await;
    assert_eq!(report.halt, None, "nothing is left to stop");
    assert_eq!(report.failed_count(), 2);
    assert!(report.not_attempted().is_empty());
    assert_eq!(report.exit_status(), Status::Failed);
    assert!(report.to_string().contains("failure threshold: 2 of max 0"));
}

#[tokio::test]
async fn a_node_the_executor_forgets_counts_as_failed() {
    let apply = |nodes: Vec<Node>| {
        let outcomes = nodes
            .into_iter()
            .filter(|n| n.name.as_str() != "az-0")
            .map(|n| (n.name, Outcome::Unchanged));
        std::future::ready(outcomes.collect::<Vec<_>>())
    };
    let plan = plan(fleet(), &datacenters(), &policy(0)).unwrap();
    let report = run(plan, &policy(0), apply, no_command, |_| {}).await;
    assert_eq!(
        report.halt,
        Some(Halt::Threshold {
            after_batch: 2,
            failed: 1,
            max_failed: 0
        })
    );
    assert_eq!(report.nodes[1].outcome, Outcome::Failed);
}

#[tokio::test]
async fn a_failing_command_health_check_halts_before_the_next_batch() {
    let mut policy = policy(5);
    policy.health = Some(HealthCheck {
        probe: HealthProbe::Command("systemctl is-active nginx".into()),
        timeout_seconds: 2,
        roles: Vec::new(),
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let checked = Arc::new(Mutex::new(Vec::new()));
    let checked_in = checked.clone();
    let health = move |node: Node, command: String, _timeout: Duration| {
        checked_in.lock().unwrap().push(node.name.to_string());
        assert_eq!(command, "systemctl is-active nginx");
        let verdict = if node.name.as_str() == "aws-4" {
            Err("exit status 3: inactive".to_string())
        } else {
            Ok(())
        };
        std::future::ready(verdict)
    };
    let plan = plan(fleet(), &datacenters(), &policy).unwrap();
    let mut lines = Vec::new();
    let report = run(
        plan,
        &policy,
        fake_apply(vec![("aws-2", Outcome::Failed)], seen.clone()),
        health,
        |p: Progress<'_>| lines.push(p.to_string()),
    )
    .await;
    assert_eq!(
        report.halt,
        Some(Halt::Health {
            after_batch: 3,
            failures: vec![HealthFailure {
                node: NodeName::new("aws-4").unwrap(),
                reason: "exit status 3: inactive".into()
            }]
        })
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    // The failed node is not health-checked: only converged nodes are.
    let checked = checked.lock().unwrap();
    assert_eq!(
        *checked,
        ["aws-0", "az-0", "aws-1", "aws-3", "aws-4", "aws-5", "aws-6"]
    );
    assert_eq!(report.not_attempted().len(), 12);
    assert!(report
        .to_string()
        .contains("  aws-4: exit status 3: inactive"));
    assert_eq!(
        lines,
        [
            "canary 1 (aws-useast1) of 5: applying 1 node",
            "health check on 1 nodes of canary 1 (aws-useast1)",
            "canary 2 (azure-westus) of 5: applying 1 node",
            "health check on 1 nodes of canary 2 (azure-westus)",
            "batch 3 of 5: applying 6 nodes",
            "health check on 5 nodes of batch 3",
            "halting after batch 3: health check failed on 1 nodes",
        ]
    );
}

#[tokio::test]
async fn a_failing_http_health_check_halts_and_a_passing_one_does_not() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Healthy for the first two requests (the two canaries), then 500.
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for served in 0..3 {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let status = if served < 2 {
                "200 OK"
            } else {
                "500 Internal Server Error"
            };
            let _ = socket
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
        }
    });
    let mut policy = policy(0);
    policy.batch = BatchSize::Count(1);
    policy.health = Some(HealthCheck {
        probe: HealthProbe::Http(format!("http://{{address}}:{port}/healthz")),
        timeout_seconds: 2,
        roles: Vec::new(),
    });
    let nodes: Vec<Node> = fleet()
        .into_iter()
        .filter(|n| ["aws-0", "aws-1", "az-0", "az-1"].contains(&n.name.as_str()))
        .collect();
    let plan = plan(nodes, &datacenters(), &policy).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let report = run(
        plan,
        &policy,
        fake_apply(vec![], seen.clone()),
        no_command,
        |_| {},
    )
    .await;
    match &report.halt {
        Some(Halt::Health {
            after_batch: 3,
            failures,
        }) => {
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].node.as_str(), "aws-1");
            assert!(
                failures[0].reason.contains("status 500"),
                "{}",
                failures[0].reason
            );
        }
        other => panic!("expected a health halt after batch 3, got {other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(report.not_attempted(), [&NodeName::new("az-1").unwrap()]);
}

#[tokio::test]
async fn the_pause_separates_batches_but_not_the_end() {
    let mut policy = policy(0);
    policy.pause_seconds = 1;
    policy.canary = 0;
    policy.batch = BatchSize::Percent(50);
    let nodes: Vec<Node> = fleet().into_iter().take(4).collect();
    let plan = plan(nodes, &datacenters(), &policy).unwrap();
    assert_eq!(plan.batches.len(), 2);
    let mut lines = Vec::new();
    let started = Instant::now();
    let report = run(
        plan,
        &policy,
        fake_apply(vec![], Default::default()),
        no_command,
        |p: Progress<'_>| lines.push(p.to_string()),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(report.halt, None);
    assert_eq!(
        lines,
        [
            "batch 1 of 2: applying 2 nodes",
            "pausing 1s before the next batch",
            "batch 2 of 2: applying 2 nodes",
        ]
    );
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1900),
        "no pause after the last batch: {elapsed:?}"
    );
}
