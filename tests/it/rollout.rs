//! The rollout driver's HTTP health check against a real nginx on loopback: a healthy
//! service lets every batch through, an unhealthy answer or a service the deploy
//! stopped halts the rollout before the next batch. Needs nginx (`/usr/sbin/nginx`).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem::inventory::{DatacenterSpec, ProviderConfig};
use tandem::node::{DatacenterName, Node, NodeName, RoleName};
use tandem::outcome::Outcome;
use tandem::rollout::{self, BatchSize, Halt, HealthCheck, HealthProbe, RolloutPolicy};

use crate::support::wait::wait_until;

/// nginx serving `/healthz` (200) and `/down` (503) on a loopback port; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        let conf = format!(
            "worker_processes 1;\nerror_log stderr;\npid {d}/nginx.pid;\nevents {{}}\nhttp {{\n  access_log off;\n  \
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    \
             location = /healthz {{ return 200 \"ok\\n\"; }}\n    location = /down {{ return 503 \"down\\n\"; }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed (apt-get install nginx)");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(
            Duration::from_secs(10),
            &format!("nginx to listen on 127.0.0.1:{port}"),
            || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        )
        .unwrap();
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    /// SIGTERM, not SIGKILL: a killed master would leave its worker serving the port.
    fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child, which `wait` has not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn node(name: &str, datacenter: &str) -> Node {
    Node {
        name: NodeName::new(name).unwrap(),
        datacenter: DatacenterName::new(datacenter).unwrap(),
        role: RoleName::new("frontend").unwrap(),
        address: "127.0.0.1".into(),
        port: 22,
        user: None,
        facts: Default::default(),
        vars: Default::default(),
    }
}

fn plan(policy: &RolloutPolicy) -> rollout::RolloutPlan {
    let datacenters: Vec<DatacenterSpec> = [("azure-westus", true), ("aws-useast1", false)]
        .into_iter()
        .map(|(name, primary)| DatacenterSpec {
            name: DatacenterName::new(name).unwrap(),
            primary,
            provider: ProviderConfig::Static,
        })
        .collect();
    let nodes = ["fe-aws-1", "fe-aws-2", "fe-aws-3"]
        .map(|n| node(n, "aws-useast1"))
        .into_iter()
        .chain(["fe-az-1", "fe-az-2", "fe-az-3"].map(|n| node(n, "azure-westus")));
    rollout::plan(nodes.collect(), &datacenters, policy).unwrap()
}

fn policy(url: String) -> RolloutPolicy {
    RolloutPolicy {
        canary: 1,
        batch: BatchSize::Count(2),
        health: Some(HealthCheck {
            probe: HealthProbe::Http(url),
            timeout_seconds: 2,
            roles: Vec::new(),
        }),
        ..RolloutPolicy::default()
    }
}

fn no_command(_: Node, _: String, _: Duration) -> std::future::Ready<Result<(), String>> {
    std::future::ready(Err("no transport in this test".into()))
}

#[tokio::test]
async fn a_healthy_service_lets_every_batch_through() {
    let nginx = Nginx::start();
    let policy = policy(format!("http://{{address}}:{}/healthz", nginx.port));
    let plan = plan(&policy);
    let applied = Arc::new(Mutex::new(0));
    let counter = applied.clone();
    let apply = move |nodes: Vec<Node>| {
        *counter.lock().unwrap() += nodes.len();
        std::future::ready(
            nodes
                .into_iter()
                .map(|n| (n.name, Outcome::Changed))
                .collect::<Vec<_>>(),
        )
    };
    let report = rollout::run(plan, &policy, apply, no_command, |_| {}).await;
    assert_eq!(report.halt, None, "{report}");
    assert_eq!(*applied.lock().unwrap(), 6);
}

#[tokio::test]
async fn an_unhealthy_answer_halts_after_the_first_canary() {
    let nginx = Nginx::start();
    let policy = policy(format!("http://{{address}}:{}/down", nginx.port));
    let report = rollout::run(
        plan(&policy),
        &policy,
        |nodes: Vec<Node>| {
            std::future::ready(
                nodes
                    .into_iter()
                    .map(|n| (n.name, Outcome::Unchanged))
                    .collect::<Vec<_>>(),
            )
        },
        no_command,
        |_| {},
    )
    .await;
    match &report.halt {
        Some(Halt::Health {
            after_batch: 1,
            failures,
        }) => {
            assert_eq!(failures[0].node.as_str(), "fe-aws-1");
            assert_eq!(failures[0].reason, "`GET /down` answered status 503");
        }
        other => panic!("expected a health halt after the standby canary, got {other:?}"),
    }
    assert_eq!(report.not_attempted().len(), 5);
    assert!(report
        .to_string()
        .contains("halted after batch 1: health check failed"));
}

#[tokio::test]
async fn a_deploy_that_stops_the_service_halts_the_rollout() {
    let nginx = Arc::new(Mutex::new(Nginx::start()));
    let port = nginx.lock().unwrap().port;
    let policy = policy(format!("http://{{address}}:{port}/healthz"));
    let batches = Arc::new(Mutex::new(0));
    let (seen, victim) = (batches.clone(), nginx.clone());
    // The second batch (the primary's canary) "breaks" the service.
    let apply = move |nodes: Vec<Node>| {
        let mut n = seen.lock().unwrap();
        *n += 1;
        if *n == 2 {
            victim.lock().unwrap().stop();
        }
        std::future::ready(
            nodes
                .into_iter()
                .map(|n| (n.name, Outcome::Changed))
                .collect::<Vec<_>>(),
        )
    };
    let report = rollout::run(plan(&policy), &policy, apply, no_command, |_| {}).await;
    assert_eq!(*batches.lock().unwrap(), 2);
    match &report.halt {
        Some(Halt::Health {
            after_batch: 2,
            failures,
        }) => {
            assert_eq!(failures[0].node.as_str(), "fe-az-1");
            assert!(
                failures[0]
                    .reason
                    .starts_with(&format!("cannot connect to `127.0.0.1:{port}`")),
                "{}",
                failures[0].reason
            );
        }
        other => panic!("expected a health halt after batch 2, got {other:?}"),
    }
    let names: Vec<&str> = report.not_attempted().iter().map(|n| n.as_str()).collect();
    assert_eq!(names, ["fe-aws-2", "fe-aws-3", "fe-az-2", "fe-az-3"]);
}
