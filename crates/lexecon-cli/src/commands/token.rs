//! `lexecon token verify` and `lexecon keys rotate`: capability tokens and node keys offline.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lexecon_capability::{
    Claims, KeyLookup, KeyRing, NoRevocations, NodeKey, PublicKeyRing, VerifyOptions,
    load_public_key, verify,
};
use lexecon_core::{Clock, SystemClock};
use lexecon_engine::DataDir;
use lexecon_engine::config::DEFAULT_DATA_DIR;
use lexecon_engine::layout::NODE_KEY_NAME;
use serde_json::json;

use super::service::LocalArgs;
use crate::Verdict;

/// `lexecon token ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Verify a capability token offline, with only the node's public key.
    ///
    /// Checks, in order: the format, the key id, the Ed25519 signature, not-before and
    /// expiry (with --clock-skew-secs allowance), then each of --actor, --action, --tool
    /// and --audience that you give. Exit 0 when valid, 1 when invalid (the output says
    /// which check failed: malformed, unknown_key, signature, expired, not_yet_valid,
    /// scope), 2 when the key cannot be read or the arguments are wrong.
    ///
    /// Examples:
    ///
    ///   lexecon token verify "$TOKEN" --data-dir ./.lexecon --actor ai_agent:support --action read:customer_data --tool database_query
    ///
    ///   echo "$TOKEN" | lexecon token verify - --public-key node.ed25519.pub --json
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
}

/// Arguments of `lexecon token verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The token (lxc1....), or - to read it from standard input (keeps it out of `ps`).
    pub token: String,
    /// The node's public key file (SPKI PEM), e.g. DIR/keys/node.ed25519.pub.
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    pub public_key: Option<PathBuf>,
    /// A data directory: its keys/node.ed25519.pub and keys/retired/ keys are used
    /// [default: ./.lexecon when --public-key is not given].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Require the token to be for this actor.
    #[arg(long)]
    pub actor: Option<String>,
    /// Require the token to be for this action.
    #[arg(long)]
    pub action: Option<String>,
    /// Require the token to be for this tool.
    #[arg(long)]
    pub tool: Option<String>,
    /// Require the token to be meant for this audience.
    #[arg(long)]
    pub audience: Option<String>,
    /// Seconds of clock difference tolerated on not-before and expiry.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub clock_skew_secs: u32,
    /// Print the result as JSON: {"valid": true, claims...} or {"valid": false, "error": KIND, "message": ...}.
    #[arg(long)]
    pub json: bool,
}

/// `lexecon keys ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Replace the node's signing key; the old public key keeps verifying its tokens.
    ///
    /// Generates a new Ed25519 key as DIR/keys/node.ed25519 (mode 0600) and .pub, and
    /// keeps the old public key in DIR/keys/retired/<key id>.pub with a .until file:
    /// tokens it signed verify until tokens.ttl_secs + tokens.clock_skew_secs (from the
    /// configuration) from now, when they have all expired. Retired keys past their time
    /// are removed. Stop the server first, or restart it after, so that it signs with the
    /// new key.
    ///
    /// The server records the rotation as a key_rotated ledger entry (with the new key
    /// id and verifier key) when it next starts with the new key; checkpoints from then
    /// on are signed by it, and verify-ledger knows both keys.
    ///
    /// Example:
    ///
    ///   lexecon keys rotate --data-dir ./.lexecon
    #[command(verbatim_doc_comment)]
    Rotate(RotateArgs),
}

/// Arguments of `lexecon keys rotate`.
#[derive(Debug, clap::Args)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    pub local: LocalArgs,
    /// Print the result as JSON: {"old_key_id", "new_key_id", "old_key_valid_until"}.
    #[arg(long)]
    pub json: bool,
}

/// Runs `lexecon token ...`.
pub(crate) fn run_token(cmd: &TokenCommand) -> Result<Verdict> {
    match cmd {
        TokenCommand::Verify(args) => {
            let token = read_token(&args.token)?;
            let (verdict, out) = verify_token(&token, args, SystemClock.now())?;
            println!("{out}");
            Ok(verdict)
        }
    }
}

