//! Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note` envelopes,
//! signed with the node's Ed25519 key and optionally co-signed with RSA-PSS.
//!
//! Ed25519 lines use signature type `0x01` and the signed-note key id
//! `SHA-256(name || 0x0A || 0x01 || public key)[..4]`. The RSA co-signature uses the
//! type byte `0xff` that signed-note reserves for types it does not assign, with key id
//! `SHA-256(name || 0x0A || 0xff || "rsa-pss-sha256" || SubjectPublicKeyInfo DER)[..4]`
//! and an RSASSA-PSS signature (SHA-256, MGF1-SHA-256, 32-byte salt) over the note text.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use rsa::pkcs8::EncodePublicKey as _;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Verifier as _};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// Signed-note signature type of Ed25519.
pub const ED25519_TYPE: u8 = 0x01;
/// Signature type byte of our RSA-PSS co-signature (signed-note's unassigned-type byte).
pub const RSA_PSS_TYPE: u8 = 0xff;
const RSA_ID: &[u8] = b"rsa-pss-sha256";

/// A checkpoint body: origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (its name).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The `tlog-checkpoint` body: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a body (extension lines after the root are allowed and ignored).
    pub fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines.next().unwrap_or_default();
        let root = lines.next().unwrap_or_default();
        if origin.is_empty() || !body.ends_with('\n') {
            return Err(NoteError::Malformed("checkpoint needs an origin line"));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || size.len() > 1 && size.starts_with('0')
        {
            return Err(NoteError::Malformed(
                "checkpoint size is not a decimal number",
            ));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError::Malformed("checkpoint size is out of range"))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(NoteError::Malformed(
                "checkpoint root is not a base64 32-byte hash",
            ))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// Why a note or key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not a well-formed note, checkpoint or key.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key.
    #[error("no signature by key {0}: the checkpoint was not signed by this log's key")]
    NotSigned(String),
    /// A signature by the expected key does not verify.
    #[error("signature by key {0} does not verify: the checkpoint was altered or forged")]
    BadSignature(String),
    /// The key name is unusable.
    #[error("key name {0:?} is invalid: use a non-empty name without spaces or '+'")]
    BadName(String),
    /// The RSA co-signature could not be made.
    #[error("rsa co-signature failed: {0}")]
    Rsa(String),
}

fn key_id(name: &str, kind: u8, key: &[&[u8]]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    for k in key {
        h.update(k);
    }
    let d = h.finalize();
    d.first_chunk::<4>().copied().unwrap_or_default()
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::BadName(name.to_owned()));
    }
    Ok(())
}

/// A checkpoint with its signed-note text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The body.
    pub checkpoint: Checkpoint,
    /// The full signed note (body, blank line, signature lines).
    pub note: String,
}

/// Signs checkpoints with the node key (and an optional RSA co-signing key).
#[derive(Clone)]
pub struct CheckpointSigner {
    origin: String,
    key: SigningKey,
    key_id: [u8; 4],
    rsa: Option<(rsa::pss::SigningKey<Sha256>, [u8; 4], rsa::RsaPublicKey)>,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("origin", &self.origin)
            .field("key_id", &hex::encode(self.key_id))
            .field("rsa", &self.rsa.is_some())
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// A signer for the log named `origin` (also the signed-note key name).
    pub fn new(origin: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(origin)?;
        let key_id = key_id(origin, ED25519_TYPE, &[key.verifying_key().as_bytes()]);
        Ok(CheckpointSigner {
            origin: origin.to_owned(),
            key,
            key_id,
            rsa: None,
        })
    }

    /// Adds an RSA-PSS co-signature (an RSA-4096 key in production) to every checkpoint.
    pub fn with_rsa(mut self, key: rsa::RsaPrivateKey) -> Result<Self, NoteError> {
        let public = key.to_public_key();
        let der = public
            .to_public_key_der()
            .map_err(|e| NoteError::Rsa(e.to_string()))?;
        let id = key_id(&self.origin, RSA_PSS_TYPE, &[RSA_ID, der.as_bytes()]);
        self.rsa = Some((rsa::pss::SigningKey::<Sha256>::new(key), id, public));
        Ok(self)
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier for this signer's Ed25519 key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.origin.clone(),
            key: self.key.verifying_key(),
            key_id: self.key_id,
        }
    }

    /// The RSA co-signature verifier, when an RSA key is configured.
    pub fn rsa_verifier(&self) -> Option<RsaNoteVerifier> {
        self.rsa.as_ref().map(|(_, id, public)| RsaNoteVerifier {
            name: self.origin.clone(),
            key: rsa::pss::VerifyingKey::<Sha256>::new(public.clone()),
            key_id: *id,
        })
    }

    /// Signs any note body (text ending in a newline) with the Ed25519 key alone: a
    /// C2SP signed note under the key name `origin` (audit manifests).
    pub fn sign_text(&self, body: &str) -> String {
        let sig = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&sig.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.origin, B64.encode(&blob))
    }

    /// Signs a checkpoint of `size` with `root`.
    pub fn sign(&self, size: u64, root: Hash) -> Result<SignedCheckpoint, NoteError> {
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        };
        let body = checkpoint.body();
        let sig = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&sig.to_bytes());
        let mut note = format!("{body}\n\u{2014} {} {}\n", self.origin, B64.encode(&blob));
        if let Some((rsa_key, id, _)) = &self.rsa {
            let sig = rsa_key
                .try_sign_with_rng(&mut rand_core::OsRng, body.as_bytes())
                .map_err(|e| NoteError::Rsa(e.to_string()))?;
            let mut blob = id.to_vec();
            blob.extend_from_slice(&sig.to_bytes());
            note.push_str(&format!("\u{2014} {} {}\n", self.origin, B64.encode(&blob)));
        }
        Ok(SignedCheckpoint { checkpoint, note })
    }
}

