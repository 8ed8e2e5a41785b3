//! Unit tests: RFC 8032 vectors, the token format, every verification failure, key files.

use std::collections::HashSet;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use expect_test::{Expect, expect};
use lexecon_core::{Action, Actor, DecisionId, Timestamp, TokenId, Tool};
use proptest::prelude::*;

use crate::*;

const T0: Timestamp = Timestamp::from_unix_secs(1_790_000_000);

fn key(n: u8) -> NodeKey {
    NodeKey::from_secret_bytes(&[n; 32])
}

fn claims_for(key: &NodeKey) -> Claims {
    Claims::builder(
        DecisionId::new(T0, 11),
        Actor::new("ai_agent:customer_service").unwrap(),
        Action::new("read:customer_data").unwrap(),
        [0xab; 32],
    )
    .tool(Some(Tool::new("database_query").unwrap()))
    .audience(Some("crm-service".to_owned()))
    .ttl_secs(300)
    .build(key.key_id(), T0, 0x00ff_eedd_ccbb_aa99_8877_6655)
    .unwrap()
}

fn token_and_key() -> (String, NodeKey, Claims) {
    let k = key(1);
    let c = claims_for(&k);
    (mint(&k, &c).unwrap(), k, c)
}

fn at(secs: i64) -> VerifyOptions<'static> {
    VerifyOptions::new(T0.add_secs(secs))
}

fn kind(r: Result<Claims, VerifyError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

// ---- RFC 8032 -------------------------------------------------------------------------

struct Vector {
    name: String,
    secret: [u8; 32],
    public: [u8; 32],
    message: Vec<u8>,
    signature: [u8; 64],
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("testdata/rfc8032.txt");
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| b.contains("name ")) {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| {
                    l.strip_prefix(name)
                        .filter(|rest| rest.is_empty() || rest.starts_with(' '))
                })
                .unwrap_or_else(|| panic!("{name} missing in {block}"))
                .trim()
                .to_owned()
        };
        let hex = |name: &str| hex::decode(field(name)).unwrap();
        out.push(Vector {
            name: field("name"),
            secret: hex("secret").try_into().unwrap(),
            public: hex("public").try_into().unwrap(),
            message: hex("message"),
            signature: hex("signature").try_into().unwrap(),
        });
    }
    out
}

#[test]
fn rfc8032_vectors_pass_through_the_signing_layer() {
    let vectors = vectors();
    let names: Vec<&str> = vectors.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["TEST 1", "TEST 2", "TEST 3", "TEST 1024", "TEST SHA(abc)"]
    );
    assert_eq!(vectors[3].message.len(), 1023);
    for v in &vectors {
        let node = NodeKey::from_secret_bytes(&v.secret);
        assert_eq!(node.verifying_key().as_bytes(), &v.public, "{}", v.name);
        assert_eq!(node.sign(&v.message), v.signature, "{}", v.name);
        let public = PublicKey::from_bytes(&v.public).unwrap();
        assert!(public.verify(&v.message, &v.signature), "{}", v.name);
        assert_eq!(public.key_id(), node.key_id());
        let mut bad_sig = v.signature;
        bad_sig[0] ^= 1;
        assert!(!public.verify(&v.message, &bad_sig), "{}", v.name);
        let mut bad_msg = v.message.clone();
        bad_msg.push(0);
        assert!(!public.verify(&bad_msg, &v.signature), "{}", v.name);
    }
}