fn read_token(arg: &str) -> Result<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        .context("cannot read the token from standard input")?;
    Ok(s.trim().to_owned())
}

fn keys_for(args: &VerifyArgs) -> Result<Box<dyn KeyLookup>> {
    if let Some(file) = &args.public_key {
        return Ok(Box::new(load_public_key(file)?));
    }
    let dir = DataDir::new(
        args.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
    );
    let keys = dir.keys_dir();
    if !keys.is_dir() {
        bail!(
            "{} has no keys directory; pass --public-key FILE or the --data-dir of an initialised node",
            dir.root().display()
        );
    }
    Ok(Box::new(PublicKeyRing::load(&keys, NODE_KEY_NAME)?))
}

/// Verifies `token` as `args` ask, at `now`; returns the verdict and the text to print.
pub(crate) fn verify_token(
    token: &str,
    args: &VerifyArgs,
    now: lexecon_core::Timestamp,
) -> Result<(Verdict, String)> {
    let keys = keys_for(args)?;
    let mut opts = VerifyOptions::new(now).clock_skew_secs(args.clock_skew_secs);
    opts.actor = args.actor.as_deref();
    opts.action = args.action.as_deref();
    opts.tool = args.tool.as_deref();
    opts.audience = args.audience.as_deref();
    Ok(match verify(token, keys.as_ref(), &opts, &NoRevocations) {
        Ok(claims) => (Verdict::Yes, valid_text(&claims, args.json)),
        Err(err) if args.json => (
            Verdict::No,
            json!({"valid": false, "error": err.kind(), "message": err.to_string()}).to_string(),
        ),
        Err(err) => (Verdict::No, format!("invalid ({}): {err}", err.kind())),
    })
}

fn valid_text(c: &Claims, as_json: bool) -> String {
    let tool = c.tool.as_ref().map(|t| t.as_str());
    if as_json {
        let hash: String = c.policy_hash.iter().map(|b| format!("{b:02x}")).collect();
        return json!({
            "valid": true,
            "token_id": c.token_id.to_string(),
            "key_id": c.key_id,
            "decision_id": c.decision_id.to_string(),
            "actor": c.actor.as_str(),
            "action": c.action.as_str(),
            "tool": tool,
            "audience": c.audience,
            "issued_at": c.issued_at.to_rfc3339(),
            "not_before": c.not_before.to_rfc3339(),
            "expires_at": c.expires_at.to_rfc3339(),
            "policy_hash": hash,
        })
        .to_string();
    }
    let via = tool.map(|t| format!(" via {t}")).unwrap_or_default();
    format!(
        "valid: {} may {}{via} (decision {}, token {}, key {}), until {}",
        c.actor, c.action, c.decision_id, c.token_id, c.key_id, c.expires_at
    )
}

/// Runs `lexecon keys ...`.
pub(crate) fn run_keys(cmd: &KeysCommand) -> Result<Verdict> {
    match cmd {
        KeysCommand::Rotate(args) => {
            let config = args.local.load()?;
            let max_ttl = config
                .tokens
                .ttl_secs
                .saturating_add(config.tokens.clock_skew_secs);
            let out = rotate(&config.keys_dir(), SystemClock.now(), max_ttl, args.json)?;
            println!("{out}");
            Ok(Verdict::Yes)
        }
    }
}

