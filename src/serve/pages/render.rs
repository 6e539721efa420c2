//! The status pages as HTML, from the [`view`](super::view) data. Every value shown
//! passes through [`escape`]; the only markup is written here. Words follow
//! `tandem runs` and `tandem runs show`.

use std::fmt::Write as _;

use super::view::{Counts, RunPage, RunSummary};
use crate::serve::html::{escape, page};

/// `1.2s`, `3m 05s`, `850ms`; `-` while running (as `tandem runs` prints them).
use crate::store::duration_text as duration;

/// A word as a CSS class: only the known outcome and status words get one.
fn class(word: &str) -> &str {
    if word.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        word
    } else {
        ""
    }
}

fn status(word: &str) -> String {
    format!("<span class=\"{}\">{}</span>", class(word), escape(word))
}

/// The commit shortened, `+dirty` when the compiled site differed from it; the full id
/// in the title.
fn commit_cell(run: &RunSummary) -> String {
    match &run.commit {
        Some(commit) => {
            let short: String = commit.chars().take(12).collect();
            format!(
                "<span class=\"mono\" title=\"{}\">{}</span>{}",
                escape(commit),
                escape(&short),
                if run.dirty { "+dirty" } else { "" }
            )
        }
        None => "<span class=\"muted\">-</span>".into(),
    }
}

fn counts_cell(counts: &Counts) -> String {
    let mut out = String::new();
    for (i, (outcome, n)) in counts.by_outcome.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{n} {}", status(outcome));
    }
    if out.is_empty() {
        out.push_str("<span class=\"muted\">none</span>");
    }
    out
}

fn datacenters_cell(run: &RunSummary) -> String {
    let mut out = String::new();
    for dc in &run.datacenters {
        let name = dc.datacenter.as_deref().unwrap_or("-");
        let _ = write!(
            out,
            "<div><b>{}</b>: {}</div>",
            escape(name),
            counts_cell(&dc.counts)
        );
    }
    if out.is_empty() {
        out.push_str("<span class=\"muted\">no nodes</span>");
    }
    out
}

/// The first trigger in words, `+N more` after it; `-` for a run without.
fn trigger_cell(run: &RunSummary) -> String {
    match run.triggers.split_first() {
        None => "<span class=\"muted\">-</span>".into(),
        Some((first, [])) => escape(&first.words()),
        Some((first, rest)) => format!("{} (+{} more)", escape(&first.words()), rest.len()),
    }
}

/// `/runs`.
pub fn runs(list: &[RunSummary]) -> String {
    let mut body = String::from("<h1>tandem runs</h1>\n");
    if list.is_empty() {
        body.push_str("<p>no runs recorded yet</p>\n");
        return page("tandem runs", &body);
    }
    body.push_str(
        "<table id=\"runs\"><thead><tr><th>ID</th><th>KIND</th><th>STATUS</th><th>COMMIT</th>\
         <th>TRIGGER</th><th>BY</th><th>STARTED</th><th>FINISHED</th><th>DURATION</th><th>NODES</th></tr></thead><tbody>\n",
    );
    for run in list {
        let _ = writeln!(
            body,
            "<tr data-run=\"{id}\"><td><a href=\"{url}\">{id}</a></td><td>{kind}</td><td>{status}</td>\
             <td>{commit}</td><td>{trigger}</td><td>{by}</td><td>{started}</td><td>{finished}</td><td>{took}</td>\
             <td>{nodes}</td></tr>",
            id = run.id,
            url = escape(&run.url),
            kind = escape(run.kind),
            status = status(run.status),
            commit = commit_cell(run),
            trigger = trigger_cell(run),
            by = escape(&run.started_by),
            started = escape(&run.started_at),
            finished = escape(run.finished_at.as_deref().unwrap_or("-")),
            took = duration(run.duration_ms),
            nodes = datacenters_cell(run),
        );
    }
    body.push_str("</tbody></table>\n");
    page("tandem runs", &body)
}

