//! The Lexecon governance service, independent of any transport.
//!
//! Owns configuration (layered defaults, file and environment: [`config`]), storage
//! wiring (SQLite by default, PostgreSQL and Redis when configured), and the decision
//! pipeline that composes the domain crates: validate, policy, risk, budget, outcome,
//! token, ledger.

pub mod config;
pub mod db;
pub mod decision;
mod engine;
pub mod init;
pub mod jwks;
pub mod layout;
pub mod policy;
pub mod secrets;

pub use config::{Config, ConfigError};
pub use decision::Decision;
pub use engine::{
    Accountability, AccountablePolicy, ApprovalRecord, DecisionMaker, EscalationPriority,
    EscalationQuery, EscalationResolution, EscalationState, EscalationView, Event, EventStream,
    HaltRecord, MAX_OVERSIGHT_TEXT_BYTES, MIN_JUSTIFICATION_CHARS, OverrideEffect, OverrideInput,
    OverrideKind, OverrideRecord, OverrideRevocation, ResponsibilityLevel, SweepReport,
};
pub use engine::{
    ActionInput, AuthorizeInput, Caller, Checkpoint, CreatedKey, DecideInput, Engine, EngineError,
    EntryPage, ErrorClass, LlmAuthorization, LoginResult, MAX_LIMITS_BYTES, MAX_PAGE,
    MAX_POLICY_BYTES, MAX_REASON_BYTES, MAX_REQUEST_ID_BYTES, MAX_TOKEN_BYTES, PolicyRecord,
    PolicyValidation, Reloaded, SYNC_EVERY, TokenCheck, VerifyReport, VerifyTokenInput,
    auth_config, auth_service_with, migrate_all,
};
pub use engine::{
    ArtifactType, EVIDENCE_CHUNK_BYTES, EvidenceCheck, EvidenceFilter, EvidenceInput,
    EvidenceRecord, MAX_CONTROL_ID_BYTES, MAX_EVIDENCE_LINKS, MAX_EVIDENCE_MEDIA_TYPE_BYTES,
    MAX_EVIDENCE_TITLE_BYTES, Registered, UnknownArtifactType,
};
pub use engine::{
    AuditExportRecord, AuditExportStream, BackfillProgress, BundleChunk, DecisionQuery,
    DecisionRecord, ExportQuery, MAX_CHUNK_BYTES, MAX_SCAN_ROWS,
};
pub use engine::{CallerGone, GoneOnDrop};
pub use engine::{
    CompletionInput, CompletionRecord, MAX_COMPLETION_JSON_BYTES, MAX_TOOL_PROBES, ToolProbe,
};
pub use engine::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page};
pub use engine::{
    HoldInput, HoldRecord, InterventionInput, InterventionKind, InterventionRecord,
    MAX_COMPLIANCE_TEXT_BYTES, MAX_HOLD_DECISION_IDS, RecordKeeping, Redaction,
};
pub use layout::DataDir;

/// Serializes the tests that set process environment variables (figment's `Jail`) with
/// the tests that read the configuration from the environment.
#[cfg(test)]
pub(crate) static TEST_ENV_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
