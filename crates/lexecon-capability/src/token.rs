//! The token format, minting and verification.

use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lexecon_core::canonical::{DecodeError, Reader, Writer};
use lexecon_core::{Action, Actor, DecisionId, NameError, Timestamp, TokenId, Tool};

use crate::keys::{KEY_ID_LEN, NodeKey};
use crate::ring::KeyLookup;

/// Every token starts with this version prefix.
pub const TOKEN_PREFIX: &str = "lxc1.";

/// The domain tag the payload starts with; the signature covers the whole payload,
/// so a token signature can never be taken for another Lexecon signature.
pub const PAYLOAD_DOMAIN: &str = "lexecon/capability-token/v1";

/// Longest token string accepted, checked before any decoding. Generous: a token with
/// every name at its maximum length is about 1,520 characters.
pub const MAX_TOKEN_LEN: usize = 2048;

/// Longest audience accepted, in bytes.
pub const MAX_AUDIENCE_LEN: usize = 256;

const SIGNATURE_LEN: usize = 64;
const SIGNATURE_B64_LEN: usize = 86;
const ID_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// What a capability token grants, to whom, until when: its payload.
///
/// Build one with [`Claims::builder`]; [`verify`] returns one only after every check
/// passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims {
    /// This token's id, used to revoke it.
    pub token_id: TokenId,
    /// The id of the key that signs it (see [`crate::key_id_of`]).
    pub key_id: String,
    /// The decision that approved the action.
    pub decision_id: DecisionId,
    /// Who may act (the subject).
    pub actor: Actor,
    /// What they may do.
    pub action: Action,
    /// Through which tool, when the decision named one.
    pub tool: Option<Tool>,
    /// When the token was issued.
    pub issued_at: Timestamp,
    /// Not valid before this instant.
    pub not_before: Timestamp,
    /// Not valid from this instant on.
    pub expires_at: Timestamp,
    /// SHA-256 policy version hash the decision was made under.
    pub policy_hash: [u8; 32],
    /// The service the token is meant for, when the caller named one.
    pub audience: Option<String>,
}

/// Claims that cannot be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimsError {
    /// The validity window is empty or reversed.
    #[error(
        "token validity window is empty: expires at {expires_at}, not before {not_before}; use a positive lifetime"
    )]
    EmptyWindow {
        /// Start of the window.
        not_before: Timestamp,
        /// End of the window.
        expires_at: Timestamp,
    },
    /// The issue time is after the start of the window.
    #[error(
        "token issued at {issued_at}, after its not-before {not_before}; issue it no later than it becomes valid"
    )]
    IssuedAfterNotBefore {
        /// Issue time.
        issued_at: Timestamp,
        /// Start of the window.
        not_before: Timestamp,
    },
    /// The audience is empty, too long, or has characters outside printable ASCII.
    #[error("audience must be 1 to {MAX_AUDIENCE_LEN} printable ASCII characters without spaces")]
    BadAudience,
    /// The claims name another key than the one asked to sign.
    #[error(
        "claims are for key {claims_key_id} but key {signing_key_id} was asked to sign them; build the claims with the signing key's id"
    )]
    KeyMismatch {
        /// Key id in the claims.
        claims_key_id: String,
        /// Key id of the signing key.
        signing_key_id: String,
    },
}

fn audience_ok(aud: &str) -> bool {
    !aud.is_empty() && aud.len() <= MAX_AUDIENCE_LEN && aud.bytes().all(|b| b.is_ascii_graphic())
}

impl Claims {
    /// Starts claims for an approved decision. Defaults: no tool, no audience, a
    /// lifetime of 300 seconds (the `tokens.ttl_secs` default).
    pub fn builder(
        decision_id: DecisionId,
        actor: Actor,
        action: Action,
        policy_hash: [u8; 32],
    ) -> ClaimsBuilder {
        ClaimsBuilder {
            decision_id,
            actor,
            action,
            policy_hash,
            tool: None,
            audience: None,
            ttl_secs: 300,
        }
    }

