//! Converging the example site: a first apply onto fresh hosts, then a template change
//! that reaches only the standby datacenter.

use super::{http_get, nginx_pids, nginx_reloads, nginx_reloads_settled, stat};
use crate::support::site::SiteFleet;

const FRONTENDS: [&str; 2] = ["frontend-azure-1", "frontend-aws-1"];
const STORES: [&str; 2] = ["store-azure-1", "store-aws-1"];

#[test]
fn example_site_converges_on_both_datacenters_and_then_plans_no_changes() {
    let sf = SiteFleet::up(
        "e2e-converge",
        "azure-westus:frontend:1,aws-useast1:frontend:1,azure-westus:store:1,aws-useast1:store:1",
    );
    let fleet = &sf.fleet;

    let plan = sf.tandem(&["plan"]);
    plan.expect_code(2);
    assert!(
        plan.stdout
            .contains("site: 4 nodes: 0 in sync, 4 with changes"),
        "the first plan should show changes on all four nodes\n{plan}"
    );

    let apply = sf.tandem(&["apply"]);
    apply.expect_code(0);
    assert!(
        apply.stdout.contains("4 nodes: 4 changed"),
        "every node should report changed\n{apply}"
    );
    eprintln!("first apply of 4 nodes took {:.1?}", apply.elapsed);

    for host in FRONTENDS {
        let primary = host.contains("azure");
        for (path, want) in [
            ("/etc/nginx/nginx.conf", "644 root root"),
            ("/etc/nginx/conf.d/tandem-apps.conf", "644 root root"),
            ("/etc/dashboard", "750 root dashboard"),
            ("/etc/dashboard/dashboard.toml", "640 root dashboard"),
            ("/etc/txserver/txserver.toml", "640 root txserver"),
            ("/etc/docs/docs.toml", "640 root docs"),
            ("/etc/systemd/system/dashboard.service", "644 root root"),
        ] {
            assert_eq!(stat(fleet, host, path), want, "{path} on {host}");
        }
        let conf = fleet.exec_ok(host, "cat /etc/nginx/nginx.conf");
        assert!(
            conf.starts_with("# Managed by tandem") && conf.contains("worker_connections 2048;"),
            "nginx.conf on {host} is not the rendered template:\n{conf}"
        );
        for unit in ["nginx", "dashboard", "txserver", "docs"] {
            assert_eq!(
                fleet
                    .exec(host, &format!("systemctl is-active {unit}"))
                    .stdout,
                b"active\n",
                "{unit} is not active on {host}"
            );
        }
        assert_eq!(
            fleet.exec(host, "systemctl is-enabled dashboard").stdout,
            b"enabled\n",
            "dashboard is not enabled on {host}"
        );
        let dashboard = fleet.exec_ok(host, "cat /etc/dashboard/dashboard.toml");
        let want = format!("read_only = {}", !primary);
        assert!(
            dashboard.lines().any(|l| l == want),
            "{host} ({}) should have `{want}`:\n{dashboard}",
            if primary { "primary" } else { "standby" }
        );

        // Through nginx to each stand-in, from outside the host.
        let address = fleet.node(host).address.clone();
        for (path, standin) in [
            ("/", "dashboard"),
            ("/api/x", "txserver"),
            ("/docs/", "docs"),
        ] {
            let (status, body) = http_get(&address, path);
            let json: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("GET {path} on {host}: {e}: {status}\n{body}"));
            assert_eq!(json["standin"], standin, "GET {path} on {host}: {body}");
        }
        let (_, body) = http_get(&address, "/");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            json["config"].as_str().unwrap_or("").contains(&want),
            "the dashboard on {host} serves a config without `{want}`: {body}"
        );
    }

    for host in STORES {
        let primary = host.contains("azure");
        for (path, want) in [
            ("/etc/mongodb", "750 root mongodb"),
            ("/etc/mongodb/keyfile", "400 mongodb mongodb"),
            ("/etc/mongod.conf", "644 root root"),
            ("/etc/mongodb/member.js", "640 root mongodb"),
            ("/var/lib/mongodb", "750 mongodb mongodb"),
        ] {
            assert_eq!(stat(fleet, host, path), want, "{path} on {host}");
        }
        assert_eq!(
            fleet.exec(host, "systemctl is-active mongod").stdout,
            b"active\n",
            "the mongod stand-in is not active on {host}"
        );
        let member = fleet.exec_ok(host, "cat /etc/mongodb/member.js");
        let want = if primary {
            "priority: 1"
        } else {
            "priority: 0"
        };
        assert!(
            member.contains(want),
            "{host} should have `{want}`:\n{member}"
        );
        let log = fleet.exec_ok(host, "cat /var/log/mongodb/standin-mongosh.log");
        assert!(
            log.contains("--file /etc/mongodb/member.js"),
            "the member settings were not applied on {host}: {log}"
        );
    }

    let again = sf.tandem(&["plan"]);
    again.expect_code(0);
    assert!(
        again
            .stdout
            .contains("site: 4 nodes: 4 in sync, 0 with changes (0 changes)"),
        "the second plan should show no changes\n{again}"
    );

    // A drifted unit file and app config: the node reloads systemd once (the module's
    // own `exec:systemd-daemon-reload`; the restart that follows needs no second one),
    // and the backups are named by the run, not by a `date` per file. Traced on the host.
    let host = FRONTENDS[0];
    fleet.exec_ok(
        host,
        "echo '# drift' >> /etc/systemd/system/dashboard.service && \
         echo '# drift' >> /etc/dashboard/dashboard.toml",
    );
    let programs = traced(fleet, host, || {
        sf.tandem(&["apply", "--on", host]).expect_code(0);
    });
    let reloads = programs
        .iter()
        .filter(|p| p.as_str() == "systemctl daemon-reload")
        .count();
    assert_eq!(reloads, 1, "daemon-reloads on {host}:\n{programs:#?}");
    assert!(
        programs
            .iter()
            .any(|p| p == "systemctl restart -- dashboard"),
        "the dashboard was not restarted:\n{programs:#?}"
    );
    assert!(
        !programs.iter().any(|p| p.starts_with("date ")),
        "a `date` ran on {host}:\n{programs:#?}"
    );
    // The two renamed files' directories are fsynced by one `sync`, after the steps.
    let dir_syncs: Vec<&String> = programs
        .iter()
        .filter(|p| p.starts_with("sync -- "))
        .filter(|p| {
            p.split(' ')
                .any(|a| a == "/etc/systemd/system" || a == "/etc/dashboard")
        })
        .collect();
    assert_eq!(dir_syncs.len(), 1, "on {host}:\n{programs:#?}");
    let mut named: Vec<&str> = dir_syncs[0].split(' ').skip(2).collect();
    named.sort_unstable();
    assert_eq!(
        named,
        ["/etc/dashboard", "/etc/systemd/system"],
        "{dir_syncs:?}"
    );
    let at = |want: &dyn Fn(&String) -> bool| programs.iter().rposition(want).unwrap();
    assert!(
        at(&|p| p == dir_syncs[0]) > at(&|p| p.starts_with("mv -Tf -- ")),
        "the directories were fsynced before the last rename:\n{programs:#?}"
    );
    let backups = fleet.exec_ok(host, "ls /var/lib/tandem/backup/etc/dashboard/");
    assert!(
        backups
            .lines()
            .any(|b| b.starts_with("dashboard.toml.") && b.ends_with('Z') && b.len() == 31),
        "no backup of dashboard.toml named by the run's time:\n{backups}"
    );
}

