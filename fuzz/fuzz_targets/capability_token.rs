//! Capability tokens (crates/lexecon-capability) on arbitrary input. The first byte
//! picks a mode:
//! - even: the rest, as text, is a token string verified against a fixed key, taken
//!   apart with `unsigned` and read back with `unsigned_claims`. Nothing panics; a
//!   payload that decodes re-encodes to exactly the same base64 (decoding is strict, so
//!   one set of claims has one payload); a string that verifies is exactly the token
//!   minting its claims makes (Ed25519 is deterministic).
//! - odd: claims built from the rest are minted with the fixed key; the token verifies
//!   to the same claims inside its window and in scope, is refused after it, and no
//!   single-byte change of the token verifies.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lexecon_capability::{
    Claims, NoRevocations, NodeKey, VerifyError, VerifyOptions, mint, resign, unsigned,
    unsigned_claims, verify,
};
use lexecon_core::{Action, Actor, DecisionId, Timestamp, Tool};
use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;

/// The verifier's time in the decode-only mode, and the middle of the issue times of the
/// structured mode: 2026-09-21, inside the window of the crate's documented example
/// token (crates/lexecon-capability/src/tests.rs, issued at 1_790_000_000 for 300 s).
const NOW_SECS: i64 = 1_790_000_001;

/// The key of the crate's documented example token (`key(1)` in its tests), so that
/// seed can verify.
fn key() -> NodeKey {
    NodeKey::from_secret_bytes(&[1u8; 32])
}

fn decode_only(key: &NodeKey, text: &str) {
    let now = Timestamp::from_unix_secs(NOW_SECS);
    if let Ok(claims) = verify(text, key, &VerifyOptions::new(now), &NoRevocations) {
        let again = mint(key, &claims).expect("verified claims mint again");
        assert_eq!(again, text, "a verified token is not its claims' token");
    }
    if let Ok(payload_b64) = unsigned(text) {
        let claims = unsigned_claims(&payload_b64).expect("the payload of a parsed token decodes");
        assert_eq!(URL_SAFE_NO_PAD.encode(claims.to_payload()), payload_b64);
        let token = resign(key, &payload_b64).expect("decoded claims are valid claims");
        let mut resigned = unsigned_claims(&unsigned(&token).expect("a minted token parses"))
            .expect("a minted payload decodes");
        assert_eq!(resigned.key_id, key.key_id());
        resigned.key_id.clone_from(&claims.key_id);
        assert_eq!(resigned, claims, "re-signing changed the claims");
    }
    // The same text as an unsigned payload.
    if let Ok(claims) = unsigned_claims(text) {
        assert_eq!(
            URL_SAFE_NO_PAD.encode(claims.to_payload()),
            text,
            "one set of claims has two payload encodings"
        );
    }
}

fn name(u: &mut Unstructured<'_>) -> ArbResult<String> {
    let len = u.int_in_range(0..=40)?;
    let bytes = u.bytes(len)?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

fn minted(key: &NodeKey, u: &mut Unstructured<'_>) -> ArbResult<()> {
    let (Ok(actor), Ok(action)) = (Actor::new(name(u)?), Action::new(name(u)?)) else {
        return Ok(());
    };
    let tool = if u.arbitrary()? {
        Tool::new(name(u)?).ok()
    } else {
        None
    };
    let audience = if u.arbitrary()? { Some(name(u)?) } else { None };
    let now = Timestamp::from_unix_micros(u.int_in_range(0..=NOW_SECS * 2_000_000)?);
    let decision = DecisionId::new(now, u.arbitrary()?);
    let ttl: u32 = u.int_in_range(0..=100_000)?;
    let mut policy_hash = [0u8; 32];
    u.fill_buffer(&mut policy_hash)?;
    let Ok(claims) = Claims::builder(decision, actor, action, policy_hash)
        .tool(tool)
        .audience(audience)
        .ttl_secs(ttl)
        .build(key.key_id(), now, u.arbitrary()?)
    else {
        return Ok(());
    };
    let token = mint(key, &claims).expect("valid claims mint");
    let mut opts = VerifyOptions::new(now)
        .actor(claims.actor.as_str())
        .action(claims.action.as_str());
    if let Some(tool) = &claims.tool {
        opts = opts.tool(tool.as_str());
    }
    if let Some(audience) = &claims.audience {
        opts = opts.audience(audience);
    }
    let verified = verify(&token, key, &opts, &NoRevocations).expect("a fresh token verifies");
    assert_eq!(verified, claims);
    decode_only(key, &token);

    let late = VerifyOptions::new(claims.expires_at.add_secs(5));
    assert!(matches!(
        verify(&token, key, &late, &NoRevocations),
        Err(VerifyError::Expired { .. })
    ));

    let at: usize = u.int_in_range(0..=token.len().saturating_sub(1))?;
    let byte: u8 = u.arbitrary()?;
    let mut bytes = token.clone().into_bytes();
    if let Some(b) = bytes.get_mut(at)
        && *b != byte
    {
        *b = byte;
        if let Ok(changed) = String::from_utf8(bytes) {
            assert!(
                verify(&changed, key, &VerifyOptions::new(now), &NoRevocations).is_err(),
                "a token changed at byte {at} still verifies"
            );
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let key = key();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        decode_only(&key, &String::from_utf8_lossy(rest));
    } else {
        let _ = minted(&key, &mut Unstructured::new(rest));
    }
});
