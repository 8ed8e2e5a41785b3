//! Domain types shared by every Lexecon crate.
//!
//! `lexecon-core` owns the vocabulary of the decision pipeline: prefixed ULID ids
//! ([`DecisionId`], [`TokenId`], ...), validated names ([`Actor`], [`Action`], [`Tool`],
//! [`DataClass`]), the request an agent proposes ([`ActionRequest`]), the answers
//! ([`Outcome`], [`RiskLevel`], [`PolicyMode`]), time ([`Timestamp`], [`Clock`]), the
//! full-match [`Glob`] patterns that policies and API-key bindings grant by, and the
//! canonical byte encoding used wherever something is hashed or signed ([`canonical`]).
//!
//! It does no IO: time and randomness come in through [`Clock`] and plain arguments, so
//! everything built on it can be tested without a clock or a network.

#![deny(missing_docs)]

pub mod canonical;
mod clock;
pub mod glob;
mod ids;
mod names;
mod outcome;
mod request;
mod time;

pub use clock::{Clock, ManualClock, SystemClock};
pub use glob::{Glob, GlobError};
pub use ids::{
    DecisionId, EscalationId, ExportId, HaltId, HoldId, IdError, InterventionId, OverrideId,
    ReservationId, TokenId,
};
pub use names::{Action, Actor, DataClass, NameError, Tool};
pub use outcome::{Outcome, ParseEnumError, PolicyMode, RiskLevel};
pub use request::{
    ActionRequest, LlmUsage, MAX_CONTEXT_ENTRIES, MAX_CONTEXT_KEY_LEN, MAX_CONTEXT_VALUE_LEN,
    MAX_DATA_CLASSES, MAX_INTENT_LEN, MAX_ROLES, RequestError,
};
pub use time::{Timestamp, TimestampError};
