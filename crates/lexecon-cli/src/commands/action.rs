//! The proposed action as `decide`, `policy explain` and `risk assess` take it: one set
//! of flags, one `--context` parser, one conversion to the engine's input and to the
//! gRPC `DecideRequest`.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use lexecon_core::{ActionRequest, PolicyMode};
use lexecon_engine::ActionInput;
use lexecon_proto::v1 as pb;
use lexecon_server::convert::mode_to_pb;

/// The fields of a proposed action that every command evaluating one takes.
///
/// `--actor` is optional here; each command says what it means to leave it out
/// (`decide`: the server fills in the one actor the key is bound to; `risk assess`: a
/// default; `policy explain` requires it).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ActionArgs {
    /// Who proposes the action, e.g. ai_agent:customer_service.
    #[arg(long, value_name = "ACTOR")]
    pub actor: Option<String>,
    /// What the actor proposes, verb:object, e.g. read:customer_data.
    #[arg(long, value_name = "ACTION")]
    pub action: String,
    /// The tool the action goes through, e.g. database_query.
    #[arg(long, value_name = "TOOL")]
    pub tool: Option<String>,
    /// A class of data the action touches (repeatable), e.g. pii, phi, financial.
    #[arg(long = "data-class", value_name = "CLASS")]
    pub data_classes: Vec<String>,
    /// The caller's risk estimate, 1 (lowest) to 5.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=5))]
    pub risk_level: Option<u32>,
    /// A context attribute KEY=VALUE (repeatable), e.g. region=eu-west, resource=db/x,
    /// volume=10000; a key holds ASCII letters, digits, '.', '_' and '-'
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context)]
    pub context: Vec<(String, String)>,
}

/// `--mode`, for the commands that evaluate a policy.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ModeArg {
    /// Ask for a mode; it can only make the decision stricter than the policy's own mode.
    #[arg(long, value_name = "MODE", value_parser = mode_parser())]
    pub mode: Option<PolicyMode>,
}

fn mode_parser() -> impl TypedValueParser<Value = PolicyMode> {
    PossibleValuesParser::new(PolicyMode::ALL.iter().map(|m| m.as_str()))
        .try_map(|word| word.parse::<PolicyMode>())
}

/// How to write a `--context` value, for the errors below.
const CONTEXT_FORM: &str = "write KEY=VALUE, e.g. region=eu-west";

/// Parses one `--context KEY=VALUE`; the value may be empty and may hold `=`.
///
/// The key and value are checked by the rules the engine applies to a request's context,
/// so a bad entry is a usage error naming the flag here, not a refusal later.
pub(crate) fn parse_context(arg: &str) -> Result<(String, String), String> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(format!("it has no `=`; {CONTEXT_FORM}"));
    };
    if key.is_empty() {
        return Err(format!("the key before `=` is empty; {CONTEXT_FORM}"));
    }
    // lexecon_core has no check of a single context entry, but a request carrying just
    // this entry is checked by exactly those rules (key alphabet and length, value
    // length, no control characters); the actor and action are placeholders.
    ActionRequest::new("cli", "check:context")
        .and_then(|request| request.with_context(key, value))
        .map_err(|e| e.to_string())?;
    Ok((key.to_owned(), value.to_owned()))
}

impl ActionArgs {
    /// The action as the engine takes it (unchecked: [`ActionInput::validate`] checks it
    /// as the server does). A missing actor is empty; intent, mode and LLM usage are for
    /// the caller to add.
    pub(crate) fn input(&self) -> ActionInput {
        ActionInput {
            actor: self.actor.clone().unwrap_or_default(),
            action: self.action.clone(),
            tool: self.tool.clone().unwrap_or_default(),
            data_classes: self.data_classes.clone(),
            risk_level: self.risk_level.unwrap_or(0),
            context: self.context.iter().cloned().collect(),
            ..ActionInput::default()
        }
    }
}

