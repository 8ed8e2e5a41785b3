//! OSCAL 1.2.1 assessment results (JSON), with name-based (v5) UUIDs so the same facts
//! always export the same document.

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::facts::Facts;
use crate::{ControlResult, ControlStatus, FrameworkStatus};

/// The OSCAL version the document declares.
pub(crate) const OSCAL_VERSION: &str = "1.2.1";

/// Namespace of every Lexecon OSCAL UUID (itself a fixed random UUID).
const NAMESPACE: [u8; 16] = [
    0x4c, 0x65, 0x78, 0x65, 0x63, 0x6f, 0x4e, 0x2b, 0x9a, 0x1d, 0x5e, 0x0c, 0x6f, 0x73, 0x63, 0x61,
];

/// Namespace for Lexecon-specific property names.
const PROP_NS: &str = "https://lexecon.dev/ns/oscal";

/// A version 5 (SHA-1, name-based) UUID of `name` in `namespace` (RFC 9562 §5.5).
pub(crate) fn uuid_v5(namespace: &[u8; 16], name: &str) -> String {
    let mut h = Sha1::new();
    h.update(namespace);
    h.update(name.as_bytes());
    let digest = h.finalize();
    let mut b = [0u8; 16];
    for (dst, src) in b.iter_mut().zip(digest.iter()) {
        *dst = *src;
    }
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        hex.get(0..8).unwrap_or(""),
        hex.get(8..12).unwrap_or(""),
        hex.get(12..16).unwrap_or(""),
        hex.get(16..20).unwrap_or(""),
        hex.get(20..32).unwrap_or("")
    )
}

fn uuid(name: &str) -> String {
    uuid_v5(&NAMESPACE, name)
}