#[test]
fn verification_is_strict_about_non_canonical_s() {
    // BoringSSL's vectors by David Benjamin: S just under the group order verifies,
    // S just above it (a malleated signature) must not.
    let public = PublicKey::from_bytes(
        &hex::decode("100fdf47fb94f1536a4f7c3fda27383fa03375a8f527c537e6f1703c47f94f86")
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let check = |msg: &str, sig: &str| {
        public.verify(
            &hex::decode(msg).unwrap(),
            &hex::decode(sig).unwrap().try_into().unwrap(),
        )
    };
    assert!(check(
        "124e583f8b8eca58bb29c271b41d36986bbc45541f8e51f9cb0133eca447601e",
        "dac119d6ca87fc59ae611c157048f4d4fc932a149dbe20ec6effd1436abf83ea05c7df0fef06147241259113909bc71bd3c53ba4464ffcad3c0968f2ffffff0f"
    ));
    assert!(!check(
        "6a0bc2b0057cedfc0fa2e3f7f7d39279b30f454a69dfd1117c758d86b19d85e0",
        "0971f86d2c9c78582524a103cb9cf949522ae528f8054dc20107d999be673ff4e25ebf2f2928766b1248bec6e91697775f8446639ede46ad4df4053000000010"
    ));
}

#[test]
fn key_id_is_first_8_bytes_of_sha256_of_the_public_key_in_hex() {
    let v = &vectors()[0];
    // python3 -c "import hashlib; print(hashlib.sha256(bytes.fromhex(PUBLIC)).hexdigest()[:16])"
    assert_eq!(
        NodeKey::from_secret_bytes(&v.secret).key_id(),
        "21fe31dfa154a261"
    );
}

// ---- format ---------------------------------------------------------------------------

#[test]
fn payload_layout_and_token_are_as_documented() {
    let (token, k, c) = token_and_key();
    let payload = c.to_payload();
    // The layout docs/capability-tokens.md describes, field by field.
    let mut fields = vec![hex::encode(&payload[..31])];
    let mut rest = &payload[31..];
    for len in [
        4 + 16,
        4 + 16,
        4 + 16,
        4 + 25,
        4 + 18,
        1 + 4 + 14,
        8,
        8,
        8,
        4 + 32,
        1 + 4 + 11,
    ] {
        fields.push(hex::encode(&rest[..len]));
        rest = &rest[len..];
    }
    assert!(rest.is_empty());
    expect![[r#"
        [
            "0000001b6c657865636f6e2f6361706162696c6974792d746f6b656e2f7631",
            "0000001001a0c4506c00eeddccbbaa9988776655",
            "0000001033343735306639386264353966636663",
            "0000001001a0c4506c000000000000000000000b",
            "0000001961695f6167656e743a637573746f6d65725f73657276696365",
            "00000012726561643a637573746f6d65725f64617461",
            "010000000e64617461626173655f7175657279",
            "00065bfeda25e000",
            "00065bfeda25e000",
            "00065bfeec078300",
            "00000020abababababababababababababababababababababababababababababababab",
            "010000000b63726d2d73657276696365",
        ]
    "#]]
    .assert_debug_eq(&fields);
    assert_eq!(
        token,
        format!(
            "lxc1.{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(k.sign(&payload))
        )
    );
    expect!["lxc1.AAAAG2xleGVjb24vY2FwYWJpbGl0eS10b2tlbi92MQAAABABoMRQbADu3cy7qpmId2ZVAAAAEDM0NzUwZjk4YmQ1OWZjZmMAAAAQAaDEUGwAAAAAAAAAAAAACwAAABlhaV9hZ2VudDpjdXN0b21lcl9zZXJ2aWNlAAAAEnJlYWQ6Y3VzdG9tZXJfZGF0YQEAAAAOZGF0YWJhc2VfcXVlcnkABlv-2iXgAAAGW_7aJeAAAAZb_uwHgwAAAAAgq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6sBAAAAC2NybS1zZXJ2aWNl.IzD29ntAV-DXuj919hHcQ4h2bnedUjibPMRqNor5I7DyCU08aQkIyBjuZ1IoiivLvT6_i-nbYzl0xxqY96rVDA"].assert_eq(&token);
}

#[test]
fn round_trip_returns_the_minted_claims() {
    let (token, k, c) = token_and_key();
    let opts = at(10)
        .actor("ai_agent:customer_service")
        .action("read:customer_data")
        .tool("database_query")
        .audience("crm-service");
    assert_eq!(verify(&token, &k, &opts, &NoRevocations), Ok(c.clone()));
    // Without scope, and through the public key alone.
    assert_eq!(
        verify(&token, k.public_key(), &at(10), &NoRevocations),
        Ok(c)
    );
    // A minimal token: no tool, no audience.
    let bare = Claims::builder(
        DecisionId::new(T0, 1),
        Actor::new("a").unwrap(),
        Action::new("b").unwrap(),
        [0; 32],
    )
    .build(k.key_id(), T0, 2)
    .unwrap();
    let t = mint(&k, &bare).unwrap();
    assert_eq!(verify(&t, &k, &at(0), &NoRevocations), Ok(bare));
    assert!(token.len() < 450, "{}", token.len());
}

#[test]
fn ids_survive_the_payload_exactly() {
    let k = key(1);
    for random in [0u128, 1, u128::MAX, 0x1234_5678_9abc_def0_1122] {
        let c = Claims::builder(
            DecisionId::new(T0.add_micros(123_456), random.rotate_left(7)),
            Actor::new("a").unwrap(),
            Action::new("b").unwrap(),
            [7; 32],
        )
        .build(k.key_id(), T0.add_micros(987), random)
        .unwrap();
        let got = verify(&mint(&k, &c).unwrap(), &k, &at(1), &NoRevocations).unwrap();
        assert_eq!(got.token_id, c.token_id);
        assert_eq!(got.decision_id, c.decision_id);
        assert_eq!(got.issued_at, T0.add_micros(987));
    }
}

/// Re-signs nothing: swaps in changed claims but keeps the original signature.
fn with_claims(token: &str, changed: &Claims) -> String {
    let sig = token.rsplit_once('.').unwrap().1;
    format!(
        "lxc1.{}.{sig}",
        URL_SAFE_NO_PAD.encode(changed.to_payload())
    )
}

#[test]
fn every_tampered_field_is_rejected() {
    let (token, k, c) = token_and_key();
    let other = key(2);
    type Tamper = fn(&mut Claims, &NodeKey);
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "token_id",
            |c, _| c.token_id = TokenId::new(T0, 1),
            "signature",
        ),
        (
            "key_id",
            |c, o| c.key_id = o.key_id().to_owned(),
            "unknown_key",
        ),
        (
            "decision_id",
            |c, _| c.decision_id = DecisionId::new(T0, 12),
            "signature",
        ),
        (
            "actor",
            |c, _| c.actor = Actor::new("ai_agent:admin").unwrap(),
            "signature",
        ),
        (
            "action",
            |c, _| c.action = Action::new("delete:customer_data").unwrap(),
            "signature",
        ),
        (
            "tool",
            |c, _| c.tool = Some(Tool::new("shell").unwrap()),
            "signature",
        ),
        ("tool removed", |c, _| c.tool = None, "signature"),
        (
            "issued_at",
            |c, _| c.issued_at = c.issued_at.add_secs(-1),
            "signature",
        ),
        (
            "not_before",
            |c, _| c.not_before = c.not_before.add_secs(10),
            "signature",
        ),
        (
            "expires_at",
            |c, _| c.expires_at = c.expires_at.add_secs(3600),
            "signature",
        ),
        ("policy_hash", |c, _| c.policy_hash[31] ^= 1, "signature"),
        (
            "audience",
            |c, _| c.audience = Some("other".to_owned()),
            "signature",
        ),
        ("audience removed", |c, _| c.audience = None, "signature"),
    ];
    let ring = PublicKeyRing::new(k.public_key().clone()).with_retired(RetiredKey {
        key: other.public_key().clone(),
        keep_until: T0.add_secs(10_000),
    });
    for (name, tamper, want) in cases {
        let mut changed = c.clone();
        tamper(&mut changed, &other);
        assert_ne!(changed, c, "{name}");
        let forged = with_claims(&token, &changed);
        assert_eq!(
            kind(verify(&forged, &k, &at(10), &NoRevocations)),
            want,
            "{name}"
        );
        // Even a verifier that knows both keys rejects it.
        assert_eq!(
            kind(verify(&forged, &ring, &at(10), &NoRevocations)),
            "signature",
            "{name}"
        );
    }
}

#[test]
fn every_flipped_bit_is_rejected() {
    let (token, k, _) = token_and_key();
    let (payload_b64, sig_b64) = token["lxc1.".len()..].split_once('.').unwrap();
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).unwrap();
    for i in 0..payload.len() * 8 {
        let mut p = payload.clone();
        p[i / 8] ^= 1 << (i % 8);
        let t = format!("lxc1.{}.{sig_b64}", URL_SAFE_NO_PAD.encode(&p));
        let got = kind(verify(&t, &k, &at(10), &NoRevocations));
        assert!(
            ["malformed", "signature", "unknown_key"].contains(&got),
            "payload bit {i}: {got}"
        );
    }
    for i in 0..sig.len() * 8 {
        let mut s = sig.clone();
        s[i / 8] ^= 1 << (i % 8);
        let t = format!("lxc1.{payload_b64}.{}", URL_SAFE_NO_PAD.encode(&s));
        assert_eq!(
            kind(verify(&t, &k, &at(10), &NoRevocations)),
            "signature",
            "sig bit {i}"
        );
    }
}

