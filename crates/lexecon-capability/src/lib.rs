//! Lexecon capability tokens: mint, verify offline, key rings, revocation, node key files.
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod keys;
mod ring;
mod token;

pub use keys::{
    KEY_ID_LEN, KeyError, NodeKey, PRIVATE_KEY_SUFFIX, PUBLIC_KEY_SUFFIX, PublicKey, key_id_of,
    load_public_key,
};
pub use ring::{KeyLookup, KeyRing, PublicKeyRing, RETIRED_DIR, RetiredKey};
pub use token::{
    Claims, ClaimsBuilder, ClaimsError, MAX_AUDIENCE_LEN, MAX_TOKEN_LEN, MalformedToken,
    NoRevocations, PAYLOAD_DOMAIN, RevocationList, TOKEN_PREFIX, VerifyError, VerifyOptions, mint,
    resign, unsigned, unsigned_claims, verify,
};

/// Re-exported so callers can name key types without depending on `ed25519-dalek`
/// themselves, and get the same version this crate uses.
pub use ed25519_dalek;

#[cfg(test)]
mod tests;
