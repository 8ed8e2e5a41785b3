//! `lexecon risk assess`: score a proposed action in six dimensions, without a server.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use lexecon_core::ActionRequest;
use lexecon_risk::{Assessment, RiskScorer};

use super::action::ActionArgs;
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
#[command(
    mut_arg("actor", |actor| actor.default_value("cli")),
    mut_arg("tool", |tool| tool.help(
        "The tool the action goes through; none scores as an untraceable action"
    ))
)]
pub(crate) struct AssessArgs {
    #[command(flatten)]
    pub action: ActionArgs,
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
    Ok(args.action.input().validate()?)
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