#[test]
fn a_token_signed_by_another_key_is_rejected() {
    let (_, k, _) = token_and_key();
    let other = key(2);
    // Honest token from another node: its key id is unknown here.
    let theirs = mint(&other, &claims_for(&other)).unwrap();
    assert_eq!(
        kind(verify(&theirs, &k, &at(10), &NoRevocations)),
        "unknown_key"
    );
    // Forgery: claims naming our key id, signed with theirs.
    let c = claims_for(&k);
    let payload = c.to_payload();
    let forged = format!(
        "lxc1.{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(other.sign(&payload))
    );
    assert_eq!(
        kind(verify(&forged, &k, &at(10), &NoRevocations)),
        "signature"
    );
    // mint refuses claims built for another key.
    assert!(matches!(
        mint(&other, &c),
        Err(ClaimsError::KeyMismatch { .. })
    ));
}

#[test]
fn a_token_kept_unsigned_is_resigned_to_the_same_token() {
    let (token, k, claims) = token_and_key();
    let kept = unsigned(&token).unwrap();
    // What is kept holds no signature and is not a token.
    let signature = token.rsplit_once('.').unwrap().1;
    assert!(!kept.contains(signature));
    assert!(!kept.contains('.'));
    assert_eq!(
        kind(verify(&kept, &k, &at(10), &NoRevocations)),
        "malformed"
    );
    assert_eq!(resign(&k, &kept).unwrap(), token);
    assert_eq!(unsigned_claims(&kept).unwrap(), claims);

    // After a rotation the same claims come back under the new key.
    let new_key = key(2);
    let again = resign(&new_key, &kept).unwrap();
    let verified = verify(&again, &new_key, &at(10), &NoRevocations).unwrap();
    assert_eq!(verified.token_id, claims.token_id);
    assert_eq!(verified.expires_at, claims.expires_at);
    assert_eq!(verified.key_id, new_key.key_id());
    assert_eq!(
        kind(verify(&again, &k, &at(10), &NoRevocations)),
        "unknown_key"
    );

    assert!(matches!(
        resign(&k, "not base64!"),
        Err(MalformedToken::Base64 { .. })
    ));
    assert!(resign(&k, &URL_SAFE_NO_PAD.encode(b"short")).is_err());
}

