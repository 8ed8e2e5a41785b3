//! Ledger entries and their leaf encoding: the exact bytes that are hashed.
//!
//! A leaf is 82 bytes (see `docs/ledger-format.md`):
//!
//! | offset | len | field |
//! |---|---|---|
//! | 0 | 1 | format version, `0x01` |
//! | 1 | 8 | entry index, u64 big-endian |
//! | 9 | 8 | timestamp, microseconds since the Unix epoch, i64 big-endian |
//! | 17 | 1 | entry kind code |
//! | 18 | 32 | previous entry's leaf hash (32 zero bytes for index 0) |
//! | 50 | 32 | SHA-256 of the payload bytes |
//!
//! The leaf commits to the payload's hash, not the payload, so a payload can be erased
//! (redaction) while the leaf, and every proof, stays valid.

use std::fmt;
use std::str::FromStr;

use lexecon_core::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The leaf format version this crate writes and reads.
pub const LEAF_VERSION: u8 = 1;
/// The length of every version-1 leaf.
pub const LEAF_LEN: usize = 82;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryKind {
    /// A decision of the engine.
    Decision,
    /// A policy was loaded (at start or on reload).
    PolicyLoaded,
    /// A capability token was revoked.
    TokenRevoked,
    /// A budget event (limit reached, reservation settled, ...).
    BudgetEvent,
    /// An authentication event (login, API key created, ...).
    AuthEvent,
    /// The configuration was reloaded.
    ConfigReloaded,
    /// A signing key was rotated.
    KeyRotated,
    /// A free-form note.
    Note,
    /// Human oversight: escalations, overrides, halts; the payload's `event` names which.
    Oversight,
    /// An evidence artifact was registered (its hash, never its content).
    EvidenceRegistered,
    /// An audit export was made.
    AuditExported,
    /// Compliance: legal holds placed and released, interventions, redactions and
    /// verifications; the payload's `event` names which.
    Compliance,
    /// The completion of a call the MCP gateway forwarded, linked to its decision.
    McpCompletion,
}

impl EntryKind {
    /// Every kind, in code order.
    pub const ALL: [EntryKind; 13] = [
        EntryKind::Decision,
        EntryKind::PolicyLoaded,
        EntryKind::TokenRevoked,
        EntryKind::BudgetEvent,
        EntryKind::AuthEvent,
        EntryKind::ConfigReloaded,
        EntryKind::KeyRotated,
        EntryKind::Note,
        EntryKind::Oversight,
        EntryKind::EvidenceRegistered,
        EntryKind::AuditExported,
        EntryKind::Compliance,
        EntryKind::McpCompletion,
    ];

    /// The one-byte code in the leaf.
    pub const fn code(self) -> u8 {
        match self {
            EntryKind::Decision => 1,
            EntryKind::PolicyLoaded => 2,
            EntryKind::TokenRevoked => 3,
            EntryKind::BudgetEvent => 4,
            EntryKind::AuthEvent => 5,
            EntryKind::ConfigReloaded => 6,
            EntryKind::KeyRotated => 7,
            EntryKind::Note => 8,
            EntryKind::Oversight => 9,
            EntryKind::EvidenceRegistered => 10,
            EntryKind::AuditExported => 11,
            EntryKind::Compliance => 12,
            EntryKind::McpCompletion => 13,
        }
    }

    /// The kind of a leaf code.
    pub fn from_code(code: u8) -> Option<Self> {
        EntryKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The snake_case name used in JSON and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Decision => "decision",
            EntryKind::PolicyLoaded => "policy_loaded",
            EntryKind::TokenRevoked => "token_revoked",
            EntryKind::BudgetEvent => "budget_event",
            EntryKind::AuthEvent => "auth_event",
            EntryKind::ConfigReloaded => "config_reloaded",
            EntryKind::KeyRotated => "key_rotated",
            EntryKind::Note => "note",
            EntryKind::Oversight => "oversight",
            EntryKind::EvidenceRegistered => "evidence_registered",
            EntryKind::AuditExported => "audit_exported",
            EntryKind::Compliance => "compliance",
            EntryKind::McpCompletion => "mcp_completion",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an entry kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown entry kind {0:?}: use decision, policy_loaded, token_revoked, budget_event, auth_event, config_reloaded, key_rotated, note, oversight, evidence_registered, audit_exported, compliance or mcp_completion"
)]
pub struct UnknownKind(String);

