//! `lexecon policy check|test|explain|hash`: work with policy files, no server needed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use lexecon_core::{ActionRequest, Outcome};
use lexecon_policy::{CompiledPolicy, Diagnostic, Policy, RiskInput, parse_cases, run_cases};
use serde_json::json;

use super::action::{ActionArgs, ModeArg};
use crate::Verdict;

/// `lexecon policy ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Parse and validate a policy file, listing every problem with its location.
    ///
    /// Exit 0 when the policy is valid (warnings allowed), 1 when it has errors, 2 when
    /// the file cannot be read.
    ///
    /// Example: `lexecon policy check .lexecon/policy.toml`
    Check {
        /// The policy file (TOML).
        file: PathBuf,
        /// Print {"valid", "diagnostics", "policy_hash"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run policy test cases against a policy.
    ///
    /// The cases file holds [[case]] tables: a request (actor, action, and optionally
    /// tool, data_classes, risk_level, mode, context, risk_score), the expected outcome
    /// (expect = "approved" | "denied" | "escalated") and optionally the exact reasons.
    /// Prints `ok NAME` or `FAILED NAME: expected ..., got ...` per case and a final
    /// `N passed, M failed`. Exit 0 when every case passes, 1 when any fails.
    ///
    /// Example:
    /// `lexecon policy test examples/policies/customer-support.toml examples/policies/customer-support.cases.toml`
    Test {
        /// The policy file (TOML).
        policy: PathBuf,
        /// The test cases file (TOML, [[case]] tables).
        cases: PathBuf,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate one request against a policy file and explain the outcome.
    ///
    /// Prints the outcome, the effective mode, the deciding reasons, the terms the
    /// request matched (after implies), and for each relation considered whether it
    /// applied and why. Exit 0 when approved, 1 when denied or escalated.
    ///
    /// Example:
    /// `lexecon policy explain policy.toml --actor ai_agent:customer_service
    /// --action read:customer_data --tool database_query --data-class pii --context region=eu-west`
    Explain(ExplainArgs),
    /// Print the policy version hash (SHA-256 of the canonical policy), lowercase hex.
    ///
    /// Comments, key order and the order of terms and relations do not change it.
    ///
    /// Example: `lexecon policy hash policy.toml`
    Hash {
        /// The policy file (TOML).
        file: PathBuf,
        /// Print {"policy_hash"} as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The request `lexecon policy explain` evaluates.
#[derive(Debug, Clone, clap::Args)]
#[command(mut_arg("actor", |actor| actor.required(true)))]
pub(crate) struct ExplainArgs {
    /// The policy file (TOML).
    pub file: PathBuf,
    #[command(flatten)]
    pub action: ActionArgs,
    #[command(flatten)]
    pub mode: ModeArg,
    /// A risk score 0-100 (as `lexecon risk assess` computes), for paranoid escalation.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub risk_score: Option<u8>,
    /// The risk score at which paranoid mode escalates.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub escalation_threshold: u8,
    /// Print {"outcome", "mode", "reasons", "matched_terms", "trace", "reasoning",
    /// "policy_hash"} as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `policy` subcommand, printing to stdout.
pub(crate) fn run(cmd: &PolicyCommand) -> Result<Verdict> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(cmd, &mut out)
}

/// Runs a `policy` subcommand, printing its result to `out`.
pub(crate) fn run_to(cmd: &PolicyCommand, out: &mut dyn Write) -> Result<Verdict> {
    match cmd {
        PolicyCommand::Check { file, json } => check(file, *json, out),
        PolicyCommand::Test {
            policy,
            cases,
            json,
        } => test(policy, cases, *json, out),
        PolicyCommand::Explain(args) => explain(args, out),
        PolicyCommand::Hash { file, json } => {
            let policy = load(file)?;
            if *json {
                writeln!(out, "{}", json!({ "policy_hash": policy.hash_hex() }))?;
            } else {
                writeln!(out, "{}", policy.hash_hex())?;
            }
            Ok(Verdict::Yes)
        }
    }
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// Reads and compiles a policy; an invalid one is an error (its diagnostics go to stderr).
fn load(path: &Path) -> Result<CompiledPolicy> {
    let source = read(path, "policy file")?;
    match Policy::parse(&source, &path.display().to_string()) {
        Ok((policy, warnings)) => {
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(CompiledPolicy::new(&policy))
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            bail!(
                "policy {} is invalid ({errors} error{}); fix it, then check it with `lexecon policy check {}`",
                path.display(),
                if errors == 1 { "" } else { "s" },
                path.display()
            )
        }
    }
}

fn check(file: &Path, json: bool, out: &mut dyn Write) -> Result<Verdict> {
    let source = read(file, "policy file")?;
    let origin = file.display().to_string();
    let (diags, compiled): (Vec<Diagnostic>, Option<CompiledPolicy>) =
        match Policy::parse(&source, &origin) {
            Ok((policy, warnings)) => (warnings, Some(CompiledPolicy::new(&policy))),
            Err(diags) => (diags, None),
        };
    if json {
        let value = json!({
            "valid": compiled.is_some(),
            "diagnostics": diags,
            "policy_hash": compiled.as_ref().map(CompiledPolicy::hash_hex),
        });
        writeln!(out, "{value}")?;
    } else {
        for d in &diags {
            writeln!(out, "{d}")?;
        }
        let warnings = diags.iter().filter(|d| !d.is_error()).count();
        match &compiled {
            Some(p) => writeln!(
                out,
                "{origin}: valid: policy {} {} ({} mode), {} terms, {} relations, {warnings} warning{}, hash {}",
                p.name(),
                p.version(),
                p.mode(),
                p.term_count(),
                p.relation_count(),
                if warnings == 1 { "" } else { "s" },
                p.hash_hex()
            )?,
            None => {
                let errors = diags.len() - warnings;
                writeln!(
                    out,
                    "{origin}: invalid: {errors} error{}, {warnings} warning{}",
                    if errors == 1 { "" } else { "s" },
                    if warnings == 1 { "" } else { "s" }
                )?;
            }
        }
    }
    Ok(if compiled.is_some() {
        Verdict::Yes
    } else {
        Verdict::No
    })
}

fn test(policy: &Path, cases: &Path, json: bool, out: &mut dyn Write) -> Result<Verdict> {
    let compiled = load(policy)?;
    let source = read(cases, "test cases file")?;
    let cases = match parse_cases(&source, &cases.display().to_string()) {
        Ok(cases) => cases,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            bail!(
                "test cases file {} is invalid ({} error{}); fix the cases named above",
                cases.display(),
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
        }
    };
    let report = run_cases(&compiled, &cases);
    if json {
        let results: Vec<_> = report
            .results
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "passed": r.passed,
                    "expected": r.expected,
                    "expected_reasons": r.expected_reasons,
                    "outcome": r.actual.outcome,
                    "reasons": r.actual.reasons,
                })
            })
            .collect();
        let value = json!({
            "passed": report.passed(),
            "failed": report.failed(),
            "cases": results,
            "policy_hash": compiled.hash_hex(),
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{report}")?;
    }
    Ok(if report.all_passed() {
        Verdict::Yes
    } else {
        Verdict::No
    })
}

fn build_request(args: &ExplainArgs) -> Result<ActionRequest> {
    let mut input = args.action.input();
    input.mode = args.mode.mode;
    Ok(input.validate()?)
}

fn explain(args: &ExplainArgs, out: &mut dyn Write) -> Result<Verdict> {
    let policy = load(&args.file)?;
    let req = build_request(args)?;
    let eval = policy.evaluate(
        &req,
        RiskInput {
            score: args.risk_score,
            escalation_threshold: args.escalation_threshold,
        },
    );
    if args.json {
        let mut value = serde_json::to_value(&eval)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("policy_hash".to_owned(), json!(policy.hash_hex()));
        }
        writeln!(out, "{value}")?;
    } else {
        let list = |items: &[String]| {
            if items.is_empty() {
                "(none)".to_owned()
            } else {
                items.join(", ")
            }
        };
        writeln!(out, "outcome:       {}", eval.outcome)?;
        writeln!(out, "mode:          {}", eval.mode)?;
        writeln!(out, "reasons:       {}", list(&eval.reasons))?;
        writeln!(out, "matched terms: {}", list(&eval.matched_terms))?;
        writeln!(
            out,
            "policy:        {} {} ({})",
            policy.name(),
            policy.version(),
            policy.hash_hex()
        )?;
        if eval.trace.is_empty() {
            writeln!(
                out,
                "trace:         no relation is indexed under a matched term"
            )?;
        } else {
            writeln!(out, "trace:")?;
            for t in &eval.trace {
                writeln!(
                    out,
                    "  {} {} ({}): {}",
                    if t.applied {
                        "applied    "
                    } else {
                        "not applied"
                    },
                    t.relation_id,
                    t.kind,
                    t.why
                )?;
            }
        }
        writeln!(out, "{}", eval.reasoning)?;
    }
    Ok(if eval.outcome == Outcome::Approved {
        Verdict::Yes
    } else {
        Verdict::No
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run_args(args: &[&str]) -> (Result<Verdict>, String) {
        let mut argv = vec!["lexecon", "policy"];
        argv.extend_from_slice(args);
        let cli = crate::Cli::try_parse_from(argv).unwrap();
        let crate::args::Command::Policy(cmd) = cli.command else {
            panic!("not a policy command");
        };
        let mut out = Vec::new();
        let verdict = run_to(&cmd, &mut out);
        (verdict, String::from_utf8(out).unwrap())
    }

    /// A fresh directory for one test's files (std only, so this module needs no
    /// extra dev-dependency).
    fn temp_dir(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lexecon-policy-cli-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn example(name: &str) -> String {
        format!(
            "{}/../../examples/policies/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn policy_check_valid_invalid_and_unreadable() {
        let (v, out) = run_args(&["check", &example("customer-support.toml")]);
        assert_eq!(v.unwrap(), Verdict::Yes, "{out}");
        assert!(
            out.contains(": valid: policy customer-support 1.2.0 (strict mode)"),
            "{out}"
        );

        let dir = temp_dir("check");
        let bad = dir.join("bad.toml");
        std::fs::write(
            &bad,
            "[policy]\nname = \"p\"\nversion = \"1\"\nmode = \"strict\"\n[[relations]]\nid = \"r\"\nkind = \"permits\"\nfrom = \"a\"\nto = \"b\"\n",
        )
        .unwrap();
        let (v, out) = run_args(&["check", bad.to_str().unwrap()]);
        assert_eq!(v.unwrap(), Verdict::No);
        assert!(
            out.contains("bad.toml:8:8: error: relation \"r\": `from` names unknown term \"a\""),
            "{out}"
        );
        assert!(out.contains("invalid: 2 errors, 0 warnings"), "{out}");
        let (v, out) = run_args(&["check", "--json", bad.to_str().unwrap()]);
        assert_eq!(v.unwrap(), Verdict::No);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["valid"], false);
        assert_eq!(value["diagnostics"][0]["line"], 8);

        let (v, _) = run_args(&["check", dir.join("missing.toml").to_str().unwrap()]);
        assert!(
            v.unwrap_err()
                .to_string()
                .starts_with("cannot read policy file")
        );
    }

    #[test]
    fn policy_test_passes_the_example_and_fails_a_wrong_case() {
        let (v, out) = run_args(&[
            "test",
            &example("customer-support.toml"),
            &example("customer-support.cases.toml"),
        ]);
        assert_eq!(v.unwrap(), Verdict::Yes, "{out}");
        assert!(out.trim_end().ends_with(" passed, 0 failed"), "{out}");

        let dir = temp_dir("test");
        let cases = dir.join("cases.toml");
        std::fs::write(
            &cases,
            "[[case]]\nname = \"wrong\"\nactor = \"ai_agent:x\"\naction = \"delete:customer_x\"\ntool = \"t\"\nexpect = \"approved\"\n",
        )
        .unwrap();
        let (v, out) = run_args(&[
            "test",
            &example("customer-support.toml"),
            cases.to_str().unwrap(),
        ]);
        assert_eq!(v.unwrap(), Verdict::No);
        assert_eq!(
            out,
            "FAILED wrong: expected approved, got denied [nobody-deletes]\n0 passed, 1 failed\n"
        );
    }

    #[test]
    fn policy_explain_human_and_json() {
        let file = example("customer-support.toml");
        let (v, out) = run_args(&[
            "explain",
            &file,
            "--actor",
            "ai_agent:customer_service",
            "--action",
            "read:customer_data",
            "--tool",
            "database_query",
            "--data-class",
            "pii",
            "--context",
            "region=eu-west",
        ]);
        assert_eq!(v.unwrap(), Verdict::Yes, "{out}");
        assert!(
            out.starts_with(
                "outcome:       approved\nmode:          strict\nreasons:       support-may-read\n"
            ),
            "{out}"
        );
        assert!(out.contains("applied     support-may-read (permits): request matches support_agents and read_customer"), "{out}");

        let (v, out) = run_args(&[
            "explain",
            &file,
            "--actor",
            "ai_agent:customer_service",
            "--action",
            "delete:customer_records",
            "--mode",
            "paranoid",
            "--json",
        ]);
        assert_eq!(v.unwrap(), Verdict::No);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["outcome"], "denied");
        assert_eq!(value["mode"], "paranoid");
        assert_eq!(
            value["reasons"],
            json!(["nobody-deletes", "paranoid-no-tool"])
        );
        assert_eq!(
            value["matched_terms"],
            json!([
                "agents",
                "delete_records",
                "support_agents",
                "write_records"
            ])
        );
        assert_eq!(value["policy_hash"].as_str().map(str::len), Some(64));
    }

    #[test]
    fn policy_hash_is_stable_hex() {
        let (v, out) = run_args(&["hash", &example("customer-support.toml")]);
        assert_eq!(v.unwrap(), Verdict::Yes);
        let hash = out.trim();
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let (_, json_out) = run_args(&["hash", "--json", &example("customer-support.toml")]);
        let value: serde_json::Value = serde_json::from_str(&json_out).unwrap();
        assert_eq!(value["policy_hash"], hash);
    }
}
