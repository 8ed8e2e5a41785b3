//! Control catalogs: data files in `catalogs/`, parsed once.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::checks::Check;

/// One framework's catalog as its TOML file spells it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Catalog {
    /// Framework id (`soc2`, ...).
    pub(crate) id: String,
    /// Display name.
    pub(crate) name: String,
    /// The edition mapped.
    pub(crate) version: String,
    /// The controls, in catalog order.
    #[serde(rename = "control")]
    pub(crate) controls: Vec<ControlDef>,
}

/// One control row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ControlDef {
    /// The framework's identifier for the control (`CC6.1`, `Art. 12(1)`).
    pub(crate) id: String,
    /// Our own short title.
    pub(crate) title: String,
    /// The checks whose results make the control's status (all must hold).
    pub(crate) checks: Vec<Check>,
    /// For `records_retained`: the fewest days of retention the control asks for.
    #[serde(default)]
    pub(crate) min_days: Option<u32>,
    /// For `evidence_registered`: the artifact type that proves the control.
    #[serde(default)]
    pub(crate) artifact: Option<String>,
}

/// The catalog files, in the order frameworks are listed.
pub(crate) const SOURCES: [(&str, &str); 7] = [
    ("soc2", include_str!("../catalogs/soc2.toml")),
    ("iso27001", include_str!("../catalogs/iso27001.toml")),
    ("gdpr", include_str!("../catalogs/gdpr.toml")),
    ("hipaa", include_str!("../catalogs/hipaa.toml")),
    ("pci_dss", include_str!("../catalogs/pci_dss.toml")),
    ("nist_csf", include_str!("../catalogs/nist_csf.toml")),
    ("eu_ai_act", include_str!("../catalogs/eu_ai_act.toml")),
];

/// The framework ids, in listing order.
pub(crate) fn framework_ids() -> impl Iterator<Item = &'static str> {
    SOURCES.iter().map(|(id, _)| *id)
}

/// Parses one catalog file, checking that its id matches its file.
pub(crate) fn parse(expected_id: &str, text: &str) -> Result<Catalog, String> {
    let catalog: Catalog = toml::from_str(text)
        .map_err(|e| format!("catalog {expected_id}.toml does not parse: {e}"))?;
    if catalog.id != expected_id {
        return Err(format!(
            "catalog {expected_id}.toml declares id {:?}; it must be {expected_id:?}",
            catalog.id
        ));
    }
    if catalog.controls.is_empty() {
        return Err(format!("catalog {expected_id}.toml has no [[control]]"));
    }
    for c in &catalog.controls {
        if c.checks.is_empty() {
            return Err(format!(
                "catalog {expected_id}.toml: control {:?} names no check",
                c.id
            ));
        }
    }
    Ok(catalog)
}

/// Every catalog, parsed once. A catalog that fails to parse is kept as its error
/// (the unit tests parse every file, so a release never carries one).
pub(crate) fn catalogs() -> &'static [(&'static str, Result<Catalog, String>)] {
    static CATALOGS: OnceLock<Vec<(&'static str, Result<Catalog, String>)>> = OnceLock::new();
    CATALOGS.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(id, text)| (*id, parse(id, text)))
            .collect()
    })
}

/// The catalog of `framework`, or why there is none.
pub(crate) fn catalog(framework: &str) -> Option<&'static Result<Catalog, String>> {
    catalogs()
        .iter()
        .find(|(id, _)| *id == framework)
        .map(|(_, c)| c)
}
