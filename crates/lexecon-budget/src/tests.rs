//! Unit tests: money parsing, globs, model access rules, configuration, and the manager
//! over the memory store with a manual clock.

use std::sync::{Arc, Mutex};

use expect_test::{Expect, expect};
use lexecon_core::{Clock, LlmUsage, ManualClock, Timestamp};

use crate::money::parse_millionths;
use crate::*;

// 2026-11-24T08:00:00Z
const T0: i64 = 1_795_507_200;

fn usage(model: &str, user: Option<&str>, roles: &[&str], input: u64, output: u64) -> LlmUsage {
    LlmUsage {
        model: model.to_owned(),
        user_id: user.map(str::to_owned),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        estimated_input_tokens: input,
        max_output_tokens: output,
    }
}

fn manager(toml: &str) -> (BudgetManager, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_unix_secs(T0));
    let config = BudgetConfig::from_toml(toml).unwrap();
    let m = BudgetManager::new(
        config,
        Arc::new(MemoryBudgetStore::new()),
        Arc::new(clock.clone()),
    )
    .unwrap();
    (m, clock)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// "allowed" or "reason scope limit_id".
fn outcome(r: &Result<Authorization, BudgetError>) -> String {
    match r {
        Ok(_) => "allowed".to_owned(),
        Err(BudgetError::Denied(d)) => format!("{} {} {}", d.reason, d.scope, d.limit_id),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn money_parses_exact_decimals() {
    fn check(input: &str, expect: Result<u64, &str>) {
        let got = parse_millionths(input);
        match expect {
            Ok(v) => assert_eq!(got, Ok(v), "{input}"),
            Err(fragment) => {
                let e = got.unwrap_err();
                assert!(e.contains(fragment), "{input}: {e}");
            }
        }
    }
    check("12.5", Ok(12_500_000));
    check("100", Ok(100_000_000));
    check("0.000001", Ok(1));
    check("0.1", Ok(100_000));
    check("$3.10", Ok(3_100_000));
    check("1_000.25", Ok(1_000_250_000));
    check("0.10000000", Ok(100_000));
    check(".5", Ok(500_000));
    check("0.0000001", Err("more than 6 decimal places"));
    check("-1", Err("negative"));
    check("1e3", Err("not a decimal amount"));
    check("", Err("not a decimal amount"));
    check("9007199255", Err("too large"));
    check("99999999999999999999999", Err("too large"));
}

#[test]
fn money_from_toml_floats_integers_and_strings_is_exact() {
    fn check(toml_value: &str, expect: u64) {
        let c = BudgetConfig::from_toml(&format!("monthly_budget = {toml_value}")).unwrap();
        assert_eq!(c.monthly_budget, Some(Dollars(expect)), "{toml_value}");
    }
    check("0.1", 100_000);
    check("0.3", 300_000);
    check("100", 100_000_000);
    check("1234.567891", 1_234_567_891);
    check("\"19.99\"", 19_990_000);
    check("1e2", 100_000_000);
    assert_eq!(format_micros(19_990_000), "19.99");
    assert_eq!(format_micros(1), "0.000001");
    assert_eq!(format_micros(5_000_000), "5");
}

#[test]
fn globs_are_case_insensitive_full_matches() {
    fn check(pattern: &str, name: &str, expect: bool) {
        assert_eq!(
            Glob::new(pattern).matches(name),
            expect,
            "{pattern} vs {name}"
        );
    }
    check("gpt-4", "gpt-4", true);
    check("gpt-4", "GPT-4", true);
    check("GPT-4O*", "gpt-4o-mini", true);
    check("gpt-4", "gpt-4o", false);
    check("gpt-4", "xgpt-4", false);
    check("*mini", "gpt-4o-mini", true);
    check("*mini", "gpt-4o-mini-2024", false);
    check("gpt-?o", "gpt-4o", true);
    check("gpt-?o", "gpt-40o", false);
    check("*", "", true);
    check("a*b*c", "aXbYc", true);
    check("a*b*c", "aXbYcZ", false);
    check("claude-*-sonnet*", "Claude-3-5-Sonnet-20241022", true);
    check("", "", true);
    check("", "x", false);
    check("**", "anything", true);
}

const ACCESS: &str = r#"
restricted_models = ["gpt-4-32k", "o1-*"]
[model_allowlist]
alice = ["gpt-4o-mini", "claude-3-5-haiku*"]
interns = ["gpt-4o-mini"]
research = ["claude-*", "gemini-*"]
frozen = []
"user:both" = ["gpt-4.1"]
"role:both" = ["gpt-4.1-nano"]
[model_denylist]
bob = ["gpt-4o"]
contractors = ["claude-opus-*"]
"#;

#[test]
fn model_access_rules_follow_the_documented_precedence() {
    let (m, _) = manager(ACCESS);
    let check = |model: &str, user: Option<&str>, roles: &[&str], expect: Expect| {
        let r = block_on(m.authorize(&usage(model, user, roles, 10, 10)));
        expect.assert_eq(&outcome(&r));
    };
    // Restricted for everyone, even with an allowlist that matches.
    check(
        "gpt-4-32k",
        None,
        &[],
        expect!["model_restricted global budget.restricted_models"],
    );
    check(
        "O1-Preview",
        Some("alice"),
        &[],
        expect!["model_restricted global budget.restricted_models"],
    );
    // A user without lists may use any priced model.
    check("gpt-4o", Some("carol"), &[], expect!["allowed"]);
    // User denylist; role denylist; case-insensitive.
    check(
        "GPT-4o",
        Some("bob"),
        &[],
        expect!["model_denied user:bob budget.user:bob.model_denylist"],
    );
    check("gpt-4o-mini", Some("bob"), &[], expect!["allowed"]);
    check(
        "claude-opus-4-20250514",
        Some("carol"),
        &["contractors"],
        expect!["model_denied role:contractors budget.role:contractors.model_denylist"],
    );
    // A denylist beats any allowlist.
    check(
        "claude-opus-4",
        Some("carol"),
        &["research", "contractors"],
        expect!["model_denied role:contractors budget.role:contractors.model_denylist"],
    );
    // User allowlist: full match only.
    check("gpt-4o-mini", Some("alice"), &[], expect!["allowed"]);
    check(
        "gpt-4o",
        Some("alice"),
        &[],
        expect!["model_not_allowed user:alice budget.user:alice.model_allowlist"],
    );
    check(
        "gpt-4o-mini-x",
        Some("alice"),
        &[],
        expect!["model_not_allowed user:alice budget.user:alice.model_allowlist"],
    );
    check(
        "Claude-3-5-Haiku-20241022",
        Some("alice"),
        &[],
        expect!["allowed"],
    );
    // User plus role lists: the union of allowlists.
    check(
        "gemini-2.0-flash",
        Some("alice"),
        &["research"],
        expect!["allowed"],
    );
    check(
        "gpt-4o",
        Some("alice"),
        &["research"],
        expect!["model_not_allowed user:alice budget.user:alice.model_allowlist"],
    );
    // Only a role has a list: the model must match it.
    check(
        "gpt-4o",
        Some("carol"),
        &["interns"],
        expect!["model_not_allowed role:interns budget.role:interns.model_allowlist"],
    );
    check(
        "gpt-4o-mini",
        Some("carol"),
        &["interns"],
        expect!["allowed"],
    );
    // An explicitly empty allowlist denies everything, whatever other lists say.
    check(
        "gpt-4o-mini",
        Some("carol"),
        &["frozen"],
        expect!["model_not_allowed role:frozen budget.role:frozen.model_allowlist"],
    );
    check(
        "gpt-4o-mini",
        Some("alice"),
        &["interns", "frozen"],
        expect!["model_not_allowed role:frozen budget.role:frozen.model_allowlist"],
    );
    check(
        "gpt-4o-mini",
        Some("frozen"),
        &[],
        expect!["model_not_allowed user:frozen budget.user:frozen.model_allowlist"],
    );
    // user: and role: prefixes name only one of them.
    check("gpt-4.1", Some("both"), &[], expect!["allowed"]);
    check(
        "gpt-4.1-nano",
        Some("both"),
        &[],
        expect!["model_not_allowed user:both budget.user:both.model_allowlist"],
    );
    check("gpt-4.1-nano", Some("carol"), &["both"], expect!["allowed"]);
    check(
        "gpt-4.1",
        Some("carol"),
        &["both"],
        expect!["model_not_allowed role:both budget.role:both.model_allowlist"],
    );
    // Anonymous users are matched by the name `anonymous`.
    check("gpt-4o", Some(""), &[], expect!["allowed"]);
}

#[test]
fn unpriced_models_are_denied_unless_allowed_or_priced() {
    let (m, _) = manager("");
    let r = block_on(m.authorize(&usage("my-local-llama", None, &[], 10, 10)));
    expect!["model_unpriced global budget.pricing"].assert_eq(&outcome(&r));
    assert_eq!(m.estimate_cost_micros("my-local-llama", 1, 1), None);

    let (m, _) = manager("allow_unpriced_models = true");
    let r = block_on(m.authorize(&usage("my-local-llama", None, &[], 10, 10))).unwrap();
    assert_eq!(r.reserved_micros, 0);

    let (m, _) = manager(
        r#"
        [pricing."My-Local-*"]
        input_per_mtok = 0.01
        output_per_mtok = "0.02"
        "#,
    );
    let r =
        block_on(m.authorize(&usage("my-local-llama", None, &[], 1_000_000, 1_000_000))).unwrap();
    assert_eq!(r.reserved_micros, 30_000);

    // Without the built-in catalog, a well-known model is unpriced too.
    let (m, _) = manager("builtin_pricing = false");
    let r = block_on(m.authorize(&usage("gpt-4o", None, &[], 10, 10)));
    expect!["model_unpriced global budget.pricing"].assert_eq(&outcome(&r));
}

#[test]
fn prices_come_from_the_catalog_exact_names_first_and_round_up() {
    let (m, _) = manager(
        r#"
        [pricing."gpt-4o"]
        input_per_mtok = 5
        output_per_mtok = 15
        "#,
    );
    // gpt-4o overridden; gpt-4o-mini built in (0.15 / 0.60).
    assert_eq!(
        m.estimate_cost_micros("GPT-4o", 1_000_000, 1_000_000),
        Some(20_000_000)
    );
    assert_eq!(m.estimate_cost_micros("gpt-4o-mini", 1_000, 500), Some(450));
    // A dated snapshot is priced by its family glob.
    assert_eq!(
        m.estimate_cost_micros("claude-3-5-haiku-20241022", 1_000_000, 0),
        Some(800_000)
    );
    // One token of a cheap model costs a fraction of a micro-dollar: rounded up to 1.
    assert_eq!(m.estimate_cost_micros("gpt-4o-mini", 1, 0), Some(1));
    assert_eq!(m.estimate_cost_micros("gpt-4o-mini", 0, 0), Some(0));
}

#[test]
fn invalid_configurations_name_the_key() {
    fn check(toml: &str, expect: Expect) {
        let err = BudgetConfig::from_toml(toml).unwrap_err();
        expect.assert_eq(&err.to_string());
    }
    check(
        "timezone = \"Mars/Olympus\"",
        expect![[
            r#"invalid budget configuration: budget.timezone "Mars/Olympus" is not a known IANA time zone; write one such as UTC or Europe/Paris"#
        ]],
    );
    check(
        "soft_limit_pct = 0",
        expect![
            "invalid budget configuration: budget.soft_limit_pct must be above 0; write a fraction such as 0.8, or remove the key"
        ],
    );
    check(
        "[users.alice]\nsoft_limit_pct = 0",
        expect![
            "invalid budget configuration: budget.users.alice.soft_limit_pct must be above 0; write a fraction such as 0.8, or remove the key"
        ],
    );
    check(
        "[keys.frontend]\nsoft_limit_pct = 0",
        expect![
            "invalid budget configuration: budget.keys.frontend.soft_limit_pct must be above 0; write a fraction such as 0.8, or remove the key"
        ],
    );
    check(
        "[keys.\"\"]\nrpm_limit = 1",
        expect![
            "invalid budget configuration: budget.keys has an empty name; remove it or name a user, key, role or model"
        ],
    );
    check(
        "reservation_ttl_secs = 0",
        expect![
            "invalid budget configuration: budget.reservation_ttl_secs is 0; use 1 to 86400 seconds"
        ],
    );
    check(
        "[model_allowlist]\nalice = [\"\"]",
        expect![
            "invalid budget configuration: budget.model_allowlist.alice[0] has an empty name; remove it or name a user, key, role or model"
        ],
    );
    for (toml, fragment) in [
        ("monthly_budget = -5", "negative"),
        ("monthly_budget = 0.0000001", "more than 6 decimal places"),
        ("soft_limit_pct = 1.5", "above 1"),
        ("monthly_budgett = 5", "unknown field `monthly_budgett`"),
        ("[global]\nrpm = 5", "unknown field `rpm`"),
        (
            "[pricing.x]\ninput_per_mtok = 1",
            "missing field `output_per_mtok`",
        ),
    ] {
        let err = BudgetConfig::from_toml(toml).unwrap_err().to_string();
        assert!(err.contains(fragment), "{toml}: {err}");
    }
}

#[test]
fn config_round_trips_through_toml_exactly() {
    let text = r#"
        monthly_budget = 100.1
        soft_limit_pct = 0.8
        rpm_limit = 60
        restricted_models = ["gpt-4-32k"]
        timezone = "Europe/Paris"
        [global]
        monthly_budget = "10000"
        [users.alice]
        monthly_budget = 0.000001
        [keys.frontend]
        rpm_limit = 600
        [roles.interns]
        tpm_limit = 1000
        [model_allowlist]
        interns = ["gpt-4o-mini"]
        [pricing."my-model"]
        input_per_mtok = 0.1
        output_per_mtok = 0.3
    "#;
    let config = BudgetConfig::from_toml(text).unwrap();
    let back = BudgetConfig::from_toml(&config.to_toml().unwrap()).unwrap();
    assert_eq!(back, config);
    // The whole table with its header parses the same.
    let with_header =
        BudgetConfig::from_toml("[budget]\nrpm_limit = 5\n[budget.users.a]\nmonthly_budget = 1.5")
            .unwrap();
    assert_eq!(with_header.rpm_limit, Some(5));
    assert_eq!(
        with_header.users["a"].monthly_budget,
        Some(Dollars(1_500_000))
    );
    assert_eq!(config.monthly_budget, Some(Dollars(100_100_000)));
    assert_eq!(
        BudgetConfig::from_toml("").unwrap(),
        BudgetConfig::default()
    );
    assert_eq!(config.keys["frontend"].rpm_limit, Some(600));
    // Without key overrides the text is what it was before they existed (the engine
    // hashes it to tell whether the file changed).
    assert!(!BudgetConfig::default().to_toml().unwrap().contains("keys"));
}

#[test]
fn zero_config_is_unlimited_but_checks_access_and_price() {
    let (m, _) = manager("");
    for _ in 0..1000 {
        block_on(m.authorize(&usage("gpt-4o", None, &[], 100_000, 100_000))).unwrap();
    }
    let u = block_on(m.usage(&Scope::User(ANONYMOUS.to_owned()))).unwrap();
    assert_eq!(u.reserved_micros, 1000 * 1_250_000);
}

#[test]
fn budget_admits_exactly_what_fits_and_settlement_refunds_exactly() {
    // gpt-4o-mini: 1000 in + 1000 out = 150 + 600 = 750 micro-dollars worst case.
    let (m, _) = manager("monthly_budget = 0.0075");
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(block_on(m.authorize(&usage("gpt-4o-mini", Some("u"), &[], 1000, 1000))).unwrap());
    }
    let r = block_on(m.authorize(&usage("gpt-4o-mini", Some("u"), &[], 1000, 1000)));
    expect!["monthly_budget user:u budget.user:u.monthly_budget"].assert_eq(&outcome(&r));
    let Err(BudgetError::Denied(d)) = r else {
        unreachable!()
    };
    assert_eq!((d.current, d.limit), (7_500, 7_500));
    // Until the month ends in UTC: 2026-12-01T00:00:00Z.
    assert_eq!(d.retry_after.unwrap().as_secs(), 1_796_083_200 - T0 as u64);
    assert!(
        d.message().contains("$0.0075 used of $0.0075"),
        "{}",
        d.message()
    );

    // Settle one at 1000 in / 200 out = 150 + 120 = 270: refund 480.
    let s = block_on(m.settle(ids[0].reservation_id, 1000, 200)).unwrap();
    assert_eq!(
        s,
        Settlement {
            charged_micros: 270,
            released_micros: 480,
            newly_settled: true
        }
    );
    // Settling again returns the first result and charges nothing more.
    let again = block_on(m.settle(ids[0].reservation_id, 5000, 5000)).unwrap();
    assert_eq!(
        again,
        Settlement {
            charged_micros: 270,
            released_micros: 480,
            newly_settled: false
        }
    );
    let u = block_on(m.usage(&"user:u".parse().unwrap())).unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (270, 9 * 750));
    assert_eq!(u.period.to_string(), "2026-11");
    // 480 freed: not enough for 750, enough for a smaller call (200 in + 600 out = 390).
    assert!(block_on(m.authorize(&usage("gpt-4o-mini", Some("u"), &[], 1000, 1000))).is_err());
    block_on(m.authorize(&usage("gpt-4o-mini", Some("u"), &[], 200, 600))).unwrap();
    // Release gives everything back, once.
    assert!(block_on(m.release(ids[1].reservation_id)).unwrap());
    assert!(!block_on(m.release(ids[1].reservation_id)).unwrap());
    assert!(!block_on(m.release(ids[0].reservation_id)).unwrap());
    let u = block_on(m.usage(&Scope::User("u".into()))).unwrap();
    assert_eq!((u.spent_micros, u.reserved_micros), (270, 8 * 750 + 390));
    // Other users have their own budget; global has none.
    block_on(m.authorize(&usage("gpt-4o-mini", Some("v"), &[], 1000, 1000))).unwrap();
}