impl FromStr for EntryKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// The SHA-256 of payload bytes.
pub fn payload_hash(payload: &[u8]) -> Hash {
    Sha256::digest(payload).into()
}

/// The decoded fields of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// The entry index.
    pub index: u64,
    /// When the entry was appended.
    pub timestamp: Timestamp,
    /// What it records.
    pub kind: EntryKind,
    /// The previous entry's leaf hash (zeros for the first entry).
    pub prev_leaf_hash: Hash,
    /// SHA-256 of the payload bytes.
    pub payload_hash: Hash,
}

/// Why leaf bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafError {
    /// Wrong length.
    #[error("leaf is {0} bytes, a version-1 leaf is 82")]
    Length(usize),
    /// Unknown version byte.
    #[error("leaf format version {0} is unknown: this build reads version 1")]
    Version(u8),
    /// Unknown kind code.
    #[error("leaf kind code {0} is unknown")]
    Kind(u8),
}

impl Leaf {
    /// The 82 leaf bytes.
    pub fn encode(&self) -> [u8; LEAF_LEN] {
        let mut out = [0u8; LEAF_LEN];
        let parts: [&[u8]; 6] = [
            &[LEAF_VERSION],
            &self.index.to_be_bytes(),
            &self.timestamp.unix_micros().to_be_bytes(),
            &[self.kind.code()],
            &self.prev_leaf_hash,
            &self.payload_hash,
        ];
        let mut at = 0;
        for part in parts {
            if let Some(dst) = out.get_mut(at..at + part.len()) {
                dst.copy_from_slice(part);
            }
            at += part.len();
        }
        out
    }

    /// Decodes leaf bytes.
    pub fn decode(bytes: &[u8]) -> Result<Leaf, LeafError> {
        let bytes: &[u8; LEAF_LEN] = bytes
            .try_into()
            .map_err(|_| LeafError::Length(bytes.len()))?;
        let (version, rest) = bytes.split_at(1);
        let (index, rest) = rest.split_at(8);
        let (ts, rest) = rest.split_at(8);
        let (kind, rest) = rest.split_at(1);
        let (prev, payload) = rest.split_at(32);
        let version = version.first().copied().unwrap_or_default();
        if version != LEAF_VERSION {
            return Err(LeafError::Version(version));
        }
        let kind_code = kind.first().copied().unwrap_or_default();
        let kind = EntryKind::from_code(kind_code).ok_or(LeafError::Kind(kind_code))?;
        Ok(Leaf {
            index: u64::from_be_bytes(index.try_into().unwrap_or_default()),
            timestamp: Timestamp::from_unix_micros(i64::from_be_bytes(
                ts.try_into().unwrap_or_default(),
            )),
            kind,
            prev_leaf_hash: prev.try_into().unwrap_or_default(),
            payload_hash: payload.try_into().unwrap_or_default(),
        })
    }
}

/// Who erased a payload and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Who asked for the erasure.
    pub by: String,
    /// Why (for example a GDPR erasure request reference).
    pub reason: String,
    /// When it was erased.
    pub at: Timestamp,
}

/// An entry as stored: the hashed leaf plus the payload kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry index.
    pub index: u64,
    /// The exact leaf bytes that were hashed.
    pub leaf: Vec<u8>,
    /// `SHA-256(0x00 || leaf)`.
    pub leaf_hash: Hash,
    /// The payload bytes (compact JSON), or `None` once redacted.
    pub payload: Option<Vec<u8>>,
    /// Set once the payload was erased.
    pub tombstone: Option<Tombstone>,
}

impl Entry {
    /// The decoded leaf.
    pub fn decode_leaf(&self) -> Result<Leaf, LeafError> {
        Leaf::decode(&self.leaf)
    }

    /// The payload as JSON (`None` when redacted or not valid JSON).
    pub fn payload_json(&self) -> Option<serde_json::Value> {
        self.payload
            .as_deref()
            .and_then(|p| serde_json::from_slice(p).ok())
    }
}