/// The programs (each as its arguments joined by spaces) that `sshd` and everything it
/// starts ran on `host` while `during` ran: `strace -f` attached to the listening sshd.
fn traced(fleet: &crate::support::fleet::Fleet, host: &str, during: impl FnOnce()) -> Vec<String> {
    let tracer = fleet.exec_ok(
        host,
        "sshd=$(pgrep -o -x sshd) && setsid strace -f -qq -e trace=execve -e signal=none \
         -o /tmp/apply.trace -p \"$sshd\" </dev/null >/dev/null 2>&1 & echo $!",
    );
    let tracer = tracer.trim();
    // Bounded: strace attaches within milliseconds; the kernel shows it as the tracer.
    fleet.exec_ok(
        host,
        "for i in $(seq 100); do grep -q '^TracerPid:[[:space:]]*[1-9]' \
         /proc/$(pgrep -o -x sshd)/status && exit 0; sleep 0.1; done; exit 1",
    );
    during();
    // SIGINT detaches strace, which writes out what it traced and exits.
    fleet.exec_ok(
        host,
        &format!(
            "kill -INT {tracer}; for i in $(seq 100); do kill -0 {tracer} 2>/dev/null || exit 0; \
             sleep 0.1; done; exit 1"
        ),
    );
    fleet
        .exec_ok(host, "grep -v ENOENT /tmp/apply.trace")
        .lines()
        .filter_map(|line| {
            let args = line.split_once("execve(")?.1.split_once(", [")?.1;
            let args = args.split_once("], ")?.0;
            Some(
                args.split("\", \"")
                    .map(|a| a.trim_matches('"'))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect()
}

#[test]
fn template_change_shows_its_diff_and_reloads_only_the_changed_nodes() {
    let sf = SiteFleet::up(
        "e2e-template",
        "azure-westus:frontend:1,aws-useast1:frontend:1",
    );
    let fleet = &sf.fleet;
    sf.tandem(&["apply"]).expect_code(0);
    sf.tandem(&["plan"]).expect_code(0);

    // The template gets a variable with the old value as default; the standby overlay
    // (which declares it) sets another one, so only the standby's nginx.conf changes.
    sf.edit_site(
        "modules/nginx/templates/nginx.conf.hbs",
        "keepalive_timeout 65;",
        "keepalive_timeout {{nginx_keepalive_timeout}};",
    );
    sf.edit_site(
        "modules/nginx/module.toml",
        "nginx_listen_port = 80\n",
        "nginx_listen_port = 80\nnginx_keepalive_timeout = 65\n",
    );
    sf.edit_site(
        "manifests/overlays/standby.toml",
        "vars = [\"dashboard_read_only\", \"mongodb_member_priority\"]",
        "vars = [\"dashboard_read_only\", \"mongodb_member_priority\", \"nginx_keepalive_timeout\"]",
    );
    sf.edit_site(
        "manifests/overlays/standby.toml",
        "\"file:/etc/mongodb/member.js\" = [\"content\"]",
        "\"file:/etc/mongodb/member.js\" = [\"content\"]\n\"file:/etc/nginx/nginx.conf\" = [\"content\"]",
    );
    sf.edit_site(
        "manifests/overlays/standby.toml",
        "dashboard_read_only = true\n",
        "dashboard_read_only = true\nnginx_keepalive_timeout = 30\n",
    );
    sf.tandem(&["check"]).expect_code(0);

    let before: Vec<_> = ["frontend-azure-1", "frontend-aws-1"]
        .iter()
        .map(|h| (nginx_pids(fleet, h), nginx_reloads_settled(fleet, h, 1)))
        .collect();

    let plan = sf.tandem(&["plan"]);
    plan.expect_code(2);
    let changed: Vec<&str> = plan
        .stdout
        .lines()
        .filter(|l| l.starts_with("      -") || l.starts_with("      +"))
        .map(str::trim)
        .collect();
    assert_eq!(
        changed,
        [
            "--- /etc/nginx/nginx.conf",
            "+++ /etc/nginx/nginx.conf",
            "-    keepalive_timeout 65;",
            "+    keepalive_timeout 30;",
        ],
        "the plan should show exactly the one changed line\n{plan}"
    );
    assert!(
        plan.stdout
            .contains("frontend-azure-1 (azure-westus): in sync")
            && plan
                .stdout
                .contains("frontend-aws-1 (aws-useast1): 2 changes")
            && plan.stdout.contains("reload service:nginx"),
        "only the standby should change: its file and one nginx reload\n{plan}"
    );

    let apply = sf.tandem(&["apply"]);
    apply.expect_code(0);
    assert!(
        apply
            .stdout
            .contains("frontend-azure-1 (azure-westus): unchanged")
            && apply
                .stdout
                .contains("frontend-aws-1 (aws-useast1): changed"),
        "{apply}"
    );
    assert!(
        fleet
            .exec_ok("frontend-aws-1", "cat /etc/nginx/nginx.conf")
            .contains("keepalive_timeout 30;"),
        "the standby's nginx.conf did not change"
    );

    // The standby: same master (a reload, not a restart), new workers, one more reload.
    let ((master, workers), reloads) = &before[1];
    let (master_after, workers_after) = nginx_pids(fleet, "frontend-aws-1");
    assert_eq!(
        &master_after, master,
        "nginx was restarted instead of reloaded"
    );
    assert_ne!(
        &workers_after, workers,
        "nginx's workers did not change: no reload"
    );
    assert_eq!(
        nginx_reloads_settled(fleet, "frontend-aws-1", reloads + 1),
        reloads + 1,
        "nginx on the standby should have reloaded exactly once"
    );
    // The primary: untouched.
    let ((master, workers), reloads) = &before[0];
    assert_eq!(
        nginx_pids(fleet, "frontend-azure-1"),
        (master.clone(), workers.clone())
    );
    assert_eq!(
        nginx_reloads(fleet, "frontend-azure-1"),
        *reloads,
        "nginx on the unchanged primary must not reload"
    );
    sf.tandem(&["plan"]).expect_code(0);
}
