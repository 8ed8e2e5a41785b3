//! Node keys: the Ed25519 key that signs tokens and checkpoints, its key id, and its files.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

/// Length of a key id in characters (16 lowercase hex digits, 8 bytes).
pub const KEY_ID_LEN: usize = 16;

/// Suffix of a private key file: `DIR/<name>.ed25519`.
pub const PRIVATE_KEY_SUFFIX: &str = ".ed25519";

/// Suffix of a public key file: `DIR/<name>.ed25519.pub`.
pub const PUBLIC_KEY_SUFFIX: &str = ".ed25519.pub";

/// A key file could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `create`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The key file already exists and overwriting was not asked for.
    #[error("{} already exists; remove it or ask to replace the key explicitly", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A private key file can be read by group or others.
    #[error(
        "private key file {} is readable by group or others (mode {mode:03o}); run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The private key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file's content is not what it should be.
    #[error("{} is not {expected}: {detail}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What the file should hold.
        expected: &'static str,
        /// What is wrong, as reported by the decoder.
        detail: String,
    },
    /// A key could not be encoded (should not happen for a valid key).
    #[error("cannot encode the {what}: {detail}")]
    Encode {
        /// Which key.
        what: &'static str,
        /// The encoder's message.
        detail: String,
    },
}

/// The key id of a public key: the first 8 bytes of SHA-256 over the 32-byte Ed25519
/// public key, as 16 lowercase hex digits.
///
/// Short enough to carry in every token, long enough that two keys of one deployment
/// never collide by accident; a forged key id gains nothing because the signature is
/// always checked against the key the id names.
pub fn key_id_of(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(KEY_ID_LEN);
    for b in digest.iter().take(KEY_ID_LEN / 2) {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0x0f));
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'a' + (n - 10) })
}

/// A public key with its key id, as a verifier holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    key_id: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// Wraps an Ed25519 public key and computes its key id.
    pub fn new(key: VerifyingKey) -> Self {
        PublicKey {
            key_id: key_id_of(&key),
            key,
        }
    }

    /// A public key from its 32 raw bytes; `None` when they are not a curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        VerifyingKey::from_bytes(bytes).ok().map(PublicKey::new)
    }

    /// The key id (see [`key_id_of`]).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Checks an Ed25519 signature over `message` with `verify_strict`, which also
    /// rejects non-canonical signatures and small-order keys.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.key
            .verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }

    /// The key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encode {
                what: "public key",
                detail: e.to_string(),
            })
    }

    /// Parses SPKI PEM; `path` only names the source in the error.
    pub fn from_pem(pem: &str, path: &Path) -> Result<Self, KeyError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey::new)
            .map_err(|e| KeyError::Format {
                path: path.to_owned(),
                expected: "an Ed25519 public key in SPKI PEM (-----BEGIN PUBLIC KEY-----)",
                detail: e.to_string(),
            })
    }
}

/// The node's Ed25519 signing key: it signs capability tokens and ledger checkpoints.
///
/// Debug output shows only the key id, never the secret.
pub struct NodeKey {
    signing: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

impl Clone for NodeKey {
    fn clone(&self) -> Self {
        NodeKey::from_signing_key(self.signing.clone())
    }
}

impl NodeKey {
    /// A fresh key from a cryptographic random number generator (for example
    /// `rand_core::OsRng`); randomness is an argument so that this crate does no IO.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        NodeKey::from_signing_key(SigningKey::generate(rng))
    }

    /// Wraps an existing signing key.
    pub fn from_signing_key(signing: SigningKey) -> Self {
        let public = PublicKey::new(signing.verifying_key());
        NodeKey { signing, public }
    }

