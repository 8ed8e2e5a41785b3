//! Finding every unknown key of a file before serde reads it, since serde stops at the
//! first: a user fixing a file sees all misspelled keys at once.

use toml::de::{DeTable, DeValue};

use crate::model::{Diagnostic, Locator};

/// The keys a table may hold, and the schema of those holding tables (or arrays of them).
#[derive(Debug)]
pub(crate) struct Keys {
    names: &'static [&'static str],
    nested: &'static [(&'static str, &'static Keys)],
}

const WHEN: Keys = Keys {
    names: &["tools", "max_risk_level", "data_classes_within", "context"],
    nested: &[],
};
const RELATION: Keys = Keys {
    names: &["id", "kind", "from", "to", "when"],
    nested: &[("when", &WHEN)],
};
const TERM: Keys = Keys {
    names: &["id", "kind", "match", "description"],
    nested: &[],
};
const HEADER: Keys = Keys {
    names: &["name", "version", "mode"],
    nested: &[],
};
/// A policy file.
pub(crate) const POLICY_FILE: Keys = Keys {
    names: &["policy", "terms", "relations"],
    nested: &[
        ("policy", &HEADER),
        ("terms", &TERM),
        ("relations", &RELATION),
    ],
};
const CASE: Keys = Keys {
    names: &[
        "name",
        "actor",
        "action",
        "tool",
        "data_classes",
        "risk_level",
        "mode",
        "context",
        "risk_score",
        "expect",
        "reasons",
    ],
    nested: &[],
};
/// A policy test file.
pub(crate) const CASES_FILE: Keys = Keys {
    names: &["case"],
    nested: &[("case", &CASE)],
};

/// Every unknown key in `source`, with its location; empty when the TOML does not parse
/// (serde then reports the syntax error) or every key is known.
pub(crate) fn unknown_keys(source: &str, schema: &Keys, loc: &Locator<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Ok(doc) = DeTable::parse(source) {
        walk(doc.get_ref(), schema, loc, &mut out);
    }
    out
}

fn walk(table: &DeTable<'_>, keys: &Keys, loc: &Locator<'_>, out: &mut Vec<Diagnostic>) {
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        if !keys.names.contains(&name) {
            let expected: Vec<String> = keys.names.iter().map(|k| format!("`{k}`")).collect();
            out.push(loc.error(
                key.span(),
                format!(
                    "unknown field `{name}`, expected one of {}",
                    expected.join(", ")
                ),
            ));
            continue;
        }
        let Some(&(_, nested)) = keys.nested.iter().find(|(k, _)| *k == name) else {
            continue;
        };
        match value.get_ref() {
            DeValue::Table(t) => walk(t, nested, loc, out),
            DeValue::Array(items) => {
                for item in items {
                    if let DeValue::Table(t) = item.get_ref() {
                        walk(t, nested, loc, out);
                    }
                }
            }
            _ => {}
        }
    }
}
