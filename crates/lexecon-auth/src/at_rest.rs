//! Secrets at rest: reversible secrets (TOTP seeds) sealed with AES-256-GCM under a
//! 32-byte master key before they reach the database.
//!
//! Stored form (binary, one column): `"LXE"`, a format version byte (1), the 8-byte key
//! id (the first 8 bytes of SHA-256 of the master key), a 12-byte random nonce, then the
//! ciphertext and its 16-byte tag. The associated data binds the ciphertext to what it is
//! and whose it is (`lexecon/totp_seed/v1` and the user id), so a sealed seed copied onto
//! another user's row does not open. A value without the prefix (or too short to be
//! sealed) is a plaintext seed from before encryption existed; the stores seal those
//! when they are opened.

use std::fmt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use sha2::{Digest as _, Sha256};

/// The prefix of a sealed value: `"LXE"` and the format version.
const MAGIC: [u8; 4] = *b"LXE\x01";
/// Bytes of the key id in a sealed value.
const KEY_ID_LEN: usize = 8;
/// Bytes of the AES-GCM tag.
const TAG_LEN: usize = 16;
/// The shortest sealed value (an empty secret).
const MIN_SEALED: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN + TAG_LEN;
/// Bytes in a master key.
pub const MASTER_KEY_BYTES: usize = 32;

/// A problem with the master keys or a sealed value. Messages name the key id (which
/// is not secret) and what to do; never a key or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// A key is not 32 bytes.
    #[error(
        "master key from {source_name} is {len} bytes; it must be exactly 32 random bytes (raw, or base64 text): create one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`"
    )]
    BadKeyLength {
        /// Where the key came from (a file or an environment variable).
        source_name: String,
        /// Its length.
        len: usize,
    },
    /// A sealed value names a key that is not configured.
    #[error(
        "{what} was encrypted with master key {key_id}, which is not configured (configured: {configured}); add the file holding it to secrets.previous_master_key_files, or set it as the current key"
    )]
    UnknownKey {
        /// Whose secret, e.g. `TOTP seed of user usr_...`.
        what: String,
        /// The key id in the stored value.
        key_id: String,
        /// The key ids configured.
        configured: String,
    },
    /// The value does not open under the key it names.
    #[error(
        "{what} does not decrypt under master key {key_id}: the stored value was altered or moved from another row; restore it from a backup or have the user enroll MFA again"
    )]
    Tampered {
        /// Whose secret.
        what: String,
        /// The key id in the stored value.
        key_id: String,
    },
    /// The operating system's random generator failed.
    #[error("the system random generator failed; cannot encrypt a secret")]
    Random,
}

/// A 32-byte master key and its id. `Debug` shows only the id and where it came from.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; MASTER_KEY_BYTES],
    id: [u8; KEY_ID_LEN],
    source_name: String,
}

impl MasterKey {
    /// The key in `bytes`: exactly 32 raw bytes, or base64 (standard or URL-safe, padded
    /// or not, surrounding whitespace ignored) of 32 bytes. `source_name` (a file or
    /// variable name) appears in errors and `Debug`.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<MasterKey, SecretsError> {
        if let Ok(key) = <[u8; MASTER_KEY_BYTES]>::try_from(bytes) {
            return Ok(MasterKey::new(key, source_name));
        }
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        let decoded = decode_base64(text).unwrap_or_default();
        let len = if decoded.is_empty() {
            bytes.len()
        } else {
            decoded.len()
        };
        <[u8; MASTER_KEY_BYTES]>::try_from(decoded.as_slice())
            .map(|key| MasterKey::new(key, source_name))
            .map_err(|_| SecretsError::BadKeyLength {
                source_name: source_name.to_owned(),
                len,
            })
    }

    /// A fresh random key (what `lexecon init` writes).
    pub fn generate() -> Result<[u8; MASTER_KEY_BYTES], SecretsError> {
        let mut key = [0u8; MASTER_KEY_BYTES];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SecretsError::Random)?;
        Ok(key)
    }

    fn new(key: [u8; MASTER_KEY_BYTES], source_name: &str) -> MasterKey {
        let digest = Sha256::digest(key);
        let mut id = [0u8; KEY_ID_LEN];
        for (to, from) in id.iter_mut().zip(digest.iter()) {
            *to = *from;
        }
        MasterKey {
            key,
            id,
            source_name: source_name.to_owned(),
        }
    }

    /// The key id: 16 hex digits (the first 8 bytes of SHA-256 of the key). Not secret.
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    /// Where the key came from.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    fn aead(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.key)
            .ok()
            .map(LessSafeKey::new)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id())
            .field("source", &self.source_name)
            .finish_non_exhaustive()
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// What the stored TOTP seeds are, counted without opening them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretsCensus {
    /// Seeds still in the clear (from before encryption at rest).
    pub plaintext: u64,
    /// Sealed seeds by master key id.
    pub by_key: std::collections::BTreeMap<String, u64>,
}

impl SecretsCensus {
    /// How many seeds are sealed.
    pub fn sealed(&self) -> u64 {
        self.by_key.values().sum()
    }
}

/// The master keys: the current one seals, it and the previous ones open.
#[derive(Debug, Clone)]
pub struct SecretKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

/// What a sealed value in the store says about itself, without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredForm {
    /// A plaintext secret from before encryption at rest.
    Plaintext,
    /// Sealed under the key with this id (hex).
    Sealed(String),
}