// ---- time and scope -------------------------------------------------------------------

#[test]
fn validity_window_with_clock_skew() {
    let (token, k, _) = token_and_key();
    let check = |secs_from_issue: i64, skew: u32, want: &str| {
        let opts = at(secs_from_issue).clock_skew_secs(skew);
        assert_eq!(
            kind(verify(&token, &k, &opts, &NoRevocations)),
            want,
            "at {secs_from_issue}s, skew {skew}s"
        );
    };
    check(0, 0, "ok");
    check(299, 0, "ok");
    check(300, 0, "expired");
    check(304, 5, "ok");
    check(305, 5, "expired");
    check(100_000, 5, "expired");
    check(-1, 0, "not_yet_valid");
    check(-5, 5, "ok");
    check(-6, 5, "not_yet_valid");
    check(-100_000, 5, "not_yet_valid");
    // A micro-second past the allowance is already too late.
    let opts = VerifyOptions::new(T0.add_secs(305).add_micros(-1));
    assert_eq!(kind(verify(&token, &k, &opts, &NoRevocations)), "ok");
}

#[test]
fn scope_is_checked_for_what_the_verifier_names() {
    let (token, k, _) = token_and_key();
    let check = |opts: VerifyOptions<'_>, want: &str| {
        assert_eq!(
            kind(verify(&token, &k, &opts, &NoRevocations)),
            want,
            "{opts:?}"
        );
    };
    check(at(1).actor("ai_agent:customer_service"), "ok");
    check(at(1).actor("ai_agent:customer_servic"), "scope");
    check(at(1).actor("ai_agent:customer_service2"), "scope");
    check(at(1).action("read:customer_data"), "ok");
    check(at(1).action("write:customer_data"), "scope");
    check(at(1).tool("database_query"), "ok");
    check(at(1).tool("database_*"), "scope");
    check(at(1).audience("crm-service"), "ok");
    check(at(1).audience("billing"), "scope");
    // Time is checked before scope.
    check(at(400).actor("someone_else"), "expired");

    // A token without tool or audience does not satisfy a verifier that names one.
    let bare = Claims::builder(
        DecisionId::new(T0, 1),
        Actor::new("a").unwrap(),
        Action::new("b").unwrap(),
        [0; 32],
    )
    .build(k.key_id(), T0, 2)
    .unwrap();
    let t = mint(&k, &bare).unwrap();
    let err = verify(&t, &k, &at(1).tool("database_query"), &NoRevocations).unwrap_err();
    assert_eq!(err.kind(), "scope");
    expect![[r#"token scope does not match: its tool is not set, not "database_query"; use a token issued for this tool"#]]
        .assert_eq(&err.to_string());
    assert_eq!(
        kind(verify(&t, &k, &at(1).audience("crm"), &NoRevocations)),
        "scope"
    );
}

#[test]
fn revocation_is_checked_before_the_signature() {
    let (token, k, c) = token_and_key();
    let mut revoked = HashSet::new();
    revoked.insert(c.token_id);
    assert_eq!(kind(verify(&token, &k, &at(1), &revoked)), "revoked");
    // With a broken signature and an unknown key it still says revoked: no key or
    // signature work was done.
    let broken = format!("{}A", &token[..token.len() - 1]);
    assert_eq!(kind(verify(&broken, &key(9), &at(1), &revoked)), "revoked");
    let other: HashSet<TokenId> = [TokenId::new(T0, 5)].into();
    assert_eq!(kind(verify(&token, &k, &at(1), &other)), "ok");
    let list = [c.token_id];
    assert_eq!(kind(verify(&token, &k, &at(1), &list[..])), "revoked");
}

fn check_message(err: VerifyError, expect: Expect) {
    expect.assert_eq(&format!("{}: {err}", err.kind()));
}

#[test]
fn errors_say_which_check_failed() {
    let (token, k, c) = token_and_key();
    let revoked: HashSet<TokenId> = [c.token_id].into();
    check_message(
        verify("lxc1.abc", &k, &at(1), &NoRevocations).unwrap_err(),
        expect![[
            r#"malformed: token is malformed: expected lxc1.<payload>.<signature>; pass the whole lxc1. string exactly as issued"#
        ]],
    );
    check_message(
        verify(&token, &k, &at(1), &revoked).unwrap_err(),
        expect![
            "revoked: token tok_01M3250V00XVEWSEXAK647ESJN has been revoked; ask for a new decision"
        ],
    );
    check_message(
        verify(&token, &key(2), &at(1), &NoRevocations).unwrap_err(),
        expect![
            "unknown_key: token was signed by key 34750f98bd59fcfc, which this verifier does not know (or no longer keeps); load the issuing node's current and retired public keys"
        ],
    );
    check_message(
        verify(
            &with_claims(&token, &claims_for(&k)).replace("lxc1.A", "lxc1.B"),
            &k,
            &at(1),
            &NoRevocations,
        )
        .unwrap_err(),
        expect![
            "malformed: token is malformed: the payload does not decode: input ends at byte 4 inside a value; pass the whole lxc1. string exactly as issued"
        ],
    );
    check_message(
        verify(&token, &k, &at(400), &NoRevocations).unwrap_err(),
        expect![
            "expired: token expired at 2026-09-21T14:18:20.000000Z (now 2026-09-21T14:20:00.000000Z, 5s clock skew allowed); ask for a new decision"
        ],
    );
    check_message(
        verify(&token, &k, &at(-400), &NoRevocations).unwrap_err(),
        expect![
            "not_yet_valid: token is not valid before 2026-09-21T14:13:20.000000Z (now 2026-09-21T14:06:40.000000Z, 5s clock skew allowed); check this machine's clock"
        ],
    );
    check_message(
        verify(&token, &k, &at(1).actor("bob"), &NoRevocations).unwrap_err(),
        expect![[
            r#"scope: token scope does not match: its actor is "ai_agent:customer_service", not "bob"; use a token issued for this actor"#
        ]],
    );
    let mut c2 = c.clone();
    c2.actor = Actor::new("mallory").unwrap();
    check_message(
        verify(&with_claims(&token, &c2), &k, &at(1), &NoRevocations).unwrap_err(),
        expect![
            "signature: token signature does not verify with key 34750f98bd59fcfc; the token was altered or not issued by that key"
        ],
    );
}

#[test]
fn claims_builder_rejects_unusable_claims() {
    let k = key(1);
    let b = || {
        Claims::builder(
            DecisionId::new(T0, 1),
            Actor::new("a").unwrap(),
            Action::new("b").unwrap(),
            [0; 32],
        )
    };
    assert!(matches!(
        b().ttl_secs(0).build(k.key_id(), T0, 1),
        Err(ClaimsError::EmptyWindow { .. })
    ));
    for aud in ["", "has space", "tab\t", "é", &"x".repeat(257)] {
        assert_eq!(
            b().audience(Some(aud.to_owned())).build(k.key_id(), T0, 1),
            Err(ClaimsError::BadAudience),
            "{aud:?}"
        );
    }
    assert!(
        b().audience(Some("x".repeat(256)))
            .build(k.key_id(), T0, 1)
            .is_ok()
    );
    let mut c = b().build(k.key_id(), T0, 1).unwrap();
    c.issued_at = c.not_before.add_secs(1);
    assert!(matches!(
        mint(&k, &c),
        Err(ClaimsError::IssuedAfterNotBefore { .. })
    ));
}

// ---- malformed input ------------------------------------------------------------------

#[test]
fn malformed_strings_are_rejected() {
    let (token, k, _) = token_and_key();
    let (_, sig_b64) = token.rsplit_once('.').unwrap();
    let check = |input: &str, want: &str| {
        let err = verify(input, &k, &at(1), &NoRevocations).unwrap_err();
        assert_eq!(err.kind(), "malformed", "{input:?}");
        let VerifyError::Malformed(m) = err else {
            unreachable!()
        };
        assert_eq!(
            format!("{m:?}").split([' ', '{', '(']).next().unwrap(),
            want,
            "{input:?}: {m}"
        );
    };
    check("", "Prefix");
    check("lxc1", "Prefix");
    check("lxc2.AAAA.AAAA", "Prefix");
    check("LXC1.AAAA.AAAA", "Prefix");
    check(&format!(" {token}"), "Prefix");
    check("lxc1.", "Shape");
    check("lxc1.AAAA", "Shape");
    check(&format!("lxc1..{sig_b64}"), "Shape");
    check(&format!("{token}."), "Shape");
    check(&format!("{token}.x"), "Shape");
    check(&format!("{token}="), "SignatureLength");
    check(&format!("{token}\n"), "SignatureLength");
    check(&format!("{token}AA"), "SignatureLength");
    check(&format!("lxc1.AAAA.{}", &sig_b64[..85]), "SignatureLength");
    check(&format!("lxc1.AA=A.{sig_b64}"), "Base64");
    check(&format!("lxc1.AA+/.{sig_b64}"), "Base64");
    check(&format!("lxc1.AAA.{sig_b64}"), "Payload");
    check(&format!("lxc1.A.{sig_b64}"), "Base64");
    // Non-canonical trailing bits in the last signature character.
    let last = sig_b64.as_bytes()[85];
    let tweaked = if last == b'A' { 'B' } else { 'A' };
    check(&format!("{}{tweaked}", &token[..token.len() - 1]), "Base64");
    check(
        &format!("{}{}", token, "A".repeat(MAX_TOKEN_LEN)),
        "TooLong",
    );
    // Trailing bytes inside the payload.
    let mut payload = URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1).unwrap())
        .unwrap();
    payload.push(0);
    check(
        &format!("lxc1.{}.{sig_b64}", URL_SAFE_NO_PAD.encode(&payload)),
        "Payload",
    );
    // Every truncation.
    for n in 0..token.len() {
        assert_eq!(
            kind(verify(&token[..n], &k, &at(1), &NoRevocations)),
            "malformed",
            "{n}"
        );
    }
}