/// An OSCAL token for a control: `framework-` plus the id lowercased, `.` kept, other
/// runs of characters `-` (`hipaa-164.312-c-1`, `eu_ai_act-art.12-1`).
pub(crate) fn control_token(framework: &str, control_id: &str) -> String {
    let mut out = format!("{framework}-");
    let mut dash = true;
    for ch in control_id.chars() {
        if ch.is_ascii_alphanumeric() || ch == '.' {
            out.push(ch.to_ascii_lowercase());
            dash = false;
        } else if ch == ' ' {
            continue;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A single-line title (OSCAL titles may not contain newlines).
fn line(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let t = t.trim().to_owned();
    if t.is_empty() {
        "untitled".to_owned()
    } else {
        t
    }
}

fn prop(name: &str, value: &str) -> Value {
    json!({"name": name, "ns": PROP_NS, "value": line(value)})
}

fn observation(node: &str, s: &FrameworkStatus, c: &ControlResult, now: &str) -> (String, Value) {
    let id = uuid(&format!(
        "observation:{node}:{}:{}",
        s.framework, c.control_id
    ));
    let mut obs = json!({
        "uuid": id,
        "title": line(&format!("{} {}: {}", s.name, c.control_id, c.title)),
        "description": c.why,
        "props": [prop("checks", &c.checks.join(" "))],
        "methods": ["TEST"],
        "types": ["control-objective"],
        "collected": now,
    });
    let evidence: Vec<Value> = c
        .evidence
        .iter()
        .map(|e| {
            json!({
                "description": line(&format!("{} {}: {}", e.kind, e.reference, e.detail)),
                "props": [prop("evidence-kind", &e.kind), prop("evidence-reference", &e.reference)],
            })
        })
        .collect();
    if !evidence.is_empty()
        && let Some(o) = obs.as_object_mut()
    {
        o.insert("relevant-evidence".to_owned(), Value::Array(evidence));
    }
    (id, obs)
}

fn finding(node: &str, s: &FrameworkStatus, c: &ControlResult, obs_uuid: &str) -> Option<Value> {
    let (state, reason, implementation) = match c.status {
        ControlStatus::Satisfied => ("satisfied", "pass", Some("implemented")),
        ControlStatus::Partial => ("not-satisfied", "fail", Some("partial")),
        ControlStatus::NotSatisfied => ("not-satisfied", "fail", None),
        ControlStatus::NotApplicable => return None,
    };
    let token = control_token(&s.framework, &c.control_id);
    let mut target = json!({
        "type": "objective-id",
        "target-id": token,
        "title": line(&format!("{} {}", s.name, c.control_id)),
        "props": [prop("lexecon-status", c.status.as_str())],
        "status": {"state": state, "reason": reason},
    });
    if let (Some(st), Some(t)) = (implementation, target.as_object_mut()) {
        t.insert("implementation-status".to_owned(), json!({"state": st}));
    }
    let description = if c.remediation.is_empty() {
        c.why.clone()
    } else {
        format!("{} What to do: {}", c.why, c.remediation)
    };
    Some(json!({
        "uuid": uuid(&format!("finding:{node}:{}:{}", s.framework, c.control_id)),
        "title": line(&format!("{} {}: {}", s.name, c.control_id, c.title)),
        "description": description,
        "target": target,
        "related-observations": [{"observation-uuid": obs_uuid}],
    }))
}

/// The assessment-results document.
pub(crate) fn document(statuses: &[FrameworkStatus], facts: &Facts) -> Value {
    let node = if facts.config.node_id.is_empty() {
        "lexecon"
    } else {
        facts.config.node_id.as_str()
    };
    let now = facts.now.to_rfc3339();
    let scope: Vec<&str> = statuses.iter().map(|s| s.framework.as_str()).collect();
    let plan_uuid = uuid(&format!("assessment-plan:{node}"));
    let results: Vec<Value> = statuses
        .iter()
        .map(|s| {
            let include: Vec<Value> = s
                .controls
                .iter()
                .map(|c| json!({"control-id": control_token(&s.framework, &c.control_id)}))
                .collect();
            let mut observations = Vec::new();
            let mut findings = Vec::new();
            for c in &s.controls {
                let (oid, obs) = observation(node, s, c, &now);
                observations.push(obs);
                if let Some(f) = finding(node, s, c, &oid) {
                    findings.push(f);
                }
            }
            let mut result = json!({
                "uuid": uuid(&format!("result:{node}:{}", s.framework)),
                "title": line(&format!("{} {}", s.name, s.version)),
                "description": format!(
                    "{} controls of {} evaluated by Lexecon from live facts: {} satisfied, {} partial, {} not satisfied; coverage {}%.",
                    s.controls.len(), s.name,
                    s.count(ControlStatus::Satisfied), s.count(ControlStatus::Partial), s.count(ControlStatus::NotSatisfied),
                    s.coverage_percent
                ),
                "start": now,
                "end": now,
                "props": [prop("framework", &s.framework), prop("coverage-percent", &s.coverage_percent.to_string())],
                "reviewed-controls": {"control-selections": [{"include-controls": include}]},
            });
            if let Some(r) = result.as_object_mut() {
                if !observations.is_empty() {
                    r.insert("observations".to_owned(), Value::Array(observations));
                }
                if !findings.is_empty() {
                    r.insert("findings".to_owned(), Value::Array(findings));
                }
            }
            result
        })
        .collect();
    let version = if facts.system.lexecon_version.is_empty() {
        now.clone()
    } else {
        format!("{} (lexecon {})", now, facts.system.lexecon_version)
    };
    json!({
        "assessment-results": {
            "uuid": uuid(&format!("assessment-results:{node}:{}", scope.join(","))),
            "metadata": {
                "title": line(&format!("Lexecon compliance assessment: {}", facts.config.system_name)),
                "last-modified": now,
                "version": line(&version),
                "oscal-version": OSCAL_VERSION,
                "links": [{
                    "href": format!("#{plan_uuid}"),
                    "rel": "reference",
                    "text": "Lexecon continuous assessment plan",
                }],
            },
            "import-ap": {
                "href": format!("#{plan_uuid}"),
                "remarks": "Lexecon assesses continuously: the plan is every control of the selected catalogs, evaluated from live facts as docs/compliance.md describes.",
            },
            "results": results,
            "back-matter": {
                "resources": [{
                    "uuid": plan_uuid,
                    "title": "Lexecon continuous assessment plan",
                    "description": format!("Every control of {} is evaluated from the node's configuration, ledger statistics, oversight records, registered evidence and last verification; see docs/compliance.md.", scope.join(", ")),
                }],
            },
        }
    })
}

/// The document as pretty JSON bytes.
pub(crate) fn render(statuses: &[FrameworkStatus], facts: &Facts) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(&document(statuses, facts)).unwrap_or_default();
    out.push(b'\n');
    out
}
