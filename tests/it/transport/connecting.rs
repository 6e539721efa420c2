//! Handshakes are limited, not commands: with `max_connecting` 3, ten connections to a
//! listener that accepts and never answers (a host too loaded to finish its key
//! exchange) are in their handshake at most three at a time (told by when the listener accepts them), and each still gets its
//! whole `connect_timeout` once its turn comes. The listener is on loopback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem::node::{DatacenterName, Node, NodeName, RoleName};
use tandem::transport::ssh::{SshConfig, SshConnector};
use tandem::transport::{Connector, TransportError};

#[tokio::test]
async fn at_most_max_connecting_handshakes_are_in_flight() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let times = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            times.lock().unwrap().push(Instant::now());
            // Never a byte back; the client gives up and closes.
            held.push(socket);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let mut config = SshConfig::new(known_hosts);
    config.connect_timeout = Duration::from_secs(1);
    config.max_connecting = 3;
    let connector = Arc::new(SshConnector::new(config).unwrap());
    let started = Instant::now();
    let attempts: Vec<_> = (0..10)
        .map(|i| {
            let connector = connector.clone();
            let node = Node {
                name: NodeName::new(format!("n{i}")).unwrap(),
                datacenter: DatacenterName::new("dc1").unwrap(),
                role: RoleName::new("web").unwrap(),
                address: "127.0.0.1".into(),
                port,
                user: None,
                facts: Default::default(),
                vars: Default::default(),
            };
            tokio::spawn(async move { connector.connect(&node).await.map(|_| ()) })
        })
        .collect();
    for attempt in attempts {
        let err = attempt.await.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::Unreachable { .. } | TransportError::Timeout { .. }
            ),
            "{err}"
        );
    }
    // A connection keeps its turn for its whole second: the fourth accept comes at
    // least a second after the first, and so on (half a second of slack for a loaded
    // machine's scheduling; without the limit all ten come within milliseconds).
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 10);
    for k in 0..accepted.len() - 3 {
        let gap = accepted[k + 3] - accepted[k];
        assert!(
            gap >= Duration::from_millis(500),
            "accept {} came {gap:?} after accept {k}: more than 3 handshakes at once",
            k + 3
        );
    }
    // Four turns of three (the last one alone), each its whole second.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}: a queued connection's wait was counted in its timeout",
        started.elapsed()
    );
}