/// `/runs/{id}`.
pub fn run(run: &RunPage) -> String {
    let s = &run.summary;
    let mut body = format!(
        "<p><a href=\"/runs\">all runs</a></p>\n<h1>run {}: {}, {}</h1>\n<dl>\n",
        s.id,
        escape(s.kind),
        status(s.status)
    );
    let mut row = |name: &str, value: String| {
        let _ = writeln!(body, "<dt>{}</dt><dd>{value}</dd>", escape(name));
    };
    row(
        "started",
        format!(
            "{} by {} on {} (pid {})",
            escape(&s.started_at),
            escape(&s.started_by),
            escape(&run.host),
            run.pid
        ),
    );
    row(
        "finished",
        match &s.finished_at {
            Some(at) => format!("{} ({})", escape(at), duration(s.duration_ms)),
            None => "-".into(),
        },
    );
    row(
        "commit",
        match &s.commit {
            Some(c) if s.dirty => format!(
                "<span class=\"mono\" id=\"commit\">{}</span> with uncommitted changes",
                escape(c)
            ),
            Some(c) => format!("<span class=\"mono\" id=\"commit\">{}</span>", escape(c)),
            None => "-".into(),
        },
    );
    row(
        "digest",
        format!(
            "<span class=\"mono\">{}</span>",
            escape(run.site_digest.as_deref().unwrap_or("-"))
        ),
    );
    row("command", format!("<code>{}</code>", escape(&run.command)));
    if let Some(error) = &s.error {
        row(
            "error",
            format!("<span class=\"error\">{}</span>", escape(error)),
        );
    }
    row("nodes", datacenters_cell(s));
    body.push_str("</dl>\n");

    if !s.triggers.is_empty() {
        let _ = writeln!(body, "<h2>triggered by ({})</h2>", s.triggers.len());
        body.push_str(
            "<table id=\"triggers\"><thead><tr><th>RECEIVED</th><th>RECEIVER</th><th>EVENT</th>\
             <th>REF</th><th>PUSHER</th><th>DELIVERY</th></tr></thead><tbody>\n",
        );
        for t in &s.triggers {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                escape(&t.received_at),
                escape(&t.receiver),
                escape(&t.event),
                escape(t.git_ref.as_deref().unwrap_or("-")),
                escape(t.pusher.as_deref().unwrap_or("-")),
                escape(&t.delivery),
            );
        }
        body.push_str("</tbody></table>\n");
    }

    let _ = writeln!(
        body,
        "<h2>nodes ({}): {}</h2>",
        s.nodes.total,
        escape(&s.nodes.words())
    );
    body.push_str(
        "<table id=\"nodes\"><thead><tr><th>NODE</th><th>DATACENTER</th><th>OUTCOME</th>\
         <th>STARTED</th><th>DURATION</th><th>ERROR</th></tr></thead><tbody>\n",
    );
    for node in &run.node_runs {
        let _ = writeln!(
            body,
            "<tr data-node=\"{name}\"><td>{name}</td><td>{dc}</td><td class=\"outcome\">{outcome}</td>\
             <td>{started}</td><td>{took}</td><td>{error}</td></tr>",
            name = escape(&node.node),
            dc = escape(node.datacenter.as_deref().unwrap_or("-")),
            outcome = status(node.outcome),
            started = escape(&node.started_at),
            took = duration(Some(node.duration_ms)),
            error = escape(node.error.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table>\n");

    let _ = writeln!(body, "<h2>changes ({})</h2>", run.changes.len());
    body.push_str(
        "<p class=\"muted\">the run history keeps each change's one-line summary, secrets \
         redacted; full diffs are not recorded</p>\n<table id=\"changes\"><thead><tr><th>NODE</th>\
         <th>ACTION</th><th>RESOURCE</th><th>SUMMARY</th></tr></thead><tbody>\n",
    );
    for change in &run.changes {
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"mono resource\">{}</td><td>{}</td></tr>",
            escape(&change.node),
            escape(change.action),
            escape(&change.resource),
            escape(&change.summary),
        );
    }
    body.push_str("</tbody></table>\n");
    page(&format!("tandem run {}", s.id), &body)
}

/// A page that says what is wrong (unknown run, unreadable history).
pub fn message(title: &str, text: &str) -> String {
    page(
        title,
        &format!(
            "<p><a href=\"/runs\">all runs</a></p>\n<h1>{}</h1>\n<p>{}</p>\n",
            escape(title),
            escape(text)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_in_the_cli() {
        assert_eq!(duration(None), "-");
        assert_eq!(duration(Some(850)), "850ms");
        assert_eq!(duration(Some(185_000)), "3m 05s");
    }

    #[test]
    fn only_plain_words_become_classes() {
        assert_eq!(class("host-key"), "host-key");
        assert_eq!(class("a\" onclick=\"x"), "");
    }
}
