//! Unit tests: the default rules case by case, configuration errors, merging of a
//! `[risk]` table with the defaults, and properties of scoring.

use std::fmt::Write as _;

use expect_test::{Expect, expect};
use lexecon_core::{ActionRequest, RiskLevel};
use proptest::prelude::*;

use crate::defaults::{self, Tier};
use crate::{Assessment, Dimension, RiskConfig, RiskConfigError, RiskScorer};

/// A request from a compact spec: `action tool=T class=C... level=N k=v... cost=N`.
fn request(spec: &str) -> (ActionRequest, Option<u64>) {
    let mut words = spec.split_whitespace();
    let action = words.next().unwrap();
    let mut req = ActionRequest::new("ai_agent:test", action).unwrap();
    let mut cost = None;
    for word in words {
        let (key, value) = word.split_once('=').unwrap();
        req = match key {
            "tool" => req.with_tool(value).unwrap(),
            "class" => req.with_data_class(value).unwrap(),
            "level" => req.with_risk_level(value.parse().unwrap()).unwrap(),
            "cost" => {
                cost = Some(value.parse().unwrap());
                req
            }
            _ => req.with_context(key, value).unwrap(),
        };
    }
    (req, cost)
}

fn render(a: &Assessment) -> String {
    let mut out = format!(
        "{} {}{}{}\n",
        a.score,
        a.level,
        if a.escalate { " escalate" } else { "" },
        if a.floor_applied { " floor" } else { "" },
    );
    for d in a.dimensions.iter() {
        let factors: Vec<String> = d
            .factors
            .iter()
            .map(|f| format!("{} {}", f.rule_id, f.points))
            .collect();
        let line = format!("{:<12} {:>3} {}", d.dimension, d.score, factors.join(", "));
        writeln!(out, "{}", line.trim_end()).unwrap();
    }
    out
}

fn check(spec: &str, expect: Expect) {
    let scorer = RiskScorer::new(RiskConfig::default()).unwrap();
    let (req, cost) = request(spec);
    let a = scorer.assess(&req, cost);
    // The rendering and the sums agree with the factors listed.
    for d in a.dimensions.iter() {
        let sum: u32 = d.factors.iter().map(|f| u32::from(f.points)).sum();
        assert_eq!(u32::from(d.score), sum.min(100), "{spec}: {}", d.dimension);
    }
    expect.assert_eq(&render(&a));
}

