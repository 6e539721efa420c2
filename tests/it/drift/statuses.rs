//! A fleet changed by hand and in git: a file edited on the standby node is drifted
//! with its diff, a deleted one is missing, a template changed in git without apply is
//! pending (not drifted) on both nodes; the same report as text, HTML (in headless
//! Chromium, without network), JUnit (read by junitparser) and JSON (schema-checked);
//! the history keeps first-seen times; an acknowledgement stops the failure until it
//! expires.

use std::process::Command;
use std::time::{Duration, SystemTime};

use super::{drift_json, finding, not_in_sync};
use crate::support::site::{repo_root, SiteFleet};
use crate::support::wait::wait_for;

const SCRIPT_PATH: &str = "/srv/<script>alert(1)";
const CONF: &str = "file:/etc/nginx/nginx.conf";
const APPS: &str = "file:/etc/nginx/conf.d/tandem-apps.conf";

fn git(sf: &SiteFleet, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-C"])
        .arg(sf.site())
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn hand_edits_drift_git_changes_are_pending_in_every_format_with_history_and_acks() {
    let sf = SiteFleet::up(
        "drift-statuses",
        "azure-westus:frontend:1,aws-useast1:frontend:1",
    );
    let fleet = &sf.fleet;
    // First converged without the extra file: a first apply's one script for the whole
    // example catalog is near the size a channel request can carry (libssh2 caps a
    // packet at 35,000 bytes), one more resource changed at once would not fit.
    sf.tandem(&["apply"]).expect_code(0);
    let module = sf.site().join("modules/nginx/module.toml");
    let text = std::fs::read_to_string(&module).unwrap();
    std::fs::write(
        &module,
        format!(
            "{text}\n[[resource]]\ntype = \"file\"\npath = \"{SCRIPT_PATH}\"\ncontent = \"x\\n\"\n"
        ),
    )
    .unwrap();
    git(&sf, &["init", "-q"]);
    git(&sf, &["add", "."]);
    git(&sf, &["commit", "-qm", "site"]);
    let applied_commit = git(&sf, &["rev-parse", "HEAD"]);
    sf.tandem(&["apply"]).expect_code(0);
    let (run, _) = drift_json(&sf, &[]);
    run.expect_code(0);

    // By hand on the standby node: one managed file edited, one deleted.
    fleet.exec_ok(
        "frontend-aws-1",
        "echo '# edited by hand' >> /etc/nginx/nginx.conf && rm -- '/srv/<script>alert(1)'",
    );
    // In git, not applied: the apps template changes for both nodes.
    sf.edit_site(
        "modules/nginx/templates/apps.conf.hbs",
        "about=\"routes to the local services\"}}\n",
        "about=\"routes to the local services\"}}\n# changed in git\n",
    );
    git(&sf, &["commit", "-qam", "apps"]);

    let (run, report) = drift_json(&sf, &[]);
    run.expect_code(2);
    let mut seen = not_in_sync(&report);
    seen.sort();
    let want = |n: &str, r: &str, s: &str| (n.to_string(), r.to_string(), s.to_string());
    let mut expected = vec![
        want("frontend-aws-1", &format!("file:{SCRIPT_PATH}"), "missing"),
        want("frontend-aws-1", APPS, "pending"),
        want("frontend-aws-1", CONF, "drifted"),
        want("frontend-azure-1", APPS, "pending"),
    ];
    expected.sort();
    assert_eq!(seen, expected, "{run}");
    let conf = finding(&report, "frontend-aws-1", CONF);
    assert_eq!(conf["attributes"][0]["attribute"], "content", "{conf}");
    let unified = conf["diff"]["unified"].as_str().unwrap();
    assert!(unified.contains("-# edited by hand"), "{unified}");
    let pending = finding(&report, "frontend-azure-1", APPS);
    assert!(
        pending["reason"]
            .as_str()
            .unwrap()
            .contains(&applied_commit),
        "{pending}"
    );
    assert_eq!(report["commit"], git(&sf, &["rev-parse", "HEAD"]));
    let node = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "frontend-aws-1")
        .unwrap();
    assert_eq!(node["applied"]["commit"], applied_commit.as_str());
    assert_eq!(node["applied"]["side"], "standby");
    assert_eq!(report["summary"]["drifted"], 1);
    assert_eq!(report["summary"]["missing"], 1);
    assert_eq!(report["summary"]["pending"], 2);
    let since = conf["since"].as_str().unwrap().to_string();

    // Text: the summary, then only what is not in sync.
    let text = sf.tandem(&["drift"]);
    text.expect_code(2);
    assert!(
        text.stdout
            .contains("result: FAIL (exit 2): 2 resources drifted or missing"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains(&format!("  drifted {CONF} (since {since}")),
        "{text}"
    );
    assert!(text.stdout.contains("-# edited by hand"), "{text}");
    assert!(!text.stdout.contains("in_sync file:"), "{text}");

    html_in_chromium(&sf);
    junit_counts(&sf, &report);

    // History: the same drift seen again keeps its first-seen time and counts up.
    let (_, again) = drift_json(&sf, &[]);
    let conf_again = finding(&again, "frontend-aws-1", CONF);
    assert_eq!(conf_again["since"], since.as_str());
    assert!(conf_again["seen"].as_u64().unwrap() >= 3, "{conf_again}");

    // Acknowledged until a few seconds from now: reported, not failing; then failing.
    // A whole second: `--until` takes RFC 3339 seconds, so the ack expires exactly here.
    let until = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            (SystemTime::now() + Duration::from_secs(30))
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        );
    let until_text = humantime::format_rfc3339_seconds(until).to_string();
    for resource in [CONF.to_string(), format!("file:{SCRIPT_PATH}")] {
        sf.tandem(&[
            "drift",
            "ack",
            "frontend-aws-1",
            &resource,
            "--reason",
            "hotfix under review",
            "--until",
            &until_text,
            "--by",
            "auditor@example",
        ])
        .expect_code(0);
    }
    let bad = sf.tandem(&[
        "drift",
        "ack",
        "frontend-aws-1",
        CONF,
        "--reason",
        "x",
        "--until",
        "2001-01-01",
    ]);
    bad.expect_code(1);
    assert!(
        bad.stderr.contains("`--until 2001-01-01` is in the past"),
        "{bad}"
    );
    let (run, acked) = drift_json(&sf, &[]);
    assert!(
        SystemTime::now() < until,
        "the acknowledged run took too long to tell"
    );
    run.expect_code(0);
    let ack = &finding(&acked, "frontend-aws-1", CONF)["acknowledged"];
    assert_eq!(ack["by"], "auditor@example");
    assert_eq!(ack["reason"], "hotfix under review");
    assert_eq!(acked["summary"]["acknowledged"], 2);
    assert_eq!(finding(&acked, "frontend-aws-1", CONF)["status"], "drifted");
    let failing_again = wait_for(
        Duration::from_secs(90),
        "the acknowledgement to expire",
        || {
            let run = sf.tandem(&["drift", "--format", "json"]);
            (run.code == Some(2)).then_some(SystemTime::now())
        },
    )
    .unwrap();
    assert!(failing_again >= until, "failed again before `--until`");
}

