//! Checks that the crates obey the dependency table of `docs/architecture.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

/// crate name -> the crates of ours it may depend on, read from the doc's code map.
fn allowed_edges() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let doc = fs::read_to_string(crate::project_root().join("docs/architecture.md")).unwrap();
    let mut table = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].split('`').nth(1).unwrap().to_owned();
        let deps = cells[3];
        let allowed = if deps == "any" {
            None
        } else {
            Some(
                deps.split(',')
                    .filter_map(|d| d.split('`').nth(1))
                    .map(str::to_owned)
                    .collect(),
            )
        };
        table.insert(name, allowed);
    }
    table
}

/// (package name, our crates it depends on in any dependency section).
fn actual_edges() -> Vec<(String, BTreeSet<String>)> {
    let root = crate::project_root();
    let mut manifests = vec![root.join("xtask/Cargo.toml"), root.join("tests/Cargo.toml")];
    for entry in fs::read_dir(root.join("crates")).unwrap() {
        manifests.push(entry.unwrap().path().join("Cargo.toml"));
    }
    manifests
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|r| r.strip_suffix('"'))
                .unwrap()
                .to_owned();
            let deps = text
                .lines()
                .filter_map(|l| l.split(['.', ' ', '=']).next())
                .filter(|d| d.starts_with("lexecon-") && *d != name)
                .map(str::to_owned)
                .collect();
            (name, deps)
        })
        .collect()
}

#[test]
fn crate_dependencies_obey_architecture() {
    let allowed = allowed_edges();
    for (name, deps) in actual_edges() {
        let rule = allowed
            .get(&name)
            .unwrap_or_else(|| panic!("docs/architecture.md does not list `{name}`"));
        if let Some(rule) = rule {
            let extra: Vec<_> = deps.difference(rule).collect();
            assert!(
                extra.is_empty(),
                "`{name}` depends on {extra:?}, which docs/architecture.md does not allow"
            );
        }
    }
}

#[test]
fn every_crate_of_the_product_map_exists() {
    let allowed = allowed_edges();
    for name in [
        "lexecon-core",
        "lexecon-policy",
        "lexecon-risk",
        "lexecon-budget",
        "lexecon-ledger",
        "lexecon-capability",
        "lexecon-compliance",
        "lexecon-auth",
        "lexecon-engine",
        "lexecon-proto",
        "lexecon-server",
        "lexecon-mcp",
        "lexecon-json",
        "lexecon-cli",
    ] {
        assert!(
            allowed.contains_key(name),
            "{name} missing from docs/architecture.md"
        );
        assert!(
            crate::project_root()
                .join("crates")
                .join(name)
                .join("src/lib.rs")
                .exists(),
            "{name} has no crate"
        );
    }
}

/// Invariant 8: the pure crates cannot do IO by construction: no async runtime, database,
/// network or RPC crate among their dependencies.
#[test]
fn core_crates_have_no_io_dependencies() {
    let root = crate::project_root();
    for name in [
        "lexecon-core",
        "lexecon-policy",
        "lexecon-risk",
        "lexecon-capability",
        "lexecon-compliance",
        "lexecon-json",
    ] {
        let text = fs::read_to_string(root.join("crates").join(name).join("Cargo.toml")).unwrap();
        let deps = text.split("[dependencies]").nth(1).unwrap_or_default();
        let deps = deps.split("\n[").next().unwrap_or_default();
        for forbidden in [
            "tokio",
            "sqlx",
            "deadpool-redis",
            "redis",
            "tonic",
            "axum",
            "hyper",
        ] {
            assert!(
                !deps
                    .lines()
                    .any(|l| l.split(['.', ' ', '=']).next() == Some(forbidden)),
                "{name} depends on {forbidden}: the pure crates take time and randomness as inputs and do no IO"
            );
        }
    }
}
