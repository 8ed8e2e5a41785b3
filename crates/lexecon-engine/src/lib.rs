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
pub mod policy;

pub use config::{Config, ConfigError};
pub use decision::Decision;
pub use engine::{
    Engine, EngineError, PolicyRecord, TokenCheck, auth_config, auth_service, auth_service_with,
    migrate_all,
};