    /// Checks the claims are internally consistent (the checks [`mint`] makes).
    pub fn validate(&self) -> Result<(), ClaimsError> {
        if self.expires_at <= self.not_before {
            return Err(ClaimsError::EmptyWindow {
                not_before: self.not_before,
                expires_at: self.expires_at,
            });
        }
        if self.issued_at > self.not_before {
            return Err(ClaimsError::IssuedAfterNotBefore {
                issued_at: self.issued_at,
                not_before: self.not_before,
            });
        }
        if let Some(aud) = &self.audience
            && !audience_ok(aud)
        {
            return Err(ClaimsError::BadAudience);
        }
        Ok(())
    }

    /// The canonical payload bytes (the part of the token that is signed).
    pub fn to_payload(&self) -> Vec<u8> {
        let mut w = Writer::new(PAYLOAD_DOMAIN);
        w.bytes(&self.token_id.ulid().to_bytes())
            .str(&self.key_id)
            .bytes(&self.decision_id.ulid().to_bytes())
            .str(self.actor.as_str())
            .str(self.action.as_str())
            .opt_str(self.tool.as_ref().map(Tool::as_str))
            .i64(self.issued_at.unix_micros())
            .i64(self.not_before.unix_micros())
            .i64(self.expires_at.unix_micros())
            .bytes(&self.policy_hash)
            .opt_str(self.audience.as_deref());
        w.finish()
    }

    /// Decodes payload bytes strictly: every field valid, nothing left over.
    fn from_payload(bytes: &[u8]) -> Result<Self, MalformedToken> {
        let mut r = Reader::new(bytes, PAYLOAD_DOMAIN)?;
        let token_id = read_id(&mut r, "token id")?;
        let token_id = TokenId::new(token_id.0, token_id.1);
        let key_id = r.str()?;
        if key_id.len() != KEY_ID_LEN
            || !key_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(MalformedToken::Field {
                field: "key id",
                detail: "expected 16 lowercase hex digits".to_owned(),
            });
        }
        let key_id = key_id.to_owned();
        let decision_id = read_id(&mut r, "decision id")?;
        let decision_id = DecisionId::new(decision_id.0, decision_id.1);
        let actor = Actor::new(r.str()?).map_err(MalformedToken::from_name)?;
        let action = Action::new(r.str()?).map_err(MalformedToken::from_name)?;
        let tool = r
            .opt_str()?
            .map(Tool::new)
            .transpose()
            .map_err(MalformedToken::from_name)?;
        let issued_at = Timestamp::from_unix_micros(r.i64()?);
        let not_before = Timestamp::from_unix_micros(r.i64()?);
        let expires_at = Timestamp::from_unix_micros(r.i64()?);
        let policy_hash: [u8; HASH_LEN] =
            r.bytes()?.try_into().map_err(|_| MalformedToken::Field {
                field: "policy hash",
                detail: "expected 32 bytes".to_owned(),
            })?;
        let audience = r.opt_str()?.map(str::to_owned);
        r.finish()?;
        let claims = Claims {
            token_id,
            key_id,
            decision_id,
            actor,
            action,
            tool,
            issued_at,
            not_before,
            expires_at,
            policy_hash,
            audience,
        };
        claims.validate().map_err(|e| MalformedToken::Field {
            field: "claims",
            detail: e.to_string(),
        })?;
        Ok(claims)
    }
}

/// Reads a 16-byte ULID as (creation time, 80 random bits), the inputs of the id types'
/// constructors, so the id round-trips exactly.
fn read_id(r: &mut Reader<'_>, field: &'static str) -> Result<(Timestamp, u128), MalformedToken> {
    let raw: [u8; ID_LEN] = r.bytes()?.try_into().map_err(|_| MalformedToken::Field {
        field,
        detail: "expected 16 bytes".to_owned(),
    })?;
    let v = u128::from_be_bytes(raw);
    let millis = i64::try_from(v >> 80).unwrap_or(i64::MAX);
    Ok((Timestamp::from_unix_millis(millis), v & ((1u128 << 80) - 1)))
}

