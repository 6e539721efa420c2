//! A real EC2 API on loopback: `moto_server` started on a free 127.0.0.1 port for one
//! test and killed when dropped, plus an SDK client for it and helpers that build what a
//! test (or the end-to-end run, pinning fleet host addresses) needs: a VPC and subnet in
//! a chosen range, tagged instances with chosen private IPs, stopped instances. Nothing
//! here connects anywhere but the emulator; the addresses moto hands out are data.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;

use super::wait::wait_until;

/// Environment for a child `tandem` that must reach moto and nothing else: fixed
/// credentials, no IMDS, no shared config files.
pub const CHILD_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_SESSION_TOKEN", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/nonexistent/tandem-test/config"),
    (
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/tandem-test/credentials",
    ),
];

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts `moto_server` (override with `TANDEM_MOTO_SERVER`) and waits, at most
    /// 60 s, until it accepts connections.
    pub fn start() -> Moto {
        let port = free_port();
        let program = std::env::var("TANDEM_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start `{program}` (pip install 'moto[server]'): {err}")
            });
        let mut moto = Moto { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_until(Duration::from_secs(60), "moto_server to listen", || {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited early: {status}");
            }
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
        .unwrap();
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An EC2 client for the emulator, with static test credentials.
    pub fn client(&self, region: &str) -> Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A VPC with one subnet of `cidr` (for example the fleet's `10.77.0.0/24`); returns
/// the subnet id.
pub async fn subnet(client: &Client, cidr: &str) -> String {
    let vpc = client
        .create_vpc()
        .cidr_block(cidr)
        .send()
        .await
        .expect("create vpc");
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let subnet = client
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block(cidr)
        .send()
        .await
        .expect("create subnet");
    subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_string()
}

/// Launches `count` instances in `subnet` with `tags`; with `private_ip` (then `count`
/// must be 1) the instance gets exactly that address. Returns the instance ids.
pub async fn launch(
    client: &Client,
    subnet: &str,
    private_ip: Option<&str>,
    tags: &[(&str, &str)],
    count: i32,
) -> Vec<String> {
    let mut request = client
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .subnet_id(subnet)
        .min_count(count)
        .max_count(count)
        .set_private_ip_address(private_ip.map(str::to_string));
    if !tags.is_empty() {
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect::<Vec<_>>();
        request = request.tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        );
    }
    let out = request.send().await.expect("run instances");
    out.instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect()
}

pub async fn stop(client: &Client, ids: &[String]) {
    client
        .stop_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .expect("stop instances");
}

/// A loopback port nobody listens on right now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