    /// A key from its 32-byte secret seed (RFC 8032's "secret key").
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        NodeKey::from_signing_key(SigningKey::from_bytes(secret))
    }

    /// The key id of the public half (see [`key_id_of`]).
    pub fn key_id(&self) -> &str {
        &self.public.key_id
    }

    /// The Ed25519 signing key, for other signing formats (ledger checkpoints).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The Ed25519 public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public.key
    }

    /// The public half with its key id.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// A deterministic Ed25519 signature (RFC 8032 PureEdDSA) over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// The private key file path for key `name` in `dir`: `dir/<name>.ed25519`.
    pub fn private_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}{PRIVATE_KEY_SUFFIX}"))
    }

    /// The public key file path for key `name` in `dir`: `dir/<name>.ed25519.pub`.
    pub fn public_path(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!("{name}{PUBLIC_KEY_SUFFIX}"))
    }

    /// Writes `dir/<name>.ed25519` (PKCS#8 PEM, mode 0600 from the moment it exists)
    /// and `dir/<name>.ed25519.pub` (SPKI PEM, mode 0644), creating `dir` if needed.
    ///
    /// Refuses, before writing anything, when either file exists; see
    /// [`NodeKey::replace_files`] to overwrite. Each file appears whole or not at all.
    pub fn write_files(&self, dir: &Path, name: &str) -> Result<(), KeyError> {
        let private = NodeKey::private_path(dir, name);
        let public = NodeKey::public_path(dir, name);
        for path in [&private, &public] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(KeyError::Exists { path: path.clone() });
            }
        }
        self.write(dir, &private, &public, false)
    }

    /// Like [`NodeKey::write_files`] but replaces existing files (each atomically).
    pub fn replace_files(&self, dir: &Path, name: &str) -> Result<(), KeyError> {
        let private = NodeKey::private_path(dir, name);
        let public = NodeKey::public_path(dir, name);
        self.write(dir, &private, &public, true)
    }

    fn write(
        &self,
        dir: &Path,
        private: &Path,
        public: &Path,
        replace: bool,
    ) -> Result<(), KeyError> {
        fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            action: "create directory",
            path: dir.to_owned(),
            source,
        })?;
        let pem = self
            .signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encode {
                what: "private key",
                detail: e.to_string(),
            })?;
        write_file(private, pem.as_bytes(), 0o600, replace)?;
        write_file(public, self.public.to_pem()?.as_bytes(), 0o644, replace)
    }

    /// Loads a private key file written by [`NodeKey::write_files`].
    ///
    /// On Unix, refuses a file that group or others may read or write, naming the file
    /// and the `chmod 600` fix; a file that is not a PKCS#8 PEM Ed25519 key is refused
    /// with its name.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let meta = fs::metadata(path).map_err(|source| KeyError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        check_private_mode(path, &meta)?;
        let text = read_text(path)?;
        let signing = SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Format {
            path: path.to_owned(),
            expected: "an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)",
            detail: e.to_string(),
        })?;
        Ok(NodeKey::from_signing_key(signing))
    }
}

#[cfg(unix)]
fn check_private_mode(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeyError> {
    // Other platforms protect files with ACLs this crate does not inspect.
    Ok(())
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|source| KeyError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Loads a public key file (SPKI PEM) such as `node.ed25519.pub`, naming the file on error.
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    PublicKey::from_pem(&read_text(path)?, path)
}

/// Writes `bytes` to `path` through a temporary file in the same directory that is
/// created with `mode` (so a secret is never readable by others, even briefly), synced,
/// then renamed over `path` (`replace`) or hard-linked to it (fails if `path` exists).
pub(crate) fn write_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    replace: bool,
) -> Result<(), KeyError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io {
            action,
            path,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    // A temporary file left by a crashed writer of this same process id is stale.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = options.open(&tmp).map_err(io("create", &tmp))?;
        #[cfg(unix)]
        {
            // The umask may have narrowed `mode`; a public key must still be readable.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io("set permissions on", &tmp))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        file.write_all(bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        if replace {
            fs::rename(&tmp, path).map_err(io("replace", path))
        } else {
            fs::hard_link(&tmp, path).map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    KeyError::Exists {
                        path: path.to_owned(),
                    }
                } else {
                    io("create", path)(source)
                }
            })
        }
    })();
    if !replace || result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