/// The HTML report opened by headless Chromium in a network namespace of its own (no
/// interface but a down loopback), with a net log of every request it tried: the
/// drifted resource and its diff are in the rendered DOM, the `<script>` path is text,
/// and the only URL requested is the file itself.
fn html_in_chromium(sf: &SiteFleet) {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("drift.html");
    let run = sf.tandem(&["drift", "--format", "html", "--out", page.to_str().unwrap()]);
    run.expect_code(2);
    assert!(run.stderr.contains("report written to"), "{run}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#39;none&#39;"
        ),
        "{html}"
    );
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    let netlog = dir.path().join("netlog.json");
    let profile = dir.path().join("profile");
    let chromium = |extra: &[String]| {
        let out = Command::new("unshare")
            .args(["-n", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            // The browser's own traffic (updates, spelling dictionaries, time) is turned
            // off, so that any request left in the log is the page's.
            .args([
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-spell-checking",
                "--disable-features=SpellcheckService,Translate,OptimizationHints,MediaRouter,NetworkTimeServiceQuerying",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--log-net-log={}", netlog.display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium");
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let dom = String::from_utf8(chromium(&["--dump-dom".to_string()]).stdout).unwrap();
    assert!(dom.contains("data-status=\"drifted\""), "{dom}");
    assert!(
        dom.contains("<code>file:/etc/nginx/nginx.conf</code>"),
        "{dom}"
    );
    assert!(dom.contains("-# edited by hand"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;alert(1)"),
        "the path must be text:\n{dom}"
    );
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");
    // The requests the page itself started (the net log's URL_REQUEST_START_JOB events
    // whose isolation key is the file's origin; the browser's own are not): none.
    assert_eq!(page_requests(&netlog), Vec::<String>::new());
    // The same check sees a page that does make one.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<html><body><img src=\"http://192.0.2.1/x.png\"></body></html>",
    )
    .unwrap();
    let out = Command::new("unshare")
        .args([
            "-n",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("file://{}", control.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(page_requests(&netlog), ["http://192.0.2.1/x.png"]);
    let shot = repo_root().join("target/drift.png");
    chromium(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1400,1600".into(),
    ]);
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "screenshot"
    );
}

/// URLs the page requested, from a Chromium net log.
fn page_requests(netlog: &std::path::Path) -> Vec<String> {
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(netlog).unwrap()).expect("net log JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    assert!(
        start_job.is_number(),
        "net log without URL_REQUEST_START_JOB"
    );
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == start_job)
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k.starts_with("file://"))
        })
        .filter_map(|e| e["params"]["url"].as_str())
        .filter(|u| !u.starts_with("file://"))
        .map(str::to_string)
        .collect()
}

/// The JUnit report parsed by junitparser: one suite per datacenter, one case per node
/// and resource, failures for drifted and missing, no errors or skips here.
fn junit_counts(sf: &SiteFleet, report: &serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("drift.xml");
    sf.tandem(&[
        "drift",
        "--format",
        "junit",
        "--out",
        file.to_str().unwrap(),
    ])
    .expect_code(2);
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom junitparser import JUnitXml, Failure, Error, Skipped\n\
             xml=JUnitXml.fromfile(sys.argv[1])\n\
             suites=[s for s in xml]\n\
             f=e=k=n=0\n\
             for s in suites:\n  for c in s:\n    n+=1\n    for r in c.result:\n      f+=isinstance(r,Failure); e+=isinstance(r,Error); k+=isinstance(r,Skipped)\n\
             print(len(suites), ' '.join(sorted(s.name for s in suites)), n, f, e, k)",
        ])
        .arg(&file)
        .output()
        .expect("python3 with junitparser");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: usize = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["resources"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("2 aws-useast1 azure-westus {cases} 2 0 0")
    );
}