/// Splits a note into its body and its signature lines `(name, key id, signature)`.
/// A signature line: key name, key id, signature bytes.
type SigLine<'a> = (&'a str, [u8; 4], Vec<u8>);

fn split_note(note: &str) -> Result<(&str, Vec<SigLine<'_>>), NoteError> {
    let Some(sep) = note.rfind("\n\n") else {
        return Err(NoteError::Malformed("no blank line before the signatures"));
    };
    let (body, sigs) = note.split_at(sep + 1);
    let sigs = sigs.get(1..).unwrap_or_default();
    if !sigs.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature block must end with a newline",
        ));
    }
    let mut out = Vec::new();
    for line in sigs.lines() {
        let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed(
            "a signature line must start with an em dash",
        ))?;
        let (name, b64) = rest.split_once(' ').ok_or(NoteError::Malformed(
            "a signature line needs a name and a signature",
        ))?;
        let blob = B64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        let (id, sig) = blob.split_at(4);
        let id: [u8; 4] = id.try_into().unwrap_or_default();
        out.push((name, id, sig.to_vec()));
    }
    if out.is_empty() {
        return Err(NoteError::Malformed("the note has no signatures"));
    }
    Ok((body, out))
}

/// Verifies Ed25519 signed notes of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    key_id: [u8; 4],
}

impl NoteVerifier {
    /// A verifier for the key `name` with this Ed25519 public key.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: key_id(name, ED25519_TYPE, &[key.as_bytes()]),
            key,
        })
    }

    /// A verifier for the key `name` from a PEM SubjectPublicKeyInfo Ed25519 key (the
    /// node's `keys/node.ed25519.pub`).
    pub fn from_public_key_pem(name: &str, pem: &str) -> Result<Self, NoteError> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|_| NoteError::Malformed("not a PEM Ed25519 public key"))?;
        NoteVerifier::new(name, key)
    }

    /// Parses a `vkey`: `<name>+<hex key id>+<base64(0x01 || public key)>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Malformed("a vkey is name+keyid+key"));
        };
        let key = B64
            .decode(key)
            .map_err(|_| NoteError::Malformed("the vkey's key is not base64"))?;
        let Some((&ED25519_TYPE, key)) = key.split_first() else {
            return Err(NoteError::Malformed(
                "the vkey is not an Ed25519 (type 0x01) key",
            ));
        };
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| NoteError::Malformed("the vkey's Ed25519 key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| NoteError::Malformed("the vkey's Ed25519 key is not a valid point"))?;
        let v = NoteVerifier::new(name, key)?;
        if hex::encode(v.key_id) != id {
            return Err(NoteError::Malformed(
                "the vkey's key id does not match its key",
            ));
        }
        Ok(v)
    }

    /// The `vkey` text.
    pub fn vkey(&self) -> String {
        let mut key = vec![ED25519_TYPE];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(key)
        )
    }

    /// The key name (the checkpoint origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies a signed checkpoint note and returns its body.
    ///
    /// Needs a valid signature by this key; signatures by other keys are ignored, as
    /// signed-note prescribes. The checkpoint's origin must be this key's name.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let body = self.verify_text(note)?;
        let checkpoint = Checkpoint::parse_body(body)?;
        if checkpoint.origin != self.name {
            return Err(NoteError::Malformed(
                "the checkpoint origin is not the key name",
            ));
        }
        Ok(checkpoint)
    }

    /// Verifies any signed note and returns its body (text ending in a newline). Needs
    /// a valid signature by this key; signatures by other keys are ignored.
    pub fn verify_text<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let (body, sigs) = split_note(note)?;
        let label = format!("{}+{}", self.name, hex::encode(self.key_id));
        let mut found = false;
        for (name, id, sig) in sigs {
            if name != self.name || id != self.key_id {
                continue;
            }
            let sig = ed25519_dalek::Signature::from_slice(&sig)
                .map_err(|_| NoteError::BadSignature(label.clone()))?;
            self.key
                .verify_strict(body.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature(label.clone()))?;
            found = true;
        }
        if !found {
            return Err(NoteError::NotSigned(label));
        }
        Ok(body)
    }
}

/// Verifies the RSA-PSS co-signature of a note.
#[derive(Debug, Clone)]
pub struct RsaNoteVerifier {
    name: String,
    key: rsa::pss::VerifyingKey<Sha256>,
    key_id: [u8; 4],
}

impl RsaNoteVerifier {
    /// A verifier for the co-signing key `name` with this RSA public key.
    pub fn new(name: &str, key: rsa::RsaPublicKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let der = key
            .to_public_key_der()
            .map_err(|e| NoteError::Rsa(e.to_string()))?;
        Ok(RsaNoteVerifier {
            name: name.to_owned(),
            key_id: key_id(name, RSA_PSS_TYPE, &[RSA_ID, der.as_bytes()]),
            key: rsa::pss::VerifyingKey::<Sha256>::new(key),
        })
    }

    /// Verifies the note's RSA-PSS co-signature by this key.
    pub fn verify(&self, note: &str) -> Result<(), NoteError> {
        let (body, sigs) = split_note(note)?;
        let label = format!("{}+{} (rsa)", self.name, hex::encode(self.key_id));
        let mut found = false;
        for (name, id, sig) in sigs {
            if name != self.name || id != self.key_id {
                continue;
            }
            let sig = rsa::pss::Signature::try_from(sig.as_slice())
                .map_err(|_| NoteError::BadSignature(label.clone()))?;
            self.key
                .verify(body.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature(label.clone()))?;
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(NoteError::NotSigned(label))
        }
    }
}