proptest! {
    #[test]
    fn garbage_never_verifies_or_panics(s in ".{0,300}", raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        let k = key(1);
        prop_assert!(verify(&s, &k, &at(1), &NoRevocations).is_err());
        let as_token = format!("lxc1.{}.{}", URL_SAFE_NO_PAD.encode(&raw), URL_SAFE_NO_PAD.encode([0u8; 64]));
        prop_assert!(verify(&as_token, &k, &at(1), &NoRevocations).is_err());
    }

    #[test]
    fn truncated_or_padded_tokens_never_verify(cut in 0usize..500, pad in "[=A.\\n \\t-]{1,8}", front in any::<bool>()) {
        let (token, k, _) = token_and_key();
        let truncated = &token[..cut % token.len()];
        prop_assert_eq!(kind(verify(truncated, &k, &at(1), &NoRevocations)), "malformed");
        let padded = if front { format!("{pad}{token}") } else { format!("{token}{pad}") };
        prop_assert_eq!(kind(verify(&padded, &k, &at(1), &NoRevocations)), "malformed");
    }

    #[test]
    fn edited_tokens_never_verify(pos in 0usize..400, ch in "[A-Za-z0-9_=.+/ -]", op in 0u8..3) {
        let (token, k, _) = token_and_key();
        let pos = pos % token.len();
        let mut edited = token.clone();
        match op {
            0 => { edited.replace_range(pos..=pos, &ch); }
            1 => edited.insert_str(pos, &ch),
            _ => { edited.remove(pos); }
        }
        prop_assume!(edited != token);
        prop_assert!(verify(&edited, &k, &at(1), &NoRevocations).is_err());
    }
}

