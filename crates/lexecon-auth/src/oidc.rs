//! OIDC ID-token validation: JWT parsing, JWKS keys, signature and claim checks.
//!
//! Hand-written on the RustCrypto crates to keep the dependency tree small and the
//! rules explicit: only RS256, ES256 and EdDSA (Ed25519) are accepted, the header's
//! `alg` must match the key's type (no algorithm confusion, no `none`), `iss` and `aud`
//! must match the provider exactly, `exp` is required, `email_verified` must be `true`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use lexecon_core::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::Role;
use crate::secret::ct_eq;

/// Why an ID token was rejected. Every case means: the caller is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// No provider of that name is configured.
    #[error("unknown oidc provider {0:?}: use one listed by ListOidcProviders")]
    UnknownProvider(String),
    /// Not a well-formed JWT, or a claim has the wrong type.
    #[error("malformed id token: {0}")]
    Malformed(&'static str),
    /// `alg` is not one we accept, or does not fit the key.
    #[error(
        "unsupported or mismatched id token algorithm {0:?}: the provider must sign with RS256, ES256 or EdDSA"
    )]
    UnsupportedAlgorithm(String),
    /// No key in the provider's JWKS has the token's `kid`.
    #[error("id token signed by an unknown key id: check the provider's jwks")]
    UnknownKey,
    /// The signature does not verify.
    #[error("id token signature is invalid")]
    BadSignature,
    /// `iss` is not the provider's issuer.
    #[error("id token issuer does not match the provider's issuer")]
    WrongIssuer,
    /// `aud` does not contain the provider's client id.
    #[error("id token audience does not include this client id")]
    WrongAudience,
    /// `exp` is past (beyond the allowed skew).
    #[error("id token has expired: get a fresh one from the provider")]
    Expired,
    /// `nbf` is in the future (beyond the allowed skew).
    #[error("id token is not valid yet: check the clocks")]
    NotYetValid,
    /// The nonce does not match the one the client sent.
    #[error("id token nonce does not match the request's nonce")]
    NonceMismatch,
    /// `email_verified` is missing or not `true`.
    #[error("the provider has not verified this account's email: verify it first")]
    EmailNotVerified,
    /// The JWKS could not be read or parsed.
    #[error("cannot load the provider's jwks: {0}")]
    Jwks(String),
}

/// Where a provider's JWKS (JSON Web Key Set) comes from.
///
/// The crate ships [`FileJwksSource`]; the engine implements fetching from a URL.
/// Results are cached by [`OidcProvider`], so a source may be slow.
#[async_trait::async_trait]
pub trait JwksSource: Send + Sync + fmt::Debug {
    /// The JWKS document (JSON).
    async fn fetch(&self) -> Result<String, OidcError>;
}

/// A JWKS read from a local file (re-read when the cache expires).
#[derive(Debug, Clone)]
pub struct FileJwksSource {
    path: std::path::PathBuf,
}

impl FileJwksSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        FileJwksSource { path: path.into() }
    }
}

#[async_trait::async_trait]
impl JwksSource for FileJwksSource {
    async fn fetch(&self) -> Result<String, OidcError> {
        std::fs::read_to_string(&self.path)
            .map_err(|e| OidcError::Jwks(format!("reading {}: {e}", self.path.display())))
    }
}

/// A JWKS held in memory (for configuration given inline, and tests).
#[derive(Debug, Clone)]
pub struct StaticJwksSource(pub String);

#[async_trait::async_trait]
impl JwksSource for StaticJwksSource {
    async fn fetch(&self) -> Result<String, OidcError> {
        Ok(self.0.clone())
    }
}

/// A configured OIDC provider (deserializable from configuration; omitted fields take
/// the defaults of [`OidcProviderConfig::new`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The provider's name (what clients pass as `provider`).
    pub name: String,
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    /// Our client id: the required audience.
    pub client_id: String,
    /// The claim that carries the role (a string or an array of strings); `None` gives
    /// everyone `default_role`.
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Claim values to roles (e.g. a group name to `admin`); when empty, claim values
    /// are read as role names. `agent` is never granted through OIDC.
    #[serde(default)]
    pub role_map: BTreeMap<String, Role>,
    /// The role when the claim is absent or maps to nothing.
    #[serde(default = "default_role")]
    pub default_role: Role,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: i64,
    /// Seconds a fetched JWKS is used before it is fetched again.
    #[serde(default = "default_jwks_cache")]
    pub jwks_cache_secs: i64,
}