/// Builds [`Claims`] for an approved decision; see [`Claims::builder`].
#[derive(Debug, Clone)]
pub struct ClaimsBuilder {
    decision_id: DecisionId,
    actor: Actor,
    action: Action,
    policy_hash: [u8; 32],
    tool: Option<Tool>,
    audience: Option<String>,
    ttl_secs: u32,
}

impl ClaimsBuilder {
    /// The tool the action goes through.
    pub fn tool(mut self, tool: Option<Tool>) -> Self {
        self.tool = tool;
        self
    }

    /// The service the token is meant for (checked by verifiers that name themselves).
    pub fn audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    /// Lifetime in seconds (`tokens.ttl_secs`); must be positive.
    pub fn ttl_secs(mut self, ttl_secs: u32) -> Self {
        self.ttl_secs = ttl_secs;
        self
    }

    /// Claims issued at `now`, valid from `now` for the lifetime, signed by `key_id`,
    /// with a token id made of `now` and the caller's `token_random` bits (at least 80
    /// random bits are used).
    pub fn build(
        self,
        key_id: &str,
        now: Timestamp,
        token_random: u128,
    ) -> Result<Claims, ClaimsError> {
        let claims = Claims {
            token_id: TokenId::new(now, token_random),
            key_id: key_id.to_owned(),
            decision_id: self.decision_id,
            actor: self.actor,
            action: self.action,
            tool: self.tool,
            issued_at: now,
            not_before: now,
            expires_at: now.add_secs(i64::from(self.ttl_secs)),
            policy_hash: self.policy_hash,
            audience: self.audience,
        };
        claims.validate()?;
        Ok(claims)
    }
}

/// Signs `claims` with `key` and returns the token string
/// (`lxc1.` + base64url payload + `.` + base64url signature, no padding).
pub fn mint(key: &NodeKey, claims: &Claims) -> Result<String, ClaimsError> {
    if claims.key_id != key.key_id() {
        return Err(ClaimsError::KeyMismatch {
            claims_key_id: claims.key_id.clone(),
            signing_key_id: key.key_id().to_owned(),
        });
    }
    claims.validate()?;
    let payload = claims.to_payload();
    let signature = key.sign(&payload);
    let mut out = String::with_capacity(
        TOKEN_PREFIX.len() + payload.len().div_ceil(3) * 4 + 1 + SIGNATURE_B64_LEN,
    );
    out.push_str(TOKEN_PREFIX);
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    Ok(out)
}

/// The claims of `token` without its signature, base64url: what may be kept where the
/// token itself must not be (it grants nothing). [`resign`] makes the token again. The
/// signature is not checked; use it on tokens this node minted.
pub fn unsigned(token: &str) -> Result<String, MalformedToken> {
    let (_, payload, _) = parse(token)?;
    Ok(URL_SAFE_NO_PAD.encode(payload))
}

/// The claims in `unsigned` (from [`unsigned`]), decoded strictly. Nothing vouches for
/// them: check them against a trusted record before acting on them.
pub fn unsigned_claims(unsigned: &str) -> Result<Claims, MalformedToken> {
    if unsigned.len() > MAX_TOKEN_LEN {
        return Err(MalformedToken::TooLong {
            len: unsigned.len(),
        });
    }
    let payload = URL_SAFE_NO_PAD
        .decode(unsigned)
        .map_err(|_| MalformedToken::Base64 { part: "payload" })?;
    Claims::from_payload(&payload)
}