/// Rotates the node key in `keys_dir` at `now`; returns the text to print.
pub(crate) fn rotate(
    keys_dir: &Path,
    now: lexecon_core::Timestamp,
    max_token_ttl_secs: u32,
    as_json: bool,
) -> Result<String> {
    let mut ring = KeyRing::load(keys_dir, NODE_KEY_NAME).with_context(|| {
        format!(
            "cannot load the node key from {}; run `lexecon init` first",
            keys_dir.display()
        )
    })?;
    let pruned = ring.prune(now);
    let retired = ring.rotate(
        NodeKey::generate(&mut rand_core::OsRng),
        now,
        max_token_ttl_secs,
    );
    ring.save(keys_dir, NODE_KEY_NAME)?;
    let new_id = ring.active().key_id();
    Ok(if as_json {
        json!({
            "old_key_id": retired.key.key_id(),
            "new_key_id": new_id,
            "old_key_valid_until": retired.keep_until.to_rfc3339(),
            "pruned_retired_keys": pruned,
        })
        .to_string()
    } else {
        format!(
            "rotated: new key {new_id}; old key {} verifies its tokens until {}{}",
            retired.key.key_id(),
            retired.keep_until,
            if pruned > 0 {
                format!("; removed {pruned} expired retired key(s)")
            } else {
                String::new()
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexecon_capability::mint;
    use lexecon_core::{Action, Actor, DecisionId, Timestamp, Tool};

    const T0: Timestamp = Timestamp::from_unix_secs(1_790_000_000);

    fn args(dir: &Path) -> VerifyArgs {
        VerifyArgs {
            token: String::new(),
            public_key: None,
            data_dir: Some(dir.to_owned()),
            actor: None,
            action: None,
            tool: None,
            audience: None,
            clock_skew_secs: 5,
            json: false,
        }
    }

    fn token(key: &NodeKey) -> String {
        let c = Claims::builder(
            DecisionId::new(T0, 1),
            Actor::new("ai_agent:support").unwrap(),
            Action::new("read:customer_data").unwrap(),
            [1; 32],
        )
        .tool(Some(Tool::new("database_query").unwrap()))
        .build(key.key_id(), T0, 2)
        .unwrap();
        mint(key, &c).unwrap()
    }

    #[test]
    fn token_verify_reports_valid_and_each_failure() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataDir::new(dir.path());
        let key = NodeKey::generate(&mut rand_core::OsRng);
        key.write_files(&layout.keys_dir(), NODE_KEY_NAME).unwrap();
        let t = token(&key);
        let mut a = args(dir.path());
        let (v, out) = verify_token(&t, &a, T0.add_secs(1)).unwrap();
        assert_eq!(v, Verdict::Yes, "{out}");
        assert!(
            out.starts_with("valid: ai_agent:support may read:customer_data via database_query"),
            "{out}"
        );

        let (v, out) = verify_token(&t, &a, T0.add_secs(306)).unwrap();
        assert_eq!(v, Verdict::No);
        assert!(
            out.starts_with("invalid (expired): token expired at"),
            "{out}"
        );

        a.tool = Some("shell".into());
        a.json = true;
        let (v, out) = verify_token(&t, &a, T0.add_secs(1)).unwrap();
        assert_eq!(v, Verdict::No);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["valid"], false);
        assert_eq!(j["error"], "scope");

        a.tool = Some("database_query".into());
        let (v, out) = verify_token(&t, &a, T0.add_secs(1)).unwrap();
        assert_eq!(v, Verdict::Yes);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["actor"], "ai_agent:support");
        assert_eq!(j["policy_hash"], "01".repeat(32));

        // Through the public key file, and a missing key is an error (exit 2), not "invalid".
        let mut b = args(dir.path());
        b.data_dir = None;
        b.public_key = Some(layout.node_pub());
        assert_eq!(verify_token(&t, &b, T0).unwrap().0, Verdict::Yes);
        b.public_key = Some(dir.path().join("nope.pub"));
        assert!(verify_token(&t, &b, T0).is_err());
    }

    #[test]
    fn keys_rotate_keeps_old_tokens_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataDir::new(dir.path());
        let keys = layout.keys_dir();
        let key = NodeKey::generate(&mut rand_core::OsRng);
        key.write_files(&keys, NODE_KEY_NAME).unwrap();
        let old = token(&key);
        let out = rotate(&keys, T0.add_secs(10), 305, false).unwrap();
        assert!(
            out.contains(&format!("old key {} verifies", key.key_id())),
            "{out}"
        );
        let new_key = NodeKey::load(&layout.node_key()).unwrap();
        assert_ne!(new_key.key_id(), key.key_id());
        let a = args(dir.path());
        assert_eq!(
            verify_token(&old, &a, T0.add_secs(100)).unwrap().0,
            Verdict::Yes
        );
        assert_eq!(
            verify_token(&token(&new_key), &a, T0.add_secs(100))
                .unwrap()
                .0,
            Verdict::Yes
        );
        assert!(rotate(&dir.path().join("missing"), T0, 305, false).is_err());
    }
}
