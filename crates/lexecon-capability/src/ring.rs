//! Key rings: the active key plus retired public keys kept until their last token expires.

use std::fs;
use std::path::Path;

use lexecon_core::Timestamp;

use crate::keys::{
    KEY_ID_LEN, KeyError, NodeKey, PUBLIC_KEY_SUFFIX, PublicKey, load_public_key, write_file,
};

/// Directory, beside the node key files, that holds retired public keys:
/// `DIR/retired/<key id>.pub` (SPKI PEM) and `DIR/retired/<key id>.until` (one RFC 3339
/// line: the instant after which the key verifies nothing).
pub const RETIRED_DIR: &str = "retired";

/// Finds the public key for a token's key id.
pub trait KeyLookup {
    /// The key with id `key_id` if it may verify tokens at `now`.
    fn public_key(&self, key_id: &str, now: Timestamp) -> Option<&PublicKey>;

    /// For a retired key, the instant it is kept until; `None` for an active key.
    ///
    /// A token signed by a retired key that expires after this instant was minted
    /// after the rotation (with a key that should no longer sign), and is refused.
    fn retired_until(&self, key_id: &str) -> Option<Timestamp> {
        let _ = key_id;
        None
    }
}

impl KeyLookup for PublicKey {
    fn public_key(&self, key_id: &str, _now: Timestamp) -> Option<&PublicKey> {
        (self.key_id() == key_id).then_some(self)
    }
}

impl KeyLookup for NodeKey {
    fn public_key(&self, key_id: &str, now: Timestamp) -> Option<&PublicKey> {
        self.public_key().public_key(key_id, now)
    }
}

impl KeyLookup for [PublicKey] {
    fn public_key(&self, key_id: &str, _now: Timestamp) -> Option<&PublicKey> {
        self.iter().find(|k| k.key_id() == key_id)
    }
}

impl<T: KeyLookup + ?Sized> KeyLookup for &T {
    fn public_key(&self, key_id: &str, now: Timestamp) -> Option<&PublicKey> {
        (**self).public_key(key_id, now)
    }

    fn retired_until(&self, key_id: &str) -> Option<Timestamp> {
        (**self).retired_until(key_id)
    }
}

/// A public key that no longer signs, kept to verify the tokens it signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    /// The retired public key.
    pub key: PublicKey,
    /// After this instant the key verifies nothing: by then every token it signed has
    /// expired.
    pub keep_until: Timestamp,
}

fn find_retired<'a>(
    retired: &'a [RetiredKey],
    key_id: &str,
    now: Timestamp,
) -> Option<&'a PublicKey> {
    retired
        .iter()
        .find(|r| r.key.key_id() == key_id && now <= r.keep_until)
        .map(|r| &r.key)
}

fn retired_until(retired: &[RetiredKey], key_id: &str) -> Option<Timestamp> {
    retired
        .iter()
        .find(|r| r.key.key_id() == key_id)
        .map(|r| r.keep_until)
}

/// The node's active signing key and its retired public keys.
#[derive(Debug, Clone)]
pub struct KeyRing {
    active: NodeKey,
    retired: Vec<RetiredKey>,
}

impl KeyRing {
    /// A ring with only `active`.
    pub fn new(active: NodeKey) -> Self {
        KeyRing {
            active,
            retired: Vec::new(),
        }
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &NodeKey {
        &self.active
    }

    /// The retired keys still kept.
    pub fn retired(&self) -> &[RetiredKey] {
        &self.retired
    }

    /// Makes `new_key` the active key. The old key is retired and keeps verifying
    /// until `now + max_token_ttl_secs`: pass the longest token lifetime plus the clock
    /// skew allowance (`tokens.ttl_secs + tokens.clock_skew_secs`), so every token it
    /// signed has expired by then. Returns the retired key.
    pub fn rotate(
        &mut self,
        new_key: NodeKey,
        now: Timestamp,
        max_token_ttl_secs: u32,
    ) -> RetiredKey {
        let old = std::mem::replace(&mut self.active, new_key);
        let retired = RetiredKey {
            key: old.public_key().clone(),
            keep_until: now.add_secs(i64::from(max_token_ttl_secs)),
        };
        // A key is either active or retired, never both.
        let active_id = self.active.key_id().to_owned();
        self.retired
            .retain(|r| r.key.key_id() != retired.key.key_id() && r.key.key_id() != active_id);
        self.retired.push(retired.clone());
        retired
    }

    /// Forgets retired keys whose time has passed; returns how many.
    pub fn prune(&mut self, now: Timestamp) -> usize {
        let before = self.retired.len();
        self.retired.retain(|r| now <= r.keep_until);
        before - self.retired.len()
    }

    /// Loads the active key `dir/<name>.ed25519` (see [`NodeKey::load`]) and the
    /// retired keys under `dir/retired/`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, KeyError> {
        Ok(KeyRing {
            active: NodeKey::load(&NodeKey::private_path(dir, name))?,
            retired: load_retired(dir)?,
        })
    }