fn default_role() -> Role {
    Role::Viewer
}
fn default_skew() -> i64 {
    60
}
fn default_jwks_cache() -> i64 {
    600
}

impl OidcProviderConfig {
    /// A provider with the defaults: role `viewer`, 60 s skew, 10 min JWKS cache.
    pub fn new(name: &str, issuer: &str, client_id: &str) -> Self {
        OidcProviderConfig {
            name: name.to_owned(),
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            role_claim: None,
            role_map: BTreeMap::new(),
            default_role: default_role(),
            clock_skew_secs: default_skew(),
            jwks_cache_secs: default_jwks_cache(),
        }
    }
}

/// A provider with its key source and key cache.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// Its configuration.
    pub config: OidcProviderConfig,
    source: Arc<dyn JwksSource>,
    cache: Arc<Mutex<Option<CachedJwks>>>,
}

#[derive(Debug, Clone)]
struct CachedJwks {
    fetched_at: Timestamp,
    keys: Arc<Vec<Jwk>>,
}

/// An unknown `kid` forces a refetch at most this often (keys rotate, but a flood of
/// tokens with made-up key ids must not turn into a flood of fetches).
const MIN_REFETCH_SECS: i64 = 30;

/// What a valid ID token says about its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The provider's name.
    pub provider: String,
    /// `sub`: the stable subject id (accounts are linked by this, never by email).
    pub subject: String,
    /// `email`, when present (verified: tokens without `email_verified = true` fail).
    pub email: Option<String>,
    /// The mapped role.
    pub role: Role,
    /// Whether the provider says it used multiple factors (`amr` contains `mfa`).
    pub mfa: bool,
}