// ---- rotation ---------------------------------------------------------------------------

#[test]
fn a_rotated_key_verifies_old_tokens_until_they_expire_and_not_after() {
    let (old_token, k1, _) = token_and_key();
    let mut ring = KeyRing::new(k1.clone());
    let k2 = key(2);
    // Rotate 100 s after issue; tokens live 300 s, skew 5 s.
    let retired = ring.rotate(k2.clone(), T0.add_secs(100), 305);
    assert_eq!(retired.key.key_id(), k1.key_id());
    assert_eq!(retired.keep_until, T0.add_secs(405));
    assert_eq!(ring.active().key_id(), k2.key_id());
    let new_token = mint(ring.active(), &claims_for(&k2)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    ring.save(dir.path(), "node").unwrap();
    let loaded = KeyRing::load(dir.path(), "node").unwrap();
    let public = PublicKeyRing::load(dir.path(), "node").unwrap();
    assert_eq!(public.retired(), ring.retired());
    assert_eq!(loaded.retired(), ring.retired());
    assert_eq!(loaded.active().key_id(), k2.key_id());

    for keys in [&ring as &dyn KeyLookup, &loaded, &public] {
        let check = |token: &str, secs: i64, want: &str| {
            assert_eq!(
                kind(verify(token, keys, &at(secs), &NoRevocations)),
                want,
                "at {secs}"
            );
        };
        check(&old_token, 150, "ok");
        check(&old_token, 304, "ok");
        check(&old_token, 305, "expired");
        check(&old_token, 406, "unknown_key");
        check(&new_token, 150, "ok");
    }
    // A token minted with the retired key after the rotation (a stolen old key) is
    // refused: it outlives the time the key is kept.
    let late = Claims::builder(
        DecisionId::new(T0, 3),
        Actor::new("ai_agent:customer_service").unwrap(),
        Action::new("read:customer_data").unwrap(),
        [0; 32],
    )
    .build(k1.key_id(), T0.add_secs(200), 4)
    .unwrap();
    let late = mint(&k1, &late).unwrap();
    for keys in [&ring as &dyn KeyLookup, &public] {
        let err = verify(&late, keys, &at(210), &NoRevocations).unwrap_err();
        assert_eq!(err.kind(), "unknown_key");
        assert!(
            matches!(err, VerifyError::OutlivesRetiredKey { .. }),
            "{err}"
        );
    }
    // The old key alone no longer verifies new tokens.
    assert_eq!(
        kind(verify(&new_token, &k1, &at(1), &NoRevocations)),
        "unknown_key"
    );

    // Pruning forgets the retired key and its files.
    let mut ring = loaded;
    assert_eq!(ring.prune(T0.add_secs(405)), 0);
    assert_eq!(ring.prune(T0.add_secs(406)), 1);
    ring.save(dir.path(), "node").unwrap();
    assert!(
        PublicKeyRing::load(dir.path(), "node")
            .unwrap()
            .retired()
            .is_empty()
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join(RETIRED_DIR))
            .unwrap()
            .count(),
        0
    );
}

