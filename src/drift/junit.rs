//! The drift report as JUnit XML for CI dashboards (written by `quick-junit`): a test
//! suite per datacenter, a test case per node and resource (`NODE RESOURCE`, class
//! name the role). Drifted and missing are failures (an acknowledged one is skipped,
//! with who and until when), unreachable and host_key are errors, not_checked is
//! skipped, in_sync and pending pass (pending says so in its output). A datacenter
//! that was not discovered is one error case; parity breaks are failures of a `parity`
//! suite.

use std::collections::BTreeMap;

use quick_junit::{NonSuccessKind, Report as Junit, TestCase, TestCaseStatus, TestSuite};

use crate::drift::report::{Report, Status};
use crate::drift::text::diff_lines;

pub fn render(report: &Report) -> String {
    let mut junit = Junit::new(format!("tandem drift {}", report.site));
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for dc in &report.coverage.datacenters {
        let mut suite = TestSuite::new(dc.name.as_str());
        if let Some(err) = &dc.error {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(format!("datacenter not discovered: {err}"));
            status.set_type("not_discovered");
            suite.add_test_case(TestCase::new("discovery", status));
        }
        suites.insert(dc.name.as_str(), suite);
    }
    for node in &report.nodes {
        let suite = suites
            .entry(node.datacenter.as_str())
            .or_insert_with(|| TestSuite::new(node.datacenter.as_str()));
        for f in &node.resources {
            let mut status = match (f.status, &f.acknowledged) {
                (Status::Drifted | Status::Missing, Some(ack)) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!(
                        "{} acknowledged by {} until {}: {}",
                        f.status.as_str(),
                        ack.by,
                        ack.until,
                        ack.reason
                    ));
                    s
                }
                (Status::Drifted | Status::Missing, None) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    let mut text: Vec<String> = f
                        .attributes
                        .iter()
                        .map(|a| {
                            format!(
                                "{}: desired {}, actual {}",
                                a.attribute,
                                a.desired.as_deref().unwrap_or("(see diff)"),
                                a.actual.as_deref().unwrap_or("(see diff)")
                            )
                        })
                        .collect();
                    text.extend(diff_lines(f.diff.as_ref()));
                    s.set_description(text.join("\n"));
                    s
                }
                (Status::Unreachable | Status::HostKey, _) => {
                    TestCaseStatus::non_success(NonSuccessKind::Error)
                }
                (Status::NotChecked, _) => TestCaseStatus::skipped(),
                (Status::InSync | Status::Pending, _) => TestCaseStatus::success(),
            };
            if !matches!(f.status, Status::InSync | Status::Pending) && f.acknowledged.is_none() {
                let why = f.reason.as_deref().or(node.reason.as_deref()).unwrap_or("");
                status.set_type(f.status.as_str());
                status.set_message(if why.is_empty() {
                    f.status.as_str().to_string()
                } else {
                    format!("{}: {why}", f.status.as_str())
                });
            }
            let mut case = TestCase::new(format!("{} {}", node.node, f.resource), status);
            case.set_classname(node.role.as_str());
            if f.status == Status::Pending {
                case.set_system_out(format!(
                    "pending: {}",
                    f.reason
                        .as_deref()
                        .unwrap_or("git moved since the last apply")
                ));
            }
            suite.add_test_case(case);
        }
    }
    junit.add_test_suites(suites.into_values());
    if !report.parity.is_empty() {
        let mut suite = TestSuite::new("parity");
        for p in &report.parity {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_type("parity");
            let values: Vec<String> = p
                .values
                .iter()
                .map(|(dc, v)| format!("{dc}: {}", v.join(", ")))
                .collect();
            status.set_message(format!(
                "role {}: {} differs between {} and {}: {}",
                p.role,
                p.fact,
                p.datacenters[0],
                p.datacenters[1],
                values.join("; ")
            ));
            let mut case = TestCase::new(
                format!(
                    "{} {} {}/{}",
                    p.role, p.fact, p.datacenters[0], p.datacenters[1]
                ),
                status,
            );
            case.set_classname(p.role.as_str());
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    // Strings only: serializing into memory cannot fail.
    junit.to_string().unwrap_or_default()
}