#[test]
fn every_scope_must_pass_and_denials_name_the_scope() {
    let (m, _) = manager(
        r#"
        [global]
        monthly_budget = 0.003
        [roles.team]
        monthly_budget = 0.0015
        "#,
    );
    let one = || usage("gpt-4o-mini", Some("a"), &["team"], 1000, 1000); // 750 each
    let first = block_on(m.authorize(&one())).unwrap();
    assert_eq!(
        first.limit_ids,
        vec![
            "budget.global.monthly_budget",
            "budget.role:team.monthly_budget"
        ]
    );
    block_on(m.authorize(&one())).unwrap();
    expect!["monthly_budget role:team budget.role:team.monthly_budget"]
        .assert_eq(&outcome(&block_on(m.authorize(&one()))));
    // Another user of the same role shares the role's pool.
    expect!["monthly_budget role:team budget.role:team.monthly_budget"].assert_eq(&outcome(
        &block_on(m.authorize(&usage("gpt-4o-mini", Some("b"), &["team"], 1000, 1000))),
    ));
    block_on(m.authorize(&usage("gpt-4o-mini", Some("b"), &[], 1000, 1000))).unwrap();
    block_on(m.authorize(&usage("gpt-4o-mini", Some("c"), &[], 1000, 1000))).unwrap();
    expect!["monthly_budget global budget.global.monthly_budget"].assert_eq(&outcome(&block_on(
        m.authorize(&usage("gpt-4o-mini", Some("d"), &[], 1, 1)),
    )));
}