/// The token of the claims in `unsigned` (from [`unsigned`]), signed with `key`. With the
/// key that signed it first this is the same token, byte for byte: Ed25519 signatures are
/// deterministic. With another key (the node's key was rotated since) it is a token of
/// the same claims, token id and expiry included, under `key`'s key id.
pub fn resign(key: &NodeKey, unsigned: &str) -> Result<String, MalformedToken> {
    let mut claims = unsigned_claims(unsigned)?;
    key.key_id().clone_into(&mut claims.key_id);
    mint(key, &claims).map_err(|e| MalformedToken::Field {
        field: "claims",
        detail: e.to_string(),
    })
}

/// Why a token string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedToken {
    /// The string is longer than [`MAX_TOKEN_LEN`].
    #[error("it is {len} characters long; at most {MAX_TOKEN_LEN} are accepted")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The string does not start with `lxc1.`.
    #[error("it does not start with {TOKEN_PREFIX:?}")]
    Prefix,
    /// The string is not `lxc1.<payload>.<signature>`.
    #[error("expected lxc1.<payload>.<signature>")]
    Shape,
    /// A part is not unpadded base64url, or has non-canonical trailing bits.
    #[error("the {part} is not unpadded base64url")]
    Base64 {
        /// `payload` or `signature`.
        part: &'static str,
    },
    /// The signature does not have 64 bytes.
    #[error("the signature is not 64 bytes")]
    SignatureLength,
    /// The payload's bytes are not a version 1 payload.
    #[error("the payload does not decode: {0}")]
    Payload(#[from] DecodeError),
    /// A payload field is invalid.
    #[error("the {field} is invalid: {detail}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
}

impl MalformedToken {
    fn from_name(e: NameError) -> Self {
        MalformedToken::Field {
            field: e.field(),
            detail: e.to_string(),
        }
    }
}

/// Splits and decodes a token string without checking its signature, returning the
/// claims, the signed bytes and the signature.
fn parse(token: &str) -> Result<(Claims, Vec<u8>, [u8; SIGNATURE_LEN]), MalformedToken> {
    // Cap the length before decoding anything, so hostile input costs little.
    if token.len() > MAX_TOKEN_LEN {
        return Err(MalformedToken::TooLong { len: token.len() });
    }
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(MalformedToken::Prefix)?;
    let (payload_b64, sig_b64) = rest.split_once('.').ok_or(MalformedToken::Shape)?;
    if payload_b64.is_empty() || sig_b64.contains('.') {
        return Err(MalformedToken::Shape);
    }
    if sig_b64.len() != SIGNATURE_B64_LEN {
        return Err(MalformedToken::SignatureLength);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| MalformedToken::Base64 { part: "payload" })?;
    let mut signature = [0u8; SIGNATURE_LEN];
    let n = URL_SAFE_NO_PAD
        .decode_slice(sig_b64, &mut signature)
        .map_err(|_| MalformedToken::Base64 { part: "signature" })?;
    if n != SIGNATURE_LEN {
        return Err(MalformedToken::SignatureLength);
    }
    let claims = Claims::from_payload(&payload)?;
    Ok((claims, payload, signature))
}

/// Token ids that must no longer be accepted. The engine persists the list; this crate
/// only asks it.
pub trait RevocationList {
    /// Whether the token with this id has been revoked.
    fn is_revoked(&self, token_id: &TokenId) -> bool;
}

/// An empty revocation list, for verifiers that have none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoRevocations;

impl RevocationList for NoRevocations {
    fn is_revoked(&self, _token_id: &TokenId) -> bool {
        false
    }
}

impl<S: BuildHasher> RevocationList for HashSet<TokenId, S> {
    fn is_revoked(&self, token_id: &TokenId) -> bool {
        self.contains(token_id)
    }
}

impl RevocationList for BTreeSet<TokenId> {
    fn is_revoked(&self, token_id: &TokenId) -> bool {
        self.contains(token_id)
    }
}

impl RevocationList for [TokenId] {
    fn is_revoked(&self, token_id: &TokenId) -> bool {
        self.contains(token_id)
    }
}

impl<T: RevocationList + ?Sized> RevocationList for &T {
    fn is_revoked(&self, token_id: &TokenId) -> bool {
        (**self).is_revoked(token_id)
    }
}