impl SecretKeys {
    /// `current` seals; `previous` (keys from before a rotation) only open.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> SecretKeys {
        SecretKeys { current, previous }
    }

    /// The current key.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// The previous keys.
    pub fn previous(&self) -> &[MasterKey] {
        &self.previous
    }

    /// Whether a key with this id (hex) is configured.
    pub fn knows(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    fn key(&self, key_id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == key_id)
    }

    fn configured(&self) -> String {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| format!("{} from {}", k.id(), k.source_name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Seals `secret` under the current key, bound to `context` and `owner`.
    pub fn seal(&self, context: &str, owner: &str, secret: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretsError::Random)?;
        let key = self.current.aead().ok_or(SecretsError::Random)?;
        let mut in_out = secret.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(context, owner)),
            &mut in_out,
        )
        .map_err(|_| SecretsError::Random)?;
        let mut out = Vec::with_capacity(MIN_SEALED + secret.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Opens a stored value sealed by [`Self::seal`] with the same `context` and
    /// `owner`; a plaintext value (from before encryption) is returned as it is.
    /// `what` names the secret in errors, e.g. `TOTP seed of user usr_...`.
    pub fn open(
        &self,
        context: &str,
        owner: &str,
        stored: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<Vec<u8>, SecretsError> {
        let StoredForm::Sealed(key_id) = stored_form(stored) else {
            return Ok(stored.to_vec());
        };
        let Some(master) = self.key(&key_id) else {
            return Err(SecretsError::UnknownKey {
                what: what(),
                key_id,
                configured: self.configured(),
            });
        };
        let tampered = || SecretsError::Tampered {
            what: what(),
            key_id: key_id.clone(),
        };
        let Some((_, body)) = parse(stored) else {
            return Err(tampered());
        };
        let (nonce, ciphertext) = body.split_first_chunk::<NONCE_LEN>().ok_or_else(tampered)?;
        let nonce = Nonce::assume_unique_for_key(*nonce);
        let key = master.aead().ok_or_else(tampered)?;
        let mut in_out = ciphertext.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad(context, owner)), &mut in_out)
            .map_err(|_| tampered())?;
        Ok(plain.to_vec())
    }
}

/// Whether `stored` is sealed, and under which key id.
pub fn stored_form(stored: &[u8]) -> StoredForm {
    match parse(stored) {
        Some((key_id, _)) => StoredForm::Sealed(hex::encode(key_id)),
        None => StoredForm::Plaintext,
    }
}

/// The key id and the rest (nonce, ciphertext, tag) of a sealed value.
fn parse(stored: &[u8]) -> Option<(&[u8; KEY_ID_LEN], &[u8])> {
    if stored.len() < MIN_SEALED {
        return None;
    }
    let (magic, rest) = stored.split_first_chunk::<4>()?;
    if *magic != MAGIC {
        return None;
    }
    rest.split_first_chunk::<KEY_ID_LEN>()
}

fn aad(context: &str, owner: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(context.len() + owner.len() + 1);
    aad.extend_from_slice(context.as_bytes());
    aad.push(0);
    aad.extend_from_slice(owner.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; 32], "test").unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let keys = SecretKeys::new(key(1), vec![]);
        let sealed = keys.seal("ctx", "usr_a", b"seed-seed-seed-seed!").unwrap();
        assert_eq!(stored_form(&sealed), StoredForm::Sealed(key(1).id()));
        assert!(!sealed.windows(20).any(|w| w == b"seed-seed-seed-seed!"));
        let what = || "TOTP seed of user usr_a".to_owned();
        assert_eq!(
            keys.open("ctx", "usr_a", &sealed, &what).unwrap(),
            b"seed-seed-seed-seed!"
        );
        // Another owner (a swapped row) or another context does not open.
        assert!(matches!(
            keys.open("ctx", "usr_b", &sealed, &what),
            Err(SecretsError::Tampered { .. })
        ));
        assert!(matches!(
            keys.open("other", "usr_a", &sealed, &what),
            Err(SecretsError::Tampered { .. })
        ));
        // Plaintext passes through.
        assert_eq!(stored_form(&[7u8; 20]), StoredForm::Plaintext);
        assert_eq!(
            keys.open("ctx", "usr_a", &[7u8; 20], &what).unwrap(),
            [7u8; 20]
        );
    }

    #[test]
    fn unknown_key_names_the_key_id_and_what_to_do_but_no_secret() {
        let old = SecretKeys::new(key(1), vec![]);
        let sealed = old.seal("ctx", "usr_a", b"abc").unwrap();
        let new = SecretKeys::new(key(2), vec![]);
        let err = new
            .open("ctx", "usr_a", &sealed, &|| {
                "TOTP seed of user usr_a".to_owned()
            })
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&key(1).id()), "{msg}");
        assert!(msg.contains("secrets.previous_master_key_files"), "{msg}");
        assert!(msg.contains("usr_a"), "{msg}");
        assert!(!msg.contains("abc"));
        // With the old key as a previous key it opens.
        let both = SecretKeys::new(key(2), vec![key(1)]);
        assert_eq!(
            both.open("ctx", "usr_a", &sealed, &String::new).unwrap(),
            b"abc"
        );
    }

    #[test]
    fn keys_parse_raw_or_base64_and_debug_hides_them() {
        use base64::Engine as _;
        let raw = [9u8; 32];
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let a = MasterKey::from_bytes(&raw, "raw").unwrap();
        let b = MasterKey::from_bytes(format!("{b64}\n").as_bytes(), "b64").unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert!(!format!("{a:?}").contains("9, 9"));
        let err = MasterKey::from_bytes(b"short", "LEXECON_MASTER_KEY").unwrap_err();
        assert!(err.to_string().contains("LEXECON_MASTER_KEY"));
        assert!(!err.to_string().contains("short"));
    }
}