#[test]
fn per_request_caps_and_user_overrides() {
    let (m, _) = manager(
        r#"
        max_tokens_per_request = 4000
        max_request_cost = 0.01
        [users.vip]
        max_tokens_per_request = 100000
        "#,
    );
    expect!["max_tokens_per_request user:a budget.user:a.max_tokens_per_request"].assert_eq(
        &outcome(&block_on(m.authorize(&usage(
            "gpt-4o",
            Some("a"),
            &[],
            3000,
            1001,
        )))),
    );
    block_on(m.authorize(&usage("gpt-4o", Some("a"), &[], 3000, 1000))).unwrap_err();
    // 3000 in at 2.50 + 1000 out at 10 = 7500 + 10000 micros > 0.01.
    let r = block_on(m.authorize(&usage("gpt-4o", Some("a"), &[], 3000, 1000)));
    expect!["max_request_cost user:a budget.user:a.max_request_cost"].assert_eq(&outcome(&r));
    block_on(m.authorize(&usage("gpt-4o", Some("a"), &[], 2000, 500))).unwrap();
    // The override raises the token cap but keeps the cost cap from the defaults.
    expect!["max_request_cost user:vip budget.user:vip.max_request_cost"].assert_eq(&outcome(
        &block_on(m.authorize(&usage("gpt-4o", Some("vip"), &[], 50_000, 0))),
    ));
    block_on(m.authorize(&usage("gpt-4o-mini", Some("vip"), &[], 50_000, 0))).unwrap();
}