/// What the verifier knows: the time, its clock-skew allowance, and optionally who is
/// acting, what, through which tool, and its own name as the audience.
///
/// Signature, key id, not-before and expiry are always checked; nothing here turns them
/// off. Scope is checked for each of actor, action, tool and audience the verifier names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions<'a> {
    /// The verifier's current time.
    pub now: Timestamp,
    /// Seconds of clock difference tolerated on not-before and expiry
    /// (`tokens.clock_skew_secs`, default 5).
    pub clock_skew_secs: u32,
    /// The actor who presents the token, if the verifier knows it.
    pub actor: Option<&'a str>,
    /// The action about to be performed, if known.
    pub action: Option<&'a str>,
    /// The tool about to be used, if known; a token without a tool does not match one.
    pub tool: Option<&'a str>,
    /// The verifier's own name; a token without an audience does not match one.
    pub audience: Option<&'a str>,
}

impl<'a> VerifyOptions<'a> {
    /// Options at `now` with the default 5-second skew allowance and no scope.
    pub fn new(now: Timestamp) -> Self {
        VerifyOptions {
            now,
            clock_skew_secs: 5,
            actor: None,
            action: None,
            tool: None,
            audience: None,
        }
    }

    /// Sets the clock-skew allowance.
    pub fn clock_skew_secs(mut self, secs: u32) -> Self {
        self.clock_skew_secs = secs;
        self
    }

    /// Requires the token to be for this actor.
    pub fn actor(mut self, actor: &'a str) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Requires the token to be for this action.
    pub fn action(mut self, action: &'a str) -> Self {
        self.action = Some(action);
        self
    }

    /// Requires the token to be for this tool.
    pub fn tool(mut self, tool: &'a str) -> Self {
        self.tool = Some(tool);
        self
    }

    /// Requires the token to be meant for this audience.
    pub fn audience(mut self, audience: &'a str) -> Self {
        self.audience = Some(audience);
        self
    }
}

/// Why a token was not accepted; [`VerifyError::kind`] names the failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The string is not a well-formed version 1 token.
    #[error("token is malformed: {0}; pass the whole lxc1. string exactly as issued")]
    Malformed(#[from] MalformedToken),
    /// The token id is on the revocation list.
    #[error("token {token_id} has been revoked; ask for a new decision")]
    Revoked {
        /// The revoked token's id.
        token_id: TokenId,
    },
    /// No known public key has the token's key id.
    #[error(
        "token was signed by key {key_id}, which this verifier does not know (or no longer keeps); load the issuing node's current and retired public keys"
    )]
    UnknownKey {
        /// The key id the token names.
        key_id: String,
    },
    /// The signature does not verify with the named key.
    #[error(
        "token signature does not verify with key {key_id}; the token was altered or not issued by that key"
    )]
    Signature {
        /// The key id the token names.
        key_id: String,
    },
    /// The token was signed by a retired key but expires after that key is kept: it
    /// was minted after the rotation, with a key that no longer signs.
    #[error(
        "token was signed by retired key {key_id} but outlives it (kept until {kept_until}); it was not issued before the rotation, ask for a new decision"
    )]
    OutlivesRetiredKey {
        /// The retired key's id.
        key_id: String,
        /// Until when the key is kept.
        kept_until: Timestamp,
    },
    /// The token's lifetime has ended.
    #[error(
        "token expired at {expires_at} (now {now}, {skew_secs}s clock skew allowed); ask for a new decision"
    )]
    Expired {
        /// End of validity.
        expires_at: Timestamp,
        /// The verifier's time.
        now: Timestamp,
        /// The skew allowance used.
        skew_secs: u32,
    },
    /// The token's lifetime has not begun.
    #[error(
        "token is not valid before {not_before} (now {now}, {skew_secs}s clock skew allowed); check this machine's clock"
    )]
    NotYetValid {
        /// Start of validity.
        not_before: Timestamp,
        /// The verifier's time.
        now: Timestamp,
        /// The skew allowance used.
        skew_secs: u32,
    },
    /// The token is valid but for another actor, action, tool or audience.
    #[error(
        "token scope does not match: its {field} is {}, not {expected:?}; use a token issued for this {field}",
        granted.as_deref().map_or_else(|| "not set".to_owned(), |g| format!("{g:?}"))
    )]
    Scope {
        /// `actor`, `action`, `tool` or `audience`.
        field: &'static str,
        /// What the verifier asked for.
        expected: String,
        /// What the token grants.
        granted: Option<String>,
    },
}