// ---- key files --------------------------------------------------------------------------

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_files_round_trip_with_modes_and_refuse_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let k = key(3);
    k.write_files(&keys, "node").unwrap();
    let private = keys.join("node.ed25519");
    let public = keys.join("node.ed25519.pub");
    #[cfg(unix)]
    {
        assert_eq!(mode(&private), 0o600);
        assert_eq!(mode(&public), 0o644);
    }
    let text = std::fs::read_to_string(&private).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
    let pub_text = std::fs::read_to_string(&public).unwrap();
    assert!(
        pub_text.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{pub_text}"
    );
    assert_eq!(NodeKey::load(&private).unwrap().key_id(), k.key_id());
    assert_eq!(load_public_key(&public).unwrap(), *k.public_key());

    let err = key(4).write_files(&keys, "node").unwrap_err();
    assert!(matches!(err, KeyError::Exists { .. }), "{err}");
    assert_eq!(
        NodeKey::load(&private).unwrap().key_id(),
        k.key_id(),
        "unchanged"
    );
    key(4).replace_files(&keys, "node").unwrap();
    assert_eq!(NodeKey::load(&private).unwrap().key_id(), key(4).key_id());
    #[cfg(unix)]
    assert_eq!(mode(&private), 0o600);
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(&keys).unwrap().count(), 2);
}

