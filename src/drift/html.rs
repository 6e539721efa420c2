//! The drift report as one self-contained HTML page an auditor can open offline or
//! attach to a ticket: inline CSS and one small inline script (filters by datacenter,
//! role and status), both allowed by hash in a `Content-Security-Policy` meta tag whose
//! `default-src 'none'` forbids fetching anything (images, fonts, frames, connections,
//! form posts). Every value from the report is HTML-escaped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::drift::report::{Report, Status};
use crate::drift::text::diff_lines;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.pass{color:#161}.fail{color:#a11}.s-in_sync{background:#eef8ee}.s-drifted,.s-missing{background:#fde8e8}\
.s-pending{background:#fff6dd}.s-unreachable,.s-host_key,.s-not_checked{background:#eee}pre{margin:.3em 0;font-size:12px;white-space:pre-wrap}\
.add{color:#161}.del{color:#a11}.filters label{margin-right:1em}";

const SCRIPT: &str = "(function(){var f=['dc','role','status'];function apply(){var v={};f.forEach(function(k){v[k]=document.getElementById('f-'+k).value;});\
document.querySelectorAll('tr[data-dc]').forEach(function(r){var show=f.every(function(k){return !v[k]||r.getAttribute('data-'+k)===v[k];});r.hidden=!show;});}\
f.forEach(function(k){document.getElementById('f-'+k).addEventListener('change',apply);});})();";

use crate::html::csp_hash as hash;
pub use crate::html::escape as esc;

/// The Content-Security-Policy of the page: nothing may be fetched; only this page's
/// own style and script run.
pub fn csp() -> String {
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src 'none'; connect-src 'none'; \
         font-src 'none'; frame-src 'none'; form-action 'none'; base-uri 'none'",
        hash(STYLE),
        hash(SCRIPT)
    )
}

pub fn render(report: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <title>tandem drift: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&csp()),
        esc(&report.site)
    );
    let verdict = if report.result.passed { "pass" } else { "fail" };
    let _ = write!(
        o,
        "<h1>Drift report: site {}</h1>\n<p>Commit <code>{}</code>{}, tandem {}, generated {}.</p>\n\
         <p id=\"result\" class=\"{verdict}\"><strong>{}</strong> (exit {}){}</p>\n",
        esc(&report.site),
        esc(report.commit.as_deref().unwrap_or("none")),
        if report.dirty { " with uncommitted changes" } else { "" },
        esc(report.tandem_version),
        esc(&report.generated_at),
        verdict.to_uppercase(),
        report.result.exit_code,
        if report.result.reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", esc(&report.result.reasons.join("; ")))
        }
    );
    coverage(&mut o, report);
    summary(&mut o, report);
    filters(&mut o, report);
    parity(&mut o, report);
    findings(&mut o, report);
    let _ = write!(o, "<script>{SCRIPT}</script>\n</body></html>\n");
    o
}

fn coverage(o: &mut String, report: &Report) {
    let c = &report.coverage;
    let _ = write!(
        o,
        "<h2>Coverage</h2>\n<p id=\"coverage\">{} nodes expected, {} assessed, {} not assessed.</p>\n\
         <table><tr><th>Datacenter</th><th>Discovered</th><th>Expected</th><th>Assessed</th></tr>\n",
        c.expected, c.assessed, c.not_assessed
    );
    for dc in &c.datacenters {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&dc.name),
            match &dc.error {
                Some(e) => format!("<span class=\"fail\">no: {}</span>", esc(e)),
                None => "yes".into(),
            },
            dc.expected,
            dc.assessed
        );
    }
    o.push_str("</table>\n");
}

