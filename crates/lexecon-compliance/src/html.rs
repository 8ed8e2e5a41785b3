//! The HTML report: one self-contained page (inline CSS, no script, nothing fetched)
//! for people. Coverage at a glance, gaps first with what to do, every control linked to
//! the evidence it rests on, printable.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::facts::Facts;
use crate::{ControlResult, ControlStatus, EvidenceRef, FrameworkStatus, gaps};

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An id fragment: lowercase ASCII letters and digits, other runs become `-`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for ch in s.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
            dash = false;
        } else if !dash && !out.is_empty() {
            out.push('-');
            dash = true;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn control_anchor(c: &ControlResult) -> String {
    format!("c-{}-{}", slug(&c.framework), slug(&c.control_id))
}

fn evidence_anchor(e: &EvidenceRef) -> String {
    format!("e-{}-{}", slug(&e.kind), slug(&e.reference))
}

fn pill(s: ControlStatus) -> String {
    format!(
        "<span class=\"pill {}\">{}</span>",
        s.as_str(),
        esc(s.label())
    )
}

/// One evidence reference in the appendix: the reference, its details, and the
/// controls citing it (anchor, label).
type Cited = (EvidenceRef, Vec<String>, Vec<(String, String)>);

const CSS: &str = r#"
:root{--ok:#1f7a4d;--ok-bg:#e3f4ea;--part:#9a6400;--part-bg:#fdf1d8;--bad:#b3261e;--bad-bg:#fbe4e2;--na:#5f6368;--na-bg:#eceff1;--ink:#1d232a;--muted:#5b6570;--line:#dfe3e8;--accent:#2c4b8a}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:32px 24px 64px}
header{border-bottom:3px solid var(--accent);padding-bottom:16px;margin-bottom:24px}
h1{font-size:28px;margin:0 0 4px}
h2{font-size:21px;margin:40px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:17px;margin:24px 0 8px}
.sub{color:var(--muted);margin:0}
a{color:var(--accent)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:14px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px;text-decoration:none;color:inherit;display:block}
.card:hover{border-color:var(--accent)}
.card .name{font-weight:600}
.card .ver{color:var(--muted);font-size:12px}
.card .pct{font-size:30px;font-weight:700;margin:6px 0 4px}
.pct.good{color:var(--ok)}.pct.fair{color:var(--part)}.pct.poor{color:var(--bad)}
.bar{display:flex;height:10px;border-radius:5px;overflow:hidden;background:var(--na-bg)}
.bar span{display:block;height:100%}
.bar .s{background:var(--ok)}.bar .p{background:#e0a100}.bar .n{background:var(--bad)}
.counts{font-size:12px;color:var(--muted);margin-top:6px}
.pill{display:inline-block;font-size:12px;font-weight:600;padding:1px 9px;border-radius:999px;white-space:nowrap}
.pill.satisfied{color:var(--ok);background:var(--ok-bg)}
.pill.partial{color:var(--part);background:var(--part-bg)}
.pill.not_satisfied{color:var(--bad);background:var(--bad-bg)}
.pill.not_applicable{color:var(--na);background:var(--na-bg)}
.gap{background:#fff;border:1px solid var(--line);border-left:5px solid var(--bad);border-radius:8px;padding:12px 16px;margin:10px 0}
.gap.partial{border-left-color:#e0a100}
.gap .head{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
.gap .id{font-weight:700}
.gap .why{margin:6px 0;color:var(--muted)}
.todo{margin:6px 0 0;padding:8px 12px;background:#f0f4fb;border-radius:6px}
.todo b{color:var(--accent)}
.none{color:var(--ok);font-weight:600}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line);border-radius:8px;overflow:hidden}
th,td{text-align:left;vertical-align:top;padding:8px 10px;border-bottom:1px solid var(--line);font-size:14px}
th{background:#eef1f5;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
td.cid{font-weight:700;white-space:nowrap}
td .checks{font-size:12px;color:var(--muted)}
ul.ev{margin:0;padding-left:16px;font-size:13px}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef1f5;padding:1px 4px;border-radius:4px}
dl.evidence{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px 16px;margin:0}
dl.evidence dt{margin-top:10px;font-weight:600}
dl.evidence dd{margin:2px 0 0 0;font-size:14px}
dl.evidence .cited{font-size:12px;color:var(--muted)}
:target{outline:2px solid var(--accent);outline-offset:2px}
footer{margin-top:40px;color:var(--muted);font-size:12px}
@media print{
  body{background:#fff;font-size:11pt}
  main{max-width:none;padding:0}
  *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  .card,.gap,tr,dl.evidence dt,dl.evidence dd{break-inside:avoid}
  h2{break-after:avoid}
  section.framework{break-before:page}
  a{color:inherit;text-decoration:none}
}
"#;

/// Renders the page.
pub(crate) fn render(statuses: &[FrameworkStatus], facts: &Facts) -> String {
    let mut h = String::new();
    let title = format!("Compliance report: {}", facts.config.system_name);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>",
        esc(&title)
    );
    let provider = if facts.config.provider.is_empty() {
        String::new()
    } else {
        format!(" · provider {}", esc(&facts.config.provider))
    };
    let _ = writeln!(
        h,
        "<header><h1>{}</h1><p class=\"sub\">Generated {} from live facts{}{}. Every status is computed from the configuration, the ledger, oversight records, registered evidence and the last verification; nothing is set by hand.</p></header>",
        esc(&title),
        esc(&facts.now.to_string()),
        if facts.config.node_id.is_empty() {
            String::new()
        } else {
            format!(" on node {}", esc(&facts.config.node_id))
        },
        provider
    );

    // Coverage at a glance.
    h.push_str("<section id=\"overview\"><h2>Coverage at a glance</h2><div class=\"cards\">\n");
    for s in statuses {
        let total = s.controls.len().max(1) as f64;
        let w = |st| s.count(st) as f64 * 100.0 / total;
        let _ = writeln!(
            h,
            "<a class=\"card\" href=\"#f-{id}\"><div class=\"name\">{name}</div><div class=\"ver\">{ver}</div><div class=\"pct {band}\">{pct}%</div><div class=\"bar\" role=\"img\" aria-label=\"{sat} satisfied, {par} partial, {not} not satisfied\"><span class=\"s\" style=\"width:{ws:.1}%\"></span><span class=\"p\" style=\"width:{wp:.1}%\"></span><span class=\"n\" style=\"width:{wn:.1}%\"></span></div><div class=\"counts\">{sat} satisfied · {par} partial · {not} not satisfied</div></a>",
            id = slug(&s.framework),
            name = esc(&s.name),
            ver = esc(&s.version),
            pct = s.coverage_percent,
            band = if s.coverage_percent >= 90.0 {
                "good"
            } else if s.coverage_percent >= 60.0 {
                "fair"
            } else {
                "poor"
            },
            sat = s.count(ControlStatus::Satisfied),
            par = s.count(ControlStatus::Partial),
            not = s.count(ControlStatus::NotSatisfied),
            ws = w(ControlStatus::Satisfied),
            wp = w(ControlStatus::Partial),
            wn = w(ControlStatus::NotSatisfied),
        );
    }
    h.push_str("</div></section>\n");

    // Gaps first.
    h.push_str("<section id=\"gaps\"><h2>Gaps and what to do</h2>\n");
    let open_gaps: usize = statuses.iter().map(|s| gaps(s).len()).sum();
    let controls: usize = statuses.iter().map(|s| s.controls.len()).sum();
    if open_gaps > 0 {
        let _ = writeln!(
            h,
            "<p class=\"sub\">{open_gaps} of {controls} controls need work; the ones not satisfied come first in each framework.</p>"
        );
    }
    let mut any_gap = false;
    for s in statuses {
        let g = gaps(s);
        if g.is_empty() {
            continue;
        }
        any_gap = true;
        let _ = writeln!(h, "<h3>{}</h3>", esc(&s.name));
        for c in &g {
            let _ = writeln!(
                h,
                "<div class=\"gap {cls}\"><div class=\"head\"><a class=\"id\" href=\"#{anchor}\">{id}</a><span>{title}</span>{pill}</div><p class=\"why\">{why}</p><p class=\"todo\"><b>What to do:</b> {todo}</p></div>",
                cls = c.status.as_str(),
                anchor = control_anchor(c),
                id = esc(&c.control_id),
                title = esc(&c.title),
                pill = pill(c.status),
                why = esc(&c.why),
                todo = esc(&c.remediation),
            );
        }
    }
    if !any_gap {
        h.push_str("<p class=\"none\">No gaps: every control is satisfied.</p>\n");
    }
    h.push_str("</section>\n");

    // Every control, per framework.
    let mut cited: BTreeMap<String, Cited> = BTreeMap::new();
    for s in statuses {
        let _ = writeln!(
            h,
            "<section class=\"framework\" id=\"f-{}\"><h2>{} <span class=\"sub\">{} · coverage {}%</span></h2>\n<table><thead><tr><th>Control</th><th>Status</th><th>Why</th><th>Evidence</th></tr></thead><tbody>",
            slug(&s.framework),
            esc(&s.name),
            esc(&s.version),
            s.coverage_percent
        );
        for c in &s.controls {
            let anchor = control_anchor(c);
            let mut ev = String::new();
            for e in &c.evidence {
                let ea = evidence_anchor(e);
                let _ = write!(
                    ev,
                    "<li><a href=\"#{ea}\"><code>{}</code></a> {}</li>",
                    esc(&e.reference),
                    esc(&e.detail)
                );
                let entry = cited
                    .entry(ea)
                    .or_insert_with(|| (e.clone(), Vec::new(), Vec::new()));
                if !entry.1.contains(&e.detail) {
                    entry.1.push(e.detail.clone());
                }
                let back = (anchor.clone(), format!("{} {}", s.name, c.control_id));
                if !entry.2.contains(&back) {
                    entry.2.push(back);
                }
            }
            let todo = if c.remediation.is_empty() {
                String::new()
            } else {
                format!(
                    "<p class=\"todo\"><b>What to do:</b> {}</p>",
                    esc(&c.remediation)
                )
            };
            let _ = writeln!(
                h,
                "<tr id=\"{anchor}\"><td class=\"cid\">{id}</td><td>{pill}</td><td><div><b>{title}</b></div>{why}<div class=\"checks\">checks: {checks}</div>{todo}</td><td><ul class=\"ev\">{ev}</ul></td></tr>",
                id = esc(&c.control_id),
                pill = pill(c.status),
                title = esc(&c.title),
                why = esc(&c.why),
                checks = esc(&c.checks.join(", ")),
            );
        }
        h.push_str("</tbody></table></section>\n");
    }

    // The evidence, each linked back to the controls that cite it.
    h.push_str("<section id=\"evidence\"><h2>Evidence</h2><dl class=\"evidence\">\n");
    for (anchor, (e, details, controls)) in &cited {
        let _ = write!(
            h,
            "<dt id=\"{anchor}\"><code>{}</code> ({})</dt>",
            esc(&e.reference),
            esc(&e.kind)
        );
        for d in details {
            let _ = write!(h, "<dd>{}</dd>", esc(d));
        }
        let links = controls
            .iter()
            .map(|(a, label)| format!("<a href=\"#{a}\">{}</a>", esc(label)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(h, "<dd class=\"cited\">Cited by {links}</dd>");
    }
    h.push_str("</dl></section>\n");
    let _ = writeln!(
        h,
        "<footer>Lexecon compliance report · control identifiers belong to their frameworks; titles are Lexecon's own summaries · how each status is computed: docs/compliance.md</footer>\n</main>\n</body>\n</html>"
    );
    h
}