#[test]
fn soft_limit_raises_one_event_per_scope_per_month() {
    let (m, clock) = manager(
        r#"
        monthly_budget = 0.01
        soft_limit_pct = 0.5
        "#,
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    m.on_soft_limit(move |e| sink.lock().unwrap().push(e.message()));
    let call = || usage("gpt-4o-mini", Some("a"), &[], 1000, 1000); // 750
    let mut warned = Vec::new();
    for _ in 0..13 {
        let a = block_on(m.authorize(&call())).unwrap();
        warned.push(a.warnings.len());
    }
    // 7 * 750 = 5250 >= 5000: the seventh call warns, no other.
    assert_eq!(warned, [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect![[r#"
        [
            "user:a reached the soft limit of $0.005 ($0.00525 used of a $0.01 monthly budget in 2026-11)",
        ]
    "#]]
    .assert_debug_eq(&seen.lock().unwrap());
    // A new month: counters start again, and so does the event.
    clock.set(Timestamp::from_unix_secs(1_796_083_200));
    for _ in 0..7 {
        block_on(m.authorize(&call())).unwrap();
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn unenforced_budget_records_and_allows() {
    let (m, _) = manager(
        r#"
        monthly_budget = 0.001
        enforce_budget = false
        "#,
    );
    let call = || usage("gpt-4o-mini", Some("a"), &[], 1000, 1000); // 750
    assert!(block_on(m.authorize(&call())).unwrap().warnings.is_empty());
    let second = block_on(m.authorize(&call())).unwrap();
    assert_eq!(second.warnings.len(), 1);
    assert_eq!(second.warnings[0].kind, SoftLimitKind::BudgetExceeded);
    assert_eq!(second.warnings[0].limit_id, "budget.user:a.monthly_budget");
    assert!(block_on(m.authorize(&call())).unwrap().warnings.is_empty());
}

#[test]
fn months_follow_the_configured_time_zone() {
    // 2026-11-30T23:30:00Z is already December in Paris (UTC+1).
    let at = Timestamp::from_unix_secs(1_796_081_400);
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    assert_eq!(Period::at(at, &paris).to_string(), "2026-12");
    assert_eq!(
        Period::at(at, &jiff::tz::TimeZone::UTC).to_string(),
        "2026-11"
    );
    let end = Period::at(at, &paris).end(&paris).unwrap();
    assert_eq!(end.to_rfc3339(), "2026-12-31T23:00:00.000000Z");

    let (m, clock) = manager(
        r#"
        monthly_budget = 0.00075
        timezone = "Europe/Paris"
        "#,
    );
    clock.set(Timestamp::from_unix_secs(1_796_079_000)); // 22:50Z, still November in Paris
    let call = || usage("gpt-4o-mini", Some("a"), &[], 1000, 1000);
    block_on(m.authorize(&call())).unwrap();
    let Err(BudgetError::Denied(d)) = block_on(m.authorize(&call())) else {
        panic!("expected a denial")
    };
    assert_eq!(d.retry_after.unwrap().as_secs(), 600);
    clock.set(at);
    block_on(m.authorize(&call())).unwrap();
}

#[test]
fn reservations_expire_through_the_sweeper() {
    let (m, clock) = manager(
        r#"
        monthly_budget = 0.00075
        reservation_ttl_secs = 30
        "#,
    );
    let call = || usage("gpt-4o-mini", Some("a"), &[], 1000, 1000);
    let a = block_on(m.authorize(&call())).unwrap();
    assert_eq!(a.expires_at, Timestamp::from_unix_secs(T0 + 30));
    block_on(m.authorize(&call())).unwrap_err();
    clock.advance_secs(29);
    assert_eq!(block_on(m.sweep()).unwrap(), 0);
    clock.advance_secs(1);
    assert_eq!(block_on(m.sweep()).unwrap(), 1);
    assert!(!block_on(m.release(a.reservation_id)).unwrap());
    block_on(m.authorize(&call())).unwrap();
    // A late settlement of the expired reservation is still charged (truthful spend).
    let s = block_on(m.settle(a.reservation_id, 1000, 0)).unwrap();
    assert_eq!(
        (s.charged_micros, s.released_micros, s.newly_settled),
        (150, 0, true)
    );
    // An hour after closing, reservations are forgotten.
    clock.advance_secs(3600 + 1);
    block_on(m.sweep()).unwrap();
    assert!(matches!(
        block_on(m.settle(a.reservation_id, 1, 1)),
        Err(BudgetError::UnknownReservation(_))
    ));
}

#[test]
fn rpm_and_tpm_slide_and_say_when_to_retry() {
    let (m, clock) = manager(
        r#"
        rpm_limit = 2
        tpm_limit = 1000
        "#,
    );
    let call = |t| usage("gpt-4o-mini", Some("a"), &[], t, 0);
    block_on(m.authorize(&call(100))).unwrap();
    clock.advance_secs(10);
    block_on(m.authorize(&call(100))).unwrap();
    let Err(BudgetError::Denied(d)) = block_on(m.authorize(&call(100))) else {
        panic!("expected rpm")
    };
    assert_eq!((d.reason, d.current, d.limit), (DenialReason::Rpm, 2, 2));
    assert_eq!(d.limit_id, "budget.user:a.rpm");
    assert_eq!(d.retry_after.unwrap().as_secs(), 50);
    clock.advance_secs(50);
    let a = block_on(m.authorize(&call(800))).unwrap();
    let Err(BudgetError::Denied(d)) = block_on(m.authorize(&call(1))) else {
        panic!("expected rpm")
    };
    assert_eq!(d.reason, DenialReason::Rpm);
    clock.advance_secs(10);
    // Window: 800 (t=60). Settling at 300 tokens frees 500 of the TPM window.
    let Err(BudgetError::Denied(d)) = block_on(m.authorize(&call(300))) else {
        panic!("expected tpm")
    };
    assert_eq!(
        (d.reason, d.current, d.limit),
        (DenialReason::Tpm, 800, 1000)
    );
    assert_eq!(d.retry_after.unwrap().as_secs(), 50);
    block_on(m.settle(a.reservation_id, 300, 0)).unwrap();
    block_on(m.authorize(&call(300))).unwrap();
    // A call larger than the TPM limit can never pass: no retry_after.
    clock.advance_secs(120);
    let Err(BudgetError::Denied(d)) = block_on(m.authorize(&call(1001))) else {
        panic!("expected tpm")
    };
    assert_eq!((d.reason, d.retry_after), (DenialReason::Tpm, None));
    let u = block_on(m.usage(&Scope::User("a".into()))).unwrap();
    assert_eq!((u.requests_last_minute, u.tokens_last_minute), (0, 0));
}

#[test]
fn reload_swaps_limits_and_keeps_counters() {
    let (m, _) = manager("monthly_budget = 0.0015");
    let call = || usage("gpt-4o-mini", Some("a"), &[], 1000, 1000);
    block_on(m.authorize(&call())).unwrap();
    block_on(m.authorize(&call())).unwrap();
    block_on(m.authorize(&call())).unwrap_err();
    let mut bad = m.config();
    bad.timezone = "Nowhere/Atlantis".into();
    let err = m.reload(bad).unwrap_err();
    assert!(err.to_string().contains("budget.timezone"), "{err}");
    assert_eq!(m.config().monthly_budget, Some(Dollars(1_500)));
    let mut more = m.config();
    more.monthly_budget = Some(Dollars(2_250));
    m.reload(more).unwrap();
    // Counters kept: exactly one more call fits.
    block_on(m.authorize(&call())).unwrap();
    block_on(m.authorize(&call())).unwrap_err();
}

#[test]
fn disabled_admits_everything_without_accounting() {
    let (m, _) = manager(
        r#"
        enabled = false
        restricted_models = ["*"]
        monthly_budget = 0
        "#,
    );
    let a = block_on(m.authorize(&usage("anything", None, &[], 1, 1))).unwrap();
    assert_eq!(a.reserved_micros, 0);
    assert!(
        !block_on(m.settle(a.reservation_id, 1, 1))
            .unwrap()
            .newly_settled
    );
}

#[test]
fn malformed_usage_is_an_error_not_an_admission() {
    let (m, _) = manager("");
    for u in [
        usage("", None, &[], 1, 1),
        usage("gpt-4o\n", None, &[], 1, 1),
        usage("gpt-4o", Some("a\u{0}"), &[], 1, 1),
        usage("gpt-4o", None, &[""], 1, 1),
    ] {
        assert!(
            matches!(
                block_on(m.authorize(&u)),
                Err(BudgetError::InvalidRequest(_))
            ),
            "{u:?}"
        );
    }
    for key in ["", "k\n", &"k".repeat(257)] {
        let r = block_on(m.authorize_for(&usage("gpt-4o", None, &[], 1, 1), Some(key)));
        assert!(matches!(r, Err(BudgetError::InvalidRequest(_))), "{key:?}");
    }
    assert!(matches!(
        "team:x".parse::<Scope>(),
        Err(BudgetError::InvalidScope(_))
    ));
    assert_eq!("role:x".parse::<Scope>().unwrap(), Scope::Role("x".into()));
}

#[test]
fn scopes_parse_and_print_the_same_text() {
    for (text, scope) in [
        ("global", Scope::Global),
        ("user:alice", Scope::User("alice".into())),
        ("role:team", Scope::Role("team".into())),
        ("key:frontend", Scope::Key("frontend".into())),
        ("key:a:b", Scope::Key("a:b".into())),
    ] {
        assert_eq!(text.parse::<Scope>().unwrap(), scope, "{text}");
        assert_eq!(scope.to_string(), text);
    }
    for bad in ["key:", "key", "keys:x", ""] {
        assert!(
            matches!(bad.parse::<Scope>(), Err(BudgetError::InvalidScope(_))),
            "{bad}"
        );
    }
    expect![[r#"unknown scope "key:"; write global, user:<id>, role:<name> or key:<name>"#]]
        .assert_eq(&"key:".parse::<Scope>().unwrap_err().to_string());
}

#[test]
fn a_key_is_counted_whatever_user_it_claims() {
    let (m, _) = manager("rpm_limit = 2");
    // Each call invents a new user: the user scopes never fill, the key scope does.
    let invented = |n: usize| usage("gpt-4o-mini", Some(&format!("u{n}")), &[], 10, 10);
    let first = block_on(m.authorize_for(&invented(1), Some("frontend"))).unwrap();
    assert_eq!(
        first.limit_ids,
        vec!["budget.user:u1.rpm", "budget.key:frontend.rpm"]
    );
    block_on(m.authorize_for(&invented(2), Some("frontend"))).unwrap();
    let r = block_on(m.authorize_for(&invented(3), Some("frontend")));
    expect!["rpm key:frontend budget.key:frontend.rpm"].assert_eq(&outcome(&r));
    let Err(BudgetError::Denied(d)) = r else {
        panic!("expected a denial")
    };
    assert_eq!((d.current, d.limit), (2, 2));
    expect!["key:frontend made 2 of 2 requests allowed per minute; retry in 60s"]
        .assert_eq(&d.message());
    // Another key is counted on its own.
    block_on(m.authorize_for(&invented(4), Some("batch"))).unwrap();
    block_on(m.authorize_for(&invented(5), Some("batch"))).unwrap();
    expect!["rpm key:batch budget.key:batch.rpm"].assert_eq(&outcome(&block_on(
        m.authorize_for(&invented(6), Some("batch")),
    )));
    // Without a key only the claimed user counts, as before.
    for n in 7..20 {
        block_on(m.authorize(&invented(n))).unwrap();
    }
    block_on(m.authorize_for(&invented(20), None)).unwrap();
    // The user scope still binds first when the same user repeats through a key.
    block_on(m.authorize(&invented(21))).unwrap();
    block_on(m.authorize(&invented(21))).unwrap();
    expect!["rpm user:u21 budget.user:u21.rpm"].assert_eq(&outcome(&block_on(
        m.authorize_for(&invented(21), Some("other")),
    )));
    for (key, requests) in [("frontend", 2), ("batch", 2), ("other", 0), ("none", 0)] {
        let u = block_on(m.usage(&Scope::Key(key.into()))).unwrap();
        assert_eq!(u.requests_last_minute, requests, "{key}");
    }
}

#[test]
fn keys_take_the_per_user_limits_unless_overridden() {
    let (m, _) = manager(
        r#"
        monthly_budget = 0.0015
        rpm_limit = 2
        restricted_models = ["o1-*"]
        [model_denylist]
        frontend = ["gpt-4o"]
        [keys.frontend]
        rpm_limit = 3
        "#,
    );
    let invented = |n: usize| usage("gpt-4o-mini", Some(&format!("u{n}")), &[], 1, 1);
    for n in 0..3 {
        block_on(m.authorize_for(&invented(n), Some("frontend"))).unwrap();
    }
    expect!["rpm key:frontend budget.key:frontend.rpm"].assert_eq(&outcome(&block_on(
        m.authorize_for(&invented(3), Some("frontend")),
    )));
    // Model lists are keyed by user id or role, never by key: `frontend` there is a user.
    let r = block_on(m.authorize_for(&usage("gpt-4o", Some("u9"), &[], 1, 1), Some("frontend")));
    expect!["rpm key:frontend budget.key:frontend.rpm"].assert_eq(&outcome(&r));
    let r = block_on(m.authorize_for(&usage("gpt-4o", Some("frontend"), &[], 1, 1), Some("x")));
    expect!["model_denied user:frontend budget.user:frontend.model_denylist"]
        .assert_eq(&outcome(&r));
    // The monthly budget of the key is the per-user one: 1000 + 1000 tokens cost 750.
    let big = |n: usize| usage("gpt-4o-mini", Some(&format!("b{n}")), &[], 1000, 1000);
    block_on(m.authorize_for(&big(1), Some("spender"))).unwrap();
    block_on(m.authorize_for(&big(2), Some("spender"))).unwrap();
    expect!["monthly_budget key:spender budget.key:spender.monthly_budget"].assert_eq(&outcome(
        &block_on(m.authorize_for(&big(3), Some("spender"))),
    ));
    let limits = m.effective_limits_for(Some("u1"), &["team".to_owned()], Some("frontend"));
    let scopes: Vec<String> = limits.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(scopes, ["global", "user:u1", "key:frontend", "role:team"]);
    assert_eq!(limits[2].1.rpm_limit, Some(3));
    assert_eq!(limits[2].1.monthly_budget, Some(Dollars(1_500)));
    assert_eq!(
        m.effective_limits_for(None, &[], Some("batch"))[2]
            .1
            .rpm_limit,
        Some(2)
    );
    assert_eq!(
        m.effective_limits(None, &[]),
        m.effective_limits_for(None, &[], None)
    );
}

mod windows {
    //! Property: under any interleaving of calls, time steps, settlements and releases,
    //! the memory store admits exactly what a naive reference admits, and no 60-second
    //! window ever holds more than the RPM or TPM limit.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Call(u64),
        Advance(i64),
        Settle(usize, u64),
        Release(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..400).prop_map(Op::Call),
            3 => (0i64..30_000_000).prop_map(Op::Advance),
            1 => (0usize..64, 0u64..400).prop_map(|(i, t)| Op::Settle(i, t)),
            1 => (0usize..64).prop_map(Op::Release),
        ]
    }

    struct Admitted {
        id: lexecon_core::ReservationId,
        at: i64,
        tokens: u64,
        open: bool,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn windows_hold_exactly(rpm in 1u64..8, tpm in 200u64..1500, ops in prop::collection::vec(op(), 1..120)) {
            let (m, clock) = manager(&format!("[global]\nrpm_limit = {rpm}\ntpm_limit = {tpm}\n"));
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut admitted: Vec<Admitted> = Vec::new();
            for op in ops {
                match op {
                    Op::Advance(us) => clock.advance_micros(us),
                    Op::Call(tokens) => {
                        let now = clock.now().unix_micros();
                        let live: Vec<&Admitted> = admitted
                            .iter()
                            .filter(|a| a.at > now - 60_000_000)
                            .collect();
                        let sum: u64 = live.iter().map(|a| a.tokens).sum();
                        let expect_ok = (live.len() as u64) < rpm && sum + tokens <= tpm;
                        let r = rt.block_on(m.authorize(&usage("gpt-4o-mini", None, &[], tokens, 0)));
                        prop_assert_eq!(r.is_ok(), expect_ok, "{:?}", r);
                        if let Ok(a) = r {
                            admitted.push(Admitted { id: a.reservation_id, at: now, tokens, open: true });
                        }
                    }
                    Op::Settle(i, tokens) => {
                        if let Some(a) = admitted.get_mut(i) {
                            let s = rt.block_on(m.settle(a.id, tokens, 0)).unwrap();
                            if s.newly_settled { a.tokens = tokens; }
                            a.open = false;
                        }
                    }
                    Op::Release(i) => {
                        if let Some(a) = admitted.get_mut(i) {
                            let released = rt.block_on(m.release(a.id)).unwrap();
                            prop_assert_eq!(released, a.open);
                            if released { a.tokens = 0; }
                            a.open = false;
                        }
                    }
                }
            }
            // No window (t - 60s, t] ending at an admission holds more than the limits.
            for end in &admitted {
                let in_window = admitted.iter().filter(|a| a.at > end.at - 60_000_000 && a.at <= end.at);
                prop_assert!(in_window.clone().count() as u64 <= rpm);
            }
        }
    }
}

#[test]
fn the_examples_in_docs_parse_and_mean_what_the_docs_say() {
    let doc = include_str!("../../../docs/budget.md");
    let blocks: Vec<&str> = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 3);
    let configs: Vec<BudgetConfig> = blocks
        .iter()
        .map(|b| BudgetConfig::from_toml(b).unwrap())
        .collect();
    let (m, _) = manager(blocks[0]);
    let check = |model: &str, user: &str, roles: &[&str], expect: Expect| {
        let r = block_on(m.authorize(&usage(model, Some(user), roles, 10, 10)));
        expect.assert_eq(&outcome(&r));
    };
    check("gpt-4o", "alice", &[], expect!["allowed"]);
    check(
        "claude-opus-4",
        "alice",
        &["contractors"],
        expect!["model_denied role:contractors budget.role:contractors.model_denylist"],
    );
    check(
        "gpt-4o",
        "bob",
        &["interns"],
        expect!["model_not_allowed role:interns budget.role:interns.model_allowlist"],
    );
    check(
        "o1-mini",
        "alice",
        &[],
        expect!["model_restricted global budget.restricted_models"],
    );
    assert_eq!(
        configs[0].users["ci-bot"].monthly_budget,
        Some(Dollars(200_000_000))
    );
    assert_eq!(configs[0].keys["chat-frontend"].rpm_limit, Some(3000));
    // The key keeps the per-user cost cap it does not override.
    let key_limits = m.effective_limits_for(Some("u"), &[], Some("chat-frontend"));
    assert_eq!(
        key_limits[2],
        (
            Scope::Key("chat-frontend".into()),
            Limits {
                monthly_budget: Some(Dollars(1_500_000_000)),
                soft_limit_pct: Some(Fraction(800_000)),
                max_request_cost: Some(Dollars(500_000)),
                rpm_limit: Some(3000),
                tpm_limit: Some(5_000_000),
                max_tokens_per_request: Some(32_000),
            }
        )
    );
    assert_eq!(configs[1].effective_pricing().len(), 1);
    assert!(!configs[2].enforce_budget);
    // The catalog table lists every built-in entry.
    for name in builtin_prices().keys() {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "{name} is not in docs/budget.md"
        );
    }
}

mod accounting {
    //! Property: under any interleaving of calls, settlements, releases, clock steps and
    //! sweeps, the memory store admits exactly what a naive reference admits, its counters
    //! equal the reference's, and spend plus reservations never pass the budget.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Call(u64, u64),
        Settle(usize, u64, u64),
        Release(usize),
        Advance(i64),
        Sweep,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u64..4000, 0u64..4000).prop_map(|(i, o)| Op::Call(i, o)),
            3 => (0usize..48, 0u64..=100, 0u64..=100).prop_map(|(r, a, b)| Op::Settle(r, a, b)),
            1 => (0usize..48).prop_map(Op::Release),
            2 => (0i64..900).prop_map(Op::Advance),
            1 => Just(Op::Sweep),
        ]
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum State {
        Open,
        Settled(u64, u64),
        Closed,
    }

    struct Res {
        id: lexecon_core::ReservationId,
        input: u64,
        output: u64,
        cost: u64,
        expires: i64,
        state: State,
        closed_at: Option<i64>,
        forgotten: bool,
    }

    fn cost(input: u64, output: u64) -> u64 {
        (input * 150_000 + output * 600_000).div_ceil(1_000_000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn accounting_matches_a_reference(budget in 0u64..20_000, ops in prop::collection::vec(op(), 1..150)) {
            let (m, clock) = manager(&format!(
                "reservation_ttl_secs = 300\n[global]\nmonthly_budget = \"{}\"\n",
                format_micros(budget)
            ));
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut res: Vec<Res> = Vec::new();
            let (mut spent, mut reserved) = (0u64, 0u64);
            // A settlement after expiry charges what was used although its reservation
            // was given back: the one documented way past a budget.
            let mut late = false;
            for op in ops {
                let now = clock.now().unix_micros();
                match op {
                    Op::Call(input, output) => {
                        let c = cost(input, output);
                        let r = rt.block_on(m.authorize(&usage("gpt-4o-mini", None, &[], input, output)));
                        prop_assert_eq!(r.is_ok(), spent + reserved + c <= budget, "{:?}", r);
                        if let Ok(a) = r {
                            prop_assert_eq!(a.reserved_micros, c);
                            reserved += c;
                            res.push(Res { id: a.reservation_id, input, output, cost: c, expires: now + 300_000_000, state: State::Open, closed_at: None, forgotten: false });
                        }
                    }
                    Op::Settle(i, a, b) => {
                        let Some(r) = res.get_mut(i) else { continue };
                        // Actual usage at most the reservation: a share of each part.
                        let (ai, ao) = (r.input * a / 100, r.output * b / 100);
                        let got = rt.block_on(m.settle(r.id, ai, ao));
                        if r.forgotten {
                            prop_assert!(matches!(got, Err(BudgetError::UnknownReservation(_))));
                            continue;
                        }
                        let got = got.unwrap();
                        let charged = cost(ai, ao);
                        match r.state {
                            State::Settled(c, rel) => {
                                prop_assert_eq!((got.charged_micros, got.released_micros, got.newly_settled), (c, rel, false));
                            }
                            State::Open => {
                                prop_assert_eq!((got.charged_micros, got.released_micros, got.newly_settled), (charged, r.cost - charged, true));
                                spent += charged;
                                reserved -= r.cost;
                                r.state = State::Settled(charged, r.cost - charged);
                                r.closed_at = Some(now);
                            }
                            State::Closed => {
                                prop_assert_eq!((got.charged_micros, got.released_micros, got.newly_settled), (charged, 0, true));
                                spent += charged;
                                late |= charged > 0;
                                r.state = State::Settled(charged, 0);
                            }
                        }
                    }
                    Op::Release(i) => {
                        let Some(r) = res.get_mut(i) else { continue };
                        let got = rt.block_on(m.release(r.id));
                        if r.forgotten {
                            prop_assert!(got.is_err());
                            continue;
                        }
                        prop_assert_eq!(got.unwrap(), r.state == State::Open);
                        if r.state == State::Open {
                            reserved -= r.cost;
                            r.state = State::Closed;
                            r.closed_at = Some(now);
                        }
                    }
                    Op::Advance(secs) => clock.advance_secs(secs),
                    Op::Sweep => {
                        let n = rt.block_on(m.sweep()).unwrap();
                        let mut expected = 0;
                        for r in res.iter_mut() {
                            if r.state == State::Open && r.expires <= now {
                                reserved -= r.cost;
                                r.state = State::Closed;
                                r.closed_at = Some(now);
                                expected += 1;
                            }
                        }
                        prop_assert_eq!(n, expected);
                        for r in res.iter_mut() {
                            if r.closed_at.is_some_and(|c| c < now - 3_600_000_000) {
                                r.forgotten = true;
                            }
                        }
                    }
                }
                let u = rt.block_on(m.usage(&Scope::Global)).unwrap();
                prop_assert_eq!((u.spent_micros, u.reserved_micros), (spent, reserved));
                prop_assert!(late || spent + reserved <= budget);
            }
        }
    }
}

#[test]
#[expect(
    clippy::result_large_err,
    reason = "figment's Jail fixes the closure's error type"
)]
fn environment_variables_configure_the_budget_like_the_engine_reads_them() {
    // The engine layers defaults < lexecon.toml < LEXECON_<SECTION>__<KEY> with figment.
    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    struct Root {
        #[serde(default)]
        budget: BudgetConfig,
    }
    use figment::providers::{Env, Format, Serialized, Toml};
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "lexecon.toml",
            "[budget]\nmonthly_budget = 5\nrpm_limit = 10\n",
        )?;
        jail.set_env("LEXECON_BUDGET__MONTHLY_BUDGET", "12.5");
        jail.set_env("LEXECON_BUDGET__SOFT_LIMIT_PCT", "0.8");
        jail.set_env("LEXECON_BUDGET__RESTRICTED_MODELS", "[gpt-4-32k, o1-*]");
        let root: Root = figment::Figment::from(Serialized::defaults(Root::default()))
            .merge(Toml::file("lexecon.toml"))
            .merge(Env::prefixed("LEXECON_").split("__"))
            .extract()?;
        let b = root.budget;
        assert_eq!(b.monthly_budget, Some(Dollars(12_500_000)));
        assert_eq!(b.soft_limit_pct, Some(Fraction(800_000)));
        assert_eq!(b.rpm_limit, Some(10));
        assert_eq!(b.restricted_models, ["gpt-4-32k", "o1-*"]);
        b.validate().unwrap();
        Ok(())
    });
}