fn summary(o: &mut String, report: &Report) {
    // (datacenter, role) -> status -> resources
    let mut table: BTreeMap<(&str, &str), BTreeMap<Status, usize>> = BTreeMap::new();
    let mut nodes: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for n in &report.nodes {
        let key = (n.datacenter.as_str(), n.role.as_str());
        *nodes.entry(key).or_default() += 1;
        let row = table.entry(key).or_default();
        for f in &n.resources {
            *row.entry(f.status).or_default() += 1;
        }
    }
    o.push_str("<h2>Summary per datacenter and role</h2>\n<table id=\"summary\"><tr><th>Datacenter</th><th>Role</th><th>Nodes</th>");
    for s in Status::ALL {
        let _ = write!(o, "<th>{}</th>", s.as_str());
    }
    o.push_str("</tr>\n");
    for (key, row) in &table {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            esc(key.0),
            esc(key.1),
            nodes.get(key).copied().unwrap_or(0)
        );
        for s in Status::ALL {
            let _ = write!(o, "<td>{}</td>", row.get(&s).copied().unwrap_or(0));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</table>\n");
}

fn filters(o: &mut String, report: &Report) {
    let dcs: BTreeSet<&str> = report.nodes.iter().map(|n| n.datacenter.as_str()).collect();
    let roles: BTreeSet<&str> = report.nodes.iter().map(|n| n.role.as_str()).collect();
    let select = |o: &mut String, id: &str, label: &str, values: Vec<&str>| {
        let _ = write!(
            o,
            "<label>{label} <select id=\"f-{id}\"><option value=\"\">all</option>"
        );
        for v in values {
            let _ = write!(o, "<option value=\"{0}\">{0}</option>", esc(v));
        }
        o.push_str("</select></label>");
    };
    o.push_str("<div class=\"filters\">");
    select(o, "dc", "Datacenter", dcs.into_iter().collect());
    select(o, "role", "Role", roles.into_iter().collect());
    select(
        o,
        "status",
        "Status",
        Status::ALL.iter().map(|s| s.as_str()).collect(),
    );
    o.push_str("</div>\n");
}

fn parity(o: &mut String, report: &Report) {
    let _ = write!(
        o,
        "<h2>Parity between datacenters</h2>\n<p>{} parity breaks in the actual state.</p>\n\
         <table id=\"parity\"><tr><th>Role</th><th>Fact</th><th>Datacenter</th><th>Values</th><th>Datacenter</th><th>Values</th></tr>\n",
        report.parity.len()
    );
    for p in &report.parity {
        let [a, b] = &p.datacenters;
        let values = |dc: &String| esc(&p.values.get(dc).map(|v| v.join(", ")).unwrap_or_default());
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.role),
            esc(&p.fact),
            esc(a),
            values(a),
            esc(b),
            values(b)
        );
    }
    o.push_str("</table>\n");
}

fn findings(o: &mut String, report: &Report) {
    o.push_str("<h2>Nodes and resources not in sync</h2>\n<table id=\"findings\"><tr><th>Node</th><th>Datacenter</th><th>Role</th><th>Resource</th><th>Status</th><th>Details</th></tr>\n");
    for n in &report.nodes {
        let row_start = |o: &mut String, status: Status| {
            let _ = write!(
                o,
                "<tr class=\"s-{s}\" data-dc=\"{}\" data-role=\"{}\" data-status=\"{s}\"><td>{}</td><td>{}</td><td>{}</td>",
                esc(&n.datacenter),
                esc(&n.role),
                esc(&n.node),
                esc(&n.datacenter),
                esc(&n.role),
                s = status.as_str()
            );
        };
        if !n.assessed {
            row_start(o, n.status);
            let _ = writeln!(
                o,
                "<td>all {} resources</td><td>{}</td><td>{}</td></tr>",
                n.resources.len(),
                n.status.as_str(),
                esc(n.reason.as_deref().unwrap_or(""))
            );
            continue;
        }
        let in_sync = n
            .resources
            .iter()
            .filter(|f| f.status == Status::InSync)
            .count();
        if in_sync > 0 {
            row_start(o, Status::InSync);
            let _ = writeln!(
                o,
                "<td>{in_sync} resources</td><td>in_sync</td><td></td></tr>"
            );
        }
        for f in n.resources.iter().filter(|f| f.status != Status::InSync) {
            row_start(o, f.status);
            let _ = write!(
                o,
                "<td><code>{}</code></td><td>{}</td><td>",
                esc(&f.resource),
                f.status.as_str()
            );
            if let Some(since) = &f.since {
                let _ = write!(
                    o,
                    "<div>{} since {} (seen {} times)</div>",
                    f.status.as_str(),
                    esc(since),
                    f.seen.unwrap_or(1)
                );
            }
            if let Some(ack) = &f.acknowledged {
                let _ = write!(
                    o,
                    "<div>acknowledged by {} until {}: {}</div>",
                    esc(&ack.by),
                    esc(&ack.until),
                    esc(&ack.reason)
                );
            }
            if let Some(reason) = &f.reason {
                let _ = write!(o, "<div>{}</div>", esc(reason));
            }
            for a in &f.attributes {
                let _ = write!(
                    o,
                    "<div>{}: desired <code>{}</code>, actual <code>{}</code></div>",
                    esc(&a.attribute),
                    esc(a.desired.as_deref().unwrap_or("(see diff)")),
                    esc(a.actual.as_deref().unwrap_or("(see diff)"))
                );
            }
            let lines = diff_lines(f.diff.as_ref());
            if !lines.is_empty() {
                o.push_str("<pre class=\"diff\">");
                for line in lines {
                    let class = if line.starts_with('+') && !line.starts_with("+++") {
                        " class=\"add\""
                    } else if line.starts_with('-') && !line.starts_with("---") {
                        " class=\"del\""
                    } else {
                        ""
                    };
                    let _ = writeln!(o, "<span{class}>{}</span>", esc(&line));
                }
                o.push_str("</pre>");
            }
            o.push_str("</td></tr>\n");
        }
    }
    o.push_str("</table>\n");
}
