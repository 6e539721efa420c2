//! The local Azure Resource Manager server (`arm_server.py` beside this file) for one
//! test: started with a JSON description of resource groups and VMs (names, tags, power
//! states, chosen private IPs) and of misbehaviour (throttling, refused or expired
//! tokens, an outage), listening on 127.0.0.1 only, killed on drop. Its request log
//! lets a test check what tandem actually asked.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// Credentials the server accepts, for the child's `AZURE_*` environment.
pub const TENANT: &str = "tenant-0";
pub const CLIENT_ID: &str = "client-0";
pub const CLIENT_SECRET: &str = "s3cret-value-never-shown";
pub const SUBSCRIPTION: &str = "sub-0";

pub struct ArmServer {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ArmServer {
    /// Starts the server. `config` gets the credentials and subscription above unless it
    /// sets them itself.
    pub fn start(mut config: Value) -> ArmServer {
        let defaults = [
            ("tenant", TENANT),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("subscription", SUBSCRIPTION),
        ];
        for (key, value) in defaults {
            if config.get(key).is_none() {
                config[key] = Value::from(value);
            }
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("arm.json");
        std::fs::write(&config_path, config.to_string()).expect("write arm config");
        let log = dir.path().join("requests.jsonl");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/arm_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&config_path)
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start arm_server.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        // The server prints its port once bound; a dead server closes stdout (EOF).
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("arm_server.py did not print its port: `{line}`")
        });
        ArmServer {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests served so far: `{"method", "path", "status", "t"}` (t in seconds).
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Environment for a child `tandem` holding the accepted service principal.
    pub fn child_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
        ]
    }
}

impl Drop for ArmServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