/// `input` and `request_id` as a `DecideRequest` (the inverse of the server's conversion).
pub(crate) fn decide_request(input: &ActionInput, request_id: &str) -> pb::DecideRequest {
    pb::DecideRequest {
        actor: input.actor.clone(),
        proposed_action: input.action.clone(),
        tool: input.tool.clone(),
        user_intent: input.user_intent.clone(),
        data_classes: input.data_classes.clone(),
        risk_level: input.risk_level,
        policy_mode: input.mode.map_or(pb::PolicyMode::Unspecified, mode_to_pb) as i32,
        context: input
            .context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        request_id: request_id.to_owned(),
        llm: input.llm.as_ref().map(|llm| pb::LlmUsage {
            model: llm.model.clone(),
            user_id: llm.user_id.clone().unwrap_or_default(),
            roles: llm.roles.clone(),
            estimated_input_tokens: llm.estimated_input_tokens,
            max_output_tokens: llm.max_output_tokens,
        }),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::Cli;
    use crate::args::Command;
    use crate::commands::policy::PolicyCommand;
    use crate::commands::risk::RiskCommand;

    /// The three commands that take an action, each given `--actor`, `--action` and the
    /// `--context` values.
    fn parse_all(contexts: &[&str]) -> [Result<ActionArgs, clap::Error>; 3] {
        let with = |prefix: &[&str]| {
            let mut argv = vec!["lexecon"];
            argv.extend_from_slice(prefix);
            argv.extend_from_slice(&["--actor", "ai_agent:x", "--action", "read:x"]);
            for c in contexts {
                argv.extend_from_slice(&["--context", c]);
            }
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Decide(args) => args.action,
                Command::Policy(PolicyCommand::Explain(args)) => args.action,
                Command::Risk(RiskCommand::Assess(args)) => args.action,
                other => panic!("parsed as {other:?}"),
            })
        };
        [
            with(&["decide"]),
            with(&["policy", "explain", "policy.toml"]),
            with(&["risk", "assess"]),
        ]
    }

    #[test]
    fn the_three_commands_accept_the_same_context() {
        let accepted = [
            ("region=eu-west", ("region", "eu-west")),
            ("resource=db/x=y", ("resource", "db/x=y")),
            ("note=", ("note", "")),
            ("a.b-c_D9=1", ("a.b-c_D9", "1")),
        ];
        for (arg, (key, value)) in accepted {
            for parsed in parse_all(&[arg]) {
                let args = parsed.unwrap_or_else(|e| panic!("{arg:?}: {e}"));
                assert_eq!(args.context, [(key.to_owned(), value.to_owned())]);
                assert_eq!(
                    args.input().context.get(key).map(String::as_str),
                    Some(value)
                );
            }
        }
    }

    #[test]
    fn the_three_commands_reject_the_same_context_with_the_same_message() {
        let long_key = format!("{}=v", "k".repeat(65));
        let rejected = [
            (
                "novalue",
                "it has no `=`; write KEY=VALUE, e.g. region=eu-west",
            ),
            (
                "=x",
                "the key before `=` is empty; write KEY=VALUE, e.g. region=eu-west",
            ),
            (
                "re gion=x",
                "context.re gion key contains ' '; keys use ASCII letters, digits and _ - .",
            ),
            ("k=a\nb", "context.k contains the control character '\\n'"),
            (
                long_key.as_str(),
                "context key is 65 bytes long; at most 64 are allowed",
            ),
        ];
        for (arg, problem) in rejected {
            let expected =
                format!("error: invalid value '{arg}' for '--context <KEY=VALUE>': {problem}");
            let messages = parse_all(&[arg]).map(|parsed| {
                let err = parsed.map(|_| ()).unwrap_err();
                assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
                assert_eq!(err.exit_code(), 2);
                err.to_string()
            });
            assert!(messages[0].starts_with(&expected), "{}", messages[0]);
            assert_eq!(messages[0], messages[1]);
            assert_eq!(messages[0], messages[2]);
        }
    }

    #[test]
    fn decide_sends_an_empty_actor_when_none_is_given() {
        let cli = Cli::try_parse_from([
            "lexecon", "decide", "--action", "read:x", "--mode", "paranoid",
        ])
        .unwrap();
        let Command::Decide(args) = cli.command else {
            panic!("not decide");
        };
        let request = args.request();
        assert_eq!(request.actor, "");
        assert_eq!(request.proposed_action, "read:x");
        assert_eq!(request.policy_mode(), pb::PolicyMode::Paranoid);
        assert_eq!(request.llm, None);

        let err = Cli::try_parse_from([
            "lexecon", "policy", "explain", "p.toml", "--action", "read:x",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--actor <ACTOR>"), "{err}");

        let cli = Cli::try_parse_from(["lexecon", "risk", "assess", "--action", "read:x"]).unwrap();
        let Command::Risk(RiskCommand::Assess(args)) = cli.command else {
            panic!("not risk assess");
        };
        assert_eq!(args.action.actor.as_deref(), Some("cli"));
    }

    #[test]
    fn decide_request_carries_every_flag() {
        let cli = Cli::try_parse_from([
            "lexecon",
            "decide",
            "--actor",
            "ai_agent:a",
            "--action",
            "llm:chat",
            "--tool",
            "openai_api",
            "--intent",
            "why",
            "--data-class",
            "pii",
            "--data-class",
            "phi",
            "--risk-level",
            "2",
            "--context",
            "region=eu",
            "--request-id",
            "r1",
            "--llm-model",
            "gpt-4o-mini",
            "--llm-user",
            "alice",
            "--llm-role",
            "dev",
            "--llm-input-tokens",
            "10",
            "--llm-max-output-tokens",
            "20",
        ])
        .unwrap();
        let Command::Decide(args) = cli.command else {
            panic!("not decide");
        };
        expect_test::expect![[r#"
            DecideRequest {
                actor: "ai_agent:a",
                proposed_action: "llm:chat",
                tool: "openai_api",
                user_intent: "why",
                data_classes: [
                    "pii",
                    "phi",
                ],
                risk_level: 2,
                policy_mode: Unspecified,
                context: {
                    "region": "eu",
                },
                request_id: "r1",
                llm: Some(
                    LlmUsage {
                        model: "gpt-4o-mini",
                        user_id: "alice",
                        roles: [
                            "dev",
                        ],
                        estimated_input_tokens: 10,
                        max_output_tokens: 20,
                    },
                ),
            }
        "#]]
        .assert_debug_eq(&args.request());
    }
}
