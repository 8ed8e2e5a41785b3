//! Secrets in memory: a redacting wrapper, random tokens and their stored hashes.

use std::fmt;

use base64::Engine as _;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string (token, key, code) whose `Debug` and `Display` never show it.
///
/// Read it with [`SecretString::expose`], only where it is handed to its owner.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Prefix of session tokens.
pub const SESSION_PREFIX: &str = "lxs_";
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "lxk_";
/// Prefix of MFA challenges.
pub const CHALLENGE_PREFIX: &str = "lxc_";

/// A fresh token: `prefix` and 256 random bits in unpadded base64url (43 characters).
pub(crate) fn random_token(rng: &mut dyn CryptoRngCore, prefix: &str) -> SecretString {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SecretString(format!("{prefix}{body}"))
}

/// A non-secret random identifier: `prefix` and 128 random bits in hex.
pub(crate) fn random_id(rng: &mut dyn CryptoRngCore, prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// SHA-256 of a high-entropy secret: what the store keeps instead of the secret.
///
/// A fast hash is right here (unlike passwords): the secrets hashed this way carry at
/// least 80 random bits, so a stolen hash cannot be reversed by guessing.
pub(crate) fn token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time equality of two byte strings (the length is not hidden).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}
