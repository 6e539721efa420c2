//! `tandem trust`: pin host keys in tandem's known_hosts, explicitly. Each selected node
//! is contacted without authenticating, its key's fingerprint shown, and the key pinned
//! only when it matches `--fingerprint`, or when an operator confirms it on a terminal
//! (or passes `--yes`). A key that differs from the pinned one is refused loudly unless
//! `--replace` says the node was rebuilt.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use serde::Serialize;

use crate::cli::{Format, Global};
use crate::exit::Status;
use crate::inventory;
use crate::manifest::Site;
use crate::node::Node;
use crate::selector::Selector;
use crate::transport::known_hosts::{host_name, HostKey, KnownHosts, Verdict};
use crate::transport::ssh::SshConnector;
use crate::transport::TransportError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Node names, globs, `@role` or `dc:NAME`, comma separated
    pub selector: String,
    /// Expected SHA256 fingerprint (as `ssh-keygen -l` prints it)
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// Pin without asking (when no `--fingerprint` is given)
    #[arg(long)]
    pub yes: bool,
    /// Replace a pinned key that changed (a rebuilt node); still needs `--fingerprint`,
    /// `--yes` or a confirmation
    #[arg(long)]
    pub replace: bool,
}

/// What happened to one node, as printed.
#[derive(Debug, Serialize)]
struct Outcome {
    node: String,
    host: String,
    key_type: Option<String>,
    fingerprint: Option<String>,
    /// `pinned`, `already-pinned`, `replaced`, `refused`, `unreachable`
    outcome: &'static str,
    reason: Option<String>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<Status> {
    let site = Site::load(&global.site)?;
    let selector = Selector::parse(&args.selector)?;
    let inventory = inventory::resolve(&site, global.inventory.as_deref()).await?;
    for failure in &inventory.failures {
        eprintln!("warning: {failure}");
    }
    let nodes: Vec<Node> = inventory
        .nodes
        .into_iter()
        .filter(|node| selector.matches(node))
        .collect();
    anyhow::ensure!(!nodes.is_empty(), "no node matches `{}`", args.selector);

    let config = global.settings()?.ssh_config();
    let connector = SshConnector::new(config.clone())?;
    let mut known_hosts = KnownHosts::load(&config.known_hosts)?;

    // Read every key at once; decide one node at a time (prompts are sequential).
    let mut scans = tokio::task::JoinSet::new();
    for (index, node) in nodes.iter().enumerate() {
        let (connector, node) = (connector.clone(), node.clone());
        scans.spawn(async move { (index, connector.scan(&node).await) });
    }
    let mut keys = vec![None; nodes.len()];
    while let Some(joined) = scans.join_next().await {
        let (index, key) = joined.context("a host key scan failed")?;
        keys[index] = Some(key);
    }

    let mut outcomes = Vec::new();
    for (node, key) in nodes.iter().zip(keys) {
        let key = key.context("a host key scan did not finish")?;
        let host = host_name(&node.address, node.port);
        let mut outcome = Outcome {
            node: node.name.to_string(),
            host: host.clone(),
            key_type: None,
            fingerprint: None,
            outcome: "unreachable",
            reason: None,
        };
        match key {
            Err(err) => outcome.reason = Some(reason(&err)),
            Ok(key) => {
                outcome.key_type = Some(key.kind.clone());
                outcome.fingerprint = Some(key.fingerprint());
                let (result, reason) = decide(node, &key, &args, &mut known_hosts, global)?;
                outcome.outcome = result;
                outcome.reason = reason;
            }
        }
        if global.format == Format::Text {
            print_text(&outcome);
        }
        outcomes.push(outcome);
    }
    if global.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    }
    Ok(status(&outcomes))
}

/// Pins, keeps or refuses one node's key; returns the outcome and why.
fn decide(
    node: &Node,
    key: &HostKey,
    args: &Args,
    known_hosts: &mut KnownHosts,
    global: &Global,
) -> anyhow::Result<(&'static str, Option<String>)> {
    let fingerprint = key.fingerprint();
    let changed = match known_hosts.check(&node.address, node.port, key) {
        Verdict::Trusted => return Ok(("already-pinned", None)),
        Verdict::Revoked => {
            return Ok(("refused", Some("this key is marked `@revoked`".to_string())));
        }
        Verdict::Changed { pinned } if !args.replace => {
            return Ok((
                "refused",
                Some(format!(
                    "HOST KEY CHANGED: pinned {}; someone may be intercepting the \
                     connection, or the node was rebuilt (then check the new fingerprint \
                     and rerun with `--replace`)",
                    pinned.join(", ")
                )),
            ));
        }
        Verdict::Changed { .. } => true,
        Verdict::Unknown => false,
    };
    if let Some(expected) = &args.fingerprint {
        if expected.trim() != fingerprint {
            return Ok((
                "refused",
                Some(format!("fingerprint is not the expected `{expected}`")),
            ));
        }
    } else if !args.yes {
        if !std::io::stdin().is_terminal() || global.format == Format::Json {
            return Ok((
                "refused",
                Some("not confirmed: pass `--fingerprint` or `--yes`".to_string()),
            ));
        }
        if !confirm(node, key)? {
            return Ok(("refused", Some("not confirmed".to_string())));
        }
    }
    let comment = &node.name;
    if changed {
        known_hosts.replace(&node.address, node.port, key, comment)?;
        Ok(("replaced", None))
    } else {
        known_hosts.append(&node.address, node.port, key, comment)?;
        Ok(("pinned", None))
    }
}

/// Asks on the terminal; anything but `y`/`yes` is a no.
fn confirm(node: &Node, key: &HostKey) -> anyhow::Result<bool> {
    let mut stderr = std::io::stderr();
    write!(
        stderr,
        "{} ({}) presents {} {}\npin this key? [y/N] ",
        node.name,
        host_name(&node.address, node.port),
        key.kind,
        key.fingerprint()
    )?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The error without the node name and kind the outcome line already shows.
fn reason(err: &TransportError) -> String {
    match err {
        TransportError::Unreachable { reason, .. }
        | TransportError::HostKey { reason, .. }
        | TransportError::Auth { reason, .. }
        | TransportError::Lost { reason, .. }
        | TransportError::NotSent { reason, .. } => reason.clone(),
        TransportError::Timeout { after, .. } => format!("timed out after {after:?}"),
    }
}

fn print_text(outcome: &Outcome) {
    let key = match (&outcome.key_type, &outcome.fingerprint) {
        (Some(kind), Some(fingerprint)) => format!(" {kind} {fingerprint}"),
        _ => String::new(),
    };
    let line = format!(
        "{} {}{key}: {}",
        outcome.node, outcome.host, outcome.outcome
    );
    match &outcome.reason {
        None => println!("{line}"),
        Some(reason) => eprintln!("{line}: {reason}"),
    }
}

/// Unreachable nodes dominate (exit 4), then refusals (exit 3).
fn status(outcomes: &[Outcome]) -> Status {
    if outcomes.iter().any(|o| o.outcome == "unreachable") {
        Status::Unreachable
    } else if outcomes.iter().any(|o| o.outcome == "refused") {
        Status::Failed
    } else {
        Status::Ok
    }
}
