//! `lexecon risk assess`: score a proposed action in six dimensions, without a server.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use lexecon_core::ActionRequest;
use lexecon_risk::{Assessment, RiskScorer};

use super::service::LocalArgs;
use crate::Verdict;

/// `lexecon risk ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RiskCommand {
    /// Score a proposed action in six dimensions and show the factors behind each.
    ///
    /// Prints the overall score (0-100), its level (low < 30 <= medium < 60 <= high < 80
    /// <= critical), whether it reaches the escalation threshold, and for each dimension
    /// (security, privacy, compliance, operational, reputational, financial) its score and
    /// every rule that added points. The rules and weights are the `[risk]` table of the
    /// configuration (docs/risk.md lists the defaults). Exit 0 once scored, 2 on bad
    /// input.
    #[command(after_long_help = "\
Examples:
  lexecon risk assess --action delete:customer_records --tool database_query \\
      --data-class pii --risk-level 3 --context volume=10000
  lexecon risk assess --action export:patient_records --tool s3_bucket --data-class phi \\
      --context recipient=external --json")]
    Assess(AssessArgs),
}

/// `lexecon risk assess`.
#[derive(Debug, clap::Args)]
pub(crate) struct AssessArgs {
    /// The proposed action, verb:object, e.g. delete:customer_records.
    #[arg(long, value_name = "ACTION")]
    pub action: String,
    /// Who proposes it.
    #[arg(long, value_name = "ACTOR", default_value = "cli")]
    pub actor: String,
    /// The tool it goes through; none scores as an untraceable action.
    #[arg(long, value_name = "TOOL")]
    pub tool: Option<String>,
    /// A class of data it touches (repeatable), e.g. pii, phi, financial, credentials.
    #[arg(long = "data-class", value_name = "CLASS")]
    pub data_classes: Vec<String>,
    /// The caller's own risk estimate, 1 (lowest) to 5.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=5))]
    pub risk_level: Option<u32>,
    /// A context hint KEY=VALUE (repeatable), e.g. volume=10000, recipient=external,
    /// region=eu-west with destination_region=us-east, environment=production.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub context: Vec<(String, String)>,
    /// The estimated cost of the LLM call the action makes, in micro-dollars.
    #[arg(long, value_name = "MICRO_DOLLARS")]
    pub llm_cost_micros: Option<u64>,
    /// Print the assessment as JSON: risk_score, level, escalate, escalation_threshold,
    /// floor_applied and dimensions.{security,...}.{score,weight,factors}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub local: LocalArgs,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Runs `lexecon risk ...`.
pub(crate) fn run(cmd: &RiskCommand) -> Result<Verdict> {
    match cmd {
        RiskCommand::Assess(args) => {
            // The request first: a mistyped flag is reported before the configuration.
            let request = build_request(args)?;
            let config = args.local.load()?;
            let scorer = RiskScorer::new(config.risk).context("invalid [risk] configuration")?;
            let assessment = scorer.assess(&request, args.llm_cost_micros);
            let text = if args.json {
                serde_json::to_string_pretty(&assessment)? + "\n"
            } else {
                render(&assessment)
            };
            write_stdout(&text)?;
            Ok(Verdict::Yes)
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly instead of
/// panicking as `println!` does.
fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

fn build_request(args: &AssessArgs) -> Result<ActionRequest> {
    let mut req = ActionRequest::new(&args.actor, &args.action)?;
    if let Some(tool) = &args.tool {
        req = req.with_tool(tool)?;
    }
    for class in &args.data_classes {
        req = req.with_data_class(class)?;
    }
    if let Some(level) = args.risk_level {
        req = req.with_risk_level(level)?;
    }
    for (k, v) in &args.context {
        req = req.with_context(k, v)?;
    }
    Ok(req)
}

/// The human output: a headline, then one block per dimension listing its factors.
pub(crate) fn render(a: &Assessment) -> String {
    let mut out = String::new();
    let escalation = if a.escalate {
        format!(
            "reaches the escalation threshold {}",
            a.escalation_threshold
        )
    } else {
        format!("below the escalation threshold {}", a.escalation_threshold)
    };
    let floor = if a.floor_applied {
        " (raised to the floor for an extreme dimension)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "risk score {}{floor}: {}, {escalation}",
        a.score, a.level
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<13} {:>5}  factors", "dimension", "score");
    for d in a.dimensions.iter() {
        let mut factors = d.factors.iter();
        let first = factors.next().map_or_else(
            || "-".to_owned(),
            |f| format!("+{:<3} {}: {}", f.points, f.rule_id, f.description),
        );
        let _ = writeln!(out, "{:<13} {:>5}  {first}", d.dimension, d.score);
        for f in factors {
            let _ = writeln!(
                out,
                "{:<13} {:>5}  +{:<3} {}: {}",
                "", "", f.points, f.rule_id, f.description
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Cli;
    use crate::args::Command;

    fn assess(args: &[&str]) -> Result<AssessArgs, clap::Error> {
        let mut argv = vec!["lexecon", "risk", "assess"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Risk(RiskCommand::Assess(args)) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn human_output_lists_every_dimension_and_factor() {
        let args = assess(&[
            "--action",
            "delete:customer_records",
            "--tool",
            "database_query",
            "--data-class",
            "pii",
            "--risk-level",
            "3",
            "--context",
            "volume=10000",
        ])
        .unwrap();
        let scorer = RiskScorer::new(lexecon_risk::RiskConfig::default()).unwrap();
        let a = scorer.assess(&build_request(&args).unwrap(), None);
        expect_test::expect![[r#"
            risk score 70: high, below the escalation threshold 80

            dimension     score  factors
            security         70  +30  verb.delete: deletes data: hard or impossible to undo
                                 +10  data_class.pii: personal data (GDPR)
                                 +10  tool.database: the tool reaches a database
                                 +15  caller_risk_level.3: the caller rates the action 3 of 5
                                 +5   context.volume.large: 1,000 records or more
            privacy          85  +10  verb.delete: deletes data: hard or impossible to undo
                                 +40  data_class.pii: personal data (GDPR)
                                 +5   tool.database: the tool reaches a database
                                 +15  caller_risk_level.3: the caller rates the action 3 of 5
                                 +15  context.volume.large: 1,000 records or more
            compliance       75  +15  verb.delete: deletes data: hard or impossible to undo
                                 +30  data_class.pii: personal data (GDPR)
                                 +5   tool.database: the tool reaches a database
                                 +15  caller_risk_level.3: the caller rates the action 3 of 5
                                 +10  context.volume.large: 1,000 records or more
            operational      80  +40  verb.delete: deletes data: hard or impossible to undo
                                 +10  tool.database: the tool reaches a database
                                 +15  caller_risk_level.3: the caller rates the action 3 of 5
                                 +15  context.volume.large: 1,000 records or more
            reputational     60  +15  verb.delete: deletes data: hard or impossible to undo
                                 +20  data_class.pii: personal data (GDPR)
                                 +15  caller_risk_level.3: the caller rates the action 3 of 5
                                 +10  context.volume.large: 1,000 records or more
            financial        25  +5   verb.delete: deletes data: hard or impossible to undo
                                 +15  caller_risk_level.3: the caller rates the action 3 of 5
                                 +5   context.volume.large: 1,000 records or more
        "#]]
        .assert_eq(&render(&a));
    }

    #[test]
    fn bad_input_is_a_usage_error_naming_the_flag() {
        for (args, needle) in [
            (
                vec!["--action", "read:x", "--risk-level", "9"],
                "--risk-level",
            ),
            (
                vec!["--action", "read:x", "--context", "novalue"],
                "--context",
            ),
            (vec!["--tool", "db"], "--action"),
        ] {
            let err = assess(&args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
        let args = assess(&["--action", "read x"]).unwrap();
        let err = build_request(&args).unwrap_err().to_string();
        assert!(err.starts_with("proposed_action contains ' '"), "{err}");
    }
}