impl OidcProvider {
    /// A provider reading its keys from `source`.
    pub fn new(config: OidcProviderConfig, source: Arc<dyn JwksSource>) -> Self {
        OidcProvider {
            config,
            source,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// Validates `id_token` at `now`; `nonce` is checked when non-empty.
    pub async fn validate(
        &self,
        id_token: &str,
        nonce: Option<&str>,
        now: Timestamp,
    ) -> Result<OidcIdentity, OidcError> {
        let jwt = Jwt::parse(id_token)?;
        let alg = Alg::parse(&jwt.header.alg)?;
        let key = self.key_for(jwt.header.kid.as_deref(), alg, now).await?;
        key.verify(alg, jwt.signing_input.as_bytes(), &jwt.signature)?;
        self.check_claims(&jwt.claims, nonce, now)
    }

    async fn key_for(&self, kid: Option<&str>, alg: Alg, now: Timestamp) -> Result<Jwk, OidcError> {
        let cached = self.cached();
        let fresh_enough = |c: &CachedJwks, secs: i64| c.fetched_at.add_secs(secs) > now;
        let keys = match &cached {
            Some(c) if fresh_enough(c, self.config.jwks_cache_secs) => {
                match find_key(&c.keys, kid, alg) {
                    Some(k) => return Ok(k),
                    None if fresh_enough(c, MIN_REFETCH_SECS) => return Err(OidcError::UnknownKey),
                    None => self.refetch(now).await?,
                }
            }
            _ => self.refetch(now).await?,
        };
        find_key(&keys, kid, alg).ok_or(OidcError::UnknownKey)
    }

    fn cached(&self) -> Option<CachedJwks> {
        self.cache.lock().map(|g| g.clone()).unwrap_or(None)
    }

    async fn refetch(&self, now: Timestamp) -> Result<Arc<Vec<Jwk>>, OidcError> {
        let text = self.source.fetch().await?;
        let keys = Arc::new(parse_jwks(&text)?);
        if let Ok(mut guard) = self.cache.lock() {
            *guard = Some(CachedJwks {
                fetched_at: now,
                keys: Arc::clone(&keys),
            });
        }
        Ok(keys)
    }

    fn check_claims(
        &self,
        claims: &serde_json::Map<String, Value>,
        nonce: Option<&str>,
        now: Timestamp,
    ) -> Result<OidcIdentity, OidcError> {
        let cfg = &self.config;
        let iss = claims.get("iss").and_then(Value::as_str);
        if iss != Some(cfg.issuer.as_str()) {
            return Err(OidcError::WrongIssuer);
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == cfg.client_id,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&cfg.client_id)),
            _ => false,
        };
        if !aud_ok {
            return Err(OidcError::WrongAudience);
        }
        if let Some(azp) = claims.get("azp")
            && azp.as_str() != Some(cfg.client_id.as_str())
        {
            return Err(OidcError::WrongAudience);
        }
        let now_secs = now.unix_secs();
        let exp = numeric_claim(claims, "exp")?.ok_or(OidcError::Malformed("exp is required"))?;
        if now_secs >= exp.saturating_add(cfg.clock_skew_secs) {
            return Err(OidcError::Expired);
        }
        if let Some(nbf) = numeric_claim(claims, "nbf")?
            && now_secs.saturating_add(cfg.clock_skew_secs) < nbf
        {
            return Err(OidcError::NotYetValid);
        }
        if let Some(want) = nonce.filter(|n| !n.is_empty()) {
            let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
            if !ct_eq(got.as_bytes(), want.as_bytes()) {
                return Err(OidcError::NonceMismatch);
            }
        }
        if claims.get("email_verified") != Some(&Value::Bool(true)) {
            return Err(OidcError::EmailNotVerified);
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(OidcError::Malformed("sub is required"))?
            .to_owned();
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mfa = matches!(claims.get("amr"), Some(Value::Array(a)) if a.iter().any(|v| v.as_str() == Some("mfa")));
        Ok(OidcIdentity {
            provider: cfg.name.clone(),
            subject,
            email,
            role: self.map_role(claims),
            mfa,
        })
    }

    fn map_role(&self, claims: &serde_json::Map<String, Value>) -> Role {
        let cfg = &self.config;
        let Some(claim) = cfg.role_claim.as_deref().and_then(|c| claims.get(c)) else {
            return cfg.default_role;
        };
        let values: Vec<&str> = match claim {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        values
            .into_iter()
            .filter_map(|v| {
                if cfg.role_map.is_empty() {
                    v.parse::<Role>().ok()
                } else {
                    cfg.role_map.get(v).copied()
                }
            })
            .filter(|r| r.is_human())
            .max()
            .unwrap_or(cfg.default_role)
    }
}

fn numeric_claim(
    claims: &serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, OidcError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(OidcError::Malformed("exp, nbf and iat must be numbers")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    fn parse(alg: &str) -> Result<Alg, OidcError> {
        match alg {
            "RS256" => Ok(Alg::Rs256),
            "ES256" => Ok(Alg::Es256),
            "EdDSA" => Ok(Alg::EdDsa),
            other => Err(OidcError::UnsupportedAlgorithm(
                other.chars().take(16).collect(),
            )),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

struct Jwt {
    header: Header,
    claims: serde_json::Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

fn b64url(s: &str) -> Result<Vec<u8>, OidcError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| OidcError::Malformed("not base64url"))
}

/// Upper bound on an ID token's size; real ones are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

impl Jwt {
    fn parse(token: &str) -> Result<Jwt, OidcError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(OidcError::Malformed("token too large"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::Malformed("expected three dot-separated parts"));
        };
        let header: Header = serde_json::from_slice(&b64url(h)?)
            .map_err(|_| OidcError::Malformed("header is not a json object with alg"))?;
        let claims: serde_json::Map<String, Value> = serde_json::from_slice(&b64url(p)?)
            .map_err(|_| OidcError::Malformed("payload is not a json object"))?;
        let signature = b64url(s)?;
        let signing_input = token
            .get(..h.len() + 1 + p.len())
            .ok_or(OidcError::Malformed("bad token framing"))?
            .to_owned();
        Ok(Jwt {
            header,
            claims,
            signing_input,
            signature,
        })
    }
}

/// A public key from a JWKS.
#[derive(Clone)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

#[derive(Clone)]
enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.key {
            PublicKey::Rsa(_) => "RSA",
            PublicKey::P256(_) => "EC P-256",
            PublicKey::Ed25519(_) => "OKP Ed25519",
        };
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("kty", &kind)
            .finish()
    }
}

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        matches!(
            (&self.key, alg),
            (PublicKey::Rsa(_), Alg::Rs256)
                | (PublicKey::P256(_), Alg::Es256)
                | (PublicKey::Ed25519(_), Alg::EdDsa)
        )
    }