#[cfg(unix)]
#[test]
fn a_private_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    key(3).write_files(dir.path(), "node").unwrap();
    let private = dir.path().join("node.ed25519");
    for bad in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = NodeKey::load(&private).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, KeyError::Permissions { .. }), "{msg}");
        assert!(
            msg.contains(&format!("chmod 600 {}", private.display())),
            "{msg}"
        );
        assert!(msg.contains(&format!("{bad:03o}")), "{msg}");
    }
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(NodeKey::load(&private).is_ok());
}

#[test]
fn bad_key_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("node.ed25519");
    let public = dir.path().join("node.ed25519.pub");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&private).unwrap(), b"not a key\n").unwrap();
    std::fs::write(
        &public,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    for err in [
        NodeKey::load(&private).unwrap_err(),
        load_public_key(&public).unwrap_err(),
        NodeKey::load(&dir.path().join("missing")).unwrap_err(),
    ] {
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
    }
    assert!(matches!(
        NodeKey::load(&private),
        Err(KeyError::Format { .. })
    ));
    // A public key where the private key belongs is a format error, not a panic.
    key(1).write_files(&dir.path().join("k"), "x").unwrap();
    let wrong = dir.path().join("k").join("x.ed25519.pub");
    assert!(matches!(
        load_public_key(&dir.path().join("k").join("x.ed25519")),
        Err(KeyError::Format { .. })
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(matches!(
        NodeKey::load(&wrong),
        Err(KeyError::Format { .. })
    ));
}

#[test]
fn debug_output_never_shows_the_secret() {
    let k = key(5);
    let dbg = format!("{k:?}");
    assert!(dbg.contains(k.key_id()), "{dbg}");
    assert!(!dbg.contains("5, 5") && !dbg.contains("0505"), "{dbg}");
}

#[test]
fn rotating_back_to_a_retired_key_makes_it_active_only() {
    let mut ring = KeyRing::new(key(1));
    ring.rotate(key(2), T0, 305);
    ring.rotate(key(1), T0.add_secs(10), 305);
    let ids: Vec<&str> = ring.retired().iter().map(|r| r.key.key_id()).collect();
    assert_eq!(ids, [key(2).key_id()]);
    // Tokens of the active key are not capped by an old retirement.
    let c = Claims::builder(
        DecisionId::new(T0, 1),
        Actor::new("a").unwrap(),
        Action::new("b").unwrap(),
        [0; 32],
    )
    .ttl_secs(3600)
    .build(key(1).key_id(), T0.add_secs(20), 1)
    .unwrap();
    let t = mint(ring.active(), &c).unwrap();
    assert_eq!(kind(verify(&t, &ring, &at(1000), &NoRevocations)), "ok");
}