    /// Writes the ring to `dir`: first every retired key (so that a crash in between
    /// leaves old tokens verifiable), then the active key's files, replacing the old
    /// ones; finally removes retired files of keys the ring no longer holds.
    pub fn save(&self, dir: &Path, name: &str) -> Result<(), KeyError> {
        let retired_dir = dir.join(RETIRED_DIR);
        if !self.retired.is_empty() {
            fs::create_dir_all(&retired_dir).map_err(|source| KeyError::Io {
                action: "create directory",
                path: retired_dir.clone(),
                source,
            })?;
        }
        for r in &self.retired {
            let id = r.key.key_id();
            write_file(
                &retired_dir.join(format!("{id}.pub")),
                r.key.to_pem()?.as_bytes(),
                0o644,
                true,
            )?;
            write_file(
                &retired_dir.join(format!("{id}.until")),
                format!("{}\n", r.keep_until).as_bytes(),
                0o644,
                true,
            )?;
        }
        self.active.replace_files(dir, name)?;
        for (id, _) in retired_entries(&retired_dir)? {
            if !self.retired.iter().any(|r| r.key.key_id() == id) {
                for ext in ["pub", "until"] {
                    let path = retired_dir.join(format!("{id}.{ext}"));
                    fs::remove_file(&path).map_err(|source| KeyError::Io {
                        action: "remove",
                        path,
                        source,
                    })?;
                }
            }
        }
        Ok(())
    }
}

impl KeyLookup for KeyRing {
    fn public_key(&self, key_id: &str, now: Timestamp) -> Option<&PublicKey> {
        if self.active.key_id() == key_id {
            return Some(self.active.public_key());
        }
        find_retired(&self.retired, key_id, now)
    }
    fn retired_until(&self, key_id: &str) -> Option<Timestamp> {
        retired_until(&self.retired, key_id)
    }
}

/// The public half of a [`KeyRing`]: what a verifier needs, without the secret.
#[derive(Debug, Clone)]
pub struct PublicKeyRing {
    active: PublicKey,
    retired: Vec<RetiredKey>,
}

impl PublicKeyRing {
    /// A ring with only `active`.
    pub fn new(active: PublicKey) -> Self {
        PublicKeyRing {
            active,
            retired: Vec::new(),
        }
    }

    /// Adds a retired key.
    pub fn with_retired(mut self, retired: RetiredKey) -> Self {
        self.retired.push(retired);
        self
    }

    /// The current public key.
    pub fn active(&self) -> &PublicKey {
        &self.active
    }

    /// The retired keys.
    pub fn retired(&self) -> &[RetiredKey] {
        &self.retired
    }

    /// Loads `dir/<name>.ed25519.pub` and the retired keys under `dir/retired/`; needs
    /// no access to the private key.
    pub fn load(dir: &Path, name: &str) -> Result<Self, KeyError> {
        Ok(PublicKeyRing {
            active: load_public_key(&NodeKey::public_path(dir, name))?,
            retired: load_retired(dir)?,
        })
    }
}

impl From<&KeyRing> for PublicKeyRing {
    fn from(ring: &KeyRing) -> Self {
        PublicKeyRing {
            active: ring.active.public_key().clone(),
            retired: ring.retired.clone(),
        }
    }
}

impl KeyLookup for PublicKeyRing {
    fn public_key(&self, key_id: &str, now: Timestamp) -> Option<&PublicKey> {
        if self.active.key_id() == key_id {
            return Some(&self.active);
        }
        find_retired(&self.retired, key_id, now)
    }
    fn retired_until(&self, key_id: &str) -> Option<Timestamp> {
        retired_until(&self.retired, key_id)
    }
}

/// `(key id, path of the .pub file)` for each retired key file in `retired_dir`.
fn retired_entries(retired_dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, KeyError> {
    let entries = match fs::read_dir(retired_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(KeyError::Io {
                action: "list",
                path: retired_dir.to_owned(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| KeyError::Io {
            action: "list",
            path: retired_dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".pub")) else {
            continue;
        };
        // Only files this module wrote; anything else in the directory is left alone.
        if id.len() == KEY_ID_LEN && !id.ends_with(PUBLIC_KEY_SUFFIX) {
            out.push((id.to_owned(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn load_retired(dir: &Path) -> Result<Vec<RetiredKey>, KeyError> {
    let retired_dir = dir.join(RETIRED_DIR);
    let mut out = Vec::new();
    for (id, pub_path) in retired_entries(&retired_dir)? {
        let key = load_public_key(&pub_path)?;
        if key.key_id() != id {
            return Err(KeyError::Format {
                path: pub_path,
                expected: "the public key its file name names",
                detail: format!(
                    "the key's id is {}; rename or remove the file",
                    key.key_id()
                ),
            });
        }
        let until_path = retired_dir.join(format!("{id}.until"));
        let text = fs::read_to_string(&until_path).map_err(|source| KeyError::Io {
            action: "read",
            path: until_path.clone(),
            source,
        })?;
        let keep_until = text
            .trim()
            .parse::<Timestamp>()
            .map_err(|e| KeyError::Format {
                path: until_path.clone(),
                expected: "one RFC 3339 timestamp",
                detail: e.to_string(),
            })?;
        out.push(RetiredKey { key, keep_until });
    }
    Ok(out)
}