    fn verify(&self, alg: Alg, message: &[u8], signature: &[u8]) -> Result<(), OidcError> {
        use rsa::signature::Verifier as _;
        let ok = match (&self.key, alg) {
            (PublicKey::Rsa(k), Alg::Rs256) => {
                let vk = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(k.clone());
                rsa::pkcs1v15::Signature::try_from(signature)
                    .is_ok_and(|sig| vk.verify(message, &sig).is_ok())
            }
            (PublicKey::P256(k), Alg::Es256) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify(message, &sig).is_ok()),
            (PublicKey::Ed25519(k), Alg::EdDsa) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| k.verify_strict(message, &sig).is_ok()),
            _ => return Err(OidcError::UnsupportedAlgorithm(format!("{alg:?}"))),
        };
        if ok {
            Ok(())
        } else {
            Err(OidcError::BadSignature)
        }
    }
}

fn find_key(keys: &[Jwk], kid: Option<&str>, alg: Alg) -> Option<Jwk> {
    keys.iter()
        .filter(|k| k.fits(alg))
        .find(|k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            // Without a kid only an unambiguous key set is usable.
            None => keys.iter().filter(|k| k.fits(alg)).count() == 1,
        })
        .cloned()
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Parses a JWKS; keys of other types or uses are skipped (providers list encryption
/// keys and algorithms we do not accept alongside the signing keys).
fn parse_jwks(text: &str) -> Result<Vec<Jwk>, OidcError> {
    let raw: RawJwks = serde_json::from_str(text)
        .map_err(|e| OidcError::Jwks(format!("not a jwks document: {e}")))?;
    let mut keys = Vec::new();
    for k in raw.keys {
        if k.use_.as_deref().is_some_and(|u| u != "sig") {
            continue;
        }
        let key = match (k.kty.as_str(), k.crv.as_deref()) {
            ("RSA", _) => {
                let (Some(n), Some(e)) = (&k.n, &k.e) else {
                    continue;
                };
                let n = rsa::BigUint::from_bytes_be(&b64url(n).map_err(jwks_err)?);
                let e = rsa::BigUint::from_bytes_be(&b64url(e).map_err(jwks_err)?);
                // Shorter RSA keys are breakable; a provider offering one is misconfigured.
                if n.bits() < 2048 {
                    continue;
                }
                match rsa::RsaPublicKey::new(n, e) {
                    Ok(pk) => PublicKey::Rsa(pk),
                    Err(_) => continue,
                }
            }
            ("EC", Some("P-256")) => {
                let (Some(x), Some(y)) = (&k.x, &k.y) else {
                    continue;
                };
                let (x, y) = (b64url(x).map_err(jwks_err)?, b64url(y).map_err(jwks_err)?);
                if x.len() != 32 || y.len() != 32 {
                    continue;
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                match p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1) {
                    Ok(vk) => PublicKey::P256(vk),
                    Err(_) => continue,
                }
            }
            ("OKP", Some("Ed25519")) => {
                let Some(x) = &k.x else { continue };
                let Ok(bytes) = <[u8; 32]>::try_from(b64url(x).map_err(jwks_err)?) else {
                    continue;
                };
                match ed25519_dalek::VerifyingKey::from_bytes(&bytes) {
                    Ok(vk) => PublicKey::Ed25519(vk),
                    Err(_) => continue,
                }
            }
            _ => continue,
        };
        keys.push(Jwk { kid: k.kid, key });
    }
    Ok(keys)
}

fn jwks_err(_: OidcError) -> OidcError {
    OidcError::Jwks("a key has a field that is not base64url".to_owned())
}