#[test]
fn check_for_checks_like_authorize_for_and_reserves_nothing() {
    // 750 micro-dollars per call against a 0.0015 budget: two calls fit.
    let (m, _) = manager(
        r#"
        monthly_budget = 0.0015
        max_tokens_per_request = 4000
        "#,
    );
    let call = || usage("gpt-4o-mini", Some("u"), &[], 1000, 1000);
    let user = Scope::User("u".into());
    for _ in 0..5 {
        block_on(m.check_for(&call(), Some("bot"))).unwrap();
    }
    let u = block_on(m.usage(&user)).unwrap();
    assert_eq!(
        (u.spent_micros, u.reserved_micros),
        (0, 0),
        "a check reserved"
    );
    // Per-request caps and model access refuse as authorize_for does.
    let big = usage("gpt-4o-mini", Some("u"), &[], 4000, 1);
    let Err(BudgetError::Denied(d)) = block_on(m.check_for(&big, None)) else {
        panic!("a request over the cap was admitted")
    };
    assert_eq!(d.limit_id, "budget.user:u.max_tokens_per_request");
    assert!(block_on(m.check_for(&usage("no-such-model", Some("u"), &[], 1, 1), None)).is_err());
    // Current spend and open reservations count: after two reservations the check refuses.
    block_on(m.authorize_for(&call(), Some("bot"))).unwrap();
    block_on(m.check_for(&call(), Some("bot"))).unwrap();
    block_on(m.authorize_for(&call(), Some("bot"))).unwrap();
    let r = block_on(m.check_for(&call(), Some("bot")));
    let Err(BudgetError::Denied(d)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(d.reason, DenialReason::MonthlyBudget);
    assert_eq!((d.current, d.limit), (1_500, 1_500));
    // Disabled budgets admit every check.
    let (off, _) = manager("enabled = false");
    block_on(off.check_for(&usage("no-such-model", None, &[], 1, 1), None)).unwrap();
}