#[test]
fn reading_public_docs_is_low() {
    check(
        "read:docs tool=search_index class=public level=1",
        expect![[r#"
            2 low
            security       5 verb.read 5
            privacy        5 verb.read 5
            compliance     0
            operational    0
            reputational   0
            financial      0
        "#]],
    );
}

#[test]
fn reading_personal_data_through_a_database_is_medium() {
    check(
        "read:customer_data tool=database_query class=pii level=2",
        expect![[r#"
            32 medium
            security      30 verb.read 5, data_class.pii 10, tool.database 10, caller_risk_level.2 5
            privacy       55 verb.read 5, data_class.pii 40, tool.database 5, caller_risk_level.2 5
            compliance    40 data_class.pii 30, tool.database 5, caller_risk_level.2 5
            operational   15 tool.database 10, caller_risk_level.2 5
            reputational  25 data_class.pii 20, caller_risk_level.2 5
            financial      5 caller_risk_level.2 5
        "#]],
    );
}

#[test]
fn deleting_many_customer_records_is_high() {
    check(
        "delete:customer_records tool=database_query class=pii level=3 volume=10000",
        expect![[r#"
            70 high
            security      70 verb.delete 30, data_class.pii 10, tool.database 10, caller_risk_level.3 15, context.volume.large 5
            privacy       85 verb.delete 10, data_class.pii 40, tool.database 5, caller_risk_level.3 15, context.volume.large 15
            compliance    75 verb.delete 15, data_class.pii 30, tool.database 5, caller_risk_level.3 15, context.volume.large 10
            operational   80 verb.delete 40, tool.database 10, caller_risk_level.3 15, context.volume.large 15
            reputational  60 verb.delete 15, data_class.pii 20, caller_risk_level.3 15, context.volume.large 10
            financial     25 verb.delete 5, caller_risk_level.3 15, context.volume.large 5
        "#]],
    );
}

#[test]
fn exporting_health_data_abroad_to_a_third_party_is_critical() {
    check(
        "export:patient_records tool=s3_bucket class=phi recipient=external region=eu-west destination_region=us-east",
        expect![[r#"
            80 critical escalate floor
            security      75 verb.export 30, data_class.phi 15, tool.filesystem 10, context.external_recipient 15, context.cross_border 5
            privacy      100 verb.export 30, data_class.phi 50, tool.filesystem 5, context.external_recipient 25, context.cross_border 20
            compliance   100 verb.export 25, data_class.phi 50, context.external_recipient 20, context.cross_border 30
            operational   30 verb.export 20, tool.filesystem 10
            reputational  75 verb.export 20, data_class.phi 30, context.external_recipient 20, context.cross_border 5
            financial      5 verb.export 5
        "#]],
    );
}

#[test]
fn running_shell_commands_with_credentials_is_floored_to_critical() {
    check(
        "execute:shell_command tool=bash class=credentials",
        expect![[r#"
            80 critical escalate floor
            security     100 verb.execute 40, data_class.credentials 60, tool.code_execution 30
            privacy       20 verb.execute 10, data_class.credentials 10
            compliance    35 verb.execute 10, data_class.credentials 20, tool.code_execution 5
            operational   70 verb.execute 35, data_class.credentials 10, tool.code_execution 25
            reputational  40 verb.execute 15, data_class.credentials 20, tool.code_execution 5
            financial     15 verb.execute 5, data_class.credentials 10
        "#]],
    );
}

#[test]
fn moving_money_scores_the_financial_dimension() {
    check(
        "transfer:funds tool=stripe_api class=financial external=true",
        expect![[r#"
            80 critical escalate floor
            security      95 verb.transfer 30, data_class.financial 25, tool.payment 15, tool.web 10, context.external_recipient 15
            privacy       75 verb.transfer 10, data_class.financial 30, tool.payment 5, tool.web 5, context.external_recipient 25
            compliance    90 verb.transfer 15, data_class.financial 40, tool.payment 15, context.external_recipient 20
            operational   30 verb.transfer 20, tool.payment 5, tool.web 5
            reputational  70 verb.transfer 15, data_class.financial 20, tool.payment 10, tool.web 5, context.external_recipient 20
            financial    100 verb.transfer 40, data_class.financial 30, tool.payment 35
        "#]],
    );
}

#[test]
fn unknown_verbs_classes_and_a_missing_tool_are_scored_conservatively() {
    check(
        "frobnicate:things class=mystery class=other_mystery",
        expect![[r#"
            31 medium
            security      50 verb.unknown 25, data_class.unknown 10, tool.missing 15
            privacy       25 verb.unknown 10, data_class.unknown 15
            compliance    35 verb.unknown 10, data_class.unknown 15, tool.missing 10
            operational   25 verb.unknown 20, tool.missing 5
            reputational  20 verb.unknown 10, data_class.unknown 10
            financial      5 verb.unknown 5
        "#]],
    );
}

#[test]
fn names_match_case_insensitively_and_duplicates_count_once() {
    let scorer = RiskScorer::new(RiskConfig::default()).unwrap();
    let (lower, _) = request("delete:x tool=bash class=pii class=phi");
    let (upper, _) = request("DELETE:x tool=BASH class=PII class=pii class=Phi");
    assert_eq!(scorer.assess(&lower, None), scorer.assess(&upper, None));
}

#[test]
fn caller_risk_levels_llm_cost_and_context_hints() {
    check(
        "read:report tool=llm_gateway level=5 cost=12000000 environment=production volume=lots",
        expect![[r#"
            88 critical escalate
            security      80 verb.read 5, caller_risk_level.5 50, context.volume.large 5, context.volume.bulk 10, context.production 10
            privacy       90 verb.read 5, caller_risk_level.5 50, context.volume.large 15, context.volume.bulk 20
            compliance    80 caller_risk_level.5 50, context.volume.large 10, context.volume.bulk 15, context.production 5
            operational  100 caller_risk_level.5 50, context.volume.large 15, context.volume.bulk 20, context.production 20, llm_cost.high 5, llm_cost.very_high 10
            reputational  85 caller_risk_level.5 50, context.volume.large 10, context.volume.bulk 15, context.production 10
            financial    100 caller_risk_level.5 50, context.volume.large 5, context.volume.bulk 10, context.production 5, llm_cost.notable 15, llm_cost.high 30, llm_cost.very_high 40
        "#]],
    );
}

#[test]
fn default_levels_are_the_core_levels() {
    let scorer = RiskScorer::new(RiskConfig::default()).unwrap();
    for score in 0..=u8::MAX {
        assert_eq!(scorer.level(score), RiskLevel::from_score(score), "{score}");
    }
}

#[test]
fn json_has_the_contract_shape() {
    let scorer = RiskScorer::new(RiskConfig::default()).unwrap();
    let (req, _) = request("delete:customer_records tool=database_query class=pii level=3");
    let json = serde_json::to_value(scorer.assess(&req, None)).unwrap();
    assert_eq!(json["risk_score"], 60);
    assert_eq!(json["level"], "high");
    assert_eq!(json["escalate"], false);
    for d in Dimension::ALL {
        let entry = &json["dimensions"][d.as_str()];
        assert!(entry["score"].is_u64(), "{d}: {entry}");
        assert!(entry["factors"].is_array(), "{d}: {entry}");
    }
    expect![[r#"
        {
          "description": "deletes data: hard or impossible to undo",
          "points": 30,
          "rule_id": "verb.delete"
        }"#]]
    .assert_eq(
        &serde_json::to_string_pretty(&json["dimensions"]["security"]["factors"][0]).unwrap(),
    );
}

/// A configuration file holding a `[risk]` table.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    risk: RiskConfig,
}

/// Parses a `[risk]` table with serde alone.
fn parse(toml_text: &str) -> Result<RiskConfig, String> {
    toml::from_str::<File>(toml_text)
        .map(|f| f.risk)
        .map_err(|e| e.message().to_owned())
}

fn check_err(toml_text: &str, want: &str) {
    let err = match parse(toml_text) {
        Ok(config) => match RiskScorer::new(config) {
            Ok(_) => panic!("accepted: {toml_text}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e,
    };
    assert_eq!(err, want, "{toml_text}");
}

#[test]
fn invalid_config_is_rejected_naming_the_key() {
    check_err(
        "[risk.weights]\nsecurity = -0.1\nprivacy = 0.3\ncompliance = 0.3\noperational = 0.2\nreputational = 0.2\nfinancial = 0.1",
        "risk.weights.security must be between 0 and 1, got -0.1",
    );
    check_err(
        "[risk.weights]\nsafety = 1.0",
        "risk.weights.safety names no dimension: use security, privacy, compliance, operational, reputational or financial",
    );
    check_err(
        "[risk.weights]\nsecurity = 0.5\nprivacy = 0.6",
        "risk.weights must add up to 1, they add up to 1.65; give all six (a dimension left out keeps its default weight)",
    );
    check_err(
        "[risk.levels]\nmedium = 30\nhigh = 20\ncritical = 80",
        "risk.levels.high must be above risk.levels.medium (30), got 20",
    );
    check_err(
        "[risk.levels]\ncritical = 50",
        "risk.levels.critical must be above risk.levels.high (60), got 50",
    );
    check_err(
        "[risk]\nescalation_threshold = 0",
        "risk.escalation_threshold must be between 1 and 100, got 0",
    );
    check_err(
        "[risk]\nextreme_floor = 101",
        "risk.extreme_floor must be between 0 and 100, got 101",
    );
    check_err(
        "[risk.verbs.delete]\npoints = { safety = 10 }",
        "risk.verbs.delete.points.safety names no dimension: use security, privacy, compliance, operational, reputational or financial",
    );
    check_err(
        "[risk.data_classes.pii]\npoints = { privacy = 101 }",
        "risk.data_classes.pii.points.privacy must be between 0 and 100, got 101",
    );
    check_err(
        "[risk.verbs.Delete]\npoints = { security = 10 }",
        "risk.verbs.Delete must be a lowercase name of ASCII letters, digits and . _ - / @ + =",
    );
    check_err(
        "[risk.caller_risk_level.6]\npoints = { security = 10 }",
        "risk.caller_risk_level.6 must be a level from 1 to 5",
    );
    check_err(
        "[[risk.tools]]\nid = \"tool.vault\"\npatterns = []",
        "risk.tools[7].patterns must hold at least one pattern",
    );
    check_err(
        "[[risk.tools]]\nid = \"tool.vault\"\npatterns = [\"Vault*\"]",
        "risk.tools[7].patterns[0] must be a lowercase glob of tool-name characters, * and ?, got \"Vault*\"",
    );
    check_err(
        "[[risk.context]]\nid = \"tool.database\"\nwhen = [{ key = \"x\", equals = [\"y\"] }]",
        "risk.context[5].id repeats the rule id \"tool.database\"; give each rule its own id",
    );
    check_err(
        "[[risk.context]]\nid = \"context.odd\"\nwhen = [{ key = \"x\", equals = [\"y\"], at_least = 3 }]",
        "risk.context[5].when[0] must give exactly one of equals, at_least and differs_from",
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_rejected_by_name() {
    for (text, needle) in [
        ("[risk]\nescalation = 80", "unknown field `escalation`"),
        ("[risk]\nescalation_threshold = 300", "300"),
        ("[risk.verbs.delete]\npoint = {}", "unknown field `point`"),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn a_risk_table_merges_with_the_defaults() {
    let config = parse(
        r#"
        [risk]
        escalation_threshold = 70

        [risk.verbs.archive]
        description = "moves data to cold storage"
        points = { operational = 10 }

        [risk.verbs.send]
        points = { security = 0, privacy = 0, compliance = 0, operational = 0, reputational = 0 }

        [risk.verbs.delete]
        points = { security = 50 }

        [[risk.tools]]
        id = "tool.database"
        patterns = ["warehouse_*"]
        points = { security = 1 }

        [[risk.context]]
        id = "context.vip"
        when = [{ key = "customer_tier", equals = ["vip"] }]
        points = { reputational = 25 }
        "#,
    )
    .unwrap();
    let defaults = RiskConfig::default();
    assert_eq!(config.verbs.len(), defaults.verbs.len() + 1);
    let delete = &config.verbs["delete"];
    assert_eq!(delete.points["security"], 50);
    assert_eq!(
        delete.points["operational"], 40,
        "other dimensions keep their default"
    );
    assert_eq!(delete.description, defaults.verbs["delete"].description);
    assert_eq!(config.data_classes, defaults.data_classes);
    assert_eq!(config.tools.len(), defaults.tools.len());
    assert_eq!(config.context.len(), defaults.context.len() + 1);
    let scorer = RiskScorer::new(config).unwrap();
    let score = |spec: &str| render(&scorer.assess(&request(spec).0, None));
    expect![[r#"
        4 low
        security       1 tool.database 1
        privacy        0
        compliance     0
        operational   10 verb.archive 10
        reputational  25 context.vip 25
        financial      0
    "#]]
    .assert_eq(&score("archive:logs tool=warehouse_main customer_tier=VIP"));
    expect![[r#"
        0 low
        security       0
        privacy        0
        compliance     0
        operational    0
        reputational   0
        financial      0
    "#]]
    .assert_eq(&score("send:email tool=database_query"));
}

#[test]
fn default_config_round_trips_through_toml() {
    let file = std::collections::BTreeMap::from([("risk", RiskConfig::default())]);
    let back = parse(&toml::to_string(&file).unwrap()).unwrap();
    assert_eq!(back, RiskConfig::default());
}

const DOCS: &str = include_str!("../../../docs/risk.md");

#[test]
fn docs_list_every_default_rule_with_its_points() {
    let config = RiskConfig::default();
    let scorer = RiskScorer::new(config).unwrap();
    let mut ids: Vec<(String, [u8; 6])> = Vec::new();
    for &(id, _, points, _) in defaults::VERBS {
        ids.push((id.to_owned(), points));
    }
    ids.push(("verb.unknown".into(), defaults::UNKNOWN_VERB.0));
    for &(id, points, _) in defaults::DATA_CLASSES {
        ids.push((id.to_owned(), points));
    }
    ids.push(("data_class.unknown".into(), defaults::UNKNOWN_DATA_CLASS.0));
    ids.push(("tool.missing".into(), defaults::MISSING_TOOL.0));
    for (id, points, _) in defaults::CALLER_RISK_LEVEL {
        ids.push((id.to_owned(), [points; 6]));
    }
    for &(id, _, points, _) in defaults::TOOLS {
        ids.push((id.to_owned(), points));
    }
    for (id, _, points, _) in defaults::CONTEXT {
        ids.push(((*id).to_owned(), *points));
    }
    for &(id, _, points, _) in defaults::LLM_COST {
        ids.push((id.to_owned(), points));
    }
    for (id, points) in ids {
        let cells: Vec<String> = points.iter().map(u8::to_string).collect();
        let row = format!("| {} |", cells.join(" | "));
        let found = DOCS
            .lines()
            .any(|line| line.contains(&format!("`{id}`")) && line.ends_with(&row));
        assert!(found, "docs/risk.md has no row for `{id}` ending {row}");
    }
    drop(scorer);
}

#[test]
fn docs_example_risk_table_is_valid() {
    let start = DOCS
        .find("```toml\n[risk]")
        .expect("an example [risk] table")
        + 8;
    let end = start + DOCS[start..].find("```").unwrap();
    let config = parse(&DOCS[start..end]).unwrap();
    RiskScorer::new(config).unwrap();
}

// ---- properties ----

const VERB_WORDS: &[&str] = &[
    "read", "write", "delete", "export", "transfer", "execute", "zap",
];
const CLASSES: &[&str] = &[
    "public",
    "internal",
    "pii",
    "phi",
    "financial",
    "credentials",
    "children",
    "biometric",
    "location",
    "weird_thing",
];
const TOOLS: &[&str] = &[
    "bash",
    "database_query",
    "s3_bucket",
    "email_sender",
    "stripe_api",
    "calculator",
];

#[derive(Debug, Clone)]
struct Spec {
    verb: String,
    tool: Option<&'static str>,
    classes: Vec<&'static str>,
    level: Option<u32>,
    context: Vec<(&'static str, String)>,
    cost: Option<u64>,
}

impl Spec {
    fn build(&self) -> ActionRequest {
        let mut req = ActionRequest::new("agent", &format!("{}:thing", self.verb)).unwrap();
        if let Some(tool) = self.tool {
            req = req.with_tool(tool).unwrap();
        }
        for class in &self.classes {
            req = req.with_data_class(class).unwrap();
        }
        if let Some(level) = self.level {
            req = req.with_risk_level(level).unwrap();
        }
        for (k, v) in &self.context {
            req = req.with_context(k, v).unwrap();
        }
        req
    }
}

fn context_entry() -> impl Strategy<Value = (&'static str, String)> {
    prop_oneof![
        (0u64..1_000_000).prop_map(|n| ("volume", n.to_string())),
        Just(("volume", "many".to_owned())),
        prop::sample::select(vec!["external", "internal"])
            .prop_map(|v| ("recipient", v.to_owned())),
        prop::sample::select(vec!["true", "false"]).prop_map(|v| ("external", v.to_owned())),
        prop::sample::select(vec!["eu", "us"]).prop_map(|v| ("region", v.to_owned())),
        prop::sample::select(vec!["eu", "us"]).prop_map(|v| ("destination_region", v.to_owned())),
        prop::sample::select(vec!["prod", "dev"]).prop_map(|v| ("environment", v.to_owned())),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    let verbs: Vec<&'static str> = defaults::VERBS
        .iter()
        .map(|v| v.0.trim_start_matches("verb."))
        .chain(VERB_WORDS.iter().copied())
        .collect();
    (
        prop::sample::select(verbs),
        prop::option::of(prop::sample::select(TOOLS)),
        prop::collection::vec(prop::sample::select(CLASSES), 0..5),
        prop::option::of(1u32..=5),
        prop::collection::vec(context_entry(), 0..4),
        prop::option::of(0u64..50_000_000),
    )
        .prop_map(|(verb, tool, classes, level, context, cost)| Spec {
            verb: verb.to_owned(),
            tool,
            classes,
            level,
            context,
            cost,
        })
}

/// A valid configuration with random weights, thresholds and rule points.
fn config() -> impl Strategy<Value = RiskConfig> {
    (
        prop::array::uniform6(0u32..1000),
        1u8..=100,
        1u8..=100,
        0u8..=100,
        prop::collection::vec(prop::array::uniform6(0u8..=100), 8),
    )
        .prop_filter("weights need a positive total", |(w, ..)| {
            w.iter().sum::<u32>() > 0
        })
        .prop_map(|(raw, escalation, extreme, floor, points)| {
            let mut config = RiskConfig::default();
            let total = f64::from(raw.iter().sum::<u32>());
            config.weights = Dimension::ALL
                .into_iter()
                .zip(raw)
                .map(|(d, w)| (d.as_str().to_owned(), f64::from(w) / total))
                .collect();
            config.escalation_threshold = escalation;
            config.extreme_dimension = extreme;
            config.extreme_floor = floor;
            // Random points on a few rules of each kind.
            let mut p = points.into_iter().map(crate::config::points_of);
            for verb in ["read", "delete"] {
                config.verbs.get_mut(verb).unwrap().points = p.next().unwrap();
            }
            for class in ["pii", "public"] {
                config.data_classes.get_mut(class).unwrap().points = p.next().unwrap();
            }
            config.unknown_data_class.points = p.next().unwrap();
            config.missing_tool.points = p.next().unwrap();
            config.tools[0].points = p.next().unwrap();
            config.context[0].points = p.next().unwrap();
            config
        })
}

fn at_least(more: &Assessment, less: &Assessment) -> Result<(), TestCaseError> {
    for (m, l) in more.dimensions.iter().zip(less.dimensions.iter()) {
        prop_assert!(
            m.score >= l.score,
            "{} fell from {} to {}",
            m.dimension,
            l.score,
            m.score
        );
    }
    prop_assert!(
        more.score >= less.score,
        "overall fell from {} to {}",
        less.score,
        more.score
    );
    Ok(())
}

proptest! {
    #[test]
    fn scores_stay_within_0_to_100(config in config(), spec in spec()) {
        let scorer = RiskScorer::new(config).unwrap();
        let a = scorer.assess(&spec.build(), spec.cost);
        prop_assert!(a.score <= 100);
        for d in a.dimensions.iter() {
            prop_assert!(d.score <= 100);
        }
        prop_assert_eq!(a.level, scorer.level(a.score));
        prop_assert_eq!(a.escalate, a.score >= scorer.config().escalation_threshold);
    }

    #[test]
    fn adding_a_data_class_never_lowers_a_score(
        config in config(),
        spec in spec(),
        class in prop::sample::select(CLASSES),
    ) {
        let scorer = RiskScorer::new(config).unwrap();
        let before = scorer.assess(&spec.build(), spec.cost);
        let mut more = spec.clone();
        more.classes.push(class);
        let after = scorer.assess(&more.build(), spec.cost);
        at_least(&after, &before)?;
    }

    #[test]
    fn adding_context_a_risk_level_or_cost_never_lowers_a_score(
        config in config(),
        spec in spec(),
        entry in context_entry(),
        extra_cost in 0u64..20_000_000,
    ) {
        let scorer = RiskScorer::new(config).unwrap();
        let before = scorer.assess(&spec.build(), spec.cost);
        let mut more = spec.clone();
        if !more.context.iter().any(|(k, _)| *k == entry.0) {
            more.context.push(entry);
        }
        more.level = Some(more.level.map_or(1, |l| (l + 1).min(5)));
        let cost = Some(spec.cost.unwrap_or(0) + extra_cost);
        let after = scorer.assess(&more.build(), cost);
        at_least(&after, &before)?;
    }

    #[test]
    fn a_more_destructive_verb_never_lowers_a_score(
        spec in spec(),
        a in prop::sample::select(defaults::VERBS),
        b in prop::sample::select(defaults::VERBS),
    ) {
        let ((low, low_tier, ..), (high, high_tier, ..)) = if a.1 <= b.1 { (a, b) } else { (b, a) };
        prop_assume!(low_tier < high_tier);
        let scorer = RiskScorer::new(RiskConfig::default()).unwrap();
        let with = |verb: &str| {
            let mut s = spec.clone();
            verb.trim_start_matches("verb.").clone_into(&mut s.verb);
            scorer.assess(&s.build(), s.cost)
        };
        at_least(&with(high), &with(low))?;
        // Unknown verbs score as possibly destructive: above every read and write verb.
        if high_tier == Tier::Destructive {
            at_least(&with("zap"), &with(low))?;
        }
    }

    #[test]
    fn weights_of_a_valid_config_add_up_to_1(
        raw in prop::collection::btree_map(
            prop::sample::select(vec!["security", "privacy", "compliance", "operational", "reputational", "financial", "safety"]),
            -0.2f64..1.2,
            0..7,
        ),
        normalize in any::<bool>(),
    ) {
        let mut config = RiskConfig::default();
        let total: f64 = raw.values().sum();
        config.weights = raw
            .iter()
            .map(|(k, &w)| ((*k).to_owned(), if normalize && total > 0.0 { w / total } else { w }))
            .collect();
        match config.validate() {
            Ok(()) => {
                let sum: f64 = config.weight_array().iter().sum();
                prop_assert!((sum - 1.0).abs() <= crate::WEIGHT_SUM_TOLERANCE, "{sum}");
                prop_assert!(config.weight_array().iter().all(|w| (0.0..=1.0).contains(w)));
            }
            Err(err) => prop_assert!(err.key().starts_with("risk.weights"), "{err}"),
        }
    }
}

#[test]
fn default_verb_tiers_are_ordered_pointwise() {
    for &(low, low_tier, low_points, _) in defaults::VERBS {
        for &(high, high_tier, high_points, _) in defaults::VERBS {
            if low_tier < high_tier {
                for (l, h) in low_points.iter().zip(high_points) {
                    assert!(h >= *l, "{high} scores below {low}");
                }
            }
        }
        if low_tier < Tier::Destructive {
            for (l, u) in low_points.iter().zip(defaults::UNKNOWN_VERB.0) {
                assert!(u >= *l, "an unknown verb scores below {low}");
            }
        }
    }
}

#[test]
fn error_key_is_reported() {
    let mut config = RiskConfig::default();
    config.levels.high = 10;
    let err: RiskConfigError = config.validate().unwrap_err();
    assert_eq!(err.key(), "risk.levels.high");
}

/// Layers `[risk]` tables the way the engine loads its configuration (figment:
/// serialized defaults, then the file), so the two readings cannot drift apart.
fn layered(toml_text: &str) -> Result<RiskConfig, String> {
    use figment::Figment;
    use figment::providers::{Format, Serialized, Toml};
    Figment::from(Serialized::defaults(File {
        risk: RiskConfig::default(),
    }))
    .merge(Toml::string(toml_text))
    .extract::<File>()
    .map(|f| f.risk)
    .map_err(|e| e.to_string())
}

#[test]
fn serde_alone_and_layered_loading_agree() {
    let cases = [
        "",
        "[risk]\nescalation_threshold = 70\nlevels = { high = 65 }",
        "[risk.weights]\nsecurity = 0.35\nfinancial = 0.0",
        "[risk.verbs.delete]\npoints = { security = 50 }\n[risk.verbs.archive]\npoints = { operational = 10 }",
        "[risk.unknown_verb]\ndescription = \"odd verb\"\n[risk.missing_tool]\npoints = { security = 0 }",
        "[risk.data_classes.pii]\ndescription = \"personal\"\npoints = { privacy = 45 }",
        "[[risk.tools]]\nid = \"tool.database\"\npatterns = [\"warehouse_*\"]\n[[risk.tools]]\nid = \"tool.vault\"\npatterns = [\"vault\"]\npoints = { security = 40 }",
        "[[risk.context]]\nid = \"context.vip\"\nwhen = [{ key = \"tier\", equals = [\"vip\"] }]",
        "[[risk.llm_cost]]\nid = \"llm_cost.high\"\nat_least_micros = 500000\npoints = { financial = 20 }",
    ];
    for text in cases {
        let alone = parse(text).unwrap();
        assert_eq!(layered(text).unwrap(), alone, "{text}");
    }
    let merged = parse(cases[2]).unwrap();
    assert_eq!(merged.weights["security"], 0.35);
    assert_eq!(merged.weights["privacy"], 0.20);
    assert_eq!(merged.weights["financial"], 0.0);
    RiskScorer::new(merged).unwrap();
    let tools = parse(cases[6]).unwrap().tools;
    assert_eq!(tools.len(), RiskConfig::default().tools.len() + 1);
    assert_eq!(
        tools[2].patterns,
        ["warehouse_*"],
        "replaced in place, whole"
    );
    assert!(tools[2].points.is_empty());
}

#[test]
fn many_matching_rules_are_all_counted() {
    // More rules fire than the scorer keeps on the stack, and (at 130) more tool rules
    // than its bit set holds: every one must still count, once, in rule order.
    for n in [40u32, 130] {
        let mut config = RiskConfig::default();
        for i in 0..n {
            config.tools.push(crate::ToolRule {
                id: format!("tool.any{i}"),
                description: String::new(),
                patterns: vec!["*".to_owned(), "calc*".to_owned(), "*tor".to_owned()],
                points: crate::config::points_of([0, 0, 0, 0, 0, 1]),
            });
        }
        let scorer = RiskScorer::new(config).unwrap();
        let (req, _) = request("read:x tool=calculator");
        let a = scorer.assess(&req, None);
        let financial = &a.dimensions.financial;
        assert_eq!(u32::from(financial.score), n.min(100), "{n}");
        assert_eq!(financial.factors.len(), n as usize, "{n}");
        let last = financial.factors.last().unwrap();
        let want = format!("tool.any{}", n - 1);
        assert_eq!(&*last.rule_id, want.as_str());
        assert_eq!(&*last.description, format!("rule {want}").as_str());
    }
}

proptest! {
    #[test]
    fn indexed_tool_matching_agrees_with_trying_every_pattern(
        name in prop_oneof![
            "[a-zA-Z0-9_]{1,14}",
            prop::sample::select(vec![
                "bash", "SHELL", "my_shell", "db", "db_main", "analytics_db", "sql", "s3_bucket",
                "email_sender", "stripe_api", "kubectl", "python3", "web_search", "x_iam",
            ]).prop_map(str::to_owned),
        ],
    ) {
        let config = RiskConfig::default();
        let want: Vec<&str> = config
            .tools
            .iter()
            .filter(|r| {
                r.patterns
                    .iter()
                    .any(|p| crate::glob::matches(p.as_bytes(), name.as_bytes()))
            })
            .map(|r| r.id.as_str())
            .collect();
        let scorer = RiskScorer::new(config.clone()).unwrap();
        let req = ActionRequest::new("a", "read:x").unwrap().with_tool(&name).unwrap();
        let a = scorer.assess(&req, None);
        let mut got: Vec<&str> = Vec::new();
        for d in a.dimensions.iter() {
            for f in &d.factors {
                if f.rule_id.starts_with("tool.") && !got.contains(&&*f.rule_id) {
                    got.push(&f.rule_id);
                }
            }
        }
        let mut want_sorted = want.clone();
        want_sorted.sort_unstable();
        got.sort_unstable();
        prop_assert_eq!(got, want_sorted, "{}", name);
    }
}