impl VerifyError {
    /// The failed check as one stable word, as the gRPC API reports it: `malformed`,
    /// `unknown_key`, `signature`, `expired`, `not_yet_valid`, `scope` or `revoked`.
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "malformed",
            VerifyError::Revoked { .. } => "revoked",
            VerifyError::UnknownKey { .. } | VerifyError::OutlivesRetiredKey { .. } => {
                "unknown_key"
            }
            VerifyError::Signature { .. } => "signature",
            VerifyError::Expired { .. } => "expired",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::Scope { .. } => "scope",
        }
    }
}

/// Verifies a token offline and returns its claims.
///
/// Checks, in this order, stopping at the first failure: the string decodes strictly;
/// the token id is not revoked (before any signature work, so revoked tokens cost
/// little); the key id names a key `keys` knows at `opts.now`; the Ed25519 signature
/// verifies with `verify_strict`; a token of a retired key does not expire after the
/// key is kept; `not_before - skew <= now < expires_at + skew`; then
/// each of actor, action, tool and audience that `opts` names equals the token's.
pub fn verify(
    token: &str,
    keys: &(impl KeyLookup + ?Sized),
    opts: &VerifyOptions<'_>,
    revoked: &(impl RevocationList + ?Sized),
) -> Result<Claims, VerifyError> {
    let (claims, payload, signature) = parse(token)?;
    if revoked.is_revoked(&claims.token_id) {
        return Err(VerifyError::Revoked {
            token_id: claims.token_id,
        });
    }
    let Some(key) = keys.public_key(&claims.key_id, opts.now) else {
        return Err(VerifyError::UnknownKey {
            key_id: claims.key_id,
        });
    };
    if !key.verify(&payload, &signature) {
        return Err(VerifyError::Signature {
            key_id: claims.key_id,
        });
    }
    if let Some(kept_until) = keys.retired_until(&claims.key_id)
        && claims.expires_at > kept_until
    {
        return Err(VerifyError::OutlivesRetiredKey {
            key_id: claims.key_id,
            kept_until,
        });
    }
    let skew = i64::from(opts.clock_skew_secs);
    if opts.now < claims.not_before.add_secs(-skew) {
        return Err(VerifyError::NotYetValid {
            not_before: claims.not_before,
            now: opts.now,
            skew_secs: opts.clock_skew_secs,
        });
    }
    if opts.now >= claims.expires_at.add_secs(skew) {
        return Err(VerifyError::Expired {
            expires_at: claims.expires_at,
            now: opts.now,
            skew_secs: opts.clock_skew_secs,
        });
    }
    check_scope("actor", opts.actor, Some(claims.actor.as_str()))?;
    check_scope("action", opts.action, Some(claims.action.as_str()))?;
    check_scope("tool", opts.tool, claims.tool.as_ref().map(Tool::as_str))?;
    check_scope("audience", opts.audience, claims.audience.as_deref())?;
    Ok(claims)
}

fn check_scope(
    field: &'static str,
    expected: Option<&str>,
    granted: Option<&str>,
) -> Result<(), VerifyError> {
    match expected {
        Some(want) if granted != Some(want) => Err(VerifyError::Scope {
            field,
            expected: want.to_owned(),
            granted: granted.map(str::to_owned),
        }),
        _ => Ok(()),
    }
}
